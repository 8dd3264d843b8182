//! Unit tests of the simulator core.

use super::*;

/// Sends `count` datagrams to node 1 at start-up; counts what it receives.
struct Blaster {
    to_send: u32,
    got: u32,
}

impl Machine for Blaster {
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

/// Sends `n` stream segments of `size` bytes to node 1 per command; records when (on its own clock)
/// it receives, and what comes back unreachable.
#[derive(Default)]
struct Streamer {
    queue: Vec<Vec<u8>>,
    got: Vec<(Timestamp, Vec<u8>)>,
    unreachable: usize,
    timeouts: Vec<Timestamp>,
    deadline: Option<Timestamp>,
}

impl Machine for Streamer {
    /// `n << 16 | size`.
    type Command = u32;
    type Event = ();
    fn handle_command(&mut self, _: Timestamp, c: u32) {
        let (n, size) = (c >> 16, c & 0xffff);
        for i in 0..n {
            self.queue.push(vec![i as u8; size as usize]);
        }
    }
    fn handle_receive(&mut self, now: Timestamp, _: NodeId, bytes: Vec<u8>) {
        self.got.push((now, bytes));
    }
    fn handle_timeout(&mut self, now: Timestamp) {
        self.timeouts.push(now);
        self.deadline = None;
    }
    fn poll_output(&mut self) -> Option<SimOutput<()>> {
        if self.queue.is_empty() {
            return None;
        }
        let bytes = self.queue.remove(0);
        Some(SimOutput::Stream { to: NodeId(1), bytes })
    }
    fn poll_timeout(&self) -> Option<Timestamp> {
        self.deadline
    }
    fn handle_unreachable(&mut self, _: Timestamp, _: NodeId, _: Vec<u8>) {
        self.unreachable += 1;
    }
}

fn streamers(link: LinkModel) -> Sim<Streamer> {
    let mut sim = Sim::new(3, Timestamp::from_secs(100), link);
    sim.add_node(|_, _, _| Streamer::default());
    sim.add_node(|_, _, _| Streamer::default());
    sim
}

#[test]
fn streams_arrive_in_order_with_bandwidth_and_retransmission_delays() {
    // 10 kB/s: ten 1,000-byte segments take a second to serialise.
    let mut link = LinkModel::stream(
        Duration::from_millis(10),
        Duration::from_millis(50),
        0.3,
        Some(10_000),
    );
    link.rto = Duration::from_millis(100);
    let mut sim = streamers(link);
    sim.schedule(Timestamp::from_secs(100), NodeId(0), 10 << 16 | 1000);
    assert!(sim.run_until_idle(Timestamp::from_secs(1000)));
    let got = &sim.node(NodeId(1)).map(|n| n.got.clone()).unwrap_or_default();
    let order: Vec<u8> = got.iter().map(|(_, b)| b[0]).collect();
    assert_eq!(order, (0..10).collect::<Vec<u8>>(), "in order, none lost");
    let last = got.last().map(|(t, _)| *t).unwrap_or(Timestamp::ZERO);
    assert!(last >= Timestamp::from_millis(101_000), "{last:?}");
    let st = sim.stats();
    assert_eq!((st.segments, st.lost, st.duplicated), (10, 0, 0));
    assert!(st.retransmits > 0, "{st:?}");
}

#[test]
fn cut_segments_come_back_to_the_sender() {
    let mut sim = streamers(LinkModel::default());
    sim.add_fault(Fault::Partition {
        side: vec![NodeId(1)],
        from: Timestamp::from_secs(100),
        until: Timestamp::from_secs(200),
    });
    sim.schedule(Timestamp::from_secs(101), NodeId(0), 3 << 16 | 10);
    sim.schedule(Timestamp::from_secs(300), NodeId(0), 2 << 16 | 10);
    assert!(sim.run_until_idle(Timestamp::from_secs(1000)));
    assert_eq!(sim.node(NodeId(0)).map(|n| n.unreachable), Some(3));
    assert_eq!(sim.node(NodeId(1)).map(|n| n.got.len()), Some(2));
    assert_eq!(sim.stats().unreachable, 3);
}

#[test]
fn a_skewed_clock_sees_shifted_times_and_deadlines() {
    let mut sim = streamers(LinkModel::perfect(Duration::from_millis(50)));
    if let Some(n) = sim.nodes.get_mut(1) {
        // A deadline on its own clock, which runs 2 s behind.
        n.deadline = Some(Timestamp::from_secs(103));
    }
    sim.set_clock_skew(NodeId(1), -2_000);
    sim.schedule(Timestamp::from_secs(100), NodeId(0), 1 << 16 | 1);
    assert!(sim.run_until_idle(Timestamp::from_secs(1000)));
    let n = sim.node(NodeId(1)).map(|n| (n.got.clone(), n.timeouts.clone()));
    let (got, timeouts) = n.unwrap_or_default();
    // Sent at 100 s, arrives at 100.05 s virtual, 98.05 s on its clock.
    assert_eq!(got.first().map(|(t, _)| *t), Some(Timestamp::from_millis(98_050)));
    // Its 103 s deadline fires at 105 s virtual, given as 103 s.
    assert_eq!(timeouts, vec![Timestamp::from_secs(103)]);
    assert_eq!(sim.now(), Timestamp::from_secs(105));
}
