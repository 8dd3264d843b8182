//! Node configuration, the retransmission schedule, per-(peer, message) sync state and the exportable
//! snapshot (mvds.md §4, §5.1, §5.4, §7).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;
use rand_core::RngCore;
use status_proto::mvds as pb;

use super::payload::{GroupId, Message, MessageId, PeerId};
use super::MvdsError;

/// Which record rules the node follows (mvds.md §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Sending stores a MESSAGE record that is pushed to every peer (what Status uses).
    #[default]
    Batch,
    /// Sending stores an OFFER; a peer REQUESTs what it lacks and the MESSAGE follows.
    Interactive,
}

/// The retransmission schedule: the gap, in epochs, before a record is sent again (mvds.md §5.4).
///
/// `count` is the number of transmissions so far (≥ 1). Jitter is drawn from the node's seeded RNG.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// `gap = step * count`, no jitter, never capped: STATUS-2020 with `step = 2`.
    Linear {
        /// Epochs added per transmission.
        step: u64,
    },
    /// `gap = min(initial * 2^(count-1), max) + uniform[0, jitter)`: STATUS-HEAD is
    /// `initial = 90, max = ∞, jitter = 30`.
    Exponential {
        /// The first gap, in epochs (≥ 1).
        initial: u64,
        /// The largest gap before jitter, in epochs.
        max: u64,
        /// Jitter bound, in epochs (0 = none).
        jitter: u64,
    },
}

impl Schedule {
    /// STATUS-2020 `CalculateSendTime`: `epoch + 2 * count`.
    pub const STATUS_2020: Schedule = Schedule::Linear { step: 2 };
    /// STATUS-HEAD `CalculateSendTime`: `epoch + 2^(count-1) * 90 + rand[0, 30)`.
    pub const STATUS_HEAD: Schedule = Schedule::Exponential {
        initial: 90,
        max: u64::MAX,
        jitter: 30,
    };

    /// The gap after the `count`-th transmission.
    pub fn gap(&self, count: u32, rng: &mut impl RngCore) -> u64 {
        let gap = match *self {
            Schedule::Linear { step } => step.saturating_mul(u64::from(count)),
            Schedule::Exponential { initial, max, jitter } => {
                let shift = count.saturating_sub(1).min(63);
                let base = initial.saturating_mul(1u64 << shift).min(max);
                base.saturating_add(uniform(rng, jitter))
            }
        };
        gap.max(1)
    }
}

impl Default for Schedule {
    /// Exponential from 2 epochs (0.6 s at the default tick) up to 1200 epochs (6 min), jitter 2 epochs.
    fn default() -> Self {
        Schedule::Exponential {
            initial: 2,
            max: 1200,
            jitter: 2,
        }
    }
}

/// A uniform draw in `[0, n)` (0 when `n == 0`).
pub(crate) fn uniform(rng: &mut impl RngCore, n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    ((u128::from(rng.next_u64()) * u128::from(n)) >> 64) as u64
}

