//! The MVDS node state machine (docs/protocol/mvds.md §4, §5).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use rand_chacha::ChaCha20Rng;

use super::payload::{GroupId, Message, MessageId, Payload, PayloadError, PeerId, ENCODED_ID_LEN};
use super::state::{Config, Mode, RecordKind, Rtt, Snapshot, States, Stats, SyncState};
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
    /// Append a message to `group` and sync it to the group's peers.
    Send {
        /// The group.
        group: GroupId,
        /// The opaque body.
        body: Bytes,
    },
    /// Make `peer` a member of `group` (idempotent).
    AddPeer {
        /// The group.
        group: GroupId,
        /// The peer.
        peer: PeerId,
    },
    /// Remove `peer` from `group`, with its pending records of that group.
    RemovePeer {
        /// The group.
        group: GroupId,
        /// The peer.
        peer: PeerId,
    },
}

/// What the node wants done.
#[derive(Clone, Debug, PartialEq, Eq)]
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
struct FirstSent {
    epoch: u64,
    /// [`Rtt::backoff`] at the first transmission: the record's timeouts double from there.
    level: u32,
    /// Transmitted again since: its ACK measures no round trip (Karn's rule).
    retransmitted: bool,
}

#[derive(Clone, Debug, Default)]
struct AckQueue {
    order: VecDeque<MessageId>,
    set: BTreeSet<MessageId>,
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
    /// [`Event::PayloadIgnored`] or are skipped, see [`Config`]); `Err` reports a refused local command.
    /// Returns the message id for [`Input::Send`].
    pub fn handle_input(&mut self, now: Timestamp, input: Input) -> Result<Option<MessageId>, MvdsError> {
        match input {
            Input::Received { from, bytes } => {
                self.receive(now, from, &bytes);
                Ok(None)
            }
            Input::ReceivedPayload { from, payload } => {
                self.receive_payload(now, from, payload);
                Ok(None)
            }
            Input::Send { group, body } => self.send(now, group, body).map(Some),
            Input::AddPeer { group, peer } => self.add_peer(group, peer).map(|()| None),
            Input::RemovePeer { group, peer } => {
                self.remove_peer(&group, &peer);
                Ok(None)
            }
        }
    }

    /// Add `peer` to `group` (idempotent).
    pub fn add_peer(&mut self, group: GroupId, peer: PeerId) -> Result<(), MvdsError> {
        if !self.groups.contains_key(&group) && self.groups.len() >= self.config.max_groups {
            return Err(MvdsError::TooManyGroups);
        }
        let peers = self.groups.entry(group).or_default();
        if peers.contains(&peer) {
            return Ok(());
        }
        if peers.len() >= self.config.max_peers_per_group {
            if peers.is_empty() {
                self.groups.remove(&group);
            }
            return Err(MvdsError::TooManyPeers);
        }
        peers.insert(peer.clone());
        *self.peer_groups.entry(peer).or_insert(0) += 1;
        Ok(())
    }

    /// Remove `peer` from `group`. Its pending OFFER and MESSAGE records of that group are abandoned:
    /// each one that reports to the application raises [`Event::DeliveryFailed`], at once while the
    /// output queue has room, otherwise in the next epoch (the record is made due and abandoned then,
    /// unless the peer has been added back). If the peer shares no group with us any more, the
    /// REQUESTs we were sending it are dropped too (silently: they report nothing).
    pub fn remove_peer(&mut self, group: &GroupId, peer: &PeerId) {
        if let Some(peers) = self.groups.get_mut(group) {
            if peers.remove(peer) {
                if let Some(n) = self.peer_groups.get_mut(peer) {
                    *n -= 1;
                    if *n == 0 {
                        self.peer_groups.remove(peer);
                    }
                }
            }
            if peers.is_empty() {
                self.groups.remove(group);
            }
        }
        let shares_a_group = self.peer_groups.contains_key(peer);
        for id in self.states.ids_of_peer(peer) {
            let Some(s) = self.states.get(peer, &id).copied() else {
                continue;
            };
            if s.kind == RecordKind::Request {
                if !shares_a_group {
                    self.remove_state(peer, &id);
                }
                continue;
            }
            if s.group != Some(*group) {
                continue;
            }
            if !s.notify {
                self.remove_state(peer, &id);
            } else if !self.queue_full() {
                self.remove_state(peer, &id);
                self.outputs.push_back(Output::Event(Event::DeliveryFailed {
                    peer: peer.clone(),
                    message_id: id,
                }));
            } else {
                self.stats.deferred += 1;
                let s = SyncState {
                    send_epoch: s.send_epoch.min(self.processed_epoch),
                    ..s
                };
                self.insert_state(peer.clone(), id, s);
            }
        }
    }

    fn room_for_state(&self, peer: &PeerId, local: bool) -> bool {
        let (all_local, all_remote) = self.states.counts();
        let (peer_local, peer_remote) = self.states.peer_counts(peer);
        if local {
            all_local < self.config.max_states && peer_local < self.config.max_states_per_peer
        } else {
            all_remote < self.config.max_remote_states && peer_remote < self.config.max_remote_states_per_peer
        }
    }

    fn insert_state(&mut self, peer: PeerId, id: MessageId, s: SyncState) {
        if self.states.insert(peer, id, s) {
            if let Some((seq, _)) = self.store.get(&id) {
                self.evictable.remove(seq);
            }
        }
    }

    fn remove_state(&mut self, peer: &PeerId, id: &MessageId) -> Option<SyncState> {
        let (s, last) = self.states.remove(peer, id)?;
        if s.send_count > 0 {
            self.first_sent.remove(&(peer.clone(), *id));
        }
        if last {
            if let Some((seq, _)) = self.store.get(id) {
                self.evictable.insert(*seq, *id);
            }
        }
        Some(s)
    }

