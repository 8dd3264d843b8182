//! Receive validation of application messages (6/PAYLOADS; docs/protocol/payloads.md §3.1, §7): a message
//! that fails any rule is dropped and never shown. Each rule has its own [`ValidationError`].
//!
//! [`validate_chat_message`] is the reference's `ValidateReceivedChatMessage`, in its order:
//!
//! 1. `clock != 0`, and at most [`MAX_CLOCK_DRIFT_MS`] ahead of the transport timestamp
//!    (the Waku envelope time in seconds × 1000);
//! 2. `timestamp != 0`;
//! 3. `trim(text)` non-empty, and `text` at most [`MAX_TEXT_CHARS`] Unicode characters (the reference
//!    counts runes, `len([]rune(text))`, not bytes). As the 2024 reference, the rule is skipped for an
//!    IMAGE whose `text` is empty (an image without a caption) and for DISCORD and BRIDGE messages
//!    (whose content is not in `text`); it applies to stickers and audio (senders put a placeholder in
//!    `text`). The 2020 reference still required a caption on images: we accept both
//!    ([`text_is_required`]);
//! 4. `chat_id` non-empty;
//! 5. `message_type` not UNKNOWN and not the local-only SYSTEM_MESSAGE_PRIVATE_GROUP;
//! 6. content type: UNKNOWN rejected; TRANSACTION_COMMAND rejected as a chat message; STICKER needs a
//!    sticker with a hash; IMAGE an image with a payload and a known type; AUDIO an audio with a payload and
//!    a known type.
//!
//! Decisions: a clock far *below* the transport time is accepted (the spec's MAY-discard is not applied:
//! it cannot be told from a datasync retransmission, and the reference accepts it). Message types other than
//! ONE_TO_ONE, PUBLIC_GROUP and PRIVATE_GROUP (including post-2020 values) are rejected. Content types the
//! rules do not name pass, as in the reference (newer clients' types are shown as text), except the
//! local-only system-message types, which a peer must never inject
//! ([`ValidationError::LocalOnlyContent`]; the reference lets them through). Chat matching (§5) and the
//! `deleted_at_clock` rule need chat state and belong to the messenger.
//!
//! [`validate_emoji_reaction`] and [`validate_pair_installation`] apply the §7 rules of those types.

use status_proto::protobuf as pb;

use crate::time::Timestamp;
use pb::chat_message::{ContentType, Payload};
use pb::MessageType;

/// How far a clock may be ahead of the transport timestamp (2 minutes).
pub const MAX_CLOCK_DRIFT_MS: u64 = 120_000;
/// Longest `text` accepted, in Unicode characters (Go runes), not bytes: a 4,096-character text of
/// 4-byte emoji is 16,384 bytes and valid. Senders check it too ([`validate_outgoing_text`]).
pub const MAX_TEXT_CHARS: usize = 4096;

/// Why a received message was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// Rule 1: the clock is zero.
    #[error("clock is zero")]
    ZeroClock,
    /// Rule 1: the clock is more than two minutes ahead of the transport timestamp.
    #[error("clock is too far in the future")]
    ClockInFuture,
    /// Rule 2: the timestamp is zero.
    #[error("timestamp is zero")]
    ZeroTimestamp,
    /// Rule 3: the text is blank.
    #[error("text is blank")]
    BlankText,
    /// Rule 3: the text is longer than [`MAX_TEXT_CHARS`] characters.
    #[error("text is longer than 4096 characters")]
    TextTooLong,
    /// Rule 4 (and §7): the chat id is empty.
    #[error("chat id is empty")]
    EmptyChatId,
    /// Rule 5 (and §7): the message type is unknown or local-only.
    #[error("invalid message type")]
    InvalidMessageType,
    /// Rule 6: the content type is UNKNOWN.
    #[error("unknown content type")]
    UnknownContentType,
    /// Rule 6: a transaction command arrived as a chat message.
    #[error("transaction command received as a chat message")]
    TransactionCommand,
    /// Rule 6: a sticker message without a sticker hash.
    #[error("sticker missing")]
    MissingSticker,
    /// Rule 6: an image message without an image payload or with an unknown image type.
    #[error("image missing or of unknown type")]
    MissingImage,
    /// Rule 6: an audio message without an audio payload or with an unknown audio type.
    #[error("audio missing or of unknown type")]
    MissingAudio,
    /// Rule 6 (local policy): a local-only system-message content type arrived from the network.
    #[error("local-only content type")]
    LocalOnlyContent,
    /// §7: an emoji reaction without the id of the message it reacts to.
    #[error("message id is empty")]
    EmptyMessageId,
    /// §7: an emoji reaction of an unknown type.
    #[error("unknown emoji reaction type")]
    UnknownReaction,
    /// §7: a pairing message with a blank name, device type or installation id.
    #[error("blank installation field")]
    BlankInstallationField,
}

impl ValidationError {
    /// The error text the reference's validator (`ValidateReceivedChatMessage`) gives for the same rule,
    /// where it was observed (`tests/vectors/compat_status_go.json`): for matching our verdicts against
    /// the reference's and for logs read beside a status-go node's. `None` for the other rules.
    pub fn reference_text(&self) -> Option<&'static str> {
        match self {
            ValidationError::ZeroClock => Some("clock can't be 0"),
            ValidationError::ClockInFuture => Some("clock value too high"),
            ValidationError::BlankText => Some("text can't be empty"),
            ValidationError::TextTooLong => Some("text shouldn't be longer than 4096"),
            _ => None,
        }
    }
}

