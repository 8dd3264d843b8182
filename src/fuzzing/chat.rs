//! Fuzz bodies for the application layer.
//!
//! * [`chat_metadata`]: `ApplicationMetadataMessage` unwrapping with author recovery and ids, then typed
//!   decoding and validation of whatever it carries: never a panic, the id is always
//!   `keccak256(author ‖ input)`, decoded values re-encode to bytes that decode to the same values.
//! * [`chat_message`]: `ChatMessage` (and the other typed payloads') decoding, encoding round trips,
//!   validation and the chat log; key strings and id strings parsed from the same bytes.
//! * [`chat_membership`]: `MembershipUpdateMessage` decoding and folding, and a script of signed events by
//!   four fixed keys folded in different orders and splits: the fold is order-independent, a merge equals
//!   the fold of the union, and the state keeps its invariants (admins and joined are members, the
//!   creator is the chat id's key, caps hold).
//! * [`chat_messenger`]: the Messenger fed arbitrary decrypted payloads and membership updates: counts
//!   within the caps, valid group folds, and an export/import round trip that reproduces the state.

use arbitrary::Unstructured;
use prost::Message as _;
use status_proto::protobuf as pb;

use crate::chat::group::{
    decode_membership_update, encode_membership_update, group_chat_id, new_event, sign_event, verify_event,
    EventType, Group, GroupLimits, SignedEvent,
};
use crate::chat::identity::{compressed_key_string, pubkey_from_hex, pubkey_from_multibase, pubkey_to_hex};
use crate::chat::message_log::{ChatLog, Insert};
use crate::chat::messenger::{self, ChatKind, Input, Messenger, MessengerConfig};
use crate::chat::payloads::{
    decode_chat_message, encode_chat_message, unwrap, wrap, AppPayload, MessageId, MessageKind,
};
use crate::chat::validate::{validate_chat_message, validate_emoji_reaction, validate_pair_installation};
use crate::crypto::{secret_from_bytes, SecretKey};
use crate::rng::Seed;
use crate::secure::{self, SecureTransport};
use crate::time::Timestamp;

/// The local time of every target.
pub const NOW_MS: u64 = 1_700_000_000_000;

fn now() -> Timestamp {
    Timestamp::from_millis(NOW_MS)
}

/// A fixed secp256k1 key for a tag in `0..=254`.
pub fn fixed_key(tag: u8) -> Option<SecretKey> {
    secret_from_bytes(&[tag.wrapping_add(1); 32])
}

/// Small caps so fuzzing reaches them.
pub fn fuzz_group_limits() -> GroupLimits {
    GroupLimits {
        max_events: 16,
        max_targets: 4,
        max_members: 4,
        max_name_bytes: 16,
    }
}

/// Unwrap arbitrary bytes as an application message (see the module docs).
pub fn chat_metadata(data: &[u8]) {
    let Some(transport) = fixed_key(9).map(|k| k.public_key()) else {
        return;
    };
    let Ok(u) = unwrap(data, Some(&transport)) else {
        assert!(unwrap(data, None).is_err());
        return;
    };
    let author = u.author.unwrap_or(transport);
    if !u.signed {
        assert_eq!(u.author, Some(transport));
        assert!(u.signature.is_empty());
    }
    assert_eq!(u.id, Some(MessageId::compute(&author, data)));
    let bare = unwrap(data, None).ok();
    assert_eq!(bare.as_ref().map(|b| b.author.is_some()), Some(u.signed));
    // The decoded wrapper re-encodes to bytes that decode to the same fields (and the same author).
    let again = pb::ApplicationMetadataMessage {
        signature: u.signature.clone(),
        payload: u.payload.clone(),
        r#type: u.kind,
    }
    .encode_to_vec();
    let v = unwrap(&again, Some(&transport)).ok();
    assert_eq!(
        v.as_ref().map(|v| (&v.payload, v.kind, v.author)),
        Some((&u.payload, u.kind, u.author))
    );
    if u.message_kind().is_none() {
        assert_eq!(u.decode_payload(), Ok(AppPayload::Unsupported(u.kind)));
    }
    if let Ok(p) = u.decode_payload() {
        check_payload(&p);
    }
}

