//! The MVDS wire types and identifiers (mvds.md §2 and §3).
//!
//! [`Payload`] and [`Message`] are the validated forms of the protobuf messages in
//! `status_proto::mvds` (field numbers 5001–5005 and 6001–6003, as the Status network uses them).
//! Decoding is strict about what MVDS itself defines: every message id must be 32 bytes. A message's
//! `group_id` is kept exactly as received, because the message id hashes it as-is.

use bytes::Bytes;
use prost::Message as _;
use sha2::{Digest, Sha256};
use status_proto::mvds as pb;

use crate::crypto::{pubkey_to_compressed, PublicKey};

/// Length of a message id and of a group id.
pub const ID_LEN: usize = 32;

/// Prefix hashed into every message id.
const MESSAGE_ID_PREFIX: &[u8] = b"MESSAGE_ID";

fn fmt_hex(bytes: &[u8], f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

/// A message id: `SHA-256("MESSAGE_ID" ‖ group_id ‖ le_u64(timestamp) ‖ body)` (mvds.md §3.1).
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

    /// The Status one-to-one group id of two identities (mvds.md §3.2):
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

    /// The message id (mvds.md §3.1).
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

    /// Decode a standalone protobuf `Message`.
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
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

/// A STATUS-HEAD offer with its group (field 5005); decoded and re-encoded, never acted on.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct GroupOffer {
    /// The group, as received.
    pub group_id: Bytes,
    /// The offered message ids.
    pub message_ids: Vec<MessageId>,
}

/// One MVDS payload (mvds.md §2.1).
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
    /// STATUS-HEAD group offers (5005), preserved for round trips only.
    pub group_offers: Vec<GroupOffer>,
}

/// Why bytes are not a valid MVDS payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// Not a protobuf `Payload` at all.
    #[error("not a protobuf payload")]
    Protobuf,
    /// A message id is not 32 bytes long.
    #[error("message id of {0} bytes")]
    BadMessageId(usize),
    /// The payload exceeds the configured size cap.
    #[error("payload of {0} bytes exceeds the cap")]
    TooLarge(usize),
}

fn ids(raw: Vec<Bytes>) -> Result<Vec<MessageId>, PayloadError> {
    raw.iter()
        .map(|b| MessageId::from_slice(b).ok_or(PayloadError::BadMessageId(b.len())))
        .collect()
}

fn raw_ids(ids: &[MessageId]) -> Vec<Bytes> {
    ids.iter().map(|i| Bytes::copy_from_slice(&i.0)).collect()
}

impl Payload {
    /// `false` when every one of the four MVDS lists is empty: status-go then treats the bytes as a
    /// plain application message (`Payload.IsValid`, mvds.md §2.1).
    pub fn is_valid(&self) -> bool {
        !(self.acks.is_empty()
            && self.offers.is_empty()
            && self.requests.is_empty()
            && self.messages.is_empty())
    }

    /// Decode a payload. Unknown fields are skipped, as proto3 does.
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        let p = pb::Payload::decode(bytes).map_err(|_| PayloadError::Protobuf)?;
        Self::from_proto(p)
    }

    /// The datasync unwrap of status-go: `Some` if `bytes` decode as a valid payload, `None` if they are to
    /// be handled as a bare application message.
    pub fn unwrap_datasync(bytes: &[u8]) -> Option<Self> {
        Self::decode(bytes).ok().filter(Payload::is_valid)
    }

    /// Encode, fields in field-number order (as golang/protobuf does).
    pub fn encode_to_vec(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    /// The length of [`Payload::encode_to_vec`].
    pub fn encoded_len(&self) -> usize {
        self.to_proto().encoded_len()
    }

    fn to_proto(&self) -> pb::Payload {
        pb::Payload {
            acks: raw_ids(&self.acks),
            offers: raw_ids(&self.offers),
            requests: raw_ids(&self.requests),
            messages: self.messages.iter().map(Message::to_proto).collect(),
            group_offers: self
                .group_offers
                .iter()
                .map(|o| pb::Offer {
                    group_id: o.group_id.clone(),
                    message_ids: raw_ids(&o.message_ids),
                })
                .collect(),
        }
    }

    fn from_proto(p: pb::Payload) -> Result<Self, PayloadError> {
        let group_offers = p
            .group_offers
            .into_iter()
            .map(|o| {
                Ok(GroupOffer {
                    group_id: o.group_id,
                    message_ids: ids(o.message_ids)?,
                })
            })
            .collect::<Result<_, PayloadError>>()?;
        Ok(Payload {
            acks: ids(p.acks)?,
            offers: ids(p.offers)?,
            requests: ids(p.requests)?,
            messages: p.messages.into_iter().map(Message::from_proto).collect(),
            group_offers,
        })
    }
}

/// Bytes one 32-byte id occupies in a payload's repeated field (3-byte key, 1-byte length, id).
pub const ENCODED_ID_LEN: usize = 3 + 1 + ID_LEN;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_len_estimates_are_exact() {
        let m = Message::new(GroupId([7; 32]), 1_700_000_000, vec![1u8; 300]);
        let p = Payload {
            acks: vec![MessageId([1; 32])],
            messages: vec![m.clone()],
            ..Payload::default()
        };
        assert_eq!(p.encoded_len(), ENCODED_ID_LEN + m.encoded_len());
        assert_eq!(p.encode_to_vec().len(), p.encoded_len());
    }

    #[test]
    fn bad_id_length_is_rejected() {
        let raw = pb::Payload {
            acks: vec![Bytes::from_static(b"short")],
            ..Default::default()
        };
        assert_eq!(
            Payload::decode(&raw.encode_to_vec()),
            Err(PayloadError::BadMessageId(5))
        );
        assert_eq!(Payload::unwrap_datasync(b"\x0a\x00"), None);
        assert_eq!(Payload::decode(&[0xff]), Err(PayloadError::Protobuf));
    }
}
