//! The node engine on the blocking std driver over real loopback TCP: a relay and two clients; a
//! public-chat message from one client reaches the other.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use status_io_std::node::BlockingNode;
use status_io_std::os_seed;
use status_sansio::crypto::SecretKey;
use status_sansio::enode::Enode;
use status_sansio::node::{Engine, EngineConfig, Event, Input};
use status_sansio::rlpx::{self, Protocol};
use status_sansio::waku::message::{NewMessage, PostKey};
use status_sansio::waku::{self, status, Filter};
use status_sansio::Seed;

fn config(n: u64) -> EngineConfig {
    let key = SecretKey::random(&mut Seed::from_u64(n).rng());
    EngineConfig::new(Arc::new(rlpx::Config::new(
        key,
        vec![Protocol::new("waku", 1, 128).unwrap()],
    )))
}

#[test]
fn two_clients_chat_through_a_relay_over_tcp() {
    let now = status_io_std::Clock::new().now();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let rc = config(1);
    let relay_enode = Enode::new(rc.rlpx.public_key(), listener.local_addr().unwrap());
    let mut relay = BlockingNode::new(Engine::new(now, rc, os_seed()), Some(listener));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let relay_thread = std::thread::spawn(move || {
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            relay.step(Duration::from_millis(20));
        }
    });

    let client = |n| {
        let mut c = config(n);
        c.static_peers = vec![relay_enode.clone()];
        BlockingNode::new(Engine::new(now, c, os_seed()), None)
    };
    let chat = "std-loopback";
    let mut b = client(3);
    b.engine()
        .subscribe(Filter::symmetric(
            vec![status::public_chat_topic(chat)],
            *status::public_chat_key(chat),
        ))
        .unwrap();
    let b_thread = std::thread::spawn(move || {
        b.run_until(Duration::from_secs(15), |e| {
            matches!(e, Event::Waku(waku::Event::Message(_)))
        })
    });

    let mut a = client(2);
    let (ok, _) = a.run_until(Duration::from_secs(15), |e| {
        matches!(e, Event::PeerConnected { .. })
    });
    assert!(ok, "A connected to the relay");
    let signer = SecretKey::random(&mut Seed::from_u64(9).rng());
    // B may still be connecting: the relay keeps the envelope in its pool and sends it when B arrives.
    let msg = NewMessage {
        topic: status::public_chat_topic(chat),
        payload: b"blocking sockets".to_vec(),
        key: PostKey::Symmetric(status::public_chat_key(chat)),
        signer: Some(signer.clone()),
        ttl: 20,
        pow_target: 0.002,
        padding: None,
    };
    a.input(Input::Waku(waku::Input::Post(Box::new(msg)))).unwrap();
    a.run_until(Duration::from_secs(2), |_| false);
    let (got, events) = b_thread.join().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    relay_thread.join().unwrap();
    assert!(got, "B received the message: {events:?}");
    let m = events
        .iter()
        .find_map(|e| {
            if let Event::Waku(waku::Event::Message(m)) = e {
                Some(m)
            } else {
                None
            }
        })
        .unwrap();
    assert_eq!(&m.payload[..], b"blocking sockets");
    assert_eq!(m.sender, Some(signer.public_key()));
}
