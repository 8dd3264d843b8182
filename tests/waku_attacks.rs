//! Attacks on a relay, as deterministic scenarios on the in-memory Waku network (real RLPx with Snappy
//! between nodes; the attackers write raw packets onto their connections, ignoring every limit):
//! an eight-connection single-source valid-PoW flood (honest chat still delivered, the relay never
//! dropped by its honest peers), Snappy-inflated unknown packets and Status Update floods (cut within a
//! second of exceeding the budget, no pool replay), and a pool full of long-TTL flood (honest short-TTL
//! envelopes still admitted and relayed). Sizes and rates are scaled down so each runs in seconds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::waku_net::{Caps, Net};
use status_sansio::crypto::SecretKey;
use status_sansio::waku::envelope::Envelope;
use status_sansio::waku::message::{NewMessage, PostKey};
use status_sansio::waku::options::StatusOptions;
use status_sansio::waku::packet::{self, encode_envelopes};
use status_sansio::waku::pool::PoolConfig;
use status_sansio::waku::{status, Bloom, ConnId, Filter, Topic, WakuError};
use status_sansio::waku::{Event, Input, WakuConfig};
use status_sansio::{Seed, Timestamp};

fn chat(text: &str, signer: &SecretKey, ttl: u32) -> Box<NewMessage> {
    Box::new(NewMessage {
        topic: status::public_chat_topic("status"),
        payload: text.as_bytes().to_vec(),
        key: PostKey::Symmetric(status::public_chat_key("status")),
        signer: Some(signer.clone()),
        ttl,
        pow_target: 0.002,
        padding: None,
    })
}

fn sub_chat(net: &mut Net, host: usize) {
    let f = Filter::symmetric(
        vec![status::public_chat_topic("status")],
        *status::public_chat_key("status"),
    );
    net.subscribe(host, f);
    net.settle();
}

/// Write a raw packet from `from` to `to` (if their connection still stands). Returns false once it is
/// gone.
fn raw(net: &mut Net, from: usize, to: usize, code: u64, payload: &[u8]) -> bool {
    let now = net.now;
    let Some(c) = net.hosts[from]
        .conns
        .get_mut(&ConnId(to as u64))
        .filter(|c| c.is_active())
    else {
        return false;
    };
    c.handle_input(
        now,
        status_sansio::rlpx::Input::Send {
            capability: "waku",
            code,
            payload,
        },
    )
    .unwrap();
    true
}

/// `n` junk envelopes with valid PoW (the default minimum is tiny), random-looking topics.
fn junk(now: Timestamp, n: usize, ttl: u32, tag: u64) -> Vec<Envelope> {
    let sent = now.as_secs() as u32;
    (0..n as u64)
        .map(|i| {
            let x = tag
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .wrapping_add(i * 0x1234_5679);
            Envelope {
                expiry: sent + ttl,
                ttl,
                topic: Topic((x as u32).to_be_bytes()),
                data: x.to_be_bytes().repeat(8).into(),
                nonce: i,
            }
        })
        .collect()
}

fn disconnected_by(net: &Net, host: usize, peer: usize) -> bool {
    net.hosts[host].events.iter().any(
        |e| matches!(e, Event::PeerFault { peer: p, disconnected: true, .. } if *p == ConnId(peer as u64)),
    )
}

