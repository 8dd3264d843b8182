//! The PeerPool (`docs/protocol/status-client.md` "Discovery and peers";
//! `docs/protocol/status-transport-usage.md` §5): keep static peers, a target number of relay peers and
//! one mailserver connected, tell discovery when to suspend and resume, and keep a cache of good peers
//! that survives restarts. It is the one peer pool of the crate: the [`Engine`](crate::node::Engine)
//! drives it the way it drives the DNS tree client, and it is usable alone.
//!
//! Peers come from three sources:
//! * **static peers** ([`Input::AddStatic`], at most [`MAX_STATIC_PEERS`]) are always kept, whatever the
//!   targets: dialled when the pool starts and redialled after a failure or a disconnect with
//!   exponential backoff (`backoff_initial` doubling to `backoff_max`, plus up to 1 s of jitter from the
//!   seeded RNG), the backoff reset once a connection lasted `stable_after`. They are never closed.
//! * **cached peers** ([`PeerPool::import_cache`]) are dialled before any other candidate.
//! * **discovered peers** ([`Input::Discovered`]), at most `max_candidates` with the cached ones; past it a
//!   new one replaces the idle, uncached candidate with the most failures, or is dropped.
//!
//! Rules, applied after every input and timer once the pool has started (its first
//! [`PeerPool::handle_timeout`]; nothing is dialled before):
//! * **Dial**: static peers that are due are always dialled. While connected plus pending (dialling or
//!   handshaking) relays are below [`PeerPoolConfig::max_relays`] and the pool's connections are below
//!   [`PeerPoolConfig::max_connections`], dial an idle relay candidate: cached first, then fewest
//!   failures, then first heard of. While no mailserver is connected or pending, dial one mailserver
//!   candidate (with [`PeerPoolConfig::mailserver`]). Static peers and peers that connected to us
//!   ([`Input::Connected`] for a node the pool does not know) count as relays.
//! * **Trim** (with [`PeerPoolConfig::close_excess`]): a relay connection past `max_relays` (an inbound
//!   peer, say) and a second mailserver connection are closed with [`Output::Disconnect`], the newest
//!   first; static peers are never closed.
//! * **Discovery** is *suspended* once the targets are reached (`max_relays` relays and the mailserver)
//!   and *resumed* when the pool is starving: connected plus pending relays below
//!   [`PeerPoolConfig::min_relays`], or no mailserver connected or pending, with no idle candidate left
//!   to dial. The pool starts with discovery suspended and its first `handle_timeout` resumes it if
//!   needed, so a warm cache can satisfy the pool after a restart with no lookup at all.
//! * **Backoff**: a failed dial (reported, no answer within [`PeerPoolConfig::dial_timeout`], or a
//!   connection closed before it lasted `stable_after`) puts the candidate in backoff for
//!   `backoff_initial · 2^(failures−1)`, capped at `backoff_max`, drawn from the upper half of that span by
//!   the pool's seeded RNG; after `max_dial_failures` failures in a row the candidate is forgotten (and
//!   leaves the cache). A stable peer that disconnects waits `backoff_initial` before it is dialled again.
//!   A dial with no answer by its deadline is reported with [`Output::DialTimedOut`] (cancel it).
//! * **Cache**: a candidate is cached once its connection *stayed up* for `stable_after` and it was
//!   useful (`Connected { useful: true }`: for the engine, a Waku dialect). Caching on connect (the rule
//!   the standalone pool had) would let a peer that accepts the socket and drops it at once, or one that
//!   speaks none of our protocols, push proven peers out of a bounded cache that a restart dials first;
//!   so the stricter rule is the one kept. At most `cache_size` peers, the most recently good win;
//!   [`PeerPool::export_cache`] and [`PeerPool::import_cache`] move them in and out as bytes (the format
//!   is on [`CACHE_VERSION`]).
//!
//! Deviations from status-go's PeerPool: discovery is one switch, not per topic with fast/slow modes
//! (the driver maps it onto its methods: DNS tree client, discv5, rendezvous); the engine uses one target
//! for all peers (`mailserver` off, mailservers are static peers) and closes nothing past it
//! (`close_excess` off: its `max_peers` is the only hard cap).

mod cache;
mod rules;

use core::time::Duration;
use std::collections::{BTreeMap, VecDeque};

use crate::enode::Enode;
use crate::rng::{Rng, Seed};
use crate::time::{earliest, Timestamp};

use super::enr::NodeId;
use super::DiscoveryError;

pub use cache::{CACHE_VERSION, MAX_CACHE_BYTES};

