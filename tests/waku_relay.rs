//! Multi-node Waku over in-memory RLPx connections: relay of symmetric and asymmetric messages, light
//! nodes, bloom and topic interest, expiry, rate limiting of a flooding peer, de-duplication, the shh/6
//! dialect, confirmations, PoW in both directions, and handshake faults.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::waku_net::{Caps, Net};
use status_sansio::crypto::SecretKey;
use status_sansio::waku::envelope::Envelope;
use status_sansio::waku::message::{NewMessage, PostKey};
use status_sansio::waku::packet::{self, encode_envelopes};
use status_sansio::waku::{status, ConnId, Dialect, Filter, SubscriptionId, Topic, WakuError};
use status_sansio::waku::{Event, Input, Interest, Output, WakuConfig, WakuNode};
use status_sansio::{Seed, Timestamp};
use zeroize::Zeroizing;

fn chat_message(name: &str, text: &str, signer: &SecretKey) -> Box<NewMessage> {
    Box::new(NewMessage {
        topic: status::public_chat_topic(name),
        payload: text.as_bytes().to_vec(),
        key: PostKey::Symmetric(status::public_chat_key(name)),
        signer: Some(signer.clone()),
        ttl: 15,
        pow_target: 0.002,
        padding: None,
    })
}

fn key(n: u64) -> SecretKey {
    SecretKey::random(&mut Seed::from_u64(n).rng())
}

fn full() -> (WakuConfig, Caps) {
    (WakuConfig::default(), Caps::Waku)
}

fn subscriber(interest: Interest) -> (WakuConfig, Caps) {
    (
        WakuConfig {
            interest,
            ..WakuConfig::default()
        },
        Caps::Waku,
    )
}

fn sub_chat(net: &mut Net, host: usize, name: &str) {
    let f = Filter::symmetric(
        vec![status::public_chat_topic(name)],
        *status::public_chat_key(name),
    );
    net.subscribe(host, f);
    net.settle();
}

#[test]
fn symmetric_and_asymmetric_relay_a_to_b_to_c() {
    let mut net = Net::new(vec![full(), full(), full()]);
    net.connect(0, 1);
    net.connect(1, 2);
    net.run(Duration::from_millis(100));
    assert_eq!(net.ready_peers(1), 2);
    sub_chat(&mut net, 2, "status");
    let c_identity = key(77);
    let c_topic = status::partitioned_topic(&c_identity.public_key());
    net.subscribe(2, Filter::asymmetric(vec![c_topic], c_identity.clone()));

    let alice = key(1);
    net.input(0, Input::Post(chat_message("status", "hello public", &alice)));
    net.input(
        0,
        Input::Post(Box::new(NewMessage {
            topic: c_topic,
            payload: b"hello private".to_vec(),
            key: PostKey::Asymmetric(c_identity.public_key()),
            signer: Some(alice.clone()),
            ttl: 15,
            pow_target: 0.002,
            padding: None,
        })),
    );
    net.run(Duration::from_secs(2));
    let mut got = net.received(2);
    got.sort();
    assert_eq!(got, vec![b"hello private".to_vec(), b"hello public".to_vec()]);
    for e in &net.hosts[2].events {
        if let Event::Message(m) = e {
            assert_eq!(
                m.sender,
                Some(alice.public_key()),
                "sender recovered from the signature"
            );
            assert!(!m.p2p);
            assert!(m.pow >= 0.002 * 0.5, "sealed towards the target");
        }
    }
    // B relayed both, and nothing was echoed back to A.
    assert_eq!(net.hosts[1].waku.stats().accepted, 2);
    assert!(net.hosts[1]
        .sent
        .iter()
        .all(|(p, code, _)| !(*p == ConnId(0) && *code == packet::MESSAGES)));
}

