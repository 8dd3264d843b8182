//! Rate limits and fault budgets (docs/protocol/waku.md §7): per peer and per source (an IP group),
//! envelopes and bytes per second, and the faults a peer may commit per minute before it is dropped.

use super::super::WakuError;
use super::{Event, WakuNode};
use crate::conn::ConnId;
use crate::rlpx::DisconnectReason;
use crate::time::Timestamp;

/// One source's shared rate window.
#[derive(Debug)]
pub(super) struct SourceWindow {
    pub(super) start: Timestamp,
    pub(super) envelopes: u64,
    pub(super) bytes: u64,
    pub(super) peers: usize,
}

impl WakuNode {
    pub(super) fn join_source(&mut self, now: Timestamp, source: u64) {
        self.sources
            .entry(source)
            .or_insert(SourceWindow {
                start: now,
                envelopes: 0,
                bytes: 0,
                peers: 0,
            })
            .peers += 1;
    }

    pub(super) fn leave_source(&mut self, source: u64) {
        if let Some(w) = self.sources.get_mut(&source) {
            w.peers = w.peers.saturating_sub(1);
            if w.peers == 0 {
                self.sources.remove(&source);
            }
        }
    }

    /// See [`Input::SetPeerSource`].
    pub(super) fn set_peer_source(
        &mut self,
        now: Timestamp,
        peer: ConnId,
        source: u64,
    ) -> Result<(), WakuError> {
        let old = self
            .peers
            .get(&peer)
            .map(|p| p.source)
            .ok_or(WakuError::UnknownPeer)?;
        if old != source {
            self.leave_source(old);
            self.join_source(now, source);
            if let Some(p) = self.peers.get_mut(&peer) {
                p.source = source;
            }
        }
        Ok(())
    }

    /// Charge a packet of `envelopes` envelopes and `bytes` (decoded) bytes to `peer` and its source.
    /// Returns false if it was dropped for the rate limit (and handles the consequences, see the module
    /// docs).
    pub(super) fn charge(&mut self, now: Timestamp, peer: ConnId, envelopes: u64, bytes: u64) -> bool {
        let (max_e, max_b) = (self.config.max_envelopes_per_sec, self.config.max_bytes_per_sec);
        let (src_e, src_b) = (
            self.config.max_envelopes_per_sec_per_source,
            self.config.max_bytes_per_sec_per_source,
        );
        let tolerance = self.config.rate_limit_tolerance;
        let Some(p) = self.peers.get_mut(&peer) else {
            return false;
        };
        let source = p.source;
        // The source's budget is checked first so a packet it refuses does not use the peer's.
        let source_ok = match self.sources.get_mut(&source) {
            Some(w) => {
                if now.saturating_duration_since(w.start).as_millis() >= 1000 {
                    w.start = now;
                    w.envelopes = 0;
                    w.bytes = 0;
                }
                let e = w.envelopes + envelopes;
                let b = w.bytes + bytes;
                let over = (src_e > 0 && e > src_e) || (src_b > 0 && b > src_b);
                !over
            }
            None => true,
        };
        if !p.admit(now, envelopes, bytes, max_e, max_b) {
            // Over the peer's own advertised limit: a violation.
            let over = p.rate_violations > tolerance;
            self.stats.rate_limited += 1;
            self.event(Event::RateLimited { peer });
            if over {
                self.event(Event::PeerFault {
                    peer,
                    fault: WakuError::RateLimited,
                    disconnected: true,
                });
                self.drop_peer(peer, DisconnectReason::SubprotocolError);
            }
            return false;
        }
        if !source_ok {
            // Within its own limit, but its source's shared budget is spent: dropped, not a fault.
            self.stats.rate_limited += 1;
            self.event(Event::RateLimited { peer });
            return false;
        }
        if let Some(w) = self.sources.get_mut(&source) {
            w.envelopes += envelopes;
            w.bytes += bytes;
        }
        true
    }

    /// Count a fault; disconnect past the budget.
    pub(super) fn fault(&mut self, now: Timestamp, peer: ConnId, error: WakuError) {
        let max = self.config.max_faults_per_minute;
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let n = p.fault(now, 60_000);
        let disconnected = n > max;
        self.event(Event::PeerFault {
            peer,
            fault: error,
            disconnected,
        });
        if disconnected {
            self.drop_peer(peer, DisconnectReason::SubprotocolError);
        }
    }
}
