//! Shared cryptographic helpers: Keccak-256, secp256k1 keys in their wire forms, ECDH and recoverable
//! signatures as go-ethereum produces them (docs/protocol/rlpx.md §1).
//!
//! Every primitive comes from a well-kept crate (`k256`, `sha3`, and with the `libsecp256k1` feature the
//! `secp256k1` crate); this module only fixes the encodings the network uses: public keys as 64 bytes
//! `X‖Y` (or 65 with the `0x04` prefix), ECDH output as the raw 32-byte X coordinate (not hashed), and
//! signatures as 65 bytes `r‖s‖v` with `v ∈ {0, 1}`.
//!
//! The curve operations (public-key derivation, signing, recovery, ECDH) go through a small provider seam,
//! [`provider::Secp256k1Provider`], in the manner of rustls' `CryptoProvider`: pure-Rust `k256` is the
//! default ([`provider::RustCrypto`]); the `libsecp256k1` cargo feature makes the C libsecp256k1 (through
//! the `secp256k1` crate, as go-ethereum and reth use it) the active provider. Both produce byte-identical
//! results (RFC 6979 nonces, low-s), so every vector holds under either.
//!
//! A [`SecretKey`] keeps its public key once derived, so an identity never recomputes it per message.

use std::sync::OnceLock;

use k256::elliptic_curve::scalar::IsHigh;
use k256::elliptic_curve::sec1::ToSec1Point;
use rand_core::CryptoRngCore;
use sha3::{Digest, Keccak256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

pub mod provider;

pub use k256::PublicKey;
use provider::{ActiveProvider, Secp256k1Provider};

/// Keccak-256 (original Keccak padding, as Ethereum uses it; not NIST SHA3-256).
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    Keccak256::digest(data).into()
}

/// Keccak-256 of several slices concatenated.
pub fn keccak256_concat(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Keccak256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// A secp256k1 secret key (a non-zero scalar below the group order), zeroized on drop and never printed.
///
/// Its public key is derived once, on first use, through the active provider's fixed-base multiplication
/// and kept: signing, ECDH and [`SecretKey::public_key`] never recompute it.
#[derive(Clone)]
pub struct SecretKey {
    inner: k256::SecretKey,
    public: OnceLock<PublicKey>,
    /// The pure-Rust provider's signing key (scalar and public key), built once on first use (boxed:
    /// keys sit in enums and collections that need not carry its size when it is unused).
    signing: OnceLock<Box<k256::ecdsa::SigningKey>>,
}

/// A secret key's bytes were zero or not below the group order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid secp256k1 secret key")]
pub struct InvalidSecretKey;

impl SecretKey {
    /// A uniformly random key: 32-byte big-endian candidates drawn from `rng` until one is a valid scalar
    /// (non-zero, below the order), as `k256` 0.13's `SecretKey::random` drew them (so seeded keys are
    /// unchanged).
    pub fn random<R: CryptoRngCore + ?Sized>(rng: &mut R) -> Self {
        let mut b = Zeroizing::new([0u8; 32]);
        loop {
            rng.fill_bytes(&mut b[..]);
            if let Ok(sk) = Self::from_slice(&b[..]) {
                return sk;
            }
        }
    }

    /// Parse a 32-byte big-endian scalar; an error if it is zero or not below the group order.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, InvalidSecretKey> {
        if bytes.len() != 32 {
            return Err(InvalidSecretKey);
        }
        let inner = k256::SecretKey::from_slice(bytes).map_err(|_| InvalidSecretKey)?;
        Ok(SecretKey {
            inner,
            public: OnceLock::new(),
            signing: OnceLock::new(),
        })
    }

    /// The 32-byte big-endian scalar, zeroized when dropped.
    pub fn to_bytes(&self) -> Zeroizing<k256::FieldBytes> {
        Zeroizing::new(self.inner.to_bytes())
    }

    /// The public key `sk·G`, derived on first use and kept.
    pub fn public_key(&self) -> PublicKey {
        *self.public.get_or_init(|| ActiveProvider::public_key(self))
    }

    /// The `k256` secret key (for the providers).
    pub(crate) fn as_k256(&self) -> &k256::SecretKey {
        &self.inner
    }

    /// The `k256` signing key, built (with its public key, by fixed-base multiplication) once.
    pub(crate) fn k256_signing_key(&self) -> &k256::ecdsa::SigningKey {
        self.signing
            .get_or_init(|| Box::new(k256::ecdsa::SigningKey::from(self.inner.to_nonzero_scalar())))
    }
}

impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        self.inner.to_bytes().ct_eq(&other.inner.to_bytes()).into()
    }
}

impl Eq for SecretKey {}

impl core::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// The 64-byte `X‖Y` form of a public key (no `0x04` prefix), as RLPx and Hello carry it.
pub fn pubkey_to_raw64(pk: &PublicKey) -> [u8; 64] {
    let ep = pk.to_sec1_point(false);
    let mut out = [0u8; 64];
    out.copy_from_slice(&ep.as_bytes()[1..65]);
    out
}

/// The 65-byte uncompressed SEC1 form `0x04‖X‖Y`.
pub fn pubkey_to_uncompressed(pk: &PublicKey) -> [u8; 65] {
    let ep = pk.to_sec1_point(false);
    let mut out = [0u8; 65];
    out.copy_from_slice(ep.as_bytes());
    out
}

/// The 33-byte compressed SEC1 form.
pub fn pubkey_to_compressed(pk: &PublicKey) -> [u8; 33] {
    let ep = pk.to_sec1_point(true);
    let mut out = [0u8; 33];
    out.copy_from_slice(ep.as_bytes());
    out
}

/// Parse a 64-byte `X‖Y` public key; `None` if it is not a point on the curve.
pub fn pubkey_from_raw64(raw: &[u8]) -> Option<PublicKey> {
    if raw.len() != 64 {
        return None;
    }
    let mut buf = [0u8; 65];
    buf[0] = 4;
    buf[1..].copy_from_slice(raw);
    PublicKey::from_sec1_bytes(&buf).ok()
}

/// Parse a SEC1 public key (33-byte compressed or 65-byte uncompressed); `None` if invalid.
pub fn pubkey_from_sec1(bytes: &[u8]) -> Option<PublicKey> {
    PublicKey::from_sec1_bytes(bytes).ok()
}

/// Parse a 32-byte secret scalar; `None` if zero or not below the group order.
pub fn secret_from_bytes(bytes: &[u8]) -> Option<SecretKey> {
    SecretKey::from_slice(bytes).ok()
}

/// secp256k1 ECDH as go-ethereum does it: the 32-byte big-endian X coordinate of `sk·pk`, not hashed.
pub fn ecdh_x(sk: &SecretKey, pk: &PublicKey) -> Zeroizing<[u8; 32]> {
    ActiveProvider::ecdh_x(sk, pk)
}

/// Sign a 32-byte digest, returning `r‖s‖v` with `v ∈ {0, 1}` (go-ethereum `crypto.Sign`). The nonce is
/// RFC 6979 deterministic and `s` is normalised low, as libsecp256k1 does.
pub fn sign_recoverable(sk: &SecretKey, digest: &[u8; 32]) -> Result<[u8; 65], SignatureError> {
    ActiveProvider::sign_recoverable(sk, digest)
}

/// Recover the public key that made a 65-byte `r‖s‖v` signature over `digest`. `v` may be a recovery id
/// `0..=3` or the legacy `27..=30` (Waku/Whisper signatures may carry 27/28; go-ethereum's `SigToPub`
/// accepts only `0..=3`). `r` and `s` must be non-zero and below the group order, and high-S signatures
/// (`s > n/2`) are rejected, as go-ethereum's `crypto.Sign` never makes them. The key is recovered once
/// (`Q = r⁻¹(s·R − z·G)`), with no second verification: such a key verifies the signature by
/// construction. Callers compare the recovered key with the expected signer.
pub fn recover(sig: &[u8], digest: &[u8; 32]) -> Result<PublicKey, SignatureError> {
    let (rs, recid) = parse_recoverable(sig)?;
    ActiveProvider::recover(&rs, recid, digest)
}

