//! The Waku/Whisper envelope and its proof of work (waku.md §2–§3).
//!
//! `envelope = RLP [expiry: u32, ttl: u32, topic: 4 bytes, data: bytes, nonce: u64]` with minimal
//! big-endian integers; decoding is strict (canonical integers, exactly five fields) like Go's RLP, so
//! re-encoding a decoded envelope gives back the received bytes and its hash.
//!
//! PoW is computed exactly as status-go does: `keccak256(RLP([expiry, ttl, topic, data]) ‖ nonce_be8)`,
//! `2^leading_zero_bits / len(short_rlp) / (ttl + diff)`. Sealing is a bounded, resumable search
//! ([`PowSealer`]): the caller gives an iteration budget per call, so the core never blocks or spawns.

use bytes::Bytes;
use rlp::{Rlp, RlpStream};
use sha3::{Digest, Keccak256};

use super::topic::{Bloom, Topic};
use super::WakuError;
use crate::crypto::keccak256;

/// Envelope header length used in size limits and PoW targeting (`20 + len(data)`).
pub const ENVELOPE_HEADER_LEN: usize = 20;

/// A Waku envelope.
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope {
    /// UNIX seconds when the envelope expires.
    pub expiry: u32,
    /// Time to live in seconds; `expiry - ttl` is the creation time.
    pub ttl: u32,
    /// The topic.
    pub topic: Topic,
    /// The encrypted message.
    pub data: Bytes,
    /// The PoW nonce.
    pub nonce: u64,
}

impl core::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Envelope")
            .field("expiry", &self.expiry)
            .field("ttl", &self.ttl)
            .field("topic", &self.topic)
            .field("data_len", &self.data.len())
            .field("nonce", &self.nonce)
            .finish()
    }
}

fn append_short(s: &mut RlpStream, e: &Envelope) {
    s.append(&e.expiry);
    s.append(&e.ttl);
    s.append(&&e.topic.0[..]);
    s.append(&&e.data[..]);
}

impl Envelope {
    /// RLP of the whole envelope.
    pub fn encode(&self) -> Vec<u8> {
        let mut s = RlpStream::new();
        self.append_to(&mut s);
        s.out().to_vec()
    }

    /// Append this envelope as one item of an enclosing RLP list.
    pub fn append_to(&self, s: &mut RlpStream) {
        s.begin_list(5);
        append_short(s, self);
        s.append(&self.nonce);
    }

    /// RLP of the first four fields (the PoW input prefix).
    pub fn short_rlp(&self) -> Vec<u8> {
        let mut s = RlpStream::new_list(4);
        append_short(&mut s, self);
        s.out().to_vec()
    }

    /// Decode one envelope from an RLP item.
    pub fn decode(r: &Rlp<'_>) -> Result<Envelope, WakuError> {
        let bad = |_| WakuError::MalformedEnvelope("bad RLP");
        if !r.is_list() || r.item_count().map_err(bad)? != 5 {
            return Err(WakuError::MalformedEnvelope("not a 5-field list"));
        }
        let topic = r.at(2).and_then(|t| t.data()).map_err(bad)?;
        let topic: [u8; 4] = topic
            .try_into()
            .map_err(|_| WakuError::MalformedEnvelope("topic is not 4 bytes"))?;
        let data = r.at(3).map_err(bad)?;
        if data.is_list() {
            return Err(WakuError::MalformedEnvelope("data is a list"));
        }
        Ok(Envelope {
            expiry: r.val_at(0).map_err(bad)?,
            ttl: r.val_at(1).map_err(bad)?,
            topic: Topic(topic),
            data: Bytes::copy_from_slice(data.data().map_err(bad)?),
            nonce: r.val_at(4).map_err(bad)?,
        })
    }

    /// Decode an envelope from its RLP bytes (no trailing bytes allowed).
    pub fn decode_bytes(bytes: &[u8]) -> Result<Envelope, WakuError> {
        let r = Rlp::new(bytes);
        let info = r
            .payload_info()
            .map_err(|_| WakuError::MalformedEnvelope("bad RLP"))?;
        if info.header_len + info.value_len != bytes.len() {
            return Err(WakuError::MalformedEnvelope("trailing bytes"));
        }
        Envelope::decode(&r)
    }