#[test]
fn a_light_node_does_not_relay() {
    let light = (
        WakuConfig {
            light_node: true,
            ..WakuConfig::default()
        },
        Caps::Waku,
    );
    let mut net = Net::new(vec![full(), light, full()]);
    net.connect(0, 1);
    net.connect(1, 2);
    net.run(Duration::from_millis(100));
    sub_chat(&mut net, 2, "status");
    sub_chat(&mut net, 0, "status");
    net.input(0, Input::Post(chat_message("status", "from A", &key(1))));
    net.run(Duration::from_secs(2));
    assert_eq!(
        net.hosts[1].waku.stats().accepted,
        1,
        "the light node received it"
    );
    assert!(net.received(2).is_empty(), "but did not relay it");
    // The light node's own messages do go out.
    net.input(1, Input::Post(chat_message("status", "from L", &key(2))));
    net.run(Duration::from_secs(2));
    assert_eq!(net.received(2), vec![b"from L".to_vec()]);
    assert_eq!(net.received(0), vec![b"from A".to_vec(), b"from L".to_vec()]);
}

#[test]
fn two_light_nodes_are_refused() {
    let light = || {
        (
            WakuConfig {
                light_node: true,
                ..WakuConfig::default()
            },
            Caps::Waku,
        )
    };
    let mut net = Net::new(vec![light(), light()]);
    net.connect(0, 1);
    net.run(Duration::from_millis(200));
    assert!(net.hosts[0].events.iter().any(|e| matches!(
        e,
        Event::PeerFault {
            fault: WakuError::LightToLight,
            ..
        }
    )));
    assert!(net.hosts[0].conns.is_empty() && net.hosts[1].conns.is_empty());
}

#[test]
fn topic_interest_and_bloom_are_honoured() {
    for interest in [Interest::Topics, Interest::Bloom] {
        let mut net = Net::new(vec![full(), full(), subscriber(interest)]);
        sub_chat(&mut net, 2, "wanted");
        net.connect(0, 1);
        net.connect(1, 2);
        net.run(Duration::from_millis(100));
        let alice = key(1);
        net.input(0, Input::Post(chat_message("wanted", "yes", &alice)));
        net.input(0, Input::Post(chat_message("unwanted", "no", &alice)));
        net.run(Duration::from_secs(2));
        assert_eq!(net.received(2), vec![b"yes".to_vec()], "{interest:?}");
        // The unwanted envelope never crossed the B→C link.
        let unwanted = status::public_chat_topic("unwanted");
        assert!(
            net.hosts[2]
                .waku
                .pool()
                .iter_from(0)
                .all(|(_, _, e)| e.topic != unwanted),
            "{interest:?}"
        );
        assert_eq!(net.hosts[2].waku.pool().len(), 1, "{interest:?}");
        // Interest changes are announced: subscribing later brings later messages.
        sub_chat(&mut net, 2, "unwanted");
        net.input(0, Input::Post(chat_message("unwanted", "now yes", &alice)));
        net.run(Duration::from_secs(2));
        assert!(net.received(2).contains(&b"now yes".to_vec()), "{interest:?}");
    }
}

#[test]
fn expired_envelopes_are_dropped_and_never_forwarded() {
    let mut net = Net::new(vec![full(), full(), full()]);
    net.connect(0, 1);
    net.run(Duration::from_millis(100));
    let mut m = chat_message("status", "short-lived", &key(1));
    m.ttl = 2;
    net.input(0, Input::Post(m));
    net.run(Duration::from_secs(1));
    assert_eq!(net.hosts[1].waku.pool().len(), 1);
    net.run(Duration::from_secs(3));
    assert_eq!(net.hosts[0].waku.pool().len(), 0, "dropped at expiry");
    assert_eq!(net.hosts[1].waku.pool().len(), 0, "dropped at expiry");
    assert!(net.hosts[1].waku.stats().expired >= 1);
    // A node that connects now gets nothing.
    net.connect(1, 2);
    net.run(Duration::from_secs(2));
    assert_eq!(net.hosts[2].waku.pool().len(), 0);

    // An already expired envelope handed in is refused, and not relayed.
    let now = net.now.as_secs() as u32;
    let stale = Envelope {
        expiry: now - 5,
        ttl: 10,
        topic: Topic([1, 2, 3, 4]),
        data: vec![1; 32].into(),
        nonce: 0,
    };
    net.input(0, Input::Broadcast(stale));
    net.run(Duration::from_secs(2));
    assert!(net.hosts[0].events.iter().any(|e| matches!(
        e,
        Event::PostFailed {
            error: WakuError::Expired
        }
    )));
    assert_eq!(net.hosts[1].waku.pool().len(), 0);
}

