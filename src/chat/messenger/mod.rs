//! The Messenger: public chats, 1:1 chats, contact requests, private group chats, delivery reports and
//! persistence (docs/protocol/payloads.md §1–§6; docs/protocol/status-transport-usage.md §2–§3;
//! docs/protocol/secure-transport.md §11; docs/protocol/mvds.md §6).
//!
//! It never touches a socket or the Waku node directly: it asks for subscriptions and posts
//! ([`Output::Subscribe`], [`Output::Unsubscribe`], [`Output::Transmit`]) and takes the messages Waku filters
//! opened ([`Input::Received`]). Its timers ([`Messenger::handle_timeout`] / [`Messenger::poll_timeout`])
//! drive MVDS retransmission and the secure transport's prekey rotation.
//!
//! **Public chats** (docs/protocol/payloads.md §5, docs/protocol/status-transport-usage.md §2): a
//! `ChatMessage` (`PUBLIC_GROUP`) is signed, wrapped in an `ApplicationMetadataMessage`, carried as the
//! `public_message` of a secure-transport `ProtocolMessage` (with our bundle), and posted on the chat's topic
//! with its PBKDF2 key. No MVDS.
//!
//! **1:1 chats** (chat id `"0x04…"` of the peer): a `ChatMessage` (`ONE_TO_ONE`, `chat_id` = the
//! recipient's id) is wrapped; the wrapper bytes are the body of an MVDS message in the pairwise group
//! `one_to_one(me, peer)` (docs/protocol/mvds.md §6). Each MVDS payload the node transmits is encrypted by
//! the [`SecureTransport`] for every installation of the peer and posted as the transport routes it: ECIES on
//! the peer's partitioned topic until every targeted installation has written to us, then AES-GCM on the
//! negotiated topic. We listen on our partitioned topic (asymmetric filter with our key) from the start
//! and on each negotiated topic when the secure transport reports its secret. Bundles travel in every
//! `ProtocolMessage`; a first message to a peer whose bundle we lack goes DH-only and the answer carries
//! the peer's bundle, so sessions follow. Received plaintexts go through the datasync unwrap: each MVDS
//! body is handled at once (de-duplicated by message id) and the payload is fed to the MVDS node, which
//! ACKs it.
//!
//! **Content**: every shown message carries its typed [`Content`] (text, sticker, image, audio) in
//! [`ChatEntry::content`], media bytes included in the event; [`ChatEntry::describe`] is its one-line
//! description. Texts we send are checked against the receive rule first ([`MessengerError::Text`]).
//!
//! **Contact codes** (secure-transport.md §3.4): for each contact (a 1:1 chat we started or wrote in) we
//! listen on its contact-code topic with its PBKDF2 key, at most [`MessengerConfig::max_contact_codes`]
//! of them (each costs a PBKDF2 derivation and a filter). The `CONTACT_CODE_ADVERTISEMENT` found there
//! must be signed by that contact; the bundle its `ProtocolMessage` carries goes to the secure transport
//! (which keeps the newest signed prekey of each installation), so a first message to a contact whose
//! advertisement we have seen starts an X3DH session instead of going DH-only, and a newer advertisement
//! (a rotated prekey) is used from then on.
//!
//! **Contact requests**: a 1:1 message from an identity we have no chat with creates the chat and raises
//! [`Event::ContactRequest`] once (the chat then exists).
//!
//! **Private groups** (docs/protocol/payloads.md §6): chat id `uuid-0x04<creator>` (uuid from the seeded
//! RNG). Every group message, chat text or membership change, is a `MembershipUpdateMessage` carrying all the
//! group's signed events (plus the `PRIVATE_GROUP` `ChatMessage`, if any), sent pairwise through MVDS
//! and the secure transport to each current member; a removal also goes to the removed member (so it
//! learns it, as the reference sends it to the members before the change), nothing later does. The group state is the validated fold of [`super::group`]; received
//! events that do not fold are dropped. Once a removed member's last pending delivery settled and we
//! share no 1:1 chat or group with it, it is removed from the pairwise MVDS group.
//!
//! **Delivery**: each MVDS message a text went out in is mapped back to the text's id: MVDS ACKs become
//! [`Event::Delivered`], give-ups [`Event::DeliveryFailed`].
//!
//! **Persistence**: [`Messenger::export`] / [`Messenger::import`] (see `persist.rs`). With
//! [`MessengerConfig::durable`], every change goes out as an [`Output::Persist`] batch before anything
//! that reveals it; each batch also carries the outbox (the received and sent-message events it makes
//! durable but has not released), which [`Messenger::restore`] gives again, so a crash between a
//! driver's commit and its confirmation loses no event.
//!
//! Deviations from the reference, deliberate:
//! * group members are not asked to confirm (no MEMBER_JOINED step is needed): a member's text is shown
//!   if its author is a *member* (the reference requires a *joined* author and that we joined);
//! * we advertise our bundle on our contact-code topic (120 s after start, then every 6 h, as the
//!   reference);
//! * an incoming 1:1 message is attributed by its application-layer author (as the reference does) and
//!   creates the chat (the spec allows discarding it instead); messages we wrote on another device go to
//!   the chat named by their `chat_id`.
//!
//! Caps ([`MessengerConfig`]): public chats, 1:1 chats, groups, members per group, messages per chat,
//! tracked deliveries, negotiated topics, queued outputs; the MVDS and secure-transport caps are theirs.

