//! End to end: the cost of one 1:1 message through every layer, and where it goes.
//!
//! (a) **Total**: two full node [`Engine`]s with Messengers (alice, bob) wired back to back by an
//!     in-bench zero-latency link (one's `Output::Transmit` is the other's `Input::Received`), on a virtual
//!     clock (advanced to the earliest `poll_timeout` whenever nothing moves, so MVDS epochs and the Waku
//!     transmission cycle cost no wall time). Set up once: connect, open the 1:1 chat, exchange a text
//!     each way (sessions and the negotiated topic exist). Measured in steady state, 100-byte texts from
//!     alice: `SendText` until bob's `MessageReceived` (one way, the figure the layers add up to);
//!     until alice's `Delivered` (round trip: bob's MVDS ACK comes back through every layer); and all the
//!     work one message sets off (round trip plus 3 s of virtual time). Everything a message sets off
//!     settles before the next one is sent, so bob's ACK always precedes alice's next message and every
//!     message opens a new Double Ratchet chain on the receiving side, as in a conversation.
//!     With a zero-latency link a round trip still takes about 1.2 s of virtual time (two MVDS epochs and
//!     two Waku transmission cycles of 300 ms); MVDS's adaptive retransmission timeout has measured it
//!     during set-up, so each text should cross once and be acknowledged once: the counts per text are
//!     printed, and the "all work" figure includes whatever is sent. The secp256k1 provider is the
//!     crate's active one (`--features libsecp256k1` for the C library).
//! (b) **Layers**, on the same message shape (each layer's input is the previous layer's real output),
//!     send and receive side each:
//!     * chat payload: `ChatMessage` encode + `ApplicationMetadataMessage` wrap + signature; unwrap +
//!       signature recovery + decode + validation;
//!     * MVDS: the payload of one message (message id, encode); datasync unwrap + decode + message id;
//!     * secure transport: `SecureTransport` encrypt for the peer in an established session (steady state
//!       of (a): the answer to each message is let through untimed, so each decrypt does a DH ratchet
//!       step); decrypt of the `ProtocolMessage` (bundle, ratchet, AES-CTR + HMAC);
//!     * Waku message: sign + pad + AES-GCM + envelope, Messages packet encode; packet decode, envelope
//!       hash, filter open (AES-GCM + signature recovery);
//!     * Waku PoW: sealing to the Messenger's target (0.002, TTL 15) on fresh envelopes; PoW check on
//!       receipt;
//!     * RLPx: an `rlpx::Connection` sending the Waku packet (Snappy + frame seal); the peer's connection
//!       receiving it (frame open + Snappy).
//!
//! (c) **Durability**: the same pair with durable Messengers (`MessengerConfig::durable`): every
//!     `Output::Persist` batch is committed to a real redb [`StateStore`] file per engine (one fsynced
//!     transaction, as the drivers do) and confirmed with `Input::Persisted` before what it holds back
//!     comes out; group commit: each pump feeds an engine every input it has, then takes one batch.
//!     Measured: bursts of [`BURST`] texts each way (all received and confirmed, then the work they set
//!     off settled), with durability on and off; it prints both rates in messages per second and their
//!     ratio (the goal: at least 70%).
//!
//! It prints a table (layer, send, receive, share of the one-way total), the sum of the layers against
//! the measured total (the rest is engine glue: pumping, queues, pool, filters, MVDS and chat state),
//! and messages per second end to end.
//!
//! `cargo bench -p status-benches --bench e2e`

use std::cell::RefCell;
use std::collections::VecDeque;
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::Criterion;
use status_benches::{fmt_ns, mean_ns};
use status_io_std::state::StateStore;
use status_proto::protobuf as pb;
use status_sansio::chat::messenger::{
    Event as ChatEvent, Input as Chat, Messenger, MessengerConfig, CHAT_TTL, POW_TARGET,
};
use status_sansio::chat::payloads::{decode_chat_message, unwrap, wrap_chat_message};
use status_sansio::chat::validate::validate_chat_message;
use status_sansio::chat::ChatId;
use status_sansio::crypto::{PublicKey, SecretKey};
use status_sansio::enode::Enode;
use status_sansio::mvds::{self, GroupId};
use status_sansio::node::{ConnId, Engine, EngineConfig, Event, Input, Output};
use status_sansio::rlpx::{self, Connection, Protocol};
use status_sansio::secure::{self, Route, SecureTransport};
use status_sansio::waku::envelope::{PowSealer, SealProgress};
use status_sansio::waku::message::{wrap, NewMessage, PostKey};
use status_sansio::waku::packet::{encode_envelopes, Packet, MESSAGES};
use status_sansio::waku::Filters;
use status_sansio::waku::{self, status, Dialect, Envelope, Filter, SubscriptionId};
use status_sansio::{Seed, Timestamp};

