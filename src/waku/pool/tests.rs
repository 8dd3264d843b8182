//! Unit tests.

use super::*;
use crate::waku::Topic;
use bytes::Bytes;

fn env(expiry: u32, n: u8, len: usize) -> ([u8; 32], Envelope) {
    let e = Envelope {
        expiry,
        ttl: 10,
        topic: Topic([n; 4]),
        data: Bytes::from(vec![n; len]),
        nonce: 0,
    };
    (e.hash(), e)
}

#[test]
fn dedup_expiry_and_order() {
    let mut p = Pool::new(PoolConfig::default(), SeededState::default());
    let (h1, e1) = env(100, 1, 10);
    let (h2, e2) = env(50, 2, 10);
    assert_eq!(p.insert(h1, e1.clone(), 0.0, 10), Insert::New);
    assert_eq!(
        p.get(&h1),
        Some(e1.clone()),
        "the envelope decoded from the pooled RLP equals the original"
    );
    assert_eq!(
        p.iter_from(0).next().map(|(_, _, e)| e.wire.to_vec()),
        Some(e1.encode())
    );
    assert_eq!(p.insert(h1, e1, 0.0, 10), Insert::Duplicate);
    assert_eq!(p.insert(h2, e2, 0.0, 10), Insert::New);
    let (h3, e3) = env(5, 3, 10);
    assert_eq!(p.insert(h3, e3, 0.0, 10), Insert::Expired);
    assert_eq!(p.next_expiry(), Some(50));
    assert_eq!(
        p.iter_from(0).map(|(_, h, _)| *h).collect::<Vec<_>>(),
        vec![h1, h2]
    );
    assert_eq!(p.iter_from(1).count(), 1);
    assert!(
        p.expire(50).is_empty(),
        "expires strictly after its expiry second"
    );
    assert_eq!(p.expire(51), vec![h2]);
    assert_eq!(p.len(), 1);
    assert_eq!(
        p.bytes(),
        p.get(&h1).map(|e| e.encode().len()).unwrap() + ENTRY_OVERHEAD
    );
}

#[test]
fn cap_evicts_soonest_expiry_first() {
    // Room for three 100-byte envelopes (plus a byte for a longer expiry encoding).
    let charge = env(0, 0, 100).1.encode().len() + ENTRY_OVERHEAD;
    let mut p = Pool::new(
        PoolConfig {
            max_bytes: 3 * charge + 8,
            max_envelopes: 10,
        },
        SeededState::default(),
    );
    let hs: Vec<_> = (0..3u8)
        .map(|i| {
            let (h, e) = env(100 + u32::from(i), i, 100);
            assert_eq!(p.insert(h, e, 0.0, 0), Insert::New);
            h
        })
        .collect();
    let (h, e) = env(200, 9, 100);
    assert_eq!(p.insert(h, e, 0.0, 0), Insert::New);
    assert!(!p.contains(&hs[0]) && p.contains(&hs[1]) && p.contains(&h));
    let (h, e) = env(50, 8, 100);
    assert_eq!(p.insert(h, e, 0.0, 0), Insert::Full, "would be the first to go");
    assert!(p.bytes() <= p.config().max_bytes);
    let mut q = Pool::new(
        PoolConfig {
            max_bytes: 1 << 20,
            max_envelopes: 2,
        },
        SeededState::default(),
    );
    for i in 0..5u8 {
        let (h, e) = env(100 + u32::from(i), i, 1);
        q.insert(h, e, 0.0, 0);
    }
    assert_eq!(q.len(), 2);
}

/// The `i`th long-lived (TTL 3000 s) envelope on topic `topic`.
fn long_lived(i: u32, topic: [u8; 4]) -> Envelope {
    Envelope {
        expiry: 100_000 + i,
        ttl: 3000,
        topic: Topic(topic),
        data: Bytes::from(i.to_be_bytes().to_vec()),
        nonce: 0,
    }
}

#[test]
fn a_small_pool_still_gives_each_source_its_share() {
    // 64 envelopes at a 25% share: a source may hold 16 (a share computed as `64 / 100 * 25` was 0,
    // clamped to 1, so a second envelope from one source evicted its first).
    let mut p = Pool::new(
        PoolConfig {
            max_bytes: 1 << 20,
            max_envelopes: 64,
        },
        SeededState::default(),
    );
    p.set_source_share(25);
    for i in 0..17u32 {
        let e = long_lived(i, [1; 4]);
        p.insert_from(e.hash(), e, 0.0, 0, 7);
    }
    // The seventeenth made room among its own source's envelopes.
    assert_eq!(p.source_usage(7).0, 16);
    assert_eq!(p.len(), 16);
    assert_eq!(percent_of(64, 25), 16);
    assert_eq!(percent_of(usize::MAX, 100), usize::MAX);
}

