//! The MVDS wire types and identifiers (docs/protocol/mvds.md §2 and §3).
//!
//! [`Payload`] and [`Message`] are the validated forms of the protobuf messages in
//! `status_proto::mvds` (field numbers 5001–5005 and 6001–6003, as the Status network uses them).
//! A message's `group_id` is kept exactly as received, because the message id hashes it as-is.
//!
//! Decoding is lenient where one bad entry would otherwise make a whole payload, and the MESSAGEs in it,
//! unusable (a payload whose MESSAGEs are never ACKed is retransmitted until the sender gives up):
//! * an ACK, OFFER or REQUEST id (5001–5003) that is not 32 bytes is skipped and the rest of the payload
//!   is processed. status-go copies such an id into a zero-padded or truncated 32-byte array, which in
//!   practice matches nothing (or, for a too long id, an unrelated message), so skipping is what it
//!   effectively does; the number of skipped ids is reported by [`Payload::decode_with_limit`];
//! * the STATUS-HEAD `group_offers` (5005), which the spec says to ignore, are parsed outside prost:
//!   an entry that is not a valid `Offer` (or a 5005 field with another wire type) is dropped, bad ids
//!   inside an entry are dropped, and nothing in 5005 can fail the payload;
//! * a `Message` (5004) that is not valid protobuf fails the payload, as it does in Go.
//!
//! Decoding enforces a size cap ([`MAX_PAYLOAD_BYTES`] by default) on every entry point, so bytes that
//! would become more records than a node accepts are refused before allocation.

use bytes::{Buf, Bytes};
use prost::encoding::{decode_key, decode_varint, skip_field, DecodeContext, WireType};
use prost::Message as _;
use sha2::{Digest, Sha256};
use status_proto::mvds as pb;

use crate::crypto::{pubkey_to_compressed, PublicKey};

/// Length of a message id and of a group id.
pub const ID_LEN: usize = 32;

/// The default size cap of [`Payload::decode`], [`Payload::unwrap_datasync`] and [`Message::decode`]:
/// 1 MiB, the Waku `DefaultMaxMessageSize` that bounds what any Status peer can send (docs/protocol/mvds.md
/// §5.6).
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// The field number of the STATUS-HEAD `group_offers`.
const GROUP_OFFERS_FIELD: u32 = 5005;

/// Prefix hashed into every message id.
const MESSAGE_ID_PREFIX: &[u8] = b"MESSAGE_ID";

fn fmt_hex(bytes: &[u8], f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

/// A message id: `SHA-256("MESSAGE_ID" ‖ group_id ‖ le_u64(timestamp) ‖ body)` (docs/protocol/mvds.md §3.1).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MessageId(pub [u8; ID_LEN]);

impl MessageId {
    /// The id of the message with these fields; `group_id` is hashed exactly as given.
    pub fn compute(group_id: &[u8], timestamp: i64, body: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(MESSAGE_ID_PREFIX);
        h.update(group_id);
        h.update((timestamp as u64).to_le_bytes());
        h.update(body);
        MessageId(h.finalize().into())
    }

    /// The id of the message an MVDS node appends for `body` in `group` at `now`
    /// ([`crate::mvds::Input::Send`]): the message's timestamp is `now` in whole UNIX seconds.
    pub fn for_send(group: &GroupId, now: crate::time::Timestamp, body: &[u8]) -> Self {
        MessageId::compute(&group.0, now.as_secs() as i64, body)
    }

    /// Parse a 32-byte id.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; ID_LEN]>::try_from(bytes).ok().map(MessageId)
    }
}

impl core::fmt::Debug for MessageId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        fmt_hex(&self.0[..4], f)?;
        f.write_str("…")
    }
}

/// A 32-byte group id: the synchronisation context a message belongs to.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GroupId(pub [u8; ID_LEN]);

impl GroupId {
    /// Parse a 32-byte group id.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; ID_LEN]>::try_from(bytes).ok().map(GroupId)
    }

    /// The Status one-to-one group id of two identities (docs/protocol/mvds.md §3.2):
    /// `keccak256(compressed(Ka) ‖ compressed(Kb))`, `Ka` the key with the numerically smaller X
    /// coordinate. Symmetric in its arguments; `one_to_one(k, k)` is the group of one's own devices.
    pub fn one_to_one(a: &PublicKey, b: &PublicKey) -> Self {
        let ca = pubkey_to_compressed(a);
        let cb = pubkey_to_compressed(b);
        // X is bytes 1..33 big-endian; on equal X (the same key, or its negation) fall back to the
        // parity byte so the result stays symmetric.
        let (first, second) = if (&ca[1..], ca[0]) <= (&cb[1..], cb[0]) {
            (ca, cb)
        } else {
            (cb, ca)
        };
        GroupId(crate::crypto::keccak256_concat(&[&first, &second]))
    }
}

