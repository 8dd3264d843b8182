//! RLPx v5, the encrypted TCP transport of devp2p (protocol notes: `docs/protocol/rlpx.md`).
//!
//! * [`ecies`]: the ECIES construction (§2);
//! * [`handshake`]: auth/ack in the EIP-8 and legacy encodings, secrets and MAC initialisation (§3);
//! * [`frame`]: AES-256-CTR framing with the Keccak-based header and frame MACs (§4);
//! * [`p2p`]: the base protocol messages Hello, Disconnect, Ping, Pong and capability matching (§5–§7);
//! * `connection`: the [`Connection`] state machine composing all of the above.
//!
//! Deliberate choices where the protocol leaves room: EIP-8 is sent by default (100–199 zero bytes of
//! padding, as geth 1.10 does) and a legacy auth/ack is still accepted when received (old geth's detection
//! rule); a received Disconnect is decoded leniently (`[]`, `[r]` or a bare `r`); the idle read timeout
//! maps to reason 0x0b.

mod connection;
pub mod ecies;
pub mod frame;
pub mod handshake;
pub mod p2p;

pub use connection::{Config, Connection, Event, Input, Output, Role};
pub use p2p::{Capability, DisconnectReason, Hello, Protocol, SharedCapability};

/// Errors of the RLPx layer.
///
/// Returned as `Err` only for misuse of the API; the same values describe peer faults inside
/// [`Event::Disconnected`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RlpxError {
    /// An ECIES packet did not open.
    #[error("ECIES: {0}")]
    Ecies(#[from] ecies::EciesError),
    /// The auth or ack packet is malformed (bad size prefix, bad RLP, bad field lengths).
    #[error("malformed handshake packet: {0}")]
    MalformedHandshake(&'static str),
    /// The auth signature does not recover to a valid ephemeral key.
    #[error("invalid handshake signature")]
    InvalidSignature,
    /// A handshake packet's size prefix exceeds the configured cap.
    #[error("handshake packet of {0} bytes exceeds the cap")]
    HandshakeTooLarge(usize),
    /// A frame header MAC did not verify.
    #[error("bad header MAC")]
    BadHeaderMac,
    /// A frame body MAC did not verify.
    #[error("bad frame MAC")]
    BadFrameMac,
    /// A frame exceeds the configured maximum size.
    #[error("frame of {0} bytes exceeds the cap")]
    FrameTooLarge(usize),
    /// A frame or message could not be decoded.
    #[error("malformed message: {0}")]
    MalformedMessage(&'static str),
    /// A Snappy-compressed message is invalid or would inflate past the limit.
    #[error("bad compressed message: {0}")]
    Snappy(&'static str),
    /// The first message was neither Hello nor Disconnect, or a Hello came twice.
    #[error("expected Hello")]
    ExpectedHello,
    /// The Hello's node id is not 64 bytes or is all zero (reason 0x07).
    #[error("invalid node id in Hello")]
    InvalidNodeId,
    /// The Hello is malformed or larger than 2 KiB.
    #[error("invalid Hello: {0}")]
    InvalidHello(&'static str),
    /// A message id beyond every shared capability.
    #[error("message id {0} out of range")]
    MessageIdOutOfRange(u64),
    /// The remote closed the transport.
    #[error("transport closed")]
    TransportClosed,
    /// The handshake (auth/ack plus Hello) did not finish in time.
    #[error("handshake timeout")]
    HandshakeTimeout,
    /// Nothing was received for too long, or a Ping went unanswered.
    #[error("ping timeout")]
    PingTimeout,
    /// API misuse: the connection is not (or no longer) ready to carry sub-protocol messages.
    #[error("connection not ready")]
    NotReady,
    /// API misuse: the named capability is not shared with this peer.
    #[error("capability not shared: {0}")]
    UnknownCapability(String),
    /// API misuse: a message code outside the capability's length.
    #[error("message code {code} outside capability length {length}")]
    CodeOutOfRange {
        /// The code given.
        code: u64,
        /// The capability's number of codes.
        length: u64,
    },
    /// API misuse: a message too large to send.
    #[error("message of {0} bytes is too large to send")]
    MessageTooLarge(usize),
    /// API misuse: the output queue is full; drain `poll_output` first.
    #[error("output queue full")]
    OutputFull,
    /// API misuse: invalid configuration.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
}
