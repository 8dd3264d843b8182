//! The RLPx encryption handshake (docs/protocol/rlpx.md §3): auth and ack in the EIP-8 and legacy (pre-EIP-8)
//! encodings, and the derivation of the frame secrets and MAC states.
//!
//! Encoding and decoding are plain functions over explicit keys and nonces, so the EIP-8 vectors plug in
//! directly; [`super::Connection`] drives them. We send EIP-8 by default (100–199 zero bytes of padding,
//! as geth 1.10). On receive, a packet whose first byte is `0x04` is tried as legacy first (old geth's
//! detection rule: an EIP-8 size prefix starting with `0x04` would announce more than 1 KiB); otherwise it
//! is EIP-8. A legacy auth is answered with a legacy ack.

use core::fmt;

use rand_core::{CryptoRng, RngCore};
use rlp::RlpStream;
use sha3::{Digest, Keccak256};
use zeroize::Zeroizing;

use super::ecies;
use super::p2p::first_item;
use super::RlpxError;
use crate::crypto::{
    ecdh_x, keccak256, keccak256_concat, pubkey_from_raw64, pubkey_to_raw64, recover, sign_recoverable,
    PublicKey, SecretKey,
};

/// Legacy auth size on the wire (194-byte plaintext + ECIES overhead).
pub const LEGACY_AUTH_SIZE: usize = 194 + ecies::OVERHEAD;
/// Legacy ack size on the wire (97-byte plaintext + ECIES overhead).
pub const LEGACY_ACK_SIZE: usize = 97 + ecies::OVERHEAD;
/// The version we put in EIP-8 auth and ack bodies.
pub const HANDSHAKE_VERSION: u64 = 4;

/// Which encoding a handshake packet uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum HandshakeFormat {
    /// EIP-8: size prefix, RLP body, padding (the default, and all current geth accepts).
    #[default]
    Eip8,
    /// Pre-EIP-8 fixed layout.
    Legacy,
}

/// A decoded auth packet.
#[derive(Clone, Debug)]
pub struct AuthMessage {
    /// The 65-byte `r‖s‖v` signature.
    pub signature: [u8; 65],
    /// The initiator's static public key.
    pub initiator_pubkey: PublicKey,
    /// The initiator's nonce.
    pub nonce: [u8; 32],
    /// The auth version (ignored, per EIP-8; 4 for legacy).
    pub version: u64,
    /// Raw RLP of any list elements after the version.
    pub extra: Vec<Vec<u8>>,
    /// The initiator's ephemeral public key, recovered from the signature.
    pub remote_ephemeral: PublicKey,
    /// The encoding the packet used.
    pub format: HandshakeFormat,
}

/// A decoded ack packet.
#[derive(Clone, Debug)]
pub struct AckMessage {
    /// The recipient's ephemeral public key.
    pub ephemeral_pubkey: PublicKey,
    /// The recipient's nonce.
    pub nonce: [u8; 32],
    /// The ack version (ignored, per EIP-8; 4 for legacy).
    pub version: u64,
    /// Raw RLP of any list elements after the version.
    pub extra: Vec<Vec<u8>>,
    /// The encoding the packet used.
    pub format: HandshakeFormat,
}

fn padding<R: RngCore>(rng: &mut R) -> usize {
    100 + (rng.next_u32() % 100) as usize
}

fn seal_eip8<R: RngCore + CryptoRng>(rng: &mut R, remote: &PublicKey, mut body: Vec<u8>) -> Vec<u8> {
    let pad = padding(rng);
    body.resize(body.len() + pad, 0);
    let size = (body.len() + ecies::OVERHEAD) as u16;
    let prefix = size.to_be_bytes();
    let mut out = prefix.to_vec();
    out.extend_from_slice(&ecies::encrypt(rng, remote, &body, &prefix));
    out
}

/// Build an auth packet (initiator → recipient).
///
/// `static_public` is `static_key`'s public key (passed in so callers that keep it need not recompute it).
pub fn encode_auth<R: RngCore + CryptoRng>(
    rng: &mut R,
    static_key: &SecretKey,
    static_public: &PublicKey,
    ephemeral: &SecretKey,
    nonce: &[u8; 32],
    remote_static: &PublicKey,
    format: HandshakeFormat,
) -> Result<Vec<u8>, RlpxError> {
    let shared = ecdh_x(static_key, remote_static);
    let mut msg = Zeroizing::new([0u8; 32]);
    for i in 0..32 {
        msg[i] = shared[i] ^ nonce[i];
    }
    let sig = sign_recoverable(ephemeral, &msg).map_err(|_| RlpxError::InvalidSignature)?;
    let own_pub = pubkey_to_raw64(static_public);
    match format {
        HandshakeFormat::Legacy => {
            let mut pt = Zeroizing::new(Vec::with_capacity(194));
            pt.extend_from_slice(&sig);
            pt.extend_from_slice(&keccak256(&pubkey_to_raw64(&ephemeral.public_key())));
            pt.extend_from_slice(&own_pub);
            pt.extend_from_slice(nonce);
            pt.push(0);
            Ok(ecies::encrypt(rng, remote_static, &pt, &[]))
        }
        HandshakeFormat::Eip8 => {
            let mut s = RlpStream::new_list(4);
            s.append(&&sig[..]);
            s.append(&&own_pub[..]);
            s.append(&&nonce[..]);
            s.append(&HANDSHAKE_VERSION);
            Ok(seal_eip8(rng, remote_static, s.out().to_vec()))
        }
    }
}

