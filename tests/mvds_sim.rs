#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! MVDS under the deterministic simulator: lossy, duplicating, reordering links, members offline for a
//! long stretch, reproducibility, and a deliberately broken node that the audit must catch.
//!
//! Set `SIM_SEED=<n>` to replay a seed a failing run printed.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use rand_core::RngCore;
use status_sansio::mvds::{Config, Event, GroupId, Input, MessageId, Mode, Payload, Schedule};
use status_sansio::sim::mvds::{node_id, peer_id, MvdsEngine};
use status_sansio::sim::{Fault, LinkModel, Machine, NodeId, Sim, SimOutput, TraceLevel};
use status_sansio::{Seed, Timestamp};

const START: u64 = 1_700_000_000_000;

fn at(ms: u64) -> Timestamp {
    Timestamp::from_millis(START + ms)
}

fn seed_or(default: u64) -> u64 {
    std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A node that behaves, or one that deliberately never sends ACKs.
enum TestEngine {
    Good(MvdsEngine),
    DropsAcks(MvdsEngine),
}

impl TestEngine {
    fn inner(&self) -> &MvdsEngine {
        match self {
            TestEngine::Good(e) | TestEngine::DropsAcks(e) => e,
        }
    }
}

impl Machine for TestEngine {
    type Command = Input;
    type Event = Event;
    fn handle_command(&mut self, now: Timestamp, c: Input) {
        match self {
            TestEngine::Good(e) | TestEngine::DropsAcks(e) => e.handle_command(now, c),
        }
    }
    fn handle_receive(&mut self, now: Timestamp, from: NodeId, bytes: Vec<u8>) {
        match self {
            TestEngine::Good(e) | TestEngine::DropsAcks(e) => e.handle_receive(now, from, bytes),
        }
    }
    fn handle_timeout(&mut self, now: Timestamp) {
        match self {
            TestEngine::Good(e) | TestEngine::DropsAcks(e) => e.handle_timeout(now),
        }
    }
    fn poll_output(&mut self) -> Option<SimOutput<Event>> {
        match self {
            TestEngine::Good(e) => e.poll_output(),
            TestEngine::DropsAcks(e) => loop {
                match e.poll_output()? {
                    SimOutput::Transmit { to, bytes } => {
                        let mut p = Payload::decode(&bytes).unwrap();
                        p.acks.clear();
                        if p.is_valid() {
                            return Some(SimOutput::Transmit {
                                to,
                                bytes: p.encode_to_vec(),
                            });
                        }
                    }
                    ev => return Some(ev),
                }
            },
        }
    }
    fn poll_timeout(&self) -> Option<Timestamp> {
        self.inner().poll_timeout()
    }
}

/// The pairwise group of two members, as Status keys one MVDS group per member pair.
fn pair_group(a: usize, b: usize) -> GroupId {
    let mut g = [0u8; 32];
    g[0] = a.min(b) as u8;
    g[1] = a.max(b) as u8;
    g[31] = 0xee;
    GroupId(g)
}

struct Scenario {
    seed: u64,
    members: usize,
    messages_per_member: usize,
    link: LinkModel,
    faults: Vec<Fault>,
    drops_acks: Option<usize>,
    config: Config,
    level: TraceLevel,
    /// How long the run may take in virtual time.
    limit: Duration,
}

impl Scenario {
    fn new(seed: u64, members: usize, messages_per_member: usize) -> Self {
        Scenario {
            seed,
            members,
            messages_per_member,
            link: LinkModel {
                duplicate: 0.2,
                reorder: 0.3,
                ..LinkModel::lossy(0.3)
            },
            faults: vec![],
            drops_acks: None,
            config: Config::default(),
            level: TraceLevel::Digest,
            limit: Duration::from_secs(24 * 3600),
        }
    }
}

/// (sender, receiver, body) of every application message expected.
type Expected = Vec<(usize, usize, Bytes)>;

/// Build and run a scenario: every member sends `messages_per_member` group messages, each synced to
/// every other member over their pairwise MVDS group, at random times in the first 30 s.
fn run(s: &Scenario) -> (Sim<TestEngine>, Expected, bool) {
    let mut sim = Sim::new(s.seed, at(0), s.link);
    sim.set_trace_level(s.level);
    for i in 0..s.members {
        let config = s.config.clone();
        let broken = s.drops_acks == Some(i);
        sim.add_node(move |_, seed: Seed, now| {
            let e = MvdsEngine::new(config, &seed, now).unwrap();
            if broken {
                TestEngine::DropsAcks(e)
            } else {
                TestEngine::Good(e)
            }
        });
    }
    for f in &s.faults {
        sim.add_fault(f.clone());
    }
    let mut rng = Seed::from_u64(s.seed ^ 0x5eed).rng();
    let mut expected = vec![];
    for i in 0..s.members {
        for j in (0..s.members).filter(|j| *j != i) {
            let input = Input::AddPeer {
                group: pair_group(i, j),
                peer: peer_id(NodeId(j)),
            };
            sim.schedule(at(0), NodeId(i), input);
        }
        for k in 0..s.messages_per_member {
            let when = at(rng.next_u64() % 30_000);
            let body = Bytes::from(format!("message {k} from member {i}"));
            for j in (0..s.members).filter(|j| *j != i) {
                let input = Input::Send {
                    group: pair_group(i, j),
                    body: body.clone(),
                };
                sim.schedule(when, NodeId(i), input);
                expected.push((i, j, body.clone()));
            }
        }
    }
    let idle = sim.run_until_idle(at(0) + s.limit);
    (sim, expected, idle)
}

/// Every expected message reached its receiver's application exactly once, every one was acknowledged
/// (a single Delivered at the sender), nothing failed and no sync record is left.
fn audit(sim: &Sim<TestEngine>, expected: &Expected) -> Result<(), String> {
    let mut received: BTreeMap<(usize, usize, Bytes), Vec<MessageId>> = BTreeMap::new();
    let mut delivered: BTreeMap<(usize, usize, MessageId), usize> = BTreeMap::new();
    for (_, node, e) in sim.events() {
        match e {
            Event::MessageReceived {
                from,
                message_id,
                message,
            } => {
                let from = node_id(from).ok_or("unknown sender")?.0;
                received
                    .entry((from, node.0, message.body.clone()))
                    .or_default()
                    .push(*message_id);
            }
            Event::Delivered { peer, message_id } => {
                let to = node_id(peer).ok_or("unknown peer")?.0;
                *delivered.entry((node.0, to, *message_id)).or_default() += 1;
            }
            Event::DeliveryFailed { peer, message_id } => {
                return Err(format!(
                    "delivery of {message_id:?} from n{} to {peer:?} failed",
                    node.0
                ));
            }
            Event::PayloadIgnored { from, reason } => {
                return Err(format!("n{} ignored a payload from {from:?}: {reason}", node.0));
            }
            other => return Err(format!("n{} unexpected event {other:?}", node.0)),
        }
    }
    if received.len() != expected.len() {
        return Err(format!(
            "{} distinct messages received, {} expected",
            received.len(),
            expected.len()
        ));
    }
    for (i, j, body) in expected {
        let ids = received
            .get(&(*i, *j, body.clone()))
            .ok_or_else(|| format!("n{j} never received {body:?} from n{i}"))?;
        if ids.len() != 1 {
            return Err(format!("n{j} received {body:?} from n{i} {} times", ids.len()));
        }
        match delivered.get(&(*i, *j, ids[0])) {
            Some(1) => {}
            n => return Err(format!("n{i} saw {n:?} Delivered for {body:?} to n{j}")),
        }
    }
    if delivered.len() != expected.len() {
        return Err(format!(
            "{} Delivered events, {} expected",
            delivered.len(),
            expected.len()
        ));
    }
    for n in 0..sim.len() {
        let e = sim.node(NodeId(n)).unwrap().inner();
        if e.node.state_count() != 0 || e.refused != 0 {
            return Err(format!(
                "n{n}: {} records left, {} refused",
                e.node.state_count(),
                e.refused
            ));
        }
    }
    Ok(())
}

#[test]
fn two_peers_over_a_lossy_duplicating_reordering_link() {
    for seed in seed_or(1)..seed_or(1) + 5 {
        two_peers(seed);
    }
}

fn two_peers(seed: u64) {
    let s = Scenario::new(seed, 2, 40);
    let (sim, expected, idle) = run(&s);
    assert!(idle, "did not settle (seed {})", s.seed);
    assert_eq!(expected.len(), 80);
    audit(&sim, &expected).unwrap();
    let st = sim.stats();
    // The link really was hostile.
    assert!(st.lost > 10 && st.duplicated > 5, "{st:?}");
    // Retransmissions happened, and the duplicates they produced were re-ACKed.
    let dups: u64 = (0..2)
        .map(|n| {
            sim.node(NodeId(n))
                .unwrap()
                .inner()
                .node
                .stats()
                .duplicates_received
        })
        .sum();
    assert!(dups > 0);
}

#[test]
fn ten_member_group_with_a_member_offline_for_an_hour() {
    for seed in [seed_or(2), seed_or(2) + 100] {
        ten_members(seed);
    }
}

fn ten_members(seed: u64) {
    let mut s = Scenario::new(seed, 10, 3);
    s.faults.push(Fault::Offline {
        node: NodeId(3),
        from: at(5_000),
        until: at(60 * 60_000),
    });
    let (sim, expected, idle) = run(&s);
    assert!(idle, "did not settle (seed {})", s.seed);
    assert_eq!(expected.len(), 10 * 3 * 9);
    audit(&sim, &expected).unwrap();
    let back = at(60 * 60_000);
    let received_by_3: Vec<Timestamp> = sim
        .events()
        .iter()
        .filter(|(_, n, e)| n.0 == 3 && matches!(e, Event::MessageReceived { .. }))
        .map(|(t, _, _)| *t)
        .collect();
    assert_eq!(received_by_3.len(), 9 * 3);
    // Nothing reached member 3 while it was offline; it got the rest after it came back ...
    assert!(received_by_3.iter().all(|t| *t < at(5_000) || *t >= back));
    let late = received_by_3.iter().filter(|t| **t >= back).count();
    assert!(late >= 9, "{late}");
    // ... within a few maximal backoff gaps (1200 epochs = 6 min at the default tick; a payload is
    // lost with probability 0.3, so seven losses in a row are needed to exceed this).
    let last = received_by_3.iter().max().copied().unwrap();
    assert!(last < back + Duration::from_secs(45 * 60), "{:?}", last - back);
    // Member 3's own messages sent while it was offline went out after it came back.
    let sent_late_by_3 = sim
        .events()
        .iter()
        .filter(|(t, n, e)| {
            n.0 != 3
                && *t >= back
                && matches!(e, Event::MessageReceived { from, .. } if node_id(from) == Some(NodeId(3)))
        })
        .count();
    assert!(sent_late_by_3 > 0);
    assert!(sim.stats().cut > 0);
}

#[test]
fn interactive_mode_and_the_reference_schedules_converge_too() {
    let variants = [
        (Mode::Interactive, Schedule::default(), Some(32)),
        (Mode::Batch, Schedule::STATUS_2020, None),
        (Mode::Batch, Schedule::STATUS_HEAD, Some(16)),
    ];
    for (mode, schedule, max_send_count) in variants {
        let mut s = Scenario::new(seed_or(21), 3, 10);
        s.config = Config {
            mode,
            schedule,
            max_send_count,
            ..Config::default()
        };
        // STATUS-HEAD's gaps double from 27 s: a message unlucky eight times waits hours.
        s.limit = Duration::from_secs(60 * 24 * 3600);
        let (sim, expected, idle) = run(&s);
        assert!(idle, "{mode:?} {schedule:?}");
        audit(&sim, &expected).unwrap_or_else(|e| panic!("{mode:?} {schedule:?}: {e}"));
    }
}

#[test]
fn the_same_seed_gives_the_identical_trace() {
    let mk = |seed| {
        let mut s = Scenario::new(seed, 3, 5);
        s.level = TraceLevel::Full;
        s.faults.push(Fault::Partition {
            side: vec![NodeId(0)],
            from: at(2_000),
            until: at(20_000),
        });
        let (sim, expected, idle) = run(&s);
        assert!(idle);
        audit(&sim, &expected).unwrap();
        (sim.trace_digest(), sim.trace_lines().to_vec())
    };
    let (d1, l1) = mk(seed_or(7));
    let (d2, l2) = mk(seed_or(7));
    assert_eq!(d1, d2);
    assert_eq!(l1, l2);
    assert!(l1.len() > 100);
    let (d3, _) = mk(seed_or(7) + 1);
    assert_ne!(d1, d3);
}

/// The digest of one small scenario, pinned: the trace is a canonical encoding (no `Debug` output),
/// so any build on any platform must reproduce it. If a deliberate behaviour change alters it, update
/// the constant after checking the new trace.
#[test]
fn the_trace_digest_of_a_small_scenario_is_pinned() {
    let mut s = Scenario::new(4242, 2, 3);
    // The digest was pinned with the exponential schedule that was the default then (the default is now
    // adaptive): keep it, so the pinned trace stays the same.
    s.config.schedule = Schedule::Exponential {
        initial: 2,
        max: 1200,
        jitter: 2,
    };
    s.link = LinkModel {
        duplicate: 0.2,
        reorder: 0.3,
        ..LinkModel::lossy(0.3)
    };
    let (sim, expected, idle) = run(&s);
    assert!(idle);
    audit(&sim, &expected).unwrap();
    let hex: String = sim.trace_digest().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, PINNED_DIGEST);
}

