//! Peer management for the [`Engine`](super::Engine) (`docs/protocol/status-client.md` "Discovery and peers":
//! static peers, the PeerPool, the cache of discovered peers).
//!
//! The engine keeps [`EngineConfig::target_peers`](super::EngineConfig::target_peers) peers from three
//! sources:
//!
//! * **static peers** are always kept, whatever the target: dialled at start and redialled after a failure
//!   or a disconnect with exponential backoff (`reconnect_min` doubling to `reconnect_max`, plus up to 1 s
//!   of jitter from the seeded RNG), the backoff reset once a connection has lasted `stable_after`. At most
//!   [`MAX_STATIC_PEERS`].
//! * **cached peers**: a dialled peer that completed Hello with a Waku dialect and stayed up for
//!   `stable_after` is *good*. Up to [`CACHE_SIZE`] good peers (the most recently good win) are exported by
//!   [`Engine::export_peer_cache`](super::Engine::export_peer_cache) and imported at start from
//!   [`EngineConfig::peer_cache`](super::EngineConfig::peer_cache); they are dialled before any other
//!   candidate.
//! * **discovered peers**: node records from the EIP-1459 trees of
//!   [`EngineConfig::dns_discovery`](super::EngineConfig::dns_discovery) (run inside the engine, see
//!   [`Output::ResolveTxt`](super::Output::ResolveTxt)) and enodes given with
//!   [`Input::AddPeerCandidate`](super::Input::AddPeerCandidate). At most [`MAX_CANDIDATES`] are kept
//!   (cached ones included); past it a new one replaces the idle, uncached candidate with the most failures,
//!   or is dropped.
//!
//! Rules (the [`PeerPool`](crate::discovery::PeerPool) rules, applied to the engine's connections):
//! * **Dial**: while established peers (Hello done, any origin, inbound included) plus outbound dials in
//!   progress (static or not) are below the target, dial an idle candidate that is not already connected:
//!   cached first, then fewest failures, then first heard of. The order is deterministic; only backoff
//!   jitter comes from the seed.
//! * **Backoff**: a failed dial (refused, or a connection closed before Hello, or one that lasted less than
//!   `stable_after`) puts the candidate in backoff for `reconnect_min · 2^(failures−1)`, capped at
//!   `reconnect_max`, drawn from the upper half of that span; after [`MAX_DIAL_FAILURES`] failures in a row
//!   the candidate is forgotten (and leaves the cache). A stable peer that disconnects waits
//!   `reconnect_min` before it is dialled again.
//! * **Discovery** is *suspended* once established peers reach the target: no root check or tree walk
//!   starts (a walk under way finishes and its nodes still become candidates), no DNS timer runs,
//!   and *resumed* when established peers plus dials in progress are below the target with no idle
//!   candidate left to dial. It starts suspended and is resumed by the first `handle_timeout` if needed, so
//!   a warm cache can satisfy the target after a restart with no lookup at all. On resume every tree is
//!   re-checked at once and walked again even if its root is unchanged (forgotten candidates get a second
//!   chance). With trees configured, transitions are reported as
//!   [`Event::DiscoverySuspended`](super::Event::DiscoverySuspended) /
//!   [`Event::DiscoveryResumed`](super::Event::DiscoveryResumed).
//!
//! Deviations from status-go's PeerPool: one target for all peers (no separate mailserver slot: the
//! mailserver is a static peer here); discovery is one switch, not per topic with fast/slow modes; peers
//! over the target (inbound ones, say) are not disconnected: `max_peers` is the only hard cap; a peer is
//! cached only after it proved useful (Waku dialect, `stable_after` up), not as soon as it connects.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;
use rlp::{Rlp, RlpStream};

use super::{ConnId, NodeError};
use crate::crypto::{pubkey_from_raw64, pubkey_to_raw64, PublicKey};
use crate::discovery::NodeId;
use crate::enode::Enode;
use crate::time::{earliest, Timestamp};

/// Most static peers (configured plus added); more configured ones make the engine's construction fail,
/// added ones are refused, both with [`NodeError::TooManyStaticPeers`].
pub const MAX_STATIC_PEERS: usize = 64;
/// Most candidates remembered (cached ones included).
pub const MAX_CANDIDATES: usize = 256;
/// Most good peers in the cache.
pub const CACHE_SIZE: usize = 32;
/// Failures in a row after which a candidate is forgotten.
pub const MAX_DIAL_FAILURES: u32 = 5;
/// Longest peer cache accepted by an import (a full cache is about 3 KiB).
pub const MAX_CACHE_BYTES: usize = 16 * 1024;

