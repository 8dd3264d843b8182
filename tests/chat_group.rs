#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Private group membership (docs/protocol/payloads.md §6): event signatures, the fold table, who may do
//! what, clock ordering, and the message codec.

use status_proto::protobuf as pb;
use status_sansio::chat::group::*;
use status_sansio::chat::identity::pubkey_to_hex;
use status_sansio::chat::payloads::{decode_chat_message, encode_chat_message};
use status_sansio::chat::ChatError;
use status_sansio::crypto::{secret_from_bytes, SecretKey};
use status_sansio::Timestamp;

const T0: u64 = 1_700_000_000_000;

fn now() -> Timestamp {
    Timestamp::from_millis(T0 + 10_000)
}

struct Who {
    sk: SecretKey,
    id: String,
}

fn who(n: u8) -> Who {
    let sk = secret_from_bytes(&[n; 32]).unwrap();
    let id = pubkey_to_hex(&sk.public_key());
    Who { sk, id }
}

fn chat_id(creator: &Who) -> String {
    group_chat_id([7; 16], &creator.sk.public_key())
}

fn ev(chat: &str, by: &Who, kind: EventType, clock: u64, members: &[&Who], name: &str) -> SignedEvent {
    let m: Vec<String> = members.iter().map(|w| w.id.clone()).collect();
    sign_event(chat, &new_event(kind, T0 + clock, &m, name), &by.sk).unwrap()
}

fn fold(chat: &str, events: Vec<SignedEvent>) -> Result<Group, GroupError> {
    Group::from_events(chat, events, now(), GroupLimits::default())
}

/// alice creates "g", adds bob and carol; bob joins.
fn base() -> (String, Who, Who, Who, Vec<SignedEvent>) {
    let (a, b, c) = (who(1), who(2), who(3));
    let chat = chat_id(&a);
    let events = vec![
        ev(&chat, &a, EventType::ChatCreated, 1, &[], "g"),
        ev(&chat, &a, EventType::MembersAdded, 2, &[&b, &c], ""),
        ev(&chat, &b, EventType::MemberJoined, 3, &[], ""),
    ];
    (chat, a, b, c, events)
}

#[test]
fn chat_id_form() {
    let a = who(1);
    let id = chat_id(&a);
    assert_eq!(id.len(), 36 + 1 + 132);
    assert!(id.ends_with(&format!("-{}", a.id)));
    assert_eq!(&id[14..15], "4", "uuid version 4");
    assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "uuid variant");
}

#[test]
fn signatures_verify_and_bind_the_chat_id() {
    let (chat, a, ..) = base();
    let e = ev(&chat, &a, EventType::ChatCreated, 1, &[], "g");
    let v = verify_event(&chat, &e.bytes).unwrap();
    assert_eq!(v, e);
    assert_eq!(v.from, a.id);
    assert_eq!(v.signature().len(), 65);
    // Another chat id recovers another author.
    assert_ne!(verify_event("other", &e.bytes).unwrap().from, a.id);
    assert_eq!(
        verify_event(&chat, &e.bytes[..65]),
        Err(GroupError::EventTooShort)
    );
    let mut bad = e.bytes.to_vec();
    bad[64] = 9;
    assert_eq!(verify_event(&chat, &bad), Err(GroupError::BadSignature));
    // An all-default event encodes to nothing: refused when signing (it could never verify).
    assert_eq!(
        sign_event(&chat, &pb::MembershipUpdateEvent::default(), &a.sk),
        Err(ChatError::Group(GroupError::EventTooShort))
    );
    let mut bad = e.bytes.to_vec();
    bad.push(0xff);
    assert_eq!(verify_event(&chat, &bad), Err(GroupError::Malformed));
}

#[test]
fn create_add_join() {
    let (chat, a, b, c, events) = base();
    let g = fold(&chat, events.clone()).unwrap();
    assert_eq!(g.name(), "g");
    assert_eq!(g.creator(), a.id);
    assert!(g.is_admin(&a.id) && !g.is_admin(&b.id));
    assert!(g.is_member(&a.id) && g.is_member(&b.id) && g.is_member(&c.id));
    assert!(g.has_joined(&a.id) && g.has_joined(&b.id) && !g.has_joined(&c.id));
    assert_eq!(g.events().len(), 3);
    assert_eq!(g.last_clock(), T0 + 3);
    // Order and duplicates of the input do not matter.
    let mut shuffled = events.clone();
    shuffled.reverse();
    shuffled.extend(events.iter().cloned());
    assert_eq!(fold(&chat, shuffled).unwrap(), g);
}

