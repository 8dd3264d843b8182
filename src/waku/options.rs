//! The Status handshake options (docs/protocol/waku.md §6): the `waku/1` association list used by Status
//! (code 0) and Status Update (code 22), and the positional `shh/6` Status.
//!
//! `waku/1`: an RLP list of `[key, value]` pairs in any order, every field optional. Unknown keys are
//! skipped one pair at a time (status-go drops every pair after an unknown key; we deliberately do not).
//! We encode keys in ascending order, as status-go does.

use rlp::{Rlp, RlpStream};

use super::topic::{Bloom, Topic};
use super::WakuError;

/// status-go's cap on the number of topics in topic interest.
pub const MAX_TOPIC_INTEREST: usize = 10_000;
/// The PoW requirement assumed when a peer's Status does not carry one.
pub const DEFAULT_POW_REQUIREMENT: f64 = 0.001;

/// Rate limits per IP, per peer id and per topic (0 = unlimited).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Per IP address.
    pub ip: u64,
    /// Per peer id.
    pub peer_id: u64,
    /// Per topic.
    pub topic: u64,
}

/// Waku v1 status options; `None` means "absent".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatusOptions {
    /// Key 0: minimum PoW the sender accepts.
    pub pow_requirement: Option<f64>,
    /// Key 1: bloom filter of topics the sender wants.
    pub bloom: Option<Bloom>,
    /// Key 2: the sender is a light node (does not relay).
    pub light_node: Option<bool>,
    /// Key 3: the sender sends confirmations.
    pub confirmations: Option<bool>,
    /// Key 4: packet rate limits (packets per second).
    pub packet_rate_limits: Option<RateLimits>,
    /// Key 5: exact topic interest (replaces the bloom when present).
    pub topic_interest: Option<Vec<Topic>>,
    /// Key 6: byte rate limits (bytes per second).
    pub bytes_rate_limits: Option<RateLimits>,
}

fn append_limits(s: &mut RlpStream, l: &RateLimits) {
    s.begin_list(3);
    s.append(&l.ip);
    s.append(&l.peer_id);
    s.append(&l.topic);
}

fn decode_limits(r: &Rlp<'_>) -> Result<RateLimits, WakuError> {
    let bad = |_| WakuError::MalformedStatus("rate limits");
    if !r.is_list() || r.item_count().map_err(bad)? != 3 {
        return Err(WakuError::MalformedStatus("rate limits"));
    }
    Ok(RateLimits {
        ip: r.val_at(0).map_err(bad)?,
        peer_id: r.val_at(1).map_err(bad)?,
        topic: r.val_at(2).map_err(bad)?,
    })
}

fn decode_pow(r: &Rlp<'_>) -> Result<f64, WakuError> {
    let bits: u64 = r.as_val().map_err(|_| WakuError::MalformedStatus("pow"))?;
    let pow = f64::from_bits(bits);
    if !pow.is_finite() || pow < 0.0 {
        return Err(WakuError::MalformedStatus("pow is NaN, infinite or negative"));
    }
    Ok(pow)
}

fn decode_bool(r: &Rlp<'_>) -> Result<bool, WakuError> {
    match r.as_raw() {
        [0x01] => Ok(true),
        [0x80] | [0x00] => Ok(false),
        _ => Err(WakuError::MalformedStatus("bool")),
    }
}

fn decode_bloom(r: &Rlp<'_>) -> Result<Bloom, WakuError> {
    let d = r.data().map_err(|_| WakuError::MalformedStatus("bloom"))?;
    Bloom::from_wire(d).ok_or(WakuError::MalformedStatus("bloom is neither 0 nor 64 bytes"))
}

impl StatusOptions {
    /// Fill absent fields with the values assumed for a peer that did not send them.
    pub fn with_defaults(mut self) -> Self {
        self.pow_requirement.get_or_insert(DEFAULT_POW_REQUIREMENT);
        if self.topic_interest.is_none() {
            self.bloom.get_or_insert(Bloom::FULL);
        }
        self.light_node.get_or_insert(false);
        self.confirmations.get_or_insert(false);
        self.packet_rate_limits.get_or_insert_with(RateLimits::default);
        self.bytes_rate_limits.get_or_insert_with(RateLimits::default);
        self
    }

    /// Apply a Status Update: present fields replace ours. Topic interest replaces the bloom; a bloom
    /// alone discards topic interest (back to bloom mode).
    pub fn update(&mut self, u: &StatusOptions) {
        if let Some(p) = u.pow_requirement {
            self.pow_requirement = Some(p);
        }
        if let Some(t) = &u.topic_interest {
            self.topic_interest = Some(t.clone());
        } else if u.bloom.is_some() {
            self.topic_interest = None;
        }
        if let Some(b) = u.bloom {
            self.bloom = Some(b);
        }
        if let Some(l) = u.light_node {
            self.light_node = Some(l);
        }
        if let Some(c) = u.confirmations {
            self.confirmations = Some(c);
        }
        if let Some(l) = u.packet_rate_limits {
            self.packet_rate_limits = Some(l);
        }
        if let Some(l) = u.bytes_rate_limits {
            self.bytes_rate_limits = Some(l);
        }
    }

    /// RLP-encode as the association list, keys ascending.
    pub fn encode(&self) -> Vec<u8> {
        let mut s = RlpStream::new();
        self.append_to(&mut s);
        s.out().to_vec()
    }