const START: u64 = 1_700_000_000;
const GROUP: &str = "e2e_one_to_one";
const LAYERS: &str = "e2e_layers";
/// Most virtual time one step of a message may take.
const LIMIT: Duration = Duration::from_secs(30);
/// Virtual time let run after a message is confirmed (MVDS retransmits after 2 to 4 epochs, 0.6–1.2 s).
const SETTLE: Duration = Duration::from_secs(3);
const DURABLE: &str = "e2e_durable";
/// Texts each way per measured burst in (c).
const BURST: usize = 50;

/// A 100-byte text.
fn text(n: u64) -> String {
    let s = format!("message {n:>8}: the quick brown fox jumps over the lazy dog, and then some more words");
    let mut s = s.into_bytes();
    s.resize(100, b'.');
    String::from_utf8(s).unwrap()
}

fn chat_key(i: u64) -> SecretKey {
    SecretKey::random(&mut Seed::from_u64(7_000 + i).rng())
}

fn rlpx_config(i: u64) -> Arc<rlpx::Config> {
    let key = SecretKey::random(&mut Seed::from_u64(500 + i).rng());
    Arc::new(rlpx::Config::new(
        key,
        vec![Protocol::new("waku", 1, 128).unwrap()],
    ))
}

// ---- (a) two engines back to back ------------------------------------------------------------------

enum Deliver {
    Accepted(ConnId),
    Connected(ConnId),
    Bytes(ConnId, Bytes),
}

/// Alice (0) dials Bob (1); one socket, no latency.
struct Pair {
    now: Timestamp,
    eng: [Engine; 2],
    keys: [PublicKey; 2],
    /// (alice's conn id, bob's conn id) of the socket.
    link: Option<(ConnId, ConnId)>,
    bob_addr: SocketAddr,
    queue: VecDeque<(usize, Deliver)>,
    /// Texts received from the other side, per side.
    received: [usize; 2],
    /// Texts the other side confirmed, per side.
    delivered: [usize; 2],
    dropped: usize,
    /// Envelopes each side posted (sealed into its pool).
    posted: [usize; 2],
    /// Socket writes each side made.
    writes: [usize; 2],
    /// With durable Messengers: each engine's state store (committed with fsync, then confirmed).
    stores: Option<[StateStore; 2]>,
}

impl Pair {
    fn new() -> Pair {
        Self::build(None)
    }

    /// A pair whose Messengers are durable, each committing to its own redb file in `dir`.
    fn durable(dir: &std::path::Path) -> Pair {
        std::fs::create_dir_all(dir).expect("bench state dir");
        let open = |n: &str| {
            let path = dir.join(n);
            // A fresh file per run (a left-over one from an interrupted run would be resumed from).
            std::fs::remove_file(&path).ok();
            StateStore::open(&path).expect("state store")
        };
        Self::build(Some([open("alice.redb"), open("bob.redb")]))
    }

    fn build(stores: Option<[StateStore; 2]>) -> Pair {
        let durable = stores.is_some();
        let now = Timestamp::from_secs(START);
        let rlpx = [rlpx_config(0), rlpx_config(1)];
        let bob_addr: SocketAddr = "10.0.0.2:30303".parse().unwrap();
        let bob_enode = Enode::new(rlpx[1].public_key(), bob_addr);
        let mk = |i: usize| {
            let mut c = EngineConfig::new(rlpx[i].clone());
            if i == 0 {
                c.static_peers = vec![bob_enode.clone()];
            }
            let mut m = MessengerConfig::new(chat_key(i as u64), format!("device-{i}"));
            m.durable = durable;
            c.messenger = Some(m);
            Engine::new(c, &Seed::from_u64(900 + i as u64), now).expect("valid engine configuration")
        };
        Pair {
            now,
            eng: [mk(0), mk(1)],
            keys: [chat_key(0).public_key(), chat_key(1).public_key()],
            link: None,
            bob_addr,
            queue: VecDeque::new(),
            received: [0; 2],
            delivered: [0; 2],
            dropped: 0,
            posted: [0; 2],
            writes: [0; 2],
            stores,
        }
    }

