//! The MVDS fuzz targets over a seeded, generated corpus, so CI exercises them on stable without
//! libFuzzer. Payload inputs mix noise with mutations of valid payloads, messages and snapshots; node
//! inputs are noise (the target interprets them as a script of operations).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use status_sansio::fuzzing::mvds as targets;
use status_sansio::mvds::{Config, GroupId, Message, MessageId, Node, Payload, PeerId};
use status_sansio::{Seed, Timestamp};

fn noise(rng: &mut ChaCha20Rng, max: usize) -> Vec<u8> {
    let n = rng.next_u32() as usize % max;
    let mut v = vec![0u8; n];
    rng.fill_bytes(&mut v);
    v
}

fn mutate(rng: &mut ChaCha20Rng, mut v: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.next_u32() % 3 {
        match rng.next_u32() % 4 {
            0 if !v.is_empty() => {
                let i = rng.next_u32() as usize % v.len();
                v[i] ^= 1 << (rng.next_u32() % 8);
            }
            1 => v.truncate(rng.next_u32() as usize % (v.len() + 1)),
            2 => v.extend(noise(rng, 64)),
            _ => {}
        }
    }
    v
}

fn valid_seeds() -> Vec<Vec<u8>> {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut out = vec![];
    for i in 0..8u8 {
        let m = Message::new(GroupId([i; 32]), i64::from(i) - 1, noise(&mut rng, 40));
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
    node.add_peer(GroupId([1; 32]), PeerId::new(vec![2u8])).unwrap();
    node.send(now, GroupId([1; 32]), b"persisted".to_vec()).unwrap();
    out.push(node.snapshot(now).encode_to_vec());
    out
}

#[test]
fn mvds_payload_corpus() {
    let seeds = valid_seeds();
    let mut rng = ChaCha20Rng::seed_from_u64(0x6d76_6473);
    for s in &seeds {
        targets::mvds_payload(s);
    }
    for i in 0..4000 {
        let input = if i % 3 == 0 {
            noise(&mut rng, 400)
        } else {
            mutate(&mut rng, seeds[i % seeds.len()].clone())
        };
        targets::mvds_payload(&input);
    }
}

#[test]
fn mvds_node_corpus() {
    let mut rng = ChaCha20Rng::seed_from_u64(0x6e6f_6465);
    for _ in 0..2000 {
        let input = noise(&mut rng, 2000);
        targets::mvds_node(&input);
    }
}
