//! The Messenger's persistent state: a versioned, length-checked binary format (local storage, not a
//! wire format).
//!
//! ```text
//! state    = "SSMS" ‖ version (u8 = 1) ‖ identity (65) ‖ blob(secure) ‖ blob(mvds)
//!            ‖ list(public) ‖ list(direct) ‖ list(group) ‖ list(negotiated) ‖ list(pending)
//! public   = str(name) ‖ topic (4) ‖ symmetric key (32) ‖ u64(clock) ‖ list(entry)
//! direct   = key(peer) ‖ u64(clock) ‖ u8(accepted) ‖ u64(seq) ‖ list(entry)
//! group    = str(chat id) ‖ list(blob(signed event)) ‖ u64(clock) ‖ u8(accepted) ‖ u64(seq)
//!            ‖ list(entry)
//! negotiated = key(peer) ‖ topic (4) ‖ symmetric key (32)
//! pending  = mvds id (32) ‖ str(chat) ‖ message id (32) ‖ key(to) ‖ u8(notify)
//! entry    = message id (32) ‖ key(author) ‖ u64(clock) ‖ u64(timestamp) ‖ str(text)
//! blob/str = u32 length (big-endian) ‖ bytes;  list = u32 count ‖ items;  key = 65-byte uncompressed
//! ```
//!
//! `blob(secure)` is [`SecureTransport::export`](crate::secure::SecureTransport::export) (sessions,
//! installations, own prekeys), `blob(mvds)` the MVDS [`Snapshot`](crate::mvds::Snapshot) (store, peers,
//! sync records, epoch). Entries are the newest
//! [`MessengerConfig::max_persisted_messages_per_chat`] messages of each chat: they restore the history
//! shown and de-duplicate re-deliveries. Groups are re-folded from their signed events on import, so an
//! altered event log is refused. Topic keys are stored rather than derived again (each derivation is a
//! 65,356-iteration PBKDF2). Import into a configuration whose caps are at least the exporter's.
//!
//! Import checks everything: the magic, the version, the identity (it must be the configuration's), every
//! length against the bytes left, every count against the configuration's caps, every key, every string's
//! UTF-8, the embedded states (by their own importers), the group folds, and that nothing trails. Any
//! failure is [`MessengerError::InvalidState`] (or the embedded layer's error), never a panic. Input
//! beyond [`MAX_STATE_BYTES`] is refused before parsing.

use zeroize::Zeroizing;

use crate::persist::{Record, RecordKey};

use super::{
    ChatEntry, DirectChat, GroupChat, Messenger, MessengerConfig, MessengerError, Pending, PublicChat,
};
use crate::chat::clock::LamportClock;
use crate::chat::group::{verify_event, Group};
use crate::chat::identity::pubkey_to_hex;
use crate::chat::message_log::ChatLog;
use crate::chat::payloads::MessageId;
use crate::crypto::{pubkey_from_sec1, pubkey_to_uncompressed, PublicKey};
use crate::mvds;
use crate::rng::Seed;
use crate::secure::sharedsecret::NegotiatedSecret;
use crate::time::Timestamp;
use crate::waku::{status, Filter, Topic};

/// The record a [`durable`](MessengerConfig::durable) messenger keeps its state under.
///
/// One record, the whole [`export`]: simple, and as safe as the finest split, because every batch is
/// atomic. It costs a full serialization per batch (sessions, MVDS state and the newest
/// [`MessengerConfig::max_persisted_messages_per_chat`] messages of every chat), which group commit
/// amortises over every input between two polls; records per chat and per session are the next step
/// when states grow large.
pub(crate) fn state_key() -> RecordKey {
    RecordKey::new("messenger/state")
}

/// The record of the outbox: the [`Event::MessageReceived`](super::Event::MessageReceived) and
/// [`Event::MessageSent`](super::Event::MessageSent) events held when the batch was made.
///
/// ```text
/// outbox = "SSMO" ‖ version (u8 = 1) ‖ list(event)
/// event  = 0 ‖ str(chat) ‖ entry ‖ u8(own)      (MessageReceived; entry as in the state)
///        | 1 ‖ str(chat) ‖ message id (32)       (MessageSent)
/// ```
pub(crate) fn outbox_key() -> RecordKey {
    RecordKey::new("messenger/outbox")
}