#[test]
fn non_admins_cannot_administer() {
    let (chat, _a, b, c, events) = base();
    let d = who(4);
    let cases = [
        (
            ev(&chat, &b, EventType::NameChanged, 5, &[], "x"),
            GroupError::NotAdmin,
        ),
        (
            ev(&chat, &b, EventType::MembersAdded, 5, &[&d], ""),
            GroupError::NotAdmin,
        ),
        (
            ev(&chat, &b, EventType::AdminsAdded, 5, &[&b], ""),
            GroupError::NotAdmin,
        ),
        (
            ev(&chat, &b, EventType::MemberRemoved, 5, &[&c], ""),
            GroupError::RemovalNotAllowed,
        ),
        (
            ev(&chat, &d, EventType::MemberJoined, 5, &[], ""),
            GroupError::NotMember,
        ),
        (
            ev(&chat, &b, EventType::AdminRemoved, 5, &[&b], ""),
            GroupError::NotAdmin,
        ),
        (
            ev(&chat, &b, EventType::ChatCreated, 5, &[], "again"),
            GroupError::AlreadyCreated,
        ),
        (
            ev(&chat, &b, EventType::Unknown, 5, &[], ""),
            GroupError::UnknownEventType,
        ),
        (
            ev(&chat, &b, EventType::ColorChanged, 5, &[], ""),
            GroupError::UnknownEventType,
        ),
    ];
    let g = fold(&chat, events.clone()).unwrap();
    for (e, want) in cases {
        let mut all = events.clone();
        all.push(e.clone());
        assert_eq!(fold(&chat, all), Err(want.clone()));
        // Merging rejects the message and leaves the group as it was.
        assert_eq!(g.merge(&[e], now()), Err(want));
    }
}

#[test]
fn admin_actions() {
    let (chat, a, b, c, events) = base();
    let g = fold(&chat, events).unwrap();
    // Rename.
    let g = g
        .merge(&[ev(&chat, &a, EventType::NameChanged, 4, &[], "renamed")], now())
        .unwrap();
    assert_eq!(g.name(), "renamed");
    assert_eq!(
        g.merge(&[ev(&chat, &a, EventType::NameChanged, 5, &[], "")], now()),
        Err(GroupError::EmptyName)
    );
    // Promote bob; a non-member cannot be promoted (spec rule: all targets must be members).
    let d = who(4);
    assert_eq!(
        g.merge(&[ev(&chat, &a, EventType::AdminsAdded, 5, &[&b, &d], "")], now()),
        Err(GroupError::AdminNotMember)
    );
    let g = g
        .merge(&[ev(&chat, &a, EventType::AdminsAdded, 5, &[&b], "")], now())
        .unwrap();
    assert!(g.is_admin(&b.id));
    // An admin cannot remove another admin, nor demote one.
    assert_eq!(
        g.merge(&[ev(&chat, &a, EventType::MemberRemoved, 6, &[&b], "")], now()),
        Err(GroupError::RemovalNotAllowed)
    );
    assert_eq!(
        g.merge(&[ev(&chat, &a, EventType::AdminRemoved, 6, &[&b], "")], now()),
        Err(GroupError::AdminRemovalNotSelf)
    );
    assert_eq!(
        g.merge(&[ev(&chat, &a, EventType::AdminRemoved, 6, &[&a, &b], "")], now()),
        Err(GroupError::OneTarget)
    );
    // ...but can remove a non-admin member.
    let g = g
        .merge(&[ev(&chat, &b, EventType::MemberRemoved, 6, &[&c], "")], now())
        .unwrap();
    assert!(!g.is_member(&c.id));
    // Bob steps down as admin, then leaves.
    let g = g
        .merge(&[ev(&chat, &b, EventType::AdminRemoved, 7, &[&b], "")], now())
        .unwrap();
    assert!(!g.is_admin(&b.id) && g.is_member(&b.id));
    let g = g
        .merge(&[ev(&chat, &b, EventType::MemberRemoved, 8, &[&b], "")], now())
        .unwrap();
    assert!(!g.is_member(&b.id) && !g.has_joined(&b.id));
    assert_eq!(
        g.merge(&[ev(&chat, &a, EventType::MemberRemoved, 9, &[], "")], now()),
        Err(GroupError::OneTarget)
    );
    // Once removed, bob may not rejoin by himself.
    assert_eq!(
        g.merge(&[ev(&chat, &b, EventType::MemberJoined, 9, &[], "")], now()),
        Err(GroupError::NotMember)
    );
    // The creator can leave too; the group then has no admin.
    let g = g
        .merge(&[ev(&chat, &a, EventType::MemberRemoved, 10, &[&a], "")], now())
        .unwrap();
    assert!(g.admins().is_empty() && g.members().is_empty());
    assert_eq!(g.creator(), a.id);
}