fn check_payload(p: &AppPayload) {
    match p {
        AppPayload::ChatMessage(m) => check_chat_message(m),
        AppPayload::EmojiReaction(r) => {
            let _ = validate_emoji_reaction(r, now());
            assert_eq!(
                pb::EmojiReaction::decode(&r.encode_to_vec()[..]).ok().as_ref(),
                Some(r)
            );
        }
        AppPayload::PairInstallation(i) => {
            let _ = validate_pair_installation(i, now());
        }
        AppPayload::MembershipUpdate(m) => {
            let _ = decode_membership_update(&m.encode_to_vec(), &fuzz_group_limits());
        }
        _ => {}
    }
}

fn check_chat_message(m: &pb::ChatMessage) {
    let ours = encode_chat_message(m);
    assert_eq!(ours.len(), m.encoded_len());
    assert_eq!(decode_chat_message(&ours).ok().as_ref(), Some(m));
    let valid = validate_chat_message(m, now()).is_ok();
    if valid {
        assert!(m.clock != 0 && m.timestamp != 0 && !m.chat_id.is_empty());
        let text_ok = crate::chat::validate::validate_outgoing_text(&m.text).is_ok();
        assert!(text_ok || !crate::chat::validate::text_is_required(m.content_type, &m.text));
        let mut log = ChatLog::new(2);
        let id = MessageId(crate::crypto::keccak256(&ours));
        assert_eq!(log.insert(id, m.clock, ()), Insert::Added);
        assert_eq!(log.insert(id, m.clock, ()), Insert::Duplicate);
        assert!(log.tick(now()).0 >= m.clock);
    }
}

/// Decode arbitrary bytes as a `ChatMessage` and the other typed payloads; parse key and id strings.
pub fn chat_message(data: &[u8]) {
    if let Ok(m) = decode_chat_message(data) {
        check_chat_message(&m);
    }
    for kind in [
        MessageKind::ContactUpdate,
        MessageKind::PairInstallation,
        MessageKind::SyncInstallation,
        MessageKind::EmojiReaction,
        MessageKind::ContactCodeAdvertisement,
    ] {
        if let Ok(p) = AppPayload::decode(kind as i32, data) {
            check_payload(&p);
        }
    }
    if let Ok(text) = core::str::from_utf8(data) {
        if let Ok(k) = pubkey_from_multibase(text) {
            assert_eq!(pubkey_from_multibase(&compressed_key_string(&k)).ok(), Some(k));
        }
        if let Ok(k) = pubkey_from_hex(text) {
            assert_eq!(pubkey_to_hex(&k), text);
        }
        if let Some(id) = MessageId::from_hex(text) {
            assert_eq!(id.to_string(), text.to_ascii_lowercase());
        }
    }
}

/// Decode and fold arbitrary membership updates, then run `data` as a script of signed events.
pub fn chat_membership(data: &[u8]) {
    let limits = fuzz_group_limits();
    if let Ok(update) = decode_membership_update(data, &limits) {
        let bytes = encode_membership_update(&update.chat_id, &update.events, update.entity.as_ref());
        let again = decode_membership_update(&bytes, &limits);
        assert_eq!(again.as_ref().ok(), Some(&update));
        if let Ok(g) = Group::from_events(&update.chat_id, update.events.clone(), now(), limits) {
            check_group(&g);
        }
    }
    let _ = membership_script(&mut Unstructured::new(data));
}