/// Most static peers; more are refused with [`DiscoveryError::TooManyStaticPeers`].
pub const MAX_STATIC_PEERS: usize = 64;
/// The default (and the engine's) most candidates remembered, cached ones included.
pub const MAX_CANDIDATES: usize = 256;
/// The default (and the engine's) cache size, and the most entries a cache may hold.
pub const CACHE_SIZE: usize = 32;
/// The default failures in a row after which a candidate is forgotten.
pub const MAX_DIAL_FAILURES: u32 = 5;

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
    /// The pool dials up to this many relay peers (default 3).
    pub max_relays: usize,
    /// Whether the pool keeps one mailserver connected (default true).
    pub mailserver: bool,
    /// Candidates remembered, cached ones included (default [`MAX_CANDIDATES`]).
    pub max_candidates: usize,
    /// Good peers remembered across restarts (default and most [`CACHE_SIZE`]).
    pub cache_size: usize,
    /// A dial with no answer after this long counts as failed (default 30 s).
    pub dial_timeout: Duration,
    /// The first backoff after a failed dial, and the wait after a stable peer left (default 5 s).
    pub backoff_initial: Duration,
    /// The longest backoff (default 10 min).
    pub backoff_max: Duration,
    /// Failures in a row after which a candidate is forgotten (default [`MAX_DIAL_FAILURES`]).
    pub max_dial_failures: u32,
    /// A connection up this long is stable: the peer is cached, a static peer's backoff resets
    /// (default 30 s).
    pub stable_after: Duration,
    /// Close relay connections past `max_relays` and a second mailserver (default true).
    pub close_excess: bool,
    /// No candidate is dialled while the pool's connections (dialled ones in any state, peers that
    /// connected to us) reach this (default unlimited).
    pub max_connections: usize,
    /// Our own node: never a candidate, skipped on a cache import (default none).
    pub local: Option<NodeId>,
}

impl Default for PeerPoolConfig {
    fn default() -> Self {
        PeerPoolConfig {
            min_relays: 2,
            max_relays: 3,
            mailserver: true,
            max_candidates: MAX_CANDIDATES,
            cache_size: CACHE_SIZE,
            dial_timeout: Duration::from_secs(30),
            backoff_initial: Duration::from_secs(5),
            backoff_max: Duration::from_secs(600),
            max_dial_failures: MAX_DIAL_FAILURES,
            stable_after: Duration::from_secs(30),
            close_excess: true,
            max_connections: usize::MAX,
            local: None,
        }
    }
}

/// What the driver tells a [`PeerPool`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Input {
    /// Discovery (a DNS tree, discv5, rendezvous, a static list) found a node.
    Discovered {
        /// Where to dial it.
        enode: Enode,
        /// What it is for.
        kind: PeerKind,
    },
    /// Keep this peer connected from now on (at most [`MAX_STATIC_PEERS`]); a known one is a no-op.
    AddStatic {
        /// Where to dial it.
        enode: Enode,
        /// What it is for.
        kind: PeerKind,
    },
    /// The socket of a dial the pool asked for connected; the handshake runs (the dial deadline stops).
    Reached {
        /// The peer's node id.
        id: NodeId,
    },
    /// A connection to `id` is up (dialled by the pool or not). `useful`: it speaks what the pool keeps
    /// peers for (the engine: a Waku dialect); only useful peers are cached.
    Connected {
        /// The peer's node id.
        id: NodeId,
        /// Whether it may be cached once stable.
        useful: bool,
    },
    /// The connection to `id` closed (before or after it was up).
    Disconnected {
        /// The peer's node id.
        id: NodeId,
    },
    /// A dial the pool asked for failed.
    DialFailed {
        /// The peer's node id.
        id: NodeId,
    },
    /// No connection can ever be made to `id` (its key is unusable): it is forgotten.
    Undialable {
        /// The peer's node id.
        id: NodeId,
    },
}

/// What a [`PeerPool`] asks its driver to do.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// Connect to this node; answer with [`Input::Reached`] / [`Input::Connected`] or
    /// [`Input::DialFailed`].
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
    /// The dial to this peer had no answer by its deadline: it counts as failed; cancel it.
    DialTimedOut {
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
    Dialing {
        deadline: Timestamp,
    },
    Handshaking {
        since: Timestamp,
    },
    Up {
        since: Timestamp,
        order: u64,
        stable: bool,
    },
    Backoff {
        until: Timestamp,
    },
}

impl State {
    fn pending(self) -> bool {
        matches!(self, State::Dialing { .. } | State::Handshaking { .. })
    }

    fn up(self) -> bool {
        matches!(self, State::Up { .. })
    }

    fn busy(self) -> bool {
        self.pending() || self.up()
    }
}

#[derive(Clone, Debug)]
struct StaticPeer {
    id: NodeId,
    enode: Enode,
    kind: PeerKind,
    state: State,
    backoff: Duration,
}

#[derive(Clone, Debug)]
struct Candidate {
    enode: Enode,
    kind: PeerKind,
    state: State,
    failures: u32,
    /// When the peer was last seen good; `Some` means cached.
    good: Option<Timestamp>,
    order: u64,
}

/// A peer that connected to us and that the pool does not know (counted as a relay, never dialled).
#[derive(Clone, Copy, Debug)]
struct Inbound {
    order: u64,
}