mod group_chat;
mod interface;
mod one_to_one;
mod pairwise;
mod persist;
mod public_chat;

pub use interface::{ChatEntry, ChatKind, DropReason, Event, Input, MessengerError, Output};

use std::collections::{BTreeMap, VecDeque};

use rand_chacha::ChaCha20Rng;
use status_proto::protobuf as pb;
use zeroize::Zeroizing;

pub use super::content::Content;
use super::group::{Group, GroupLimits};
use super::identity::pubkey_to_hex;
use super::message_log::{ChatLog, Insert, DEFAULT_MAX_MESSAGES};
use super::payloads::{decode_chat_message, unwrap, wrap_chat_message, MessageId, MessageKind};
use super::validate::{validate_chat_message, validate_outgoing_text};
use super::ChatId;
use crate::crypto::{PublicKey, SecretKey};
use crate::mvds;
use crate::rng::{fork, Seed};
use crate::secure::{self, SecureTransport};
use crate::time::{earliest, Timestamp};
use crate::waku::message::{NewMessage, PostKey};
use crate::waku::{status, Filter, ReceivedMessage, Topic};

pub use persist::STATE_VERSION;

/// Queued contact-code topics subscribed per [`Messenger::handle_timeout`] call.
const CONTACT_CODES_PER_TIMEOUT: usize = 8;

/// Delay from start to the first contact-code advertisement (the reference checks on a 120 s ticker).
pub const CONTACT_CODE_FIRST_ADVERT: core::time::Duration = core::time::Duration::from_secs(120);

/// A plain-text `ChatMessage` of `kind` for `chat`.
fn text_message(
    clock: u64,
    timestamp: u64,
    text: &str,
    chat: &str,
    kind: pb::MessageType,
) -> pb::ChatMessage {
    pb::ChatMessage {
        clock,
        timestamp,
        text: text.to_string(),
        chat_id: chat.to_string(),
        message_type: kind as i32,
        content_type: pb::chat_message::ContentType::TextPlain as i32,
        ..Default::default()
    }
}

/// TTL of chat envelopes (status-go `whisperTTL`).
pub const CHAT_TTL: u32 = 15;
/// PoW target for payloads up to 50,000 bytes (status-go `calculatePoW`).
pub const POW_TARGET: f64 = 0.002;
/// PoW target above 50,000 bytes.
pub const POW_TARGET_LARGE: f64 = 0.000002;

/// The subscription name of our partitioned topic (never a public chat name: those have no `@`).
pub const PARTITIONED_SUBSCRIPTION: &str = "@partitioned";
/// Prefix of the subscription name of a negotiated topic; the peer's `"0x04…"` id follows.
pub const NEGOTIATED_SUBSCRIPTION_PREFIX: &str = "@negotiated:";
/// Prefix of the subscription name of a contact's contact-code topic; the contact's `"0x04…"` id follows.
pub const CONTACT_CODE_SUBSCRIPTION_PREFIX: &str = "@contact-code:";

