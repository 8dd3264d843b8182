//! Per-connection Waku state (docs/protocol/waku.md §5–§7): the Status handshake, what the remote asked for
//! (PoW requirement, bloom or topic interest, light node, confirmations), which envelopes it already knows,
//! its rate-limit window and its misbehaviour count. [`super::node::WakuNode`] drives one per connection.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::rng::{SeededHashSet, SeededState};

use super::options::{StatusOptions, WhisperStatus};
use super::packet::Dialect;
use super::topic::{Bloom, Topic};
use crate::time::Timestamp;

/// Handshake progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerState {
    /// Our Status is sent; theirs has not arrived (must by the deadline).
    AwaitStatus {
        /// When we give up.
        deadline: Timestamp,
    },
    /// Status exchanged.
    Active,
}

/// One peer.
#[derive(Debug)]
pub struct WakuPeer {
    /// The dialect spoken.
    pub dialect: Dialect,
    /// Handshake progress.
    pub state: PeerState,
    /// The remote's options, defaults filled in.
    pub remote: StatusOptions,
    /// Trusted (a mailserver we use): its P2P messages and completions are accepted.
    pub trusted: bool,
    /// Ids of envelopes this peer sent us, so they are never echoed back.
    known: SeededHashSet<[u8; 32]>,
    /// The remote's topic interest as a set, for O(1) matching.
    interest: Option<BTreeSet<Topic>>,
    /// Pool sequence number up to which the broadcast cycle has considered envelopes for this peer.
    pub cursor: u64,
    /// Batches we sent: (batch hash, envelope hashes), newest last, bounded.
    pub sent_batches: VecDeque<([u8; 32], Vec<[u8; 32]>)>,
    window_start: Timestamp,
    window_envelopes: u64,
    window_bytes: u64,
    /// Packets dropped for exceeding the rate limit, over the connection's life.
    pub rate_violations: u32,
    misbehaviour_window: Timestamp,
    misbehaviour: u32,
    /// The rate-limit source (IP group) this peer counts toward; its own id unless the caller set one.
    pub source: u64,
    updates_window: Timestamp,
    updates: u32,
    /// Envelopes selected for this peer and not yet sent: pool sequence numbers per source, oldest
    /// first, served round-robin across sources and bounded in total (the oldest of the longest queue
    /// goes first).
    queue: BTreeMap<u64, VecDeque<u64>>,
    queued: usize,
    /// The source served last (round-robin position).
    served: u64,
}

/// Most batches remembered per peer for confirmations.
pub const MAX_SENT_BATCHES: usize = 64;

impl WakuPeer {
    /// A new peer whose Status must arrive by `deadline`.
    pub fn new(dialect: Dialect, now: Timestamp, deadline: Timestamp, hasher: SeededState) -> Self {
        WakuPeer {
            dialect,
            state: PeerState::AwaitStatus { deadline },
            remote: StatusOptions::default().with_defaults(),
            trusted: false,
            known: SeededHashSet::with_hasher(hasher),
            interest: None,
            cursor: 0,
            sent_batches: VecDeque::new(),
            window_start: now,
            window_envelopes: 0,
            window_bytes: 0,
            rate_violations: 0,
            misbehaviour_window: now,
            misbehaviour: 0,
            source: 0,
            updates_window: now,
            updates: 0,
            queue: BTreeMap::new(),
            queued: 0,
            served: 0,
        }
    }

    /// Count a Status Update (or shh/6 bloom or PoW packet) against `max_per_minute`; false past it.
    pub fn status_update_allowed(&mut self, now: Timestamp, max_per_minute: u32) -> bool {
        if now.saturating_duration_since(self.updates_window).as_secs() >= 60 {
            self.updates_window = now;
            self.updates = 0;
        }
        self.updates = self.updates.saturating_add(1);
        self.updates <= max_per_minute
    }

    /// Queue pool sequence `seq` (from `source`) for sending; past `max` queued, the oldest envelope of
    /// the longest queue is dropped. Returns the number dropped (0 or 1).
    pub fn enqueue(&mut self, source: u64, seq: u64, max: usize) -> usize {
        self.queue.entry(source).or_default().push_back(seq);
        self.queued += 1;
        if self.queued <= max.max(1) {
            return 0;
        }
        let longest = self
            .queue
            .iter()
            .max_by(|a, b| a.1.len().cmp(&b.1.len()).then(b.0.cmp(a.0)))
            .map(|(s, _)| *s);
        if let Some(q) = longest.and_then(|s| self.queue.get_mut(&s)) {
            q.pop_front();
            self.queued -= 1;
        }
        self.queue.retain(|_, q| !q.is_empty());
        1
    }