    /// Make room for one more message by evicting the oldest unreferenced one; `false` if every stored
    /// message is still referenced (impossible with a valid configuration).
    fn make_room(&mut self) -> bool {
        if self.store.len() < self.config.max_messages {
            return true;
        }
        match self.evictable.pop_first() {
            Some((_, id)) => {
                self.store.remove(&id);
                true
            }
            None => false,
        }
    }

    /// Store a message (no-op if present).
    fn store_insert(&mut self, id: MessageId, message: Message) {
        if self.store.contains_key(&id) {
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.store.insert(id, (seq, message));
        if !self.states.refers_to(&id) {
            self.evictable.insert(seq, id);
        }
    }

    /// Append a message created now (timestamp in UNIX seconds) to `group`, to be sent to every peer of
    /// the group from the next epoch on (docs/protocol/mvds.md §5.2).
    ///
    /// Fails with [`MvdsError::NoPeers`] if the group has no peers (nothing is stored: add the peers
    /// first, as status-go's `addToDataSync` does), [`MvdsError::BodyTooLarge`], or
    /// [`MvdsError::StateFull`] (nothing is added).
    ///
    /// Appending the same body to the same group twice within one second yields the same id. Peers that
    /// still have a pending record for it are not sent it twice; a peer that has already acknowledged it
    /// gets it again (and ACKs it as a duplicate without delivering it again, unless it has evicted it).
    pub fn send(
        &mut self,
        now: Timestamp,
        group: GroupId,
        body: impl Into<Bytes>,
    ) -> Result<MessageId, MvdsError> {
        let body = body.into();
        if body.len() > self.config.max_body_bytes {
            return Err(MvdsError::BodyTooLarge(body.len()));
        }
        if self.peers(&group).next().is_none() {
            return Err(MvdsError::NoPeers);
        }
        let message = Message::new(group, now.as_secs() as i64, body);
        let id = message.id();
        let peers: Vec<PeerId> = self
            .peers(&group)
            .filter(|p| !self.states.contains(p, &id))
            .cloned()
            .collect();
        if self.states.counts().0.saturating_add(peers.len()) > self.config.max_states
            || peers
                .iter()
                .any(|p| self.states.peer_counts(p).0 >= self.config.max_states_per_peer)
        {
            return Err(MvdsError::StateFull);
        }
        if !self.store.contains_key(&id) {
            if !self.make_room() {
                return Err(MvdsError::StoreFull);
            }
            self.store_insert(id, message);
        }
        let kind = match self.config.mode {
            Mode::Batch => RecordKind::Message,
            Mode::Interactive => RecordKind::Offer,
        };
        let send_epoch = self.epoch(now).saturating_add(1);
        for p in peers {
            self.insert_state(
                p,
                id,
                SyncState {
                    kind,
                    group: Some(group),
                    send_count: 0,
                    send_epoch,
                    notify: true,
                    local: true,
                },
            );
        }
        Ok(id)
    }

    /// Handle an encoded payload from `from` (at most [`Config::max_incoming_payload_bytes`]).
    pub fn receive(&mut self, now: Timestamp, from: PeerId, bytes: &[u8]) {
        match Payload::decode_with_limit(bytes, self.config.max_incoming_payload_bytes) {
            Ok((p, skipped)) => {
                self.stats.ids_skipped += skipped as u64;
                self.process(now, from, p);
            }
            Err(e) => self.ignore(from, e),
        }
    }

    fn ignore(&mut self, from: PeerId, reason: PayloadError) {
        self.stats.payloads_ignored += 1;
        // Only counted once the output queue is full.
        if !self.queue_full() {
            self.outputs
                .push_back(Output::Event(Event::PayloadIgnored { from, reason }));
        }
    }

    /// Handle a decoded payload from `from` (docs/protocol/mvds.md §5.5, in the reference's order: ACKs,
    /// REQUESTs, OFFERs, MESSAGEs). A payload whose encoding exceeds [`Config::max_incoming_payload_bytes`]
    /// is ignored, as it would be by [`Node::receive`].
    pub fn receive_payload(&mut self, now: Timestamp, from: PeerId, payload: Payload) {
        let len = payload.encoded_len();
        if len > self.config.max_incoming_payload_bytes {
            self.ignore(from, PayloadError::TooLarge(len));
            return;
        }
        self.process(now, from, payload);
    }

    fn process(&mut self, now: Timestamp, from: PeerId, payload: Payload) {
        let next_epoch = self.epoch(now).saturating_add(1);
        // 1. ACKs: unknown ids are skipped and the loop goes on (the reference aborted here). The ACK of
        //    a record transmitted once measures a round trip.
        let epoch = next_epoch - 1;
        for id in payload.acks {
            match self.first_sent.get(&(from.clone(), id)) {
                Some(f) if !f.retransmitted => self.rtt.sample(epoch.saturating_sub(f.epoch)),
                _ => {}
            }
            self.proved_held(&from, &id);
        }
        // 2. REQUESTs: answer with the message if the requester is a peer of its group.
        for id in payload.requests {
            let Some(group) = self.message(&id).and_then(Message::group) else {
                continue;
            };
            if !self.is_member(&group, &from) {
                continue;
            }
            let s = match self.states.get(&from, &id).copied() {
                // Already pushing it: send it sooner.
                Some(s) if s.kind == RecordKind::Message => SyncState {
                    send_epoch: s.send_epoch.min(next_epoch),
                    ..s
                },
                // Answering our OFFER: the MESSAGE inherits the OFFER's quota, report and send count,
                // so `max_send_count` bounds the obligation's transmissions in total.
                Some(s) if s.kind == RecordKind::Offer => SyncState {
                    kind: RecordKind::Message,
                    send_epoch: next_epoch,
                    ..s
                },
                existing => {
                    if existing.is_none() && !self.room_for_state(&from, false) {
                        self.stats.records_dropped += 1;
                        continue;
                    }
                    // A REQUEST we did not solicit (e.g. a stale duplicate after delivery) is answered
                    // silently.
                    SyncState {
                        kind: RecordKind::Message,
                        group: Some(group),
                        send_count: 0,
                        send_epoch: next_epoch,
                        notify: false,
                        local: false,
                    }
                }
            };
            self.insert_state(from.clone(), id, s);
        }
        // 3. OFFERs, only from senders that share a group with us: request what we lack; ACK what we
        //    hold (a deviation: the reference stays silent, which leaves the offerer retransmitting
        //    until it gives up).
        if !payload.offers.is_empty() && !self.peer_groups.contains_key(&from) {
            self.stats.offers_from_non_members += payload.offers.len() as u64;
        } else {
            for id in payload.offers {
                if self.store.contains_key(&id) {
                    self.queue_ack(next_epoch, &from, id);
                } else if !self.states.contains(&from, &id) {
                    if !self.room_for_state(&from, false) {
                        self.stats.records_dropped += 1;
                        continue;
                    }
                    self.insert_state(
                        from.clone(),
                        id,
                        SyncState {
                            kind: RecordKind::Request,
                            group: None,
                            send_count: 0,
                            send_epoch: next_epoch,
                            notify: false,
                            local: false,
                        },
                    );
                }
            }
        }
        // 4. MESSAGEs: store, share with the group's other peers, deliver, ACK. A duplicate is ACKed
        //    again (the reference's 2020 code did not, so a lost ACK caused endless retransmission).
        for message in payload.messages {
            let Some(group) = message.group() else {
                self.stats.records_dropped += 1;
                continue;
            };
            let id = message.id();
            self.proved_held(&from, &id);
            if self.store.contains_key(&id) {
                self.stats.duplicates_received += 1;
                self.queue_ack(next_epoch, &from, id);
                continue;
            }
            if self.queue_full() {
                // Not stored, not ACKed: the sender retries later.
                self.stats.deferred += 1;
                continue;
            }
            if !self.make_room() {
                self.stats.records_dropped += 1;
                continue;
            }
            self.store_insert(id, message.clone());
            if self.is_member(&group, &from) {
                let others: Vec<PeerId> = self
                    .peers(&group)
                    .filter(|p| **p != from && !self.states.contains(p, &id))
                    .cloned()
                    .collect();
                for p in others {
                    if !self.room_for_state(&p, false) {
                        self.stats.records_dropped += 1;
                        continue;
                    }
                    self.insert_state(
                        p,
                        id,
                        SyncState {
                            kind: RecordKind::Offer,
                            group: Some(group),
                            send_count: 0,
                            send_epoch: next_epoch,
                            notify: true,
                            local: false,
                        },
                    );
                }
            }
            self.outputs.push_back(Output::Event(Event::MessageReceived {
                from: from.clone(),
                message_id: id,
                message,
            }));
            self.queue_ack(next_epoch, &from, id);
        }
    }

    /// `peer` holds message `id`: settle our OFFER, REQUEST or MESSAGE record for it. A settlement that
    /// would raise [`Event::Delivered`] while the output queue is full is deferred (the record stays;
    /// the peer ACKs its next retransmission).
    fn proved_held(&mut self, peer: &PeerId, id: &MessageId) {
        let Some(s) = self.states.get(peer, id) else {
            return;
        };
        if s.notify {
            if self.queue_full() {
                self.stats.deferred += 1;
                return;
            }
            self.outputs.push_back(Output::Event(Event::Delivered {
                peer: peer.clone(),
                message_id: *id,
            }));
        }
        self.remove_state(peer, id);
    }

    fn queue_ack(&mut self, next_epoch: u64, peer: &PeerId, id: MessageId) {
        let q = self.acks.get(peer);
        if q.is_some_and(|q| q.set.contains(&id)) {
            return;
        }
        if self.acks_total >= self.config.max_pending_acks
            || (q.is_none() && self.acks.len() >= self.config.max_ack_peers)
        {
            self.stats.records_dropped += 1;
            return;
        }
        self.ack_epoch = Some(self.ack_epoch.map_or(next_epoch, |e| e.min(next_epoch)));
        let q = self.acks.entry(peer.clone()).or_default();
        q.set.insert(id);
        q.order.push_back(id);
        self.acks_total += 1;
        if q.order.len() > self.config.max_pending_acks_per_peer {
            if let Some(old) = q.order.pop_front() {
                q.set.remove(&old);
                self.acks_total -= 1;
            }
            self.stats.records_dropped += 1;
        }
    }

    /// Run the epoch at `now` if it has not run yet: send pending ACKs and every due record, one payload
    /// per peer (docs/protocol/mvds.md §5.3). A call within an epoch already run is a no-op. The work is
    /// proportional to what is sent: peers are served earliest-due first, each payload is filled from the
    /// peer's earliest due record on, and what does not fit (`max_records_per_payload`, `max_payload_bytes`,
    /// or the output queue) stays due for the next epoch.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let epoch = self.epoch(now);
        if epoch <= self.processed_epoch {
            return;
        }
        self.processed_epoch = epoch;
        let room = self.config.max_queued_outputs.saturating_sub(self.outputs.len());
        let mut peers: Vec<PeerId> = self.states.due_peers(epoch).take(room).cloned().collect();
        if peers.len() < room {
            let due: BTreeSet<&PeerId> = peers.iter().collect();
            let ack_only: Vec<PeerId> = self
                .acks
                .keys()
                .filter(|p| !due.contains(p))
                .take(room - peers.len())
                .cloned()
                .collect();
            peers.extend(ack_only);
        }
        for peer in &peers {
            self.build_payload(peer, epoch);
        }
        if self.queue_full() && (self.states.due_peers(epoch).next().is_some() || !self.acks.is_empty()) {
            self.stats.deferred += 1;
        }
        self.ack_epoch = (!self.acks.is_empty()).then_some(epoch.saturating_add(1));
    }