/// Messenger configuration.
#[derive(Clone)]
pub struct MessengerConfig {
    /// Our chat identity.
    pub identity: SecretKey,
    /// This device's installation id.
    pub installation_id: String,
    /// Most public chats joined at once. Default 256.
    pub max_chats: usize,
    /// Most 1:1 chats. Default 1,000. At the cap, a message from a new identity replaces the oldest chat
    /// that is only an unanswered contact request (one we neither started nor wrote in); if there is none,
    /// it is dropped.
    pub max_one_to_one_chats: usize,
    /// Most private groups. Default 256. At the cap, a new group replaces the oldest one we were added to
    /// and never wrote in; if there is none, it is dropped.
    pub max_groups: usize,
    /// Most members of one group (ourselves included). Default 256.
    pub max_members_per_group: usize,
    /// Messages kept per chat. Default 10,000.
    pub max_messages_per_chat: usize,
    /// Messages per chat written by [`Messenger::export`] (the newest; they also de-duplicate after an
    /// import). Default 1,000.
    pub max_persisted_messages_per_chat: usize,
    /// Sent texts whose delivery is tracked (per recipient); at the cap the oldest is forgotten (no event
    /// for it). Default 20,000.
    pub max_tracked_deliveries: usize,
    /// Negotiated topics listened to (each costs a PBKDF2 derivation and a filter). Beyond it no new one
    /// is subscribed and our messages to further peers stay on their partitioned topic (theirs may then
    /// go unheard on the negotiated topic). Default 4,096.
    pub max_negotiated_topics: usize,
    /// Outputs queued before the oldest are dropped (drain after every call). Default 65,536. With
    /// [`durable`](Self::durable), outputs held for a batch the driver has not confirmed count too, and
    /// further outputs are dropped (a driver that never confirms is misusing the contract).
    pub max_queued_outputs: usize,
    /// Crash safety (docs/architecture.md "Persistence"): every call that changes state ends in a
    /// [`Output::Persist`] batch of records, and what reveals the change waits until the driver confirms
    /// it with [`Input::Persisted`], so a crash at any instant can lose only what nobody has seen. Resume
    /// with [`Messenger::restore`]. Default `false` (outputs flow at once; persist with
    /// [`Messenger::export`] snapshots).
    pub durable: bool,
    /// Contacts whose contact-code topic we listen on (each costs a PBKDF2 derivation and a filter);
    /// further contacts are not listened to (a first message to them goes DH-only unless their bundle
    /// came another way). Default 128.
    pub max_contact_codes: usize,
    /// How often our bundle is advertised on our contact-code topic (the first time
    /// [`CONTACT_CODE_FIRST_ADVERT`] after start). Default 6 h, as the reference; `None` never does.
    pub contact_code_interval: Option<core::time::Duration>,
    /// The MVDS node's configuration.
    pub mvds: mvds::Config,
    /// The secure transport's configuration.
    pub secure: secure::Config,
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
            max_one_to_one_chats: 1_000,
            max_groups: 256,
            max_members_per_group: 256,
            max_messages_per_chat: DEFAULT_MAX_MESSAGES,
            max_persisted_messages_per_chat: 1_000,
            max_tracked_deliveries: 20_000,
            max_negotiated_topics: 4_096,
            max_queued_outputs: 65_536,
            durable: false,
            max_contact_codes: 128,
            contact_code_interval: Some(core::time::Duration::from_secs(6 * 3600)),
            mvds: mvds::Config::default(),
            secure: secure::Config::default(),
        }
    }

    /// Check the Messenger's own limits (the MVDS and secure-transport configurations are checked by
    /// their machines): the output queue must hold at least one output.
    pub fn validate(&self) -> Result<(), MessengerError> {
        if self.max_queued_outputs == 0 {
            return Err(MessengerError::InvalidConfig("max_queued_outputs is 0"));
        }
        Ok(())
    }

    fn group_limits(&self) -> GroupLimits {
        GroupLimits {
            max_members: self.max_members_per_group,
            ..GroupLimits::default()
        }
    }
}

struct PublicChat {
    topic: Topic,
    key: Zeroizing<[u8; 32]>,
    log: ChatLog<ChatEntry>,
}

struct DirectChat {
    peer: PublicKey,
    log: ChatLog<ChatEntry>,
    /// We started it or wrote in it. A chat that is only a stranger's contact request is not accepted,
    /// and is the first to go when [`MessengerConfig::max_one_to_one_chats`] is reached.
    accepted: bool,
    /// Creation order (oldest contact requests are evicted first).
    seq: u64,
}

struct GroupChat {
    group: Group,
    log: ChatLog<ChatEntry>,
    /// We created it or wrote in it. A group someone added us to and we never wrote in is the first to go
    /// when [`MessengerConfig::max_groups`] is reached.
    accepted: bool,
    /// Creation order (the oldest unaccepted group is evicted first).
    seq: u64,
}

