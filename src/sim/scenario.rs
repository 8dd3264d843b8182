//! Scenarios: a builder for networks of full nodes ([`Net`]) and random workloads with fault schedules
//! drawn from one seed ([`Scenario`]), run with the [`invariants`] on (docs/architecture.md
//! "Simulation"; the roles are those of docs/protocol/status-client.md).
//!
//! [`Net`] gives every node a deterministic identity (its RLPx and chat keys derive from the scenario
//! seed and the node index), so scenarios name nodes by index. [`Scenario::new`] draws, from a
//! [`ScenarioConfig`]'s seed: relays in a chain, an optional mailserver, chat clients attached to one or
//! two relays; public chats, 1:1 pairs and groups of three to five; a message schedule (about one text
//! per client per virtual minute); and, by [`FaultLevel`], lossy links, partitions that heal, crashes
//! with restarts, clock skew and adversaries ([`super::adversary`]). [`Scenario::run`] drives it to the
//! end of the active window, lets the network settle (every fault has healed by then) and checks, every
//! virtual second, that caps hold, no honest node dropped an honest peer for a fault or dropped a chat
//! message, no message was shown twice, and at the end that every 1:1 and group text (and, without
//! faults, every public one) reached each recipient exactly once. The first violation stops the run.
//!
//! A run is a pure function of its configuration: `status-node sim --seed N ...` replays it, and
//! [`Sim::trace_digest`](super::Sim::trace_digest) is the same on every machine.
//!
//! **Crashes** are taken with a snapshot at the crash instant (what a node with crash-safe records of
//! issue 12 keeps: everything it acknowledged); a crash that loses an unsynced tail is a scenario of
//! its own in `tests/sim_chat.rs`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;

use super::adversary::{Flooder, SocketAttacker};
use super::full::{self, FullNode, Host, NetSim, NodeCommand, NodeEvent};
use super::invariants::{self, Expected, Violation};
use super::{Fault, LinkModel, NodeId, TraceLevel};
use crate::chat::messenger::{DropReason, Event as ChatEvent, Input as Chat, Messenger, MessengerConfig};
use crate::crypto::{PublicKey, SecretKey};
use crate::enode::Enode;
use crate::mailserver::server::MailServerConfig;
use crate::node::{Engine, EngineConfig, Event};
use crate::rng::Seed;
use crate::secure::SecureError;
use crate::time::Timestamp;

/// The virtual start of every scenario (UNIX seconds).
pub const START_SECS: u64 = 1_700_000_000;

/// The secret key number `i` of scenario `seed` (`salt` separates key families).
pub fn key(seed: u64, i: usize, salt: u64) -> SecretKey {
    let n = seed
        .wrapping_mul(10_000)
        .wrapping_add(salt)
        .wrapping_add(i as u64);
    SecretKey::random(&mut Seed::from_u64(n).rng())
}

/// A lossy stream link: 20–120 ms latency, 5 % loss (retransmitted), 1 MB/s.
pub fn lossy() -> LinkModel {
    LinkModel::stream(
        Duration::from_millis(20),
        Duration::from_millis(120),
        0.05,
        Some(1_000_000),
    )
}

/// A network of hosts with deterministic identities: node `n`'s RLPx key is [`Net::node_key`], its chat
/// key [`Net::chat_key`].
pub struct Net {
    /// The simulation.
    pub sim: NetSim,
    /// The scenario seed the identities derive from.
    pub seed: u64,
}

impl Net {
    /// An empty network starting at [`START_SECS`], every link following `link`.
    pub fn new(seed: u64, link: LinkModel) -> Net {
        Net {
            sim: NetSim::new(seed, Timestamp::from_secs(START_SECS), link),
            seed,
        }
    }

    /// The index the next added node gets.
    pub fn next_id(&self) -> NodeId {
        NodeId(self.sim.len())
    }

    /// The RLPx identity of node `n`.
    pub fn node_key(&self, n: NodeId) -> SecretKey {
        key(self.seed, n.0, 0)
    }

