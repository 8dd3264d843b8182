//! Node configuration, the retransmission schedule, per-(peer, message) sync state and the exportable
//! snapshot (docs/protocol/mvds.md §4, §5.1, §5.4, §7).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;
use rand_core::RngCore;
use status_proto::mvds as pb;

use super::payload::{GroupId, Message, MessageId, PeerId};
use super::MvdsError;

/// Which record rules the node follows (docs/protocol/mvds.md §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Sending stores a MESSAGE record that is pushed to every peer (what Status uses).
    #[default]
    Batch,
    /// Sending stores an OFFER; a peer REQUESTs what it lacks and the MESSAGE follows.
    Interactive,
}

/// The retransmission schedule: the gap, in epochs, before a record is sent again (docs/protocol/mvds.md
/// §5.4).
///
/// `count` is the number of transmissions so far (≥ 1). Jitter is drawn from the node's seeded RNG.
///
/// The default, [`Schedule::Adaptive`], is a deviation: the reference's fixed gaps (STATUS-2020: 2, 4,
/// 6 … epochs; STATUS-HEAD: 90, 180 … epochs) either resend every message before a round trip through
/// Waku's relay cycle can complete (about 4 epochs) or wait 27 s after a loss. The adaptive schedule
/// measures the round trip and sets the retransmission timeout as TCP does (RFC 6298).
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
    /// A retransmission timeout adapted to the measured round trip, as TCP's (RFC 6298): `RTO = SRTT +
    /// max(1 epoch, 4·RTTVAR)` within `[min, max]`, `initial` before the first measurement, doubled for
    /// each retransmission of a record (`RTO·2^(count-1)`, at most `max`). Round trips are measured from
    /// a record's first transmission to the ACK; an ACK of a retransmitted record is not measured (Karn's
    /// rule), since it cannot tell which transmission it answers.
    Adaptive {
        /// The timeout before any round trip is measured, in epochs.
        initial: u64,
        /// The smallest timeout, in epochs (≥ 1).
        min: u64,
        /// The largest gap, backoff included, in epochs.
        max: u64,
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

    /// The default: [`Schedule::Adaptive`] starting at 10 epochs (3 s at the default tick, TCP's
    /// classic initial RTO), never below 4 epochs (1.2 s: RFC 6298's 1 s rounded up to whole epochs),
    /// backing off up to 1200 epochs (6 min), the ceiling of the earlier default. STATUS-HEAD backs off
    /// without a ceiling (to days) before it gives up; so long a ceiling would leave a member that was
    /// offline for an hour waiting hours more for what it missed.
    pub const ADAPTIVE: Schedule = Schedule::Adaptive {
        initial: 10,
        min: 4,
        max: 1200,
    };

    /// The gap after the `count`-th transmission, before any round trip is measured.
    pub fn gap(&self, count: u32, rng: &mut impl RngCore) -> u64 {
        self.gap_measured(count, 0, &Rtt::default(), rng)
    }

    /// The gap after the `count`-th transmission of a record first sent at backoff level `level`
    /// ([`Rtt::backoff`] then), with the round trips measured so far (`level` and `rtt` are used by
    /// [`Schedule::Adaptive`] only: its gap is `RTO·2^(level + count - 1)`, at most `max`).
    pub fn gap_measured(&self, count: u32, level: u32, rtt: &Rtt, rng: &mut impl RngCore) -> u64 {
        let shift = count.saturating_sub(1).min(63);
        let gap = match *self {
            Schedule::Linear { step } => step.saturating_mul(u64::from(count)),
            Schedule::Exponential { initial, max, jitter } => {
                let base = initial.saturating_mul(1u64 << shift).min(max);
                base.saturating_add(uniform(rng, jitter))
            }
            Schedule::Adaptive { initial, min, max } => {
                let shift = shift.saturating_add(level).min(63);
                rtt.rto(initial, min, max).saturating_mul(1u64 << shift).min(max)
            }
        };
        gap.max(1)
    }
}

impl Default for Schedule {
    /// [`Schedule::ADAPTIVE`].
    fn default() -> Self {
        Schedule::ADAPTIVE
    }
}

