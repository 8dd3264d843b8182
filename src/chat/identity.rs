//! The chat identity's public artefacts (2/ACCOUNT; docs/protocol/payloads.md §9): the key's text forms and
//! the 3-word pseudonym.
//!
//! * [`pubkey_to_hex`] / [`pubkey_from_hex`]: `"0x04" + hex(X) + hex(Y)`, lowercase, 132 characters (§9.1),
//!   the form of chat ids, member lists and mentions. Parsing is strict: the canonical lowercase form only,
//!   so that the string comparisons the protocol makes (membership, chat ids) cannot be dodged by a second
//!   spelling of the same key.
//! * [`compressed_key_string`] / [`pubkey_from_multibase`]: the self-describing form of §9.2,
//!   `multibase(uvarint(0xe7) ‖ key)` (multicodec `secp256k1-pub`), base58btc with prefix `z` for output.
//!   Decoding accepts identity (`\0`), `f`/`F` (hex), `b`/`B` (base32), `z` (base58btc), `m` (base64),
//!   `u` (base64url), `U` (base64url, padded) and `0x…` hex (RECOMMENDED), with either the 33-byte compressed
//!   or the 65-byte uncompressed key. Deviation: inputs longer than [`MAX_MULTIBASE_CHARS`] are refused
//!   (base58 decoding is quadratic; a real key string is at most ~140 characters).
//! * [`three_word_name`]: §9.3, the low 64 bits of X seed a 64-bit Fibonacci LFSR (polynomial `0xB8`) that
//!   picks adjective, adjective, animal. The word lists (1389 adjectives, 1704 animals, order significant,
//!   duplicates included) are `alias_adjectives.txt` / `alias_animals.txt`, generated from the reference's
//!   `data.go` (`tests/vectors/alias_wordlists.json`) and compiled in.
//!
//! Not implemented here: BIP39/BIP32 derivation (§9.1) and the identicon (§9.4).

use super::ChatError;
use crate::crypto::{pubkey_from_sec1, pubkey_to_compressed, pubkey_to_uncompressed, PublicKey};

/// Length of the `"0x04…"` text form.
pub const PUBKEY_HEX_LEN: usize = 132;
/// The unsigned-varint encoding of multicodec `secp256k1-pub` (0xe7).
pub const SECP256K1_PUB_MULTICODEC: [u8; 2] = [0xe7, 0x01];
/// Longest multibase key string accepted.
pub const MAX_MULTIBASE_CHARS: usize = 256;

const ADJECTIVES: &str = include_str!("alias_adjectives.txt");
const ANIMALS: &str = include_str!("alias_animals.txt");
/// Number of adjectives in the reference list.
pub const ADJECTIVE_COUNT: u64 = 1389;
/// Number of animals in the reference list.
pub const ANIMAL_COUNT: u64 = 1704;
/// Feedback polynomial of the alias LFSR.
const LFSR_POLY: u64 = 0xB8;

/// `"0x04" + lowercase hex(X‖Y)`.
pub fn pubkey_to_hex(pk: &PublicKey) -> String {
    let mut s = String::with_capacity(PUBKEY_HEX_LEN);
    s.push_str("0x");
    push_hex(&mut s, &pubkey_to_uncompressed(pk));
    s
}

/// Parse the canonical `"0x04…"` form (132 characters, lowercase hex, a point on the curve).
pub fn pubkey_from_hex(s: &str) -> Result<PublicKey, ChatError> {
    if s.len() != PUBKEY_HEX_LEN || !s.starts_with("0x04") {
        return Err(ChatError::InvalidPublicKey);
    }
    let bytes = decode_hex(&s[2..], false).ok_or(ChatError::InvalidPublicKey)?;
    pubkey_from_sec1(&bytes).ok_or(ChatError::InvalidPublicKey)
}

/// Whether `s` is the canonical text form of a valid public key.
pub fn is_pubkey_hex(s: &str) -> bool {
    pubkey_from_hex(s).is_ok()
}

/// The multicodec bytes `e7 01 ‖ key`, with the 33-byte compressed key or the 65-byte uncompressed one.
pub fn multicodec_key_bytes(pk: &PublicKey, compressed: bool) -> Vec<u8> {
    let mut out = SECP256K1_PUB_MULTICODEC.to_vec();
    if compressed {
        out.extend_from_slice(&pubkey_to_compressed(pk));
    } else {
        out.extend_from_slice(&pubkey_to_uncompressed(pk));
    }
    out
}

