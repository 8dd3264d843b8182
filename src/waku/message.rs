//! The envelope `data`: plaintext format, signatures, and symmetric and asymmetric encryption
//! (docs/protocol/waku.md §9–§10).
//!
//! ```text
//! plaintext = flags (1) ‖ payload-size (1..3 bytes LE) ‖ payload ‖ padding ‖ [signature (65)]
//! symmetric  data = AES-256-GCM(key, nonce, plaintext) ‖ nonce (12)      (no associated data)
//! asymmetric data = ECIES(recipient, plaintext)     (docs/protocol/rlpx.md §2, empty s1/s2)
//! ```
//!
//! Signatures are `r‖s‖v` with `v ∈ {0, 1}` over `keccak256(plaintext without the signature)`, made after
//! the signature flag is set; on receive `v ∈ {27, 28}` is accepted too. Default padding makes the
//! plaintext, signature included, a multiple of 256 bytes, with random (never all-zero) bytes.

use aes_gcm::aead::{Aead, AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use bytes::Bytes;
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use super::WakuError;
use crate::crypto::{keccak256, recover, sign_recoverable, PublicKey, SecretKey};
use crate::rlpx::ecies;

/// Flag bits: the number of payload-size bytes.
const SIZE_MASK: u8 = 0x03;
/// Flag bit: a signature is appended.
const SIGNATURE_FLAG: u8 = 0x04;
/// Signature length.
pub const SIGNATURE_LEN: usize = 65;
/// AES-GCM nonce length appended to symmetric data.
pub const AES_NONCE_LEN: usize = 12;
/// AES-GCM tag length.
const AES_TAG_LEN: usize = 16;
/// Plaintext alignment of the default padding.
const PADDING_BLOCK: usize = 256;

/// A decoded plaintext.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plaintext {
    /// The payload.
    pub payload: Bytes,
    /// The padding bytes.
    pub padding: Bytes,
    /// The signer, recovered from the signature, if the message was signed.
    pub signer: Option<PublicKey>,
}

/// Build a plaintext. `padding: None` draws status-go's default random padding from `rng`.
pub fn build_plaintext<R: RngCore + CryptoRng>(
    rng: &mut R,
    payload: &[u8],
    padding: Option<&[u8]>,
    signer: Option<&SecretKey>,
) -> Result<Vec<u8>, WakuError> {
    let len = payload.len();
    let size_len = match len {
        0..=0xff => 1,
        0x100..=0xffff => 2,
        0x1_0000..=0xff_ffff => 3,
        _ => return Err(WakuError::PayloadTooLarge(len)),
    };
    let mut flags = size_len as u8;
    if signer.is_some() {
        flags |= SIGNATURE_FLAG;
    }
    let mut pt = Vec::with_capacity(1 + size_len + len + PADDING_BLOCK + SIGNATURE_LEN);
    pt.push(flags);
    pt.extend_from_slice(&(len as u32).to_le_bytes()[..size_len]);
    pt.extend_from_slice(payload);
    match padding {
        Some(p) => pt.extend_from_slice(p),
        None => {
            let raw = pt.len() + if signer.is_some() { SIGNATURE_LEN } else { 0 };
            let pad_len = PADDING_BLOCK - raw % PADDING_BLOCK;
            let start = pt.len();
            pt.resize(start + pad_len, 0);
            loop {
                rng.fill_bytes(&mut pt[start..]);
                if pt[start..].iter().any(|b| *b != 0) {
                    break;
                }
            }
        }
    }
    if let Some(sk) = signer {
        let sig = sign_recoverable(sk, &keccak256(&pt)).map_err(|_| WakuError::Signature)?;
        pt.extend_from_slice(&sig);
    }
    Ok(pt)
}

/// Where the parts of a plaintext lie: payload range, padding range and the recovered signer.
type Layout = (
    core::ops::Range<usize>,
    core::ops::Range<usize>,
    Option<PublicKey>,
);

