//! The Status derivations that live at the Waku layer (docs/protocol/status-transport-usage.md §2): topics
//! and symmetric keys derived from strings, and the 1:1 topics.
//!
//! Symmetric keys from strings are `PBKDF2-HMAC-SHA256(password, salt = "", 65356 iterations, 32 bytes)`:
//! 65356, not 65536, is what status-go uses.

use zeroize::Zeroizing;

use super::topic::Topic;
use crate::crypto::{ecdh_x, pubkey_to_uncompressed, PublicKey, SecretKey};

/// PBKDF2 iterations of Waku's `AddSymKeyFromPassword`.
pub const PBKDF2_ITERATIONS: u32 = 65356;
/// Number of partitions of the first-contact topic space.
pub const PARTITIONS: u64 = 5000;

/// A 32-byte symmetric key derived from a string (PBKDF2, as above).
pub fn symmetric_key_from_password(password: &str) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), b"", PBKDF2_ITERATIONS, &mut out[..]);
    out
}

/// Topic of a public chat.
pub fn public_chat_topic(name: &str) -> Topic {
    Topic::from_str_hash(name)
}

/// Symmetric key of a public chat.
pub fn public_chat_key(name: &str) -> Zeroizing<[u8; 32]> {
    symmetric_key_from_password(name)
}

/// Lowercase hex of the 65-byte uncompressed key, no `0x` (130 characters).
pub fn pubkey_hex(pk: &PublicKey) -> String {
    pubkey_to_uncompressed(pk)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `"0x" + pubhex(K) + "-contact-code"`: the string behind K's contact-code topic and key.
pub fn contact_code_string(pk: &PublicKey) -> String {
    format!("0x{}-contact-code", pubkey_hex(pk))
}

/// K's contact-code topic (where K publishes bundles).
pub fn contact_code_topic(pk: &PublicKey) -> Topic {
    Topic::from_str_hash(&contact_code_string(pk))
}

/// K's contact-code symmetric key.
pub fn contact_code_key(pk: &PublicKey) -> Zeroizing<[u8; 32]> {
    symmetric_key_from_password(&contact_code_string(pk))
}

/// The partition of K: `K.X mod 5000`.
pub fn partition(pk: &PublicKey) -> u64 {
    let raw = crate::crypto::pubkey_to_raw64(pk);
    // Big-endian X mod 5000, one byte at a time (no bignum needed).
    raw[..32]
        .iter()
        .fold(0u64, |acc, b| (acc * 256 + u64::from(*b)) % PARTITIONS)
}

/// K's partitioned first-contact topic: `"contact-discovery-" + decimal(K.X mod 5000)`.
pub fn partitioned_topic(pk: &PublicKey) -> Topic {
    Topic::from_str_hash(&format!("contact-discovery-{}", partition(pk)))
}

/// K's personal discovery topic: `"contact-discovery-" + pubhex(K)`.
pub fn personal_discovery_topic(pk: &PublicKey) -> Topic {
    Topic::from_str_hash(&format!("contact-discovery-{}", pubkey_hex(pk)))
}

/// The legacy discovery topic `"contact-discovery"`.
pub fn discovery_topic() -> Topic {
    Topic::from_str_hash("contact-discovery")
}

/// The negotiated secret between two identities: the raw ECDH X coordinate.
pub fn negotiated_secret(own: &SecretKey, remote: &PublicKey) -> Zeroizing<[u8; 32]> {
    ecdh_x(own, remote)
}

/// The string behind the negotiated topic and key: lowercase hex of the secret.
pub fn negotiated_string(secret: &[u8; 32]) -> Zeroizing<String> {
    Zeroizing::new(secret.iter().map(|b| format!("{b:02x}")).collect())
}

/// The negotiated topic for a shared secret.
pub fn negotiated_topic(secret: &[u8; 32]) -> Topic {
    Topic::from_str_hash(&negotiated_string(secret))
}

/// The negotiated symmetric key for a shared secret.
pub fn negotiated_key(secret: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    symmetric_key_from_password(&negotiated_string(secret))
}
