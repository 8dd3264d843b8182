//! Hostile hosts any scenario can add to a [`NetSim`](super::full::NetSim) (docs/architecture.md
//! "Simulation"; the limits they test are in docs/protocol/status-client.md and
//! docs/protocol/waku.md).
//!
//! * [`Flooder`]: a full node that posts valid-PoW envelopes at a fixed rate (through its own Waku node,
//!   which honours the rate limits its peers advertise: it tests that the limits hold end to end, not
//!   the receiving side's enforcement against a peer that ignores them);
//! * [`Slowloris`]: opens sockets to a target and never sends a byte (no handshake ever completes);
//! * [`GarbageSender`]: connects and writes random bytes;
//! * [`Replayer`]: a full node that captures the envelopes it relays and, every period, restarts with an
//!   empty pool and sends them all again;
//! * [`stalling_mailserver`]: a mailserver that archives but never answers a history query.
//!
//! Each reports what it did as [`NodeEvent::Attack`] and counts as dishonest in the invariants.

use std::collections::VecDeque;
use std::time::Duration;

use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;

use super::conn::{self, SocketEvent, Sockets};
use super::full::{FullNode, Host, NodeCommand, NodeEvent, StallingArchive};
use super::{Machine, NodeId, SimOutput};
use crate::node::{Engine, EngineConfig, Input};
use crate::rng::Seed;
use crate::time::{earliest, Timestamp};
use crate::waku::{self, NewMessage, PostKey, Topic};

/// A full node posting one valid-PoW envelope every `interval` on `topic`, from `start` on.
pub struct Flooder {
    node: FullNode,
    topic: Topic,
    interval: Duration,
    next: Timestamp,
    count: u64,
    rng: ChaCha20Rng,
    events: VecDeque<SimOutput<NodeEvent>>,
}

impl Flooder {
    /// Host `id` with `config` (its static peers are its targets), posting from `start` every
    /// `interval`.
    pub fn new(
        id: NodeId,
        config: EngineConfig,
        seed: Seed,
        now: Timestamp,
        start: Timestamp,
        interval: Duration,
    ) -> Self {
        let mut rng = seed.rng();
        let node = FullNode::new(id, config, crate::rng::fork(&mut rng), now).dishonest();
        Flooder {
            node,
            topic: Topic([0xf1, 0x00, 0xd0, 0x00]),
            interval,
            next: start,
            count: 0,
            rng,
            events: VecDeque::new(),
        }
    }

    /// Envelopes posted so far.
    pub fn posted(&self) -> u64 {
        self.count
    }

    fn post(&mut self, now: Timestamp) {
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        self.rng.fill_bytes(key.as_mut());
        let mut payload = vec![0u8; 64];
        self.rng.fill_bytes(&mut payload);
        let msg = NewMessage {
            topic: self.topic,
            payload,
            key: PostKey::Symmetric(key),
            signer: None,
            ttl: 0,
            pow_target: 0.002,
            padding: None,
        };
        self.count += 1;
        let count = self.count;
        self.events.push_back(SimOutput::Event(NodeEvent::Attack {
            what: "flood_envelope",
            count,
        }));
        self.node.handle_command(
            now,
            NodeCommand::Engine(Input::Waku(waku::Input::Post(Box::new(msg)))),
        );
    }
}

impl Machine for Flooder {
    type Command = NodeCommand;
    type Event = NodeEvent;
    fn handle_command(&mut self, now: Timestamp, command: NodeCommand) {
        self.node.handle_command(now, command);
    }
    fn handle_receive(&mut self, now: Timestamp, from: NodeId, bytes: Vec<u8>) {
        self.node.handle_receive(now, from, bytes);
    }
    fn handle_timeout(&mut self, now: Timestamp) {
        if now >= self.next {
            self.next = now + self.interval;
            self.post(now);
        }
        self.node.handle_timeout(now);
    }
    fn poll_output(&mut self) -> Option<SimOutput<NodeEvent>> {
        self.events.pop_front().or_else(|| self.node.poll_output())
    }
    fn poll_timeout(&self) -> Option<Timestamp> {
        earliest(self.node.poll_timeout(), Some(self.next))
    }
    fn handle_unreachable(&mut self, now: Timestamp, to: NodeId, bytes: Vec<u8>) {
        self.node.handle_unreachable(now, to, bytes);
    }
}

