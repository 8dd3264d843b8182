//! The PeerPool (`docs/protocol/status-client.md` "Discovery and peers";
//! `docs/protocol/status-transport-usage.md` §5): keep a target number of relay peers and exactly one
//! mailserver, tell discovery when to suspend and resume, and keep a cache of good peers that survives
//! restarts.
//!
//! Rules, applied after every input and timer:
//! * **Dial**: while connected plus dialing relays are below [`PeerPoolConfig::max_relays`], dial an idle
//!   relay candidate (cached peers first, then fewest failures, then first discovered); while no
//!   mailserver is connected or being dialed, dial one mailserver candidate. At most one mailserver is
//!   ever dialed at a time, so at most one is connected through the pool.
//! * **Trim**: a relay connection past `max_relays` (an inbound peer, say) and a second mailserver
//!   connection are closed with [`Output::Disconnect`] (the newest goes).
//! * **Discovery**: it is *suspended* once the target is reached (`max_relays` relays and the mailserver),
//!   and *resumed* when the pool is starving: connected plus dialing relays below
//!   [`PeerPoolConfig::min_relays`], or no mailserver connected or being dialed, with no idle candidate
//!   left to dial. So a warm cache can satisfy the pool after a restart without running discovery at all
//!   ("Cache discovered peers; on restart, cached peers may satisfy the pool"). The pool starts with
//!   discovery considered suspended: the first call (`handle_timeout(now)` is enough) resumes it if needed.
//! * **Backoff**: a failed dial (reported, or no answer within [`PeerPoolConfig::dial_timeout`]) puts the
//!   candidate in backoff for `backoff_initial · 2^(failures−1)`, capped at `backoff_max`, drawn uniformly
//!   from the upper half of that span by the pool's seeded RNG (so a run is reproducible from its seed);
//!   after [`PeerPoolConfig::max_dial_failures`] failures in a row the candidate is forgotten. A peer that
//!   disconnects waits `backoff_initial` before it is dialed again.
//! * **Cache**: every peer that connected is remembered (up to [`PeerPoolConfig::cache_size`], the least
//!   recently seen goes first); [`PeerPool::export_cache`] and [`PeerPool::import_cache`] move it in and
//!   out as bytes the driver stores.
//!
//! Deviation: status-go's PeerPool runs discovery per topic with fast/slow search modes; here discovery
//! is one switch and the driver maps it onto its methods (DNS tree client, discv5, rendezvous).

use core::time::Duration;
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use rand_core::RngCore;
use rlp::{Rlp, RlpStream};

use crate::crypto::{pubkey_from_raw64, pubkey_to_raw64};
use crate::enode::Enode;
use crate::rng::{Rng, Seed};
use crate::time::Timestamp;

use super::enr::NodeId;
use super::DiscoveryError;

/// What a peer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeerKind {
    /// A Waku relay peer (discovery topic `whisper`).
    Relay,
    /// A mailserver (discovery topic `whispermail`).
    Mailserver,
}

/// Targets, caps and timers of a [`PeerPool`].
#[derive(Clone, Debug)]
pub struct PeerPoolConfig {
    /// Below this many relay peers the pool is starving (default 2, the mobile minimum).
    pub min_relays: usize,
    /// The pool dials up to this many relay peers and closes connections past it (default 3).
    pub max_relays: usize,
    /// Whether the pool keeps one mailserver connected (default true).
    pub mailserver: bool,
    /// Candidates remembered, cached ones included (default 256). Past it the new candidate replaces an
    /// idle uncached one with the most failures, or is dropped if there is none.
    pub max_candidates: usize,
    /// Good peers remembered across restarts (default 32).
    pub cache_size: usize,
    /// A dial with no answer after this long counts as failed (default 30 s).
    pub dial_timeout: Duration,
    /// The first backoff after a failed dial (default 5 s).
    pub backoff_initial: Duration,
    /// The longest backoff (default 10 min).
    pub backoff_max: Duration,
    /// Failures in a row after which a candidate is forgotten (default 5).
    pub max_dial_failures: u32,
}

impl Default for PeerPoolConfig {
    fn default() -> Self {
        PeerPoolConfig {
            min_relays: 2,
            max_relays: 3,
            mailserver: true,
            max_candidates: 256,
            cache_size: 32,
            dial_timeout: Duration::from_secs(30),
            backoff_initial: Duration::from_secs(5),
            backoff_max: Duration::from_secs(600),
            max_dial_failures: 5,
        }
    }
}

