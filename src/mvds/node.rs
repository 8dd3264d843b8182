//! The MVDS node state machine (mvds.md §4, §5).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use rand_chacha::ChaCha20Rng;

use super::payload::{GroupId, Message, MessageId, Payload, PayloadError, PeerId, ENCODED_ID_LEN};
use super::state::{Config, Mode, RecordKind, Snapshot, States, Stats, SyncState};
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

#[derive(Clone, Debug, Default)]
struct AckQueue {
    order: VecDeque<MessageId>,
    set: BTreeSet<MessageId>,
}

/// An MVDS node: the per-peer, per-message sync state of one participant.
///
/// Epochs are derived from time: epoch `e` begins at `origin + (e - origin_epoch) * tick`. Each
/// [`handle_timeout`](Node::handle_timeout) in a new epoch sends, in one payload per peer, the pending
/// ACKs and every record due in that epoch or before. An idle node has no deadline.
#[derive(Debug)]
pub struct Node {
    config: Config,
    rng: ChaCha20Rng,
    origin: Timestamp,
    origin_epoch: u64,
    processed_epoch: u64,
    store: BTreeMap<MessageId, Message>,
    store_order: BTreeMap<u64, MessageId>,
    next_seq: u64,
    groups: BTreeMap<GroupId, BTreeSet<PeerId>>,
    states: States,
    acks: BTreeMap<PeerId, AckQueue>,
    /// The epoch by which the pending ACKs are to be sent.
    ack_epoch: Option<u64>,
    outputs: VecDeque<Output>,
    stats: Stats,
}

