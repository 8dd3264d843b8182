//! The envelope pool (docs/protocol/waku.md §7–§8): every live envelope this node holds for relaying,
//! de-duplicated by hash, dropped exactly when it expires, and bounded in bytes and count.
//!
//! Eviction at the cap: the envelope closest to expiry goes first (it has the least life left to be
//! useful), ties broken by hash so the choice is deterministic. An envelope that would itself be the
//! first to go is refused instead ([`Insert::Full`]).
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
    charge: usize,
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
}

impl Pool {
    /// An empty pool whose id index is keyed by `hasher` (see [`SeededState`]).
    pub fn new(config: PoolConfig, hasher: SeededState) -> Self {
        Pool {
            config,
            index: SeededHashMap::with_hasher(hasher),
            ..Default::default()
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
        while self.bytes + charge > self.config.max_bytes || self.entries.len() >= self.config.max_envelopes {
            let Some(&(exp, victim)) = self.by_expiry.first() else {
                break;
            };
            // Ties go against the older envelope.
            if exp > envelope.expiry {
                return Insert::Full;
            }
            self.remove_seq(victim);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_expiry.insert((envelope.expiry, seq));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::waku::Topic;
    use bytes::Bytes;

    fn env(expiry: u32, n: u8, len: usize) -> ([u8; 32], Envelope) {
        let e = Envelope {
            expiry,
            ttl: 10,
            topic: Topic([n; 4]),
            data: Bytes::from(vec![n; len]),
            nonce: 0,
        };
        (e.hash(), e)
    }

    #[test]
    fn dedup_expiry_and_order() {
        let mut p = Pool::new(PoolConfig::default(), SeededState::default());
        let (h1, e1) = env(100, 1, 10);
        let (h2, e2) = env(50, 2, 10);
        assert_eq!(p.insert(h1, e1.clone(), 0.0, 10), Insert::New);
        assert_eq!(
            p.get(&h1),
            Some(&e1),
            "the shared-buffer envelope equals the original"
        );
        assert_eq!(
            p.iter_from(0).next().map(|(_, _, e)| e.wire.to_vec()),
            Some(e1.encode())
        );
        assert_eq!(p.insert(h1, e1, 0.0, 10), Insert::Duplicate);
        assert_eq!(p.insert(h2, e2, 0.0, 10), Insert::New);
        let (h3, e3) = env(5, 3, 10);
        assert_eq!(p.insert(h3, e3, 0.0, 10), Insert::Expired);
        assert_eq!(p.next_expiry(), Some(50));
        assert_eq!(
            p.iter_from(0).map(|(_, h, _)| *h).collect::<Vec<_>>(),
            vec![h1, h2]
        );
        assert_eq!(p.iter_from(1).count(), 1);
        assert!(
            p.expire(50).is_empty(),
            "expires strictly after its expiry second"
        );
        assert_eq!(p.expire(51), vec![h2]);
        assert_eq!(p.len(), 1);
        assert_eq!(
            p.bytes(),
            p.get(&h1).map(|e| e.encode().len()).unwrap() + ENTRY_OVERHEAD
        );
    }

    #[test]
    fn cap_evicts_soonest_expiry_first() {
        // Room for three 100-byte envelopes (plus a byte for a longer expiry encoding).
        let charge = env(0, 0, 100).1.encode().len() + ENTRY_OVERHEAD;
        let mut p = Pool::new(
            PoolConfig {
                max_bytes: 3 * charge + 8,
                max_envelopes: 10,
            },
            SeededState::default(),
        );
        let hs: Vec<_> = (0..3u8)
            .map(|i| {
                let (h, e) = env(100 + u32::from(i), i, 100);
                assert_eq!(p.insert(h, e, 0.0, 0), Insert::New);
                h
            })
            .collect();
        let (h, e) = env(200, 9, 100);
        assert_eq!(p.insert(h, e, 0.0, 0), Insert::New);
        assert!(!p.contains(&hs[0]) && p.contains(&hs[1]) && p.contains(&h));
        let (h, e) = env(50, 8, 100);
        assert_eq!(p.insert(h, e, 0.0, 0), Insert::Full, "would be the first to go");
        assert!(p.bytes() <= p.config().max_bytes);
        let mut q = Pool::new(
            PoolConfig {
                max_bytes: 1 << 20,
                max_envelopes: 2,
            },
            SeededState::default(),
        );
        for i in 0..5u8 {
            let (h, e) = env(100 + u32::from(i), i, 1);
            q.insert(h, e, 0.0, 0);
        }
        assert_eq!(q.len(), 2);
    }
}