    /// Build and queue `peer`'s payload for `epoch`: its pending ACKs, then its due records, earliest
    /// first.
    fn build_payload(&mut self, peer: &PeerId, epoch: u64) {
        if self.queue_full() {
            return;
        }
        let cap = self.config.max_queued_outputs;
        let max_records = self.config.max_records_per_payload.max(1);
        let mut payload = Payload::default();
        let mut records = 0;
        let mut bytes = 0;
        // ACKs first: they are small and never retransmitted.
        if let Some(q) = self.acks.get_mut(peer) {
            let n = q.order.len().min(max_records);
            payload.acks = q.order.drain(..n).collect();
            for a in &payload.acks {
                q.set.remove(a);
            }
            if q.order.is_empty() {
                self.acks.remove(peer);
            }
            self.acks_total -= n;
            records += n;
            bytes += n * ENCODED_ID_LEN;
        }
        while records < max_records {
            let Some((due, id)) = self.states.first_due(peer) else {
                break;
            };
            if due > epoch {
                break;
            }
            let Some(mut s) = self.states.get(peer, &id).copied() else {
                break;
            };
            let gave_up = self.config.max_send_count.is_some_and(|m| s.send_count >= m);
            // An OFFER or MESSAGE record outlives its peer's membership only after `remove_peer` with
            // a full output queue, or in a restored snapshot: it is abandoned.
            let orphaned = s.kind != RecordKind::Request
                && (!s.group.is_some_and(|g| self.is_member(&g, peer)) || !self.store.contains_key(&id));
            if gave_up || orphaned {
                if s.notify {
                    // Keep one slot for this payload.
                    if self.outputs.len() + 1 >= cap {
                        self.stats.deferred += 1;
                        break;
                    }
                    self.outputs.push_back(Output::Event(Event::DeliveryFailed {
                        peer: peer.clone(),
                        message_id: id,
                    }));
                }
                self.remove_state(peer, &id);
                continue;
            }
            match s.kind {
                RecordKind::Offer => {
                    payload.offers.push(id);
                    bytes += ENCODED_ID_LEN;
                }
                RecordKind::Request => {
                    payload.requests.push(id);
                    bytes += ENCODED_ID_LEN;
                }
                RecordKind::Message => {
                    let Some((_, stored)) = self.store.get(&id) else {
                        break;
                    };
                    let len = stored.encoded_len();
                    if !payload.messages.is_empty() && bytes + len > self.config.max_payload_bytes {
                        break;
                    }
                    payload.messages.push(stored.clone());
                    bytes += len;
                    self.stats.messages_sent += 1;
                }
            }
            records += 1;
            s.send_count = s.send_count.saturating_add(1);
            let level = self.note_transmission(peer, id, s.send_count, epoch);
            let gap = self
                .config
                .schedule
                .gap_measured(s.send_count, level, &self.rtt, &mut self.rng);
            s.send_epoch = epoch.saturating_add(gap);
            self.insert_state(peer.clone(), id, s);
        }
        if payload.is_valid() {
            self.stats.payloads_sent += 1;
            self.outputs.push_back(Output::Transmit {
                peer: peer.clone(),
                payload,
            });
        }
    }