impl Node {
    /// A fresh node at epoch 0.
    pub fn new(config: Config, seed: &Seed, now: Timestamp) -> Self {
        Node {
            config,
            rng: seed.rng(),
            origin: now,
            origin_epoch: 0,
            processed_epoch: 0,
            store: BTreeMap::new(),
            store_order: BTreeMap::new(),
            next_seq: 0,
            groups: BTreeMap::new(),
            states: States::default(),
            acks: BTreeMap::new(),
            ack_epoch: None,
            outputs: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    /// Restore a node from a [`Snapshot`]; it resumes at the snapshot's epoch at `now`. Fails with
    /// [`MvdsError::BadSnapshot`] if the snapshot is inconsistent or exceeds the caps of `config`.
    pub fn from_snapshot(
        config: Config,
        seed: &Seed,
        now: Timestamp,
        snapshot: Snapshot,
    ) -> Result<Self, MvdsError> {
        let bad = MvdsError::BadSnapshot;
        let mut node = Node::new(config, seed, now);
        node.origin_epoch = snapshot.epoch;
        node.processed_epoch = snapshot.epoch;
        if snapshot.messages.len() > node.config.max_messages {
            return Err(bad("too many messages"));
        }
        for m in snapshot.messages {
            let id = m.id();
            node.store_insert(id, m);
        }
        for (g, peers) in snapshot.groups {
            for p in peers {
                node.add_peer(g, p).map_err(|_| bad("too many groups or peers"))?;
            }
        }
        for (peer, id, s) in snapshot.states {
            if !node.room_for_state(&peer) {
                return Err(bad("too many states"));
            }
            if s.kind != RecordKind::Request && !node.store.contains_key(&id) {
                return Err(bad("record without its message"));
            }
            node.states.insert(peer, id, s);
        }
        Ok(node)
    }

    /// Export the persistent state at `now`.
    pub fn snapshot(&self, now: Timestamp) -> Snapshot {
        Snapshot {
            epoch: self.epoch(now),
            messages: self
                .store_order
                .values()
                .filter_map(|id| self.store.get(id).cloned())
                .collect(),
            groups: self
                .groups
                .iter()
                .map(|(g, ps)| (*g, ps.iter().cloned().collect()))
                .collect(),
            states: self
                .states
                .iter()
                .map(|((p, i), s)| (p.clone(), *i, *s))
                .collect(),
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

    /// The epoch at `now`.
    pub fn epoch(&self, now: Timestamp) -> u64 {
        let tick = (self.config.tick.as_millis() as u64).max(1);
        self.origin_epoch + (now - self.origin).as_millis() as u64 / tick
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
        self.store.get(id)
    }

    /// Sync records in total.
    pub fn state_count(&self) -> usize {
        self.states.len()
    }

    /// The record for (`peer`, `id`), if any.
    pub fn state(&self, peer: &PeerId, id: &MessageId) -> Option<SyncState> {
        self.states.get(peer, id).copied()
    }

    /// Peers with pending ACKs and the number of ACKs pending in total.
    pub fn pending_acks(&self) -> (usize, usize) {
        (self.acks.len(), self.acks.values().map(|q| q.order.len()).sum())
    }

    /// Groups tracked.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// The peers of `group`.
    pub fn peers(&self, group: &GroupId) -> impl Iterator<Item = &PeerId> {
        self.groups.get(group).into_iter().flatten()
    }

    /// Outputs waiting to be polled.
    pub fn queued_outputs(&self) -> usize {
        self.outputs.len()
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
        if !peers.contains(&peer) && peers.len() >= self.config.max_peers_per_group {
            return Err(MvdsError::TooManyPeers);
        }
        peers.insert(peer);
        Ok(())
    }

    /// Remove `peer` from `group` and drop its OFFER and MESSAGE records of that group.
    pub fn remove_peer(&mut self, group: &GroupId, peer: &PeerId) {
        if let Some(peers) = self.groups.get_mut(group) {
            peers.remove(peer);
            if peers.is_empty() {
                self.groups.remove(group);
            }
        }
        for id in self.states.ids_of_peer(peer) {
            if self
                .states
                .get(peer, &id)
                .is_some_and(|s| s.group == Some(*group) && s.kind != RecordKind::Request)
            {
                self.states.remove(peer, &id);
            }
        }
    }

    fn room_for_state(&self, peer: &PeerId) -> bool {
        self.states.len() < self.config.max_states
            && self.states.peer_len(peer) < self.config.max_states_per_peer
    }

    /// Make room for one more message; `false` if every stored message is still referenced.
    fn make_room(&mut self) -> bool {
        if self.store.len() < self.config.max_messages {
            return true;
        }
        let victim = self
            .store_order
            .iter()
            .find(|(_, id)| !self.states.refers_to(id))
            .map(|(seq, id)| (*seq, *id));
        match victim {
            Some((seq, id)) => {
                self.store_order.remove(&seq);
                self.store.remove(&id);
                true
            }
            None => false,
        }
    }

    fn store_insert(&mut self, id: MessageId, message: Message) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.store_order.insert(seq, id);
        self.store.insert(id, message);
    }

    /// Append a message created now (timestamp in UNIX seconds) to `group`, to be sent to every peer of
    /// the group from the next epoch on (mvds.md §5.2). Appending the same body to the same group twice
    /// within one second yields the same id and is idempotent.
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
        let message = Message::new(group, now.as_secs() as i64, body);
        let id = message.id();
        let peers: Vec<PeerId> = self
            .peers(&group)
            .filter(|p| !self.states.contains(p, &id))
            .cloned()
            .collect();
        if self.states.len() + peers.len() > self.config.max_states
            || peers
                .iter()
                .any(|p| self.states.peer_len(p) >= self.config.max_states_per_peer)
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
        let send_epoch = self.epoch(now) + 1;
        for p in peers {
            self.states.insert(
                p,
                id,
                SyncState {
                    kind,
                    group: Some(group),
                    send_count: 0,
                    send_epoch,
                    notify: true,
                },
            );
        }
        Ok(id)
    }

    /// Handle an encoded payload from `from`.
    pub fn receive(&mut self, now: Timestamp, from: PeerId, bytes: &[u8]) {
        if bytes.len() > self.config.max_incoming_payload_bytes {
            self.ignore(from, PayloadError::TooLarge(bytes.len()));
            return;
        }
        match Payload::decode(bytes) {
            Ok(p) => self.receive_payload(now, from, p),
            Err(e) => self.ignore(from, e),
        }
    }

    fn ignore(&mut self, from: PeerId, reason: PayloadError) {
        self.stats.payloads_ignored += 1;
        // Only counted once the output queue is full.
        if self.outputs.len() < self.config.max_queued_outputs {
            self.outputs
                .push_back(Output::Event(Event::PayloadIgnored { from, reason }));
        }
    }

    /// Handle a decoded payload from `from` (mvds.md §5.5, in the reference's order: ACKs, REQUESTs,
    /// OFFERs, MESSAGEs).
    pub fn receive_payload(&mut self, now: Timestamp, from: PeerId, payload: Payload) {
        let next_epoch = self.epoch(now) + 1;
        // 1. ACKs: unknown ids are skipped and the loop goes on (the reference aborted here).
        for id in payload.acks {
            self.proved_held(&from, &id);
        }
        // 2. REQUESTs: answer with the message if the requester is a peer of its group.
        for id in payload.requests {
            let Some(group) = self.store.get(&id).and_then(Message::group) else {
                continue;
            };
            if !self.groups.get(&group).is_some_and(|ps| ps.contains(&from)) {
                continue;
            }
            match self.states.get(&from, &id).copied() {
                Some(s) if s.kind == RecordKind::Message => {
                    let s = SyncState {
                        send_epoch: s.send_epoch.min(next_epoch),
                        ..s
                    };
                    self.states.insert(from.clone(), id, s);
                }
                existing => {
                    if existing.is_none() && !self.room_for_state(&from) {
                        self.stats.records_dropped += 1;
                        continue;
                    }
                    self.states.insert(
                        from.clone(),
                        id,
                        SyncState {
                            kind: RecordKind::Message,
                            group: Some(group),
                            send_count: 0,
                            send_epoch: next_epoch,
                            // Answering our own OFFER keeps its report; answering a REQUEST we did
                            // not solicit (e.g. a stale duplicate after delivery) reports nothing.
                            notify: existing.is_some_and(|s| s.kind == RecordKind::Offer && s.notify),
                        },
                    );
                }
            }
        }
        // 3. OFFERs: request what we lack; ACK what we hold (a deviation: the reference stays silent,
        //    which leaves the offerer retransmitting until it gives up).
        for id in payload.offers {
            if self.store.contains_key(&id) {
                self.queue_ack(next_epoch, &from, id);
            } else if !self.states.contains(&from, &id) {
                if !self.room_for_state(&from) {
                    self.stats.records_dropped += 1;
                    continue;
                }
                self.states.insert(
                    from.clone(),
                    id,
                    SyncState {
                        kind: RecordKind::Request,
                        group: None,
                        send_count: 0,
                        send_epoch: next_epoch,
                        notify: false,
                    },
                );
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
            if self.outputs.len() >= self.config.max_queued_outputs || !self.make_room() {
                // Not ACKed: the sender retries later.
                self.stats.records_dropped += 1;
                continue;
            }
            self.store_insert(id, message.clone());
            let others: Vec<PeerId> = self
                .peers(&group)
                .filter(|p| **p != from && !self.states.contains(p, &id))
                .cloned()
                .collect();
            for p in others {
                if !self.room_for_state(&p) {
                    self.stats.records_dropped += 1;
                    continue;
                }
                self.states.insert(
                    p,
                    id,
                    SyncState {
                        kind: RecordKind::Offer,
                        group: Some(group),
                        send_count: 0,
                        send_epoch: next_epoch,
                        notify: true,
                    },
                );
            }
            self.outputs.push_back(Output::Event(Event::MessageReceived {
                from: from.clone(),
                message_id: id,
                message,
            }));
            self.queue_ack(next_epoch, &from, id);
        }
    }

    /// `peer` holds message `id`: settle our OFFER, REQUEST or MESSAGE record for it.
    fn proved_held(&mut self, peer: &PeerId, id: &MessageId) {
        if let Some(s) = self.states.remove(peer, id) {
            if s.notify {
                self.outputs.push_back(Output::Event(Event::Delivered {
                    peer: peer.clone(),
                    message_id: *id,
                }));
            }
        }
    }

    fn queue_ack(&mut self, next_epoch: u64, peer: &PeerId, id: MessageId) {
        if !self.acks.contains_key(peer) && self.acks.len() >= self.config.max_ack_peers {
            self.stats.records_dropped += 1;
            return;
        }
        self.ack_epoch = Some(self.ack_epoch.map_or(next_epoch, |e| e.min(next_epoch)));
        let q = self.acks.entry(peer.clone()).or_default();
        if q.set.insert(id) {
            q.order.push_back(id);
            if q.order.len() > self.config.max_pending_acks_per_peer {
                if let Some(old) = q.order.pop_front() {
                    q.set.remove(&old);
                }
                self.stats.records_dropped += 1;
            }
        }
    }

    /// Run the epoch at `now` if it has not run yet: send pending ACKs and every due record, one payload
    /// per peer (mvds.md §5.3). A call within an epoch already run is a no-op.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let epoch = self.epoch(now);
        if epoch <= self.processed_epoch {
            return;
        }
        self.processed_epoch = epoch;
        if self.outputs.len() >= self.config.max_queued_outputs {
            return;
        }
        let max_records = self.config.max_records_per_payload.max(1);
        let mut building: BTreeMap<PeerId, (Payload, usize, usize)> = BTreeMap::new();
        // ACKs first: they are small and never retransmitted.
        for (peer, q) in self.acks.iter_mut() {
            let n = q.order.len().min(max_records);
            let acks: Vec<MessageId> = q.order.drain(..n).collect();
            for a in &acks {
                q.set.remove(a);
            }
            let bytes = acks.len() * ENCODED_ID_LEN;
            let p = Payload {
                acks,
                ..Payload::default()
            };
            building.insert(peer.clone(), (p, n, bytes));
        }
        self.acks.retain(|_, q| !q.order.is_empty());
        self.ack_epoch = (!self.acks.is_empty()).then_some(epoch + 1);

        for (peer, id) in self.states.due_keys(epoch) {
            let Some(mut s) = self.states.get(&peer, &id).copied() else {
                continue;
            };
            if self.config.max_send_count.is_some_and(|m| s.send_count >= m) {
                self.states.remove(&peer, &id);
                if s.notify {
                    self.outputs
                        .push_back(Output::Event(Event::DeliveryFailed { peer, message_id: id }));
                }
                continue;
            }
            let entry = building.entry(peer.clone()).or_default();
            let (payload, records, bytes) = entry;
            if *records >= max_records {
                continue;
            }
            match s.kind {
                RecordKind::Offer => {
                    payload.offers.push(id);
                    *bytes += ENCODED_ID_LEN;
                }
                RecordKind::Request => {
                    payload.requests.push(id);
                    *bytes += ENCODED_ID_LEN;
                }
                RecordKind::Message => {
                    let Some(stored) = self.store.get(&id) else {
                        self.states.remove(&peer, &id);
                        continue;
                    };
                    let len = stored.encoded_len();
                    if !payload.messages.is_empty() && *bytes + len > self.config.max_payload_bytes {
                        continue;
                    }
                    payload.messages.push(stored.clone());
                    *bytes += len;
                    self.stats.messages_sent += 1;
                }
            }
            *records += 1;
            s.send_count = s.send_count.saturating_add(1);
            s.send_epoch = epoch.saturating_add(self.config.schedule.gap(s.send_count, &mut self.rng));
            self.states.insert(peer, id, s);
        }

        for (peer, (payload, _, _)) in building {
            if payload.is_valid() {
                self.stats.payloads_sent += 1;
                self.outputs.push_back(Output::Transmit { peer, payload });
            }
        }
    }

    /// The next output, if any. Drain after every call.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The start of the next epoch in which the node has something to send; `None` when idle.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let next = self.processed_epoch + 1;
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
        Node::new(config, &Seed::from_u64(n), t(0))
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
            max_messages: 2,
            max_groups: 1,
            max_peers_per_group: 1,
            max_body_bytes: 4,
            ..Config::default()
        };
        let mut a = node(1, config);
        a.add_peer(g, peer(2)).unwrap();
        assert_eq!(a.add_peer(g, peer(3)), Err(MvdsError::TooManyPeers));
        assert_eq!(
            a.add_peer(GroupId([6; 32]), peer(2)),
            Err(MvdsError::TooManyGroups)
        );
        assert_eq!(a.send(t(0), g, vec![0u8; 5]), Err(MvdsError::BodyTooLarge(5)));
        a.send(t(0), g, b"1".to_vec()).unwrap();
        a.send(t(0), g, b"2".to_vec()).unwrap();
        assert_eq!(a.send(t(0), g, b"3".to_vec()), Err(MvdsError::StoreFull));
        // Incoming new messages at the cap are not stored and not ACKed.
        let m = Message::new(g, 1, b"in".to_vec());
        a.receive_payload(
            t(1),
            peer(2),
            Payload {
                messages: vec![m],
                ..Payload::default()
            },
        );
        assert_eq!(a.message_count(), 2);
        assert_eq!(a.pending_acks(), (0, 0));
        // Once delivered, old messages are evicted to make room.
        let ids: Vec<MessageId> = a.snapshot(t(1)).messages.iter().map(Message::id).collect();
        a.receive_payload(
            t(2),
            peer(2),
            Payload {
                acks: ids,
                ..Payload::default()
            },
        );
        a.send(t(3), g, b"3".to_vec()).unwrap();
        assert_eq!(a.message_count(), 2);
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
