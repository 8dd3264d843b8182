//! The Waku fuzz targets over a seeded corpus: noise plus mutations of the status-go vectors (envelopes,
//! plaintexts, ciphertexts, status options, mailserver payloads), so CI exercises them on stable.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use status_sansio::fuzzing::corpus;
use status_sansio::fuzzing::waku as targets;

fn seeds(keys: &[&str]) -> Vec<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/waku.json")).unwrap(),
    )
    .unwrap();
    let mut out = Vec::new();
    fn walk(v: &serde_json::Value, keys: &[&str], out: &mut Vec<Vec<u8>>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    if let (true, Some(s)) = (keys.contains(&k.as_str()), x.as_str()) {
                        if let Ok(b) = hex::decode(s) {
                            out.push(b);
                        }
                    }
                    walk(x, keys, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, keys, out)),
            _ => {}
        }
    }
    walk(&v, keys, &mut out);
    assert!(!out.is_empty(), "no seeds for {keys:?}");
    out
}

#[test]
fn fuzz_waku_envelope() {
    corpus::run(
        0x7761_6b75 + 1,
        4000,
        700,
        &seeds(&["envelope_rlp", "messages_packet_msg_data", "short_rlp"]),
        targets::waku_envelope,
    );
}

#[test]
fn fuzz_waku_message() {
    corpus::run(
        0x7761_6b75 + 2,
        2000,
        700,
        &seeds(&["plaintext", "data"]),
        targets::waku_message,
    );
}

#[test]
fn fuzz_waku_status() {
    corpus::run(
        0x7761_6b75 + 3,
        4000,
        700,
        &seeds(&[
            "rlp",
            "input_rlp",
            "with_defaults_rlp",
            "payload_failed",
            "payload_with_cursor",
            "payload_no_cursor",
        ]),
        targets::waku_status,
    );
}

#[test]
fn fuzz_waku_node() {
    corpus::run(
        0x7761_6b75 + 4,
        800,
        700,
        &seeds(&["messages_packet_msg_data", "rlp"]),
        targets::waku_node,
    );
}
