//! A deterministic network simulator for sans-IO engines (docs/architecture.md "Simulation").
//!
//! A [`Sim`] drives N state machines that implement [`Machine`] against a virtual clock and a seeded
//! network model ([`LinkModel`] per directed link: latency and jitter, bandwidth, loss, duplication,
//! reordering, optional in-order delivery; scheduled [`Fault`]s: partitions, links down and nodes going
//! offline; a clock skew per node with [`Sim::set_clock_skew`]). Machines send datagrams
//! ([`SimOutput::Transmit`]) or segments of a reliable byte stream ([`SimOutput::Stream`]: in order,
//! loss costs a retransmission delay, a cut is reported back to the sender with
//! [`Machine::handle_unreachable`]). Every random choice, including the seed each machine gets, comes
//! from the one `u64` seed, so a run is reproducible byte for byte: [`Sim::trace_digest`] hashes a
//! canonical binary encoding of everything that happened (times as milliseconds, node indices, datagram
//! bytes, and commands and events through [`TraceEncode`], never `Debug` output, so the digest is stable
//! across builds and dependency versions). [`TraceLevel::Full`] also keeps a text line and a
//! [`TimelineEntry`] per step, written as JSON lines by [`Sim::write_timeline`] (with
//! [`Sim::summary`]). If the thread panics while a `Sim` is alive (a failed assertion in a scenario), one
//! line that replays the run is printed ([`Sim::replay_command`]: `SIM_SEED=<seed> cargo test ...`).
//!
//! Two families of machines come with it:
//! * [`mvds::MvdsEngine`]: an MVDS [`Node`](crate::mvds::Node) over datagrams;
//! * full nodes: [`full::FullNode`] runs a [`node::Engine`](crate::node::Engine) (RLPx, Waku, secure
//!   transport, MVDS, Messenger, mailserver, history client, DNS discovery) over the connection model of
//!   [`conn`] (dial, accept, refuse, close, reset on stream segments), with a simulated DNS zone, an
//!   in-memory mailserver archive and crash/restart from snapshots; [`adversary`] holds hostile hosts
//!   (flooder, slowloris, garbage sender, replayer, stalling mailserver) that any scenario adds next to
//!   them, and [`invariants`] the checks run during and after a run. A [`full::NetSim`] mixes them;
//!   [`scenario`] builds such networks with deterministic identities, and random workloads with fault
//!   schedules from one seed (`status-node sim`).
//!
//! # Example: two full nodes, one public-chat message
//!
//! ```
//! use std::time::Duration;
//! use status_sansio::chat::messenger::{Event as ChatEvent, Input as Chat, MessengerConfig};
//! use status_sansio::crypto::SecretKey;
//! use status_sansio::node::{EngineConfig, Event};
//! use status_sansio::sim::full::{self, FullNode, NetSim, NodeCommand, NodeEvent};
//! use status_sansio::sim::{LinkModel, NodeId};
//! use status_sansio::{Seed, Timestamp};
//!
//! let key = |i: u64| SecretKey::random(&mut Seed::from_u64(i).rng());
//! // 20–80 ms of latency (the jitter), 1 % of segments lost and retransmitted.
//! let link = LinkModel::stream(Duration::from_millis(20), Duration::from_millis(80), 0.01, None);
//! let mut sim = NetSim::new(42, Timestamp::from_secs(1_700_000_000), link);
//! let (a, b) = (NodeId(0), NodeId(1));
//! // Both run a Messenger; `b` keeps `a` as a static peer and dials it at `full::enode(a, ..)`.
//! for (n, peers) in [(a, vec![]), (b, vec![full::enode(a, key(0).public_key())])] {
//!     let mut config = EngineConfig::new(full::rlpx_config(key(n.0 as u64)));
//!     config.static_peers = peers;
//!     config.messenger = Some(MessengerConfig::new(key(100 + n.0 as u64), "device".into()));
//!     sim.add_node(|id, seed, now| FullNode::new(id, config, seed, now).boxed());
//!     let join = NodeCommand::Chat(Chat::JoinPublicChat("status".into()));
//!     sim.schedule(sim.now(), n, join);
//! }
//! sim.run_for(Duration::from_secs(5));
//! let hello = Chat::SendText { chat: "status".into(), text: "hello".into() };
//! sim.schedule(sim.now(), a, NodeCommand::Chat(hello));
//! sim.run_for(Duration::from_secs(5));
//! let received = sim.events().iter().any(|(_, n, e)| {
//!     *n == b
//!         && matches!(e, NodeEvent::Engine(Event::Chat(ChatEvent::MessageReceived { message, own: false, .. }))
//!             if message.text == "hello")
//! });
//! assert!(received);
//! // The same seed gives the same digest, run after run.
//! assert_eq!(sim.trace_digest_hex().len(), 64);
//! ```

