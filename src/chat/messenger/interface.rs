//! Inputs, outputs, events, drop reasons and errors of the [`Messenger`](super::Messenger).

use super::*;

/// Inputs.
#[derive(Debug)]
pub enum Input {
    /// Join a public chat.
    JoinPublicChat(ChatId),
    /// Leave a public chat.
    LeavePublicChat(ChatId),
    /// Send a text to a chat of any kind, by chat id.
    SendText {
        /// The chat id.
        chat: ChatId,
        /// The text.
        text: String,
    },
    /// Open the 1:1 chat with this identity (idempotent); its id is [`Messenger::one_to_one_chat_id`].
    StartOneToOne(PublicKey),
    /// Create a private group with us as admin and these members; raises [`Event::GroupCreated`].
    CreateGroup {
        /// The group name.
        name: String,
        /// The other members.
        members: Vec<PublicKey>,
    },
    /// Add members (admins only).
    AddMembers {
        /// The group's chat id.
        chat: ChatId,
        /// The new members.
        members: Vec<PublicKey>,
    },
    /// Remove a member who is not an admin (admins only).
    RemoveMember {
        /// The group's chat id.
        chat: ChatId,
        /// The member.
        member: PublicKey,
    },
    /// Make a member an admin (admins only).
    MakeAdmin {
        /// The group's chat id.
        chat: ChatId,
        /// The member.
        member: PublicKey,
    },
    /// Rename the group (admins only).
    RenameGroup {
        /// The group's chat id.
        chat: ChatId,
        /// The new name.
        name: String,
    },
    /// Leave the group (the chat and its messages stay, read-only).
    LeaveGroup {
        /// The group's chat id.
        chat: ChatId,
    },
    /// A message a Waku filter opened.
    Received(Box<ReceivedMessage>),
    /// The driver made the [`Output::Persist`] batch `seq` (and every batch before it) durable: the
    /// outputs held behind it are released (only with [`MessengerConfig::durable`]).
    Persisted(crate::persist::BatchSeq),
}

/// Outputs.
#[derive(Debug)]
#[non_exhaustive]
pub enum Output {
    /// Install this Waku filter under the name `chat` (a public chat name, [`PARTITIONED_SUBSCRIPTION`],
    /// or [`NEGOTIATED_SUBSCRIPTION_PREFIX`] + a peer id).
    Subscribe {
        /// The subscription name.
        chat: String,
        /// The filter.
        filter: Filter,
    },
    /// Remove the filter installed under `chat`.
    Unsubscribe {
        /// The subscription name.
        chat: String,
    },
    /// Post this message through Waku (the layer below).
    Transmit(Box<NewMessage>),
    /// Something for the application.
    Event(Event),
    /// Make these records durable (one atomic write), then confirm with [`Input::Persisted`]. Only with
    /// [`MessengerConfig::durable`]; every output that reveals the state they carry (a ciphertext, an
    /// acknowledgement, a delivered or sent event) waits behind them (see [`crate::persist`]).
    Persist(crate::persist::Batch),
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
    /// The text (an image's caption, a sticker's or audio's placeholder; may be empty for an image).
    pub text: String,
    /// What the message carries besides its text: sticker, image or audio (with its bytes in
    /// [`Event::MessageReceived`]; the chat log, [`Messenger::messages`], keeps their length and hash
    /// only, and [`Messenger::export`] keeps neither: an imported entry is [`Content::Text`]).
    pub content: Content,
}

impl ChatEntry {
    /// One line describing the message (`chat::content::describe`): the text, or a tag for a
    /// sticker, image (then its caption) or audio. The text is the peer's: escape it before printing.
    pub fn describe(&self) -> String {
        crate::chat::content::describe(&self.content, &self.text)
    }
}

/// The kind of a chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatKind {
    /// A public chat.
    Public,
    /// A 1:1 chat.
    OneToOne,
    /// A private group.
    Group,
}

