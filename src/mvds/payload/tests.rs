use super::*;

#[test]
fn encoded_len_estimates_are_exact() {
    let m = Message::new(GroupId([7; 32]), 1_700_000_000, vec![1u8; 300]);
    let p = Payload {
        acks: vec![MessageId([1; 32])],
        messages: vec![m.clone()],
        ..Payload::default()
    };
    assert_eq!(p.encoded_len(), ENCODED_ID_LEN + m.encoded_len());
    assert_eq!(p.encode_to_vec().len(), p.encoded_len());
}

#[test]
fn bad_ids_are_skipped_and_the_rest_is_kept() {
    let m = Message::new(GroupId([7; 32]), 5, b"x".to_vec());
    let raw = pb::Payload {
        acks: vec![Bytes::from_static(b"short"), Bytes::copy_from_slice(&[1; 32])],
        offers: vec![Bytes::copy_from_slice(&[2; 33])],
        requests: vec![Bytes::new()],
        messages: vec![m.to_proto()],
    };
    let (p, skipped) = Payload::decode_with_limit(&raw.encode_to_vec(), MAX_PAYLOAD_BYTES).unwrap();
    assert_eq!(skipped, 3);
    assert_eq!(p.acks, [MessageId([1; 32])]);
    assert!(p.offers.is_empty() && p.requests.is_empty());
    assert_eq!(p.messages, [m]);
    assert_eq!(Payload::unwrap_datasync(b"\x0a\x00"), None);
    assert_eq!(Payload::decode(&[0xff]), Err(PayloadError::Protobuf));
}

#[test]
fn group_offers_are_decoded_leniently() {
    let m = Message::new(GroupId([7; 32]), 5, b"x".to_vec());
    let good = GroupOffer {
        group_id: Bytes::from_static(b"g"),
        message_ids: vec![MessageId([3; 32])],
    };
    let mut bytes = Payload {
        messages: vec![m.clone()],
        group_offers: vec![good.clone()],
        ..Payload::default()
    }
    .encode_to_vec();
    // An Offer with a bad id, one that is not protobuf, and 5005 as a varint.
    let bad_id = pb::Offer {
        group_id: Bytes::new(),
        message_ids: vec![Bytes::from_static(b"short"), Bytes::copy_from_slice(&[4; 32])],
    };
    prost::encoding::message::encode(GROUP_OFFERS_FIELD, &bad_id, &mut bytes);
    prost::encoding::bytes::encode(GROUP_OFFERS_FIELD, &Bytes::from_static(&[0xff]), &mut bytes);
    prost::encoding::uint64::encode(GROUP_OFFERS_FIELD, &7, &mut bytes);
    let p = Payload::decode(&bytes).unwrap();
    assert_eq!(p.messages, [m]);
    assert_eq!(
        p.group_offers,
        [
            good,
            GroupOffer {
                group_id: Bytes::new(),
                message_ids: vec![MessageId([4; 32])],
            }
        ]
    );
    assert_eq!(Payload::decode(&p.encode_to_vec()).unwrap(), p);
    assert_eq!(p.encode_to_vec().len(), p.encoded_len());
}

#[test]
fn every_decoder_enforces_the_size_cap() {
    let p = Payload {
        acks: vec![MessageId([1; 32]); 4],
        ..Payload::default()
    };
    let bytes = p.encode_to_vec();
    assert_eq!(
        Payload::decode_with_limit(&bytes, bytes.len() - 1),
        Err(PayloadError::TooLarge(bytes.len()))
    );
    assert_eq!(Payload::unwrap_datasync_with_limit(&bytes, bytes.len() - 1), None);
    assert!(Payload::unwrap_datasync_with_limit(&bytes, bytes.len()).is_some());
    let big = vec![0u8; MAX_PAYLOAD_BYTES + 1];
    assert_eq!(Payload::decode(&big), Err(PayloadError::TooLarge(big.len())));
    assert_eq!(Payload::unwrap_datasync(&big), None);
    assert_eq!(Message::decode(&big), Err(PayloadError::TooLarge(big.len())));
}