#[test]
fn a_flooding_peer_is_rate_limited_while_others_are_served() {
    let relay = (
        WakuConfig {
            max_envelopes_per_sec: 20,
            rate_limit_tolerance: 3,
            ..WakuConfig::default()
        },
        Caps::Waku,
    );
    // 0 = flooder, 1 = relay, 2 = honest sender, 3 = receiver.
    let mut net = Net::new(vec![full(), relay, full(), full()]);
    for (a, b) in [(0, 1), (2, 1), (1, 3)] {
        net.connect(a, b);
    }
    net.run(Duration::from_millis(100));
    sub_chat(&mut net, 3, "status");
    let honest = key(5);
    for round in 0..8u32 {
        let now = net.now.as_secs() as u32;
        // The flooder ignores the relay's advertised limits (our own node paces itself to them, so it
        // writes its Messages packets straight onto the RLPx connection).
        let junk: Vec<Envelope> = (0..60u32)
            .map(|i| Envelope {
                expiry: now + 30,
                ttl: 30,
                topic: Topic([9, 9, 9, 9]),
                data: vec![(round * 60 + i) as u8; 64].into(),
                nonce: u64::from(round * 1000 + i),
            })
            .collect();
        for chunk in junk.chunks(20) {
            let payload = encode_envelopes(chunk.iter());
            // Until the relay drops it.
            if let Some(c) = net.hosts[0].conns.get_mut(&ConnId(1)).filter(|c| c.is_active()) {
                c.handle_input(
                    net.now,
                    status_sansio::rlpx::Input::Send {
                        capability: "waku",
                        code: packet::MESSAGES,
                        payload: &payload,
                    },
                )
                .unwrap();
            }
        }
        net.input(
            2,
            Input::Post(chat_message("status", &format!("honest {round}"), &honest)),
        );
        net.run(Duration::from_millis(400));
    }
    net.run(Duration::from_secs(2));
    let relay_events = &net.hosts[1].events;
    assert!(relay_events
        .iter()
        .any(|e| matches!(e, Event::RateLimited { peer: ConnId(0) })));
    assert!(relay_events.iter().any(|e| matches!(
        e,
        Event::PeerFault {
            peer: ConnId(0),
            fault: WakuError::RateLimited,
            disconnected: true
        }
    )));
    assert!(
        net.hosts[1].waku.peer(ConnId(0)).is_none(),
        "the flooder was dropped"
    );
    assert!(net.hosts[1].waku.stats().rate_limited >= 3);
    let got = net.received(3);
    assert_eq!(got.len(), 8, "every honest message arrived: {got:?}");
}

#[test]
fn a_duplicate_is_delivered_once() {
    // 0 → {1, 2} → 3: the envelope reaches 3 twice.
    let mut net = Net::new(vec![full(), full(), full(), full()]);
    for (a, b) in [(0, 1), (0, 2), (1, 3), (2, 3)] {
        net.connect(a, b);
    }
    net.run(Duration::from_millis(100));
    sub_chat(&mut net, 3, "status");
    net.input(0, Input::Post(chat_message("status", "once", &key(1))));
    net.run(Duration::from_secs(3));
    assert_eq!(net.received(3), vec![b"once".to_vec()]);
    assert!(net.hosts[3].waku.stats().duplicates >= 1, "it did arrive twice");
}