    /// Drain both engines' outputs and deliver what they sent; true if anything happened.
    fn pump(&mut self) -> bool {
        let mut moved = false;
        for i in 0..2 {
            while let Some(o) = self.eng[i].poll_output() {
                moved = true;
                match o {
                    Output::Dial { conn, addr } => {
                        assert_eq!((i, addr), (0, self.bob_addr), "only alice dials, only bob");
                        let acc = ConnId(1);
                        self.link = Some((conn, acc));
                        self.queue.push_back((1, Deliver::Accepted(acc)));
                        self.queue.push_back((0, Deliver::Connected(conn)));
                    }
                    Output::Transmit { conn, data } => {
                        self.writes[i] += 1;
                        let (a, b) = self.link.expect("a socket");
                        let to = if i == 0 { (1, b) } else { (0, a) };
                        assert_eq!(conn, if i == 0 { a } else { b });
                        self.queue.push_back((to.0, Deliver::Bytes(to.1, data)));
                    }
                    Output::Close { .. } => panic!("the link was closed"),
                    Output::Persist(batch) => {
                        let store = &mut self.stores.as_mut().expect("a durable pair")[i];
                        store.commit(&batch).expect("commit");
                        self.eng[i]
                            .handle_input(self.now, Input::Persisted(batch.seq))
                            .expect("confirm");
                    }
                    Output::Event(Event::Chat(e)) => match e {
                        ChatEvent::MessageReceived { own: false, .. } => self.received[i] += 1,
                        ChatEvent::Delivered { .. } => self.delivered[i] += 1,
                        ChatEvent::Dropped { .. } => self.dropped += 1,
                        _ => {}
                    },
                    Output::Event(Event::Waku(waku::Event::Posted { .. })) => self.posted[i] += 1,
                    Output::Event(Event::PeerDisconnected { .. }) => panic!("the link went down"),
                    _ => {}
                }
            }
        }
        let now = self.now;
        while let Some((to, d)) = self.queue.pop_front() {
            moved = true;
            let e = &mut self.eng[to];
            let r = match d {
                Deliver::Accepted(c) => e.handle_input(now, Input::Accepted { conn: c }),
                Deliver::Connected(c) => e.handle_input(now, Input::Connected { conn: c }),
                Deliver::Bytes(c, b) => e.handle_input(now, Input::Received { conn: c, data: &b }),
            };
            r.expect("the engine takes the input");
        }
        moved
    }

    /// Fire the engines' due timers, advancing the virtual clock to the next deadline if it is at most
    /// `end`; false if there is none by then.
    fn advance(&mut self, end: Timestamp) -> bool {
        let next = [0, 1]
            .iter()
            .filter_map(|&i| self.eng[i].poll_timeout())
            .min()
            .expect("an engine has a timer");
        if next > end {
            return false;
        }
        self.now = self.now.max(next);
        for e in &mut self.eng {
            if e.poll_timeout().is_some_and(|t| t <= self.now) {
                e.handle_timeout(self.now);
            }
        }
        true
    }

    /// Pump, advancing the virtual clock whenever nothing moves, until `done`.
    fn run_until(&mut self, limit: Duration, done: impl Fn(&Pair) -> bool) {
        let end = self.now + limit;
        loop {
            let moved = self.pump();
            if done(self) {
                return;
            }
            if !moved {
                assert!(self.advance(end), "not done within {limit:?} of virtual time");
            }
        }
    }

    /// Run `d` of virtual time (what a message set off after its confirmation: an MVDS retransmission
    /// that crossed the ACK, its duplicate ACK).
    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.pump() || self.advance(end) {}
        self.now = end;
    }

    fn chat_id(&self, from: usize) -> ChatId {
        Messenger::one_to_one_chat_id(&self.keys[1 - from])
    }

    fn send(&mut self, from: usize, text: String) {
        let chat = self.chat_id(from);
        self.eng[from]
            .handle_input(self.now, Input::Chat(Chat::SendText { chat, text }))
            .expect("send");
    }

    /// Connected, the chat open, one text each way delivered and confirmed.
    fn steady() -> Pair {
        Self::settled(Pair::new())
    }

    fn settled(mut p: Pair) -> Pair {
        p.run_until(Duration::from_secs(10), |p| {
            p.eng[0].connected_peers() == 1 && p.eng[1].connected_peers() == 1
        });
        let bob = p.keys[1];
        p.eng[0]
            .handle_input(p.now, Input::Chat(Chat::StartOneToOne(bob)))
            .unwrap();
        p.send(0, text(0));
        p.run_until(LIMIT, |p| p.received[1] == 1 && p.delivered[0] == 1);
        p.run_for(SETTLE);
        p.send(1, text(0));
        p.run_until(LIMIT, |p| p.received[0] == 1 && p.delivered[1] == 1);
        p.run_for(SETTLE);
        for k in 1..4 {
            p.send(0, text(k));
            p.run_until(LIMIT, |p| p.delivered[0] == 1 + k as usize);
            p.run_for(SETTLE);
        }
        let m = p.eng[0].messenger().unwrap();
        assert_eq!(m.negotiated_topics(), 1, "alice uses the negotiated topic");
        assert_eq!(p.dropped, 0);
        p
    }
}