/// Node configuration. Every collection the node keeps is capped here.
#[derive(Clone, Debug)]
pub struct Config {
    /// Record rules.
    pub mode: Mode,
    /// Length of one epoch (status-go's `DatasyncTicker`: 300 ms).
    pub tick: Duration,
    /// Retransmission schedule.
    pub schedule: Schedule,
    /// Give up on a record after this many transmissions (`None`: never, as STATUS-2020). When a
    /// record would be sent once more, it is dropped instead, and if it reports to the application
    /// ([`SyncState::notify`]) the application gets
    /// [`Event::DeliveryFailed`](super::Event::DeliveryFailed).
    pub max_send_count: Option<u32>,
    /// Messages kept in the store. At the cap the oldest message that no record refers to is evicted;
    /// if every stored message is still referenced, [`send`](super::Node::send) fails with
    /// [`MvdsError::StoreFull`] and a received new message is ignored without ACK (the sender retries).
    /// The store doubles as the duplicate filter, so a message evicted and then received again is
    /// delivered again.
    pub max_messages: usize,
    /// Groups the node tracks; `add_peer` beyond fails with [`MvdsError::TooManyGroups`].
    pub max_groups: usize,
    /// Peers per group; `add_peer` beyond fails with [`MvdsError::TooManyPeers`].
    pub max_peers_per_group: usize,
    /// Sync records in total. At the cap, records that would be added are not: a local send fails with
    /// [`MvdsError::StateFull`]; a remote OFFER or REQUEST, or an OFFER to share a received message, is
    /// skipped (counted in [`Stats::records_dropped`]).
    pub max_states: usize,
    /// Sync records per peer, with the same behaviour at the cap as `max_states`.
    pub max_states_per_peer: usize,
    /// Records (ids plus messages) put in one outgoing payload; the rest wait for the next epoch.
    pub max_records_per_payload: usize,
    /// Bytes of messages put in one outgoing payload (at least one message is always sent).
    pub max_payload_bytes: usize,
    /// Incoming payloads larger than this are ignored.
    pub max_incoming_payload_bytes: usize,
    /// Message bodies larger than this are refused by `send` ([`MvdsError::BodyTooLarge`]).
    pub max_body_bytes: usize,
    /// ACKs waiting to be sent to one peer; beyond it the oldest are forgotten (the peer's
    /// retransmission gets a fresh ACK).
    pub max_pending_acks_per_peer: usize,
    /// Peers with pending ACKs; ACKs for further peers are forgotten the same way.
    pub max_ack_peers: usize,
    /// Outputs waiting in the queue. While it is full, received new messages are ignored without ACK
    /// (back-pressure; the sender retries), due transmissions are postponed and
    /// [`PayloadIgnored`](super::Event::PayloadIgnored) events are only counted.
    pub max_queued_outputs: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Batch,
            tick: Duration::from_millis(300),
            schedule: Schedule::default(),
            max_send_count: Some(32),
            max_messages: 100_000,
            max_groups: 10_000,
            max_peers_per_group: 1_000,
            max_states: 200_000,
            max_states_per_peer: 20_000,
            max_records_per_payload: 1_000,
            max_payload_bytes: 512 * 1024,
            max_incoming_payload_bytes: 1024 * 1024,
            max_body_bytes: 512 * 1024,
            max_pending_acks_per_peer: 10_000,
            max_ack_peers: 10_000,
            max_queued_outputs: 10_000,
        }
    }
}

/// Counters, for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Payloads handed out for transmission.
    pub payloads_sent: u64,
    /// Messages transmitted (first sends and retransmissions).
    pub messages_sent: u64,
    /// Duplicate messages received (and ACKed again).
    pub duplicates_received: u64,
    /// Records not added because a cap was reached.
    pub records_dropped: u64,
    /// Received payloads ignored (malformed or too large).
    pub payloads_ignored: u64,
}

/// Kind of a sync record (the reference's encoding: OFFER 0, REQUEST 1, MESSAGE 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RecordKind {
    /// Offer the message id to the peer.
    Offer,
    /// Request the message from the peer.
    Request,
    /// Send the message to the peer until ACKed.
    Message,
}

impl RecordKind {
    fn code(self) -> u32 {
        match self {
            RecordKind::Offer => 0,
            RecordKind::Request => 1,
            RecordKind::Message => 2,
        }
    }

    fn from_code(c: u32) -> Option<Self> {
        match c {
            0 => Some(RecordKind::Offer),
            1 => Some(RecordKind::Request),
            2 => Some(RecordKind::Message),
            _ => None,
        }
    }
}

/// One per-(peer, message) record awaiting completion (mvds.md §1 "state").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncState {
    /// What to send.
    pub kind: RecordKind,
    /// The group (unknown for a REQUEST of an offered message).
    pub group: Option<GroupId>,
    /// Transmissions so far.
    pub send_count: u32,
    /// The epoch at which it is next due.
    pub send_epoch: u64,
    /// Whether settling the record raises [`Event::Delivered`](super::Event::Delivered) and abandoning it
    /// [`Event::DeliveryFailed`](super::Event::DeliveryFailed): true for records of messages we send or
    /// share, false for REQUESTs and for MESSAGEs answering a REQUEST we did not solicit.
    pub notify: bool,
}

