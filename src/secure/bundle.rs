//! Prekey bundles (docs/protocol/secure-transport.md §3): the signed list of one identity's per-installation
//! signed prekeys, and this device's own signed prekeys with their rotation.
//!
//! Signature (§3.2): for every installation id in byte-wise sorted order append `utf8(id) ‖ spk(33 bytes) ‖
//! decimal(version)`, then `decimal(timestamp)` if the timestamp is non-zero; sign `keccak256` of that with
//! the identity key as go-ethereum's `crypto.Sign` does (65 bytes `r‖s‖v`, `v ∈ {0,1}`). The verifier
//! recovers the signer and requires it to be the bundle's identity. `protocol_version` is not signed.
//!
//! A bundle travels, unchanged until it is re-signed, with every message of its sender, so the receiver
//! keeps the signers of the last signatures it recovered ([`VerifiedBundles`]) and recovers each distinct
//! signature over the same material once.

use std::collections::{BTreeMap, VecDeque};

use prost::Message as _;
use rand_core::CryptoRngCore;
use status_proto::encryption as pb;

use super::dh::{CompressedKey, Curve, Secp256k1};
use super::SecureError;
use crate::crypto::{self, keccak256, SecretKey};
use crate::time::Timestamp;

/// The signers of the last [`VerifiedBundles::CAPACITY`] bundle signatures recovered, by (digest of the
/// signed material, signature); the oldest is forgotten first. Only a signature over exactly the same
/// material hits, so the answer is the one recovery would give.
#[derive(Debug, Clone, Default)]
pub struct VerifiedBundles {
    entries: VecDeque<([u8; 32], [u8; 65], CompressedKey)>,
}

impl VerifiedBundles {
    /// Signatures remembered.
    pub const CAPACITY: usize = 64;

    /// The signer of `signature` over `digest`, recovered unless remembered.
    pub fn signer(&mut self, digest: &[u8; 32], signature: &[u8; 65]) -> Result<CompressedKey, SecureError> {
        if let Some((_, _, k)) = self
            .entries
            .iter()
            .find(|(d, s, _)| d == digest && s == signature)
        {
            return Ok(*k);
        }
        let signer = crypto::recover(signature, digest).map_err(|_| SecureError::BadBundleSignature)?;
        let key = CompressedKey::from_public(&signer);
        if self.entries.len() >= Self::CAPACITY {
            self.entries.pop_front();
        }
        self.entries.push_back((*digest, *signature, key));
        Ok(key)
    }

    /// Signatures remembered now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The protocol version this implementation advertises for its installations (§2).
pub const PROTOCOL_VERSION: u32 = 1;

/// One installation's entry in a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPreKey {
    /// The signed prekey (33-byte compressed secp256k1).
    pub signed_pre_key: CompressedKey,
    /// Generation counter of that installation's prekey (1, 2, ...).
    pub version: u32,
    /// The installation's protocol version (not covered by the signature).
    pub protocol_version: u32,
}

/// A verified (or freshly signed) prekey bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// The identity key that signed the bundle.
    pub identity: CompressedKey,
    /// Signed prekeys by installation id (sorted, as the signature needs).
    pub signed_pre_keys: BTreeMap<String, SignedPreKey>,
    /// 65-byte recoverable signature.
    pub signature: [u8; 65],
    /// Signing time in nanoseconds since the UNIX epoch (Go `UnixNano`).
    pub timestamp: i64,
}

/// The exact bytes the bundle signature covers (§3.2).
pub fn signature_material(signed_pre_keys: &BTreeMap<String, SignedPreKey>, timestamp: i64) -> Vec<u8> {
    let mut m = Vec::new();
    for (id, spk) in signed_pre_keys {
        m.extend_from_slice(id.as_bytes());
        m.extend_from_slice(spk.signed_pre_key.as_ref());
        m.extend_from_slice(spk.version.to_string().as_bytes());
    }
    if timestamp != 0 {
        m.extend_from_slice(timestamp.to_string().as_bytes());
    }
    m
}

/// A bundle timestamp (ns) from the caller's clock (ms).
pub fn timestamp_nanos(now: Timestamp) -> i64 {
    i64::try_from(now.as_millis().saturating_mul(1_000_000)).unwrap_or(i64::MAX)
}