fn total(c: &mut Criterion) {
    let pair = RefCell::new(Pair::steady());
    let base = {
        let p = pair.borrow();
        let mvds = p.eng[0].messenger().unwrap().mvds().stats().messages_sent;
        (p.received[1], p.posted, p.writes, p.now, mvds)
    };
    let mut g = c.benchmark_group(GROUP);
    g.sample_size(20);
    g.warm_up_time(Duration::from_secs(2));
    g.measurement_time(Duration::from_secs(8));
    let mut n = 100u64;
    // Everything a message sets off settles before the next one (SETTLE of virtual time), so each
    // measurement holds only its own message.
    g.bench_function("one_way", |b| {
        b.iter_custom(|iters| {
            let mut p = pair.borrow_mut();
            let mut t = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let (r, d) = (p.received[1], p.delivered[0]);
                let start = Instant::now();
                p.send(0, text(n));
                p.run_until(LIMIT, |p| p.received[1] == r + 1);
                t += start.elapsed();
                p.run_until(LIMIT, |p| p.delivered[0] == d + 1);
                p.run_for(SETTLE);
            }
            t
        })
    });
    g.bench_function("round_trip_to_delivered", |b| {
        b.iter_custom(|iters| {
            let mut p = pair.borrow_mut();
            let mut t = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let (r, d) = (p.received[1], p.delivered[0]);
                let start = Instant::now();
                p.send(0, text(n));
                p.run_until(LIMIT, |p| p.received[1] == r + 1 && p.delivered[0] == d + 1);
                t += start.elapsed();
                p.run_for(SETTLE);
            }
            t
        })
    });
    g.bench_function("all_work_per_message", |b| {
        b.iter_custom(|iters| {
            let mut p = pair.borrow_mut();
            let start = Instant::now();
            for _ in 0..iters {
                n += 1;
                let (r, d) = (p.received[1], p.delivered[0]);
                p.send(0, text(n));
                p.run_until(LIMIT, |p| p.received[1] == r + 1 && p.delivered[0] == d + 1);
                p.run_for(SETTLE);
            }
            start.elapsed()
        })
    });
    g.finish();
    let p = pair.borrow();
    assert_eq!(p.dropped, 0, "nothing dropped");
    assert_eq!(p.received[1], p.delivered[0], "every text confirmed");
    let n = (p.received[1] - base.0) as f64;
    let mvds = p.eng[0].messenger().unwrap().mvds().stats().messages_sent;
    println!(
        "e2e: {n} texts alice -> bob measured, {:.2} s of virtual time each (incl. {} s settling); per text: alice sent {:.2} MVDS messages, posted {:.2} envelopes and wrote {:.2} times to the socket, bob posted {:.2} and wrote {:.2}",
        (p.now - base.3).as_secs_f64() / n,
        SETTLE.as_secs(),
        (mvds - base.4) as f64 / n,
        (p.posted[0] - base.1[0]) as f64 / n,
        (p.writes[0] - base.2[0]) as f64 / n,
        (p.posted[1] - base.1[1]) as f64 / n,
        (p.writes[1] - base.2[1]) as f64 / n,
    );
}

/// (c): bursts of texts both ways with durable Messengers (fsynced redb commits) and without.
fn durability(c: &mut Criterion) -> (f64, f64, u64) {
    let dir = std::env::temp_dir().join(format!("status-bench-e2e-durable-{}", std::process::id()));
    let pairs = [
        ("durability_off", RefCell::new(Pair::steady())),
        ("durability_on", RefCell::new(Pair::settled(Pair::durable(&dir)))),
    ];
    let mut g = c.benchmark_group(DURABLE);
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(2));
    g.measurement_time(Duration::from_secs(8));
    let mut n = 1_000_000u64;
    let mut rates = [0.0f64; 2];
    for (k, (name, pair)) in pairs.iter().enumerate() {
        let (mut msgs, mut spent) = (0u64, Duration::ZERO);
        g.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                let mut p = pair.borrow_mut();
                let start = Instant::now();
                for _ in 0..iters {
                    let (r, d) = (p.received, p.delivered);
                    for _ in 0..BURST {
                        n += 1;
                        p.send(0, text(n));
                        p.send(1, text(n));
                    }
                    p.run_until(LIMIT, |p| {
                        (0..2).all(|i| p.received[i] == r[i] + BURST && p.delivered[i] == d[i] + BURST)
                    });
                    p.run_for(SETTLE);
                }
                let t = start.elapsed();
                msgs += 2 * BURST as u64 * iters;
                spent += t;
                t
            })
        });
        rates[k] = msgs as f64 / spent.as_secs_f64();
        let p = pair.borrow();
        assert_eq!(p.dropped, 0, "nothing dropped");
    }
    g.finish();
    let commits = pairs[1]
        .1
        .borrow()
        .stores
        .as_ref()
        .map_or(0, |s| s[0].commits() + s[1].commits());
    drop(pairs);
    std::fs::remove_dir_all(&dir).ok();
    (rates[0], rates[1], commits)
}

