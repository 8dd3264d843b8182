//! The RLPx `Connection` state machine over an in-memory pipe: round trips with seeded random chunking,
//! legacy handshakes, timers, misbehaving peers and API misuse.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use rand_core::RngCore;
use status_sansio::crypto::SecretKey;
use status_sansio::fuzzing::rlpx::{test_protocol, RawPeer};
use status_sansio::rlpx::handshake::HandshakeFormat;
use status_sansio::rlpx::p2p::{self, Protocol};
use status_sansio::rlpx::{Config, Connection, DisconnectReason, Event, Input, Output, RlpxError};
use status_sansio::{Seed, Timestamp};

fn config(seed: u64) -> Config {
    Config::new(
        SecretKey::random(&mut Seed::from_u64(seed).rng()),
        vec![test_protocol()],
    )
}

/// Two connections joined by an in-memory pipe that delivers bytes in seeded random chunks.
struct Pipe {
    a: Connection,
    b: Connection,
    now: Timestamp,
    rng: rand_chacha::ChaCha20Rng,
    a_events: Vec<Event>,
    b_events: Vec<Event>,
    a_closed: bool,
    b_closed: bool,
    max_chunk: usize,
    /// Deliver bytes from b to a (false: drop them, simulating a dead peer).
    deliver_b_to_a: bool,
}

impl Pipe {
    fn new(seed: u64, ca: Config, cb: Config) -> Pipe {
        let now = Timestamp::from_secs(1_700_000_000);
        let cb = Arc::new(cb);
        let b_id = cb.public_key();
        let a = Connection::initiator(Arc::new(ca), b_id, &Seed::from_u64(seed * 2 + 1), now).unwrap();
        let b = Connection::recipient(cb, &Seed::from_u64(seed * 2 + 2), now).unwrap();
        let mut rng = Seed::from_u64(seed).rng();
        let max_chunk = [1usize, 7, 64, 1500, 100_000][(rng.next_u32() % 5) as usize];
        Pipe {
            a,
            b,
            now,
            rng,
            a_events: vec![],
            b_events: vec![],
            a_closed: false,
            b_closed: false,
            max_chunk,
            deliver_b_to_a: true,
        }
    }

    fn drain(c: &mut Connection, events: &mut Vec<Event>, closed: &mut bool) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(o) = c.poll_output() {
            assert!(!*closed, "output after Close");
            match o {
                Output::Transmit(b) => out.extend_from_slice(&b),
                Output::Event(e) => events.push(e),
                Output::Close => *closed = true,
                _ => {}
            }
        }
        out
    }

    fn feed(&mut self, to_b: bool, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = 1 + (self.rng.next_u32() as usize % self.max_chunk).min(rest.len() - 1);
            let (chunk, tail) = rest.split_at(n);
            let c = if to_b { &mut self.b } else { &mut self.a };
            c.handle_input(self.now, Input::Receive(chunk)).unwrap();
            rest = tail;
        }
    }

    /// Move bytes until both sides are quiet.
    fn pump(&mut self) {
        loop {
            let ab = Self::drain(&mut self.a, &mut self.a_events, &mut self.a_closed);
            let ba = Self::drain(&mut self.b, &mut self.b_events, &mut self.b_closed);
            if ab.is_empty() && ba.is_empty() {
                break;
            }
            if !self.b_closed {
                self.feed(true, &ab);
            }
            if !self.a_closed && self.deliver_b_to_a {
                self.feed(false, &ba);
            }
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.a.handle_timeout(self.now);
        self.b.handle_timeout(self.now);
        self.pump();
    }

    fn messages(events: &[Event]) -> Vec<(u64, Vec<u8>)> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Message { code, payload, .. } => Some((*code, payload.to_vec())),
                _ => None,
            })
            .collect()
    }
}

fn connected(events: &[Event]) -> bool {
    events.iter().any(|e| matches!(e, Event::Connected { .. }))
}

fn disconnected(events: &[Event]) -> Option<(DisconnectReason, bool, Option<RlpxError>)> {
    events.iter().find_map(|e| match e {
        Event::Disconnected {
            reason,
            remote,
            error,
        } => Some((*reason, *remote, error.clone())),
        _ => None,
    })
}

