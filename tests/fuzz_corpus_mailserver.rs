//! The mailserver request fuzz target over a seeded corpus: noise plus mutations of the request vectors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

#[test]
fn fuzz_mailserver_request() {
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/vectors/waku.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    for form in [
        "messages_request_direct_form",
        "messages_request_payload_envelope_form",
    ] {
        for c in v["mailserver"][form]["cases"].as_array().unwrap() {
            seeds.push(hex::decode(c["rlp"].as_str().unwrap()).unwrap());
        }
    }
    for e in v["envelopes"].as_array().unwrap() {
        seeds.push(hex::decode(e["envelope_rlp"].as_str().unwrap()).unwrap());
    }
    let mut rng = ChaCha20Rng::seed_from_u64(77);
    for i in 0..3000 {
        let mut input = seeds[i % seeds.len()].clone();
        match rng.next_u32() % 4 {
            0 => {
                let n = rng.next_u32() as usize % 300;
                input = vec![0; n];
                rng.fill_bytes(&mut input);
            }
            1 if !input.is_empty() => {
                let k = rng.next_u32() as usize % input.len();
                input[k] ^= 1 << (rng.next_u32() % 8);
            }
            2 => input.truncate(rng.next_u32() as usize % (input.len() + 1)),
            _ => {}
        }
        status_sansio::fuzzing::mailserver::mailserver_request(&input);
    }
}