pub mod adversary;
pub mod conn;
pub mod full;
pub mod invariants;
mod machine;
pub mod mvds;
mod network;
pub mod scenario;
mod timeline;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::fmt::Debug;
use std::time::Duration;

use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};

pub use machine::{trace_bytes, Machine, SimOutput, TraceEncode};
pub use network::{Fault, LinkModel};
pub use timeline::{Summary, TimelineEntry};

use crate::rng::{fork, Seed};
use crate::time::Timestamp;

/// The index of a simulated node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub usize);

/// What a trace record is about (the first byte of its canonical encoding).
#[derive(Clone, Copy)]
#[repr(u8)]
enum Record {
    Timeout = 1,
    Cut = 2,
    Deliver = 3,
    Command = 4,
    Wake = 5,
    Event = 6,
    Lost = 7,
    CutAtSend = 8,
    NoSuchNode = 9,
    Segment = 10,
    Unreachable = 11,
}

impl Record {
    /// The timeline name of the record.
    fn name(self) -> &'static str {
        match self {
            Record::Timeout => "timeout",
            Record::Cut => "cut",
            Record::Deliver => "deliver",
            Record::Command => "command",
            Record::Wake => "wake",
            Record::Event => "event",
            Record::Lost => "lost",
            Record::CutAtSend => "cut_at_send",
            Record::NoSuchNode => "no_such_node",
            Record::Segment => "segment",
            Record::Unreachable => "unreachable",
        }
    }
}

/// How much of a run is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TraceLevel {
    /// Nothing (benchmarks).
    Off,
    /// A running SHA-256 over every delivery, drop and event.
    #[default]
    Digest,
    /// The digest plus one text line per step.
    Full,
}

/// Network counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Datagrams handed to the network by the engines.
    pub sent: u64,
    /// Bytes handed to the network (the bytes on the wire).
    pub bytes_sent: u64,
    /// Datagrams delivered (duplicates included).
    pub delivered: u64,
    /// Datagrams lost by the link model.
    pub lost: u64,
    /// Extra copies made by duplication.
    pub duplicated: u64,
    /// Datagrams dropped by a partition or because the destination was offline.
    pub cut: u64,
    /// Stream segments handed to the network.
    pub segments: u64,
    /// Stream segments handed back to their sender as unreachable.
    pub unreachable: u64,
    /// Retransmissions: stream segment losses turned into [`LinkModel::rto`] delays.
    pub retransmits: u64,
}

enum Kind<C> {
    Deliver {
        from: NodeId,
        to: NodeId,
        bytes: Vec<u8>,
        stream: bool,
    },
    Command {
        node: NodeId,
        command: C,
    },
    Wake {
        node: NodeId,
    },
}

struct Pending<C> {
    at: Timestamp,
    seq: u64,
    kind: Kind<C>,
}

