//! The Status application layer (6/PAYLOADS, 7/GROUP-CHAT, 2/ACCOUNT; notes `docs/protocol/payloads.md`): the
//! identity's text forms, the signed payload wrapper and message ids, Lamport clocks, receive validation,
//! the per-chat message log and private-group membership (pure functions and small values), and the
//! [`messenger`] state machine that routes them: public chats, 1:1 chats and private groups over the
//! secure transport and MVDS, with delivery reports and persistence.
//!
//! | module | section of the notes |
//! |---|---|
//! | [`identity`] | §9.1 key text form, §9.2 compressed self-describing key string, §9.3 three-word name |
//! | [`payloads`] | §2 the signed wrapper, author recovery and message ids; §3, §7 typed payloads |
//! | `clock` | §4 Lamport clocks |
//! | [`validate`] | §3.1, §7 receive validation rules |
//! | `content` | §3 stickers, images and audio as typed content; one-line descriptions |
//! | [`message_log`] | §2.1, §4 de-duplication by id, display order, the chat's clock |
//! | [`ChatId`] | §5 chat ids: public chat names, 1:1 and group ids |
//! | [`group`] | §6 private group membership events, signatures, the group fold |
//! | [`messenger`] | §1 layering, §5 chat ids and matching, §6.4 group sending; docs/protocol/status-transport-usage.md §2–§3 topics and keys; docs/protocol/mvds.md §6 |
//!
//! Chat topics and their symmetric keys (§8) live in [`crate::waku::status`]; the datasync unwrap (§1) in
//! [`crate::mvds::Payload::unwrap_datasync`].

mod chat_id;
mod clock;
mod content;
pub mod group;
pub mod identity;
pub mod message_log;
pub mod messenger;
pub mod payloads;
pub mod validate;

pub use chat_id::ChatId;
pub use clock::LamportClock;
pub use content::{Content, Media};
pub use group::GroupError;
pub use validate::ValidationError;

/// Errors of the application layer. Returned by the pure decoding and validation functions; a message
/// from a peer that fails them is dropped (and never shown), never a reason to fail a state machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChatError {
    /// A public key string or byte form is malformed or not a point on the curve.
    #[error("invalid public key")]
    InvalidPublicKey,
    /// Bytes from a peer are not the protobuf they should be.
    #[error("malformed protobuf")]
    Malformed,
    /// Bytes from a peer exceed a documented cap.
    #[error("{len} bytes exceed the cap of {max}")]
    TooLarge {
        /// Length received.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// A wrapper or event signature does not recover a public key.
    #[error("bad signature")]
    BadSignature,
    /// Signing with an own key failed.
    #[error("signing failed")]
    Signing,
    /// A message broke a receive validation rule.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// Group membership events were rejected.
    #[error(transparent)]
    Group(#[from] GroupError),
}
