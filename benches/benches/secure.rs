//! Secure transport: a Double Ratchet encrypt + decrypt round trip, without and with a DH ratchet step,
//! each beside the primitives it must run (measured in the same run), and the same round trips with
//! vodozemac's Olm for context. Prints each ratio (goal: round trip ≤ 1.2 × primitives).
//!
//! `cargo bench -p status-benches --bench secure` (add `-- --quick` style criterion flags as needed).

use std::hint::black_box;
use std::time::{Duration, Instant};

use aes::cipher::{KeyIvInit, StreamCipher};
use criterion::{criterion_group, criterion_main, Criterion};
use hmac::{Hmac, Mac};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sha2::Sha256;
use status_sansio::crypto;
use status_sansio::secure::dh::{Curve, Secp256k1};
use status_sansio::secure::kdf::Key32;
use status_sansio::secure::ratchet::{RatchetConfig, Session};
use status_sansio::Timestamp;
use vodozemac::olm::{Account, OlmMessage, Session as OlmSession, SessionConfig};

const PAYLOAD: &[u8] = &[0x42; 100];
const NOW: Timestamp = Timestamp::from_secs(1_700_000_000);

struct Pair {
    a: Session<Secp256k1>,
    b: Session<Secp256k1>,
    rng: ChaCha20Rng,
    cfg: RatchetConfig,
    turn: bool,
}

impl Pair {
    fn new() -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let spk = Secp256k1::generate(&mut rng);
        let sk = Key32::new([7; 32]);
        let a = Session::initiator(&sk, Secp256k1::public_key(&spk), &mut rng).unwrap();
        let b = Session::responder(&sk, spk);
        let mut p = Pair {
            a,
            b,
            rng,
            cfg: RatchetConfig::default(),
            turn: false,
        };
        // Start in a steady state: both sides have ratcheted once.
        p.ratchet_round_trip();
        p.ratchet_round_trip();
        p
    }

    /// Alice → Bob on the same chain: no DH step.
    fn same_chain_round_trip(&mut self) {
        let (h, ct) = self.a.encrypt(PAYLOAD).unwrap();
        let pt = self.b.decrypt(&h, &ct, NOW, &self.cfg, &mut self.rng).unwrap();
        black_box(pt);
    }

    /// Alternating direction: every message opens a new chain, so the receiver does a DH ratchet step.
    fn ratchet_round_trip(&mut self) {
        let (s, r) = if self.turn {
            (&mut self.b, &mut self.a)
        } else {
            (&mut self.a, &mut self.b)
        };
        self.turn = !self.turn;
        let (h, ct) = s.encrypt(PAYLOAD).unwrap();
        let pt = r.decrypt(&h, &ct, NOW, &self.cfg, &mut self.rng).unwrap();
        black_box(pt);
    }
}

type HmacSha256 = Hmac<Sha256>;
type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;

fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).unwrap();
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// What one message costs one side, in primitives only: KDF_CK (2 HMAC), the HKDF expansion of the message
/// key (80 bytes), AES-256-CTR over the payload and the HMAC over `ad ‖ iv ‖ ct`.
fn message_primitives(ck: &[u8; 32], buf: &mut [u8; 16 + 100]) -> [u8; 32] {
    let next = hmac(ck, &[&[0x0f]]);
    let mk = hmac(ck, &[&[0x10]]);
    let mut okm = [0u8; 80];
    hkdf::Hkdf::<Sha256>::new(Some(&[0u8; 32]), &mk)
        .expand(b"pcwSByyx2CRdryCffXJwy7xgVZWtW5Sh", &mut okm)
        .unwrap();
    let (enc, rest) = okm.split_at(32);
    let (auth, iv) = rest.split_at(32);
    buf[..16].copy_from_slice(iv);
    buf[16..].copy_from_slice(PAYLOAD);
    Aes256Ctr::new(enc.into(), iv.into()).apply_keystream(&mut buf[16..]);
    let tag = hmac(auth.try_into().unwrap(), &[&[0u8; 41], &buf[..]]);
    black_box(tag);
    next
}

fn primitives_same_chain(ck: &mut [u8; 32]) {
    let mut buf = [0u8; 116];
    // Encrypt and decrypt each run the same primitive sequence.
    *ck = message_primitives(ck, &mut buf);
    *ck = message_primitives(ck, &mut buf);
}

struct DhPrims {
    rng: ChaCha20Rng,
    peer: status_sansio::crypto::PublicKey,
}

/// A DH ratchet step adds: one secp256k1 key generation (scalar + public key), two ECDH and two KDF_RK
/// (HKDF, 96 bytes).
fn primitives_ratchet(ck: &mut [u8; 32], d: &mut DhPrims) {
    primitives_same_chain(ck);
    let sk = crypto::SecretKey::random(&mut d.rng);
    black_box(crypto::pubkey_to_compressed(&sk.public_key()));
    for _ in 0..2 {
        let dh = crypto::ecdh_x(&sk, &d.peer);
        let mut okm = [0u8; 96];
        hkdf::Hkdf::<Sha256>::new(Some(ck), &dh[..])
            .expand(b"rsZUpEuXUqqwXBvSy3EcievAh4cMj6QL", &mut okm)
            .unwrap();
        black_box(okm);
    }
}

