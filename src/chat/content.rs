//! What a received chat message carries besides its text (6/PAYLOADS; spec/payloads.md §3): stickers,
//! images and audio as typed [`Content`], and the one-line description of each kind that a terminal
//! front end prints ([`describe`]).
//!
//! The content comes from a `ChatMessage` that passed [`super::validate::validate_chat_message`], so a
//! sticker has a hash and an image or audio a payload of a known format. Media bytes are shared
//! ([`Bytes`]), never copied; each media also carries the Keccak-256 of its bytes, so a message can be
//! referred to after the bytes are gone (the Messenger's chat log keeps the hash, not the bytes).
//!
//! Content types whose content is the text (plain text, emoji, status, contact requests and types newer
//! than this implementation) are [`Content::Text`]; the 2024 types whose content is an opaque payload
//! we do not interpret (community, Discord, bridge) are [`Content::Other`].

use bytes::Bytes;
use status_proto::protobuf as pb;

use pb::chat_message::{ContentType, Payload};

/// An image or audio payload.
#[derive(Clone, PartialEq, Eq)]
pub struct Media {
    /// The format: `ImageType` for images, `AudioMessage.AudioType` for audio (raw protobuf value).
    pub format: i32,
    /// Length of the bytes.
    pub len: usize,
    /// Keccak-256 of the bytes.
    pub hash: [u8; 32],
    /// The bytes (empty once dropped, e.g. in the Messenger's chat log).
    pub data: Bytes,
}

impl Media {
    fn new(format: i32, data: &Bytes) -> Media {
        Media {
            format,
            len: data.len(),
            hash: crate::crypto::keccak256(data),
            data: data.clone(),
        }
    }

    /// The same media without its bytes (length and hash kept).
    pub fn without_data(&self) -> Media {
        Media {
            data: Bytes::new(),
            ..self.clone()
        }
    }
}

impl core::fmt::Debug for Media {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Media")
            .field("format", &self.format)
            .field("len", &self.len)
            .field("hash", &Hex(&self.hash))
            .field("data_kept", &!self.data.is_empty())
            .finish()
    }
}

/// What a message carries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Content {
    /// The text is the content.
    #[default]
    Text,
    /// A sticker (the text is a placeholder for clients that cannot show it).
    Sticker {
        /// The sticker's content hash (as the sender gave it).
        hash: String,
        /// The sticker pack.
        pack: i32,
    },
    /// An image; the text is its caption (possibly empty).
    Image(Box<Media>),
    /// An audio message.
    Audio {
        /// The audio.
        media: Box<Media>,
        /// Its duration, ms.
        duration_ms: u64,
    },
    /// A content type whose payload is not interpreted here (community, Discord, bridge).
    Other {
        /// The raw content type.
        content_type: i32,
    },
}

impl Content {
    /// The content of a (validated) `ChatMessage`. A payload that does not match the content type is
    /// ignored (the validator refuses it for the types named here).
    pub fn of(m: &pb::ChatMessage) -> Content {
        match (ContentType::try_from(m.content_type), &m.payload) {
            (Ok(ContentType::Sticker), Some(Payload::Sticker(s))) => Content::Sticker {
                hash: s.hash.clone(),
                pack: s.pack,
            },
            (Ok(ContentType::Image), Some(Payload::Image(i))) => {
                Content::Image(Box::new(Media::new(i.r#type, &i.payload)))
            }
            (Ok(ContentType::Audio), Some(Payload::Audio(a))) => Content::Audio {
                media: Box::new(Media::new(a.r#type, &a.payload)),
                duration_ms: a.duration_ms,
            },
            (Ok(ContentType::Community | ContentType::DiscordMessage | ContentType::BridgeMessage), _) => {
                Content::Other {
                    content_type: m.content_type,
                }
            }
            _ => Content::Text,
        }
    }

    /// The same content without media bytes (what a chat log keeps).
    pub fn without_data(&self) -> Content {
        match self {
            Content::Image(m) => Content::Image(Box::new(m.without_data())),
            Content::Audio { media, duration_ms } => Content::Audio {
                media: Box::new(media.without_data()),
                duration_ms: *duration_ms,
            },
            other => other.clone(),
        }
    }
}

struct Hex<'a>(&'a [u8]);

impl core::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl core::fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(self, f)
    }
}

fn image_format(t: i32) -> &'static str {
    match pb::ImageType::try_from(t) {
        Ok(pb::ImageType::Png) => "PNG",
        Ok(pb::ImageType::Jpeg) => "JPEG",
        Ok(pb::ImageType::Webp) => "WebP",
        Ok(pb::ImageType::Gif) => "GIF",
        _ => "unknown format",
    }
}

fn audio_format(t: i32) -> &'static str {
    match pb::audio_message::AudioType::try_from(t) {
        Ok(pb::audio_message::AudioType::Aac) => "AAC",
        Ok(pb::audio_message::AudioType::Amr) => "AMR",
        _ => "unknown format",
    }
}

/// The first 8 bytes of a hash, as hex (enough to tell media apart on a terminal).
fn short(hash: &[u8]) -> String {
    Hex(&hash[..hash.len().min(8)]).to_string()
}

/// One line describing a message of `content` with `text`, for a terminal or a log:
///
/// | content | line |
/// |---|---|
/// | text | the text |
/// | sticker | `[sticker pack 7, e3010170…]` (the placeholder text is left out) |
/// | image | `[image PNG, 12345 bytes, keccak 1a2b…]`, then ` ` and the caption if there is one |
/// | audio | `[audio AAC, 2.5 s, 12345 bytes, keccak 1a2b…]` |
/// | other | `[content type 12]`, then the text if any |
///
/// The text is the peer's: escape control characters before printing the line.
pub fn describe(content: &Content, text: &str) -> String {
    let with_text = |tag: String| {
        if text.is_empty() {
            tag
        } else {
            format!("{tag} {text}")
        }
    };
    match content {
        Content::Text => text.to_string(),
        Content::Sticker { hash, pack } => {
            let shown: String = hash.chars().take(16).collect();
            let more = if hash.chars().nth(16).is_some() { "…" } else { "" };
            format!("[sticker pack {pack}, {shown}{more}]")
        }
        Content::Image(m) => with_text(format!(
            "[image {}, {} bytes, keccak {}…]",
            image_format(m.format),
            m.len,
            short(&m.hash)
        )),
        Content::Audio { media, duration_ms } => format!(
            "[audio {}, {}.{} s, {} bytes, keccak {}…]",
            audio_format(media.format),
            duration_ms / 1000,
            (duration_ms % 1000) / 100,
            media.len,
            short(&media.hash)
        ),
        Content::Other { content_type } => with_text(format!("[content type {content_type}]")),
    }
}

#[cfg(test)]
mod tests;
