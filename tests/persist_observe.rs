//! The key-reuse check of `persist::observe` (the invariant the crash injection of `sim_crash` runs):
//! two released ciphertexts under one message key are found, by chain and index or by the key itself;
//! a ciphertext that never left, or the same ciphertext released twice, is not a reuse.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use status_sansio::persist::observe::{key_reuse, Encryption, Observations};

fn enc(chain: u8, index: u32, key: u8, ct: u8) -> Encryption {
    Encryption {
        chain: [chain; 32],
        index,
        key: [key; 32],
        ciphertext: [ct; 32],
    }
}

#[test]
fn two_released_ciphertexts_under_one_key_are_a_reuse() {
    let o = Observations {
        encryptions: vec![enc(1, 0, 10, 100), enc(1, 1, 11, 101), enc(1, 0, 10, 102)],
        released: [[100; 32], [101; 32], [102; 32]].into_iter().collect(),
    };
    let r = key_reuse(&o).expect("found");
    assert_eq!((r.chain, r.index), ([1; 32], 0));
    assert_eq!(r.ciphertexts, [[100; 32], [102; 32]]);
}

#[test]
fn the_same_message_key_on_another_chain_id_is_still_a_reuse() {
    let o = Observations {
        encryptions: vec![enc(1, 0, 10, 100), enc(2, 5, 10, 101)],
        released: [[100; 32], [101; 32]].into_iter().collect(),
    };
    assert!(key_reuse(&o).is_some());
}

#[test]
fn unreleased_or_identical_ciphertexts_are_not_a_reuse() {
    // Encrypted again after a lost batch, but the first ciphertext never left.
    let mut o = Observations {
        encryptions: vec![enc(1, 0, 10, 100), enc(1, 0, 10, 101)],
        released: [[101; 32]].into_iter().collect(),
    };
    assert_eq!(key_reuse(&o), None);
    // The same bytes made twice (the same plaintext under the same key) reveal nothing new.
    o.encryptions = vec![enc(1, 0, 10, 101), enc(1, 0, 10, 101)];
    assert_eq!(key_reuse(&o), None);
}
