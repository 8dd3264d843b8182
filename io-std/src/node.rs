//! Drive a [`status_sansio::node::Engine`] with blocking `std::net`: a reader thread per socket feeds
//! one channel; the calling thread owns the engine, waits on that channel with a timeout equal to the
//! engine's next deadline, and writes to sockets directly. The same concepts and names as
//! `status_io_tokio::node`, for programs without an async runtime.
//!
//! Commands are the engine's own [`Input`] ([`BlockingNode::input`]). Events are handed to the
//! application as the return value of [`BlockingNode::step`]: the application's own thread runs the
//! engine, so there is no queue between them that could fill (the tokio driver's bounded event queue, and
//! its dropped-event counter, have nothing to do here; [`BlockingNode::dropped_events`] is always 0).
//!
//! The engine's outputs are carried out in one place (`BlockingNode::carry_out`).
//!
//! DNS discovery: each [`Output::ResolveTxt`] is looked up on its own thread through the node's
//! [`TxtResolver`] (default [`BlockingResolver`]; the engine keeps at most a few lookups out at once)
//! and answered with [`Input::DnsResolved`]. With [`BlockingNode::with_peer_cache_file`] the engine's
//! peer cache is written to that file every [`PEER_CACHE_SAVE_INTERVAL`] and when the node is dropped.
//!
//! Durable state (docs/architecture.md "Persistence", feature `redb`): with
//! [`BlockingNode::with_state_store`] every `Output::Persist` batch is committed to the node's
//! [`StateStore`](crate::state::StateStore) (one fsynced redb transaction) and confirmed with
//! `Input::Persisted`, after which the outputs it held back come out. Group commit: [`BlockingNode::step`]
//! feeds every network input that is ready before it carries out the outputs, so there is one batch per
//! step however many inputs it took. A failed commit is fatal: nothing after it is confirmed, the node
//! stops carrying out outputs, and [`BlockingNode::state_error`] says why. The same contract, with the
//! same names, as `status_io_tokio::node` (`NodeOptions::state_store`).
//!
//! Dials: a dial runs on its own thread (bounded by [`DIAL_SAFETY_TIMEOUT`](crate::DIAL_SAFETY_TIMEOUT));
//! when the engine gives up on it first (`Output::Close` for a pending dial), it is forgotten and a
//! socket that still connects afterwards is closed unused.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use status_sansio::node::{ConnId, Engine, Event, Input, Output, StorageOp};

use crate::dns::{save_peer_cache, BlockingResolver, TxtResolver};
use crate::Clock;

/// Most ready network inputs fed in one [`BlockingNode::step`] before the outputs are carried out (one
/// durable commit covers them all).
pub const MAX_READY_PER_STEP: usize = 256;

/// How often a node with a peer cache file writes it.
pub const PEER_CACHE_SAVE_INTERVAL: Duration = Duration::from_secs(60);

enum Net {
    Read(ConnId, Vec<u8>),
    Eof(ConnId),
    Accepted(TcpStream),
    Dialed(ConnId, io::Result<TcpStream>),
    Resolved(String, Option<Vec<String>>),
}

/// A blocking node: call [`BlockingNode::step`] in a loop (or [`BlockingNode::run_until`]).
pub struct BlockingNode {
    engine: Engine,
    store: Box<dyn crate::store::Store>,
    store_errors: u64,
    input_errors: u64,
    io_errors: Vec<io::Error>,
    clock: Clock,
    tx: Sender<Net>,
    rx: Receiver<Net>,
    sockets: BTreeMap<ConnId, TcpStream>,
    /// Dials the engine still waits for.
    dials: BTreeSet<ConnId>,
    next_accept: u64,
    resolver: Arc<dyn TxtResolver>,
    peer_cache: Option<(PathBuf, Instant)>,
    #[cfg(feature = "redb")]
    state_store: Option<crate::state::StateStore>,
    /// Why the node stopped carrying out outputs (a failed or impossible commit).
    state_error: Option<String>,
}