    /// The chat identity of node `n`.
    pub fn chat_key(&self, n: NodeId) -> SecretKey {
        key(self.seed, n.0, 5_000)
    }

    /// The chat public key of node `n`.
    pub fn chat_pk(&self, n: NodeId) -> PublicKey {
        self.chat_key(n).public_key()
    }

    /// The enode node `n` is reached at.
    pub fn enode(&self, n: NodeId) -> Enode {
        full::enode(n, self.node_key(n).public_key())
    }

    /// The configuration of the next node: its identity, `static_peers`, a Messenger if `chat`.
    pub fn config(&self, static_peers: &[NodeId], chat: bool) -> EngineConfig {
        let n = self.next_id();
        let mut c = EngineConfig::new(full::rlpx_config(self.node_key(n)));
        c.static_peers = static_peers.iter().map(|p| self.enode(*p)).collect();
        if chat {
            c.messenger = Some(MessengerConfig::new(self.chat_key(n), format!("device-{}", n.0)));
        }
        c
    }

    /// Add a host built by `make`.
    pub fn add(&mut self, make: impl FnOnce(NodeId, Seed, Timestamp) -> Box<dyn Host>) -> NodeId {
        self.sim.add_node(make)
    }

    /// Add a full node with `config`.
    pub fn add_full(&mut self, config: EngineConfig) -> NodeId {
        self.add(|id, seed, now| FullNode::new(id, config, seed, now).boxed())
    }

    /// A relay (no Messenger) keeping `static_peers`.
    pub fn relay(&mut self, static_peers: &[NodeId]) -> NodeId {
        let c = self.config(static_peers, false);
        self.add_full(c)
    }

    /// A chat client keeping `static_peers`.
    pub fn client(&mut self, static_peers: &[NodeId]) -> NodeId {
        let c = self.config(static_peers, true);
        self.add_full(c)
    }

    /// Schedule `c` for `n` now.
    pub fn command(&mut self, n: NodeId, c: NodeCommand) {
        let now = self.sim.now();
        self.sim.schedule(now, n, c);
    }

    /// Schedule the chat command `c` for `n` now.
    pub fn chat(&mut self, n: NodeId, c: Chat) {
        self.command(n, NodeCommand::Chat(c));
    }

    /// `n` sends `text` in `chat` now.
    pub fn send(&mut self, n: NodeId, chat: &str, text: &str) {
        self.chat(
            n,
            Chat::SendText {
                chat: chat.into(),
                text: text.into(),
            },
        );
    }

    /// Run for `secs` virtual seconds.
    pub fn run(&mut self, secs: u64) {
        self.sim.run_for(Duration::from_secs(secs));
    }

    /// The virtual time `secs` from now.
    pub fn at(&self, secs: u64) -> Timestamp {
        self.sim.now() + Duration::from_secs(secs)
    }

    /// Node `n`'s engine (`None` for adversaries without one and crashed nodes).
    pub fn engine(&self, n: NodeId) -> Option<&Engine> {
        self.sim.node(n).and_then(|h| h.engine())
    }

    /// Node `n`'s connected peers.
    pub fn connected(&self, n: NodeId) -> usize {
        self.engine(n).map_or(0, Engine::connected_peers)
    }

    /// Node `n`'s chat events so far.
    pub fn chat_events(&self, n: NodeId) -> impl Iterator<Item = &ChatEvent> {
        self.sim.events().iter().filter_map(move |(_, node, e)| match e {
            NodeEvent::Engine(Event::Chat(c)) if *node == n => Some(c),
            _ => None,
        })
    }

    /// Texts others wrote that `n` received in `chat`, sorted.
    pub fn texts(&self, n: NodeId, chat: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .chat_events(n)
            .filter_map(|e| match e {
                ChatEvent::MessageReceived {
                    chat: c,
                    message,
                    own: false,
                } if c == chat => Some(message.text.clone()),
                _ => None,
            })
            .collect();
        v.sort();
        v
    }

