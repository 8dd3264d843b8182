//! The devp2p base protocol `p2p` (docs/protocol/rlpx.md §5–§7): Hello, Disconnect, Ping, Pong, capability
//! matching and message-id offsets, and the Snappy rule of EIP-706.
//!
//! Decoding follows EIP-8's forward-compatibility rules: extra list elements are ignored, the Hello version
//! value is not checked, and a Disconnect is accepted as `[]`, `[reason]` or a bare `reason`.

use core::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use rlp::{Rlp, RlpStream};

use super::RlpxError;

/// Hello message id.
pub const HELLO: u64 = 0x00;
/// Disconnect message id.
pub const DISCONNECT: u64 = 0x01;
/// Ping message id.
pub const PING: u64 = 0x02;
/// Pong message id.
pub const PONG: u64 = 0x03;
/// Number of message ids reserved for the base protocol; sub-protocols start here.
pub const BASE_PROTOCOL_LENGTH: u64 = 0x10;
/// The p2p protocol version we speak (5: Snappy).
pub const P2P_VERSION: u64 = 5;
/// geth refuses a received Hello larger than this (`baseProtocolMaxMsgSize`).
pub const MAX_HELLO_SIZE: usize = 2048;
/// The largest message (after decompression) the protocol allows: 16 MiB − 1.
pub const MAX_MESSAGE_SIZE: usize = 0xFF_FFFF;
/// The longest capability name (ASCII) devp2p allows.
pub const MAX_CAPABILITY_NAME: usize = 8;

/// A capability name: at most 8 ASCII bytes, stored inline so shared capabilities are `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CapName {
    bytes: [u8; MAX_CAPABILITY_NAME],
    len: u8,
}

impl CapName {
    /// `None` if `name` is empty, longer than 8 bytes or not printable ASCII.
    pub fn new(name: &str) -> Option<Self> {
        let b = name.as_bytes();
        if b.is_empty() || b.len() > MAX_CAPABILITY_NAME || !b.iter().all(|c| c.is_ascii_graphic()) {
            return None;
        }
        let mut bytes = [0u8; MAX_CAPABILITY_NAME];
        bytes[..b.len()].copy_from_slice(b);
        Some(CapName {
            bytes,
            len: b.len() as u8,
        })
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

impl fmt::Debug for CapName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for CapName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A capability as advertised in a Hello: a name and a version. Names from remote peers are kept verbatim
/// (they may be longer than 8 bytes; such names simply never match).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Capability {
    /// Protocol name, e.g. `waku`.
    pub name: String,
    /// Protocol version.
    pub version: u32,
}

/// A sub-protocol this node speaks: capability plus the number of message codes it uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Protocol {
    /// Protocol name (≤ 8 ASCII bytes).
    pub name: CapName,
    /// Protocol version.
    pub version: u32,
    /// Number of message codes (e.g. 128 for `waku/1` and `shh/6`).
    pub length: u64,
}

impl Protocol {
    /// A protocol descriptor; `None` if the name is not a valid capability name or `length` is zero.
    pub fn new(name: &str, version: u32, length: u64) -> Option<Self> {
        if length == 0 || length > u64::from(u32::MAX) {
            return None;
        }
        Some(Protocol {
            name: CapName::new(name)?,
            version,
            length,
        })
    }
}

/// A capability both sides share, with its place in the message-id space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedCapability {
    /// Protocol name.
    pub name: CapName,
    /// The highest version both sides speak.
    pub version: u32,
    /// First message id of this capability.
    pub offset: u64,
    /// Number of message codes.
    pub length: u64,
}

/// The devp2p Hello message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// p2p protocol version (5 enables Snappy).
    pub protocol_version: u64,
    /// Free-form client name.
    pub client_id: String,
    /// Advertised capabilities.
    pub capabilities: Vec<Capability>,
    /// Legacy listening port (ignored on receive).
    pub listen_port: u64,
    /// The sender's 64-byte static public key.
    pub node_id: [u8; 64],
}

impl Hello {
    /// RLP-encode the Hello (msg-data only, without the msg-id).
    pub fn encode(&self) -> Vec<u8> {
        let mut s = RlpStream::new_list(5);
        s.append(&self.protocol_version);
        s.append(&self.client_id.as_bytes());
        s.begin_list(self.capabilities.len());
        for c in &self.capabilities {
            s.begin_list(2);
            s.append(&c.name.as_bytes());
            s.append(&c.version);
        }
        s.append(&self.listen_port);
        s.append(&&self.node_id[..]);
        s.out().to_vec()
    }

