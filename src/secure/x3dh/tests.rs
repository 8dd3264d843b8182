use super::super::dh::{Secp256k1, X25519};
use super::*;
use rand_core::SeedableRng;

fn both_sides_agree<C: Curve>() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
    let (ika, eka, ikb, spkb) = (
        C::generate(&mut rng),
        C::generate(&mut rng),
        C::generate(&mut rng),
        C::generate(&mut rng),
    );
    let a = initiate::<C>(&ika, &eka, &C::public_key(&ikb), &C::public_key(&spkb)).unwrap();
    let b = respond::<C>(&ikb, &spkb, &C::public_key(&ika), &C::public_key(&eka)).unwrap();
    assert_eq!(a, b);
    let wrong = respond::<C>(&ikb, &spkb, &C::public_key(&eka), &C::public_key(&ika)).unwrap();
    assert_ne!(a, wrong);
}

#[test]
fn agree_on_both_curves() {
    both_sides_agree::<Secp256k1>();
    both_sides_agree::<X25519>();
}
