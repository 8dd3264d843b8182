//! Fuzz bodies for the secure-transport layer.
//!
//! * [`secure_decrypt`]: arbitrary headers and ciphertexts (and mutated genuine ones) against an
//!   established ratchet session: never a panic, a rejected message leaves the session byte-identical, and
//!   the skipped-key store stays within its cap.
//! * [`secure_bundle`]: bundle and `ProtocolMessage` decoding; an accepted bundle verifies and re-encodes.
//! * [`secure_machine`]: the [`SecureTransport`] fed arbitrary and mutated messages (from varying senders,
//!   with varying installation ids), timeouts, sends and mutated exported state: `handle_input` never
//!   returns `Err` for received bytes, a rejected import changes nothing, and every store stays within its
//!   cap.

use core::time::Duration;

use arbitrary::Unstructured;
use prost::Message as _;
use status_proto::encryption as pb;

use crate::crypto::SecretKey;
use crate::rng::Seed;
use crate::secure::bundle::Bundle;
use crate::secure::dh::{Curve, Secp256k1};
use crate::secure::kdf::Key32;
use crate::secure::ratchet::{Header, RatchetConfig, Session};
use crate::secure::{Config, Input, Output, SecureError, SecureTransport};
use crate::time::Timestamp;

const NOW: Timestamp = Timestamp::from_secs(1_700_000_000);

/// A fixed secp256k1 key for a tag (the established machines use tags 1 and 2).
pub fn fixed_key(tag: u64) -> SecretKey {
    Secp256k1::generate(&mut Seed::from_u64(tag).rng())
}

/// Small caps so fuzzing reaches them quickly.
pub fn fuzz_ratchet_config() -> RatchetConfig {
    RatchetConfig {
        max_skip: 64,
        max_skipped_keys: 96,
        skipped_key_max_age: Duration::from_secs(3600),
    }
}

/// The machine configuration used by the fuzz bodies.
pub fn fuzz_config() -> Config {
    Config {
        ratchet: fuzz_ratchet_config(),
        max_sessions: 8,
        max_sessions_per_installation: 2,
        max_total_skipped_keys: 128,
        max_identities: 8,
        max_installations_per_identity: 4,
        max_queued_outputs: 64,
        max_message_size: 16 * 1024,
        ..Config::default()
    }
}

/// Two machines (Alice on `alice-1`, Bob on `bob-1`) that have exchanged bundles and one ratchet message.
/// Fails if `config` is invalid.
pub fn established_machines(
    config: Config,
    now: Timestamp,
) -> Result<(SecureTransport, SecureTransport), SecureError> {
    let mut alice = SecureTransport::new(
        config.clone(),
        fixed_key(1),
        "alice-1".into(),
        &Seed::from_u64(11),
        now,
    )?;
    let mut bob = SecureTransport::new(config, fixed_key(2), "bob-1".into(), &Seed::from_u64(12), now)?;
    let (a, b) = (*alice.identity(), *bob.identity());
    let _ = alice.handle_input(now, Input::AdvertiseBundle { recipient: b });
    forward(&mut alice, &mut bob, a, now);
    let _ = bob.handle_input(
        now,
        Input::Encrypt {
            recipient: a,
            payload: b"hello".to_vec(),
        },
    );
    forward(&mut bob, &mut alice, b, now);
    Ok((alice, bob))
}

/// Deliver every queued `Send` of `from` to `to` and drop every other output of both.
pub fn forward(
    from: &mut SecureTransport,
    to: &mut SecureTransport,
    sender: crate::crypto::PublicKey,
    now: Timestamp,
) {
    while let Some(o) = from.poll_output() {
        if let Output::Transmit(s) = o {
            let _ = to.handle_input(
                now,
                Input::Received {
                    sender,
                    bytes: s.bytes,
                },
            );
        }
    }
    while to.poll_output().is_some() {}
}

