//! `tests/vectors/compat_status_go.json`: status-go's own verdicts and bytes (a 2024 `waku/1` tree and a
//! 2021 `shh/6` tree), every entry checked against ours, data-driven (nothing from the file is written
//! here; another set of the same shape passes or fails on its merits):
//!
//! * `text_validation`: each recorded `ChatMessage` decodes to the recorded clock, content type and text
//!   length (bytes and characters); our receive validator accepts every message a reference tree
//!   accepts, refuses every message both trees refuse, and refuses it for the rule whose reference
//!   error text is recorded. (The trees differ on captionless images: 2021 refuses, 2024 accepts; we
//!   accept, see `chat::validate`.)
//! * `shh6_messages_request` / `waku1_messages_request`: the recorded fields encode, for the tree's
//!   dialect, to exactly the recorded RLP, which decodes back to them; topic names hash to the recorded
//!   topics and their blooms OR to the recorded bloom.
//! * `shh6_server_receives_7_field` / `waku1_server_receives_6_field`: each reference server refuses the
//!   other dialect's shape; ours serves both, and our client never sends a dialect the other shape (a
//!   seven-field request re-encoded for `shh/6` is the recorded six-field one, and the reverse).
//! * `mailserver_completion`: the recorded request-complete payloads are what we encode from their
//!   fields, parse as the reference client does, and travel as the recorded RLP byte string.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use serde_json::Value;
use status_proto::protobuf as pb;
use status_sansio::chat::payloads::decode_chat_message;
use status_sansio::chat::validate::validate_chat_message;
use status_sansio::crypto::keccak256;
use status_sansio::mailserver::server::{Input, MailServer, MailServerConfig, Output};
use status_sansio::mailserver::StorageOp;
use status_sansio::mailserver::{decode_request, encode_request, RequestShape};
use status_sansio::waku::request::{MessagesRequest, RequestComplete};
use status_sansio::waku::{Bloom, ConnId, Dialect, Topic};
use status_sansio::Seed;
use status_sansio::Timestamp;

