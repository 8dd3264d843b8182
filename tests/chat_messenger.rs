//! The Messenger's public chats through real Waku nodes (envelopes built, PoW-sealed, opened by filters):
//! a text goes from Alice to Bob with its author, clock and text; duplicates, other chats' messages and
//! invalid messages are dropped and never shown; clocks move forward across the conversation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use status_proto::protobuf as pb;
use status_sansio::chat::messenger::{Event, Input, Messenger, MessengerConfig, Output};
use status_sansio::chat::payloads::wrap_chat_message;
use status_sansio::crypto::SecretKey;
use status_sansio::secure::{self, SecureTransport};
use status_sansio::waku::message::{NewMessage, PostKey};
use status_sansio::waku::{self, status, WakuConfig, WakuNode};
use status_sansio::{Seed, Timestamp};

const CHAT: &str = "status-sansio";

struct Client {
    messenger: Messenger,
    waku: WakuNode,
    events: Vec<Event>,
}

impl Client {
    fn new(n: u64, now: Timestamp) -> Client {
        let key = SecretKey::random(&mut Seed::from_u64(n).rng());
        let messenger = Messenger::new(
            now,
            MessengerConfig::new(key, format!("device-{n}")),
            Seed::from_u64(n + 100),
        );
        Client {
            messenger,
            waku: WakuNode::new(WakuConfig::default(), Seed::from_u64(n + 200)),
            events: vec![],
        }
    }

    /// Carry out the messenger's outputs; return the posts it asked for.
    fn pump(&mut self, now: Timestamp) -> Vec<NewMessage> {
        let mut posts = vec![];
        while let Some(o) = self.messenger.poll_output() {
            match o {
                Output::Subscribe { filter, .. } => {
                    self.waku.subscribe(filter).unwrap();
                }
                Output::Unsubscribe { .. } => {}
                Output::Post(m) => posts.push(*m),
                Output::Event(e) => self.events.push(e),
            }
        }
        let _ = now;
        posts
    }

    /// An envelope arrives at this client's Waku node; opened messages go to the messenger.
    fn deliver(&mut self, now: Timestamp, post: &NewMessage, seed: u64) {
        let mut env = waku::message::wrap(&mut Seed::from_u64(seed).rng(), now.as_secs(), post).unwrap();
        let mut sealer = waku::envelope::PowSealer::new(&env, post.pow_target);
        if let waku::envelope::SealProgress::Done { nonce, .. } = sealer.step(1 << 22) {
            env.nonce = nonce;
        }
        self.waku.handle_input(now, waku::Input::Broadcast(env)).unwrap();
        while let Some(o) = self.waku.poll_output() {
            if let waku::Output::Event(waku::Event::Message(m)) = o {
                self.messenger.handle_input(now, Input::Received(m)).unwrap();
            }
        }
        self.pump(now);
    }

    fn received(&self) -> Vec<(String, String, bool)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::MessageReceived { chat, message, own } => {
                    Some((chat.clone(), message.text.clone(), *own))
                }
                _ => None,
            })
            .collect()
    }

    fn dropped(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| {
                if let Event::Dropped { reason } = e {
                    Some(reason.clone())
                } else {
                    None
                }
            })
            .collect()
    }
}

