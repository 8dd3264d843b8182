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
            MessengerConfig::new(key, format!("device-{n}")),
            &Seed::from_u64(n + 100),
            now,
        )
        .unwrap();
        Client {
            messenger,
            waku: WakuNode::new(WakuConfig::default(), &Seed::from_u64(n + 200)).unwrap(),
            events: vec![],
        }
    }

    /// Carry out the messenger's outputs; return the posts it asked for.
    fn pump(&mut self, now: Timestamp) -> Vec<NewMessage> {
        let mut posts = vec![];
        while let Some(o) = self.messenger.poll_output() {
            match o {
                Output::Subscribe { filter, .. } => {
                    let id = self.waku.unused_subscription_id();
                    let subscribe = waku::Input::Subscribe { id, filter };
                    self.waku.handle_input(now, subscribe).unwrap();
                }
                Output::Unsubscribe { .. } => {}
                Output::Transmit(m) => posts.push(*m),
                Output::Event(e) => self.events.push(e),
                other => panic!("unexpected output {other:?}"),
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
                    Some((chat.to_string(), message.text.clone(), *own))
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
                    Some(reason.to_string())
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
        secure::Config::default(),
        author.clone(),
        "x".into(),
        &Seed::from_u64(5),
        now,
    )
    .unwrap();
    st.handle_input(
        now,
        secure::Input::Public {
            payload: wrapped.bytes.to_vec(),
        },
    )
    .unwrap();
    let bytes = loop {
        match st.poll_output() {
            Some(secure::Output::Transmit(o)) => break o.bytes,
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

/// A text every reference receiver refuses is not sent: the caller gets a typed error and nothing is
/// posted or recorded. The limit counts characters: 4,096 Cyrillic characters (8,192 bytes) go out and
/// are shown by the receiver.
#[test]
fn texts_over_the_character_limit_or_blank_are_refused_before_sending() {
    use status_sansio::chat::messenger::MessengerError;
    use status_sansio::chat::validate::{ValidationError, MAX_TEXT_CHARS};
    let now = Timestamp::from_secs(1_700_000_000);
    let (mut alice, mut bob) = (Client::new(1, now), Client::new(2, now));
    for c in [&mut alice, &mut bob] {
        c.messenger
            .handle_input(now, Input::JoinPublicChat(CHAT.into()))
            .unwrap();
        c.pump(now);
    }
    let send = |alice: &mut Client, text: String| {
        alice.messenger.handle_input(
            now,
            Input::SendText {
                chat: CHAT.into(),
                text,
            },
        )
    };
    for (text, err) in [
        ("я".repeat(MAX_TEXT_CHARS + 1), ValidationError::TextTooLong),
        ("x".repeat(MAX_TEXT_CHARS + 1), ValidationError::TextTooLong),
        (" \n\t".to_string(), ValidationError::BlankText),
        (String::new(), ValidationError::BlankText),
    ] {
        assert_eq!(send(&mut alice, text), Err(MessengerError::Text(err)));
        assert!(alice.pump(now).is_empty(), "nothing posted");
    }
    assert!(alice.messenger.messages(CHAT).is_empty(), "nothing recorded");
    assert!(!alice
        .events
        .iter()
        .any(|e| matches!(e, Event::MessageSent { .. })));

    let longest = "я".repeat(MAX_TEXT_CHARS);
    assert_eq!(longest.len(), 2 * MAX_TEXT_CHARS);
    send(&mut alice, longest.clone()).unwrap();
    let posts = alice.pump(now);
    assert_eq!(posts.len(), 1);
    bob.deliver(now, &posts[0], 40);
    assert_eq!(bob.received(), vec![(CHAT.to_string(), longest, false)]);
}

/// Images (with or without a caption), audio and stickers arrive as typed content with their bytes in the
/// event; the chat log keeps their length and hash; each has a one-line description.
#[test]
fn media_messages_arrive_as_typed_content() {
    use pb::chat_message::{ContentType as C, Payload};
    use status_sansio::chat::messenger::Content;
    let now = Timestamp::from_secs(1_700_000_000);
    let mut bob = Client::new(2, now);
    bob.messenger
        .handle_input(now, Input::JoinPublicChat(CHAT.into()))
        .unwrap();
    bob.pump(now);
    let carol = SecretKey::random(&mut Seed::from_u64(67).rng());
    let base = pb::ChatMessage {
        clock: now.as_millis(),
        timestamp: now.as_millis(),
        chat_id: CHAT.into(),
        message_type: pb::MessageType::PublicGroup as i32,
        ..Default::default()
    };
    let png = bytes::Bytes::from_static(b"\x89PNG\r\n\x1a\n not really an image");
    let aac = bytes::Bytes::from_static(b"not really audio");
    let cases = [
        pb::ChatMessage {
            content_type: C::Image as i32,
            payload: Some(Payload::Image(pb::ImageMessage {
                payload: png.clone(),
                r#type: pb::ImageType::Png as i32,
                ..Default::default()
            })),
            ..base.clone()
        },
        pb::ChatMessage {
            clock: base.clock + 1,
            text: "a caption".into(),
            content_type: C::Image as i32,
            payload: Some(Payload::Image(pb::ImageMessage {
                payload: png.clone(),
                r#type: pb::ImageType::Png as i32,
                ..Default::default()
            })),
            ..base.clone()
        },
        pb::ChatMessage {
            clock: base.clock + 2,
            text: "Update to listen".into(),
            content_type: C::Audio as i32,
            payload: Some(Payload::Audio(pb::AudioMessage {
                payload: aac.clone(),
                r#type: pb::audio_message::AudioType::Aac as i32,
                duration_ms: 1_500,
            })),
            ..base.clone()
        },
        pb::ChatMessage {
            clock: base.clock + 3,
            text: "Update to see a sticker".into(),
            content_type: C::Sticker as i32,
            payload: Some(Payload::Sticker(pb::StickerMessage {
                hash: "e3010170122000".into(),
                pack: 3,
            })),
            ..base.clone()
        },
    ];
    for (k, m) in cases.iter().enumerate() {
        bob.deliver(now, &forged(now, &carol, m), 50 + k as u64);
    }
    assert!(bob.dropped().is_empty(), "{:?}", bob.dropped());
    let shown: Vec<_> = bob
        .events
        .iter()
        .filter_map(|e| match e {
            Event::MessageReceived { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(shown.len(), cases.len());
    let keccak = status_sansio::crypto::keccak256;
    match &shown[0].content {
        Content::Image(m) => {
            assert_eq!(
                (m.data.clone(), m.hash, m.len),
                (png.clone(), keccak(&png), png.len())
            );
            assert!(shown[0].text.is_empty());
        }
        c => panic!("{c:?}"),
    }
    assert!(matches!(&shown[1].content, Content::Image(m) if m.data == png));
    assert_eq!(shown[1].text, "a caption");
    assert!(shown[1].describe().starts_with("[image PNG, "));
    assert!(shown[1].describe().ends_with(" a caption"));
    match &shown[2].content {
        Content::Audio { media, duration_ms } => {
            assert_eq!((media.data.clone(), *duration_ms), (aac.clone(), 1_500));
            assert!(shown[2].describe().starts_with("[audio AAC, 1.5 s, "));
        }
        c => panic!("{c:?}"),
    }
    assert_eq!(
        shown[3].content,
        Content::Sticker {
            hash: "e3010170122000".into(),
            pack: 3
        }
    );
    // The log: same entries, media bytes dropped, hashes kept.
    let log = bob.messenger.messages(CHAT);
    assert_eq!(log.len(), 4);
    match &log[0].content {
        Content::Image(m) => assert!(m.data.is_empty() && m.hash == keccak(&png) && m.len == png.len()),
        c => panic!("{c:?}"),
    }
    assert_eq!(log[0].describe(), shown[0].describe());
    assert_eq!(log[3].content, shown[3].content);
}

// ---- 1:1 chats, contact requests, groups, delivery, persistence ------------------------------------------

mod net {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use rand_chacha::ChaCha20Rng;
    use rand_core::RngCore;
    use status_sansio::chat::messenger::{Event, Input, Messenger, MessengerConfig, Output};
    use status_sansio::crypto::{PublicKey, SecretKey};
    use status_sansio::waku::message::{NewMessage, PostKey};
    use status_sansio::waku::{self, SubscriptionId, Topic, WakuConfig, WakuNode};
    use status_sansio::{Seed, Timestamp};

    pub struct Peer {
        pub key: SecretKey,
        pub messenger: Messenger,
        pub waku: WakuNode,
        pub events: Vec<Event>,
        pub online: bool,
        filters: BTreeMap<String, SubscriptionId>,
    }

    /// A post as seen on the network.
    pub struct Sent {
        pub from: usize,
        pub topic: Topic,
        pub asymmetric: bool,
        /// The message payload (a secure-transport `ProtocolMessage`).
        pub payload: Vec<u8>,
    }

    /// Messengers on real Waku message crypto (ECIES / AES-GCM, signatures, PoW), every post broadcast to
    /// every other online peer's Waku node; a virtual clock; seeded loss.
    pub struct Net {
        pub now: Timestamp,
        pub peers: Vec<Peer>,
        pub sent: Vec<Sent>,
        /// Probability (0..=100) that a post is lost for a given recipient.
        pub loss: u32,
        rng: ChaCha20Rng,
    }

    pub fn key(n: u64) -> SecretKey {
        SecretKey::random(&mut Seed::from_u64(n).rng())
    }

    impl Net {
        pub fn new(n: usize, seed: u64) -> Net {
            let now = Timestamp::from_secs(1_700_000_000);
            let mut net = Net {
                now,
                peers: vec![],
                sent: vec![],
                loss: 0,
                rng: Seed::from_u64(seed).rng(),
            };
            for i in 0..n {
                let k = key(1000 + i as u64);
                let m = Messenger::new(
                    MessengerConfig::new(k.clone(), format!("dev-{i}")),
                    &Seed::from_u64(seed * 100 + i as u64),
                    now,
                )
                .unwrap();
                net.add(k, m);
            }
            net.settle();
            net
        }

        pub fn add(&mut self, key: SecretKey, messenger: Messenger) -> usize {
            let n = self.peers.len() as u64;
            self.peers.push(Peer {
                key,
                messenger,
                waku: WakuNode::new(WakuConfig::default(), &Seed::from_u64(7000 + n)).unwrap(),
                events: vec![],
                online: true,
                filters: BTreeMap::new(),
            });
            self.peers.len() - 1
        }

        /// Replace peer `i`'s messenger (a restart) with a fresh Waku node.
        pub fn replace(&mut self, i: usize, messenger: Messenger) {
            let p = &mut self.peers[i];
            p.messenger = messenger;
            p.waku = WakuNode::new(WakuConfig::default(), &Seed::from_u64(8000 + i as u64)).unwrap();
            p.filters.clear();
            self.settle();
        }

        pub fn pk(&self, i: usize) -> PublicKey {
            self.peers[i].messenger.public_key()
        }

        pub fn input(&mut self, i: usize, input: Input) {
            let now = self.now;
            self.peers[i].messenger.handle_input(now, input).unwrap();
            self.settle();
        }

        pub fn try_input(
            &mut self,
            i: usize,
            input: Input,
        ) -> Result<(), status_sansio::chat::messenger::MessengerError> {
            let now = self.now;
            let r = self.peers[i].messenger.handle_input(now, input);
            self.settle();
            r
        }

        /// Carry out outputs until everything is quiet.
        pub fn settle(&mut self) {
            loop {
                let mut posts = vec![];
                for (i, p) in self.peers.iter_mut().enumerate() {
                    while let Some(o) = p.messenger.poll_output() {
                        match o {
                            Output::Subscribe { chat, filter } => {
                                let id = p.waku.unused_subscription_id();
                                let subscribe = waku::Input::Subscribe { id, filter };
                                p.waku.handle_input(self.now, subscribe).unwrap();
                                if let Some(old) = p.filters.insert(chat, id) {
                                    let unsubscribe = waku::Input::Unsubscribe { id: old };
                                    p.waku.handle_input(self.now, unsubscribe).unwrap();
                                }
                            }
                            Output::Unsubscribe { chat } => {
                                if let Some(id) = p.filters.remove(&chat) {
                                    let unsubscribe = waku::Input::Unsubscribe { id };
                                    p.waku.handle_input(self.now, unsubscribe).unwrap();
                                }
                            }
                            Output::Transmit(m) => posts.push((i, *m)),
                            Output::Event(e) => p.events.push(e),
                            other => panic!("unexpected output {other:?}"),
                        }
                    }
                }
                if posts.is_empty() {
                    break;
                }
                for (from, post) in posts {
                    if !self.peers[from].online {
                        continue;
                    }
                    self.broadcast(from, &post);
                }
            }
        }

        pub fn broadcast(&mut self, from: usize, post: &NewMessage) {
            self.sent.push(Sent {
                from,
                topic: post.topic,
                asymmetric: matches!(post.key, PostKey::Asymmetric(_)),
                payload: post.payload.clone(),
            });
            let now = self.now;
            let mut env = waku::message::wrap(&mut self.rng, now.as_secs(), post).unwrap();
            let mut sealer = waku::envelope::PowSealer::new(&env, post.pow_target);
            if let waku::envelope::SealProgress::Done { nonce, .. } = sealer.step(1 << 22) {
                env.nonce = nonce;
            }
            for j in 0..self.peers.len() {
                if j == from || !self.peers[j].online {
                    continue;
                }
                if self.loss > 0 && self.rng.next_u32() % 100 < self.loss {
                    continue;
                }
                let p = &mut self.peers[j];
                p.waku
                    .handle_input(now, waku::Input::Broadcast(env.clone()))
                    .unwrap();
                while let Some(o) = p.waku.poll_output() {
                    if let waku::Output::Event(waku::Event::Message(m)) = o {
                        p.messenger.handle_input(now, Input::Received(m)).unwrap();
                    }
                }
            }
        }

        /// Advance the virtual clock by `d` in 100 ms steps, firing due timers.
        pub fn run(&mut self, d: Duration) {
            let end = self.now + d;
            while self.now < end {
                self.now += Duration::from_millis(100);
                let now = self.now;
                for p in self.peers.iter_mut().filter(|p| p.online) {
                    if p.messenger.poll_timeout().is_some_and(|t| t <= now) {
                        p.messenger.handle_timeout(now);
                    }
                }
                self.settle();
            }
        }

        pub fn texts(&self, i: usize, chat: &str) -> Vec<String> {
            self.peers[i]
                .events
                .iter()
                .filter_map(|e| match e {
                    Event::MessageReceived {
                        chat: c,
                        message,
                        own: false,
                    } if c == chat => Some(message.text.clone()),
                    _ => None,
                })
                .collect()
        }

        pub fn count(&self, i: usize, f: impl Fn(&Event) -> bool) -> usize {
            self.peers[i].events.iter().filter(|e| f(e)).count()
        }

        pub fn dropped(&self, i: usize) -> Vec<String> {
            self.peers[i]
                .events
                .iter()
                .filter_map(|e| match e {
                    Event::Dropped { reason } => Some(reason.to_string()),
                    _ => None,
                })
                .collect()
        }
    }
}

use net::Net;
use status_sansio::chat::group::{encode_membership_update, new_event, sign_event, EventType};
use status_sansio::chat::identity::pubkey_to_hex;
use status_sansio::chat::messenger::{ChatKind, MessengerError};
use status_sansio::chat::payloads::{wrap, MessageKind};
use status_sansio::crypto::PublicKey;
use std::time::Duration;

fn send(net: &mut Net, i: usize, chat: &str, text: &str) {
    net.input(
        i,
        Input::SendText {
            chat: chat.into(),
            text: text.into(),
        },
    );
}

/// Deliver `plaintext` to peer `to` as if `from_key` sent it: DH-only secure-transport encryption from a
/// separate installation, ECIES on `to`'s partitioned topic, signed by `from_key` (a forger with a real
/// identity).
fn forge(net: &mut Net, from_key: &SecretKey, to: usize, plaintext: Vec<u8>) {
    let now = net.now;
    let to_pk = net.pk(to);
    let mut st = SecureTransport::new(
        secure::Config::default(),
        from_key.clone(),
        "forger".into(),
        &Seed::from_u64(77),
        now,
    )
    .unwrap();
    st.handle_input(
        now,
        secure::Input::EncryptDhOnly {
            recipient: to_pk,
            payload: plaintext,
        },
    )
    .unwrap();
    let bytes = loop {
        match st.poll_output() {
            Some(secure::Output::Transmit(o)) => break o.bytes,
            Some(_) => {}
            None => panic!("no output"),
        }
    };
    let post = NewMessage {
        topic: status::partitioned_topic(&to_pk),
        payload: bytes,
        key: PostKey::Asymmetric(to_pk),
        signer: Some(from_key.clone()),
        ttl: 15,
        pow_target: 0.002,
        padding: None,
    };
    let online: Vec<bool> = net.peers.iter().map(|p| p.online).collect();
    for (j, p) in net.peers.iter_mut().enumerate() {
        p.online = j == to;
    }
    // Sent "from" a peer that is not `to` (index to+1 mod n is only used for bookkeeping).
    let from = (to + 1) % net.peers.len();
    net.peers[from].online = true;
    net.broadcast(from, &post);
    for (j, p) in net.peers.iter_mut().enumerate() {
        p.online = online[j];
    }
    net.settle();
}

#[test]
fn one_to_one_first_contact_negotiated_switch_contact_request_and_delivery() {
    let mut net = Net::new(2, 1);
    let (alice, bob) = (net.pk(0), net.pk(1));
    let chat_at_alice = Messenger::one_to_one_chat_id(&bob);
    let chat_at_bob = Messenger::one_to_one_chat_id(&alice);
    assert_eq!(chat_at_alice, pubkey_to_hex(&bob));
    assert!(chat_at_alice.starts_with("0x04") && chat_at_alice.len() == 132);

    net.input(0, Input::StartOneToOne(bob));
    net.input(0, Input::StartOneToOne(bob)); // idempotent
    assert_eq!(
        net.peers[0].messenger.chat_kind(&chat_at_alice),
        Some(ChatKind::OneToOne)
    );
    send(&mut net, 0, &chat_at_alice, "hi bob");
    net.run(Duration::from_secs(2));
    // First contact: no bundle of Bob, so DH-only ECIES on Bob's partitioned topic.
    let first = net.sent.iter().find(|s| s.from == 0).unwrap();
    assert!(first.asymmetric);
    assert_eq!(first.topic, status::partitioned_topic(&bob));
    assert_eq!(net.texts(1, &chat_at_bob), vec!["hi bob"]);
    let requests = |net: &Net, i| net.count(i, |e| matches!(e, Event::ContactRequest { .. }));
    assert_eq!(requests(&net, 1), 1);
    assert!(net.peers[1].events.iter().any(
        |e| matches!(e, Event::ContactRequest { from, chat } if *from == alice && *chat == chat_at_bob)
    ));
    // Bob's MVDS ACK came back: Alice's text is delivered to Bob.
    let delivered = |net: &Net, i, to: PublicKey| {
        net.count(i, |e| matches!(e, Event::Delivered { to: t, .. } if *t == to))
    };
    assert_eq!(delivered(&net, 0, bob), 1);

    // Bob answers in the chat the request created; Alice gets it (no contact request: she started it).
    send(&mut net, 1, &chat_at_bob, "hi alice");
    net.run(Duration::from_secs(2));
    assert_eq!(net.texts(0, &chat_at_alice), vec!["hi alice"]);
    assert_eq!(requests(&net, 0), 0);
    assert_eq!(delivered(&net, 1, alice), 1);

    // Both have written to each other: further traffic is symmetric on the negotiated topic.
    let mark = net.sent.len();
    send(&mut net, 0, &chat_at_alice, "second");
    send(&mut net, 1, &chat_at_bob, "second back");
    net.run(Duration::from_secs(2));
    let secret = status::negotiated_secret(&net.peers[0].key, &bob);
    let negotiated = status::negotiated_topic(&secret);
    let later: Vec<_> = net.sent[mark..].iter().collect();
    assert!(!later.is_empty());
    assert!(
        later.iter().all(|s| !s.asymmetric && s.topic == negotiated),
        "after both wrote, every post is on the negotiated topic"
    );
    assert_eq!(net.texts(1, &chat_at_bob), vec!["hi bob", "second"]);
    assert_eq!(net.texts(0, &chat_at_alice), vec!["hi alice", "second back"]);
    assert_eq!(requests(&net, 1), 1, "the contact request is raised once");
    assert_eq!(delivered(&net, 0, bob), 2);
    assert_eq!(net.peers[0].messenger.messages(&chat_at_alice).len(), 4);
    assert_eq!(net.peers[0].messenger.pending_deliveries(), 0);
    // A 1:1 chat with ourselves is refused.
    assert_eq!(
        net.try_input(0, Input::StartOneToOne(alice)),
        Err(MessengerError::OwnKey)
    );
}

#[test]
fn one_to_one_survives_loss_through_mvds_retransmission() {
    let mut net = Net::new(2, 2);
    let bob = net.pk(1);
    let chat = Messenger::one_to_one_chat_id(&bob);
    net.input(0, Input::StartOneToOne(bob));
    net.loss = 50;
    for k in 0..5 {
        send(&mut net, 0, &chat, &format!("m{k}"));
    }
    net.run(Duration::from_secs(30));
    net.loss = 0;
    net.run(Duration::from_secs(30));
    let mut got = net.texts(1, &Messenger::one_to_one_chat_id(&net.pk(0)));
    got.sort();
    assert_eq!(
        got,
        vec!["m0", "m1", "m2", "m3", "m4"],
        "every text once, despite loss"
    );
    assert_eq!(
        net.count(0, |e| matches!(e, Event::Delivered { .. })),
        5,
        "every text delivered once"
    );
}

fn group_view(net: &Net, i: usize, chat: &str) -> (String, Vec<String>, Vec<String>) {
    let g = net.peers[i].messenger.group(chat).unwrap();
    (
        g.name().to_string(),
        g.members().iter().cloned().collect(),
        g.admins().iter().cloned().collect(),
    )
}

#[test]
fn group_lifecycle_every_member_sees_the_same_membership() {
    let mut net = Net::new(4, 3);
    let (a, b, c, d) = (net.pk(0), net.pk(1), net.pk(2), net.pk(3));
    net.input(
        0,
        Input::CreateGroup {
            name: "team".into(),
            members: vec![b, c],
        },
    );
    let chat = net.peers[0]
        .events
        .iter()
        .find_map(|e| match e {
            Event::GroupCreated { chat, name } if name == "team" => Some(chat.clone()),
            _ => None,
        })
        .unwrap();
    assert!(chat.ends_with(&format!("-{}", pubkey_to_hex(&a))));
    assert_eq!(chat.len(), 36 + 1 + 132);
    net.run(Duration::from_secs(2));
    let view = group_view(&net, 0, &chat);
    assert_eq!(view.1.len(), 3);
    for i in [1, 2] {
        assert_eq!(group_view(&net, i, &chat), view, "member {i}");
        assert!(net.peers[i].events.iter().any(|e| matches!(
            e,
            Event::MembershipChanged { chat: ch, removed_self: false, .. } if *ch == chat
        )));
    }
    assert!(
        net.peers[3].messenger.group(&chat).is_none(),
        "not a member, not told"
    );

    // A text reaches both members once; the sender sees it delivered to both.
    send(&mut net, 0, &chat, "hello team");
    net.run(Duration::from_secs(2));
    assert_eq!(net.texts(1, &chat), vec!["hello team"]);
    assert_eq!(net.texts(2, &chat), vec!["hello team"]);
    assert_eq!(
        net.count(
            0,
            |e| matches!(e, Event::Delivered { chat: ch, .. } if *ch == chat)
        ),
        2
    );

    // Non-admin changes are refused locally.
    for input in [
        Input::RenameGroup {
            chat: chat.clone(),
            name: "mine".into(),
        },
        Input::AddMembers {
            chat: chat.clone(),
            members: vec![d],
        },
        Input::RemoveMember {
            chat: chat.clone(),
            member: c,
        },
        Input::MakeAdmin {
            chat: chat.clone(),
            member: b,
        },
    ] {
        assert!(matches!(net.try_input(1, input), Err(MessengerError::Chat(_))));
    }
    // Admin operations, seen identically everywhere.
    net.input(
        0,
        Input::MakeAdmin {
            chat: chat.clone(),
            member: b,
        },
    );
    net.run(Duration::from_secs(2));
    net.input(
        1,
        Input::RenameGroup {
            chat: chat.clone(),
            name: "renamed".into(),
        },
    );
    net.run(Duration::from_secs(2));
    net.input(
        0,
        Input::AddMembers {
            chat: chat.clone(),
            members: vec![d],
        },
    );
    net.run(Duration::from_secs(2));
    let view = group_view(&net, 0, &chat);
    assert_eq!(view.0, "renamed");
    assert_eq!(view.1.len(), 4);
    assert_eq!(view.2, {
        let mut v = vec![pubkey_to_hex(&a), pubkey_to_hex(&b)];
        v.sort();
        v
    });
    for i in 1..4 {
        assert_eq!(group_view(&net, i, &chat), view, "member {i}");
    }

    // Carol is removed: she learns it, and never gets what follows.
    net.input(
        0,
        Input::RemoveMember {
            chat: chat.clone(),
            member: c,
        },
    );
    net.run(Duration::from_secs(2));
    assert!(net.peers[2].events.iter().any(|e| matches!(
        e,
        Event::MembershipChanged { chat: ch, removed_self: true, .. } if *ch == chat
    )));
    // Once the removal reached Carol, she is out of Alice's pairwise MVDS group (no 1:1 chat with her).
    let pair = status_sansio::mvds::GroupId::one_to_one(&a, &c);
    assert_eq!(net.peers[0].messenger.mvds().peers(&pair).count(), 0);
    let pair_b = status_sansio::mvds::GroupId::one_to_one(&a, &b);
    assert_eq!(net.peers[0].messenger.mvds().peers(&pair_b).count(), 1);
    send(&mut net, 0, &chat, "after carol");
    send(&mut net, 3, &chat, "dave here");
    net.run(Duration::from_secs(3));
    assert_eq!(
        net.texts(2, &chat),
        vec!["hello team"],
        "removed member gets nothing later"
    );
    assert_eq!(
        net.texts(1, &chat),
        vec!["hello team", "after carol", "dave here"]
    );
    assert_eq!(net.texts(3, &chat), vec!["after carol"]);
    assert!(matches!(
        net.try_input(
            2,
            Input::SendText {
                chat: chat.clone(),
                text: "x".into()
            }
        ),
        Err(MessengerError::NotMember(_))
    ));
    let view = group_view(&net, 0, &chat);
    assert_eq!(view.1.len(), 3);
    for i in [1, 3] {
        assert_eq!(group_view(&net, i, &chat), view, "member {i}");
    }

    // Bob leaves; the others see it; Bob gets no later texts.
    net.input(1, Input::LeaveGroup { chat: chat.clone() });
    net.run(Duration::from_secs(2));
    send(&mut net, 0, &chat, "after bob");
    net.run(Duration::from_secs(2));
    let view = group_view(&net, 0, &chat);
    assert_eq!(
        view.1,
        vec![pubkey_to_hex(&a), pubkey_to_hex(&d)]
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
    assert_eq!(group_view(&net, 3, &chat), view);
    assert!(!net.texts(1, &chat).contains(&"after bob".to_string()));
    assert!(net.texts(3, &chat).contains(&"after bob".to_string()));

    // Carol (removed) forges a text with the group's events: members drop it.
    let carol_key = net.peers[2].key.clone();
    let events = net.peers[0].messenger.group(&chat).unwrap().events().to_vec();
    let cm = pb::ChatMessage {
        clock: net.now.as_millis() + 10,
        timestamp: net.now.as_millis(),
        text: "sneaky".into(),
        chat_id: chat.to_string(),
        message_type: pb::MessageType::PrivateGroup as i32,
        content_type: pb::chat_message::ContentType::TextPlain as i32,
        ..Default::default()
    };
    let body = encode_membership_update(
        &chat,
        &events,
        Some(&pb::membership_update_message::ChatEntity::Message(cm)),
    );
    let w = wrap(&body, MessageKind::MembershipUpdateMessage, &carol_key).unwrap();
    let before = net.dropped(3).len();
    forge(&mut net, &carol_key, 3, w.bytes.to_vec());
    assert!(!net.texts(3, &chat).contains(&"sneaky".to_string()));
    assert_eq!(net.dropped(3).len(), before + 1, "{:?}", net.dropped(3));

    // Dave (member, not admin) forges a rename event: the fold rejects it, the name stays.
    let dave_key = net.peers[3].key.clone();
    let mut evs = events.clone();
    let rename = new_event(EventType::NameChanged, net.now.as_millis() + 20, &[], "hijacked");
    evs.push(sign_event(&chat, &rename, &dave_key).unwrap());
    let body = encode_membership_update(&chat, &evs, None);
    let w = wrap(&body, MessageKind::MembershipUpdateMessage, &dave_key).unwrap();
    forge(&mut net, &dave_key, 0, w.bytes.to_vec());
    assert_eq!(net.peers[0].messenger.group(&chat).unwrap().name(), "renamed");
    assert!(
        net.dropped(0).iter().any(|r| r.contains("admin")),
        "{:?}",
        net.dropped(0)
    );
}

#[test]
fn export_import_round_trip_resumes_sessions_chats_and_groups() {
    let mut net = Net::new(3, 4);
    let (bob, carol) = (net.pk(1), net.pk(2));
    let chat = Messenger::one_to_one_chat_id(&bob);
    net.input(0, Input::StartOneToOne(bob));
    net.input(0, Input::JoinPublicChat("status".into()));
    send(&mut net, 0, &chat, "one");
    net.run(Duration::from_secs(2));
    let back = Messenger::one_to_one_chat_id(&net.pk(0));
    send(&mut net, 1, &back, "two");
    net.run(Duration::from_secs(2));
    net.input(
        0,
        Input::CreateGroup {
            name: "g".into(),
            members: vec![bob, carol],
        },
    );
    net.run(Duration::from_secs(2));
    let group = net.peers[0]
        .messenger
        .chats()
        .find(|c| c.contains('-') && c.len() > 132)
        .unwrap()
        .to_string();

    let m = &net.peers[0].messenger;
    let state = m.export();
    let chats: Vec<String> = m.chats().map(str::to_string).collect();
    let history: Vec<_> = m.messages(&chat).into_iter().cloned().collect();
    let gstate = m.group(&group).unwrap().clone();
    let sessions = m.secure().session_count();
    let cfg = MessengerConfig::new(net.peers[0].key.clone(), "dev-0".into());
    let restored = Messenger::import(cfg.clone(), &Seed::from_u64(4242), net.now, &state).unwrap();
    assert_eq!(restored.chats().map(str::to_string).collect::<Vec<_>>(), chats);
    assert_eq!(
        restored.messages(&chat).into_iter().cloned().collect::<Vec<_>>(),
        history
    );
    assert_eq!(restored.group(&group).unwrap(), &gstate);
    assert_eq!(restored.secure().session_count(), sessions);
    assert!(restored.negotiated_topics() >= 1);
    // Importing twice gives the same state (deterministic) and exporting again the same chats.
    let again = Messenger::import(cfg.clone(), &Seed::from_u64(4242), net.now, &restored.export()).unwrap();
    assert_eq!(again.chats().count(), chats.len());
    net.replace(0, restored);

    // The restarted Alice still talks in the 1:1 chat (ratchet sessions resumed) and the group.
    send(&mut net, 0, &chat, "three");
    send(&mut net, 1, &back, "four");
    send(&mut net, 0, &group, "group after restart");
    net.run(Duration::from_secs(3));
    assert_eq!(net.texts(1, &back), vec!["one", "three"]);
    assert_eq!(
        net.texts(0, &chat),
        vec!["two", "four"],
        "decrypts after the restart"
    );
    assert_eq!(net.texts(2, &group), vec!["group after restart"]);
    assert_eq!(net.count(0, |e| matches!(e, Event::ContactRequest { .. })), 0);
    // Wrong identity: refused.
    let other = MessengerConfig::new(net::key(99), "x".into());
    assert!(matches!(
        Messenger::import(other, &Seed::from_u64(1), net.now, &state),
        Err(MessengerError::InvalidState(_))
    ));
}

#[test]
fn import_of_garbage_is_a_typed_error() {
    let mut net = Net::new(2, 5);
    let bob = net.pk(1);
    let chat = Messenger::one_to_one_chat_id(&bob);
    net.input(0, Input::StartOneToOne(bob));
    net.input(
        0,
        Input::CreateGroup {
            name: "g".into(),
            members: vec![bob],
        },
    );
    send(&mut net, 0, &chat, "x");
    net.run(Duration::from_secs(2));
    let state = net.peers[0].messenger.export();
    let cfg = MessengerConfig::new(net.peers[0].key.clone(), "dev-0".into());
    let now = net.now;
    let import = |b: &[u8]| Messenger::import(cfg.clone(), &Seed::from_u64(3), now, b);
    assert!(import(&state).is_ok());
    assert!(import(&[]).is_err());
    assert!(import(b"SSMS").is_err());
    let mut rng = Seed::from_u64(6).rng();
    for _ in 0..200 {
        let n = (rand_core::RngCore::next_u32(&mut rng) % 512) as usize;
        let mut v = vec![0u8; n];
        rand_core::RngCore::fill_bytes(&mut rng, &mut v);
        assert!(import(&v).is_err());
    }
    // Every truncation fails (the format has no optional tail).
    let step = (state.len() / 300).max(1);
    for len in (0..state.len()).step_by(step) {
        assert!(import(&state[..len]).is_err(), "truncated at {len}");
    }
    // Trailing bytes, a wrong version, a wrong magic.
    let mut v = state.to_vec();
    v.push(0);
    assert_eq!(
        import(&v).err(),
        Some(MessengerError::InvalidState("trailing bytes"))
    );
    let mut v = state.to_vec();
    v[4] = 9;
    assert_eq!(import(&v).err(), Some(MessengerError::InvalidState("version")));
    let mut v = state.to_vec();
    v[0] = b'X';
    assert_eq!(import(&v).err(), Some(MessengerError::InvalidState("magic")));
    // Bit flips anywhere: an error or a state, never a panic.
    for k in 0..400 {
        let mut v = state.to_vec();
        let i = (rand_core::RngCore::next_u32(&mut rng) as usize) % v.len();
        v[i] ^= 1 << (k % 8);
        let _ = import(&v);
    }
}

#[test]
fn delivery_failed_when_the_recipient_never_answers() {
    let mut net = Net::new(2, 6);
    let bob = net.pk(1);
    let mut cfg = MessengerConfig::new(net.peers[0].key.clone(), "dev-0".into());
    cfg.mvds.max_send_count = Some(3);
    let m = Messenger::new(cfg, &Seed::from_u64(61), net.now).unwrap();
    net.replace(0, m);
    net.peers[1].online = false;
    let chat = Messenger::one_to_one_chat_id(&bob);
    net.input(0, Input::StartOneToOne(bob));
    send(&mut net, 0, &chat, "lost");
    let id = net.peers[0].messenger.messages(&chat)[0].id;
    net.run(Duration::from_secs(30));
    let failed: Vec<_> = net.peers[0]
        .events
        .iter()
        .filter(|e| matches!(e, Event::DeliveryFailed { .. }))
        .collect();
    assert_eq!(
        failed,
        vec![&Event::DeliveryFailed {
            chat: chat.clone(),
            id,
            to: bob
        }]
    );
    assert_eq!(net.count(0, |e| matches!(e, Event::Delivered { .. })), 0);
    assert_eq!(net.peers[0].messenger.pending_deliveries(), 0);
    // The three transmissions all went out (to nobody).
    assert_eq!(net.sent.iter().filter(|s| s.from == 0).count(), 3);
}

#[test]
fn caps_hold_for_chats_groups_and_tracked_deliveries() {
    let mut net = Net::new(3, 7);
    let (bob, carol) = (net.pk(1), net.pk(2));
    let mut cfg = MessengerConfig::new(net.peers[0].key.clone(), "dev-0".into());
    cfg.max_one_to_one_chats = 1;
    cfg.max_groups = 1;
    cfg.max_tracked_deliveries = 3;
    cfg.max_members_per_group = 2;
    net.replace(0, Messenger::new(cfg, &Seed::from_u64(71), net.now).unwrap());
    let alice = net.pk(0);
    // A group of three is over the member cap; a group of two is fine; a second group is over the cap.
    assert!(net
        .try_input(
            0,
            Input::CreateGroup {
                name: "big".into(),
                members: vec![bob, carol]
            }
        )
        .is_err());
    net.input(
        0,
        Input::CreateGroup {
            name: "g".into(),
            members: vec![bob],
        },
    );
    assert_eq!(
        net.try_input(
            0,
            Input::CreateGroup {
                name: "g2".into(),
                members: vec![]
            }
        ),
        Err(MessengerError::TooManyChats)
    );
    // One 1:1 chat allowed: Bob's; Carol's first message is dropped, no contact request.
    net.input(0, Input::StartOneToOne(bob));
    assert_eq!(
        net.try_input(0, Input::StartOneToOne(carol)),
        Err(MessengerError::TooManyChats)
    );
    net.input(2, Input::StartOneToOne(alice));
    send(&mut net, 2, &Messenger::one_to_one_chat_id(&alice), "hi");
    net.run(Duration::from_secs(2));
    assert_eq!(net.count(0, |e| matches!(e, Event::ContactRequest { .. })), 0);
    assert!(net.dropped(0).iter().any(|r| r.contains("1:1 chat limit")));
    // Tracked deliveries stay within their cap while Bob is offline.
    net.peers[1].online = false;
    let chat = Messenger::one_to_one_chat_id(&bob);
    for k in 0..6 {
        send(&mut net, 0, &chat, &format!("m{k}"));
    }
    assert_eq!(net.peers[0].messenger.pending_deliveries(), 3);
    assert_eq!(net.peers[0].messenger.chats().count(), 2);
}

#[test]
fn one_to_one_still_arrives_when_a_public_chat_shares_the_partitioned_topic() {
    // A public chat named like Bob's partition ("contact-discovery-N") has exactly the topic of Bob's
    // partitioned topic. Messages on it that the secure transport opens as direct messages must still
    // reach the 1:1 chat (they were dropped as "not a public message" after the ratchet consumed them).
    let mut net = Net::new(2, 1);
    let bob = net.pk(1);
    let alice = net.pk(0);
    let colliding = format!("contact-discovery-{}", status::partition(&bob));
    assert_eq!(
        status::public_chat_topic(&colliding),
        status::partitioned_topic(&bob)
    );
    net.input(1, Input::JoinPublicChat(colliding.clone().into()));
    net.input(0, Input::StartOneToOne(bob));
    send(&mut net, 0, &Messenger::one_to_one_chat_id(&bob), "hi bob");
    net.run(Duration::from_secs(2));
    assert_eq!(
        net.texts(1, &Messenger::one_to_one_chat_id(&alice)),
        vec!["hi bob"],
        "dropped: {:?}",
        net.dropped(1)
    );
    // The public chat itself still works on that topic.
    net.input(0, Input::JoinPublicChat(colliding.clone().into()));
    send(&mut net, 0, &colliding, "public hello");
    net.run(Duration::from_secs(2));
    assert_eq!(net.texts(1, &colliding), vec!["public hello"]);
}

#[test]
fn strangers_cannot_fill_the_one_to_one_table_for_good() {
    // Alice keeps at most two 1:1 chats. Unanswered contact requests give way, oldest first, to new
    // ones; chats she started or wrote in never do. The distinction survives export and import.
    let mut net = Net::new(5, 11);
    let mut cfg = MessengerConfig::new(net.peers[0].key.clone(), "dev-0".into());
    cfg.max_one_to_one_chats = 2;
    net.replace(
        0,
        Messenger::new(cfg.clone(), &Seed::from_u64(72), net.now).unwrap(),
    );
    let alice = net.pk(0);
    let to_alice = Messenger::one_to_one_chat_id(&alice);
    let chats = |net: &Net| {
        let mut v: Vec<String> = net.peers[0].messenger.chats().map(str::to_string).collect();
        v.sort();
        v
    };
    let ids = |net: &Net, peers: &[usize]| {
        let mut v: Vec<String> = peers
            .iter()
            .map(|&i| Messenger::one_to_one_chat_id(&net.pk(i)).into_string())
            .collect();
        v.sort();
        v
    };
    let write = |net: &mut Net, i: usize, text: &str| {
        net.input(i, Input::StartOneToOne(alice));
        send(net, i, &to_alice, text);
        net.run(Duration::from_secs(2));
    };
    net.input(0, Input::StartOneToOne(net.pk(1)));
    write(&mut net, 2, "from 2");
    assert_eq!(chats(&net), ids(&net, &[1, 2]));
    write(&mut net, 3, "from 3");
    assert_eq!(chats(&net), ids(&net, &[1, 3]), "2's unanswered request gave way");
    assert_eq!(net.count(0, |e| matches!(e, Event::ContactRequest { .. })), 2);
    // Restart: 3's chat is still only a contact request.
    let state = net.peers[0].messenger.export();
    let restored = Messenger::import(cfg, &Seed::from_u64(73), net.now, &state).unwrap();
    net.replace(0, restored);
    write(&mut net, 4, "from 4");
    assert_eq!(chats(&net), ids(&net, &[1, 4]), "3's unanswered request gave way");
    // Alice answers 4: now both chats are hers, and a new stranger is refused.
    let to_4 = Messenger::one_to_one_chat_id(&net.pk(4));
    send(&mut net, 0, &to_4, "hello 4");
    write(&mut net, 2, "from 2 again");
    assert_eq!(chats(&net), ids(&net, &[1, 4]));
    assert!(net
        .dropped(0)
        .iter()
        .any(|r| r.contains("1:1 chat limit reached")));
    assert_eq!(net.texts(0, &to_4), vec!["from 4"]);
}

#[test]
fn strangers_cannot_fill_the_group_table_for_good() {
    // Alice keeps at most one group. A group someone added her to and she never wrote in gives way to a
    // newer one; once she writes in a group, it stays and newer ones are refused.
    let mut net = Net::new(3, 12);
    let mut cfg = MessengerConfig::new(net.peers[0].key.clone(), "dev-0".into());
    cfg.max_groups = 1;
    net.replace(0, Messenger::new(cfg, &Seed::from_u64(74), net.now).unwrap());
    let alice = net.pk(0);
    let groups = |net: &Net| {
        net.peers[0]
            .messenger
            .chats()
            .filter(|c| net.peers[0].messenger.chat_kind(c) == Some(ChatKind::Group))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let create = |net: &mut Net, i: usize, name: &str| {
        net.input(
            i,
            Input::CreateGroup {
                name: name.into(),
                members: vec![alice],
            },
        );
        net.run(Duration::from_secs(3));
        net.peers[i]
            .messenger
            .chats()
            .find(|c| net.peers[i].messenger.group(c).is_some_and(|g| g.name() == name))
            .unwrap()
            .to_string()
    };
    let g1 = create(&mut net, 1, "first");
    assert_eq!(groups(&net), vec![g1.clone()]);
    let g2 = create(&mut net, 2, "second");
    assert_eq!(
        groups(&net),
        vec![g2.clone()],
        "the group alice never wrote in gave way"
    );
    send(&mut net, 0, &g2, "I am in");
    net.run(Duration::from_secs(3));
    let _g3 = create(&mut net, 1, "third");
    assert_eq!(groups(&net), vec![g2], "a group alice wrote in stays");
    assert!(net.dropped(0).iter().any(|r| r.contains("group limit reached")));
}

#[test]
fn our_bundle_is_advertised_on_our_contact_code_topic() {
    use prost::Message as _;
    use status_sansio::chat::messenger::CONTACT_CODE_FIRST_ADVERT;
    use status_sansio::chat::payloads::unwrap;
    let key = net::key(5);
    let me = key.public_key();
    let t0 = Timestamp::from_secs(1_700_000_000);
    let mut m = Messenger::new(MessengerConfig::new(key, "dev".into()), &Seed::from_u64(5), t0).unwrap();
    let posts = |m: &mut Messenger| {
        let mut v = vec![];
        while let Some(o) = m.poll_output() {
            if let Output::Transmit(p) = o {
                v.push(p);
            }
        }
        v
    };
    posts(&mut m);
    assert_eq!(m.poll_timeout(), Some(t0 + CONTACT_CODE_FIRST_ADVERT));
    m.handle_timeout(t0 + (CONTACT_CODE_FIRST_ADVERT - Duration::from_secs(1)));
    assert!(posts(&mut m).is_empty());
    let first = t0 + CONTACT_CODE_FIRST_ADVERT;
    m.handle_timeout(first);
    let p = posts(&mut m);
    assert_eq!(p.len(), 1);
    let p = &p[0];
    assert_eq!(p.topic, status::contact_code_topic(&me));
    assert!(matches!(&p.key, PostKey::Symmetric(k) if **k == *status::contact_code_key(&me)));
    assert_eq!(p.signer.as_ref().map(|s| s.public_key()), Some(me));
    // A ProtocolMessage carrying our bundle, around a signed CONTACT_CODE_ADVERTISEMENT.
    let pm = status_proto::encryption::ProtocolMessage::decode(&p.payload[..]).unwrap();
    assert_eq!(pm.bundles.len(), 1);
    let u = unwrap(&pm.public_message, None).unwrap();
    assert_eq!(u.kind, MessageKind::ContactCodeAdvertisement as i32);
    assert_eq!(u.author, Some(me));
    assert!(u.signed);
    // Then every 6 hours.
    assert_eq!(m.poll_timeout(), Some(first + Duration::from_secs(6 * 3600)));
    m.handle_timeout(first + Duration::from_secs(3600));
    assert!(posts(&mut m).is_empty());
    m.handle_timeout(first + Duration::from_secs(6 * 3600));
    assert_eq!(posts(&mut m).len(), 1);
}

/// The encrypted entries of the first post `from` made to `to`'s partitioned topic after `mark`.
fn first_direct_entries(
    net: &Net,
    mark: usize,
    from: usize,
    to: usize,
) -> Vec<status_proto::encryption::EncryptedMessageProtocol> {
    use prost::Message as _;
    let topic = status::partitioned_topic(&net.pk(to));
    let post = net.sent[mark..]
        .iter()
        .find(|s| s.from == from && s.topic == topic && s.asymmetric)
        .expect("a direct post");
    let pm = status_proto::encryption::ProtocolMessage::decode(&post.payload[..]).unwrap();
    pm.encrypted_message.into_values().collect()
}

/// Contact codes: Alice listens on the contact-code topic of Bob, her contact; Bob's advertisement
/// gives her his bundle, so her first message to him starts an X3DH session (an X3DH header on a
/// double-ratchet message, a session stored) instead of going DH-only, and Bob decrypts it. Carol, whose
/// advertisement went out before Alice listened to her, gets the DH-only first contact. When Bob's
/// prekey rotates, his next advertisement moves Alice to the new prekey.
#[test]
fn first_contact_through_a_contact_code_advertisement_uses_x3dh() {
    use status_sansio::secure::dh::CompressedKey;
    let mut net = Net::new(0, 3);
    for i in 0..3u64 {
        let k = net::key(1000 + i);
        let mut c = MessengerConfig::new(k.clone(), format!("dev-{i}"));
        c.secure.bundle_refresh_interval = Duration::from_secs(3600);
        c.contact_code_interval = Some(Duration::from_secs(3600));
        let m = Messenger::new(c, &Seed::from_u64(300 + i), net.now).unwrap();
        net.add(k, m);
    }
    net.settle();
    let (bob, carol) = (net.pk(1), net.pk(2));
    net.input(0, Input::StartOneToOne(bob));
    assert_eq!(net.peers[0].messenger.contact_code_topics(), 1);
    // Bob (and Carol) advertise 120 s after start.
    net.run(Duration::from_secs(125));
    let adverts = |net: &Net, who| {
        net.sent
            .iter()
            .filter(|s| s.topic == status::contact_code_topic(&who))
            .count()
    };
    assert_eq!((adverts(&net, bob), adverts(&net, carol)), (1, 1));
    assert_eq!(net.peers[0].messenger.secure().session_count(), 0);
    assert!(net.dropped(0).is_empty(), "{:?}", net.dropped(0));

    let mark = net.sent.len();
    let to_bob = Messenger::one_to_one_chat_id(&bob);
    send(&mut net, 0, &to_bob, "first contact, forward secret");
    net.run(Duration::from_secs(2));
    let entries = first_direct_entries(&net, mark, 0, 1);
    assert!(!entries.is_empty());
    for e in &entries {
        assert!(e.x3dh_header.is_some() && e.dr_header.is_some(), "{e:?}");
        assert!(e.dh_header.is_none());
    }
    assert_eq!(net.peers[0].messenger.secure().session_count(), 1);
    let alice_hex = Messenger::one_to_one_chat_id(&net.pk(0));
    assert_eq!(net.texts(1, &alice_hex), vec!["first contact, forward secret"]);

    // Carol advertised before Alice listened to her: DH-only, as before.
    net.input(0, Input::StartOneToOne(carol));
    let mark = net.sent.len();
    send(&mut net, 0, &Messenger::one_to_one_chat_id(&carol), "hi carol");
    net.run(Duration::from_secs(2));
    let entries = first_direct_entries(&net, mark, 0, 2);
    assert!(entries
        .iter()
        .all(|e| e.dh_header.is_some() && e.x3dh_header.is_none()));
    assert_eq!(net.texts(2, &alice_hex), vec!["hi carol"]);

    // Bob's prekey rotates after an hour; his next advertisement brings the new one to Alice.
    let bob_c = CompressedKey::from_public(&bob);
    let prekey = |net: &Net| {
        let v: Vec<_> = net.peers[0]
            .messenger
            .secure()
            .installations()
            .of(&bob_c)
            .filter_map(|i| i.signed_pre_key)
            .collect();
        assert_eq!(v.len(), 1);
        v[0]
    };
    let before = prekey(&net);
    net.run(Duration::from_secs(3600));
    assert_eq!(adverts(&net, bob), 2);
    let after = prekey(&net);
    assert!(
        after.1 > before.1 && after.0 != before.0,
        "{before:?} -> {after:?}"
    );
    assert!(net.dropped(0).is_empty(), "{:?}", net.dropped(0));

    // After an import the contacts' topics are listened to again from the first timer (no PBKDF2 in
    // the import itself), at most `max_contact_codes` of them.
    let state = net.peers[0].messenger.export();
    let mut cfg = MessengerConfig::new(net.peers[0].key.clone(), "dev-0".into());
    cfg.max_contact_codes = 1;
    let mut m = Messenger::import(cfg, &Seed::from_u64(9), net.now, &state).unwrap();
    assert_eq!(m.contact_code_topics(), 0);
    assert!(m.poll_timeout().is_some_and(|t| t <= net.now));
    m.handle_timeout(net.now);
    assert_eq!(m.contact_code_topics(), 1);
    let mut subs = 0;
    while let Some(o) = m.poll_output() {
        if let Output::Subscribe { chat, .. } = o {
            subs += usize::from(chat.starts_with(messenger_prefix()));
        }
    }
    assert_eq!(subs, 1);
}

fn messenger_prefix() -> &'static str {
    status_sansio::chat::messenger::CONTACT_CODE_SUBSCRIPTION_PREFIX
}

/// An invalid configuration is an error naming the layer, never replaced by defaults.
#[test]
fn invalid_configuration_is_an_error() {
    use status_sansio::chat::messenger::MessengerError;
    use status_sansio::mvds::MvdsError;
    let now = Timestamp::from_secs(1_700_000_000);
    let mut cfg = MessengerConfig::new(net::key(7), "dev".into());
    cfg.mvds.tick = core::time::Duration::ZERO;
    let r = Messenger::new(cfg, &Seed::from_u64(1), now);
    assert_eq!(
        r.err(),
        Some(MessengerError::Mvds(MvdsError::InvalidConfig("tick below 1 ms")))
    );
    let mut cfg = MessengerConfig::new(net::key(7), "dev".into());
    cfg.secure.max_queued_outputs = 0;
    let r = Messenger::new(cfg, &Seed::from_u64(1), now);
    assert_eq!(
        r.err(),
        Some(MessengerError::Secure(secure::SecureError::InvalidConfig(
            "max_queued_outputs is 0"
        )))
    );
    let mut cfg = MessengerConfig::new(net::key(7), "dev".into());
    cfg.max_queued_outputs = 0;
    let r = Messenger::new(cfg, &Seed::from_u64(1), now);
    assert_eq!(
        r.err(),
        Some(MessengerError::InvalidConfig("max_queued_outputs is 0"))
    );
}