    /// Record the `count`-th transmission of `peer`'s record `id` at `epoch`; returns the backoff level
    /// the record's timeouts double from (Karn's rule, see [`Rtt`]).
    fn note_transmission(&mut self, peer: &PeerId, id: MessageId, count: u32, epoch: u64) -> u32 {
        let key = (peer.clone(), id);
        if count <= 1 {
            let level = self.rtt.backoff();
            self.first_sent.insert(
                key,
                FirstSent {
                    epoch,
                    level,
                    retransmitted: false,
                },
            );
            return level;
        }
        let level = match self.first_sent.get_mut(&key) {
            Some(f) => {
                f.retransmitted = true;
                f.level
            }
            // Restored from a snapshot: its first transmission is unknown.
            None => 0,
        };
        self.rtt
            .retransmitted(level.saturating_add(count.saturating_sub(1)));
        level
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvds::Schedule;
    use std::time::Duration;

    fn peer(n: u8) -> PeerId {
        PeerId::new(vec![n])
    }

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(1_700_000_000_000 + ms)
    }

    fn node(n: u64, config: Config) -> Node {
        Node::new(config, &Seed::from_u64(n), t(0)).unwrap()
    }

    fn drain(node: &mut Node) -> (Vec<(PeerId, Payload)>, Vec<Event>) {
        let (mut tx, mut ev) = (vec![], vec![]);
        while let Some(o) = node.poll_output() {
            match o {
                Output::Transmit { peer, payload } => tx.push((peer, payload)),
                Output::Event(e) => ev.push(e),
            }
        }
        (tx, ev)
    }

    fn no_jitter() -> Config {
        Config {
            schedule: Schedule::Exponential {
                initial: 2,
                max: 8,
                jitter: 0,
            },
            ..Config::default()
        }
    }