/// The sync records with an index by due epoch.
#[derive(Clone, Debug, Default)]
pub(crate) struct States {
    by_key: BTreeMap<(PeerId, MessageId), SyncState>,
    due: BTreeSet<(u64, PeerId, MessageId)>,
    per_peer: BTreeMap<PeerId, usize>,
    refs: BTreeMap<MessageId, usize>,
}

impl States {
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }

    pub(crate) fn peer_len(&self, peer: &PeerId) -> usize {
        self.per_peer.get(peer).copied().unwrap_or(0)
    }

    pub(crate) fn get(&self, peer: &PeerId, id: &MessageId) -> Option<&SyncState> {
        self.by_key.get(&(peer.clone(), *id))
    }

    pub(crate) fn contains(&self, peer: &PeerId, id: &MessageId) -> bool {
        self.by_key.contains_key(&(peer.clone(), *id))
    }

    /// Insert or replace.
    pub(crate) fn insert(&mut self, peer: PeerId, id: MessageId, s: SyncState) {
        self.due.insert((s.send_epoch, peer.clone(), id));
        match self.by_key.insert((peer.clone(), id), s) {
            Some(old) => {
                if old.send_epoch != s.send_epoch {
                    self.due.remove(&(old.send_epoch, peer, id));
                }
            }
            None => {
                *self.per_peer.entry(peer).or_insert(0) += 1;
                *self.refs.entry(id).or_insert(0) += 1;
            }
        }
    }

    pub(crate) fn remove(&mut self, peer: &PeerId, id: &MessageId) -> Option<SyncState> {
        let s = self.by_key.remove(&(peer.clone(), *id))?;
        self.due.remove(&(s.send_epoch, peer.clone(), *id));
        if let Some(n) = self.per_peer.get_mut(peer) {
            *n -= 1;
            if *n == 0 {
                self.per_peer.remove(peer);
            }
        }
        if let Some(n) = self.refs.get_mut(id) {
            *n -= 1;
            if *n == 0 {
                self.refs.remove(id);
            }
        }
        Some(s)
    }

    /// The records due at `epoch` or earlier, earliest first.
    pub(crate) fn due_keys(&self, epoch: u64) -> Vec<(PeerId, MessageId)> {
        self.due
            .iter()
            .take_while(|(e, _, _)| *e <= epoch)
            .map(|(_, p, i)| (p.clone(), *i))
            .collect()
    }

    pub(crate) fn earliest_due(&self) -> Option<u64> {
        self.due.first().map(|(e, _, _)| *e)
    }

    /// Whether any record refers to `id`.
    pub(crate) fn refers_to(&self, id: &MessageId) -> bool {
        self.refs.contains_key(id)
    }

    /// The message ids of `peer`'s records.
    pub(crate) fn ids_of_peer(&self, peer: &PeerId) -> Vec<MessageId> {
        let lo = (peer.clone(), MessageId([0; 32]));
        let hi = (peer.clone(), MessageId([0xff; 32]));
        self.by_key.range(lo..=hi).map(|((_, i), _)| *i).collect()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&(PeerId, MessageId), &SyncState)> {
        self.by_key.iter()
    }
}

/// Everything a node persists, as plain values (mvds.md §5.1: epoch, store, peers, states). Pending ACKs
/// are not included (the reference keeps them in memory too): a peer whose ACK was lost retransmits
/// and is ACKed again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The epoch at export time.
    pub epoch: u64,
    /// The message store, oldest first.
    pub messages: Vec<Message>,
    /// Peers of each group.
    pub groups: Vec<(GroupId, Vec<PeerId>)>,
    /// Sync records.
    pub states: Vec<(PeerId, MessageId, SyncState)>,
}

