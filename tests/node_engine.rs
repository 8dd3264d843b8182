//! The node engine over an in-memory network: static peers dialled and kept, a message relayed between
//! two clients through a relay, reconnection with backoff after the relay goes away and comes back,
//! duplicate connections, and the peer cap.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::engine_net::{rlpx_config, Net};
use status_sansio::crypto::SecretKey;
use status_sansio::node::{Engine, EngineConfig, Event, Input};
use status_sansio::rlpx::DisconnectReason;
use status_sansio::waku::message::{NewMessage, PostKey};
use status_sansio::waku::{self, status, Filter};
use status_sansio::Seed;

fn post(text: &str) -> Input<'static> {
    Input::Waku(waku::Input::Post(Box::new(NewMessage {
        topic: status::public_chat_topic("engine"),
        payload: text.as_bytes().to_vec(),
        key: PostKey::Symmetric(status::public_chat_key("engine")),
        signer: Some(SecretKey::random(&mut Seed::from_u64(1).rng())),
        ttl: 20,
        pow_target: 0.002,
        padding: None,
    })))
}

fn subscribe(net: &mut Net, i: usize) {
    let f = Filter::symmetric(
        vec![status::public_chat_topic("engine")],
        *status::public_chat_key("engine"),
    );
    let id = net.hosts[i].engine.unused_subscription_id();
    net.input(i, Input::Waku(waku::Input::Subscribe { id, filter: f }));
}

/// Host 0 is a relay; hosts 1.. are clients with the relay as their static peer.
fn star(n: usize) -> Net {
    Net::new(n, |i, enodes| {
        let mut c = EngineConfig::new(rlpx_config(0));
        if i > 0 {
            c.static_peers = vec![enodes[0].clone()];
        }
        c
    })
}

#[test]
fn clients_reach_each_other_through_a_relay() {
    let mut net = star(3);
    net.run(Duration::from_secs(2));
    assert_eq!(net.hosts[0].engine.connected_peers(), 2);
    for i in 1..3 {
        assert_eq!(net.hosts[i].engine.connected_peers(), 1);
        assert!(net.hosts[i].events.iter().any(|e| matches!(
            e,
            Event::PeerConnected {
                dialect: Some(waku::Dialect::Waku1),
                ..
            }
        )));
    }
    subscribe(&mut net, 2);
    net.input(1, post("hi from 1"));
    net.run(Duration::from_secs(2));
    assert_eq!(net.messages(2), vec![b"hi from 1".to_vec()]);
    assert_eq!(
        net.hosts[0].engine.waku().stats().accepted,
        1,
        "the relay carried it"
    );
}

#[test]
fn static_peers_are_redialled_with_backoff_and_reconnect() {
    let mut net = star(3);
    net.run(Duration::from_secs(2));
    net.kill(0);
    net.run(Duration::from_secs(40));
    for i in 1..3 {
        assert!(net.hosts[i]
            .events
            .iter()
            .any(|e| matches!(e, Event::PeerDisconnected { remote: true, .. })));
        assert_eq!(net.hosts[i].engine.connected_peers(), 0);
        // Redials while the relay is down back off: 1 s, 2 s, 4 s, 8 s, 16 s (+ up to 1 s jitter each).
        let d = &net.hosts[i].dials;
        assert!(d.len() >= 4 && d.len() <= 7, "{} dials", d.len());
        let gaps: Vec<u64> = d.windows(2).map(|w| (w[1] - w[0]).as_millis() as u64).collect();
        for w in gaps.windows(2).skip(1) {
            assert!(w[1] > w[0], "gaps grow: {gaps:?}");
        }
    }
    // The relay comes back (restarted, same identity): clients reconnect and traffic flows again.
    let cfg = EngineConfig::new(rlpx_config(500));
    net.revive(0, Engine::new(cfg, &Seed::from_u64(77), net.now).unwrap());
    net.run(Duration::from_secs(40));
    assert_eq!(net.hosts[0].engine.connected_peers(), 2);
    subscribe(&mut net, 1);
    net.input(2, post("after the restart"));
    net.run(Duration::from_secs(2));
    assert_eq!(net.messages(1), vec![b"after the restart".to_vec()]);
}

#[test]
fn two_nodes_dialling_each_other_end_with_one_connection() {
    let mut net = Net::new(2, |i, enodes| {
        let mut c = EngineConfig::new(rlpx_config(0));
        c.static_peers = vec![enodes[1 - i].clone()];
        c
    });
    net.run(Duration::from_secs(60));
    assert_eq!(net.hosts[0].engine.connected_peers(), 1);
    assert_eq!(net.hosts[1].engine.connected_peers(), 1);
    subscribe(&mut net, 1);
    net.input(0, post("one link"));
    net.run(Duration::from_secs(2));
    assert_eq!(net.messages(1), vec![b"one link".to_vec()]);
}

