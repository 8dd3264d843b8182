//! A deterministic network simulator for sans-IO engines (docs/architecture.md "Simulation").
//!
//! A [`Sim`] drives N engines that implement [`Engine`] against a virtual clock and a seeded network
//! model ([`LinkModel`] per directed link: latency distribution, loss, duplication, reordering, optional
//! in-order delivery for byte streams; scheduled [`Fault`]s: partitions and nodes going offline). Every
//! random choice, including the seed each engine gets, comes from the one `u64` seed, so a run is
//! reproducible byte for byte: [`Sim::trace_digest`] hashes a canonical binary encoding of everything
//! that happened (times as milliseconds, node indices, datagram bytes, and commands and events through
//! [`TraceEncode`], never `Debug` output, so the digest is stable across builds and dependency
//! versions), and [`TraceLevel::Full`] also keeps a text line per step. If the thread panics while a `Sim` is alive (a failed
//! assertion in a scenario), the seed is printed so the run can be replayed.
//!
//! The simulator is generic: [`mvds::MvdsEngine`] adapts an MVDS [`Node`](crate::mvds::Node) now; full
//! nodes over RLPx byte streams plug in the same way (with `ordered: true` links).

pub mod mvds;
pub mod network;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt::Debug;
use std::time::Duration;

use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};

pub use network::{Fault, LinkModel};

use crate::rng::{fork, Seed};
use crate::time::Timestamp;

/// The index of a simulated node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub usize);

/// What a simulated engine hands the simulator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimOutput<E> {
    /// Send `bytes` to node `to` through the network model.
    Transmit {
        /// Destination.
        to: NodeId,
        /// The datagram (or stream chunk).
        bytes: Vec<u8>,
    },
    /// An application event, recorded with its time and node.
    Event(E),
}

/// A canonical byte encoding of a command or event for the trace digest (independent of `Debug`).
pub trait TraceEncode {
    /// Append the encoding to `out`.
    fn trace_encode(&self, out: &mut Vec<u8>);
}

impl TraceEncode for () {
    fn trace_encode(&self, _: &mut Vec<u8>) {}
}

impl TraceEncode for u32 {
    fn trace_encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

/// Append `bytes` with a little-endian `u64` length prefix (for [`TraceEncode`] implementations).
pub fn trace_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

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
}

/// An engine the simulator can drive: the sans-IO shape of every state machine in the crate.
pub trait Engine {
    /// Application commands (send a message, add a peer, ...).
    type Command: Debug + TraceEncode;
    /// Application events.
    type Event: Debug + TraceEncode;
    /// Apply an application command.
    fn handle_command(&mut self, now: Timestamp, command: Self::Command);
    /// Bytes arrived from `from`.
    fn handle_receive(&mut self, now: Timestamp, from: NodeId, bytes: Vec<u8>);
    /// Fire every deadline `<= now`.
    fn handle_timeout(&mut self, now: Timestamp);
    /// The next output.
    fn poll_output(&mut self) -> Option<SimOutput<Self::Event>>;
    /// The earliest deadline.
    fn poll_timeout(&self) -> Option<Timestamp>;
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
}