fn load() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/compat_status_go.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn h(v: &Value) -> Vec<u8> {
    hex::decode(s(v)).unwrap()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn arr(v: &Value) -> &Vec<Value> {
    v.as_array().unwrap_or_else(|| panic!("not an array: {v}"))
}

/// The tree each commit is: the one whose direct requests are six-field (`shh/6`) or seven-field.
fn tree_dialect(v: &Value, commit: &str) -> Dialect {
    if arr(&v["shh6_messages_request"])
        .iter()
        .any(|e| s(&e["status_go_commit"]) == commit)
    {
        Dialect::Whisper6
    } else {
        assert!(arr(&v["waku1_messages_request"])
            .iter()
            .any(|e| s(&e["status_go_commit"]) == commit));
        Dialect::Waku1
    }
}

#[test]
fn text_validation_verdicts_match_the_reference() {
    let v = load();
    let entries = arr(&v["text_validation"]);
    assert!(!entries.is_empty());
    for e in entries {
        let case = s(&e["case"]);
        let bytes = h(&e["chat_message_pb"]);
        let m = decode_chat_message(&bytes).unwrap_or_else(|err| panic!("{case}: {err}"));
        // The recorded message is what the file says it is.
        assert_eq!(m.clock, u(&e["clock"]), "{case}");
        assert_eq!(
            Some(m.content_type),
            pb::chat_message::ContentType::from_str_name(s(&e["content_type"])).map(|c| c as i32),
            "{case}"
        );
        assert_eq!(m.text.len() as u64, u(&e["text_bytes"]), "{case}");
        assert_eq!(m.text.chars().count() as u64, u(&e["text_runes"]), "{case}");
        let transport = Timestamp::from_secs(u(&e["transport_timestamp_s"]));
        assert_eq!(
            transport.as_millis(),
            u(&e["whisper_timestamp_ms_passed"]),
            "{case}"
        );

        let ours = validate_chat_message(&m, transport);
        let valid = e["valid"].as_bool().unwrap();
        assert_eq!(valid, s(&e["error"]).is_empty(), "{case}: file consistency");
        // The verdicts of every tree on the same bytes.
        let verdicts: Vec<bool> = entries
            .iter()
            .filter(|o| o["chat_message_pb"] == e["chat_message_pb"])
            .map(|o| o["valid"].as_bool().unwrap())
            .collect();
        if valid {
            assert_eq!(
                ours,
                Ok(()),
                "{case} ({}): a reference accepts it",
                s(&e["status_go_commit"])
            );
        } else if verdicts.iter().all(|v| !v) {
            let err = ours.expect_err(case);
            assert_eq!(err.reference_text(), Some(s(&e["error"])), "{case}: {err:?}");
        } else {
            // The trees disagree: we follow the one that accepts (checked on its entry).
            assert_eq!(ours, Ok(()), "{case}");
        }
    }
}

/// The request described by an entry's `fields`.
fn request_of(f: &Value) -> MessagesRequest {
    let topics = match &f["topics"] {
        Value::Null => vec![],
        t => arr(t).iter().map(|x| Topic(h(x).try_into().unwrap())).collect(),
    };
    MessagesRequest {
        id: Bytes::from(h(&f["id"])),
        from: u(&f["from"]) as u32,
        to: u(&f["to"]) as u32,
        limit: u(&f["limit"]) as u32,
        cursor: Bytes::from(h(&f["cursor"])),
        bloom: Bytes::from(h(&f["bloom"])),
        topics,
    }
}

/// `bloom_topics` items are `"<topic hex> (ToTopic(\"<name>\"))"` or a description of a non-topic
/// bloom; the named topics hash to their hex, and their blooms OR to the request's bloom.
fn check_bloom_topics(case: &str, f: &Value) {
    let mut topics = vec![];
    for item in arr(&f["bloom_topics"]) {
        let item = s(item);
        let Some(t) = item.split(' ').next().and_then(|x| hex::decode(x).ok()) else {
            continue;
        };
        let topic = Topic(t.try_into().unwrap());
        if let Some(name) = item.split('"').nth(1) {
            assert_eq!(&keccak256(name.as_bytes())[..4], &topic.0[..], "{case}: {item}");
        }
        topics.push(topic);
    }
    if !topics.is_empty() {
        assert_eq!(Bloom::of_topics(&topics).0.to_vec(), h(&f["bloom"]), "{case}");
    }
}

fn rlp_items(b: &[u8]) -> usize {
    rlp::Rlp::new(b).item_count().unwrap()
}

#[test]
fn history_requests_encode_to_the_recorded_rlp_per_dialect() {
    let v = load();
    for (key, dialect, shape) in [
        (
            "shh6_messages_request",
            Dialect::Whisper6,
            RequestShape::SixFields,
        ),
        (
            "waku1_messages_request",
            Dialect::Waku1,
            RequestShape::SevenFields,
        ),
    ] {
        let entries = arr(&v[key]);
        assert!(!entries.is_empty(), "{key}");
        for e in entries {
            let case = format!("{key}/{}", s(&e["case"]));
            assert_eq!(tree_dialect(&v, s(&e["status_go_commit"])), dialect, "{case}");
            assert_eq!(u(&e["msg_code"]), 126, "{case}: the P2P request code");
            assert!(s(&e["validate_error"]).is_empty(), "{case}");
            let f = &e["fields"];
            let mut req = request_of(f);
            let rlp = h(&e["rlp"]);
            assert_eq!(encode_request(&req, dialect), rlp, "{case}");
            let (decoded, got_shape) = decode_request(&rlp).unwrap();
            assert_eq!(got_shape, shape, "{case}");
            if dialect == Dialect::Whisper6 {
                check_bloom_topics(&case, f);
            }
            assert!(req.validate().is_ok(), "{case}: the reference validated it");
            if shape == RequestShape::SixFields {
                req.topics.clear();
            }
            assert_eq!(decoded, req, "{case}");
        }
    }
}

/// A server with an empty store: every request it takes is answered by a success completion.
fn serve(requests: &[Vec<u8>]) -> Vec<RequestComplete> {
    let now = Timestamp::from_secs(1_700_000_100);
    let mut server = MailServer::new(MailServerConfig::default(), &Seed::from_u64(0), now);
    let mut out = vec![];
    for (i, data) in requests.iter().enumerate() {
        let now = now + std::time::Duration::from_secs(10 * i as u64);
        server
            .handle_input(
                now,
                Input::Request {
                    peer: ConnId(1),
                    data: Bytes::from(data.clone()),
                },
            )
            .unwrap();
        while let Some(o) = server.poll_output() {
            match o {
                Output::Storage(StorageOp::Query { query, .. }) => server
                    .handle_input(
                        now,
                        Input::QueryResult {
                            query,
                            entries: vec![],
                        },
                    )
                    .unwrap(),
                Output::Complete { payload, .. } => out.push(RequestComplete::decode(&payload).unwrap()),
                other => panic!("{other:?}"),
            }
        }
    }
    out
}

fn request_id(r: &MessagesRequest) -> [u8; 32] {
    r.id[..].try_into().unwrap()
}

#[test]
fn each_reference_server_refuses_the_other_shape_ours_takes_both() {
    let v = load();
    // A 2021 shh/6 server: the six-field request was delivered (with the recorded fields), the
    // seven-field one ended the peer.
    let x = &v["shh6_server_receives_7_field"];
    assert_eq!(tree_dialect(&v, s(&x["status_go_commit"])), Dialect::Whisper6);
    assert!(!s(&x["decode_steps_7_field"]["decode_as_messages_request_error"]).is_empty());
    assert!(s(&x["decode_steps_6_field_A"]["decode_as_messages_request_error"]).is_empty());
    let seq = arr(&x["real_handler_6_then_7"]["sequence"]);
    let six = h(&seq[0]["payload"]);
    assert!(seq[0]["mailserver_Deliver_called"].as_bool().unwrap());
    let (delivered, shape) = decode_request(&six).unwrap();
    assert_eq!(shape, RequestShape::SixFields);
    assert_eq!(delivered, request_of(&seq[0]["delivered_fields"]));
    let seven = h(&x["seven_field_rlp"]);
    assert_eq!(h(&seq[1]["payload"]), seven);
    assert!(seq[1]["peer_disconnected"].as_bool().unwrap());
    assert_eq!(rlp_items(&seven), 7);
    // Our client never sends it seven fields: re-encoded for shh/6, the seven-field request is the
    // recorded six-field request of the same id.
    let (seven_req, shape) = decode_request(&seven).unwrap();
    assert_eq!(shape, RequestShape::SevenFields);
    let same_id: Vec<Vec<u8>> = arr(&v["shh6_messages_request"])
        .iter()
        .filter(|e| request_of(&e["fields"]).id == seven_req.id)
        .map(|e| h(&e["rlp"]))
        .collect();
    assert_eq!(same_id.len(), 1);
    assert_eq!(encode_request(&seven_req, Dialect::Whisper6), same_id[0]);
    // Ours serves both on the same connection.
    let done = serve(&[six.clone(), seven.clone()]);
    assert!(
        matches!(done[..], [RequestComplete::Success { request_id: a, .. }, RequestComplete::Success { request_id: b, .. }]
            if a == request_id(&delivered) && b == request_id(&seven_req)),
        "{done:?}"
    );

    // A 2024 waku/1 server: nothing for the six-field request, the seven-field one delivered.
    let y = &v["waku1_server_receives_6_field"];
    assert_eq!(tree_dialect(&v, s(&y["status_go_commit"])), Dialect::Waku1);
    assert!(!s(&y["decode_steps_6_field"]["decode_as_messages_request_error"]).is_empty());
    let six = h(&y["six_field_rlp"]);
    assert_eq!(rlp_items(&six), 6);
    let handled = arr(&y["real_handler_6_then_7"]);
    assert!(handled[0]["nothing_within_2s"].as_bool().unwrap());
    assert!(handled[1]["mailserver_Deliver_called"].as_bool().unwrap());
    let delivered7 = request_of(&handled[1]["delivered_fields"]);
    // Our client sends seven over waku/1: the delivered request is the recorded waku/1 request of its id.
    let same_id: Vec<Vec<u8>> = arr(&v["waku1_messages_request"])
        .iter()
        .filter(|e| request_of(&e["fields"]).id == delivered7.id)
        .map(|e| h(&e["rlp"]))
        .collect();
    assert_eq!(same_id.len(), 1);
    assert_eq!(encode_request(&delivered7, Dialect::Waku1), same_id[0]);
    // Ours serves both.
    let (six_req, _) = decode_request(&six).unwrap();
    let done = serve(&[six, same_id[0].clone()]);
    assert!(
        matches!(done[..], [RequestComplete::Success { request_id: a, .. }, RequestComplete::Success { request_id: b, .. }]
            if a == request_id(&six_req) && b == request_id(&delivered7)),
        "{done:?}"
    );
}

#[test]
fn request_complete_payloads_match_the_reference() {
    let v = load();
    let entries = arr(&v["mailserver_completion"]);
    assert!(!entries.is_empty());
    for e in entries {
        let case = s(&e["case"]);
        assert_eq!(u(&e["msg_code"]), 125, "{case}");
        let payload = h(&e["payload"]);
        // Carried as one RLP byte string.
        assert_eq!(rlp::encode(&payload).to_vec(), h(&e["rlp"]), "{case}");
        let f = &e["fields"];
        let id: [u8; 32] = h(&f["request_id"]).try_into().unwrap();
        let ours = match f.get("error") {
            Some(err) => {
                assert_eq!(
                    s(&f["prefix"]).as_bytes(),
                    &payload[..s(&f["prefix"]).len()],
                    "{case}"
                );
                RequestComplete::Failure {
                    request_id: id,
                    error: s(err).to_string(),
                }
            }
            None => RequestComplete::Success {
                request_id: id,
                last_envelope_hash: Some(h(&f["last_envelope_hash"]).try_into().unwrap()),
                cursor: Some(h(&f["cursor"])).filter(|c| !c.is_empty()).map(Bytes::from),
            },
        };
        assert_eq!(ours.encode(), payload, "{case}");
        // Parsed as the reference client parses it.
        let parsed = RequestComplete::decode(&payload).unwrap();
        let p = &e["client_parse_CreateMailServerEvent"];
        assert_eq!(h(&p["hash"]), id, "{case}");
        match parsed {
            RequestComplete::Success {
                request_id,
                last_envelope_hash,
                cursor,
            } => {
                assert!(p.get("error").is_none(), "{case}");
                assert_eq!(request_id, id);
                assert_eq!(
                    last_envelope_hash.map(|x| x.to_vec()),
                    Some(h(&p["last_envelope_hash"]))
                );
                assert_eq!(cursor.map(|c| c.to_vec()).unwrap_or_default(), h(&p["cursor"]));
            }
            RequestComplete::Failure { request_id, error } => {
                assert_eq!(request_id, id);
                assert_eq!(error, s(&p["error"]), "{case}");
                assert!(h(&p["cursor"]).is_empty(), "{case}");
                assert!(h(&p["last_envelope_hash"]).iter().all(|b| *b == 0), "{case}");
            }
        }
    }
}
