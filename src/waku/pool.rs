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
//! RLP encoding (its `data` is a slice of it, so nothing is stored twice) and its PoW, so relaying never
//! re-encodes or re-hashes.
//!
//! Accounting: each envelope is charged `len(RLP) + ENTRY_OVERHEAD` bytes, where the overhead is a
//! conservative estimate of the map entries and bookkeeping per envelope.

use std::collections::{BTreeMap, BTreeSet};

use crate::rng::{SeededHashMap, SeededState};

use super::envelope::Envelope;

/// Bytes charged per envelope on top of its RLP: the entry, the map and index nodes, and the shared buffer
/// header. Measured at about 410 bytes (the `waku` bench counts real heap use); charged conservatively.
pub const ENTRY_OVERHEAD: usize = 448;

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
    /// The envelope (its `data` shares the `wire` buffer).
    pub envelope: Envelope,
    /// Its RLP encoding, as sent on the wire.
    pub wire: bytes::Bytes,
    /// Its PoW (no clock-skew adjustment).
    pub pow: f64,
    /// The source it came from (see the module docs).
    pub source: u64,
    charge: usize,
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
    entries: BTreeMap<u64, Entry>,
    index: SeededHashMap<[u8; 32], u64>,
    by_expiry: BTreeSet<(u32, u64)>,
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

    /// The envelope with sequence number `seq`.
    pub fn get_seq(&self, seq: u64) -> Option<&Entry> {
        self.entries.get(&seq)
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
        self.entries.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
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

    /// The envelope with id `id`.
    pub fn get(&self, id: &[u8; 32]) -> Option<&Envelope> {
        self.index
            .get(id)
            .and_then(|s| self.entries.get(s))
            .map(|e| &e.envelope)
    }

    /// The sequence number the next insert gets; envelopes with `seq >= mark` arrived after `mark`.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Envelopes in arrival order, starting at sequence `from`.
    pub fn iter_from(&self, from: u64) -> impl Iterator<Item = (u64, &[u8; 32], &Entry)> + '_ {
        self.entries.range(from..).map(|(seq, e)| (*seq, &e.id, e))
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
        let wire = bytes::Bytes::from(envelope.encode());
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
        while self.bytes + charge > self.config.max_bytes || self.entries.len() >= self.config.max_envelopes {
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
        self.by_expiry.insert((envelope.expiry, seq));
        let used = self.sources.entry(source).or_default();
        used.bytes += charge;
        used.by_expiry.insert((envelope.expiry, seq));
        self.index.insert(id, seq);
        self.bytes += charge;
        // Share the data with the wire buffer: it sits just before the nonce's encoding.
        let nonce_len = envelope.nonce_rlp_len();
        let start = wire.len() - nonce_len - envelope.data.len();
        let mut envelope = envelope;
        envelope.data = wire.slice(start..start + envelope.data.len());
        self.entries.insert(
            seq,
            Entry {
                id,
                envelope,
                wire,
                pow,
                source,
                charge,
            },
        );
        Insert::New
    }

    fn remove_seq(&mut self, seq: u64) -> Option<Entry> {
        let e = self.entries.remove(&seq)?;
        self.index.remove(&e.id);
        self.by_expiry.remove(&(e.envelope.expiry, seq));
        self.bytes -= e.charge;
        if let Some(u) = self.sources.get_mut(&e.source) {
            u.bytes -= e.charge;
            u.by_expiry.remove(&(e.envelope.expiry, seq));
            if u.by_expiry.is_empty() {
                self.sources.remove(&e.source);
            }
        }
        Some(e)
    }

    /// Remove one envelope.
    pub fn remove(&mut self, id: &[u8; 32]) -> Option<Envelope> {
        let seq = *self.index.get(id)?;
        self.remove_seq(seq).map(|e| e.envelope)
    }

    /// Drop every envelope whose expiry is before `now_secs`; returns their ids.
    pub fn expire(&mut self, now_secs: u64) -> Vec<[u8; 32]> {
        let mut gone = Vec::new();
        while let Some(&(exp, seq)) = self.by_expiry.first() {
            if u64::from(exp) >= now_secs {
                break;
            }
            match self.remove_seq(seq) {
                Some(e) => gone.push(e.id),
                None => {
                    self.by_expiry.pop_first();
                }
            }
        }
        gone
    }

    /// The UNIX second at which the next envelope expires (it is dropped once `now` passes it).
    pub fn next_expiry(&self) -> Option<u32> {
        self.by_expiry.first().map(|(e, _)| *e)
    }
}

/// `percent`% of `cap`, rounded down, without overflow (and without the `cap / 100` that made a small
/// cap's share zero).
fn percent_of(cap: usize, percent: u8) -> usize {
    (cap as u128 * u128::from(percent) / 100) as usize
}

#[cfg(test)]
mod tests;
