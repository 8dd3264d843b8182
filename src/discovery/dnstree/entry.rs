//! EIP-1459 entries ("DNS Record Structure"): roots, branches, records and links as TXT text, the
//! `enrtree://` URL, and entry hashes.

use core::fmt;
use core::str::FromStr;

use k256::ecdsa::signature::hazmat::PrehashVerifier;
use k256::ecdsa::{Signature, VerifyingKey};

use crate::crypto::{
    keccak256, pubkey_from_sec1, pubkey_to_compressed, sign_recoverable, PublicKey, SecretKey,
};

use super::super::encoding::{base32_decode, BASE32, BASE64URL};
use super::super::enr::{Enr, EnrError};

/// Prefix of a root entry.
pub const ROOT_PREFIX: &str = "enrtree-root:v1";
/// Prefix of a link entry and of tree URLs.
pub const LINK_PREFIX: &str = "enrtree://";
/// Prefix of a branch entry.
pub const BRANCH_PREFIX: &str = "enrtree-branch:";
/// The longest TXT text accepted for one entry (a UDP DNS answer is at most 512 bytes).
pub const MAX_ENTRY_LEN: usize = 1024;
/// The longest domain name accepted (RFC 1035).
pub const MAX_DOMAIN_LEN: usize = 253;

/// Why a TXT entry was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// The text starts with none of the entry prefixes.
    #[error("unknown entry type")]
    Unknown,
    /// The text is longer than [`MAX_ENTRY_LEN`].
    #[error("entry too long")]
    TooLong,
    /// A root entry that is not `enrtree-root:v1 e=… l=… seq=… sig=…`.
    #[error("malformed root entry")]
    RootSyntax,
    /// A hash that is not unpadded base32 of 12 to 32 bytes.
    #[error("invalid child hash")]
    InvalidHash,
    /// A signature that is not 65 bytes of unpadded base64url.
    #[error("invalid root signature encoding")]
    SignatureEncoding,
    /// A link without `<key>@`.
    #[error("link without a public key")]
    NoPublicKey,
    /// A link whose key is not base32 of a compressed secp256k1 point.
    #[error("invalid link public key")]
    BadPublicKey,
    /// A link whose domain is empty, too long or has characters DNS names do not.
    #[error("invalid link domain")]
    BadDomain,
    /// An `enr:` entry whose record was rejected.
    #[error("invalid node record: {0}")]
    Enr(EnrError),
}

/// The abbreviated hash naming an entry: unpadded base32 of the first 16 bytes of Keccak-256 of `text`.
pub fn entry_hash(text: &str) -> String {
    BASE32.encode(&keccak256(text.as_bytes())[..16])
}

/// Decode a child hash: unpadded base32 of 12 to 32 bytes, as go-ethereum's `isValidHash` accepts.
pub fn decode_hash(hash: &str) -> Result<Vec<u8>, EntryError> {
    // 32 bytes are 52 characters; refuse longer strings before decoding.
    if hash.len() > 52 {
        return Err(EntryError::InvalidHash);
    }
    let bytes = base32_decode(hash).ok_or(EntryError::InvalidHash)?;
    if !(12..=32).contains(&bytes.len()) {
        return Err(EntryError::InvalidHash);
    }
    Ok(bytes)
}

/// Whether `text` hashes to `hash` (Keccak-256 of the text starts with the decoded hash bytes).
pub fn hash_matches(hash: &str, text: &str) -> bool {
    match decode_hash(hash) {
        Ok(want) => keccak256(text.as_bytes()).starts_with(&want),
        Err(_) => false,
    }
}

fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= MAX_DOMAIN_LEN
        && d.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        && !d.starts_with('.')
        && !d.contains("..")
}

/// An `enrtree://<key>@<domain>` URL: where a tree is and which key signs it.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrTreeUrl {
    /// The key that signs the tree's root.
    pub public_key: PublicKey,
    /// The DNS name of the root.
    pub domain: String,
}

impl EnrTreeUrl {
    /// A URL for `domain` signed by `public_key`; fails if the domain is not a plausible DNS name.
    pub fn new(public_key: PublicKey, domain: &str) -> Result<Self, EntryError> {
        if !valid_domain(domain) {
            return Err(EntryError::BadDomain);
        }
        Ok(EnrTreeUrl {
            public_key,
            domain: domain.to_string(),
        })
    }
}

impl FromStr for EnrTreeUrl {
    type Err = EntryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > MAX_ENTRY_LEN {
            return Err(EntryError::TooLong);
        }
        let rest = s.strip_prefix(LINK_PREFIX).ok_or(EntryError::Unknown)?;
        let (key, domain) = rest.split_once('@').ok_or(EntryError::NoPublicKey)?;
        // A compressed key is 33 bytes, 53 base32 characters.
        if key.len() != 53 {
            return Err(EntryError::BadPublicKey);
        }
        let key = base32_decode(key).ok_or(EntryError::BadPublicKey)?;
        if key.len() != 33 {
            return Err(EntryError::BadPublicKey);
        }
        let public_key = pubkey_from_sec1(&key).ok_or(EntryError::BadPublicKey)?;
        EnrTreeUrl::new(public_key, domain)
    }
}

impl fmt::Display for EnrTreeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{LINK_PREFIX}{}@{}",
            BASE32.encode(&pubkey_to_compressed(&self.public_key)),
            self.domain
        )
    }
}