/// Decrypt arbitrary bytes in an established session.
pub fn secure_decrypt(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let cfg = fuzz_ratchet_config();
    let mut rng = Seed::from_u64(7).rng();
    let sk = Key32::new([9; 32]);
    let spk = fixed_key(3);
    let Ok(mut alice) = Session::<Secp256k1>::initiator(&sk, Secp256k1::public_key(&spk), &mut rng) else {
        return;
    };
    let mut bob = Session::<Secp256k1>::responder(&sk, spk);
    let mut sent = Vec::new();
    for _ in 0..24 {
        if u.is_empty() {
            break;
        }
        let op = u.int_in_range(0..=3u8).unwrap_or(0);
        let (header, ct) = match op {
            0 => {
                let dh = if u.arbitrary().unwrap_or(false) {
                    *alice.ratchet_public_key()
                } else {
                    let raw: [u8; 33] = u.arbitrary().unwrap_or([2; 33]);
                    match Secp256k1::public_from_bytes(&raw) {
                        Some(k) => k,
                        None => continue,
                    }
                };
                let n = u.arbitrary().unwrap_or(0);
                let pn = u.arbitrary().unwrap_or(0);
                let len = u.int_in_range(0..=96usize).unwrap_or(0);
                let ct = u.bytes(len).map(|b| b.to_vec()).unwrap_or_default();
                (Header { dh, n, pn }, ct)
            }
            1 | 2 => {
                let Ok((h, ct)) = alice.encrypt(b"fuzz") else {
                    return;
                };
                sent.push((h.clone(), ct.clone()));
                if op == 2 {
                    continue;
                }
                (h, ct)
            }
            _ => {
                if sent.is_empty() {
                    continue;
                }
                let i = u.choose_index(sent.len()).unwrap_or(0);
                let (h, mut ct) = sent[i].clone();
                if !ct.is_empty() {
                    let j = u.choose_index(ct.len()).unwrap_or(0);
                    ct[j] ^= u.arbitrary::<u8>().unwrap_or(0);
                }
                (h, ct)
            }
        };
        let before = bob.export();
        if bob.decrypt(&header, &ct, NOW, &cfg, &mut rng).is_err() {
            assert!(*bob.export() == *before, "a rejected message changed the session");
        }
        assert!(bob.skipped_keys() <= cfg.max_skipped_keys);
        // Occasionally reply so both ratchet directions move.
        if u.arbitrary().unwrap_or(false) {
            if let Ok((h, ct)) = bob.encrypt(b"re") {
                let _ = alice.decrypt(&h, &ct, NOW, &cfg, &mut rng);
            }
        }
    }
}

/// Decode arbitrary bytes as a bundle and as a `ProtocolMessage`.
pub fn secure_bundle(data: &[u8]) {
    if let Ok(b) = Bundle::decode(data, 8) {
        assert!(b.verify().is_ok());
        let again = Bundle::decode(&b.encode(), 8);
        assert!(again.as_ref() == Ok(&b), "accepted bundle does not round-trip");
    }
    if let Ok(m) = pb::ProtocolMessage::decode(data) {
        for b in &m.bundles {
            let _ = Bundle::from_proto(b, 8);
        }
    }
}

/// An exported [`SecureTransport`] state, unchanged or mutated: a byte flipped, truncated, or decoded and
/// given repeated or out-of-order skipped keys, a small `keys_count`, repeated sessions or installations.
pub fn mutate_state(u: &mut Unstructured<'_>, saved: &[u8]) -> Vec<u8> {
    let mut bytes = saved.to_vec();
    match u.int_in_range(0..=7u8).unwrap_or(0) {
        0 => return bytes,
        1 => {
            if !bytes.is_empty() {
                let j = u.choose_index(bytes.len()).unwrap_or(0);
                bytes[j] ^= u.arbitrary::<u8>().unwrap_or(1);
            }
            return bytes;
        }
        2 => {
            let keep = u.int_in_range(0..=bytes.len()).unwrap_or(0);
            bytes.truncate(keep);
            return bytes;
        }
        _ => {}
    }
    let Ok(mut st) = pb::SecureState::decode(saved) else {
        return bytes;
    };
    let op = u.int_in_range(0..=4u8).unwrap_or(0);
    if op == 3 {
        if let Some(s) = st.sessions.first().cloned() {
            st.sessions.push(s);
        }
    } else if op == 4 {
        if let Some(i) = st.installations.first().cloned() {
            st.installations.push(i);
        }
    } else if !st.sessions.is_empty() {
        let i = u.choose_index(st.sessions.len()).unwrap_or(0);
        if let Some(r) = st.sessions[i].ratchet.as_mut() {
            match op {
                0 => r.keys_count = u.int_in_range(0..=8u64).unwrap_or(0),
                1 => {
                    for k in &mut r.skipped {
                        k.seq = u.int_in_range(0..=4u64).unwrap_or(0);
                    }
                }
                _ => {
                    let copies = u.int_in_range(1..=200usize).unwrap_or(1);
                    if let Some(k) = r.skipped.first().cloned() {
                        for c in 0..copies {
                            let mut k = k.clone();
                            k.n = k.n.wrapping_add(u32::try_from(c % 3).unwrap_or(0));
                            r.skipped.push(k);
                        }
                    }
                }
            }
        }
    }
    st.encode_to_vec()
}