/// Build an ack packet (recipient → initiator).
pub fn encode_ack<R: RngCore + CryptoRng>(
    rng: &mut R,
    ephemeral: &SecretKey,
    nonce: &[u8; 32],
    remote_static: &PublicKey,
    format: HandshakeFormat,
) -> Vec<u8> {
    let eph_pub = pubkey_to_raw64(&ephemeral.public_key());
    match format {
        HandshakeFormat::Legacy => {
            let mut pt = Vec::with_capacity(97);
            pt.extend_from_slice(&eph_pub);
            pt.extend_from_slice(nonce);
            pt.push(0);
            ecies::encrypt(rng, remote_static, &pt, &[])
        }
        HandshakeFormat::Eip8 => {
            let mut s = RlpStream::new_list(3);
            s.append(&&eph_pub[..]);
            s.append(&&nonce[..]);
            s.append(&HANDSHAKE_VERSION);
            seal_eip8(rng, remote_static, s.out().to_vec())
        }
    }
}

/// Find and open one handshake packet at the start of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed, otherwise the plaintext, the number of bytes the packet
/// occupies (the exact bytes that enter the MAC initialisation) and its format.
/// An opened handshake packet: plaintext, bytes it occupied on the wire, encoding.
type Opened = (Zeroizing<Vec<u8>>, usize, HandshakeFormat);

/// The fields of an EIP-8 body: the leading byte strings, the version, and raw extra elements.
type Eip8Body<'a> = (Vec<&'a [u8]>, u64, Vec<Vec<u8>>);

fn open_packet(
    secret: &SecretKey,
    buf: &[u8],
    legacy_size: usize,
    accept_legacy: bool,
    max_size: usize,
) -> Result<Option<Opened>, RlpxError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if accept_legacy && first == 0x04 {
        if buf.len() < legacy_size {
            return Ok(None);
        }
        if let Ok(pt) = ecies::decrypt(secret, &buf[..legacy_size], &[]) {
            return Ok(Some((Zeroizing::new(pt), legacy_size, HandshakeFormat::Legacy)));
        }
    }
    if buf.len() < 2 {
        return Ok(None);
    }
    let size = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
    if size > max_size {
        return Err(RlpxError::HandshakeTooLarge(size));
    }
    if size < ecies::OVERHEAD {
        return Err(RlpxError::MalformedHandshake("size below ECIES overhead"));
    }
    if buf.len() < 2 + size {
        return Ok(None);
    }
    let pt = ecies::decrypt(secret, &buf[2..2 + size], &buf[..2])?;
    Ok(Some((Zeroizing::new(pt), 2 + size, HandshakeFormat::Eip8)))
}

fn fixed<const N: usize>(b: &[u8], what: &'static str) -> Result<[u8; N], RlpxError> {
    b.try_into().map_err(|_| RlpxError::MalformedHandshake(what))
}

/// Decode the `[a, b, c, version, ...extra]` EIP-8 body.
fn eip8_fields(pt: &[u8], n: usize) -> Result<Eip8Body<'_>, RlpxError> {
    let bad = |_| RlpxError::MalformedHandshake("bad RLP");
    let list = first_item(pt).ok_or(RlpxError::MalformedHandshake("bad RLP"))?;
    if !list.is_list() || list.item_count().map_err(bad)? < n + 1 {
        return Err(RlpxError::MalformedHandshake("too few fields"));
    }
    let mut fields = Vec::with_capacity(n);
    for i in 0..n {
        fields.push(list.at(i).and_then(|r| r.data()).map_err(bad)?);
    }
    let version: u64 = list.val_at(n).map_err(bad)?;
    let extra = list.iter().skip(n + 1).map(|r| r.as_raw().to_vec()).collect();
    Ok((fields, version, extra))
}

