#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Own posts: a Waku node offers its own post to its own filters (Whisper/Waku semantics) unless
//! `open_own_posts` is off, which the node engine sets when it runs a Messenger (the Messenger records
//! what it sends itself); a Messenger-driven node then never opens its own envelopes.

use status_sansio::chat::messenger::MessengerConfig;
use status_sansio::crypto::SecretKey;
use status_sansio::node::{Engine, EngineConfig};
use status_sansio::rlpx::{self, Protocol};
use status_sansio::waku::message::{NewMessage, PostKey};
use status_sansio::waku::{status, Filter};
use status_sansio::waku::{Event, Input, Output, WakuConfig, WakuNode};
use status_sansio::{Seed, Timestamp};
use std::sync::Arc;

fn post() -> Input {
    Input::Post(Box::new(NewMessage {
        topic: status::public_chat_topic("own"),
        payload: b"mine".to_vec(),
        key: PostKey::Symmetric(status::public_chat_key("own")),
        signer: Some(SecretKey::random(&mut Seed::from_u64(1).rng())),
        ttl: 20,
        pow_target: 0.002,
        padding: None,
    }))
}

/// (messages the node's own filter opened, posts sealed).
fn run(open_own_posts: bool) -> (usize, usize) {
    let config = WakuConfig {
        open_own_posts,
        ..WakuConfig::default()
    };
    let mut node = WakuNode::new(config, &Seed::from_u64(2)).unwrap();
    let mut now = Timestamp::from_secs(1_700_000_000);
    let filter = Filter::symmetric(
        vec![status::public_chat_topic("own")],
        *status::public_chat_key("own"),
    );
    let id = node.unused_subscription_id();
    node.handle_input(now, Input::Subscribe { id, filter }).unwrap();
    node.handle_input(now, post()).unwrap();
    let (mut opened, mut posted) = (0, 0);
    for _ in 0..10_000 {
        while let Some(o) = node.poll_output() {
            match o {
                Output::Event(Event::Message(m)) => {
                    assert_eq!(&m.payload[..], b"mine");
                    opened += 1;
                }
                Output::Event(Event::Posted { .. }) => posted += 1,
                _ => {}
            }
        }
        if posted > 0 {
            break;
        }
        now = node.poll_timeout().unwrap_or(now).max(now);
        node.handle_timeout(now);
    }
    (opened, posted)
}

#[test]
fn own_posts_are_opened_only_when_asked() {
    assert_eq!(run(true), (1, 1));
    assert_eq!(run(false), (0, 1));
}

#[test]
fn an_engine_with_a_messenger_does_not_open_its_own_posts() {
    let rlpx = Arc::new(rlpx::Config::new(
        SecretKey::random(&mut Seed::from_u64(3).rng()),
        vec![Protocol::new("waku", 1, 128).unwrap()],
    ));
    let now = Timestamp::from_secs(1_700_000_000);
    let plain = Engine::new(EngineConfig::new(rlpx.clone()), &Seed::from_u64(4), now).unwrap();
    assert!(plain.waku().config().open_own_posts);
    let mut c = EngineConfig::new(rlpx);
    c.messenger = Some(MessengerConfig::new(
        SecretKey::random(&mut Seed::from_u64(5).rng()),
        "device".into(),
    ));
    let chat = Engine::new(c, &Seed::from_u64(6), now).unwrap();
    assert!(!chat.waku().config().open_own_posts);
}
