//! The node task: owns the engine, carries out its outputs ([`NodeTask::carry_out`], the one place that
//! matches on [`Output`]), and feeds it what the network, the store thread, the resolver and the
//! application bring.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use status_io_std::dns::save_peer_cache;
use status_io_std::state::StateStore;
use status_io_std::Clock;
use status_sansio::node::{ConnId, Engine, Event, Input, Output, StorageOp};
use status_sansio::persist::Batch;
use status_sansio::waku;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::task::AbortHandle;

use super::socket::{link, log_event, start_socket, Link, Net, Socket};
use super::store_thread::{StoreLink, StoreOp};
use super::{DroppedEvents, NodeCommand, TxtResolver, PEER_CACHE_SAVE_INTERVAL};

/// Most addresses whose dial failures are remembered for the redial log line.
const MAX_FAILED_ADDRS: usize = 1024;

/// Most ready inputs of each source taken in one pump (before the outputs are carried out), so one
/// durable commit covers all of them (group commit) while no source starves the others.
const MAX_READY_PER_PUMP: usize = 256;

/// The application's side of the node task: its commands, the bounded event queue and the counter of
/// events dropped because that queue was full.
pub(super) struct App {
    pub(super) commands: mpsc::Receiver<NodeCommand>,
    pub(super) events: mpsc::Sender<Event>,
    pub(super) dropped: DroppedEvents,
    pub(super) state_failed: super::StateFailed,
}

/// Keep going, or stop the node.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

struct NodeTask {
    engine: Engine,
    clock: Clock,
    net_tx: mpsc::Sender<Net>,
    events: mpsc::Sender<Event>,
    dropped: DroppedEvents,
    store_ops: mpsc::Sender<StoreOp>,
    resolver: Arc<dyn TxtResolver>,
    peer_cache_file: Option<PathBuf>,
    writers: BTreeMap<ConnId, Socket>,
    links: BTreeMap<ConnId, Link>,
    /// Dials in progress, to cancel when the engine closes them.
    dials: BTreeMap<ConnId, AbortHandle>,
    /// Addresses whose last dial failed: when and how many times in a row, so a redial shows the
    /// backoff the engine waited (bounded; cleared when the peer connects).
    failed: BTreeMap<SocketAddr, (Instant, u32)>,
    next_accept: u64,
    /// Saying goodbye: sockets the engine closes linger so the peer reads our Disconnect.
    closing: bool,
    /// The node's durable state ([`NodeOptions::state_store`](super::NodeOptions::state_store)); taken
    /// while a commit runs on a blocking thread, and gone for good after a failed one.
    state_store: Option<StateStore>,
    /// A commit failed: the node stops, and nothing after it is confirmed.
    state_failed: super::StateFailed,
}

impl NodeTask {
    /// Feed an input from the network side. A refusal is a race with a socket the engine already
    /// closed (or a bug in this driver): logged at DEBUG.
    fn feed(&mut self, input: Input<'_>) {
        let what = input_name(&input);
        if let Err(e) = self.engine.handle_input(self.clock.now(), input) {
            tracing::debug!(input = what, "the engine refused a network input: {e}");
        }
    }

