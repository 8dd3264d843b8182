//! The envelope pool (waku.md §7–§8): every live envelope this node holds for relaying, de-duplicated by
//! hash, dropped exactly when it expires, and bounded in bytes and count.
//!
//! Eviction at the cap: the envelope closest to expiry goes first (it has the least life left to be
//! useful), ties broken by hash so the choice is deterministic. An envelope that would itself be the
//! first to go is refused instead ([`Insert::Full`]).
//!
//! Accounting: each envelope is charged `len(data) + ENTRY_OVERHEAD` bytes, where the overhead is a
//! conservative estimate of the map entries and bookkeeping per envelope.

use std::collections::{BTreeSet, HashMap};

use super::envelope::Envelope;

/// Bytes charged per envelope on top of its data (struct, two index entries, hash keys).
pub const ENTRY_OVERHEAD: usize = 192;

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

#[derive(Debug)]
struct Entry {
    envelope: Envelope,
    charge: usize,
    /// Insertion sequence number: the broadcast cycle sends envelopes in arrival order.
    seq: u64,
}

/// The pool. See the module docs.
#[derive(Debug, Default)]
pub struct Pool {
    config: PoolConfig,
    entries: HashMap<[u8; 32], Entry>,
    by_expiry: BTreeSet<(u32, [u8; 32])>,
    by_seq: BTreeSet<(u64, [u8; 32])>,
    bytes: usize,
    next_seq: u64,
}

impl Pool {
    /// An empty pool.
    pub fn new(config: PoolConfig) -> Self {
        Pool {
            config,
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

    /// True if the pool holds `hash`.
    pub fn contains(&self, hash: &[u8; 32]) -> bool {
        self.entries.contains_key(hash)
    }

    /// The envelope with `hash`.
    pub fn get(&self, hash: &[u8; 32]) -> Option<&Envelope> {
        self.entries.get(hash).map(|e| &e.envelope)
    }

    /// The sequence number the next insert gets; envelopes with `seq >= mark` arrived after `mark`.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Envelopes in arrival order, starting at sequence `from`.
    pub fn iter_from(&self, from: u64) -> impl Iterator<Item = (u64, &[u8; 32], &Envelope)> + '_ {
        self.by_seq
            .range((from, [0u8; 32])..)
            .filter_map(|(seq, h)| self.entries.get(h).map(|e| (*seq, h, &e.envelope)))
    }

    /// Store `envelope` (with hash `hash`) unless it is a duplicate, expired at `now_secs`, or the pool is
    /// full of envelopes that live longer.
    pub fn insert(&mut self, hash: [u8; 32], envelope: Envelope, now_secs: u64) -> Insert {
        if self.entries.contains_key(&hash) {
            return Insert::Duplicate;
        }
        if u64::from(envelope.expiry) < now_secs {
            return Insert::Expired;
        }
        let charge = envelope.data.len() + ENTRY_OVERHEAD;
        if charge > self.config.max_bytes || self.config.max_envelopes == 0 {
            return Insert::Full;
        }
        while self.bytes + charge > self.config.max_bytes || self.entries.len() >= self.config.max_envelopes {
            let Some(&(exp, victim)) = self.by_expiry.first() else {
                break;
            };
            if (exp, victim) >= (envelope.expiry, hash) {
                return Insert::Full;
            }
            self.remove(&victim);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_expiry.insert((envelope.expiry, hash));
        self.by_seq.insert((seq, hash));
        self.bytes += charge;
        self.entries.insert(
            hash,
            Entry {
                envelope,
                charge,
                seq,
            },
        );
        Insert::New
    }

    /// Remove one envelope.
    pub fn remove(&mut self, hash: &[u8; 32]) -> Option<Envelope> {
        let e = self.entries.remove(hash)?;
        self.by_expiry.remove(&(e.envelope.expiry, *hash));
        self.by_seq.remove(&(e.seq, *hash));
        self.bytes -= e.charge;
        Some(e.envelope)
    }

    /// Drop every envelope whose expiry is before `now_secs`; returns their hashes.
    pub fn expire(&mut self, now_secs: u64) -> Vec<[u8; 32]> {
        let mut gone = Vec::new();
        while let Some(&(exp, h)) = self.by_expiry.first() {
            if u64::from(exp) >= now_secs {
                break;
            }
            self.remove(&h);
            gone.push(h);
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
        let mut p = Pool::new(PoolConfig::default());
        let (h1, e1) = env(100, 1, 10);
        let (h2, e2) = env(50, 2, 10);
        assert_eq!(p.insert(h1, e1.clone(), 10), Insert::New);
        assert_eq!(p.insert(h1, e1, 10), Insert::Duplicate);
        assert_eq!(p.insert(h2, e2, 10), Insert::New);
        let (h3, e3) = env(5, 3, 10);
        assert_eq!(p.insert(h3, e3, 10), Insert::Expired);
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
        assert_eq!(p.bytes(), 10 + ENTRY_OVERHEAD);
    }

    #[test]
    fn cap_evicts_soonest_expiry_first() {
        let mut p = Pool::new(PoolConfig {
            max_bytes: 3 * (100 + ENTRY_OVERHEAD),
            max_envelopes: 10,
        });
        let hs: Vec<_> = (0..3u8)
            .map(|i| {
                let (h, e) = env(100 + u32::from(i), i, 100);
                assert_eq!(p.insert(h, e, 0), Insert::New);
                h
            })
            .collect();
        let (h, e) = env(200, 9, 100);
        assert_eq!(p.insert(h, e, 0), Insert::New);
        assert!(!p.contains(&hs[0]) && p.contains(&hs[1]) && p.contains(&h));
        let (h, e) = env(50, 8, 100);
        assert_eq!(p.insert(h, e, 0), Insert::Full, "would be the first to go");
        assert!(p.bytes() <= p.config().max_bytes);
        let mut q = Pool::new(PoolConfig {
            max_bytes: 1 << 20,
            max_envelopes: 2,
        });
        for i in 0..5u8 {
            let (h, e) = env(100 + u32::from(i), i, 1);
            q.insert(h, e, 0);
        }
        assert_eq!(q.len(), 2);
    }
}