impl fmt::Debug for EnrTreeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EnrTreeUrl({self})")
    }
}

/// A root entry.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RootEntry {
    /// Hash of the root of the node-record subtree.
    pub enr_root: String,
    /// Hash of the root of the link subtree.
    pub link_root: String,
    /// The tree's sequence number.
    pub seq: u64,
    /// The 65-byte signature `r‖s‖v`.
    pub signature: [u8; 65],
}

impl RootEntry {
    /// The signed text: the entry without ` sig=…`.
    pub fn signed_text(&self) -> String {
        format!(
            "{ROOT_PREFIX} e={} l={} seq={}",
            self.enr_root, self.link_root, self.seq
        )
    }

    /// Whether the signature was made by `key` over Keccak-256 of [`RootEntry::signed_text`]. The
    /// recovery id is ignored and high-S signatures fail (go-ethereum `crypto.VerifySignature`).
    pub fn verify(&self, key: &PublicKey) -> bool {
        let digest = keccak256(self.signed_text().as_bytes());
        let Ok(sig) = Signature::from_slice(&self.signature[..64]) else {
            return false;
        };
        VerifyingKey::from(key).verify_prehash(&digest, &sig).is_ok()
    }

    /// A root signed with `sk` (tree publishers and tests).
    pub fn sign(enr_root: &str, link_root: &str, seq: u64, sk: &SecretKey) -> Result<RootEntry, EntryError> {
        decode_hash(enr_root)?;
        decode_hash(link_root)?;
        let mut root = RootEntry {
            enr_root: enr_root.to_string(),
            link_root: link_root.to_string(),
            seq,
            signature: [0; 65],
        };
        let digest = keccak256(root.signed_text().as_bytes());
        root.signature = sign_recoverable(sk, &digest).map_err(|_| EntryError::SignatureEncoding)?;
        Ok(root)
    }

    /// Parse a root entry (the signature is not checked here: see [`RootEntry::verify`]).
    pub fn parse(text: &str) -> Result<RootEntry, EntryError> {
        if text.len() > MAX_ENTRY_LEN {
            return Err(EntryError::TooLong);
        }
        let mut it = text.split_ascii_whitespace();
        if it.next() != Some(ROOT_PREFIX) {
            return Err(EntryError::RootSyntax);
        }
        let mut field = |name: &str| -> Result<&str, EntryError> {
            it.next()
                .and_then(|t| t.strip_prefix(name))
                .ok_or(EntryError::RootSyntax)
        };
        let e = field("e=")?;
        let l = field("l=")?;
        let seq = field("seq=")?;
        let sig = field("sig=")?;
        if it.next().is_some() {
            return Err(EntryError::RootSyntax);
        }
        if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return Err(EntryError::RootSyntax);
        }
        let seq: u64 = seq.parse().map_err(|_| EntryError::RootSyntax)?;
        decode_hash(e)?;
        decode_hash(l)?;
        let sig = BASE64URL
            .decode(sig.as_bytes())
            .map_err(|_| EntryError::SignatureEncoding)?;
        let signature: [u8; 65] = sig.try_into().map_err(|_| EntryError::SignatureEncoding)?;
        Ok(RootEntry {
            enr_root: e.to_string(),
            link_root: l.to_string(),
            seq,
            signature,
        })
    }
}

impl fmt::Display for RootEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} sig={}",
            self.signed_text(),
            BASE64URL.encode(&self.signature)
        )
    }
}

/// A non-root entry of a tree.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Entry {
    /// `enrtree-branch:`: hashes of child entries.
    Branch(Vec<String>),
    /// `enr:`: a verified node record.
    Enr(Box<Enr>),
    /// `enrtree://`: a link to another tree.
    Link(EnrTreeUrl),
}

impl Entry {
    /// True if `text` starts like a subtree entry (branch, link or ENR); [`Entry::parse`] then either
    /// parses it or says why it is malformed, never [`EntryError::Unknown`].
    pub fn is_entry_text(text: &str) -> bool {
        text.starts_with(BRANCH_PREFIX)
            || text.starts_with(LINK_PREFIX)
            || text.starts_with(super::super::enr::ENR_PREFIX)
    }

    /// Parse a subtree entry. A root entry is not a subtree entry and gives [`EntryError::Unknown`].
    pub fn parse(text: &str) -> Result<Entry, EntryError> {
        if text.len() > MAX_ENTRY_LEN {
            return Err(EntryError::TooLong);
        }
        if let Some(rest) = text.strip_prefix(BRANCH_PREFIX) {
            if rest.is_empty() {
                return Ok(Entry::Branch(Vec::new()));
            }
            let mut children = Vec::new();
            for h in rest.split(',') {
                decode_hash(h)?;
                children.push(h.to_string());
            }
            Ok(Entry::Branch(children))
        } else if text.starts_with(LINK_PREFIX) {
            Ok(Entry::Link(text.parse()?))
        } else if text.starts_with(super::super::enr::ENR_PREFIX) {
            Ok(Entry::Enr(Box::new(
                Enr::from_text(text).map_err(EntryError::Enr)?,
            )))
        } else {
            Err(EntryError::Unknown)
        }
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Branch(c) => write!(f, "{BRANCH_PREFIX}{}", c.join(",")),
            Entry::Enr(e) => write!(f, "{e}"),
            Entry::Link(l) => write!(f, "{l}"),
        }
    }
}