#[test]
fn whisper_v6_peers_interoperate_through_a_bilingual_relay() {
    let mut net = Net::new(vec![
        (WakuConfig::default(), Caps::Whisper),
        (WakuConfig::default(), Caps::Both),
        full(),
    ]);
    net.connect(0, 1);
    net.connect(1, 2);
    net.run(Duration::from_millis(100));
    assert_eq!(net.hosts[1].dialects.get(&ConnId(0)), Some(&Dialect::Whisper6));
    assert_eq!(net.hosts[1].dialects.get(&ConnId(2)), Some(&Dialect::Waku1));
    sub_chat(&mut net, 2, "status");
    sub_chat(&mut net, 0, "status");
    net.input(0, Input::Post(chat_message("status", "from shh", &key(1))));
    net.input(2, Input::Post(chat_message("status", "from waku", &key(2))));
    net.run(Duration::from_secs(2));
    assert_eq!(net.received(2), vec![b"from waku".to_vec(), b"from shh".to_vec()]);
    assert_eq!(net.received(0), vec![b"from shh".to_vec(), b"from waku".to_vec()]);
}

#[test]
fn confirmations_name_the_envelopes_of_a_batch() {
    let confirming = (
        WakuConfig {
            confirmations: true,
            ..WakuConfig::default()
        },
        Caps::Waku,
    );
    let mut net = Net::new(vec![full(), confirming]);
    net.connect(0, 1);
    net.run(Duration::from_millis(100));
    net.input(0, Input::Post(chat_message("status", "confirm me", &key(1))));
    let hash = net.hosts[0]
        .events
        .iter()
        .find_map(|e| match e {
            Event::Posted { hash } => Some(*hash),
            _ => None,
        })
        .unwrap();
    net.run(Duration::from_secs(1));
    let confirmed = net.hosts[0].events.iter().find_map(|e| match e {
        Event::Confirmed {
            peer,
            envelopes,
            errors,
            ..
        } => Some((*peer, envelopes.clone(), errors.clone())),
        _ => None,
    });
    assert_eq!(confirmed, Some((ConnId(1), vec![hash], vec![])));
}

/// A node with one active peer 7 (Status received), for packet-level tests.
fn node_with_peer(cfg: WakuConfig) -> (WakuNode, Timestamp) {
    let now = Timestamp::from_secs(1_700_000_000);
    let mut n = WakuNode::new(cfg, &Seed::from_u64(1)).unwrap();
    n.handle_input(
        now,
        Input::PeerConnected {
            peer: ConnId(7),
            dialect: Dialect::Waku1,
        },
    )
    .unwrap();
    let status = WakuNode::new(WakuConfig::default(), &Seed::from_u64(2))
        .unwrap()
        .local_options()
        .encode();
    n.handle_input(
        now,
        Input::Packet {
            peer: ConnId(7),
            code: packet::STATUS,
            data: bytes::Bytes::copy_from_slice(&status),
        },
    )
    .unwrap();
    while n.poll_output().is_some() {}
    (n, now)
}

fn events(n: &mut WakuNode) -> Vec<Event> {
    let mut v = vec![];
    while let Some(o) = n.poll_output() {
        if let Output::Event(e) = o {
            v.push(e);
        }
    }
    v
}

#[test]
fn pow_is_enforced_in_both_directions() {
    // Inbound: an envelope below our requirement is a fault, reported in the Message Response.
    let (mut n, now) = node_with_peer(WakuConfig {
        min_pow: 0.5,
        confirmations: true,
        ..WakuConfig::default()
    });
    let env = Envelope {
        expiry: now.as_secs() as u32 + 10,
        ttl: 10,
        topic: Topic([1; 4]),
        data: vec![5; 100].into(),
        nonce: 0,
    };
    assert!(env.pow() < 0.5);
    let data = encode_envelopes([&env].into_iter());
    n.handle_input(
        now,
        Input::Packet {
            peer: ConnId(7),
            code: packet::MESSAGES,
            data: bytes::Bytes::copy_from_slice(&data),
        },
    )
    .unwrap();
    let mut responses = vec![];
    let mut evs = vec![];
    while let Some(o) = n.poll_output() {
        match o {
            Output::Transmit { code, data, .. } => responses.push((code, data)),
            Output::Event(e) => evs.push(e),
            _ => {}
        }
    }
    assert!(evs.iter().any(|e| matches!(
        e,
        Event::PeerFault {
            fault: WakuError::InsufficientPow,
            disconnected: false,
            ..
        }
    )));
    assert_eq!(n.pool().len(), 0);
    let (code, resp) = &responses[0];
    assert_eq!(*code, packet::MESSAGE_RESPONSE);
    match packet::Packet::decode(Dialect::Waku1, packet::MESSAGE_RESPONSE, resp, 10).unwrap() {
        packet::Packet::MessageResponse { errors, .. } => {
            assert_eq!(errors.len(), 1);
            assert_eq!(errors[0].hash, env.hash());
            assert_eq!(errors[0].code, packet::ERROR_OTHER);
        }
        p => panic!("{p:?}"),
    }

    // Outbound: a peer that requires PoW 1.0 is not sent our zero-PoW envelope.
    let mut net = Net::new(vec![
        full(),
        (
            WakuConfig {
                min_pow: 1.0,
                ..WakuConfig::default()
            },
            Caps::Waku,
        ),
    ]);
    net.connect(0, 1);
    net.run(Duration::from_millis(100));
    let mut m = chat_message("status", "cheap", &key(1));
    m.pow_target = 0.0;
    net.input(0, Input::Post(m));
    net.run(Duration::from_secs(1));
    assert!(net.hosts[0]
        .sent
        .iter()
        .all(|(_, code, _)| *code != packet::MESSAGES));
    assert_eq!(net.hosts[1].waku.pool().len(), 0);
}

