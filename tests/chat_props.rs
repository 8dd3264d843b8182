#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Application-layer properties: the receive validation rules one by one, encode/decode and wrap/unwrap
//! round trips over seeded random messages, and the chat log's order and de-duplication.

use prost::Message as _;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use status_proto::protobuf as pb;
use status_sansio::chat::message_log::{ChatLog, Insert};
use status_sansio::chat::payloads::*;
use status_sansio::chat::validate::*;
use status_sansio::crypto::SecretKey;
use status_sansio::Timestamp;

const NOW_MS: u64 = 1_700_000_000_000;

fn valid_text() -> pb::ChatMessage {
    pb::ChatMessage {
        clock: NOW_MS,
        timestamp: NOW_MS,
        text: "hello".into(),
        chat_id: "status".into(),
        message_type: pb::MessageType::PublicGroup as i32,
        content_type: pb::chat_message::ContentType::TextPlain as i32,
        ..Default::default()
    }
}

fn check(m: &pb::ChatMessage) -> Result<(), ValidationError> {
    validate_chat_message(m, Timestamp::from_millis(NOW_MS))
}

#[test]
fn chat_message_rules() {
    use pb::chat_message::{ContentType as C, Payload};
    use ValidationError as E;
    assert_eq!(check(&valid_text()), Ok(()));
    let with = |f: &dyn Fn(&mut pb::ChatMessage)| {
        let mut m = valid_text();
        f(&mut m);
        check(&m)
    };
    // 1. clock
    assert_eq!(with(&|m| m.clock = 0), Err(E::ZeroClock));
    assert_eq!(with(&|m| m.clock = NOW_MS + 120_000), Ok(()));
    assert_eq!(with(&|m| m.clock = NOW_MS + 120_001), Err(E::ClockInFuture));
    assert_eq!(
        with(&|m| m.clock = 1),
        Ok(()),
        "far below the transport time is accepted"
    );
    // 2. timestamp
    assert_eq!(with(&|m| m.timestamp = 0), Err(E::ZeroTimestamp));
    // 3. text
    assert_eq!(with(&|m| m.text = " \t\n".into()), Err(E::BlankText));
    assert_eq!(with(&|m| m.text = "x".repeat(4096)), Ok(()));
    assert_eq!(with(&|m| m.text = "x".repeat(4097)), Err(E::TextTooLong));
    // The limit counts characters, not bytes (2-byte Cyrillic, 4-byte emoji).
    assert_eq!(with(&|m| m.text = "я".repeat(4096)), Ok(()));
    assert_eq!(with(&|m| m.text = "я".repeat(4097)), Err(E::TextTooLong));
    assert_eq!(with(&|m| m.text = "\u{1f600}".repeat(4096)), Ok(()));
    assert_eq!(with(&|m| m.text = "\u{1f600}".repeat(4097)), Err(E::TextTooLong));
    // DISCORD and BRIDGE messages carry no text (2024 reference).
    for c in [C::DiscordMessage, C::BridgeMessage] {
        assert_eq!(
            with(&|m| {
                m.content_type = c as i32;
                m.text.clear();
            }),
            Ok(())
        );
    }
    // 4. chat id
    assert_eq!(with(&|m| m.chat_id.clear()), Err(E::EmptyChatId));
    // 5. message type
    for t in [0, 4, 5, 6, 77, -1] {
        assert_eq!(with(&|m| m.message_type = t), Err(E::InvalidMessageType), "{t}");
    }
    for t in [1, 2, 3] {
        assert_eq!(with(&|m| m.message_type = t), Ok(()));
    }
    // 6. content types
    assert_eq!(with(&|m| m.content_type = 0), Err(E::UnknownContentType));
    assert_eq!(
        with(&|m| m.content_type = C::TransactionCommand as i32),
        Err(E::TransactionCommand)
    );
    for c in [C::Status, C::Emoji, C::Community, C::ContactRequest] {
        assert_eq!(with(&|m| m.content_type = c as i32), Ok(()));
    }
    assert_eq!(with(&|m| m.content_type = 1000), Ok(()), "unknown types pass");
    for c in [6, 10, 14, 15, 16, 17] {
        assert_eq!(with(&|m| m.content_type = c), Err(E::LocalOnlyContent));
    }
    let sticker = |hash: &str| {
        Some(Payload::Sticker(pb::StickerMessage {
            hash: hash.into(),
            pack: 1,
        }))
    };
    assert_eq!(
        with(&|m| m.content_type = C::Sticker as i32),
        Err(E::MissingSticker)
    );
    assert_eq!(
        with(&|m| {
            m.content_type = C::Sticker as i32;
            m.payload = sticker("");
        }),
        Err(E::MissingSticker)
    );
    assert_eq!(
        with(&|m| {
            m.content_type = C::Sticker as i32;
            m.payload = sticker("e301");
        }),
        Ok(())
    );
    // An image needs no caption, but a caption of blanks or too long a caption is refused.
    let png = Some(Payload::Image(pb::ImageMessage {
        payload: b"png".as_slice().into(),
        r#type: 1,
        ..Default::default()
    }));
    for (text, expected) in [
        (String::new(), Ok(())),
        (" ".to_string(), Err(E::BlankText)),
        ("x".repeat(4097), Err(E::TextTooLong)),
    ] {
        let r = with(&|m| {
            m.content_type = C::Image as i32;
            m.payload = png.clone();
            m.text = text.clone();
        });
        assert_eq!(r, expected, "{:?}", text.len());
    }
    let image = |payload: &'static [u8], t: i32| {
        Some(Payload::Image(pb::ImageMessage {
            payload: payload.into(),
            r#type: t,
            ..Default::default()
        }))
    };
    for (p, bad) in [
        (image(b"png", 0), true),
        (image(b"", 1), true),
        (sticker("x"), true),
        (None, true),
        (image(b"png", 1), false),
    ] {
        let r = with(&|m| {
            m.content_type = C::Image as i32;
            m.payload = p.clone();
        });
        assert_eq!(r, if bad { Err(E::MissingImage) } else { Ok(()) });
    }
    let audio = |payload: &'static [u8], t: i32| {
        Some(Payload::Audio(pb::AudioMessage {
            payload: payload.into(),
            r#type: t,
            duration_ms: 5,
        }))
    };
    for (p, bad) in [
        (audio(b"aac", 0), true),
        (audio(b"", 1), true),
        (image(b"png", 1), true),
        (audio(b"aac", 2), false),
    ] {
        let r = with(&|m| {
            m.content_type = C::Audio as i32;
            m.payload = p.clone();
        });
        assert_eq!(r, if bad { Err(E::MissingAudio) } else { Ok(()) });
    }
}