#[test]
fn public_chat_round_trip_with_dedup_and_clocks() {
    let now = Timestamp::from_secs(1_700_000_000);
    let (mut alice, mut bob) = (Client::new(1, now), Client::new(2, now));
    for c in [&mut alice, &mut bob] {
        c.messenger
            .handle_input(now, Input::JoinPublicChat(CHAT.into()))
            .unwrap();
        c.pump(now);
    }
    alice
        .messenger
        .handle_input(
            now,
            Input::SendText {
                chat: CHAT.into(),
                text: "hello bob".into(),
            },
        )
        .unwrap();
    let posts = alice.pump(now);
    assert_eq!(posts.len(), 1);
    assert!(alice
        .events
        .iter()
        .any(|e| matches!(e, Event::MessageSent { .. })));
    bob.deliver(now, &posts[0], 7);
    assert_eq!(
        bob.received(),
        vec![(CHAT.to_string(), "hello bob".to_string(), false)]
    );
    let from_alice = bob.messenger.messages(CHAT)[0].clone();
    assert_eq!(from_alice.author, alice.messenger.public_key());

    // The same message again (another envelope, same payload): shown once.
    bob.deliver(now, &posts[0], 8);
    assert_eq!(bob.received().len(), 1);

    // Bob answers: his clock is past Alice's.
    bob.messenger
        .handle_input(
            now,
            Input::SendText {
                chat: CHAT.into(),
                text: "hi alice".into(),
            },
        )
        .unwrap();
    let answer = bob.pump(now);
    alice.deliver(now, &answer[0], 9);
    assert_eq!(
        alice.received(),
        vec![(CHAT.to_string(), "hi alice".to_string(), false)]
    );
    let msgs = alice.messenger.messages(CHAT);
    assert_eq!(msgs.len(), 2);
    assert!(msgs[1].clock > msgs[0].clock, "display order follows the clock");
    assert_eq!(msgs[0].text, "hello bob");

    // Alice's own message coming back from the network is not shown twice.
    alice.deliver(now, &posts[0], 10);
    assert_eq!(alice.received().len(), 1);
}

/// A post on CHAT's topic and key carrying `m` wrapped by `author` (to forge bad messages).
fn forged(now: Timestamp, author: &SecretKey, m: &pb::ChatMessage) -> NewMessage {
    let wrapped = wrap_chat_message(m, author).unwrap();
    let mut st = SecureTransport::new(
        author.clone(),
        "x".into(),
        Seed::from_u64(5),
        secure::Config::default(),
        now,
    );
    st.handle_input(
        now,
        secure::Input::Public {
            payload: wrapped.bytes.to_vec(),
        },
    )
    .unwrap();
    let bytes = loop {
        match st.poll_output() {
            Some(secure::Output::Send(o)) => break o.bytes,
            Some(_) => {}
            None => panic!("no output"),
        }
    };
    NewMessage {
        topic: status::public_chat_topic(CHAT),
        payload: bytes,
        key: PostKey::Symmetric(status::public_chat_key(CHAT)),
        signer: Some(author.clone()),
        ttl: 15,
        pow_target: 0.002,
        padding: None,
    }
}

#[test]
fn messages_that_do_not_conform_are_never_shown() {
    let now = Timestamp::from_secs(1_700_000_000);
    let mut bob = Client::new(2, now);
    bob.messenger
        .handle_input(now, Input::JoinPublicChat(CHAT.into()))
        .unwrap();
    bob.pump(now);
    let mallory = SecretKey::random(&mut Seed::from_u64(66).rng());
    let good = pb::ChatMessage {
        clock: now.as_millis(),
        timestamp: now.as_millis(),
        text: "ok".into(),
        chat_id: CHAT.into(),
        message_type: pb::MessageType::PublicGroup as i32,
        content_type: pb::chat_message::ContentType::TextPlain as i32,
        ..Default::default()
    };
    let cases = [
        pb::ChatMessage {
            chat_id: "another-chat".into(),
            ..good.clone()
        },
        pb::ChatMessage {
            text: String::new(),
            ..good.clone()
        },
        pb::ChatMessage {
            message_type: pb::MessageType::OneToOne as i32,
            ..good.clone()
        },
        pb::ChatMessage {
            clock: 0,
            ..good.clone()
        },
    ];
    for (k, m) in cases.iter().enumerate() {
        bob.deliver(now, &forged(now, &mallory, m), 20 + k as u64);
    }
    assert!(bob.received().is_empty(), "{:?}", bob.received());
    assert_eq!(bob.dropped().len(), cases.len(), "{:?}", bob.dropped());
    // The same builder with a conforming message is shown: the drops above were for the defects.
    bob.deliver(now, &forged(now, &mallory, &good), 30);
    assert_eq!(bob.received(), vec![(CHAT.to_string(), "ok".to_string(), false)]);
    // Sending to a chat we have not joined is misuse.
    assert!(bob
        .messenger
        .handle_input(
            now,
            Input::SendText {
                chat: "nope".into(),
                text: "x".into()
            }
        )
        .is_err());
}