const PINNED_DIGEST: &str = "76e03333a92b7e4b2f53fc4e00087c52e13b2c943c0f4e77398739df43c4af88";

/// One MVDS group of `members` members (not pairwise), every member sending `per_member` messages into
/// it over lossy links: messages spread by direct sends and by sharing (OFFER → REQUEST → MESSAGE).
fn shared_group(seed: u64, members: usize, per_member: usize, mode: Mode) {
    let g = GroupId([0x44; 32]);
    let link = LinkModel {
        duplicate: 0.1,
        reorder: 0.2,
        ..LinkModel::lossy(0.25)
    };
    let config = Config {
        mode,
        ..Config::default()
    };
    let mut sim: Sim<MvdsEngine> = Sim::new(seed, at(0), link);
    for _ in 0..members {
        let config = config.clone();
        sim.add_node(move |_, seed, now| MvdsEngine::new(config, &seed, now).unwrap());
    }
    for i in 0..members {
        for j in (0..members).filter(|j| *j != i) {
            let peer = peer_id(NodeId(j));
            sim.schedule(at(0), NodeId(i), Input::AddPeer { group: g, peer });
        }
    }
    let mut rng = Seed::from_u64(seed ^ 0x5a5a).rng();
    for i in 0..members {
        for k in 0..per_member {
            let body = Bytes::from(format!("shared {k} from {i}"));
            let when = at(100 + rng.next_u64() % 20_000);
            sim.schedule(when, NodeId(i), Input::Send { group: g, body });
        }
    }
    assert!(sim.run_until_idle(at(24 * 3600 * 1000)), "{mode:?} seed {seed}");
    // Every member received every other member's messages exactly once.
    let mut got: BTreeMap<(usize, Bytes), usize> = BTreeMap::new();
    let mut delivered_to_author: BTreeMap<(usize, MessageId), usize> = BTreeMap::new();
    let mut authors: BTreeMap<MessageId, usize> = BTreeMap::new();
    for (_, n, e) in sim.events() {
        if let Event::MessageReceived {
            message_id, message, ..
        } = e
        {
            *got.entry((n.0, message.body.clone())).or_default() += 1;
            let author: usize = std::str::from_utf8(&message.body)
                .unwrap()
                .rsplit(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            authors.insert(*message_id, author);
        }
    }
    assert_eq!(got.len(), members * (members - 1) * per_member, "{mode:?}");
    assert!(got.values().all(|n| *n == 1), "{mode:?}");
    for (_, n, e) in sim.events() {
        match e {
            Event::Delivered { peer, message_id } if authors.get(message_id) == Some(&n.0) => {
                let to = node_id(peer).unwrap().0;
                *delivered_to_author.entry((to, *message_id)).or_default() += 1;
            }
            Event::DeliveryFailed { .. } | Event::PayloadIgnored { .. } => {
                panic!("{mode:?}: unexpected {e:?}")
            }
            _ => {}
        }
    }
    // Each author learnt exactly once that each other member holds each of its messages.
    assert_eq!(
        delivered_to_author.len(),
        members * (members - 1) * per_member,
        "{mode:?}"
    );
    assert!(delivered_to_author.values().all(|n| *n == 1), "{mode:?}");
    for n in 0..members {
        let e = sim.node(NodeId(n)).unwrap();
        assert_eq!(e.node.state_count(), 0, "{mode:?} n{n}");
        assert_eq!(e.refused, 0);
    }
    assert!(sim.stats().lost > 0);
}

#[test]
fn a_shared_group_of_four_over_lossy_links_in_batch_mode() {
    shared_group(seed_or(31), 4, 5, Mode::Batch);
}

#[test]
fn a_shared_group_of_four_over_lossy_links_in_interactive_mode() {
    shared_group(seed_or(32), 4, 5, Mode::Interactive);
}

#[test]
fn a_node_that_drops_acks_is_caught() {
    let mut s = Scenario::new(seed_or(3), 2, 5);
    s.drops_acks = Some(1);
    s.config.max_send_count = Some(6);
    let (sim, expected, idle) = run(&s);
    assert!(idle);
    let err = audit(&sim, &expected).unwrap_err();
    assert!(err.contains("failed"), "{err}");
    // Node 1 itself still received everything exactly once: only the ACKs are missing.
    let got = sim
        .events()
        .iter()
        .filter(|(_, n, e)| n.0 == 1 && matches!(e, Event::MessageReceived { .. }))
        .count();
    assert_eq!(got, 5);
    // The same scenario with a working node (and the default give-up) passes the audit.
    s.drops_acks = None;
    s.config = Config::default();
    let (sim, expected, _) = run(&s);
    audit(&sim, &expected).unwrap();
}

#[test]
fn sharing_in_a_three_member_group_routes_around_a_cut_link() {
    // One MVDS group {0, 1, 2}; the link 0–2 is down for the first minute. Member 2 gets 0's message
    // through 1 (OFFER → REQUEST → MESSAGE), and 0's own MESSAGE record to 2 completes after the heal.
    let g = GroupId([0x33; 32]);
    let mut sim: Sim<MvdsEngine> = Sim::new(seed_or(11), at(0), LinkModel::default());
    sim.set_trace_level(TraceLevel::Full);
    for _ in 0..3 {
        sim.add_node(|_, seed, now| MvdsEngine::new(Config::default(), &seed, now).unwrap());
    }
    sim.add_fault(Fault::LinkDown {
        a: NodeId(0),
        b: NodeId(2),
        from: at(0),
        until: at(60_000),
    });
    for i in 0..3 {
        for j in (0..3).filter(|j| *j != i) {
            let peer = peer_id(NodeId(j));
            sim.schedule(at(0), NodeId(i), Input::AddPeer { group: g, peer });
        }
    }
    let body = Bytes::from_static(b"shared");
    sim.schedule(at(100), NodeId(0), Input::Send { group: g, body });
    assert!(sim.run_until_idle(at(3600 * 1000)));
    let got: Vec<_> = sim
        .events()
        .iter()
        .filter_map(|(t, n, e)| match e {
            Event::MessageReceived { from, .. } => Some((*t, n.0, node_id(from).unwrap().0)),
            _ => None,
        })
        .collect();
    assert_eq!(got.len(), 2, "{got:?}");
    let (t2, _, via) = got.iter().find(|(_, n, _)| *n == 2).unwrap();
    assert_eq!(*via, 1);
    assert!(*t2 < at(60_000));
    let delivered_by_0 = sim
        .events()
        .iter()
        .filter(|(_, n, e)| n.0 == 0 && matches!(e, Event::Delivered { .. }))
        .count();
    assert_eq!(delivered_by_0, 2);
    assert!(sim
        .events()
        .iter()
        .all(|(_, _, e)| !matches!(e, Event::DeliveryFailed { .. })));
    for n in 0..3 {
        assert_eq!(sim.node(NodeId(n)).unwrap().node.state_count(), 0, "n{n}");
    }
}

#[test]
fn ordered_links_never_reorder() {
    // The stream mode later layers (RLPx) rely on: with reordering and jitter, arrival order is still
    // sending order.
    struct Counter {
        to: Option<NodeId>,
        sent: u32,
        pending: bool,
        got: Vec<u32>,
        next: Option<Timestamp>,
    }
    impl Machine for Counter {
        type Command = ();
        type Event = ();
        fn handle_command(&mut self, _: Timestamp, _: ()) {}
        fn handle_receive(&mut self, _: Timestamp, _: NodeId, b: Vec<u8>) {
            self.got.push(u32::from_be_bytes(b.try_into().unwrap()));
        }
        fn handle_timeout(&mut self, now: Timestamp) {
            if self.next.is_some_and(|t| t <= now) {
                self.pending = true;
                self.next = (self.sent + 1 < 200).then(|| now + Duration::from_millis(5));
            }
        }
        fn poll_output(&mut self) -> Option<SimOutput<()>> {
            if !std::mem::take(&mut self.pending) {
                return None;
            }
            self.sent += 1;
            Some(SimOutput::Transmit {
                to: self.to?,
                bytes: self.sent.to_be_bytes().to_vec(),
            })
        }
        fn poll_timeout(&self) -> Option<Timestamp> {
            self.next
        }
    }
    let link = LinkModel {
        ordered: true,
        latency_max: Duration::from_millis(300),
        reorder: 0.5,
        ..LinkModel::default()
    };
    let mut sim = Sim::new(seed_or(5), at(0), link);
    let a = sim.add_node(|_, _, now| Counter {
        to: Some(NodeId(1)),
        sent: 0,
        pending: false,
        got: vec![],
        next: Some(now),
    });
    let b = sim.add_node(|_, _, _| Counter {
        to: None,
        sent: 0,
        pending: false,
        got: vec![],
        next: None,
    });
    assert!(sim.run_until_idle(at(60_000)));
    let got = &sim.node(b).unwrap().got;
    assert_eq!(sim.node(a).unwrap().sent, 200);
    assert_eq!(got.len(), 200);
    assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
}
