//! The secp256k1 provider seam: the four curve operations the protocols need, behind one trait, in the
//! manner of rustls' `CryptoProvider`.
//!
//! [`RustCrypto`] (pure-Rust `k256`) is the default: portable, fuzzable, no C toolchain. The
//! `libsecp256k1` cargo feature adds `LibSecp256k1` (the C libsecp256k1 through the `secp256k1` crate)
//! and makes it the [`ActiveProvider`]. Both are deterministic and agree byte for byte: RFC 6979 nonces,
//! low-s signatures, the same recovery ids, the raw ECDH X coordinate. Input checks that decide what is
//! accepted (signature form, high-s, recovery id range) live in the caller ([`super::recover`]), so both
//! providers reject exactly the same inputs.

use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use zeroize::Zeroizing;

use super::{PublicKey, SecretKey, SignatureError};

/// The secp256k1 operations a provider supplies.
pub trait Secp256k1Provider {
    /// A short name for benches and logs.
    const NAME: &'static str;

    /// `sk·G` (fixed-base multiplication).
    fn public_key(sk: &SecretKey) -> PublicKey;

    /// An RFC 6979, low-s recoverable signature over a 32-byte digest: `r‖s‖v`, `v ∈ {0, 1}` (or 2, 3
    /// when `r` overflowed the order).
    fn sign_recoverable(sk: &SecretKey, digest: &[u8; 32]) -> Result<[u8; 65], SignatureError>;

    /// The public key that made signature `rs` (`r‖s`, already checked: `0 < r, s < n`, `s ≤ n/2`) with
    /// recovery id `recid ∈ 0..=3` over `digest`, recovered once and not re-verified.
    fn recover(rs: &[u8; 64], recid: u8, digest: &[u8; 32]) -> Result<PublicKey, SignatureError>;

    /// The X coordinate of `sk·pk`, unhashed.
    fn ecdh_x(sk: &SecretKey, pk: &PublicKey) -> Zeroizing<[u8; 32]>;
}

/// The provider the crate's free functions use: `LibSecp256k1` with the `libsecp256k1` feature,
/// otherwise [`RustCrypto`].
#[cfg(not(feature = "libsecp256k1"))]
pub type ActiveProvider = RustCrypto;
/// The provider the crate's free functions use: `LibSecp256k1` with the `libsecp256k1` feature,
/// otherwise [`RustCrypto`].
#[cfg(feature = "libsecp256k1")]
pub type ActiveProvider = LibSecp256k1;

/// Pure-Rust secp256k1 from RustCrypto's `k256` (with its precomputed base-point tables).
#[derive(Debug, Clone, Copy)]
pub struct RustCrypto;

impl Secp256k1Provider for RustCrypto {
    const NAME: &'static str = "k256";

    fn public_key(sk: &SecretKey) -> PublicKey {
        PublicKey::from(sk.k256_signing_key().verifying_key())
    }

    fn sign_recoverable(sk: &SecretKey, digest: &[u8; 32]) -> Result<[u8; 65], SignatureError> {
        let (sig, recid) = sk.k256_signing_key().sign_prehash_recoverable(digest);
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&sig.to_bytes());
        out[64] = recid.to_byte();
        Ok(out)
    }

    fn recover(rs: &[u8; 64], recid: u8, digest: &[u8; 32]) -> Result<PublicKey, SignatureError> {
        let recid = RecoveryId::from_byte(recid).ok_or(SignatureError)?;
        let sig = Signature::from_slice(rs).map_err(|_| SignatureError)?;
        // ecdsa 0.17 computes Q = r⁻¹(s·R − z·G) and does not verify again.
        let vk = VerifyingKey::recover_from_prehash(digest, &sig, recid).map_err(|_| SignatureError)?;
        Ok(PublicKey::from(&vk))
    }

    fn ecdh_x(sk: &SecretKey, pk: &PublicKey) -> Zeroizing<[u8; 32]> {
        let shared = k256::ecdh::diffie_hellman(sk.as_k256().to_nonzero_scalar(), pk.as_affine());
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(shared.raw_secret_bytes().as_slice());
        out
    }
}