    /// The envelope hash: keccak256 of its RLP. Its identity for dedup, confirmations and mailservers.
    pub fn hash(&self) -> [u8; 32] {
        keccak256(&self.encode())
    }

    /// `20 + len(data)`: the size used for limits and PoW targeting.
    pub fn size(&self) -> usize {
        ENVELOPE_HEADER_LEN + self.data.len()
    }

    /// Creation time (`expiry - ttl`), in UNIX seconds.
    pub fn sent(&self) -> u32 {
        self.expiry.saturating_sub(self.ttl)
    }

    /// The bloom of the envelope's topic, Go form.
    pub fn bloom(&self) -> Bloom {
        self.topic.bloom_go()
    }

    /// Leading zero bits of the PoW hash.
    pub fn pow_bits(&self) -> u32 {
        let mut h = Keccak256::new();
        h.update(self.short_rlp());
        h.update(self.nonce.to_be_bytes());
        leading_zero_bits(&h.finalize().into())
    }

    /// The PoW value with no clock-skew adjustment.
    pub fn pow(&self) -> f64 {
        self.pow_with_diff(0)
    }

    /// The PoW value as a receiver at `now_secs` computes it: an envelope created in the future
    /// (`sent > now`) is judged with `diff = sent - now + 1`.
    pub fn pow_at(&self, now_secs: u64) -> f64 {
        let sent = u64::from(self.sent());
        let diff = if sent > now_secs { sent - now_secs + 1 } else { 0 };
        self.pow_with_diff(diff)
    }

    fn pow_with_diff(&self, diff: u64) -> f64 {
        let short_len = self.short_rlp().len() as f64;
        let bits = self.pow_bits();
        pow_value(bits, short_len, u64::from(self.ttl) + diff)
    }
}

/// `2^bits / len(short) / ttl` in f64, as Go computes it (a TTL of 0 gives +∞, as in Go).
fn pow_value(bits: u32, short_len: f64, ttl: u64) -> f64 {
    2f64.powi(bits as i32) / short_len / ttl as f64
}

/// Number of leading zero bits of a 32-byte big-endian value.
pub fn leading_zero_bits(h: &[u8; 32]) -> u32 {
    let mut bits = 0;
    for b in h {
        if *b == 0 {
            bits += 8;
        } else {
            bits += b.leading_zeros();
            break;
        }
    }
    bits
}

/// The leading-zero-bit target a sender aims for: `max(1, ceil(log2(pow_target · (20 + len(data)) · ttl)))`.
pub fn target_bits(pow_target: f64, size: usize, ttl: u32) -> u32 {
    let x = pow_target * size as f64 * f64::from(ttl);
    if !x.is_finite() || x <= 0.0 {
        return 1;
    }
    let b = x.log2().ceil();
    if b < 1.0 {
        1
    } else if b > 256.0 {
        256
    } else {
        b as u32
    }
}

/// A resumable PoW nonce search over an envelope.
///
/// Tries nonces 0, 1, 2, … and keeps the one with the most leading zero bits, stopping at the target.
/// The Keccak state after the short RLP is computed once and cloned per attempt.
#[derive(Clone)]
pub struct PowSealer {
    prefix: Keccak256,
    next: u64,
    best_nonce: u64,
    best_bits: u32,
    target: u32,
}

/// Progress of a [`PowSealer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealProgress {
    /// The target was reached with this nonce.
    Done {
        /// The nonce to put in the envelope.
        nonce: u64,
        /// Its leading zero bits.
        bits: u32,
    },
    /// Not yet; call again with more budget.
    Pending {
        /// The best nonce so far.
        best_nonce: u64,
        /// Its leading zero bits.
        best_bits: u32,
    },
}

