use super::super::dh::{Secp256k1, X25519};
use super::*;
use rand_core::SeedableRng;

fn pair<C: Curve>(rng: &mut rand_chacha::ChaCha20Rng) -> (Session<C>, Session<C>) {
    let sk = Key32::new([5; 32]);
    let spk = C::generate(rng);
    let alice = Session::<C>::initiator(&sk, C::public_key(&spk), rng).unwrap();
    let bob = Session::<C>::responder(&sk, spk);
    (alice, bob)
}

fn conversation<C: Curve>() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
    let cfg = RatchetConfig::default();
    let now = Timestamp::from_secs(100);
    let (mut a, mut b) = pair::<C>(&mut rng);
    // Bob may send first (responder chain CKs = SK).
    let (h, c) = b.encrypt(b"early").unwrap();
    assert_eq!(&a.decrypt(&h, &c, now, &cfg, &mut rng).unwrap()[..], b"early");
    let m: Vec<_> = (0..3)
        .map(|i| a.encrypt(format!("a{i}").as_bytes()).unwrap())
        .collect();
    assert_eq!(
        &b.decrypt(&m[2].0, &m[2].1, now, &cfg, &mut rng).unwrap()[..],
        b"a2"
    );
    assert_eq!(b.skipped_keys(), 2);
    assert_eq!(
        &b.decrypt(&m[0].0, &m[0].1, now, &cfg, &mut rng).unwrap()[..],
        b"a0"
    );
    // Replays are rejected and change nothing.
    assert_eq!(
        b.decrypt(&m[0].0, &m[0].1, now, &cfg, &mut rng),
        Err(SecureError::DuplicateOrExpired)
    );
    assert_eq!(
        b.decrypt(&m[2].0, &m[2].1, now, &cfg, &mut rng),
        Err(SecureError::DuplicateOrExpired)
    );
    let (h, c) = b.encrypt(b"reply").unwrap();
    assert_eq!(&a.decrypt(&h, &c, now, &cfg, &mut rng).unwrap()[..], b"reply");
    let (h2, c2) = a.encrypt(b"after").unwrap();
    assert_eq!(h2.pn, 3);
    assert_eq!(&b.decrypt(&h2, &c2, now, &cfg, &mut rng).unwrap()[..], b"after");
    // The last skipped key from the first chain still opens.
    assert_eq!(
        &b.decrypt(&m[1].0, &m[1].1, now, &cfg, &mut rng).unwrap()[..],
        b"a1"
    );
    assert_eq!(b.skipped_keys(), 0);
    // Export / import mid-conversation.
    let mut b2 = Session::<C>::import(&b.export(), &cfg).unwrap();
    let (h, c) = a.encrypt(b"persisted").unwrap();
    assert_eq!(
        &b2.decrypt(&h, &c, now, &cfg, &mut rng).unwrap()[..],
        b"persisted"
    );
    let dbg = format!("{b2:?}");
    for secret in [
        &b2.rk.as_bytes()[..],
        &b2.cks.as_bytes()[..],
        &b2.ckr.as_bytes()[..],
        &C::secret_to_bytes(&b2.dhs)[..],
    ] {
        assert!(!dbg.contains(&hex::encode(secret)), "{dbg}");
        assert!(
            !dbg.contains(&format!("{secret:?}").replace(['[', ']'], "")),
            "{dbg}"
        );
    }
}

#[test]
fn conversation_on_both_curves() {
    conversation::<Secp256k1>();
    conversation::<X25519>();
}

fn bad_input_leaves_state<C: Curve>() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(12);
    let cfg = RatchetConfig::default();
    let now = Timestamp::from_secs(100);
    let (mut a, mut b) = pair::<C>(&mut rng);
    let (h, c) = a.encrypt(b"one").unwrap();
    b.decrypt(&h, &c, now, &cfg, &mut rng).unwrap();
    let before = b.export();
    let (h, mut c) = a.encrypt(b"two").unwrap();
    let last = c.len() - 1;
    c[last] ^= 1;
    assert_eq!(b.decrypt(&h, &c, now, &cfg, &mut rng), Err(SecureError::BadMac));
    assert_eq!(
        b.decrypt(&h, &c[..40], now, &cfg, &mut rng),
        Err(SecureError::CiphertextTooShort)
    );
    let far = Header {
        dh: h.dh.clone(),
        n: 10_000,
        pn: 0,
    };
    assert_eq!(
        b.decrypt(&far, &c, now, &cfg, &mut rng),
        Err(SecureError::TooFarAhead)
    );
    let stranger = Header {
        dh: C::public_key(&C::generate(&mut rng)),
        n: 0,
        pn: 10_000,
    };
    assert_eq!(
        b.decrypt(&stranger, &c, now, &cfg, &mut rng),
        Err(SecureError::TooFarAhead)
    );
    let stranger = Header {
        dh: C::public_key(&C::generate(&mut rng)),
        n: 0,
        pn: 0,
    };
    assert_eq!(
        b.decrypt(&stranger, &c, now, &cfg, &mut rng),
        Err(SecureError::InvalidHeader)
    );
    let stranger = Header {
        dh: C::public_key(&C::generate(&mut rng)),
        n: 0,
        pn: 1,
    };
    assert_eq!(
        b.decrypt(&stranger, &c, now, &cfg, &mut rng),
        Err(SecureError::BadMac)
    );
    assert_eq!(*b.export(), *before);
    c[last] ^= 1;
    assert_eq!(&b.decrypt(&h, &c, now, &cfg, &mut rng).unwrap()[..], b"two");
}

#[test]
fn bad_input_leaves_state_on_both_curves() {
    bad_input_leaves_state::<Secp256k1>();
    bad_input_leaves_state::<X25519>();
}