fn membership_script(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let keys: Vec<SecretKey> = (0..4).filter_map(fixed_key).collect();
    let ids: Vec<String> = keys.iter().map(|k| pubkey_to_hex(&k.public_key())).collect();
    let Some(creator) = keys.get(usize::from(u.int_in_range(0u8..=3)?)) else {
        return Ok(());
    };
    let chat = if u.ratio(1u8, 8)? {
        "not-a-group".to_string()
    } else {
        group_chat_id(u.arbitrary()?, &creator.public_key())
    };
    let limits = fuzz_group_limits();
    let n = u.int_in_range(0usize..=14)?;
    let mut events: Vec<SignedEvent> = Vec::with_capacity(n + 1);
    if u.ratio(7u8, 8)? {
        // Usually start from a genuine creation, so the fold gets past its first check.
        let created = new_event(EventType::ChatCreated, NOW_MS - 100, &[], "g");
        if let Ok(e) = sign_event(&chat, &created, creator) {
            events.push(e);
        }
    }
    for _ in 0..n {
        let author = if u.ratio(1u8, 2)? {
            creator
        } else {
            &keys[usize::from(u.int_in_range(0u8..=3)?)]
        };
        // Weighted so that groups grow: mostly additions and joins, few self-demotions.
        let kind = match u.int_in_range(0u8..=31)? {
            0 => EventType::Unknown,
            1 => EventType::ChatCreated,
            2 | 3 => EventType::NameChanged,
            4..=11 | 28..=31 => EventType::MembersAdded,
            12..=17 => EventType::MemberJoined,
            18..=21 => EventType::MemberRemoved,
            22..=24 => EventType::AdminsAdded,
            25 => EventType::AdminRemoved,
            26 => EventType::ColorChanged,
            _ => EventType::ImageChanged,
        } as i32;
        let clock = match u.int_in_range(0u8..=63)? {
            0 => 0,
            1 => NOW_MS + 120_001,
            c => NOW_MS - 100 + u64::from(c),
        };
        let mut members = Vec::new();
        for _ in 0..u.int_in_range(0u8..=2)? {
            match u.int_in_range(0u8..=15)? {
                15 => members.push("0xnope".to_string()),
                i => members.push(ids[usize::from(i % 4)].clone()),
            }
        }
        let name = ["", "g", "renamed", "a name that is too long"][usize::from(u.int_in_range(0u8..=3)?)];
        let mut ev = new_event(EventType::Unknown, clock, &members, name);
        ev.r#type = kind;
        let Ok(signed) = sign_event(&chat, &ev, author) else {
            continue;
        };
        events.push(signed);
    }
    if let Some(e) = events.first() {
        assert_eq!(verify_event(&chat, &e.bytes).ok().as_ref(), Some(e));
    }
    // The whole set, in two orders and as a split merge: all agree.
    let whole = Group::from_events(&chat, events.clone(), now(), limits);
    check_fold(&chat, &events, &whole, u)?;
    // Incremental: each event merged into the group so far, kept if accepted. This reaches deep states;
    // the accepted events then fold to the same group in any order and split.
    let mut group: Option<Group> = None;
    let mut accepted = Vec::new();
    for e in &events {
        let next = match &group {
            None => Group::from_events(&chat, vec![e.clone()], now(), limits),
            Some(g) => g.merge(std::slice::from_ref(e), now()),
        };
        if let Ok(g) = next {
            check_group(&g);
            group = Some(g);
            accepted.push(e.clone());
        }
    }
    if let Some(g) = group {
        assert!(ids.iter().any(|i| i == g.creator()));
        let whole = Ok(g);
        check_fold(&chat, &accepted, &whole, u)?;
    }
    Ok(())
}

fn check_fold(
    chat: &str,
    events: &[SignedEvent],
    whole: &Result<Group, crate::chat::GroupError>,
    u: &mut Unstructured<'_>,
) -> arbitrary::Result<()> {
    let limits = fuzz_group_limits();
    if let Ok(g) = whole {
        check_group(g);
    }
    let mut reversed = events.to_vec();
    reversed.reverse();
    assert_eq!(&Group::from_events(chat, reversed, now(), limits), whole);
    let split = u.int_in_range(0..=events.len())?;
    if let Ok(prefix) = Group::from_events(chat, events[..split].to_vec(), now(), limits) {
        check_group(&prefix);
        assert_eq!(&prefix.merge(&events[split..], now()), whole);
    }
    Ok(())
}

