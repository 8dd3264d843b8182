//! The two RFC 4648 encodings EIP-778 and EIP-1459 use, both without padding: URL-safe base64 (ENR
//! text form, root signatures) and base32 with the standard upper-case alphabet (tree hashes, `enrtree`
//! public keys).
//!
//! They come from the `data-encoding` crate (2.x, widely used, maintained, no dependencies): unlike
//! `base64`/`base64ct` it offers both alphabets, and its predefined encodings are strict (they reject
//! padding, characters outside the alphabet and non-zero trailing bits), so every accepted string has
//! exactly one byte form, which keeps `text → bytes → text` an identity for hashes and records.

pub(crate) use data_encoding::BASE64URL_NOPAD as BASE64URL;