/// Decode an auth packet at the start of `buf` with the recipient's static key.
///
/// `Ok(None)` means more bytes are needed; on success also returns the packet's length on the wire.
pub fn decode_auth(
    static_key: &SecretKey,
    buf: &[u8],
    accept_legacy: bool,
    max_size: usize,
) -> Result<Option<(AuthMessage, usize)>, RlpxError> {
    let Some((pt, used, format)) = open_packet(static_key, buf, LEGACY_AUTH_SIZE, accept_legacy, max_size)?
    else {
        return Ok(None);
    };
    let (signature, pubkey, nonce, version, extra) = match format {
        HandshakeFormat::Legacy => {
            if pt.len() != 194 {
                return Err(RlpxError::MalformedHandshake("legacy auth length"));
            }
            (
                fixed::<65>(&pt[..65], "sig")?,
                &pt[97..161],
                fixed::<32>(&pt[161..193], "nonce")?,
                4,
                vec![],
            )
        }
        HandshakeFormat::Eip8 => {
            let (f, version, extra) = eip8_fields(&pt, 3)?;
            (
                fixed::<65>(f[0], "signature length")?,
                f[1],
                fixed::<32>(f[2], "nonce length")?,
                version,
                extra,
            )
        }
    };
    let initiator_pubkey =
        pubkey_from_raw64(pubkey).ok_or(RlpxError::MalformedHandshake("invalid initiator key"))?;
    let shared = ecdh_x(static_key, &initiator_pubkey);
    let mut msg = Zeroizing::new([0u8; 32]);
    for i in 0..32 {
        msg[i] = shared[i] ^ nonce[i];
    }
    let remote_ephemeral = recover(&signature, &msg).map_err(|_| RlpxError::InvalidSignature)?;
    Ok(Some((
        AuthMessage {
            signature,
            initiator_pubkey,
            nonce,
            version,
            extra,
            remote_ephemeral,
            format,
        },
        used,
    )))
}

/// Decode an ack packet at the start of `buf` with the initiator's static key.
pub fn decode_ack(
    static_key: &SecretKey,
    buf: &[u8],
    accept_legacy: bool,
    max_size: usize,
) -> Result<Option<(AckMessage, usize)>, RlpxError> {
    let Some((pt, used, format)) = open_packet(static_key, buf, LEGACY_ACK_SIZE, accept_legacy, max_size)?
    else {
        return Ok(None);
    };
    let (key, nonce, version, extra) = match format {
        HandshakeFormat::Legacy => {
            if pt.len() != 97 {
                return Err(RlpxError::MalformedHandshake("legacy ack length"));
            }
            (&pt[..64], fixed::<32>(&pt[64..96], "nonce")?, 4, vec![])
        }
        HandshakeFormat::Eip8 => {
            let (f, version, extra) = eip8_fields(&pt, 2)?;
            (f[0], fixed::<32>(f[1], "nonce length")?, version, extra)
        }
    };
    let ephemeral_pubkey =
        pubkey_from_raw64(key).ok_or(RlpxError::MalformedHandshake("invalid ephemeral key"))?;
    Ok(Some((
        AckMessage {
            ephemeral_pubkey,
            nonce,
            version,
            extra,
            format,
        },
        used,
    )))
}

/// The result of a handshake: frame keys and the two running MAC sponges.
pub struct Secrets {
    /// The remote node's static public key (its identity).
    pub remote_static: PublicKey,
    /// AES-256 key of both frame keystreams.
    pub aes_secret: Zeroizing<[u8; 32]>,
    /// AES-256 key of the MAC block cipher.
    pub mac_secret: Zeroizing<[u8; 32]>,
    /// The sponge for frames we send.
    pub egress_mac: Keccak256,
    /// The sponge for frames we receive.
    pub ingress_mac: Keccak256,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("remote_static", &self.remote_static)
            .finish_non_exhaustive()
    }
}

/// Derive the secrets from the finished handshake (docs/protocol/rlpx.md §3.4). `auth` and `ack` are the
/// packets exactly as sent on the wire, size prefix included.
#[allow(clippy::too_many_arguments)]
pub fn derive_secrets(
    initiator: bool,
    own_ephemeral: &SecretKey,
    remote_ephemeral: &PublicKey,
    initiator_nonce: &[u8; 32],
    recipient_nonce: &[u8; 32],
    auth: &[u8],
    ack: &[u8],
    remote_static: PublicKey,
) -> Secrets {
    let eph = ecdh_x(own_ephemeral, remote_ephemeral);
    let shared = Zeroizing::new(keccak256_concat(&[
        &eph[..],
        &keccak256_concat(&[recipient_nonce, initiator_nonce]),
    ]));
    let aes_secret = Zeroizing::new(keccak256_concat(&[&eph[..], &shared[..]]));
    let mac_secret = Zeroizing::new(keccak256_concat(&[&eph[..], &aes_secret[..]]));
    let init = |nonce: &[u8; 32], packet: &[u8]| {
        let mut x = Zeroizing::new([0u8; 32]);
        for i in 0..32 {
            x[i] = mac_secret[i] ^ nonce[i];
        }
        let mut h = Keccak256::new();
        h.update(&x[..]);
        h.update(packet);
        h
    };
    let (egress_mac, ingress_mac) = if initiator {
        (init(recipient_nonce, auth), init(initiator_nonce, ack))
    } else {
        (init(initiator_nonce, ack), init(recipient_nonce, auth))
    };
    Secrets {
        remote_static,
        aes_secret,
        mac_secret,
        egress_mac,
        ingress_mac,
    }
}
