//! The Double Ratchet crypto suite exactly as status-go's `EthereumCrypto` runs it
//! (docs/protocol/secure-transport.md §5.1), and the AES-256-GCM sealing of the DH-only mode (§6).
//!
//! * `KDF_RK(rk, dh)` = HKDF-SHA256(ikm = dh, salt = rk, info = `rsZUpEuXUqqwXBvSy3EcievAh4cMj6QL`, 96 bytes)
//!   → root key, chain key, (unused) header key;
//! * `KDF_CK(ck)` = (HMAC(ck, `0x0f`), HMAC(ck, `0x10`)) → next chain key, message key;
//! * `ENCRYPT(mk, pt, ad)`: HKDF-SHA256(ikm = mk, salt = 32 zero bytes, info =
//!   `pcwSByyx2CRdryCffXJwy7xgVZWtW5Sh`, 80 bytes) → AES key, HMAC key, IV; output
//!   `iv ‖ AES-256-CTR(pt) ‖ HMAC-SHA256(ad ‖ iv ‖ ct)`.
//!
//! These are not Signal's constants and must not be "fixed".

use core::fmt;

use aes_gcm::aead::{Aead, KeyInit as _};
use ctr::cipher::{KeyIvInit, StreamCipher};
use hkdf::Hkdf;
use hmac::Mac;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::SecureError;

/// The HKDF info string of `KDF_RK`.
pub const ROOT_KDF_INFO: &[u8] = b"rsZUpEuXUqqwXBvSy3EcievAh4cMj6QL";
/// The HKDF info string of the message-key expansion in `ENCRYPT`.
pub const MESSAGE_KDF_INFO: &[u8] = b"pcwSByyx2CRdryCffXJwy7xgVZWtW5Sh";
/// The HMAC input that advances a chain key.
pub const CHAIN_KEY_CONSTANT: u8 = 0x0f;
/// The HMAC input that derives a message key from a chain key.
pub const MESSAGE_KEY_CONSTANT: u8 = 0x10;
/// Bytes of IV in front of a ratchet ciphertext.
pub const IV_LEN: usize = 16;
/// Bytes of HMAC tag behind a ratchet ciphertext.
pub const TAG_LEN: usize = 32;
/// Bytes of GCM nonce appended to a DH-only payload.
pub const GCM_NONCE_LEN: usize = 12;

type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;

/// 32 bytes of secret key material (root, chain or message key): zeroized on drop, never printed, compared
/// in constant time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Key32(pub(crate) [u8; 32]);

impl PartialEq for Key32 {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Key32 {}

impl Key32 {
    /// Wrap 32 bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Key32(bytes)
    }

    /// Parse a 32-byte slice.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Key32)
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Key32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key32(..)")
    }
}

fn hmac_sha256(key: &[u8; 32], parts: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    let mut mac = crate::rlpx::ecies::hmac_sha256(key);
    for p in parts {
        mac.update(p);
    }
    let mut out = Zeroizing::new([0u8; 32]);
    let mut tag = mac.finalize().into_bytes();
    out.copy_from_slice(&tag);
    tag.zeroize();
    out
}

/// A key made from `bytes[..32]`, written in place (no unzeroized copy left on the stack).
fn key_from(bytes: &[u8]) -> Key32 {
    let mut k = Key32([0u8; 32]);
    k.0.copy_from_slice(&bytes[..32]);
    k
}

fn hkdf_sha256<const L: usize>(ikm: &[u8], salt: &[u8], info: &[u8]) -> Zeroizing<[u8; L]> {
    let mut okm = Zeroizing::new([0u8; L]);
    // L is 80 or 96, far below HKDF-SHA256's limit of 255 * 32 bytes, so expand cannot fail; the error
    // branch leaves zeros and is unreachable.
    let _ = Hkdf::<Sha256>::new(Some(salt), ikm).expand(info, &mut okm[..]);
    okm
}

/// `KDF_RK(rk, dh_out)` → (new root key, new chain key). The third output (header key) is unused.
pub fn kdf_rk(rk: &Key32, dh_out: &[u8; 32]) -> (Key32, Key32) {
    let okm = hkdf_sha256::<96>(dh_out, &rk.0, ROOT_KDF_INFO);
    (key_from(&okm[..32]), key_from(&okm[32..64]))
}

/// `KDF_CK(ck)` → (next chain key, message key).
pub fn kdf_ck(ck: &Key32) -> (Key32, Key32) {
    (
        key_from(&hmac_sha256(&ck.0, &[&[CHAIN_KEY_CONSTANT]])[..]),
        key_from(&hmac_sha256(&ck.0, &[&[MESSAGE_KEY_CONSTANT]])[..]),
    )
}

/// The AES key, HMAC key and IV expanded from a message key.
pub struct MessageKeys {
    enc: Key32,
    auth: Key32,
    iv: [u8; IV_LEN],
}

