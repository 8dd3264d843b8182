//! The mailserver request fuzz target over a seeded corpus: noise plus mutations of the request vectors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

#[test]
fn fuzz_mailserver_request() {
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/waku.json")).unwrap(),
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

/// The history client fuzz target over a seeded corpus: random operation streams, plus streams built to
/// connect, set topics, and answer the request in flight with cursors (so paging and its caps run).
#[test]
fn fuzz_mailserver_client() {
    let mut rng = ChaCha20Rng::seed_from_u64(78);
    // connect mailserver 0, watch topics 1 and 2 and request, then answer with cursors and time passing.
    let mut scripted = vec![0, 0, 6, 0, 2, 1, 2, 0];
    for t in 0..6u8 {
        scripted.extend_from_slice(&[3, 0, 36, 0x65, 0x53, 0xf0, t]);
        scripted.extend_from_slice(&[t; 32]);
        scripted.extend_from_slice(&[4, 0, t, 5, 0, 8]);
    }
    scripted.extend_from_slice(&[5, 0, 255, 5, 0, 255, 1, 0, 0, 1, 5, 0, 200, 3, 0, 0]);
    let export = [7u8, 0, 13, 1, 0, 0, 0, 1, 3, 0, 0, 0, 0x65, 0x53, 0xf0, 0x00];
    let seeds: Vec<Vec<u8>> = vec![scripted, export.to_vec()];
    for i in 0..3000 {
        let mut input = seeds[i % seeds.len()].clone();
        match rng.next_u32() % 4 {
            0 => {
                let n = rng.next_u32() as usize % 400;
                input = vec![0; n];
                rng.fill_bytes(&mut input);
            }
            1 if !input.is_empty() => {
                for _ in 0..1 + rng.next_u32() % 4 {
                    let k = rng.next_u32() as usize % input.len();
                    input[k] ^= 1 << (rng.next_u32() % 8);
                }
            }
            2 => input.truncate(rng.next_u32() as usize % (input.len() + 1)),
            _ => {}
        }
        status_sansio::fuzzing::mailserver::mailserver_client(&input);
    }
}
