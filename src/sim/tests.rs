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
