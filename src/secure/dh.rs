//! The Diffie-Hellman function as a trait ([`Curve`]), with the wire implementation ([`Secp256k1`]) and an
//! X25519 implementation ([`X25519`]) so the ratchet is not tied to one curve.
//!
//! Keys are generated the way go-ethereum's legacy `crypto.GenerateKey` does it: 32 bytes are read from the
//! RNG and taken as the big-endian scalar (rejection-sampled when out of range). A recorded stream of random
//! draws therefore reproduces the reference's keys, which is how the Double Ratchet vectors plug in.

use core::fmt;

use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use super::SecureError;
use crate::crypto;

/// A 32-byte Diffie-Hellman output.
pub type SharedSecret = Zeroizing<[u8; 32]>;

/// A Diffie-Hellman group the X3DH and the Double Ratchet can run over.
pub trait Curve: 'static {
    /// A name for diagnostics and benches.
    const NAME: &'static str;
    /// A private key. Its own `Drop` zeroizes it; its `Debug` does not print it.
    type SecretKey: Clone + fmt::Debug;
    /// A public key in its encoded wire form (validated on parse).
    type PublicKey: Clone + Eq + Ord + fmt::Debug + AsRef<[u8]>;

    /// A fresh private key drawn from `rng`.
    fn generate(rng: &mut dyn CryptoRngCore) -> Self::SecretKey;
    /// The public key of `sk`.
    fn public_key(sk: &Self::SecretKey) -> Self::PublicKey;
    /// The shared secret `DH(sk, pk)`; an error for a degenerate result.
    fn diffie_hellman(sk: &Self::SecretKey, pk: &Self::PublicKey) -> Result<SharedSecret, SecureError>;
    /// Parse an encoded public key; `None` if it is not a valid point.
    fn public_from_bytes(bytes: &[u8]) -> Option<Self::PublicKey>;
    /// Parse a 32-byte private key; `None` if out of range.
    fn secret_from_bytes(bytes: &[u8]) -> Option<Self::SecretKey>;
    /// The 32 bytes of a private key.
    fn secret_to_bytes(sk: &Self::SecretKey) -> Zeroizing<[u8; 32]>;
}

/// secp256k1 with go-ethereum's ECDH (raw X coordinate) and 33-byte compressed public keys: the curve on
/// the Status wire (docs/protocol/secure-transport.md §1, §5.1).
#[derive(Debug, Clone, Copy)]
pub struct Secp256k1;

/// A validated secp256k1 public key in its 33-byte compressed SEC1 form.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CompressedKey([u8; 33]);

impl CompressedKey {
    /// The compressed form of a parsed key.
    pub fn from_public(pk: &crypto::PublicKey) -> Self {
        CompressedKey(crypto::pubkey_to_compressed(pk))
    }

    /// Parse 33 (compressed) or 65 (uncompressed) SEC1 bytes; `None` if not on the curve.
    pub fn from_sec1(bytes: &[u8]) -> Option<Self> {
        crypto::pubkey_from_sec1(bytes).map(|pk| Self::from_public(&pk))
    }

    /// The parsed point.
    pub fn to_public(&self) -> Option<crypto::PublicKey> {
        crypto::pubkey_from_sec1(&self.0)
    }

    /// The 33 bytes.
    pub fn to_bytes(&self) -> [u8; 33] {
        self.0
    }
}

impl AsRef<[u8]> for CompressedKey {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for CompressedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CompressedKey(")?;
        for b in &self.0[..5] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

fn random_32(rng: &mut dyn CryptoRngCore) -> Zeroizing<[u8; 32]> {
    let mut b = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(&mut b[..]);
    b
}

impl Curve for Secp256k1 {
    const NAME: &'static str = "secp256k1";
    type SecretKey = crypto::SecretKey;
    type PublicKey = CompressedKey;

    fn generate(rng: &mut dyn CryptoRngCore) -> crypto::SecretKey {
        loop {
            let b = random_32(rng);
            if let Some(sk) = crypto::secret_from_bytes(&b[..]) {
                return sk;
            }
        }
    }

    fn public_key(sk: &crypto::SecretKey) -> CompressedKey {
        CompressedKey::from_public(&sk.public_key())
    }

    fn diffie_hellman(sk: &crypto::SecretKey, pk: &CompressedKey) -> Result<SharedSecret, SecureError> {
        let point = pk.to_public().ok_or(SecureError::InvalidPublicKey)?;
        // secp256k1 has prime order and both inputs are valid and non-zero, so the product is never the
        // point at infinity.
        Ok(crypto::ecdh_x(sk, &point))
    }

    fn public_from_bytes(bytes: &[u8]) -> Option<CompressedKey> {
        if bytes.len() != 33 {
            return None;
        }
        CompressedKey::from_sec1(bytes)
    }

    fn secret_from_bytes(bytes: &[u8]) -> Option<crypto::SecretKey> {
        crypto::secret_from_bytes(bytes)
    }

    fn secret_to_bytes(sk: &crypto::SecretKey) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&sk.to_bytes());
        out
    }
}

/// X25519 (RFC 7748) via `x25519-dalek`: 32-byte public keys. Not on the Status wire; provided so the
/// ratchet is exercised over a second group.
#[derive(Debug, Clone, Copy)]
pub struct X25519;

/// An X25519 private key (zeroized on drop by `x25519-dalek`).
#[derive(Clone)]
pub struct X25519Secret(x25519_dalek::StaticSecret);

impl fmt::Debug for X25519Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("X25519Secret(..)")
    }
}

/// An X25519 public key (32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct X25519Public([u8; 32]);

impl AsRef<[u8]> for X25519Public {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Curve for X25519 {
    const NAME: &'static str = "x25519";
    type SecretKey = X25519Secret;
    type PublicKey = X25519Public;

    fn generate(rng: &mut dyn CryptoRngCore) -> X25519Secret {
        let b = random_32(rng);
        X25519Secret(x25519_dalek::StaticSecret::from(*b))
    }

    fn public_key(sk: &X25519Secret) -> X25519Public {
        X25519Public(x25519_dalek::PublicKey::from(&sk.0).to_bytes())
    }

    fn diffie_hellman(sk: &X25519Secret, pk: &X25519Public) -> Result<SharedSecret, SecureError> {
        let shared = sk.0.diffie_hellman(&x25519_dalek::PublicKey::from(pk.0));
        if !shared.was_contributory() {
            return Err(SecureError::InvalidPublicKey);
        }
        Ok(Zeroizing::new(shared.to_bytes()))
    }

    fn public_from_bytes(bytes: &[u8]) -> Option<X25519Public> {
        <[u8; 32]>::try_from(bytes).ok().map(X25519Public)
    }

    fn secret_from_bytes(bytes: &[u8]) -> Option<X25519Secret> {
        let b: [u8; 32] = bytes.try_into().ok()?;
        Some(X25519Secret(x25519_dalek::StaticSecret::from(b)))
    }

    fn secret_to_bytes(sk: &X25519Secret) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(sk.0.to_bytes())
    }
}

#[cfg(test)]
mod tests;