/// A round-trip estimator (RFC 6298 §2), in eighths of an epoch: the smoothed round trip and its mean
/// deviation, from round trips measured in whole epochs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rtt {
    /// Smoothed round trip (SRTT), in 1/8 epochs; meaningful once `samples > 0`.
    srtt: u64,
    /// Round-trip variation (RTTVAR), in 1/8 epochs.
    rttvar: u64,
    /// Round trips measured (saturating).
    samples: u32,
    /// Karn's backoff: the highest retransmission level (doublings, at most
    /// [`Rtt::MAX_CARRIED_BACKOFF`]) reached since the last measurement. New records start from the backed-off timeout until an ACK of a record sent once
    /// measures a round trip again (RFC 6298 §5.5–5.7), so a round trip longer than the timeout cannot
    /// keep every record retransmitted and unmeasured.
    backoff: u32,
}

impl Rtt {
    /// Round trips longer than this many epochs are measured as this (keeps the arithmetic far from
    /// overflow; 2^32 epochs of 300 ms are 40 years).
    const MAX_SAMPLE: u64 = 1 << 32;

    /// Take a measured round trip of `epochs` (RFC 6298 §2.2–2.3, α = 1/8, β = 1/4).
    pub fn sample(&mut self, epochs: u64) {
        let r = epochs.min(Self::MAX_SAMPLE) * 8;
        if self.samples == 0 {
            self.srtt = r;
            self.rttvar = r / 2;
        } else {
            let err = self.srtt.abs_diff(r);
            self.rttvar = self.rttvar - self.rttvar / 4 + err / 4;
            self.srtt = self.srtt - self.srtt / 8 + r / 8;
        }
        self.samples = self.samples.saturating_add(1);
        self.backoff = 0;
    }

    /// The most doublings carried over to new records ([`Rtt::retransmitted`]): a new record's first
    /// timeout is at most 8 RTOs. Without a cap the level compounds on a lossy link, where every record
    /// that needed a retransmission would start the next one from a longer timeout (with one message in
    /// flight at a time, a streak of four such records made the fifth wait almost an hour); with it a
    /// round trip up to 8 RTOs (40 epochs, 12 s, at the default 5-epoch RTO of a lossless Waku path;
    /// 80 epochs before the first measurement) is still measured.
    pub const MAX_CARRIED_BACKOFF: u32 = 3;

    /// A record was retransmitted with its timeout backed off `level` doublings: keep new records at
    /// least that backed off (up to [`Rtt::MAX_CARRIED_BACKOFF`]) until the next measurement.
    pub fn retransmitted(&mut self, level: u32) {
        self.backoff = self.backoff.max(level.min(Self::MAX_CARRIED_BACKOFF));
    }

    /// Doublings the timeout is currently backed off by (Karn's rule).
    pub fn backoff(&self) -> u32 {
        self.backoff
    }

    /// Round trips measured so far.
    pub fn samples(&self) -> u32 {
        self.samples
    }

    /// The smoothed round trip in epochs (rounded up), once measured.
    pub fn srtt_epochs(&self) -> Option<u64> {
        (self.samples > 0).then(|| self.srtt.div_ceil(8))
    }

    /// `SRTT + max(G, 4·RTTVAR)` with a clock granularity `G` of one epoch, rounded up to whole epochs
    /// and kept within `[min, max]`; `initial` (within the same bounds) before the first measurement.
    pub fn rto(&self, initial: u64, min: u64, max: u64) -> u64 {
        let rto = if self.samples == 0 {
            initial
        } else {
            (self.srtt + (4 * self.rttvar).max(8)).div_ceil(8)
        };
        rto.max(min).min(max)
    }
}

/// A uniform draw in `[0, n)` (0 when `n == 0`).
pub(crate) fn uniform(rng: &mut impl RngCore, n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    ((u128::from(rng.next_u64()) * u128::from(n)) >> 64) as u64
}

