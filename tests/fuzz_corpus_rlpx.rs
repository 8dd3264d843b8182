//! The RLPx fuzz targets run over a seeded, generated corpus, so CI exercises them on stable without
//! libFuzzer. Inputs mix pure noise with mutations of valid packets, frames and Hellos.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use status_sansio::crypto::SecretKey;
use status_sansio::fuzzing::corpus::{self, Generator};
use status_sansio::fuzzing::rlpx as targets;
use status_sansio::fuzzing::seeds;
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
    // Raw packets (mode 0): the vectors and fresh packets to other keys.
    let mut raw = handshake_seeds();
    let mut rng = Seed::from_u64(1).rng();
    let b = SecretKey::random(&mut rng);
    for format in [HandshakeFormat::Eip8, HandshakeFormat::Legacy] {
        let a = SecretKey::random(&mut rng);
        let e = SecretKey::random(&mut rng);
        raw.push(
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
        raw.push(handshake::encode_ack(
            &mut rng,
            &e,
            &[4; 32],
            &b.public_key(),
            format,
        ));
    }
    let raw: Vec<Vec<u8>> = raw.into_iter().map(|p| [vec![0u8], p].concat()).collect();
    for (name, target) in [
        ("rlpx_auth", targets::rlpx_auth as fn(&[u8])),
        ("rlpx_ack", targets::rlpx_ack),
    ] {
        // Sealed plaintexts (modes 1-3): the bodies of real packets, which the harness seals again.
        let mut seeds = seeds::generated(name);
        assert!(
            seeds.iter().filter(|s| s[0] % 4 != 0).count() >= 3,
            "{name}: sealed seeds"
        );
        seeds.extend(raw.iter().cloned());
        corpus::run(name.len() as u64 * 7919, 600, 600, &seeds, target);
    }
}

/// The parsers behind the ECIES MAC are reached: a sealed real body decodes, a sealed mutated body
/// reaches the body parser's errors (never an ECIES error: the body assertions check that).
#[test]
fn sealed_handshake_bodies_reach_the_parsers() {
    let k = targets::keys();
    for (auth, secret, public) in [
        (true, &k.recipient, &k.recipient_pub),
        (false, &k.initiator, &k.initiator_pub),
    ] {
        let decode = |packet: &[u8], legacy: bool| {
            if auth {
                handshake::decode_auth(secret, packet, legacy, 2048).map(|o| o.map(|(_, n)| n))
            } else {
                handshake::decode_ack(secret, packet, legacy, 2048).map(|o| o.map(|(_, n)| n))
            }
        };
        let name = if auth { "rlpx_auth" } else { "rlpx_ack" };
        let sealed: Vec<_> = seeds::generated(name)
            .into_iter()
            .filter(|s| matches!(s[0], 1 | 3))
            .collect();
        assert_eq!(sealed.len(), 2, "{name}: an EIP-8 and a legacy body");
        for s in sealed {
            let (packet, legacy) = if s[0] == 1 {
                (targets::seal_eip8(public, &s[1..], 9).unwrap(), false)
            } else {
                (targets::seal_legacy(public, &s[1..], 9), true)
            };
            assert_eq!(decode(&packet, legacy).unwrap(), Some(packet.len()));
            // A body cut short opens, and its parser refuses it.
            let cut = targets::seal_eip8(public, &s[1..21], 9).unwrap();
            let err = decode(&cut, false).unwrap_err();
            assert!(
                matches!(err, status_sansio::rlpx::RlpxError::MalformedHandshake(_)),
                "{err:?}"
            );
        }
    }
}

#[test]
fn fuzz_rlpx_initiator() {
    let seeds = seeds::generated("rlpx_initiator");
    let mut g = Generator::new(0x696e_6974);
    let (mut runs, mut connected, mut messages, mut disconnected) = (0, 0, 0, 0);
    for i in 0..600 {
        let input = g.input(i, &seeds, 5, 600);
        let r = targets::rlpx_initiator(&input);
        runs += 1;
        connected += usize::from(r.connected);
        messages += r.messages;
        disconnected += usize::from(r.disconnected);
    }
    eprintln!("{runs} runs: connected {connected}, messages {messages}, disconnected {disconnected}");
    // The valid-ack seeds connect and deliver; their mutations keep reaching past the handshake.
    for s in &seeds[..2] {
        let r = targets::rlpx_initiator(s);
        assert!(r.connected && r.messages >= 1, "{r:?}");
    }
    assert!(connected > 60, "only {connected} runs completed Hello");
    assert!(messages > 30, "only {messages} messages delivered");
    assert!(disconnected > 100, "only {disconnected} disconnects");
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