struct Olm {
    a: OlmSession,
    b: OlmSession,
    turn: bool,
}

impl Olm {
    fn new() -> Self {
        let alice = Account::new();
        let mut bob = Account::new();
        bob.generate_one_time_keys(1);
        let otk = *bob.one_time_keys().values().next().unwrap();
        let mut a = alice.create_outbound_session(SessionConfig::version_2(), bob.curve25519_key(), otk);
        bob.mark_keys_as_published();
        let first = a.encrypt(PAYLOAD);
        let OlmMessage::PreKey(pre) = first else {
            unreachable!()
        };
        let b = bob
            .create_inbound_session(alice.curve25519_key(), &pre)
            .unwrap()
            .session;
        let mut o = Olm { a, b, turn: false };
        o.ratchet_round_trip();
        o.ratchet_round_trip();
        o
    }

    fn same_chain_round_trip(&mut self) {
        let m = self.a.encrypt(PAYLOAD);
        black_box(self.b.decrypt(&m).unwrap());
    }

    fn ratchet_round_trip(&mut self) {
        let (s, r) = if self.turn {
            (&mut self.b, &mut self.a)
        } else {
            (&mut self.a, &mut self.b)
        };
        self.turn = !self.turn;
        let m = s.encrypt(PAYLOAD);
        black_box(r.decrypt(&m).unwrap());
    }
}

fn dh_prims() -> DhPrims {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let peer = crypto::SecretKey::random(&mut rng).public_key();
    DhPrims { rng, peer }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("secure");
    let mut pair = Pair::new();
    g.bench_function("status round trip, same chain", |b| {
        b.iter(|| pair.same_chain_round_trip())
    });
    let mut ck = [1u8; 32];
    g.bench_function("primitives for it (HMAC, HKDF, AES-CTR)", |b| {
        b.iter(|| primitives_same_chain(&mut ck))
    });
    let mut pair = Pair::new();
    g.bench_function("status round trip, DH ratchet step", |b| {
        b.iter(|| pair.ratchet_round_trip())
    });
    let mut d = dh_prims();
    g.bench_function("primitives for it (+ keygen, 2 ECDH, 2 HKDF)", |b| {
        b.iter(|| primitives_ratchet(&mut ck, &mut d))
    });
    let mut olm = Olm::new();
    g.bench_function("vodozemac Olm round trip, same chain", |b| {
        b.iter(|| olm.same_chain_round_trip())
    });
    let mut olm = Olm::new();
    g.bench_function("vodozemac Olm round trip, DH ratchet step", |b| {
        b.iter(|| olm.ratchet_round_trip())
    });
    g.finish();
    ratios();
}

/// Time `f` for about `budget`, returning nanoseconds per call.
fn per_call(budget: Duration, mut f: impl FnMut()) -> f64 {
    for _ in 0..50 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..20 {
            f();
        }
        n += 20;
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

/// Interleaved measurements of each round trip and its primitives, so both see the same machine load.
fn ratios() {
    let budget = Duration::from_millis(300);
    let (mut same, mut same_p, mut rat, mut rat_p, mut olm_s, mut olm_r) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let rounds = 3;
    for _ in 0..rounds {
        let mut pair = Pair::new();
        same += per_call(budget, || pair.same_chain_round_trip());
        let mut ck = [1u8; 32];
        same_p += per_call(budget, || primitives_same_chain(&mut ck));
        let mut pair = Pair::new();
        rat += per_call(budget, || pair.ratchet_round_trip());
        let mut d = dh_prims();
        rat_p += per_call(budget, || primitives_ratchet(&mut ck, &mut d));
        let mut olm = Olm::new();
        olm_s += per_call(budget, || olm.same_chain_round_trip());
        let mut olm = Olm::new();
        olm_r += per_call(budget, || olm.ratchet_round_trip());
    }
    let r = f64::from(rounds);
    let us = |x: f64| x / r / 1000.0;
    println!("secure ratios (mean of {rounds} interleaved rounds, 100-byte payload):");
    println!(
        "  same chain:   round trip {:.2} µs, primitives {:.2} µs, ratio {:.2}; vodozemac Olm {:.2} µs",
        us(same),
        us(same_p),
        same / same_p,
        us(olm_s)
    );
    println!(
        "  DH ratchet:   round trip {:.2} µs, primitives {:.2} µs, ratio {:.2}; vodozemac Olm {:.2} µs",
        us(rat),
        us(rat_p),
        rat / rat_p,
        us(olm_r)
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(20);
    targets = bench
}
criterion_main!(benches);
