use super::*;
use rand_core::SeedableRng;

fn agree<C: Curve>() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
    let a = C::generate(&mut rng);
    let b = C::generate(&mut rng);
    let ab = C::diffie_hellman(&a, &C::public_key(&b)).unwrap();
    let ba = C::diffie_hellman(&b, &C::public_key(&a)).unwrap();
    assert_eq!(*ab, *ba);
    let pk = C::public_key(&a);
    assert_eq!(C::public_from_bytes(pk.as_ref()), Some(pk));
    let round = C::secret_from_bytes(&C::secret_to_bytes(&a)[..]).unwrap();
    assert_eq!(C::public_key(&round), C::public_key(&a));
    assert!(!format!("{a:?}").contains(&hex::encode(&C::secret_to_bytes(&a)[..])));
}

#[test]
fn both_curves_agree() {
    agree::<Secp256k1>();
    agree::<X25519>();
}

#[test]
fn degenerate_keys_are_rejected() {
    assert!(Secp256k1::public_from_bytes(&[2u8; 32]).is_none());
    assert!(Secp256k1::public_from_bytes(&[0u8; 33]).is_none());
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
    let sk = X25519::generate(&mut rng);
    let zero = X25519::public_from_bytes(&[0u8; 32]).unwrap();
    assert_eq!(
        X25519::diffie_hellman(&sk, &zero),
        Err(SecureError::InvalidPublicKey)
    );
}

#[test]
fn secp256k1_generation_takes_the_drawn_bytes_as_the_scalar() {
    struct Fixed([u8; 32]);
    impl rand_core::RngCore for Fixed {
        fn next_u32(&mut self) -> u32 {
            0
        }
        fn next_u64(&mut self) -> u64 {
            0
        }
        fn fill_bytes(&mut self, d: &mut [u8]) {
            d.copy_from_slice(&self.0[..d.len()]);
        }
        fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), rand_core::Error> {
            self.fill_bytes(d);
            Ok(())
        }
    }
    impl rand_core::CryptoRng for Fixed {}
    let sk = Secp256k1::generate(&mut Fixed([0x30; 32]));
    assert_eq!(
        hex::encode(Secp256k1::public_key(&sk).as_ref()),
        "022ed557f5ad336b31a49857e4e9664954ac33385aa20a93e2d64bfe7f08f51277"
    );
}
