//! Waku v1 (`waku/1`) with Whisper v6 (`shh/6`) compatibility: the transport-privacy layer that carries
//! every Status message (notes: `docs/protocol/waku.md`, `docs/protocol/status-transport-usage.md`).
//!
//! * `topic`: topics and the 64-byte bloom filter, with the Go assignment quirk (§4);
//! * [`envelope`]: the envelope codec, hash, PoW and a resumable, budgeted nonce search (§2–§3);
//! * [`message`]: the plaintext format, signatures, AES-256-GCM and ECIES (§9–§10);
//! * [`options`]: the handshake options of both dialects (§6);
//! * [`packet`]: packet codes and their msg-data (§5);
//! * [`request`]: mailserver request and completion payloads (docs/protocol/status-transport-usage.md §4);
//! * [`status`]: the Status topic and key derivations (docs/protocol/status-transport-usage.md §2);
//! * [`pool`]: the envelope pool: de-duplication, expiry, a byte cap with soonest-expiry eviction (§7);
//! * `filter`: subscriptions by topic and key, and the messages they open (§10);
//! * `peer`: per-connection state: handshake, interest, known envelopes, rate and fault budgets;
//! * `node`: the [`WakuNode`] state machine composing all of the above, with relay and confirmations.
//!
//! Deliberate deviations from the reference: status options decoding skips exactly one unknown pair
//! instead of dropping every pair after it.

pub mod envelope;
mod filter;
pub mod message;
mod node;
pub mod options;
pub mod packet;
mod peer;
pub mod pool;
pub mod request;
pub mod status;
mod topic;

pub use crate::conn::ConnId;
pub use envelope::Envelope;
pub use filter::{Filter, FilterKey, Filters, ReceivedMessage, SubscriptionId};
pub use message::{NewMessage, PostKey};
pub use node::Stats;
pub use node::{Event, Input, Interest, Output, WakuConfig, WakuNode};
pub use packet::Dialect;
pub use peer::{PeerState, WakuPeer};
pub use pool::PoolConfig;
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
    /// An envelope is larger than the configured maximum.
    #[error("envelope of {0} bytes is too large")]
    EnvelopeTooLarge(usize),
    /// An envelope's PoW is below our requirement.
    #[error("insufficient PoW")]
    InsufficientPow,
    /// The first packet from a peer was not Status.
    #[error("expected Status")]
    ExpectedStatus,
    /// The peer's Status did not arrive in time.
    #[error("status timeout")]
    StatusTimeout,
    /// Both sides are light nodes.
    #[error("light node connected to a light node")]
    LightToLight,
    /// The peer exceeded its rate limit beyond the tolerance.
    #[error("rate limit exceeded")]
    RateLimited,
    /// API misuse: a configured cap is reached.
    #[error("limit reached: {0}")]
    LimitReached(&'static str),
    /// API misuse: no such peer, or it is already connected.
    #[error("unknown or duplicate peer")]
    UnknownPeer,
    /// API misuse: the peer's handshake is not done.
    #[error("peer not ready")]
    NotReady,
    /// A post's PoW target was not reached within the iteration limit.
    #[error("PoW target not reached")]
    PowNotReached,
    /// A posted envelope is already expired.
    #[error("envelope expired")]
    Expired,
    /// A packet with a code this node does not use (it still costs the sender its bytes).
    #[error("unknown packet code {0}")]
    UnknownPacket(u64),
    /// More Status Updates than `max_status_updates_per_minute`.
    #[error("too many status updates")]
    TooManyStatusUpdates,
    /// API misuse: a subscription with this id exists already.
    #[error("duplicate subscription {0}")]
    DuplicateSubscription(SubscriptionId),
    /// API misuse: no subscription with this id.
    #[error("unknown subscription {0}")]
    UnknownSubscription(SubscriptionId),
    /// The configuration cannot work (see [`WakuConfig::validate`]).
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
}
