#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The adaptive retransmission timeout ([`Schedule::ADAPTIVE`], the default): two MVDS nodes over a
//! simulated link with a fixed one-way delay and seeded loss. On a lossless link each message and each
//! ACK crosses once; on a lossy link everything is still delivered; the backoff doubles and stops at
//! its ceiling; and Karn's rule keeps retransmitted records out of the round-trip estimate.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand_core::{RngCore, SeedableRng};
use status_sansio::mvds::{Config, Event, GroupId, Input, Node, Output, PeerId, Schedule};
use status_sansio::{Seed, Timestamp};

const START: u64 = 1_700_000_000_000;

fn at(ms: u64) -> Timestamp {
    Timestamp::from_millis(START + ms)
}

fn pid(n: u8) -> PeerId {
    PeerId::new(vec![n])
}

/// A payload in flight: (arrival ms, sequence number, destination node, encoded payload).
type InFlight = Reverse<(u64, u64, usize, Vec<u8>)>;

/// Two nodes (0 sends to 1) and the payloads in flight.
struct Link {
    nodes: [Node; 2],
    delay_ms: u64,
    /// Loss probability in 1/1000.
    loss: u64,
    rng: rand_chacha::ChaCha20Rng,
    flight: BinaryHeap<InFlight>,
    seq: u64,
    now: u64,
    delivered: usize,
    received: usize,
    failed: usize,
    /// Gaps (ms) between consecutive transmissions of the same message by node 0.
    sends: Vec<u64>,
}

impl Link {
    fn new(config: Config, delay_ms: u64, loss: u64, seed: u64) -> Self {
        let mut a = Node::new(config.clone(), &Seed::from_u64(seed), at(0)).unwrap();
        let b = Node::new(config, &Seed::from_u64(seed + 1), at(0)).unwrap();
        a.handle_input(
            at(0),
            Input::AddPeer {
                group: GroupId([7; 32]),
                peer: pid(1),
            },
        )
        .unwrap();
        Link {
            nodes: [a, b],
            delay_ms,
            loss,
            rng: rand_chacha::ChaCha20Rng::seed_from_u64(seed),
            flight: BinaryHeap::new(),
            seq: 0,
            now: 0,
            delivered: 0,
            received: 0,
            failed: 0,
            sends: vec![],
        }
    }

    fn drain(&mut self, i: usize) {
        while let Some(o) = self.nodes[i].poll_output() {
            match o {
                Output::Transmit { payload, .. } => {
                    if i == 0 {
                        self.sends.extend(payload.messages.iter().map(|_| self.now));
                    }
                    if self.rng.next_u64() % 1000 < self.loss {
                        continue;
                    }
                    self.seq += 1;
                    self.flight.push(Reverse((
                        self.now + self.delay_ms,
                        self.seq,
                        1 - i,
                        payload.encode_to_vec(),
                    )));
                }
                Output::Event(Event::Delivered { .. }) => self.delivered += 1,
                Output::Event(Event::MessageReceived { .. }) => self.received += 1,
                Output::Event(Event::DeliveryFailed { .. }) => self.failed += 1,
                Output::Event(_) => {}
                _ => {}
            }
        }
    }

    /// Run until `until` ms, until node 0 has seen `delivered` deliveries, or until nothing is left.
    fn run_to(&mut self, until: u64, delivered: usize) {
        while self.delivered < delivered {
            let timers = (0..2).filter_map(|i| self.nodes[i].poll_timeout());
            let next_timer = timers.map(|t| t.as_millis() - START).min();
            let next_arrival = self.flight.peek().map(|Reverse((t, ..))| *t);
            let Some(next) = [next_timer, next_arrival].into_iter().flatten().min() else {
                return;
            };
            if next > until {
                return;
            }
            self.now = self.now.max(next);
            while let Some(Reverse((t, ..))) = self.flight.peek() {
                if *t > self.now {
                    break;
                }
                let Reverse((_, _, to, bytes)) = self.flight.pop().unwrap();
                let received = Input::Received {
                    from: pid(1 - to as u8),
                    bytes: bytes.into(),
                };
                self.nodes[to].handle_input(at(self.now), received).unwrap();
                self.drain(to);
            }
            for i in 0..2 {
                self.nodes[i].handle_timeout(at(self.now));
                self.drain(i);
            }
        }
    }

    /// Run until `until` ms or until nothing is left to do.
    fn run(&mut self, until: u64) {
        self.run_to(until, usize::MAX);
    }

    fn send(&mut self, n: u64) {
        let body = n.to_be_bytes().to_vec().into();
        let send = Input::Send {
            group: GroupId([7; 32]),
            body,
        };
        self.nodes[0].handle_input(at(self.now), send).unwrap();
        self.drain(0);
    }
}

/// `n` messages, each sent once the previous one is delivered (a conversation), then `n` more at once.
fn conversation(link: &mut Link, n: u64) {
    for i in 0..n {
        link.send(i);
        let target = link.delivered + 1;
        link.run_to(link.now + 3_600_000, target);
        assert_eq!(link.delivered, target, "message {i} not delivered");
    }
    for i in 0..n {
        link.send(1000 + i);
    }
    link.run(link.now + 3_600_000);
}

