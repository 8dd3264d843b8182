//! MVDS, the Minimum Viable Data Synchronization protocol (2/MVDS) as Status uses it (protocol notes:
//! `docs/protocol/mvds.md`).
//!
//! * `payload`: the wire types with the Status field numbers 5001–5005 / 6001–6003 (§2), message ids
//!   (§3.1) and the one-to-one group id (§3.2);
//! * `state`: [`Config`] with its caps, the retransmission [`Schedule`] (§5.4), sync records and the
//!   persistence [`Snapshot`] (§5.1);
//! * `node`: the [`Node`] state machine, batch and interactive modes (§4, §5.2–§5.5).
//!
//! Choices where the protocol leaves room, and deliberate deviations from the reference:
//! * Epochs are derived from time (`tick`, 300 ms by default) instead of a free-running ticker, so an idle
//!   node has no deadline; a node that was not polled for several epochs runs them as one.
//! * A duplicate MESSAGE is ACKed again (STATUS-2020 did not, so a lost ACK meant endless resends); an
//!   unknown ACK is skipped and the remaining ACKs are processed (the reference aborted the loop).
//! * An OFFER for a message we hold is ACKed, and an ACK (or the MESSAGE itself) from a peer settles our
//!   OFFER record too; the spec leaves such offers unanswered, so the offerer would retransmit until it
//!   gives up. Only sharing in groups of more than two members produces such offers; Status syncs
//!   pairwise, so it never does.
//! * A REQUEST for a message already being pushed keeps the record and pulls its next send forward; a
//!   REQUEST answering our OFFER replaces the OFFER with a MESSAGE record (the reference's insert
//!   conflicted with the OFFER's primary key).
//! * [`Event::Delivered`] and [`Event::DeliveryFailed`] are raised once per (peer, message) obligation:
//!   for records of messages we send or share, not for a MESSAGE that answers a REQUEST we never
//!   solicited (a stale duplicate REQUEST after delivery is answered, silently).
//! * The schedule is pluggable ([`Schedule::STATUS_2020`], [`Schedule::STATUS_HEAD`], a capped
//!   exponential backoff with jitter from the node's seeded RNG, or the default [`Schedule::ADAPTIVE`]:
//!   a retransmission timeout adapted to the measured round trip as TCP's (RFC 6298: SRTT, RTTVAR,
//!   doubling per retransmission up to 6 minutes, Karn's rule), so a lossless link
//!   carries each message and each ACK once; one estimate per node, not per peer, since every peer is
//!   reached over the same Waku network), and the give-up (`max_send_count`) raises
//!   [`Event::DeliveryFailed`].
//! * A received message whose group id is not 32 bytes is skipped without ACK (the reference would
//!   store it under an unusable group).
//! * Decoding is lenient: an id that is not 32 bytes is skipped (and counted in
//!   [`Stats::ids_skipped`]) and the rest of the payload is processed, and the STATUS-HEAD
//!   `group_offers` (5005), which the node ignores, can never make a payload undecodable (see
//!   `payload`).
//! * Membership: MESSAGEs are accepted from any sender (a Status receiver has not added the sender of a
//!   first one-to-one message as a peer) but shared only if the sender is a peer of their group;
//!   OFFERs are acted on only from senders sharing a group with us; records a peer's payload creates
//!   have their own quota ([`Config::max_remote_states`]), so peers cannot starve local sends.
//! * [`Input::Send`] to a group without peers fails with [`MvdsError::NoPeers`]; [`Input::RemovePeer`]
//!   reports each abandoned obligation with [`Event::DeliveryFailed`].
//! * Everything is capped ([`Config`], checked by [`Config::validate`]); the behaviour at each cap,
//!   the output queue's included, is documented there.

mod node;
mod payload;
mod state;

pub use node::{Event, Input, Node, Output, MAX_SNAPSHOT_EPOCH};
pub use payload::{
    GroupId, GroupOffer, Message, MessageId, Payload, PayloadError, PeerId, MAX_PAYLOAD_BYTES,
};
pub use state::{Config, Mode, RecordKind, Rtt, Schedule, Snapshot, Stats, SyncState};

/// Errors of the MVDS layer: refused local commands and unusable snapshots.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MvdsError {
    /// The body exceeds `Config::max_body_bytes`.
    #[error("message body of {0} bytes exceeds the cap")]
    BodyTooLarge(usize),
    /// The store is full of messages that are still being synced.
    #[error("message store full")]
    StoreFull,
    /// Adding the records would exceed `max_states` or `max_states_per_peer`.
    #[error("sync state full")]
    StateFull,
    /// [`Input::Send`] to a group without peers: nobody to sync the message to, so nothing is stored.
    #[error("the group has no peers")]
    NoPeers,
    /// The configuration is inconsistent ([`Config::validate`]).
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
    /// `max_groups` reached.
    #[error("too many groups")]
    TooManyGroups,
    /// `max_peers_per_group` reached.
    #[error("too many peers in the group")]
    TooManyPeers,
    /// A snapshot could not be decoded or does not fit the configuration.
    #[error("bad snapshot: {0}")]
    BadSnapshot(&'static str),
}
