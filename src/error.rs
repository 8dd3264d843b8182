//! The top-level error type: one variant per layer.
//!
//! `Err` values are for misuse of the API by the caller. Faults caused by a remote peer are reported as
//! events (and, where the protocol has one, a disconnect with the right reason), never as `Err` from
//! `handle_input`.

pub use crate::chat::ChatError;
pub use crate::discovery::DiscoveryError;
pub use crate::mailserver::MailserverError;
pub use crate::mvds::MvdsError;
pub use crate::node::NodeError;
pub use crate::rlpx::RlpxError;
pub use crate::secure::SecureError;
pub use crate::waku::WakuError;

/// Any error of the stack.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An RLPx transport error.
    #[error(transparent)]
    Rlpx(#[from] RlpxError),
    /// A Waku layer error.
    #[error(transparent)]
    Waku(#[from] WakuError),
    /// An MVDS data-sync error.
    #[error(transparent)]
    Mvds(#[from] MvdsError),
    /// A secure-transport error.
    #[error(transparent)]
    Secure(#[from] SecureError),
    /// A mailserver error.
    #[error(transparent)]
    Mailserver(#[from] MailserverError),
    /// An application-layer (payload, identity, group) error.
    #[error(transparent)]
    Chat(#[from] ChatError),
    /// A discovery error.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// A node engine error.
    #[error(transparent)]
    Node(#[from] NodeError),
}
