//! A test network of Waku nodes over real RLPx `Connection`s joined by in-memory byte pipes, on a virtual
//! clock. Each link is one RLPx connection (initiator on the lower node index); bytes are delivered after a
//! fixed latency. Everything is deterministic.
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use status_sansio::crypto::SecretKey;
use status_sansio::rlpx::{self, Connection, Protocol};
use status_sansio::waku::{ConnId, Dialect, Filter, SubscriptionId};
use status_sansio::waku::{Event, Input, Output, WakuConfig, WakuNode};
use status_sansio::{Seed, Timestamp};

/// Which capabilities a node offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caps {
    Waku,
    Whisper,
    Both,
}

pub struct Host {
    pub waku: WakuNode,
    pub key: SecretKey,
    pub rlpx: Arc<rlpx::Config>,
    /// Connections by peer id (the index of the node at the other end).
    pub conns: BTreeMap<ConnId, Connection>,
    pub dialects: BTreeMap<ConnId, Dialect>,
    pub events: Vec<Event>,
    /// Packets this host sent, by (peer, code): for asserting what went on the wire.
    pub sent: Vec<(ConnId, u64, usize)>,
}

struct InFlight {
    at: Timestamp,
    from: usize,
    to: usize,
    bytes: Vec<u8>,
}

pub struct Net {
    pub now: Timestamp,
    pub hosts: Vec<Host>,
    latency: Duration,
    flight: VecDeque<InFlight>,
    /// Links that drop everything (from, to).
    pub cut: Vec<(usize, usize)>,
}

fn protocols(caps: Caps) -> Vec<Protocol> {
    let waku = Protocol::new("waku", 1, 128).unwrap();
    let shh = Protocol::new("shh", 6, 128).unwrap();
    match caps {
        Caps::Waku => vec![waku],
        Caps::Whisper => vec![shh],
        Caps::Both => vec![waku, shh],
    }
}

impl Net {
    pub fn new(configs: Vec<(WakuConfig, Caps)>) -> Net {
        let now = Timestamp::from_secs(1_700_000_000);
        let hosts = configs
            .into_iter()
            .enumerate()
            .map(|(i, (cfg, caps))| {
                let key = SecretKey::random(&mut Seed::from_u64(100 + i as u64).rng());
                Host {
                    waku: WakuNode::new(cfg, &Seed::from_u64(200 + i as u64)).unwrap(),
                    rlpx: Arc::new(rlpx::Config::new(key.clone(), protocols(caps))),
                    key,
                    conns: BTreeMap::new(),
                    dialects: BTreeMap::new(),
                    events: vec![],
                    sent: vec![],
                }
            })
            .collect();
        Net {
            now,
            hosts,
            latency: Duration::from_millis(20),
            flight: VecDeque::new(),
            cut: vec![],
        }
    }

    /// Open an RLPx connection from `a` to `b`.
    pub fn connect(&mut self, a: usize, b: usize) {
        let seed = (a * 1000 + b) as u64;
        let b_id = self.hosts[b].rlpx.public_key();
        let ca =
            Connection::initiator(self.hosts[a].rlpx.clone(), b_id, &Seed::from_u64(seed), self.now).unwrap();
        let cb =
            Connection::recipient(self.hosts[b].rlpx.clone(), &Seed::from_u64(seed + 1), self.now).unwrap();
        self.hosts[a].conns.insert(ConnId(b as u64), ca);
        self.hosts[b].conns.insert(ConnId(a as u64), cb);
        self.settle();
    }

    /// Subscribe `filter` on host `i` under a fresh id.
    pub fn subscribe(&mut self, i: usize, filter: Filter) -> SubscriptionId {
        let waku = &mut self.hosts[i].waku;
        let id = waku.unused_subscription_id();
        waku.handle_input(self.now, Input::Subscribe { id, filter })
            .unwrap();
        id
    }

