//! Connection admission under attack, on the in-memory engine network: a thousand idle inbound sockets
//! (from fifty addresses, arriving before and during the test) neither keep an honest node out nor stop
//! the relay dialling its static peer; a peer dropped for a protocol fault is refused, with its address,
//! for the back-off period, while other addresses still connect.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::engine_net::{rlpx_config, Net};
use status_sansio::node::{ConnId, EngineConfig, Event, Input};
use status_sansio::rlpx::DisconnectReason;
use status_sansio::waku::envelope::Envelope;
use status_sansio::waku::{self, Topic};

fn idle(net: &mut Net, host: usize, first: u64, n: u64) {
    for k in first..first + n {
        let addr: SocketAddr = format!("10.66.{}.{}:40000", k % 50 / 250, k % 50 + 1)
            .parse()
            .unwrap();
        net.input(
            host,
            Input::AcceptedFrom {
                conn: ConnId(1_000_000 + k),
                addr,
            },
        );
    }
}

fn connected_at(net: &Net, host: usize, peer: usize) -> bool {
    let id = net.hosts[peer].enode.id;
    net.hosts[host]
        .events
        .iter()
        .any(|e| matches!(e, Event::PeerConnected { id: i, .. } if *i == id))
}

#[test]
fn a_thousand_idle_sockets_lock_nobody_out() {
    // 0: relay with static peer 2; 1: an honest node that dials the relay; 2: the relay's static peer.
    let mut net = Net::new(3, |i, enodes| {
        let mut c = EngineConfig::new(rlpx_config(0));
        match i {
            0 => c.static_peers = vec![enodes[2].clone()],
            1 => c.static_peers = vec![enodes[0].clone()],
            _ => {}
        }
        c
    });
    // 500 idle sockets before anyone dials, 500 more during the first second.
    idle(&mut net, 0, 0, 500);
    let start = net.now;
    for step in 0..10u64 {
        idle(&mut net, 0, 500 + step * 50, 50);
        net.run(Duration::from_millis(100));
    }
    assert!(net.now.saturating_duration_since(start) <= Duration::from_secs(1));
    assert!(connected_at(&net, 0, 1), "the honest node connected within 1 s");
    assert!(connected_at(&net, 1, 0));
    assert!(
        net.hosts[0].dialled.contains(&net.hosts[2].addr),
        "the static peer was dialled"
    );
    assert!(connected_at(&net, 0, 2), "and connected");
    assert_eq!(net.hosts[0].engine.connected_peers(), 2);
}

#[test]
fn a_peer_dropped_for_a_fault_and_its_address_wait_out_the_back_off() {
    // 0: relay (envelopes up to 500 bytes); 1: a node that relays larger ones; 2: an honest node.
    let mut net = Net::new(3, |i, enodes| {
        let mut c = EngineConfig::new(rlpx_config(0));
        if i == 0 {
            c.waku.max_envelope_size = 500;
        } else {
            c.static_peers = vec![enodes[0].clone()];
            c.reconnect_min = Duration::from_millis(500);
            c.reconnect_max = Duration::from_secs(1);
        }
        c
    });
    net.run(Duration::from_secs(1));
    assert!(connected_at(&net, 0, 1));
    let now = net.now.as_secs() as u32;
    for i in 0..60u64 {
        // Over the relay's size limit: each one is a fault there.
        let env = Envelope {
            expiry: now + 10,
            ttl: 10,
            topic: Topic([1, 2, 3, 4]),
            data: vec![i as u8; 1000].into(),
            nonce: i,
        };
        net.input(1, Input::Waku(waku::Input::Broadcast(env)));
    }
    net.run(Duration::from_secs(2));
    let dropped = net.hosts[0].events.iter().any(|e| {
        matches!(
            e,
            Event::PeerDisconnected {
                reason: DisconnectReason::SubprotocolError,
                remote: false,
                ..
            }
        )
    });
    assert!(dropped, "the relay dropped the faulty peer");
    let connects = |net: &Net| {
        let id = net.hosts[1].enode.id;
        net.hosts[0]
            .events
            .iter()
            .filter(|e| matches!(e, Event::PeerConnected { id: i, .. } if *i == id))
            .count()
    };
    let before = connects(&net);
    let dials_before = net.hosts[1].dials.len();
    net.run(Duration::from_secs(20));
    assert!(net.hosts[1].dials.len() > dials_before + 5, "it kept redialling");
    assert_eq!(connects(&net), before, "and was refused every time");
    // Another address connects as usual.
    assert!(connected_at(&net, 0, 2));
    assert!(net.hosts[0].engine.connected_peers() >= 1);
}

#[test]
fn connections_from_one_address_share_one_waku_source() {
    // 0: relay; 1 and 2: two nodes behind one address; 3: a node elsewhere.
    let mut net = Net::new(4, |i, enodes| {
        let mut c = EngineConfig::new(rlpx_config(0));
        if i > 0 {
            c.static_peers = vec![enodes[0].clone()];
        }
        c
    });
    net.hosts[2].addr = net.hosts[1].addr;
    net.run(Duration::from_secs(1));
    assert_eq!(net.hosts[0].engine.connected_peers(), 3);
    let sources: Vec<(u64, u64)> = net.hosts[0]
        .engine
        .waku()
        .peers()
        .map(|(id, p)| (id.0, p.source))
        .collect();
    assert_eq!(sources.len(), 3);
    let mut distinct: Vec<u64> = sources.iter().map(|(_, s)| *s).collect();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 2, "two addresses, two sources: {sources:?}");
    assert!(
        sources.iter().all(|(id, s)| id != s),
        "grouped by address, not by peer"
    );
}
