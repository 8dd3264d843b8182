use super::*;
use rand_core::SeedableRng;

#[test]
fn wrap_unwrap_round_trip() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    let sk = SecretKey::random(&mut rng);
    let w = wrap(b"payload", MessageKind::ChatMessage, &sk).unwrap();
    let u = unwrap(&w.bytes, None).unwrap();
    assert!(u.signed);
    assert_eq!(u.author, Some(sk.public_key()));
    assert_eq!(u.id, Some(w.id));
    assert_eq!(u.message_kind(), Some(MessageKind::ChatMessage));
    assert_eq!(&u.payload[..], b"payload");
    // Deterministic signatures: wrapping twice gives the same bytes and id.
    assert_eq!(wrap(b"payload", MessageKind::ChatMessage, &sk).unwrap(), w);

    let other = SecretKey::random(&mut rng).public_key();
    let unsigned = wrap_unsigned(b"x", MessageKind::EmojiReaction);
    let u = unwrap(&unsigned, Some(&other)).unwrap();
    assert!(!u.signed);
    assert_eq!(u.author, Some(other));
    assert_eq!(u.id, Some(MessageId::compute(&other, &unsigned)));
    assert_eq!(unwrap(&unsigned, None).unwrap().id, None);

    let mut bad = pb::ApplicationMetadataMessage::decode(&w.bytes[..]).unwrap();
    bad.signature = Bytes::from_static(&[1; 64]);
    assert_eq!(unwrap(&bad.encode_to_vec(), None), Err(ChatError::BadSignature));
    assert_eq!(unwrap(&[0xff], None), Err(ChatError::Malformed));
}

#[test]
fn message_id_text_form() {
    let id = MessageId([0xab; 32]);
    let text = id.to_string();
    assert_eq!(text.len(), 66);
    assert_eq!(MessageId::from_hex(&text), Some(id));
    assert_eq!(MessageId::from_hex(&text[2..]), None);
    assert_eq!(MessageId::from_hex("0x+b"), None);
    assert_eq!(MessageId::from_hex(&format!("0x{}", "+1".repeat(32))), None);
}

#[test]
fn unknown_types_are_tolerated() {
    assert_eq!(
        AppPayload::decode(999, b"\xff\xff"),
        Ok(AppPayload::Unsupported(999))
    );
    assert_eq!(AppPayload::decode(0, b""), Ok(AppPayload::Unsupported(0)));
    assert_eq!(AppPayload::decode(1, b"\xff"), Err(ChatError::Malformed));
}