#[test]
fn a_lossless_link_carries_each_message_and_each_ack_once() {
    // 450 ms each way: a round trip of 900 ms plus up to one epoch of ACK delay, as through Waku's relay
    // cycle; and a slow link whose round trip (3.3 s and more) exceeds the initial timeout (3 s).
    for delay in [450, 1650] {
        let mut link = Link::new(Config::default(), delay, 0, 1);
        conversation(&mut link, 40);
        let (a, b) = (link.nodes[0].stats(), link.nodes[1].stats());
        assert_eq!(link.delivered, 80, "delay {delay}");
        assert_eq!(link.received, 80);
        // Each message crossed once. On the slow link the very first one may be resent once: its round
        // trip was not known yet (Karn's rule then keeps the timeout backed off until a measurement).
        let extra = if delay > 1500 { 1 } else { 0 };
        assert!(
            b.duplicates_received <= extra,
            "delay {delay}: a message crossed twice"
        );
        assert!(
            a.messages_sent <= 80 + extra,
            "delay {delay}: {} transmissions",
            a.messages_sent
        );
        // b's payloads are ACKs only: one per message on the conversation, fewer in the burst (batched).
        assert!(
            b.payloads_sent <= 40 + 40 + extra,
            "delay {delay}: {} ACK payloads",
            b.payloads_sent
        );
        let srtt = link.nodes[0].rtt().srtt_epochs().unwrap();
        let expected = (2 * delay).div_ceil(300);
        assert!(
            (expected..=expected + 2).contains(&srtt),
            "delay {delay}: srtt {srtt} epochs"
        );
        assert_eq!(link.nodes[0].state_count(), 0);
    }
}

#[test]
fn a_lossy_link_still_delivers_everything_with_bounded_amplification() {
    for seed in 1..=4 {
        // 20% loss each way.
        let mut link = Link::new(Config::default(), 450, 200, seed);
        conversation(&mut link, 30);
        assert_eq!(link.received, 60, "seed {seed}");
        assert_eq!(link.delivered, 60, "seed {seed}");
        assert_eq!(link.failed, 0);
        // About 1/(0.8·0.8) ≈ 1.6 transmissions per message are needed; a timeout below the round trip
        // would add spurious ones.
        let sent = link.nodes[0].stats().messages_sent;
        assert!((60..=120).contains(&sent), "seed {seed}: {sent} transmissions");
        assert!(link.nodes[0].rtt().samples() > 0);
    }
}

#[test]
fn backoff_doubles_up_to_its_ceiling() {
    let config = Config {
        schedule: Schedule::Adaptive {
            initial: 10,
            min: 4,
            max: 64,
        },
        max_send_count: Some(8),
        ..Config::default()
    };
    // Everything is lost.
    let mut link = Link::new(config, 450, 1000, 9);
    link.send(1);
    link.run(1_000_000);
    let gaps: Vec<u64> = link.sends.windows(2).map(|w| (w[1] - w[0]) / 300).collect();
    assert_eq!(gaps, [10, 20, 40, 64, 64, 64, 64]);
    assert_eq!(link.failed, 1);
    assert_eq!(link.nodes[0].rtt().samples(), 0);
    // New records start at most 3 doublings backed off.
    assert_eq!(link.nodes[0].rtt().backoff(), 3);

    // The default doubles from 10 epochs up to its 1200-epoch ceiling.
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let gaps: Vec<u64> = (1..=40).map(|c| Schedule::ADAPTIVE.gap(c, &mut rng)).collect();
    assert_eq!(gaps[0], 10);
    assert!(gaps.windows(2).all(|w| w[1] == (w[0] * 2).min(1200)));
    assert_eq!(*gaps.last().unwrap(), 1200);
}

#[test]
fn karns_rule_retransmitted_records_are_not_measured_and_backoff_carries_over() {
    let config = Config {
        schedule: Schedule::Adaptive {
            initial: 4,
            min: 4,
            max: 1000,
        },
        ..Config::default()
    };
    // A 1.5 s each-way link: the round trip (11 epochs) exceeds the timeout (4 epochs) until the backoff
    // carried from record to record has grown past it.
    let mut link = Link::new(config, 1500, 0, 3);
    let mut backoff = 0;
    for k in 1..=4u64 {
        let before = link.nodes[0].stats().messages_sent;
        link.send(k);
        link.run(k * 120_000);
        assert_eq!(link.delivered, k as usize);
        let rtt = *link.nodes[0].rtt();
        if link.nodes[0].stats().messages_sent == before + 1 {
            // Sent once: its ACK is the first measurement, and the backoff is over.
            assert_eq!(rtt.samples(), 1, "message {k}");
            assert_eq!(rtt.backoff(), 0);
            assert!(rtt.srtt_epochs().unwrap() >= 10);
            assert!(k >= 2, "the first message cannot cross once at 4 epochs");
            return;
        }
        // Retransmitted: its ACK measured nothing (Karn), and the backoff grew for the next record.
        assert_eq!(rtt.samples(), 0, "message {k}");
        assert!(rtt.backoff() > backoff, "message {k}");
        backoff = rtt.backoff();
    }
    panic!("the backoff never outgrew the round trip");
}
