//! RLPx framing (docs/protocol/rlpx.md §4): one continuous AES-256-CTR keystream per direction (zero IV), and
//! the Keccak-256 header and frame MACs built with AES-256 over the running sponge.
//!
//! ```text
//! frame = header-ciphertext (16) ‖ header-mac (16) ‖ frame-ciphertext (16·k) ‖ frame-mac (16)
//! header = frame-size (u24 BE) ‖ c2 80 80 ‖ zero padding
//! ```
//!
//! MACs are verified in constant time before anything is decrypted; a MAC failure is fatal because the
//! stream states cannot resynchronise. Header-data is ignored on receive, as geth does.

use aes::cipher::{BlockEncrypt, KeyInit, KeyIvInit, StreamCipher};
use bytes::{Buf, BytesMut};
use sha3::{Digest, Keccak256};
use subtle::ConstantTimeEq;

use super::handshake::Secrets;
use super::RlpxError;

type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;

/// The largest frame-size the 24-bit header field can express.
pub const MAX_FRAME_SIZE: usize = 0xFF_FFFF;
/// Header plus header MAC.
const HEADER_LEN: usize = 32;
/// The plaintext header after the size: RLP `[0, 0]`.
const HEADER_DATA: [u8; 3] = [0xc2, 0x80, 0x80];

/// One direction's MAC: a running Keccak-256 sponge plus the AES-256 block cipher keyed with mac-secret.
///
/// `current` caches the digest of the sponge as it stands: a frame MAC ends with a digest and the next
/// header MAC starts with a digest of the same, unchanged state, so one Keccak permutation per frame is
/// saved.
struct MacState {
    hash: Keccak256,
    current: Option<[u8; 16]>,
}

impl MacState {
    fn new(hash: Keccak256) -> Self {
        MacState { hash, current: None }
    }

    fn digest16(&mut self) -> [u8; 16] {
        if let Some(d) = self.current {
            return d;
        }
        let d = self.hash.clone().finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&d[..16]);
        self.current = Some(out);
        out
    }

    fn absorb(&mut self, data: &[u8]) {
        self.hash.update(data);
        self.current = None;
    }

    fn header_mac(&mut self, cipher: &aes::Aes256, header_ct: &[u8]) -> [u8; 16] {
        let mut seed = self.digest16();
        cipher.encrypt_block((&mut seed).into());
        for (s, h) in seed.iter_mut().zip(header_ct) {
            *s ^= h;
        }
        self.absorb(&seed);
        self.digest16()
    }

    fn frame_mac(&mut self, cipher: &aes::Aes256, frame_ct: &[u8]) -> [u8; 16] {
        self.absorb(frame_ct);
        let d = self.digest16();
        let mut seed = d;
        cipher.encrypt_block((&mut seed).into());
        for (s, x) in seed.iter_mut().zip(d) {
            *s ^= x;
        }
        self.absorb(&seed);
        self.digest16()
    }
}

/// The framing state of an established RLPx connection: both keystreams, both MAC sponges, and the
/// half-read frame (if a header has been verified but its body has not fully arrived).
pub struct FrameCodec {
    enc: Aes256Ctr,
    dec: Aes256Ctr,
    mac_cipher: aes::Aes256,
    egress: MacState,
    ingress: MacState,
    pending_size: Option<usize>,
    max_frame_size: usize,
}

impl core::fmt::Debug for FrameCodec {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FrameCodec")
            .field("pending_size", &self.pending_size)
            .finish_non_exhaustive()
    }
}

impl FrameCodec {
    /// Build the codec from handshake secrets. Received frames larger than `max_frame_size` (capped at
    /// 2^24 − 1) are refused with [`RlpxError::FrameTooLarge`] before their body is buffered.
    pub fn new(secrets: Secrets, max_frame_size: usize) -> Self {
        Self::from_parts(
            &secrets.aes_secret,
            &secrets.mac_secret,
            secrets.egress_mac,
            secrets.ingress_mac,
            max_frame_size,
        )
    }