#[test]
fn round_trips_over_many_seeds_with_random_chunking() {
    for seed in 0..48u64 {
        let mut p = Pipe::new(seed, config(1000 + seed), config(2000 + seed));
        p.pump();
        assert!(
            connected(&p.a_events) && connected(&p.b_events),
            "seed {seed}: handshake"
        );
        match &p.a_events[0] {
            Event::Connected {
                remote_id,
                hello,
                capabilities,
            } => {
                assert_eq!(Some(*remote_id), p.a.remote_id());
                assert_eq!(hello.protocol_version, 5);
                assert_eq!(capabilities[0].offset, 0x10);
            }
            e => panic!("seed {seed}: first event {e:?}"),
        }
        let mut sent_ab = Vec::new();
        let mut sent_ba = Vec::new();
        for i in 0..6u64 {
            let len = [0usize, 1, 17, 1024, 70_000, 300][(p.rng.next_u32() % 6) as usize];
            let body: Vec<u8> = (0..len).map(|j| (j as u64 * 31 + i + seed) as u8).collect();
            p.a.handle_input(
                p.now,
                Input::Send {
                    capability: "test",
                    code: i % 8,
                    payload: &body,
                },
            )
            .unwrap();
            sent_ab.push((i % 8, body.clone()));
            p.b.handle_input(
                p.now,
                Input::Send {
                    capability: "test",
                    code: 7 - i % 8,
                    payload: &body,
                },
            )
            .unwrap();
            sent_ba.push((7 - i % 8, body));
        }
        p.pump();
        assert_eq!(Pipe::messages(&p.b_events), sent_ab, "seed {seed}");
        assert_eq!(Pipe::messages(&p.a_events), sent_ba, "seed {seed}");

        p.a.handle_input(p.now, Input::Ping).unwrap();
        p.pump();
        assert!(
            p.a_events.iter().any(|e| matches!(e, Event::Pong { .. })),
            "seed {seed}: pong"
        );

        p.a.handle_input(p.now, Input::Disconnect(DisconnectReason::ClientQuitting))
            .unwrap();
        p.pump();
        assert_eq!(
            disconnected(&p.a_events),
            Some((DisconnectReason::ClientQuitting, false, None))
        );
        assert_eq!(
            disconnected(&p.b_events),
            Some((DisconnectReason::ClientQuitting, true, None))
        );
        assert!(p.b_closed, "seed {seed}: receiver closes at once");
        assert!(!p.a_closed, "sender lingers so the peer can read the Disconnect");
        p.advance(Duration::from_secs(1));
        assert!(p.a_closed, "seed {seed}: closed after the linger");
    }
}

#[test]
fn same_seed_same_bytes() {
    let run = || {
        let mut p = Pipe::new(7, config(1), config(2));
        let mut wire = Vec::new();
        while let Some(o) = p.a.poll_output() {
            if let Output::Transmit(b) = o {
                wire.extend_from_slice(&b);
            }
        }
        wire
    };
    assert_eq!(run(), run());
}

#[test]
fn legacy_handshake_both_ways() {
    for seed in 0..4 {
        let mut ca = config(10 + seed);
        ca.handshake_format = HandshakeFormat::Legacy;
        let mut p = Pipe::new(seed, ca, config(20 + seed));
        p.pump();
        assert!(connected(&p.a_events) && connected(&p.b_events));
    }
    // A recipient that refuses legacy cannot parse a legacy auth.
    let mut ca = config(30);
    ca.handshake_format = HandshakeFormat::Legacy;
    let mut cb = config(31);
    cb.accept_legacy_handshake = false;
    let mut p = Pipe::new(3, ca, cb);
    p.pump();
    assert!(!connected(&p.b_events));
}

#[test]
fn keepalive_pings_keep_a_live_peer_and_drop_a_dead_one() {
    let mut p = Pipe::new(1, config(1), config(2));
    p.pump();
    for _ in 0..10 {
        p.advance(Duration::from_secs(15));
    }
    assert!(p.a.is_active() && p.b.is_active(), "a responsive peer is kept");
    assert!(
        p.a_events
            .iter()
            .filter(|e| matches!(e, Event::Pong { .. }))
            .count()
            >= 9
    );

    p.deliver_b_to_a = false;
    p.advance(Duration::from_secs(15));
    assert!(p.a.is_active());
    p.advance(Duration::from_secs(15));
    let (reason, remote, error) = disconnected(&p.a_events).unwrap();
    assert_eq!(
        (reason, remote, error),
        (DisconnectReason::PingTimeout, false, Some(RlpxError::PingTimeout))
    );
}

