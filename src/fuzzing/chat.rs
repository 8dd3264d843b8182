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

use arbitrary::Unstructured;
use prost::Message as _;
use status_proto::protobuf as pb;

use crate::chat::group::{
    decode_membership_update, encode_membership_update, group_chat_id, new_event, sign_event, verify_event,
    EventType, Group, GroupLimits, SignedEvent,
};
use crate::chat::identity::{compressed_key_string, pubkey_from_hex, pubkey_from_multibase, pubkey_to_hex};
use crate::chat::log::{ChatLog, Insert};
use crate::chat::payloads::{
    decode_chat_message, encode_chat_message, unwrap, AppPayload, MessageId, MessageKind,
};
use crate::chat::validate::{validate_chat_message, validate_emoji_reaction, validate_pair_installation};
use crate::crypto::{secret_from_bytes, SecretKey};
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
        assert!(!m.text.trim().is_empty() && m.text.len() <= 4096);
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