#[test]
fn the_peer_cap_refuses_with_too_many_peers() {
    let mut net = Net::new(3, |i, enodes| {
        let mut c = EngineConfig::new(rlpx_config(0));
        if i == 0 {
            c.max_peers = 1;
        } else {
            c.static_peers = vec![enodes[0].clone()];
        }
        c
    });
    net.run(Duration::from_secs(3));
    assert_eq!(net.hosts[0].engine.connected_peers(), 1);
    let refused = (1..3)
        .filter(|&i| {
            net.hosts[i].events.iter().any(|e| {
                matches!(
                    e,
                    Event::PeerDisconnected {
                        reason: DisconnectReason::TooManyPeers,
                        remote: true,
                        ..
                    }
                )
            })
        })
        .count();
    assert!(refused >= 1, "one client was told 'too many peers'");
}

#[test]
fn an_offline_client_fetches_what_it_missed_from_a_mailserver() {
    // Host 0: relay and mailserver. Host 1: a client that posts. Host 2: a client that was offline.
    let mut net = Net::new(3, |i, enodes| {
        let mut c = EngineConfig::new(rlpx_config(0));
        if i == 0 {
            c.mailserver = Some(status_sansio::mailserver::server::MailServerConfig::default());
        } else {
            c.static_peers = vec![enodes[0].clone()];
        }
        c
    });
    net.kill(2);
    net.run(Duration::from_secs(2));
    for k in 0..5 {
        net.input(1, post(&format!("missed {k}")));
        net.run(Duration::from_secs(1));
    }
    assert_eq!(
        net.hosts[0].store.len(),
        5,
        "the mailserver archived what it relayed"
    );
    net.run(Duration::from_secs(60));

    // The client comes online after the envelopes expired (TTL 20 s): relay cannot help, history can.
    let mut cfg = EngineConfig::new(rlpx_config(502));
    cfg.static_peers = vec![net.hosts[0].enode.clone()];
    net.revive(2, Engine::new(cfg, &Seed::from_u64(55), net.now).unwrap());
    net.run(Duration::from_secs(3));
    subscribe(&mut net, 2);
    let conn = net.hosts[2]
        .events
        .iter()
        .find_map(|e| {
            if let Event::PeerConnected { conn, .. } = e {
                Some(*conn)
            } else {
                None
            }
        })
        .unwrap();
    let peer = conn;
    net.input(2, Input::Waku(waku::Input::SetTrusted { peer, trusted: true }));
    let to = net.now.as_secs() as u32;
    let request = waku::request::MessagesRequest {
        id: bytes::Bytes::from(vec![b'7'; 32]),
        from: to - 3600,
        to,
        limit: 100,
        cursor: bytes::Bytes::new(),
        bloom: bytes::Bytes::new(),
        topics: vec![status::public_chat_topic("engine")],
    };
    net.input(
        2,
        Input::Waku(waku::Input::SendP2PRequest {
            peer,
            data: request.encode(),
        }),
    );
    net.run(Duration::from_secs(2));
    let mut got = net.messages(2);
    got.sort();
    let want: Vec<Vec<u8>> = (0..5).map(|k| format!("missed {k}").into_bytes()).collect();
    assert_eq!(got, want, "every missed message, exactly once");
    assert!(net.hosts[2]
        .events
        .iter()
        .any(|e| matches!(e, Event::Waku(waku::Event::RequestComplete { .. }))));
}