const CACHE_VERSION: u64 = 1;

/// Where an outbound connection came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Index into the static peers.
    Static(usize),
    /// A candidate (discovered or cached).
    Candidate(NodeId),
}

#[derive(Debug)]
struct StaticPeer {
    enode: Enode,
    conn: Option<ConnId>,
    up: bool,
    next_dial: Option<Timestamp>,
    backoff: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Idle,
    Dialing,
    Up { since: Timestamp, stable: bool },
    Backoff { until: Timestamp },
}

#[derive(Debug)]
struct Candidate {
    enode: Enode,
    state: State,
    failures: u32,
    /// When the peer was last seen good; `Some` means cached.
    good: Option<Timestamp>,
    order: u64,
}

/// Timers and target of [`Peers`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct PeersConfig {
    pub target: usize,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    pub stable_after: Duration,
}

/// The peer manager (see the module documentation).
#[derive(Debug)]
pub(crate) struct Peers {
    config: PeersConfig,
    statics: Vec<StaticPeer>,
    candidates: BTreeMap<NodeId, Candidate>,
    counter: u64,
    discovery_running: bool,
    /// Set by anything that may change what to dial; cleared by the dial step.
    dirty: bool,
    /// The first `handle_timeout` happened (nothing is dialled before).
    started: bool,
    /// When the engine was made: the first deadline.
    created: Timestamp,
}

impl Peers {
    /// Fails with [`NodeError::TooManyStaticPeers`] past [`MAX_STATIC_PEERS`] static peers.
    pub(crate) fn new(now: Timestamp, config: PeersConfig, statics: &[Enode]) -> Result<Self, NodeError> {
        let mut p = Peers {
            config,
            statics: Vec::new(),
            candidates: BTreeMap::new(),
            counter: 0,
            discovery_running: false,
            dirty: true,
            started: false,
            created: now,
        };
        for e in statics {
            p.add_static(now, e.clone())?;
        }
        Ok(p)
    }

    /// Add a static peer (dialled at `now`); a known one is a no-op; fails when [`MAX_STATIC_PEERS`] are
    /// kept.
    pub(crate) fn add_static(&mut self, now: Timestamp, enode: Enode) -> Result<(), NodeError> {
        if self.statics.iter().any(|s| s.enode.id == enode.id) {
            return Ok(());
        }
        if self.statics.len() >= MAX_STATIC_PEERS {
            return Err(NodeError::TooManyStaticPeers);
        }
        // A static peer is no longer a candidate.
        self.candidates.remove(&NodeId::from_public_key(&enode.id));
        self.statics.push(StaticPeer {
            enode,
            conn: None,
            up: false,
            next_dial: Some(now),
            backoff: self.config.reconnect_min,
        });
        Ok(())
    }