    /// Envelopes queued for sending.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Take queued sequence numbers round-robin across sources while `take` accepts them: `take(seq)`
    /// returns `Some(true)` to send, `Some(false)` to skip (gone from the pool or no longer wanted) and
    /// `None` when the budget is spent (the sequence stays queued).
    pub fn dequeue(&mut self, mut take: impl FnMut(u64) -> Option<bool>) -> Vec<u64> {
        let mut out = Vec::new();
        // One source (the common case): its queue in order, without the round-robin bookkeeping.
        if self.queue.len() == 1 {
            if let Some((&src, q)) = self.queue.iter_mut().next() {
                while let Some(&seq) = q.front() {
                    let Some(send) = take(seq) else { break };
                    q.pop_front();
                    self.queued -= 1;
                    self.served = src;
                    if send {
                        out.push(seq);
                    }
                }
            }
            self.queue.retain(|_, q| !q.is_empty());
            return out;
        }
        'outer: while self.queued > 0 {
            let sources: Vec<u64> = self
                .queue
                .range(self.served.saturating_add(1)..)
                .chain(self.queue.range(..=self.served))
                .map(|(s, _)| *s)
                .collect();
            for src in sources {
                let Some(q) = self.queue.get_mut(&src) else {
                    continue;
                };
                let Some(&seq) = q.front() else { continue };
                match take(seq) {
                    None => break 'outer,
                    Some(send) => {
                        q.pop_front();
                        self.queued -= 1;
                        self.served = src;
                        if send {
                            out.push(seq);
                        }
                    }
                }
            }
            self.queue.retain(|_, q| !q.is_empty());
        }
        out
    }

    /// True once the Status exchange is done.
    pub fn is_active(&self) -> bool {
        self.state == PeerState::Active
    }

    /// Record the remote's Status.
    pub fn set_status(&mut self, options: StatusOptions) {
        self.remote = options.with_defaults();
        self.interest = self
            .remote
            .topic_interest
            .as_ref()
            .map(|t| t.iter().copied().collect());
        self.state = PeerState::Active;
    }

    /// Record a shh/6 Status.
    pub fn set_whisper_status(&mut self, s: &WhisperStatus) {
        self.set_status(StatusOptions {
            pow_requirement: Some(s.pow_requirement),
            bloom: Some(s.bloom),
            light_node: Some(s.light_node),
            confirmations: Some(s.confirmations),
            packet_rate_limits: Some(s.rate_limits),
            topic_interest: None,
            bytes_rate_limits: None,
        });
    }

    /// Apply a Status Update; returns true if the interest changed (the broadcast cycle then re-scans).
    pub fn update_status(&mut self, u: &StatusOptions) -> bool {
        let before = (self.remote.bloom, self.remote.topic_interest.clone());
        self.remote.update(u);
        self.interest = self
            .remote
            .topic_interest
            .as_ref()
            .map(|t| t.iter().copied().collect());
        (self.remote.bloom, self.remote.topic_interest.clone()) != before
    }

    /// The remote's PoW requirement.
    pub fn pow_requirement(&self) -> f64 {
        self.remote
            .pow_requirement
            .unwrap_or(super::options::DEFAULT_POW_REQUIREMENT)
    }

    /// True if the remote wants envelopes on `topic` (topic interest if set, else bloom).
    pub fn wants(&self, topic: &Topic) -> bool {
        match &self.interest {
            Some(topics) => topics.contains(topic),
            None => self.remote.bloom.unwrap_or(Bloom::FULL).matches_topic(topic),
        }
    }

    /// True if the remote is a light node.
    pub fn is_light(&self) -> bool {
        self.remote.light_node.unwrap_or(false)
    }

    /// Mark `hash` as known to this peer.
    pub fn mark_known(&mut self, hash: [u8; 32]) {
        self.known.insert(hash);
    }

    /// True if this peer knows `hash`.
    pub fn knows(&self, hash: &[u8; 32]) -> bool {
        !self.known.is_empty() && self.known.contains(hash)
    }

    /// Forget hashes that left the pool (keeps `known` bounded by the pool).
    pub fn forget(&mut self, hash: &[u8; 32]) {
        self.known.remove(hash);
    }

    /// Number of known hashes.
    pub fn known_len(&self) -> usize {
        self.known.len()
    }

    /// Count a packet of `envelopes` envelopes and `bytes` bytes against the per-second limits.
    /// Returns false if it exceeds them (the packet is then dropped and a violation counted).
    pub fn admit(
        &mut self,
        now: Timestamp,
        envelopes: u64,
        bytes: u64,
        max_envelopes: u64,
        max_bytes: u64,
    ) -> bool {
        if now.saturating_duration_since(self.window_start).as_millis() >= 1000 {
            self.window_start = now;
            self.window_envelopes = 0;
            self.window_bytes = 0;
        }
        let e = self.window_envelopes + envelopes;
        let b = self.window_bytes + bytes;
        if (max_envelopes > 0 && e > max_envelopes) || (max_bytes > 0 && b > max_bytes) {
            self.rate_violations += 1;
            return false;
        }
        self.window_envelopes = e;
        self.window_bytes = b;
        true
    }

    /// Count one fault; returns the number of faults in the current window of `window_ms`.
    pub fn fault(&mut self, now: Timestamp, window_ms: u64) -> u32 {
        if now
            .saturating_duration_since(self.misbehaviour_window)
            .as_millis() as u64
            >= window_ms
        {
            self.misbehaviour_window = now;
            self.misbehaviour = 0;
        }
        self.misbehaviour += 1;
        self.misbehaviour
    }

    /// Remember a batch we sent, for matching confirmations.
    pub fn record_batch(&mut self, batch_hash: [u8; 32], hashes: Vec<[u8; 32]>) {
        if self.sent_batches.len() >= MAX_SENT_BATCHES {
            self.sent_batches.pop_front();
        }
        self.sent_batches.push_back((batch_hash, hashes));
    }

    /// Take the envelope hashes of a batch we sent, if remembered.
    pub fn take_batch(&mut self, batch_hash: &[u8; 32]) -> Option<Vec<[u8; 32]>> {
        let i = self.sent_batches.iter().position(|(h, _)| h == batch_hash)?;
        self.sent_batches.remove(i).map(|(_, v)| v)
    }
}
