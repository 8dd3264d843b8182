//! The envelope pool (docs/protocol/waku.md §7–§8): every live envelope this node holds for relaying,
//! de-duplicated by hash, dropped exactly when it expires, and bounded in bytes and count.
//!
//! Sources: every envelope is charged to the source it came from (the node passes the peer's IP group,
//! or the peer, or [`LOCAL_SOURCE`] for its own posts; [`Pool::insert`] uses source 0). With a share set
//! ([`Pool::set_source_share`]), no source holds more than that fraction of either cap: past it, the
//! source's own envelope closest to expiry makes room.
//!
//! Eviction at the cap: the envelope closest to expiry *of the source holding the most bytes* goes first,
//! so a flood from one source (however long its TTLs) gives way to envelopes from every other source:
//! an honest short-lived envelope is never starved by a pool full of someone else's long-lived ones.
//! Within a source, the envelope closest to expiry goes first (it has the least life left to be useful),
//! ties broken by arrival so the choice is deterministic. When the largest source is the inserting one,
//! an envelope that would itself be its first to go is refused instead ([`Insert::Full`]).
//!
//! Entries are keyed by the envelope's PoW digest ([`super::envelope::Stamp::id`]), which identifies the
//! envelope as well as its hash does and is computed anyway to check PoW. Each entry keeps the envelope's
//! RLP encoding, once, in an allocation of exactly its size, beside the few fields the relay reads without
//! decoding (id, topic, expiry, PoW, source); the envelope itself is decoded from it on demand
//! ([`Entry::envelope`]), so relaying never re-encodes or re-hashes.
//!
//! Memory: entries sit in one ring buffer in arrival order (a removed entry leaves a hole until the
//! holes are a quarter of the buffer, then the buffer is compacted), with a hash index from id to arrival
//! number and, per source, an ordered set of `(expiry, arrival)`; the sources' earliest expiries form
//! a small set of their own, so expiry needs no global index.
//!
//! Accounting: each envelope is charged `len(RLP) + ENTRY_OVERHEAD` bytes, where the overhead is what a
//! counting allocator measures per envelope for the ring slot, the index and the expiry set (the `waku`
//! bench prints both).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::rng::{SeededHashMap, SeededState};

use super::envelope::Envelope;
use super::topic::Topic;
use super::WakuError;

/// Bytes charged per envelope on top of its RLP: its ring slot (80 bytes, plus the ring's spare capacity),
/// its index entry (40 bytes and a control byte, plus the table's spare capacity) and its `(expiry,
/// arrival)` in its source's ordered set. The `waku` bench's counting allocator measures 193 bytes per
/// envelope at 100,000 and 200,000 envelopes (the ring and the table grow by doubling, so this varies
/// with the count); charged rounded up.
pub const ENTRY_OVERHEAD: usize = 196;

/// The source of the node's own posts.
pub const LOCAL_SOURCE: u64 = u64::MAX;

/// Pool limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Total bytes charged (see module docs). Default: 256 MiB.
    pub max_bytes: usize,
    /// Number of envelopes. Default: 200,000.
    pub max_envelopes: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_bytes: 256 << 20,
            max_envelopes: 200_000,
        }
    }
}

/// Outcome of [`Pool::insert`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insert {
    /// New; stored.
    New,
    /// Already held.
    Duplicate,
    /// Already expired at `now`.
    Expired,
    /// The pool is full and this envelope would be the first evicted.
    Full,
}

/// One pooled envelope.
#[derive(Debug)]
pub struct Entry {
    /// Its id (the PoW digest).
    pub id: [u8; 32],
    /// Its RLP encoding, as sent on the wire (empty: the slot of a removed envelope).
    pub wire: Box<[u8]>,
    /// Its PoW (no clock-skew adjustment).
    pub pow: f64,
    /// The source it came from (see the module docs).
    pub source: u64,
    /// Its arrival number.
    pub seq: u64,
    /// Its expiry (UNIX seconds).
    pub expiry: u32,
    /// Its topic.
    pub topic: Topic,
}

impl Entry {
    /// The envelope, decoded from [`Entry::wire`].
    pub fn envelope(&self) -> Result<Envelope, WakuError> {
        Envelope::decode_bytes(&self.wire)
    }

    /// Bytes charged for it.
    fn charge(&self) -> usize {
        self.wire.len() + ENTRY_OVERHEAD
    }

    fn is_removed(&self) -> bool {
        self.wire.is_empty()
    }
}

/// What one source holds.
#[derive(Debug, Default)]
struct SourceUse {
    bytes: usize,
    by_expiry: BTreeSet<(u32, u64)>,
}