    /// Run every host's outputs until nothing moves at the current time.
    pub fn settle(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.hosts.len() {
                moved |= self.pump_host(i);
            }
            // Deliver what is due.
            let now = self.now;
            let due: Vec<InFlight> = {
                let mut d = vec![];
                let mut rest = VecDeque::new();
                while let Some(f) = self.flight.pop_front() {
                    if f.at <= now {
                        d.push(f);
                    } else {
                        rest.push_back(f);
                    }
                }
                self.flight = rest;
                d
            };
            for f in due {
                moved = true;
                if let Some(c) = self.hosts[f.to].conns.get_mut(&ConnId(f.from as u64)) {
                    c.handle_input(now, rlpx::Input::Receive(&f.bytes)).unwrap();
                }
            }
            if !moved {
                break;
            }
        }
    }

    fn pump_host(&mut self, i: usize) -> bool {
        let now = self.now;
        let mut moved = false;
        let mut closed = Vec::new();
        let host = &mut self.hosts[i];
        // RLPx outputs.
        let peers: Vec<ConnId> = host.conns.keys().copied().collect();
        for peer in peers {
            loop {
                let Some(out) = host.conns.get_mut(&peer).and_then(|c| c.poll_output()) else {
                    break;
                };
                moved = true;
                match out {
                    rlpx::Output::Transmit(bytes) => {
                        let to = peer.0 as usize;
                        if !self.cut.contains(&(i, to)) {
                            self.flight.push_back(InFlight {
                                at: now + self.latency,
                                from: i,
                                to,
                                bytes: bytes.to_vec(),
                            });
                        }
                    }
                    rlpx::Output::Event(rlpx::Event::Connected { capabilities, .. }) => {
                        let dialect = if capabilities.iter().any(|c| c.name.as_str() == "waku") {
                            Dialect::Waku1
                        } else {
                            Dialect::Whisper6
                        };
                        host.dialects.insert(peer, dialect);
                        host.waku
                            .handle_input(now, Input::PeerConnected { peer, dialect })
                            .unwrap();
                    }
                    rlpx::Output::Event(rlpx::Event::Message { code, payload, .. }) => {
                        host.waku
                            .handle_input(
                                now,
                                Input::Packet {
                                    peer,
                                    code,
                                    data: payload,
                                },
                            )
                            .unwrap();
                    }
                    rlpx::Output::Event(rlpx::Event::Disconnected { .. }) => {
                        let _ = host.waku.handle_input(now, Input::PeerDisconnected { peer });
                    }
                    rlpx::Output::Event(rlpx::Event::Pong { .. }) => {}
                    rlpx::Output::Close => {
                        host.conns.remove(&peer);
                        closed.push(peer);
                        break;
                    }
                    _ => {}
                }
            }
        }
        // Waku outputs.
        while let Some(out) = host.waku.poll_output() {
            moved = true;
            match out {
                Output::Transmit { peer, code, data } => {
                    host.sent.push((peer, code, data.len()));
                    let cap = host.dialects.get(&peer).unwrap_or(&Dialect::Waku1).capability();
                    if let Some(c) = host.conns.get_mut(&peer) {
                        let _ = c.handle_input(
                            now,
                            rlpx::Input::Send {
                                capability: cap,
                                code,
                                payload: &data,
                            },
                        );
                    }
                }
                Output::Disconnect { peer, reason } => {
                    if let Some(c) = host.conns.get_mut(&peer) {
                        let _ = c.handle_input(now, rlpx::Input::Disconnect(reason));
                    }
                }
                Output::Event(e) => host.events.push(e),
                _ => {}
            }
        }
        // A closed TCP connection is seen by the other end too.
        for peer in closed {
            if let Some(c) = self.hosts[peer.0 as usize].conns.get_mut(&ConnId(i as u64)) {
                c.handle_input(now, rlpx::Input::TransportClosed).unwrap();
            }
        }
        moved
    }

    /// Advance the virtual clock by `d` in steps, firing timers and delivering bytes.
    pub fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.settle();
            let mut next = end;
            for f in &self.flight {
                next = next.min(f.at);
            }
            for h in &self.hosts {
                if let Some(t) = h.waku.poll_timeout() {
                    next = next.min(t.max(self.now + Duration::from_millis(1)));
                }
                for c in h.conns.values() {
                    if let Some(t) = c.poll_timeout() {
                        next = next.min(t.max(self.now + Duration::from_millis(1)));
                    }
                }
            }
            self.now = next.max(self.now);
            for h in &mut self.hosts {
                h.waku.handle_timeout(self.now);
                for c in h.conns.values_mut() {
                    c.handle_timeout(self.now);
                }
            }
            self.settle();
            if self.now >= end {
                break;
            }
        }
    }

    pub fn input(&mut self, host: usize, input: Input) {
        let now = self.now;
        self.hosts[host].waku.handle_input(now, input).unwrap();
        self.settle();
    }

    /// Messages a host's filters opened, as (payload, sender, p2p).
    pub fn received(&self, host: usize) -> Vec<Vec<u8>> {
        self.hosts[host]
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Message(m) => Some(m.payload.to_vec()),
                _ => None,
            })
            .collect()
    }

    pub fn ready_peers(&self, host: usize) -> usize {
        self.hosts[host]
            .events
            .iter()
            .filter(|e| matches!(e, Event::PeerReady { .. }))
            .count()
    }
}