#[test]
fn misuse_is_reported_by_the_engine_itself() {
    use status_sansio::node::{ConnId, NodeError, DIAL_ID_BIT};
    let now = status_sansio::Timestamp::from_secs(1_700_000_000);
    let mut e = Engine::new(EngineConfig::new(rlpx_config(9)), &Seed::from_u64(1), now).unwrap();
    let err = |r: Result<(), status_sansio::Error>| match r {
        Err(status_sansio::Error::Node(n)) => n,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        err(e.handle_input(now, Input::Connected { conn: ConnId(5) })),
        NodeError::UnknownConnection(ConnId(5))
    );
    assert_eq!(
        err(e.handle_input(
            now,
            Input::Accepted {
                conn: ConnId(DIAL_ID_BIT | 1)
            }
        )),
        NodeError::InvalidConnectionId(ConnId(DIAL_ID_BIT | 1))
    );
    e.handle_input(now, Input::Accepted { conn: ConnId(1) }).unwrap();
    assert_eq!(
        err(e.handle_input(now, Input::Accepted { conn: ConnId(1) })),
        NodeError::InvalidConnectionId(ConnId(1))
    );
    let chat = Input::Chat(status_sansio::chat::messenger::Input::JoinPublicChat("x".into()));
    assert_eq!(
        err(e.handle_input(now, chat)),
        NodeError::NotConfigured("messenger")
    );
    // Bytes for a socket the engine no longer has are a benign race, not an error.
    assert!(e
        .handle_input(
            now,
            Input::Received {
                conn: ConnId(77),
                data: b"late"
            }
        )
        .is_ok());
}

/// A socket that ends before the driver reported it connected counts as a failed dial: the static peer
/// is redialled (regression: the dial stayed "in progress" forever and the peer was never dialled again).
#[test]
fn a_dial_closed_before_connecting_is_redialled() {
    let now = status_sansio::Timestamp::from_secs(1_700_000_000);
    let relay = rlpx_config(1);
    let enode = status_sansio::enode::Enode::new(relay.public_key(), "127.0.0.1:30303".parse().unwrap());
    let mut c = EngineConfig::new(rlpx_config(2));
    c.static_peers = vec![enode];
    let mut e = Engine::new(c, &Seed::from_u64(3), now).unwrap();
    e.handle_timeout(now);
    let dial = |e: &mut Engine| {
        let mut conns = vec![];
        while let Some(o) = e.poll_output() {
            if let status_sansio::node::Output::Dial { conn, .. } = o {
                conns.push(conn);
            }
        }
        conns
    };
    let first = dial(&mut e);
    assert_eq!(first.len(), 1);
    e.handle_input(now, Input::Closed { conn: first[0] }).unwrap();
    // Redialled after the backoff, and only then.
    assert!(dial(&mut e).is_empty());
    let later = now + Duration::from_secs(130);
    e.handle_timeout(later);
    let second = dial(&mut e);
    assert_eq!(second.len(), 1, "redialled");
    assert_ne!(second[0], first[0]);
}

/// Inbound sockets past the cap are refused after a handshake only while as many again are pending;
/// further ones are closed at once, so the connection table stays bounded under a flood of connects.
#[test]
fn a_flood_of_inbound_sockets_is_bounded() {
    use status_sansio::node::{ConnId, Output};
    let now = status_sansio::Timestamp::from_secs(1_700_000_000);
    let mut config = EngineConfig::new(rlpx_config(9));
    config.max_peers = 2;
    let mut e = Engine::new(config, &Seed::from_u64(1), now).unwrap();
    let mut closed = vec![];
    for i in 1..=50u64 {
        e.handle_input(now, Input::Accepted { conn: ConnId(i) }).unwrap();
        while let Some(o) = e.poll_output() {
            if let Output::Close { conn } = o {
                closed.push(conn.0);
            }
        }
    }
    assert_eq!(closed, (5..=50).collect::<Vec<u64>>());
    // Bytes and closes for the sockets closed at once are ignored.
    e.handle_input(
        now,
        Input::Received {
            conn: ConnId(9),
            data: b"x",
        },
    )
    .unwrap();
    e.handle_input(now, Input::Closed { conn: ConnId(9) }).unwrap();
}

/// A static peer that never answers, with no ceiling on the backoff: the doubling saturates instead of
/// overflowing `Duration` (which panicked after about 64 failures).
#[test]
fn static_backoff_without_a_ceiling_saturates() {
    use status_sansio::enode::Enode;
    use status_sansio::node::Output;
    let mut now = status_sansio::Timestamp::from_secs(1_700_000_000);
    let mut config = EngineConfig::new(rlpx_config(9));
    config.reconnect_max = Duration::MAX;
    let peer = SecretKey::random(&mut Seed::from_u64(5).rng()).public_key();
    config.static_peers = vec![Enode::new(peer, "127.0.0.1:30399".parse().unwrap())];
    let mut e = Engine::new(config, &Seed::from_u64(1), now).unwrap();
    let mut dials = 0;
    for _ in 0..200 {
        now = e.poll_timeout().unwrap().max(now);
        e.handle_timeout(now);
        while let Some(o) = e.poll_output() {
            if let Output::Dial { conn, .. } = o {
                dials += 1;
                e.handle_input(now, Input::DialFailed { conn }).unwrap();
            }
        }
    }
    assert!(dials >= 70, "{dials} dials");
}

