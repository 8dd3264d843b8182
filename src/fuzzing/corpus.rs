//! The seeded corpus generator behind the `tests/fuzz_corpus_*.rs` runs.
//!
//! One generator for every layer, so the corpora differ only in their seeds and sizes: inputs are random
//! noise or mutations of valid seeds (bit flips, truncation, appended noise, inserted bytes, a byte from a
//! caller-chosen alphabet for text formats, a duplicated slice), one to three mutations per input. The same
//! generator seed gives the same corpus on every machine.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// A deterministic input generator.
#[derive(Debug, Clone)]
pub struct Generator {
    rng: ChaCha20Rng,
    alphabet: &'static [u8],
}

impl Generator {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Generator {
            rng: ChaCha20Rng::seed_from_u64(seed),
            alphabet: &[],
        }
    }

    /// Also substitute bytes from `alphabet` (for text formats: separators, base32/base64 letters).
    pub fn with_alphabet(mut self, alphabet: &'static [u8]) -> Self {
        self.alphabet = alphabet;
        self
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            self.rng.next_u32() as usize % n
        }
    }

    /// Random bytes, fewer than `max` of them.
    pub fn noise(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max);
        let mut v = vec![0u8; n];
        self.rng.fill_bytes(&mut v);
        v
    }

    /// One to three random mutations of `v`.
    pub fn mutate(&mut self, mut v: Vec<u8>) -> Vec<u8> {
        for _ in 0..1 + self.below(3) {
            match self.below(6) {
                0 if !v.is_empty() => {
                    let i = self.below(v.len());
                    v[i] ^= 1 << self.below(8);
                }
                1 => {
                    let n = self.below(v.len() + 1);
                    v.truncate(n);
                }
                2 => {
                    let tail = self.noise(64);
                    v.extend(tail);
                }
                3 => {
                    let i = self.below(v.len() + 1);
                    let b = self.rng.next_u32() as u8;
                    v.insert(i, b);
                }
                4 if !v.is_empty() && !self.alphabet.is_empty() => {
                    let i = self.below(v.len());
                    v[i] = self.alphabet[self.below(self.alphabet.len())];
                }
                5 if !v.is_empty() => {
                    let start = self.below(v.len());
                    let end = start + self.below((v.len() - start).min(64)) + 1;
                    let slice = v[start..end].to_vec();
                    let at = self.below(v.len() + 1);
                    v.splice(at..at, slice);
                }
                _ => {}
            }
        }
        v
    }

    /// The `i`-th input of a run: noise (up to `max_noise` bytes) every `noise_every`-th time and when
    /// there are no seeds, otherwise a mutation of a seed.
    pub fn input(&mut self, i: usize, seeds: &[Vec<u8>], noise_every: usize, max_noise: usize) -> Vec<u8> {
        if seeds.is_empty() || i % noise_every.max(1) == 0 {
            self.noise(max_noise)
        } else {
            let s = seeds[i % seeds.len()].clone();
            self.mutate(s)
        }
    }
}

/// Run `f` over every seed unchanged, then over `n` generated inputs (every third one noise of up to
/// `max_noise` bytes, the others mutated seeds).
pub fn run(seed: u64, n: usize, max_noise: usize, seeds: &[Vec<u8>], mut f: impl FnMut(&[u8])) {
    for s in seeds {
        f(s);
    }
    let mut g = Generator::new(seed);
    for i in 0..n {
        f(&g.input(i, seeds, 3, max_noise));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_corpus_and_mutations_stay_bounded() {
        let seeds = vec![vec![1u8; 100], b"enr:abc".to_vec()];
        let gen = |s| {
            let mut g = Generator::new(s).with_alphabet(b"AZ");
            (0..200).map(|i| g.input(i, &seeds, 3, 50)).collect::<Vec<_>>()
        };
        let a = gen(7);
        assert_eq!(a, gen(7));
        assert_ne!(a, gen(8));
        // Three mutations add at most 3 x 64 bytes.
        assert!(a.iter().all(|v| v.len() <= 100 + 3 * 64));
        // Mutations really change inputs.
        assert!(a.iter().filter(|v| !seeds.contains(v)).count() > 150);
    }
}
