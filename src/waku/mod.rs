//! Waku v1 (`waku/1`) with Whisper v6 (`shh/6`) compatibility: the transport-privacy layer that carries
//! every Status message (spec digests: `waku.md`, `status-transport-usage.md`).
//!
//! * [`topic`]: topics and the 64-byte bloom filter, with the Go assignment quirk (§4);
//! * [`envelope`]: the envelope codec, hash, PoW and a resumable, budgeted nonce search (§2–§3);
//! * [`message`]: the plaintext format, signatures, AES-256-GCM and ECIES (§9–§10);
//! * [`options`]: the handshake options of both dialects (§6);
//! * [`packet`]: packet codes and their msg-data (§5);
//! * [`request`]: mailserver request and completion payloads (status-transport-usage.md §4);
//! * [`status`]: the Status topic and key derivations (status-transport-usage.md §2).
//!
//! Deliberate deviations from the reference: status options decoding skips exactly one unknown pair
//! instead of dropping every pair after it.

pub mod envelope;
pub mod message;
pub mod options;
pub mod packet;
pub mod request;
pub mod status;
pub mod topic;

pub use envelope::Envelope;
pub use topic::{Bloom, Topic};

/// Errors of the Waku layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WakuError {
    /// An envelope could not be decoded.
    #[error("malformed envelope: {0}")]
    MalformedEnvelope(&'static str),
    /// A packet could not be decoded.
    #[error("malformed packet: {0}")]
    MalformedPacket(&'static str),
    /// A Status or Status Update could not be decoded or has invalid values.
    #[error("malformed status: {0}")]
    MalformedStatus(&'static str),
    /// A mailserver request or completion could not be decoded.
    #[error("malformed request: {0}")]
    MalformedRequest(&'static str),
    /// A plaintext could not be parsed.
    #[error("malformed message: {0}")]
    MalformedMessage(&'static str),
    /// A signature could not be made or recovered.
    #[error("invalid signature")]
    Signature,
    /// The data did not decrypt with the given key.
    #[error("decryption failed")]
    Decryption,
    /// A symmetric key is all zero.
    #[error("invalid key")]
    InvalidKey,
    /// A payload of 16 MiB or more cannot be framed.
    #[error("payload of {0} bytes is too large")]
    PayloadTooLarge(usize),
}
