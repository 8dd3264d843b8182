//! The node engine on the blocking std driver over real loopback TCP: a relay and two clients; a
//! public-chat message from one client reaches the other.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use status_io_std::node::BlockingNode;
use status_io_std::os_seed;
#[cfg(feature = "redb")]
use status_io_std::state::StateStore;
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
    let mut relay = BlockingNode::new(Engine::new(rc, &os_seed(), now).unwrap(), Some(listener));
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
        BlockingNode::new(Engine::new(c, &os_seed(), now).unwrap(), None)
    };
    let chat = "std-loopback";
    let mut b = client(3);
    let id = b.engine().unused_subscription_id();
    let filter = Filter::symmetric(
        vec![status::public_chat_topic(chat)],
        *status::public_chat_key(chat),
    );
    b.input(Input::Waku(waku::Input::Subscribe { id, filter }))
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

/// The whole client stack on the blocking driver: alice and bob, each a `BlockingNode` running the
/// Messenger, chat 1:1 through a relay: first contact, an answer, and a delivery confirmation.
#[test]
fn one_to_one_chat_on_blocking_nodes() {
    one_to_one_chat(None);
}

/// The same chat with durable Messengers: every batch goes through each node's redb state store before
/// what it holds back leaves, and an engine restored from the store knows the chat.
#[cfg(feature = "redb")]
#[test]
fn one_to_one_chat_on_durable_blocking_nodes_commits_and_restores() {
    let dir = std::env::temp_dir().join(format!("status-std-durable-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    one_to_one_chat(Some(&dir));
    std::fs::remove_dir_all(&dir).ok();
}

fn one_to_one_chat(durable: Option<&std::path::Path>) {
    use status_sansio::chat::messenger::{
        Event as ChatEvent, Input as ChatInput, Messenger, MessengerConfig,
    };
    let now = status_io_std::Clock::new().now();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let rc = config(11);
    let relay_enode = Enode::new(rc.rlpx.public_key(), listener.local_addr().unwrap());
    let mut relay = BlockingNode::new(Engine::new(rc, &os_seed(), now).unwrap(), Some(listener));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let relay_thread = std::thread::spawn(move || {
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            relay.step(Duration::from_millis(20));
        }
    });
    let client = |n: u64| {
        let mut c = config(n);
        c.static_peers = vec![relay_enode.clone()];
        let identity = SecretKey::random(&mut Seed::from_u64(100 + n).rng());
        let mut m = MessengerConfig::new(identity, format!("device-{n}"));
        m.durable = durable.is_some();
        c.messenger = Some(m);
        let node = BlockingNode::new(Engine::new(c, &os_seed(), now).unwrap(), None);
        #[cfg(feature = "redb")]
        let node = match durable {
            Some(dir) => node.with_state_store(StateStore::open(&dir.join(format!("{n}.redb"))).unwrap()),
            None => node,
        };
        node
    };
    let (mut a, mut b) = (client(12), client(13));
    let ka = SecretKey::random(&mut Seed::from_u64(112).rng()).public_key();
    let kb = SecretKey::random(&mut Seed::from_u64(113).rng()).public_key();
    let (to_b, to_a) = (
        Messenger::one_to_one_chat_id(&kb),
        Messenger::one_to_one_chat_id(&ka),
    );
    assert!(
        a.run_until(Duration::from_secs(15), |e| matches!(
            e,
            Event::PeerConnected { .. }
        ))
        .0
    );
    assert!(
        b.run_until(Duration::from_secs(15), |e| matches!(
            e,
            Event::PeerConnected { .. }
        ))
        .0
    );
    a.input(Input::Chat(ChatInput::StartOneToOne(kb))).unwrap();
    a.input(Input::Chat(ChatInput::SendText {
        chat: to_b.clone(),
        text: "hello from a blocking node".into(),
    }))
    .unwrap();
    // Step both (single-threaded, alternating) until B shows the message, then B answers.
    let mut got_b = false;
    let mut got_a = false;
    let mut delivered = false;
    let mut answered = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline && !(got_a && delivered) {
        for e in a.step(Duration::from_millis(10)) {
            match e {
                Event::Chat(ChatEvent::MessageReceived {
                    chat,
                    message,
                    own: false,
                }) => {
                    assert_eq!(chat, to_b);
                    assert_eq!(message.author, kb);
                    got_a |= message.text == "answer from b";
                }
                Event::Chat(ChatEvent::Delivered { chat, to, .. }) if chat == to_b && to == kb => {
                    delivered = true
                }
                _ => {}
            }
        }
        for e in b.step(Duration::from_millis(10)) {
            if let Event::Chat(ChatEvent::MessageReceived {
                chat,
                message,
                own: false,
            }) = e
            {
                assert_eq!(chat, to_a);
                assert_eq!(message.author, ka);
                got_b |= message.text == "hello from a blocking node";
            }
        }
        if got_b && !answered {
            answered = true;
            b.input(Input::Chat(ChatInput::SendText {
                chat: to_a.clone(),
                text: "answer from b".into(),
            }))
            .unwrap();
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    relay_thread.join().unwrap();
    assert!(got_b, "B got the first-contact message");
    assert!(got_a, "A got B's answer");
    assert!(delivered, "A saw its message delivered to B");
    for node in [&a, &b] {
        assert_eq!(node.state_error(), None);
    }
    #[cfg(feature = "redb")]
    if let Some(dir) = durable {
        for (node, n) in [(&a, 12u64), (&b, 13)] {
            let store = node.state_store().unwrap();
            assert!(store.commits() > 0, "node {n} committed batches");
            let records = store.load().unwrap();
            assert!(!records.is_empty());
            let mut c = config(n);
            let identity = SecretKey::random(&mut Seed::from_u64(100 + n).rng());
            let mut m = MessengerConfig::new(identity, format!("device-{n}"));
            m.durable = true;
            c.messenger = Some(m);
            let restored = Engine::restore(c, &records, &os_seed(), now).unwrap();
            let chat = if n == 12 { &to_b } else { &to_a };
            assert!(
                restored.messenger().unwrap().chats().any(|c| c == chat.as_str()),
                "node {n} restored its 1:1 chat from {}",
                dir.display()
            );
        }
    }
}