    fn next_order(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// Learn of a candidate. Returns whether it is now known (a static peer is not a candidate).
    pub(crate) fn add_candidate(&mut self, enode: Enode, good: Option<Timestamp>) -> bool {
        if self.statics.iter().any(|s| s.enode.id == enode.id) {
            return false;
        }
        let id = NodeId::from_public_key(&enode.id);
        if let Some(c) = self.candidates.get_mut(&id) {
            if matches!(c.state, State::Idle | State::Backoff { .. }) {
                c.enode = enode;
            }
            if good.is_some() && c.good < good {
                c.good = good;
                self.trim_cache(id);
            }
            return true;
        }
        if !self.make_room() {
            return false;
        }
        let order = self.next_order();
        self.candidates.insert(
            id,
            Candidate {
                enode,
                state: State::Idle,
                failures: 0,
                good,
                order,
            },
        );
        if good.is_some() {
            self.trim_cache(id);
        }
        self.dirty = true;
        true
    }

    /// Make room for one more candidate; `false` if every candidate is busy or cached.
    fn make_room(&mut self) -> bool {
        if self.candidates.len() < MAX_CANDIDATES {
            return true;
        }
        let victim = self
            .candidates
            .iter()
            .filter(|(_, c)| c.good.is_none() && matches!(c.state, State::Idle | State::Backoff { .. }))
            .max_by_key(|(_, c)| (c.failures, core::cmp::Reverse(c.order)))
            .map(|(id, _)| *id);
        match victim {
            Some(id) => {
                self.candidates.remove(&id);
                true
            }
            None => false,
        }
    }

    /// Keep at most [`CACHE_SIZE`] good peers: the least recently good other than `keep` leaves.
    fn trim_cache(&mut self, keep: NodeId) {
        while self.cache_len() > CACHE_SIZE {
            let victim = self
                .candidates
                .iter()
                .filter(|(id, c)| c.good.is_some() && **id != keep)
                .min_by_key(|(_, c)| (c.good, c.order))
                .map(|(id, _)| *id)
                .unwrap_or(keep);
            if let Some(c) = self.candidates.get_mut(&victim) {
                c.good = None;
            }
        }
    }

    /// Candidates remembered.
    pub(crate) fn candidate_count(&self) -> usize {
        self.candidates.len()
    }

    /// Good peers in the cache.
    pub(crate) fn cache_len(&self) -> usize {
        self.candidates.values().filter(|c| c.good.is_some()).count()
    }

    /// Whether discovery was last resumed.
    pub(crate) fn discovery_running(&self) -> bool {
        self.discovery_running
    }

    /// Static peers due for a dial at `now`.
    pub(crate) fn due_statics(&self, now: Timestamp) -> Vec<usize> {
        (0..self.statics.len())
            .filter(|&i| {
                let s = &self.statics[i];
                s.conn.is_none() && s.next_dial.is_some_and(|t| t <= now)
            })
            .collect()
    }

    pub(crate) fn static_enode(&self, i: usize) -> Option<&Enode> {
        self.statics.get(i).map(|s| &s.enode)
    }

    /// Already connected or no room: look again after `reconnect_max`.
    pub(crate) fn static_retry_later(&mut self, now: Timestamp, i: usize) {
        let retry = self.config.reconnect_max;
        if let Some(s) = self.statics.get_mut(i) {
            s.next_dial = Some(now + retry);
        }
    }

    /// A dial for `origin` started on `conn`.
    pub(crate) fn dialing(&mut self, origin: Origin, conn: ConnId) {
        match origin {
            Origin::Static(i) => {
                if let Some(s) = self.statics.get_mut(i) {
                    s.conn = Some(conn);
                    s.up = false;
                    s.next_dial = None;
                }
            }
            Origin::Candidate(id) => {
                if let Some(c) = self.candidates.get_mut(&id) {
                    c.state = State::Dialing;
                }
            }
        }
    }

    /// No connection could even be set up for `origin` (bad key): stop trying it.
    pub(crate) fn dial_impossible(&mut self, origin: Origin) {
        match origin {
            Origin::Static(i) => {
                if let Some(s) = self.statics.get_mut(i) {
                    s.next_dial = None;
                }
            }
            Origin::Candidate(id) => {
                self.candidates.remove(&id);
            }
        }
    }

    /// Whether more dynamic dials are wanted with `established` peers up.
    pub(crate) fn wants_dial(&self, established: usize) -> bool {
        self.started && established + self.pending() < self.config.target
    }

    /// Outbound dials in progress (static or not).
    fn pending(&self) -> usize {
        let s = self.statics.iter().filter(|s| s.conn.is_some() && !s.up).count();
        s + self
            .candidates
            .values()
            .filter(|c| c.state == State::Dialing)
            .count()
    }

    /// The best idle candidate whose node is not `busy`: cached first, fewest failures, oldest.
    pub(crate) fn pick(&self, busy: impl Fn(&PublicKey) -> bool) -> Option<(NodeId, Enode)> {
        self.candidates
            .iter()
            .filter(|(_, c)| c.state == State::Idle && !busy(&c.enode.id))
            .min_by_key(|(_, c)| (c.good.is_none(), c.failures, c.order))
            .map(|(id, c)| (*id, c.enode.clone()))
    }

    /// Whether the dial step should run (something changed since the last one).
    pub(crate) fn take_dirty(&mut self) -> bool {
        core::mem::take(&mut self.dirty) && self.started
    }

    fn static_redial(&mut self, now: Timestamp, i: usize, rng: &mut ChaCha20Rng) {
        let jitter_ms = rng.next_u64() % 1000;
        let max = self.config.reconnect_max;
        let Some(s) = self.statics.get_mut(i) else { return };
        s.conn = None;
        s.up = false;
        s.next_dial = Some(now + s.backoff + Duration::from_millis(jitter_ms));
        s.backoff = s.backoff.saturating_mul(2).min(max);
    }

    fn candidate_failed(&mut self, now: Timestamp, id: NodeId, rng: &mut ChaCha20Rng) {
        let Some(c) = self.candidates.get_mut(&id) else {
            return;
        };
        c.failures = c.failures.saturating_add(1);
        if c.failures >= MAX_DIAL_FAILURES {
            self.candidates.remove(&id);
            return;
        }
        let shift = (c.failures - 1).min(30);
        let span = self
            .config
            .reconnect_min
            .saturating_mul(1u32 << shift)
            .min(self.config.reconnect_max);
        let span_ms = u64::try_from(span.as_millis()).unwrap_or(u64::MAX);
        let half = span_ms / 2;
        let jitter = rng.next_u64() % (span_ms - half).saturating_add(1);
        c.state = State::Backoff {
            until: Timestamp::from_millis(now.as_millis().saturating_add(half + jitter)),
        };
    }

    /// The dial for `origin` failed.
    pub(crate) fn on_dial_failed(&mut self, now: Timestamp, origin: Origin, rng: &mut ChaCha20Rng) {
        self.dirty = true;
        match origin {
            Origin::Static(i) => self.static_redial(now, i, rng),
            Origin::Candidate(id) => self.candidate_failed(now, id, rng),
        }
    }

    /// The connection for `origin` completed Hello; `useful` if a Waku dialect was attached.
    pub(crate) fn on_up(&mut self, now: Timestamp, origin: Origin, useful: bool) {
        self.dirty = true;
        match origin {
            Origin::Static(i) => {
                if let Some(s) = self.statics.get_mut(i) {
                    s.up = true;
                }
            }
            Origin::Candidate(id) => {
                if let Some(c) = self.candidates.get_mut(&id) {
                    // A peer without Waku never becomes stable, so it is never cached.
                    c.state = State::Up {
                        since: now,
                        stable: !useful,
                    };
                }
            }
        }
    }

    /// The connection for `origin` closed after `lasted` (since the socket connected).
    pub(crate) fn on_closed(
        &mut self,
        now: Timestamp,
        origin: Origin,
        lasted: Duration,
        rng: &mut ChaCha20Rng,
    ) {
        self.dirty = true;
        match origin {
            Origin::Static(i) => {
                if lasted >= self.config.stable_after {
                    let min = self.config.reconnect_min;
                    if let Some(s) = self.statics.get_mut(i) {
                        s.backoff = min;
                    }
                }
                self.static_redial(now, i, rng);
            }
            Origin::Candidate(id) => {
                let stable = matches!(self.candidates.get(&id).map(|c| c.state), Some(State::Up { .. }))
                    && lasted >= self.config.stable_after;
                if stable {
                    let until = now + self.config.reconnect_min;
                    if let Some(c) = self.candidates.get_mut(&id) {
                        c.failures = 0;
                        c.state = State::Backoff { until };
                    }
                } else {
                    self.candidate_failed(now, id, rng);
                }
            }
        }
    }

    /// Fire backoff ends and stability checks; the first call starts dialling.
    pub(crate) fn handle_timeout(&mut self, now: Timestamp) {
        if !self.started {
            self.started = true;
            self.dirty = true;
        }
        let stable_after = self.config.stable_after;
        let mut newly_good = Vec::new();
        for (id, c) in self.candidates.iter_mut() {
            match c.state {
                State::Backoff { until } if until <= now => {
                    c.state = State::Idle;
                    self.dirty = true;
                }
                State::Up { since, stable: false } if since + stable_after <= now => {
                    c.state = State::Up { since, stable: true };
                    c.failures = 0;
                    c.good = Some(now);
                    newly_good.push(*id);
                }
                _ => {}
            }
        }
        for id in newly_good {
            self.trim_cache(id);
        }
    }

    /// The earliest static redial, backoff end or stability check.
    pub(crate) fn poll_timeout(&self) -> Option<Timestamp> {
        let mut t = (!self.started).then_some(self.created);
        for s in &self.statics {
            if s.conn.is_none() {
                t = earliest(t, s.next_dial);
            }
        }
        for c in self.candidates.values() {
            let d = match c.state {
                State::Backoff { until } => Some(until),
                State::Up { since, stable: false } => Some(since + self.config.stable_after),
                _ => None,
            };
            t = earliest(t, d);
        }
        t
    }

    /// Apply the discovery rule after the dial step: `Some(true)` to resume, `Some(false)` to suspend.
    pub(crate) fn discovery_step(&mut self, established: usize) -> Option<bool> {
        if !self.started {
            return None;
        }
        let target = self.config.target;
        if self.discovery_running && established >= target {
            self.discovery_running = false;
            Some(false)
        } else if !self.discovery_running && established + self.pending() < target {
            self.discovery_running = true;
            Some(true)
        } else {
            None
        }
    }

    /// The cache as bytes: RLP `[1, [[X‖Y, ip, tcp, udp, last_good_ms], …]]`, most recently good first,
    /// `ip` 4 or 16 bytes, `udp` 0 when unknown.
    pub(crate) fn export_cache(&self) -> Vec<u8> {
        let mut good: Vec<(Timestamp, &Enode)> = self
            .candidates
            .values()
            .filter_map(|c| c.good.map(|g| (g, &c.enode)))
            .collect();
        good.sort_by_key(|(g, _)| core::cmp::Reverse(*g));
        good.truncate(CACHE_SIZE);
        let mut s = RlpStream::new_list(2);
        s.append(&CACHE_VERSION);
        s.begin_list(good.len());
        for (g, e) in good {
            s.begin_list(5);
            s.append(&pubkey_to_raw64(&e.id).as_slice());
            match e.addr.ip() {
                IpAddr::V4(ip) => s.append(&ip.octets().as_slice()),
                IpAddr::V6(ip) => s.append(&ip.octets().as_slice()),
            };
            s.append(&e.addr.port());
            s.append(&e.discport.unwrap_or(0));
            s.append(&g.as_millis());
        }
        s.out().to_vec()
    }

    /// Add the peers of a cache made by [`Peers::export_cache`] as good candidates. Fails, adding nothing,
    /// on bytes that are not such a cache. Returns how many were added.
    pub(crate) fn import_cache(
        &mut self,
        now: Timestamp,
        bytes: &[u8],
        own: &PublicKey,
    ) -> Result<usize, NodeError> {
        let bad = |_| NodeError::PeerCache("malformed cache");
        if bytes.len() > MAX_CACHE_BYTES {
            return Err(NodeError::PeerCache("cache too large"));
        }
        let r = Rlp::new(bytes);
        if !r.is_list() || r.item_count().map_err(bad)? != 2 || r.as_raw().len() != bytes.len() {
            return Err(NodeError::PeerCache("malformed cache"));
        }
        if r.val_at::<u64>(0).map_err(bad)? != CACHE_VERSION {
            return Err(NodeError::PeerCache("unknown cache version"));
        }
        let list = r.at(1).map_err(bad)?;
        if !list.is_list() || list.item_count().map_err(bad)? > CACHE_SIZE {
            return Err(NodeError::PeerCache("malformed cache"));
        }
        let mut entries = Vec::new();
        for item in list.iter() {
            if !item.is_list() || item.item_count().map_err(bad)? != 5 {
                return Err(NodeError::PeerCache("malformed cache entry"));
            }
            let key = item.at(0).and_then(|k| k.data()).map_err(bad)?;
            let id = pubkey_from_raw64(key).ok_or(NodeError::PeerCache("invalid public key"))?;
            let ip = item.at(1).and_then(|k| k.data()).map_err(bad)?;
            let ip = if let Ok(b) = <[u8; 4]>::try_from(ip) {
                IpAddr::from(b)
            } else if let Ok(b) = <[u8; 16]>::try_from(ip) {
                IpAddr::from(b)
            } else {
                return Err(NodeError::PeerCache("invalid ip"));
            };
            let tcp: u16 = item.val_at(2).map_err(bad)?;
            let udp: u16 = item.val_at(3).map_err(bad)?;
            let good: u64 = item.val_at(4).map_err(bad)?;
            let mut enode = Enode::new(id, SocketAddr::new(ip, tcp));
            enode.discport = (udp != 0).then_some(udp);
            entries.push((Timestamp::from_millis(good).min(now), enode));
        }
        // Oldest first, so the most recently good are the newest candidates if the cap bites.
        entries.sort_by_key(|(g, _)| *g);
        let mut n = 0;
        // Our own key (a cache copied from another data dir, say) would only ever fail to dial.
        for (g, enode) in entries.into_iter().filter(|(_, e)| e.id != *own) {
            n += usize::from(self.add_candidate(enode, Some(g)));
        }
        Ok(n)
    }
}
