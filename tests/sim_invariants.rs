//! The simulator's own guarantees: the invariant checker catches deliberately broken nodes (one that
//! drops every Nth outbound stream segment, one that shows chat messages twice), the same seed gives the
//! same trace digest (and a pinned one for a small scenario), the timeline is JSON lines, and a failing
//! run names the one command that replays it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sim_common;

use status_sansio::chat::messenger::{Event as ChatEvent, Input as Chat};
use status_sansio::node::{Engine, Event};
use status_sansio::sim::full::{FullNode, Host, NodeCommand, NodeEvent};
use status_sansio::sim::invariants;
use status_sansio::sim::{LinkModel, Machine, NodeId, SimOutput, TraceLevel};
use status_sansio::Timestamp;

use sim_common::{expect, lossy, Net};

/// A full node with a bug (counted as honest: it is "our" node, and the checker must catch it).
struct Broken {
    node: FullNode,
    bug: Bug,
    segments: u64,
    copy: Option<NodeEvent>,
}

#[derive(Clone, Copy)]
enum Bug {
    /// Drops every Nth outbound data segment once connections are up.
    DropsSegments(u64),
    /// Shows every chat message it receives twice.
    Redelivers,
}

impl Machine for Broken {
    type Command = NodeCommand;
    type Event = NodeEvent;
    fn handle_command(&mut self, now: Timestamp, c: NodeCommand) {
        self.node.handle_command(now, c);
    }
    fn handle_receive(&mut self, now: Timestamp, from: NodeId, bytes: Vec<u8>) {
        self.node.handle_receive(now, from, bytes);
    }
    fn handle_timeout(&mut self, now: Timestamp) {
        self.node.handle_timeout(now);
    }
    fn poll_output(&mut self) -> Option<SimOutput<NodeEvent>> {
        if let Some(e) = self.copy.take() {
            return Some(SimOutput::Event(e));
        }
        loop {
            let out = self.node.poll_output()?;
            match (self.bug, out) {
                (Bug::DropsSegments(n), SimOutput::Stream { to, bytes }) => {
                    // Data segments start with 3 (see `sim::conn::Segment::encode`).
                    if bytes.first() == Some(&3) {
                        self.segments += 1;
                        if self.segments > 3 && self.segments % n == 0 {
                            continue;
                        }
                    }
                    return Some(SimOutput::Stream { to, bytes });
                }
                (Bug::Redelivers, SimOutput::Event(NodeEvent::Engine(Event::Chat(e)))) => {
                    if let ChatEvent::MessageReceived { chat, message, own } = &e {
                        self.copy = Some(NodeEvent::Engine(Event::Chat(ChatEvent::MessageReceived {
                            chat: chat.clone(),
                            message: message.clone(),
                            own: *own,
                        })));
                    }
                    return Some(SimOutput::Event(NodeEvent::Engine(Event::Chat(e))));
                }
                (_, o) => return Some(o),
            }
        }
    }
    fn poll_timeout(&self) -> Option<Timestamp> {
        self.node.poll_timeout()
    }
    fn handle_unreachable(&mut self, now: Timestamp, to: NodeId, bytes: Vec<u8>) {
        self.node.handle_unreachable(now, to, bytes);
    }
}

impl Host for Broken {
    fn engine(&self) -> Option<&Engine> {
        self.node.engine()
    }
    fn honest(&self) -> bool {
        true
    }
}

/// A relay, a client and a second client with `bug` (if any) exchanging public messages.
fn public_chat(seed: u64, link: LinkModel, level: TraceLevel, bug: Option<Bug>) -> (Net, NodeId, NodeId) {
    let mut net = Net::new(seed, link);
    net.sim.set_trace_level(level);
    let relay = net.relay(&[]);
    let alice = net.client(&[relay]);
    let c = net.config(&[relay], true);
    let bob = net.add(|id, seed, now| {
        let node = FullNode::new(id, c, seed, now);
        match bug {
            Some(bug) => Box::new(Broken {
                node,
                bug,
                segments: 0,
                copy: None,
            }),
            None => node.boxed(),
        }
    });
    for n in [alice, bob] {
        net.chat(n, Chat::JoinPublicChat("sim".into()));
    }
    net.run(5);
    for k in 0..3 {
        net.send(alice, "sim", &format!("to bob {k}"));
        net.send(bob, "sim", &format!("to alice {k}"));
        net.run(5);
    }
    net.run(20);
    (net, alice, bob)
}

#[test]
fn an_honest_run_passes_every_invariant() {
    let (net, alice, bob) = public_chat(sim_common::seed(31), lossy(), TraceLevel::Digest, None);
    let mut e = expect(bob, "sim", &["to bob 0", "to bob 1", "to bob 2"]);
    e.extend(expect(alice, "sim", &["to alice 0", "to alice 1", "to alice 2"]));
    invariants::exactly_once(&net.sim, &e).unwrap();
    net.assert_healthy();
}