    /// No honest node dropped a chat message, dropped an honest peer for a fault, went past a cap or
    /// refused an input; no chat message was shown twice.
    pub fn healthy(&self) -> Result<(), Violation> {
        let s = &self.sim;
        invariants::no_honest_fault_disconnects(s)?;
        invariants::caps_respected(s)?;
        invariants::no_duplicate_deliveries(s)?;
        honest_events(s, 0)
    }
}

/// No honest host dropped a chat message or refused an input in the events from index `from` on.
///
/// A drop as [`SecureError::DuplicateOrExpired`] is not a loss: a client that reconnects after a
/// partition is offered again, by its relay's pool, envelopes it decrypted already, and the ratchet
/// refuses their spent keys (found by `status-node sim --seed 1 --nodes 8 --minutes 1`). The
/// exactly-once and duplicate-delivery checks still catch a lost or repeated message.
fn honest_events(s: &NetSim, from: usize) -> Result<(), Violation> {
    for (t, n, e) in s.events().get(from..).unwrap_or(&[]) {
        let honest = s.node(*n).is_some_and(|h| h.honest());
        let what = match e {
            NodeEvent::Engine(Event::Chat(ChatEvent::Dropped {
                reason: DropReason::Secure(SecureError::DuplicateOrExpired),
            })) => continue,
            NodeEvent::Engine(Event::Chat(ChatEvent::Dropped { reason })) if honest => {
                format!("honest node dropped a message: {reason}")
            }
            NodeEvent::Refused(err) => format!("refused an input: {err}"),
            NodeEvent::RestoreFailed(err) => format!("restore failed: {err}"),
            _ => continue,
        };
        return Err(Violation {
            at: *t,
            node: *n,
            what,
        });
    }
    Ok(())
}

/// The expectations that `to` receives each of `texts` in `chat` exactly once.
pub fn expect(to: NodeId, chat: &str, texts: &[&str]) -> Vec<Expected> {
    texts
        .iter()
        .map(|t| Expected {
            to,
            chat: chat.into(),
            text: (*t).into(),
        })
        .collect()
}

/// How hostile a random scenario is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FaultLevel {
    /// Clean links (latency and jitter only), no faults: public texts must arrive too.
    None,
    /// Lossy links, a partition and a crash every few minutes, a second of clock skew.
    #[default]
    Low,
    /// Lossier links, frequent partitions and crashes (relays too), up to three seconds of clock skew,
    /// and adversaries: a flooder, a slowloris and a garbage sender at random relays.
    High,
}

impl FaultLevel {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FaultLevel::None => "none",
            FaultLevel::Low => "low",
            FaultLevel::High => "high",
        }
    }
}

impl fmt::Display for FaultLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown [`FaultLevel`] name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown fault level {0:?} (none, low, high)")]
pub struct UnknownFaultLevel(pub String);

impl FromStr for FaultLevel {
    type Err = UnknownFaultLevel;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(FaultLevel::None),
            "low" => Ok(FaultLevel::Low),
            "high" => Ok(FaultLevel::High),
            other => Err(UnknownFaultLevel(other.into())),
        }
    }
}

/// What a random scenario is drawn from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioConfig {
    /// The seed: everything else is drawn from it.
    pub seed: u64,
    /// Honest full nodes (relays, the mailserver, chat clients); at least 3. Adversaries come on top.
    pub nodes: usize,
    /// The active window in virtual minutes (texts and faults); the settling time comes on top.
    pub minutes: u64,
    /// How hostile.
    pub faults: FaultLevel,
    /// How many of the relays are mailservers (every client knows them all). Default 1.
    pub mailservers: usize,
    /// How much of the run is recorded.
    pub trace: TraceLevel,
    /// Relays per 100 nodes (at least one relay). Default 10.
    pub relays_per_100: usize,
}

impl Default for ScenarioConfig {
    fn default() -> Self {
        ScenarioConfig {
            seed: 0,
            nodes: 12,
            minutes: 2,
            faults: FaultLevel::Low,
            mailservers: 1,
            trace: TraceLevel::Digest,
            relays_per_100: 10,
        }
    }
}