/// What the driver tells a [`PeerPool`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Discovery (a DNS tree, discv5, rendezvous, a static list) found a node.
    Discovered {
        /// Where to dial it.
        enode: Enode,
        /// What it is for.
        kind: PeerKind,
    },
    /// A connection to `id` is up (dialed by the pool or not).
    Connected {
        /// The peer's node id.
        id: NodeId,
    },
    /// The connection to `id` closed.
    Disconnected {
        /// The peer's node id.
        id: NodeId,
    },
    /// A dial the pool asked for failed.
    DialFailed {
        /// The peer's node id.
        id: NodeId,
    },
}

/// What a [`PeerPool`] asks its driver to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Connect to this node; answer with [`Input::Connected`] or [`Input::DialFailed`].
    Dial {
        /// Where.
        enode: Enode,
        /// What for.
        kind: PeerKind,
    },
    /// Close the connection to this peer.
    Disconnect {
        /// The peer's node id.
        id: NodeId,
    },
    /// The target is reached: stop looking for peers.
    SuspendDiscovery,
    /// The pool is starving: look for peers again.
    ResumeDiscovery,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Idle,
    Dialing { deadline: Timestamp },
    Connected { since: u64 },
    Backoff { until: Timestamp },
}

#[derive(Clone, Debug)]
struct Candidate {
    /// `None` for an inbound peer the pool never heard of (it cannot dial it).
    enode: Option<Enode>,
    kind: PeerKind,
    state: State,
    failures: u32,
    cached: bool,
    last_seen: Timestamp,
    order: u64,
}

/// The PeerPool as a sans-IO machine (see the module documentation).
#[derive(Debug)]
pub struct PeerPool {
    config: PeerPoolConfig,
    rng: Rng,
    peers: BTreeMap<NodeId, Candidate>,
    outputs: VecDeque<Output>,
    discovery_running: bool,
    counter: u64,
}

/// The version of this pool's cache format. Version 1 is the engine's format
/// (`node::peers`, five fields per peer, no kind); a cache of another version is refused on import.
const CACHE_VERSION: u64 = 2;