#[test]
fn handshake_deadline() {
    let now = Timestamp::from_secs(100);
    let cfg = Arc::new(config(1));
    let mut c = Connection::recipient(cfg, &Seed::from_u64(1), now).unwrap();
    assert_eq!(c.poll_timeout(), Some(now + Duration::from_secs(5)));
    c.handle_timeout(now + Duration::from_secs(4));
    assert!(c.poll_output().is_none(), "a spurious timeout is a no-op");
    c.handle_timeout(now + Duration::from_secs(5));
    assert!(matches!(
        c.poll_output(),
        Some(Output::Event(Event::Disconnected {
            error: Some(RlpxError::HandshakeTimeout),
            ..
        }))
    ));
    assert_eq!(c.poll_output(), Some(Output::Close));
    assert_eq!(c.poll_output(), None);
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn no_shared_capability_is_a_useless_peer() {
    let mut cb = config(2);
    cb.protocols = vec![Protocol::new("other", 1, 4).unwrap()];
    let mut p = Pipe::new(1, config(1), cb);
    p.pump();
    let (reason, _, _) = disconnected(&p.a_events).unwrap();
    assert_eq!(reason, DisconnectReason::UselessPeer);
    let (reason, _, _) = disconnected(&p.b_events).unwrap();
    assert_eq!(reason, DisconnectReason::UselessPeer);
}

#[test]
fn garbage_auth_closes_without_a_frame() {
    let now = Timestamp::from_secs(100);
    let mut c = Connection::recipient(Arc::new(config(1)), &Seed::from_u64(1), now).unwrap();
    c.handle_input(now, Input::Receive(&[0x01, 0x90])).unwrap();
    c.handle_input(now, Input::Receive(&[0xAB; 0x190])).unwrap();
    match c.poll_output() {
        Some(Output::Event(Event::Disconnected {
            error: Some(RlpxError::Ecies(_)),
            ..
        })) => {}
        o => panic!("{o:?}"),
    }
    assert_eq!(c.poll_output(), Some(Output::Close));
    // Oversized size prefix.
    let mut c = Connection::recipient(Arc::new(config(1)), &Seed::from_u64(1), now).unwrap();
    c.handle_input(now, Input::Receive(&[0xff, 0xff])).unwrap();
    assert!(matches!(
        c.poll_output(),
        Some(Output::Event(Event::Disconnected {
            error: Some(RlpxError::HandshakeTooLarge(0xffff)),
            ..
        }))
    ));
}

#[test]
fn truncated_auth_then_close() {
    let now = Timestamp::from_secs(100);
    let cfg = Arc::new(config(1));
    let mut c = Connection::recipient(cfg.clone(), &Seed::from_u64(1), now).unwrap();
    let (_, auth) = RawPeer::new(3, &cfg.public_key(), HandshakeFormat::Eip8).unwrap();
    c.handle_input(now, Input::Receive(&auth[..auth.len() - 1]))
        .unwrap();
    assert!(c.poll_output().is_none());
    c.handle_input(now, Input::TransportClosed).unwrap();
    assert_eq!(
        c.poll_output(),
        Some(Output::Event(Event::Disconnected {
            reason: DisconnectReason::TcpError,
            remote: true,
            error: Some(RlpxError::TransportClosed)
        }))
    );
    assert_eq!(c.poll_output(), Some(Output::Close));
}

/// A recipient connection with a scripted peer past the handshake.
fn scripted(cfg: Config) -> (Connection, RawPeer, Arc<Config>, Timestamp) {
    let now = Timestamp::from_secs(100);
    let cfg = Arc::new(cfg);
    let mut c = Connection::recipient(cfg.clone(), &Seed::from_u64(1), now).unwrap();
    let (mut peer, auth) = RawPeer::new(3, &cfg.public_key(), HandshakeFormat::Eip8).unwrap();
    c.handle_input(now, Input::Receive(&auth)).unwrap();
    let mut reply = Vec::new();
    while let Some(o) = c.poll_output() {
        if let Output::Transmit(b) = o {
            reply.extend_from_slice(&b);
        }
    }
    let frames = peer.receive(&reply, &cfg.public_key()).unwrap();
    assert_eq!(frames.len(), 1, "our Hello");
    assert_eq!(frames[0][0], 0x80);
    (c, peer, cfg, now)
}

/// Feed bytes, return the disconnect the connection reported and the frames it sent.
fn feed(
    c: &mut Connection,
    peer: &mut RawPeer,
    cfg: &Config,
    now: Timestamp,
    bytes: &[u8],
) -> (Vec<Event>, Vec<Vec<u8>>) {
    c.handle_input(now, Input::Receive(bytes)).unwrap();
    let mut events = Vec::new();
    let mut wire = Vec::new();
    while let Some(o) = c.poll_output() {
        match o {
            Output::Transmit(b) => wire.extend_from_slice(&b),
            Output::Event(e) => events.push(e),
            Output::Close => {}
            _ => {}
        }
    }
    let frames = peer
        .receive(&wire, &cfg.public_key())
        .unwrap()
        .into_iter()
        .map(|f| f.to_vec())
        .collect();
    (events, frames)
}

fn send_frame(
    c: &mut Connection,
    peer: &mut RawPeer,
    cfg: &Config,
    now: Timestamp,
    frame_data: &[u8],
) -> (Vec<Event>, Vec<Vec<u8>>) {
    let wire = peer.seal(frame_data).unwrap();
    feed(c, peer, cfg, now, &wire)
}

#[test]
fn first_message_must_be_hello() {
    let (mut c, mut peer, cfg, now) = scripted(config(1));
    let ping = peer.seal(&[0x02, 0xc0]).unwrap();
    let (events, frames) = feed(&mut c, &mut peer, &cfg, now, &ping);
    assert_eq!(
        disconnected(&events),
        Some((
            DisconnectReason::ProtocolBreach,
            false,
            Some(RlpxError::ExpectedHello)
        ))
    );
    // The Disconnect frame went out, uncompressed (no Hello exchange yet): id 0x01, [0x02].
    assert_eq!(frames, vec![vec![0x01, 0xc1, 0x02]]);
}

#[test]
fn bad_hellos_get_the_right_reason() {
    // Malformed Hello.
    let (mut c, mut peer, cfg, now) = scripted(config(1));
    let f = peer.seal(&[0x80, 0xc2, 0x05, 0x80]).unwrap();
    let (events, _) = feed(&mut c, &mut peer, &cfg, now, &f);
    assert!(matches!(
        disconnected(&events),
        Some((
            DisconnectReason::ProtocolBreach,
            false,
            Some(RlpxError::InvalidHello(_))
        ))
    ));

    // A Hello whose node id is not the handshake identity.
    let (mut c, mut peer, cfg, now) = scripted(config(1));
    let mut hello = peer.hello_frame(5, &[("test", 1)]);
    let n = hello.len();
    hello[n - 1] ^= 1;
    let f = peer.seal(&hello).unwrap();
    let (events, _) = feed(&mut c, &mut peer, &cfg, now, &f);
    assert_eq!(
        disconnected(&events).map(|d| d.0),
        Some(DisconnectReason::UnexpectedIdentity)
    );

    // An all-zero node id.
    let (mut c, mut peer, cfg, now) = scripted(config(1));
    let mut hello = peer.hello_frame(5, &[("test", 1)]);
    let n = hello.len();
    hello[n - 64..].fill(0);
    let f = peer.seal(&hello).unwrap();
    let (events, _) = feed(&mut c, &mut peer, &cfg, now, &f);
    assert_eq!(
        disconnected(&events).map(|d| d.0),
        Some(DisconnectReason::InvalidIdentity)
    );

    // Over 2 KiB.
    let (mut c, mut peer, cfg, now) = scripted(config(1));
    let mut big = vec![0x80, 0xb9, 0x08, 0x10];
    big.extend_from_slice(&[0u8; 0x810]);
    let f = peer.seal(&big).unwrap();
    let (events, _) = feed(&mut c, &mut peer, &cfg, now, &f);
    assert!(matches!(
        disconnected(&events),
        Some((
            DisconnectReason::ProtocolBreach,
            false,
            Some(RlpxError::InvalidHello(_))
        ))
    ));
}

/// A scripted peer that completed Hello (p2p v5, so Snappy is on).
fn active() -> (Connection, RawPeer, Arc<Config>, Timestamp) {
    let (mut c, mut peer, cfg, now) = scripted(config(1));
    let hello = peer.hello_frame(5, &[("test", 1), ("eth", 66)]);
    let f = peer.seal(&hello).unwrap();
    let (events, _) = feed(&mut c, &mut peer, &cfg, now, &f);
    assert!(connected(&events));
    (c, peer, cfg, now)
}

#[test]
fn snappy_messages_and_ids() {
    let (mut c, mut peer, cfg, now) = active();
    let mut f = vec![0x13];
    f.extend_from_slice(&p2p::compress(b"\xc3abc").unwrap());
    let (events, _) = send_frame(&mut c, &mut peer, &cfg, now, &f);
    match &events[..] {
        [Event::Message {
            capability,
            code: 3,
            payload,
        }] => {
            assert_eq!(capability.name.as_str(), "test");
            assert_eq!(&payload[..], b"\xc3abc");
        }
        e => panic!("{e:?}"),
    }
    // Ping is answered with a compressed Pong.
    let mut f = vec![0x02];
    f.extend_from_slice(&p2p::compress(&[0xc0]).unwrap());
    let (_, frames) = send_frame(&mut c, &mut peer, &cfg, now, &f);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0][0], 0x03);
    assert_eq!(&p2p::decompress(&frames[0][1..], 16).unwrap()[..], &[0xc0]);
    // Reserved ids 0x04..0x0f are ignored.
    let mut f = vec![0x07];
    f.extend_from_slice(&p2p::compress(&[0xc0]).unwrap());
    let (events, frames) = send_frame(&mut c, &mut peer, &cfg, now, &f);
    assert!(events.is_empty() && frames.is_empty());
    assert!(c.is_active());
}