/// Rule 1 on its own: `clock != 0` and not more than two minutes ahead of `transport_time`.
pub fn validate_clock(clock: u64, transport_time: Timestamp) -> Result<(), ValidationError> {
    if clock == 0 {
        return Err(ValidationError::ZeroClock);
    }
    let ts = transport_time.as_millis();
    if clock > ts && clock - ts > MAX_CLOCK_DRIFT_MS {
        return Err(ValidationError::ClockInFuture);
    }
    Ok(())
}

fn valid_message_type(t: i32) -> bool {
    matches!(
        MessageType::try_from(t),
        Ok(MessageType::OneToOne | MessageType::PublicGroup | MessageType::PrivateGroup)
    )
}

/// Whether rule 3 applies to a message of `content_type` with this `text`: not for an IMAGE with an
/// empty `text` (no caption; a caption of blanks is still blank) nor for DISCORD and BRIDGE messages.
pub fn text_is_required(content_type: i32, text: &str) -> bool {
    match ContentType::try_from(content_type) {
        Ok(ContentType::Image) => !text.is_empty(),
        Ok(ContentType::DiscordMessage | ContentType::BridgeMessage) => false,
        _ => true,
    }
}

/// Rule 3 on its own, which senders apply before sending as well: `trim(text)` is not empty and `text`
/// has at most [`MAX_TEXT_CHARS`] characters. Counting stops at the first character over the limit, so a
/// long text costs no more than the limit.
pub fn validate_outgoing_text(text: &str) -> Result<(), ValidationError> {
    if text.trim().is_empty() {
        return Err(ValidationError::BlankText);
    }
    if text.chars().nth(MAX_TEXT_CHARS).is_some() {
        return Err(ValidationError::TextTooLong);
    }
    Ok(())
}

/// Validate a received `ChatMessage` against the rules above. `transport_time` is the Waku envelope's
/// timestamp (seconds × 1000).
pub fn validate_chat_message(m: &pb::ChatMessage, transport_time: Timestamp) -> Result<(), ValidationError> {
    validate_clock(m.clock, transport_time)?;
    if m.timestamp == 0 {
        return Err(ValidationError::ZeroTimestamp);
    }
    if text_is_required(m.content_type, &m.text) {
        validate_outgoing_text(&m.text)?;
    }
    if m.chat_id.is_empty() {
        return Err(ValidationError::EmptyChatId);
    }
    if !valid_message_type(m.message_type) {
        return Err(ValidationError::InvalidMessageType);
    }
    match ContentType::try_from(m.content_type) {
        Ok(ContentType::UnknownContentType) => Err(ValidationError::UnknownContentType),
        Ok(ContentType::TransactionCommand) => Err(ValidationError::TransactionCommand),
        Ok(
            ContentType::SystemMessageContentPrivateGroup
            | ContentType::SystemMessageGap
            | ContentType::SystemMessagePinnedMessage
            | ContentType::SystemMessageMutualEventSent
            | ContentType::SystemMessageMutualEventAccepted
            | ContentType::SystemMessageMutualEventRemoved,
        ) => Err(ValidationError::LocalOnlyContent),
        Ok(ContentType::Sticker) => match &m.payload {
            Some(Payload::Sticker(s)) if !s.hash.is_empty() => Ok(()),
            _ => Err(ValidationError::MissingSticker),
        },
        Ok(ContentType::Image) => match &m.payload {
            Some(Payload::Image(i))
                if !i.payload.is_empty() && i.r#type != pb::ImageType::UnknownImageType as i32 =>
            {
                Ok(())
            }
            _ => Err(ValidationError::MissingImage),
        },
        Ok(ContentType::Audio) => match &m.payload {
            Some(Payload::Audio(a))
                if !a.payload.is_empty()
                    && a.r#type != pb::audio_message::AudioType::UnknownAudioType as i32 =>
            {
                Ok(())
            }
            _ => Err(ValidationError::MissingAudio),
        },
        _ => Ok(()),
    }
}

/// Validate a received `EmojiReaction` (§7): clock rule, non-empty chat and message ids, a known reaction
/// type and a valid message type.
pub fn validate_emoji_reaction(
    r: &pb::EmojiReaction,
    transport_time: Timestamp,
) -> Result<(), ValidationError> {
    validate_clock(r.clock, transport_time)?;
    if r.chat_id.is_empty() {
        return Err(ValidationError::EmptyChatId);
    }
    if r.message_id.is_empty() {
        return Err(ValidationError::EmptyMessageId);
    }
    match pb::emoji_reaction::Type::try_from(r.r#type) {
        Ok(pb::emoji_reaction::Type::UnknownEmojiReactionType) | Err(_) => {
            return Err(ValidationError::UnknownReaction)
        }
        Ok(_) => {}
    }
    if !valid_message_type(r.message_type) {
        return Err(ValidationError::InvalidMessageType);
    }
    Ok(())
}

/// Validate a received `PairInstallation` (§7): clock rule and non-blank name, device type and
/// installation id. (That the installation is already known from a bundle is the caller's check.)
pub fn validate_pair_installation(
    p: &pb::PairInstallation,
    transport_time: Timestamp,
) -> Result<(), ValidationError> {
    validate_clock(p.clock, transport_time)?;
    if [&p.name, &p.device_type, &p.installation_id]
        .iter()
        .any(|s| s.trim().is_empty())
    {
        return Err(ValidationError::BlankInstallationField);
    }
    Ok(())
}