/// Why a received message (or a chat at its cap) was dropped: [`Event::Dropped`]. `Display` gives a
/// one-line description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DropReason {
    /// The envelope carried no signature, so it has no sender.
    #[error("unsigned envelope")]
    UnsignedEnvelope,
    /// The secure transport refused the payload as a command (e.g. over its size limit).
    #[error("secure transport refused the payload")]
    SecureRefused,
    /// The secure transport rejected the message because of its sender ([`secure::Event::PeerFault`]).
    #[error("secure transport: {0}")]
    Secure(secure::SecureError),
    /// A message on a public chat's or contact-code topic that is not a public message.
    #[error("not a public message")]
    NotPublic,
    /// The signed application wrapper is malformed or badly signed.
    #[error("wrapper: {0}")]
    Wrapper(crate::chat::ChatError),
    /// A public-chat message that is not a `ChatMessage`.
    #[error("not a chat message")]
    NotChatMessage,
    /// The wrapper carries no author or id.
    #[error("no author")]
    NoAuthor,
    /// The `ChatMessage` does not decode.
    #[error("chat message: {0}")]
    ChatMessage(crate::chat::ChatError),
    /// The message breaks a receive validation rule.
    #[error("invalid: {0}")]
    Invalid(crate::chat::ValidationError),
    /// A public-chat message whose chat id or type is not the chat's.
    #[error("not for this public chat")]
    WrongPublicChat,
    /// A private application message of a type the Messenger does not handle.
    #[error("unsupported message type")]
    UnsupportedMessageType,
    /// A private `ChatMessage` that is not of type `ONE_TO_ONE`.
    #[error("not a 1:1 message")]
    NotOneToOne,
    /// A 1:1 message we wrote on another device whose chat id is not a valid key.
    #[error("own 1:1 message without a valid chat id")]
    OwnOneToOneWithoutChatId,
    /// A message from a new identity while every 1:1 chat is accepted and the cap is reached.
    #[error("1:1 chat limit reached")]
    OneToOneLimit,
    /// The oldest unanswered contact request was dropped to make room for a new 1:1 chat.
    #[error("1:1 chat limit: unanswered contact request {0} dropped")]
    ContactRequestEvicted(ChatId),
    /// The `MembershipUpdateMessage` does not decode.
    #[error("membership update: {0}")]
    MembershipUpdate(crate::chat::GroupError),
    /// The membership events do not fold into the group.
    #[error("membership: {0}")]
    Membership(crate::chat::GroupError),
    /// A group message whose author is not a member.
    #[error("group message from a non-member")]
    GroupMessageFromNonMember,
    /// A group update for a group we are not a member of.
    #[error("a group we are not a member of")]
    NotAGroupMember,
    /// A new group while every group is accepted and the cap is reached.
    #[error("group limit reached")]
    GroupLimit,
    /// The oldest group we never wrote in was dropped to make room for a new one.
    #[error("group limit: group {0} we never wrote in dropped")]
    GroupEvicted(ChatId),
    /// A group text whose author is not a member.
    #[error("group text from a non-member")]
    GroupTextFromNonMember,
    /// A group text arriving after we left the group.
    #[error("group text after we left")]
    GroupTextAfterLeft,
    /// A group text whose chat id or type is not the group's.
    #[error("not for this group")]
    WrongGroup,
    /// A message on a contact's contact-code topic that is not that contact's signed advertisement.
    #[error("not the contact's contact-code advertisement")]
    NotContactAdvertisement,
    /// The wrapper on a contact-code topic is malformed or badly signed.
    #[error("contact code: {0}")]
    ContactCode(crate::chat::ChatError),
    /// Our own contact-code advertisement could not be made (not a received message).
    #[error("contact code advertisement: {0}")]
    ContactCodeAdvertisement(Box<MessengerError>),
}

/// Events.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A message arrived in a chat (or our own came back from the network: see `own`).
    MessageReceived {
        /// The chat.
        chat: ChatId,
        /// The message.
        message: ChatEntry,
        /// True if we wrote it.
        own: bool,
    },
    /// We sent a message.
    MessageSent {
        /// The chat.
        chat: ChatId,
        /// Its id.
        id: MessageId,
    },
    /// A received message was dropped (or, for the eviction and advertisement reasons, a chat or our
    /// own advertisement was given up).
    Dropped {
        /// Why.
        reason: DropReason,
    },
    /// `to` acknowledged (through MVDS) the text `id` we sent in `chat`.
    Delivered {
        /// The chat.
        chat: ChatId,
        /// The text's id.
        id: MessageId,
        /// The recipient.
        to: PublicKey,
    },
    /// MVDS gave up delivering the text `id` to `to`.
    DeliveryFailed {
        /// The chat.
        chat: ChatId,
        /// The text's id.
        id: MessageId,
        /// The recipient.
        to: PublicKey,
    },
    /// An identity we had no chat with wrote to us; the 1:1 chat `chat` was created.
    ContactRequest {
        /// The identity.
        from: PublicKey,
        /// The new chat's id.
        chat: ChatId,
    },
    /// We created a group.
    GroupCreated {
        /// Its chat id.
        chat: ChatId,
        /// Its name.
        name: String,
    },
    /// A group's name, members or admins changed (or we learnt of a group we are a member of).
    MembershipChanged {
        /// The group's chat id.
        chat: ChatId,
        /// Its name.
        name: String,
        /// Its members, ordered by their `"0x04…"` id.
        members: Vec<PublicKey>,
        /// Its admins, same order.
        admins: Vec<PublicKey>,
        /// True if this change removed us.
        removed_self: bool,
    },
}

/// Errors the Messenger returns for misuse, and for state that cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessengerError {
    /// The chat is not joined (or does not exist).
    #[error("not in chat {0:?}")]
    NotJoined(String),
    /// Too many chats (public, 1:1 or groups, each has its cap).
    #[error("chat limit reached")]
    TooManyChats,
    /// A 1:1 chat with ourselves.
    #[error("a 1:1 chat needs another identity")]
    OwnKey,
    /// We are not (or no longer) a member of the group.
    #[error("not a member of group {0:?}")]
    NotMember(String),
    /// The secure transport refused the payload.
    #[error(transparent)]
    Secure(#[from] secure::SecureError),
    /// The payload could not be built, or a group change is not allowed (e.g. not an admin).
    #[error(transparent)]
    Chat(#[from] crate::chat::ChatError),
    /// MVDS refused the message.
    #[error(transparent)]
    Mvds(#[from] mvds::MvdsError),
    /// The secure transport accepted the payload but produced no message to post (a bug if seen).
    #[error("the secure transport produced no message")]
    NoMessage,
    /// The text to send breaks the receive rule every reference client applies (blank, or longer than
    /// [`crate::chat::validate::MAX_TEXT_CHARS`] characters): it was not sent.
    #[error("text not sent: {0}")]
    Text(crate::chat::ValidationError),
    /// The [`MessengerConfig`] is unusable ([`MessengerConfig::validate`]); the reason names the field.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
    /// Bytes given to [`Messenger::import`] are not a valid state.
    #[error("invalid messenger state: {0}")]
    InvalidState(&'static str),
    /// Misuse of the persistence contract (a confirmation of a batch never handed out).
    #[error("persistence: {0}")]
    Persist(crate::persist::PersistError),
}

impl From<crate::chat::GroupError> for MessengerError {
    fn from(e: crate::chat::GroupError) -> Self {
        MessengerError::Chat(e.into())
    }
}