fn reader(mut s: TcpStream, conn: ConnId, tx: Sender<Net>) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => {
                    // A failed send means the node is gone: nobody is left to tell.
                    tx.send(Net::Eof(conn)).ok();
                    break;
                }
                Ok(n) => {
                    if tx.send(Net::Read(conn, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    });
}

impl BlockingNode {
    /// Wrap `engine`; if `listener` is given, a thread accepts on it.
    pub fn new(engine: Engine, listener: Option<TcpListener>) -> Self {
        let (tx, rx) = mpsc::channel();
        if let Some(l) = listener {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for s in l.incoming().flatten() {
                    if tx.send(Net::Accepted(s)).is_err() {
                        break;
                    }
                }
            });
        }
        BlockingNode {
            engine,
            store: Box::new(crate::store::MemoryStore::default()),
            store_errors: 0,
            input_errors: 0,
            io_errors: Vec::new(),
            clock: Clock::new(),
            tx,
            rx,
            sockets: BTreeMap::new(),
            dials: BTreeSet::new(),
            next_accept: 1,
            resolver: Arc::new(BlockingResolver::system()),
            peer_cache: None,
            #[cfg(feature = "redb")]
            state_store: None,
            state_error: None,
        }
    }

    /// Commit each `Output::Persist` batch to `store` and confirm it (see the module documentation).
    /// Required when the engine's Messenger is
    /// [`durable`](status_sansio::chat::messenger::MessengerConfig::durable). Start the engine from
    /// what the store holds: [`StateStore::load`](crate::state::StateStore::load) and
    /// [`Engine::restore`].
    #[cfg(feature = "redb")]
    pub fn with_state_store(mut self, store: crate::state::StateStore) -> Self {
        self.state_store = Some(store);
        self
    }

    /// The state store, if any (to read its path or commit count).
    #[cfg(feature = "redb")]
    pub fn state_store(&self) -> Option<&crate::state::StateStore> {
        self.state_store.as_ref()
    }

    /// Why the node stopped: a state commit failed (or a durable engine runs without a state store).
    /// Once set, [`BlockingNode::step`] carries out nothing more and the batch is never confirmed.
    pub fn state_error(&self) -> Option<&str> {
        self.state_error.as_deref()
    }

    /// Make `batch` durable and confirm it; on failure remember why and stop.
    fn persist(&mut self, batch: status_sansio::persist::Batch) {
        #[cfg(feature = "redb")]
        let result = match &mut self.state_store {
            Some(store) => store.commit(&batch).map_err(|e| e.to_string()),
            None => Err("no state store (BlockingNode::with_state_store)".to_string()),
        };
        #[cfg(not(feature = "redb"))]
        let result: Result<(), String> = Err("this build has no state store (feature `redb`)".into());
        match result {
            Ok(()) => self.feed(Input::Persisted(batch.seq)),
            Err(e) => {
                self.state_error = Some(format!(
                    "state commit of batch {} failed, the node stopped: {e}",
                    batch.seq.0
                ))
            }
        }
    }

    /// Answer the engine's TXT lookups with `resolver` (default: [`BlockingResolver::system`]).
    pub fn with_resolver(mut self, resolver: Arc<dyn TxtResolver>) -> Self {
        self.resolver = resolver;
        self
    }

    /// Save the engine's peer cache to `path` every [`PEER_CACHE_SAVE_INTERVAL`] and when the node is
    /// dropped (load it with [`crate::dns::load_peer_cache`] into
    /// [`EngineConfig::peer_cache`](status_sansio::node::EngineConfig::peer_cache)).
    pub fn with_peer_cache_file(mut self, path: PathBuf) -> Self {
        self.peer_cache = Some((path, Instant::now()));
        self
    }

    /// Write the peer cache file now (a no-op without one).
    pub fn save_peer_cache(&mut self) -> io::Result<()> {
        match &mut self.peer_cache {
            Some((path, last)) => {
                *last = Instant::now();
                save_peer_cache(path, &self.engine.export_peer_cache())
            }
            None => Ok(()),
        }
    }

    /// Use `store` for the mailserver's envelopes (default: in memory).
    pub fn with_store(mut self, store: Box<dyn crate::store::Store>) -> Self {
        self.store = store;
        self
    }

    /// Storage operations that failed so far.
    pub fn store_errors(&self) -> u64 {
        self.store_errors
    }

    /// Inputs from the network side (bytes, closes, dial results, DNS answers, query results) that the
    /// engine refused so far (a socket it no longer knows, for example).
    pub fn input_errors(&self) -> u64 {
        self.input_errors
    }

    /// Events dropped because the application was not taking them: always 0 here, since
    /// [`BlockingNode::step`] returns every event to its caller (see the module documentation).
    pub fn dropped_events(&self) -> u64 {
        0
    }

    /// Local IO failures since the last call (writing the peer cache file), oldest first.
    pub fn take_io_errors(&mut self) -> Vec<io::Error> {
        std::mem::take(&mut self.io_errors)
    }

    fn count(&mut self, failed: bool) {
        self.store_errors += u64::from(failed);
    }

    /// The engine (for subscriptions and inspection).
    pub fn engine(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// The driver's clock.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Feed an application input now; `Err` is the engine's refusal.
    pub fn input(&mut self, input: Input<'_>) -> Result<(), status_sansio::Error> {
        let now = self.clock.now();
        self.engine.handle_input(now, input)
    }

    /// Feed an input from the network side; a refusal (a race with a socket the engine already closed)
    /// is counted in [`BlockingNode::input_errors`].
    fn feed(&mut self, input: Input<'_>) {
        let now = self.clock.now();
        if self.engine.handle_input(now, input).is_err() {
            self.input_errors += 1;
        }
    }

    fn start(&mut self, s: TcpStream, conn: ConnId) -> io::Result<()> {
        s.set_nodelay(true)?;
        reader(s.try_clone()?, conn, self.tx.clone());
        self.sockets.insert(conn, s);
        Ok(())
    }

    /// Carry out one engine output; events are pushed onto `events`. The one place that matches on
    /// [`Output`].
    fn carry_out(&mut self, output: Output, events: &mut Vec<Event>) {
        match output {
            Output::Dial { conn, addr } => {
                self.dials.insert(conn);
                let tx = self.tx.clone();
                std::thread::spawn(move || {
                    let r = TcpStream::connect_timeout(&addr, crate::DIAL_SAFETY_TIMEOUT);
                    // A failed send means the node is gone and the socket is dropped with `r`.
                    tx.send(Net::Dialed(conn, r)).ok();
                });
            }
            Output::Transmit { conn, data } => {
                let failed = self
                    .sockets
                    .get_mut(&conn)
                    .is_some_and(|s| s.write_all(&data).is_err());
                if failed {
                    self.sockets.remove(&conn);
                    self.feed(Input::Closed { conn });
                }
            }
            Output::Close { conn } => {
                // A pending dial the engine gave up on: forget it (its socket, if it connects late, is
                // closed unused).
                self.dials.remove(&conn);
                if let Some(s) = self.sockets.remove(&conn) {
                    // NotConnected: the peer closed first; dropping `s` closes our end either way.
                    s.shutdown(Shutdown::Both).ok();
                }
            }
            Output::Storage(StorageOp::Store { key, value }) => {
                let failed = self.store.put(key, value).is_err();
                self.count(failed);
            }
            Output::Storage(StorageOp::Query {
                query,
                start,
                end,
                limit,
            }) => {
                // A failed read answers with nothing (the request completes without envelopes).
                let r = self.store.range(start, end, limit);
                self.count(r.is_err());
                let entries = r.unwrap_or_default();
                self.feed(Input::QueryResult { query, entries });
            }
            Output::Storage(StorageOp::Prune { before }) => {
                let failed = self.store.prune(before).is_err();
                self.count(failed);
            }
            Output::ResolveTxt { name } => {
                let (tx, resolver) = (self.tx.clone(), self.resolver.clone());
                std::thread::spawn(move || {
                    let txt = resolver.resolve_txt(&name).ok();
                    // A failed send means the node is gone: nobody wants the answer.
                    tx.send(Net::Resolved(name, txt)).ok();
                });
            }
            Output::Persist(batch) => self.persist(batch),
            Output::Event(e) => events.push(e),
            // An output kind newer than this driver: nothing it could do with it.
            _ => {}
        }
    }

    /// Feed one network happening to the engine.
    fn on_net(&mut self, net: Net) {
        match net {
            Net::Read(conn, bytes) => self.feed(Input::Received { conn, data: &bytes }),
            Net::Eof(conn) => {
                self.sockets.remove(&conn);
                self.feed(Input::Closed { conn });
            }
            Net::Accepted(s) => {
                let conn = ConnId(self.next_accept);
                self.next_accept += 1;
                let addr = s.peer_addr().ok();
                if self.start(s, conn).is_err() {
                    // The socket died before it could be used: the engine never hears of it.
                    return;
                }
                self.feed(match addr {
                    Some(addr) => Input::AcceptedFrom { conn, addr },
                    None => Input::Accepted { conn },
                });
            }
            Net::Dialed(conn, r) => {
                if !self.dials.remove(&conn) {
                    // Cancelled by the engine (Output::Close): drop the late socket unused.
                    return;
                }
                match r.and_then(|s| self.start(s, conn)) {
                    Ok(()) => self.feed(Input::Connected { conn }),
                    Err(_) => self.feed(Input::DialFailed { conn }),
                }
            }
            Net::Resolved(name, txt) => self.feed(Input::DnsResolved { name, txt }),
        }
    }

    /// Carry out the engine's outputs, wait at most `max_wait` for the network or the next deadline,
    /// and return the events that came out.
    pub fn step(&mut self, max_wait: Duration) -> Vec<Event> {
        let mut events = Vec::new();
        if self.state_error.is_some() {
            std::thread::sleep(max_wait);
            return events;
        }
        while let Some(o) = self.engine.poll_output() {
            self.carry_out(o, &mut events);
            if self.state_error.is_some() {
                return events;
            }
        }
        if self
            .peer_cache
            .as_ref()
            .is_some_and(|(_, last)| last.elapsed() >= PEER_CACHE_SAVE_INTERVAL)
        {
            if let Err(e) = self.save_peer_cache() {
                self.io_errors.push(e);
            }
        }
        let wait = match self.engine.poll_timeout() {
            Some(d) => self.clock.until(d).min(max_wait),
            None => max_wait,
        };
        match self.rx.recv_timeout(wait) {
            Ok(net) => {
                self.on_net(net);
                // Group commit: whatever else is ready goes into the same batch.
                for net in self
                    .rx
                    .try_iter()
                    .take(MAX_READY_PER_STEP - 1)
                    .collect::<Vec<_>>()
                {
                    self.on_net(net);
                }
            }
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {}
        }
        self.engine.handle_timeout(self.clock.now());
        events
    }

    /// Step until `done` returns true for some event or `limit` passes; returns every event seen.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Event) -> bool) -> (bool, Vec<Event>) {
        let start = std::time::Instant::now();
        let mut all = Vec::new();
        while start.elapsed() < limit {
            let evs = self.step(Duration::from_millis(50));
            let hit = evs.iter().any(&mut done);
            all.extend(evs);
            if hit {
                return (true, all);
            }
        }
        (false, all)
    }
}

impl Drop for BlockingNode {
    /// Saves the peer cache one last time. Drop cannot return an error: call
    /// [`BlockingNode::save_peer_cache`] first to see it.
    fn drop(&mut self) {
        // Nothing is left to report a failure to; an application that cares saves explicitly first.
        self.save_peer_cache().ok();
    }
}
