//! Waku benchmarks, each beside its lower bound measured in the same run:
//!
//! (a) opening a 1 KiB symmetric message as a filter does (AES-256-GCM open with the filter's key schedule
//!     + plaintext parse), against raw AES-256-GCM decryption of the same bytes (key schedule set up once
//!     for both);
//! (b) relay throughput: Messages packets of 500 fresh 1 KiB envelopes from one peer through a node with 8
//!     peers of mixed interests (full bloom, topic interest, partial bloom, a high PoW requirement):
//!     decoding, PoW verification, de-duplication, pool insertion, interest and PoW matching, and building
//!     the outgoing packets, against PoW verification alone of the same envelopes (goal: at most 1.5x per
//!     envelope);
//! (c) PoW sealing rate (nonces tried per second) against the raw Keccak-256 rate over the same input
//!     (`short_rlp ‖ nonce`), for a small envelope (one Keccak block, where caching the prefix state cannot
//!     help; goal: at least 90%) and a 1 KiB one;
//! (d) memory: a pool of 100,000 envelopes (128 MiB cap), and one of 200,000 with the default caps, stays
//!     under its cap; the bytes held per envelope are printed,
//!     both as charged by the pool and as measured by a counting allocator, beside the envelope's own
//!     bytes (data plus expiry, TTL, topic and nonce);
//! (e) a signed 1 KiB symmetric message: sign + encrypt and open + recover, beside the raw curve
//!     operation (one signature, one recovery, through the active secp256k1 provider) plus raw
//!     AES-256-GCM.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit};
use criterion::{BatchSize, Criterion, Throughput};
use sha3::{Digest, Keccak256};
use status_benches::{fmt_ns, mean_ns};
use status_sansio::crypto::provider::Secp256k1Provider as _;
use status_sansio::waku::envelope::{PowSealer, SealProgress};
use status_sansio::waku::message::{
    build_plaintext, encrypt_symmetric, wrap, NewMessage, PostKey, SymmetricKey,
};
use status_sansio::waku::options::StatusOptions;
use status_sansio::waku::packet::{encode_envelopes, MESSAGES, STATUS};
use status_sansio::waku::pool::{Pool, PoolConfig};
use status_sansio::waku::{Bloom, ConnId, Dialect, Envelope, Topic};
use status_sansio::waku::{Input, WakuConfig, WakuNode};
use status_sansio::{Seed, Timestamp};
use zeroize::Zeroizing;

