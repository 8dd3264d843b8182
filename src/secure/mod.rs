//! Secure transport (5/SECURE-TRANSPORT): prekey bundles, X3DH, the Double Ratchet, DH-only messages and
//! multi-device, byte-compatible with status-go (notes `docs/protocol/secure-transport.md`).
//!
//! | module | section of the notes |
//! |---|---|
//! | [`dh`] | §1 primitives; the DH function as a trait over secp256k1 (wire) and X25519 |
//! | [`kdf`] | §5.1 the ratchet crypto suite; §6 AES-256-GCM of the DH-only mode |
//! | [`bundle`] | §3 bundles, signature material, own signed prekeys and rotation |
//! | [`x3dh`] | §4 X3DH without one-time prekeys, `SK = keccak256(DH1‖DH2‖DH3)` |
//! | [`ratchet`] | §5 Double Ratchet sessions, skipped keys, export/import |
//! | `multidevice` | §3.5, §9 installations learned from bundles, enabling/disabling |
//! | [`sharedsecret`] | §11 negotiated secret and topic names |
//! | `transport` | §8 the [`SecureTransport`] state machine: encrypt for an identity, handle received bytes |
//!
//! Reference behaviour kept on purpose although it differs from Signal: secp256k1 everywhere with the raw
//! X coordinate as DH output, Keccak-256 as the X3DH KDF, HKDF info strings and chain constants
//! `0x0f`/`0x10`, AES-256-CTR + HMAC-SHA-256, the responder's initial `CKs = SK`, no associated data beyond
//! the header.
//!
//! Deliberate deviations (local policy; the wire is unchanged):
//! * a message key is deleted once it opened its message, so replays are rejected (the reference keeps it
//!   until the application confirms the envelope);
//! * skipped keys also expire by age; sessions, installations and bundle sizes are capped ([`Config`]);
//! * a received bundle is verified before anything from it is stored (the reference stores first);
//! * when a peer installation has several non-expired prekeys the highest version is used;
//! * at most one bundle advertisement per sender per two hours (the evident intent of the reference's
//!   inverted condition, §8.3);
//! * the hash ratchet of communities (§12, `HRHeader`) is decoded but not implemented: such an entry is
//!   rejected with [`SecureError::NoKey`];
//! * the PBKDF2 symmetric keys of topic names belong to the transport layer and are not derived here.
//! * §8.2 step 7 records every installation that wrote to us as "agreed"; we skip our own identity, so
//!   copies to our paired devices always go on the partitioned topic (asymmetric to our own key, which all
//!   our devices listen to) and no negotiated secret with ourselves is announced. Delivery is unaffected;
//!   only the topic differs from a reference client that would use `S = DH(IK, IK)`.
//! * signatures (bundles here; the Waku layer uses the same [`crate::crypto::recover`]) are checked by
//!   public-key recovery, which accepts `v` in `0..=3` and also `27..=30`, and rejects high-S signatures
//!   (`s > n/2`) as go-ethereum's `crypto.Sign` never produces them. go-ethereum's `SigToPub` for bundles
//!   accepts only `v ∈ {0, 1}`; accepting the legacy offsets as well admits no second signer, since the
//!   recovered key must still equal the bundle's identity.
//!
//! The ratchet and X3DH are generic over [`dh::Curve`] and tested on secp256k1 and X25519; the
//! [`SecureTransport`] machine is secp256k1 only, because X3DH mixes the ratchet curve with the identity
//! key, which is the secp256k1 key the transport signature recovers.

pub mod bundle;
pub mod dh;
pub mod kdf;
mod multidevice;
pub mod ratchet;
pub mod sharedsecret;
mod transport;
pub mod x3dh;

pub use multidevice::{AgreedInstallations, Installation, Installations};
pub use transport::{Config, Event, Input, Outgoing, Output, Route, SecureTransport};

/// Errors of the secure-transport layer. Peer faults are reported with these values as events (or returned
/// by the pure functions), never as `Err` from the state machine's `handle_input`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecureError {
    /// A public key is not a valid point (or gives a degenerate DH output).
    #[error("invalid public key")]
    InvalidPublicKey,
    /// A ciphertext is shorter than its IV/nonce and tag.
    #[error("ciphertext too short")]
    CiphertextTooShort,
    /// The MAC or AEAD tag did not verify.
    #[error("bad MAC")]
    BadMac,
    /// The message key was already used (replay) or deleted (evicted or expired).
    #[error("duplicate message or expired key")]
    DuplicateOrExpired,
    /// The header would make us skip more message keys than allowed.
    #[error("message too far ahead")]
    TooFarAhead,
    /// The header is inconsistent with the session (e.g. previous chain shorter than received).
    #[error("invalid header")]
    InvalidHeader,
    /// The sending counter would overflow.
    #[error("sending chain exhausted")]
    CounterExhausted,
    /// Protobuf decoding failed.
    #[error("malformed protobuf")]
    Decode,
    /// A bundle is malformed (bad key, empty, too many installations).
    #[error("malformed bundle")]
    MalformedBundle,
    /// A bundle's signature does not recover to its identity.
    #[error("bundle signature does not match its identity")]
    BadBundleSignature,
    /// Signing failed.
    #[error("signing failed")]
    Signing,
    /// A plaintext is too large for the cipher.
    #[error("payload too large")]
    PayloadTooLarge,
    /// Exported state could not be imported.
    #[error("invalid exported state")]
    InvalidState,
    /// The message has no entry for our installation.
    #[error("no entry for this installation")]
    NoEntryForInstallation,
    /// A message from one of our own installations that is not paired (enabled).
    #[error("message from an unpaired own installation")]
    NotPairedInstallation,
    /// The X3DH header names a signed prekey we do not have.
    #[error("unknown signed prekey")]
    UnknownPreKey,
    /// No session matches the Double Ratchet header.
    #[error("session not found")]
    SessionNotFound,
    /// The entry carries no header we can use.
    #[error("no key specified")]
    NoKey,
    /// The message exceeds a configured limit (size, bundles, entries).
    #[error("message exceeds a configured limit")]
    LimitExceeded,
    /// The sender's installation id is longer than [`bundle::MAX_INSTALLATION_ID_LEN`] bytes.
    #[error("installation id too long")]
    InvalidInstallationId,
    /// The [`Config`] is unusable ([`Config::validate`]); the reason names the field.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
}
