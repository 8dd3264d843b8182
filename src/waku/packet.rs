//! Waku v1 and Whisper v6 packet codes and their msg-data (docs/protocol/waku.md §5).
//!
//! Codes are relative to the capability's offset in the RLPx id space. Unknown codes decode to
//! [`Packet::Unknown`] and are ignored by the peer machine (forward compatibility).

use bytes::Bytes;
use rlp::{Rlp, RlpStream};

use super::envelope::Envelope;
use super::options::{StatusOptions, WhisperStatus};
use super::WakuError;

/// Status (handshake).
pub const STATUS: u64 = 0;
/// Messages: a list of envelopes.
pub const MESSAGES: u64 = 1;
/// shh/6: PoW requirement.
pub const POW_REQUIREMENT: u64 = 2;
/// shh/6: bloom filter.
pub const BLOOM_FILTER: u64 = 3;
/// Batch acknowledgement.
pub const BATCH_ACK: u64 = 11;
/// Message response (per-envelope errors of a batch).
pub const MESSAGE_RESPONSE: u64 = 12;
/// waku/1: status update.
pub const STATUS_UPDATE: u64 = 22;
/// Mailserver request complete.
pub const P2P_REQUEST_COMPLETE: u64 = 125;
/// Mailserver request.
pub const P2P_REQUEST: u64 = 126;
/// Mailserver message(s).
pub const P2P_MESSAGE: u64 = 127;
/// Number of codes both capabilities occupy.
pub const CODE_COUNT: u64 = 128;

/// Which dialect a peer speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// `waku/1`.
    Waku1,
    /// `shh/6`.
    Whisper6,
}

impl Dialect {
    /// Every dialect, most preferred first: a peer offering both speaks `waku/1`.
    pub const PREFERENCE: [Dialect; 2] = [Dialect::Waku1, Dialect::Whisper6];

    /// The dialect of the RLPx capability `name`/`version`, if it is one.
    pub fn from_capability(name: &str, version: u32) -> Option<Dialect> {
        Self::PREFERENCE
            .into_iter()
            .find(|d| d.capability() == name && d.version() == version)
    }

    /// The preferred dialect among negotiated capabilities given as `(name, version)`.
    pub fn negotiate<'a>(capabilities: impl IntoIterator<Item = (&'a str, u32)> + Clone) -> Option<Dialect> {
        Self::PREFERENCE.into_iter().find(|d| {
            capabilities
                .clone()
                .into_iter()
                .any(|(name, version)| d.capability() == name && d.version() == version)
        })
    }

    /// The RLPx capability name.
    pub fn capability(self) -> &'static str {
        match self {
            Dialect::Waku1 => "waku",
            Dialect::Whisper6 => "shh",
        }
    }

    /// The RLPx capability version.
    pub fn version(self) -> u32 {
        match self {
            Dialect::Waku1 => 1,
            Dialect::Whisper6 => 6,
        }
    }
}

/// One envelope's error in a Message Response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeError {
    /// The envelope hash.
    pub hash: [u8; 32],
    /// Error code (21: time not synced, 22: other; 1 is also accepted as time-sync).
    pub code: u64,
    /// Description.
    pub description: String,
}

/// Error code status-go sends for a time-sync problem.
pub const ERROR_TIME_SYNC: u64 = 21;
/// Error code status-go sends for any other envelope problem.
pub const ERROR_OTHER: u64 = 22;

/// A decoded packet.
#[derive(Clone, Debug, PartialEq)]
pub enum Packet {
    /// waku/1 Status.
    Status(StatusOptions),
    /// shh/6 Status.
    WhisperStatus(WhisperStatus),
    /// Envelopes. (The batch id for confirmations is `keccak256(msg-data)`; the node computes it only
    /// when it sends confirmations.)
    Messages(Vec<Envelope>),
    /// waku/1 Status Update.
    StatusUpdate(StatusOptions),
    /// shh/6 PoW requirement.
    PowRequirement(f64),
    /// shh/6 bloom.
    BloomFilter(super::topic::Bloom),
    /// Batch acknowledgement.
    BatchAck([u8; 32]),
    /// Message response: batch hash and per-envelope errors.
    MessageResponse {
        /// The batch it answers.
        batch_hash: [u8; 32],
        /// Errors, empty if all were accepted.
        errors: Vec<EnvelopeError>,
    },
    /// Mailserver request (raw msg-data: an envelope or a `MessagesRequest` list).
    P2PRequest(Bytes),
    /// Mailserver envelopes (a list, or one bare envelope).
    P2PMessage(Vec<Envelope>),
    /// Mailserver request complete (the byte-string payload).
    P2PRequestComplete(Bytes),
    /// Any other code: ignored.
    Unknown(u64),
}

fn decode_envelope_list(r: &Rlp<'_>, base: &Bytes, max: usize) -> Result<Vec<Envelope>, WakuError> {
    if !r.is_list() {
        return Err(WakuError::MalformedPacket("envelopes are not a list"));
    }
    // The list header must fit the packet (the rlp crate's iterator silently yields nothing for a header
    // such as `f9 ff` whose length runs past the data), and its items must fill it exactly.
    let info = r
        .payload_info()
        .map_err(|_| WakuError::MalformedPacket("envelope list runs past the packet"))?;
    let mut out = Vec::new();
    let mut used = 0usize;
    for item in r.iter() {
        if out.len() >= max {
            return Err(WakuError::MalformedPacket("too many envelopes in one packet"));
        }
        used = used.saturating_add(item.as_raw().len());
        out.push(Envelope::decode_shared(&item, base)?);
    }
    if used != info.value_len {
        return Err(WakuError::MalformedPacket(
            "envelope list length does not match its items",
        ));
    }
    Ok(out)
}