// ---- (b) the layers ----------------------------------------------------------------------------------

/// The real bytes of one message at each layer, and the machines to make them.
struct Stack {
    alice: SecretKey,
    alice_pk: PublicKey,
    bob_pk: PublicKey,
    chat_msg: pb::ChatMessage,
    /// ApplicationMetadataMessage.
    wrapped: Bytes,
    /// MVDS payload.
    mvds: Vec<u8>,
    /// Secure transport ProtocolMessage.
    protocol: Vec<u8>,
    key: [u8; 32],
    topic: status_sansio::waku::Topic,
    /// Sealed envelope.
    envelope: Envelope,
    /// Waku Messages packet.
    packet: Vec<u8>,
    /// RLPx bytes on the wire.
    wire: Bytes,
}

fn now_ms() -> u64 {
    START * 1000 + 123
}

fn chat_message(chat_id: &str, n: u64) -> pb::ChatMessage {
    pb::ChatMessage {
        clock: now_ms() + n,
        timestamp: now_ms(),
        text: text(n),
        chat_id: chat_id.to_string(),
        message_type: pb::MessageType::OneToOne as i32,
        content_type: pb::chat_message::ContentType::TextPlain as i32,
        ..Default::default()
    }
}

fn mvds_payload(group: GroupId, body: Bytes) -> Vec<u8> {
    let m = mvds::Message::new(group, START as i64, body);
    black_box(m.id());
    mvds::Payload {
        messages: vec![m],
        ..Default::default()
    }
    .encode_to_vec()
}

/// Two secure transports in steady state: sessions both ways, alice's messages on the negotiated route.
struct SecurePair {
    a: SecureTransport,
    b: SecureTransport,
    now: Timestamp,
    ack: Vec<u8>,
}

fn sends(t: &mut SecureTransport) -> Vec<secure::Outgoing> {
    let mut v = vec![];
    while let Some(o) = t.poll_output() {
        if let secure::Output::Transmit(out) = o {
            v.push(out);
        }
    }
    v
}

fn decrypted(t: &mut SecureTransport) -> usize {
    let mut n = 0;
    while let Some(o) = t.poll_output() {
        match o {
            secure::Output::Event(secure::Event::Decrypted { plaintext, .. }) => n += plaintext.len().min(1),
            secure::Output::Event(secure::Event::PeerFault { fault: error, .. }) => {
                panic!("rejected: {error}")
            }
            _ => {}
        }
    }
    n
}

impl SecurePair {
    fn new(alice: &SecretKey, bob: &SecretKey) -> SecurePair {
        let now = Timestamp::from_secs(START);
        let a = SecureTransport::new(
            Default::default(),
            alice.clone(),
            "device-0".into(),
            &Seed::from_u64(31),
            now,
        )
        .unwrap();
        let b = SecureTransport::new(
            Default::default(),
            bob.clone(),
            "device-1".into(),
            &Seed::from_u64(32),
            now,
        )
        .unwrap();
        let ack = mvds::Payload {
            acks: vec![mvds::MessageId([9; 32])],
            ..Default::default()
        }
        .encode_to_vec();
        let mut p = SecurePair { a, b, now, ack };
        for _ in 0..4 {
            p.a_to_b(&[0x42; 200]);
            p.b_to_a();
        }
        p
    }

    fn encrypt_a(&mut self, payload: &[u8]) -> secure::Outgoing {
        let bob = *self.b.identity();
        self.a
            .handle_input(
                self.now,
                secure::Input::Encrypt {
                    recipient: bob,
                    payload: payload.to_vec(),
                },
            )
            .unwrap();
        let mut s = sends(&mut self.a);
        assert_eq!(s.len(), 1);
        s.pop().unwrap()
    }

    fn decrypt_b(&mut self, bytes: Vec<u8>) {
        let alice = *self.a.identity();
        self.b
            .handle_input(self.now, secure::Input::Received { sender: alice, bytes })
            .unwrap();
        assert_eq!(decrypted(&mut self.b), 1, "bob decrypted it");
    }