#[test]
fn out_of_range_id_is_a_breach() {
    let (mut c, mut peer, cfg, now) = active();
    let mut f = vec![0x18];
    f.extend_from_slice(&p2p::compress(&[0xc0]).unwrap());
    let (events, frames) = send_frame(&mut c, &mut peer, &cfg, now, &f);
    assert_eq!(
        disconnected(&events),
        Some((
            DisconnectReason::ProtocolBreach,
            false,
            Some(RlpxError::MessageIdOutOfRange(0x18))
        ))
    );
    // After Hello the Disconnect is compressed too.
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0][0], 0x01);
    assert_eq!(&p2p::decompress(&frames[0][1..], 16).unwrap()[..], &[0xc1, 0x02]);
}

#[test]
fn snappy_bomb_is_refused_before_inflating() {
    let mut cfg = config(1);
    cfg.max_message_size = 1024;
    let (mut c, mut peer, cfg, now) = {
        let (mut c, mut peer, cfg, now) = scripted(cfg);
        let f = peer.seal(&peer.hello_frame(5, &[("test", 1)])).unwrap();
        let (events, _) = feed(&mut c, &mut peer, &cfg, now, &f);
        assert!(connected(&events));
        (c, peer, cfg, now)
    };
    let mut f = vec![0x10];
    f.extend_from_slice(&p2p::compress(&[0u8; 4096]).unwrap());
    let (events, _) = send_frame(&mut c, &mut peer, &cfg, now, &f);
    assert!(matches!(
        disconnected(&events),
        Some((
            DisconnectReason::ProtocolBreach,
            false,
            Some(RlpxError::Snappy(_))
        ))
    ));
}

