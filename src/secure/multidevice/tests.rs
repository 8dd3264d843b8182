use super::*;
use crate::secure::dh::{Curve, Secp256k1};
use rand_core::SeedableRng;

fn bundle(ik: &crate::crypto::SecretKey, entries: &[(&str, &CompressedKey, u32)], ts: i64) -> Bundle {
    let m = entries
        .iter()
        .map(|(id, k, v)| {
            (
                id.to_string(),
                SignedPreKey {
                    signed_pre_key: **k,
                    version: *v,
                    protocol_version: 1,
                },
            )
        })
        .collect();
    Bundle::sign(ik, m, ts).unwrap()
}

#[test]
fn learn_enable_rotate_and_cap() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
    let me = Secp256k1::generate(&mut rng);
    let me_pub = Secp256k1::public_key(&me);
    let peer = Secp256k1::generate(&mut rng);
    let peer_pub = Secp256k1::public_key(&peer);
    let k1 = Secp256k1::public_key(&Secp256k1::generate(&mut rng));
    let k2 = Secp256k1::public_key(&Secp256k1::generate(&mut rng));
    let mut reg = Installations::new(2, 10);

    let new = reg.process_bundle(&bundle(&peer, &[("p1", &k1, 1)], 10), &me_pub, "mine");
    assert_eq!(new, vec!["p1".to_string()]);
    assert!(reg.get(&peer_pub, "p1").unwrap().enabled);
    // A higher prekey version replaces; a lower one does not.
    reg.process_bundle(&bundle(&peer, &[("p1", &k2, 2)], 20), &me_pub, "mine");
    assert_eq!(reg.get(&peer_pub, "p1").unwrap().signed_pre_key, Some((k2, 2)));
    reg.process_bundle(&bundle(&peer, &[("p1", &k1, 1)], 30), &me_pub, "mine");
    assert_eq!(reg.get(&peer_pub, "p1").unwrap().signed_pre_key, Some((k2, 2)));
    assert_eq!(reg.get(&peer_pub, "p1").unwrap().timestamp, 30);

    // Own devices start disabled; our own installation is never recorded.
    let new = reg.process_bundle(
        &bundle(&me, &[("mine", &k1, 1), ("other", &k2, 1)], 40),
        &me_pub,
        "mine",
    );
    assert_eq!(new, vec!["other".to_string()]);
    assert!(!reg.get(&me_pub, "other").unwrap().enabled);
    assert!(reg.active(&me_pub, 2).is_empty());
    assert!(reg.set_enabled(&me_pub, "other", true));
    assert_eq!(reg.active(&me_pub, 2).len(), 1);
    assert!(!reg.set_enabled(&me_pub, "nope", true));

    // The per-identity cap evicts the oldest installation for a newer one.
    reg.process_bundle(&bundle(&peer, &[("p2", &k1, 1)], 50), &me_pub, "mine");
    reg.process_bundle(&bundle(&peer, &[("p3", &k1, 1)], 60), &me_pub, "mine");
    let ids: Vec<_> = reg.active(&peer_pub, 3).iter().map(|i| i.id.clone()).collect();
    assert_eq!(ids, vec!["p3".to_string(), "p2".to_string()]);
}

