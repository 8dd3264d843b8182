//! Deterministic randomness.
//!
//! A state machine that needs randomness owns a [`ChaCha20Rng`] seeded from a [`Seed`] given at
//! construction, so a run is reproducible from its seed. Lower-level functions take explicit keys and nonces
//! instead, so published test vectors plug straight in. Drivers draw the seed from the operating system.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use zeroize::Zeroize;

pub use rand_chacha::ChaCha20Rng as Rng;

/// 32 bytes of seed material. Zeroized on drop and never printed.
#[derive(Clone, Zeroize, zeroize::ZeroizeOnDrop)]
pub struct Seed(pub [u8; 32]);

impl Seed {
    /// Build the state machine RNG from this seed.
    pub fn rng(&self) -> ChaCha20Rng {
        ChaCha20Rng::from_seed(self.0)
    }

    /// A seed for tests and simulations: `n` spread over the first eight bytes.
    pub fn from_u64(n: u64) -> Self {
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&n.to_le_bytes());
        Seed(s)
    }
}

impl core::fmt::Debug for Seed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Seed(..)")
    }
}

/// Derive an independent child seed from `rng`, for handing to a sub-machine.
pub fn fork(rng: &mut ChaCha20Rng) -> Seed {
    let mut s = [0u8; 32];
    rng.fill_bytes(&mut s);
    Seed(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_debug_hides_it() {
        let a = Seed::from_u64(7).rng().next_u64();
        let b = Seed::from_u64(7).rng().next_u64();
        let c = Seed::from_u64(8).rng().next_u64();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(format!("{:?}", Seed([9; 32])), "Seed(..)");
    }
}

/// A [`std::hash::BuildHasher`] whose SipHash keys come from a seeded RNG.
///
/// The core may not use `std`'s `RandomState` (it reads OS randomness). Tables keyed by peer-chosen
/// values (envelope ids, for example) still need keys peers cannot predict, or a peer could aim hash
/// collisions at them; drawing the keys from the state machine's own seed gives both: unpredictable to
/// peers, reproducible from the seed.
#[derive(Clone, Copy, Default)]
pub struct SeededState {
    k0: u64,
    k1: u64,
}

impl SeededState {
    /// Keys drawn from `rng`.
    pub fn new(rng: &mut ChaCha20Rng) -> Self {
        SeededState {
            k0: rng.next_u64(),
            k1: rng.next_u64(),
        }
    }
}

impl core::fmt::Debug for SeededState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SeededState(..)")
    }
}

impl core::hash::BuildHasher for SeededState {
    #[allow(deprecated)]
    type Hasher = core::hash::SipHasher;

    #[allow(deprecated)]
    fn build_hasher(&self) -> Self::Hasher {
        core::hash::SipHasher::new_with_keys(self.k0, self.k1)
    }
}

/// A `HashMap` keyed with a [`SeededState`].
pub type SeededHashMap<K, V> = std::collections::HashMap<K, V, SeededState>;
/// A `HashSet` keyed with a [`SeededState`].
pub type SeededHashSet<T> = std::collections::HashSet<T, SeededState>;
