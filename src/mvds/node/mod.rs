//! The MVDS node state machine (docs/protocol/mvds.md §4, §5).
//!
//! Files: this one (inputs, outputs, events, the [`Node`] and its entry points), `membership` (peers
//! of groups), `store` (the message store, local appends, record quotas), `receive` (received
//! payloads), `epoch` (what each epoch sends, retransmission).

mod epoch;
mod membership;
mod receive;
mod store;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use rand_chacha::ChaCha20Rng;

use super::payload::{GroupId, Message, MessageId, Payload, PayloadError, PeerId};
use super::state::{Config, RecordKind, Rtt, Snapshot, States, Stats, SyncState};
use super::MvdsError;
use crate::rng::Seed;
use crate::time::Timestamp;

/// What the caller feeds the node.
#[derive(Clone, Debug)]
pub enum Input {
    /// Bytes of an MVDS payload received from `from` (the transport-level sender).
    Received {
        /// The sender.
        from: PeerId,
        /// The encoded payload.
        bytes: Bytes,
    },
    /// An already decoded payload received from `from` (Status decodes first to tell datasync payloads
    /// from bare application messages).
    ReceivedPayload {
        /// The sender.
        from: PeerId,
        /// The payload.
        payload: Payload,
    },
    /// Append a message to `group` and sync it to the group's peers. Its id is
    /// [`MessageId::for_send`]`(&group, now, &body)`, computable before the call (the same body appended
    /// to the same group twice within one second gets the same id). Refused (nothing stored) with
    /// [`MvdsError::NoPeers`] if the group has no peers (add them first, as status-go's
    /// `addToDataSync` does), [`MvdsError::BodyTooLarge`], [`MvdsError::StateFull`] or
    /// [`MvdsError::StoreFull`]. Peers that still have a pending record for the id are not sent it
    /// twice; a peer that already acknowledged it gets it again (and ACKs it as a duplicate).
    Send {
        /// The group.
        group: GroupId,
        /// The opaque body.
        body: Bytes,
    },
    /// Make `peer` a member of `group` (idempotent). Refused with [`MvdsError::TooManyGroups`] or
    /// [`MvdsError::TooManyPeers`] at the caps.
    AddPeer {
        /// The group.
        group: GroupId,
        /// The peer.
        peer: PeerId,
    },
    /// Remove `peer` from `group`. Its pending OFFER and MESSAGE records of that group are abandoned:
    /// each one that reports to the application raises [`Event::DeliveryFailed`], at once while the
    /// output queue has room, otherwise in the next epoch (the record is made due and abandoned then,
    /// unless the peer has been added back). If the peer shares no group with us any more, the
    /// REQUESTs we were sending it are dropped too (silently: they report nothing).
    RemovePeer {
        /// The group.
        group: GroupId,
        /// The peer.
        peer: PeerId,
    },
}

/// What the node wants done.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// Send `payload` to `peer`.
    Transmit {
        /// The destination.
        peer: PeerId,
        /// The payload (encode with [`Payload::encode_to_vec`]).
        payload: Payload,
    },
    /// Tell the application.
    Event(Event),
}

/// Events for the application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A message seen for the first time (it has been stored and will be ACKed).
    MessageReceived {
        /// The peer it came from.
        from: PeerId,
        /// Its id.
        message_id: MessageId,
        /// The message.
        message: Message,
    },
    /// `peer` acknowledged (or otherwise proved it holds) the message.
    Delivered {
        /// The peer.
        peer: PeerId,
        /// The message.
        message_id: MessageId,
    },
    /// The node gave up on delivering the message to `peer` (`Config::max_send_count`).
    DeliveryFailed {
        /// The peer.
        peer: PeerId,
        /// The message.
        message_id: MessageId,
    },
    /// A received payload was ignored.
    PayloadIgnored {
        /// The peer it came from.
        from: PeerId,
        /// Why.
        reason: PayloadError,
    },
}

/// When a record was first transmitted, and at which backoff level.
#[derive(Clone, Copy, Debug)]
pub(super) struct FirstSent {
    pub(super) epoch: u64,
    /// [`Rtt::backoff`] at the first transmission: the record's timeouts double from there.
    pub(super) level: u32,
    /// Transmitted again since: its ACK measures no round trip (Karn's rule).
    pub(super) retransmitted: bool,
}

#[derive(Clone, Debug, Default)]
pub(super) struct AckQueue {
    pub(super) order: VecDeque<MessageId>,
    pub(super) set: BTreeSet<MessageId>,
}

