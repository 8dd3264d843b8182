//! Typed chat ids (docs/protocol/payloads.md §5): the id that names a chat in the Messenger's inputs
//! and events.

use core::fmt;

/// The id of a chat: a public chat's name, a 1:1 chat's `"0x04…"` (the peer's uncompressed key in
/// lowercase hex, [`crate::chat::messenger::Messenger::one_to_one_chat_id`]) or a private group's
/// `uuid-0x04<creator>` id. It is the `chat_id` string of the wire's `ChatMessage`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ChatId(String);

impl ChatId {
    /// A chat id from its string form.
    pub fn new(id: impl Into<String>) -> Self {
        ChatId(id.into())
    }

    /// The string form (as on the wire).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The string form, by value.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for ChatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for ChatId {
    fn from(id: String) -> Self {
        ChatId(id)
    }
}

impl From<&str> for ChatId {
    fn from(id: &str) -> Self {
        ChatId(id.to_string())
    }
}

impl From<&String> for ChatId {
    fn from(id: &String) -> Self {
        ChatId(id.clone())
    }
}

impl From<ChatId> for String {
    fn from(id: ChatId) -> Self {
        id.0
    }
}

impl AsRef<str> for ChatId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl core::borrow::Borrow<str> for ChatId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for ChatId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for ChatId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for ChatId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

/// Read access to the string form (`id.starts_with(..)`, `&id` where a `&str` is expected).
impl core::ops::Deref for ChatId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}
