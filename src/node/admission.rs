//! Admission: which sockets the engine keeps (docs/protocol/status-client.md "Discovery and peers";
//! the module docs of [`node`](super) list the rules): handshake slots per address and in all, the cap
//! on established peers, one connection per node, and the back-off of peers dropped for a fault.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::{Conn, ConnId, Engine, NodeError, Output, DIAL_ID_BIT};
use crate::crypto::PublicKey;
use crate::rlpx::{Connection, DisconnectReason};
use crate::rng::fork;
use crate::time::Timestamp;

/// Most entries in each back-off table (keys and addresses); the soonest to expire gives way.
pub const MAX_BACKOFF_ENTRIES: usize = 4096;

/// Peers and addresses refused until a time.
#[derive(Debug, Default)]
pub(super) struct Backoff {
    keys: BTreeMap<[u8; 33], Timestamp>,
    ips: BTreeMap<IpAddr, Timestamp>,
}

fn insert_bounded<K: Ord + Clone>(map: &mut BTreeMap<K, Timestamp>, now: Timestamp, k: K, until: Timestamp) {
    map.retain(|_, t| *t > now);
    if map.len() >= MAX_BACKOFF_ENTRIES && !map.contains_key(&k) {
        let soonest = map.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone());
        if let Some(old) = soonest {
            map.remove(&old);
        }
    }
    map.insert(k, until);
}

/// The Waku rate-limit source of an address: IPv4 addresses each, IPv6 by /64 prefix.
pub(super) fn ip_source(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => (1 << 62) | u64::from(u32::from(v4)),
        IpAddr::V6(v6) => {
            let o = v6.octets();
            let mut p = [0u8; 8];
            p.copy_from_slice(&o[..8]);
            (3 << 62) | (u64::from_be_bytes(p) & 0x3fff_ffff_ffff_fffe)
        }
    }
}

impl Engine {
    /// Admit an inbound socket (see the module docs).
    pub(super) fn accept(
        &mut self,
        now: Timestamp,
        conn: ConnId,
        ip: Option<IpAddr>,
    ) -> Result<(), crate::Error> {
        if conn.0 & DIAL_ID_BIT != 0 || self.conns.contains_key(&conn) {
            return Err(NodeError::InvalidConnectionId(conn).into());
        }
        let banned = ip.is_some_and(|ip| self.backoff.ips.get(&ip).is_some_and(|t| *t > now));
        let from_ip = self
            .conns
            .values()
            .filter(|c| c.handshaking_inbound() && c.ip == ip)
            .count();
        if banned || from_ip >= self.config.max_handshakes_per_ip || self.config.max_handshakes == 0 {
            self.outputs.push_back(Output::Close { conn });
            return Ok(());
        }
        let pending = self.conns.values().filter(|c| c.handshaking_inbound()).count();
        if pending >= self.config.max_handshakes {
            // Every slot taken: the oldest handshake of the address holding the most slots gives way.
            let mut per_ip: BTreeMap<Option<IpAddr>, (usize, Timestamp, ConnId)> = BTreeMap::new();
            for (k, c) in self.conns.iter().filter(|(_, c)| c.handshaking_inbound()) {
                let e = per_ip.entry(c.ip).or_insert((0, c.since, *k));
                e.0 += 1;
                if (c.since, *k) < (e.1, e.2) {
                    e.1 = c.since;
                    e.2 = *k;
                }
            }
            let victim = per_ip
                .values()
                .max_by(|a, b| a.0.cmp(&b.0).then((b.1, b.2).cmp(&(a.1, a.2))))
                .map(|v| v.2);
            if let Some(v) = victim {
                self.conns.remove(&v);
                self.outputs.push_back(Output::Close { conn: v });
            }
        }
        let seed = fork(&mut self.rng);
        let c = Connection::recipient(self.config.rlpx.clone(), &seed, now)?;
        // Over the cap of established peers: the handshake goes on until frames exist, so the peer is
        // told why (0x04).
        let refuse =
            (self.connected_peers() >= self.config.max_peers).then_some(DisconnectReason::TooManyPeers);
        self.conns.insert(
            conn,
            Conn {
                rlpx: c,
                id: None,
                dialect: None,
                origin: None,
                since: now,
                dialing: false,
                pooled: false,
                refuse,
                ip,
            },
        );
        Ok(())
    }

    /// Refuse an inbound connection as soon as frames can carry the reason: over the cap (decided at
    /// accept) or, once the handshake names it, a key in back-off (0x03).
    pub(super) fn refuse_if_due(&mut self, now: Timestamp, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.origin.is_none() && c.refuse.is_none() {
            if let Some(k) = c.rlpx.remote_id() {
                let key = crate::crypto::pubkey_to_compressed(&k);
                if self.backoff.keys.get(&key).is_some_and(|t| *t > now) {
                    c.refuse = Some(DisconnectReason::UselessPeer);
                }
            }
        }
        if c.rlpx.remote_id().is_some() {
            if let Some(reason) = c.refuse.take() {
                self.disconnect(now, conn, reason);
            }
        }
    }

    /// Whether a connection whose Hello just completed with `remote_id` may stay: `Some(reason)` to drop
    /// it (a second connection to the same node, or an inbound one past `max_peers` established peers).
    pub(super) fn refuse_on_hello(&self, conn: ConnId, remote_id: &PublicKey) -> Option<DisconnectReason> {
        let duplicate = self
            .conns
            .iter()
            .any(|(k, c)| *k != conn && c.id.as_ref() == Some(remote_id) && c.rlpx.is_active());
        if duplicate {
            return Some(DisconnectReason::AlreadyConnected);
        }
        // Handshakes run in their own slots, so the cap on established peers is checked again when an
        // inbound Hello completes.
        let inbound = self.conns.get(&conn).is_some_and(|c| c.origin.is_none());
        let established = self
            .conns
            .iter()
            .filter(|(k, c)| **k != conn && c.rlpx.is_active())
            .count();
        (inbound && established >= self.config.max_peers).then_some(DisconnectReason::TooManyPeers)
    }

    /// An inbound connection we dropped for a protocol fault (0x02, 0x10): its key and (non-loopback)
    /// address wait out `fault_backoff`.
    pub(super) fn note_fault(
        &mut self,
        now: Timestamp,
        conn: ConnId,
        reason: DisconnectReason,
        remote: bool,
    ) {
        let fault = !remote
            && matches!(
                reason,
                DisconnectReason::ProtocolBreach | DisconnectReason::SubprotocolError
            );
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if !fault || c.origin.is_some() {
            return;
        }
        let until = now + self.config.fault_backoff;
        let (id, ip) = (c.id, c.ip);
        if let Some(k) = id {
            let key = crate::crypto::pubkey_to_compressed(&k);
            insert_bounded(&mut self.backoff.keys, now, key, until);
        }
        if let Some(ip) = ip.filter(|ip| !ip.is_loopback()) {
            insert_bounded(&mut self.backoff.ips, now, ip, until);
        }
    }
}
