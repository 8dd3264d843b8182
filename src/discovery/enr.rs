//! Ethereum Node Records (EIP-778) with the `v4` identity scheme.
//!
//! A record is the RLP list `[signature, seq, k₁, v₁, k₂, v₂, …]` of at most [`MAX_RECORD_SIZE`] bytes
//! (EIP-778 "RLP Encoding"). Keys are byte strings, sorted and unique ("Specification"); values are any
//! RLP item and are kept verbatim. The `v4` scheme ("\"v4\" Identity Scheme") signs the Keccak-256 of the
//! content list `[seq, k₁, v₁, …]` with secp256k1, the signature being the 64 bytes `r‖s` (no recovery
//! id), and checks it against the 33-byte compressed key under `secp256k1`. The node id is the Keccak-256 of
//! the 64-byte uncompressed key `X‖Y`. The text form is `enr:` followed by the URL-safe base64 of the RLP,
//! without padding ("Text Encoding").
//!
//! An [`Enr`] value is always verified: decoding checks the size limit, the key order, the identity
//! scheme and the signature, so holding one means the record was signed by [`Enr::public_key`].
//!
//! Deliberate strictness beyond go-ethereum's `p2p/enr` (none of which a correct signer produces):
//! the RLP must be canonical as a whole (the decoded record re-encodes to the same bytes, values
//! verbatim), high-S signatures are rejected (as go-ethereum's `VerifySignature` does), and base64 with
//! non-zero trailing bits is rejected.

use core::fmt;
use core::str::FromStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use k256::ecdsa::signature::hazmat::PrehashVerifier;
use k256::ecdsa::{Signature, VerifyingKey};
use rlp::{PayloadInfo, Rlp, RlpStream};

/// The header and payload length of the RLP item at the start of `bytes`, checked to fit in `bytes`.
///
/// `PayloadInfo::from` only parses the header: its `total()` adds the lengths unchecked, and a length
/// prefix of eight `0xff` bytes overflows that addition. Every length here is added with overflow checks
/// and compared with the bytes actually present.
fn item_info(bytes: &[u8]) -> Option<(PayloadInfo, usize)> {
    let info = PayloadInfo::from(bytes).ok()?;
    let total = info.header_len.checked_add(info.value_len)?;
    (total <= bytes.len()).then_some((info, total))
}

use crate::crypto::{
    keccak256, pubkey_from_sec1, pubkey_to_compressed, pubkey_to_raw64, sign_recoverable, PublicKey,
    SecretKey,
};
use crate::enode::Enode;

use super::encoding::BASE64URL;

/// The largest encoded record EIP-778 allows, in bytes.
pub const MAX_RECORD_SIZE: usize = 300;
/// The prefix of the text form.
pub const ENR_PREFIX: &str = "enr:";
/// The `id` value of the only identity scheme defined, `v4`.
pub const ID_V4: &[u8] = b"v4";

/// Why a record was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnrError {
    /// The encoded record is larger than [`MAX_RECORD_SIZE`] bytes.
    #[error("record larger than 300 bytes")]
    TooBig,
    /// The bytes are not an RLP list of byte strings as EIP-778 lays it out.
    #[error("malformed record: {0}")]
    Malformed(&'static str),
    /// The RLP is valid but not in its canonical form.
    #[error("record RLP is not canonical")]
    NonCanonical,
    /// The list has a key without a value.
    #[error("record has a key without a value")]
    IncompletePair,
    /// Keys are not in ascending byte order.
    #[error("record keys are not sorted")]
    NotSorted,
    /// A key appears twice.
    #[error("record has a duplicate key")]
    DuplicateKey,
    /// There is no `id` key or its scheme is not `v4`.
    #[error("unsupported identity scheme")]
    UnknownScheme,
    /// The `secp256k1` entry is missing or not a compressed secp256k1 point.
    #[error("missing or invalid secp256k1 public key")]
    PublicKey,
    /// The signature is not 64 bytes or does not verify against the record's key.
    #[error("invalid record signature")]
    Signature,
    /// The text form does not start with `enr:`.
    #[error("missing enr: prefix")]
    Prefix,
    /// The text form is not unpadded URL-safe base64.
    #[error("invalid base64")]
    Base64,
}

/// The 32-byte node id of the `v4` scheme: Keccak-256 of the uncompressed public key `X‖Y`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub [u8; 32]);