fn check_group(g: &Group) {
    let limits = g.limits();
    assert!(g.admins().is_subset(g.members()));
    assert!(g.joined().is_subset(g.members()));
    assert!(g.members().len() <= limits.max_members);
    assert!(g.events().len() <= limits.max_events);
    assert!(g.name().len() <= limits.max_name_bytes);
    assert!(g.chat_id().ends_with(g.creator()) && g.chat_id().len() > g.creator().len());
    assert!(g
        .events()
        .windows(2)
        .all(|w| w[0].event.clock <= w[1].event.clock));
    assert!(g.members().iter().all(|m| pubkey_from_hex(m).is_ok()));
}

// ---- the Messenger ---------------------------------------------------------------------------------

/// Small caps so fuzzing reaches them.
pub fn fuzz_messenger_config(identity: SecretKey) -> MessengerConfig {
    let mut c = MessengerConfig::new(identity, "fuzz".into());
    c.max_one_to_one_chats = 3;
    c.max_groups = 2;
    c.max_members_per_group = 4;
    c.max_messages_per_chat = 8;
    c.max_persisted_messages_per_chat = 8;
    c.max_tracked_deliveries = 8;
    // No negotiated topics: each costs a PBKDF2 derivation (our sends stay on partitioned topics).
    c.max_negotiated_topics = 0;
    // No contact-code advertisements either (the first would derive the topic key with PBKDF2).
    c.contact_code_interval = None;
    c
}

/// Plaintexts a real Messenger (fixed key 1) produces for fixed key 0: a first 1:1 text, a group
/// creation with keys 0 and 2, a group text, and the MVDS ACKs; each as the secure transport of key 0
/// decrypts it. The seed corpus of [`chat_messenger`] (input = `0 ‖ sender tag 1 ‖ plaintext`).
pub fn messenger_seed_plaintexts() -> Vec<Vec<u8>> {
    let (Some(k0), Some(k1), Some(k2)) = (fixed_key(0), fixed_key(1), fixed_key(2)) else {
        return vec![];
    };
    let (p0, p1, p2) = (k0.public_key(), k1.public_key(), k2.public_key());
    let Ok(mut sender) = Messenger::new(fuzz_messenger_config(k1), &Seed::from_u64(1), now()) else {
        return vec![];
    };
    let Ok(mut receiver) = SecureTransport::new(
        secure::Config::default(),
        k0,
        "r".into(),
        &Seed::from_u64(2),
        now(),
    ) else {
        return vec![];
    };
    let mut inputs = vec![
        Input::StartOneToOne(p0),
        Input::SendText {
            chat: Messenger::one_to_one_chat_id(&p0),
            text: "hello".into(),
        },
        Input::CreateGroup {
            name: "fuzz".into(),
            members: vec![p0, p2],
        },
    ];
    let mut out = vec![];
    let mut t = now();
    for step in 0..4 {
        for i in inputs.drain(..) {
            let _ = sender.handle_input(t, i);
        }
        if step == 1 {
            let group = sender.chats().find(|c| c.len() > 132).map(str::to_string);
            if let Some(g) = group {
                let _ = sender.handle_input(
                    t,
                    Input::SendText {
                        chat: g.into(),
                        text: "group text".into(),
                    },
                );
            }
        }
        t = t.saturating_add(core::time::Duration::from_secs(1));
        sender.handle_timeout(t);
        while let Some(o) = sender.poll_output() {
            if let messenger::Output::Transmit(m) = o {
                let _ = receiver.handle_input(
                    t,
                    secure::Input::Received {
                        sender: p1,
                        bytes: m.payload.clone(),
                    },
                );
                while let Some(r) = receiver.poll_output() {
                    if let secure::Output::Event(secure::Event::Decrypted { plaintext, .. }) = r {
                        out.push(plaintext);
                    }
                }
            }
        }
    }
    out
}