/// Node configuration. Every collection the node keeps is capped here; [`Config::validate`] (run by
/// [`Node::new`](super::Node::new)) rejects inconsistent values.
///
/// How the caps interact:
/// * Sync records have two separate quotas: records created by local sends (`max_states`,
///   `max_states_per_peer`) and records a peer's payload makes the node create (REQUESTs for its OFFERs,
///   MESSAGEs answering its REQUESTs, OFFERs sharing its messages with the group:
///   `max_remote_states`, `max_remote_states_per_peer`). Peers can therefore never make a local send
///   fail with [`MvdsError::StateFull`]. At most `max_states + max_remote_states` records exist.
/// * `max_messages` must exceed `max_states + max_remote_states`: a record pins one message in the
///   store, so the store always holds an evictable message and neither a send nor a received message
///   is ever refused for lack of store space.
/// * `max_payload_bytes + max_records_per_payload * 36` must not exceed `max_incoming_payload_bytes`,
///   so that a node accepts every payload a node with the same configuration sends; a message with a
///   body of `max_body_bytes` must fit in `max_payload_bytes`.
/// * The output queue (`max_queued_outputs`) is never exceeded: work that would produce an output while
///   it is full is deferred (see there), so a caller that does not drain the queue slows the node down
///   but never makes it grow.
#[derive(Clone, Debug)]
pub struct Config {
    /// Record rules.
    pub mode: Mode,
    /// Length of one epoch (status-go's `DatasyncTicker`: 300 ms). At least 1 ms.
    pub tick: Duration,
    /// Retransmission schedule.
    pub schedule: Schedule,
    /// Give up on a record after this many transmissions (`None`: never, as STATUS-2020; `Some(0)` is
    /// invalid). When a record would be sent once more, it is dropped instead, and if it reports to the
    /// application ([`SyncState::notify`]) the application gets
    /// [`Event::DeliveryFailed`](super::Event::DeliveryFailed). In interactive mode the OFFER and the
    /// MESSAGE that follows a REQUEST share one count, so an obligation is transmitted at most this many
    /// times in total.
    pub max_send_count: Option<u32>,
    /// Messages kept in the store. At the cap the oldest message that no record refers to is evicted
    /// (in O(log n)). The store doubles as the duplicate filter, so a message evicted and then received
    /// again is delivered again. Must exceed `max_states + max_remote_states` (see above), so the store
    /// never fills with referenced messages; should it anyway (it cannot with a valid configuration),
    /// [`Input::Send`](super::Input::Send) fails with [`MvdsError::StoreFull`] and a received new message is
    /// ignored without ACK.
    pub max_messages: usize,
    /// Groups the node tracks; `add_peer` beyond fails with [`MvdsError::TooManyGroups`].
    pub max_groups: usize,
    /// Peers per group; `add_peer` beyond fails with [`MvdsError::TooManyPeers`].
    pub max_peers_per_group: usize,
    /// Records created by local sends, in total. A send that would exceed it fails with
    /// [`MvdsError::StateFull`] and adds nothing.
    pub max_states: usize,
    /// Records created by local sends, per peer, with the same behaviour.
    pub max_states_per_peer: usize,
    /// Records created because of peers' payloads, in total. At the cap such records are not created
    /// (counted in [`Stats::records_dropped`]): an OFFER is not REQUESTed (the offerer repeats it), a
    /// REQUEST is not answered (the requester repeats it), a received message is not shared.
    pub max_remote_states: usize,
    /// Records created because of peers' payloads, per peer, with the same behaviour.
    pub max_remote_states_per_peer: usize,
    /// Records (ids plus messages) put in one outgoing payload (at least 1); the rest wait for the next
    /// epoch.
    pub max_records_per_payload: usize,
    /// Bytes of messages put in one outgoing payload (at least one message is always sent). Filling
    /// stops at the first due message that does not fit; it goes first in the next epoch.
    pub max_payload_bytes: usize,
    /// Incoming payloads larger than this (encoded) are ignored with
    /// [`PayloadError::TooLarge`](super::PayloadError::TooLarge), on every path:
    /// [`Input::Received`](super::Input::Received) before decoding and
    /// [`Input::ReceivedPayload`](super::Input::ReceivedPayload) by its encoded length.
    pub max_incoming_payload_bytes: usize,
    /// Message bodies larger than this are refused by `send` ([`MvdsError::BodyTooLarge`]).
    pub max_body_bytes: usize,
    /// ACKs waiting to be sent to one peer (at least 1); beyond it the oldest are forgotten (the peer's
    /// retransmission gets a fresh ACK).
    pub max_pending_acks_per_peer: usize,
    /// Peers with pending ACKs (at least 1); ACKs for further peers are not queued (the peer's
    /// retransmission gets a fresh ACK).
    pub max_ack_peers: usize,
    /// ACKs waiting to be sent in total (at least 1). At the cap a new ACK is not queued (counted in
    /// [`Stats::records_dropped`]); the message itself is still stored and delivered, and the peer's
    /// retransmission is ACKed once there is room. Pending ACKs are sent every epoch, so the queue
    /// drains at up to `max_records_per_payload` ACKs per peer per epoch.
    pub max_pending_acks: usize,
    /// Outputs waiting in the queue (at least 2). The queue never grows beyond it; while it is full:
    /// received new messages are ignored without ACK (back-pressure; the sender retries), a received
    /// ACK whose settlement would raise [`Delivered`](super::Event::Delivered) is left unprocessed (the
    /// record is retransmitted and ACKed again), due transmissions and give-ups
    /// ([`DeliveryFailed`](super::Event::DeliveryFailed)) wait for the next epoch, and
    /// [`PayloadIgnored`](super::Event::PayloadIgnored) events are only counted. Deferrals are counted
    /// in [`Stats::deferred`].
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
            max_states: 50_000,
            max_states_per_peer: 10_000,
            max_remote_states: 20_000,
            max_remote_states_per_peer: 2_000,
            max_records_per_payload: 1_000,
            max_payload_bytes: 512 * 1024,
            max_incoming_payload_bytes: 1024 * 1024,
            max_body_bytes: 512 * 1024 - 128,
            max_pending_acks_per_peer: 10_000,
            max_ack_peers: 10_000,
            max_pending_acks: 100_000,
            max_queued_outputs: 10_000,
        }
    }
}