impl NodeId {
    /// The node id of `key`.
    pub fn from_public_key(key: &PublicKey) -> Self {
        NodeId(keccak256(&pubkey_to_raw64(key)))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A verified Ethereum Node Record.
#[derive(Clone, PartialEq, Eq)]
pub struct Enr {
    seq: u64,
    signature: [u8; 64],
    /// Sorted, unique keys with their raw RLP values.
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
    public_key: PublicKey,
    raw: Vec<u8>,
}

/// Split an RLP list payload into its raw items, checking each header against the bytes left.
fn split_items(mut payload: &[u8]) -> Result<Vec<&[u8]>, EnrError> {
    let mut items = Vec::new();
    while !payload.is_empty() {
        let (_, total) = item_info(payload).ok_or(EnrError::Malformed("item header or length"))?;
        let (item, rest) = payload.split_at(total);
        items.push(item);
        payload = rest;
    }
    Ok(items)
}

/// The payload of a byte-string item (not a list).
fn string_payload(item: &[u8]) -> Result<&[u8], EnrError> {
    let r = Rlp::new(item);
    if !r.is_data() {
        return Err(EnrError::Malformed("expected a byte string"));
    }
    r.data().map_err(|_| EnrError::Malformed("byte string"))
}

fn content_rlp(seq: u64, pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut s = RlpStream::new_list(1 + 2 * pairs.len());
    s.append(&seq);
    for (k, v) in pairs {
        s.append(&k.as_slice());
        s.append_raw(v, 1);
    }
    s.out().to_vec()
}

fn record_rlp(signature: &[u8; 64], seq: u64, pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut s = RlpStream::new_list(2 + 2 * pairs.len());
    s.append(&signature.as_slice());
    s.append(&seq);
    for (k, v) in pairs {
        s.append(&k.as_slice());
        s.append_raw(v, 1);
    }
    s.out().to_vec()
}

fn find<'a>(pairs: &'a [(Vec<u8>, Vec<u8>)], key: &[u8]) -> Option<&'a [u8]> {
    pairs
        .binary_search_by(|(k, _)| k.as_slice().cmp(key))
        .ok()
        .map(|i| pairs[i].1.as_slice())
}

/// The `v4` public key of a sorted pair list: `id` must be `v4` and `secp256k1` a compressed key.
fn v4_public_key(pairs: &[(Vec<u8>, Vec<u8>)]) -> Result<PublicKey, EnrError> {
    let id = find(pairs, b"id").ok_or(EnrError::UnknownScheme)?;
    if string_payload(id).map_err(|_| EnrError::UnknownScheme)? != ID_V4 {
        return Err(EnrError::UnknownScheme);
    }
    let key = find(pairs, b"secp256k1").ok_or(EnrError::PublicKey)?;
    let key = string_payload(key).map_err(|_| EnrError::PublicKey)?;
    if key.len() != 33 {
        return Err(EnrError::PublicKey);
    }
    pubkey_from_sec1(key).ok_or(EnrError::PublicKey)
}

impl Enr {
    /// Decode and verify the RLP form of a record.
    pub fn decode(bytes: &[u8]) -> Result<Enr, EnrError> {
        if bytes.len() > MAX_RECORD_SIZE {
            return Err(EnrError::TooBig);
        }
        if bytes.first().is_none_or(|b| *b < 0xc0) {
            return Err(EnrError::Malformed("not a list"));
        }
        let (info, total) = item_info(bytes).ok_or(EnrError::Malformed("list header or length"))?;
        if total != bytes.len() {
            return Err(EnrError::Malformed("length does not match the list header"));
        }
        let items = split_items(&bytes[info.header_len..])?;
        if items.len() < 2 {
            return Err(EnrError::Malformed("missing signature or seq"));
        }
        let sig = string_payload(items[0])?;
        let seq_rlp = Rlp::new(items[1]);
        if !seq_rlp.is_data() {
            return Err(EnrError::Malformed("seq is a list"));
        }
        let seq: u64 = seq_rlp.as_val().map_err(|_| EnrError::Malformed("seq"))?;
        let rest = &items[2..];
        if rest.len() % 2 != 0 {
            return Err(EnrError::IncompletePair);
        }
        let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(rest.len() / 2);
        for kv in rest.chunks_exact(2) {
            let key = string_payload(kv[0])?;
            if let Some((prev, _)) = pairs.last() {
                match prev.as_slice().cmp(key) {
                    core::cmp::Ordering::Equal => return Err(EnrError::DuplicateKey),
                    core::cmp::Ordering::Greater => return Err(EnrError::NotSorted),
                    core::cmp::Ordering::Less => {}
                }
            }
            pairs.push((key.to_vec(), kv[1].to_vec()));
        }
        let public_key = v4_public_key(&pairs)?;
        let signature: [u8; 64] = sig.try_into().map_err(|_| EnrError::Signature)?;
        if record_rlp(&signature, seq, &pairs) != bytes {
            return Err(EnrError::NonCanonical);
        }
        let digest = keccak256(&content_rlp(seq, &pairs));
        let sig = Signature::from_slice(&signature).map_err(|_| EnrError::Signature)?;
        VerifyingKey::from(&public_key)
            .verify_prehash(&digest, &sig)
            .map_err(|_| EnrError::Signature)?;
        Ok(Enr {
            seq,
            signature,
            pairs,
            public_key,
            raw: bytes.to_vec(),
        })
    }