impl<C> PartialEq for Pending<C> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<C> Eq for Pending<C> {}
impl<C> PartialOrd for Pending<C> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<C> Ord for Pending<C> {
    /// Reversed, so the `BinaryHeap` pops the earliest (then the first scheduled).
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// The simulator: machines, a virtual clock, the network model and the trace.
pub struct Sim<M: Machine> {
    seed: u64,
    now: Timestamp,
    rng: ChaCha20Rng,
    nodes: Vec<M>,
    timers: Vec<Option<Timestamp>>,
    /// Every set deadline as `(deadline, node)`, in order: the next one without scanning every node.
    deadlines: BTreeSet<(Timestamp, usize)>,
    skews: Vec<i64>,
    queue: BinaryHeap<Pending<M::Command>>,
    seq: u64,
    default_link: LinkModel,
    links: BTreeMap<(NodeId, NodeId), LinkModel>,
    last_arrival: BTreeMap<(NodeId, NodeId), Timestamp>,
    busy_until: BTreeMap<(NodeId, NodeId), Timestamp>,
    faults: Vec<Fault>,
    events: Vec<(Timestamp, NodeId, M::Event)>,
    level: TraceLevel,
    digest: Sha256,
    lines: Vec<String>,
    timeline: Vec<TimelineEntry>,
    stats: NetStats,
    steps: u64,
    replay: Option<String>,
}

impl<M: Machine> Sim<M> {
    /// A simulation starting at `start`, every link following `link` unless overridden.
    pub fn new(seed: u64, start: Timestamp, link: LinkModel) -> Self {
        Sim {
            seed,
            now: start,
            rng: Seed::from_u64(seed).rng(),
            nodes: Vec::new(),
            timers: Vec::new(),
            deadlines: BTreeSet::new(),
            skews: Vec::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            default_link: link,
            links: BTreeMap::new(),
            last_arrival: BTreeMap::new(),
            busy_until: BTreeMap::new(),
            faults: Vec::new(),
            events: Vec::new(),
            level: TraceLevel::default(),
            digest: Sha256::new(),
            lines: Vec::new(),
            timeline: Vec::new(),
            stats: NetStats::default(),
            steps: 0,
            replay: None,
        }
    }

    /// The seed this run replays from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Set how much is recorded (before running).
    pub fn set_trace_level(&mut self, level: TraceLevel) {
        self.level = level;
    }

    /// The virtual time.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Add a node built by `make` from its index, a seed drawn from the simulation's RNG and the current
    /// time.
    pub fn add_node(&mut self, make: impl FnOnce(NodeId, Seed, Timestamp) -> M) -> NodeId {
        let id = NodeId(self.nodes.len());
        let machine = make(id, fork(&mut self.rng), self.now);
        let t = machine.poll_timeout();
        self.timers.push(None);
        self.skews.push(0);
        self.nodes.push(machine);
        self.set_timer(id.0, t);
        id
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// `true` without nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// A node's machine.
    pub fn node(&self, id: NodeId) -> Option<&M> {
        self.nodes.get(id.0)
    }

    /// Every node's machine, in index order.
    pub fn nodes(&self) -> impl Iterator<Item = (NodeId, &M)> + '_ {
        self.nodes.iter().enumerate().map(|(i, m)| (NodeId(i), m))
    }

    /// Override the model of the directed link `from → to`.
    pub fn set_link(&mut self, from: NodeId, to: NodeId, model: LinkModel) {
        self.links.insert((from, to), model);
    }

    /// Run `node`'s clock `skew_ms` milliseconds ahead of the virtual time (behind when negative): every
    /// time it is given, and every deadline it returns, is on its own clock.
    pub fn set_clock_skew(&mut self, node: NodeId, skew_ms: i64) {
        if let Some(s) = self.skews.get_mut(node.0) {
            *s = skew_ms;
        }
        let t = self.nodes.get(node.0).and_then(Machine::poll_timeout);
        let t = t.map(|t| self.global(node, t));
        self.set_timer(node.0, t);
    }

    /// Set node `i`'s deadline (global time), keeping the ordered set in step.
    fn set_timer(&mut self, i: usize, t: Option<Timestamp>) {
        let Some(slot) = self.timers.get_mut(i) else {
            return;
        };
        if *slot == t {
            return;
        }
        if let Some(old) = slot.take() {
            self.deadlines.remove(&(old, i));
        }
        if let Some(t) = t {
            self.deadlines.insert((t, i));
        }
        *slot = t;
    }

