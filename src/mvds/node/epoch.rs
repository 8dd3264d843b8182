//! The epoch: pending ACKs and due records go out, one payload per peer, with the retransmission
//! schedule (docs/protocol/mvds.md §5.3, §5.4).

use std::collections::BTreeSet;

use super::super::payload::{MessageId, Payload, PeerId, ENCODED_ID_LEN};
use super::super::state::RecordKind;
use super::{Event, FirstSent, Node, Output};
use crate::time::Timestamp;

impl Node {
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
    pub(super) fn build_payload(&mut self, peer: &PeerId, epoch: u64) {
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
    pub(super) fn note_transmission(&mut self, peer: &PeerId, id: MessageId, count: u32, epoch: u64) -> u32 {
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
}
