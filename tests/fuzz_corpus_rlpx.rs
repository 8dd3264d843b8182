//! The RLPx fuzz targets run over a seeded, generated corpus, so CI exercises them on stable without
//! libFuzzer. Inputs mix pure noise with mutations of valid packets, frames and Hellos.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use status_sansio::crypto::SecretKey;
use status_sansio::fuzzing::corpus::{self, Generator};
use status_sansio::fuzzing::rlpx as targets;
use status_sansio::rlpx::handshake::{self, HandshakeFormat};
use status_sansio::Seed;

fn handshake_seeds() -> Vec<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/rlpx-eip8.json"
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
    corpus::run("auth".len() as u64 * 7919, 600, 600, &seeds, targets::rlpx_auth);
    corpus::run("ack".len() as u64 * 7919, 600, 600, &seeds, targets::rlpx_ack);
}

#[test]
fn fuzz_rlpx_hello() {
    let seeds = vec![
        hex::decode("f87137916b6e6574682f76302e39312f706c616e39cdc5836574683dc6846d6f726b1682270fb840fda1cff674c90c9a197539fe3dfb53086ace64f83ed7c6eabec741f7f381cc803e52ab2cd55d5569bce4347107a310dfd5f88a010cd2ffd1005ca406f1842877c883666f6f836261720304").unwrap(),
        vec![0xc1, 0x04],
        status_sansio::rlpx::p2p::compress(&[0u8; 300]).unwrap(),
    ];
    corpus::run(
        "hello".len() as u64 * 7919,
        5000,
        600,
        &seeds,
        targets::rlpx_hello,
    );
}

#[test]
fn fuzz_rlpx_frame() {
    corpus::run("frame".len() as u64 * 7919, 3000, 600, &[], targets::rlpx_frame);
}

#[test]
fn fuzz_rlpx_connection() {
    let mut g = Generator::new(42);
    let (mut connected, mut messages, mut disconnected) = (0, 0, 0);
    for _ in 0..1500 {
        let r = targets::rlpx_connection(&g.noise(1200));
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