#[test]
fn validity_depends_on_clock_order() {
    let (chat, a, b, c, events) = base();
    // Carol joining before she was added (by clock) is invalid, whatever the arrival order.
    let early_join = ev(&chat, &c, EventType::MemberJoined, 1, &[], "");
    let mut all = events.clone();
    all.push(early_join);
    // Clock 1 ties with CHAT_CREATED; which sorts first depends on the signature bytes, and either way
    // the set is invalid (not created first, or carol not yet a member).
    assert!(matches!(
        fold(&chat, all),
        Err(GroupError::NotCreatedFirst | GroupError::NotMember)
    ));
    // An admin promotion then a removal of the promoted admin: order decides.
    let promote = ev(&chat, &a, EventType::AdminsAdded, 5, &[&b], "");
    let remove_early = ev(&chat, &a, EventType::MemberRemoved, 4, &[&b], "");
    let remove_late = ev(&chat, &a, EventType::MemberRemoved, 6, &[&b], "");
    let mut ok = events.clone();
    ok.extend([remove_early, promote.clone()]);
    assert_eq!(fold(&chat, ok), Err(GroupError::AdminNotMember));
    let mut bad = events.clone();
    bad.extend([promote, remove_late]);
    assert_eq!(fold(&chat, bad), Err(GroupError::RemovalNotAllowed));
}

#[test]
fn creation_rules() {
    let (a, b) = (who(1), who(2));
    let chat = chat_id(&a);
    // No events, or not CHAT_CREATED first.
    assert_eq!(fold(&chat, vec![]), Err(GroupError::NoEvents));
    let added = ev(&chat, &a, EventType::MembersAdded, 1, &[&b], "");
    assert_eq!(fold(&chat, vec![added]), Err(GroupError::NotCreatedFirst));
    // An event below CHAT_CREATED rejects the set.
    let created = ev(&chat, &a, EventType::ChatCreated, 5, &[], "g");
    let before = ev(&chat, &a, EventType::NameChanged, 4, &[], "x");
    assert_eq!(
        fold(&chat, vec![created.clone(), before]),
        Err(GroupError::NotCreatedFirst)
    );
    // The chat id must be the creator's.
    let bobs_chat = chat_id(&b);
    let forged = ev(&bobs_chat, &a, EventType::ChatCreated, 1, &[], "g");
    assert_eq!(fold(&bobs_chat, vec![forged]), Err(GroupError::NotCreatorsChatId));
    let bare = ev(&a.id, &a, EventType::ChatCreated, 1, &[], "g");
    assert_eq!(fold(&a.id, vec![bare]), Err(GroupError::NotCreatorsChatId));
    // Clocks: non-zero and at most 120 s ahead of local time.
    let zero = sign_event(&chat, &new_event(EventType::ChatCreated, 0, &[], "g"), &a.sk).unwrap();
    assert_eq!(fold(&chat, vec![zero]), Err(GroupError::ZeroClock));
    let ahead = ev(&chat, &a, EventType::ChatCreated, 10_000 + 120_001, &[], "g");
    assert_eq!(fold(&chat, vec![ahead]), Err(GroupError::ClockInFuture));
    let edge = ev(&chat, &a, EventType::ChatCreated, 10_000 + 120_000, &[], "g");
    assert!(fold(&chat, vec![edge]).is_ok());
    // Member strings must be canonical keys.
    let odd = sign_event(
        &chat,
        &new_event(EventType::MembersAdded, T0 + 6, &[b.id.to_uppercase()], ""),
        &a.sk,
    )
    .unwrap();
    assert_eq!(fold(&chat, vec![created, odd]), Err(GroupError::InvalidMember));
}