impl PeerPool {
    /// A pool with no candidates. Fails if `min_relays > max_relays`, `max_relays` is 0, or a cap is 0.
    pub fn new(config: PeerPoolConfig, seed: &Seed) -> Result<Self, DiscoveryError> {
        if config.max_relays == 0 || config.min_relays > config.max_relays {
            return Err(DiscoveryError::Config(
                "need 0 < max_relays and min_relays <= max_relays",
            ));
        }
        if config.max_candidates == 0 || config.max_dial_failures == 0 {
            return Err(DiscoveryError::Config(
                "max_candidates and max_dial_failures must be at least 1",
            ));
        }
        Ok(PeerPool {
            config,
            rng: seed.rng(),
            peers: BTreeMap::new(),
            outputs: VecDeque::new(),
            discovery_running: false,
            counter: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PeerPoolConfig {
        &self.config
    }

    /// Whether the pool last asked for discovery to run.
    pub fn discovery_running(&self) -> bool {
        self.discovery_running
    }

    /// Connected peers of `kind`.
    pub fn connected(&self, kind: PeerKind) -> usize {
        self.count(kind, |s| matches!(s, State::Connected { .. }))
    }

    /// Dials of `kind` in progress.
    pub fn dialing(&self, kind: PeerKind) -> usize {
        self.count(kind, |s| matches!(s, State::Dialing { .. }))
    }

    /// Candidates remembered (cached ones included).
    pub fn candidate_count(&self) -> usize {
        self.peers.len()
    }

    /// Peers in the cache.
    pub fn cache_len(&self) -> usize {
        self.peers.values().filter(|c| c.cached).count()
    }

    fn count(&self, kind: PeerKind, f: impl Fn(&State) -> bool) -> usize {
        self.peers
            .values()
            .filter(|c| c.kind == kind && f(&c.state))
            .count()
    }

    fn next_order(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// Feed an event from discovery or the transport.
    pub fn handle_input(&mut self, now: Timestamp, input: Input) {
        match input {
            Input::Discovered { enode, kind } => self.discovered(now, enode, kind, false),
            Input::Connected { id } => {
                let order = self.next_order();
                match self.peers.get_mut(&id) {
                    Some(c) => {
                        c.state = State::Connected { since: order };
                        c.failures = 0;
                        c.last_seen = now;
                        if c.enode.is_some() && !c.cached {
                            c.cached = true;
                            self.trim_cache(id);
                        }
                    }
                    None => {
                        // An inbound peer the pool never heard of: counted as a relay, never re-dialed.
                        if self.make_room() {
                            self.peers.insert(
                                id,
                                Candidate {
                                    enode: None,
                                    kind: PeerKind::Relay,
                                    state: State::Connected { since: order },
                                    failures: 0,
                                    cached: false,
                                    last_seen: now,
                                    order,
                                },
                            );
                        } else {
                            self.outputs.push_back(Output::Disconnect { id });
                        }
                    }
                }
            }
            Input::Disconnected { id } => {
                if let Some(c) = self.peers.get_mut(&id) {
                    if matches!(c.state, State::Connected { .. }) {
                        if c.enode.is_none() {
                            self.peers.remove(&id);
                        } else {
                            c.last_seen = now;
                            c.state = State::Backoff {
                                until: now + self.config.backoff_initial,
                            };
                        }
                    }
                }
            }
            Input::DialFailed { id } => {
                if matches!(self.peers.get(&id).map(|c| c.state), Some(State::Dialing { .. })) {
                    self.dial_failed(now, id);
                }
            }
        }
        self.step(now);
    }

    /// Fire backoffs and dial timeouts that are due and re-apply the rules. A spurious call only
    /// re-applies the rules (the first call starts the pool).
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let due: Vec<(NodeId, bool)> = self
            .peers
            .iter()
            .filter_map(|(id, c)| match c.state {
                State::Dialing { deadline } if deadline <= now => Some((*id, true)),
                State::Backoff { until } if until <= now => Some((*id, false)),
                _ => None,
            })
            .collect();
        for (id, dial_timed_out) in due {
            if dial_timed_out {
                self.dial_failed(now, id);
            } else if let Some(c) = self.peers.get_mut(&id) {
                c.state = State::Idle;
            }
        }
        self.step(now);
    }

    /// The earliest backoff end or dial deadline.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.peers
            .values()
            .filter_map(|c| match c.state {
                State::Dialing { deadline } => Some(deadline),
                State::Backoff { until } => Some(until),
                _ => None,
            })
            .min()
    }

    /// The next request for the driver.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn discovered(&mut self, now: Timestamp, enode: Enode, kind: PeerKind, cached: bool) {
        let id = NodeId::from_public_key(&enode.id);
        if let Some(c) = self.peers.get_mut(&id) {
            if matches!(c.state, State::Idle | State::Backoff { .. }) {
                c.enode = Some(enode);
                c.kind = kind;
            }
            let newly_cached = cached && !c.cached;
            c.cached |= cached;
            c.last_seen = c.last_seen.max(now);
            if newly_cached {
                self.trim_cache(id);
            }
            return;
        }
        if !self.make_room() {
            return;
        }
        let order = self.next_order();
        self.peers.insert(
            id,
            Candidate {
                enode: Some(enode),
                kind,
                state: State::Idle,
                failures: 0,
                cached,
                last_seen: now,
                order,
            },
        );
        if cached {
            self.trim_cache(id);
        }
    }

    /// Make room for one more candidate; `false` if every candidate is busy or cached.
    fn make_room(&mut self) -> bool {
        if self.peers.len() < self.config.max_candidates {
            return true;
        }
        let victim = self
            .peers
            .iter()
            .filter(|(_, c)| !c.cached && matches!(c.state, State::Idle | State::Backoff { .. }))
            .max_by_key(|(_, c)| {
                (
                    c.failures,
                    core::cmp::Reverse(c.last_seen),
                    core::cmp::Reverse(c.order),
                )
            })
            .map(|(id, _)| *id);
        match victim {
            Some(id) => {
                self.peers.remove(&id);
                true
            }
            None => false,
        }
    }

    /// Keep at most `cache_size` cached peers: the least recently seen other than `keep` leaves the cache.
    fn trim_cache(&mut self, keep: NodeId) {
        while self.cache_len() > self.config.cache_size {
            let victim = self
                .peers
                .iter()
                .filter(|(id, c)| c.cached && **id != keep)
                .min_by_key(|(_, c)| (c.last_seen, c.order))
                .map(|(id, _)| *id);
            match victim.and_then(|id| self.peers.get_mut(&id)) {
                Some(c) => c.cached = false,
                None => {
                    if let Some(c) = self.peers.get_mut(&keep) {
                        c.cached = false;
                    }
                }
            }
        }
    }

    fn dial_failed(&mut self, now: Timestamp, id: NodeId) {
        let Some(c) = self.peers.get_mut(&id) else {
            return;
        };
        c.failures = c.failures.saturating_add(1);
        if c.failures >= self.config.max_dial_failures {
            self.peers.remove(&id);
            return;
        }
        let shift = (c.failures - 1).min(30);
        let span = self
            .config
            .backoff_initial
            .saturating_mul(1u32 << shift)
            .min(self.config.backoff_max);
        let span_ms = u64::try_from(span.as_millis()).unwrap_or(u64::MAX);
        let half = span_ms / 2;
        let jitter = self.rng.next_u64() % (span_ms - half + 1);
        c.state = State::Backoff {
            until: Timestamp::from_millis(now.as_millis().saturating_add(half + jitter)),
        };
    }

    /// The best idle candidate of `kind` to dial: cached first, then fewest failures, then oldest.
    fn pick(&self, kind: PeerKind) -> Option<NodeId> {
        self.peers
            .iter()
            .filter(|(_, c)| c.kind == kind && c.state == State::Idle && c.enode.is_some())
            .min_by_key(|(_, c)| (!c.cached, c.failures, c.order))
            .map(|(id, _)| *id)
    }

    fn dial(&mut self, now: Timestamp, id: NodeId) {
        let deadline = now + self.config.dial_timeout;
        if let Some(c) = self.peers.get_mut(&id) {
            if let Some(enode) = &c.enode {
                c.state = State::Dialing { deadline };
                self.outputs.push_back(Output::Dial {
                    enode: enode.clone(),
                    kind: c.kind,
                });
            }
        }
    }

    /// Close the newest connections of `kind` past `max`.
    fn trim(&mut self, kind: PeerKind, max: usize) {
        let mut conns: Vec<(u64, NodeId)> = self
            .peers
            .iter()
            .filter_map(|(id, c)| match c.state {
                State::Connected { since } if c.kind == kind => Some((since, *id)),
                _ => None,
            })
            .collect();
        if conns.len() <= max {
            return;
        }
        conns.sort();
        for (_, id) in conns.split_off(max) {
            if let Some(c) = self.peers.get_mut(&id) {
                // The disconnect is ours: no dial for a while, no failure counted.
                c.state = State::Idle;
            }
            if self.peers.get(&id).is_some_and(|c| c.enode.is_none()) {
                self.peers.remove(&id);
            }
            self.outputs.push_back(Output::Disconnect { id });
        }
    }

    fn step(&mut self, now: Timestamp) {
        let mail_max = usize::from(self.config.mailserver);
        self.trim(PeerKind::Relay, self.config.max_relays);
        self.trim(PeerKind::Mailserver, mail_max);
        while self.connected(PeerKind::Relay) + self.dialing(PeerKind::Relay) < self.config.max_relays {
            match self.pick(PeerKind::Relay) {
                Some(id) => self.dial(now, id),
                None => break,
            }
        }
        if self.connected(PeerKind::Mailserver) + self.dialing(PeerKind::Mailserver) < mail_max {
            if let Some(id) = self.pick(PeerKind::Mailserver) {
                self.dial(now, id);
            }
        }
        let relays = self.connected(PeerKind::Relay);
        let mails = self.connected(PeerKind::Mailserver);
        let satisfied = relays >= self.config.max_relays && mails >= mail_max;
        let starving = relays + self.dialing(PeerKind::Relay) < self.config.min_relays
            || mails + self.dialing(PeerKind::Mailserver) < mail_max;
        if self.discovery_running && satisfied {
            self.discovery_running = false;
            self.outputs.push_back(Output::SuspendDiscovery);
        } else if !self.discovery_running && starving {
            self.discovery_running = true;
            self.outputs.push_back(Output::ResumeDiscovery);
        }
    }

    /// The cache as bytes for the driver to store: RLP `[2, [[kind, X‖Y, ip, tcp, udp, last_seen_ms], …]]`
    /// with `kind` 0 relay / 1 mailserver, `ip` 4 or 16 bytes and `udp` 0 when it equals `tcp`.
    pub fn export_cache(&self) -> Vec<u8> {
        let cached: Vec<(&Candidate, &Enode)> = self
            .peers
            .values()
            .filter(|c| c.cached)
            .filter_map(|c| c.enode.as_ref().map(|e| (c, e)))
            .collect();
        let mut s = RlpStream::new_list(2);
        s.append(&CACHE_VERSION);
        s.begin_list(cached.len());
        for (c, e) in cached {
            s.begin_list(6);
            s.append(&u8::from(c.kind == PeerKind::Mailserver));
            s.append(&pubkey_to_raw64(&e.id).as_slice());
            match e.addr.ip() {
                IpAddr::V4(ip) => s.append(&ip.octets().as_slice()),
                IpAddr::V6(ip) => s.append(&ip.octets().as_slice()),
            };
            s.append(&e.addr.port());
            s.append(&e.discport.unwrap_or(0));
            s.append(&c.last_seen.as_millis());
        }
        s.out().to_vec()
    }

    /// Add the peers of a cache made by [`PeerPool::export_cache`] as cached candidates (at most
    /// `cache_size`; the most recently seen win). Returns how many were added. Fails, adding nothing,
    /// if the bytes are not such a cache.
    pub fn import_cache(&mut self, now: Timestamp, bytes: &[u8]) -> Result<usize, DiscoveryError> {
        let bad = |_| DiscoveryError::Cache("malformed cache");
        let r = Rlp::new(bytes);
        if !r.is_list() || r.item_count().map_err(bad)? != 2 || r.as_raw().len() != bytes.len() {
            return Err(DiscoveryError::Cache("malformed cache"));
        }
        if r.val_at::<u64>(0).map_err(bad)? != CACHE_VERSION {
            return Err(DiscoveryError::Cache("unknown cache version"));
        }
        let list = r.at(1).map_err(bad)?;
        if !list.is_list() {
            return Err(DiscoveryError::Cache("malformed cache"));
        }
        let mut entries = Vec::new();
        for item in list.iter() {
            if !item.is_list() || item.item_count().map_err(bad)? != 6 {
                return Err(DiscoveryError::Cache("malformed cache entry"));
            }
            let kind = match item.val_at::<u8>(0).map_err(bad)? {
                0 => PeerKind::Relay,
                1 => PeerKind::Mailserver,
                _ => return Err(DiscoveryError::Cache("unknown peer kind")),
            };
            let key = item.at(1).and_then(|k| k.data()).map_err(bad)?;
            let id = pubkey_from_raw64(key).ok_or(DiscoveryError::Cache("invalid public key"))?;
            let ip = item.at(2).and_then(|k| k.data()).map_err(bad)?;
            let ip = match ip.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(ip).map_err(|_| DiscoveryError::Cache("ip"))?),
                16 => IpAddr::from(<[u8; 16]>::try_from(ip).map_err(|_| DiscoveryError::Cache("ip"))?),
                _ => return Err(DiscoveryError::Cache("invalid ip")),
            };
            let tcp: u16 = item.val_at(3).map_err(bad)?;
            let udp: u16 = item.val_at(4).map_err(bad)?;
            let last_seen: u64 = item.val_at(5).map_err(bad)?;
            let mut enode = Enode::new(id, SocketAddr::new(ip, tcp));
            enode.discport = (udp != 0).then_some(udp);
            entries.push((Timestamp::from_millis(last_seen), enode, kind));
        }
        if list.item_count().map_err(bad)? != entries.len() {
            return Err(DiscoveryError::Cache("malformed cache"));
        }
        entries.sort_by_key(|(seen, _, _)| core::cmp::Reverse(*seen));
        entries.truncate(self.config.cache_size);
        let n = entries.len();
        for (seen, enode, kind) in entries.into_iter().rev() {
            self.discovered(seen.min(now), enode, kind, true);
        }
        Ok(n)
    }
}