#[test]
fn emoji_reaction_and_pairing_rules() {
    use ValidationError as E;
    let now = Timestamp::from_millis(NOW_MS);
    let ok = pb::EmojiReaction {
        clock: NOW_MS,
        chat_id: "status".into(),
        message_id: MessageId([1; 32]).to_string(),
        message_type: pb::MessageType::PublicGroup as i32,
        r#type: pb::emoji_reaction::Type::Love as i32,
        ..Default::default()
    };
    assert_eq!(validate_emoji_reaction(&ok, now), Ok(()));
    let bad = |f: &dyn Fn(&mut pb::EmojiReaction)| {
        let mut r = ok.clone();
        f(&mut r);
        validate_emoji_reaction(&r, now)
    };
    assert_eq!(bad(&|r| r.clock = 0), Err(E::ZeroClock));
    assert_eq!(bad(&|r| r.chat_id.clear()), Err(E::EmptyChatId));
    assert_eq!(bad(&|r| r.message_id.clear()), Err(E::EmptyMessageId));
    assert_eq!(bad(&|r| r.r#type = 0), Err(E::UnknownReaction));
    assert_eq!(bad(&|r| r.r#type = 7), Err(E::UnknownReaction));
    assert_eq!(bad(&|r| r.message_type = 0), Err(E::InvalidMessageType));

    let pair = pb::PairInstallation {
        clock: NOW_MS,
        installation_id: "abc".into(),
        device_type: "desktop".into(),
        name: "laptop".into(),
        ..Default::default()
    };
    assert_eq!(validate_pair_installation(&pair, now), Ok(()));
    let mut p = pair.clone();
    p.name = " ".into();
    assert_eq!(
        validate_pair_installation(&p, now),
        Err(E::BlankInstallationField)
    );
    let mut p = pair;
    p.clock = NOW_MS + 200_000;
    assert_eq!(validate_pair_installation(&p, now), Err(E::ClockInFuture));
}

fn random_string(rng: &mut ChaCha20Rng, max: usize) -> String {
    let n = rng.next_u32() as usize % max;
    (0..n)
        .map(|_| char::from_u32(0x20 + rng.next_u32() % 0x2000).unwrap_or('?'))
        .collect()
}

fn random_message(rng: &mut ChaCha20Rng) -> pb::ChatMessage {
    use pb::chat_message::Payload;
    let payload = match rng.next_u32() % 5 {
        0 => None,
        1 => Some(Payload::Sticker(pb::StickerMessage {
            hash: random_string(rng, 20),
            pack: rng.next_u32() as i32,
        })),
        2 => Some(Payload::Image(pb::ImageMessage {
            payload: random_string(rng, 50).into_bytes().into(),
            r#type: (rng.next_u32() % 5) as i32,
            width: rng.next_u32(),
            ..Default::default()
        })),
        3 => Some(Payload::Audio(pb::AudioMessage {
            payload: random_string(rng, 50).into_bytes().into(),
            r#type: (rng.next_u32() % 3) as i32,
            duration_ms: rng.next_u64(),
        })),
        _ => Some(Payload::Community(vec![7u8; 3].into())),
    };
    pb::ChatMessage {
        clock: rng.next_u64(),
        timestamp: rng.next_u64() >> (rng.next_u32() % 64),
        text: random_string(rng, 100),
        response_to: MessageId([rng.next_u32() as u8; 32]).to_string(),
        ens_name: random_string(rng, 10),
        chat_id: random_string(rng, 20),
        message_type: (rng.next_u32() % 7) as i32,
        content_type: (rng.next_u32() % 19) as i32,
        payload,
        display_name: random_string(rng, 10),
        customization_color: rng.next_u32() % 3,
        shard: (rng.next_u32() % 2 == 0).then_some(pb::Shard {
            cluster: 16,
            index: rng.next_u32() as i32 % 8,
        }),
        ..Default::default()
    }
}

#[test]
fn chat_message_and_wrapper_round_trips() {
    let mut rng = ChaCha20Rng::seed_from_u64(0x636d);
    let keys: Vec<SecretKey> = (0..3).map(|_| SecretKey::random(&mut rng)).collect();
    for i in 0..200 {
        let m = random_message(&mut rng);
        let ours = encode_chat_message(&m);
        // Both field orders decode to the same message; ours is the reference's (oneof last).
        assert_eq!(decode_chat_message(&ours).unwrap(), m);
        assert_eq!(decode_chat_message(&m.encode_to_vec()).unwrap(), m);
        assert_eq!(ours.len(), m.encoded_len());
        let key = &keys[i % keys.len()];
        let w = wrap_chat_message(&m, key).unwrap();
        let u = unwrap(&w.bytes, None).unwrap();
        assert_eq!(u.author, Some(key.public_key()));
        assert_eq!(u.id, Some(w.id));
        assert_eq!(u.decode_payload().unwrap(), AppPayload::ChatMessage(m.clone()));
        // Any change to the wrapper bytes changes the id (or breaks the signature).
        let mut tampered = w.bytes.to_vec();
        let at = rng.next_u32() as usize % tampered.len();
        tampered[at] ^= 1;
        if let Ok(t) = unwrap(&tampered, None) {
            assert_ne!(t.id, Some(w.id));
        }
    }
}

#[test]
fn log_order_is_independent_of_arrival_order() {
    let mut rng = ChaCha20Rng::seed_from_u64(0x6c6f67);
    for _ in 0..50 {
        let msgs: Vec<(MessageId, u64)> = (0..30)
            .map(|_| {
                let mut id = [0u8; 32];
                rng.fill_bytes(&mut id);
                (MessageId(id), u64::from(rng.next_u32() % 10))
            })
            .collect();
        let mut a = ChatLog::new(100);
        let mut b = ChatLog::new(100);
        for (id, c) in &msgs {
            assert_eq!(a.insert(*id, *c, ()), Insert::Added);
        }
        for (id, c) in msgs.iter().rev() {
            b.insert(*id, *c, ());
            // Duplicates on every path are dropped.
            assert_eq!(b.insert(*id, *c, ()), Insert::Duplicate);
        }
        let order_a: Vec<_> = a.iter().map(|(id, c, _)| (c, id)).collect();
        let order_b: Vec<_> = b.iter().map(|(id, c, _)| (c, id)).collect();
        assert_eq!(order_a, order_b);
        assert!(order_a.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(a.clock().last(), msgs.iter().map(|m| m.1).max().unwrap());
        // A small log keeps exactly the newest entries (the top of the display order), whatever the
        // arrival order.
        let mut small = ChatLog::new(7);
        for (id, c) in &msgs {
            small.insert(*id, *c, ());
        }
        let kept: Vec<_> = small.iter().map(|(id, c, _)| (c, id)).collect();
        assert_eq!(kept, order_a[order_a.len() - 7..]);
    }
}