    #[test]
    fn batch_send_ack_delivered() {
        let g = GroupId([9; 32]);
        let mut a = node(1, no_jitter());
        let mut b = node(2, no_jitter());
        a.add_peer(g, peer(2)).unwrap();
        let id = a.send(t(10), g, b"hello".to_vec()).unwrap();
        // Nothing before the next epoch.
        assert!(drain(&mut a).0.is_empty());
        assert_eq!(a.poll_timeout(), Some(t(300)));
        a.handle_timeout(t(299));
        assert!(drain(&mut a).0.is_empty());
        a.handle_timeout(t(300));
        let (tx, _) = drain(&mut a);
        assert_eq!(tx.len(), 1);
        assert_eq!(tx[0].0, peer(2));
        assert_eq!(tx[0].1.messages[0].body, &b"hello"[..]);
        assert_eq!(a.state(&peer(2), &id).unwrap().send_epoch, 3);

        b.receive(t(350), peer(1), &tx[0].1.encode_to_vec());
        let (_, ev) = drain(&mut b);
        assert!(matches!(&ev[..], [Event::MessageReceived { message_id, .. }] if *message_id == id));
        assert_eq!(b.poll_timeout(), Some(t(600)));
        b.handle_timeout(t(600));
        let (tx, _) = drain(&mut b);
        assert_eq!(
            tx,
            vec![(
                peer(1),
                Payload {
                    acks: vec![id],
                    ..Payload::default()
                }
            )]
        );
        assert_eq!(b.poll_timeout(), None);

        a.receive_payload(t(700), peer(2), tx[0].1.clone());
        let (_, ev) = drain(&mut a);
        assert_eq!(
            ev,
            vec![Event::Delivered {
                peer: peer(2),
                message_id: id
            }]
        );
        assert_eq!(a.state_count(), 0);
        assert_eq!(a.poll_timeout(), None);
        // A second ACK finds nothing and is silent.
        a.receive_payload(t(800), peer(2), tx[0].1.clone());
        assert!(drain(&mut a).1.is_empty());
    }

    #[test]
    fn duplicates_are_acked_again_but_delivered_once() {
        let g = GroupId([9; 32]);
        let mut b = node(2, Config::default());
        let m = Message::new(g, 1, b"x".to_vec());
        let p = Payload {
            messages: vec![m.clone()],
            ..Payload::default()
        };
        for round in 0..3u64 {
            b.receive_payload(t(round * 1000), peer(1), p.clone());
            b.handle_timeout(t(round * 1000 + 300));
            let (tx, ev) = drain(&mut b);
            assert_eq!(tx[0].1.acks, vec![m.id()], "round {round}");
            assert_eq!(ev.len(), usize::from(round == 0));
        }
        assert_eq!(b.stats().duplicates_received, 2);
    }

    #[test]
    fn unknown_acks_do_not_stop_the_loop() {
        let g = GroupId([9; 32]);
        let mut a = node(1, Config::default());
        a.add_peer(g, peer(2)).unwrap();
        let id = a.send(t(0), g, b"m".to_vec()).unwrap();
        let p = Payload {
            acks: vec![MessageId([1; 32]), id],
            ..Payload::default()
        };
        a.receive_payload(t(10), peer(2), p);
        assert_eq!(a.state_count(), 0);
    }

    #[test]
    fn backoff_then_give_up() {
        let g = GroupId([9; 32]);
        let config = Config {
            max_send_count: Some(3),
            ..no_jitter()
        };
        let mut a = node(1, config);
        a.add_peer(g, peer(2)).unwrap();
        let id = a.send(t(0), g, b"m".to_vec()).unwrap();
        let mut sends = vec![];
        let mut failed = false;
        while let Some(at) = a.poll_timeout() {
            a.handle_timeout(at);
            let (tx, ev) = drain(&mut a);
            if !tx.is_empty() {
                sends.push(a.epoch(at));
            }
            if ev
                == vec![Event::DeliveryFailed {
                    peer: peer(2),
                    message_id: id,
                }]
            {
                failed = true;
                assert_eq!(a.epoch(at), 1 + 2 + 4 + 8);
            }
        }
        assert_eq!(sends, [1, 3, 7]);
        assert!(failed);
        assert_eq!(a.state_count(), 0);
    }

    #[test]
    fn interactive_offer_request_message_ack() {
        let g = GroupId([3; 32]);
        let config = Config {
            mode: Mode::Interactive,
            ..no_jitter()
        };
        let mut a = node(1, config.clone());
        let mut b = node(2, config);
        a.add_peer(g, peer(2)).unwrap();
        b.add_peer(g, peer(1)).unwrap();
        let id = a.send(t(0), g, b"i".to_vec()).unwrap();
        let mut now = t(0);
        let mut received = 0;
        let mut delivered = 0;
        for _ in 0..10 {
            now += Duration::from_millis(300);
            a.handle_timeout(now);
            b.handle_timeout(now);
            let (ta, ea) = drain(&mut a);
            let (tb, eb) = drain(&mut b);
            delivered += ea.iter().filter(|e| matches!(e, Event::Delivered { .. })).count();
            received += eb
                .iter()
                .filter(|e| matches!(e, Event::MessageReceived { .. }))
                .count();
            for (_, p) in ta {
                b.receive_payload(now, peer(1), p);
            }
            for (_, p) in tb {
                a.receive_payload(now, peer(2), p);
            }
            let (_, ea) = drain(&mut a);
            let (_, eb) = drain(&mut b);
            delivered += ea.iter().filter(|e| matches!(e, Event::Delivered { .. })).count();
            received += eb
                .iter()
                .filter(|e| matches!(e, Event::MessageReceived { .. }))
                .count();
        }
        assert_eq!((received, delivered), (1, 1));
        assert_eq!(a.state_count() + b.state_count(), 0);
        assert!(b.message(&id).is_some());
    }