impl Bundle {
    /// Sign `signed_pre_keys` at `timestamp` (ns) with the identity key.
    pub fn sign(
        identity: &SecretKey,
        signed_pre_keys: BTreeMap<String, SignedPreKey>,
        timestamp: i64,
    ) -> Result<Bundle, SecureError> {
        let digest = keccak256(&signature_material(&signed_pre_keys, timestamp));
        let signature = crypto::sign_recoverable(identity, &digest).map_err(|_| SecureError::Signing)?;
        Ok(Bundle {
            identity: CompressedKey::from_public(&identity.public_key()),
            signed_pre_keys,
            signature,
            timestamp,
        })
    }

    /// Check that the signature recovers to [`Bundle::identity`], recovering it only if `cache` has not
    /// seen the same signature over the same material.
    pub fn verify_cached(&self, cache: &mut VerifiedBundles) -> Result<(), SecureError> {
        let digest = keccak256(&signature_material(&self.signed_pre_keys, self.timestamp));
        if cache.signer(&digest, &self.signature)? != self.identity {
            return Err(SecureError::BadBundleSignature);
        }
        Ok(())
    }

    /// Parse and verify a wire bundle through `cache` (see [`Bundle::verify_cached`]). At most
    /// `max_installations` entries are accepted.
    pub fn from_proto_cached(
        b: &pb::Bundle,
        max_installations: usize,
        cache: &mut VerifiedBundles,
    ) -> Result<Bundle, SecureError> {
        let bundle = Self::parse(b, max_installations)?;
        bundle.verify_cached(cache)?;
        Ok(bundle)
    }

    /// Check that the signature recovers to [`Bundle::identity`].
    pub fn verify(&self) -> Result<(), SecureError> {
        let digest = keccak256(&signature_material(&self.signed_pre_keys, self.timestamp));
        let signer =
            crypto::recover(&self.signature, &digest).map_err(|_| SecureError::BadBundleSignature)?;
        if CompressedKey::from_public(&signer) != self.identity {
            return Err(SecureError::BadBundleSignature);
        }
        Ok(())
    }

    /// Parse and verify a wire bundle. At most `max_installations` entries are accepted.
    pub fn from_proto(b: &pb::Bundle, max_installations: usize) -> Result<Bundle, SecureError> {
        let bundle = Self::parse(b, max_installations)?;
        bundle.verify()?;
        Ok(bundle)
    }

    /// Parse a wire bundle without checking its signature.
    fn parse(b: &pb::Bundle, max_installations: usize) -> Result<Bundle, SecureError> {
        let identity = Secp256k1::public_from_bytes(&b.identity).ok_or(SecureError::MalformedBundle)?;
        if b.signed_pre_keys.len() > max_installations || b.signed_pre_keys.is_empty() {
            return Err(SecureError::MalformedBundle);
        }
        let mut spks = BTreeMap::new();
        for (id, spk) in &b.signed_pre_keys {
            if id.is_empty() || id.len() > MAX_INSTALLATION_ID_LEN {
                return Err(SecureError::MalformedBundle);
            }
            let key =
                Secp256k1::public_from_bytes(&spk.signed_pre_key).ok_or(SecureError::MalformedBundle)?;
            spks.insert(
                id.clone(),
                SignedPreKey {
                    signed_pre_key: key,
                    version: spk.version,
                    protocol_version: spk.protocol_version,
                },
            );
        }
        let signature: [u8; 65] = b
            .signature
            .as_ref()
            .try_into()
            .map_err(|_| SecureError::BadBundleSignature)?;
        Ok(Bundle {
            identity,
            signed_pre_keys: spks,
            signature,
            timestamp: b.timestamp,
        })
    }

    /// Decode and verify a protobuf-encoded bundle.
    pub fn decode(bytes: &[u8], max_installations: usize) -> Result<Bundle, SecureError> {
        let b = pb::Bundle::decode(bytes).map_err(|_| SecureError::Decode)?;
        Self::from_proto(&b, max_installations)
    }

    /// The wire form.
    pub fn to_proto(&self) -> pb::Bundle {
        pb::Bundle {
            identity: self.identity.to_bytes().to_vec().into(),
            signed_pre_keys: self
                .signed_pre_keys
                .iter()
                .map(|(id, s)| {
                    (
                        id.clone(),
                        pb::SignedPreKey {
                            signed_pre_key: s.signed_pre_key.to_bytes().to_vec().into(),
                            version: s.version,
                            protocol_version: s.protocol_version,
                        },
                    )
                })
                .collect(),
            signature: self.signature.to_vec().into(),
            timestamp: self.timestamp,
        }
    }