impl PowSealer {
    /// Start sealing `envelope` (its nonce is ignored) towards `pow_target`. A target of 0 or less is
    /// reached at once with nonce 0.
    pub fn new(envelope: &Envelope, pow_target: f64) -> Self {
        let mut prefix = Keccak256::new();
        prefix.update(envelope.short_rlp());
        let target = if pow_target > 0.0 {
            target_bits(pow_target, envelope.size(), envelope.ttl)
        } else {
            0
        };
        PowSealer {
            prefix,
            next: 0,
            best_nonce: 0,
            best_bits: 0,
            target,
        }
    }

    /// The leading-zero-bit target.
    pub fn target(&self) -> u32 {
        self.target
    }

    /// Try up to `budget` more nonces.
    pub fn step(&mut self, budget: u64) -> SealProgress {
        if self.target == 0 {
            return SealProgress::Done { nonce: 0, bits: 0 };
        }
        if self.best_bits >= self.target {
            return SealProgress::Done {
                nonce: self.best_nonce,
                bits: self.best_bits,
            };
        }
        for _ in 0..budget {
            let nonce = self.next;
            self.next = self.next.wrapping_add(1);
            let mut h = self.prefix.clone();
            h.update(nonce.to_be_bytes());
            let bits = leading_zero_bits(&h.finalize().into());
            if bits > self.best_bits {
                self.best_bits = bits;
                self.best_nonce = nonce;
                if bits >= self.target {
                    return SealProgress::Done { nonce, bits };
                }
            }
        }
        SealProgress::Pending {
            best_nonce: self.best_nonce,
            best_bits: self.best_bits,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_example() -> Envelope {
        Envelope {
            expiry: 1_600_000_050,
            ttl: 50,
            topic: Topic([0xcd, 0x42, 0x37, 0x60]),
            data: Bytes::from((1u8..=16).collect::<Vec<_>>()),
            nonce: 0x1234,
        }
    }

    #[test]
    fn digest_worked_example() {
        let e = digest_example();
        assert_eq!(
            hex::encode(e.short_rlp()),
            "dc845f5e10323284cd423760900102030405060708090a0b0c0d0e0f10"
        );
        assert_eq!(
            hex::encode(e.encode()),
            "df845f5e10323284cd423760900102030405060708090a0b0c0d0e0f10821234"
        );
        assert_eq!(
            hex::encode(e.hash()),
            "a631530c7e6c8e044f02262b15b22009947cb1980b74d4e048ec7db06c1d7ab6"
        );
        assert_eq!(e.pow_bits(), 1);
        assert!((e.pow() - 0.001379310344827586).abs() < 1e-18);
        assert_eq!(Envelope::decode_bytes(&e.encode()).unwrap(), e);
    }

    #[test]
    fn strict_decoding() {
        let mut bytes = digest_example().encode();
        bytes.push(0);
        assert!(Envelope::decode_bytes(&bytes).is_err());
        // Non-canonical integer (leading zero) for ttl: 0x82 0x00 0x32.
        let bad = hex::decode(
            "e1845f5e1032820032".to_owned() + "84cd423760900102030405060708090a0b0c0d0e0f10821234",
        )
        .unwrap();
        assert!(Envelope::decode_bytes(&bad).is_err());
        assert!(Envelope::decode_bytes(&[0xc0]).is_err());
    }

    #[test]
    fn sealing_reaches_target_resumably() {
        let mut e = digest_example();
        let mut s = PowSealer::new(&e, 0.01);
        assert_eq!(s.target(), target_bits(0.01, e.size(), e.ttl));
        let mut calls = 0;
        let nonce = loop {
            calls += 1;
            match s.step(3) {
                SealProgress::Done { nonce, bits } => {
                    assert!(bits >= s.target());
                    break nonce;
                }
                SealProgress::Pending { .. } => assert!(calls < 10_000),
            }
        };
        e.nonce = nonce;
        assert!(e.pow_bits() >= s.target());
        assert_eq!(
            PowSealer::new(&e, 0.0).step(0),
            SealProgress::Done { nonce: 0, bits: 0 }
        );
        // Clock skew lowers the value for envelopes from the future.
        assert!(e.pow_at(u64::from(e.sent()) - 5) < e.pow());
    }
}
