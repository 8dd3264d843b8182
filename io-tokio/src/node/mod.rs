//! Drive a [`status_sansio::node::Engine`] on tokio: one task owns the engine and sleeps until its
//! deadline; each socket has a reader task (bytes into the engine's channel) and a writer task (a
//! bounded queue out of it), so a slow peer never stalls the others. The application talks to the
//! node through [`NodeHandle`]: commands are the engine's own [`Input`] ([`NodeCommand::Input`]), plus
//! the driver's own questions (the connection table, a look at the engine, shutdown).
//!
//! Events reach the application through a bounded queue filled with `try_send`: when the application
//! does not keep up and the queue is full, the event is dropped and counted
//! ([`NodeHandle::dropped_events`]); a slow application never stalls the engine.
//!
//! The engine's outputs are carried out in one place (`task::NodeTask::carry_out`).
//!
//! DNS discovery: each [`Output::ResolveTxt`](status_sansio::node::Output::ResolveTxt) is looked up in its
//! own task through the node's [`TxtResolver`] (default [`SystemResolver`], the system configuration)
//! and answered with [`Input::DnsResolved`]; the engine keeps at most a few lookups out at once. With
//! [`NodeOptions::peer_cache_file`] the engine's peer cache is written to that file every
//! [`PEER_CACHE_SAVE_INTERVAL`] and at shutdown.
//!
//! Dials: each runs in its own task (bounded only by
//! [`DIAL_SAFETY_TIMEOUT`](status_io_std::DIAL_SAFETY_TIMEOUT)); the engine owns the dial timeout and
//! cancels a dial with `Output::Close`, which aborts the task.
//!
//! Durable state (docs/architecture.md "Persistence"): with [`NodeOptions::state_store`] every
//! `Output::Persist` batch is committed to the node's [`StateStore`] (one fsynced redb transaction, on a
//! blocking thread) and confirmed with `Input::Persisted`, after which the outputs it held back (the
//! ciphertexts, acks and events that reveal it) come out. Group commit: after each input the task also
//! takes every other input that is ready before it carries out the outputs, so there is one batch per
//! pump however many inputs it took. A failed commit is logged at ERROR and stops the node; nothing
//! after it is confirmed. The same contract, with the same names, as `status_io_std::node::BlockingNode`.
//!
//! The mailserver's [`Store`] lives on a dedicated OS thread: stores block (disk, network), and the
//! sync PostgreSQL client runs its own runtime, which panics inside a tokio worker. The node task
//! queues puts, range queries and prunes to that thread in order (so a query sees every earlier put)
//! and gets query results back as another event source; consecutive puts are written as one batch.
//!
//! Logging (`tracing`): each socket has a `peer` span with its connection number, address and
//! direction, and, once the handshake names it, the peer's short id (the first 8 hex characters of its
//! node id); the reader and writer tasks run inside it. Dials and their failures (WARN; a redial of a
//! failed address says how long the engine backed off and how many failures preceded), connections, the
//! Waku handshake, disconnects (the reason, and whether we or the peer ended it) and peer faults are
//! logged at INFO, rate-limited packets at DEBUG. [`NodeCommand::Peers`] lists the connections.

mod socket;
mod store_thread;
mod task;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use status_io_std::state::StateStore;
use status_io_std::store::Store;
use status_sansio::node::{ConnId, Engine, Event, Input};
use status_sansio::waku::{self, Filter, SubscriptionId};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

pub use crate::dns::{SystemResolver, TxtResolver};

/// How often a node with a peer cache file writes it.
pub const PEER_CACHE_SAVE_INTERVAL: Duration = Duration::from_secs(60);

/// How [`spawn_node_with_options`] runs a node.
pub struct NodeOptions {
    /// Bound of the event queue; events beyond it are dropped and counted.
    pub events: usize,
    /// The mailserver's envelopes (default: in memory).
    pub store: Box<dyn Store>,
    /// TXT lookups for DNS discovery (default: [`SystemResolver`]).
    pub resolver: Arc<dyn TxtResolver>,
    /// Write the engine's peer cache here every [`PEER_CACHE_SAVE_INTERVAL`] and at shutdown (load it
    /// with [`status_io_std::dns::load_peer_cache`] into `EngineConfig::peer_cache`). Default none.
    pub peer_cache_file: Option<PathBuf>,
    /// Called on the store thread after each batch of archived envelopes is committed, with the time
    /// the commit took and the number of envelopes (for a latency metric). Default none.
    pub on_store_commit: Option<StoreCommitHook>,
    /// The node's durable state (one redb file per data dir, e.g. `state.redb`): each
    /// [`Output::Persist`](status_sansio::node::Output::Persist) batch is committed to it (one fsynced
    /// transaction) and then confirmed with [`Input::Persisted`]. Required when the engine's Messenger is
    /// [`durable`](status_sansio::chat::messenger::MessengerConfig::durable); a failed commit stops the
    /// node. Start from what it holds with [`StateStore::load`] and
    /// [`Engine::restore`](status_sansio::node::Engine::restore). Default none.
    pub state_store: Option<StateStore>,
}