impl ScenarioConfig {
    /// The `status-node sim` arguments that replay this configuration.
    pub fn args(&self) -> String {
        format!(
            "--seed {} --nodes {} --minutes {} --faults {}{}",
            self.seed,
            self.nodes,
            self.minutes,
            self.faults,
            if self.mailservers == 1 {
                String::new()
            } else {
                format!(" --mailservers {}", self.mailservers)
            }
        )
    }
}

/// A scenario that cannot be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioError {
    /// Fewer than three nodes.
    #[error("a scenario needs at least 3 nodes, not {0}")]
    TooFewNodes(usize),
    /// The setup did not create every group (a bug, or a seed worth keeping).
    #[error("group {0} was not created during the setup")]
    GroupNotCreated(usize),
}

/// The role of a node in a [`Scenario`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// A relay without a Messenger.
    Relay,
    /// A relay that is also a mailserver.
    Mailserver,
    /// A chat client.
    Client,
    /// A hostile host.
    Adversary,
}

impl Role {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Role::Relay => "relay",
            Role::Mailserver => "mailserver",
            Role::Client => "client",
            Role::Adversary => "adversary",
        }
    }
}

/// A text the schedule sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// When.
    pub at: Timestamp,
    /// By whom.
    pub from: NodeId,
    /// In which chat (as the sender names it).
    pub chat: String,
    /// The text (unique in the run).
    pub text: String,
    /// Who must receive it, with the chat id as each names it.
    pub to: Vec<(NodeId, String)>,
    /// `true` for public chats (not retransmitted end to end).
    pub public: bool,
}

/// A chat a client may write in: its id, the recipients (with their chat ids), public or not.
type ChatChoice = (String, Vec<(NodeId, String)>, bool);

/// What a finished run counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Texts sent.
    pub texts: usize,
    /// Deliveries checked exactly once.
    pub checked: usize,
    /// Chat messages received from others.
    pub received: usize,
    /// Partitions scheduled.
    pub partitions: usize,
    /// Crashes scheduled.
    pub crashes: usize,
    /// Adversaries added.
    pub adversaries: usize,
}

/// A random network, workload and fault schedule drawn from a [`ScenarioConfig`]. See the
/// [module docs](self).
pub struct Scenario {
    /// The network.
    pub net: Net,
    /// What it was drawn from.
    pub config: ScenarioConfig,
    /// Every node's role, by index.
    pub roles: Vec<Role>,
    /// The texts scheduled.
    pub sent: Vec<Sent>,
    /// When the active window ends.
    pub active_until: Timestamp,
    /// When the run ends (the settling time after the active window).
    pub until: Timestamp,
    outcome: Outcome,
}

fn below(rng: &mut ChaCha20Rng, n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (rng.next_u64() % n as u64) as usize
    }
}

fn ms(rng: &mut ChaCha20Rng, lo: u64, hi: u64) -> Duration {
    Duration::from_millis(lo + rng.next_u64() % (hi - lo).max(1))
}

/// The settling time after the active window: MVDS retransmission backoff and redials.
const SETTLE: Duration = Duration::from_secs(300);
/// The setup before the active window (connect, join, create groups).
const SETUP_SECS: u64 = 15;

