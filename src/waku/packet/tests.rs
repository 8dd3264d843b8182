//! Unit tests.

use super::*;

#[test]
fn responses_round_trip() {
    let errors = vec![EnvelopeError {
        hash: [1; 32],
        code: ERROR_TIME_SYNC,
        description: "old".into(),
    }];
    let data = encode_message_response(&[9; 32], &errors);
    assert_eq!(
        Packet::decode(Dialect::Waku1, MESSAGE_RESPONSE, &data, 10).unwrap(),
        Packet::MessageResponse {
            batch_hash: [9; 32],
            errors
        }
    );
    assert_eq!(
        Packet::decode(Dialect::Waku1, BATCH_ACK, &encode_batch_ack(&[3; 32]), 10).unwrap(),
        Packet::BatchAck([3; 32])
    );
    assert_eq!(
        Packet::decode(Dialect::Waku1, 99, &[0xc0], 10).unwrap(),
        Packet::Unknown(99)
    );
    assert!(Packet::decode(Dialect::Waku1, MESSAGES, &[0x80], 10).is_err());
}

#[test]
fn truncated_or_padded_envelope_lists_are_malformed() {
    // A list header whose length runs past the packet (a fuzz find: it decoded as an empty list).
    assert!(matches!(
        Packet::decode(Dialect::Waku1, MESSAGES, &[0xf9, 0xff], 10),
        Err(WakuError::MalformedPacket(_))
    ));
    // A list whose payload holds a partial item.
    assert!(Packet::decode(Dialect::Waku1, MESSAGES, &[0xc2, 0x83, 0x01], 10).is_err());
    // The empty list is fine.
    assert_eq!(
        Packet::decode(Dialect::Waku1, MESSAGES, &[0xc0], 10).unwrap(),
        Packet::Messages(vec![])
    );
}

#[test]
fn topic_must_be_a_byte_string() {
    // `[1, 1, [0x01020304], "", ""]`: the topic is a one-item list (a fuzz find: it was accepted).
    let env = [0xc9, 0x01, 0x01, 0xc4, 0x01, 0x02, 0x03, 0x04, 0x80, 0x80];
    assert!(matches!(
        Envelope::decode_bytes(&env),
        Err(WakuError::MalformedEnvelope(_))
    ));
    let mut packet = vec![0xc0 + env.len() as u8];
    packet.extend_from_slice(&env);
    assert!(Packet::decode(Dialect::Waku1, MESSAGES, &packet, 10).is_err());
    // The same envelope with the topic as a byte string decodes.
    let ok = [0xc9, 0x01, 0x01, 0x84, 0x01, 0x02, 0x03, 0x04, 0x80, 0x80];
    assert_eq!(Envelope::decode_bytes(&ok).map(|e| e.topic.0), Ok([1, 2, 3, 4]));
}
