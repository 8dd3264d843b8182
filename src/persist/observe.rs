//! Test support (crate feature `fuzzing`): what a crash-injection run needs to see inside the machines
//! to check "no message key is ever used to encrypt twice" (docs/architecture.md "Persistence").
//!
//! The secure transport reports every Double Ratchet encryption ([`Encryption`]: the sending chain, the
//! message index, a fingerprint of the message key and a hash of the ciphertext) and the Messenger every
//! ciphertext it releases in an `Output::Transmit`. Recording is per thread (a simulation runs on one
//! thread) and off until [`start`]; [`finish`] stops it and hands over what was seen.
//! [`key_reuse`] is the check: two *released* ciphertexts made under the same message key.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

/// One Double Ratchet encryption.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encryption {
    /// The sending chain: a hash of our identity, the session (peer, installation, bundle) and the
    /// chain's ratchet public key.
    pub chain: [u8; 32],
    /// The message index in the chain (the header's `n`).
    pub index: u32,
    /// A hash of the message key.
    pub key: [u8; 32],
    /// A hash of the ciphertext (the `EncryptedMessageProtocol` payload).
    pub ciphertext: [u8; 32],
}

/// Everything recorded between [`start`] and [`finish`].
#[derive(Clone, Debug, Default)]
pub struct Observations {
    /// Every encryption, in order (also those whose ciphertext never left).
    pub encryptions: Vec<Encryption>,
    /// Hashes of the ciphertexts the Messenger released.
    pub released: BTreeSet<[u8; 32]>,
}

thread_local! {
    static RECORDING: RefCell<Option<Observations>> = const { RefCell::new(None) };
}

/// Start recording on this thread (clearing what was recorded before).
pub fn start() {
    RECORDING.with(|r| *r.borrow_mut() = Some(Observations::default()));
}

/// Stop recording on this thread and return what was recorded.
pub fn finish() -> Observations {
    RECORDING.with(|r| r.borrow_mut().take()).unwrap_or_default()
}

fn recording() -> bool {
    RECORDING.with(|r| r.borrow().is_some())
}

/// SHA-256 of the parts, each length-prefixed.
pub(crate) fn hash(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// The secure transport encrypted `ciphertext` under the message key `key` (index `index` of `chain`).
pub(crate) fn encrypted(chain: impl FnOnce() -> [u8; 32], index: u32, key: &[u8; 32], ciphertext: &[u8]) {
    if !recording() {
        return;
    }
    let e = Encryption {
        chain: chain(),
        index,
        key: hash(&[b"message key", key]),
        ciphertext: hash(&[ciphertext]),
    };
    RECORDING.with(|r| {
        if let Some(o) = r.borrow_mut().as_mut() {
            o.encryptions.push(e);
        }
    });
}

/// The Messenger released a post whose payload is `payload` (a secure-transport `ProtocolMessage`,
/// or something else for which nothing is recorded).
pub(crate) fn released(payload: &[u8]) {
    if !recording() {
        return;
    }
    let Ok(msg) = <status_proto::encryption::ProtocolMessage as prost::Message>::decode(payload) else {
        return;
    };
    RECORDING.with(|r| {
        if let Some(o) = r.borrow_mut().as_mut() {
            for entry in msg.encrypted_message.values() {
                if entry.dr_header.is_some() {
                    o.released.insert(hash(&[&entry.payload]));
                }
            }
        }
    });
}

/// A message key used for two different released ciphertexts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyReuse {
    /// The chain.
    pub chain: [u8; 32],
    /// The index.
    pub index: u32,
    /// The two ciphertext hashes.
    pub ciphertexts: [[u8; 32]; 2],
}

/// The first message key (by chain and index, or by the key itself) that encrypted two different
/// released ciphertexts.
pub fn key_reuse(o: &Observations) -> Option<KeyReuse> {
    let mut by_slot: BTreeMap<([u8; 32], u32), [u8; 32]> = BTreeMap::new();
    let mut by_key: BTreeMap<[u8; 32], [u8; 32]> = BTreeMap::new();
    for e in o
        .encryptions
        .iter()
        .filter(|e| o.released.contains(&e.ciphertext))
    {
        for prev in [
            *by_slot.entry((e.chain, e.index)).or_insert(e.ciphertext),
            *by_key.entry(e.key).or_insert(e.ciphertext),
        ] {
            if prev != e.ciphertext {
                return Some(KeyReuse {
                    chain: e.chain,
                    index: e.index,
                    ciphertexts: [prev, e.ciphertext],
                });
            }
        }
    }
    None
}
