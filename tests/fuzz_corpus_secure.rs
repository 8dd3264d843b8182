//! The secure-transport fuzz targets run over a seeded, generated corpus, so CI exercises them on stable
//! without libFuzzer. Inputs mix noise with mutations of real bundles and protocol messages.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use status_sansio::fuzzing::corpus;
use status_sansio::fuzzing::secure as targets;

fn recorded_messages() -> Vec<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/double_ratchet.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut out = vec![hex::decode(v["bob_bundle"]["pb"].as_str().unwrap()).unwrap()];
    for m in v["messages"].as_array().unwrap() {
        out.push(hex::decode(m["protocol_message_pb"].as_str().unwrap()).unwrap());
        out.push(hex::decode(m["bundles"][0]["pb"].as_str().unwrap()).unwrap());
    }
    out
}

#[test]
fn secure_bundle_corpus() {
    corpus::run(1, 4000, 400, &recorded_messages(), targets::secure_bundle);
}

#[test]
fn secure_decrypt_corpus() {
    corpus::run(2, 1500, 200, &[], targets::secure_decrypt);
}

#[test]
fn secure_machine_corpus() {
    corpus::run(3, 300, 300, &[], targets::secure_machine);
}