impl Scenario {
    /// Build the network, run its setup (connect, join chats, create groups) and schedule the workload
    /// and faults.
    pub fn new(config: &ScenarioConfig) -> Result<Scenario, ScenarioError> {
        if config.nodes < 3 {
            return Err(ScenarioError::TooFewNodes(config.nodes));
        }
        let mut rng = Seed::from_u64(config.seed ^ 0x5ce7_a210).rng();
        let link = match config.faults {
            FaultLevel::None => LinkModel::stream(
                Duration::from_millis(20),
                Duration::from_millis(120),
                0.0,
                Some(1_000_000),
            ),
            FaultLevel::Low => lossy(),
            FaultLevel::High => LinkModel::stream(
                Duration::from_millis(20),
                Duration::from_millis(300),
                0.1,
                Some(500_000),
            ),
        };
        let mut net = Net::new(config.seed, link);
        net.sim.set_trace_level(config.trace);
        net.sim
            .set_replay_command(format!("status-node sim {}", config.args()));
        let mut roles = Vec::new();

        // Relays in a chain (each keeps the one or two before it), the mailserver among them.
        let relays = (config.nodes * config.relays_per_100 / 100).clamp(1, config.nodes - 2);
        let mailservers = config.mailservers.min(relays);
        let mut relay_ids = Vec::new();
        for i in 0..relays {
            let peers: Vec<NodeId> = relay_ids.iter().rev().take(2).copied().collect();
            let mut c = net.config(&peers, false);
            let role = if i >= relays - mailservers {
                c.mailserver = Some(MailServerConfig::default());
                Role::Mailserver
            } else {
                Role::Relay
            };
            relay_ids.push(net.add_full(c));
            roles.push(role);
        }
        let ms_enodes: Vec<Enode> = relay_ids[relays - mailservers..]
            .iter()
            .map(|m| net.enode(*m))
            .collect();
        // Clients: one or two relays each.
        let mut clients = Vec::new();
        for _ in relays..config.nodes {
            let mut peers = vec![relay_ids[below(&mut rng, relays)]];
            if relays > 1 && below(&mut rng, 2) == 0 {
                let other = relay_ids[below(&mut rng, relays)];
                if other != peers[0] {
                    peers.push(other);
                }
            }
            let mut c = net.config(&peers, true);
            c.mailservers = ms_enodes.clone();
            clients.push(net.add_full(c));
            roles.push(Role::Client);
        }

        // Adversaries at random relays.
        let mut outcome = Outcome::default();
        let now = net.sim.now();
        if config.faults == FaultLevel::High {
            let start = now + Duration::from_secs(SETUP_SECS);
            let target = relay_ids[below(&mut rng, relays)];
            let c = net.config(&[target], false);
            net.add(|id, seed, now| {
                Box::new(Flooder::new(id, c, seed, now, start, Duration::from_millis(200)))
            });
            let target = relay_ids[below(&mut rng, relays)];
            net.add(|_, seed, _| {
                Box::new(SocketAttacker::slowloris(
                    target,
                    4,
                    seed,
                    start,
                    Duration::from_secs(5),
                ))
            });
            let target = relay_ids[below(&mut rng, relays)];
            net.add(|_, seed, _| {
                Box::new(SocketAttacker::garbage(
                    target,
                    256,
                    seed,
                    start,
                    Duration::from_secs(2),
                ))
            });
            roles.extend([Role::Adversary; 3]);
            outcome.adversaries = 3;
        }

        // Chats: public chats of about 20 clients, 1:1 pairs, groups of 3 to 5.
        let publics = 1 + clients.len() / 20;
        let mut public_of: Vec<Vec<usize>> = vec![Vec::new(); clients.len()];
        for (i, c) in clients.iter().enumerate() {
            let mut mine = vec![i % publics];
            if publics > 1 && below(&mut rng, 4) == 0 {
                let k = below(&mut rng, publics);
                if !mine.contains(&k) {
                    mine.push(k);
                }
            }
            for k in &mine {
                net.chat(*c, Chat::JoinPublicChat(format!("pub-{k}").into()));
            }
            public_of[i] = mine;
        }
        let mut pairs: Vec<(NodeId, NodeId)> = Vec::new();
        for _ in 0..clients.len().div_ceil(2) {
            let a = clients[below(&mut rng, clients.len())];
            let b = clients[below(&mut rng, clients.len())];
            let pair = (a.min(b), a.max(b));
            if a != b && !pairs.contains(&pair) {
                pairs.push(pair);
            }
        }
        // Both sides open the chat, so either may write first.
        for (a, b) in &pairs {
            let (pa, pb) = (net.chat_pk(*a), net.chat_pk(*b));
            net.chat(*a, Chat::StartOneToOne(pb));
            net.chat(*b, Chat::StartOneToOne(pa));
        }
        let mut groups: Vec<(NodeId, Vec<NodeId>)> = Vec::new();
        if clients.len() >= 3 {
            for _ in 0..clients.len().div_ceil(6) {
                let size = (3 + below(&mut rng, 3)).min(clients.len());
                let mut members: Vec<NodeId> = Vec::new();
                while members.len() < size {
                    let m = clients[below(&mut rng, clients.len())];
                    if !members.contains(&m) {
                        members.push(m);
                    }
                }
                groups.push((members[0], members));
            }
        }
        net.run(5);
        for (g, (admin, members)) in groups.iter().enumerate() {
            let others = members[1..].iter().map(|m| net.chat_pk(*m)).collect();
            net.chat(
                *admin,
                Chat::CreateGroup {
                    name: format!("group-{g}"),
                    members: others,
                },
            );
        }
        net.run(SETUP_SECS - 5);
        let mut group_ids = Vec::new();
        for (g, (admin, _)) in groups.iter().enumerate() {
            let name = format!("group-{g}");
            let id = net
                .chat_events(*admin)
                .find_map(|e| match e {
                    ChatEvent::GroupCreated { chat, name: n } if *n == name => {
                        Some(chat.as_str().to_string())
                    }
                    _ => None,
                })
                .ok_or(ScenarioError::GroupNotCreated(g))?;
            group_ids.push(id);
        }

        // Faults over the active window; every one heals before it ends.
        let start = net.sim.now();
        let window = Duration::from_secs(config.minutes * 60);
        let active_until = start + window;
        let mut down: Vec<(NodeId, Timestamp, Timestamp)> = Vec::new();
        let (partitions, crashes, skew_ms) = match config.faults {
            FaultLevel::None => (0, 0, 0),
            FaultLevel::Low => (config.minutes.div_ceil(2), config.minutes.div_ceil(3), 1_000),
            FaultLevel::High => (config.minutes * 2, config.minutes, 3_000),
        };
        let honest = config.nodes;
        let latest_start = window.saturating_sub(Duration::from_secs(40)).as_millis() as u64;
        for _ in 0..partitions {
            let from = start + Duration::from_millis(rng.next_u64() % latest_start.max(1));
            let until = from + ms(&mut rng, 5_000, 30_000);
            let size = 1 + below(&mut rng, (honest / 4).max(1));
            let side = (0..size).map(|_| NodeId(below(&mut rng, honest))).collect();
            net.sim.add_fault(Fault::Partition { side, from, until });
        }
        for _ in 0..crashes {
            // Clients crash; at the high level relays too.
            let n = if config.faults == FaultLevel::High && below(&mut rng, 3) == 0 {
                relay_ids[below(&mut rng, relays)]
            } else {
                clients[below(&mut rng, clients.len())]
            };
            let from = start + Duration::from_millis(rng.next_u64() % latest_start.max(1));
            let until = from + ms(&mut rng, 3_000, 30_000);
            if down.iter().any(|(m, f, u)| *m == n && from <= *u && *f <= until) {
                continue;
            }
            net.sim.schedule(from, n, NodeCommand::Snapshot);
            net.sim.schedule(from, n, NodeCommand::Crash);
            net.sim.schedule(until, n, NodeCommand::Restart);
            down.push((n, from, until));
        }
        if skew_ms > 0 {
            for n in 0..honest {
                if below(&mut rng, 3) == 0 {
                    let s = (rng.next_u64() % (2 * skew_ms + 1)) as i64 - skew_ms as i64;
                    net.sim.set_clock_skew(NodeId(n), s);
                }
            }
        }
        outcome.partitions = partitions as usize;
        outcome.crashes = down.len();

        // Texts: about one per client per minute, in one of its chats; none while the sender is down.
        let mut sent = Vec::new();
        let total = clients.len() * config.minutes as usize;
        let span = (window.as_millis() as u64).max(1);
        for k in 0..total {
            let at = start + Duration::from_millis(rng.next_u64() % span);
            let i = below(&mut rng, clients.len());
            let from = clients[i];
            if down.iter().any(|(n, f, u)| *n == from && *f <= at && at <= *u) {
                continue;
            }
            let text = format!("t{k} from n{}", from.0);
            let mut options: Vec<ChatChoice> = Vec::new();
            for p in &public_of[i] {
                let chat = format!("pub-{p}");
                let to = clients
                    .iter()
                    .enumerate()
                    .filter(|(j, c)| **c != from && public_of[*j].contains(p))
                    .map(|(_, c)| (*c, chat.clone()))
                    .collect();
                options.push((chat, to, true));
            }
            for (a, b) in &pairs {
                let (me, other) = match (*a == from, *b == from) {
                    (true, _) => (*a, *b),
                    (_, true) => (*b, *a),
                    _ => continue,
                };
                let mine = Messenger::one_to_one_chat_id(&net.chat_pk(other));
                let theirs = Messenger::one_to_one_chat_id(&net.chat_pk(me));
                let to = vec![(other, theirs.as_str().to_string())];
                options.push((mine.as_str().to_string(), to, false));
            }
            for ((_, members), id) in groups.iter().zip(&group_ids) {
                if members.contains(&from) {
                    let to = members
                        .iter()
                        .filter(|m| **m != from)
                        .map(|m| (*m, id.clone()))
                        .collect();
                    options.push((id.clone(), to, false));
                }
            }
            let (chat, to, public) = options.swap_remove(below(&mut rng, options.len()));
            net.sim.schedule(
                at,
                from,
                NodeCommand::Chat(Chat::SendText {
                    chat: chat.as_str().into(),
                    text: text.clone(),
                }),
            );
            sent.push(Sent {
                at,
                from,
                chat,
                text,
                to,
                public,
            });
        }
        sent.sort_by_key(|s| s.at);
        outcome.texts = sent.len();
        Ok(Scenario {
            net,
            config: config.clone(),
            roles,
            sent,
            active_until,
            until: active_until + SETTLE,
            outcome,
        })
    }