struct Negotiated {
    topic: Topic,
    key: Zeroizing<[u8; 32]>,
}

/// A message handed to MVDS for one recipient, until it is acknowledged or given up.
#[derive(Clone)]
struct Pending {
    chat: String,
    id: MessageId,
    to: PublicKey,
    /// Report delivery (texts); membership-only updates are tracked for pruning but not reported.
    notify: bool,
}

/// The Messenger. See the [module docs](self).
pub struct Messenger {
    config: MessengerConfig,
    me: PublicKey,
    me_hex: String,
    secure: SecureTransport,
    mvds: mvds::Node,
    rng: ChaCha20Rng,
    public: BTreeMap<String, PublicChat>,
    direct: BTreeMap<String, DirectChat>,
    /// The next [`DirectChat::seq`] and [`GroupChat::seq`].
    next_chat_seq: u64,
    groups: BTreeMap<String, GroupChat>,
    /// Negotiated topics listened to, by peer id.
    negotiated: BTreeMap<String, Negotiated>,
    /// By MVDS message id.
    pending: BTreeMap<mvds::MessageId, Pending>,
    pending_order: VecDeque<mvds::MessageId>,
    /// Pending deliveries per recipient (uncompressed key), for pruning in O(log n).
    pending_per_peer: BTreeMap<[u8; 65], usize>,
    /// Outputs of the call in progress, moved into `barrier` when it ends.
    outputs: VecDeque<Output>,
    /// Holds outputs until the records they reveal are durable (a pass-through unless `durable`).
    barrier: crate::persist::Barrier<Output>,
    /// Outputs dropped because the barrier held `max_queued_outputs`.
    dropped_outputs: u64,
    /// The last batch handed out stored a non-empty outbox (cleared by a batch once it is released).
    outbox_stored: bool,
    /// The latest time the messenger was driven (for the MVDS epoch in [`Messenger::export`]).
    last_now: Timestamp,
    /// When our bundle is next advertised on our contact-code topic (`None`: never).
    next_advert: Option<Timestamp>,
    /// Our contact-code topic and key, derived (PBKDF2) at the first advertisement.
    contact_code: Option<(Topic, Zeroizing<[u8; 32]>)>,
    /// Contacts' contact-code topics listened to, by contact id.
    contact_codes: BTreeMap<String, ContactCode>,
    /// Contacts whose contact-code topic is to be listened to at the next timer (after an import, so
    /// that importing costs no PBKDF2 derivation).
    contact_code_queue: VecDeque<PublicKey>,
}

/// A contact's contact-code topic we listen on.
struct ContactCode {
    peer: PublicKey,
    topic: Topic,
}

impl core::fmt::Debug for Messenger {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Messenger")
            .field("public", &self.public.keys().collect::<Vec<_>>())
            .field("direct", &self.direct.len())
            .field("groups", &self.groups.len())
            .finish_non_exhaustive()
    }
}

impl Messenger {
    /// A messenger for `config`, drawing randomness from `seed`. An invalid configuration is an error,
    /// never replaced by defaults: [`MessengerError::InvalidConfig`] for the Messenger's own fields,
    /// [`MessengerError::Mvds`] for `config.mvds` and [`MessengerError::Secure`] for `config.secure`.
    pub fn new(config: MessengerConfig, seed: &Seed, now: Timestamp) -> Result<Self, MessengerError> {
        config.validate()?;
        let mut rng = seed.rng();
        let secure = SecureTransport::new(
            config.secure.clone(),
            config.identity.clone(),
            config.installation_id.clone(),
            &fork(&mut rng),
            now,
        )?;
        let mvds_seed = fork(&mut rng);
        let mvds = mvds::Node::new(config.mvds.clone(), &mvds_seed, now)?;
        let me = config.identity.public_key();
        let mut m = Messenger {
            me_hex: pubkey_to_hex(&me),
            me,
            secure,
            mvds,
            rng,
            public: BTreeMap::new(),
            direct: BTreeMap::new(),
            next_chat_seq: 0,
            groups: BTreeMap::new(),
            negotiated: BTreeMap::new(),
            pending: BTreeMap::new(),
            pending_order: VecDeque::new(),
            pending_per_peer: BTreeMap::new(),
            outputs: VecDeque::new(),
            barrier: if config.durable {
                crate::persist::Barrier::enabled()
            } else {
                crate::persist::Barrier::disabled()
            },
            dropped_outputs: 0,
            outbox_stored: false,
            last_now: now,
            next_advert: None,
            contact_code: None,
            contact_codes: BTreeMap::new(),
            contact_code_queue: VecDeque::new(),
            config,
        };
        m.next_advert = m
            .config
            .contact_code_interval
            .map(|_| now + CONTACT_CODE_FIRST_ADVERT);
        let filter = Filter::asymmetric(vec![status::partitioned_topic(&me)], m.config.identity.clone());
        m.push(Output::Subscribe {
            chat: PARTITIONED_SUBSCRIPTION.into(),
            filter,
        });
        Ok(m)
    }