    /// The virtual time `at` on `node`'s clock.
    pub fn local_time(&self, node: NodeId, at: Timestamp) -> Timestamp {
        shift(at, self.skews.get(node.0).copied().unwrap_or(0))
    }

    fn global(&self, node: NodeId, local: Timestamp) -> Timestamp {
        shift(local, -self.skews.get(node.0).copied().unwrap_or(0))
    }

    /// Schedule a fault.
    pub fn add_fault(&mut self, fault: Fault) {
        if let Fault::Offline { node, until, .. } = &fault {
            let (node, until) = (*node, *until);
            self.push(until, Kind::Wake { node });
        }
        self.faults.push(fault);
    }

    /// Schedule an application command for `node` at `at` (not before the current time).
    pub fn schedule(&mut self, at: Timestamp, node: NodeId, command: M::Command) {
        let at = at.max(self.now);
        self.push(at, Kind::Command { node, command });
    }

    fn push(&mut self, at: Timestamp, kind: Kind<M::Command>) {
        self.seq += 1;
        self.queue.push(Pending {
            at,
            seq: self.seq,
            kind,
        });
    }

    fn offline_until(&self, node: NodeId, at: Timestamp) -> Option<Timestamp> {
        self.faults.iter().find_map(|f| f.offline(node, at))
    }

    fn cut(&self, a: NodeId, b: NodeId, at: Timestamp) -> bool {
        self.faults.iter().any(|f| f.cuts(a, b, at))
    }

    /// Record one step: its kind, the nodes involved, and `data` (datagram bytes or a canonical
    /// command/event encoding) at the current time; `line` renders it for [`TraceLevel::Full`].
    fn record(&mut self, kind: Record, nodes: &[usize], data: &[u8], line: impl FnOnce() -> String) {
        if self.level == TraceLevel::Off {
            return;
        }
        self.digest.update([kind as u8]);
        self.digest.update(self.now.as_millis().to_le_bytes());
        for n in nodes {
            self.digest.update((*n as u64).to_le_bytes());
        }
        self.digest.update((data.len() as u64).to_le_bytes());
        self.digest.update(data);
        if self.level == TraceLevel::Full {
            self.lines.push(line());
            self.timeline.push(TimelineEntry {
                at: self.now,
                node: NodeId(nodes.first().copied().unwrap_or(0)),
                peer: nodes.get(1).map(|n| NodeId(*n)),
                event: kind.name(),
                bytes: data.len(),
            });
        }
    }

    /// The next instant something happens: a queued delivery, command or wake-up, or an online node's
    /// deadline.
    pub fn next_time(&self) -> Option<Timestamp> {
        let q = self.queue.peek().map(|p| p.at);
        // Deadlines in order; the first one of a node that is online then is the earliest (offline
        // nodes are few, and skipped).
        let t = self
            .deadlines
            .iter()
            .map(|(t, i)| ((*t).max(self.now), *i))
            .find(|(t, i)| self.offline_until(NodeId(*i), *t).is_none())
            .map(|(t, _)| t);
        crate::time::earliest(q, t)
    }

    /// Process everything due at the next instant, advancing the clock to it. `false` when nothing is
    /// left to do.
    pub fn step(&mut self) -> bool {
        let Some(at) = self.next_time() else {
            return false;
        };
        self.now = at;
        self.steps += 1;
        if self.queue.peek().is_some_and(|p| p.at <= at) {
            if let Some(p) = self.queue.pop() {
                self.dispatch(p.kind);
            }
            return true;
        }
        // Every online node whose deadline is due, in index order.
        let mut due: Vec<usize> = self
            .deadlines
            .range(..=(at, usize::MAX))
            .map(|(_, i)| *i)
            .filter(|i| self.offline_until(NodeId(*i), at).is_none())
            .collect();
        due.sort_unstable();
        for i in due {
            if self.timers[i].is_some_and(|t| t <= at) {
                let now = self.now;
                self.record(Record::Timeout, &[i], &[], || format!("{now:?} n{i} timeout"));
                let local = self.local_time(NodeId(i), now);
                if let Some(n) = self.nodes.get_mut(i) {
                    n.handle_timeout(local);
                }
                self.after(NodeId(i));
            }
        }
        true
    }