/// The PeerPool as a sans-IO machine (see the module documentation).
#[derive(Debug)]
pub struct PeerPool {
    config: PeerPoolConfig,
    rng: Rng,
    statics: Vec<StaticPeer>,
    peers: BTreeMap<NodeId, Candidate>,
    inbound: BTreeMap<NodeId, Inbound>,
    outputs: VecDeque<Output>,
    discovery_running: bool,
    counter: u64,
    /// The first `handle_timeout` happened (nothing is dialled before).
    started: bool,
    /// When the pool was made: its first deadline.
    created: Timestamp,
}

impl PeerPool {
    /// A pool with no peers. Fails on `min_relays > max_relays`, a zero `max_candidates`,
    /// `max_dial_failures`, `dial_timeout` or `backoff_initial`, `backoff_initial > backoff_max`, or a
    /// `cache_size` of 0 or over [`CACHE_SIZE`].
    pub fn new(config: PeerPoolConfig, seed: &Seed, now: Timestamp) -> Result<Self, DiscoveryError> {
        if config.min_relays > config.max_relays {
            return Err(DiscoveryError::Config("need min_relays <= max_relays"));
        }
        if config.max_candidates == 0 || config.max_dial_failures == 0 {
            return Err(DiscoveryError::Config(
                "max_candidates and max_dial_failures must be at least 1",
            ));
        }
        if config.cache_size == 0 || config.cache_size > CACHE_SIZE {
            return Err(DiscoveryError::Config("need 0 < cache_size <= CACHE_SIZE"));
        }
        if config.dial_timeout.is_zero()
            || config.backoff_initial.is_zero()
            || config.backoff_initial > config.backoff_max
        {
            return Err(DiscoveryError::Config(
                "need a dial_timeout and 0 < backoff_initial <= backoff_max",
            ));
        }
        Ok(PeerPool {
            config,
            rng: seed.rng(),
            statics: Vec::new(),
            peers: BTreeMap::new(),
            inbound: BTreeMap::new(),
            outputs: VecDeque::new(),
            discovery_running: false,
            counter: 0,
            started: false,
            created: now,
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

    /// Connected peers of `kind` (static and inbound peers included).
    pub fn connected(&self, kind: PeerKind) -> usize {
        let inbound = if kind == PeerKind::Relay {
            self.inbound.len()
        } else {
            0
        };
        self.count(kind, State::up) + inbound
    }

    /// Dials of `kind` in progress (socket or handshake), static ones included.
    pub fn dialing(&self, kind: PeerKind) -> usize {
        self.count(kind, State::pending)
    }

    /// Candidates remembered (cached ones included; static and inbound peers are not candidates).
    pub fn candidate_count(&self) -> usize {
        self.peers.len()
    }

    /// Static peers kept.
    pub fn static_count(&self) -> usize {
        self.statics.len()
    }

    /// Peers in the cache.
    pub fn cache_len(&self) -> usize {
        self.peers.values().filter(|c| c.good.is_some()).count()
    }

    /// Static peers and candidates of `kind` whose state passes `f`.
    fn count(&self, kind: PeerKind, f: impl Fn(State) -> bool) -> usize {
        let statics = self
            .statics
            .iter()
            .filter(|s| s.kind == kind && f(s.state))
            .count();
        statics
            + self
                .peers
                .values()
                .filter(|c| c.kind == kind && f(c.state))
                .count()
    }

    fn next_order(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    fn static_index(&self, id: &NodeId) -> Option<usize> {
        self.statics.iter().position(|s| s.id == *id)
    }

    /// Feed an event from discovery or the transport. `Err` only for a static peer past
    /// [`MAX_STATIC_PEERS`].
    pub fn handle_input(&mut self, now: Timestamp, input: Input) -> Result<(), DiscoveryError> {
        match input {
            Input::Discovered { enode, kind } => {
                self.discovered(now, enode, kind, None);
            }
            Input::AddStatic { enode, kind } => self.add_static(enode, kind)?,
            Input::Reached { id } => self.reached(now, id),
            Input::Connected { id, useful } => self.connected_peer(now, id, useful),
            Input::Disconnected { id } => self.disconnected(now, id),
            Input::DialFailed { id } => self.dial_failed(now, id),
            Input::Undialable { id } => {
                self.statics.retain(|s| s.id != id);
                self.peers.remove(&id);
            }
        }
        self.step(now);
        Ok(())
    }

    /// Fire dial deadlines, backoff ends and stability checks that are due and re-apply the rules. The
    /// first call starts the pool; a spurious call only re-applies the rules.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.started = true;
        self.fire_timers(now);
        self.step(now);
    }

    /// The earliest dial deadline, backoff end or stability check (before the pool started: when it
    /// was made).
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let mut t = (!self.started).then_some(self.created);
        let stable_after = self.config.stable_after;
        let deadline = |s: State| match s {
            State::Dialing { deadline } => Some(deadline),
            State::Backoff { until } => Some(until),
            State::Up {
                since, stable: false, ..
            } => Some(since + stable_after),
            _ => None,
        };
        for s in &self.statics {
            t = earliest(t, deadline(s.state));
        }
        for c in self.peers.values() {
            t = earliest(t, deadline(c.state));
        }
        t
    }

    /// The next request for the driver.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }
}