enum Kind<C> {
    Deliver {
        from: NodeId,
        to: NodeId,
        bytes: Vec<u8>,
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

/// The simulator: engines, a virtual clock, the network model and the trace.
pub struct Sim<E: Engine> {
    seed: u64,
    now: Timestamp,
    rng: ChaCha20Rng,
    nodes: Vec<E>,
    timers: Vec<Option<Timestamp>>,
    queue: BinaryHeap<Pending<E::Command>>,
    seq: u64,
    default_link: LinkModel,
    links: BTreeMap<(NodeId, NodeId), LinkModel>,
    last_arrival: BTreeMap<(NodeId, NodeId), Timestamp>,
    faults: Vec<Fault>,
    events: Vec<(Timestamp, NodeId, E::Event)>,
    level: TraceLevel,
    digest: Sha256,
    lines: Vec<String>,
    stats: NetStats,
    steps: u64,
}

impl<E: Engine> Sim<E> {
    /// A simulation starting at `start`, every link following `link` unless overridden.
    pub fn new(seed: u64, start: Timestamp, link: LinkModel) -> Self {
        Sim {
            seed,
            now: start,
            rng: Seed::from_u64(seed).rng(),
            nodes: Vec::new(),
            timers: Vec::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            default_link: link,
            links: BTreeMap::new(),
            last_arrival: BTreeMap::new(),
            faults: Vec::new(),
            events: Vec::new(),
            level: TraceLevel::default(),
            digest: Sha256::new(),
            lines: Vec::new(),
            stats: NetStats::default(),
            steps: 0,
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

    /// Add a node built by `make` from its index and a seed drawn from the simulation's RNG.
    pub fn add_node(&mut self, make: impl FnOnce(NodeId, Seed, Timestamp) -> E) -> NodeId {
        let id = NodeId(self.nodes.len());
        let engine = make(id, fork(&mut self.rng), self.now);
        self.timers.push(engine.poll_timeout());
        self.nodes.push(engine);
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

    /// A node's engine.
    pub fn node(&self, id: NodeId) -> Option<&E> {
        self.nodes.get(id.0)
    }

    /// Override the model of the directed link `from → to`.
    pub fn set_link(&mut self, from: NodeId, to: NodeId, model: LinkModel) {
        self.links.insert((from, to), model);
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
    pub fn schedule(&mut self, at: Timestamp, node: NodeId, command: E::Command) {
        let at = at.max(self.now);
        self.push(at, Kind::Command { node, command });
    }

    fn push(&mut self, at: Timestamp, kind: Kind<E::Command>) {
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
        }
    }

    /// The next instant something happens: a queued delivery, command or wake-up, or an online node's
    /// deadline.
    pub fn next_time(&self) -> Option<Timestamp> {
        let q = self.queue.peek().map(|p| p.at);
        let t = self
            .timers
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                t.map(|t| t.max(self.now))
                    .filter(|t| self.offline_until(NodeId(i), *t).is_none())
            })
            .min();
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
        for i in 0..self.nodes.len() {
            if self.timers[i].is_some_and(|t| t <= at) && self.offline_until(NodeId(i), at).is_none() {
                let now = self.now;
                self.record(Record::Timeout, &[i], &[], || format!("{now:?} n{i} timeout"));
                if let Some(n) = self.nodes.get_mut(i) {
                    n.handle_timeout(now);
                }
                self.after(NodeId(i));
            }
        }
        true
    }

    fn dispatch(&mut self, kind: Kind<E::Command>) {
        let now = self.now;
        match kind {
            Kind::Deliver { from, to, bytes } => {
                if self.offline_until(to, now).is_some() || self.cut(from, to, now) {
                    self.stats.cut += 1;
                    self.record(Record::Cut, &[from.0, to.0], &[], || {
                        format!("{now:?} n{}->n{} cut", from.0, to.0)
                    });
                    return;
                }
                self.stats.delivered += 1;
                self.record(Record::Deliver, &[from.0, to.0], &bytes, || {
                    format!("{now:?} n{}->n{} deliver", from.0, to.0)
                });
                if let Some(n) = self.nodes.get_mut(to.0) {
                    n.handle_receive(now, from, bytes);
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
                if let Some(n) = self.nodes.get_mut(node.0) {
                    n.handle_command(now, command);
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
                if let Some(n) = self.nodes.get_mut(node.0) {
                    n.handle_timeout(now);
                }
                self.after(node);
            }
        }
    }

    /// Drain a node's outputs into the network and the event log, and refresh its deadline.
    fn after(&mut self, node: NodeId) {
        let now = self.now;
        loop {
            let Some(out) = self.nodes.get_mut(node.0).and_then(Engine::poll_output) else {
                break;
            };
            match out {
                SimOutput::Transmit { to, bytes } => self.transmit(node, to, bytes),
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
        let t = self.nodes.get(node.0).and_then(Engine::poll_timeout);
        if let Some(slot) = self.timers.get_mut(node.0) {
            *slot = t;
        }
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
        let mut arrivals = [now; 2];
        for slot in arrivals.iter_mut().take(copies) {
            let mut at = now + network::between(&mut self.rng, link.latency_min, link.latency_max);
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
            self.push(arrivals[1], Kind::Deliver { from, to, bytes });
        }
        self.push(arrivals[0], Kind::Deliver { from, to, bytes });
    }

    /// Run until `until` (inclusive) or until nothing is left to do.
    pub fn run_until(&mut self, until: Timestamp) {
        while self.next_time().is_some_and(|t| t <= until) {
            self.step();
        }
        self.now = self.now.max(until);
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
    pub fn events(&self) -> &[(Timestamp, NodeId, E::Event)] {
        &self.events
    }

    /// Take the recorded events.
    pub fn take_events(&mut self) -> Vec<(Timestamp, NodeId, E::Event)> {
        std::mem::take(&mut self.events)
    }

    /// The SHA-256 of the trace so far (all zeros when tracing is off).
    pub fn trace_digest(&self) -> [u8; 32] {
        if self.level == TraceLevel::Off {
            return [0; 32];
        }
        self.digest.clone().finalize().into()
    }

    /// The text trace ([`TraceLevel::Full`] only).
    pub fn trace_lines(&self) -> &[String] {
        &self.lines
    }

    /// Network counters.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }
}

impl<E: Engine> Drop for Sim<E> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "sim: scenario failed with seed {} (virtual time {:?}, {} steps); replay with this seed",
                self.seed, self.now, self.steps
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `count` datagrams to node 1 at start-up; counts what it receives.
    struct Blaster {
        to_send: u32,
        got: u32,
    }

    impl Engine for Blaster {
        type Command = u32;
        type Event = u32;
        fn handle_command(&mut self, _: Timestamp, n: u32) {
            self.to_send += n;
        }
        fn handle_receive(&mut self, _: Timestamp, _: NodeId, _: Vec<u8>) {
            self.got += 1;
        }
        fn handle_timeout(&mut self, _: Timestamp) {}
        fn poll_output(&mut self) -> Option<SimOutput<u32>> {
            if self.to_send == 0 {
                return None;
            }
            self.to_send -= 1;
            Some(SimOutput::Transmit {
                to: NodeId(1),
                bytes: vec![1, 2, 3],
            })
        }
        fn poll_timeout(&self) -> Option<Timestamp> {
            None
        }
    }

    fn run(link: LinkModel, fault: Option<Fault>) -> (u32, NetStats) {
        let mut sim = Sim::new(9, Timestamp::from_secs(100), link);
        sim.add_node(|_, _, _| Blaster { to_send: 0, got: 0 });
        sim.add_node(|_, _, _| Blaster { to_send: 0, got: 0 });
        if let Some(f) = fault {
            sim.add_fault(f);
        }
        sim.schedule(Timestamp::from_secs(101), NodeId(0), 1000);
        assert!(sim.run_until_idle(Timestamp::from_secs(1000)));
        (sim.node(NodeId(1)).map_or(0, |n| n.got), sim.stats())
    }

    #[test]
    fn loss_and_duplication_follow_the_model() {
        let (got, st) = run(LinkModel::perfect(Duration::from_millis(10)), None);
        assert_eq!((got, st.sent, st.bytes_sent), (1000, 1000, 3000));
        let (got, st) = run(
            LinkModel {
                loss: 1.0,
                ..LinkModel::default()
            },
            None,
        );
        assert_eq!((got, st.lost), (0, 1000));
        let (got, st) = run(
            LinkModel {
                duplicate: 1.0,
                ..LinkModel::default()
            },
            None,
        );
        assert_eq!((got, st.duplicated), (2000, 1000));
        let (got, st) = run(LinkModel::lossy(0.3), None);
        assert_eq!(u64::from(got), 1000 - st.lost + st.duplicated);
        assert!((200..400).contains(&st.lost), "{st:?}");
    }

    #[test]
    fn partitions_and_offline_nodes_cut_traffic() {
        let window = |from, until| (Timestamp::from_secs(from), Timestamp::from_secs(until));
        let (from, until) = window(100, 200);
        let (got, st) = run(
            LinkModel::default(),
            Some(Fault::Partition {
                side: vec![NodeId(0)],
                from,
                until,
            }),
        );
        assert_eq!((got, st.cut), (0, 1000));
        let (got, _) = run(
            LinkModel::default(),
            Some(Fault::Offline {
                node: NodeId(1),
                from,
                until,
            }),
        );
        assert_eq!(got, 0);
        // A command for an offline node waits until it is back.
        let (got, _) = run(
            LinkModel::default(),
            Some(Fault::Offline {
                node: NodeId(0),
                from,
                until,
            }),
        );
        assert_eq!(got, 1000);
        let (from, until) = window(500, 600);
        let (got, _) = run(
            LinkModel::default(),
            Some(Fault::LinkDown {
                a: NodeId(1),
                b: NodeId(0),
                from,
                until,
            }),
        );
        assert_eq!(got, 1000);
    }
}