    fn dispatch(&mut self, kind: Kind<M::Command>) {
        let now = self.now;
        match kind {
            Kind::Deliver {
                from,
                to,
                bytes,
                stream,
            } => {
                if self.offline_until(to, now).is_some() || self.cut(from, to, now) {
                    if stream {
                        self.unreachable(from, to, bytes);
                        return;
                    }
                    self.stats.cut += 1;
                    self.record(Record::Cut, &[from.0, to.0], &[], || {
                        format!("{now:?} n{}->n{} cut", from.0, to.0)
                    });
                    return;
                }
                self.stats.delivered += 1;
                let record = if stream { Record::Segment } else { Record::Deliver };
                self.record(record, &[from.0, to.0], &bytes, || {
                    format!("{now:?} n{}->n{} {} {}", from.0, to.0, record.name(), bytes.len())
                });
                let local = self.local_time(to, now);
                if let Some(n) = self.nodes.get_mut(to.0) {
                    n.handle_receive(local, from, bytes);
                }
                self.after(to);
            }
            Kind::Command { node, command } => {
                if let Some(until) = self.offline_until(node, now) {
                    self.push(until, Kind::Command { node, command });
                    return;
                }
                let mut data = Vec::new();
                command.trace_encode(&mut data);
                self.record(Record::Command, &[node.0], &data, || {
                    format!("{now:?} n{} command {command:?}", node.0)
                });
                let local = self.local_time(node, now);
                if let Some(n) = self.nodes.get_mut(node.0) {
                    n.handle_command(local, command);
                }
                self.after(node);
            }
            Kind::Wake { node } => {
                if self.offline_until(node, now).is_some() {
                    return;
                }
                self.record(Record::Wake, &[node.0], &[], || {
                    format!("{now:?} n{} wake", node.0)
                });
                let local = self.local_time(node, now);
                if let Some(n) = self.nodes.get_mut(node.0) {
                    n.handle_timeout(local);
                }
                self.after(node);
            }
        }
    }

    /// Hand a stream segment back to its sender (if it exists and is online).
    fn unreachable(&mut self, from: NodeId, to: NodeId, bytes: Vec<u8>) {
        let now = self.now;
        self.stats.unreachable += 1;
        self.record(Record::Unreachable, &[from.0, to.0], &bytes, || {
            format!("{now:?} n{}->n{} unreachable", from.0, to.0)
        });
        if from.0 >= self.nodes.len() || self.offline_until(from, now).is_some() {
            return;
        }
        let local = self.local_time(from, now);
        if let Some(n) = self.nodes.get_mut(from.0) {
            n.handle_unreachable(local, to, bytes);
        }
        self.after(from);
    }

    /// Drain a node's outputs into the network and the event log, and refresh its deadline.
    fn after(&mut self, node: NodeId) {
        let now = self.now;
        loop {
            let Some(out) = self.nodes.get_mut(node.0).and_then(Machine::poll_output) else {
                break;
            };
            match out {
                SimOutput::Transmit { to, bytes } => self.transmit(node, to, bytes),
                SimOutput::Stream { to, bytes } => self.segment(node, to, bytes),
                SimOutput::Event(e) => {
                    let mut data = Vec::new();
                    e.trace_encode(&mut data);
                    self.record(Record::Event, &[node.0], &data, || {
                        format!("{now:?} n{} event {e:?}", node.0)
                    });
                    self.events.push((now, node, e));
                }
            }
        }
        let t = self.nodes.get(node.0).and_then(Machine::poll_timeout);
        let t = t.map(|t| self.global(node, t));
        self.set_timer(node.0, t);
    }

