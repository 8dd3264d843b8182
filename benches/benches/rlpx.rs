//! RLPx benchmarks, each beside its lower bound in the same run:
//!
//! (a) a full EIP-8 handshake, both sides, through the `Connection` state machines until both report
//!     `Connected` (auth, ack, secrets, Hello each way), against the sum of the secp256k1 operations it
//!     cannot avoid: 3 key generations (the recipient's ephemeral public key and the two ECIES ephemeral keys; the initiator's
//!     ephemeral public key is never computed, since the recipient recovers it from the signature), 8 ECDH (static-static
//!     on each side for the signature, ECIES encrypt and decrypt of auth and ack, ephemeral-ephemeral on each
//!     side), one signature and one recovery. Goal: at most 1.15x.
//! (b) frame seal plus open for 1 KiB and 64 KiB messages, against raw Keccak-256 plus AES-256-CTR over the
//!     same bytes, twice (seal and open each absorb the ciphertext and run the keystream once). Goal: at
//!     least 85% of the raw throughput.

use std::hint::black_box;
use std::sync::Arc;

use aes::cipher::{KeyIvInit, StreamCipher};
use bytes::BytesMut;
use criterion::{Criterion, Throughput};
use k256::ecdsa::{RecoveryId, Signature, SigningKey, VerifyingKey};
use sha3::{Digest, Keccak256};
use status_benches::{fmt_ns, mean_ns};
use status_sansio::crypto::{ecdh_x, SecretKey};
use status_sansio::rlpx::frame::FrameCodec;
use status_sansio::rlpx::{Config, Connection, Event, Input, Output, Protocol};
use status_sansio::{Seed, Timestamp};

/// Move every output of `from` into `to`; returns (bytes moved, Connected events seen).
fn forward(from: &mut Connection, to: &mut Connection, now: Timestamp) -> (bool, usize) {
    let (mut moved, mut connected) = (false, 0);
    while let Some(o) = from.poll_output() {
        match o {
            Output::Transmit(bytes) => {
                to.handle_input(now, Input::Receive(&bytes)).ok();
                moved = true;
            }
            Output::Event(Event::Connected { .. }) => connected += 1,
            _ => {}
        }
    }
    (moved, connected)
}

fn pump(a: &mut Connection, b: &mut Connection, now: Timestamp) -> usize {
    let mut connected = 0;
    loop {
        let (m1, c1) = forward(a, b, now);
        let (m2, c2) = forward(b, a, now);
        connected += c1 + c2;
        if !m1 && !m2 {
            return connected;
        }
    }
}

fn handshake(c: &mut Criterion) {
    let proto = vec![Protocol::new("test", 1, 8).unwrap()];
    let ca = Arc::new(Config::new(
        SecretKey::random(&mut Seed::from_u64(1).rng()),
        proto.clone(),
    ));
    let cb = Arc::new(Config::new(
        SecretKey::random(&mut Seed::from_u64(2).rng()),
        proto,
    ));
    let now = Timestamp::from_secs(1);
    let mut g = c.benchmark_group("rlpx_handshake");
    let mut n = 0u64;
    g.bench_function("full_eip8_handshake_both_sides", |bench| {
        bench.iter(|| {
            n += 1;
            let mut a = Connection::initiator(now, ca.clone(), cb.public_key(), Seed::from_u64(n)).unwrap();
            let mut b = Connection::recipient(now, cb.clone(), Seed::from_u64(n + (1 << 32))).unwrap();
            assert_eq!(pump(&mut a, &mut b, now), 2);
        })
    });
    let mut rng = Seed::from_u64(3).rng();
    let sk = SecretKey::random(&mut rng);
    let pk = SecretKey::random(&mut rng).public_key();
    let digest = [7u8; 32];
    let signing = SigningKey::from_slice(&sk.to_bytes()).unwrap();
    let (sig, recid): (Signature, RecoveryId) = signing.sign_prehash_recoverable(&digest);
    g.bench_function("secp256k1_keygen", |bench| {
        bench.iter(|| black_box(SecretKey::random(&mut rng).public_key()))
    });
    g.bench_function("secp256k1_ecdh", |bench| {
        bench.iter(|| black_box(ecdh_x(&sk, &pk)))
    });
    g.bench_function("secp256k1_sign", |bench| {
        bench.iter(|| black_box(signing.sign_prehash_recoverable(&digest)))
    });
    g.bench_function("secp256k1_recover", |bench| {
        bench.iter(|| black_box(VerifyingKey::recover_from_prehash(&digest, &sig, recid).unwrap()))
    });
    g.finish();
}