/// The default compressed key string: base58btc multibase (`z…`, keys start with `zQ3sh`).
pub fn compressed_key_string(pk: &PublicKey) -> String {
    encode_multibase(Multibase::Base58Btc, &multicodec_key_bytes(pk, true))
}

/// Parse a self-describing key string (any supported multibase, or `0x` hex) of a compressed or
/// uncompressed `secp256k1-pub` key.
pub fn pubkey_from_multibase(s: &str) -> Result<PublicKey, ChatError> {
    if s.len() > MAX_MULTIBASE_CHARS {
        return Err(ChatError::InvalidPublicKey);
    }
    let bytes = decode_multibase(s).ok_or(ChatError::InvalidPublicKey)?;
    let key = bytes
        .strip_prefix(&SECP256K1_PUB_MULTICODEC[..])
        .ok_or(ChatError::InvalidPublicKey)?;
    if key.len() != 33 && key.len() != 65 {
        return Err(ChatError::InvalidPublicKey);
    }
    pubkey_from_sec1(key).ok_or(ChatError::InvalidPublicKey)
}

/// The multibase encodings this module writes (all of them are also read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Multibase {
    /// `f`: lowercase hex.
    Base16,
    /// `F`: uppercase hex.
    Base16Upper,
    /// `b`: RFC 4648 base32, lowercase, no padding.
    Base32,
    /// `B`: RFC 4648 base32, uppercase, no padding.
    Base32Upper,
    /// `z`: base58 with the Bitcoin alphabet.
    Base58Btc,
    /// `m`: RFC 4648 base64, no padding.
    Base64,
    /// `u`: RFC 4648 base64url, no padding.
    Base64Url,
    /// `U`: RFC 4648 base64url with padding.
    Base64UrlPad,
}

const B58: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const B32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Encode `data` with a multibase prefix.
pub fn encode_multibase(base: Multibase, data: &[u8]) -> String {
    let mut s = String::new();
    match base {
        Multibase::Base16 => {
            s.push('f');
            push_hex(&mut s, data);
        }
        Multibase::Base16Upper => {
            s.push('F');
            let mut h = String::new();
            push_hex(&mut h, data);
            s.push_str(&h.to_ascii_uppercase());
        }
        Multibase::Base32 => {
            s.push('b');
            s.push_str(&encode_bits(data, 5, B32));
        }
        Multibase::Base32Upper => {
            s.push('B');
            s.push_str(&encode_bits(data, 5, B32).to_ascii_uppercase());
        }
        Multibase::Base58Btc => {
            s.push('z');
            s.push_str(&encode_base58(data));
        }
        Multibase::Base64 => {
            s.push('m');
            s.push_str(&encode_bits(data, 6, B64));
        }
        Multibase::Base64Url => {
            s.push('u');
            s.push_str(&encode_bits(data, 6, B64URL));
        }
        Multibase::Base64UrlPad => {
            s.push('U');
            s.push_str(&encode_bits(data, 6, B64URL));
            while (s.len() - 1) % 4 != 0 {
                s.push('=');
            }
        }
    }
    s
}

/// Decode a multibase string (or `0x` hex); `None` for an unknown prefix or a malformed body.
pub fn decode_multibase(s: &str) -> Option<Vec<u8>> {
    if let Some(hex) = s.strip_prefix("0x") {
        return decode_hex(hex, true);
    }
    let mut chars = s.chars();
    let prefix = chars.next()?;
    let body = chars.as_str();
    match prefix {
        '\0' => Some(body.as_bytes().to_vec()),
        'f' | 'F' => decode_hex(body, true),
        'b' => decode_bits(body, 5, B32),
        'B' => decode_bits(&body.to_ascii_lowercase(), 5, B32),
        'z' => decode_base58(body),
        'm' => decode_bits(body, 6, B64),
        'u' => decode_bits(body, 6, B64URL),
        'U' => decode_bits(body.trim_end_matches('='), 6, B64URL),
        _ => None,
    }
}

fn push_hex(s: &mut String, data: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in data {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 15)]));
    }
}