/// The pool. See the module docs.
///
/// Entries live in arrival order (`seq`), so the relay loop walks them without hashing; `index` maps ids
/// to sequence numbers for de-duplication.
#[derive(Debug, Default)]
pub struct Pool {
    config: PoolConfig,
    /// Entries by ascending `seq`, removed ones left as holes (see the module docs).
    entries: VecDeque<Entry>,
    /// Holes in `entries`.
    holes: usize,
    index: SeededHashMap<[u8; 32], u64>,
    /// Each source's earliest `(expiry, source)`.
    heads: BTreeSet<(u32, u64)>,
    bytes: usize,
    next_seq: u64,
    sources: BTreeMap<u64, SourceUse>,
    /// Share of either cap one source may hold, in percent (100: no share).
    share_percent: u8,
}

impl Pool {
    /// An empty pool whose id index is keyed by `hasher` (see [`SeededState`]).
    pub fn new(config: PoolConfig, hasher: SeededState) -> Self {
        Pool {
            config,
            index: SeededHashMap::with_hasher(hasher),
            share_percent: 100,
            ..Default::default()
        }
    }

    /// Let no source hold more than `percent` (1–100) of either cap. Default 100 (no share).
    pub fn set_source_share(&mut self, percent: u8) {
        self.share_percent = percent.clamp(1, 100);
    }

    /// Envelopes and bytes charged to `source`.
    pub fn source_usage(&self, source: u64) -> (usize, usize) {
        self.sources
            .get(&source)
            .map_or((0, 0), |u| (u.by_expiry.len(), u.bytes))
    }

    /// The position of `seq` in `entries`: `seq - first seq` until the ring is compacted, found by
    /// binary search after that.
    fn position(&self, seq: u64) -> Option<usize> {
        let first = self.entries.front()?.seq;
        let guess = usize::try_from(seq.checked_sub(first)?).ok()?;
        if self.entries.get(guess).is_some_and(|e| e.seq == seq) {
            return Some(guess);
        }
        self.entries.binary_search_by_key(&seq, |e| e.seq).ok()
    }

    /// The envelope with sequence number `seq`.
    pub fn get_seq(&self, seq: u64) -> Option<&Entry> {
        self.position(seq)
            .and_then(|i| self.entries.get(i))
            .filter(|e| !e.is_removed())
    }

    /// The source holding the most bytes (ties: the lowest id).
    fn largest_source(&self) -> Option<u64> {
        self.sources
            .iter()
            .max_by(|a, b| a.1.bytes.cmp(&b.1.bytes).then(b.0.cmp(a.0)))
            .map(|(s, _)| *s)
    }

    /// Evict `source`'s envelope closest to expiry unless `expiry` (the newcomer's, from the same source)
    /// is sooner still; returns false when the newcomer should be refused.
    fn evict_own(&mut self, source: u64, expiry: u32) -> bool {
        let first = self
            .sources
            .get(&source)
            .and_then(|u| u.by_expiry.first().copied());
        match first {
            // Ties go against the older envelope.
            Some((exp, victim)) if exp <= expiry => {
                self.remove_seq(victim);
                true
            }
            _ => false,
        }
    }

    /// Number of envelopes held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Bytes charged.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The limits.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// True if the pool holds the envelope with id `id`.
    pub fn contains(&self, id: &[u8; 32]) -> bool {
        self.index.contains_key(id)
    }

    /// The envelope with id `id` (decoded from its RLP).
    pub fn get(&self, id: &[u8; 32]) -> Option<Envelope> {
        self.index
            .get(id)
            .and_then(|s| self.get_seq(*s))
            .and_then(|e| e.envelope().ok())
    }

