//! The Waku fuzz targets over a seeded corpus: noise plus mutations of the status-go vectors (envelopes,
//! plaintexts, ciphertexts, status options, mailserver payloads), so CI exercises them on stable.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use status_sansio::fuzzing::waku as targets;

fn noise(rng: &mut ChaCha20Rng, max: usize) -> Vec<u8> {
    let mut v = vec![0u8; rng.next_u32() as usize % max];
    rng.fill_bytes(&mut v);
    v
}

fn mutate(rng: &mut ChaCha20Rng, mut v: Vec<u8>) -> Vec<u8> {
    match rng.next_u32() % 5 {
        0 if !v.is_empty() => {
            let i = rng.next_u32() as usize % v.len();
            v[i] ^= 1 << (rng.next_u32() % 8);
        }
        1 => v.truncate(rng.next_u32() as usize % (v.len() + 1)),
        2 => v.extend(noise(rng, 32)),
        3 if v.len() > 2 => {
            let i = rng.next_u32() as usize % v.len();
            v.insert(i, (rng.next_u32() & 0xff) as u8);
        }
        _ => {}
    }
    v
}

fn seeds(keys: &[&str]) -> Vec<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/vectors/waku.json"
        ))
        .unwrap(),
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

fn corpus(n: usize, seeds: &[Vec<u8>], f: fn(&[u8])) {
    let mut rng = ChaCha20Rng::seed_from_u64(seeds.len() as u64);
    for i in 0..n {
        let input = if i % 4 == 0 {
            noise(&mut rng, 700)
        } else {
            mutate(&mut rng, seeds[i % seeds.len()].clone())
        };
        f(&input);
    }
}

#[test]
fn fuzz_waku_envelope() {
    corpus(
        4000,
        &seeds(&["envelope_rlp", "messages_packet_msg_data", "short_rlp"]),
        targets::waku_envelope,
    );
}

#[test]
fn fuzz_waku_message() {
    corpus(2000, &seeds(&["plaintext", "data"]), targets::waku_message);
}

#[test]
fn fuzz_waku_status() {
    corpus(
        4000,
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
    corpus(
        800,
        &seeds(&["messages_packet_msg_data", "rlp"]),
        targets::waku_node,
    );
}
