//! An in-memory network for node engines: dials, accepted sockets, ordered byte pipes with a fixed
//! latency, and hosts that go offline and come back. Deterministic.
#![allow(dead_code)]

use status_sansio::node::StorageOp;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use status_sansio::crypto::SecretKey;
use status_sansio::enode::Enode;
use status_sansio::node::{ConnId, Engine, EngineConfig, Event, Input, Output};
use status_sansio::rlpx::{self, Protocol};
use status_sansio::{Seed, Timestamp};

pub struct Host {
    pub engine: Engine,
    /// The host's mailserver storage.
    pub store: BTreeMap<[u8; 40], bytes::Bytes>,
    pub addr: SocketAddr,
    pub enode: Enode,
    pub events: Vec<Event>,
    pub dials: Vec<Timestamp>,
    /// Where each dial went.
    pub dialled: Vec<SocketAddr>,
    /// DNS names this host looked up, with when.
    pub lookups: Vec<(Timestamp, String)>,
    pub online: bool,
    next_accept: u64,
}

enum Deliver {
    Connected(ConnId),
    DialFailed(ConnId),
    Accepted(ConnId, SocketAddr),
    Bytes(ConnId, Vec<u8>),
    Closed(ConnId),
    Resolved(String, Option<Vec<String>>),
}

pub struct Net {
    pub now: Timestamp,
    pub hosts: Vec<Host>,
    latency: Duration,
    queue: VecDeque<(Timestamp, usize, Deliver)>,
    /// (host, conn) → (host, conn) for live sockets.
    links: BTreeMap<(usize, ConnId), (usize, ConnId)>,
    /// Sockets of hosts taken offline with [`Net::kill`], reported closed on [`Net::resume`].
    dead: BTreeMap<usize, Vec<ConnId>>,
    /// TXT records served to every host: name → texts (a name that is absent fails the lookup).
    pub zone: BTreeMap<String, Vec<String>>,
}

pub fn rlpx_config(seed: u64) -> Arc<rlpx::Config> {
    let key = SecretKey::random(&mut Seed::from_u64(seed).rng());
    Arc::new(rlpx::Config::new(
        key,
        vec![
            Protocol::new("waku", 1, 128).unwrap(),
            Protocol::new("shh", 6, 128).unwrap(),
        ],
    ))
}

impl Net {
    /// Hosts from configs built by `make(index, enodes_of_all_hosts)`.
    pub fn new(n: usize, make: impl Fn(usize, &[Enode]) -> EngineConfig) -> Net {
        Net::with_seed(n, 0, make)
    }

    /// Like [`Net::new`], with the engines' RNG seeds derived from `seed` (0 gives [`Net::new`]'s).
    pub fn with_seed(n: usize, seed: u64, make: impl Fn(usize, &[Enode]) -> EngineConfig) -> Net {
        let now = Timestamp::from_secs(1_700_000_000);
        let rlpx: Vec<_> = (0..n).map(|i| rlpx_config(500 + i as u64)).collect();
        let enodes: Vec<Enode> = (0..n)
            .map(|i| {
                Enode::new(
                    rlpx[i].public_key(),
                    format!("10.0.0.{}:30303", i + 1).parse().unwrap(),
                )
            })
            .collect();
        let hosts = (0..n)
            .map(|i| {
                let mut cfg = make(i, &enodes);
                cfg.rlpx = rlpx[i].clone();
                Host {
                    engine: Engine::new(cfg, &Seed::from_u64(900 + i as u64 + seed * 1000), now).unwrap(),
                    store: BTreeMap::new(),
                    addr: enodes[i].addr,
                    enode: enodes[i].clone(),
                    events: vec![],
                    dials: vec![],
                    dialled: vec![],
                    lookups: vec![],
                    online: true,
                    next_accept: 1,
                }
            })
            .collect();
        Net {
            now,
            hosts,
            latency: Duration::from_millis(15),
            queue: VecDeque::new(),
            links: BTreeMap::new(),
            dead: BTreeMap::new(),
            zone: BTreeMap::new(),
        }
    }

    fn push(&mut self, host: usize, d: Deliver) {
        let at = self.now + self.latency;
        self.queue.push_back((at, host, d));
    }

