//! The secure-transport fuzz targets run over a seeded, generated corpus, so CI exercises them on stable
//! without libFuzzer. Inputs mix noise with mutations of real bundles and protocol messages.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use status_sansio::fuzzing::secure as targets;

fn noise(rng: &mut ChaCha20Rng, max: usize) -> Vec<u8> {
    let n = rng.next_u32() as usize % max;
    let mut v = vec![0u8; n];
    rng.fill_bytes(&mut v);
    v
}

fn mutate(rng: &mut ChaCha20Rng, mut v: Vec<u8>) -> Vec<u8> {
    match rng.next_u32() % 4 {
        0 if !v.is_empty() => {
            let i = rng.next_u32() as usize % v.len();
            v[i] ^= 1 << (rng.next_u32() % 8);
        }
        1 => v.truncate(rng.next_u32() as usize % (v.len() + 1)),
        2 => v.extend(noise(rng, 64)),
        _ => {}
    }
    v
}

fn corpus(seed: u64, n: usize, max: usize, seeds: &[Vec<u8>], f: fn(&[u8])) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    for i in 0..n {
        let input = if seeds.is_empty() || i % 3 == 0 {
            noise(&mut rng, max)
        } else {
            let s = seeds[i % seeds.len()].clone();
            mutate(&mut rng, s)
        };
        f(&input);
    }
}

fn recorded_messages() -> Vec<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/vectors/double_ratchet.json"
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
    corpus(1, 4000, 400, &recorded_messages(), targets::secure_bundle);
}

#[test]
fn secure_decrypt_corpus() {
    corpus(2, 1500, 200, &[], targets::secure_decrypt);
}

#[test]
fn secure_machine_corpus() {
    corpus(3, 300, 300, &[], targets::secure_machine);
}