#[test]
fn corrupted_frames_are_a_breach() {
    for pos in [3usize, 20, 40, 60] {
        let (mut c, mut peer, cfg, now) = active();
        let mut f = vec![0x10];
        f.extend_from_slice(&p2p::compress(b"hi").unwrap());
        let mut wire = peer.seal(&f).unwrap();
        let i = pos % wire.len();
        wire[i] ^= 0x40;
        c.handle_input(now, Input::Receive(&wire)).unwrap();
        let mut events = Vec::new();
        while let Some(o) = c.poll_output() {
            if let Output::Event(e) = o {
                events.push(e);
            }
        }
        let (reason, remote, error) = disconnected(&events).unwrap();
        assert_eq!((reason, remote), (DisconnectReason::ProtocolBreach, false));
        assert!(
            matches!(error, Some(RlpxError::BadHeaderMac | RlpxError::BadFrameMac)),
            "{error:?}"
        );
        let _ = cfg;
    }
}

#[test]
fn oversized_frame_refused_at_its_header() {
    let mut cfg = config(1);
    cfg.max_frame_size = 4096;
    let (mut c, mut peer, cfg, now) = scripted(cfg);
    let f = peer.seal(&peer.hello_frame(5, &[("test", 1)])).unwrap();
    feed(&mut c, &mut peer, &cfg, now, &f);
    let mut big = vec![0x10];
    big.extend_from_slice(&vec![1u8; 10_000]);
    let wire = peer.seal(&big).unwrap();
    // Only the 32-byte header is needed to refuse it; nothing of the body is buffered.
    let (events, _) = feed(&mut c, &mut peer, &cfg, now, &wire[..32]);
    assert!(matches!(
        disconnected(&events),
        Some((
            DisconnectReason::ProtocolBreach,
            false,
            Some(RlpxError::FrameTooLarge(_))
        ))
    ));
    assert_eq!(c.buffered(), 0);
}