impl Snapshot {
    /// Encode as the `mvds.NodeSnapshot` protobuf (a local storage format, not a wire format).
    pub fn encode_to_vec(&self) -> Vec<u8> {
        pb::NodeSnapshot {
            epoch: self.epoch,
            messages: self.messages.iter().map(Message::to_proto).collect(),
            groups: self
                .groups
                .iter()
                .map(|(g, peers)| pb::GroupPeers {
                    group_id: Bytes::copy_from_slice(&g.0),
                    peers: peers.iter().map(|p| p.0.clone()).collect(),
                })
                .collect(),
            states: self
                .states
                .iter()
                .map(|(p, i, s)| pb::SyncState {
                    peer: p.0.clone(),
                    message_id: Bytes::copy_from_slice(&i.0),
                    kind: s.kind.code(),
                    group_id: s.group.map(|g| Bytes::copy_from_slice(&g.0)).unwrap_or_default(),
                    send_count: s.send_count,
                    send_epoch: s.send_epoch,
                    notify: s.notify,
                })
                .collect(),
        }
        .encode_to_vec()
    }

    /// Decode what [`Snapshot::encode_to_vec`] produced.
    pub fn decode(bytes: &[u8]) -> Result<Self, MvdsError> {
        let bad = MvdsError::BadSnapshot;
        let s = pb::NodeSnapshot::decode(bytes).map_err(|_| bad("protobuf"))?;
        let groups = s
            .groups
            .into_iter()
            .map(|g| {
                let id = GroupId::from_slice(&g.group_id).ok_or(bad("group id"))?;
                Ok((id, g.peers.into_iter().map(PeerId).collect()))
            })
            .collect::<Result<_, MvdsError>>()?;
        let states = s
            .states
            .into_iter()
            .map(|st| {
                let id = MessageId::from_slice(&st.message_id).ok_or(bad("message id"))?;
                let kind = RecordKind::from_code(st.kind).ok_or(bad("record kind"))?;
                let group = if st.group_id.is_empty() {
                    None
                } else {
                    Some(GroupId::from_slice(&st.group_id).ok_or(bad("group id"))?)
                };
                Ok((
                    PeerId(st.peer),
                    id,
                    SyncState {
                        kind,
                        group,
                        send_count: st.send_count,
                        send_epoch: st.send_epoch,
                        notify: st.notify,
                    },
                ))
            })
            .collect::<Result<_, MvdsError>>()?;
        Ok(Snapshot {
            epoch: s.epoch,
            messages: s.messages.into_iter().map(Message::from_proto).collect(),
            groups,
            states,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Seed;

    #[test]
    fn schedules_follow_the_reference_formulas() {
        let mut rng = Seed::from_u64(1).rng();
        let lin: Vec<u64> = (1..=4).map(|c| Schedule::STATUS_2020.gap(c, &mut rng)).collect();
        assert_eq!(lin, [2, 4, 6, 8]);
        for c in 1..=5u32 {
            let g = Schedule::STATUS_HEAD.gap(c, &mut rng);
            let base = 90u64 << (c - 1);
            assert!((base..base + 30).contains(&g), "count {c}: gap {g}");
        }
        let capped = Schedule::Exponential {
            initial: 2,
            max: 10,
            jitter: 0,
        };
        let gaps: Vec<u64> = (1..=6).map(|c| capped.gap(c, &mut rng)).collect();
        assert_eq!(gaps, [2, 4, 8, 10, 10, 10]);
        assert_eq!(capped.gap(u32::MAX, &mut rng), 10);
    }

    #[test]
    fn states_index_stays_consistent() {
        let mut st = States::default();
        let p = PeerId::new(vec![1u8]);
        let s = SyncState {
            kind: RecordKind::Message,
            group: None,
            send_count: 0,
            send_epoch: 5,
            notify: true,
        };
        st.insert(p.clone(), MessageId([1; 32]), s);
        st.insert(p.clone(), MessageId([1; 32]), SyncState { send_epoch: 9, ..s });
        assert_eq!(st.len(), 1);
        assert_eq!(st.peer_len(&p), 1);
        assert_eq!(st.earliest_due(), Some(9));
        assert!(st.due_keys(8).is_empty());
        assert_eq!(st.due_keys(9).len(), 1);
        assert!(st.remove(&p, &MessageId([1; 32])).is_some());
        assert_eq!(st.peer_len(&p), 0);
        assert_eq!(st.earliest_due(), None);
    }
}