    /// The 1:1 chat id of `peer`: `"0x04…"`, lowercase hex of its uncompressed key.
    pub fn one_to_one_chat_id(peer: &PublicKey) -> ChatId {
        ChatId::new(pubkey_to_hex(peer))
    }

    /// Our identity's public key.
    pub fn public_key(&self) -> PublicKey {
        self.me
    }

    /// Every chat id: public chats, then 1:1 chats, then groups (each in id order).
    pub fn chats(&self) -> impl Iterator<Item = &str> {
        self.public
            .keys()
            .chain(self.direct.keys())
            .chain(self.groups.keys())
            .map(String::as_str)
    }

    /// The kind of a chat, if it exists.
    pub fn chat_kind(&self, chat: impl AsRef<str>) -> Option<ChatKind> {
        let chat = chat.as_ref();
        if self.public.contains_key(chat) {
            Some(ChatKind::Public)
        } else if self.direct.contains_key(chat) {
            Some(ChatKind::OneToOne)
        } else if self.groups.contains_key(chat) {
            Some(ChatKind::Group)
        } else {
            None
        }
    }

    /// A group's membership state.
    pub fn group(&self, chat: impl AsRef<str>) -> Option<&Group> {
        self.groups.get(chat.as_ref()).map(|g| &g.group)
    }

    /// The messages of a chat in display order.
    pub fn messages(&self, chat: impl AsRef<str>) -> Vec<&ChatEntry> {
        self.log(chat.as_ref())
            .map(|l| l.iter().map(|(_, _, m)| m).collect())
            .unwrap_or_default()
    }

    /// Sent messages whose delivery is still tracked (one per recipient).
    pub fn pending_deliveries(&self) -> usize {
        self.pending.len()
    }

    /// Negotiated topics listened to.
    pub fn negotiated_topics(&self) -> usize {
        self.negotiated.len()
    }

    /// Contacts whose contact-code topic we listen on.
    pub fn contact_code_topics(&self) -> usize {
        self.contact_codes.len()
    }

    /// Outputs waiting to be polled.
    pub fn queued_outputs(&self) -> usize {
        self.outputs.len() + self.barrier.held()
    }

    /// The MVDS node (read-only: stats, groups).
    pub fn mvds(&self) -> &mvds::Node {
        &self.mvds
    }

    /// The secure transport (read-only: sessions, installations).
    pub fn secure(&self) -> &SecureTransport {
        &self.secure
    }

    fn log(&self, chat: &str) -> Option<&ChatLog<ChatEntry>> {
        if let Some(c) = self.public.get(chat) {
            return Some(&c.log);
        }
        if let Some(c) = self.direct.get(chat) {
            return Some(&c.log);
        }
        self.groups.get(chat).map(|c| &c.log)
    }

    /// Feed an input. `Err` only for misuse (an unknown chat, a cap, a group change we may not make, an
    /// oversized payload); faults of peers become [`Event::Dropped`].
    pub fn handle_input(&mut self, now: Timestamp, input: Input) -> Result<(), MessengerError> {
        self.last_now = self.last_now.max(now);
        if let Input::Persisted(seq) = input {
            self.barrier.confirm(seq).map_err(MessengerError::Persist)?;
            if self.outbox_stored && !self.barrier.is_pending() {
                // The events the stored outbox holds are released now: a batch clears it, so a later
                // restart does not give them again.
                self.barrier.seal(true);
            }
            return Ok(());
        }
        let r = match input {
            Input::JoinPublicChat(name) => self.join_public(name.into_string()),
            Input::LeavePublicChat(name) => {
                let name = name.into_string();
                if self.public.remove(&name).is_some() {
                    self.push(Output::Unsubscribe { chat: name });
                }
                Ok(())
            }
            Input::SendText { chat, text } => self.send_text(now, chat.into_string(), text),
            Input::StartOneToOne(peer) => self.start_one_to_one(&peer).map(|_| ()),
            Input::CreateGroup { name, members } => self.create_group(now, name, members),
            Input::AddMembers { chat, members } => self.add_members(now, chat.into_string(), members),
            Input::RemoveMember { chat, member } => self.remove_member(now, chat.into_string(), member),
            Input::MakeAdmin { chat, member } => self.make_admin(now, chat.into_string(), member),
            Input::RenameGroup { chat, name } => self.rename_group(now, chat.into_string(), name),
            Input::LeaveGroup { chat } => self.leave_group(now, chat.into_string()),
            Input::Received(m) => {
                self.on_received(now, *m);
                Ok(())
            }
            Input::Persisted(_) => Ok(()),
        };
        self.drain_mvds(now);
        // An input may change durable state even when it makes no output (a received message that
        // only advances a ratchet): conservatively, every input does.
        self.end_call(true);
        r
    }