    #[test]
    fn a_stale_request_after_delivery_is_answered_without_a_second_delivered() {
        let g = GroupId([3; 32]);
        let config = Config {
            mode: Mode::Interactive,
            ..no_jitter()
        };
        let mut a = node(1, config);
        a.add_peer(g, peer(2)).unwrap();
        let id = a.send(t(0), g, b"i".to_vec()).unwrap();
        let request = Payload {
            requests: vec![id],
            ..Payload::default()
        };
        let ack = Payload {
            acks: vec![id],
            ..Payload::default()
        };
        a.receive_payload(t(400), peer(2), request.clone());
        a.receive_payload(t(500), peer(2), ack.clone());
        let (_, ev) = drain(&mut a);
        assert_eq!(
            ev,
            vec![Event::Delivered {
                peer: peer(2),
                message_id: id
            }]
        );
        // The duplicate REQUEST arrives late: the message is sent again, the ACK settles it quietly.
        a.receive_payload(t(600), peer(2), request);
        a.handle_timeout(t(900));
        let (tx, _) = drain(&mut a);
        assert_eq!(tx[0].1.messages.len(), 1);
        a.receive_payload(t(1000), peer(2), ack);
        assert_eq!(drain(&mut a).1, vec![]);
        assert_eq!(a.state_count(), 0);
    }

    #[test]
    fn snapshot_round_trip_resumes_schedule() {
        let g = GroupId([4; 32]);
        let mut a = node(1, no_jitter());
        a.add_peer(g, peer(2)).unwrap();
        let id = a.send(t(0), g, b"persist".to_vec()).unwrap();
        a.handle_timeout(t(300));
        let snap = a.snapshot(t(400));
        let bytes = snap.encode_to_vec();
        let back = Snapshot::decode(&bytes).unwrap();
        assert_eq!(back, snap);
        let restored = Node::from_snapshot(no_jitter(), &Seed::from_u64(5), t(10_000), back).unwrap();
        assert_eq!(restored.state(&peer(2), &id), a.state(&peer(2), &id));
        assert_eq!(restored.message_count(), 1);
        // Due at epoch 3, restored at epoch 1 at t=10 s: 2 epochs later.
        assert_eq!(restored.poll_timeout(), Some(t(10_600)));
        assert!(Snapshot::decode(b"\xff").is_err());
        let tiny = Config {
            max_messages: 0,
            ..Config::default()
        };
        assert!(Node::from_snapshot(tiny, &Seed::from_u64(5), t(0), snap).is_err());
    }

    #[test]
    fn caps_hold() {
        let g = GroupId([5; 32]);
        let config = Config {
            max_messages: 3,
            max_states: 1,
            max_remote_states: 1,
            max_groups: 1,
            max_peers_per_group: 1,
            max_body_bytes: 4,
            ..Config::default()
        };
        let mut a = node(1, config);
        assert_eq!(a.send(t(0), g, b"1".to_vec()), Err(MvdsError::NoPeers));
        assert_eq!(a.message_count(), 0);
        a.add_peer(g, peer(2)).unwrap();
        assert_eq!(a.add_peer(g, peer(3)), Err(MvdsError::TooManyPeers));
        assert_eq!(
            a.add_peer(GroupId([6; 32]), peer(2)),
            Err(MvdsError::TooManyGroups)
        );
        assert_eq!(a.send(t(0), g, vec![0u8; 5]), Err(MvdsError::BodyTooLarge(5)));
        let first = a.send(t(0), g, b"1".to_vec()).unwrap();
        assert_eq!(a.send(t(0), g, b"2".to_vec()), Err(MvdsError::StateFull));
        // Received messages fill the store; the oldest unreferenced ones are evicted, the message
        // with a pending record never is.
        for i in 0..5u8 {
            let m = Message::new(g, 1, vec![i]);
            a.receive_payload(
                t(1),
                peer(2),
                Payload {
                    messages: vec![m],
                    ..Payload::default()
                },
            );
            assert!(a.message_count() <= 3);
        }
        assert!(a.message(&first).is_some());
        assert!(a.message(&Message::new(g, 1, vec![4]).id()).is_some());
        assert!(a.message(&Message::new(g, 1, vec![0]).id()).is_none());
    }

    #[test]
    fn config_validation() {
        assert_eq!(Config::default().validate(), Ok(()));
        let invalid = [
            Config {
                tick: Duration::ZERO,
                ..Config::default()
            },
            Config {
                max_send_count: Some(0),
                ..Config::default()
            },
            Config {
                max_messages: 70_000,
                ..Config::default()
            },
            Config {
                max_payload_bytes: 1024 * 1024,
                ..Config::default()
            },
            Config {
                max_body_bytes: 512 * 1024,
                ..Config::default()
            },
            Config {
                max_queued_outputs: 1,
                ..Config::default()
            },
            Config {
                max_pending_acks: 0,
                ..Config::default()
            },
            Config {
                schedule: Schedule::Exponential {
                    initial: 0,
                    max: 4,
                    jitter: 0,
                },
                ..Config::default()
            },
        ];
        for c in invalid {
            assert!(
                matches!(
                    Node::new(c.clone(), &Seed::from_u64(1), t(0)),
                    Err(MvdsError::InvalidConfig(_))
                ),
                "{c:?}"
            );
        }
    }