impl core::fmt::Debug for GroupId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("G")?;
        fmt_hex(&self.0[..4], f)
    }
}

/// An opaque peer id. MVDS is transport-agnostic; Status uses the 65-byte uncompressed identity key.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PeerId(pub Bytes);

impl PeerId {
    /// A peer id from raw bytes.
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        PeerId(bytes.into())
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl core::fmt::Debug for PeerId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("P")?;
        fmt_hex(&self.0[..self.0.len().min(4)], f)
    }
}

/// A synchronised message (`Message`, fields 6001–6003).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Message {
    /// The group, kept as received (32 bytes for every message this implementation sends or accepts
    /// into a group; see [`Message::group`]).
    pub group_id: Bytes,
    /// Creation time in UNIX **seconds**.
    pub timestamp: i64,
    /// Opaque body; in Status an encoded `ApplicationMetadataMessage`.
    pub body: Bytes,
}

impl Message {
    /// A message of `group` created at `timestamp` (UNIX seconds).
    pub fn new(group: GroupId, timestamp: i64, body: impl Into<Bytes>) -> Self {
        Message {
            group_id: Bytes::copy_from_slice(&group.0),
            timestamp,
            body: body.into(),
        }
    }

    /// The message id (docs/protocol/mvds.md §3.1).
    pub fn id(&self) -> MessageId {
        MessageId::compute(&self.group_id, self.timestamp, &self.body)
    }

    /// The group id, if it is 32 bytes long.
    pub fn group(&self) -> Option<GroupId> {
        GroupId::from_slice(&self.group_id)
    }

    /// Encode as a standalone protobuf `Message`.
    pub fn encode_to_vec(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    /// Decode a standalone protobuf `Message` of at most [`MAX_PAYLOAD_BYTES`].
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        if bytes.len() > MAX_PAYLOAD_BYTES {
            return Err(PayloadError::TooLarge(bytes.len()));
        }
        let m = pb::Message::decode(bytes).map_err(|_| PayloadError::Protobuf)?;
        Ok(Self::from_proto(m))
    }

    pub(crate) fn to_proto(&self) -> pb::Message {
        pb::Message {
            group_id: self.group_id.clone(),
            timestamp: self.timestamp,
            body: self.body.clone(),
        }
    }

    pub(crate) fn from_proto(m: pb::Message) -> Self {
        Message {
            group_id: m.group_id,
            timestamp: m.timestamp,
            body: m.body,
        }
    }

    /// Bytes this message occupies inside a payload (field key, length prefix and contents).
    pub fn encoded_len(&self) -> usize {
        let inner = self.to_proto().encoded_len();
        3 + prost::encoding::encoded_len_varint(inner as u64) + inner
    }
}

/// A STATUS-HEAD offer with its group (field 5005); decoded leniently and re-encoded, never acted on.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct GroupOffer {
    /// The group, as received.
    pub group_id: Bytes,
    /// The offered message ids (ids that are not 32 bytes are dropped when decoding).
    pub message_ids: Vec<MessageId>,
}

impl GroupOffer {
    fn to_proto(&self) -> pb::Offer {
        pb::Offer {
            group_id: self.group_id.clone(),
            message_ids: raw_ids(&self.message_ids),
        }
    }
}

/// One MVDS payload (docs/protocol/mvds.md §2.1).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Payload {
    /// ACKs (5001).
    pub acks: Vec<MessageId>,
    /// OFFERs (5002).
    pub offers: Vec<MessageId>,
    /// REQUESTs (5003).
    pub requests: Vec<MessageId>,
    /// MESSAGEs (5004).
    pub messages: Vec<Message>,
    /// STATUS-HEAD group offers (5005), kept for round trips only (decoded leniently, see the module
    /// docs).
    pub group_offers: Vec<GroupOffer>,
}

/// Why bytes are not a valid MVDS payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// Not a protobuf `Payload` at all.
    #[error("not a protobuf payload")]
    Protobuf,
    /// The payload exceeds the configured size cap.
    #[error("payload of {0} bytes exceeds the cap")]
    TooLarge(usize),
}

/// The 32-byte ids of `raw`; the others are skipped and counted in `skipped`.
fn ids(raw: Vec<Bytes>, skipped: &mut usize) -> Vec<MessageId> {
    let n = raw.len();
    let out: Vec<MessageId> = raw.iter().filter_map(|b| MessageId::from_slice(b)).collect();
    *skipped += n - out.len();
    out
}