#[test]
fn remote_disconnect_is_decoded_leniently() {
    for body in [vec![0xc1, 0x04], vec![0x04], vec![0xc0]] {
        let (mut c, mut peer, cfg, now) = active();
        let mut f = vec![0x01];
        f.extend_from_slice(&p2p::compress(&body).unwrap());
        let (events, _) = send_frame(&mut c, &mut peer, &cfg, now, &f);
        let want = if body == [0xc0] {
            DisconnectReason::Requested
        } else {
            DisconnectReason::TooManyPeers
        };
        assert_eq!(disconnected(&events), Some((want, true, None)));
        assert!(c.is_closed());
    }
    // geth-style: a Disconnect sent in place of the Hello is uncompressed.
    let (mut c, mut peer, cfg, now) = scripted(config(1));
    let (events, _) = send_frame(&mut c, &mut peer, &cfg, now, &[0x01, 0xc1, 0x05]);
    assert_eq!(
        disconnected(&events),
        Some((DisconnectReason::AlreadyConnected, true, None))
    );
}

#[test]
fn api_misuse_is_err() {
    let now = Timestamp::from_secs(1);
    let cfg = config(1);
    let mut c = Connection::recipient(Arc::new(cfg.clone()), &Seed::from_u64(1), now).unwrap();
    assert_eq!(
        c.handle_input(
            now,
            Input::Send {
                capability: "test",
                code: 0,
                payload: b""
            }
        ),
        Err(RlpxError::NotReady)
    );
    assert_eq!(c.handle_input(now, Input::Ping), Err(RlpxError::NotReady));

    let (mut c, _, _, now) = active();
    assert_eq!(
        c.handle_input(
            now,
            Input::Send {
                capability: "eth",
                code: 0,
                payload: b""
            }
        ),
        Err(RlpxError::UnknownCapability("eth".into()))
    );
    assert_eq!(
        c.handle_input(
            now,
            Input::Send {
                capability: "test",
                code: 8,
                payload: b""
            }
        ),
        Err(RlpxError::CodeOutOfRange { code: 8, length: 8 })
    );
    let big = vec![0u8; p2p::MAX_MESSAGE_SIZE + 1];
    assert_eq!(
        c.handle_input(
            now,
            Input::Send {
                capability: "test",
                code: 0,
                payload: &big
            }
        ),
        Err(RlpxError::MessageTooLarge(big.len()))
    );

    let mut small = config(5);
    small.max_pending_output = 10_000;
    let (mut c, mut peer, cfg, now) = scripted(small);
    let f = peer.seal(&peer.hello_frame(5, &[("test", 1)])).unwrap();
    feed(&mut c, &mut peer, &cfg, now, &f);
    // Incompressible, so Snappy does not shrink it below the cap.
    let mut chunk = vec![0u8; 4000];
    Seed::from_u64(4).rng().fill_bytes(&mut chunk);
    let mut refused = false;
    for _ in 0..10 {
        if c.handle_input(
            now,
            Input::Send {
                capability: "test",
                code: 0,
                payload: &chunk,
            },
        ) == Err(RlpxError::OutputFull)
        {
            refused = true;
            break;
        }
    }
    assert!(refused, "the output queue cap applies");
    while c.poll_output().is_some() {}
    assert!(c
        .handle_input(
            now,
            Input::Send {
                capability: "test",
                code: 0,
                payload: &chunk
            }
        )
        .is_ok());

    let mut bad = config(9);
    bad.protocols.clear();
    assert!(matches!(
        Connection::recipient(Arc::new(bad), &Seed::from_u64(1), now),
        Err(RlpxError::InvalidConfig(_))
    ));
}

#[test]
fn debug_never_prints_secrets() {
    let cfg = config(1);
    let secret = hex::encode(cfg.static_key().to_bytes());
    assert!(!format!("{cfg:?}").contains(&secret));
    let c = Connection::recipient(Arc::new(cfg), &Seed::from_u64(1), Timestamp::ZERO).unwrap();
    assert!(!format!("{c:?}").contains(&secret));
}
