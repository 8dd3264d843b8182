//! The MVDS fuzz targets over a seeded, generated corpus, so CI exercises them on stable without
//! libFuzzer. Payload inputs mix noise with mutations of valid payloads, messages and snapshots; node
//! inputs are noise (the target interprets them as a script of operations).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use status_sansio::fuzzing::corpus;
use status_sansio::fuzzing::mvds as targets;
use status_sansio::mvds::{Config, GroupId, Input, Message, MessageId, Node, Payload, PeerId};
use status_sansio::{Seed, Timestamp};

fn valid_seeds() -> Vec<Vec<u8>> {
    let mut g = corpus::Generator::new(1);
    let mut out = vec![];
    for i in 0..8u8 {
        let m = Message::new(GroupId([i; 32]), i64::from(i) - 1, g.noise(40));
        let p = Payload {
            acks: vec![MessageId([i; 32])],
            offers: vec![m.id()],
            requests: vec![MessageId([9; 32]); usize::from(i % 3)],
            messages: vec![m.clone(); usize::from(i % 4)],
            ..Payload::default()
        };
        out.push(p.encode_to_vec());
        out.push(m.encode_to_vec());
    }
    let now = Timestamp::from_secs(1_700_000_000);
    let mut node = Node::new(Config::default(), &Seed::from_u64(3), now).unwrap();
    let (group, peer) = (GroupId([1; 32]), PeerId::new(vec![2u8]));
    node.handle_input(now, Input::AddPeer { group, peer }).unwrap();
    let body = b"persisted".to_vec().into();
    node.handle_input(now, Input::Send { group, body }).unwrap();
    out.push(node.snapshot(now).encode_to_vec());
    out
}

#[test]
fn mvds_payload_corpus() {
    let seeds = valid_seeds();
    corpus::run(0x6d76_6473, 4000, 400, &seeds, targets::mvds_payload);
}

#[test]
fn mvds_node_corpus() {
    corpus::run(0x6e6f_6465, 2000, 2000, &[], targets::mvds_node);
}