    /// The review's attack: OFFERs from many sender ids used to fill the global record table, after
    /// which every local send failed with `StateFull`.
    #[test]
    fn offer_floods_cannot_starve_local_sends() {
        let g = GroupId([7; 32]);
        let config = Config {
            max_states: 10,
            max_states_per_peer: 5,
            max_remote_states: 8,
            max_remote_states_per_peer: 4,
            ..Config::default()
        };
        let mut a = node(1, config);
        for p in 2..5 {
            a.add_peer(g, peer(p)).unwrap();
        }
        let flood = |k: u8| Payload {
            offers: (0..50u8).map(|i| MessageId([k ^ i; 32])).collect(),
            ..Payload::default()
        };
        // Strangers (sharing no group with us) create nothing.
        for p in 10..30 {
            a.receive_payload(t(1), peer(p), flood(p));
        }
        assert_eq!(a.state_count(), 0);
        assert_eq!(a.stats().offers_from_non_members, 20 * 50);
        // Members create REQUESTs within the peer quota only.
        for p in 2..5 {
            a.receive_payload(t(1), peer(p), flood(p));
        }
        assert_eq!(a.state_counts(), (0, 8));
        // A local send to the whole group still succeeds.
        let id = a.send(t(2), g, b"mine".to_vec()).unwrap();
        assert_eq!(a.state_counts(), (3, 8));
        for p in 2..5 {
            assert!(a.state(&peer(p), &id).is_some());
        }
        // A message from a non-member is accepted and ACKed, but not shared with the group.
        let m = Message::new(g, 9, b"theirs".to_vec());
        a.receive_payload(
            t(3),
            peer(40),
            Payload {
                messages: vec![m.clone()],
                ..Payload::default()
            },
        );
        assert!(a.message(&m.id()).is_some());
        assert_eq!(a.pending_acks(), (1, 1));
        assert_eq!(a.state_counts(), (3, 8));
    }

    #[test]
    fn total_pending_acks_are_capped() {
        let g = GroupId([8; 32]);
        let config = Config {
            max_pending_acks: 5,
            max_pending_acks_per_peer: 3,
            ..Config::default()
        };
        let mut a = node(1, config);
        for p in 2..6u8 {
            let messages = (0..3u8).map(|i| Message::new(g, 1, vec![p, i])).collect();
            a.receive_payload(
                t(1),
                peer(p),
                Payload {
                    messages,
                    ..Payload::default()
                },
            );
        }
        // 12 messages received and delivered; only 5 ACKs queued, the rest dropped.
        assert_eq!(a.message_count(), 12);
        assert_eq!(a.pending_acks(), (2, 5));
        assert_eq!(a.stats().records_dropped, 7);
        a.handle_timeout(t(300));
        let (tx, ev) = drain(&mut a);
        assert_eq!(ev.len(), 12);
        assert_eq!(tx.iter().map(|(_, p)| p.acks.len()).sum::<usize>(), 5);
        assert_eq!(a.pending_acks(), (0, 0));
        // A retransmission of a message whose ACK was dropped is ACKed now.
        a.receive_payload(
            t(400),
            peer(5),
            Payload {
                messages: vec![Message::new(g, 1, vec![5, 0])],
                ..Payload::default()
            },
        );
        assert_eq!(a.pending_acks(), (1, 1));
    }

    #[test]
    fn the_output_queue_never_exceeds_its_cap() {
        let g = GroupId([9; 32]);
        let cap = 4;
        let config = Config {
            max_queued_outputs: cap,
            max_send_count: Some(2),
            ..no_jitter()
        };
        let mut a = node(1, config);
        let mut ids = vec![];
        for p in 2..12 {
            a.add_peer(g, peer(p)).unwrap();
        }
        for i in 0..3u8 {
            ids.push(a.send(t(0), g, vec![i]).unwrap());
        }
        // Ten peers are due: only `cap` payloads are built; the rest wait.
        a.handle_timeout(t(300));
        assert_eq!(a.queued_outputs(), cap);
        // An ACK payload settling everything while the queue is full: settlements are deferred.
        for p in 2..12 {
            a.receive_payload(
                t(310),
                peer(p),
                Payload {
                    acks: ids.clone(),
                    messages: vec![Message::new(g, 2, vec![p])],
                    ..Payload::default()
                },
            );
            assert_eq!(a.queued_outputs(), cap);
        }
        a.remove_peer(&g, &peer(11));
        assert_eq!(a.queued_outputs(), cap);
        assert!(a.stats().deferred > 0);
        // Never draining more than one output at a time, everything still completes: each obligation
        // ends in exactly one Delivered or DeliveryFailed.
        let mut outcomes = BTreeMap::new();
        let mut now = t(300);
        for _ in 0..2000 {
            if let Some(Output::Event(
                Event::Delivered { peer, message_id } | Event::DeliveryFailed { peer, message_id },
            )) = a.poll_output()
            {
                *outcomes.entry((peer, message_id)).or_insert(0) += 1;
            }
            if let Some(at) = a.poll_timeout() {
                now = now.max(at);
                a.handle_timeout(now);
            }
            assert!(a.queued_outputs() <= cap);
        }
        assert_eq!(outcomes.len(), 30);
        assert!(outcomes.values().all(|n| *n == 1));
        assert_eq!(a.state_count(), 0);
    }

    #[test]
    fn the_incoming_size_cap_holds_for_decoded_payloads() {
        let config = Config {
            max_incoming_payload_bytes: 200 + 10 * 36,
            max_payload_bytes: 200,
            max_body_bytes: 100,
            max_records_per_payload: 10,
            ..Config::default()
        };
        let mut a = node(1, config);
        let p = Payload {
            acks: vec![MessageId([1; 32]); 20],
            ..Payload::default()
        };
        a.handle_input(
            t(0),
            Input::ReceivedPayload {
                from: peer(2),
                payload: p.clone(),
            },
        )
        .unwrap();
        a.receive(t(0), peer(2), &p.encode_to_vec());
        let (_, ev) = drain(&mut a);
        assert_eq!(ev.len(), 2);
        assert!(ev.iter().all(|e| matches!(
            e,
            Event::PayloadIgnored {
                reason: PayloadError::TooLarge(720),
                ..
            }
        )));
    }