#[cfg(feature = "libsecp256k1")]
pub use libsecp::LibSecp256k1;

#[cfg(feature = "libsecp256k1")]
mod libsecp {
    use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
    use zeroize::Zeroizing;

    use super::super::{pubkey_to_uncompressed, PublicKey, SecretKey, SignatureError};
    use super::Secp256k1Provider;

    /// The C libsecp256k1 (Bitcoin Core's), through the `secp256k1` crate, as go-ethereum and reth use it.
    #[derive(Debug, Clone, Copy)]
    pub struct LibSecp256k1;

    /// The secret scalar as libsecp256k1's key type. Its copy is erased when dropped.
    struct Sk(secp256k1::SecretKey);

    impl Sk {
        fn new(sk: &SecretKey) -> Result<Self, SignatureError> {
            let mut bytes = Zeroizing::new([0u8; 32]);
            bytes.copy_from_slice(&sk.to_bytes());
            secp256k1::SecretKey::from_secret_bytes(*bytes)
                .map(Sk)
                .map_err(|_| SignatureError)
        }
    }

    impl Drop for Sk {
        fn drop(&mut self) {
            self.0.non_secure_erase();
        }
    }

    fn to_k256(pk: &secp256k1::PublicKey) -> Result<PublicKey, SignatureError> {
        PublicKey::from_sec1_bytes(&pk.serialize_uncompressed()).map_err(|_| SignatureError)
    }

    fn from_k256(pk: &PublicKey) -> Result<secp256k1::PublicKey, SignatureError> {
        secp256k1::PublicKey::from_byte_array_uncompressed(pubkey_to_uncompressed(pk))
            .map_err(|_| SignatureError)
    }

    impl Secp256k1Provider for LibSecp256k1 {
        const NAME: &'static str = "libsecp256k1";

        fn public_key(sk: &SecretKey) -> PublicKey {
            // A valid k256 scalar is a valid libsecp256k1 scalar and its multiple a valid point: the
            // fallback (k256's own derivation) is unreachable but keeps this total without a panic.
            Sk::new(sk)
                .and_then(|s| to_k256(&secp256k1::PublicKey::from_secret_key(&s.0)))
                .unwrap_or_else(|_| sk.as_k256().public_key())
        }

        fn sign_recoverable(sk: &SecretKey, digest: &[u8; 32]) -> Result<[u8; 65], SignatureError> {
            let s = Sk::new(sk)?;
            let msg = secp256k1::Message::from_digest(*digest);
            let sig = RecoverableSignature::sign_ecdsa_recoverable(msg, &s.0);
            let (recid, rs) = sig.serialize_compact();
            let mut out = [0u8; 65];
            out[..64].copy_from_slice(&rs);
            out[64] = recid.to_u8();
            Ok(out)
        }

        fn recover(rs: &[u8; 64], recid: u8, digest: &[u8; 32]) -> Result<PublicKey, SignatureError> {
            let recid = RecoveryId::try_from(i32::from(recid)).map_err(|_| SignatureError)?;
            let sig = RecoverableSignature::from_compact(rs, recid).map_err(|_| SignatureError)?;
            let pk = sig
                .recover_ecdsa(secp256k1::Message::from_digest(*digest))
                .map_err(|_| SignatureError)?;
            to_k256(&pk)
        }

        fn ecdh_x(sk: &SecretKey, pk: &PublicKey) -> Zeroizing<[u8; 32]> {
            let mut out = Zeroizing::new([0u8; 32]);
            // Both conversions succeed for valid keys; on the unreachable failure fall back to k256.
            match (Sk::new(sk), from_k256(pk)) {
                (Ok(s), Ok(p)) => {
                    let xy = Zeroizing::new(secp256k1::ecdh::shared_secret_point(&p, &s.0));
                    out.copy_from_slice(&xy[..32]);
                }
                _ => out = super::RustCrypto::ecdh_x(sk, pk),
            }
            out
        }
    }
}