const OUTBOX_MAGIC: &[u8; 4] = b"SSMO";

/// The records of a batch: the state as it is now, and the outbox (`None`: empty).
pub(super) fn records(m: &Messenger, outbox: Option<Zeroizing<Vec<u8>>>) -> Vec<Record> {
    let mut state = export(m);
    let outbox = match outbox {
        Some(mut o) => Record::put(outbox_key(), std::mem::take(&mut *o)),
        None => Record::delete(outbox_key()),
    };
    vec![Record::put(state_key(), std::mem::take(&mut *state)), outbox]
}

/// Encode the outbox of `held` (`None` if it holds no such event).
pub(super) fn encode_outbox<'a>(held: impl Iterator<Item = &'a super::Output>) -> Option<Zeroizing<Vec<u8>>> {
    use super::{Event, Output};
    let mut w = Writer(Zeroizing::new(Vec::new()));
    let mut n = 0;
    for o in held {
        match o {
            Output::Event(Event::MessageReceived { chat, message, own }) => {
                w.bytes(&[0]);
                w.blob(chat.as_bytes());
                w.entry(message);
                w.bytes(&[u8::from(*own)]);
            }
            Output::Event(Event::MessageSent { chat, id }) => {
                w.bytes(&[1]);
                w.blob(chat.as_bytes());
                w.bytes(&id.0);
            }
            _ => continue,
        }
        n += 1;
    }
    if n == 0 {
        return None;
    }
    let mut out = Writer(Zeroizing::new(Vec::with_capacity(w.0.len() + 9)));
    out.bytes(OUTBOX_MAGIC);
    out.bytes(&[STATE_VERSION]);
    out.u32(n);
    out.bytes(&w.0);
    Some(out.0)
}

/// Decode an outbox record.
pub(super) fn decode_outbox(bytes: &[u8]) -> Result<Vec<super::Event>, MessengerError> {
    use super::Event;
    let mut r = Reader { rest: bytes };
    if r.take(OUTBOX_MAGIC.len(), "outbox magic")? != OUTBOX_MAGIC {
        return Err(bad("outbox magic"));
    }
    if r.u8("outbox version")? != STATE_VERSION {
        return Err(bad("outbox version"));
    }
    let n = r.count(usize::MAX, 1 + 4 + 32, "outbox count")?;
    let mut events = Vec::with_capacity(n);
    for _ in 0..n {
        match r.u8("outbox event")? {
            0 => {
                let chat = r.str("outbox chat")?;
                let message = r.entry()?;
                let own = match r.u8("outbox own")? {
                    0 => false,
                    1 => true,
                    _ => return Err(bad("outbox own")),
                };
                events.push(Event::MessageReceived {
                    chat: chat.into(),
                    message,
                    own,
                });
            }
            1 => {
                let chat = r.str("outbox chat")?;
                let id = MessageId(r.array("outbox message id")?);
                events.push(Event::MessageSent {
                    chat: chat.into(),
                    id,
                });
            }
            _ => return Err(bad("outbox event")),
        }
    }
    if !r.rest.is_empty() {
        return Err(bad("outbox trailing bytes"));
    }
    Ok(events)
}

/// The current format version.
pub const STATE_VERSION: u8 = 1;
/// Largest state accepted by [`Messenger::import`]: 256 MiB.
pub const MAX_STATE_BYTES: usize = 256 << 20;
const MAGIC: &[u8; 4] = b"SSMS";
const KEY_LEN: usize = 65;

struct Writer(Zeroizing<Vec<u8>>);

