//! RLPx benchmarks, each beside its lower bound in the same run:
//!
//! (a) a full EIP-8 handshake, both sides, through the `Connection` state machines until both report
//!     `Connected` (auth, ack, secrets, Hello each way), against the sum of the secp256k1 operations it
//!     cannot avoid: 3 key generations (the recipient's ephemeral public key and the two ECIES ephemeral keys; the initiator's
//!     ephemeral public key is never computed, since the recipient recovers it from the signature), 8 ECDH (static-static
//!     on each side for the signature, ECIES encrypt and decrypt of auth and ack, ephemeral-ephemeral on each
//!     side), one signature and one recovery. Goal: at most 1.15x. The curve operations are measured
//!     through each secp256k1 provider compiled in (`k256` always; `libsecp256k1` with
//!     `--features libsecp256k1`, which also makes it the one the handshake uses).
//! (b) frame seal plus open for 1 KiB and 64 KiB messages, against raw Keccak-256 plus AES-256-CTR over the
//!     same bytes, twice (seal and open each absorb the ciphertext and run the keystream once). Goal: at
//!     least 85% of the raw throughput.

use std::hint::black_box;
use std::sync::Arc;

use aes::cipher::{KeyIvInit, StreamCipher};
use bytes::BytesMut;
use criterion::{Criterion, Throughput};
use sha3::{Digest, Keccak256};
use status_benches::{fmt_ns, mean_ns};
use status_sansio::crypto::provider::{ActiveProvider, RustCrypto, Secp256k1Provider};
use status_sansio::crypto::SecretKey;
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
            let mut a = Connection::initiator(ca.clone(), cb.public_key(), &Seed::from_u64(n), now).unwrap();
            let mut b = Connection::recipient(cb.clone(), &Seed::from_u64(n + (1 << 32)), now).unwrap();
            assert_eq!(pump(&mut a, &mut b, now), 2);
        })
    });
    g.finish();
    curve_ops::<RustCrypto>(c);
    #[cfg(feature = "libsecp256k1")]
    curve_ops::<status_sansio::crypto::provider::LibSecp256k1>(c);
}

/// The four curve operations through provider `P`, in group `secp256k1_<name>`.
fn curve_ops<P: Secp256k1Provider>(c: &mut Criterion) {
    let mut g = c.benchmark_group(format!("secp256k1_{}", P::NAME));
    let mut rng = Seed::from_u64(3).rng();
    let sk = SecretKey::random(&mut rng);
    let pk = SecretKey::random(&mut rng).public_key();
    let digest = [7u8; 32];
    let sig = P::sign_recoverable(&sk, &digest).unwrap();
    let rs: [u8; 64] = sig[..64].try_into().unwrap();
    g.bench_function("keygen", |bench| {
        bench.iter(|| black_box(P::public_key(&SecretKey::random(&mut rng))))
    });
    g.bench_function("ecdh", |bench| bench.iter(|| black_box(P::ecdh_x(&sk, &pk))));
    g.bench_function("sign", |bench| {
        bench.iter(|| black_box(P::sign_recoverable(&sk, &digest).unwrap()))
    });
    g.bench_function("recover", |bench| {
        bench.iter(|| black_box(P::recover(&rs, sig[64], &digest).unwrap()))
    });
    g.finish();
}

/// The secp256k1 floor of a handshake with provider `name`: 3 keygen + 8 ECDH + sign + recover.
fn floor(name: &str) -> Option<(f64, [f64; 4])> {
    let g = format!("secp256k1_{name}");
    let ops = [
        mean_ns(&g, "keygen")?,
        mean_ns(&g, "ecdh")?,
        mean_ns(&g, "sign")?,
        mean_ns(&g, "recover")?,
    ];
    Some((3.0 * ops[0] + 8.0 * ops[1] + ops[2] + ops[3], ops))
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
    let mut providers = vec![RustCrypto::NAME];
    if cfg!(feature = "libsecp256k1") {
        providers.push("libsecp256k1");
    }
    for name in providers {
        if let Some((f, [kg, dh, sg, rc])) = floor(name) {
            println!(
                "secp256k1 via {name}: keygen {} | ECDH {} | sign {} | recover {} | handshake floor (3 keygen + 8 ECDH + sign + recover) {}",
                fmt_ns(kg),
                fmt_ns(dh),
                fmt_ns(sg),
                fmt_ns(rc),
                fmt_ns(f)
            );
        }
    }
    if let (Some(hs), Some((f, _))) = (
        get("rlpx_handshake", "full_eip8_handshake_both_sides"),
        floor(ActiveProvider::NAME),
    ) {
        println!(
            "handshake (both sides, {} provider): {} ({:.0}/s)  |  its secp256k1 floor: {}  |  ratio {:.3}x (goal <= 1.15x)",
            ActiveProvider::NAME,
            fmt_ns(hs),
            1e9 / hs,
            fmt_ns(f),
            hs / f
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