/// Check a 65-byte `r‖s‖v` signature's form (lengths, `0 < r, s < n`, `s ≤ n/2`, `v`) and split it into
/// `r‖s` and a recovery id `0..=3`. Shared by every provider, so each rejects exactly the same inputs.
fn parse_recoverable(sig: &[u8]) -> Result<([u8; 64], u8), SignatureError> {
    if sig.len() != 65 {
        return Err(SignatureError);
    }
    let recid = match sig[64] {
        v @ 0..=3 => v,
        v @ 27..=30 => v - 27,
        _ => return Err(SignatureError),
    };
    let parsed = k256::ecdsa::Signature::from_slice(&sig[..64]).map_err(|_| SignatureError)?;
    if bool::from(parsed.s().is_high()) {
        return Err(SignatureError);
    }
    let mut rs = [0u8; 64];
    rs.copy_from_slice(&sig[..64]);
    Ok((rs, recid))
}

/// A signature could not be made, parsed or recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid secp256k1 signature")]
pub struct SignatureError;

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn keccak_of_empty_is_the_ethereum_value() {
        assert_eq!(
            hex::encode(keccak256(b"")),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }

    #[test]
    fn sign_recover_round_trip_and_key_forms() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let sk = SecretKey::random(&mut rng);
        let pk = sk.public_key();
        let digest = keccak256(b"hello");
        let sig = sign_recoverable(&sk, &digest).unwrap();
        assert!(sig[64] <= 1);
        assert_eq!(recover(&sig, &digest).unwrap(), pk);
        let mut bad = sig;
        bad[64] = 9;
        assert!(recover(&bad, &digest).is_err());
        assert_eq!(pubkey_from_raw64(&pubkey_to_raw64(&pk)), Some(pk));
        assert_eq!(pubkey_from_sec1(&pubkey_to_compressed(&pk)), Some(pk));
        assert!(pubkey_from_raw64(&[0u8; 64]).is_none());
        assert!(secret_from_bytes(&[0u8; 32]).is_none());
        assert!(format!("{sk:?}").find(&hex::encode(&sk.to_bytes()[..])).is_none());
    }

    #[test]
    fn recovery_rejects_high_s_zero_and_overflowing_scalars() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
        let sk = SecretKey::random(&mut rng);
        let digest = keccak256(b"malleable");
        let sig = sign_recoverable(&sk, &digest).unwrap();
        // The malleated twin (r, n − s, v ^ 1) recovers the same key mathematically; it must be refused.
        let parsed = k256::ecdsa::Signature::from_slice(&sig[..64]).unwrap();
        let high =
            k256::ecdsa::Signature::from_scalars(parsed.r().to_bytes(), (-*parsed.s()).to_bytes()).unwrap();
        let mut twin = [0u8; 65];
        twin[..64].copy_from_slice(&high.to_bytes());
        twin[64] = sig[64] ^ 1;
        assert!(recover(&twin, &digest).is_err());
        // Legacy v = 27/28 is accepted.
        let mut legacy = sig;
        legacy[64] += 27;
        assert_eq!(recover(&legacy, &digest).unwrap(), sk.public_key());
        // r = 0, s = 0, r ≥ n are refused.
        let mut zero_r = sig;
        zero_r[..32].fill(0);
        assert!(recover(&zero_r, &digest).is_err());
        let mut zero_s = sig;
        zero_s[32..64].fill(0);
        assert!(recover(&zero_s, &digest).is_err());
        let mut big_r = sig;
        big_r[..32].fill(0xff);
        assert!(recover(&big_r, &digest).is_err());
        assert!(recover(&sig[..64], &digest).is_err());
    }

    #[test]
    fn seeded_random_keys_are_the_first_valid_32_byte_draw() {
        use rand_core::RngCore;
        let mut a = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let mut b = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let sk = SecretKey::random(&mut a);
        let mut raw = [0u8; 32];
        b.fill_bytes(&mut raw);
        assert_eq!(&sk.to_bytes()[..], &raw[..]);
        assert_eq!(sk, SecretKey::from_slice(&raw).unwrap());
        assert!(SecretKey::from_slice(&raw[..31]).is_err());
    }
}
