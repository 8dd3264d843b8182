//! What goes into and comes out of the Waku node (docs/protocol/waku.md §5–§8): [`Input`], [`Output`],
//! [`Event`] and the [`Stats`] counters.

use bytes::Bytes;

use super::super::envelope::Envelope;
use super::super::filter::{Filter, ReceivedMessage, SubscriptionId};
use super::super::message::NewMessage;
use super::super::options::StatusOptions;
use super::super::packet::{Dialect, EnvelopeError};
use super::super::WakuError;
use crate::conn::ConnId;
use crate::rlpx::DisconnectReason;

/// Inputs.
#[derive(Debug)]
pub enum Input {
    /// A connection now carries this dialect; we send our Status.
    PeerConnected {
        /// The caller's id for the connection.
        peer: ConnId,
        /// `waku/1` or `shh/6`.
        dialect: Dialect,
    },
    /// A packet from a peer (code relative to the capability).
    Packet {
        /// From whom.
        peer: ConnId,
        /// Packet code.
        code: u64,
        /// msg-data (envelopes share this buffer while they are processed; the pool keeps its own copy).
        data: Bytes,
    },
    /// The connection ended.
    PeerDisconnected {
        /// Which.
        peer: ConnId,
    },
    /// Encrypt, sign, seal and publish a message.
    Post(Box<NewMessage>),
    /// Publish a ready envelope (already sealed).
    Broadcast(Envelope),
    /// Mark a peer trusted (a mailserver we use) or not.
    SetTrusted {
        /// Which.
        peer: ConnId,
        /// Trusted?
        trusted: bool,
    },
    /// Send a P2P Request (126) with this msg-data.
    SendP2PRequest {
        /// To whom.
        peer: ConnId,
        /// msg-data (an envelope or a `MessagesRequest`).
        data: Vec<u8>,
    },
    /// Send envelopes as a P2P Message (127).
    SendP2PMessages {
        /// To whom.
        peer: ConnId,
        /// The envelopes.
        envelopes: Vec<Envelope>,
    },
    /// Send a P2P Request Complete (125) with this payload.
    SendRequestComplete {
        /// To whom.
        peer: ConnId,
        /// The flat completion payload.
        payload: Vec<u8>,
    },
    /// Change our PoW requirement (announced to peers).
    SetMinPow(f64),
    /// Add a filter under an id the caller chooses ([`WakuNode::unused_subscription_id`](super::WakuNode::unused_subscription_id) names a free
    /// one); announces the new interest to peers when it is derived from filters. `Err` if `id` is taken
    /// ([`WakuError::DuplicateSubscription`]) or `max_filters` is reached.
    Subscribe {
        /// The caller's id for it.
        id: SubscriptionId,
        /// What to watch and how to open it.
        filter: Filter,
    },
    /// Remove a filter. `Err(UnknownSubscription)` if there is none under `id`.
    Unsubscribe {
        /// Which.
        id: SubscriptionId,
    },
    /// Count `peer` toward rate-limit source `source` (for example a number derived from its IP
    /// address): every peer of a source shares one budget (`max_*_per_sec_per_source`) and the pool
    /// share. By default each peer is its own source (its [`ConnId`] number). `Err(UnknownPeer)` for an
    /// unknown peer.
    SetPeerSource {
        /// Which.
        peer: ConnId,
        /// Its source.
        source: u64,
    },
    /// Turn [`WakuConfig::open_own_posts`](super::WakuConfig::open_own_posts) on or off.
    SetOpenOwnPosts(bool),
}

/// Outputs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Output {
    /// A packet for the transport below (RLPx) to send to a peer.
    Transmit {
        /// To whom.
        peer: ConnId,
        /// Packet code.
        code: u64,
        /// msg-data.
        data: Bytes,
    },
    /// Disconnect a peer.
    Disconnect {
        /// Which.
        peer: ConnId,
        /// The RLPx reason to send.
        reason: DisconnectReason,
    },
    /// An event.
    Event(Event),
}

/// Events for the application.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The Status exchange with a peer completed.
    PeerReady {
        /// Which.
        peer: ConnId,
        /// Its options.
        options: Box<StatusOptions>,
    },
    /// A filter opened a message.
    Message(Box<ReceivedMessage>),
    /// A posted message was sealed and is in the pool (it goes out with the next cycle).
    Posted {
        /// Its envelope hash.
        hash: [u8; 32],
    },
    /// A post failed (PoW target not reached within `max_seal_iterations`, or encryption failed).
    PostFailed {
        /// Why.
        error: WakuError,
    },
    /// A peer confirmed a batch we sent.
    Confirmed {
        /// Who.
        peer: ConnId,
        /// The batch.
        batch_hash: [u8; 32],
        /// The envelopes in it, if we still remember the batch.
        envelopes: Vec<[u8; 32]>,
        /// Envelopes it rejected.
        errors: Vec<EnvelopeError>,
    },
    /// A peer broke a rule; `disconnected` tells whether it was dropped for it.
    PeerFault {
        /// Who.
        peer: ConnId,
        /// What it did.
        fault: WakuError,
        /// True if this fault ended the connection.
        disconnected: bool,
    },
    /// A packet from the peer was dropped for exceeding the rate limit.
    RateLimited {
        /// Who.
        peer: ConnId,
    },
    /// A P2P Request arrived (only when `mailserver` is on).
    P2PRequest {
        /// From whom.
        peer: ConnId,
        /// msg-data.
        data: Bytes,
    },
    /// Envelopes arrived in a trusted peer's P2P Message (already offered to the filters).
    P2PEnvelopes {
        /// From whom.
        peer: ConnId,
        /// Hashes, in order.
        hashes: Vec<[u8; 32]>,
    },
    /// A trusted peer completed a request.
    RequestComplete {
        /// From whom.
        peer: ConnId,
        /// The flat completion payload.
        payload: Bytes,
    },
    /// A new envelope entered the pool (for a mailserver to archive).
    EnvelopeAccepted {
        /// Its hash.
        hash: [u8; 32],
        /// The envelope.
        envelope: Envelope,
    },
}

/// Counters for observability and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Envelopes accepted into the pool.
    pub accepted: u64,
    /// Duplicates received.
    pub duplicates: u64,
    /// Envelopes rejected as invalid.
    pub rejected: u64,
    /// Envelopes sent to peers.
    pub relayed: u64,
    /// Packets dropped by the rate limiter.
    pub rate_limited: u64,
    /// Envelopes dropped at expiry.
    pub expired: u64,
    /// Envelopes dropped from a peer's send queue (it was full).
    pub queue_dropped: u64,
}
