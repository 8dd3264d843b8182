//! Fuzz bodies for the Waku layer: envelope and packet decoding, message opening, status and request
//! decoding, and a [`WakuNode`] fed arbitrary packets, peer events and timer ticks.

use std::sync::OnceLock;
use std::time::Duration;

use super::script::Script;
use crate::crypto::SecretKey;
use crate::rng::Seed;
use crate::time::Timestamp;
use crate::waku::message::{
    build_plaintext, decrypt_asymmetric, decrypt_symmetric, encrypt_symmetric_with, parse_plaintext,
};
use crate::waku::options::{StatusOptions, WhisperStatus};
use crate::waku::packet::{encode_envelopes, Dialect, Packet};
use crate::waku::request::{MessagesRequest, MessagesRequestPayload, RequestComplete};
use crate::waku::PoolConfig;
use crate::waku::{ConnId, Envelope, Filter, SubscriptionId, Topic};
use crate::waku::{Event, Input, Output, WakuConfig, WakuNode};

/// Envelope and packet decoding. An accepted envelope re-encodes to exactly the input (canonical RLP),
/// so its hash is the hash of what was received.
pub fn waku_envelope(data: &[u8]) {
    if let Ok(e) = Envelope::decode_bytes(data) {
        assert_eq!(e.encode(), data, "accepted envelopes are canonical");
        let _ = (e.hash(), e.pow(), e.pow_at(0), e.bloom());
    }
    for dialect in [Dialect::Waku1, Dialect::Whisper6] {
        for code in [0u64, 1, 2, 3, 11, 12, 22, 125, 126, 127] {
            if let Ok(Packet::Messages(envelopes) | Packet::P2PMessage(envelopes)) =
                Packet::decode(dialect, code, data, 64)
            {
                assert!(envelopes.len() <= 64, "the per-packet cap holds");
            }
        }
    }
}

/// Opening arbitrary `data` as symmetric and asymmetric ciphertext, and parsing it as a plaintext.
pub fn waku_message(data: &[u8]) {
    let key = [0x42u8; 32];
    let sk = SecretKey::random(&mut Seed::from_u64(4).rng());
    let _ = decrypt_symmetric(&key, data);
    let _ = decrypt_asymmetric(&sk, data);
    if let Ok(p) = parse_plaintext(data) {
        assert!(p.payload.len() + p.padding.len() < data.len().max(1));
    }
}

/// Status options, shh/6 Status and mailserver payload decoding. Accepted options re-encode and decode
/// to the same value.
pub fn waku_status(data: &[u8]) {
    if let Ok(o) = StatusOptions::decode(&rlp::Rlp::new(data)) {
        let again = StatusOptions::decode(&rlp::Rlp::new(&o.encode()));
        assert_eq!(again.as_ref().ok(), Some(&o), "options round-trip");
    }
    let _ = WhisperStatus::decode(&rlp::Rlp::new(data));
    if let Ok(r) = MessagesRequest::decode(data) {
        assert_eq!(MessagesRequest::decode(&r.encode()).ok(), Some(r));
    }
    if let Ok(r) = MessagesRequestPayload::decode(data) {
        assert_eq!(MessagesRequestPayload::decode(&r.encode()).ok(), Some(r));
    }
    let _ = RequestComplete::decode(data);
}

/// The symmetric key of the node's filter in [`waku_node`].
pub const FILTER_KEY: [u8; 32] = [9; 32];
/// The topic of the node's symmetric filter in [`waku_node`].
pub const FILTER_TOPIC: Topic = Topic([1, 2, 3, 4]);
/// The topic of the node's asymmetric filter in [`waku_node`].
pub const ASYM_TOPIC: Topic = Topic([5, 6, 7, 8]);
/// The time [`waku_node`] starts at.
pub const NODE_START_SECS: u64 = 1_700_000_000;

