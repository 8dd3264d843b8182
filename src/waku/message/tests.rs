//! Unit tests.

use super::*;
use crate::rng::Seed;

#[test]
fn plaintext_round_trips_and_pads_to_256() {
    let mut rng = Seed::from_u64(1).rng();
    let sk = SecretKey::random(&mut rng);
    for (len, signed) in [
        (0usize, false),
        (5, true),
        (300, true),
        (70_000, false),
        (190, true),
    ] {
        let payload = vec![7u8; len];
        let signer = signed.then_some(&sk);
        let pt = build_plaintext(&mut rng, &payload, None, signer).unwrap();
        assert_eq!(pt.len() % 256, 0, "{len}");
        let parsed = parse_plaintext(&pt).unwrap();
        assert_eq!(parsed.payload.len(), len);
        assert_eq!(parsed.signer, signer.map(|s| s.public_key()));
    }
    let pt = build_plaintext(&mut rng, b"", Some(b""), None).unwrap();
    assert_eq!(pt, vec![1, 0]);
    assert!(parse_plaintext(&[0x01, 5, 1]).is_err());
    assert!(parse_plaintext(&[0x04, 1]).is_err());
    assert!(parse_plaintext(&[]).is_err());
    assert_eq!(parse_plaintext(&[0x00, 9, 9]).unwrap().padding.len(), 2);
}

#[test]
fn symmetric_and_asymmetric() {
    let mut rng = Seed::from_u64(2).rng();
    let key = [3u8; 32];
    let data = encrypt_symmetric(&mut rng, &key, b"hi").unwrap();
    assert_eq!(&decrypt_symmetric(&key, &data).unwrap()[..], b"hi");
    assert!(decrypt_symmetric(&[4u8; 32], &data).is_err());
    assert!(encrypt_symmetric(&mut rng, &[0u8; 32], b"x").is_err());
    let sk = SecretKey::random(&mut rng);
    let data = encrypt_asymmetric(&mut rng, &sk.public_key(), b"yo");
    assert_eq!(&decrypt_asymmetric(&sk, &data).unwrap()[..], b"yo");
    assert!(decrypt_asymmetric(&SecretKey::random(&mut rng), &data).is_err());
}