/// See [`NodeOptions::on_store_commit`].
pub type StoreCommitHook = Arc<dyn Fn(Duration, usize) + Send + Sync>;

impl NodeOptions {
    /// Defaults with an event queue of `events`.
    pub fn new(events: usize) -> Self {
        NodeOptions {
            events,
            store: Box::new(status_io_std::store::MemoryStore::default()),
            resolver: Arc::new(SystemResolver::new()),
            peer_cache_file: None,
            on_store_commit: None,
            state_store: None,
        }
    }
}

/// A connection as [`NodeCommand::Peers`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The engine's socket id.
    pub conn: ConnId,
    /// The remote address.
    pub addr: SocketAddr,
    /// True if the peer dialled us.
    pub inbound: bool,
    /// Its node id, once the handshake completed.
    pub id: Option<status_sansio::crypto::PublicKey>,
    /// Its client id (from Hello), once connected.
    pub client: Option<String>,
    /// The Waku dialect attached, once connected.
    pub dialect: Option<waku::Dialect>,
}

/// The first 8 hex characters of a node id, as logs show peers.
pub fn short_id(id: &status_sansio::crypto::PublicKey) -> String {
    status_sansio::crypto::pubkey_to_raw64(id)
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The result of an engine input, as [`NodeCommand::InputChecked`] sends it back.
pub type InputResult<T = ()> = Result<T, status_sansio::Error>;

/// A command for the node task.
#[derive(Debug)]
pub enum NodeCommand {
    /// An engine input (a Waku or Messenger command, a static peer, a history request, ...); a refusal
    /// is logged at WARN.
    Input(Input<'static>),
    /// An engine input whose result (accepted, or why it was refused) is sent back. The input is
    /// carried out even if the caller stopped waiting.
    InputChecked(Input<'static>, oneshot::Sender<InputResult>),
    /// Subscribe a Waku filter under an id the engine picks (an
    /// `Input::Waku(waku::Input::Subscribe { id, filter })` with [`Engine::unused_subscription_id`]),
    /// and send back the id.
    Subscribe(Filter, oneshot::Sender<InputResult<SubscriptionId>>),
    /// The current connections.
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    /// Run this on the engine (to read counters, or to export state) inside the node task.
    Inspect(Inspector),
    /// Stop the node: every peer hears a goodbye, the peer cache is saved, the task yields the engine.
    Shutdown,
}

/// A job for [`NodeCommand::Inspect`].
pub struct Inspector(pub Box<dyn FnOnce(&Engine) + Send + Sync>);

impl core::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Inspector")
    }
}

/// Counts events dropped because the application's queue was full.
#[derive(Debug, Default, Clone)]
pub struct DroppedEvents(Arc<AtomicU64>);

impl DroppedEvents {
    /// Events dropped so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Set when a state commit failed and the node stopped (see [`NodeOptions::state_store`]).
#[derive(Debug, Default, Clone)]
pub struct StateFailed(Arc<std::sync::atomic::AtomicBool>);

impl StateFailed {
    /// True once a commit failed: the node stopped without confirming the batch.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Handle to a running node.
pub struct NodeHandle {
    /// Commands to the node.
    pub commands: mpsc::Sender<NodeCommand>,
    /// Events from the node; closed when it stops.
    pub events: mpsc::Receiver<Event>,
    /// The node task: after [`NodeCommand::Shutdown`] (or when every command sender is dropped) it
    /// ends and yields the engine, so its state can be exported (see [`NodeHandle::shutdown`]).
    pub task: tokio::task::JoinHandle<Engine>,
    /// Events dropped because [`NodeHandle::events`] was full (shared with the node task).
    pub dropped: DroppedEvents,
    /// Set if the node stopped because a state commit failed (shared with the node task).
    pub state_failed: StateFailed,
}

fn gone<E>(_: E) -> io::Error {
    io::Error::other("the node has stopped")
}

impl NodeHandle {
    /// Events dropped so far because the application did not take them fast enough.
    pub fn dropped_events(&self) -> u64 {
        self.dropped.get()
    }

    /// Feed an engine input and wait for its result (the outer `Err`: the node has stopped).
    pub async fn input(&self, input: Input<'static>) -> io::Result<InputResult> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(NodeCommand::InputChecked(input, tx))
            .await
            .map_err(gone)?;
        rx.await.map_err(gone)
    }

    /// Subscribe a Waku filter.
    pub async fn subscribe(&self, filter: Filter) -> io::Result<InputResult<SubscriptionId>> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(NodeCommand::Subscribe(filter, tx))
            .await
            .map_err(gone)?;
        rx.await.map_err(gone)
    }

    /// The current connections.
    pub async fn peers(&self) -> io::Result<Vec<PeerInfo>> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(NodeCommand::Peers(tx)).await.map_err(gone)?;
        rx.await.map_err(gone)
    }

    /// Stop the node and take its engine back (to export the Messenger's state, for example).
    pub async fn shutdown(self) -> io::Result<Engine> {
        // The task may already have stopped (events receiver dropped); then it yields the engine anyway.
        if self.commands.send(NodeCommand::Shutdown).await.is_err() {
            tracing::debug!("the node task had already stopped");
        }
        drop(self.events);
        self.task.await.map_err(io::Error::other)
    }

    /// Run `f` on the engine inside the node task and return its result.
    pub async fn inspect<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Engine) -> T + Send + Sync + 'static,
    ) -> io::Result<T> {
        let (tx, rx) = oneshot::channel();
        let job = Inspector(Box::new(move |e| {
            // The caller may have gone away; then nobody wants the answer.
            tx.send(f(e)).ok();
        }));
        self.commands
            .send(NodeCommand::Inspect(job))
            .await
            .map_err(gone)?;
        rx.await.map_err(gone)
    }

    /// Send a Waku command (a refusal is logged by the node).
    pub async fn waku(&self, input: waku::Input) -> io::Result<()> {
        self.commands
            .send(NodeCommand::Input(Input::Waku(input)))
            .await
            .map_err(gone)
    }
}