    /// Build the codec from raw parts (for vectors and benchmarks).
    pub fn from_parts(
        aes_secret: &[u8; 32],
        mac_secret: &[u8; 32],
        egress_mac: Keccak256,
        ingress_mac: Keccak256,
        max_frame_size: usize,
    ) -> Self {
        let iv = [0u8; 16];
        FrameCodec {
            enc: Aes256Ctr::new(aes_secret.into(), (&iv).into()),
            dec: Aes256Ctr::new(aes_secret.into(), (&iv).into()),
            mac_cipher: aes::Aes256::new(mac_secret.into()),
            egress: MacState::new(egress_mac),
            ingress: MacState::new(ingress_mac),
            pending_size: None,
            max_frame_size: max_frame_size.min(MAX_FRAME_SIZE),
        }
    }

    /// Seal one frame whose frame-data is the concatenation of `parts`, appending it to `out`.
    pub fn seal(&mut self, parts: &[&[u8]], out: &mut Vec<u8>) -> Result<(), RlpxError> {
        let size: usize = parts.iter().map(|p| p.len()).sum();
        if size > MAX_FRAME_SIZE {
            return Err(RlpxError::MessageTooLarge(size));
        }
        let padded = size.div_ceil(16) * 16;
        out.reserve(HEADER_LEN + padded + 16);
        let start = out.len();
        let mut header = [0u8; 16];
        header[..3].copy_from_slice(&(size as u32).to_be_bytes()[1..]);
        header[3..6].copy_from_slice(&HEADER_DATA);
        self.enc.apply_keystream(&mut header);
        let hmac = self.egress.header_mac(&self.mac_cipher, &header);
        out.extend_from_slice(&header);
        out.extend_from_slice(&hmac);
        let body = out.len();
        for p in parts {
            out.extend_from_slice(p);
        }
        out.resize(body + padded, 0);
        self.enc.apply_keystream(&mut out[body..]);
        let fmac = self.egress.frame_mac(&self.mac_cipher, &out[body..]);
        out.extend_from_slice(&fmac);
        debug_assert_eq!(out.len() - start, HEADER_LEN + padded + 16);
        Ok(())
    }

    /// Try to open one frame from the front of `buf`, consuming its bytes.
    ///
    /// `Ok(None)` means more bytes are needed (the verified header is remembered, so bytes can arrive one
    /// at a time). On success returns the frame-data (msg-id plus msg-data, padding removed).
    pub fn open(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, RlpxError> {
        let size = match self.pending_size {
            Some(s) => s,
            None => {
                if buf.len() < HEADER_LEN {
                    return Ok(None);
                }
                let mut header = [0u8; 16];
                header.copy_from_slice(&buf[..16]);
                let want = self.ingress.header_mac(&self.mac_cipher, &header);
                if !bool::from(want.ct_eq(&buf[16..32])) {
                    return Err(RlpxError::BadHeaderMac);
                }
                self.dec.apply_keystream(&mut header);
                let size =
                    usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
                buf.advance(HEADER_LEN);
                if size > self.max_frame_size {
                    return Err(RlpxError::FrameTooLarge(size));
                }
                self.pending_size = Some(size);
                size
            }
        };
        let padded = size.div_ceil(16) * 16;
        if buf.len() < padded + 16 {
            return Ok(None);
        }
        let want = self.ingress.frame_mac(&self.mac_cipher, &buf[..padded]);
        if !bool::from(want.ct_eq(&buf[padded..padded + 16])) {
            return Err(RlpxError::BadFrameMac);
        }
        let mut body = buf.split_to(padded + 16);
        body.truncate(padded);
        self.dec.apply_keystream(&mut body);
        body.truncate(size);
        self.pending_size = None;
        Ok(Some(body))
    }

    /// Bytes still needed before the next call to [`FrameCodec::open`] can make progress, given `buffered`.
    pub fn needed(&self, buffered: usize) -> usize {
        match self.pending_size {
            None => HEADER_LEN.saturating_sub(buffered),
            Some(s) => (s.div_ceil(16) * 16 + 16).saturating_sub(buffered),
        }
    }
}

#[cfg(test)]
mod tests;
