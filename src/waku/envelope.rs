//! The Waku/Whisper envelope and its proof of work (docs/protocol/waku.md §2–§3).
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

/// The RLP header of a list (`list = true`) or byte string whose payload is `len` bytes long.
///
/// The `rlp` crate writes a list's payload first and then inserts the header, moving the whole payload;
/// on the relay path (every envelope, every outgoing batch) we write the header first instead. Tests check
/// these bytes against the `rlp` crate's own encoding at every length boundary.
pub(crate) fn rlp_header(len: usize, list: bool) -> ([u8; 9], usize) {
    let (short, long) = if list { (0xc0u8, 0xf7u8) } else { (0x80u8, 0xb7u8) };
    let mut out = [0u8; 9];
    if len <= 55 {
        out[0] = short + len as u8;
        return (out, 1);
    }
    let be = (len as u64).to_be_bytes();
    let skip = be.iter().take_while(|b| **b == 0).count();
    out[0] = long + (8 - skip) as u8;
    out[1..1 + 8 - skip].copy_from_slice(&be[skip..]);
    (out, 1 + 8 - skip)
}

/// Length of the RLP encoding of a byte string `data`.
fn string_len(data: &[u8]) -> usize {
    if data.len() == 1 && data[0] < 0x80 {
        1
    } else {
        rlp_header(data.len(), false).1 + data.len()
    }
}

/// Feed the RLP encoding of byte string `data` to `f` without copying it.
fn feed_string(data: &[u8], f: &mut impl FnMut(&[u8])) {
    if data.len() == 1 && data[0] < 0x80 {
        f(data);
    } else {
        let (h, n) = rlp_header(data.len(), false);
        f(&h[..n]);
        f(data);
    }
}

/// Minimal big-endian bytes of an integer (empty for 0), as RLP encodes integers.
fn int_bytes(v: u64) -> ([u8; 8], usize) {
    let be = v.to_be_bytes();
    let skip = be.iter().take_while(|b| **b == 0).count();
    (be, skip)
}

impl Envelope {
    /// Feed the RLP of the first four fields (or all five) to `f`, header first, without copying `data`.
    fn feed_rlp(&self, with_nonce: bool, f: &mut impl FnMut(&[u8])) {
        let (e, es) = int_bytes(u64::from(self.expiry));
        let (t, ts) = int_bytes(u64::from(self.ttl));
        let (n, ns) = int_bytes(self.nonce);
        let mut payload = string_len(&e[es..]) + string_len(&t[ts..]) + 5 + string_len(&self.data);
        if with_nonce {
            payload += string_len(&n[ns..]);
        }
        let (h, hl) = rlp_header(payload, true);
        f(&h[..hl]);
        feed_string(&e[es..], f);
        feed_string(&t[ts..], f);
        feed_string(&self.topic.0, f);
        feed_string(&self.data, f);
        if with_nonce {
            feed_string(&n[ns..], f);
        }
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
        let mut out = Vec::with_capacity(self.rlp_len());
        self.feed_rlp(true, &mut |b| out.extend_from_slice(b));
        out
    }

    /// Length of [`Envelope::encode`]'s output.
    pub fn rlp_len(&self) -> usize {
        let mut len = 0;
        self.feed_rlp(true, &mut |b| len += b.len());
        len
    }

    /// Append this envelope as one item of an enclosing RLP list.
    pub fn append_to(&self, s: &mut RlpStream) {
        s.begin_list(5);
        append_short(s, self);
        s.append(&self.nonce);
    }