    /// The canonical RLP encoding (exactly the bytes this record was decoded from or signed as).
    pub fn encode(&self) -> &[u8] {
        &self.raw
    }

    /// The sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The 64-byte `r‖s` signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// The node's public key (the `secp256k1` entry).
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// The node id: Keccak-256 of the uncompressed public key.
    pub fn node_id(&self) -> NodeId {
        NodeId::from_public_key(&self.public_key)
    }

    /// The raw RLP value under `key`, if present.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        find(&self.pairs, key)
    }

    /// Every key with its raw RLP value, in key order.
    pub fn pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))
    }

    fn string(&self, key: &[u8]) -> Option<&[u8]> {
        string_payload(self.get(key)?).ok()
    }

    fn port(&self, key: &[u8]) -> Option<u16> {
        let r = Rlp::new(self.get(key)?);
        if !r.is_data() {
            return None;
        }
        r.as_val::<u16>().ok()
    }

    /// The IPv4 address (`ip`, 4 bytes); `None` if absent or malformed.
    pub fn ip4(&self) -> Option<Ipv4Addr> {
        let b: [u8; 4] = self.string(b"ip")?.try_into().ok()?;
        Some(Ipv4Addr::from(b))
    }

    /// The IPv6 address (`ip6`, 16 bytes); `None` if absent or malformed.
    pub fn ip6(&self) -> Option<Ipv6Addr> {
        let b: [u8; 16] = self.string(b"ip6")?.try_into().ok()?;
        Some(Ipv6Addr::from(b))
    }

    /// The TCP port (`tcp`); `None` if absent or not a 16-bit integer.
    pub fn tcp(&self) -> Option<u16> {
        self.port(b"tcp")
    }

    /// The UDP port (`udp`); `None` if absent or not a 16-bit integer.
    pub fn udp(&self) -> Option<u16> {
        self.port(b"udp")
    }

    /// The IPv6 TCP port: `tcp6`, or `tcp` when absent (EIP-778: the `tcp` port applies to both).
    pub fn tcp6(&self) -> Option<u16> {
        match self.get(b"tcp6") {
            Some(_) => self.port(b"tcp6"),
            None => self.tcp(),
        }
    }

    /// The IPv6 UDP port: `udp6`, or `udp` when absent.
    pub fn udp6(&self) -> Option<u16> {
        match self.get(b"udp6") {
            Some(_) => self.port(b"udp6"),
            None => self.udp(),
        }
    }

    /// The `enode://` URL of this node: the IPv4 endpoint when the record has `ip` and `tcp`, otherwise
    /// the IPv6 one (`ip6` with `tcp6`/`tcp`); the UDP port becomes `discport` when it differs. `None`
    /// when the record has no TCP endpoint.
    pub fn to_enode(&self) -> Option<Enode> {
        let (ip, tcp, udp) = match (self.ip4(), self.tcp()) {
            (Some(ip), Some(tcp)) => (IpAddr::V4(ip), tcp, self.udp()),
            _ => (IpAddr::V6(self.ip6()?), self.tcp6()?, self.udp6()),
        };
        let mut e = Enode::new(self.public_key, SocketAddr::new(ip, tcp));
        e.discport = udp.filter(|u| *u != tcp);
        Some(e)
    }

    /// The text form `enr:<base64url>`.
    pub fn to_text(&self) -> String {
        format!("{ENR_PREFIX}{}", BASE64URL.encode(&self.raw))
    }

    /// Parse and verify the text form `enr:<base64url>`.
    pub fn from_text(s: &str) -> Result<Enr, EnrError> {
        let b64 = s.strip_prefix(ENR_PREFIX).ok_or(EnrError::Prefix)?;
        // 300 bytes of RLP are 400 characters of base64: refuse anything longer before decoding.
        if b64.len() > MAX_RECORD_SIZE.div_ceil(3) * 4 {
            return Err(EnrError::TooBig);
        }
        let bytes = BASE64URL.decode(b64.as_bytes()).map_err(|_| EnrError::Base64)?;
        Enr::decode(&bytes)
    }
}

