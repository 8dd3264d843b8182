#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Seeded property tests: two parties exchanging messages over a channel with random loss, duplication
//! and reordering always decrypt every message that arrives within the skip window exactly once (a
//! duplicate is rejected as such and changes nothing), on both curves; sessions and whole machines survive
//! export and import mid-conversation.

use std::collections::BTreeSet;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use status_sansio::fuzzing::secure::fixed_key;
use status_sansio::secure::dh::{Curve, Secp256k1, X25519};
use status_sansio::secure::ratchet::{Header, RatchetConfig, Session};
use status_sansio::secure::{x3dh, Config, Event, Input, Output, SecureError, SecureTransport};
use status_sansio::{Seed, Timestamp};

const NOW: Timestamp = Timestamp::from_secs(1_700_000_000);

struct InFlight<C: Curve> {
    id: u64,
    header: Header<C>,
    ct: Vec<u8>,
}

fn chance(rng: &mut ChaCha20Rng, percent: u32) -> bool {
    rng.next_u32() % 100 < percent
}

fn lossy_conversation<C: Curve>(seed: u64) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let cfg = RatchetConfig::default();
    let (ika, eka, ikb, spkb) = (
        C::generate(&mut rng),
        C::generate(&mut rng),
        C::generate(&mut rng),
        C::generate(&mut rng),
    );
    let sk_a = x3dh::initiate::<C>(&ika, &eka, &C::public_key(&ikb), &C::public_key(&spkb)).unwrap();
    let sk_b = x3dh::respond::<C>(&ikb, &spkb, &C::public_key(&ika), &C::public_key(&eka)).unwrap();
    let mut parties = [
        Session::<C>::initiator(&sk_a, C::public_key(&spkb), &mut rng).unwrap(),
        Session::<C>::responder(&sk_b, spkb),
    ];
    // queues[i] holds messages travelling to party i.
    let mut queues: [Vec<InFlight<C>>; 2] = [Vec::new(), Vec::new()];
    let mut delivered: [BTreeSet<u64>; 2] = [BTreeSet::new(), BTreeSet::new()];
    let mut next_id = 0u64;
    let (loss, dup) = (10 + (seed % 20) as u32, 10 + (seed % 15) as u32);
    for _ in 0..160 {
        let from = (rng.next_u32() % 2) as usize;
        let to = 1 - from;
        match rng.next_u32() % 5 {
            0 | 1 => {
                let id = next_id;
                next_id += 1;
                let (header, ct) = parties[from].encrypt(&id.to_le_bytes()).unwrap();
                if !chance(&mut rng, loss) {
                    queues[to].push(InFlight { id, header, ct });
                }
            }
            2 | 3 => {
                if queues[to].is_empty() {
                    continue;
                }
                // Reordering: any queued message may arrive next; duplication: it may stay queued.
                let i = rng.next_u32() as usize % queues[to].len();
                let m = if chance(&mut rng, dup) {
                    let m = &queues[to][i];
                    InFlight {
                        id: m.id,
                        header: m.header.clone(),
                        ct: m.ct.clone(),
                    }
                } else {
                    queues[to].swap_remove(i)
                };
                let before = parties[to].export();
                let res = parties[to].decrypt(&m.header, &m.ct, NOW, &cfg, &mut rng);
                if delivered[to].insert(m.id) {
                    assert_eq!(
                        &res.unwrap()[..],
                        &m.id.to_le_bytes(),
                        "seed {seed}: message {} lost",
                        m.id
                    );
                } else {
                    assert_eq!(
                        res,
                        Err(SecureError::DuplicateOrExpired),
                        "seed {seed}: duplicate {}",
                        m.id
                    );
                    assert_eq!(*parties[to].export(), *before);
                }
            }
            _ => {
                // Persist and restore one party mid-conversation.
                let who = (rng.next_u32() % 2) as usize;
                parties[who] = Session::<C>::import(&parties[who].export(), &cfg).unwrap();
            }
        }
    }
    assert!(
        delivered[0].len() + delivered[1].len() > 20,
        "seed {seed}: too few deliveries to mean anything"
    );
}

#[test]
fn lossy_reordering_duplicating_channel_secp256k1() {
    for seed in 0..12 {
        lossy_conversation::<Secp256k1>(seed);
    }
}

#[test]
fn lossy_reordering_duplicating_channel_x25519() {
    for seed in 0..24 {
        lossy_conversation::<X25519>(seed);
    }
}