    /// Append as one RLP item.
    pub fn append_to(&self, s: &mut RlpStream) {
        let n = [
            self.pow_requirement.is_some(),
            self.bloom.is_some(),
            self.light_node.is_some(),
            self.confirmations.is_some(),
            self.packet_rate_limits.is_some(),
            self.topic_interest.is_some(),
            self.bytes_rate_limits.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        s.begin_list(n);
        if let Some(p) = self.pow_requirement {
            s.begin_list(2).append(&0u8).append(&p.to_bits());
        }
        if let Some(b) = &self.bloom {
            s.begin_list(2).append(&1u8).append(&&b.0[..]);
        }
        if let Some(l) = self.light_node {
            s.begin_list(2).append(&2u8).append(&l);
        }
        if let Some(c) = self.confirmations {
            s.begin_list(2).append(&3u8).append(&c);
        }
        if let Some(l) = &self.packet_rate_limits {
            s.begin_list(2).append(&4u8);
            append_limits(s, l);
        }
        if let Some(t) = &self.topic_interest {
            s.begin_list(2).append(&5u8);
            s.begin_list(t.len());
            for topic in t {
                s.append(&&topic.0[..]);
            }
        }
        if let Some(l) = &self.bytes_rate_limits {
            s.begin_list(2).append(&6u8);
            append_limits(s, l);
        }
    }

    /// Decode the association list. Keys may come in any order; unknown keys are skipped.
    pub fn decode(r: &Rlp<'_>) -> Result<StatusOptions, WakuError> {
        let bad = |_| WakuError::MalformedStatus("bad RLP");
        if !r.is_list() {
            return Err(WakuError::MalformedStatus("not a list"));
        }
        let mut o = StatusOptions::default();
        for pair in r.iter() {
            if !pair.is_list() || pair.item_count().map_err(bad)? != 2 {
                return Err(WakuError::MalformedStatus("not a [key, value] pair"));
            }
            let key: u64 = pair.val_at(0).map_err(bad)?;
            let v = pair.at(1).map_err(bad)?;
            match key {
                0 => o.pow_requirement = Some(decode_pow(&v)?),
                1 => o.bloom = Some(decode_bloom(&v)?),
                2 => o.light_node = Some(decode_bool(&v)?),
                3 => o.confirmations = Some(decode_bool(&v)?),
                4 => o.packet_rate_limits = Some(decode_limits(&v)?),
                5 => {
                    if !v.is_list() {
                        return Err(WakuError::MalformedStatus("topic interest"));
                    }
                    let n = v.item_count().map_err(bad)?;
                    if n > MAX_TOPIC_INTEREST {
                        return Err(WakuError::MalformedStatus("more than 10000 topics"));
                    }
                    let mut topics = Vec::with_capacity(n);
                    for t in v.iter() {
                        let d: [u8; 4] = t
                            .data()
                            .map_err(bad)?
                            .try_into()
                            .map_err(|_| WakuError::MalformedStatus("topic is not 4 bytes"))?;
                        topics.push(Topic(d));
                    }
                    o.topic_interest = Some(topics);
                }
                6 => o.bytes_rate_limits = Some(decode_limits(&v)?),
                _ => {}
            }
        }
        Ok(o)
    }
}

/// The `shh/6` Status: `[6, pow_bits, bloom?, light_node?, confirmations?, [ip, peer, topic]?]`.
#[derive(Clone, Debug, PartialEq)]
pub struct WhisperStatus {
    /// Minimum PoW.
    pub pow_requirement: f64,
    /// Bloom filter (absent or empty = full).
    pub bloom: Bloom,
    /// Light node flag.
    pub light_node: bool,
    /// status-go extension: confirmations.
    pub confirmations: bool,
    /// status-go extension: packet rate limits.
    pub rate_limits: RateLimits,
}

impl WhisperStatus {
    /// Encode all six fields.
    pub fn encode(&self) -> Vec<u8> {
        let mut s = RlpStream::new_list(6);
        s.append(&6u64);
        s.append(&self.pow_requirement.to_bits());
        s.append(&&self.bloom.0[..]);
        s.append(&self.light_node);
        s.append(&self.confirmations);
        append_limits(&mut s, &self.rate_limits);
        s.out().to_vec()
    }

    /// Decode; only the version is mandatory and must be 6.
    pub fn decode(r: &Rlp<'_>) -> Result<WhisperStatus, WakuError> {
        let bad = |_| WakuError::MalformedStatus("bad RLP");
        if !r.is_list() {
            return Err(WakuError::MalformedStatus("not a list"));
        }
        let n = r.item_count().map_err(bad)?;
        let version: u64 = r.val_at(0).map_err(bad)?;
        if version != 6 {
            return Err(WakuError::MalformedStatus("shh version is not 6"));
        }
        let mut s = WhisperStatus {
            pow_requirement: DEFAULT_POW_REQUIREMENT,
            bloom: Bloom::FULL,
            light_node: false,
            confirmations: false,
            rate_limits: RateLimits::default(),
        };
        if n > 1 {
            s.pow_requirement = decode_pow(&r.at(1).map_err(bad)?)?;
        }
        if n > 2 {
            s.bloom = decode_bloom(&r.at(2).map_err(bad)?)?;
        }
        if n > 3 {
            s.light_node = decode_bool(&r.at(3).map_err(bad)?)?;
        }
        if n > 4 {
            s.confirmations = decode_bool(&r.at(4).map_err(bad)?)?;
        }
        if n > 5 {
            s.rate_limits = decode_limits(&r.at(5).map_err(bad)?)?;
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests;