impl FromStr for Enr {
    type Err = EnrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Enr::from_text(s)
    }
}

impl fmt::Display for Enr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl fmt::Debug for Enr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enr")
            .field("seq", &self.seq)
            .field("id", &self.node_id())
            .field("ip", &self.ip4())
            .field("tcp", &self.tcp())
            .field("udp", &self.udp())
            .field("ip6", &self.ip6())
            .finish()
    }
}

impl core::hash::Hash for Enr {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.raw.hash(state);
    }
}

/// Builds and signs a `v4` record (a node publishing its own record, and tests).
#[derive(Clone, Debug, Default)]
pub struct EnrBuilder {
    seq: u64,
    pairs: std::collections::BTreeMap<Vec<u8>, Vec<u8>>,
}

impl EnrBuilder {
    /// An empty record with sequence number 0.
    pub fn new() -> Self {
        EnrBuilder::default()
    }

    /// Set the sequence number.
    pub fn seq(mut self, seq: u64) -> Self {
        self.seq = seq;
        self
    }

    /// Set `key` to a raw RLP item (it is not checked: a malformed item makes [`EnrBuilder::sign`] fail).
    pub fn raw(mut self, key: &[u8], rlp_value: Vec<u8>) -> Self {
        self.pairs.insert(key.to_vec(), rlp_value);
        self
    }

    /// Set `key` to the byte string `value`.
    pub fn bytes(self, key: &[u8], value: &[u8]) -> Self {
        let v = rlp::encode(&value).to_vec();
        self.raw(key, v)
    }

    fn port(self, key: &[u8], port: u16) -> Self {
        let v = rlp::encode(&port).to_vec();
        self.raw(key, v)
    }

    /// Set `ip`.
    pub fn ip4(self, ip: Ipv4Addr) -> Self {
        self.bytes(b"ip", &ip.octets())
    }

    /// Set `ip6`.
    pub fn ip6(self, ip: Ipv6Addr) -> Self {
        self.bytes(b"ip6", &ip.octets())
    }

    /// Set `tcp`.
    pub fn tcp(self, port: u16) -> Self {
        self.port(b"tcp", port)
    }

    /// Set `udp`.
    pub fn udp(self, port: u16) -> Self {
        self.port(b"udp", port)
    }

    /// Set `tcp6`.
    pub fn tcp6(self, port: u16) -> Self {
        self.port(b"tcp6", port)
    }

    /// Set `udp6`.
    pub fn udp6(self, port: u16) -> Self {
        self.port(b"udp6", port)
    }

    /// Add `id = "v4"` and the compressed key of `sk`, sign with the `v4` scheme and return the verified
    /// record. Fails with [`EnrError::TooBig`] past 300 bytes, or with the decoder's error if a raw value
    /// is not a well-formed RLP item.
    pub fn sign(self, sk: &SecretKey) -> Result<Enr, EnrError> {
        let pk = sk.public_key();
        let builder = self
            .bytes(b"id", ID_V4)
            .bytes(b"secp256k1", &pubkey_to_compressed(&pk));
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = builder.pairs.into_iter().collect();
        let digest = keccak256(&content_rlp(builder.seq, &pairs));
        let sig = sign_recoverable(sk, &digest).map_err(|_| EnrError::Signature)?;
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&sig[..64]);
        let raw = record_rlp(&signature, builder.seq, &pairs);
        // Decoding checks the size and every raw value the caller put in.
        Enr::decode(&raw)
    }
}

#[cfg(test)]
mod tests;