impl MessageKeys {
    /// Expand `mk` (HKDF with the zero salt and [`MESSAGE_KDF_INFO`]).
    pub fn derive(mk: &Key32) -> Self {
        let okm = hkdf_sha256::<80>(&mk.0, &[0u8; 32], MESSAGE_KDF_INFO);
        let mut iv = [0u8; IV_LEN];
        iv.copy_from_slice(&okm[64..80]);
        MessageKeys {
            enc: key_from(&okm[..32]),
            auth: key_from(&okm[32..64]),
            iv,
        }
    }

    /// The three parts, for vectors. Exposes the AES and HMAC keys of one message: do not log or keep them.
    pub fn parts(&self) -> (&[u8; 32], &[u8; 32], &[u8; IV_LEN]) {
        (&self.enc.0, &self.auth.0, &self.iv)
    }
}

impl fmt::Debug for MessageKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MessageKeys(..)")
    }
}

/// `ENCRYPT(mk, plaintext, ad)`: `iv ‖ AES-256-CTR(plaintext) ‖ HMAC-SHA256(ad ‖ iv ‖ ct)`.
pub fn encrypt(mk: &Key32, plaintext: &[u8], ad: &[u8]) -> Vec<u8> {
    let keys = MessageKeys::derive(mk);
    let mut out = Vec::with_capacity(IV_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&keys.iv);
    out.extend_from_slice(plaintext);
    Aes256Ctr::new((&keys.enc.0).into(), (&keys.iv).into()).apply_keystream(&mut out[IV_LEN..]);
    let tag = hmac_sha256(&keys.auth.0, &[ad, &out]);
    out.extend_from_slice(&tag[..]);
    out
}

/// `DECRYPT(mk, data, ad)`: checks the length and (in constant time) the tag before decrypting.
pub fn decrypt(mk: &Key32, data: &[u8], ad: &[u8]) -> Result<Zeroizing<Vec<u8>>, SecureError> {
    if data.len() < IV_LEN + TAG_LEN {
        return Err(SecureError::CiphertextTooShort);
    }
    let keys = MessageKeys::derive(mk);
    let (body, tag) = data.split_at(data.len() - TAG_LEN);
    let expected = hmac_sha256(&keys.auth.0, &[ad, body]);
    if !bool::from(expected[..].ct_eq(tag)) {
        return Err(SecureError::BadMac);
    }
    let (iv, ct) = body.split_at(IV_LEN);
    let mut pt = Zeroizing::new(ct.to_vec());
    let iv: &[u8; IV_LEN] = iv.try_into().map_err(|_| SecureError::CiphertextTooShort)?;
    Aes256Ctr::new((&keys.enc.0).into(), iv.into()).apply_keystream(&mut pt[..]);
    Ok(pt)
}

/// DH-only sealing (§6): `AES-256-GCM(key, nonce, pt) ‖ nonce` with no associated data.
pub fn gcm_seal(
    key: &[u8; 32],
    nonce: &[u8; GCM_NONCE_LEN],
    plaintext: &[u8],
) -> Result<Vec<u8>, SecureError> {
    let cipher = aes_gcm::Aes256Gcm::new(key.into());
    let mut out = cipher
        .encrypt(nonce.into(), plaintext)
        .map_err(|_| SecureError::PayloadTooLarge)?;
    out.extend_from_slice(nonce);
    Ok(out)
}

/// DH-only opening: the nonce is the last 12 bytes.
pub fn gcm_open(key: &[u8; 32], payload: &[u8]) -> Result<Zeroizing<Vec<u8>>, SecureError> {
    if payload.len() < GCM_NONCE_LEN + 16 {
        return Err(SecureError::CiphertextTooShort);
    }
    let (ct, nonce) = payload.split_at(payload.len() - GCM_NONCE_LEN);
    let cipher = aes_gcm::Aes256Gcm::new(key.into());
    cipher
        .decrypt(nonce.into(), ct)
        .map(Zeroizing::new)
        .map_err(|_| SecureError::BadMac)
}

/// The associated data of a ratchet message: `le_u32(n) ‖ le_u32(pn) ‖ dh` (status-go passes no
/// application AD).
pub fn header_ad(dh: &[u8], n: u32, pn: u32) -> Vec<u8> {
    let mut ad = Vec::with_capacity(8 + dh.len());
    ad.extend_from_slice(&n.to_le_bytes());
    ad.extend_from_slice(&pn.to_le_bytes());
    ad.extend_from_slice(dh);
    ad
}

/// HMAC-SHA256 over one message, exposed for benches comparing against the primitive.
pub fn hmac(key: &[u8; 32], msg: &[u8]) -> [u8; 32] {
    *hmac_sha256(key, &[msg])
}

#[cfg(test)]
mod tests;