impl Writer {
    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    fn u32(&mut self, v: usize) {
        self.bytes(&(v.min(u32::MAX as usize) as u32).to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_be_bytes());
    }
    fn blob(&mut self, b: &[u8]) {
        self.u32(b.len());
        self.bytes(b);
    }
    fn key(&mut self, k: &PublicKey) {
        self.bytes(&pubkey_to_uncompressed(k));
    }
    fn entries(&mut self, log: &ChatLog<ChatEntry>, max: usize) {
        let n = log.len().min(max);
        self.u32(n);
        for (_, _, e) in log.iter().rev().take(n).collect::<Vec<_>>().into_iter().rev() {
            self.entry(e);
        }
    }
    fn entry(&mut self, e: &ChatEntry) {
        self.bytes(&e.id.0);
        self.key(&e.author);
        self.u64(e.clock);
        self.u64(e.timestamp);
        self.blob(e.text.as_bytes());
    }
}

/// Serialize `m` (see the module docs).
pub(super) fn export(m: &Messenger) -> Zeroizing<Vec<u8>> {
    let secure = m.secure.export();
    // The snapshot's epoch is taken at the last time the messenger was driven.
    let mvds = Zeroizing::new(m.mvds.snapshot(m.last_now).encode_to_vec());
    // The secret blobs go into a buffer sized for them and the rest into a second one, joined in a buffer
    // of the exact size: no reallocation ever leaves an unzeroized copy of the keys behind.
    let mut head = Writer(Zeroizing::new(Vec::with_capacity(
        MAGIC.len() + 1 + 65 + 8 + secure.len() + mvds.len(),
    )));
    head.bytes(MAGIC);
    head.bytes(&[STATE_VERSION]);
    head.key(&m.me);
    head.blob(&secure);
    head.blob(&mvds);
    let mut w = Writer(Zeroizing::new(Vec::new()));
    let keep = m.config.max_persisted_messages_per_chat;
    w.u32(m.public.len());
    for (name, c) in &m.public {
        w.blob(name.as_bytes());
        w.bytes(&c.topic.0);
        w.bytes(&c.key[..]);
        w.u64(c.log.clock().last());
        w.entries(&c.log, keep);
    }
    w.u32(m.direct.len());
    for c in m.direct.values() {
        w.key(&c.peer);
        w.u64(c.log.clock().last());
        w.bytes(&[u8::from(c.accepted)]);
        w.u64(c.seq);
        w.entries(&c.log, keep);
    }
    w.u32(m.groups.len());
    for (chat, g) in &m.groups {
        w.blob(chat.as_bytes());
        w.u32(g.group.events().len());
        for e in g.group.events() {
            w.blob(&e.bytes);
        }
        w.u64(g.log.clock().last());
        w.bytes(&[u8::from(g.accepted)]);
        w.u64(g.seq);
        w.entries(&g.log, keep);
    }
    let negotiated: Vec<(PublicKey, &super::Negotiated)> = m
        .negotiated
        .iter()
        .filter_map(|(k, n)| Some((crate::chat::identity::pubkey_from_hex(k).ok()?, n)))
        .collect();
    w.u32(negotiated.len());
    for (k, n) in &negotiated {
        w.key(k);
        w.bytes(&n.topic.0);
        w.bytes(&n.key[..]);
    }
    w.u32(m.pending.len());
    for (mid, p) in &m.pending {
        w.bytes(&mid.0);
        w.blob(p.chat.as_bytes());
        w.bytes(&p.id.0);
        w.key(&p.to);
        w.bytes(&[u8::from(p.notify)]);
    }
    let mut out = Zeroizing::new(Vec::with_capacity(head.0.len() + w.0.len()));
    out.extend_from_slice(&head.0);
    out.extend_from_slice(&w.0);
    out
}

struct Reader<'a> {
    rest: &'a [u8],
}