#[test]
fn skipped_keys_are_capped_and_expire() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(13);
    let cfg = RatchetConfig {
        max_skip: 50,
        max_skipped_keys: 30,
        skipped_key_max_age: Duration::from_secs(60),
    };
    let t0 = Timestamp::from_secs(1000);
    let (mut a, mut b) = pair::<X25519>(&mut rng);
    let msgs: Vec<_> = (0..41).map(|_| a.encrypt(b"x").unwrap()).collect();
    b.decrypt(&msgs[40].0, &msgs[40].1, t0, &cfg, &mut rng).unwrap();
    assert_eq!(b.skipped_keys(), 30);
    // The oldest ten were evicted.
    assert_eq!(
        b.decrypt(&msgs[5].0, &msgs[5].1, t0, &cfg, &mut rng),
        Err(SecureError::DuplicateOrExpired)
    );
    assert_eq!(
        &b.decrypt(&msgs[10].0, &msgs[10].1, t0, &cfg, &mut rng).unwrap()[..],
        b"x"
    );
    assert_eq!(b.next_expiry(&cfg), Some(t0 + Duration::from_secs(60)));
    let later = t0 + Duration::from_secs(61);
    let before = b.export();
    assert_eq!(
        b.decrypt(&msgs[11].0, &msgs[11].1, later, &cfg, &mut rng),
        Err(SecureError::DuplicateOrExpired)
    );
    assert_eq!(*b.export(), *before, "a rejected message drops nothing");
    b.expire(later, &cfg);
    assert_eq!(b.skipped_keys(), 0);
    assert!(b.skipped.is_consistent());
}

fn skipped_entry(dh: &[u8], n: u32, seq: u64) -> pb::SkippedMessageKey {
    pb::SkippedMessageKey {
        ratchet_key: Bytes::from(dh.to_vec()),
        n,
        message_key: Bytes::from(vec![7u8; 32]),
        seq,
        stored_at_ms: 1000,
    }
}

/// Regression: duplicate sequence numbers and a `keys_count` below the stored sequence numbers used to
/// desynchronise the two indexes of the skipped-key store (and hang the import loop).
#[test]
fn import_rejects_inconsistent_skipped_keys() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(14);
    let tight = RatchetConfig {
        max_skipped_keys: 1,
        ..RatchetConfig::default()
    };
    let cfg = RatchetConfig::default();
    let (mut a, mut b) = pair::<X25519>(&mut rng);
    let msgs: Vec<_> = (0..4).map(|_| a.encrypt(b"x").unwrap()).collect();
    b.decrypt(&msgs[3].0, &msgs[3].1, Timestamp::from_secs(1), &cfg, &mut rng)
        .unwrap();
    let good = b.to_proto();
    assert_eq!(good.skipped.len(), 3);
    assert!(Session::<X25519>::from_proto(&good, &cfg).is_ok());
    let dh = good.skipped[0].ratchet_key.to_vec();

    // Five keys all with seq 0 and a cap of 1: rejected at once (used to loop forever).
    let mut st = good.clone();
    st.skipped = (0..5).map(|n| skipped_entry(&dh, 100 + n, 0)).collect();
    assert_eq!(
        Session::<X25519>::from_proto(&st, &tight).err(),
        Some(SecureError::InvalidState)
    );
    assert_eq!(
        Session::<X25519>::from_proto(&st, &cfg).err(),
        Some(SecureError::InvalidState)
    );
    // Over the cap.
    assert_eq!(
        Session::<X25519>::from_proto(&good, &tight).err(),
        Some(SecureError::InvalidState)
    );
    // keys_count below the stored sequence numbers.
    let mut st = good.clone();
    st.keys_count = 1;
    assert_eq!(
        Session::<X25519>::from_proto(&st, &cfg).err(),
        Some(SecureError::InvalidState)
    );
    // A repeated id under distinct sequence numbers, and decreasing sequence numbers.
    let mut st = good.clone();
    st.skipped = vec![skipped_entry(&dh, 1, 0), skipped_entry(&dh, 1, 1)];
    assert_eq!(
        Session::<X25519>::from_proto(&st, &cfg).err(),
        Some(SecureError::InvalidState)
    );
    st.skipped = vec![skipped_entry(&dh, 1, 1), skipped_entry(&dh, 2, 0)];
    assert_eq!(
        Session::<X25519>::from_proto(&st, &cfg).err(),
        Some(SecureError::InvalidState)
    );
    // Too many previous ratchet keys.
    let mut st = good.clone();
    st.previous_dhr = vec![Bytes::from(dh.clone()); PREVIOUS_RATCHET_KEYS + 1];
    assert_eq!(
        Session::<X25519>::from_proto(&st, &cfg).err(),
        Some(SecureError::InvalidState)
    );

    // A counter at the top of its range renumbers instead of overflowing; the store stays consistent
    // through further decrypts, evictions and export/import.
    let mut st = good.clone();
    st.keys_count = u64::MAX;
    for (i, k) in st.skipped.iter_mut().enumerate() {
        k.seq = u64::MAX - 3 + i as u64;
    }
    let mut b2 = Session::<X25519>::from_proto(&st, &cfg).unwrap();
    let more: Vec<_> = (0..3).map(|_| a.encrypt(b"y").unwrap()).collect();
    b2.decrypt(&more[2].0, &more[2].1, Timestamp::from_secs(2), &cfg, &mut rng)
        .unwrap();
    assert!(b2.skipped.is_consistent());
    assert_eq!(b2.skipped_keys(), 5);
    assert_eq!(b2.to_proto().keys_count, 5);
    let b3 = Session::<X25519>::import(&b2.export(), &cfg).unwrap();
    assert!(b3.skipped.is_consistent());
    assert_eq!(*b3.export(), *b2.export());
}