    /// Decode a Hello, ignoring extra list elements and trailing bytes (EIP-8). A node id that is not 64
    /// bytes long is [`RlpxError::InvalidNodeId`].
    pub fn decode(data: &[u8]) -> Result<Hello, RlpxError> {
        if data.len() > MAX_HELLO_SIZE {
            return Err(RlpxError::InvalidHello("larger than 2 KiB"));
        }
        let bad = |_| RlpxError::InvalidHello("malformed RLP");
        let list = first_item(data).ok_or(RlpxError::InvalidHello("malformed RLP"))?;
        if !list.is_list() || list.item_count().map_err(bad)? < 5 {
            return Err(RlpxError::InvalidHello("too few fields"));
        }
        let protocol_version: u64 = list.val_at(0).map_err(bad)?;
        let client_id = String::from_utf8_lossy(list.at(1).and_then(|r| r.data()).map_err(bad)?).into_owned();
        let caps = list.at(2).map_err(bad)?;
        if !caps.is_list() {
            return Err(RlpxError::InvalidHello("capabilities not a list"));
        }
        let mut capabilities = Vec::new();
        for c in caps.iter() {
            if !c.is_list() || c.item_count().map_err(bad)? < 2 {
                return Err(RlpxError::InvalidHello("malformed capability"));
            }
            let name = String::from_utf8_lossy(c.at(0).and_then(|r| r.data()).map_err(bad)?).into_owned();
            let version: u32 = c.val_at(1).map_err(bad)?;
            capabilities.push(Capability { name, version });
        }
        let listen_port: u64 = list.val_at(3).map_err(bad)?;
        let id = list.at(4).and_then(|r| r.data()).map_err(bad)?;
        let node_id: [u8; 64] = id.try_into().map_err(|_| RlpxError::InvalidNodeId)?;
        Ok(Hello {
            protocol_version,
            client_id,
            capabilities,
            listen_port,
            node_id,
        })
    }
}

/// The first RLP item of `data`, ignoring whatever follows it.
pub(crate) fn first_item(data: &[u8]) -> Option<Rlp<'_>> {
    let info = Rlp::new(data).payload_info().ok()?;
    let total = info.header_len.checked_add(info.value_len)?;
    if total > data.len() {
        return None;
    }
    Some(Rlp::new(&data[..total]))
}

/// Match our protocols against the remote's capabilities as geth does: sort the remote list by
/// (name, version), keep exact matches, let a higher version of a name replace a lower one, and give each
/// match a contiguous range of message ids from 0x10 upward in name order.
pub fn match_capabilities(local: &[Protocol], remote: &[Capability]) -> Vec<SharedCapability> {
    let mut sorted: Vec<&Capability> = remote.iter().collect();
    sorted.sort_by(|a, b| {
        a.name
            .as_bytes()
            .cmp(b.name.as_bytes())
            .then(a.version.cmp(&b.version))
    });
    let mut shared: Vec<SharedCapability> = Vec::new();
    for cap in sorted {
        let Some(p) = local
            .iter()
            .find(|p| p.name.as_str() == cap.name && p.version == cap.version)
        else {
            continue;
        };
        shared.retain(|s| s.name != p.name);
        shared.push(SharedCapability {
            name: p.name,
            version: p.version,
            offset: 0,
            length: p.length,
        });
    }
    shared.sort_by(|a, b| a.name.as_str().as_bytes().cmp(b.name.as_str().as_bytes()));
    let mut offset = BASE_PROTOCOL_LENGTH;
    for s in &mut shared {
        s.offset = offset;
        offset += s.length;
    }
    shared
}

/// Reasons carried by a Disconnect message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DisconnectReason {
    /// 0x00: disconnect requested.
    Requested,
    /// 0x01: TCP sub-system error.
    TcpError,
    /// 0x02: breach of protocol (bad MAC, malformed message, ...).
    ProtocolBreach,
    /// 0x03: useless peer (no shared capability).
    UselessPeer,
    /// 0x04: too many peers.
    TooManyPeers,
    /// 0x05: already connected.
    AlreadyConnected,
    /// 0x06: incompatible p2p protocol version.
    IncompatibleVersion,
    /// 0x07: null or invalid node identity.
    InvalidIdentity,
    /// 0x08: client quitting.
    ClientQuitting,
    /// 0x09: unexpected identity in handshake.
    UnexpectedIdentity,
    /// 0x0a: connected to self.
    ConnectedToSelf,
    /// 0x0b: ping or read timeout.
    PingTimeout,
    /// 0x10: a reason specific to a sub-protocol.
    SubprotocolError,
    /// Any other value, kept as received.
    Unknown(u64),
}

impl DisconnectReason {
    /// The wire code.
    pub fn code(self) -> u64 {
        use DisconnectReason::*;
        match self {
            Requested => 0x00,
            TcpError => 0x01,
            ProtocolBreach => 0x02,
            UselessPeer => 0x03,
            TooManyPeers => 0x04,
            AlreadyConnected => 0x05,
            IncompatibleVersion => 0x06,
            InvalidIdentity => 0x07,
            ClientQuitting => 0x08,
            UnexpectedIdentity => 0x09,
            ConnectedToSelf => 0x0a,
            PingTimeout => 0x0b,
            SubprotocolError => 0x10,
            Unknown(c) => c,
        }
    }