    /// End a call: move its outputs behind the barrier; `changed` says whether durable state changed.
    fn end_call(&mut self, changed: bool) {
        while let Some(o) = self.outputs.pop_front() {
            if self.barrier.held() >= self.config.max_queued_outputs.max(1) {
                self.dropped_outputs += 1;
                continue;
            }
            self.barrier.push(o);
        }
        self.barrier.seal(changed);
    }

    /// Outputs dropped because the barrier already held [`MessengerConfig::max_queued_outputs`] (only
    /// with [`MessengerConfig::durable`] when batches are not confirmed).
    pub fn dropped_outputs(&self) -> u64 {
        self.dropped_outputs
    }

    /// Run due timers: MVDS retransmissions and ACKs, the secure transport's prekey rotation and
    /// skipped-key expiry, our contact-code advertisement, contact-code topics queued by an import.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.last_now = self.last_now.max(now);
        // A few queued contact-code topics per call (each costs a PBKDF2 derivation).
        for _ in 0..CONTACT_CODES_PER_TIMEOUT {
            let Some(peer) = self.contact_code_queue.pop_front() else {
                break;
            };
            self.listen_contact_code(&peer);
        }
        // The secure transport's timers (prekey rotation, skipped-key expiry) change its state without
        // an output: rotated prekeys and deleted keys must be durable, so a due timer is a change.
        let secure_due = self.secure.poll_timeout().is_some_and(|t| t <= now);
        self.secure.handle_timeout(now);
        let _ = self.drain_secure();
        self.mvds.handle_timeout(now);
        self.drain_mvds(now);
        // A timer that makes an output changed state (a retransmission is encrypted under a new key);
        // an MVDS timer that makes none only moved retransmission counters a crash may lose (they are
        // rolled back to an earlier retransmission, never to a reused key).
        let changed = secure_due || !self.outputs.is_empty();
        if let (Some(at), Some(every)) = (self.next_advert, self.config.contact_code_interval) {
            if now >= at {
                self.next_advert = Some(now + every);
                if let Err(e) = self.advertise_contact_code(now) {
                    self.drop_with(DropReason::ContactCodeAdvertisement(Box::new(e)));
                }
            }
        }
        let changed = changed || !self.outputs.is_empty();
        self.end_call(changed);
    }

    /// The earliest deadline: MVDS, the secure transport, the next contact-code advertisement, and now
    /// while contact-code topics are waiting to be listened to.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let queued = (!self.contact_code_queue.is_empty()).then_some(self.last_now);
        earliest(
            earliest(self.mvds.poll_timeout(), self.secure.poll_timeout()),
            earliest(self.next_advert, queued),
        )
    }

    /// Post our bundle on our contact-code topic (docs/protocol/secure-transport.md §3.4): a signed, empty
    /// `ContactCodeAdvertisement` as a public message, whose `ProtocolMessage` carries the bundle.
    fn advertise_contact_code(&mut self, now: Timestamp) -> Result<(), MessengerError> {
        let payload = prost::Message::encode_to_vec(&pb::ContactCodeAdvertisement::default());
        let wrapped = super::payloads::wrap(
            &payload,
            super::payloads::MessageKind::ContactCodeAdvertisement,
            &self.config.identity,
        )?;
        let me = self.me;
        let (topic, key) = self
            .contact_code
            .get_or_insert_with(|| (status::contact_code_topic(&me), status::contact_code_key(&me)))
            .clone();
        self.post_public(now, &wrapped.bytes, topic, key)
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<Output> {
        // Outputs made outside `handle_input`/`handle_timeout` (an import's subscriptions) flow at once.
        if !self.outputs.is_empty() {
            self.end_call(false);
        }
        let mut barrier = std::mem::replace(&mut self.barrier, crate::persist::Barrier::disabled());
        // The events a batch makes durable but does not release yet go into it (the outbox), so that
        // a crash between the commit and their release does not lose them (see `persist`).
        let due = barrier.batch_due();
        let outbox = if due {
            persist::encode_outbox(barrier.held_outputs())
        } else {
            None
        };
        if due {
            self.outbox_stored = outbox.is_some();
        }
        let polled = barrier.poll(|| persist::records(self, outbox));
        self.barrier = barrier;
        match polled? {
            crate::persist::Polled::Batch(b) => Some(Output::Persist(b)),
            crate::persist::Polled::Output(o) => {
                #[cfg(feature = "fuzzing")]
                if let Output::Transmit(m) = &o {
                    crate::persist::observe::released(&m.payload);
                }
                Some(o)
            }
        }
    }

    fn push(&mut self, o: Output) {
        if self.outputs.len() >= self.config.max_queued_outputs.max(1) {
            self.outputs.pop_front();
        }
        self.outputs.push_back(o);
    }

    fn event(&mut self, e: Event) {
        self.push(Output::Event(e));
    }

    fn drop_with(&mut self, reason: DropReason) {
        self.event(Event::Dropped { reason });
    }

    // ---- public chats ---------------------------------------------------------------------------------

    fn send_text(&mut self, now: Timestamp, chat: String, text: String) -> Result<(), MessengerError> {
        validate_outgoing_text(&text).map_err(MessengerError::Text)?;
        if self.direct.contains_key(&chat) {
            return self.send_one_to_one(now, chat, text);
        }
        if self.groups.contains_key(&chat) {
            return self.send_group_text(now, chat, text);
        }
        let c = self
            .public
            .get_mut(&chat)
            .ok_or_else(|| MessengerError::NotJoined(chat.clone()))?;
        let (clock, timestamp) = c.log.tick(now);
        let (topic, key) = (c.topic, c.key.clone());
        let m = text_message(clock, timestamp, &text, &chat, pb::MessageType::PublicGroup);
        let wrapped = wrap_chat_message(&m, &self.config.identity)?;
        self.post_public(now, &wrapped.bytes, topic, key)?;
        self.sent(ChatKind::Public, chat, wrapped.id, clock, timestamp, text);
        Ok(())
    }

    fn post(&mut self, topic: Topic, payload: Vec<u8>, key: PostKey) {
        let pow_target = if payload.len() > 50_000 {
            POW_TARGET_LARGE
        } else {
            POW_TARGET
        };
        let signer = Some(self.config.identity.clone());
        self.push(Output::Transmit(Box::new(NewMessage {
            topic,
            payload,
            key,
            signer,
            ttl: CHAT_TTL,
            pow_target,
            padding: None,
        })));
    }

    fn on_received(&mut self, now: Timestamp, m: ReceivedMessage) {
        let public = self
            .public
            .iter()
            .find(|(_, c)| c.topic == m.topic)
            .map(|(n, _)| n.clone());
        let contact = self
            .contact_codes
            .values()
            .find(|c| c.topic == m.topic)
            .map(|c| c.peer);
        let Some(sender) = m.sender else {
            return self.drop_with(DropReason::UnsignedEnvelope);
        };
        if public.is_none() && sender == self.me {
            // Our own post on a shared (negotiated) topic, opened by our own filter.
            return;
        }
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
            return self.drop_with(DropReason::SecureRefused);
        }
        let opened = self.drain_secure();
        let transport_time = Timestamp::from_secs(u64::from(m.timestamp));
        // What the secure transport opened decides the path, not the topic alone: a public chat's topic
        // can equal a partitioned or negotiated one (a chat named "contact-discovery-N" has the topic of
        // partition N), and a direct message the ratchet has just consumed must not be thrown away.
        let mut any = false;
        for o in opened {
            match o {
                Opened::Public(payload) => {
                    if let Some(chat) = &public {
                        any = true;
                        self.on_public(chat.clone(), sender, &payload, transport_time);
                    } else if let Some(contact) = contact {
                        any = true;
                        self.on_contact_code(contact, sender, &payload);
                    }
                }
                Opened::Private(from, plaintext) => {
                    any = true;
                    self.receive_decrypted(now, from, &plaintext, transport_time);
                }
            }
        }
        if (public.is_some() || contact.is_some()) && !any {
            self.drop_with(DropReason::NotPublic);
        }
    }

    /// The log of chat `chat` of kind `kind` (a public chat may be named like another kind's id).
    fn log_mut(&mut self, kind: ChatKind, chat: &str) -> Option<&mut ChatLog<ChatEntry>> {
        match kind {
            ChatKind::Public => self.public.get_mut(chat).map(|c| &mut c.log),
            ChatKind::OneToOne => self.direct.get_mut(chat).map(|c| &mut c.log),
            ChatKind::Group => self.groups.get_mut(chat).map(|c| &mut c.log),
        }
    }

    /// Show a received message that passed every check, unless the chat already has it.
    fn show(&mut self, kind: ChatKind, chat: String, id: MessageId, author: PublicKey, cm: pb::ChatMessage) {
        let own = author == self.me;
        let content = Content::of(&cm);
        let entry = ChatEntry {
            id,
            author,
            clock: cm.clock,
            timestamp: cm.timestamp,
            text: cm.text,
            content: content.without_data(),
        };
        let Some(log) = self.log_mut(kind, &chat) else {
            return;
        };
        if log.insert(id, entry.clock, entry.clone()) == Insert::Added {
            // The event carries the media bytes; the log keeps their length and hash.
            let entry = ChatEntry { content, ..entry };
            self.event(Event::MessageReceived {
                chat: chat.into(),
                message: entry,
                own,
            });
        }
    }

    /// Record a message we sent in our own log and report it.
    fn sent(
        &mut self,
        kind: ChatKind,
        chat: String,
        id: MessageId,
        clock: u64,
        timestamp: u64,
        text: String,
    ) {
        let author = self.me;
        if let Some(log) = self.log_mut(kind, &chat) {
            let entry = ChatEntry {
                id,
                author,
                clock,
                timestamp,
                text,
                content: Content::Text,
            };
            let _ = log.insert(id, clock, entry);
        }
        self.event(Event::MessageSent {
            chat: chat.into(),
            id,
        });
    }

    /// Export everything needed to resume (see `persist.rs`). Holds session secrets: zeroized on drop.
    pub fn export(&self) -> Zeroizing<Vec<u8>> {
        persist::export(self)
    }

    /// Resume from [`Messenger::export`]ed bytes, with the identity of `config` (it must be the one that
    /// exported) and fresh randomness from `seed`. The subscriptions (partitioned topic, public chats,
    /// negotiated topics) are output again; the contacts' contact-code topics from the first
    /// [`Messenger::handle_timeout`] on (a few per call: each costs a PBKDF2 derivation). Bytes that are not a valid state give
    /// [`MessengerError::InvalidState`] (or the layer error of an embedded state); never a panic.
    pub fn import(
        config: MessengerConfig,
        seed: &Seed,
        now: Timestamp,
        bytes: &[u8],
    ) -> Result<Messenger, MessengerError> {
        persist::import(config, seed, now, bytes)
    }

    /// Resume from the records a [`durable`](MessengerConfig::durable) messenger handed out, as the
    /// driver's store holds them after the last committed batch (a fresh messenger if there are none).
    /// Records under another prefix are ignored, so one store can hold a whole node.
    ///
    /// The [`Event::MessageReceived`] and [`Event::MessageSent`] events the last batch made durable
    /// but a crash may have kept from the application (the outbox) come out again first: across a
    /// crash each of these events comes out **at least once**, and an application that keeps what it
    /// showed by message id (as a chat database does) skips the ones it already has.
    pub fn restore(
        config: MessengerConfig,
        seed: &Seed,
        now: Timestamp,
        records: &crate::persist::MemoryStore,
    ) -> Result<Messenger, MessengerError> {
        let mut m = match records.get(&persist::state_key()) {
            Some(bytes) => persist::import(config, seed, now, bytes)?,
            None => Messenger::new(config, seed, now)?,
        };
        if let Some(bytes) = records.get(&persist::outbox_key()) {
            for e in persist::decode_outbox(bytes)? {
                m.event(e);
            }
        }
        Ok(m)
    }
}

/// What the secure transport opened.
enum Opened {
    Public(Vec<u8>),
    Private(PublicKey, Vec<u8>),
}
