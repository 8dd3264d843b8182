#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! MVDS codec and identifiers against tests/vectors/mvds.json (status-go oracle) and
//! status_ids_topics_computed.json, plus round trips.

use serde_json::Value;
use status_sansio::crypto::pubkey_from_sec1;
use status_sansio::mvds::{GroupId, Message, MessageId, Payload, PayloadError};

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn hx(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

#[test]
fn message_ids_and_message_encoding() {
    let v = load("mvds.json");
    let msgs = v["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 4);
    for m in msgs {
        let group = hx(&m["group_id"]);
        let body = hx(&m["body"]);
        let ts = m["timestamp"].as_i64().unwrap();
        let want = hx(&m["message_id"]);
        assert_eq!(MessageId::compute(&group, ts, &body).0.to_vec(), want);
        let msg = Message {
            group_id: group.clone().into(),
            timestamp: ts,
            body: body.clone().into(),
        };
        assert_eq!(msg.id().0.to_vec(), want);
        if let Some(pb) = m.get("message_pb") {
            let pb = hx(pb);
            assert_eq!(msg.encode_to_vec(), pb, "encoding of {ts}");
            assert_eq!(Message::decode(&pb).unwrap(), msg);
        } else {
            // The short group id is hashed as-is and is not a usable 32-byte group.
            assert_eq!(msg.group(), None);
        }
    }
}

#[test]
fn payloads_decode_and_reencode_byte_for_byte() {
    let v = load("mvds.json");
    let ids: Vec<MessageId> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| MessageId::from_slice(&hx(&m["message_id"])).unwrap())
        .collect();
    let mut seen = 0;
    for p in v["payloads"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let bytes = hx(&p["payload_pb"]);
        let decoded = Payload::decode(&bytes).unwrap();
        assert_eq!(decoded.is_valid(), p["is_valid"].as_bool().unwrap(), "{name}");
        assert_eq!(decoded.encode_to_vec(), bytes, "{name}");
        assert_eq!(decoded.encoded_len(), bytes.len(), "{name}");
        assert_eq!(Payload::unwrap_datasync(&bytes).is_some(), decoded.is_valid());
        match name {
            "acks_only" => assert_eq!(decoded.acks, ids[..2]),
            "offers_only" => assert_eq!(decoded.offers, [ids[2]]),
            "requests_only" => assert_eq!(decoded.requests, [ids[1]]),
            "messages_only" => {
                let got: Vec<MessageId> = decoded.messages.iter().map(Message::id).collect();
                assert_eq!(got, ids[..2]);
            }
            "all_fields" => {
                assert_eq!(decoded.acks, [ids[0]]);
                assert_eq!(decoded.messages.len(), 3);
                assert_eq!(decoded.group_offers.len(), 1);
                assert_eq!(decoded.group_offers[0].message_ids, ids[..2]);
            }
            "empty" => assert_eq!(decoded, Payload::default()),
            other => panic!("unexpected vector {other}"),
        }
        seen += 1;
    }
    assert_eq!(seen, 6);
}

#[test]
fn payload_built_from_parts_matches_vector() {
    let v = load("mvds.json");
    let m: Vec<Message> = v["messages"].as_array().unwrap()[..2]
        .iter()
        .map(|m| Message::decode(&hx(&m["message_pb"])).unwrap())
        .collect();
    let p = Payload {
        messages: m,
        ..Payload::default()
    };
    let want = v["payloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "messages_only")
        .unwrap();
    assert_eq!(p.encode_to_vec(), hx(&want["payload_pb"]));
}

#[test]
fn one_to_one_group_ids() {
    let v = load("mvds.json");
    let k1 = pubkey_from_sec1(&hx(&v["key1_pub"])).unwrap();
    let k2 = pubkey_from_sec1(&hx(&v["key2_pub"])).unwrap();
    let want = hx(&v["one_to_one_group_id"]);
    assert_eq!(GroupId::one_to_one(&k1, &k2).0.to_vec(), want);
    assert_eq!(GroupId::one_to_one(&k2, &k1).0.to_vec(), want);
    assert_eq!(
        GroupId::one_to_one(&k1, &k1).0.to_vec(),
        hx(&v["self_group_id_key1"])
    );
    // The group of every message in the vectors is this group.
    assert_eq!(hx(&v["messages"][0]["group_id"]), want);

    let c = load("status_ids_topics_computed.json");
    let a = pubkey_from_sec1(&hx(&c["alice_pub_uncompressed"])).unwrap();
    let b = pubkey_from_sec1(&hx(&c["bob_pub_uncompressed"])).unwrap();
    let g = GroupId::one_to_one(&a, &b);
    assert_eq!(g.0.to_vec(), hx(&c["one_to_one_mvds_group_id"]["value"]));
    let mid = &c["mvds_message_id"];
    assert_eq!(hx(&mid["group_id"]), g.0.to_vec());
    let msg = Message::new(g, mid["timestamp"].as_i64().unwrap(), hx(&mid["body"]));
    assert_eq!(msg.id().0.to_vec(), hx(&mid["id"]));
}

#[test]
fn field_tags_are_the_status_numbers() {
    let id = MessageId([0xab; 32]);
    let p = Payload {
        acks: vec![id],
        offers: vec![id],
        requests: vec![id],
        messages: vec![Message::new(GroupId([1; 32]), 5, b"x".to_vec())],
        group_offers: vec![],
    };
    let bytes = p.encode_to_vec();
    let tags = [
        [0xca, 0xb8, 0x02],
        [0xd2, 0xb8, 0x02],
        [0xda, 0xb8, 0x02],
        [0xe2, 0xb8, 0x02],
    ];
    let mut at = 0;
    for t in tags {
        assert_eq!(bytes[at..at + 3], t);
        at += if t == tags[3] { 0 } else { 3 + 1 + 32 };
    }
    assert_eq!(Payload::decode(&bytes).unwrap(), p);
    // A truncated payload is an error, not a panic.
    assert_eq!(
        Payload::decode(&bytes[..bytes.len() - 1]),
        Err(PayloadError::Protobuf)
    );
}

#[test]
fn round_trips_over_generated_payloads() {
    use rand_core::RngCore;
    let mut rng = status_sansio::Seed::from_u64(99).rng();
    for _ in 0..200 {
        let mut p = Payload::default();
        for _ in 0..rng.next_u32() % 4 {
            let mut b = [0u8; 32];
            rng.fill_bytes(&mut b);
            p.acks.push(MessageId(b));
        }
        for i in 0..rng.next_u32() % 4 {
            let mut body = vec![0u8; (rng.next_u32() % 64) as usize];
            rng.fill_bytes(&mut body);
            p.messages
                .push(Message::new(GroupId([i as u8; 32]), rng.next_u64() as i64, body));
        }
        let bytes = p.encode_to_vec();
        assert_eq!(Payload::decode(&bytes).unwrap(), p);
    }
}