/// Run `engine` in its own task, accepting on `listener` if given. `events` bounds the event queue.
pub fn spawn_node(engine: Engine, listener: Option<TcpListener>, events: usize) -> NodeHandle {
    spawn_node_with_options(engine, listener, NodeOptions::new(events))
}

/// As [`spawn_node`], with the mailserver's envelopes in `store`, which is moved to (and dropped on)
/// its own thread, so a blocking store such as [`PostgresStore`](status_io_std::store::PostgresStore)
/// is fine here. Construct such a store outside the runtime or in `spawn_blocking`.
pub fn spawn_node_with_store(
    engine: Engine,
    listener: Option<TcpListener>,
    events: usize,
    store: Box<dyn Store>,
) -> NodeHandle {
    let mut options = NodeOptions::new(events);
    options.store = store;
    spawn_node_with_options(engine, listener, options)
}

/// Run `engine` in its own task with `options` (store, resolver, peer cache file).
pub fn spawn_node_with_options(
    engine: Engine,
    listener: Option<TcpListener>,
    options: NodeOptions,
) -> NodeHandle {
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let NodeOptions {
        events,
        store,
        resolver,
        peer_cache_file,
        on_store_commit,
        state_store,
    } = options;
    let (ev_tx, ev_rx) = mpsc::channel(events.max(1));
    let dropped = DroppedEvents::default();
    let state_failed = StateFailed::default();
    let (store, worker) = store_thread::start(store, on_store_commit);
    let app = task::App {
        commands: cmd_rx,
        events: ev_tx,
        dropped: dropped.clone(),
        state_failed: state_failed.clone(),
    };
    let task = tokio::spawn(async move {
        let engine = task::run(
            engine,
            listener,
            app,
            store,
            resolver,
            peer_cache_file,
            state_store,
        )
        .await;
        // `run` dropped the operations sender: the thread finishes what was queued, closes the store
        // and ends.
        if let Some(w) = worker {
            match tokio::task::spawn_blocking(move || w.join()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => tracing::error!("the store thread panicked"),
                Err(e) => tracing::error!("waiting for the store thread: {e}"),
            }
        }
        engine
    });
    NodeHandle {
        commands: cmd_tx,
        events: ev_rx,
        task,
        dropped,
        state_failed,
    }
}
