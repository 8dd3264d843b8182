//! Shared scenario building for the `sim_*` tests: a [`NetSim`] of full nodes with deterministic
//! identities (RLPx and chat keys derived from the scenario seed and the node index).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use status_sansio::chat::messenger::{Event as ChatEvent, Input as Chat, MessengerConfig};
use status_sansio::crypto::{PublicKey, SecretKey};
use status_sansio::enode::Enode;
use status_sansio::node::{Engine, EngineConfig, Event};
use status_sansio::sim::full::{self, FullNode, Host, NetSim, NodeCommand, NodeEvent};
use status_sansio::sim::invariants::{self, Expected};
use status_sansio::sim::{LinkModel, NodeId};
use status_sansio::{Seed, Timestamp};

pub const START_SECS: u64 = 1_700_000_000;

/// The seed to run a scenario with: `SIM_SEED` when set (to replay the line a failed run printed), else
/// `default`.
pub fn seed(default: u64) -> u64 {
    std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

pub fn key(seed: u64, i: usize, salt: u64) -> SecretKey {
    SecretKey::random(&mut Seed::from_u64(seed * 10_000 + salt + i as u64).rng())
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

pub struct Net {
    pub sim: NetSim,
    pub seed: u64,
}

impl Net {
    pub fn new(seed: u64, link: LinkModel) -> Net {
        Net {
            sim: NetSim::new(seed, Timestamp::from_secs(START_SECS), link),
            seed,
        }
    }

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

    pub fn chat_pk(&self, n: NodeId) -> PublicKey {
        self.chat_key(n).public_key()
    }

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

    pub fn add(&mut self, make: impl FnOnce(NodeId, Seed, Timestamp) -> Box<dyn Host>) -> NodeId {
        self.sim.add_node(make)
    }

    /// A relay (no Messenger) keeping `static_peers`.
    pub fn relay(&mut self, static_peers: &[NodeId]) -> NodeId {
        let c = self.config(static_peers, false);
        self.add(|id, seed, now| FullNode::new(id, c, seed, now).boxed())
    }

    /// A chat client keeping `static_peers`.
    pub fn client(&mut self, static_peers: &[NodeId]) -> NodeId {
        let c = self.config(static_peers, true);
        self.add(|id, seed, now| FullNode::new(id, c, seed, now).boxed())
    }

    pub fn command(&mut self, n: NodeId, c: NodeCommand) {
        let now = self.sim.now();
        self.sim.schedule(now, n, c);
    }

    pub fn chat(&mut self, n: NodeId, c: Chat) {
        self.command(n, NodeCommand::Chat(c));
    }

    pub fn send(&mut self, n: NodeId, chat: &str, text: &str) {
        self.chat(
            n,
            Chat::SendText {
                chat: chat.into(),
                text: text.into(),
            },
        );
    }

    pub fn run(&mut self, secs: u64) {
        self.sim.run_for(Duration::from_secs(secs));
    }

    pub fn at(&self, secs: u64) -> Timestamp {
        self.sim.now() + Duration::from_secs(secs)
    }

    pub fn engine(&self, n: NodeId) -> Option<&Engine> {
        self.sim.node(n).and_then(|h| h.engine())
    }

    pub fn connected(&self, n: NodeId) -> usize {
        self.engine(n).map_or(0, Engine::connected_peers)
    }

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

    /// No honest node dropped a chat message, dropped an honest peer for a fault, or went past a cap;
    /// no chat message was shown twice.
    pub fn assert_healthy(&self) {
        let s = &self.sim;
        invariants::no_honest_fault_disconnects(s).unwrap();
        invariants::caps_respected(s).unwrap();
        invariants::no_duplicate_deliveries(s).unwrap();
        for (_, n, e) in s.events() {
            let honest = s.node(*n).is_some_and(|h| h.honest());
            if let NodeEvent::Engine(Event::Chat(ChatEvent::Dropped { reason })) = e {
                assert!(!honest, "honest n{} dropped a message: {reason}", n.0);
            }
            if let NodeEvent::Refused(err) = e {
                panic!("n{} refused an input: {err}", n.0);
            }
        }
    }
}

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

pub fn strings(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}
