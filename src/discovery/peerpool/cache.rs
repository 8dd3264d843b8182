//! The peer cache format (`docs/protocol/status-client.md` "Discovery and peers": "Cache discovered
//! peers; on restart, cached peers may satisfy the pool"): one format, with a version that every import
//! checks.
//!
//! RLP `[1, [[X‖Y, ip, tcp, udp, last_good_ms (, kind)], …]]`, the most recently good first: `X‖Y` the
//! 64-byte public key, `ip` 4 or 16 bytes, `udp` 0 when unknown, and `kind` 1 for a mailserver, absent
//! for a relay. A cache of relays only (all the engine keeps) is therefore byte for byte the cache the
//! engine has always written, and drivers' cache files stay valid. (The standalone pool once wrote a
//! version 2 with a different layout; nothing stored it, and it is refused like any unknown version.)

use std::net::{IpAddr, SocketAddr};

use rlp::{Rlp, RlpStream};

use super::{PeerKind, PeerPool, CACHE_SIZE};
use crate::crypto::{pubkey_from_raw64, pubkey_to_raw64};
use crate::discovery::DiscoveryError;
use crate::enode::Enode;
use crate::time::Timestamp;

/// The version of the one cache format; a cache of another version is refused on import.
///
/// RLP `[1, [[X‖Y, ip, tcp, udp, last_good_ms (, kind)], …]]`, the most recently good first: `X‖Y` the
/// 64-byte public key, `ip` 4 or 16 bytes, `udp` 0 when unknown, `kind` 1 for a mailserver and absent
/// for a relay.
pub const CACHE_VERSION: u64 = 1;
/// Longest peer cache accepted by an import (a full cache is about 3 KiB).
pub const MAX_CACHE_BYTES: usize = 16 * 1024;

impl PeerPool {
    /// The cache as bytes for the driver to store (the format is on [`CACHE_VERSION`]): at most
    /// `cache_size` peers, under [`MAX_CACHE_BYTES`].
    pub fn export_cache(&self) -> Vec<u8> {
        let mut good: Vec<(Timestamp, &Enode, PeerKind)> = self
            .peers
            .values()
            .filter_map(|c| c.good.map(|g| (g, &c.enode, c.kind)))
            .collect();
        good.sort_by_key(|(g, _, _)| core::cmp::Reverse(*g));
        good.truncate(self.config.cache_size);
        let mut s = RlpStream::new_list(2);
        s.append(&CACHE_VERSION);
        s.begin_list(good.len());
        for (g, e, kind) in good {
            let mailserver = kind == PeerKind::Mailserver;
            s.begin_list(if mailserver { 6 } else { 5 });
            s.append(&pubkey_to_raw64(&e.id).as_slice());
            match e.addr.ip() {
                IpAddr::V4(ip) => s.append(&ip.octets().as_slice()),
                IpAddr::V6(ip) => s.append(&ip.octets().as_slice()),
            };
            s.append(&e.addr.port());
            s.append(&e.discport.unwrap_or(0));
            s.append(&g.as_millis());
            if mailserver {
                s.append(&1u8);
            }
        }
        s.out().to_vec()
    }

    /// Add the peers of a cache made by [`PeerPool::export_cache`] as cached candidates (at most
    /// `cache_size`, the most recently good win; our own node and static peers are skipped). Returns how
    /// many were added. Fails, adding nothing, on bytes that are not such a cache:
    /// [`DiscoveryError::Cache`] (garbled, too large, more than [`CACHE_SIZE`] entries, another version).
    pub fn import_cache(&mut self, now: Timestamp, bytes: &[u8]) -> Result<usize, DiscoveryError> {
        let mut entries = decode(bytes)?;
        entries.retain(|(_, e, _)| {
            let id = crate::discovery::NodeId::from_public_key(&e.id);
            self.config.local != Some(id) && self.static_index(&id).is_none()
        });
        // The most recently good first, so they survive the cap; then added oldest first.
        entries.sort_by_key(|(g, _, _)| core::cmp::Reverse(*g));
        entries.truncate(self.config.cache_size);
        let mut n = 0;
        for (good, enode, kind) in entries.into_iter().rev() {
            n += usize::from(self.discovered(now, enode, kind, Some(good.min(now))));
        }
        self.step(now);
        Ok(n)
    }
}

type Entry = (Timestamp, Enode, PeerKind);

/// Decode a whole cache, or fail.
fn decode(bytes: &[u8]) -> Result<Vec<Entry>, DiscoveryError> {
    let bad = |_| DiscoveryError::Cache("malformed cache");
    if bytes.len() > MAX_CACHE_BYTES {
        return Err(DiscoveryError::Cache("cache too large"));
    }
    let r = Rlp::new(bytes);
    if !r.is_list() || r.item_count().map_err(bad)? != 2 || r.as_raw().len() != bytes.len() {
        return Err(DiscoveryError::Cache("malformed cache"));
    }
    if r.val_at::<u64>(0).map_err(bad)? != CACHE_VERSION {
        return Err(DiscoveryError::Cache("unknown cache version"));
    }
    let list = r.at(1).map_err(bad)?;
    if !list.is_list() || list.item_count().map_err(bad)? > CACHE_SIZE {
        return Err(DiscoveryError::Cache("malformed cache"));
    }
    list.iter().map(|item| decode_entry(&item)).collect()
}

fn decode_entry(item: &Rlp<'_>) -> Result<Entry, DiscoveryError> {
    let bad = |_| DiscoveryError::Cache("malformed cache entry");
    let fields = if item.is_list() {
        item.item_count().map_err(bad)?
    } else {
        0
    };
    if fields != 5 && fields != 6 {
        return Err(DiscoveryError::Cache("malformed cache entry"));
    }
    let key = item.at(0).and_then(|k| k.data()).map_err(bad)?;
    let id = pubkey_from_raw64(key).ok_or(DiscoveryError::Cache("invalid public key"))?;
    let ip = item.at(1).and_then(|k| k.data()).map_err(bad)?;
    let ip = if let Ok(b) = <[u8; 4]>::try_from(ip) {
        IpAddr::from(b)
    } else if let Ok(b) = <[u8; 16]>::try_from(ip) {
        IpAddr::from(b)
    } else {
        return Err(DiscoveryError::Cache("invalid ip"));
    };
    let tcp: u16 = item.val_at(2).map_err(bad)?;
    let udp: u16 = item.val_at(3).map_err(bad)?;
    let good: u64 = item.val_at(4).map_err(bad)?;
    let kind = match fields {
        6 => match item.val_at::<u8>(5).map_err(bad)? {
            1 => PeerKind::Mailserver,
            _ => return Err(DiscoveryError::Cache("unknown peer kind")),
        },
        _ => PeerKind::Relay,
    };
    let mut enode = Enode::new(id, SocketAddr::new(ip, tcp));
    enode.discport = (udp != 0).then_some(udp);
    Ok((Timestamp::from_millis(good), enode, kind))
}
