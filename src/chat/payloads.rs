//! The payload wrapper and message ids (6/PAYLOADS; docs/protocol/payloads.md §2, §3, §7).
//!
//! Every application message travels as an `ApplicationMetadataMessage { signature, payload, type }`:
//!
//! ```text
//! signature  = Sign(keccak256(payload), author)          65 bytes r‖s‖v, v ∈ {0,1}, RFC 6979, low S
//! author     = recover(keccak256(payload), signature)    none when the signature is empty
//! message_id = keccak256(0x04‖X‖Y of the author ‖ the whole encoded wrapper)
//! ```
//!
//! The id covers the wrapper exactly as received (signature and type included), so [`unwrap`] hashes the
//! input bytes, never a re-encoding, and [`wrap`] returns the bytes it hashed: a message sent to several
//! recipients is wrapped once and the same bytes reused (§2.1). When the wrapper is unsigned, the author is
//! whoever a lower layer says (the transport signer), as in the reference; [`Unwrapped::signed`] tells the
//! caller, who must then not relay the message to third parties (plausible deniability).
//!
//! Decoding: a non-empty signature that does not recover makes the message invalid
//! ([`ChatError::BadSignature`]); unknown `type` values are kept as raw numbers and their payload is left
//! undecoded ([`AppPayload::Unsupported`]), as the spec requires them to be tolerated. Deviation: wrappers
//! and typed payloads larger than [`MAX_MESSAGE_BYTES`] (the Waku 1 MiB limit, which bounds them on the
//! network anyway) are refused before decoding.

use bytes::Bytes;
use prost::Message as _;
use status_proto::protobuf as pb;

use super::ChatError;
use crate::crypto::{keccak256, keccak256_concat, pubkey_to_uncompressed, recover, sign_recoverable};
use crate::crypto::{PublicKey, SecretKey};

pub use pb::application_metadata_message::Type as MessageKind;

/// Largest wrapper or typed payload decoded (the Waku 1 MiB message limit).
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Length of a wrapper signature.
pub const SIGNATURE_LEN: usize = 65;

/// A message id: `keccak256(author 0x04‖X‖Y ‖ encoded wrapper)`. Its text form (`Display`) is
/// `"0x" + lowercase hex`, the form of `response_to` and `EmojiReaction.message_id`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MessageId(pub [u8; 32]);

impl MessageId {
    /// The id of a wrapper `wrapped` (the exact encoded bytes) by `author`.
    pub fn compute(author: &PublicKey, wrapped: &[u8]) -> Self {
        MessageId(keccak256_concat(&[&pubkey_to_uncompressed(author), wrapped]))
    }

    /// Parse the `"0x…"` text form (64 hex digits, either case).
    pub fn from_hex(s: &str) -> Option<Self> {
        let h = s.strip_prefix("0x")?;
        if h.len() != 64 || !h.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in h.as_bytes().chunks_exact(2).enumerate() {
            let text = core::str::from_utf8(pair).ok()?;
            out[i] = u8::from_str_radix(text, 16).ok()?;
        }
        Some(MessageId(out))
    }
}

impl core::fmt::Display for MessageId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("0x")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl core::fmt::Debug for MessageId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "MessageId({self})")
    }
}

/// A wrapped message ready to send: the exact bytes and their id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wrapped {
    /// The encoded `ApplicationMetadataMessage`.
    pub bytes: Bytes,
    /// Its message id (by the signing author).
    pub id: MessageId,
}

/// Sign `payload` as `author` and wrap it as a message of type `kind`.
pub fn wrap(payload: &[u8], kind: MessageKind, author: &SecretKey) -> Result<Wrapped, ChatError> {
    let signature = sign_recoverable(author, &keccak256(payload)).map_err(|_| ChatError::Signing)?;
    let bytes = encode_wrapper(&signature, payload, kind as i32);
    let id = MessageId::compute(&author.public_key(), &bytes);
    Ok(Wrapped { bytes, id })
}

/// Wrap `payload` without an application-layer signature (the reference's `WrapMessageV1` without an
/// identity). The id then depends on the author a lower layer attributes it to.
pub fn wrap_unsigned(payload: &[u8], kind: MessageKind) -> Bytes {
    encode_wrapper(&[], payload, kind as i32)
}

fn encode_wrapper(signature: &[u8], payload: &[u8], kind: i32) -> Bytes {
    pb::ApplicationMetadataMessage {
        signature: Bytes::copy_from_slice(signature),
        payload: Bytes::copy_from_slice(payload),
        r#type: kind,
    }
    .encode_to_vec()
    .into()
}

/// A received wrapper, decoded and attributed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unwrapped {
    /// The raw `type` number (unknown values are kept).
    pub kind: i32,
    /// The typed payload bytes.
    pub payload: Bytes,
    /// The application-layer signature (empty if unsigned).
    pub signature: Bytes,
    /// Whether the author comes from the application-layer signature (else from the transport signer).
    pub signed: bool,
    /// The author: the recovered signer, else the transport signer given to [`unwrap`], else `None`.
    pub author: Option<PublicKey>,
    /// The message id, when there is an author.
    pub id: Option<MessageId>,
}

impl Unwrapped {
    /// The message type, if this implementation knows it.
    pub fn message_kind(&self) -> Option<MessageKind> {
        MessageKind::try_from(self.kind).ok()
    }

    /// Decode the typed payload.
    pub fn decode_payload(&self) -> Result<AppPayload, ChatError> {
        AppPayload::decode(self.kind, &self.payload)
    }
}