impl Host for Flooder {
    fn engine(&self) -> Option<&Engine> {
        self.node.engine()
    }
}

/// A socket-level attacker: dials `target` and keeps up to `sockets` connections open, writing nothing
/// ([`Slowloris`]) or `chunk` random bytes every `interval` ([`GarbageSender`]).
pub struct SocketAttacker {
    target: NodeId,
    sockets: Sockets,
    open: usize,
    next_dial: u64,
    interval: Duration,
    next: Timestamp,
    chunk: usize,
    rng: ChaCha20Rng,
    what: &'static str,
    count: u64,
    events: VecDeque<SimOutput<NodeEvent>>,
    live: Vec<u64>,
}

/// Opens sockets and never completes a handshake.
pub type Slowloris = SocketAttacker;
/// Writes random bytes after connecting.
pub type GarbageSender = SocketAttacker;

impl SocketAttacker {
    /// A slowloris keeping `sockets` idle connections to `target` (redialling every `interval` those
    /// that were closed), from `start` on.
    pub fn slowloris(
        target: NodeId,
        sockets: usize,
        seed: Seed,
        start: Timestamp,
        interval: Duration,
    ) -> Self {
        Self::build(target, sockets, 0, seed, start, interval, "slowloris_socket")
    }

    /// A garbage sender keeping one connection to `target` and writing `chunk` random bytes every
    /// `interval`, from `start` on.
    pub fn garbage(target: NodeId, chunk: usize, seed: Seed, start: Timestamp, interval: Duration) -> Self {
        Self::build(target, 1, chunk, seed, start, interval, "garbage_chunk")
    }

    fn build(
        target: NodeId,
        open: usize,
        chunk: usize,
        seed: Seed,
        start: Timestamp,
        interval: Duration,
        what: &'static str,
    ) -> Self {
        let mut sockets = Sockets::default();
        sockets.listening = false;
        SocketAttacker {
            target,
            sockets,
            open,
            next_dial: 1 << 62,
            interval,
            next: start,
            chunk,
            rng: seed.rng(),
            what,
            count: 0,
            events: VecDeque::new(),
            live: vec![],
        }
    }

    /// Attacks so far (sockets opened, or chunks written).
    pub fn count(&self) -> u64 {
        self.count
    }

    fn act(&mut self, now: Timestamp) {
        while self.sockets.len() < self.open {
            self.sockets.dial(now, self.next_dial, conn::addr(self.target));
            self.next_dial += 1;
            if self.chunk == 0 {
                self.attack();
            }
        }
        if self.chunk > 0 {
            for c in self.live.clone() {
                let mut b = vec![0u8; self.chunk];
                self.rng.fill_bytes(&mut b);
                self.sockets.send(c, b);
                self.attack();
            }
        }
    }

    fn attack(&mut self) {
        self.count += 1;
        let (what, count) = (self.what, self.count);
        self.events
            .push_back(SimOutput::Event(NodeEvent::Attack { what, count }));
    }

    fn pump(&mut self) {
        while let Some(e) = self.sockets.poll_event() {
            match e {
                SocketEvent::Connected(c) => self.live.push(c),
                SocketEvent::DialFailed(c) | SocketEvent::Closed(c) => self.live.retain(|x| *x != c),
                SocketEvent::Accepted { .. } | SocketEvent::Data { .. } => {}
            }
        }
        while let Some((to, bytes)) = self.sockets.poll_segment() {
            self.events.push_back(SimOutput::Stream { to, bytes });
        }
    }
}