/// Locate the payload and padding of `pt`, recovering the signer if it is signed.
fn layout(pt: &[u8]) -> Result<Layout, WakuError> {
    let flags = *pt.first().ok_or(WakuError::MalformedMessage("empty plaintext"))?;
    let mut end = pt.len();
    let signer = if flags & SIGNATURE_FLAG != 0 {
        if pt.len() < 1 + SIGNATURE_LEN {
            return Err(WakuError::MalformedMessage("too short for a signature"));
        }
        end -= SIGNATURE_LEN;
        let digest = keccak256(&pt[..end]);
        Some(recover(&pt[end..], &digest).map_err(|_| WakuError::Signature)?)
    } else {
        None
    };
    let size_len = usize::from(flags & SIZE_MASK);
    if size_len == 0 {
        return Ok((1..1, 1..end, signer));
    }
    if end - 1 < size_len {
        return Err(WakuError::MalformedMessage("truncated payload size"));
    }
    let mut size = [0u8; 4];
    size[..size_len].copy_from_slice(&pt[1..1 + size_len]);
    let size = u32::from_le_bytes(size) as usize;
    let start = 1 + size_len;
    if size > end - start {
        return Err(WakuError::MalformedMessage("payload size beyond the plaintext"));
    }
    Ok((start..start + size, start + size..end, signer))
}

/// Parse a plaintext, recovering the signer if it is signed.
pub fn parse_plaintext(pt: &[u8]) -> Result<Plaintext, WakuError> {
    let (payload, padding, signer) = layout(pt)?;
    Ok(Plaintext {
        payload: Bytes::copy_from_slice(&pt[payload]),
        padding: Bytes::copy_from_slice(&pt[padding]),
        signer,
    })
}

/// [`parse_plaintext`] of an owned buffer: payload and padding are slices of `pt`, not copies.
pub fn parse_plaintext_bytes(pt: Bytes) -> Result<Plaintext, WakuError> {
    let (payload, padding, signer) = layout(&pt)?;
    Ok(Plaintext {
        payload: pt.slice(payload),
        padding: pt.slice(padding),
        signer,
    })
}

/// An AES-256-GCM key with its key schedule set up once, for opening (and sealing) many messages with
/// one symmetric key, as a filter does (§10).
#[derive(Clone)]
pub struct SymmetricKey(Aes256Gcm);

impl core::fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SymmetricKey(..)")
    }
}

impl SymmetricKey {
    /// The key schedule of `key` (opening only: sealing refuses the all-zero key, opening with it
    /// simply fails as with any wrong key).
    pub fn new(key: &[u8; 32]) -> Self {
        SymmetricKey(Aes256Gcm::new(key.into()))
    }

    /// Open symmetric `data` and parse its plaintext: one copy of the ciphertext, decrypted in place
    /// after the tag is checked; the payload is a slice of that buffer.
    pub fn open(&self, data: &[u8]) -> Result<Plaintext, WakuError> {
        if data.len() < AES_NONCE_LEN + AES_TAG_LEN {
            return Err(WakuError::Decryption);
        }
        let (sealed, nonce) = data.split_at(data.len() - AES_NONCE_LEN);
        let (ct, tag) = sealed.split_at(sealed.len() - AES_TAG_LEN);
        let mut buf = ct.to_vec();
        self.0
            .decrypt_in_place_detached(Nonce::from_slice(nonce), &[], &mut buf, Tag::from_slice(tag))
            .map_err(|_| WakuError::Decryption)?;
        parse_plaintext_bytes(Bytes::from(buf))
    }
}

/// AES-256-GCM encrypt with an explicit nonce: `ciphertext ‖ tag ‖ nonce`.
pub fn encrypt_symmetric_with(
    key: &[u8; 32],
    nonce: [u8; AES_NONCE_LEN],
    plaintext: &[u8],
) -> Result<Vec<u8>, WakuError> {
    if key.iter().all(|b| *b == 0) {
        return Err(WakuError::InvalidKey);
    }
    let cipher = Aes256Gcm::new(key.into());
    let mut out = cipher
        .encrypt(Nonce::from_slice(&nonce), plaintext)
        .map_err(|_| WakuError::InvalidKey)?;
    out.extend_from_slice(&nonce);
    Ok(out)
}