/// Keys of the Waku targets, built once per process.
struct Keys {
    /// The secret key of the node's asymmetric filter.
    filter: SecretKey,
    filter_pub: crate::crypto::PublicKey,
    /// The key that signs envelopes the harness seals when asked.
    signer: SecretKey,
    /// The node's Waku status and shh/6 status messages (what a well-behaved peer sends).
    waku_status: Vec<u8>,
    shh_status: Vec<u8>,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let filter = SecretKey::random(&mut Seed::from_u64(21).rng());
        let signer = SecretKey::random(&mut Seed::from_u64(22).rng());
        let config = WakuConfig {
            min_pow: 0.0,
            ..WakuConfig::default()
        };
        let waku_status = WakuNode::new(config.clone(), &Seed::from_u64(2))
            .unwrap_or_else(|_| unreachable!("the harness config is valid"))
            .local_options()
            .encode();
        let shh_status = WhisperStatus {
            pow_requirement: 0.0,
            bloom: crate::waku::Bloom::FULL,
            light_node: false,
            confirmations: false,
            rate_limits: crate::waku::options::RateLimits {
                ip: 0,
                peer_id: config.max_envelopes_per_sec,
                topic: 0,
            },
        }
        .encode();
        Keys {
            filter_pub: filter.public_key(),
            filter,
            signer,
            waku_status,
            shh_status,
        }
    })
}

/// What a [`waku_node`] run reached, so the corpus test can check that the corpus is not vacuous.
#[derive(Debug, Default, Clone, Copy)]
pub struct NodeReached {
    /// Envelopes the pool accepted (the node's `accepted` counter).
    pub pooled: usize,
    /// Messages the node's filters opened.
    pub opened: usize,
    /// Peers that completed the Status exchange.
    pub ready: usize,
}

/// Seal envelopes the way a peer would post them: the fuzzer chooses each one's payload, padding, TTL,
/// topic, key (the filter's symmetric key, its public key, or a wrong key) and whether it is signed;
/// the harness encrypts.
fn sealed_envelopes(s: &mut Script<'_>, now: Timestamp, sealed: &mut Vec<Vec<u8>>) -> Vec<Envelope> {
    let n = usize::from(s.byte() % 4) + 1;
    let mut out = Vec::with_capacity(n);
    let mut rng = Seed::from_u64(23).rng();
    for i in 0..n {
        let flags = s.byte();
        let ttl = u32::from(s.byte());
        let payload = s.bytes();
        let padding = (flags & 0x10 != 0).then(|| &payload[..payload.len() / 2]);
        let signer = (flags & 0x20 != 0).then_some(&keys().signer);
        let Ok(pt) = build_plaintext(&mut rng, payload, padding, signer) else {
            continue;
        };
        let (topic, data) = match flags % 4 {
            0 | 1 => (
                FILTER_TOPIC,
                encrypt_symmetric_with(&FILTER_KEY, [i as u8; 12], &pt).unwrap_or_default(),
            ),
            2 => (
                ASYM_TOPIC,
                crate::waku::message::encrypt_asymmetric(&mut rng, &keys().filter_pub, &pt),
            ),
            _ => (
                Topic([flags, 0, 0, 1]),
                encrypt_symmetric_with(&[3; 32], [i as u8; 12], &pt).unwrap_or_default(),
            ),
        };
        if flags % 4 < 3 {
            sealed.push(payload.to_vec());
        }
        // Bit 6: an expiry in the past or too far ahead (the time rules), else `now + ttl`.
        let expiry = if flags & 0x40 != 0 {
            (now.as_secs() as u32).wrapping_add(u32::from(flags) * 37)
        } else {
            now.as_secs() as u32 + ttl
        };
        out.push(Envelope {
            expiry,
            ttl,
            topic,
            data: data.into(),
            nonce: u64::from(flags >> 7),
        });
    }
    out
}