#[test]
fn an_eight_connection_single_source_flood_does_not_cut_honest_chat() {
    // Limits scaled down 20x (50 envelopes/s per peer and per source) so 60 virtual seconds stay cheap.
    let limits = WakuConfig {
        max_envelopes_per_sec: 50,
        max_envelopes_per_sec_per_source: 50,
        ..WakuConfig::default()
    };
    // 0..8: the attacker's connections; 8: relay; 9: honest sender; 10: honest receiver.
    let mut configs: Vec<(WakuConfig, Caps)> = (0..8).map(|_| (WakuConfig::default(), Caps::Waku)).collect();
    configs.extend((0..3).map(|_| (limits.clone(), Caps::Waku)));
    let mut net = Net::new(configs);
    for a in 0..8 {
        net.connect(a, 8);
    }
    net.connect(9, 8);
    net.connect(10, 8);
    net.run(Duration::from_millis(200));
    // The relay counts the eight connections as one source (one IP address).
    let now = net.now;
    for a in 0..8u64 {
        let set = Input::SetPeerSource {
            peer: ConnId(a),
            source: 77,
        };
        net.hosts[8].waku.handle_input(now, set).unwrap();
    }
    net.run(Duration::from_millis(200));
    sub_chat(&mut net, 10);
    let honest = SecretKey::random(&mut Seed::from_u64(5).rng());
    let mut sent = 0;
    // 60 virtual seconds in 250 ms steps: each attacker connection sends 11 envelopes per step (44/s,
    // under the per-peer limit; 352/s together); the honest sender posts every second.
    for step in 0..240u64 {
        for a in 0..8usize {
            let envs = junk(net.now, 11, 3000, step * 8 + a as u64);
            raw(&mut net, a, 8, packet::MESSAGES, &encode_envelopes(envs.iter()));
        }
        if step % 4 == 0 {
            net.input(9, Input::Post(chat(&format!("honest {sent}"), &honest, 15)));
            sent += 1;
        }
        net.run(Duration::from_millis(250));
    }
    net.run(Duration::from_secs(3));
    let got = net.received(10);
    assert_eq!(sent, 60);
    assert!(
        got.len() * 100 >= sent * 99,
        "{} of {sent} honest messages",
        got.len()
    );
    // The relay took no more than the source's budget from the attacker and forwarded it paced.
    let stats = net.hosts[8].waku.stats();
    assert!(
        stats.rate_limited > 1000,
        "most attacker packets were dropped: {stats:?}"
    );
    for honest_peer in [9, 10] {
        assert!(
            !disconnected_by(&net, honest_peer, 8),
            "honest node {honest_peer} never drops the relay"
        );
        assert!(
            !net.hosts[honest_peer]
                .events
                .iter()
                .any(|e| matches!(e, Event::RateLimited { .. })),
            "the relay kept to node {honest_peer}'s advertised limits"
        );
        assert!(net.hosts[honest_peer].conns.contains_key(&ConnId(8)));
    }
    // The attacker's connections stay within their own limits: dropped packets, not faults.
    assert!((0..8).all(|a| !disconnected_by(&net, 8, a)));
    let pool_from_attacker = net.hosts[8].waku.pool().source_usage(77).0;
    assert!(
        pool_from_attacker <= 50 * 63,
        "at most the source budget reached the pool: {pool_from_attacker}"
    );
}

/// Time from the first budget excess to the disconnect, driven in 10 ms steps by `attack`.
fn time_to_cut(net: &mut Net, mut attack: impl FnMut(&mut Net) -> bool) -> (Duration, usize) {
    let start = net.now;
    let mut first_excess = None;
    let mut sent = 0;
    for _ in 0..1000 {
        if !attack(net) {
            break;
        }
        sent += 1;
        net.run(Duration::from_millis(10));
        let excess = net.hosts[1]
            .events
            .iter()
            .any(|e| matches!(e, Event::RateLimited { .. } | Event::PeerFault { .. }));
        if excess && first_excess.is_none() {
            first_excess = Some(net.now);
        }
        if net.hosts[1].waku.peer(ConnId(0)).is_none() {
            let excess = first_excess.expect("the budget was exceeded first");
            return (net.now.saturating_duration_since(excess), sent);
        }
    }
    panic!(
        "not cut after {:?} ({sent} packets)",
        net.now.saturating_duration_since(start)
    );
}

#[test]
fn snappy_inflated_unknown_packets_are_cut_within_a_second() {
    let mut net = Net::new(vec![
        (WakuConfig::default(), Caps::Waku),
        (WakuConfig::default(), Caps::Waku),
    ]);
    net.connect(0, 1);
    net.run(Duration::from_millis(100));
    // 1 MiB of zeros compresses to a few KiB with Snappy and inflates at the relay.
    let bomb = vec![0u8; 1 << 20];
    let (cut, sent) = time_to_cut(&mut net, |net| raw(net, 0, 1, 55, &bomb));
    assert!(
        cut <= Duration::from_secs(1),
        "cut {cut:?} after the first excess"
    );
    assert!(sent <= 40, "{sent} packets");
    assert!(net.hosts[1].events.iter().any(|e| matches!(
        e,
        Event::PeerFault {
            fault: WakuError::UnknownPacket(55) | WakuError::RateLimited,
            disconnected: true,
            ..
        }
    )));
}