fn bad(what: &'static str) -> MessengerError {
    MessengerError::InvalidState(what)
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], MessengerError> {
        if n > self.rest.len() {
            return Err(bad(what));
        }
        let (a, b) = self.rest.split_at(n);
        self.rest = b;
        Ok(a)
    }
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], MessengerError> {
        let s = self.take(N, what)?;
        <[u8; N]>::try_from(s).map_err(|_| bad(what))
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, MessengerError> {
        Ok(self.array::<1>(what)?[0])
    }
    fn u32(&mut self, what: &'static str) -> Result<usize, MessengerError> {
        Ok(u32::from_be_bytes(self.array(what)?) as usize)
    }
    /// A chat's `accepted` flag and creation sequence number.
    fn order(&mut self, what: &'static str) -> Result<(bool, u64), MessengerError> {
        let accepted = match self.u8(what)? {
            0 => false,
            1 => true,
            _ => return Err(bad(what)),
        };
        let seq = self.u64(what)?;
        if seq >= u64::MAX / 2 {
            return Err(bad(what));
        }
        Ok((accepted, seq))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, MessengerError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }
    fn blob(&mut self, what: &'static str) -> Result<&'a [u8], MessengerError> {
        let n = self.u32(what)?;
        self.take(n, what)
    }
    fn str(&mut self, what: &'static str) -> Result<String, MessengerError> {
        let b = self.blob(what)?;
        core::str::from_utf8(b).map(str::to_string).map_err(|_| bad(what))
    }
    fn key(&mut self, what: &'static str) -> Result<PublicKey, MessengerError> {
        let b = self.take(KEY_LEN, what)?;
        pubkey_from_sec1(b).ok_or(bad(what))
    }
    /// A count of items of at least `min_len` bytes each, at most `cap`.
    fn count(&mut self, cap: usize, min_len: usize, what: &'static str) -> Result<usize, MessengerError> {
        let n = self.u32(what)?;
        if n > cap || n.saturating_mul(min_len.max(1)) > self.rest.len() {
            return Err(bad(what));
        }
        Ok(n)
    }
    fn entries(&mut self, log: &mut ChatLog<ChatEntry>, cap: usize) -> Result<(), MessengerError> {
        let n = self.count(cap, 32 + KEY_LEN + 8 + 8 + 4, "message count")?;
        for _ in 0..n {
            let entry = self.entry()?;
            let _ = log.insert(entry.id, entry.clock, entry);
        }
        Ok(())
    }
    fn entry(&mut self) -> Result<ChatEntry, MessengerError> {
        let id = MessageId(self.array("message id")?);
        let author = self.key("message author")?;
        let clock = self.u64("message clock")?;
        let timestamp = self.u64("message timestamp")?;
        let text = self.str("message text")?;
        Ok(ChatEntry {
            id,
            author,
            clock,
            timestamp,
            text,
            content: super::Content::Text,
        })
    }
}

/// Rebuild a messenger (see the module docs).
pub(super) fn import(
    config: MessengerConfig,
    seed: &Seed,
    now: Timestamp,
    bytes: &[u8],
) -> Result<Messenger, MessengerError> {
    if bytes.len() > MAX_STATE_BYTES {
        return Err(bad("too large"));
    }
    let mut r = Reader { rest: bytes };
    if r.take(MAGIC.len(), "magic")? != MAGIC {
        return Err(bad("magic"));
    }
    if r.u8("version")? != STATE_VERSION {
        return Err(bad("version"));
    }
    if r.key("identity")? != config.identity.public_key() {
        return Err(bad("another identity"));
    }
    let mut m = Messenger::new(config, seed, now)?;
    m.secure.import(r.blob("secure state")?)?;
    let snapshot = mvds::Snapshot::decode(r.blob("mvds state")?)?;
    let mvds_seed = crate::rng::fork(&mut m.rng);
    m.mvds = mvds::Node::from_snapshot(m.mvds.config().clone(), &mvds_seed, now, snapshot)?;
    let max_messages = m.config.max_messages_per_chat;
    let keep = m.config.max_persisted_messages_per_chat.min(max_messages);

    let n = r.count(m.config.max_chats, 4 + 4 + 32 + 8 + 4, "public chat count")?;
    for _ in 0..n {
        let name = r.str("public chat name")?;
        let topic = Topic(r.array("public chat topic")?);
        let key = Zeroizing::new(r.array::<32>("public chat key")?);
        let clock = r.u64("public chat clock")?;
        if m.public.contains_key(&name) || topic != status::public_chat_topic(&name) {
            return Err(bad("public chat listed twice or with another topic"));
        }
        let mut log = ChatLog::with_clock(max_messages, LamportClock::from_last(clock));
        r.entries(&mut log, keep)?;
        let filter = Filter::symmetric(vec![topic], *key);
        m.public.insert(name.clone(), PublicChat { topic, key, log });
        m.push(super::Output::Subscribe { chat: name, filter });
    }

    let n = r.count(
        m.config.max_one_to_one_chats,
        KEY_LEN + 8 + 1 + 8 + 4,
        "1:1 chat count",
    )?;
    for _ in 0..n {
        let peer = r.key("1:1 peer")?;
        let clock = r.u64("1:1 clock")?;
        let (accepted, seq) = r.order("1:1 chat")?;
        m.next_chat_seq = m.next_chat_seq.max(seq + 1);
        let chat = pubkey_to_hex(&peer);
        if peer == m.me || m.direct.contains_key(&chat) {
            return Err(bad("1:1 chat listed twice or with ourselves"));
        }
        let mut log = ChatLog::with_clock(max_messages, LamportClock::from_last(clock));
        r.entries(&mut log, keep)?;
        m.direct.insert(
            chat,
            DirectChat {
                peer,
                log,
                accepted,
                seq,
            },
        );
        if accepted && m.contact_code_queue.len() < m.config.max_contact_codes {
            // Listened to from the first timer on: an import derives no key.
            m.contact_code_queue.push_back(peer);
        }
    }

    let limits = m.config.group_limits();
    let n = r.count(m.config.max_groups, 4 + 4 + 8 + 1 + 8 + 4, "group count")?;
    for _ in 0..n {
        let chat = r.str("group chat id")?;
        let ne = r.count(limits.max_events, 4, "group event count")?;
        let mut events = Vec::with_capacity(ne);
        for _ in 0..ne {
            let e = r.blob("group event")?;
            events.push(verify_event(&chat, e).map_err(|_| bad("group event"))?);
        }
        let group = Group::from_events(&chat, events, now, limits).map_err(|_| bad("group fold"))?;
        let clock = r.u64("group clock")?;
        let (accepted, seq) = r.order("group")?;
        m.next_chat_seq = m.next_chat_seq.max(seq + 1);
        let mut log = ChatLog::with_clock(max_messages, LamportClock::from_last(clock));
        r.entries(&mut log, keep)?;
        let g = GroupChat {
            group,
            log,
            accepted,
            seq,
        };
        if m.groups.insert(chat, g).is_some() {
            return Err(bad("group listed twice"));
        }
    }

    let n = r.count(
        m.config.max_negotiated_topics,
        KEY_LEN + 4 + 32,
        "negotiated count",
    )?;
    for _ in 0..n {
        let peer = r.key("negotiated peer")?;
        let topic = Topic(r.array("negotiated topic")?);
        let key = Zeroizing::new(r.array::<32>("negotiated key")?);
        let hex = pubkey_to_hex(&peer);
        let secret = NegotiatedSecret::derive(&m.config.identity, &peer);
        if m.negotiated.contains_key(&hex) || topic != status::negotiated_topic(secret.as_bytes()) {
            return Err(bad("negotiated topic listed twice or not ours"));
        }
        m.subscribe_negotiated(hex, topic, key);
    }

    let n = r.count(
        m.config.max_tracked_deliveries,
        32 + 4 + 32 + KEY_LEN + 1,
        "pending count",
    )?;
    for _ in 0..n {
        let mid = mvds::MessageId(r.array("mvds id")?);
        let chat = r.str("pending chat")?;
        let id = MessageId(r.array("pending id")?);
        let to = r.key("pending recipient")?;
        let notify = match r.u8("pending notify")? {
            0 => false,
            1 => true,
            _ => return Err(bad("pending notify")),
        };
        m.track(mid, Pending { chat, id, to, notify });
    }
    if !r.rest.is_empty() {
        return Err(bad("trailing bytes"));
    }
    Ok(m)
}