    /// The sequence number the next insert gets; envelopes with `seq >= mark` arrived after `mark`.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Envelopes in arrival order, starting at sequence `from`.
    pub fn iter_from(&self, from: u64) -> impl Iterator<Item = (u64, &[u8; 32], &Entry)> + '_ {
        let start = self.entries.partition_point(|e| e.seq < from);
        self.entries
            .range(start..)
            .filter(|e| !e.is_removed())
            .map(|e| (e.seq, &e.id, e))
    }

    /// Store `envelope` (with id `id`, see the module docs) unless it is a duplicate, expired at
    /// `now_secs`, or the pool is full of envelopes that live longer.
    pub fn insert(&mut self, id: [u8; 32], envelope: Envelope, pow: f64, now_secs: u64) -> Insert {
        self.insert_from(id, envelope, pow, now_secs, 0)
    }

    /// [`Pool::insert`] charging the envelope to `source` (see the module docs for the share and the
    /// eviction order).
    pub fn insert_from(
        &mut self,
        id: [u8; 32],
        envelope: Envelope,
        pow: f64,
        now_secs: u64,
        source: u64,
    ) -> Insert {
        if self.index.contains_key(&id) {
            return Insert::Duplicate;
        }
        if u64::from(envelope.expiry) < now_secs {
            return Insert::Expired;
        }
        let wire = envelope.encode().into_boxed_slice();
        let charge = wire.len() + ENTRY_OVERHEAD;
        if charge > self.config.max_bytes || self.config.max_envelopes == 0 {
            return Insert::Full;
        }
        // The source's share first: past it, the source makes room itself.
        if self.share_percent < 100 {
            let share_bytes = percent_of(self.config.max_bytes, self.share_percent);
            let share_count = percent_of(self.config.max_envelopes, self.share_percent).max(1);
            loop {
                let (count, bytes) = self.source_usage(source);
                if bytes + charge <= share_bytes.max(charge) && count < share_count {
                    break;
                }
                if !self.evict_own(source, envelope.expiry) {
                    return Insert::Full;
                }
            }
        }
        while self.bytes + charge > self.config.max_bytes || self.len() >= self.config.max_envelopes {
            let Some(victim_source) = self.largest_source() else {
                break;
            };
            if victim_source == source {
                if !self.evict_own(source, envelope.expiry) {
                    return Insert::Full;
                }
            } else {
                let first = self
                    .sources
                    .get(&victim_source)
                    .and_then(|u| u.by_expiry.first().copied());
                match first {
                    Some((_, victim)) => {
                        self.remove_seq(victim);
                    }
                    None => {
                        self.sources.remove(&victim_source);
                    }
                }
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let expiry = envelope.expiry;
        let used = self.sources.entry(source).or_default();
        let old_head = used.by_expiry.first().map(|(e, _)| *e);
        used.bytes += charge;
        used.by_expiry.insert((expiry, seq));
        if old_head.is_none_or(|old| expiry < old) {
            if let Some(old) = old_head {
                self.heads.remove(&(old, source));
            }
            self.heads.insert((expiry, source));
        }
        self.index.insert(id, seq);
        self.bytes += charge;
        self.entries.push_back(Entry {
            id,
            wire,
            pow,
            source,
            seq,
            expiry,
            topic: envelope.topic,
        });
        Insert::New
    }

    /// Remove the envelope with sequence `seq`; returns its id.
    fn remove_seq(&mut self, seq: u64) -> Option<[u8; 32]> {
        let i = self.position(seq)?;
        let e = self.entries.get_mut(i).filter(|e| !e.is_removed())?;
        let (id, charge, source, expiry) = (e.id, e.charge(), e.source, e.expiry);
        e.wire = Box::default();
        self.holes += 1;
        self.index.remove(&id);
        self.bytes -= charge;
        if let Some(u) = self.sources.get_mut(&source) {
            u.bytes -= charge;
            let was_head = u.by_expiry.first() == Some(&(expiry, seq));
            u.by_expiry.remove(&(expiry, seq));
            let new_head = u.by_expiry.first().map(|(e, _)| *e);
            if u.by_expiry.is_empty() {
                self.sources.remove(&source);
            }
            if was_head && new_head != Some(expiry) {
                self.heads.remove(&(expiry, source));
                if let Some(h) = new_head {
                    self.heads.insert((h, source));
                }
            }
        }
        self.tidy();
        Some(id)
    }

    /// Drop the holes at either end, and compact the ring once a quarter of it is holes.
    fn tidy(&mut self) {
        while self.entries.front().is_some_and(Entry::is_removed) {
            self.entries.pop_front();
            self.holes -= 1;
        }
        while self.entries.back().is_some_and(Entry::is_removed) {
            self.entries.pop_back();
            self.holes -= 1;
        }
        if self.holes > 16 && self.holes * 4 > self.entries.len() {
            self.entries.retain(|e| !e.is_removed());
            self.holes = 0;
        }
        if self.entries.capacity() > 64 && self.entries.capacity() / 4 > self.entries.len() {
            self.entries.shrink_to(self.entries.len() * 2);
        }
    }

    /// Remove one envelope.
    pub fn remove(&mut self, id: &[u8; 32]) -> Option<Envelope> {
        let seq = *self.index.get(id)?;
        let env = self.get_seq(seq).and_then(|e| e.envelope().ok());
        self.remove_seq(seq);
        env
    }

    /// Drop every envelope whose expiry is before `now_secs`; returns their ids (by expiry, then
    /// arrival).
    pub fn expire(&mut self, now_secs: u64) -> Vec<[u8; 32]> {
        let mut gone = Vec::new();
        while let Some(&(exp, source)) = self.heads.first() {
            if u64::from(exp) >= now_secs {
                break;
            }
            let first = self
                .sources
                .get(&source)
                .and_then(|u| u.by_expiry.first().copied());
            match first.and_then(|(e, seq)| Some((e, seq, self.remove_seq(seq)?))) {
                Some(g) => gone.push(g),
                None => {
                    self.heads.pop_first();
                }
            }
        }
        gone.sort_unstable_by_key(|(e, s, _)| (*e, *s));
        gone.into_iter().map(|(_, _, id)| id).collect()
    }

    /// The UNIX second at which the next envelope expires (it is dropped once `now` passes it).
    pub fn next_expiry(&self) -> Option<u32> {
        self.heads.first().map(|(e, _)| *e)
    }
}
/// `percent`% of `cap`, rounded down, without overflow (and without the `cap / 100` that made a small
/// cap's share zero).
fn percent_of(cap: usize, percent: u8) -> usize {
    (cap as u128 * u128::from(percent) / 100) as usize
}

#[cfg(test)]
mod tests;