#[test]
fn a_flooding_source_gives_way_and_keeps_to_its_share() {
    let mut p = Pool::new(
        PoolConfig {
            max_bytes: 1 << 20,
            max_envelopes: 100,
        },
        SeededState::default(),
    );
    p.set_source_share(40);
    // Source 1 floods long-lived envelopes: it is held to 40 of 100.
    for i in 0..200u32 {
        let e = long_lived(i, [1; 4]);
        p.insert_from(e.hash(), e, 0.0, 0, 1);
    }
    assert_eq!(p.source_usage(1).0, 40);
    // Sources 2 and 3 too: the pool is full of long-lived envelopes.
    for src in 2..4u64 {
        for i in 0..40u32 {
            let e = long_lived(i, [src as u8; 4]);
            p.insert_from(e.hash(), e, 0.0, 0, src);
        }
    }
    assert_eq!(p.len(), 100);
    // Honest short-lived envelopes from a fourth source are all admitted.
    for i in 0..20u32 {
        let e = Envelope {
            expiry: 20 + i,
            ttl: 10,
            topic: Topic([9; 4]),
            data: Bytes::from(i.to_be_bytes().to_vec()),
            nonce: 0,
        };
        assert_eq!(p.insert_from(e.hash(), e, 0.0, 0, 9), Insert::New, "honest {i}");
    }
    assert_eq!(p.source_usage(9).0, 20);
    assert_eq!(p.len(), 100);
    assert!(p.source_usage(1).0 <= 40 && p.source_usage(2).0 <= 40);
    // Expiry still works and the per-source books balance.
    p.expire(100);
    assert_eq!(p.source_usage(9), (0, 0));
}

#[test]
fn holes_compaction_and_expiry_agree_with_a_model() {
    // Envelopes from three sources with scattered expiries; removals in the middle leave holes, which
    // compaction later closes. After every step the pool agrees with a plain list of what it holds.
    let mut p = Pool::new(
        PoolConfig {
            max_bytes: 1 << 30,
            max_envelopes: 10_000,
        },
        SeededState::default(),
    );
    let mut model: Vec<(u64, [u8; 32], u32)> = Vec::new();
    for i in 0..400u32 {
        let expiry = 1000 + (i * 7919) % 500;
        let e = Envelope {
            expiry,
            ttl: 10,
            topic: Topic([(i % 5) as u8; 4]),
            data: Bytes::from(i.to_be_bytes().to_vec()),
            nonce: u64::from(i),
        };
        let h = e.hash();
        let seq = p.next_seq();
        assert_eq!(p.insert_from(h, e.clone(), 0.0, 0, u64::from(i % 3)), Insert::New);
        assert_eq!(p.get_seq(seq).map(|x| x.id), Some(h));
        assert_eq!(p.get(&h), Some(e));
        model.push((seq, h, expiry));
        // Remove every third envelope of an earlier stretch, leaving holes.
        if i % 3 == 2 && i > 30 {
            let k = (i as usize * 31) % model.len();
            let (_, gone, _) = model.remove(k);
            assert!(p.remove(&gone).is_some());
            assert!(!p.contains(&gone));
        }
    }
    let check = |p: &Pool, model: &[(u64, [u8; 32], u32)]| {
        assert_eq!(p.len(), model.len());
        let held: Vec<(u64, [u8; 32])> = p.iter_from(0).map(|(s, h, _)| (s, *h)).collect();
        let want: Vec<(u64, [u8; 32])> = model.iter().map(|(s, h, _)| (*s, *h)).collect();
        assert_eq!(held, want);
        for (s, h, _) in model {
            assert_eq!(p.get_seq(*s).map(|e| e.id), Some(*h));
        }
        assert_eq!(p.next_expiry(), model.iter().map(|m| m.2).min());
        let charged: usize = p
            .iter_from(0)
            .map(|(_, _, e)| e.wire.len() + ENTRY_OVERHEAD)
            .sum();
        assert_eq!(p.bytes(), charged);
    };
    check(&p, &model);
    // Expiry returns ids by expiry, then arrival.
    let mut due: Vec<(u32, u64, [u8; 32])> = model
        .iter()
        .filter(|m| m.2 < 1250)
        .map(|m| (m.2, m.0, m.1))
        .collect();
    due.sort();
    assert_eq!(p.expire(1250), due.iter().map(|d| d.2).collect::<Vec<_>>());
    model.retain(|m| m.2 >= 1250);
    check(&p, &model);
    assert_eq!(p.expire(2000).len(), model.len());
    assert!(p.is_empty() && p.bytes() == 0 && p.next_expiry().is_none());
}
