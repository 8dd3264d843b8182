//! The engine's errors: [`NodeError`] for misuse and invalid configuration (returned), [`LayerError`]
//! for what a layer refused while the engine routed between layers (reported as
//! [`Event::LayerError`](super::Event::LayerError)).

use super::ConnId;
use crate::chat::messenger::MessengerError;
use crate::discovery::DiscoveryError;
use crate::mailserver::MailserverError;
use crate::rlpx::RlpxError;
use crate::waku::WakuError;

/// Errors of the engine itself (API misuse, invalid configuration); the layers' own errors pass through
/// [`crate::Error`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// No socket with this id (or it is still dialling when it should not be).
    #[error("unknown connection {0:?}")]
    UnknownConnection(ConnId),
    /// An accepted socket id is in use or has the dial bit set.
    #[error("connection id {0:?} is in use or has the dial bit")]
    InvalidConnectionId(ConnId),
    /// A command for a part that is not configured (`"messenger"`, `"mailserver"`).
    #[error("{0} is not configured")]
    NotConfigured(&'static str),
    /// The Messenger refused a command.
    #[error(transparent)]
    Messenger(#[from] MessengerError),
    /// [`MAX_STATIC_PEERS`](crate::discovery::peerpool::MAX_STATIC_PEERS) static peers are kept already (or configured).
    #[error("too many static peers")]
    TooManyStaticPeers,
    /// Bytes given as a peer cache are not one (garbled, too large, or of another version).
    #[error("invalid peer cache: {0}")]
    PeerCache(&'static str),
    /// A configuration value has no meaningful reading.
    #[error("invalid engine configuration: {0}")]
    Config(&'static str),
}

/// What a layer refused while the engine routed an output of another layer to it. The engine reports
/// each as [`Event::LayerError`](super::Event::LayerError) and goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayerError {
    /// The RLPx connection `conn` refused a packet or a disconnect (its output cap is full, or it is
    /// closing).
    #[error("rlpx connection {conn:?}: {error}")]
    Rlpx {
        /// The connection.
        conn: ConnId,
        /// Why.
        error: RlpxError,
    },
    /// The Waku node refused a packet, a post or a P2P send.
    #[error("waku: {0}")]
    Waku(WakuError),
    /// The Messenger refused a received message.
    #[error("messenger: {0}")]
    Messenger(MessengerError),
    /// The mailserver refused an archive, a request or an address.
    #[error("mailserver: {0}")]
    Mailserver(MailserverError),
    /// The DNS discovery client refused an answer or a resync.
    #[error("dns discovery: {0}")]
    Discovery(DiscoveryError),
}
