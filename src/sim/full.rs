//! Full nodes in the simulator: a [`node::Engine`](Engine) driven over the connection model of
//! [`conn`] (docs/protocol/status-client.md roles; docs/architecture.md "Simulation").
//!
//! [`FullNode`] is the driver a real program would be, simulated: it carries the engine's dials, bytes
//! and closes over [`Sockets`], answers its DNS lookups from a [`Zone`] after [`FullNode::dns_delay`],
//! and keeps its mailserver archive in an [`Archive`] (in memory by default; [`StallingArchive`] never
//! answers a query). Every match on the engine's outputs is in one place, [`FullNode`]'s
//! `drive_output`.
//!
//! **Crash and restart.** [`NodeCommand::Snapshot`] keeps what a real node would have made durable: today
//! the Messenger's export ([`Engine::export_messenger`]) and the peer cache
//! ([`Engine::export_peer_cache`]). [`NodeCommand::Crash`] drops the engine (its connections are reset at
//! the peers; anything after the last snapshot is lost), and [`NodeCommand::Restart`] builds a new engine
//! from the configuration and the snapshot ([`Engine::with_messenger`] over [`Messenger::import`]). The
//! mailserver archive is a database of its own and survives crashes. The snapshot is one opaque
//! [`Snapshot`] value taken and restored in `snapshot`/`restart` only, so the crash-safe records of issue
//! 12 replace it there (a store that keeps every record written, and a crash that loses the unsynced
//! tail) without touching scenarios.
//!
//! A node with a durable Messenger (`MessengerConfig::durable`) applies every [`Output::Persist`] batch
//! to its records (which survive crashes) and confirms it at once; its restart resumes from the records,
//! whatever snapshot it took. [`NodeCommand::CrashAt`] arms a crash at a [`CrashPoint`] of the node's
//! own work — before any one of the engine's next outputs, or when the next batch is handed out (before
//! it is applied: lost; or after, unconfirmed) — for crash injection (`tests/sim_crash.rs`). The node's
//! application keeps the messages it was told of (a database of its own that survives crashes) and
//! skips the outbox events a restored Messenger gives again when it has them.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand_chacha::ChaCha20Rng;

use super::conn::{self, SocketEvent, Sockets};
use super::{trace_bytes, Machine, NodeId, SimOutput, TraceEncode};
use crate::chat::messenger::{self, Messenger};
use crate::crypto::{pubkey_to_compressed, PublicKey, SecretKey};
use crate::enode::Enode;
use crate::mailserver::server::KEY_LEN;
use crate::node::{ConnId, Engine, EngineConfig, Event, Input, Output, StorageOp};
use crate::rlpx::{self, Protocol};
use crate::rng::{fork, Seed};
use crate::time::{earliest, Timestamp};
use crate::waku::Dialect;

/// A simulated host: a full node or an adversary. Simulations of whole networks are [`NetSim`]s.
pub trait Host: Machine<Command = NodeCommand, Event = NodeEvent> {
    /// The node engine, for hosts that run one (for checks: pools, peers, chats).
    fn engine(&self) -> Option<&Engine> {
        None
    }
    /// `false` for adversaries: invariants about honest nodes skip them.
    fn honest(&self) -> bool {
        false
    }
}

/// A simulation of hosts (full nodes and adversaries).
pub type NetSim = super::Sim<Box<dyn Host>>;

/// DNS TXT records served to every host: name → records (an absent name fails the lookup).
pub type Zone = Arc<BTreeMap<String, Vec<String>>>;

/// The RLPx configuration of a simulated full node: `key`, speaking `waku/1` and `shh/6`.
pub fn rlpx_config(key: SecretKey) -> Arc<rlpx::Config> {
    let protocols = [Dialect::Waku1, Dialect::Whisper6]
        .into_iter()
        .filter_map(|d| Protocol::new(d.capability(), d.version(), crate::waku::packet::CODE_COUNT))
        .collect();
    Arc::new(rlpx::Config::new(key, protocols))
}