/// Drive the state machine with arbitrary inputs.
pub fn secure_machine(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let config = fuzz_config();
    let Ok((mut alice, mut bob)) = established_machines(config.clone(), NOW) else {
        return;
    };
    let (a, b) = (*alice.identity(), *bob.identity());
    let mut now = NOW;
    for _ in 0..16 {
        if u.is_empty() {
            break;
        }
        match u.int_in_range(0..=5u8).unwrap_or(0) {
            0 => {
                let len = u.int_in_range(0..=512usize).unwrap_or(0);
                let bytes = u.bytes(len).map(|b| b.to_vec()).unwrap_or_default();
                // The transport sender varies: Alice, Bob himself (own installations), or strangers.
                let sender = match u.int_in_range(0..=2u8).unwrap_or(0) {
                    0 => a,
                    1 => b,
                    _ => fixed_key(u.int_in_range(3..=10u64).unwrap_or(3)).public_key(),
                };
                let res = bob.handle_input(now, Input::Received { sender, bytes });
                assert!(res.is_ok(), "received bytes returned Err");
            }
            1 | 2 => {
                let _ = alice.handle_input(
                    now,
                    Input::Encrypt {
                        recipient: b,
                        payload: b"payload".to_vec(),
                    },
                );
                while let Some(o) = alice.poll_output() {
                    if let Output::Transmit(s) = o {
                        let mut bytes = s.bytes;
                        if !bytes.is_empty() && u.arbitrary().unwrap_or(false) {
                            let j = u.choose_index(bytes.len()).unwrap_or(0);
                            bytes[j] ^= u.arbitrary::<u8>().unwrap_or(1);
                        }
                        if u.arbitrary().unwrap_or(false) {
                            let keep = u.int_in_range(0..=bytes.len()).unwrap_or(0);
                            bytes.truncate(keep);
                        }
                        // Vary the sender's installation id (fresh, empty, over the length cap).
                        if u.arbitrary().unwrap_or(false) {
                            if let Ok(mut m) = pb::ProtocolMessage::decode(&bytes[..]) {
                                let n = u.int_in_range(0..=160usize).unwrap_or(0);
                                let c = char::from(b'a' + u.int_in_range(0..=25u8).unwrap_or(0));
                                m.installation_id = c.to_string().repeat(n);
                                bytes = m.encode_to_vec();
                            }
                        }
                        let res = bob.handle_input(
                            now,
                            Input::Received {
                                sender: a,
                                bytes: bytes.clone(),
                            },
                        );
                        assert!(res.is_ok());
                        let res = bob.handle_input(now, Input::Received { sender: a, bytes });
                        assert!(res.is_ok());
                    }
                }
            }
            3 => {
                let _ = bob.handle_input(
                    now,
                    Input::Encrypt {
                        recipient: a,
                        payload: b"r".to_vec(),
                    },
                );
                forward(&mut bob, &mut alice, b, now);
            }
            4 => {
                now += Duration::from_secs(u64::from(u.arbitrary::<u16>().unwrap_or(0)) * 10);
                bob.handle_timeout(now);
            }
            _ => {
                // Re-import the exported state, often mutated: a rejected import changes nothing, an
                // accepted one keeps every cap (checked below) and a consistent skipped-key store.
                let saved = bob.export();
                let state = mutate_state(&mut u, &saved);
                let before = bob.export();
                if bob.import(&state).is_err() {
                    assert!(*bob.export() == *before, "a rejected import changed the state");
                }
            }
        }
        assert!(bob.session_count() <= config.max_sessions);
        assert!(bob.skipped_key_count() <= config.max_total_skipped_keys);
        assert!(bob.queued_outputs() <= config.max_queued_outputs);
        while bob.poll_output().is_some() {}
    }
}
