//! X3DH as Status runs it (docs/protocol/secure-transport.md §4): no one-time prekeys and a single Keccak-256
//! as the KDF, `SK = keccak256(DH1 ‖ DH2 ‖ DH3)`, with no associated data. Generic over the [`Curve`]; on the
//! wire the curve is secp256k1 and every key is the one in the bundle.
//!
//! The initiator's identity key is not in the X3DH header: the responder takes it from the transport
//! signature, so these functions take it as an explicit argument.

use super::dh::Curve;
use super::kdf::Key32;
use super::SecureError;
use crate::crypto::keccak256_concat;

/// Initiator (Alice) side: `DH1 = DH(IK_A, SPK_B)`, `DH2 = DH(EK_A, IK_B)`, `DH3 = DH(EK_A, SPK_B)`.
pub fn initiate<C: Curve>(
    own_identity: &C::SecretKey,
    own_ephemeral: &C::SecretKey,
    peer_identity: &C::PublicKey,
    peer_signed_prekey: &C::PublicKey,
) -> Result<Key32, SecureError> {
    let dh1 = C::diffie_hellman(own_identity, peer_signed_prekey)?;
    let dh2 = C::diffie_hellman(own_ephemeral, peer_identity)?;
    let dh3 = C::diffie_hellman(own_ephemeral, peer_signed_prekey)?;
    Ok(Key32::new(keccak256_concat(&[&dh1[..], &dh2[..], &dh3[..]])))
}

/// Responder (Bob) side: `DH1 = DH(SPK_B, IK_A)`, `DH2 = DH(IK_B, EK_A)`, `DH3 = DH(SPK_B, EK_A)`.
pub fn respond<C: Curve>(
    own_identity: &C::SecretKey,
    own_signed_prekey: &C::SecretKey,
    peer_identity: &C::PublicKey,
    peer_ephemeral: &C::PublicKey,
) -> Result<Key32, SecureError> {
    let dh1 = C::diffie_hellman(own_signed_prekey, peer_identity)?;
    let dh2 = C::diffie_hellman(own_identity, peer_ephemeral)?;
    let dh3 = C::diffie_hellman(own_signed_prekey, peer_ephemeral)?;
    Ok(Key32::new(keccak256_concat(&[&dh1[..], &dh2[..], &dh3[..]])))
}

#[cfg(test)]
mod tests;