/// The length-delimited values of top-level field 5005 in `bytes`, which prost accepted as a whole
/// (so the field structure is valid); values of another wire type are ignored.
fn group_offer_fields(mut buf: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while buf.has_remaining() {
        let Ok((tag, wire_type)) = decode_key(&mut buf) else {
            break;
        };
        if tag == GROUP_OFFERS_FIELD && wire_type == WireType::LengthDelimited {
            let Ok(len) = decode_varint(&mut buf) else {
                break;
            };
            let Ok(len) = usize::try_from(len) else {
                break;
            };
            if len > buf.len() {
                break;
            }
            out.push(&buf[..len]);
            buf.advance(len);
        } else if skip_field(wire_type, tag, &mut buf, DecodeContext::default()).is_err() {
            break;
        }
    }
    out
}

fn raw_ids(ids: &[MessageId]) -> Vec<Bytes> {
    ids.iter().map(|i| Bytes::copy_from_slice(&i.0)).collect()
}

impl Payload {
    /// `false` when every one of the four MVDS lists is empty: status-go then treats the bytes as a
    /// plain application message (`Payload.IsValid`, docs/protocol/mvds.md §2.1).
    pub fn is_valid(&self) -> bool {
        !(self.acks.is_empty()
            && self.offers.is_empty()
            && self.requests.is_empty()
            && self.messages.is_empty())
    }

    /// Decode a payload of at most [`MAX_PAYLOAD_BYTES`] (see [`Payload::decode_with_limit`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        Self::decode_with_limit(bytes, MAX_PAYLOAD_BYTES).map(|(p, _)| p)
    }

    /// Decode a payload of at most `max_bytes` (larger input: [`PayloadError::TooLarge`]). Unknown
    /// fields are skipped, as proto3 does; ACK/OFFER/REQUEST ids that are not 32 bytes are skipped
    /// and counted (the second value), and `group_offers` are decoded leniently (module docs).
    pub fn decode_with_limit(bytes: &[u8], max_bytes: usize) -> Result<(Self, usize), PayloadError> {
        if bytes.len() > max_bytes {
            return Err(PayloadError::TooLarge(bytes.len()));
        }
        let p = pb::Payload::decode(bytes).map_err(|_| PayloadError::Protobuf)?;
        let mut skipped = 0;
        let group_offers = group_offer_fields(bytes)
            .into_iter()
            .filter_map(|raw| pb::Offer::decode(raw).ok())
            .map(|o| GroupOffer {
                group_id: o.group_id,
                message_ids: ids(o.message_ids, &mut 0),
            })
            .collect();
        let payload = Payload {
            acks: ids(p.acks, &mut skipped),
            offers: ids(p.offers, &mut skipped),
            requests: ids(p.requests, &mut skipped),
            messages: p.messages.into_iter().map(Message::from_proto).collect(),
            group_offers,
        };
        Ok((payload, skipped))
    }

    /// The datasync unwrap of status-go: `Some` if `bytes` (at most [`MAX_PAYLOAD_BYTES`]) decode as a
    /// valid payload, `None` if they are to be handled as a bare application message.
    pub fn unwrap_datasync(bytes: &[u8]) -> Option<Self> {
        Self::unwrap_datasync_with_limit(bytes, MAX_PAYLOAD_BYTES)
    }

    /// [`Payload::unwrap_datasync`] with a size cap of `max_bytes` (pass the node's
    /// `Config::max_incoming_payload_bytes`).
    pub fn unwrap_datasync_with_limit(bytes: &[u8], max_bytes: usize) -> Option<Self> {
        Self::decode_with_limit(bytes, max_bytes)
            .ok()
            .map(|(p, _)| p)
            .filter(Payload::is_valid)
    }

    /// Encode, fields in field-number order (as golang/protobuf does).
    pub fn encode_to_vec(&self) -> Vec<u8> {
        let mut out = self.to_proto().encode_to_vec();
        for o in &self.group_offers {
            prost::encoding::message::encode(GROUP_OFFERS_FIELD, &o.to_proto(), &mut out);
        }
        out
    }

    /// The length of [`Payload::encode_to_vec`], computed without encoding.
    pub fn encoded_len(&self) -> usize {
        let ids = self.acks.len() + self.offers.len() + self.requests.len();
        let offers: usize = self
            .group_offers
            .iter()
            .map(|o| prost::encoding::message::encoded_len(GROUP_OFFERS_FIELD, &o.to_proto()))
            .sum();
        ids * ENCODED_ID_LEN + self.messages.iter().map(Message::encoded_len).sum::<usize>() + offers
    }

    fn to_proto(&self) -> pb::Payload {
        pb::Payload {
            acks: raw_ids(&self.acks),
            offers: raw_ids(&self.offers),
            requests: raw_ids(&self.requests),
            messages: self.messages.iter().map(Message::to_proto).collect(),
        }
    }
}

/// Bytes one 32-byte id occupies in a payload's repeated field (3-byte key, 1-byte length, id).
pub const ENCODED_ID_LEN: usize = 3 + 1 + ID_LEN;

#[cfg(test)]
mod tests;