#[test]
fn the_checker_catches_a_node_that_shows_messages_twice() {
    let (net, _, bob) = public_chat(
        sim_common::seed(32),
        lossy(),
        TraceLevel::Digest,
        Some(Bug::Redelivers),
    );
    let v = invariants::no_duplicate_deliveries(&net.sim).unwrap_err();
    assert_eq!(v.node, bob, "{v}");
    assert!(v.what.contains("duplicate delivery of \"to bob 0\""), "{v}");
    let v = invariants::exactly_once(&net.sim, &expect(bob, "sim", &["to bob 0"])).unwrap_err();
    assert_eq!(v.node, bob, "{v}");
    assert!(v.what.contains("arrived 2 times"), "{v}");
    // The first violation's time is the second delivery's.
    let first_copy = net
        .sim
        .events()
        .iter()
        .filter(|(_, n, e)| {
            *n == bob
                && matches!(e, NodeEvent::Engine(Event::Chat(ChatEvent::MessageReceived { message, .. })) if message.text == "to bob 0")
        })
        .nth(1)
        .map(|(t, ..)| *t);
    assert_eq!(Some(v.at), first_copy);
}

#[test]
fn the_checker_catches_a_node_that_drops_stream_segments() {
    let (net, _, bob) = public_chat(
        sim_common::seed(33),
        LinkModel::stream(
            std::time::Duration::from_millis(10),
            std::time::Duration::from_millis(30),
            0.0,
            None,
        ),
        TraceLevel::Digest,
        Some(Bug::DropsSegments(3)),
    );
    // Its peers see a corrupted stream and drop it for a protocol fault: honest nodes disconnected.
    let v = invariants::no_honest_fault_disconnects(&net.sim).unwrap_err();
    assert!(v.what.contains(&format!("honest peer n{}", bob.0)), "{v}");
}

/// A tiny scenario: a relay and two clients, one public message each way, a perfect link.
fn small(seed: u64, level: TraceLevel) -> Net {
    let link = LinkModel::stream(
        std::time::Duration::from_millis(10),
        std::time::Duration::from_millis(40),
        0.1,
        Some(500_000),
    );
    public_chat(seed, link, level, None).0
}

#[test]
fn the_same_seed_gives_the_same_digest() {
    let a = small(sim_common::seed(34), TraceLevel::Digest);
    let b = small(sim_common::seed(34), TraceLevel::Digest);
    let c = small(sim_common::seed(34) + 1, TraceLevel::Digest);
    assert_eq!(a.sim.trace_digest(), b.sim.trace_digest());
    assert_eq!(a.sim.summary(), b.sim.summary());
    assert_ne!(a.sim.trace_digest(), c.sim.trace_digest());
}

/// The digest of the small scenario with seed 34, pinned. It hashes the wire bytes of every segment (and
/// the engines' seeded choices behind them), so it changes whenever the bytes any layer writes change,
/// or the order in which the engine draws from its seed: update it deliberately then, never to make an
/// unexplained change pass.
///
/// Re-pinned when the engine started driving `discovery::PeerPool` (issue 11, one peer pool): the pool
/// owns a seed forked from the engine's at construction, and static-peer and backoff jitter are drawn
/// from it instead of the engine's RNG, so the seeds the engine forks for each dial's RLPx handshake
/// (ephemeral keys, nonces) are drawn in a different order.
const PINNED_DIGEST: &str = "7fb3159245aa3546e34affcfc6930f781d238aff26d211908c00f27da1622313";

#[test]
fn the_trace_digest_of_a_small_scenario_is_pinned() {
    let net = small(34, TraceLevel::Digest);
    assert_eq!(net.sim.trace_digest_hex(), PINNED_DIGEST);
}

#[test]
fn the_timeline_is_json_lines_with_a_summary() {
    let net = small(sim_common::seed(35), TraceLevel::Full);
    let mut out = String::new();
    net.sim.write_timeline(&mut out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), net.sim.timeline().len() + 1);
    let mut kinds = std::collections::BTreeSet::new();
    for l in &lines[..lines.len() - 1] {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["t_ms"].as_u64().unwrap() >= sim_common::START_SECS * 1000);
        assert!(v["node"].as_u64().unwrap() < 3);
        assert!(v["bytes"].as_u64().is_some());
        kinds.insert(v["event"].as_str().unwrap().to_string());
    }
    for k in ["segment", "command", "event", "timeout"] {
        assert!(kinds.contains(k), "{kinds:?}");
    }
    let summary: serde_json::Value = serde_json::from_str(lines[lines.len() - 1]).unwrap();
    assert_eq!(
        summary["summary"]["digest"].as_str().unwrap(),
        net.sim.trace_digest_hex()
    );
    assert_eq!(summary["summary"]["nodes"], 3);
}

#[test]
fn a_failing_run_names_the_command_that_replays_it() {
    let net = small(7, TraceLevel::Off);
    let line = net.sim.replay_command();
    assert!(
        line.starts_with("SIM_SEED=7 cargo test -p status-sansio --test sim_invariants -- --exact "),
        "{line}"
    );
    assert!(
        line.ends_with("a_failing_run_names_the_command_that_replays_it"),
        "{line}"
    );
    // A panicking scenario prints it (see the `Drop` of `Sim`).
    let r = std::panic::catch_unwind(|| {
        let _net = small(8, TraceLevel::Off);
        panic!("deliberate");
    });
    assert!(r.is_err());
}