    /// The reason for a wire code.
    pub fn from_code(code: u64) -> Self {
        use DisconnectReason::*;
        match code {
            0x00 => Requested,
            0x01 => TcpError,
            0x02 => ProtocolBreach,
            0x03 => UselessPeer,
            0x04 => TooManyPeers,
            0x05 => AlreadyConnected,
            0x06 => IncompatibleVersion,
            0x07 => InvalidIdentity,
            0x08 => ClientQuitting,
            0x09 => UnexpectedIdentity,
            0x0a => ConnectedToSelf,
            0x0b => PingTimeout,
            0x10 => SubprotocolError,
            c => Unknown(c),
        }
    }

    /// RLP-encode as the one-element list `[reason]`.
    pub fn encode(self) -> Vec<u8> {
        let mut s = RlpStream::new_list(1);
        s.append(&self.code());
        s.out().to_vec()
    }

    /// Decode leniently: `[]` is `Requested`, `[r]` and a bare `r` are `r`; anything else is `None`.
    pub fn decode(data: &[u8]) -> Option<Self> {
        let item = first_item(data)?;
        if item.is_list() {
            if item.item_count().ok()? == 0 {
                return Some(DisconnectReason::Requested);
            }
            return item.val_at::<u64>(0).ok().map(Self::from_code);
        }
        item.as_val::<u64>().ok().map(Self::from_code)
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DisconnectReason::*;
        let s = match self {
            Requested => "disconnect requested",
            TcpError => "network error",
            ProtocolBreach => "breach of protocol",
            UselessPeer => "useless peer",
            TooManyPeers => "too many peers",
            AlreadyConnected => "already connected",
            IncompatibleVersion => "incompatible p2p protocol version",
            InvalidIdentity => "invalid node identity",
            ClientQuitting => "client quitting",
            UnexpectedIdentity => "unexpected identity",
            ConnectedToSelf => "connected to self",
            PingTimeout => "read timeout",
            SubprotocolError => "subprotocol error",
            Unknown(c) => return write!(f, "unknown reason {c:#x}"),
        };
        f.write_str(s)
    }
}

/// Encode a message id as an RLP integer (`0x80` for 0).
pub fn encode_msg_id(id: u64, out: &mut BytesMut) {
    if id == 0 {
        out.put_u8(0x80);
    } else if id < 0x80 {
        out.put_u8(id as u8);
    } else {
        let be = id.to_be_bytes();
        let skip = (id.leading_zeros() / 8) as usize;
        out.put_u8(0x80 + (8 - skip) as u8);
        out.put_slice(&be[skip..]);
    }
}

/// Split frame-data into (msg-id, msg-data).
pub fn split_msg_id(frame: &[u8]) -> Result<(u64, usize), RlpxError> {
    let first = *frame.first().ok_or(RlpxError::MalformedMessage("empty frame"))?;
    match first {
        0x00..=0x7f => Ok((u64::from(first), 1)),
        0x80 => Ok((0, 1)),
        0x81..=0x88 => {
            let n = usize::from(first - 0x80);
            let b = frame
                .get(1..1 + n)
                .ok_or(RlpxError::MalformedMessage("truncated message id"))?;
            if b[0] == 0 || (n == 1 && b[0] < 0x80) {
                return Err(RlpxError::MalformedMessage("non-canonical message id"));
            }
            Ok((b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)), 1 + n))
        }
        _ => Err(RlpxError::MalformedMessage("message id is not an integer")),
    }
}

/// Snappy-compress msg-data (block format, no framing), refusing input above 16 MiB − 1.
pub fn compress(data: &[u8]) -> Result<Vec<u8>, RlpxError> {
    if data.len() > MAX_MESSAGE_SIZE {
        return Err(RlpxError::MessageTooLarge(data.len()));
    }
    snap::raw::Encoder::new()
        .compress_vec(data)
        .map_err(|_| RlpxError::MessageTooLarge(data.len()))
}

/// Snappy-decompress msg-data, checking the declared length against `limit` (at most 16 MiB − 1)
/// before inflating anything.
pub fn decompress(data: &[u8], limit: usize) -> Result<Bytes, RlpxError> {
    let len = snap::raw::decompress_len(data).map_err(|_| RlpxError::Snappy("bad length header"))?;
    if len > limit.min(MAX_MESSAGE_SIZE) {
        return Err(RlpxError::Snappy("declared length above the limit"));
    }
    let mut out = vec![0u8; len];
    let n = snap::raw::Decoder::new()
        .decompress(data, &mut out)
        .map_err(|_| RlpxError::Snappy("corrupt data"))?;
    out.truncate(n);
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests;
