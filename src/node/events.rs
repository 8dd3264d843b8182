//! What goes into the engine and what comes out (docs/protocol/status-client.md): [`Input`], [`Output`],
//! [`Event`], connection ids.

use std::net::SocketAddr;

use bytes::Bytes;

use super::{HistoryEvent, LayerError};
use crate::chat::messenger;
use crate::crypto::PublicKey;
use crate::discovery::dnstree;
#[cfg(doc)]
use crate::discovery::dnstree::DnsConfig;
use crate::enode::Enode;
use crate::mailserver::server::{QueryId, KEY_LEN};
use crate::mailserver::StorageOp;
use crate::rlpx::DisconnectReason;
use crate::waku::{self, Dialect};

pub use crate::conn::ConnId;

/// Ids the engine assigns to its dials have this bit set; the driver must use ids without it.
pub const DIAL_ID_BIT: u64 = 1 << 63;

/// Inputs.
#[derive(Debug)]
pub enum Input<'a> {
    /// The driver accepted an inbound socket and named it `conn` (top bit clear); its address is
    /// unknown (all such sockets share one address for admission). Prefer [`Input::AcceptedFrom`].
    Accepted {
        /// The id.
        conn: ConnId,
    },
    /// The driver accepted an inbound socket from `addr` and named it `conn` (top bit clear).
    AcceptedFrom {
        /// The id.
        conn: ConnId,
        /// The remote address.
        addr: SocketAddr,
    },
    /// A dial we asked for connected.
    Connected {
        /// The id from [`Output::Dial`].
        conn: ConnId,
    },
    /// A dial we asked for failed.
    DialFailed {
        /// The id from [`Output::Dial`].
        conn: ConnId,
    },
    /// Bytes read from a socket.
    Received {
        /// From which.
        conn: ConnId,
        /// The bytes.
        data: &'a [u8],
    },
    /// A socket ended (EOF or error).
    Closed {
        /// Which.
        conn: ConnId,
    },
    /// Keep this peer connected from now on (at most [`MAX_STATIC_PEERS`](crate::discovery::peerpool::MAX_STATIC_PEERS)).
    AddStaticPeer(Enode),
    /// A peer found by some discovery method: dialled when the engine is below `target_peers`.
    AddPeerCandidate(Enode),
    /// The answer to [`Output::ResolveTxt`]: the TXT records of `name` (each record's strings joined), or
    /// `None` if the lookup failed.
    /// An answer for a name that was not asked (or without `dns_discovery`) is ignored.
    DnsResolved {
        /// The name from [`Output::ResolveTxt`].
        name: String,
        /// The records, or `None`.
        txt: Option<Vec<String>>,
    },
    /// The store's answer to a [`StorageOp::Query`] (mailserver only).
    QueryResult {
        /// The query.
        query: QueryId,
        /// `(key, envelope RLP)` in ascending key order.
        entries: Vec<([u8; KEY_LEN], Bytes)>,
    },
    /// A Waku command (post, broadcast, trust, P2P requests, PoW requirement).
    Waku(waku::Input),
    /// A Messenger command (join a chat, send a text); requires `messenger` in the configuration.
    Chat(messenger::Input),
    /// Ask the mailservers for history now: of these topics, or of every watched topic when empty.
    /// Requires `mailservers` in the configuration.
    RequestHistory(Vec<waku::Topic>),
    /// The driver made the [`Output::Persist`] batch `seq` (and every one before it) durable.
    Persisted(crate::persist::BatchSeq),
}

/// Outputs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Output {
    /// Open a TCP connection to `addr`; report [`Input::Connected`] or [`Input::DialFailed`] with `conn`.
    Dial {
        /// The id the engine gives this socket.
        conn: ConnId,
        /// Where.
        addr: SocketAddr,
    },
    /// Write bytes to a socket.
    Transmit {
        /// Which.
        conn: ConnId,
        /// The bytes.
        data: Bytes,
    },
    /// Close a socket (after writing what was transmitted before).
    Close {
        /// Which.
        conn: ConnId,
    },
    /// A mailserver storage action for the driver to carry out (`mailserver` only); a
    /// [`StorageOp::Query`] is answered with [`Input::QueryResult`].
    Storage(StorageOp),
    /// Make these records durable in one atomic write (fsynced), then answer with [`Input::Persisted`].
    /// Only with a [`durable`](crate::chat::messenger::MessengerConfig::durable) Messenger; the outputs
    /// that reveal what the records carry come after the confirmation (docs/architecture.md
    /// "Persistence"). Resume with [`Engine::restore`](super::Engine::restore) from the stored records.
    Persist(crate::persist::Batch),
    /// Look up the TXT records of `name` and answer with [`Input::DnsResolved`] (DNS discovery; a few at a
    /// time, [`DnsConfig::max_in_flight`]).
    ResolveTxt {
        /// The DNS name.
        name: String,
    },
    /// Something happened.
    Event(Event),
}

/// Events.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A peer completed the RLPx handshake and Hello.
    PeerConnected {
        /// Its socket.
        conn: ConnId,
        /// Its identity.
        id: PublicKey,
        /// Its client id.
        client: String,
        /// The Waku dialect attached.
        dialect: Option<Dialect>,
    },
    /// A peer went away.
    PeerDisconnected {
        /// Its socket.
        conn: ConnId,
        /// Its identity, if the handshake got that far.
        id: Option<PublicKey>,
        /// The Disconnect reason.
        reason: DisconnectReason,
        /// True if the remote ended it.
        remote: bool,
    },
    /// A Waku event (messages opened by the Messenger's filters go to the Messenger instead).
    Waku(waku::Event),
    /// A Messenger event.
    Chat(messenger::Event),
    /// A mailserver history event.
    History(HistoryEvent),
    /// The peer target is reached: DNS discovery stops looking (only with `dns_discovery`).
    DiscoverySuspended,
    /// Below the peer target with nothing left to dial: DNS discovery looks again (only with
    /// `dns_discovery`).
    DiscoveryResumed,
    /// A DNS tree event (a linked tree, a finished walk, a rejected entry); found nodes become candidates.
    DnsTree(dnstree::Event),
    /// A layer refused something the engine routed to it (see [`LayerError`]). The engine goes on; what
    /// was refused is lost (a packet past the RLPx output cap, say).
    LayerError(LayerError),
    /// A dial was not reported connected within [`EngineConfig::dial_timeout`](super::EngineConfig::dial_timeout):
    /// the engine counts it as failed and emits [`Output::Close`] for it.
    DialTimedOut {
        /// The dial's id.
        conn: ConnId,
    },
}
