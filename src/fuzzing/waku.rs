//! Fuzz bodies for the Waku layer: envelope and packet decoding, message opening, status and request
//! decoding, and a [`WakuNode`] fed arbitrary packets, peer events and timer ticks.

use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};

use crate::crypto::SecretKey;
use crate::rng::Seed;
use crate::time::Timestamp;
use crate::waku::message::{decrypt_asymmetric, decrypt_symmetric, parse_plaintext};
use crate::waku::node::{Input, WakuConfig, WakuNode};
use crate::waku::options::{StatusOptions, WhisperStatus};
use crate::waku::packet::{Dialect, Packet};
use crate::waku::pool::PoolConfig;
use crate::waku::request::{MessagesRequest, MessagesRequestPayload, RequestComplete};
use crate::waku::{Envelope, Filter, PeerId, Topic};

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

#[derive(Debug, Arbitrary)]
enum Step {
    Connect(u8, bool),
    Packet(u8, u8, Vec<u8>),
    ValidStatus(u8),
    Disconnect(u8),
    Tick(u16),
    Trust(u8),
    Drain,
}

/// A node fed arbitrary steps. Oracle: no panic; packets (from any peer id) and timer ticks never return
/// `Err`; the pool stays under its caps; the output queue stays under its cap.
pub fn waku_node(data: &[u8]) {
    let Ok(steps) = Vec::<Step>::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let config = WakuConfig {
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
    let mut node = WakuNode::new(config, Seed::from_u64(1));
    let _ = node.subscribe(Filter::symmetric(vec![Topic([1, 2, 3, 4])], [9; 32]));
    let status = WakuNode::new(WakuConfig::default(), Seed::from_u64(2))
        .local_options()
        .encode();
    let mut now = Timestamp::from_secs(1_700_000_000);
    for step in steps.into_iter().take(128) {
        match step {
            Step::Connect(p, shh) => {
                let dialect = if shh { Dialect::Whisper6 } else { Dialect::Waku1 };
                let _ = node.handle_input(
                    now,
                    Input::PeerConnected {
                        peer: PeerId(u64::from(p % 6)),
                        dialect,
                    },
                );
            }
            Step::Packet(p, code, body) => {
                let peer = PeerId(u64::from(p % 6));

                let r = node.handle_input(
                    now,
                    Input::Packet {
                        peer,
                        code: u64::from(code % 130),
                        data: bytes::Bytes::copy_from_slice(&body),
                    },
                );
                assert!(r.is_ok(), "packets are never Err");
            }
            Step::ValidStatus(p) => {
                let peer = PeerId(u64::from(p % 6));
                if node.peer(peer).is_some() {
                    assert!(node
                        .handle_input(
                            now,
                            Input::Packet {
                                peer,
                                code: 0,
                                data: bytes::Bytes::copy_from_slice(&status)
                            }
                        )
                        .is_ok());
                }
            }
            Step::Disconnect(p) => {
                let _ = node.handle_input(
                    now,
                    Input::PeerDisconnected {
                        peer: PeerId(u64::from(p % 6)),
                    },
                );
            }
            Step::Tick(ms) => {
                now += Duration::from_millis(u64::from(ms) * 10);
                node.handle_timeout(now);
            }
            Step::Trust(p) => {
                let _ = node.handle_input(
                    now,
                    Input::SetTrusted {
                        peer: PeerId(u64::from(p % 6)),
                        trusted: true,
                    },
                );
            }
            Step::Drain => while node.poll_output().is_some() {},
        }
        assert!(
            node.pool().bytes() <= max_bytes && node.pool().len() <= max_envelopes,
            "pool caps hold"
        );
        if let Some(t) = node.poll_timeout() {
            assert!(t >= Timestamp::ZERO);
        }
    }
    let mut n = 0;
    while node.poll_output().is_some() {
        n += 1;
    }
    // Sends are bounded by peers × packets handled; events by the queue cap.
    assert!(n <= max_out + 128 * 8, "output queue bounded ({n})");
}