/// Decode a received `ApplicationMetadataMessage` (`wrapped` exactly as received), recover its author and
/// compute its id. `transport_signer` is the key a lower layer attributes the message to (the Waku
/// envelope signer or the secure-transport sender), used when the wrapper is unsigned.
pub fn unwrap(wrapped: &[u8], transport_signer: Option<&PublicKey>) -> Result<Unwrapped, ChatError> {
    check_size(wrapped.len())?;
    let m = pb::ApplicationMetadataMessage::decode(wrapped).map_err(|_| ChatError::Malformed)?;
    let (author, signed) = if m.signature.is_empty() {
        (transport_signer.copied(), false)
    } else {
        let author = recover(&m.signature, &keccak256(&m.payload)).map_err(|_| ChatError::BadSignature)?;
        (Some(author), true)
    };
    Ok(Unwrapped {
        kind: m.r#type,
        id: author.as_ref().map(|a| MessageId::compute(a, wrapped)),
        payload: m.payload,
        signature: m.signature,
        signed,
        author,
    })
}

fn check_size(len: usize) -> Result<(), ChatError> {
    if len > MAX_MESSAGE_BYTES {
        return Err(ChatError::TooLarge {
            len,
            max: MAX_MESSAGE_BYTES,
        });
    }
    Ok(())
}

/// Decode a typed protobuf from peer bytes, within [`MAX_MESSAGE_BYTES`].
pub fn decode<M: prost::Message + Default>(bytes: &[u8]) -> Result<M, ChatError> {
    check_size(bytes.len())?;
    M::decode(bytes).map_err(|_| ChatError::Malformed)
}

/// Decode a `ChatMessage` (type 1).
pub fn decode_chat_message(bytes: &[u8]) -> Result<pb::ChatMessage, ChatError> {
    decode(bytes)
}

/// Encode a `ChatMessage` byte for byte as the reference does: defaults omitted, the regular fields in
/// number order, and then the `payload` oneof (sticker, image, ...) *last*, after field 19, which is where
/// Go's marshaller puts oneof members (prost would put it at its field number, 9). Either order decodes the
/// same; this one gives a sender the reference's exact bytes, hence the same signature and id.
pub fn encode_chat_message(m: &pb::ChatMessage) -> Vec<u8> {
    let mut out = Vec::with_capacity(m.encoded_len());
    match &m.payload {
        None => m.encode_raw(&mut out),
        Some(payload) => {
            let regular = pb::ChatMessage {
                payload: None,
                ..m.clone()
            };
            regular.encode_raw(&mut out);
            payload.encode(&mut out);
        }
    }
    out
}

/// Sign and wrap a `ChatMessage` (type 1), encoded as [`encode_chat_message`] does.
pub fn wrap_chat_message(m: &pb::ChatMessage, author: &SecretKey) -> Result<Wrapped, ChatError> {
    wrap(&encode_chat_message(m), MessageKind::ChatMessage, author)
}

/// Encode any message of the application protocol and wrap it, signed, with its type. Messages that
/// contain a `ChatMessage` with a oneof payload have their own encoders (see [`encode_chat_message`]).
pub fn wrap_message<M: prost::Message>(
    m: &M,
    kind: MessageKind,
    author: &SecretKey,
) -> Result<Wrapped, ChatError> {
    wrap(&m.encode_to_vec(), kind, author)
}

/// A decoded typed payload, for the types in scope of the 2020 protocol (docs/protocol/payloads.md §3, §6,
/// §7).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AppPayload {
    /// Type 1.
    ChatMessage(pb::ChatMessage),
    /// Type 2.
    ContactUpdate(pb::ContactUpdate),
    /// Type 3.
    MembershipUpdate(pb::MembershipUpdateMessage),
    /// Type 4.
    PairInstallation(pb::PairInstallation),
    /// Type 5.
    SyncInstallation(pb::SyncInstallation),
    /// Type 12.
    SyncInstallationContact(pb::SyncInstallationContact),
    /// Type 13.
    SyncInstallationAccount(pb::SyncInstallationAccount),
    /// Type 14.
    SyncInstallationPublicChat(pb::SyncInstallationPublicChat),
    /// Type 15.
    ContactCodeAdvertisement(pb::ContactCodeAdvertisement),
    /// Type 22.
    EmojiReaction(pb::EmojiReaction),
    /// Any other type (unknown, legacy type 0, or known but not decoded here): tolerated, not interpreted.
    Unsupported(i32),
}

impl AppPayload {
    /// Decode `payload` as the message `kind` names.
    pub fn decode(kind: i32, payload: &[u8]) -> Result<Self, ChatError> {
        use MessageKind as K;
        Ok(match MessageKind::try_from(kind) {
            Ok(K::ChatMessage) => AppPayload::ChatMessage(decode(payload)?),
            Ok(K::ContactUpdate) => AppPayload::ContactUpdate(decode(payload)?),
            Ok(K::MembershipUpdateMessage) => AppPayload::MembershipUpdate(decode(payload)?),
            Ok(K::PairInstallation) => AppPayload::PairInstallation(decode(payload)?),
            Ok(K::SyncInstallation) => AppPayload::SyncInstallation(decode(payload)?),
            Ok(K::SyncInstallationContact) => AppPayload::SyncInstallationContact(decode(payload)?),
            Ok(K::SyncInstallationAccount) => AppPayload::SyncInstallationAccount(decode(payload)?),
            Ok(K::SyncInstallationPublicChat) => AppPayload::SyncInstallationPublicChat(decode(payload)?),
            Ok(K::ContactCodeAdvertisement) => AppPayload::ContactCodeAdvertisement(decode(payload)?),
            Ok(K::EmojiReaction) => AppPayload::EmojiReaction(decode(payload)?),
            _ => AppPayload::Unsupported(kind),
        })
    }
}

#[cfg(test)]
mod tests;
