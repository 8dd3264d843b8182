//! Topics and the 64-byte bloom filter (docs/protocol/waku.md §4).
//!
//! The wire bloom of a topic is computed the way go-ethereum and status-go do it: each of the three bit
//! indices is *assigned* into its byte (`bloom[n/8] = 1 << (n%8)`) rather than ORed, so when two indices
//! fall in the same byte only the last survives. We use that form for envelope samples (its bits are a
//! subset of the OR form, so it matches filters built either way) and the OR form when advertising our
//! own interest (a superset, so Go peers' samples still match).

use core::fmt;

/// A 4-byte Waku topic.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Topic(pub [u8; 4]);

impl Topic {
    /// `keccak256(s)[0..4]`, as Status derives every topic from a string.
    pub fn from_str_hash(s: &str) -> Topic {
        let h = crate::crypto::keccak256(s.as_bytes());
        Topic([h[0], h[1], h[2], h[3]])
    }

    /// The bloom of this topic as Go computes it (assignment; 1 to 3 bits set).
    pub fn bloom_go(&self) -> Bloom {
        let mut b = [0u8; BLOOM_LEN];
        for j in 0..3 {
            let n = self.bit_index(j);
            b[n / 8] = 1 << (n % 8);
        }
        Bloom(b)
    }

    /// The bloom of this topic with the three bits ORed (exactly 3 bits unless indices coincide).
    pub fn bloom_or(&self) -> Bloom {
        let mut b = [0u8; BLOOM_LEN];
        for j in 0..3 {
            let n = self.bit_index(j);
            b[n / 8] |= 1 << (n % 8);
        }
        Bloom(b)
    }

    fn bit_index(&self, j: usize) -> usize {
        let mut n = usize::from(self.0[j]);
        if self.0[3] & (1 << j) != 0 {
            n += 256;
        }
        n
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Topic({})", self)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Length of a bloom filter in bytes.
pub const BLOOM_LEN: usize = 64;

/// A 512-bit bloom filter over topics.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bloom(pub [u8; BLOOM_LEN]);

impl Bloom {
    /// Matches every topic (a full node).
    pub const FULL: Bloom = Bloom([0xff; BLOOM_LEN]);
    /// Matches nothing.
    pub const EMPTY: Bloom = Bloom([0; BLOOM_LEN]);

    /// Parse a bloom as carried in Status options: 64 bytes, or empty (meaning full).
    pub fn from_wire(b: &[u8]) -> Option<Bloom> {
        match b.len() {
            0 => Some(Bloom::FULL),
            BLOOM_LEN => {
                let mut out = [0u8; BLOOM_LEN];
                out.copy_from_slice(b);
                Some(Bloom(out))
            }
            _ => None,
        }
    }

    /// OR-aggregate the OR-form blooms of `topics` (what a node advertises for its filters).
    pub fn of_topics<'a>(topics: impl IntoIterator<Item = &'a Topic>) -> Bloom {
        let mut b = Bloom::EMPTY;
        for t in topics {
            b.or_with(&t.bloom_or());
        }
        b
    }

    /// `self |= other`.
    pub fn or_with(&mut self, other: &Bloom) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= b;
        }
    }

    /// True if every bit of `sample` is set in this filter (`(f | s) == f`).
    pub fn matches(&self, sample: &Bloom) -> bool {
        self.0.iter().zip(sample.0.iter()).all(|(f, s)| f | s == *f)
    }

    /// True if this filter accepts `topic` (its Go-form bloom is contained).
    pub fn matches_topic(&self, topic: &Topic) -> bool {
        self.matches(&topic.bloom_go())
    }

    /// True if every bit is set.
    pub fn is_full(&self) -> bool {
        self.0.iter().all(|b| *b == 0xff)
    }
}

impl fmt::Debug for Bloom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_full() {
            return f.write_str("Bloom(full)");
        }
        f.write_str("Bloom(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests;
