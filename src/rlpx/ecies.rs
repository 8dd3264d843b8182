//! ECIES as devp2p uses it (docs/protocol/rlpx.md §2): secp256k1, NIST concat-KDF with SHA-256, AES-128-CTR,
//! HMAC-SHA-256 over `iv ‖ ciphertext ‖ shared_mac_data`, and a MAC key that is the SHA-256 *of* the second
//! KDF half. The same construction encrypts Waku/Whisper asymmetric payloads (with empty shared-mac-data).
//!
//! Wire form: `0x04‖R (65) ‖ iv (16) ‖ c ‖ tag (32)`: 113 bytes of overhead.

use aes::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, Mac};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::crypto::{ecdh_x, pubkey_from_sec1, pubkey_to_uncompressed, PublicKey, SecretKey};

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

/// Bytes ECIES adds to a plaintext: 65-byte ephemeral key, 16-byte IV, 32-byte tag.
pub const OVERHEAD: usize = 65 + 16 + 32;

/// Why an ECIES ciphertext did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EciesError {
    /// Shorter than the 113-byte overhead.
    #[error("ciphertext too short")]
    TooShort,
    /// The ephemeral public key is not a valid secp256k1 point.
    #[error("invalid ephemeral public key")]
    InvalidPublicKey,
    /// The HMAC tag does not match.
    #[error("bad ECIES tag")]
    BadTag,
}

fn derive_keys(shared_x: &[u8; 32]) -> (Zeroizing<[u8; 16]>, Zeroizing<[u8; 32]>) {
    // Concat-KDF, one SHA-256 block: counter = 1, s1 empty.
    let mut h = Sha256::new();
    h.update(1u32.to_be_bytes());
    h.update(shared_x);
    let k = Zeroizing::new(<[u8; 32]>::from(h.finalize()));
    let mut ke = Zeroizing::new([0u8; 16]);
    ke.copy_from_slice(&k[..16]);
    let km = Zeroizing::new(<[u8; 32]>::from(Sha256::digest(&k[16..32])));
    (ke, km)
}

fn tag(km: &[u8; 32], iv: &[u8], c: &[u8], shared_mac_data: &[u8]) -> [u8; 32] {
    let mut mac = hmac_sha256(km);
    mac.update(iv);
    mac.update(c);
    mac.update(shared_mac_data);
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA-256 keyed with a 32-byte key. HMAC zero-pads keys shorter than the 64-byte block, so building
/// it from the padded block is the same function and cannot fail.
pub(crate) fn hmac_sha256(key: &[u8; 32]) -> Hmac<Sha256> {
    let mut block = Zeroizing::new([0u8; 64]);
    block[..32].copy_from_slice(key);
    <Hmac<Sha256> as hmac::digest::KeyInit>::new((&*block).into())
}

/// Encrypt with an explicit ephemeral key and IV (for vectors and reproducible tests).
pub fn encrypt_with(
    remote: &PublicKey,
    ephemeral: &SecretKey,
    iv: [u8; 16],
    plaintext: &[u8],
    shared_mac_data: &[u8],
) -> Vec<u8> {
    let z = ecdh_x(ephemeral, remote);
    let (ke, km) = derive_keys(&z);
    let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
    out.extend_from_slice(&pubkey_to_uncompressed(&ephemeral.public_key()));
    out.extend_from_slice(&iv);
    let start = out.len();
    out.extend_from_slice(plaintext);
    let mut cipher = Aes128Ctr::new((&*ke).into(), (&iv).into());
    cipher.apply_keystream(&mut out[start..]);
    let t = tag(&km, &iv, &out[start..], shared_mac_data);
    out.extend_from_slice(&t);
    out
}

/// Encrypt `plaintext` to `remote`, drawing the ephemeral key and IV from `rng`.
pub fn encrypt<R: RngCore + CryptoRng>(
    rng: &mut R,
    remote: &PublicKey,
    plaintext: &[u8],
    shared_mac_data: &[u8],
) -> Vec<u8> {
    let ephemeral = SecretKey::random(&mut *rng);
    let mut iv = [0u8; 16];
    rng.fill_bytes(&mut iv);
    encrypt_with(remote, &ephemeral, iv, plaintext, shared_mac_data)
}

/// Decrypt an ECIES ciphertext with our secret key. The tag is checked in constant time before any
/// decryption.
pub fn decrypt(secret: &SecretKey, data: &[u8], shared_mac_data: &[u8]) -> Result<Vec<u8>, EciesError> {
    if data.len() < OVERHEAD {
        return Err(EciesError::TooShort);
    }
    // geth accepts prefixes 2, 3 and 4 only; with a 65-byte R only 4 is meaningful.
    if data[0] != 4 {
        return Err(EciesError::InvalidPublicKey);
    }
    let remote = pubkey_from_sec1(&data[..65]).ok_or(EciesError::InvalidPublicKey)?;
    let iv = &data[65..81];
    let c = &data[81..data.len() - 32];
    let got = &data[data.len() - 32..];
    let z = ecdh_x(secret, &remote);
    let (ke, km) = derive_keys(&z);
    let want = tag(&km, iv, c, shared_mac_data);
    if !bool::from(subtle::ConstantTimeEq::ct_eq(&want[..], got)) {
        return Err(EciesError::BadTag);
    }
    let mut out = c.to_vec();
    let mut cipher = Aes128Ctr::new((&*ke).into(), iv.into());
    cipher.apply_keystream(&mut out);
    Ok(out)
}

#[cfg(test)]
mod tests;
