use super::*;
use core::time::Duration;
use rand_core::SeedableRng;

fn sample(rng: &mut rand_chacha::ChaCha20Rng) -> (SecretKey, Bundle) {
    let ik = Secp256k1::generate(rng);
    let spk = Secp256k1::public_key(&Secp256k1::generate(rng));
    let mut m = BTreeMap::new();
    m.insert(
        "b-inst".to_string(),
        SignedPreKey {
            signed_pre_key: spk,
            version: 12,
            protocol_version: 1,
        },
    );
    m.insert(
        "a-inst".to_string(),
        SignedPreKey {
            signed_pre_key: spk,
            version: 1,
            protocol_version: 1,
        },
    );
    let b = Bundle::sign(&ik, m, 1_599_999_999_123_456_789).unwrap();
    (ik, b)
}

#[test]
fn sign_verify_encode_decode() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let (_, b) = sample(&mut rng);
    b.verify().unwrap();
    let m = signature_material(&b.signed_pre_keys, b.timestamp);
    assert!(m.starts_with(b"a-inst"));
    assert!(m.ends_with(b"121599999999123456789"));
    let back = Bundle::decode(&b.encode(), 3).unwrap();
    assert_eq!(back, b);
    assert_eq!(Bundle::decode(&b.encode(), 1), Err(SecureError::MalformedBundle));
    let mut tampered = b.clone();
    tampered.timestamp += 1;
    assert_eq!(tampered.verify(), Err(SecureError::BadBundleSignature));
    let mut other = b.clone();
    other.identity = Secp256k1::public_key(&Secp256k1::generate(&mut rng));
    assert_eq!(
        Bundle::decode(&other.encode(), 3),
        Err(SecureError::BadBundleSignature)
    );
    assert_eq!(Bundle::decode(&[0xff, 0xff], 3), Err(SecureError::Decode));
}

#[test]
fn verified_bundles_recover_each_signature_once_and_still_check_the_identity() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
    let (_, b) = sample(&mut rng);
    let mut cache = VerifiedBundles::default();
    let pb = pb::Bundle::decode(b.encode().as_slice()).unwrap();
    assert_eq!(Bundle::from_proto_cached(&pb, 3, &mut cache).unwrap(), b);
    assert_eq!(cache.len(), 1);
    // The same bundle again: answered from the cache.
    assert_eq!(Bundle::from_proto_cached(&pb, 3, &mut cache).unwrap(), b);
    assert_eq!(cache.len(), 1);
    // The same signature and material claimed by another identity: a hit, and still refused.
    let mut other = b.clone();
    other.identity = Secp256k1::public_key(&Secp256k1::generate(&mut rng));
    assert_eq!(
        other.verify_cached(&mut cache),
        Err(SecureError::BadBundleSignature)
    );
    // Different material under the same signature: a miss, recovered, refused.
    let mut tampered = b.clone();
    tampered.timestamp += 1;
    assert_eq!(
        tampered.verify_cached(&mut cache),
        Err(SecureError::BadBundleSignature)
    );
    // Bounded.
    for _ in 0..VerifiedBundles::CAPACITY + 5 {
        let (_, b) = sample(&mut rng);
        b.verify_cached(&mut cache).unwrap();
    }
    assert_eq!(cache.len(), VerifiedBundles::CAPACITY);
}

#[test]
fn zero_timestamp_is_not_signed() {
    let mut m = BTreeMap::new();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
    let k = Secp256k1::public_key(&Secp256k1::generate(&mut rng));
    m.insert(
        "x".to_string(),
        SignedPreKey {
            signed_pre_key: k,
            version: 3,
            protocol_version: 1,
        },
    );
    let mut expected = b"x".to_vec();
    expected.extend_from_slice(k.as_ref());
    expected.extend_from_slice(b"3");
    assert_eq!(signature_material(&m, 0), expected);
}

#[test]
fn rotation_every_interval_keeps_old_keys_findable() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
    let mut own = OwnPrekeys::default();
    let day = Duration::from_secs(86_400);
    let t0 = Timestamp::from_secs(1_000);
    assert!(own.rotate_if_due(t0, day, 3, &mut rng));
    let first = *own.current().unwrap().public();
    assert_eq!(own.current().unwrap().version, 1);
    assert!(!own.rotate_if_due(t0 + Duration::from_secs(3600), day, 3, &mut rng));
    assert_eq!(own.next_rotation(day), Some(t0 + day));
    assert!(own.rotate_if_due(t0 + day, day, 3, &mut rng));
    assert_eq!(own.current().unwrap().version, 2);
    assert!(own.find(&first).unwrap().expired);
    for i in 2..6u64 {
        own.rotate_if_due(t0 + day * (i as u32), day, 3, &mut rng);
    }
    assert_eq!(own.all().len(), 3);
    assert!(own.find(&first).is_none());
    assert_eq!(own.current().unwrap().version, 6);
    let dbg = format!("{own:?}");
    for k in own.all() {
        let secret = Secp256k1::secret_to_bytes(k.secret());
        assert!(!dbg.contains(&hex::encode(&secret[..])), "{dbg}");
        assert!(!dbg.contains(&format!("{:?}", &secret[..]).replace(['[', ']'], "")));
    }
}
