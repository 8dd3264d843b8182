//! The shared secrets and topic names this layer owns (docs/protocol/secure-transport.md §11): the negotiated
//! secret `S = DH(IK_mine, IK_peer)` and the names of the negotiated, partitioned and contact-code topics.
//!
//! A topic name becomes a 4-byte Waku topic with [`topic`] (`keccak256(name)[0..4]`). The symmetric keys
//! derived from names (PBKDF2) belong to the transport layer and are not computed here.

use zeroize::Zeroizing;

use crate::crypto::{self, keccak256, PublicKey, SecretKey};

/// `S = DH(IK_mine, IK_peer)`: the 32-byte X coordinate, identical from both sides.
pub fn negotiated_secret(own_identity: &SecretKey, peer_identity: &PublicKey) -> Zeroizing<[u8; 32]> {
    crypto::ecdh_x(own_identity, peer_identity)
}

/// A negotiated secret as the machine hands it to the transport: zeroized on drop, never printed, compared
/// in constant time.
#[derive(Clone)]
pub struct NegotiatedSecret(Zeroizing<[u8; 32]>);

impl PartialEq for NegotiatedSecret {
    fn eq(&self, other: &Self) -> bool {
        subtle::ConstantTimeEq::ct_eq(&self.0[..], &other.0[..]).into()
    }
}

impl Eq for NegotiatedSecret {}

impl NegotiatedSecret {
    /// `S` between our identity and `peer_identity`.
    pub fn derive(own_identity: &SecretKey, peer_identity: &PublicKey) -> Self {
        NegotiatedSecret(negotiated_secret(own_identity, peer_identity))
    }

    /// The 32 bytes of `S`.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The negotiated topic name (`hex(S)`).
    pub fn topic_name(&self) -> String {
        negotiated_topic_name(&self.0)
    }
}

impl core::fmt::Debug for NegotiatedSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("NegotiatedSecret(..)")
    }
}

/// The negotiated topic name: lowercase hex of the secret, no `0x`.
pub fn negotiated_topic_name(secret: &[u8; 32]) -> String {
    hex_lower(secret)
}

/// The local chat id of a negotiated chat: `0x‖hex(uncompressed IK_peer)‖-negotiated`.
pub fn negotiated_chat_id(peer_identity: &PublicKey) -> String {
    format!(
        "0x{}-negotiated",
        hex_lower(&crypto::pubkey_to_uncompressed(peer_identity))
    )
}

/// The partitioned topic name: `contact-discovery-` ‖ decimal(X mod 5000).
pub fn partitioned_topic_name(identity: &PublicKey) -> String {
    let raw = crypto::pubkey_to_raw64(identity);
    let rem = raw[..32]
        .iter()
        .fold(0u32, |r, b| (r * 256 + u32::from(*b)) % 5000);
    format!("contact-discovery-{rem}")
}

/// The contact-code topic name (bundle publishing): `0x‖hex(uncompressed IK)‖-contact-code`.
pub fn contact_code_topic_name(identity: &PublicKey) -> String {
    format!(
        "0x{}-contact-code",
        hex_lower(&crypto::pubkey_to_uncompressed(identity))
    )
}

/// A topic name as a 4-byte Waku topic.
pub fn topic(name: &str) -> [u8; 4] {
    let h = keccak256(name.as_bytes());
    [h[0], h[1], h[2], h[3]]
}

fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}
