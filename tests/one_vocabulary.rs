//! One vocabulary: a small generic harness, written once against `StateMachine`, drives machines of
//! different layers — an RLPx connection pair, an MVDS node pair, a Messenger, the engine — and the
//! trait is implemented by every machine of the stack (a compile-time check below).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use bytes::Bytes;
use status_sansio::chat::messenger::{self, Messenger, MessengerConfig};
use status_sansio::crypto::SecretKey;
use status_sansio::mvds::{self, GroupId, PeerId};
use status_sansio::node::{Engine, EngineConfig};
use status_sansio::rlpx::p2p::Protocol;
use status_sansio::rlpx::{self, Connection};
use status_sansio::{Seed, StateMachine, Timestamp};

/// Feed one input and drain everything that comes out.
fn step<M: StateMachine>(m: &mut M, now: Timestamp, input: M::Input<'_>) -> Vec<M::Output>
where
    M::Error: std::fmt::Debug,
{
    m.handle_input(now, input)
        .expect("the harness feeds valid inputs");
    drain(m)
}

fn drain<M: StateMachine>(m: &mut M) -> Vec<M::Output> {
    std::iter::from_fn(|| m.poll_output()).collect()
}

/// Fire every timer up to `until`, draining after each, and return the time reached.
fn run_timers<M: StateMachine>(
    m: &mut M,
    mut now: Timestamp,
    until: Timestamp,
    out: &mut Vec<M::Output>,
) -> Timestamp {
    out.extend(drain(m));
    while let Some(t) = m.poll_timeout().filter(|t| *t <= until) {
        now = now.max(t);
        m.handle_timeout(now);
        out.extend(drain(m));
    }
    now
}

fn all_are_state_machines() {
    fn is<M: StateMachine>() {}
    is::<rlpx::Connection>();
    is::<status_sansio::waku::WakuNode>();
    is::<status_sansio::secure::SecureTransport>();
    is::<mvds::Node>();
    is::<Messenger>();
    is::<status_sansio::mailserver::server::MailServer>();
    is::<status_sansio::mailserver::client::HistoryClient>();
    is::<status_sansio::discovery::DnsTreeClient>();
    is::<status_sansio::discovery::PeerPool>();
    is::<Engine>();
}

#[test]
fn every_machine_has_the_shape() {
    all_are_state_machines();
}

#[test]
fn the_harness_handshakes_two_rlpx_connections() {
    let now = Timestamp::from_millis(1_000);
    let config = |n: u64| {
        let key = SecretKey::random(&mut Seed::from_u64(n).rng());
        Arc::new(rlpx::Config::new(
            key,
            vec![Protocol::new("test", 1, 16).expect("a valid capability")],
        ))
    };
    let (ca, cb) = (config(1), config(2));
    let b_id = cb.public_key();
    let mut a = Connection::initiator(ca, b_id, &Seed::from_u64(3), now).unwrap();
    let mut b = Connection::recipient(cb, &Seed::from_u64(4), now).unwrap();
    let (mut to_a, mut to_b, mut connected) = (Vec::new(), drain(&mut a), 0);
    for _ in 0..10 {
        for o in std::mem::take(&mut to_b) {
            match o {
                rlpx::Output::Transmit(bytes) => to_a.extend(step(&mut b, now, rlpx::Input::Receive(&bytes))),
                rlpx::Output::Event(rlpx::Event::Connected { .. }) => connected += 1,
                _ => {}
            }
        }
        for o in std::mem::take(&mut to_a) {
            match o {
                rlpx::Output::Transmit(bytes) => to_b.extend(step(&mut a, now, rlpx::Input::Receive(&bytes))),
                rlpx::Output::Event(rlpx::Event::Connected { .. }) => connected += 1,
                _ => {}
            }
        }
    }
    assert_eq!(
        connected, 2,
        "both sides completed the handshake through the generic harness"
    );
}

#[test]
fn the_harness_syncs_two_mvds_nodes() {
    let now = Timestamp::from_millis(1_000);
    let (pa, pb) = (
        PeerId(Bytes::from_static(b"alice")),
        PeerId(Bytes::from_static(b"bob")),
    );
    let group = GroupId([7; 32]);
    let mut a = mvds::Node::new(mvds::Config::default(), &Seed::from_u64(1), now).unwrap();
    let mut b = mvds::Node::new(mvds::Config::default(), &Seed::from_u64(2), now).unwrap();
    step(
        &mut a,
        now,
        mvds::Input::AddPeer {
            group,
            peer: pb.clone(),
        },
    );
    step(
        &mut b,
        now,
        mvds::Input::AddPeer {
            group,
            peer: pa.clone(),
        },
    );
    let mut out = step(
        &mut a,
        now,
        mvds::Input::Send {
            group,
            body: Bytes::from_static(b"hello"),
        },
    );
    let (mut t, mut received, mut delivered) = (now, false, false);
    for _ in 0..20 {
        let until = t + std::time::Duration::from_secs(1);
        t = run_timers(&mut a, t, until, &mut out);
        let mut back = Vec::new();
        for o in out.drain(..) {
            match o {
                mvds::Output::Transmit { payload, .. } => {
                    for r in step(
                        &mut b,
                        t,
                        mvds::Input::ReceivedPayload {
                            from: pa.clone(),
                            payload,
                        },
                    ) {
                        match r {
                            mvds::Output::Event(mvds::Event::MessageReceived { .. }) => received = true,
                            mvds::Output::Transmit { payload, .. } => back.push(payload),
                            _ => {}
                        }
                    }
                }
                mvds::Output::Event(mvds::Event::Delivered { .. }) => delivered = true,
                _ => {}
            }
        }
        let mut tb = Vec::new();
        run_timers(&mut b, t, until, &mut tb);
        for o in tb {
            if let mvds::Output::Transmit { payload, .. } = o {
                back.push(payload);
            }
        }
        for payload in back {
            out.extend(step(
                &mut a,
                t,
                mvds::Input::ReceivedPayload {
                    from: pb.clone(),
                    payload,
                },
            ));
        }
        if received && delivered {
            break;
        }
    }
    assert!(
        received && delivered,
        "received {received}, delivered {delivered}"
    );
}

#[test]
fn the_harness_drives_a_messenger_and_an_engine() {
    let now = Timestamp::from_millis(1_000);
    let key = SecretKey::random(&mut Seed::from_u64(5).rng());
    let mut m = Messenger::new(MessengerConfig::new(key, "1".into()), &Seed::from_u64(6), now).unwrap();
    let out = step(&mut m, now, messenger::Input::JoinPublicChat("status".into()));
    assert!(
        out.iter()
            .any(|o| matches!(o, messenger::Output::Subscribe { chat, .. } if chat == "status")),
        "joining a chat subscribes its topic"
    );

    let node_key = SecretKey::random(&mut Seed::from_u64(7).rng());
    let peer_key = SecretKey::random(&mut Seed::from_u64(8).rng());
    let waku = vec![Protocol::new("waku", 1, 128).expect("a valid capability")];
    let mut config = EngineConfig::new(Arc::new(rlpx::Config::new(node_key, waku)));
    let peer: status_sansio::enode::Enode =
        status_sansio::enode::Enode::new(peer_key.public_key(), "127.0.0.1:30303".parse().unwrap());
    config.static_peers = vec![peer];
    let mut engine = Engine::new(config, &Seed::from_u64(9), now).unwrap();
    let mut out = Vec::new();
    run_timers(
        &mut engine,
        now,
        now + std::time::Duration::from_secs(1),
        &mut out,
    );
    assert!(
        out.iter()
            .any(|o| matches!(o, status_sansio::node::Output::Dial { .. })),
        "the engine dials its static peer"
    );
}