struct Counting;
static HEAP: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        HEAP.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        HEAP.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        HEAP.fetch_add(n as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const NOW: u64 = 1_700_000_000;

fn open(c: &mut Criterion) {
    let mut rng = Seed::from_u64(1).rng();
    let key = [7u8; 32];
    let pt = build_plaintext(&mut rng, &[0x42; 1024], None, None).unwrap();
    let data = encrypt_symmetric(&mut rng, &key, &pt).unwrap();
    let mut g = c.benchmark_group("waku_open_1k");
    g.throughput(Throughput::Bytes(data.len() as u64));
    let sym = SymmetricKey::new(&key);
    g.bench_function("open_symmetric", |b| {
        b.iter(|| black_box(sym.open(black_box(&data)).unwrap().payload.len()))
    });
    let cipher = aes_gcm::Aes256Gcm::new((&key).into());
    let (ct, nonce) = data.split_at(data.len() - 12);
    g.bench_function("raw_aes256gcm", |b| {
        b.iter(|| {
            black_box(
                cipher
                    .decrypt(aes_gcm::Nonce::from_slice(nonce), black_box(ct))
                    .unwrap()
                    .len(),
            )
        })
    });
    g.finish();
}

fn signed(c: &mut Criterion) {
    use status_sansio::crypto::{self, SecretKey};
    let mut rng = Seed::from_u64(2).rng();
    let key = [7u8; 32];
    let signer = SecretKey::random(&mut rng);
    let payload = [0x42u8; 1024];
    let pt = build_plaintext(&mut rng, &payload, None, Some(&signer)).unwrap();
    let data = encrypt_symmetric(&mut rng, &key, &pt).unwrap();
    let digest = crypto::keccak256(&pt[..pt.len() - 65]);
    let sig = crypto::sign_recoverable(&signer, &digest).unwrap();
    let mut g = c.benchmark_group("waku_signed_1k");
    g.bench_function("sign_encrypt", |b| {
        b.iter(|| {
            let pt = build_plaintext(&mut rng, black_box(&payload), None, Some(&signer)).unwrap();
            black_box(encrypt_symmetric(&mut rng, &key, &pt).unwrap())
        })
    });
    let sym = SymmetricKey::new(&key);
    g.bench_function("open_recover", |b| {
        b.iter(|| {
            let m = sym.open(black_box(&data)).unwrap();
            assert_eq!(m.signer, Some(signer.public_key()));
            black_box(m.payload.len())
        })
    });
    g.bench_function("raw_sign", |b| {
        b.iter(|| black_box(crypto::sign_recoverable(&signer, black_box(&digest)).unwrap()))
    });
    g.bench_function("raw_recover", |b| {
        b.iter(|| black_box(crypto::recover(black_box(&sig), &digest).unwrap()))
    });
    g.finish();
}

fn topics() -> Vec<Topic> {
    (0..16u8)
        .map(|i| Topic([i, 0x5a, i.wrapping_mul(7), 0x11]))
        .collect()
}

/// `n` distinct sealed envelopes on the 16 topics.
fn envelopes(n: usize, data_len: usize, seed: u64) -> Vec<Envelope> {
    let mut rng = Seed::from_u64(seed).rng();
    let ts = topics();
    (0..n)
        .map(|i| {
            let msg = NewMessage {
                topic: ts[i % ts.len()],
                payload: vec![(i % 251) as u8; data_len],
                key: PostKey::Symmetric(Zeroizing::new([3u8; 32])),
                signer: None,
                ttl: 60,
                pow_target: 0.002,
                padding: Some(vec![]),
            };
            let mut e = wrap(&mut rng, NOW, &msg).unwrap();
            let mut s = PowSealer::new(&e, 0.002);
            if let SealProgress::Done { nonce, .. } = s.step(1 << 24) {
                e.nonce = nonce;
            }
            e
        })
        .collect()
}

/// A node with 8 active peers of mixed interests; peer 0 is the sender.
fn relay_node() -> WakuNode {
    let now = Timestamp::from_secs(NOW);
    let mut n = WakuNode::new(
        WakuConfig {
            max_envelopes_per_sec: 0,
            max_bytes_per_sec: 0,
            ..WakuConfig::default()
        },
        &Seed::from_u64(2),
    )
    .expect("valid config");
    let ts = topics();
    for p in 0..8u64 {
        n.handle_input(
            now,
            Input::PeerConnected {
                peer: ConnId(p),
                dialect: Dialect::Waku1,
            },
        )
        .unwrap();
        let mut o = StatusOptions {
            pow_requirement: Some(0.000002),
            ..Default::default()
        };
        match p {
            0..=2 => o.bloom = Some(Bloom::FULL),
            3 | 4 => o.topic_interest = Some(ts[(p as usize * 2)..(p as usize * 2 + 6)].to_vec()),
            5 | 6 => o.bloom = Some(Bloom::of_topics(ts[..8].iter())),
            _ => {
                o.bloom = Some(Bloom::FULL);
                o.pow_requirement = Some(1000.0);
            }
        }
        n.handle_input(
            now,
            Input::Packet {
                peer: ConnId(p),
                code: STATUS,
                data: bytes::Bytes::copy_from_slice(&o.encode()),
            },
        )
        .unwrap();
    }
    while n.poll_output().is_some() {}
    n
}

fn relay(c: &mut Criterion) {
    const N: usize = 500;
    let now = Timestamp::from_secs(NOW);
    let sets: Vec<bytes::Bytes> = (0..8)
        .map(|s| bytes::Bytes::from(encode_envelopes(envelopes(N, 1024, 10 + s).iter())))
        .collect();
    let plain: Vec<Envelope> = envelopes(N, 1024, 10);
    let mut g = c.benchmark_group("waku_relay");
    g.throughput(Throughput::Elements(N as u64));
    g.measurement_time(Duration::from_secs(6));
    let mut k = 0;
    g.bench_function("relay_8_peers", |b| {
        b.iter_batched(
            || {
                k += 1;
                (relay_node(), &sets[k % sets.len()])
            },
            |(mut node, packet)| {
                node.handle_input(
                    now,
                    Input::Packet {
                        peer: ConnId(0),
                        code: MESSAGES,
                        data: packet.clone(),
                    },
                )
                .unwrap();
                node.handle_timeout(now + Duration::from_millis(300));
                let mut sent = 0;
                while let Some(o) = node.poll_output() {
                    sent += usize::from(matches!(o, status_sansio::waku::Output::Transmit { .. }));
                }
                assert!(sent >= 6, "the packet was relayed");
                node
            },
            BatchSize::PerIteration,
        )
    });
    let packet = sets[0].clone();
    g.bench_function("decode_and_pow", |b| {
        b.iter(|| {
            let mut acc = 0.0;
            if let Ok(status_sansio::waku::packet::Packet::Messages(envs)) =
                status_sansio::waku::packet::Packet::decode_bytes(Dialect::Waku1, MESSAGES, &packet, 1000)
            {
                for e in &envs {
                    acc += e.pow();
                }
            }
            black_box(acc)
        })
    });
    g.bench_function("pow_verification_only", |b| {
        b.iter(|| {
            let mut acc = 0.0;
            for e in &plain {
                acc += e.pow();
            }
            black_box(acc)
        })
    });
    g.finish();
}

fn sealing(c: &mut Criterion) {
    for (name, len) in [("small", 40usize), ("1k", 1024)] {
        let e = &envelopes(1, len, 99)[0];
        let short = e.short_rlp();
        let mut g = c.benchmark_group(format!("waku_seal_{name}"));
        const K: u64 = 1000;
        g.throughput(Throughput::Elements(K));
        g.bench_function("pow_sealer", |b| {
            b.iter_batched(
                || PowSealer::new(e, 1e30),
                |mut s| {
                    assert!(matches!(s.step(K), SealProgress::Pending { .. }));
                    s
                },
                BatchSize::SmallInput,
            )
        });
        g.bench_function("raw_keccak256", |b| {
            b.iter(|| {
                let mut x = 0u8;
                for nonce in 0..K {
                    let mut h = Keccak256::new();
                    h.update(&short);
                    h.update(nonce.to_be_bytes());
                    x ^= h.finalize()[0];
                }
                black_box(x)
            })
        });
        g.finish();
        println!("(seal {name}: short RLP {} bytes)", short.len());
    }
}

fn memory(n: usize, cap: PoolConfig) {
    // Baseline before the envelopes exist: the pool takes them over, and their temporaries are freed.
    let before = HEAP.load(Ordering::Relaxed);
    let envs = envelopes(n, 256, 5);
    let mut pool = Pool::new(cap, status_sansio::SeededState::new(&mut Seed::from_u64(3).rng()));
    for e in envs {
        let s = e.stamp();
        pool.insert(s.id, e, s.pow(60, 0), NOW);
    }
    let held = HEAP.load(Ordering::Relaxed) - before;
    assert_eq!(pool.len(), n.min(cap.max_envelopes));
    assert!(pool.bytes() <= cap.max_bytes, "the pool stays under its cap");
    let data = pool
        .iter_from(0)
        .next()
        .and_then(|(_, _, e)| e.envelope().ok())
        .map_or(0, |e| e.data.len());
    let rlp = pool.iter_from(0).map(|(_, _, e)| e.wire.len()).sum::<usize>() as f64 / n as f64;
    let measured = held as f64 / n as f64;
    let charged = pool.bytes() as f64 / n as f64;
    println!(
        "pool of {n} envelopes (256-byte payloads, {data} bytes of data each; the envelope's own bytes: {}; its RLP: {rlp:.0}): \
         heap measured {measured:.0} B/envelope ({:.0} B beside the RLP), charged {charged:.0} B/envelope \
         ({:.1} MiB of a {} MiB cap; charged / measured {:.3})",
        data + 20,
        measured - rlp,
        pool.bytes() as f64 / (1 << 20) as f64,
        cap.max_bytes >> 20,
        charged / measured,
    );
}

fn report() {
    println!("\n== Waku benchmark ratios (means from this run) ==");
    if let (Some(o), Some(r)) = (
        mean_ns("waku_open_1k", "open_symmetric"),
        mean_ns("waku_open_1k", "raw_aes256gcm"),
    ) {
        println!(
            "open 1 KiB symmetric: {}  |  raw AES-256-GCM: {}  |  ratio {:.2}x",
            fmt_ns(o),
            fmt_ns(r),
            o / r
        );
    }
    if let (Some(rel), Some(pow), Some(dec)) = (
        mean_ns("waku_relay", "relay_8_peers"),
        mean_ns("waku_relay", "pow_verification_only"),
        mean_ns("waku_relay", "decode_and_pow"),
    ) {
        println!(
            "relay (8 mixed peers): {} per envelope ({:.0} envelopes/s)  |  PoW hash of decoded envelopes: {} ({:.2}x)  |  \
             decoding the packet + PoW: {} ({:.2}x) (goal <= 1.5x)",
            fmt_ns(rel / 500.0),
            500.0 / rel * 1e9,
            fmt_ns(pow / 500.0),
            rel / pow,
            fmt_ns(dec / 500.0),
            rel / dec
        );
    }
    let get = |id: &str| mean_ns("waku_signed_1k", id);
    if let (Some(se), Some(or), Some(s), Some(r), Some(aes)) = (
        get("sign_encrypt"),
        get("open_recover"),
        get("raw_sign"),
        get("raw_recover"),
        mean_ns("waku_open_1k", "raw_aes256gcm"),
    ) {
        println!(
            "signed 1 KiB message ({} provider): sign + encrypt {} vs raw sign + AES-GCM {} ({:.2}x)  |  open + recover {} vs raw recover + AES-GCM {} ({:.2}x)",
            status_sansio::crypto::provider::ActiveProvider::NAME,
            fmt_ns(se),
            fmt_ns(s + aes),
            se / (s + aes),
            fmt_ns(or),
            fmt_ns(r + aes),
            or / (r + aes)
        );
    }
    for name in ["small", "1k"] {
        let g = format!("waku_seal_{name}");
        if let (Some(s), Some(r)) = (mean_ns(&g, "pow_sealer"), mean_ns(&g, "raw_keccak256")) {
            println!(
                "PoW sealing ({name}): {:.2} M nonces/s  |  raw Keccak-256 over the same input: {:.2} M/s  |  {:.0}% (goal >= 90%)",
                1000.0 / s * 1e3,
                1000.0 / r * 1e3,
                r / s * 100.0
            );
        }
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    open(&mut c);
    signed(&mut c);
    relay(&mut c);
    sealing(&mut c);
    c.final_summary();
    memory(
        100_000,
        PoolConfig {
            max_bytes: 128 << 20,
            max_envelopes: 100_000,
        },
    );
    memory(200_000, PoolConfig::default());
    report();
}