fn frames(c: &mut Criterion) {
    let k = [9u8; 32];
    for size in [1024usize, 64 * 1024] {
        let mut g = c.benchmark_group(format!("rlpx_frame_{}k", size / 1024));
        g.throughput(Throughput::Bytes(size as u64));
        let msg = vec![0x5au8; size];
        let mut tx = FrameCodec::from_parts(&k, &k, Keccak256::new(), Keccak256::new(), 1 << 24);
        let mut rx = FrameCodec::from_parts(&k, &k, Keccak256::new(), Keccak256::new(), 1 << 24);
        let mut wire = Vec::with_capacity(size + 64);
        let mut buf = BytesMut::with_capacity(size + 64);
        g.bench_function("seal_open", |bench| {
            bench.iter(|| {
                wire.clear();
                tx.seal(&[&msg], &mut wire).unwrap();
                buf.extend_from_slice(&wire);
                let f = rx.open(&mut buf).unwrap().unwrap();
                black_box(f.len());
            })
        });
        let mut data = msg.clone();
        let mut h1 = Keccak256::new();
        let mut h2 = Keccak256::new();
        let mut enc = ctr::Ctr128BE::<aes::Aes256>::new((&k).into(), (&[0u8; 16]).into());
        let mut dec = ctr::Ctr128BE::<aes::Aes256>::new((&k).into(), (&[0u8; 16]).into());
        g.bench_function("raw_keccak_aesctr_x2", |bench| {
            bench.iter(|| {
                enc.apply_keystream(&mut data);
                h1.update(&data);
                h2.update(&data);
                dec.apply_keystream(&mut data);
                black_box(h1.clone().finalize());
                black_box(h2.clone().finalize());
            })
        });
        g.finish();
    }
}

fn report() {
    let get = |g: &str, id: &str| mean_ns(g, id);
    println!("\n== RLPx benchmark ratios (means from this run) ==");
    if let (Some(hs), Some(kg), Some(dh), Some(sg), Some(rc)) = (
        get("rlpx_handshake", "full_eip8_handshake_both_sides"),
        get("rlpx_handshake", "secp256k1_keygen"),
        get("rlpx_handshake", "secp256k1_ecdh"),
        get("rlpx_handshake", "secp256k1_sign"),
        get("rlpx_handshake", "secp256k1_recover"),
    ) {
        let floor = 3.0 * kg + 8.0 * dh + sg + rc;
        println!(
            "handshake (both sides): {}  |  secp256k1 floor (3 keygen + 8 ECDH + sign + recover): {}  |  ratio {:.3}x (goal <= 1.15x)",
            fmt_ns(hs),
            fmt_ns(floor),
            hs / floor
        );
    }
    for size in ["1k", "64k"] {
        let g = format!("rlpx_frame_{size}");
        if let (Some(ours), Some(raw)) = (get(&g, "seal_open"), get(&g, "raw_keccak_aesctr_x2")) {
            let bytes = if size == "1k" { 1024.0 } else { 65536.0 };
            println!(
                "frame seal+open {size}: {} ({:.0} MB/s)  |  raw 2x(Keccak-256 + AES-256-CTR): {} ({:.0} MB/s)  |  {:.1}% of raw (goal >= 85%)",
                fmt_ns(ours),
                bytes / ours * 1e3,
                fmt_ns(raw),
                bytes / raw * 1e3,
                raw / ours * 100.0
            );
        }
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    handshake(&mut c);
    frames(&mut c);
    c.final_summary();
    report();
}