    fn a_to_b(&mut self, payload: &[u8]) -> secure::Outgoing {
        let out = self.encrypt_a(payload);
        self.decrypt_b(out.bytes.clone());
        out
    }

    /// Bob's MVDS ACK back (untimed in the benches).
    fn b_to_a(&mut self) {
        let alice = *self.a.identity();
        let bob = *self.b.identity();
        let ack = self.ack.clone();
        self.b
            .handle_input(
                self.now,
                secure::Input::Encrypt {
                    recipient: alice,
                    payload: ack,
                },
            )
            .unwrap();
        for out in sends(&mut self.b) {
            self.a
                .handle_input(
                    self.now,
                    secure::Input::Received {
                        sender: bob,
                        bytes: out.bytes,
                    },
                )
                .unwrap();
            let _ = decrypted(&mut self.a);
        }
    }
}

/// Two RLPx connections after the handshake, alice's speaking to bob's.
fn rlpx_pair() -> (Connection, Connection) {
    let now = Timestamp::from_secs(START);
    let (ca, cb) = (rlpx_config(0), rlpx_config(1));
    let mut a = Connection::initiator(ca, cb.public_key(), &Seed::from_u64(41), now).unwrap();
    let mut b = Connection::recipient(cb, &Seed::from_u64(42), now).unwrap();
    loop {
        let mut moved = false;
        while let Some(o) = a.poll_output() {
            if let rlpx::Output::Transmit(x) = o {
                b.handle_input(now, rlpx::Input::Receive(&x)).unwrap();
                moved = true;
            }
        }
        while let Some(o) = b.poll_output() {
            if let rlpx::Output::Transmit(x) = o {
                a.handle_input(now, rlpx::Input::Receive(&x)).unwrap();
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    assert!(a.is_active() && b.is_active());
    (a, b)
}

fn rlpx_send(a: &mut Connection, packet: &[u8]) -> Bytes {
    a.handle_input(
        Timestamp::from_secs(START),
        rlpx::Input::Send {
            capability: "waku",
            code: MESSAGES,
            payload: packet,
        },
    )
    .unwrap();
    let mut wire = BytesMut::new();
    while let Some(o) = a.poll_output() {
        if let rlpx::Output::Transmit(x) = o {
            wire.extend_from_slice(&x);
        }
    }
    wire.freeze()
}

fn rlpx_receive(b: &mut Connection, wire: &[u8]) -> usize {
    b.handle_input(Timestamp::from_secs(START), rlpx::Input::Receive(wire))
        .unwrap();
    let mut n = 0;
    while let Some(o) = b.poll_output() {
        if let rlpx::Output::Event(rlpx::Event::Message { payload, .. }) = o {
            n += payload.len();
        }
    }
    n
}

fn seal(env: &mut Envelope) {
    let mut s = PowSealer::new(env, POW_TARGET);
    loop {
        if let SealProgress::Done { nonce, .. } = s.step(20_000) {
            env.nonce = nonce;
            return;
        }
    }
}

fn new_message(s: &Stack) -> NewMessage {
    NewMessage {
        topic: s.topic,
        payload: s.protocol.clone(),
        key: PostKey::Symmetric(zeroize::Zeroizing::new(s.key)),
        signer: Some(s.alice.clone()),
        ttl: CHAT_TTL,
        pow_target: POW_TARGET,
        padding: None,
    }
}

fn stack(sp: &mut SecurePair) -> Stack {
    let alice = chat_key(0);
    let bob = chat_key(1);
    let (alice_pk, bob_pk) = (alice.public_key(), bob.public_key());
    let chat_msg = chat_message(&Messenger::one_to_one_chat_id(&bob_pk), 0);
    let wrapped = wrap_chat_message(&chat_msg, &alice).unwrap().bytes;
    let mvds = mvds_payload(GroupId::one_to_one(&alice_pk, &bob_pk), wrapped.clone());
    let out = sp.a_to_b(&mvds);
    sp.b_to_a();
    let Route::Negotiated { secret } = &out.route else {
        panic!("steady state is on the negotiated topic")
    };
    let key = *status::negotiated_key(secret.as_bytes());
    let topic = status::negotiated_topic(secret.as_bytes());
    let mut s = Stack {
        alice,
        alice_pk,
        bob_pk,
        chat_msg,
        wrapped,
        mvds,
        protocol: out.bytes,
        key,
        topic,
        envelope: Envelope {
            expiry: 0,
            ttl: 0,
            topic,
            data: Bytes::new(),
            nonce: 0,
        },
        packet: vec![],
        wire: Bytes::new(),
    };
    let mut env = wrap(&mut Seed::from_u64(5).rng(), START, &new_message(&s)).unwrap();
    seal(&mut env);
    s.packet = encode_envelopes([&env].into_iter());
    s.envelope = env;
    let (mut a, _) = rlpx_pair();
    s.wire = rlpx_send(&mut a, &s.packet);
    s
}

fn layers(c: &mut Criterion) -> Stack {
    let (alice, bob) = (chat_key(0), chat_key(1));
    let sp = RefCell::new(SecurePair::new(&alice, &bob));
    let s = stack(&mut sp.borrow_mut());
    let mut g = c.benchmark_group(LAYERS);
    g.sample_size(30);
    g.warm_up_time(Duration::from_millis(700));
    g.measurement_time(Duration::from_secs(2));
    let transport_time = Timestamp::from_secs(START);

    // Chat payload.
    let mut n = 0;
    g.bench_function("chat_send", |b| {
        b.iter(|| {
            n += 1;
            let m = chat_message(&s.chat_msg.chat_id, n);
            black_box(wrap_chat_message(&m, &s.alice).unwrap())
        })
    });
    g.bench_function("chat_recv", |b| {
        b.iter(|| {
            let u = unwrap(black_box(&s.wrapped), Some(&s.alice_pk)).unwrap();
            assert_eq!(u.author, Some(s.alice_pk));
            let cm = decode_chat_message(&u.payload).unwrap();
            validate_chat_message(&cm, transport_time).unwrap();
            black_box(cm)
        })
    });

    // MVDS.
    let group = GroupId::one_to_one(&s.alice_pk, &s.bob_pk);
    g.bench_function("mvds_send", |b| {
        b.iter(|| black_box(mvds_payload(group, s.wrapped.clone())))
    });
    g.bench_function("mvds_recv", |b| {
        b.iter(|| {
            let p = mvds::Payload::unwrap_datasync_with_limit(black_box(&s.mvds), 1 << 20).unwrap();
            let ids: Vec<_> = p.messages.iter().map(|m| m.id()).collect();
            black_box((p, ids))
        })
    });

    // Secure transport: the answer goes back untimed between messages, as in (a).
    g.bench_function("secure_send", |b| {
        b.iter_custom(|iters| {
            let mut p = sp.borrow_mut();
            let mut t = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let out = p.encrypt_a(&s.mvds);
                t += start.elapsed();
                p.decrypt_b(out.bytes);
                p.b_to_a();
            }
            t
        })
    });
    g.bench_function("secure_recv", |b| {
        b.iter_custom(|iters| {
            let mut p = sp.borrow_mut();
            let mut t = Duration::ZERO;
            for _ in 0..iters {
                let out = p.encrypt_a(&s.mvds);
                let start = Instant::now();
                p.decrypt_b(out.bytes);
                t += start.elapsed();
                p.b_to_a();
            }
            t
        })
    });

    // Waku message (sealing apart).
    let mut rng = Seed::from_u64(6).rng();
    let msg = new_message(&s);
    g.bench_function("waku_send", |b| {
        b.iter(|| {
            let env = wrap(&mut rng, START, &msg).unwrap();
            black_box(encode_envelopes([&env].into_iter()))
        })
    });
    let mut filters = Filters::new(16);
    filters
        .add(SubscriptionId(1), Filter::symmetric(vec![s.topic], s.key))
        .unwrap();
    let packet = Bytes::from(s.packet.clone());
    g.bench_function("waku_recv", |b| {
        b.iter(|| {
            let Packet::Messages(envs) =
                Packet::decode_bytes(Dialect::Waku1, MESSAGES, &packet, 1000).unwrap()
            else {
                unreachable!()
            };
            let env = &envs[0];
            black_box(env.hash());
            let got = filters.open(env, 1.0, false);
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].sender, Some(s.alice_pk));
            black_box(got)
        })
    });

    // Waku PoW: fresh envelopes (sealing cost varies with the hash), setup untimed.
    g.bench_function("pow_seal", |b| {
        b.iter_batched(
            || wrap(&mut rng, START, &msg).unwrap(),
            |mut env| {
                seal(&mut env);
                env
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("pow_check", |b| {
        b.iter(|| {
            let pow = black_box(&s.envelope).pow_at(START);
            assert!(pow >= POW_TARGET);
            pow
        })
    });

    // RLPx.
    let (mut a, mut bconn) = rlpx_pair();
    g.bench_function("rlpx_send", |b| {
        b.iter_custom(|iters| {
            let mut t = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let wire = rlpx_send(&mut a, &s.packet);
                t += start.elapsed();
                assert_eq!(rlpx_receive(&mut bconn, &wire), s.packet.len());
            }
            t
        })
    });
    g.bench_function("rlpx_recv", |b| {
        b.iter_custom(|iters| {
            let mut t = Duration::ZERO;
            for _ in 0..iters {
                let wire = rlpx_send(&mut a, &s.packet);
                let start = Instant::now();
                let n = rlpx_receive(&mut bconn, &wire);
                t += start.elapsed();
                assert_eq!(n, s.packet.len());
            }
            t
        })
    });
    g.finish();
    s
}

fn report(s: &Stack) {
    let get = |id: &str| mean_ns(LAYERS, id);
    println!(
        "\n== One 1:1 message end to end (means from this run; secp256k1 provider: {}) ==",
        <status_sansio::crypto::provider::ActiveProvider as status_sansio::crypto::provider::Secp256k1Provider>::NAME
    );
    println!(
        "sizes: text {} B | wrapped ChatMessage {} B | MVDS payload {} B | ProtocolMessage {} B | envelope data {} B | Waku packet {} B | RLPx wire {} B",
        text(0).len(),
        s.wrapped.len(),
        s.mvds.len(),
        s.protocol.len(),
        s.envelope.data.len(),
        s.packet.len(),
        s.wire.len()
    );
    let (Some(one_way), Some(rt), Some(all)) = (
        mean_ns(GROUP, "one_way"),
        mean_ns(GROUP, "round_trip_to_delivered"),
        mean_ns(GROUP, "all_work_per_message"),
    ) else {
        println!("(criterion estimates of {GROUP} missing: run the whole bench)");
        return;
    };
    let rows = [
        (
            "chat payload (sign / recover+validate)",
            "chat_send",
            Some("chat_recv"),
        ),
        ("MVDS payload", "mvds_send", Some("mvds_recv")),
        (
            "secure transport (double ratchet)",
            "secure_send",
            Some("secure_recv"),
        ),
        (
            "Waku message (sign+AES-GCM / open+recover)",
            "waku_send",
            Some("waku_recv"),
        ),
        ("Waku PoW (seal 0.002 / check)", "pow_seal", Some("pow_check")),
        ("RLPx (Snappy + frame)", "rlpx_send", Some("rlpx_recv")),
    ];
    // Signed: the glue can come out slightly negative when it is within the layers' noise.
    let signed = |ns: f64| {
        if ns < 0.0 {
            format!("-{}", fmt_ns(-ns))
        } else {
            fmt_ns(ns)
        }
    };
    let line = |name: &str, snd: &str, rcv: &str, both: f64| {
        println!(
            "{:<46} {:>11} {:>11} {:>11} {:>7.1}%",
            name,
            snd,
            rcv,
            signed(both),
            both / one_way * 100.0
        )
    };
    println!(
        "{:<46} {:>11} {:>11} {:>11} {:>8}",
        "layer (one way: alice sends, bob receives)", "send", "receive", "both", "share"
    );
    let mut sum = 0.0;
    for (name, s_id, r_id) in rows {
        let snd = get(s_id);
        let rcv = r_id.map(get);
        let (Some(snd), Some(rcv)) = (snd, rcv.unwrap_or(Some(0.0))) else {
            println!("{name}: estimates missing");
            continue;
        };
        sum += snd + rcv;
        let rcv_s = if r_id.is_some() { fmt_ns(rcv) } else { "-".into() };
        line(name, &fmt_ns(snd), &rcv_s, snd + rcv);
    }
    line("sum of layers", "", "", sum);
    line(
        "engine glue (total - sum; noise level if ~0)",
        "",
        "",
        one_way - sum,
    );
    line("measured total, SendText -> MessageReceived", "", "", one_way);
    println!(
        "round trip, SendText -> bob's MVDS ACK -> Delivered: {}  (the ACK's way back: {})",
        fmt_ns(rt),
        fmt_ns(rt - one_way)
    );
    println!(
        "all work per message (round trip plus what it sets off: MVDS retransmission that crossed the ACK, duplicate ACK, timers): {}",
        fmt_ns(all)
    );
    println!(
        "end to end, both nodes on one core: {:.0} messages/s on the one-way path, {:.0} messages/s confirmed, {:.0} messages/s sustained (all work)",
        1e9 / one_way,
        1e9 / rt,
        1e9 / all
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let s = layers(&mut c);
    total(&mut c);
    let (off, on, commits) = durability(&mut c);
    c.final_summary();
    report(&s);
    println!(
        "durability (bursts of {BURST} texts each way, received and confirmed): off {off:.0} messages/s, \
         on (redb, fsync per group commit) {on:.0} messages/s = {:.0}% ({commits} commits)",
        100.0 * on / off
    );
}