fn hash32(r: &Rlp<'_>) -> Result<[u8; 32], WakuError> {
    r.data()
        .ok()
        .and_then(|d| d.try_into().ok())
        .ok_or(WakuError::MalformedPacket("not a 32-byte hash"))
}

impl Packet {
    /// Decode the msg-data of `code`. `max_envelopes` bounds a Messages packet.
    pub fn decode(
        dialect: Dialect,
        code: u64,
        data: &[u8],
        max_envelopes: usize,
    ) -> Result<Packet, WakuError> {
        Packet::decode_bytes(dialect, code, &Bytes::copy_from_slice(data), max_envelopes)
    }

    /// As [`Packet::decode`], with envelope data sharing `data`'s buffer instead of being copied.
    pub fn decode_bytes(
        dialect: Dialect,
        code: u64,
        data: &Bytes,
        max_envelopes: usize,
    ) -> Result<Packet, WakuError> {
        let r = Rlp::new(data);
        let bad = |_| WakuError::MalformedPacket("bad RLP");
        Ok(match (dialect, code) {
            (Dialect::Waku1, STATUS) => Packet::Status(StatusOptions::decode(&r)?),
            (Dialect::Whisper6, STATUS) => Packet::WhisperStatus(WhisperStatus::decode(&r)?),
            (_, MESSAGES) => Packet::Messages(decode_envelope_list(&r, data, max_envelopes)?),
            (Dialect::Waku1, STATUS_UPDATE) => Packet::StatusUpdate(StatusOptions::decode(&r)?),
            (Dialect::Whisper6, POW_REQUIREMENT) => {
                let bits: u64 = r.as_val().map_err(bad)?;
                let pow = f64::from_bits(bits);
                if !pow.is_finite() || pow < 0.0 {
                    return Err(WakuError::MalformedPacket("pow is NaN, infinite or negative"));
                }
                Packet::PowRequirement(pow)
            }
            (Dialect::Whisper6, BLOOM_FILTER) => Packet::BloomFilter(
                super::topic::Bloom::from_wire(r.data().map_err(bad)?)
                    .ok_or(WakuError::MalformedPacket("bloom length"))?,
            ),
            (_, BATCH_ACK) => Packet::BatchAck(hash32(&r)?),
            (_, MESSAGE_RESPONSE) => {
                // [version = 1, [batch_hash, [[env_hash, code, description], ...]]]
                let inner = r.at(1).map_err(bad)?;
                let batch_hash = hash32(&inner.at(0).map_err(bad)?)?;
                let mut errors = Vec::new();
                for e in inner.at(1).map_err(bad)?.iter() {
                    if errors.len() >= max_envelopes {
                        break;
                    }
                    errors.push(EnvelopeError {
                        hash: hash32(&e.at(0).map_err(bad)?)?,
                        code: e.val_at(1).map_err(bad)?,
                        description: String::from_utf8_lossy(e.at(2).and_then(|d| d.data()).map_err(bad)?)
                            .into_owned(),
                    });
                }
                Packet::MessageResponse { batch_hash, errors }
            }
            (_, P2P_REQUEST) => Packet::P2PRequest(data.clone()),
            (_, P2P_MESSAGE) => {
                // status-go: a list of envelopes; older peers: one bare envelope.
                match decode_envelope_list(&r, data, max_envelopes) {
                    Ok(list) => Packet::P2PMessage(list),
                    Err(_) => Packet::P2PMessage(vec![Envelope::decode_shared(&r, data)?]),
                }
            }
            (_, P2P_REQUEST_COMPLETE) => {
                Packet::P2PRequestComplete(Bytes::copy_from_slice(r.data().map_err(bad)?))
            }
            (_, c) => Packet::Unknown(c),
        })
    }
}

/// msg-data of a Messages or P2P Message packet: `[envelope, …]`.
pub fn encode_envelopes<'a>(envelopes: impl ExactSizeIterator<Item = &'a Envelope>) -> Vec<u8> {
    let mut s = RlpStream::new_list(envelopes.len());
    for e in envelopes {
        e.append_to(&mut s);
    }
    s.out().to_vec()
}

/// msg-data of a Batch Ack.
pub fn encode_batch_ack(batch_hash: &[u8; 32]) -> Vec<u8> {
    rlp::encode(&&batch_hash[..]).to_vec()
}

/// msg-data of a Message Response.
pub fn encode_message_response(batch_hash: &[u8; 32], errors: &[EnvelopeError]) -> Vec<u8> {
    let mut s = RlpStream::new_list(2);
    s.append(&1u64);
    s.begin_list(2);
    s.append(&&batch_hash[..]);
    s.begin_list(errors.len());
    for e in errors {
        s.begin_list(3);
        s.append(&&e.hash[..]);
        s.append(&e.code);
        s.append(&e.description.as_bytes());
    }
    s.out().to_vec()
}

/// msg-data of a P2P Request Complete: the payload as one RLP byte string.
pub fn encode_request_complete(payload: &[u8]) -> Vec<u8> {
    rlp::encode(&payload).to_vec()
}

#[cfg(test)]
mod tests;