/// The enode of the simulated host `node` with identity `id`.
pub fn enode(node: NodeId, id: PublicKey) -> Enode {
    Enode::new(id, conn::addr(node))
}

/// A mailserver archive: the storage behind [`StorageOp`]s.
pub trait Archive {
    /// Keep `value` under `key`.
    fn store(&mut self, key: [u8; KEY_LEN], value: Bytes);
    /// The entries with `start ≤ key < end`, at most `limit`, in key order; `None` never answers.
    fn query(
        &mut self,
        start: [u8; KEY_LEN],
        end: [u8; KEY_LEN],
        limit: usize,
    ) -> Option<Vec<([u8; KEY_LEN], Bytes)>>;
    /// Delete the entries sent before `before` (UNIX seconds, the key's first four bytes).
    fn prune(&mut self, before: u32);
    /// Entries kept.
    fn len(&self) -> usize;
    /// `true` when empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An archive in memory.
#[derive(Debug, Default, Clone)]
pub struct MemoryArchive(pub BTreeMap<[u8; KEY_LEN], Bytes>);

impl Archive for MemoryArchive {
    fn store(&mut self, key: [u8; KEY_LEN], value: Bytes) {
        self.0.insert(key, value);
    }
    fn query(
        &mut self,
        start: [u8; KEY_LEN],
        end: [u8; KEY_LEN],
        limit: usize,
    ) -> Option<Vec<([u8; KEY_LEN], Bytes)>> {
        if start >= end {
            return Some(vec![]);
        }
        Some(
            self.0
                .range(start..end)
                .take(limit)
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
        )
    }
    fn prune(&mut self, before: u32) {
        self.0
            .retain(|k, _| u32::from_be_bytes([k[0], k[1], k[2], k[3]]) >= before);
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// An archive that stores but never answers a query (a stalling mailserver).
#[derive(Debug, Default, Clone)]
pub struct StallingArchive(pub MemoryArchive);

impl Archive for StallingArchive {
    fn store(&mut self, key: [u8; KEY_LEN], value: Bytes) {
        self.0.store(key, value);
    }
    fn query(&mut self, _: [u8; KEY_LEN], _: [u8; KEY_LEN], _: usize) -> Option<Vec<([u8; KEY_LEN], Bytes)>> {
        None
    }
    fn prune(&mut self, before: u32) {
        self.0.prune(before);
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Commands for simulated hosts.
#[derive(Debug)]
pub enum NodeCommand {
    /// An engine input (use [`NodeCommand::Chat`] for chats).
    Engine(Input<'static>),
    /// A Messenger command.
    Chat(messenger::Input),
    /// Keep what a real node would make durable now (see the module docs).
    Snapshot,
    /// Crash: drop the engine, reset its connections.
    Crash,
    /// Start again from the last snapshot (fresh state without one); a durable node from its records.
    /// Disarms a [`NodeCommand::CrashAt`] that has not fired.
    Restart,
    /// Crash later, at the given point of the node's own work (crash injection: instants a command
    /// between two steps of the simulation cannot reach).
    CrashAt(CrashPoint),
}

/// Where an armed [`NodeCommand::CrashAt`] crashes the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// Before carrying out the engine's `n`-th next output (0: the very next one): between any two
    /// outputs. What the engine handed out before was carried out (bytes written to a socket leave).
    BeforeOutput(u32),
    /// When the next [`Output::Persist`] batch is handed out, before it is applied: the batch is lost.
    BeforeCommit,
    /// When the next [`Output::Persist`] batch is handed out, after it is applied but before the engine
    /// is told: durable, unconfirmed.
    AfterCommit,
}

/// Events of simulated hosts.
#[derive(Debug)]
#[non_exhaustive]
pub enum NodeEvent {
    /// An engine event.
    Engine(Event),
    /// The engine refused an input (misuse by the driver or the scenario).
    Refused(crate::Error),
    /// A snapshot was taken (its size in bytes).
    Snapshotted(usize),
    /// The host crashed.
    Crashed,
    /// The host restarted (`true`: from a snapshot).
    Restarted(bool),
    /// The snapshot could not be restored; the host runs fresh.
    RestoreFailed(messenger::MessengerError),
    /// An adversary acted: `what` it did, `count` times so far.
    Attack {
        /// What.
        what: &'static str,
        /// How many so far.
        count: u64,
    },
}

impl TraceEncode for NodeCommand {
    fn trace_encode(&self, out: &mut Vec<u8>) {
        match self {
            NodeCommand::Engine(_) => out.push(0),
            NodeCommand::Chat(messenger::Input::SendText { chat, text }) => {
                out.push(1);
                trace_bytes(out, chat.as_bytes());
                trace_bytes(out, text.as_bytes());
            }
            NodeCommand::Chat(_) => out.push(2),
            NodeCommand::Snapshot => out.push(3),
            NodeCommand::Crash => out.push(4),
            NodeCommand::Restart => out.push(5),
            NodeCommand::CrashAt(p) => {
                out.push(6);
                match p {
                    CrashPoint::BeforeOutput(n) => {
                        out.push(0);
                        out.extend_from_slice(&n.to_le_bytes());
                    }
                    CrashPoint::BeforeCommit => out.push(1),
                    CrashPoint::AfterCommit => out.push(2),
                }
            }
        }
    }
}

impl TraceEncode for NodeEvent {
    /// A coarse canonical encoding: the wire bytes are in the trace already, so events add only what
    /// scenarios check (peers, disconnect reasons, chat messages).
    fn trace_encode(&self, out: &mut Vec<u8>) {
        match self {
            NodeEvent::Engine(Event::PeerConnected { id, .. }) => {
                out.push(1);
                out.extend_from_slice(&pubkey_to_compressed(id));
            }
            NodeEvent::Engine(Event::PeerDisconnected { reason, remote, .. }) => {
                out.push(2);
                out.extend_from_slice(&reason.code().to_le_bytes());
                out.push(u8::from(*remote));
            }
            NodeEvent::Engine(Event::Chat(messenger::Event::MessageReceived { chat, message, own })) => {
                out.push(3);
                trace_bytes(out, chat.as_bytes());
                trace_bytes(out, message.text.as_bytes());
                out.push(u8::from(*own));
            }
            NodeEvent::Engine(_) => out.push(4),
            NodeEvent::Refused(_) => out.push(5),
            NodeEvent::Snapshotted(n) => {
                out.push(6);
                out.extend_from_slice(&(*n as u64).to_le_bytes());
            }
            NodeEvent::Crashed => out.push(7),
            NodeEvent::Restarted(s) => out.extend_from_slice(&[8, u8::from(*s)]),
            NodeEvent::RestoreFailed(_) => out.push(9),
            NodeEvent::Attack { what, count } => {
                out.push(10);
                trace_bytes(out, what.as_bytes());
                out.extend_from_slice(&count.to_le_bytes());
            }
        }
    }
}

/// What a node keeps across a crash (see the module docs).
#[derive(Clone, Default)]
pub struct Snapshot {
    /// [`Engine::export_messenger`].
    pub messenger: Option<zeroize::Zeroizing<Vec<u8>>>,
    /// [`Engine::export_peer_cache`].
    pub peer_cache: Vec<u8>,
}

/// A full node in the simulator. See the [module docs](self).
pub struct FullNode {
    id: NodeId,
    config: EngineConfig,
    rng: ChaCha20Rng,
    engine: Option<Engine>,
    sockets: Sockets,
    zone: Zone,
    /// How long a DNS lookup takes. Default 20 ms.
    pub dns_delay: Duration,
    lookups: VecDeque<(Timestamp, String)>,
    archive: Box<dyn Archive>,
    snapshot: Option<Snapshot>,
    /// The node's durable records (a durable Messenger's [`Output::Persist`] batches, applied whole and
    /// confirmed at once: the simulated disk never fails). They survive a crash.
    records: crate::persist::MemoryStore,
    /// An armed [`NodeCommand::CrashAt`].
    crash_at: Option<CrashPoint>,
    /// The application's own database: the messages it was told of (received or sent, by chat and id).
    /// It survives crashes, and the events a restored Messenger gives again from its outbox are
    /// skipped when it has them (see [`Messenger::restore`]).
    app_messages: std::collections::BTreeSet<(bool, String, [u8; 32])>,
    /// True while the outputs a restored engine gives before any input are carried out.
    replaying: bool,
    out: VecDeque<SimOutput<NodeEvent>>,
    honest: bool,
}

impl FullNode {
    /// Host `id` running an engine with `config` (whose `rlpx` key is the node's identity; the address
    /// the engine is reached at is [`conn::addr`]`(id)`), seeded by `seed`. If the engine refuses the
    /// configuration, the host starts down and its first output is [`NodeEvent::Refused`] with why.
    pub fn new(id: NodeId, config: EngineConfig, seed: Seed, now: Timestamp) -> Self {
        let mut rng = seed.rng();
        let (engine, refused) = match build_engine(&config, fork(&mut rng), now, None) {
            Ok(e) => (Some(e), None),
            Err(e) => (None, Some(SimOutput::Event(NodeEvent::Refused(e)))),
        };
        FullNode {
            id,
            config,
            rng,
            engine,
            sockets: Sockets::default(),
            zone: Zone::default(),
            dns_delay: Duration::from_millis(20),
            lookups: VecDeque::new(),
            archive: Box::new(MemoryArchive::default()),
            snapshot: None,
            records: crate::persist::MemoryStore::new(),
            crash_at: None,
            app_messages: Default::default(),
            replaying: false,
            out: refused.into_iter().collect(),
            honest: true,
        }
    }

    /// Answer DNS lookups from `zone`.
    pub fn with_zone(mut self, zone: Zone) -> Self {
        self.zone = zone;
        self
    }

    /// Keep the mailserver archive in `archive`.
    pub fn with_archive(mut self, archive: Box<dyn Archive>) -> Self {
        self.archive = archive;
        self
    }

    /// Count this node as an adversary in the invariants.
    pub fn dishonest(mut self) -> Self {
        self.honest = false;
        self
    }

    /// As a boxed [`Host`] for a [`NetSim`].
    pub fn boxed(self) -> Box<dyn Host> {
        Box::new(self)
    }

    /// The host's index.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The engine (`None` while crashed).
    pub fn engine(&self) -> Option<&Engine> {
        self.engine.as_ref()
    }

    /// The mailserver archive.
    pub fn archive(&self) -> &dyn Archive {
        self.archive.as_ref()
    }

    /// The durable records (what a restart of a durable node resumes from).
    pub fn records(&self) -> &crate::persist::MemoryStore {
        &self.records
    }

    /// The last snapshot.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// Open sockets.
    pub fn sockets(&self) -> usize {
        self.sockets.len()
    }

    /// Feed the engine an input (nothing while crashed); a refusal becomes [`NodeEvent::Refused`].
    fn input(&mut self, now: Timestamp, input: Input<'_>) {
        if let Some(e) = &mut self.engine {
            if let Err(err) = e.handle_input(now, input) {
                self.out.push_back(SimOutput::Event(NodeEvent::Refused(err)));
            }
        }
    }

    /// Carry out one engine output: the one place that matches on [`Output`]. An armed
    /// [`NodeCommand::CrashAt`] fires here.
    fn drive_output(&mut self, now: Timestamp, output: Output) {
        match (self.crash_at, &output) {
            (Some(CrashPoint::BeforeOutput(0)), _) | (Some(CrashPoint::BeforeCommit), Output::Persist(_)) => {
                return self.crash();
            }
            (Some(CrashPoint::BeforeOutput(n)), _) => self.crash_at = Some(CrashPoint::BeforeOutput(n - 1)),
            (Some(CrashPoint::AfterCommit), Output::Persist(batch)) => {
                self.records.apply(batch);
                return self.crash();
            }
            _ => {}
        }
        match output {
            Output::Dial { conn, addr } => self.sockets.dial(now, conn.0, addr),
            Output::Transmit { conn, data } => self.sockets.send(conn.0, data.to_vec()),
            Output::Close { conn } => self.sockets.close(conn.0),
            Output::ResolveTxt { name } => self.lookups.push_back((now + self.dns_delay, name)),
            Output::Storage(StorageOp::Store { key, value }) => self.archive.store(key, value),
            Output::Storage(StorageOp::Query {
                query,
                start,
                end,
                limit,
            }) => {
                if let Some(entries) = self.archive.query(start, end, limit) {
                    self.input(now, Input::QueryResult { query, entries });
                }
            }
            Output::Storage(StorageOp::Prune { before }) => self.archive.prune(before),
            Output::Event(e) => {
                let message = match &e {
                    Event::Chat(messenger::Event::MessageReceived { chat, message, .. }) => {
                        Some((false, chat.as_str().to_string(), message.id.0))
                    }
                    Event::Chat(messenger::Event::MessageSent { chat, id }) => {
                        Some((true, chat.as_str().to_string(), id.0))
                    }
                    _ => None,
                };
                if let Some(m) = message {
                    if !self.app_messages.insert(m) && self.replaying {
                        return;
                    }
                }
                self.out.push_back(SimOutput::Event(NodeEvent::Engine(e)));
            }
            Output::Persist(batch) => {
                self.records.apply(&batch);
                self.input(now, Input::Persisted(batch.seq));
            }
        }
    }

    /// Move socket events into the engine and engine outputs out until both are quiet.
    fn pump(&mut self, now: Timestamp) {
        loop {
            let mut moved = false;
            while let Some(ev) = self.sockets.poll_event() {
                moved = true;
                match ev {
                    SocketEvent::Connected(c) => self.input(now, Input::Connected { conn: ConnId(c) }),
                    SocketEvent::DialFailed(c) => self.input(now, Input::DialFailed { conn: ConnId(c) }),
                    SocketEvent::Accepted { conn, from } => self.input(
                        now,
                        Input::AcceptedFrom {
                            conn: ConnId(conn),
                            addr: from,
                        },
                    ),
                    SocketEvent::Data { conn, bytes } => self.input(
                        now,
                        Input::Received {
                            conn: ConnId(conn),
                            data: &bytes,
                        },
                    ),
                    SocketEvent::Closed(c) => self.input(now, Input::Closed { conn: ConnId(c) }),
                }
            }
            while let Some(o) = self.engine.as_mut().and_then(Engine::poll_output) {
                moved = true;
                self.drive_output(now, o);
            }
            if !moved {
                break;
            }
        }
        while let Some((to, bytes)) = self.sockets.poll_segment() {
            self.out.push_back(SimOutput::Stream { to, bytes });
        }
    }

    fn take_snapshot(&mut self) {
        let Some(e) = &self.engine else {
            return;
        };
        let s = Snapshot {
            messenger: e.export_messenger(),
            peer_cache: e.export_peer_cache(),
        };
        let size = s.messenger.as_ref().map_or(0, |m| m.len()) + s.peer_cache.len();
        self.snapshot = Some(s);
        self.out.push_back(SimOutput::Event(NodeEvent::Snapshotted(size)));
    }

    fn crash(&mut self) {
        self.crash_at = None;
        if self.engine.take().is_some() {
            self.sockets.crash();
            self.lookups.clear();
            self.out.push_back(SimOutput::Event(NodeEvent::Crashed));
        }
    }

    fn restart(&mut self, now: Timestamp) {
        self.crash_at = None;
        if self.engine.is_some() {
            return;
        }
        let seed = fork(&mut self.rng);
        let mut config = self.config.clone();
        let snapshot = self.snapshot.clone();
        if let Some(s) = &snapshot {
            config.peer_cache = Some(s.peer_cache.clone()).filter(|c| !c.is_empty());
        }
        let messenger = snapshot.as_ref().and_then(|s| s.messenger.as_ref());
        let restored = match (&config.messenger, messenger) {
            // A durable node resumes from its records, whatever snapshot it took.
            (Some(mc), _) if mc.durable => {
                match Messenger::restore(mc.clone(), &fork(&mut self.rng), now, &self.records) {
                    Ok(m) => Some(m),
                    Err(err) => {
                        self.out
                            .push_back(SimOutput::Event(NodeEvent::RestoreFailed(err)));
                        None
                    }
                }
            }
            (Some(mc), Some(bytes)) => {
                match Messenger::import(mc.clone(), &fork(&mut self.rng), now, bytes) {
                    Ok(m) => Some(m),
                    Err(err) => {
                        self.out
                            .push_back(SimOutput::Event(NodeEvent::RestoreFailed(err)));
                        None
                    }
                }
            }
            _ => None,
        };
        let from_snapshot = restored.is_some() || snapshot.is_some();
        match build_engine(&config, seed, now, restored) {
            Ok(e) => self.engine = Some(e),
            Err(e) => {
                self.out.push_back(SimOutput::Event(NodeEvent::Refused(e)));
                return;
            }
        }
        // Accepted ids are not reused across the restart: late segments find no connection.
        self.sockets.listening = true;
        self.out
            .push_back(SimOutput::Event(NodeEvent::Restarted(from_snapshot)));
        // What the restored engine gives before any input: the subscriptions, and the events of its
        // outbox, which the application skips when it has them.
        self.replaying = true;
        self.pump(now);
        self.replaying = false;
    }
}

/// Build an engine, resumed with `messenger` when given (the one place that constructs engines).
fn build_engine(
    config: &EngineConfig,
    seed: Seed,
    now: Timestamp,
    messenger: Option<Messenger>,
) -> Result<Engine, crate::Error> {
    match messenger {
        Some(m) => Engine::with_messenger(config.clone(), m, &seed, now),
        None => Engine::new(config.clone(), &seed, now),
    }
}

impl Machine for FullNode {
    type Command = NodeCommand;
    type Event = NodeEvent;

    fn handle_command(&mut self, now: Timestamp, command: NodeCommand) {
        match command {
            NodeCommand::Engine(input) => self.input(now, input),
            NodeCommand::Chat(c) => self.input(now, Input::Chat(c)),
            NodeCommand::Snapshot => self.take_snapshot(),
            NodeCommand::Crash => self.crash(),
            NodeCommand::CrashAt(p) => self.crash_at = Some(p),
            NodeCommand::Restart => {
                self.restart(now);
                if let Some(e) = &mut self.engine {
                    e.handle_timeout(now);
                }
            }
        }
        self.pump(now);
    }

    fn handle_receive(&mut self, now: Timestamp, from: NodeId, bytes: Vec<u8>) {
        self.sockets.receive(from, &bytes);
        self.pump(now);
    }

    fn handle_timeout(&mut self, now: Timestamp) {
        self.sockets.handle_timeout(now);
        self.pump(now);
        while self.lookups.front().is_some_and(|(t, _)| *t <= now) {
            if let Some((_, name)) = self.lookups.pop_front() {
                let txt = self.zone.get(&name).cloned();
                self.input(now, Input::DnsResolved { name, txt });
            }
        }
        if let Some(e) = &mut self.engine {
            e.handle_timeout(now);
        }
        self.pump(now);
    }

    fn poll_output(&mut self) -> Option<SimOutput<NodeEvent>> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        let t = earliest(
            self.engine.as_ref().and_then(Engine::poll_timeout),
            self.sockets.poll_timeout(),
        );
        earliest(t, self.lookups.front().map(|(t, _)| *t))
    }

    fn handle_unreachable(&mut self, now: Timestamp, to: NodeId, bytes: Vec<u8>) {
        self.sockets.unreachable(to, &bytes);
        self.pump(now);
    }
}

impl Host for FullNode {
    fn engine(&self) -> Option<&Engine> {
        self.engine.as_ref()
    }
    fn honest(&self) -> bool {
        self.honest
    }
}