#[test]
fn a_status_update_flood_is_cut_within_a_second_and_replays_nothing() {
    let mut net = Net::new(vec![
        (WakuConfig::default(), Caps::Waku),
        (WakuConfig::default(), Caps::Waku),
        (WakuConfig::default(), Caps::Waku),
    ]);
    // Host 2 fills the relay's pool first.
    net.connect(2, 1);
    net.run(Duration::from_millis(200));
    for k in 0..5 {
        let envs = junk(net.now, 100, 300, 1000 + k);
        raw(&mut net, 2, 1, packet::MESSAGES, &encode_envelopes(envs.iter()));
        net.run(Duration::from_millis(200));
    }
    assert_eq!(net.hosts[1].waku.pool().len(), 500);
    net.connect(0, 1);
    // The attacker's initial sync (the pool, paced to its advertised limits) completes.
    net.run(Duration::from_secs(2));
    let relayed_before = net.hosts[1].waku.stats().relayed;
    let mut flip = false;
    let (cut, sent) = time_to_cut(&mut net, |net| {
        flip = !flip;
        let u = StatusOptions {
            bloom: Some(if flip { Bloom::FULL } else { Bloom([0; 64]) }),
            ..Default::default()
        };
        raw(net, 0, 1, packet::STATUS_UPDATE, &u.encode())
    });
    assert!(
        cut <= Duration::from_secs(1),
        "cut {cut:?} after the first excess"
    );
    assert!(sent <= 60, "{sent} updates");
    assert!(net.hosts[1].events.iter().any(|e| matches!(
        e,
        Event::PeerFault {
            fault: WakuError::TooManyStatusUpdates,
            ..
        }
    )));
    // No update rewound the relay: the pool was never replayed to the attacker.
    let relayed = net.hosts[1].waku.stats().relayed - relayed_before;
    assert_eq!(relayed, 0, "nothing new arrived, so nothing was sent");
}

#[test]
fn a_pool_full_of_long_ttl_flood_still_admits_and_relays_short_ttl_envelopes() {
    let relay = WakuConfig {
        pool: PoolConfig {
            max_bytes: 256 << 20,
            max_envelopes: 400,
        },
        ..WakuConfig::default()
    };
    // 0..4: attackers (four sources); 4: relay; 5: honest sender; 6: honest receiver.
    let mut configs: Vec<(WakuConfig, Caps)> = (0..4).map(|_| (WakuConfig::default(), Caps::Waku)).collect();
    configs.push((relay, Caps::Waku));
    configs.push((WakuConfig::default(), Caps::Waku));
    configs.push((WakuConfig::default(), Caps::Waku));
    let mut net = Net::new(configs);
    for a in [0, 1, 2, 3, 5, 6] {
        net.connect(a, 4);
    }
    net.run(Duration::from_millis(100));
    sub_chat(&mut net, 6);
    // Fill the pool with long-lived flood.
    for step in 0..4u64 {
        for a in 0..4usize {
            let envs = junk(net.now, 60, 3000, step * 4 + a as u64);
            raw(&mut net, a, 4, packet::MESSAGES, &encode_envelopes(envs.iter()));
        }
        net.run(Duration::from_millis(300));
    }
    assert_eq!(net.hosts[4].waku.pool().len(), 400, "the pool is full");
    let honest = SecretKey::random(&mut Seed::from_u64(6).rng());
    // 100 honest short-TTL envelopes while the flood goes on.
    for step in 0..100u64 {
        for a in 0..4usize {
            let envs = junk(net.now, 10, 3000, 10_000 + step * 4 + a as u64);
            raw(&mut net, a, 4, packet::MESSAGES, &encode_envelopes(envs.iter()));
        }
        net.input(5, Input::Post(chat(&format!("short {step}"), &honest, 10)));
        net.run(Duration::from_millis(200));
    }
    net.run(Duration::from_secs(2));
    let got = net.received(6);
    assert!(
        got.len() >= 99,
        "{} of 100 short-TTL envelopes relayed",
        got.len()
    );
    assert!(net.hosts[4].waku.pool().len() <= 400);
}