impl Config {
    /// Check the values and their interactions (see the type's docs); `Err` names the first problem.
    pub fn validate(&self) -> Result<(), MvdsError> {
        let bad = MvdsError::InvalidConfig;
        if self.tick < Duration::from_millis(1) {
            return Err(bad("tick below 1 ms"));
        }
        match self.schedule {
            Schedule::Linear { step: 0 } => return Err(bad("linear schedule with step 0")),
            Schedule::Exponential { initial, max, .. } if initial == 0 || max < initial => {
                return Err(bad("exponential schedule needs 1 <= initial <= max"))
            }
            Schedule::Adaptive { initial, min, max } if min == 0 || initial < min || max < initial => {
                return Err(bad("adaptive schedule needs 1 <= min <= initial <= max"))
            }
            _ => {}
        }
        if self.max_send_count == Some(0) {
            return Err(bad("max_send_count of 0"));
        }
        if self.max_messages <= self.max_states.saturating_add(self.max_remote_states) {
            return Err(bad("max_messages must exceed max_states + max_remote_states"));
        }
        if self.max_records_per_payload == 0 {
            return Err(bad("max_records_per_payload of 0"));
        }
        let ids = self
            .max_records_per_payload
            .saturating_mul(super::payload::ENCODED_ID_LEN);
        if self.max_payload_bytes.saturating_add(ids) > self.max_incoming_payload_bytes {
            return Err(bad(
                "max_payload_bytes + max_records_per_payload * 36 exceeds max_incoming_payload_bytes",
            ));
        }
        if max_message_len(self.max_body_bytes) > self.max_payload_bytes {
            return Err(bad(
                "a message of max_body_bytes does not fit in max_payload_bytes",
            ));
        }
        if self.max_pending_acks_per_peer == 0 || self.max_ack_peers == 0 || self.max_pending_acks == 0 {
            return Err(bad("ACK caps must be at least 1"));
        }
        if self.max_queued_outputs < 2 {
            return Err(bad("max_queued_outputs below 2"));
        }
        Ok(())
    }
}

/// The largest encoded size, inside a payload, of a message with a body of `body` bytes (32-byte group,
/// a 10-byte timestamp varint).
fn max_message_len(body: usize) -> usize {
    use prost::encoding::encoded_len_varint;
    let inner = (3 + 1 + 32) + (3 + 10) + 3 + encoded_len_varint(body as u64) + body;
    3 + encoded_len_varint(inner as u64) + inner
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
    /// Received ACK/OFFER/REQUEST ids skipped because they are not 32 bytes.
    pub ids_skipped: u64,
    /// Received OFFERs ignored because the sender shares no group with us.
    pub offers_from_non_members: u64,
    /// Steps postponed because the output queue was full (see [`Config::max_queued_outputs`]).
    pub deferred: u64,
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

/// One per-(peer, message) record awaiting completion (docs/protocol/mvds.md §1 "state").
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
    /// Created by a local send (counted against [`Config::max_states`]) rather than because of a peer's
    /// payload (counted against [`Config::max_remote_states`]).
    pub local: bool,
}

/// One peer's records, with their due-time index.
#[derive(Clone, Debug, Default)]
struct PeerRecords {
    records: BTreeMap<MessageId, SyncState>,
    due: BTreeSet<(u64, MessageId)>,
    local: usize,
    remote: usize,
}

/// The sync records, indexed per peer by due epoch, and the peers by their earliest due epoch, so that
/// an epoch touches only the records it sends (O(log n) each), never every due record.
#[derive(Clone, Debug, Default)]
pub(crate) struct States {
    peers: BTreeMap<PeerId, PeerRecords>,
    peer_due: BTreeSet<(u64, PeerId)>,
    refs: BTreeMap<MessageId, usize>,
    local: usize,
    remote: usize,
}

