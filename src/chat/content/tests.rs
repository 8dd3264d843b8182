use super::*;

fn msg(content_type: ContentType, payload: Option<Payload>, text: &str) -> pb::ChatMessage {
    pb::ChatMessage {
        content_type: content_type as i32,
        payload,
        text: text.into(),
        ..Default::default()
    }
}

#[test]
fn each_kind_is_typed_and_described_on_one_line() {
    let png = Bytes::from_static(b"\x89PNG fake image");
    let m = msg(
        ContentType::Image,
        Some(Payload::Image(pb::ImageMessage {
            payload: png.clone(),
            r#type: pb::ImageType::Png as i32,
            ..Default::default()
        })),
        "",
    );
    let c = Content::of(&m);
    let Content::Image(media) = &c else {
        panic!("{c:?}")
    };
    assert_eq!(media.data, png);
    assert_eq!(media.len, png.len());
    assert_eq!(media.hash, crate::crypto::keccak256(&png));
    let line = describe(&c, "");
    assert!(line.starts_with("[image PNG, 15 bytes, keccak "), "{line}");
    assert_eq!(describe(&c, "look"), format!("{line} look"));
    // The log's copy keeps length and hash, not the bytes.
    let kept = c.without_data();
    assert_eq!(describe(&kept, ""), line);
    assert!(matches!(&kept, Content::Image(m) if m.data.is_empty() && m.hash == media.hash));

    let a = msg(
        ContentType::Audio,
        Some(Payload::Audio(pb::AudioMessage {
            payload: Bytes::from_static(b"aac"),
            r#type: pb::audio_message::AudioType::Aac as i32,
            duration_ms: 2_540,
        })),
        "placeholder",
    );
    let line = describe(&Content::of(&a), "placeholder");
    assert!(line.starts_with("[audio AAC, 2.5 s, 3 bytes, keccak "), "{line}");

    let s = msg(
        ContentType::Sticker,
        Some(Payload::Sticker(pb::StickerMessage {
            hash: "e30101701220aabbccddeeff00112233".into(),
            pack: 7,
        })),
        "Update to see a sticker",
    );
    assert_eq!(
        describe(&Content::of(&s), "Update to see a sticker"),
        "[sticker pack 7, e30101701220aabb…]"
    );

    let t = msg(ContentType::TextPlain, None, "hello");
    assert_eq!(Content::of(&t), Content::Text);
    assert_eq!(describe(&Content::Text, "hello"), "hello");
    let d = msg(ContentType::DiscordMessage, None, "");
    assert_eq!(describe(&Content::of(&d), ""), "[content type 12]");
    // A payload that does not match the content type is not taken for media.
    let wrong = msg(ContentType::TextPlain, a.payload.clone(), "x");
    assert_eq!(Content::of(&wrong), Content::Text);
}