    /// When `len` bytes sent now on `from → to` finish serialising (the link's bandwidth, queued behind
    /// earlier ones); `now` without a bandwidth limit.
    fn serialised(&mut self, from: NodeId, to: NodeId, link: &LinkModel, len: usize) -> Timestamp {
        let Some(bw) = link.bandwidth.filter(|b| *b > 0) else {
            return self.now;
        };
        let start = self
            .busy_until
            .get(&(from, to))
            .copied()
            .unwrap_or(self.now)
            .max(self.now);
        let done = start + Duration::from_micros((len as u64).saturating_mul(1_000_000) / bw);
        self.busy_until.insert((from, to), done);
        done
    }

    fn segment(&mut self, from: NodeId, to: NodeId, bytes: Vec<u8>) {
        self.stats.segments += 1;
        self.stats.bytes_sent += bytes.len() as u64;
        if to.0 >= self.nodes.len() || self.cut(from, to, self.now) {
            self.unreachable(from, to, bytes);
            return;
        }
        let link = self.links.get(&(from, to)).copied().unwrap_or(self.default_link);
        let mut at = self.serialised(from, to, &link, bytes.len());
        // A lost segment is sent again after the retransmission timeout (a few times at most).
        let mut tries = 0;
        while tries < 8 && network::chance(&mut self.rng, link.loss) {
            self.stats.retransmits += 1;
            at += link.rto;
            tries += 1;
        }
        at += network::between(&mut self.rng, link.latency_min, link.latency_max);
        let last = self.last_arrival.entry((from, to)).or_insert(at);
        at = at.max(*last);
        *last = at;
        self.push(
            at,
            Kind::Deliver {
                from,
                to,
                bytes,
                stream: true,
            },
        );
    }