    /// The expected deliveries: every 1:1 and group text to each recipient, and public texts when the
    /// run has no faults.
    pub fn expected(&self) -> Vec<Expected> {
        let all_public = self.config.faults == FaultLevel::None;
        self.sent
            .iter()
            .filter(|s| all_public || !s.public)
            .flat_map(|s| {
                s.to.iter().map(|(to, chat)| Expected {
                    to: *to,
                    chat: chat.clone(),
                    text: s.text.clone(),
                })
            })
            .collect()
    }

    /// Run to the end with the invariants on: every virtual second the caps, every ten the event checks
    /// (new events only), and at the end the exactly-once deliveries. The first violation stops the run.
    pub fn run(&mut self) -> Result<Outcome, Violation> {
        let mut checked = 0;
        let mut tick = 0u64;
        let until = self.until;
        invariants::run_checked(&mut self.net.sim, until, Duration::from_secs(1), |s| {
            tick += 1;
            invariants::caps_respected(s)?;
            if tick % 10 == 0 {
                honest_events(s, checked)?;
                checked = s.events().len();
            }
            Ok(())
        })?;
        self.net.healthy()?;
        let expected = self.expected();
        invariants::exactly_once(&self.net.sim, &expected)?;
        let mut outcome = self.outcome;
        outcome.checked = expected.len();
        outcome.received = self
            .net
            .sim
            .events()
            .iter()
            .filter(|(_, _, e)| {
                matches!(
                    e,
                    NodeEvent::Engine(Event::Chat(ChatEvent::MessageReceived { own: false, .. }))
                )
            })
            .count();
        Ok(outcome)
    }

    /// The counts of the schedule (before [`Scenario::run`]: deliveries and receipts are zero).
    pub fn planned(&self) -> Outcome {
        self.outcome
    }
}
