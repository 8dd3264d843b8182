//! `enode://` URLs: a node's secp256k1 identity plus its TCP (and optional discovery UDP) endpoint.
//!
//! Format: `enode://<128 hex chars of X‖Y>@<ip>:<tcp-port>[?discport=<udp-port>]`. Host names are not
//! resolved here (that is IO); IPv6 addresses appear in brackets.

use core::fmt;
use core::str::FromStr;
use std::net::{IpAddr, SocketAddr};

use crate::crypto::{pubkey_from_raw64, pubkey_to_raw64, PublicKey};

/// A parsed `enode://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enode {
    /// The node's static public key (its RLPx identity).
    pub id: PublicKey,
    /// IP address and TCP port.
    pub addr: SocketAddr,
    /// UDP discovery port, when it differs from the TCP port.
    pub discport: Option<u16>,
}

/// Why an `enode://` URL did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnodeError {
    /// The URL does not start with `enode://`.
    #[error("missing enode:// scheme")]
    Scheme,
    /// The node id is not 128 hex characters of a valid secp256k1 point.
    #[error("invalid node id")]
    NodeId,
    /// The address part is not `ip:port`.
    #[error("invalid address")]
    Address,
    /// The query is not `discport=N`.
    #[error("invalid query")]
    Query,
}

impl Enode {
    /// An enode for `id` at `addr`.
    pub fn new(id: PublicKey, addr: SocketAddr) -> Self {
        Enode {
            id,
            addr,
            discport: None,
        }
    }
}

impl FromStr for Enode {
    type Err = EnodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s.trim().strip_prefix("enode://").ok_or(EnodeError::Scheme)?;
        let (id_hex, rest) = rest.split_once('@').ok_or(EnodeError::Address)?;
        if id_hex.len() != 128 {
            return Err(EnodeError::NodeId);
        }
        let mut raw = [0u8; 64];
        for (i, chunk) in id_hex.as_bytes().chunks(2).enumerate() {
            let hi = (chunk[0] as char).to_digit(16).ok_or(EnodeError::NodeId)?;
            let lo = (chunk[1] as char).to_digit(16).ok_or(EnodeError::NodeId)?;
            raw[i] = (hi * 16 + lo) as u8;
        }
        let id = pubkey_from_raw64(&raw).ok_or(EnodeError::NodeId)?;
        let (addr_part, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        let addr: SocketAddr = addr_part.parse().map_err(|_| EnodeError::Address)?;
        let discport = match query {
            None => None,
            Some(q) => {
                let v = q.strip_prefix("discport=").ok_or(EnodeError::Query)?;
                Some(v.parse::<u16>().map_err(|_| EnodeError::Query)?)
            }
        };
        Ok(Enode { id, addr, discport })
    }
}

impl fmt::Display for Enode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("enode://")?;
        for b in pubkey_to_raw64(&self.id) {
            write!(f, "{b:02x}")?;
        }
        match self.addr.ip() {
            IpAddr::V4(ip) => write!(f, "@{ip}:{}", self.addr.port())?,
            IpAddr::V6(ip) => write!(f, "@[{ip}]:{}", self.addr.port())?,
        }
        if let Some(p) = self.discport {
            write!(f, "?discport={p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "fda1cff674c90c9a197539fe3dfb53086ace64f83ed7c6eabec741f7f381cc803e52ab2cd55d5569bce4347107a310dfd5f88a010cd2ffd1005ca406f1842877";

    #[test]
    fn parses_and_prints() {
        let url = format!("enode://{ID}@127.0.0.1:30303?discport=30301");
        let e: Enode = url.parse().unwrap();
        assert_eq!(e.addr.port(), 30303);
        assert_eq!(e.discport, Some(30301));
        assert_eq!(e.to_string(), url);
        let v6 = format!("enode://{ID}@[::1]:30303");
        assert_eq!(v6.parse::<Enode>().unwrap().to_string(), v6);
    }

    #[test]
    fn rejects_bad_urls() {
        assert_eq!("http://x".parse::<Enode>(), Err(EnodeError::Scheme));
        assert_eq!(
            format!("enode://{}@1.2.3.4:1", &ID[2..]).parse::<Enode>(),
            Err(EnodeError::NodeId)
        );
        assert_eq!(
            format!("enode://{}@1.2.3.4:1", "0".repeat(128)).parse::<Enode>(),
            Err(EnodeError::NodeId)
        );
        assert_eq!(
            format!("enode://{ID}@host:1").parse::<Enode>(),
            Err(EnodeError::Address)
        );
        assert_eq!(
            format!("enode://{ID}@1.2.3.4:1?x=2").parse::<Enode>(),
            Err(EnodeError::Query)
        );
        assert_eq!(
            format!("enode://é{}@1.2.3.4:1", &ID[2..]).parse::<Enode>(),
            Err(EnodeError::NodeId)
        );
    }
}