    /// RLP of the first four fields (the PoW input prefix).
    pub fn short_rlp(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 24);
        self.feed_rlp(false, &mut |b| out.extend_from_slice(b));
        out
    }

    /// Decode one envelope from an RLP item.
    pub fn decode(r: &Rlp<'_>) -> Result<Envelope, WakuError> {
        Envelope::decode_in(r, None)
    }

    /// Decode one envelope from an RLP item that lies inside `base`; `data` then shares `base`'s buffer
    /// instead of being copied.
    pub fn decode_shared(r: &Rlp<'_>, base: &Bytes) -> Result<Envelope, WakuError> {
        Envelope::decode_in(r, Some(base))
    }

    fn decode_in(r: &Rlp<'_>, base: Option<&Bytes>) -> Result<Envelope, WakuError> {
        let bad = |_| WakuError::MalformedEnvelope("bad RLP");
        if !r.is_list() {
            return Err(WakuError::MalformedEnvelope("not a 5-field list"));
        }
        // One pass over the items. The rlp crate does not check that the items fill the list exactly;
        // Go's decoder does, so we add their lengths up.
        let mut items: [Option<Rlp<'_>>; 5] = [None, None, None, None, None];
        let mut used = 0usize;
        for (k, item) in r.iter().enumerate() {
            if k >= 5 {
                return Err(WakuError::MalformedEnvelope("not a 5-field list"));
            }
            used += item.as_raw().len();
            items[k] = Some(item);
        }
        let [Some(e), Some(t), Some(tp), Some(d), Some(n)] = items else {
            return Err(WakuError::MalformedEnvelope("not a 5-field list"));
        };
        if used != r.payload_info().map_err(bad)?.value_len {
            return Err(WakuError::MalformedEnvelope(
                "list length does not match its items",
            ));
        }
        // The rlp crate's `data()` returns a list's payload too: a topic must be a byte string.
        if tp.is_list() {
            return Err(WakuError::MalformedEnvelope("topic is a list"));
        }
        let topic: [u8; 4] = tp
            .data()
            .map_err(bad)?
            .try_into()
            .map_err(|_| WakuError::MalformedEnvelope("topic is not 4 bytes"))?;
        if d.is_list() {
            return Err(WakuError::MalformedEnvelope("data is a list"));
        }
        Ok(Envelope {
            expiry: e.as_val().map_err(bad)?,
            ttl: t.as_val().map_err(bad)?,
            topic: Topic(topic),
            data: share_or_copy(base, d.data().map_err(bad)?),
            nonce: n.as_val().map_err(bad)?,
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
        let mut h = Keccak256::new();
        self.feed_rlp(true, &mut |b| h.update(b));
        h.finalize().into()
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
        self.stamp().bits
    }

    /// One Keccak over `short_rlp ‖ nonce`: the PoW digest, its leading zero bits, and the short RLP
    /// length. The digest is also a collision-resistant identity of the whole envelope, which the node
    /// uses for de-duplication so that each envelope is hashed once on the relay path.
    pub fn stamp(&self) -> Stamp {
        let mut h = Keccak256::new();
        let mut short_len = 0;
        self.feed_rlp(false, &mut |b| {
            short_len += b.len();
            h.update(b)
        });
        h.update(self.nonce.to_be_bytes());
        let id: [u8; 32] = h.finalize().into();
        Stamp {
            bits: leading_zero_bits(&id),
            id,
            short_len,
        }
    }

    /// The PoW value with no clock-skew adjustment.
    pub fn pow(&self) -> f64 {
        self.pow_with_diff(0)
    }

    /// The PoW value as a receiver at `now_secs` computes it: an envelope created in the future
    /// (`sent > now`) is judged with `diff = sent - now + 1`.
    pub fn pow_at(&self, now_secs: u64) -> f64 {
        self.stamp().pow_at(self, now_secs)
    }

    fn pow_with_diff(&self, diff: u64) -> f64 {
        self.stamp().pow(self.ttl, diff)
    }
}

/// The result of [`Envelope::stamp`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// `keccak256(short_rlp ‖ nonce_be8)`.
    pub id: [u8; 32],
    /// Its leading zero bits.
    pub bits: u32,
    /// `len(short_rlp)`.
    pub short_len: usize,
}

impl Stamp {
    /// The PoW value for an envelope with this stamp and `ttl`, judged with clock-skew `diff`.
    pub fn pow(&self, ttl: u32, diff: u64) -> f64 {
        pow_value(self.bits, self.short_len as f64, u64::from(ttl) + diff)
    }

    /// The PoW value as a receiver at `now_secs` computes it (see [`Envelope::pow_at`]).
    pub fn pow_at(&self, env: &Envelope, now_secs: u64) -> f64 {
        let sent = u64::from(env.sent());
        let diff = if sent > now_secs { sent - now_secs + 1 } else { 0 };
        self.pow(env.ttl, diff)
    }
}

/// `2^bits / len(short) / ttl` in f64, as Go computes it (a TTL of 0 gives +∞, as in Go).
fn pow_value(bits: u32, short_len: f64, ttl: u64) -> f64 {
    2f64.powi(bits as i32) / short_len / ttl as f64
}

/// A `Bytes` for `sub`: a slice of `base` if `sub` lies inside it, a copy otherwise.
fn share_or_copy(base: Option<&Bytes>, sub: &[u8]) -> Bytes {
    match base {
        Some(b) => {
            let (start, end) = (b.as_ptr() as usize, b.as_ptr() as usize + b.len());
            let s = sub.as_ptr() as usize;
            if s >= start && s + sub.len() <= end {
                b.slice_ref(sub)
            } else {
                Bytes::copy_from_slice(sub)
            }
        }
        None => Bytes::copy_from_slice(sub),
    }
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
        envelope.feed_rlp(false, &mut |b| prefix.update(b));
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
mod tests;