fn decode_hex(s: &str, any_case: bool) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if b.len() % 2 != 0 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' if any_case => Some(c - b'A' + 10),
        _ => None,
    };
    b.chunks_exact(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

/// RFC 4648 encoding without padding for 5- or 6-bit alphabets.
fn encode_bits(data: &[u8], bits: u32, alphabet: &[u8]) -> String {
    let mask = (1u32 << bits) - 1;
    let mut out = String::new();
    let (mut acc, mut n) = (0u32, 0u32);
    for &b in data {
        acc = (acc << 8) | u32::from(b);
        n += 8;
        while n >= bits {
            n -= bits;
            out.push(char::from(alphabet[((acc >> n) & mask) as usize]));
        }
        acc &= (1 << n) - 1;
    }
    if n > 0 {
        out.push(char::from(alphabet[((acc << (bits - n)) & mask) as usize]));
    }
    out
}

/// RFC 4648 decoding without padding; non-zero leftover bits are rejected (canonical input only).
fn decode_bits(s: &str, bits: u32, alphabet: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * bits as usize / 8);
    let (mut acc, mut n) = (0u32, 0u32);
    for c in s.bytes() {
        let v = alphabet.iter().position(|&a| a == c)? as u32;
        acc = (acc << bits) | v;
        n += bits;
        if n >= 8 {
            n -= 8;
            out.push((acc >> n) as u8);
        }
        acc &= (1 << n) - 1;
    }
    (acc == 0 && n < 8).then_some(out)
}

fn encode_base58(data: &[u8]) -> String {
    let zeros = data.iter().take_while(|&&b| b == 0).count();
    // Little-endian base-58 digits.
    let mut digits: Vec<u8> = Vec::with_capacity(data.len() * 138 / 100 + 1);
    for &b in &data[zeros..] {
        let mut carry = u32::from(b);
        for d in digits.iter_mut() {
            carry += u32::from(*d) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let mut s = String::with_capacity(zeros + digits.len());
    s.extend(std::iter::repeat_n('1', zeros));
    s.extend(digits.iter().rev().map(|&d| char::from(B58[usize::from(d)])));
    s
}

fn decode_base58(s: &str) -> Option<Vec<u8>> {
    let zeros = s.bytes().take_while(|&c| c == b'1').count();
    // Little-endian base-256 bytes.
    let mut bytes: Vec<u8> = Vec::with_capacity(s.len());
    for c in s.bytes().skip(zeros) {
        let mut carry = B58.iter().position(|&a| a == c)? as u32;
        for b in bytes.iter_mut() {
            carry += u32::from(*b) * 58;
            *b = carry as u8;
            carry >>= 8;
        }
        while carry > 0 {
            bytes.push(carry as u8);
            carry >>= 8;
        }
    }
    let mut out = vec![0u8; zeros];
    out.extend(bytes.iter().rev());
    Some(out)
}

/// The alias seed of a key: the low 64 bits of its X coordinate.
pub fn alias_seed(pk: &PublicKey) -> u64 {
    let raw = crate::crypto::pubkey_to_raw64(pk);
    let mut low = [0u8; 8];
    low.copy_from_slice(&raw[24..32]);
    u64::from_be_bytes(low)
}

/// The 64-bit Fibonacci LFSR of the reference's `flfsr.go`.
#[derive(Debug, Clone)]
struct Lfsr {
    state: u64,
}

impl Lfsr {
    fn next(&mut self) -> u64 {
        let mut bit = 0u64;
        for i in 0..64 {
            if LFSR_POLY >> i & 1 == 1 {
                bit ^= self.state >> i;
            }
        }
        self.state = (self.state << 1) | (bit & 1);
        self.state
    }
}

fn word(list: &'static str, index: u64) -> &'static str {
    usize::try_from(index)
        .ok()
        .and_then(|i| list.lines().nth(i))
        .unwrap_or_default()
}

/// The 3-word name of an LFSR seed: `"Adjective Adjective Animal"`.
pub fn three_word_name_from_seed(seed: u64) -> String {
    let mut lfsr = Lfsr { state: seed };
    let a = word(ADJECTIVES, lfsr.next() % ADJECTIVE_COUNT);
    let b = word(ADJECTIVES, lfsr.next() % ADJECTIVE_COUNT);
    let c = word(ANIMALS, lfsr.next() % ANIMAL_COUNT);
    format!("{a} {b} {c}")
}

/// The 3-word pseudonym of a chat key (§9.3).
pub fn three_word_name(pk: &PublicKey) -> String {
    three_word_name_from_seed(alias_seed(pk))
}

#[cfg(test)]
mod tests;