impl States {
    pub(crate) fn len(&self) -> usize {
        self.local + self.remote
    }

    /// Records of local sends / because of peers.
    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.local, self.remote)
    }

    /// `peer`'s records of local sends / because of peers.
    pub(crate) fn peer_counts(&self, peer: &PeerId) -> (usize, usize) {
        self.peers.get(peer).map_or((0, 0), |r| (r.local, r.remote))
    }

    pub(crate) fn get(&self, peer: &PeerId, id: &MessageId) -> Option<&SyncState> {
        self.peers.get(peer)?.records.get(id)
    }

    pub(crate) fn contains(&self, peer: &PeerId, id: &MessageId) -> bool {
        self.get(peer, id).is_some()
    }

    fn reindex(&mut self, peer: &PeerId, before: Option<u64>) {
        let after = self.peers.get(peer).and_then(|r| r.due.first()).map(|(e, _)| *e);
        if before != after {
            if let Some(e) = before {
                self.peer_due.remove(&(e, peer.clone()));
            }
            if let Some(e) = after {
                self.peer_due.insert((e, peer.clone()));
            }
        }
    }

    /// Insert or replace. Returns `true` if `id` had no record before (it is now referenced).
    pub(crate) fn insert(&mut self, peer: PeerId, id: MessageId, s: SyncState) -> bool {
        let r = self.peers.entry(peer.clone()).or_default();
        let before = r.due.first().map(|(e, _)| *e);
        let old = r.records.insert(id, s);
        if let Some(old) = old {
            r.due.remove(&(old.send_epoch, id));
            if old.local {
                r.local -= 1;
                self.local -= 1;
            } else {
                r.remote -= 1;
                self.remote -= 1;
            }
        }
        r.due.insert((s.send_epoch, id));
        if s.local {
            r.local += 1;
            self.local += 1;
        } else {
            r.remote += 1;
            self.remote += 1;
        }
        self.reindex(&peer, before);
        if old.is_some() {
            return false;
        }
        let n = self.refs.entry(id).or_insert(0);
        *n += 1;
        *n == 1
    }

    /// Remove; the flag says whether it was the last record referring to `id`.
    pub(crate) fn remove(&mut self, peer: &PeerId, id: &MessageId) -> Option<(SyncState, bool)> {
        let r = self.peers.get_mut(peer)?;
        let before = r.due.first().map(|(e, _)| *e);
        let s = r.records.remove(id)?;
        r.due.remove(&(s.send_epoch, *id));
        if s.local {
            r.local -= 1;
            self.local -= 1;
        } else {
            r.remote -= 1;
            self.remote -= 1;
        }
        if r.records.is_empty() {
            self.peers.remove(peer);
        }
        self.reindex(peer, before);
        let mut last = false;
        if let Some(n) = self.refs.get_mut(id) {
            *n -= 1;
            if *n == 0 {
                self.refs.remove(id);
                last = true;
            }
        }
        Some((s, last))
    }

    /// Peers with a record due at `epoch` or earlier, earliest first.
    pub(crate) fn due_peers(&self, epoch: u64) -> impl Iterator<Item = &PeerId> {
        self.peer_due
            .iter()
            .take_while(move |(e, _)| *e <= epoch)
            .map(|(_, p)| p)
    }

    /// `peer`'s earliest due record.
    pub(crate) fn first_due(&self, peer: &PeerId) -> Option<(u64, MessageId)> {
        self.peers.get(peer)?.due.first().copied()
    }

    pub(crate) fn earliest_due(&self) -> Option<u64> {
        self.peer_due.first().map(|(e, _)| *e)
    }

    /// Whether any record refers to `id`.
    pub(crate) fn refers_to(&self, id: &MessageId) -> bool {
        self.refs.contains_key(id)
    }

    /// The message ids of `peer`'s records.
    pub(crate) fn ids_of_peer(&self, peer: &PeerId) -> Vec<MessageId> {
        self.peers
            .get(peer)
            .map(|r| r.records.keys().copied().collect())
            .unwrap_or_default()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&PeerId, &MessageId, &SyncState)> {
        self.peers
            .iter()
            .flat_map(|(p, r)| r.records.iter().map(move |(i, s)| (p, i, s)))
    }
}

/// Everything a node persists, as plain values (docs/protocol/mvds.md §5.1: epoch, store, peers, states).
/// Pending ACKs are not included (the reference keeps them in memory too): a peer whose ACK was lost
/// retransmits and is ACKed again.
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
                    local: s.local,
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
                        local: st.local,
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
mod tests;