#[test]
fn caps() {
    let (chat, a, b, _c, events) = base();
    let limits = GroupLimits {
        max_events: 3,
        ..GroupLimits::default()
    };
    assert!(Group::from_events(&chat, events.clone(), now(), limits).is_ok());
    let g = Group::from_events(&chat, events.clone(), now(), limits).unwrap();
    assert_eq!(
        g.merge(&[ev(&chat, &a, EventType::NameChanged, 4, &[], "n")], now()),
        Err(GroupError::TooLarge)
    );
    let limits = GroupLimits {
        max_members: 2,
        ..GroupLimits::default()
    };
    assert_eq!(
        Group::from_events(&chat, events.clone(), now(), limits),
        Err(GroupError::TooLarge)
    );
    let long = ev(&chat, &a, EventType::NameChanged, 4, &[], &"n".repeat(257));
    let mut all = events;
    all.push(long);
    assert_eq!(fold(&chat, all), Err(GroupError::TooLarge));
    let _ = b;
}

#[test]
fn apply_own_and_message_codec() {
    let (chat, a, b, _c, events) = base();
    let g = fold(&chat, events).unwrap();
    let (g2, signed) = g
        .apply_own(
            &new_event(EventType::NameChanged, T0 + 9, &[], "new"),
            &a.sk,
            now(),
        )
        .unwrap();
    assert_eq!(g2.name(), "new");
    assert_eq!(signed.from, a.id);
    assert!(matches!(
        g.apply_own(&new_event(EventType::NameChanged, T0 + 9, &[], "x"), &b.sk, now()),
        Err(ChatError::Group(GroupError::NotAdmin))
    ));

    // A group message carries every event plus a chat message; any member rebuilds the group from it.
    let msg = pb::ChatMessage {
        clock: T0 + 10,
        timestamp: T0 + 10,
        text: "hi".into(),
        chat_id: chat.clone(),
        message_type: pb::MessageType::PrivateGroup as i32,
        content_type: pb::chat_message::ContentType::Sticker as i32,
        payload: Some(pb::chat_message::Payload::Sticker(pb::StickerMessage {
            hash: "h".into(),
            pack: 1,
        })),
        display_name: "A".into(),
        ..Default::default()
    };
    let entity = pb::membership_update_message::ChatEntity::Message(msg.clone());
    let bytes = encode_membership_update(&chat, g2.events(), Some(&entity));
    let update = decode_membership_update(&bytes, &GroupLimits::default()).unwrap();
    assert_eq!(update.chat_id, chat);
    assert_eq!(update.events, g2.events());
    assert_eq!(update.entity, Some(entity));
    // The carried message is encoded like a standalone one (oneof last).
    let inner = encode_chat_message(&msg);
    assert!(bytes.windows(inner.len()).any(|w| w == inner));
    assert_eq!(decode_chat_message(&inner).unwrap(), msg);
    let rebuilt = Group::from_events(&chat, update.events.clone(), now(), GroupLimits::default()).unwrap();
    assert_eq!(rebuilt, g2);
    assert_eq!(g.merge_update(&update, now()).unwrap(), g2);
    let mut other = update.clone();
    other.chat_id = "x".into();
    assert_eq!(g.merge_update(&other, now()), Err(GroupError::ChatIdMismatch));

    // One bad event makes the whole message invalid.
    let mut raw = bytes.clone();
    let at = bytes.len() / 3;
    raw[at] ^= 0x40;
    assert!(decode_membership_update(&raw, &GroupLimits::default())
        .map(|u| u.events != g2.events())
        .unwrap_or(true));
    let reaction = pb::membership_update_message::ChatEntity::EmojiReaction(pb::EmojiReaction {
        clock: 1,
        chat_id: chat.clone(),
        message_id: "0x01".into(),
        message_type: 3,
        r#type: 1,
        ..Default::default()
    });
    let bytes = encode_membership_update(&chat, &[], Some(&reaction));
    let update = decode_membership_update(&bytes, &GroupLimits::default()).unwrap();
    assert_eq!(update.entity, Some(reaction));
    assert!(update.events.is_empty());
}
