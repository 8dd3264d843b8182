//! The RLPx fuzz targets run over a seeded, generated corpus, so CI exercises them on stable without
//! libFuzzer. Inputs mix pure noise with mutations of valid packets, frames and Hellos.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use status_sansio::crypto::SecretKey;
use status_sansio::fuzzing::rlpx as targets;
use status_sansio::rlpx::handshake::{self, HandshakeFormat};
use status_sansio::Seed;

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

/// Run `f` over `n` generated inputs: noise, and mutations of the `seeds`.
fn corpus(name: &str, n: usize, seeds: &[Vec<u8>], f: fn(&[u8])) {
    let mut rng = ChaCha20Rng::seed_from_u64(name.len() as u64 * 7919);
    for i in 0..n {
        let input = if seeds.is_empty() || i % 3 == 0 {
            noise(&mut rng, 600)
        } else {
            let s = seeds[i % seeds.len()].clone();
            mutate(&mut rng, s)
        };
        f(&input);
    }
}

fn handshake_seeds() -> Vec<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/vectors/rlpx-eip8.json"
        ))
        .unwrap(),
    )
    .unwrap();
    v["packets"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| hex::decode(p.as_str().unwrap()).unwrap())
        .collect()
}

#[test]
fn fuzz_rlpx_auth_and_ack() {
    let mut seeds = handshake_seeds();
    let mut rng = Seed::from_u64(1).rng();
    let b = SecretKey::random(&mut rng);
    for format in [HandshakeFormat::Eip8, HandshakeFormat::Legacy] {
        let a = SecretKey::random(&mut rng);
        let e = SecretKey::random(&mut rng);
        seeds.push(
            handshake::encode_auth(
                &mut rng,
                &a,
                &a.public_key(),
                &e,
                &[3; 32],
                &b.public_key(),
                format,
            )
            .unwrap(),
        );
        seeds.push(handshake::encode_ack(
            &mut rng,
            &e,
            &[4; 32],
            &b.public_key(),
            format,
        ));
    }
    corpus("auth", 600, &seeds, targets::rlpx_auth);
    corpus("ack", 600, &seeds, targets::rlpx_ack);
}

#[test]
fn fuzz_rlpx_hello() {
    let seeds = vec![
        hex::decode("f87137916b6e6574682f76302e39312f706c616e39cdc5836574683dc6846d6f726b1682270fb840fda1cff674c90c9a197539fe3dfb53086ace64f83ed7c6eabec741f7f381cc803e52ab2cd55d5569bce4347107a310dfd5f88a010cd2ffd1005ca406f1842877c883666f6f836261720304").unwrap(),
        vec![0xc1, 0x04],
        status_sansio::rlpx::p2p::compress(&[0u8; 300]).unwrap(),
    ];
    corpus("hello", 5000, &seeds, targets::rlpx_hello);
}

#[test]
fn fuzz_rlpx_frame() {
    corpus("frame", 3000, &[], targets::rlpx_frame);
}

#[test]
fn fuzz_rlpx_connection() {
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    let (mut connected, mut messages, mut disconnected) = (0, 0, 0);
    for _ in 0..1500 {
        let r = targets::rlpx_connection(&noise(&mut rng, 1200));
        connected += usize::from(r.connected);
        messages += r.messages;
        disconnected += usize::from(r.disconnected);
    }
    eprintln!("connected {connected}, messages {messages}, disconnected {disconnected}");
    // The generated corpus must reach deep states, or this test would prove nothing.
    assert!(connected > 20, "only {connected} runs completed Hello");
    assert!(messages > 5, "only {messages} messages delivered");
    assert!(disconnected > 100, "only {disconnected} disconnects");
}
