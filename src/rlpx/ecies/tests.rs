//! Unit tests.

use super::*;
use rand_core::SeedableRng;

#[test]
fn round_trip_and_tamper() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
    let sk = SecretKey::random(&mut rng);
    let ct = encrypt(&mut rng, &sk.public_key(), b"attack at dawn", b"mac");
    assert_eq!(ct.len(), 14 + OVERHEAD);
    assert_eq!(decrypt(&sk, &ct, b"mac").unwrap(), b"attack at dawn");
    assert_eq!(decrypt(&sk, &ct, b"other"), Err(EciesError::BadTag));
    let mut bad = ct.clone();
    bad[90] ^= 1;
    assert_eq!(decrypt(&sk, &bad, b"mac"), Err(EciesError::BadTag));
    assert_eq!(decrypt(&sk, &ct[..100], b"mac"), Err(EciesError::TooShort));
    let mut badkey = ct;
    badkey[1] ^= 0xff;
    assert!(decrypt(&sk, &badkey, b"mac").is_err());
}