    /// Carry out one engine output.
    async fn carry_out(&mut self, output: Output) -> Flow {
        match output {
            Output::Dial { conn, addr } => {
                let l = link(conn, addr, false);
                match self.failed.get(&addr) {
                    Some((at, n)) => tracing::info!(
                        parent: &l.span,
                        failures = n,
                        backoff_s = at.elapsed().as_secs(),
                        "redialling after backoff"
                    ),
                    None => tracing::info!(parent: &l.span, "dialing"),
                }
                self.links.insert(conn, l);
                let tx = self.net_tx.clone();
                let dial = tokio::spawn(async move {
                    let r =
                        tokio::time::timeout(status_io_std::DIAL_SAFETY_TIMEOUT, TcpStream::connect(addr))
                            .await
                            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "dial timeout")));
                    // A failed send means the node task is gone; the socket is dropped with it.
                    tx.send(Net::Dialed(conn, r)).await.ok();
                });
                self.dials.insert(conn, dial.abort_handle());
            }
            Output::Transmit { conn, data } => {
                let full = match self.writers.get(&conn) {
                    Some(w) => w.writer.try_send(data).is_err(),
                    None => false,
                };
                if full {
                    // The peer is not reading: drop it rather than buffer without bound.
                    if let Some(l) = self.links.get(&conn) {
                        tracing::info!(parent: &l.span, "write queue full: dropping the peer");
                    }
                    self.writers.remove(&conn);
                    self.feed(Input::Closed { conn });
                }
            }
            Output::Close { conn } => {
                if let Some(dial) = self.dials.remove(&conn) {
                    // The engine gave up on this dial (its timeout): stop it.
                    dial.abort();
                    if let Some(l) = self.links.remove(&conn) {
                        tracing::warn!(parent: &l.span, "dial cancelled by the engine");
                    }
                }
                if let Some(w) = self.writers.remove(&conn) {
                    if self.closing {
                        w.linger();
                    }
                }
                // A socket closed before the handshake named its peer has no PeerDisconnected.
                if self.links.get(&conn).is_some_and(|l| l.info.id.is_none()) {
                    if let Some(l) = self.links.remove(&conn) {
                        tracing::debug!(parent: &l.span, "closed before the handshake completed");
                    }
                }
            }
            Output::Storage(StorageOp::Store { key, value }) => {
                if self.store_ops.send(StoreOp::Put(key, value)).await.is_err() {
                    tracing::warn!("mailserver store: the store thread is gone");
                }
            }
            Output::Storage(StorageOp::Query {
                query,
                start,
                end,
                limit,
            }) => {
                let op = StoreOp::Range {
                    query,
                    start,
                    end,
                    limit,
                };
                if self.store_ops.send(op).await.is_err() {
                    tracing::warn!("mailserver query: the store thread is gone");
                    let entries = vec![];
                    self.feed(Input::QueryResult { query, entries });
                }
            }
            Output::Storage(StorageOp::Prune { before }) => {
                if self.store_ops.send(StoreOp::Prune(before)).await.is_err() {
                    tracing::warn!("mailserver prune: the store thread is gone");
                }
            }
            Output::ResolveTxt { name } => {
                let (tx, resolver) = (self.net_tx.clone(), self.resolver.clone());
                tokio::spawn(async move {
                    let txt = match resolver.resolve_txt(name.clone()).await {
                        Ok(txt) => Some(txt),
                        Err(e) => {
                            tracing::debug!(%name, "TXT lookup failed: {e}");
                            None
                        }
                    };
                    // A failed send means the node task is gone: nobody wants the answer.
                    tx.send(Net::Resolved(name, txt)).await.ok();
                });
            }
            Output::Persist(batch) => return self.persist(batch).await,
            Output::Event(e) => return self.deliver(e),
            other => tracing::debug!(output = ?other, "an engine output this driver does not know"),
        }
        Flow::Continue
    }

    /// Make `batch` durable in the state store (one fsynced transaction, on a blocking thread so the
    /// socket tasks keep running), then confirm it to the engine with [`Input::Persisted`]; what it held
    /// back comes out on the next poll. A failed commit is fatal: logged at ERROR, never confirmed, and
    /// the node stops.
    async fn persist(&mut self, batch: Batch) -> Flow {
        let seq = batch.seq;
        let Some(mut store) = self.state_store.take() else {
            if !self.state_failed.get() {
                self.state_failed.set();
                tracing::error!(
                    batch = seq.0,
                    "the engine has state to make durable but the node has no state store \
                     (NodeOptions::state_store): stopping without confirming it"
                );
            }
            return Flow::Stop;
        };
        let committed = tokio::task::spawn_blocking(move || {
            let r = store.commit(&batch);
            (store, r)
        })
        .await;
        match committed {
            Ok((store, Ok(()))) => {
                self.state_store = Some(store);
                self.feed(Input::Persisted(seq));
                Flow::Continue
            }
            Ok((store, Err(e))) => {
                self.state_failed.set();
                tracing::error!(
                    batch = seq.0,
                    path = %store.path().display(),
                    "state commit failed, stopping the node (the batch is not confirmed): {e}"
                );
                Flow::Stop
            }
            Err(e) => {
                self.state_failed.set();
                tracing::error!(
                    batch = seq.0,
                    "state commit: the blocking task failed, stopping: {e}"
                );
                Flow::Stop
            }
        }
    }

    /// Hand an event to the application without waiting: when its queue is full the event is dropped
    /// and counted; when the application has gone, the node stops.
    fn deliver(&mut self, e: Event) -> Flow {
        if let Event::PeerConnected { conn, .. } = &e {
            if let Some(l) = self.links.get(conn) {
                self.failed.remove(&l.info.addr);
            }
        }
        log_event(&mut self.links, &e);
        match self.events.try_send(e) {
            Ok(()) => Flow::Continue,
            Err(TrySendError::Full(e)) => {
                self.dropped.add();
                tracing::debug!(
                    dropped = self.dropped.get(),
                    event = ?e,
                    "event dropped: the application is not taking events"
                );
                Flow::Continue
            }
            Err(TrySendError::Closed(_)) => Flow::Stop,
        }
    }

    /// Carry out everything the engine has asked for.
    async fn drain(&mut self) -> Flow {
        while let Some(o) = self.engine.poll_output() {
            if self.carry_out(o).await == Flow::Stop {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    /// Carry out an application command.
    fn on_command(&mut self, cmd: Option<NodeCommand>) -> Flow {
        let now = self.clock.now();
        match cmd {
            Some(NodeCommand::Input(input)) => {
                let what = input_name(&input);
                if let Err(e) = self.engine.handle_input(now, input) {
                    tracing::warn!(input = what, "command refused: {e}");
                }
            }
            Some(NodeCommand::InputChecked(input, reply)) => {
                let r = self.engine.handle_input(now, input);
                if let Err(Err(e)) = reply.send(r) {
                    // The caller stopped waiting; the input was still carried out.
                    tracing::warn!("command refused (nobody waited for the answer): {e}");
                }
            }
            Some(NodeCommand::Subscribe(f, reply)) => {
                let id = self.engine.unused_subscription_id();
                let subscribe = Input::Waku(waku::Input::Subscribe { id, filter: f });
                let r = self.engine.handle_input(now, subscribe).map(|()| id);
                if reply.send(r).is_err() {
                    tracing::debug!("subscribed, but the caller stopped waiting for the id");
                }
            }
            Some(NodeCommand::Peers(reply)) => {
                // The caller may have stopped waiting; nothing changed.
                reply
                    .send(self.links.values().map(|l| l.info.clone()).collect())
                    .ok();
            }
            Some(NodeCommand::Inspect(f)) => (f.0)(&self.engine),
            Some(NodeCommand::Shutdown) | None => return Flow::Stop,
        }
        Flow::Continue
    }

    /// Feed what the network side brought.
    fn on_net(&mut self, net: Net) {
        match net {
            Net::Read(conn, bytes) => self.feed(Input::Received { conn, data: &bytes }),
            Net::Eof(conn) => self.feed(Input::Closed { conn }),
            Net::Dialed(conn, r) => {
                if self.dials.remove(&conn).is_none() {
                    // Cancelled by the engine meanwhile: the socket is dropped unused.
                    return;
                }
                match r {
                    Ok(stream) => {
                        let span = self
                            .links
                            .get(&conn)
                            .map(|l| l.span.clone())
                            .unwrap_or_else(tracing::Span::none);
                        tracing::debug!(parent: &span, "TCP connected; RLPx handshake");
                        start_socket(stream, conn, &self.net_tx, &mut self.writers, span);
                        self.feed(Input::Connected { conn });
                    }
                    Err(e) => {
                        if let Some(l) = self.links.get(&conn) {
                            let addr = l.info.addr;
                            if self.failed.len() < MAX_FAILED_ADDRS || self.failed.contains_key(&addr) {
                                let n = self.failed.get(&addr).map_or(0, |f| f.1);
                                self.failed.insert(addr, (Instant::now(), n + 1));
                            }
                        }
                        match self.links.remove(&conn) {
                            Some(l) => tracing::warn!(
                                parent: &l.span,
                                error = %e,
                                "dial failed (static peers are redialled with backoff)"
                            ),
                            None => tracing::warn!(conn = conn.0, error = %e, "dial failed"),
                        }
                        self.feed(Input::DialFailed { conn });
                    }
                }
            }
            Net::Resolved(name, txt) => self.feed(Input::DnsResolved { name, txt }),
        }
    }

    fn on_accept(&mut self, stream: TcpStream, addr: SocketAddr) {
        let conn = ConnId(self.next_accept);
        self.next_accept += 1;
        let l = link(conn, addr, true);
        tracing::debug!(parent: &l.span, "accepted; RLPx handshake");
        start_socket(stream, conn, &self.net_tx, &mut self.writers, l.span.clone());
        self.links.insert(conn, l);
        self.feed(Input::AcceptedFrom { conn, addr });
    }

    fn save_peer_cache(&self) {
        if let Some(path) = &self.peer_cache_file {
            if let Err(e) = save_peer_cache(path, &self.engine.export_peer_cache()) {
                tracing::warn!("peer cache: {e}");
            }
        }
    }

    /// Stop: every peer hears why we go (ClientQuitting) before its socket closes gracefully; then the
    /// peer cache is saved.
    async fn goodbye(&mut self) {
        self.closing = true;
        self.engine.disconnect_all(
            self.clock.now(),
            status_sansio::rlpx::DisconnectReason::ClientQuitting,
        );
        // The application may be gone: events still go to the (closed or full) queue and are counted.
        // Batches are committed (the final commit) unless a commit already failed.
        while let Some(o) = self.engine.poll_output() {
            self.carry_out(o).await;
        }
        if let Some(store) = &self.state_store {
            tracing::info!(
                path = %store.path().display(),
                batches = store.commits(),
                "state store: final commit done"
            );
        }
        for (_, w) in std::mem::take(&mut self.writers) {
            w.linger();
        }
        for (_, dial) in std::mem::take(&mut self.dials) {
            dial.abort();
        }
        self.save_peer_cache();
    }
}

/// A short name of an input, for logs (the input itself may hold secrets or a lot of bytes).
fn input_name(input: &Input<'_>) -> &'static str {
    match input {
        Input::Accepted { .. } => "Accepted",
        Input::AcceptedFrom { .. } => "AcceptedFrom",
        Input::Connected { .. } => "Connected",
        Input::DialFailed { .. } => "DialFailed",
        Input::Received { .. } => "Received",
        Input::Closed { .. } => "Closed",
        Input::AddStaticPeer(_) => "AddStaticPeer",
        Input::AddPeerCandidate(_) => "AddPeerCandidate",
        Input::DnsResolved { .. } => "DnsResolved",
        Input::QueryResult { .. } => "QueryResult",
        Input::Waku(_) => "Waku",
        Input::Chat(_) => "Chat",
        Input::RequestHistory(_) => "RequestHistory",
        Input::Persisted(_) => "Persisted",
        #[allow(unreachable_patterns)]
        _ => "other",
    }
}

/// Run the node until the application shuts it down (or goes away); yields the engine.
pub(super) async fn run(
    engine: Engine,
    listener: Option<TcpListener>,
    app: App,
    store: StoreLink,
    resolver: Arc<dyn TxtResolver>,
    peer_cache_file: Option<PathBuf>,
    state_store: Option<StateStore>,
) -> Engine {
    let App {
        mut commands,
        events,
        dropped,
        state_failed,
    } = app;
    let StoreLink {
        ops: store_ops,
        results: mut store_results,
    } = store;
    let mut save_timer = tokio::time::interval(PEER_CACHE_SAVE_INTERVAL);
    save_timer.tick().await;
    let (net_tx, mut net_rx) = mpsc::channel::<Net>(1024);
    let mut t = NodeTask {
        engine,
        clock: Clock::new(),
        net_tx,
        events,
        dropped,
        store_ops,
        resolver,
        peer_cache_file,
        writers: BTreeMap::new(),
        links: BTreeMap::new(),
        dials: BTreeMap::new(),
        failed: BTreeMap::new(),
        next_accept: 1,
        closing: false,
        state_store,
        state_failed,
    };
    let mut stop = false;
    loop {
        if t.drain().await == Flow::Stop {
            break;
        }
        let deadline = t.engine.poll_timeout();
        let clock = t.clock;
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep(clock.until(d)).await,
                None => std::future::pending().await,
            }
        };
        let accept = async {
            match &listener {
                Some(l) => l.accept().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            cmd = commands.recv() => {
                if t.on_command(cmd) == Flow::Stop {
                    break;
                }
            }
            Some(net) = net_rx.recv() => t.on_net(net),
            Ok((stream, addr)) = accept => t.on_accept(stream, addr),
            Some((query, entries)) = store_results.recv() => t.feed(Input::QueryResult { query, entries }),
            _ = sleep => t.engine.handle_timeout(t.clock.now()),
            _ = save_timer.tick(), if t.peer_cache_file.is_some() => t.save_peer_cache(),
        }
        // Group commit: take what else is ready now, so the next drain makes one batch of it all.
        for _ in 0..MAX_READY_PER_PUMP {
            match net_rx.try_recv() {
                Ok(net) => t.on_net(net),
                Err(_) => break,
            }
        }
        for _ in 0..MAX_READY_PER_PUMP {
            match commands.try_recv() {
                Ok(cmd) => {
                    if t.on_command(Some(cmd)) == Flow::Stop {
                        stop = true;
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        if stop {
            break;
        }
    }
    t.goodbye().await;
    t.engine
}