impl Machine for SocketAttacker {
    type Command = NodeCommand;
    type Event = NodeEvent;
    fn handle_command(&mut self, _: Timestamp, _: NodeCommand) {}
    fn handle_receive(&mut self, _: Timestamp, from: NodeId, bytes: Vec<u8>) {
        self.sockets.receive(from, &bytes);
        self.pump();
    }
    fn handle_timeout(&mut self, now: Timestamp) {
        self.sockets.handle_timeout(now);
        self.pump();
        if now >= self.next {
            self.next = now + self.interval;
            self.act(now);
            self.pump();
        }
    }
    fn poll_output(&mut self) -> Option<SimOutput<NodeEvent>> {
        self.events.pop_front()
    }
    fn poll_timeout(&self) -> Option<Timestamp> {
        earliest(self.sockets.poll_timeout(), Some(self.next))
    }
    fn handle_unreachable(&mut self, _: Timestamp, to: NodeId, bytes: Vec<u8>) {
        self.sockets.unreachable(to, &bytes);
        self.pump();
    }
}

impl Host for SocketAttacker {}

/// Most envelopes a [`Replayer`] keeps.
pub const MAX_CAPTURED: usize = 1024;

/// A full node that relays normally, captures every envelope in its pool, and every `period` restarts
/// with an empty pool and broadcasts what it captured again (replays within the envelopes' TTL).
pub struct Replayer {
    node: FullNode,
    period: Duration,
    next: Timestamp,
    captured: Vec<waku::Envelope>,
    count: u64,
    events: VecDeque<SimOutput<NodeEvent>>,
}

impl Replayer {
    /// Host `id` with `config`, replaying every `period`.
    pub fn new(id: NodeId, config: EngineConfig, seed: Seed, now: Timestamp, period: Duration) -> Self {
        Replayer {
            node: FullNode::new(id, config, seed, now).dishonest(),
            period,
            next: now + period,
            captured: vec![],
            count: 0,
            events: VecDeque::new(),
        }
    }

    /// Envelopes replayed so far.
    pub fn replayed(&self) -> u64 {
        self.count
    }

    fn capture(&mut self) {
        let Some(e) = self.node.engine() else {
            return;
        };
        let pool = e.waku().pool();
        for (_, id, _) in pool.iter_from(0) {
            if let Some(env) = pool.get(id) {
                if self.captured.len() < MAX_CAPTURED && !self.captured.contains(&env) {
                    self.captured.push(env);
                }
            }
        }
    }

    fn replay(&mut self, now: Timestamp) {
        self.capture();
        self.node.handle_command(now, NodeCommand::Crash);
        self.node.handle_command(now, NodeCommand::Restart);
        for env in self.captured.clone() {
            self.count += 1;
            self.node
                .handle_command(now, NodeCommand::Engine(Input::Waku(waku::Input::Broadcast(env))));
        }
        let count = self.count;
        self.events.push_back(SimOutput::Event(NodeEvent::Attack {
            what: "replayed_envelopes",
            count,
        }));
    }
}

impl Machine for Replayer {
    type Command = NodeCommand;
    type Event = NodeEvent;
    fn handle_command(&mut self, now: Timestamp, command: NodeCommand) {
        self.node.handle_command(now, command);
    }
    fn handle_receive(&mut self, now: Timestamp, from: NodeId, bytes: Vec<u8>) {
        self.node.handle_receive(now, from, bytes);
    }
    fn handle_timeout(&mut self, now: Timestamp) {
        if now >= self.next {
            self.next = now + self.period;
            self.replay(now);
        }
        self.node.handle_timeout(now);
    }
    fn poll_output(&mut self) -> Option<SimOutput<NodeEvent>> {
        self.events.pop_front().or_else(|| self.node.poll_output())
    }
    fn poll_timeout(&self) -> Option<Timestamp> {
        earliest(self.node.poll_timeout(), Some(self.next))
    }
    fn handle_unreachable(&mut self, now: Timestamp, to: NodeId, bytes: Vec<u8>) {
        self.node.handle_unreachable(now, to, bytes);
    }
}

impl Host for Replayer {
    fn engine(&self) -> Option<&Engine> {
        self.node.engine()
    }
}

/// A mailserver (`config.mailserver` must be set) that archives every envelope and never answers a
/// history query.
pub fn stalling_mailserver(id: NodeId, config: EngineConfig, seed: Seed, now: Timestamp) -> FullNode {
    FullNode::new(id, config, seed, now)
        .with_archive(Box::new(StallingArchive::default()))
        .dishonest()
}