    /// The protobuf encoding.
    pub fn encode(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }
}

/// Longest installation id accepted from the wire (a UUID is 36 characters).
pub const MAX_INSTALLATION_ID_LEN: usize = 128;

/// One of this device's signed prekeys.
#[derive(Clone)]
pub struct OwnSignedPreKey {
    pub(crate) secret: SecretKey,
    pub(crate) public: CompressedKey,
    /// Generation counter (the first prekey is 1).
    pub version: u32,
    /// When it was created.
    pub created: Timestamp,
    /// Replaced by a newer prekey: no longer advertised nor used to pick sessions for sending, but still
    /// accepted for incoming X3DH.
    pub expired: bool,
}

impl core::fmt::Debug for OwnSignedPreKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OwnSignedPreKey")
            .field("public", &self.public)
            .field("version", &self.version)
            .field("created", &self.created)
            .field("expired", &self.expired)
            .finish_non_exhaustive()
    }
}

impl OwnSignedPreKey {
    /// Build from an explicit private key (vectors, imports).
    pub fn from_secret(secret: SecretKey, version: u32, created: Timestamp) -> Self {
        let public = Secp256k1::public_key(&secret);
        OwnSignedPreKey {
            secret,
            public,
            version,
            created,
            expired: false,
        }
    }

    /// The private prekey.
    pub fn secret(&self) -> &SecretKey {
        &self.secret
    }

    /// The public prekey.
    pub fn public(&self) -> &CompressedKey {
        &self.public
    }
}

/// This device's signed prekeys, newest last: the current one plus up to `keep - 1` expired ones kept so
/// that peers' X3DH messages against a recently rotated prekey still open (§3.3, §10).
#[derive(Debug, Clone, Default)]
pub struct OwnPrekeys {
    keys: Vec<OwnSignedPreKey>,
}

impl OwnPrekeys {
    /// The current (non-expired, newest) prekey.
    pub fn current(&self) -> Option<&OwnSignedPreKey> {
        self.keys.iter().rev().find(|k| !k.expired)
    }

    /// All kept prekeys, oldest first.
    pub fn all(&self) -> &[OwnSignedPreKey] {
        &self.keys
    }

    /// The prekey with public key `public`, expired or not.
    pub fn find(&self, public: &CompressedKey) -> Option<&OwnSignedPreKey> {
        self.keys.iter().find(|k| &k.public == public)
    }

    /// Add an explicit prekey as the current one (earlier ones become expired); keeps at most `keep`.
    pub fn insert(&mut self, key: OwnSignedPreKey, keep: usize) {
        for k in &mut self.keys {
            k.expired = true;
        }
        self.keys.retain(|k| k.public != key.public);
        self.keys.push(key);
        let keep = keep.max(1);
        if self.keys.len() > keep {
            let drop = self.keys.len() - keep;
            self.keys.drain(..drop);
        }
    }

    /// Append a prekey as exported (flags kept); keeps at most `keep`, dropping the oldest.
    pub fn push_raw(&mut self, key: OwnSignedPreKey, keep: usize) {
        self.keys.retain(|k| k.public != key.public);
        self.keys.push(key);
        let keep = keep.max(1);
        if self.keys.len() > keep {
            let drop = self.keys.len() - keep;
            self.keys.drain(..drop);
        }
    }

    /// When the current prekey is due for rotation (`None` if there is none yet: rotate now).
    pub fn next_rotation(&self, interval: core::time::Duration) -> Option<Timestamp> {
        self.current().map(|k| k.created + interval)
    }

    /// Create a fresh prekey if there is none or the current one is at least `interval` old (§3.3).
    /// Returns whether a new prekey was made.
    pub fn rotate_if_due(
        &mut self,
        now: Timestamp,
        interval: core::time::Duration,
        keep: usize,
        rng: &mut dyn CryptoRngCore,
    ) -> bool {
        if let Some(due) = self.next_rotation(interval) {
            if now < due {
                return false;
            }
        }
        let version = self
            .keys
            .iter()
            .map(|k| k.version)
            .max()
            .unwrap_or(0)
            .saturating_add(1);
        let secret = Secp256k1::generate(rng);
        self.insert(OwnSignedPreKey::from_secret(secret, version, now), keep);
        true
    }
}

#[cfg(test)]
mod tests;
