//! Discovery: node records, DNS node lists and the peer pool (notes: `docs/protocol/status-client.md`
//! "Discovery and peers", `docs/protocol/status-transport-usage.md` §5).
//!
//! * `enr`: Ethereum Node Records, EIP-778 ("RLP Encoding", "Text Encoding", "\"v4\" Identity
//!   Scheme"): decode, verify, build and sign, accessors for `ip`/`tcp`/`udp`/`ip6`/`tcp6`/`udp6`, and
//!   the conversion to an [`Enode`](crate::enode::Enode) URL;
//! * [`dnstree`]: EIP-1459 ("DNS Record Structure", "Client Protocol"): TXT entries, `enrtree://` URLs,
//!   root signatures and entry hashes, and [`DnsTreeClient`], which asks its driver for TXT records;
//! * [`peerpool`]: the PeerPool rules of `docs/protocol/status-client.md`: static peers, target relay
//!   count, one mailserver, suspend/resume of discovery, dial backoff and timeout, and a cache of good
//!   peers exported as bytes; the one peer pool, which the engine drives.
//!
//! Deliberate deviations are listed in each module's documentation.

pub mod dnstree;
mod encoding;
pub(crate) mod enr;
pub mod peerpool;
mod txt;

pub use dnstree::{DnsConfig, DnsTreeClient, EnrTreeUrl, Entry, EntryError, RootEntry, TreeError};
pub use enr::{Enr, EnrBuilder, EnrError, NodeId, MAX_RECORD_SIZE};
pub use peerpool::{PeerKind, PeerPool, PeerPoolConfig};
pub use txt::join_txt;

/// Errors of the discovery layer (misuse of the API by the caller: bad configuration, bad URLs given
/// to a constructor, bad bytes given to an import).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// A node record was rejected.
    #[error("invalid node record: {0}")]
    Enr(#[from] EnrError),
    /// A DNS tree entry or `enrtree://` URL was rejected.
    #[error("invalid DNS tree entry: {0}")]
    Entry(#[from] EntryError),
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
    /// Bytes given to [`PeerPool::import_cache`] are not a peer cache (garbled, too large, or of another
    /// version).
    #[error("invalid peer cache: {0}")]
    Cache(&'static str),
    /// [`MAX_STATIC_PEERS`](peerpool::MAX_STATIC_PEERS) static peers are kept already.
    #[error("too many static peers")]
    TooManyStaticPeers,
}