    fn drain(&mut self, i: usize) -> bool {
        let mut moved = false;
        while let Some(o) = self.hosts[i].engine.poll_output() {
            moved = true;
            match o {
                Output::Dial { conn, addr } => {
                    self.hosts[i].dials.push(self.now);
                    self.hosts[i].dialled.push(addr);
                    match self.hosts.iter().position(|h| h.addr == addr && h.online) {
                        Some(j) => {
                            let acc = ConnId(self.hosts[j].next_accept);
                            self.hosts[j].next_accept += 1;
                            self.links.insert((i, conn), (j, acc));
                            self.links.insert((j, acc), (i, conn));
                            let from = self.hosts[i].addr;
                            self.push(j, Deliver::Accepted(acc, from));
                            self.push(i, Deliver::Connected(conn));
                        }
                        None => self.push(i, Deliver::DialFailed(conn)),
                    }
                }
                Output::Transmit { conn, data } => {
                    if let Some(&(j, c)) = self.links.get(&(i, conn)) {
                        self.push(j, Deliver::Bytes(c, data.to_vec()));
                    }
                }
                Output::Close { conn } => {
                    if let Some((j, c)) = self.links.remove(&(i, conn)) {
                        self.links.remove(&(j, c));
                        self.push(j, Deliver::Closed(c));
                    }
                }
                Output::ResolveTxt { name } => {
                    self.hosts[i].lookups.push((self.now, name.clone()));
                    let txt = self.zone.get(&name).cloned();
                    self.push(i, Deliver::Resolved(name, txt));
                }
                Output::Event(e) => self.hosts[i].events.push(e),
                Output::Storage(StorageOp::Store { key, value }) => {
                    self.hosts[i].store.insert(key, value);
                }
                Output::Storage(StorageOp::Query {
                    query,
                    start,
                    end,
                    limit,
                }) => {
                    let h = &mut self.hosts[i];
                    let entries = h
                        .store
                        .range(start..end)
                        .take(limit)
                        .map(|(k, v)| (*k, v.clone()))
                        .collect();
                    h.engine
                        .handle_input(self.now, Input::QueryResult { query, entries })
                        .unwrap();
                }
                Output::Storage(StorageOp::Prune { before }) => self.hosts[i]
                    .store
                    .retain(|k, _| u32::from_be_bytes([k[0], k[1], k[2], k[3]]) >= before),
                other => panic!("unexpected output {other:?}"),
            }
        }
        moved
    }

    pub fn settle(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.hosts.len() {
                moved |= self.drain(i);
            }
            let now = self.now;
            let mut rest = VecDeque::new();
            let mut due = vec![];
            while let Some(q) = self.queue.pop_front() {
                if q.0 <= now {
                    due.push(q);
                } else {
                    rest.push_back(q);
                }
            }
            self.queue = rest;
            for (_, h, d) in due {
                moved = true;
                if !self.hosts[h].online {
                    continue;
                }
                let e = &mut self.hosts[h].engine;
                let _ = match d {
                    Deliver::Connected(c) => e.handle_input(now, Input::Connected { conn: c }),
                    Deliver::DialFailed(c) => e.handle_input(now, Input::DialFailed { conn: c }),
                    Deliver::Accepted(c, addr) => e.handle_input(now, Input::AcceptedFrom { conn: c, addr }),
                    Deliver::Bytes(c, b) => e.handle_input(now, Input::Received { conn: c, data: &b }),
                    Deliver::Closed(c) => e.handle_input(now, Input::Closed { conn: c }),
                    Deliver::Resolved(name, txt) => e.handle_input(now, Input::DnsResolved { name, txt }),
                };
            }
            if !moved {
                break;
            }
        }
    }

    pub fn run(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.settle();
            let mut next = end;
            for q in &self.queue {
                next = next.min(q.0);
            }
            for h in self.hosts.iter().filter(|h| h.online) {
                if let Some(t) = h.engine.poll_timeout() {
                    next = next.min(t.max(self.now + Duration::from_millis(1)));
                }
            }
            if next > end {
                break;
            }
            self.now = next;
            for h in self.hosts.iter_mut().filter(|h| h.online) {
                h.engine.handle_timeout(self.now);
            }
            if self.now >= end {
                self.settle();
                break;
            }
        }
        self.now = end;
    }

    /// Take a host offline: its sockets die (peers see them close); it keeps its state.
    pub fn kill(&mut self, i: usize) {
        self.hosts[i].online = false;
        let dead: Vec<_> = self.links.keys().filter(|(h, _)| *h == i).copied().collect();
        for k in dead {
            self.dead.entry(i).or_default().push(k.1);
            if let Some((j, c)) = self.links.remove(&k) {
                self.links.remove(&(j, c));
                self.push(j, Deliver::Closed(c));
            }
        }
    }

    /// Bring a host back with a fresh engine (a restart), built by `make`.
    pub fn revive(&mut self, i: usize, engine: Engine) {
        self.dead.remove(&i);
        self.hosts[i].engine = engine;
        self.hosts[i].online = true;
    }

    /// Bring a host back with its state (it was only cut off): its engine learns that the sockets it
    /// had died, and catches up on its timers at the current time.
    pub fn resume(&mut self, i: usize) {
        self.hosts[i].online = true;
        let now = self.now;
        for c in self.dead.remove(&i).unwrap_or_default() {
            let _ = self.hosts[i].engine.handle_input(now, Input::Closed { conn: c });
        }
        self.hosts[i].engine.handle_timeout(now);
        self.settle();
    }

    pub fn input(&mut self, i: usize, input: Input<'_>) {
        self.hosts[i].engine.handle_input(self.now, input).unwrap();
        self.settle();
    }

    pub fn messages(&self, i: usize) -> Vec<Vec<u8>> {
        self.hosts[i]
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Waku(status_sansio::waku::Event::Message(m)) => Some(m.payload.to_vec()),
                _ => None,
            })
            .collect()
    }
}