/// AES-256-GCM encrypt with a nonce drawn from `rng`.
pub fn encrypt_symmetric<R: RngCore + CryptoRng>(
    rng: &mut R,
    key: &[u8; 32],
    plaintext: &[u8],
) -> Result<Vec<u8>, WakuError> {
    let mut nonce = [0u8; AES_NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    encrypt_symmetric_with(key, nonce, plaintext)
}

/// Open symmetric `data` (the tag is checked before anything is returned).
pub fn decrypt_symmetric(key: &[u8; 32], data: &[u8]) -> Result<Zeroizing<Vec<u8>>, WakuError> {
    if data.len() < AES_NONCE_LEN + AES_TAG_LEN {
        return Err(WakuError::Decryption);
    }
    let (ct, nonce) = data.split_at(data.len() - AES_NONCE_LEN);
    let cipher = Aes256Gcm::new(key.into());
    cipher
        .decrypt(Nonce::from_slice(nonce), ct)
        .map(Zeroizing::new)
        .map_err(|_| WakuError::Decryption)
}

/// ECIES-encrypt to `recipient` (empty shared MAC data).
pub fn encrypt_asymmetric<R: RngCore + CryptoRng>(
    rng: &mut R,
    recipient: &PublicKey,
    plaintext: &[u8],
) -> Vec<u8> {
    ecies::encrypt(rng, recipient, plaintext, &[])
}

/// Open ECIES `data` with our key.
pub fn decrypt_asymmetric(secret: &SecretKey, data: &[u8]) -> Result<Zeroizing<Vec<u8>>, WakuError> {
    ecies::decrypt(secret, data, &[])
        .map(Zeroizing::new)
        .map_err(|_| WakuError::Decryption)
}

#[cfg(test)]
mod tests;

/// How a new message is encrypted.
#[derive(Clone)]
pub enum PostKey {
    /// AES-256-GCM with this key.
    Symmetric(Zeroizing<[u8; 32]>),
    /// ECIES to this public key.
    Asymmetric(PublicKey),
}

impl core::fmt::Debug for PostKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PostKey::Symmetric(_) => f.write_str("Symmetric(..)"),
            PostKey::Asymmetric(k) => write!(f, "Asymmetric({k:?})"),
        }
    }
}

/// A message to post (what status-go calls `MessageParams`).
#[derive(Clone, Debug)]
pub struct NewMessage {
    /// Envelope topic.
    pub topic: super::Topic,
    /// Payload.
    pub payload: Vec<u8>,
    /// Encryption.
    pub key: PostKey,
    /// Sign with this key (Status signs every envelope with the sender's identity).
    pub signer: Option<SecretKey>,
    /// Time to live in seconds (0: the default 50 s).
    pub ttl: u32,
    /// PoW target (0: no PoW).
    pub pow_target: f64,
    /// Padding to use verbatim instead of the default random padding.
    pub padding: Option<Vec<u8>>,
}

/// The TTL used when a message asks for 0.
pub const DEFAULT_TTL: u32 = 50;

/// Build the envelope of `msg` at `now_secs` (nonce 0; seal it with [`super::envelope::PowSealer`]).
pub fn wrap<R: RngCore + CryptoRng>(
    rng: &mut R,
    now_secs: u64,
    msg: &NewMessage,
) -> Result<super::Envelope, WakuError> {
    let pt = Zeroizing::new(build_plaintext(
        rng,
        &msg.payload,
        msg.padding.as_deref(),
        msg.signer.as_ref(),
    )?);
    let data = match &msg.key {
        PostKey::Symmetric(k) => encrypt_symmetric(rng, k, &pt)?,
        PostKey::Asymmetric(pk) => encrypt_asymmetric(rng, pk, &pt),
    };
    let ttl = if msg.ttl == 0 { DEFAULT_TTL } else { msg.ttl };
    let expiry = u32::try_from(now_secs.saturating_add(u64::from(ttl))).unwrap_or(u32::MAX);
    Ok(super::Envelope {
        expiry,
        ttl,
        topic: msg.topic,
        data: Bytes::from(data),
        nonce: 0,
    })
}
