//! The Messenger, first slice: public chats (payloads.md §1–§5; status-transport-usage.md §2–§3).
//!
//! It never touches a socket or the Waku node directly: it asks for subscriptions and posts
//! ([`Output::Subscribe`], [`Output::Unsubscribe`], [`Output::Post`]) and takes the messages Waku filters
//! opened ([`Input::Received`]).
//!
//! Sending a text: a `ChatMessage` (`PUBLIC_GROUP`, `TEXT_PLAIN`, the chat's Lamport clock) is signed and
//! wrapped in an `ApplicationMetadataMessage`, carried as the `public_message` of a secure-transport
//! `ProtocolMessage` (with our bundle), and posted on the chat's topic with its PBKDF2 key, signed at the
//! Waku layer with our identity. Receiving reverses it and drops, never shows, anything that fails: the
//! wrapper or its signature, the payload type, the validation rules, a `chat_id` that is not this chat's,
//! or a duplicate id. Accepted messages advance the chat's clock.
//!
//! Not yet here: 1:1 and group chats (secure sessions and MVDS), contact requests, persistence of the
//! chat logs.

use std::collections::{BTreeMap, VecDeque};

use status_proto::protobuf as pb;

use super::log::{ChatLog, Insert, DEFAULT_MAX_MESSAGES};
use super::payloads::{decode_chat_message, unwrap, wrap_chat_message, MessageId, MessageKind};
use super::validate::validate_chat_message;
use crate::crypto::{PublicKey, SecretKey};
use crate::rng::Seed;
use crate::secure::{self, SecureTransport};
use crate::time::Timestamp;
use crate::waku::message::{NewMessage, PostKey};
use crate::waku::{status, Filter, ReceivedMessage, Topic};

/// TTL of chat envelopes (status-go `whisperTTL`).
pub const CHAT_TTL: u32 = 15;
/// PoW target for payloads up to 50,000 bytes (status-go `calculatePoW`).
pub const POW_TARGET: f64 = 0.002;
/// PoW target above 50,000 bytes.
pub const POW_TARGET_LARGE: f64 = 0.000002;

/// Messenger configuration.
#[derive(Clone)]
pub struct MessengerConfig {
    /// Our chat identity.
    pub identity: SecretKey,
    /// This device's installation id.
    pub installation_id: String,
    /// Most public chats joined at once. Default 256.
    pub max_chats: usize,
    /// Messages kept per chat. Default 10,000.
    pub max_messages_per_chat: usize,
}

impl core::fmt::Debug for MessengerConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MessengerConfig")
            .field("identity", &self.identity.public_key())
            .field("installation_id", &self.installation_id)
            .finish_non_exhaustive()
    }
}

impl MessengerConfig {
    /// Defaults around an identity.
    pub fn new(identity: SecretKey, installation_id: String) -> Self {
        MessengerConfig {
            identity,
            installation_id,
            max_chats: 256,
            max_messages_per_chat: DEFAULT_MAX_MESSAGES,
        }
    }
}

/// Inputs.
#[derive(Debug)]
pub enum Input {
    /// Join a public chat.
    JoinPublicChat(String),
    /// Leave a public chat.
    LeavePublicChat(String),
    /// Send a text to a joined chat.
    SendText {
        /// The chat name.
        chat: String,
        /// The text.
        text: String,
    },
    /// A message a Waku filter opened.
    Received(Box<ReceivedMessage>),
}

/// Outputs.
#[derive(Debug)]
pub enum Output {
    /// Install this Waku filter for `chat`.
    Subscribe {
        /// The chat.
        chat: String,
        /// The filter.
        filter: Filter,
    },
    /// Remove the filter installed for `chat`.
    Unsubscribe {
        /// The chat.
        chat: String,
    },
    /// Post this message through Waku.
    Post(Box<NewMessage>),
    /// Something for the application.
    Event(Event),
}

/// A chat message as shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatEntry {
    /// The message id.
    pub id: MessageId,
    /// The author.
    pub author: PublicKey,
    /// The Lamport clock.
    pub clock: u64,
    /// The sender's timestamp (ms).
    pub timestamp: u64,
    /// The text.
    pub text: String,
}