/// A node fed a script of peer events and packets, including envelopes the harness seals to the node's
/// own filters. Input: a [`Script`]; operations (opcode % 9): 0 a peer connects (peer byte, shh flag
/// byte), 1 a raw packet (peer, code byte, msg-data), 2 a well-formed Status from the peer, 3 the peer
/// disconnects, 4 time passes (`u16` × 10 ms), 5 the peer is trusted, 6 the outputs are drained,
/// 7 a Messages packet of 1–4 sealed envelopes (see `sealed_envelopes`), 8 a P2P Message of them.
///
/// Oracle: no panic; packets and ticks never return `Err`; the pool and the output queue stay under
/// their caps; every message a filter opens carries a payload the harness sealed for a filter.
pub fn waku_node(data: &[u8]) -> NodeReached {
    let mut reached = NodeReached::default();
    let config = WakuConfig {
        min_pow: 0.0,
        pool: PoolConfig {
            max_bytes: 64 * 1024,
            max_envelopes: 64,
        },
        max_envelopes_per_packet: 32,
        max_peers: 4,
        max_queued_outputs: 256,
        ..WakuConfig::default()
    };
    let (max_bytes, max_envelopes, max_out) = (
        config.pool.max_bytes,
        config.pool.max_envelopes,
        config.max_queued_outputs,
    );
    let mut node = WakuNode::new(config, &Seed::from_u64(1))
        .unwrap_or_else(|_| unreachable!("the harness config is valid"));
    let k = keys();
    let start = Timestamp::from_secs(NODE_START_SECS);
    let symmetric = Input::Subscribe {
        id: SubscriptionId(1),
        filter: Filter::symmetric(vec![FILTER_TOPIC], FILTER_KEY),
    };
    let asymmetric = Input::Subscribe {
        id: SubscriptionId(2),
        filter: Filter::asymmetric(vec![ASYM_TOPIC], k.filter.clone()),
    };
    if node.handle_input(start, symmetric).is_err() || node.handle_input(start, asymmetric).is_err() {
        unreachable!("two filters fit");
    }
    let mut shh = [false; 6];
    let mut sealed: Vec<Vec<u8>> = Vec::new();
    let mut now = Timestamp::from_secs(NODE_START_SECS);
    let mut s = Script::new(data);
    let mut steps = 0;
    let mut outputs = 0usize;
    let count = |o: Output, reached: &mut NodeReached, sealed: &[Vec<u8>]| match o {
        Output::Event(Event::PeerReady { .. }) => reached.ready += 1,
        Output::Event(Event::Message(m)) => {
            assert!(
                sealed.iter().any(|p| p[..] == m.payload[..]),
                "a filter opened a payload nobody sealed"
            );
            reached.opened += 1;
        }
        _ => {}
    };
    while !s.is_empty() && steps < 128 {
        steps += 1;
        let op = s.byte() % 9;
        let p = usize::from(s.byte() % 6);
        let peer = ConnId(p as u64);
        match op {
            0 => {
                shh[p] = s.byte() % 4 == 0;
                let dialect = if shh[p] { Dialect::Whisper6 } else { Dialect::Waku1 };
                let _ = node.handle_input(now, Input::PeerConnected { peer, dialect });
            }
            1 => {
                let code = u64::from(s.byte() % 130);
                let data = bytes::Bytes::copy_from_slice(s.bytes());
                let r = node.handle_input(now, Input::Packet { peer, code, data });
                assert!(r.is_ok(), "packets are never Err");
            }
            2 => {
                let status = if shh[p] { &k.shh_status } else { &k.waku_status };
                let data = bytes::Bytes::copy_from_slice(status);
                let r = node.handle_input(now, Input::Packet { peer, code: 0, data });
                assert!(r.is_ok(), "packets are never Err");
            }
            3 => {
                let _ = node.handle_input(now, Input::PeerDisconnected { peer });
            }
            4 => {
                now += Duration::from_millis(u64::from(s.u16()) * 10);
                node.handle_timeout(now);
            }
            5 => {
                let _ = node.handle_input(now, Input::SetTrusted { peer, trusted: true });
            }
            6 => {
                while let Some(o) = node.poll_output() {
                    outputs += 1;
                    count(o, &mut reached, &sealed);
                }
            }
            _ => {
                let envelopes = sealed_envelopes(&mut s, now, &mut sealed);
                let code = if op == 7 {
                    crate::waku::packet::MESSAGES
                } else {
                    crate::waku::packet::P2P_MESSAGE
                };
                let data = encode_envelopes(envelopes.iter()).into();
                let r = node.handle_input(now, Input::Packet { peer, code, data });
                assert!(r.is_ok(), "packets are never Err");
            }
        }
        assert!(
            node.pool().bytes() <= max_bytes && node.pool().len() <= max_envelopes,
            "pool caps hold"
        );
    }
    let mut n = 0;
    while let Some(o) = node.poll_output() {
        n += 1;
        count(o, &mut reached, &sealed);
    }
    reached.pooled = node.stats().accepted as usize;
    // Sends are bounded by peers × packets handled; events by the queue cap.
    assert!(
        n <= max_out + 128 * 8,
        "output queue bounded ({n}, {outputs} drained before)"
    );
    reached
}