#[test]
fn handshake_rules() {
    let now = Timestamp::from_secs(1_700_000_000);
    // The first packet must be Status.
    let mut n = WakuNode::new(WakuConfig::default(), &Seed::from_u64(1)).unwrap();
    n.handle_input(
        now,
        Input::PeerConnected {
            peer: ConnId(1),
            dialect: Dialect::Waku1,
        },
    )
    .unwrap();
    n.handle_input(
        now,
        Input::Packet {
            peer: ConnId(1),
            code: packet::MESSAGES,
            data: bytes::Bytes::copy_from_slice(&[0xc0]),
        },
    )
    .unwrap();
    let outs: Vec<Output> = std::iter::from_fn(|| n.poll_output()).collect();
    assert!(
        matches!(
            outs[0],
            Output::Transmit {
                code: packet::STATUS,
                ..
            }
        ),
        "our Status goes first"
    );
    assert!(outs
        .iter()
        .any(|o| matches!(o, Output::Disconnect { peer: ConnId(1), .. })));
    // A Status that never comes times out.
    n.handle_input(
        now,
        Input::PeerConnected {
            peer: ConnId(2),
            dialect: Dialect::Waku1,
        },
    )
    .unwrap();
    n.handle_timeout(now + Duration::from_secs(9));
    assert!(events(&mut n).is_empty());
    n.handle_timeout(now + Duration::from_secs(10));
    assert!(events(&mut n).iter().any(|e| matches!(
        e,
        Event::PeerFault {
            fault: WakuError::StatusTimeout,
            ..
        }
    )));
    // A malformed Status is a fault that ends the peer.
    n.handle_input(
        now,
        Input::PeerConnected {
            peer: ConnId(3),
            dialect: Dialect::Waku1,
        },
    )
    .unwrap();
    n.handle_input(
        now,
        Input::Packet {
            peer: ConnId(3),
            code: packet::STATUS,
            data: bytes::Bytes::copy_from_slice(&[0x05]),
        },
    )
    .unwrap();
    assert!(events(&mut n).iter().any(|e| matches!(
        e,
        Event::PeerFault {
            disconnected: true,
            ..
        }
    )));
    assert!(n.peer(ConnId(3)).is_none());
    // A packet from a peer that is gone (a race with the transport) is ignored, not an error.
    let data = bytes::Bytes::copy_from_slice(&[0xc0]);
    assert_eq!(
        n.handle_input(
            now,
            Input::Packet {
                peer: ConnId(3),
                code: 1,
                data
            }
        ),
        Ok(())
    );
    assert!(events(&mut n).is_empty());
    // Misuse is Err.
    n.handle_input(
        now,
        Input::PeerConnected {
            peer: ConnId(4),
            dialect: Dialect::Waku1,
        },
    )
    .unwrap();
    assert_eq!(
        n.handle_input(
            now,
            Input::PeerConnected {
                peer: ConnId(4),
                dialect: Dialect::Waku1
            }
        ),
        Err(WakuError::UnknownPeer)
    );
    assert_eq!(
        n.handle_input(
            now,
            Input::SendP2PRequest {
                peer: ConnId(4),
                data: vec![]
            }
        ),
        Err(WakuError::NotReady)
    );
    assert_eq!(
        n.handle_input(
            now,
            Input::SendP2PRequest {
                peer: ConnId(99),
                data: vec![]
            }
        ),
        Err(WakuError::UnknownPeer)
    );
}

