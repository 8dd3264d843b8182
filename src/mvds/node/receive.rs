//! Received payloads: ACKs, REQUESTs, OFFERs, MESSAGEs in the reference's order (docs/protocol/mvds.md
//! §5.5).

use super::super::payload::{Message, MessageId, Payload, PayloadError, PeerId};
use super::super::state::{RecordKind, SyncState};
use super::{Event, Node, Output};
use crate::time::Timestamp;

impl Node {
    /// Handle an encoded payload from `from` (at most [`Config::max_incoming_payload_bytes`]).
    pub(crate) fn receive(&mut self, now: Timestamp, from: PeerId, bytes: &[u8]) {
        match Payload::decode_with_limit(bytes, self.config.max_incoming_payload_bytes) {
            Ok((p, skipped)) => {
                self.stats.ids_skipped += skipped as u64;
                self.process(now, from, p);
            }
            Err(e) => self.ignore(from, e),
        }
    }

    pub(super) fn ignore(&mut self, from: PeerId, reason: PayloadError) {
        self.stats.payloads_ignored += 1;
        // Only counted once the output queue is full.
        if !self.queue_full() {
            self.outputs
                .push_back(Output::Event(Event::PayloadIgnored { from, reason }));
        }
    }

    /// Handle a decoded payload from `from` (docs/protocol/mvds.md §5.5, in the reference's order: ACKs,
    /// REQUESTs, OFFERs, MESSAGEs). A payload whose encoding exceeds [`Config::max_incoming_payload_bytes`]
    /// is ignored, as it would be by [`Input::Received`](super::Input::Received).
    pub(crate) fn receive_payload(&mut self, now: Timestamp, from: PeerId, payload: Payload) {
        let len = payload.encoded_len();
        if len > self.config.max_incoming_payload_bytes {
            self.ignore(from, PayloadError::TooLarge(len));
            return;
        }
        self.process(now, from, payload);
    }

    pub(super) fn process(&mut self, now: Timestamp, from: PeerId, payload: Payload) {
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
    pub(super) fn proved_held(&mut self, peer: &PeerId, id: &MessageId) {
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

    pub(super) fn queue_ack(&mut self, next_epoch: u64, peer: &PeerId, id: MessageId) {
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
}