    fn transmit(&mut self, from: NodeId, to: NodeId, bytes: Vec<u8>) {
        let now = self.now;
        self.stats.sent += 1;
        self.stats.bytes_sent += bytes.len() as u64;
        if to.0 >= self.nodes.len() {
            self.stats.cut += 1;
            self.record(Record::NoSuchNode, &[from.0, to.0], &bytes, || {
                format!("{now:?} n{}->n{} no such node", from.0, to.0)
            });
            return;
        }
        if self.cut(from, to, now) {
            self.stats.cut += 1;
            self.record(Record::CutAtSend, &[from.0, to.0], &bytes, || {
                format!("{now:?} n{}->n{} cut at send", from.0, to.0)
            });
            return;
        }
        let link = self.links.get(&(from, to)).copied().unwrap_or(self.default_link);
        if network::chance(&mut self.rng, link.loss) {
            self.stats.lost += 1;
            self.record(Record::Lost, &[from.0, to.0], &[], || {
                format!("{now:?} n{}->n{} lost", from.0, to.0)
            });
            return;
        }
        let copies = if network::chance(&mut self.rng, link.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        let sent = self.serialised(from, to, &link, bytes.len());
        let mut arrivals = [now; 2];
        for slot in arrivals.iter_mut().take(copies) {
            let mut at = sent + network::between(&mut self.rng, link.latency_min, link.latency_max);
            if network::chance(&mut self.rng, link.reorder) {
                at += network::between(&mut self.rng, Duration::ZERO, link.reorder_delay);
            }
            if link.ordered {
                let last = self.last_arrival.entry((from, to)).or_insert(at);
                at = at.max(*last);
                *last = at;
            }
            *slot = at;
        }
        if copies == 2 {
            let bytes = bytes.clone();
            self.push(
                arrivals[1],
                Kind::Deliver {
                    from,
                    to,
                    bytes,
                    stream: false,
                },
            );
        }
        self.push(
            arrivals[0],
            Kind::Deliver {
                from,
                to,
                bytes,
                stream: false,
            },
        );
    }

    /// Run until `until` (inclusive) or until nothing is left to do.
    pub fn run_until(&mut self, until: Timestamp) {
        while self.next_time().is_some_and(|t| t <= until) {
            self.step();
        }
        self.now = self.now.max(until);
    }

    /// Run for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Run until nothing is left to do (no datagram in flight, no command, no deadline), but not past
    /// `limit`. Returns `true` if the simulation went quiet.
    pub fn run_until_idle(&mut self, limit: Timestamp) -> bool {
        loop {
            match self.next_time() {
                None => return true,
                Some(t) if t > limit => return false,
                Some(_) => {
                    self.step();
                }
            }
        }
    }

    /// Every event so far, with time and node.
    pub fn events(&self) -> &[(Timestamp, NodeId, M::Event)] {
        &self.events
    }

    /// Take the recorded events.
    pub fn take_events(&mut self) -> Vec<(Timestamp, NodeId, M::Event)> {
        std::mem::take(&mut self.events)
    }

    /// The SHA-256 of the trace so far (all zeros when tracing is off).
    pub fn trace_digest(&self) -> [u8; 32] {
        if self.level == TraceLevel::Off {
            return [0; 32];
        }
        self.digest.clone().finalize().into()
    }

    /// [`Sim::trace_digest`] as lower-case hex.
    pub fn trace_digest_hex(&self) -> String {
        self.trace_digest().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The text trace ([`TraceLevel::Full`] only).
    pub fn trace_lines(&self) -> &[String] {
        &self.lines
    }

    /// The structured timeline ([`TraceLevel::Full`] only).
    pub fn timeline(&self) -> &[TimelineEntry] {
        &self.timeline
    }

    /// Write the timeline as JSON lines (`{"t_ms":..,"node":..,"peer":..,"event":..,"bytes":..}`), then
    /// one summary line (`{"summary":{..}}`).
    pub fn write_timeline(&self, out: &mut impl std::fmt::Write) -> std::fmt::Result {
        for e in &self.timeline {
            writeln!(out, "{}", e.to_json())?;
        }
        writeln!(out, "{}", self.summary().to_json())
    }

    /// Counters of the run so far.
    pub fn summary(&self) -> Summary {
        Summary {
            seed: self.seed,
            now: self.now,
            nodes: self.nodes.len(),
            steps: self.steps,
            events: self.events.len(),
            stats: self.stats,
            digest: self.trace_digest_hex(),
        }
    }

    /// Network counters.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Set the command printed to replay a failed run (default: built from the test binary and the
    /// test thread's name, see [`Sim::replay_command`]).
    pub fn set_replay_command(&mut self, command: impl Into<String>) {
        self.replay = Some(command.into());
    }

    /// One line that replays this run: `SIM_SEED=<seed> cargo test -p status-sansio --test <binary> --
    /// --exact <test>` (the scenario must take its seed from the `SIM_SEED` environment variable when set, as the
    /// `tests/sim_*.rs` scenarios do).
    pub fn replay_command(&self) -> String {
        if let Some(r) = &self.replay {
            return r.clone();
        }
        let binary = std::env::args()
            .next()
            .and_then(|p| {
                let name = std::path::Path::new(&p).file_stem()?.to_str()?.to_string();
                // Test binaries are named `<target>-<hash>`.
                Some(match name.rsplit_once('-') {
                    Some((n, h)) if h.chars().all(|c| c.is_ascii_hexdigit()) => n.to_string(),
                    _ => name,
                })
            })
            .unwrap_or_default();
        let test = std::thread::current().name().unwrap_or("").to_string();
        format!(
            "SIM_SEED={} cargo test -p status-sansio --test {binary} -- --exact {test}",
            self.seed
        )
    }
}

/// `t` moved by `ms` milliseconds (saturating).
fn shift(t: Timestamp, ms: i64) -> Timestamp {
    let m = t.as_millis();
    Timestamp::from_millis(if ms >= 0 {
        m.saturating_add(ms.unsigned_abs())
    } else {
        m.saturating_sub(ms.unsigned_abs())
    })
}

impl<M: Machine> Drop for Sim<M> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "sim: failed at {:?} after {} steps; replay: {}",
                self.now,
                self.steps,
                self.replay_command()
            );
        }
    }
}

#[cfg(test)]
mod tests;
