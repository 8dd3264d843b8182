//! The relay (docs/protocol/waku.md §7): every transmission cycle, new envelopes join each active peer's
//! send queue (by interest and PoW), and each queue sends what the peer's advertised rate limits allow.

use bytes::Bytes;

use super::super::options::{RateLimits, StatusOptions};
use super::super::packet;
use super::{Output, WakuNode};
use crate::conn::ConnId;
use crate::time::Timestamp;

impl WakuNode {
    pub(super) fn schedule_cycle(&mut self, now: Timestamp) {
        if self.next_cycle.is_none() {
            self.next_cycle = Some(now + self.config.transmission_cycle);
        }
    }

    /// One relay cycle: new envelopes join each active peer's queue (if it lacks and wants them), and
    /// each queue sends what the peer's advertised rate limits allow (see the module docs).
    pub(super) fn broadcast(&mut self) {
        let mark = self.pool.next_seq();
        // Packets built this cycle, by the envelopes they carry: peers with the same selection share them.
        let mut built: Vec<(Vec<u64>, bool, Vec<OutBatch>)> = Vec::new();
        let ids: Vec<ConnId> = self.peers.keys().copied().collect();
        let cycle_ms = self.config.transmission_cycle.as_millis().max(1) as u64;
        let max_queue = self.config.max_queued_per_peer;
        for id in ids {
            let Some(p) = self.peers.get_mut(&id) else {
                continue;
            };
            if !p.is_active() {
                continue;
            }
            let pow_req = p.pow_requirement();
            let confirming = p.remote.confirmations == Some(true);
            let mut dropped = 0u64;
            let new: Vec<(u64, u64)> = self
                .pool
                .iter_from(p.cursor)
                .filter(|(_, eid, entry)| {
                    !p.knows(eid)
                        && p.wants(&entry.topic)
                        && entry.pow >= pow_req
                        && (!self.config.light_node || self.own.contains(*eid))
                })
                .map(|(seq, _, entry)| (entry.source, seq))
                .collect();
            for (source, seq) in new {
                dropped += p.enqueue(source, seq, max_queue) as u64;
            }
            p.cursor = mark;
            self.stats.queue_dropped += dropped;
            // This cycle's allowance: 3/4 of the peer's advertised per-second limits, pro rata.
            let (env_limit, byte_limit) = advertised_limits(&p.remote);
            let pace = |limit: u64| (limit > 0).then(|| (limit.saturating_mul(cycle_ms) * 3 / 4000).max(1));
            let (mut env_left, mut bytes_left) = (pace(env_limit), pace(byte_limit));
            let pool = &self.pool;
            let mut first = true;
            let picks = p.dequeue(|seq| {
                let Some(entry) = pool.get_seq(seq) else {
                    return Some(false);
                };
                if !p_wants(entry, pow_req) {
                    return Some(false);
                }
                let len = entry.wire.len() as u64;
                if env_left == Some(0) || (!first && bytes_left.is_some_and(|b| b < len)) {
                    return None;
                }
                first = false;
                env_left = env_left.map(|e| e - 1);
                bytes_left = bytes_left.map(|b| b.saturating_sub(len));
                Some(true)
            });
            // Re-check interest against the peer (the closure above cannot borrow it).
            let entries: Vec<&super::super::pool::Entry> = picks
                .iter()
                .filter_map(|seq| self.pool.get_seq(*seq))
                .filter(|e| p.wants(&e.topic) && !p.knows(&e.id))
                .collect();
            let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
            let shared = built
                .iter()
                .find(|(s, c, _)| *c == confirming && *s == seqs)
                .map(|(_, _, b)| b.clone());
            let packets = match shared {
                Some(b) => b,
                None => {
                    let mut packets = Vec::new();
                    let wires: Vec<&[u8]> = entries.iter().map(|e| &e.wire[..]).collect();
                    let (mut start, mut size) = (0usize, 0usize);
                    for (k, w) in wires.iter().enumerate() {
                        if k > start && size + w.len() > self.config.max_packet_size {
                            packets.push(OutBatch::build(&wires[start..k], confirming));
                            start = k;
                            size = 0;
                        }
                        size += w.len();
                    }
                    if start < wires.len() {
                        packets.push(OutBatch::build(&wires[start..], confirming));
                    }
                    if !seqs.is_empty() {
                        built.push((seqs, confirming, packets.clone()));
                    }
                    packets
                }
            };
            for b in packets {
                self.stats.relayed += b.ids as u64;
                if confirming {
                    p.record_batch(crate::crypto::keccak256(&b.data), b.hashes);
                }
                self.outputs.push_back(Output::Transmit {
                    peer: id,
                    code: packet::MESSAGES,
                    data: b.data,
                });
            }
        }
    }
}

/// A Messages packet built for one or more peers.
#[derive(Clone)]
struct OutBatch {
    data: Bytes,
    /// Number of envelopes in it.
    ids: usize,
    /// Wire hashes of the envelopes, only when the peer sends confirmations.
    hashes: Vec<[u8; 32]>,
}

impl OutBatch {
    fn build(wires: &[&[u8]], confirming: bool) -> OutBatch {
        let payload: usize = wires.iter().map(|w| w.len()).sum();
        let (h, n) = super::super::envelope::rlp_header(payload, true);
        let mut data = Vec::with_capacity(n + payload);
        data.extend_from_slice(&h[..n]);
        for w in wires {
            data.extend_from_slice(w);
        }
        let hashes = if confirming {
            wires.iter().map(|w| crate::crypto::keccak256(w)).collect()
        } else {
            vec![]
        };
        OutBatch {
            data: Bytes::from(data),
            ids: wires.len(),
            hashes,
        }
    }
}

/// The lower non-zero of a peer's per-IP and per-peer limits, for packets and bytes (0: unlimited).
fn advertised_limits(remote: &StatusOptions) -> (u64, u64) {
    let lower = |l: Option<RateLimits>| {
        l.map_or(0, |l| match (l.ip, l.peer_id) {
            (0, x) | (x, 0) => x,
            (a, b) => a.min(b),
        })
    };
    (lower(remote.packet_rate_limits), lower(remote.bytes_rate_limits))
}

/// Whether a pooled envelope still meets a PoW requirement.
fn p_wants(entry: &super::super::pool::Entry, pow_req: f64) -> bool {
    entry.pow >= pow_req
}