/// Events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A message arrived in a chat (or our own came back from the network: see `own`).
    MessageReceived {
        /// The chat.
        chat: String,
        /// The message.
        message: ChatEntry,
        /// True if we wrote it.
        own: bool,
    },
    /// We sent a message.
    MessageSent {
        /// The chat.
        chat: String,
        /// Its id.
        id: MessageId,
    },
    /// A received message was dropped.
    Dropped {
        /// Why.
        reason: String,
    },
}

/// Errors the Messenger returns for misuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessengerError {
    /// The chat is not joined.
    #[error("not in chat {0:?}")]
    NotJoined(String),
    /// Too many chats.
    #[error("chat limit reached")]
    TooManyChats,
    /// The secure transport refused the payload.
    #[error(transparent)]
    Secure(#[from] secure::SecureError),
    /// The payload could not be built.
    #[error(transparent)]
    Chat(#[from] super::ChatError),
    /// The secure transport accepted the payload but produced no message to post (a bug if seen).
    #[error("the secure transport produced no message")]
    NoMessage,
}

struct PublicChat {
    topic: Topic,
    log: ChatLog<ChatEntry>,
}

/// The Messenger. See the [module docs](self).
pub struct Messenger {
    config: MessengerConfig,
    secure: SecureTransport,
    chats: BTreeMap<String, PublicChat>,
    outputs: VecDeque<Output>,
}

impl core::fmt::Debug for Messenger {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Messenger")
            .field("chats", &self.chats.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Messenger {
    /// A messenger for `config`, drawing randomness from `seed`.
    pub fn new(now: Timestamp, config: MessengerConfig, seed: Seed) -> Self {
        let secure = SecureTransport::new(
            config.identity.clone(),
            config.installation_id.clone(),
            seed,
            secure::Config::default(),
            now,
        );
        Messenger {
            config,
            secure,
            chats: BTreeMap::new(),
            outputs: VecDeque::new(),
        }
    }

    /// Our identity's public key.
    pub fn public_key(&self) -> PublicKey {
        self.config.identity.public_key()
    }

    /// Joined chats.
    pub fn chats(&self) -> impl Iterator<Item = &str> {
        self.chats.keys().map(String::as_str)
    }

    /// The messages of a chat in display order.
    pub fn messages(&self, chat: &str) -> Vec<&ChatEntry> {
        self.chats
            .get(chat)
            .map(|c| c.log.iter().map(|(_, _, m)| m).collect())
            .unwrap_or_default()
    }

    /// Feed an input. `Err` only for misuse (an unknown chat, too many chats, an oversized payload).
    pub fn handle_input(&mut self, now: Timestamp, input: Input) -> Result<(), MessengerError> {
        match input {
            Input::JoinPublicChat(name) => {
                if self.chats.contains_key(&name) {
                    return Ok(());
                }
                if self.chats.len() >= self.config.max_chats {
                    return Err(MessengerError::TooManyChats);
                }
                let topic = status::public_chat_topic(&name);
                let filter = Filter::symmetric(vec![topic], *status::public_chat_key(&name));
                self.chats.insert(
                    name.clone(),
                    PublicChat {
                        topic,
                        log: ChatLog::new(self.config.max_messages_per_chat),
                    },
                );
                self.outputs.push_back(Output::Subscribe { chat: name, filter });
            }
            Input::LeavePublicChat(name) => {
                if self.chats.remove(&name).is_some() {
                    self.outputs.push_back(Output::Unsubscribe { chat: name });
                }
            }
            Input::SendText { chat, text } => self.send_text(now, chat, text)?,
            Input::Received(m) => self.on_received(now, *m),
        }
        Ok(())
    }

    fn send_text(&mut self, now: Timestamp, chat: String, text: String) -> Result<(), MessengerError> {
        let c = self
            .chats
            .get_mut(&chat)
            .ok_or_else(|| MessengerError::NotJoined(chat.clone()))?;
        let (clock, timestamp) = c.log.tick(now);
        let m = pb::ChatMessage {
            clock,
            timestamp,
            text: text.clone(),
            chat_id: chat.clone(),
            message_type: pb::MessageType::PublicGroup as i32,
            content_type: pb::chat_message::ContentType::TextPlain as i32,
            ..Default::default()
        };
        let wrapped = wrap_chat_message(&m, &self.config.identity)?;
        self.secure.handle_input(
            now,
            secure::Input::Public {
                payload: wrapped.bytes.to_vec(),
            },
        )?;
        let topic = c.topic;
        let mut bytes = None;
        while let Some(o) = self.secure.poll_output() {
            if let secure::Output::Send(out) = o {
                bytes = Some(out.bytes);
            }
        }
        let payload = bytes.ok_or(MessengerError::NoMessage)?;
        let pow_target = if payload.len() > 50_000 {
            POW_TARGET_LARGE
        } else {
            POW_TARGET
        };
        self.outputs.push_back(Output::Post(Box::new(NewMessage {
            topic,
            payload,
            key: PostKey::Symmetric(status::public_chat_key(&chat)),
            signer: Some(self.config.identity.clone()),
            ttl: CHAT_TTL,
            pow_target,
            padding: None,
        })));
        let me = self.config.identity.public_key();
        let entry = ChatEntry {
            id: wrapped.id,
            author: me,
            clock,
            timestamp,
            text,
        };
        let _ = c.log.insert(wrapped.id, clock, entry);
        self.outputs
            .push_back(Output::Event(Event::MessageSent { chat, id: wrapped.id }));
        Ok(())
    }

    fn drop_with(&mut self, reason: impl Into<String>) {
        self.outputs.push_back(Output::Event(Event::Dropped {
            reason: reason.into(),
        }));
    }

    fn on_received(&mut self, now: Timestamp, m: ReceivedMessage) {
        let Some(chat) = self
            .chats
            .iter()
            .find(|(_, c)| c.topic == m.topic)
            .map(|(n, _)| n.clone())
        else {
            return self.drop_with("no chat on this topic");
        };
        let Some(sender) = m.sender else {
            return self.drop_with("unsigned envelope");
        };
        if self
            .secure
            .handle_input(
                now,
                secure::Input::Received {
                    sender,
                    bytes: m.payload.to_vec(),
                },
            )
            .is_err()
        {
            return self.drop_with("secure transport refused the payload");
        }
        let mut public = None;
        while let Some(o) = self.secure.poll_output() {
            match o {
                secure::Output::Event(secure::Event::Public { payload, .. }) => public = Some(payload),
                secure::Output::Event(secure::Event::Rejected { error, .. }) => {
                    return self.drop_with(format!("secure transport: {error}"));
                }
                _ => {}
            }
        }
        let Some(payload) = public else {
            return self.drop_with("not a public message");
        };
        let unwrapped = match unwrap(&payload, Some(&sender)) {
            Ok(u) => u,
            Err(e) => return self.drop_with(format!("wrapper: {e}")),
        };
        if unwrapped.message_kind() != Some(MessageKind::ChatMessage) {
            return self.drop_with("not a chat message");
        }
        let (Some(author), Some(id)) = (unwrapped.author, unwrapped.id) else {
            return self.drop_with("no author");
        };
        let cm = match decode_chat_message(&unwrapped.payload) {
            Ok(cm) => cm,
            Err(e) => return self.drop_with(format!("chat message: {e}")),
        };
        let transport_time = Timestamp::from_secs(u64::from(m.timestamp));
        if let Err(e) = validate_chat_message(&cm, transport_time) {
            return self.drop_with(format!("invalid: {e}"));
        }
        if cm.chat_id != chat || cm.message_type != pb::MessageType::PublicGroup as i32 {
            return self.drop_with("not for this public chat");
        }
        let own = author == self.public_key();
        let entry = ChatEntry {
            id,
            author,
            clock: cm.clock,
            timestamp: cm.timestamp,
            text: cm.text,
        };
        let Some(c) = self.chats.get_mut(&chat) else {
            return;
        };
        match c.log.insert(id, cm.clock, entry.clone()) {
            Insert::Added => {
                self.outputs.push_back(Output::Event(Event::MessageReceived {
                    chat,
                    message: entry,
                    own,
                }));
            }
            Insert::Duplicate | Insert::BelowWindow => {}
        }
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }
}