fn check_messenger(m: &Messenger, c: &MessengerConfig) {
    let mut counts = [0usize; 3];
    for chat in m.chats() {
        match m.chat_kind(chat) {
            Some(ChatKind::Public) => counts[0] += 1,
            Some(ChatKind::OneToOne) => counts[1] += 1,
            Some(ChatKind::Group) => counts[2] += 1,
            None => unreachable!("listed chat without a kind"),
        }
        assert!(m.messages(chat).len() <= c.max_messages_per_chat);
        if let Some(g) = m.group(chat) {
            check_group(g);
            assert!(g.members().len() <= c.max_members_per_group);
        }
    }
    assert!(counts[0] <= c.max_chats && counts[1] <= c.max_one_to_one_chats && counts[2] <= c.max_groups);
    assert!(m.pending_deliveries() <= c.max_tracked_deliveries);
    assert!(m.negotiated_topics() <= c.max_negotiated_topics);
    assert!(m.queued_outputs() <= c.max_queued_outputs);
}

/// Feed the Messenger (fixed key 0, with a 1:1 chat with key 1 and a group of keys 1, 0, 2 created by
/// key 1) arbitrary decrypted payloads and membership updates, then check its invariants: never a
/// panic, counts within the caps, group folds valid, every shown message in an existing chat, and an
/// export/import round trip that reproduces chats, groups and messages.
///
/// Input: a sequence of records `mode ‖ sender tag ‖ len(u16 BE) ‖ bytes`. Mode 0: `bytes` is a
/// plaintext as the secure transport would hand it over (datasync payload or bare wrapper); mode 1:
/// `bytes` is a script of membership events (4 bytes each: author tag, event type, target tag, clock
/// step) signed by fixed keys and sent as a `MembershipUpdateMessage` of the group (with a text when
/// the script length is odd); any other mode advances the clock (MVDS timers run).
///
/// Returns the number of messages shown (`MessageReceived` events), for corpus checks.
pub fn chat_messenger(data: &[u8]) -> usize {
    messenger_script(data).0
}

/// The exported state of the Messenger after the [`chat_messenger`] script `data` (for seed corpora of
/// [`chat_messenger_import`]).
pub fn messenger_state_after(data: &[u8]) -> Vec<u8> {
    messenger_script(data).1.to_vec()
}

/// The starting point of every [`chat_messenger`] run, built once per process: the exported state of
/// key 0's Messenger with a 1:1 chat with key 1 (starting it derives a topic key with a 65,536-round
/// PBKDF2, ~0.1 s) and the group of keys 1, 0, 2 created by key 1, and the group's two signed events.
struct MessengerBase {
    keys: Vec<SecretKey>,
    state: Vec<u8>,
    chat: String,
    events: Vec<SignedEvent>,
}

fn messenger_base() -> Option<&'static MessengerBase> {
    static BASE: std::sync::OnceLock<Option<MessengerBase>> = std::sync::OnceLock::new();
    BASE.get_or_init(|| {
        let keys: Vec<SecretKey> = (0..4).filter_map(fixed_key).collect();
        let [k0, k1, k2, _] = keys.as_slice() else {
            return None;
        };
        let config = fuzz_messenger_config(k0.clone());
        let mut m = Messenger::new(config, &Seed::from_u64(9), now()).ok()?;
        let t = now();
        m.handle_input(t, Input::StartOneToOne(k1.public_key())).ok()?;
        let chat = group_chat_id([7; 16], &k1.public_key());
        let members = [pubkey_to_hex(&k0.public_key()), pubkey_to_hex(&k2.public_key())];
        let events = vec![
            sign_event(
                &chat,
                &new_event(EventType::ChatCreated, NOW_MS - 10, &[], "g"),
                k1,
            )
            .ok()?,
            sign_event(
                &chat,
                &new_event(EventType::MembersAdded, NOW_MS - 9, &members, ""),
                k1,
            )
            .ok()?,
        ];
        let base = encode_membership_update(&chat, &events, None);
        let w = wrap(&base, MessageKind::MembershipUpdateMessage, k1).ok()?;
        m.receive_decrypted(t, k1.public_key(), &w.bytes, t);
        Some(MessengerBase {
            state: m.export().to_vec(),
            keys,
            chat,
            events,
        })
    })
    .as_ref()
}