/// The largest epoch a [`Snapshot`] may carry (2^48 epochs of 300 ms are 2.7 million years); larger
/// values are rejected by [`Node::from_snapshot`] so that epoch arithmetic never comes near overflow.
pub const MAX_SNAPSHOT_EPOCH: u64 = 1 << 48;

/// An MVDS node: the per-peer, per-message sync state of one participant.
///
/// Epochs are derived from time: epoch `e` begins at `origin + (e - origin_epoch) * tick`. Each
/// [`handle_timeout`](Node::handle_timeout) in a new epoch sends, in one payload per peer, the pending
/// ACKs and every record due in that epoch or before. An idle node has no deadline.
///
/// Membership: MESSAGEs are accepted (stored, delivered, ACKed) from any sender, as the reference does
/// and as Status needs (the receiver of a first one-to-one message has not added its sender as a peer);
/// they are shared with the other peers of their group only if the sender is a peer of that group.
/// OFFERs are acted on only from senders that share at least one group with us (others are counted in
/// [`Stats::offers_from_non_members`]), and REQUESTs only for a message of a group the requester is a
/// peer of. Every record a peer's payload creates counts against the peer quota
/// ([`Config::max_remote_states`]), so no sender can exhaust the records local sends need.
#[derive(Debug)]
pub struct Node {
    config: Config,
    rng: ChaCha20Rng,
    origin: Timestamp,
    origin_epoch: u64,
    processed_epoch: u64,
    /// Messages with their insertion sequence number.
    store: BTreeMap<MessageId, (u64, Message)>,
    /// Stored messages no record refers to, oldest first: the eviction order.
    evictable: BTreeMap<u64, MessageId>,
    next_seq: u64,
    groups: BTreeMap<GroupId, BTreeSet<PeerId>>,
    /// Number of groups each peer is in.
    peer_groups: BTreeMap<PeerId, usize>,
    states: States,
    /// The round trips measured so far ([`Schedule::Adaptive`](crate::mvds::Schedule::Adaptive)).
    rtt: Rtt,
    /// Each transmitted record's first transmission: at most one entry per record, removed with it.
    first_sent: BTreeMap<(PeerId, MessageId), FirstSent>,
    acks: BTreeMap<PeerId, AckQueue>,
    acks_total: usize,
    /// The epoch by which the pending ACKs are to be sent.
    ack_epoch: Option<u64>,
    outputs: VecDeque<Output>,
    stats: Stats,
}

impl Node {
    /// A fresh node at epoch 0. Fails with [`MvdsError::InvalidConfig`] if
    /// [`Config::validate`] does.
    pub fn new(config: Config, seed: &Seed, now: Timestamp) -> Result<Self, MvdsError> {
        config.validate()?;
        Ok(Node {
            config,
            rng: seed.rng(),
            origin: now,
            origin_epoch: 0,
            processed_epoch: 0,
            store: BTreeMap::new(),
            evictable: BTreeMap::new(),
            next_seq: 0,
            groups: BTreeMap::new(),
            peer_groups: BTreeMap::new(),
            states: States::default(),
            rtt: Rtt::default(),
            first_sent: BTreeMap::new(),
            acks: BTreeMap::new(),
            acks_total: 0,
            ack_epoch: None,
            outputs: VecDeque::new(),
            stats: Stats::default(),
        })
    }

    /// Restore a node from a [`Snapshot`]; it resumes at the snapshot's epoch at `now`. Fails with
    /// [`MvdsError::InvalidConfig`] for a bad `config`, and with [`MvdsError::BadSnapshot`] if the
    /// snapshot is inconsistent (an epoch above [`MAX_SNAPSHOT_EPOCH`], an OFFER or MESSAGE record
    /// without its message or group) or exceeds the caps of `config`. A message listed twice is kept
    /// once; a record listed twice keeps the last.
    pub fn from_snapshot(
        config: Config,
        seed: &Seed,
        now: Timestamp,
        snapshot: Snapshot,
    ) -> Result<Self, MvdsError> {
        let bad = MvdsError::BadSnapshot;
        let mut node = Node::new(config, seed, now)?;
        if snapshot.epoch > MAX_SNAPSHOT_EPOCH {
            return Err(bad("epoch out of range"));
        }
        node.origin_epoch = snapshot.epoch;
        node.processed_epoch = snapshot.epoch;
        for m in snapshot.messages {
            if node.store.len() >= node.config.max_messages {
                return Err(bad("too many messages"));
            }
            let id = m.id();
            node.store_insert(id, m);
        }
        for (g, peers) in snapshot.groups {
            for p in peers {
                node.add_peer(g, p).map_err(|_| bad("too many groups or peers"))?;
            }
        }
        for (peer, id, s) in snapshot.states {
            if !node.states.contains(&peer, &id) && !node.room_for_state(&peer, s.local) {
                return Err(bad("too many states"));
            }
            if s.kind != RecordKind::Request && (s.group.is_none() || !node.store.contains_key(&id)) {
                return Err(bad("record without its message or group"));
            }
            node.insert_state(peer, id, s);
        }
        Ok(node)
    }