#[test]
fn skip_window_bound_is_exact() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let cfg = RatchetConfig {
        max_skip: 20,
        ..RatchetConfig::default()
    };
    let spk = X25519::generate(&mut rng);
    let sk = status_sansio::secure::kdf::Key32::new([1; 32]);
    let mut a = Session::<X25519>::initiator(&sk, X25519::public_key(&spk), &mut rng).unwrap();
    let mut b = Session::<X25519>::responder(&sk, spk);
    let msgs: Vec<_> = (0..23).map(|_| a.encrypt(b"m").unwrap()).collect();
    // n = 21 would skip 21 keys: one too many; n = 20 skips exactly 20.
    assert_eq!(
        b.decrypt(&msgs[21].0, &msgs[21].1, NOW, &cfg, &mut rng),
        Err(SecureError::TooFarAhead)
    );
    assert_eq!(
        &b.decrypt(&msgs[20].0, &msgs[20].1, NOW, &cfg, &mut rng).unwrap()[..],
        b"m"
    );
    assert_eq!(b.skipped_keys(), 20);
    for m in &msgs[..20] {
        assert_eq!(&b.decrypt(&m.0, &m.1, NOW, &cfg, &mut rng).unwrap()[..], b"m");
    }
}

/// Whole machines over a lossy, duplicating, reordering channel, with one side exported and re-imported
/// along the way: every distinct message that arrives opens exactly once.
#[test]
fn machines_over_a_lossy_channel_with_restarts() {
    for seed in 0..4u64 {
        let mut rng = ChaCha20Rng::seed_from_u64(100 + seed);
        let (mut alice, mut bob) =
            status_sansio::fuzzing::secure::established_machines(Config::default(), NOW).unwrap();
        let ids = [*alice.identity(), *bob.identity()];
        let mut queues: [Vec<(u64, Vec<u8>)>; 2] = [Vec::new(), Vec::new()];
        let mut seen: [BTreeSet<u64>; 2] = [BTreeSet::new(), BTreeSet::new()];
        let mut next = 0u64;
        for _ in 0..80 {
            let from = (rng.next_u32() % 2) as usize;
            let to = 1 - from;
            let (sender, receiver) = if from == 0 {
                (&mut alice, &mut bob)
            } else {
                (&mut bob, &mut alice)
            };
            match rng.next_u32() % 5 {
                0 | 1 => {
                    let id = next;
                    next += 1;
                    sender
                        .handle_input(
                            NOW,
                            Input::Encrypt {
                                recipient: ids[to],
                                payload: id.to_le_bytes().to_vec(),
                            },
                        )
                        .unwrap();
                    while let Some(o) = sender.poll_output() {
                        if let Output::Transmit(s) = o {
                            if !chance(&mut rng, 15) {
                                queues[to].push((id, s.bytes));
                            }
                        }
                    }
                }
                2 | 3 => {
                    if queues[to].is_empty() {
                        continue;
                    }
                    let i = rng.next_u32() as usize % queues[to].len();
                    let (id, bytes) = if chance(&mut rng, 20) {
                        queues[to][i].clone()
                    } else {
                        queues[to].swap_remove(i)
                    };
                    receiver
                        .handle_input(
                            NOW,
                            Input::Received {
                                sender: ids[from],
                                bytes,
                            },
                        )
                        .unwrap();
                    let mut opened = Vec::new();
                    let mut errors = Vec::new();
                    while let Some(o) = receiver.poll_output() {
                        match o {
                            Output::Event(Event::Decrypted { plaintext, .. }) => opened.push(plaintext),
                            Output::Event(Event::PeerFault { fault: error, .. }) => errors.push(error),
                            _ => {}
                        }
                    }
                    if seen[to].insert(id) {
                        assert_eq!(opened, vec![id.to_le_bytes().to_vec()], "seed {seed}: {errors:?}");
                    } else {
                        assert!(opened.is_empty());
                        assert_eq!(errors, vec![SecureError::DuplicateOrExpired]);
                    }
                }
                _ => {
                    // Restart one side: a new machine (same identity and installation, new seed) imports
                    // the exported stores.
                    let (m, tag, inst) = if rng.next_u32() % 2 == 0 {
                        (&mut alice, 1, "alice-1")
                    } else {
                        (&mut bob, 2, "bob-1")
                    };
                    let saved = m.export();
                    let mut fresh = SecureTransport::new(
                        Config::default(),
                        fixed_key(tag),
                        inst.into(),
                        &Seed::from_u64(rng.next_u64()),
                        NOW,
                    )
                    .unwrap();
                    fresh.import(&saved).unwrap();
                    assert_eq!(*fresh.export(), *saved);
                    *m = fresh;
                }
            }
        }
        assert!(seen[0].len() + seen[1].len() > 10);
    }
}