/// A dial the driver never reports within `dial_timeout` has failed: the engine closes it (the driver
/// cancels the dial), says so, and dials the static peer again after its backoff.
#[test]
fn an_unanswered_dial_times_out() {
    use status_sansio::enode::Enode;
    use status_sansio::node::{NodeError, Output};
    let t0 = status_sansio::Timestamp::from_secs(1_700_000_000);
    let mut config = EngineConfig::new(rlpx_config(9));
    config.dial_timeout = Duration::from_secs(3);
    let peer = SecretKey::random(&mut Seed::from_u64(5).rng()).public_key();
    config.static_peers = vec![Enode::new(peer, "127.0.0.1:30399".parse().unwrap())];
    let mut e = Engine::new(config, &Seed::from_u64(1), t0).unwrap();
    e.handle_timeout(t0);
    let dialled: Vec<_> = std::iter::from_fn(|| e.poll_output())
        .filter_map(|o| match o {
            Output::Dial { conn, .. } => Some(conn),
            _ => None,
        })
        .collect();
    assert_eq!(dialled.len(), 1);
    let conn = dialled[0];
    assert_eq!(e.poll_timeout(), Some(t0 + Duration::from_secs(3)));
    // Not yet.
    e.handle_timeout(t0 + Duration::from_secs(2));
    assert!(std::iter::from_fn(|| e.poll_output()).all(|o| o != Output::Close { conn }));
    // Now: closed, reported, and a late report of the dial is misuse.
    e.handle_timeout(t0 + Duration::from_secs(3));
    let out: Vec<_> = std::iter::from_fn(|| e.poll_output()).collect();
    assert!(out.contains(&Output::Close { conn }), "{out:?}");
    assert!(
        out.contains(&Output::Event(Event::DialTimedOut { conn })),
        "{out:?}"
    );
    assert!(matches!(
        e.handle_input(t0 + Duration::from_secs(4), Input::Connected { conn }),
        Err(status_sansio::Error::Node(NodeError::UnknownConnection(c))) if c == conn
    ));
    // The static peer is dialled again after its backoff (reconnect_min plus jitter under 1 s).
    let later = t0 + Duration::from_secs(5);
    e.handle_timeout(later);
    let redialled = std::iter::from_fn(|| e.poll_output()).any(|o| matches!(o, Output::Dial { .. }));
    assert!(redialled);
}

/// Configuration without a meaningful reading is refused with a typed error, not replaced by defaults.
#[test]
fn invalid_configuration_is_refused() {
    use status_sansio::node::NodeError;
    let now = status_sansio::Timestamp::from_secs(1_700_000_000);
    let refused = |f: &dyn Fn(&mut EngineConfig)| {
        let mut c = EngineConfig::new(rlpx_config(9));
        f(&mut c);
        match Engine::new(c, &Seed::from_u64(1), now) {
            Err(status_sansio::Error::Node(e)) => Some(e),
            Err(e) => panic!("{e}"),
            Ok(_) => None,
        }
    };
    assert!(matches!(
        refused(&|c| c.dial_timeout = Duration::ZERO),
        Some(NodeError::Config(_))
    ));
    assert!(matches!(
        refused(&|c| c.max_peers = 0),
        Some(NodeError::Config(_))
    ));
    assert!(matches!(
        refused(&|c| c.reconnect_min = c.reconnect_max + Duration::from_secs(1)),
        Some(NodeError::Config(_))
    ));
    assert!(matches!(
        refused(&|c| {
            let peer = |n: u64| SecretKey::random(&mut Seed::from_u64(n).rng()).public_key();
            c.static_peers = (0..65)
                .map(|n| status_sansio::enode::Enode::new(peer(100 + n), "127.0.0.1:30303".parse().unwrap()))
                .collect();
        }),
        Some(NodeError::TooManyStaticPeers)
    ));
    assert!(refused(&|_| {}).is_none());
    // A bad DNS configuration is the DNS client's typed error.
    let mut c = EngineConfig::new(rlpx_config(9));
    c.dns_discovery = vec![
        "enrtree://AM5FCQLWIZX2QFPNJAP7VUERCCRNGRHWZG3YYHIUV7BVDQ5FDPRT2@nodes.example.org"
            .parse()
            .unwrap(),
    ];
    c.dns.max_in_flight = 0;
    assert!(matches!(
        Engine::new(c, &Seed::from_u64(1), now),
        Err(status_sansio::Error::Discovery(_))
    ));
}