    /// Export the persistent state at `now`.
    pub fn snapshot(&self, now: Timestamp) -> Snapshot {
        let mut messages: Vec<&(u64, Message)> = self.store.values().collect();
        messages.sort_by_key(|(seq, _)| *seq);
        Snapshot {
            epoch: self.epoch(now),
            messages: messages.into_iter().map(|(_, m)| m.clone()).collect(),
            groups: self
                .groups
                .iter()
                .map(|(g, ps)| (*g, ps.iter().cloned().collect()))
                .collect(),
            states: self.states.iter().map(|(p, i, s)| (p.clone(), *i, *s)).collect(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The epoch at `now` (saturating).
    pub fn epoch(&self, now: Timestamp) -> u64 {
        let tick = (self.config.tick.as_millis() as u64).max(1);
        let elapsed = (now - self.origin).as_millis().min(u128::from(u64::MAX)) as u64;
        self.origin_epoch.saturating_add(elapsed / tick)
    }

    fn time_of(&self, epoch: u64) -> Timestamp {
        let tick = (self.config.tick.as_millis() as u64).max(1);
        let ms = epoch.saturating_sub(self.origin_epoch).saturating_mul(tick);
        Timestamp::from_millis(self.origin.as_millis().saturating_add(ms))
    }

    /// Messages in the store.
    pub fn message_count(&self) -> usize {
        self.store.len()
    }

    /// A stored message.
    pub fn message(&self, id: &MessageId) -> Option<&Message> {
        self.store.get(id).map(|(_, m)| m)
    }

    /// Sync records in total.
    pub fn state_count(&self) -> usize {
        self.states.len()
    }

    /// Sync records created by local sends and because of peers' payloads.
    pub fn state_counts(&self) -> (usize, usize) {
        self.states.counts()
    }

    /// The record for (`peer`, `id`), if any.
    pub fn state(&self, peer: &PeerId, id: &MessageId) -> Option<SyncState> {
        self.states.get(peer, id).copied()
    }

    /// Peers with pending ACKs and the number of ACKs pending in total.
    pub fn pending_acks(&self) -> (usize, usize) {
        (self.acks.len(), self.acks_total)
    }

    /// Groups tracked.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// The peers of `group`.
    pub fn peers(&self, group: &GroupId) -> impl Iterator<Item = &PeerId> {
        self.groups.get(group).into_iter().flatten()
    }

    fn is_member(&self, group: &GroupId, peer: &PeerId) -> bool {
        self.groups.get(group).is_some_and(|ps| ps.contains(peer))
    }

    /// Outputs waiting to be polled (never more than [`Config::max_queued_outputs`]).
    pub fn queued_outputs(&self) -> usize {
        self.outputs.len()
    }

    fn queue_full(&self) -> bool {
        self.outputs.len() >= self.config.max_queued_outputs
    }

    /// Feed an input. Faults of the remote peer never return `Err` (they become
    /// [`Event::PayloadIgnored`] or are skipped, see [`Config`]); `Err` reports a refused local command
    /// (see each [`Input`] variant). The id of a message appended with [`Input::Send`] is
    /// [`MessageId::for_send`], computable before the call.
    pub fn handle_input(&mut self, now: Timestamp, input: Input) -> Result<(), MvdsError> {
        match input {
            Input::Received { from, bytes } => {
                self.receive(now, from, &bytes);
                Ok(())
            }
            Input::ReceivedPayload { from, payload } => {
                self.receive_payload(now, from, payload);
                Ok(())
            }
            Input::Send { group, body } => self.send(now, group, body).map(|_| ()),
            Input::AddPeer { group, peer } => self.add_peer(group, peer),
            Input::RemovePeer { group, peer } => {
                self.remove_peer(&group, &peer);
                Ok(())
            }
        }
    }

    /// The round trips measured so far (what [`Schedule::Adaptive`](crate::mvds::Schedule::Adaptive) adapts to).
    pub fn rtt(&self) -> &Rtt {
        &self.rtt
    }

    /// The next output, if any. Drain after every call.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The start of the next epoch in which the node has something to send; `None` when idle.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let next = self.processed_epoch.saturating_add(1);
        let due = match (self.states.earliest_due(), self.ack_epoch) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        due.map(|e| self.time_of(e.max(next)))
    }
}