fn messenger_script(data: &[u8]) -> (usize, zeroize::Zeroizing<Vec<u8>>) {
    let Some(base) = messenger_base() else {
        return (0, Default::default());
    };
    let keys = &base.keys;
    let config = fuzz_messenger_config(keys[0].clone());
    let mut t = now();
    let Ok(mut m) = Messenger::import(config.clone(), &Seed::from_u64(9), t, &base.state) else {
        unreachable!("the base state imports");
    };
    let chat = base.chat.clone();
    let mut events = base.events.clone();
    let mut shown = 0;
    let mut rest = data;
    let mut clock = NOW_MS;
    while rest.len() >= 4 {
        let (mode, tag) = (rest[0], rest[1] as usize % keys.len());
        let len = (usize::from(u16::from_be_bytes([rest[2], rest[3]]))).min(rest.len() - 4);
        let bytes = &rest[4..4 + len];
        rest = &rest[4 + len..];
        let sender = keys[tag].public_key();
        match mode {
            0 => m.receive_decrypted(t, sender, bytes, t),
            1 => {
                for ev in bytes.chunks_exact(4) {
                    let author = &keys[ev[0] as usize % keys.len()];
                    let target = pubkey_to_hex(&keys[ev[2] as usize % keys.len()].public_key());
                    let kind = EventType::try_from(i32::from(ev[1] % 9)).unwrap_or(EventType::Unknown);
                    clock = clock.saturating_add(u64::from(ev[3]));
                    let e = new_event(kind, clock, &[target], "n");
                    if let Ok(s) = sign_event(&chat, &e, author) {
                        events.push(s);
                    }
                }
                let text = (len % 2 == 1).then(|| {
                    pb::membership_update_message::ChatEntity::Message(pb::ChatMessage {
                        clock,
                        timestamp: NOW_MS,
                        text: "t".into(),
                        chat_id: chat.clone(),
                        message_type: pb::MessageType::PrivateGroup as i32,
                        content_type: pb::chat_message::ContentType::TextPlain as i32,
                        ..Default::default()
                    })
                });
                let body = encode_membership_update(&chat, &events, text.as_ref());
                if let Ok(w) = wrap(&body, MessageKind::MembershipUpdateMessage, &keys[tag]) {
                    m.receive_decrypted(t, sender, &w.bytes, t);
                }
            }
            _ => {
                t = t.saturating_add(core::time::Duration::from_millis(
                    u64::from(rest.len() as u16) + 300,
                ));
                m.handle_timeout(t);
            }
        }
        check_messenger(&m, &config);
        while let Some(o) = m.poll_output() {
            if let messenger::Output::Event(messenger::Event::MessageReceived { chat, .. }) = o {
                assert!(m.chat_kind(&chat).is_some());
                shown += 1;
            }
        }
    }
    let state = m.export();
    let Ok(again) = Messenger::import(config.clone(), &Seed::from_u64(10), t, &state) else {
        unreachable!("an exported state imports");
    };
    check_messenger(&again, &config);
    assert_eq!(again.chats().collect::<Vec<_>>(), m.chats().collect::<Vec<_>>());
    for c in m.chats() {
        assert_eq!(again.messages(c), m.messages(c));
        assert_eq!(again.group(c), m.group(c));
    }
    (shown, state)
}

/// Import arbitrary bytes as a Messenger state (key 0's, with [`fuzz_messenger_config`]'s caps).
/// Whatever imports keeps the caps and invariants, and exports bytes that import again and export the
/// same bytes (the format has one encoding per state).
///
/// Returns whether the input imported, for corpus checks.
pub fn chat_messenger_import(data: &[u8]) -> bool {
    let Some(k0) = fixed_key(0) else {
        return false;
    };
    let config = fuzz_messenger_config(k0);
    let Ok(m) = Messenger::import(config.clone(), &Seed::from_u64(3), now(), data) else {
        return false;
    };
    check_messenger(&m, &config);
    let state = m.export();
    let Ok(again) = Messenger::import(config.clone(), &Seed::from_u64(4), now(), &state) else {
        unreachable!("an exported state imports");
    };
    check_messenger(&again, &config);
    assert_eq!(again.export(), state, "export, import, export is stable");
    true
}
