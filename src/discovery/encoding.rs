//! The two RFC 4648 encodings EIP-778 and EIP-1459 use, both without padding: URL-safe base64 (ENR
//! text form, root signatures) and base32 with the standard upper-case alphabet (tree hashes, `enrtree`
//! public keys).
//!
//! They come from the `data-encoding` crate (2.x, widely used, maintained, no dependencies): unlike
//! `base64`/`base64ct` it offers both alphabets, and its encodings are configurable. The base64url one is
//! the strict predefined constant (no padding, nothing outside the alphabet, zero trailing bits), so an
//! accepted ENR text has exactly one byte form. Base32 is decoded like go-ethereum's
//! `base32.StdEncoding.WithPadding(NoPadding)`, which ignores the unused trailing bits of the last
//! character: go-ethereum's own tests use such hashes (`BBBB…`); encoding always writes zero bits.

use data_encoding::{Encoding, Specification, BASE32_NOPAD};

pub(crate) use data_encoding::BASE64URL_NOPAD as BASE64URL;

/// Unpadded standard base32 for encoding (trailing bits zero).
pub(crate) const BASE32: Encoding = BASE32_NOPAD;

/// Decode unpadded standard base32, ignoring the last character's unused trailing bits.
pub(crate) fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut spec = Specification::new();
    spec.symbols.push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
    spec.check_trailing_bits = false;
    spec.encoding().ok()?.decode(s.as_bytes()).ok()
}