    #[test]
    fn a_bad_id_does_not_stop_the_messages_from_being_acked() {
        use prost::Message as _;
        let g = GroupId([2; 32]);
        let mut a = node(1, Config::default());
        let m = Message::new(g, 3, b"m".to_vec());
        let mut bytes = status_proto::mvds::Payload {
            acks: vec![Bytes::from_static(b"bad")],
            offers: vec![],
            requests: vec![Bytes::from_static(b"also bad")],
            messages: vec![m.to_proto()],
        }
        .encode_to_vec();
        // A STATUS-HEAD group offer with a bad id too.
        prost::encoding::message::encode(
            5005,
            &status_proto::mvds::Offer {
                group_id: Bytes::new(),
                message_ids: vec![Bytes::from_static(b"x")],
            },
            &mut bytes,
        );
        a.receive(t(0), peer(2), &bytes);
        assert_eq!(a.stats().ids_skipped, 2);
        let (_, ev) = drain(&mut a);
        assert!(matches!(&ev[..], [Event::MessageReceived { .. }]));
        a.handle_timeout(t(300));
        let (tx, _) = drain(&mut a);
        assert_eq!(tx[0].1.acks, [m.id()]);
    }

    #[test]
    fn snapshots_with_absurd_values_are_rejected_or_cleaned() {
        let g = GroupId([4; 32]);
        let m = Message::new(g, 1, b"dup".to_vec());
        let huge = Snapshot {
            epoch: u64::MAX - 1,
            ..Snapshot::default()
        };
        assert_eq!(
            Node::from_snapshot(Config::default(), &Seed::from_u64(1), t(0), huge).err(),
            Some(MvdsError::BadSnapshot("epoch out of range"))
        );
        // The largest accepted epoch, a duplicate message and a record due at u64::MAX.
        let snap = Snapshot {
            epoch: MAX_SNAPSHOT_EPOCH,
            messages: vec![m.clone(), m.clone()],
            groups: vec![(g, vec![peer(2)])],
            states: vec![(
                peer(2),
                m.id(),
                SyncState {
                    kind: RecordKind::Message,
                    group: Some(g),
                    send_count: u32::MAX,
                    send_epoch: u64::MAX,
                    notify: true,
                    local: true,
                },
            )],
        };
        let mut a = Node::from_snapshot(no_jitter(), &Seed::from_u64(1), t(0), snap).unwrap();
        assert_eq!(a.message_count(), 1);
        assert_eq!(a.snapshot(t(0)).messages.len(), 1);
        let id = a.send(t(10), g, b"after".to_vec()).unwrap();
        a.handle_timeout(t(u64::MAX / 2));
        a.handle_timeout(Timestamp::from_millis(u64::MAX));
        let _ = drain(&mut a);
        assert!(a.poll_timeout().is_some() || a.state(&peer(2), &id).is_none());
        let orphan = Snapshot {
            states: vec![(
                peer(2),
                MessageId([1; 32]),
                SyncState {
                    kind: RecordKind::Offer,
                    group: Some(g),
                    send_count: 0,
                    send_epoch: 0,
                    notify: true,
                    local: true,
                },
            )],
            ..Snapshot::default()
        };
        assert!(Node::from_snapshot(Config::default(), &Seed::from_u64(1), t(0), orphan).is_err());
    }

    #[test]
    fn interactive_send_count_spans_offer_and_message() {
        let g = GroupId([3; 32]);
        let config = Config {
            mode: Mode::Interactive,
            max_send_count: Some(3),
            ..no_jitter()
        };
        let mut a = node(1, config);
        a.add_peer(g, peer(2)).unwrap();
        let id = a.send(t(0), g, b"i".to_vec()).unwrap();
        a.handle_timeout(t(300));
        a.handle_timeout(t(900));
        assert_eq!(drain(&mut a).0.len(), 2);
        assert_eq!(a.state(&peer(2), &id).unwrap().send_count, 2);
        let request = Payload {
            requests: vec![id],
            ..Payload::default()
        };
        a.receive_payload(t(1000), peer(2), request);
        let s = a.state(&peer(2), &id).unwrap();
        assert_eq!((s.kind, s.send_count), (RecordKind::Message, 2));
        // One more transmission (the MESSAGE), then the give-up.
        let mut sends = 0;
        let mut failed = 0;
        while let Some(at) = a.poll_timeout() {
            a.handle_timeout(at);
            let (tx, ev) = drain(&mut a);
            sends += tx.len();
            failed += ev.len();
        }
        assert_eq!((sends, failed), (1, 1));
    }

    #[test]
    fn remove_peer_reports_abandoned_obligations() {
        let g = GroupId([6; 32]);
        let mut a = node(1, no_jitter());
        a.add_peer(g, peer(2)).unwrap();
        a.add_peer(g, peer(3)).unwrap();
        let id = a.send(t(0), g, b"x".to_vec()).unwrap();
        a.remove_peer(&g, &peer(2));
        assert_eq!(
            drain(&mut a).1,
            vec![Event::DeliveryFailed {
                peer: peer(2),
                message_id: id
            }]
        );
        assert!(a.state(&peer(3), &id).is_some());
        assert_eq!(a.state_count(), 1);
    }

    #[test]
    fn malformed_input_is_an_event() {
        let mut a = node(1, Config::default());
        a.handle_input(
            t(0),
            Input::Received {
                from: peer(9),
                bytes: Bytes::from_static(&[0xff, 0xff]),
            },
        )
        .unwrap();
        let (_, ev) = drain(&mut a);
        assert!(matches!(
            ev[..],
            [Event::PayloadIgnored {
                reason: PayloadError::Protobuf,
                ..
            }]
        ));
    }
}
