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

/// The node target reaches its pool and its filters: the seed scripts (peers, Status, envelopes the
/// harness seals to the node's filters) and a good fraction of their mutations get envelopes accepted and
/// messages opened (before the sealed envelopes, 0 of 708 corpus inputs reached the pool).
#[test]
fn fuzz_waku_node() {
    let seeds = status_sansio::fuzzing::seeds::generated("waku_node");
    for s in &seeds {
        let r = targets::waku_node(s);
        assert!(
            r.ready >= 1 && r.pooled >= 3 && r.opened >= 3,
            "seed reached {r:?}"
        );
    }
    let mut g = corpus::Generator::new(0x7761_6b75 + 4);
    let (mut inputs, mut pooled, mut opened) = (0, 0, 0);
    for i in 0..800 {
        let input = g.input(i, &seeds, 4, 700);
        let r = targets::waku_node(&input);
        inputs += 1;
        pooled += usize::from(r.pooled > 0);
        opened += usize::from(r.opened > 0);
    }
    eprintln!("{inputs} inputs: {pooled} pooled envelopes, {opened} opened messages");
    assert!(
        pooled * 2 >= inputs,
        "only {pooled} of {inputs} inputs got an envelope into the pool"
    );
    assert!(
        opened * 3 >= inputs,
        "only {opened} of {inputs} inputs had a message opened"
    );
}