/// Regression: the identity evicted at the cap is the least recently used locally, whatever timestamp
/// its bundle was signed with, and never our own; `restore` enforces the identity cap.
#[test]
fn identity_eviction_ignores_signed_timestamps_and_spares_our_own() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(6);
    let key = |rng: &mut rand_chacha::ChaCha20Rng| Secp256k1::generate(rng);
    let me = key(&mut rng);
    let me_pub = Secp256k1::public_key(&me);
    let k = Secp256k1::public_key(&key(&mut rng));
    let (a, b) = (key(&mut rng), key(&mut rng));
    let (a_pub, b_pub) = (Secp256k1::public_key(&a), Secp256k1::public_key(&b));
    let mut reg = Installations::new(4, 3);
    // Our paired device, learned first and with an old timestamp.
    reg.process_bundle(
        &bundle(&me, &[("mine", &k, 1), ("paired", &k, 1)], 1),
        &me_pub,
        "mine",
    );
    reg.process_bundle(&bundle(&a, &[("a1", &k, 1)], 5), &me_pub, "mine");
    reg.process_bundle(&bundle(&b, &[("b1", &k, 1)], 5), &me_pub, "mine");
    reg.touch(&a_pub);
    // Strangers with far-future timestamps: each evicts the least recently used other identity.
    let x = key(&mut rng);
    let x_pub = Secp256k1::public_key(&x);
    reg.process_bundle(&bundle(&x, &[("x1", &k, 1)], i64::MAX), &me_pub, "mine");
    assert!(reg.get(&b_pub, "b1").is_none(), "b was least recently used");
    assert!(reg.get(&a_pub, "a1").is_some(), "a was used by us more recently");
    assert!(reg.get(&me_pub, "paired").is_some());
    let y = key(&mut rng);
    reg.process_bundle(&bundle(&y, &[("y1", &k, 1)], 1), &me_pub, "mine");
    assert!(reg.get(&a_pub, "a1").is_none());
    assert!(reg.get(&x_pub, "x1").is_some(), "a signed timestamp buys nothing");
    for _ in 0..10 {
        let z = key(&mut rng);
        reg.process_bundle(&bundle(&z, &[("z1", &k, 1)], i64::MAX), &me_pub, "mine");
        assert!(
            reg.get(&me_pub, "paired").is_some(),
            "our own identity is never evicted"
        );
        assert_eq!(reg.identities(), 3);
    }
    // Export order is least recently used first; restore rebuilds it and enforces the caps.
    let mut back = Installations::new(4, 3);
    for (id, inst) in reg.iter() {
        back.restore(*id, inst.clone()).unwrap();
    }
    let order = |r: &Installations| r.iter().map(|(k, i)| (*k, i.id.clone())).collect::<Vec<_>>();
    assert_eq!(order(&back), order(&reg));
    let mut small = Installations::new(4, 2);
    let mut res = Ok(());
    for (id, inst) in reg.iter() {
        res = res.and(small.restore(*id, inst.clone()));
    }
    assert_eq!(res, Err(SecureError::InvalidState));
    // With a cap of one identity and our own stored, strangers are not stored at all.
    let mut one = Installations::new(4, 1);
    one.process_bundle(&bundle(&me, &[("paired", &k, 1)], 1), &me_pub, "mine");
    assert!(one
        .process_bundle(&bundle(&x, &[("x1", &k, 1)], 9), &me_pub, "mine")
        .is_empty());
    assert!(one.get(&me_pub, "paired").is_some());
}

/// Regression: one sender cannot grow the agreed set without bound.
#[test]
fn agreed_installations_are_capped_per_identity_and_in_total() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    let ids: Vec<CompressedKey> = (0..4)
        .map(|_| Secp256k1::public_key(&Secp256k1::generate(&mut rng)))
        .collect();
    let mut agreed = AgreedInstallations::new(3, 5);
    for i in 0..1000 {
        agreed.record(&ids[0], &format!("fresh-{i}"));
    }
    assert_eq!(agreed.len(), 3);
    assert!(agreed.contains(&ids[0], "fresh-999") && !agreed.contains(&ids[0], "fresh-996"));
    agreed.record(&ids[1], "b");
    agreed.record(&ids[2], "c");
    // Refreshing a record makes it most recent; the total cap drops the least recently recorded.
    agreed.record(&ids[0], "fresh-997");
    agreed.record(&ids[3], "d");
    assert_eq!(agreed.len(), 5);
    assert!(!agreed.contains(&ids[0], "fresh-998"));
    assert!(agreed.contains(&ids[0], "fresh-997"));
    let mut back = AgreedInstallations::new(3, 5);
    for (k, i) in agreed.iter() {
        back.restore(*k, i.clone()).unwrap();
    }
    assert_eq!(back.iter().collect::<Vec<_>>(), agreed.iter().collect::<Vec<_>>());
    assert_eq!(back.restore(ids[3], "d".into()), Err(SecureError::InvalidState));
    let mut small = AgreedInstallations::new(1, 5);
    small.restore(ids[0], "x".into()).unwrap();
    assert_eq!(small.restore(ids[0], "y".into()), Err(SecureError::InvalidState));
}