#[test]
fn repeated_malformed_packets_end_the_peer() {
    let (mut n, now) = node_with_peer(WakuConfig {
        max_faults_per_minute: 3,
        ..WakuConfig::default()
    });
    for i in 0..4 {
        n.handle_input(
            now,
            Input::Packet {
                peer: ConnId(7),
                code: packet::MESSAGES,
                data: bytes::Bytes::copy_from_slice(&[0x81, 0x01]),
            },
        )
        .unwrap();
        let evs = events(&mut n);
        let last = i == 3;
        assert!(
            evs.iter()
                .any(|e| matches!(e, Event::PeerFault { disconnected, .. } if *disconnected == last)),
            "{i}"
        );
    }
    assert!(n.peer(ConnId(7)).is_none());
}

#[test]
fn trusted_p2p_messages_reach_filters_only_from_trusted_peers() {
    let (mut n, now) = node_with_peer(WakuConfig::default());
    let sym = [7u8; 32];
    let topic = Topic([4, 4, 4, 4]);
    let filter = Filter::symmetric(vec![topic], sym);
    n.handle_input(
        now,
        Input::Subscribe {
            id: SubscriptionId(1),
            filter,
        },
    )
    .unwrap();
    let mut rng = Seed::from_u64(9).rng();
    let msg = NewMessage {
        topic,
        payload: b"history".to_vec(),
        key: PostKey::Symmetric(Zeroizing::new(sym)),
        signer: None,
        ttl: 10,
        pow_target: 0.0,
        padding: None,
    };
    // An old envelope: expired long ago, PoW 0; fine for history.
    let env = status_sansio::waku::message::wrap(&mut rng, now.as_secs() - 3600, &msg).unwrap();
    let data = encode_envelopes([&env].into_iter());
    n.handle_input(
        now,
        Input::Packet {
            peer: ConnId(7),
            code: packet::P2P_MESSAGE,
            data: bytes::Bytes::copy_from_slice(&data),
        },
    )
    .unwrap();
    assert!(events(&mut n).is_empty(), "untrusted: silently dropped");
    n.handle_input(
        now,
        Input::SetTrusted {
            peer: ConnId(7),
            trusted: true,
        },
    )
    .unwrap();
    n.handle_input(
        now,
        Input::Packet {
            peer: ConnId(7),
            code: packet::P2P_MESSAGE,
            data: bytes::Bytes::copy_from_slice(&data),
        },
    )
    .unwrap();
    n.handle_input(
        now,
        Input::Packet {
            peer: ConnId(7),
            code: packet::P2P_MESSAGE,
            data: bytes::Bytes::copy_from_slice(&data),
        },
    )
    .unwrap();
    let evs = events(&mut n);
    let msgs: Vec<_> = evs
        .iter()
        .filter_map(|e| if let Event::Message(m) = e { Some(m) } else { None })
        .collect();
    assert_eq!(msgs.len(), 1, "delivered once");
    assert!(msgs[0].p2p);
    assert_eq!(n.pool().len(), 0, "history is never relayed");
    n.handle_input(
        now,
        Input::Packet {
            peer: ConnId(7),
            code: packet::P2P_REQUEST_COMPLETE,
            data: bytes::Bytes::copy_from_slice(&packet::encode_request_complete(&[1; 64])),
        },
    )
    .unwrap();
    assert!(events(&mut n)
        .iter()
        .any(|e| matches!(e, Event::RequestComplete { .. })));
}
