//! The `test/1` demo capability spoken by the examples, the `status-node demo-rlpx` run and the interop
//! tests (an RLPx sub-protocol of `docs/protocol/rlpx.md`, "Sub-protocols"; not part of Status): code 0
//! carries a text message as the RLP list `[text]`; code 1 is the interop greeting, in the same form.
//! Also the hex form of a secret key that the examples and `status-node` take on the command line.

use crate::rlpx::Protocol;

/// Code of a text message.
pub const TEXT: u64 = 0;
/// Code of the interop greeting.
pub const GREETING: u64 = 1;

/// The `test/1` capability with 8 message codes.
pub fn protocol() -> Protocol {
    match Protocol::new("test", 1, 8) {
        Some(p) => p,
        None => unreachable!("\"test\" is a valid capability name"),
    }
}

/// Encode `[text]`.
pub fn encode_text(text: &str) -> Vec<u8> {
    let mut s = rlp::RlpStream::new_list(1);
    s.append(&text.as_bytes());
    s.out().to_vec()
}

/// Decode `[text]`; `None` if it is anything else.
pub fn decode_text(payload: &[u8]) -> Option<String> {
    let r = rlp::Rlp::new(payload);
    if !r.is_list() || r.item_count().ok()? != 1 {
        return None;
    }
    String::from_utf8(r.at(0).ok()?.data().ok()?.to_vec()).ok()
}

/// Parse a 64-hex-character secret key (an optional `0x` prefix and surrounding whitespace allowed).
pub fn parse_key(hex_key: &str) -> Option<crate::crypto::SecretKey> {
    let s = hex_key.trim().trim_start_matches("0x");
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut b = zeroize::Zeroizing::new([0u8; 32]);
    for (i, c) in s.as_bytes().chunks(2).enumerate() {
        b[i] = u8::from_str_radix(std::str::from_utf8(c).ok()?, 16).ok()?;
    }
    crate::crypto::secret_from_bytes(&b[..])
}

#[cfg(test)]
mod tests {
    #[test]
    fn text_round_trip() {
        assert_eq!(
            super::decode_text(&super::encode_text("hi")).as_deref(),
            Some("hi")
        );
        assert_eq!(super::decode_text(&[0xc0]), None);
        assert!(super::parse_key(&"11".repeat(32)).is_some());
        assert!(super::parse_key("zz").is_none());
    }
}
