//! Shared cryptographic helpers: Keccak-256, secp256k1 keys in their wire forms, ECDH and recoverable
//! signatures as go-ethereum produces them (docs/protocol/rlpx.md §1).
//!
//! Every primitive comes from a well-kept crate (`k256`, `sha3`); this module only fixes the encodings the
//! network uses: public keys as 64 bytes `X‖Y` (or 65 with the `0x04` prefix), ECDH output as the raw
//! 32-byte X coordinate (not hashed), and signatures as 65 bytes `r‖s‖v` with `v ∈ {0, 1}`.

use k256::ecdsa::{RecoveryId, Signature, SigningKey, VerifyingKey};
use k256::elliptic_curve::sec1::ToEncodedPoint;
use sha3::{Digest, Keccak256};
use zeroize::Zeroizing;

pub use k256::{PublicKey, SecretKey};

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

/// The 64-byte `X‖Y` form of a public key (no `0x04` prefix), as RLPx and Hello carry it.
pub fn pubkey_to_raw64(pk: &PublicKey) -> [u8; 64] {
    let ep = pk.to_encoded_point(false);
    let mut out = [0u8; 64];
    out.copy_from_slice(&ep.as_bytes()[1..65]);
    out
}

/// The 65-byte uncompressed SEC1 form `0x04‖X‖Y`.
pub fn pubkey_to_uncompressed(pk: &PublicKey) -> [u8; 65] {
    let ep = pk.to_encoded_point(false);
    let mut out = [0u8; 65];
    out.copy_from_slice(ep.as_bytes());
    out
}

/// The 33-byte compressed SEC1 form.
pub fn pubkey_to_compressed(pk: &PublicKey) -> [u8; 33] {
    let ep = pk.to_encoded_point(true);
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
    if bytes.len() != 32 {
        return None;
    }
    SecretKey::from_slice(bytes).ok()
}

/// secp256k1 ECDH as go-ethereum does it: the 32-byte big-endian X coordinate of `sk·pk`, not hashed.
pub fn ecdh_x(sk: &SecretKey, pk: &PublicKey) -> Zeroizing<[u8; 32]> {
    let shared = k256::ecdh::diffie_hellman(sk.to_nonzero_scalar(), pk.as_affine());
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(shared.raw_secret_bytes().as_slice());
    out
}

/// Sign a 32-byte digest, returning `r‖s‖v` with `v ∈ {0, 1}` (go-ethereum `crypto.Sign`). The nonce is
/// RFC 6979 deterministic and `s` is normalised low, as libsecp256k1 does.
pub fn sign_recoverable(sk: &SecretKey, digest: &[u8; 32]) -> Result<[u8; 65], SignatureError> {
    let signing = SigningKey::from(sk);
    let (sig, recid) = signing
        .sign_prehash_recoverable(digest)
        .map_err(|_| SignatureError)?;
    let mut out = [0u8; 65];
    out[..64].copy_from_slice(&sig.to_bytes());
    out[64] = recid.to_byte();
    Ok(out)
}

/// Recover the public key that made a 65-byte `r‖s‖v` signature over `digest`. `v` may be a recovery id
/// `0..=3` or the legacy `27..=30` (Waku/Whisper signatures may carry 27/28; go-ethereum's `SigToPub`
/// accepts only `0..=3`). High-S signatures (`s > n/2`) are rejected, as go-ethereum's `crypto.Sign`
/// never makes them. Callers compare the recovered key with the expected signer.
pub fn recover(sig: &[u8], digest: &[u8; 32]) -> Result<PublicKey, SignatureError> {
    if sig.len() != 65 {
        return Err(SignatureError);
    }
    let v = match sig[64] {
        v @ 0..=3 => v,
        v @ 27..=30 => v - 27,
        _ => return Err(SignatureError),
    };
    let recid = RecoveryId::from_byte(v).ok_or(SignatureError)?;
    let signature = Signature::from_slice(&sig[..64]).map_err(|_| SignatureError)?;
    let vk = VerifyingKey::recover_from_prehash(digest, &signature, recid).map_err(|_| SignatureError)?;
    Ok(PublicKey::from(vk))
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
        assert!(format!("{sk:?}").find(&hex::encode(sk.to_bytes())).is_none());
    }
}
