//! Async driver for status-sansio on tokio.
//!
//! [`RlpxStream`] drives one RLPx [`Connection`] over a tokio [`TcpStream`]: `next_event` selects over
//! the socket and the engine's deadline. [`spawn`] runs one in its own task and talks to it over channels
//! (commands in, events out), which is how a node with many peers uses it. Clock and seed come from
//! [`status_io_std::Clock`] and [`status_io_std::os_seed`], so both drivers see time the same way.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;

use status_io_std::{os_seed, Clock};
use status_sansio::crypto::PublicKey;
use status_sansio::enode::Enode;
use status_sansio::rlpx::{Config, Connection, DisconnectReason, Event, Input, Output, RlpxError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const READ_CHUNK: usize = 64 * 1024;

fn to_io(e: RlpxError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e)
}

/// An RLPx [`Connection`] driven over a tokio [`TcpStream`].
pub struct RlpxStream {
    stream: TcpStream,
    conn: Connection,
    clock: Clock,
    events: VecDeque<Event>,
    /// Bytes the engine produced and the socket has not taken yet (kept here so a cancelled write
    /// loses nothing).
    out: BytesMut,
    close_requested: bool,
    closed: bool,
    buf: Vec<u8>,
}

impl RlpxStream {
    /// Dial the node named by an `enode://` URL.
    pub async fn connect(enode: &Enode, config: Arc<Config>) -> io::Result<Self> {
        Self::connect_addr(enode.addr, enode.id, config).await
    }

    /// Dial `addr`, expecting the node identity `remote_id`.
    pub async fn connect_addr(
        addr: SocketAddr,
        remote_id: PublicKey,
        config: Arc<Config>,
    ) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        let clock = Clock::new();
        let conn = Connection::initiator(config, remote_id, &os_seed(), clock.now()).map_err(to_io)?;
        Self::new(stream, conn, clock).await
    }

    /// Accept one inbound connection.
    pub async fn accept(listener: &TcpListener, config: Arc<Config>) -> io::Result<Self> {
        let (stream, _) = listener.accept().await?;
        let clock = Clock::new();
        let conn = Connection::recipient(config, &os_seed(), clock.now()).map_err(to_io)?;
        Self::new(stream, conn, clock).await
    }

    /// Drive an existing connection over an existing stream.
    pub async fn new(stream: TcpStream, conn: Connection, clock: Clock) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        let mut s = RlpxStream {
            stream,
            conn,
            clock,
            events: VecDeque::new(),
            out: BytesMut::new(),
            close_requested: false,
            closed: false,
            buf: vec![0; READ_CHUNK],
        };
        s.flush().await;
        Ok(s)
    }

    /// The connection state machine.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Send a sub-protocol message.
    pub async fn send(&mut self, capability: &str, code: u64, payload: &[u8]) -> io::Result<()> {
        let now = self.clock.now();
        self.conn
            .handle_input(
                now,
                Input::Send {
                    capability,
                    code,
                    payload,
                },
            )
            .map_err(to_io)?;
        self.flush().await;
        Ok(())
    }

    /// Send a Ping; the answer arrives as [`Event::Pong`].
    pub async fn ping(&mut self) -> io::Result<()> {
        let now = self.clock.now();
        self.conn.handle_input(now, Input::Ping).map_err(to_io)?;
        self.flush().await;
        Ok(())
    }

    /// Disconnect; keep calling [`RlpxStream::next_event`] until it returns `None`.
    pub async fn disconnect(&mut self, reason: DisconnectReason) -> io::Result<()> {
        let now = self.clock.now();
        self.conn
            .handle_input(now, Input::Disconnect(reason))
            .map_err(to_io)?;
        self.flush().await;
        Ok(())
    }

    /// Move the engine's outputs into the write buffer and the event queue.
    fn collect(&mut self) {
        while let Some(o) = self.conn.poll_output() {
            match o {
                Output::Transmit(b) => self.out.extend_from_slice(&b),
                Output::Event(e) => self.events.push_back(e),
                Output::Close => self.close_requested = true,
                _ => {}
            }
        }
    }

    /// Write everything pending, then honour Close. Cancel-safe: `write_buf` advances the buffer only by
    /// what was written.
    async fn flush(&mut self) {
        self.collect();
        while !self.out.is_empty() && !self.closed {
            match self.stream.write_buf(&mut self.out).await {
                Ok(n) if n > 0 => {}
                _ => {
                    self.out.clear();
                    let _ = self.conn.handle_input(self.clock.now(), Input::TransportClosed);
                    self.collect();
                    self.out.clear();
                }
            }
        }
        if self.close_requested && !self.closed {
            let _ = self.stream.shutdown().await;
            self.closed = true;
        }
    }

    /// Wait for the next event; `Ok(None)` once closed and drained. Cancel-safe: dropping the future
    /// between polls loses no bytes (a read either completed and was fed, or did not happen).
    pub async fn next_event(&mut self) -> io::Result<Option<Event>> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(Some(e));
            }
            if !self.out.is_empty() || self.close_requested {
                self.flush().await;
            }
            if self.closed {
                return self.events.pop_front().map_or(Ok(None), |e| Ok(Some(e)));
            }
            let deadline = self.conn.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep(self.clock.until(d)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = self.stream.read(&mut self.buf) => {
                    let now = self.clock.now();
                    match r {
                        Ok(0) | Err(_) => { let _ = self.conn.handle_input(now, Input::TransportClosed); }
                        Ok(n) => { let _ = self.conn.handle_input(now, Input::Receive(&self.buf[..n])); }
                    }
                }
                _ = sleep => self.conn.handle_timeout(self.clock.now()),
            }
            self.flush().await;
        }
    }
}

/// A command for a spawned connection task.
#[derive(Debug, Clone)]
pub enum Command {
    /// Send a sub-protocol message.
    Send {
        /// Capability name.
        capability: String,
        /// Code within the capability.
        code: u64,
        /// msg-data.
        payload: Vec<u8>,
    },
    /// Send a Ping.
    Ping,
    /// Disconnect with a reason.
    Disconnect(DisconnectReason),
}

/// Handle to a connection running in its own task.
pub struct Handle {
    /// Commands to the task.
    pub commands: mpsc::Sender<Command>,
    /// Events from the task; closed when the connection is.
    pub events: mpsc::Receiver<Event>,
}

/// Run `stream` in its own task: commands in, events out. Events are delivered through a bounded channel
/// of `capacity`; the task stops reading the socket while the application is not taking events
/// (backpressure instead of unbounded buffering).
pub fn spawn(mut stream: RlpxStream, capacity: usize) -> Handle {
    let (cmd_tx, mut cmd_rx) = mpsc::channel::<Command>(capacity);
    let (ev_tx, ev_rx) = mpsc::channel::<Event>(capacity);
    tokio::spawn(async move {
        let mut commands_open = true;
        loop {
            tokio::select! {
                cmd = cmd_rx.recv(), if commands_open => {
                    let r = match cmd {
                        Some(Command::Send { capability, code, payload }) => stream.send(&capability, code, &payload).await,
                        Some(Command::Ping) => stream.ping().await,
                        Some(Command::Disconnect(r)) => stream.disconnect(r).await,
                        None => { commands_open = false; stream.disconnect(DisconnectReason::ClientQuitting).await }
                    };
                    if let Err(e) = r {
                        // Misuse by the application (e.g. sending before Connected); the connection is
                        // unaffected.
                        tracing::warn!("command refused: {e}");
                    }
                }
                ev = stream.next_event() => match ev {
                    Ok(Some(e)) => if ev_tx.send(e).await.is_err() { let _ = stream.disconnect(DisconnectReason::ClientQuitting).await; },
                    Ok(None) | Err(_) => break,
                },
            }
        }
    });
    Handle {
        commands: cmd_tx,
        events: ev_rx,
    }
}

pub mod node {
    //! Drive a [`status_sansio::node::Engine`] on tokio: one task owns the engine and sleeps until its
    //! deadline; each socket has a reader task (bytes into the engine's channel) and a writer task (a
    //! bounded queue out of it), so a slow peer never stalls the others. The application talks to the
    //! node through [`NodeHandle`].
    //!
    //! DNS discovery: each [`Output::ResolveTxt`] is looked up in its own task through the node's
    //! [`TxtResolve`] (default [`HickoryResolver`], the system configuration) and answered with
    //! [`Input::DnsResolved`]; the engine keeps at most a few lookups out at once. With
    //! [`NodeOptions::peer_cache_file`] the engine's peer cache is written to that file every
    //! [`PEER_CACHE_SAVE_INTERVAL`] and at shutdown.
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

    use std::collections::BTreeMap;
    use std::future::Future;
    use std::io;
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::pin::Pin;
    use std::sync::{Arc, OnceLock};
    use std::time::Duration;

    use hickory_resolver::TokioResolver;
    use status_io_std::dns::{fqdn, save_peer_cache, txt_texts};

    use bytes::Bytes;
    use status_io_std::store::Store;
    use status_io_std::Clock;
    use status_sansio::enode::Enode;
    use status_sansio::mailserver::server::{QueryId, KEY_LEN};
    use status_sansio::node::{ConnId, Engine, Event, Input, Output, StorageOp};
    use status_sansio::waku::{self, Filter, SubscriptionId, WakuError};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::{mpsc, oneshot};

    /// Most addresses whose dial failures are remembered for the redial log line.
    const MAX_FAILED_ADDRS: usize = 1024;

    /// Per-socket write queue depth (chunks); a peer that falls this far behind is disconnected.
    const WRITE_QUEUE: usize = 1024;

    /// Longest a single socket write may take before the socket is given up.
    const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

    /// How often a node with a peer cache file writes it.
    pub const PEER_CACHE_SAVE_INTERVAL: Duration = Duration::from_secs(60);

    /// A TXT lookup in progress.
    pub type TxtFuture<'a> = Pin<Box<dyn Future<Output = io::Result<Vec<String>>> + Send + 'a>>;

    /// Looks up TXT records for DNS discovery. Each record's strings are joined into one text (EIP-1459).
    pub trait TxtResolve: Send + Sync {
        /// The TXT records of `name`; `Err` if the lookup failed (NXDOMAIN included).
        fn resolve_txt(&self, name: String) -> TxtFuture<'_>;
    }

    /// The system resolver through `hickory-resolver` (`/etc/resolv.conf`), built on first use; a
    /// system without a usable configuration fails every lookup.
    #[derive(Default)]
    pub struct HickoryResolver {
        inner: OnceLock<Result<TokioResolver, String>>,
    }

    impl HickoryResolver {
        /// A resolver with the system configuration.
        pub fn new() -> Self {
            Self::default()
        }
    }

    impl TxtResolve for HickoryResolver {
        fn resolve_txt(&self, name: String) -> TxtFuture<'_> {
            Box::pin(async move {
                let inner = self.inner.get_or_init(|| {
                    TokioResolver::builder_tokio()
                        .map(|b| b.build())
                        .map_err(|e| e.to_string())
                });
                let resolver = inner.as_ref().map_err(|e| io::Error::other(e.clone()))?;
                let lookup = resolver.txt_lookup(fqdn(&name)).await.map_err(io::Error::other)?;
                Ok(txt_texts(&lookup))
            })
        }
    }

    /// How [`spawn_node_with_options`] runs a node.
    pub struct NodeOptions {
        /// Bound of the event queue.
        pub events: usize,
        /// The mailserver's envelopes (default: in memory).
        pub store: Box<dyn status_io_std::store::Store>,
        /// TXT lookups for DNS discovery (default: [`HickoryResolver`]).
        pub resolver: Arc<dyn TxtResolve>,
        /// Write the engine's peer cache here every [`PEER_CACHE_SAVE_INTERVAL`] and at shutdown (load it
        /// with [`status_io_std::dns::load_peer_cache`] into `EngineConfig::peer_cache`). Default none.
        pub peer_cache_file: Option<PathBuf>,
        /// Called on the store thread after each batch of archived envelopes is committed, with the time
        /// the commit took and the number of envelopes (for a latency metric). Default none.
        pub on_store_commit: Option<StoreCommitHook>,
    }

    /// See [`NodeOptions::on_store_commit`].
    pub type StoreCommitHook = Arc<dyn Fn(Duration, usize) + Send + Sync>;

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

    impl NodeOptions {
        /// Defaults with an event queue of `events`.
        pub fn new(events: usize) -> Self {
            NodeOptions {
                events,
                store: Box::new(status_io_std::store::MemoryStore::default()),
                resolver: Arc::new(HickoryResolver::new()),
                peer_cache_file: None,
                on_store_commit: None,
            }
        }
    }

    /// Storage operations waiting for the store thread; when full, the node task waits (backpressure).
    const STORE_QUEUE: usize = 1024;

    /// Most puts the store thread writes in one batch.
    const PUT_BATCH: usize = 512;

    /// A command for the node task.
    #[derive(Debug)]
    pub enum NodeCommand {
        /// A Waku command (post, broadcast, trust, ...).
        Waku(waku::Input),
        /// Subscribe a filter.
        Subscribe(Filter, oneshot::Sender<Result<SubscriptionId, WakuError>>),
        /// Keep this peer connected.
        AddStaticPeer(Enode),
        /// A peer to dial when below the target.
        AddPeerCandidate(Enode),
        /// The engine's peer cache as bytes.
        ExportPeerCache(oneshot::Sender<Vec<u8>>),
        /// A Messenger command (join a chat, send a text); a refusal is logged.
        Chat(status_sansio::chat::messenger::Input),
        /// A Messenger command whose result (accepted, or why it was refused) is sent back.
        ChatChecked(
            status_sansio::chat::messenger::Input,
            oneshot::Sender<Result<(), status_sansio::Error>>,
        ),
        /// The current connections.
        Peers(oneshot::Sender<Vec<PeerInfo>>),
        /// Run this on the engine (to read counters or state) inside the node task.
        Inspect(Inspector),
        /// Export the Messenger's state (`None` without a Messenger), to save it.
        ExportMessenger(oneshot::Sender<Option<zeroize::Zeroizing<Vec<u8>>>>),
        /// Export the history client's last-seen times (see `Engine::export_history`), to save them.
        ExportHistory(oneshot::Sender<Vec<u8>>),
        /// Stop the node.
        Shutdown,
    }

    /// A job for [`NodeCommand::Inspect`].
    pub struct Inspector(pub Box<dyn FnOnce(&Engine) + Send + Sync>);

    impl core::fmt::Debug for Inspector {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.write_str("Inspector")
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
    }

    impl NodeHandle {
        /// Subscribe a Waku filter.
        pub async fn subscribe(&self, filter: Filter) -> io::Result<Result<SubscriptionId, WakuError>> {
            let (tx, rx) = oneshot::channel();
            self.commands
                .send(NodeCommand::Subscribe(filter, tx))
                .await
                .map_err(io::Error::other)?;
            rx.await.map_err(io::Error::other)
        }

        /// Stop the node and take its engine back (to export the Messenger's state, for example).
        pub async fn shutdown(self) -> io::Result<Engine> {
            // The task may already have stopped (events receiver dropped); then the send fails harmlessly.
            let _ = self.commands.send(NodeCommand::Shutdown).await;
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
                let _ = tx.send(f(e));
            }));
            self.commands
                .send(NodeCommand::Inspect(job))
                .await
                .map_err(io::Error::other)?;
            rx.await.map_err(io::Error::other)
        }

        /// Send a Waku command.
        pub async fn waku(&self, input: waku::Input) -> io::Result<()> {
            self.commands
                .send(NodeCommand::Waku(input))
                .await
                .map_err(io::Error::other)
        }
    }

    enum Net {
        Read(ConnId, Vec<u8>),
        Eof(ConnId),
        Dialed(ConnId, io::Result<TcpStream>),
        Resolved(String, Option<Vec<String>>),
    }

    /// Run `engine` in its own task, accepting on `listener` if given. `events` bounds the event queue.
    pub fn spawn_node(engine: Engine, listener: Option<TcpListener>, events: usize) -> NodeHandle {
        spawn_node_with_store(
            engine,
            listener,
            events,
            Box::new(status_io_std::store::MemoryStore::default()),
        )
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
        } = options;
        let (ev_tx, ev_rx) = mpsc::channel(events);
        let (op_tx, op_rx) = mpsc::channel(STORE_QUEUE);
        // At most one query per request being served is in flight, so the mailserver's `max_active`
        // bounds this channel.
        let (res_tx, res_rx) = mpsc::unbounded_channel();
        let worker = std::thread::Builder::new()
            .name("status-store".into())
            .spawn(move || store_thread(store, op_rx, res_tx, on_store_commit));
        let worker = match worker {
            Ok(w) => Some(w),
            Err(e) => {
                // The operations channel is closed: writes fail and queries come back empty.
                tracing::error!("cannot start the store thread: {e}");
                None
            }
        };
        let store = StoreLink {
            ops: op_tx,
            results: res_rx,
        };
        let task = tokio::spawn(async move {
            let engine = run(engine, listener, cmd_rx, ev_tx, store, resolver, peer_cache_file).await;
            // `run` dropped the operations sender: the thread finishes what was queued, closes the store
            // and ends.
            if let Some(w) = worker {
                let _ = tokio::task::spawn_blocking(move || w.join()).await;
            }
            engine
        });
        NodeHandle {
            commands: cmd_tx,
            events: ev_rx,
            task,
        }
    }

    type Entries = Vec<([u8; KEY_LEN], Bytes)>;

    enum StoreOp {
        Put([u8; KEY_LEN], Bytes),
        Range {
            query: QueryId,
            start: [u8; KEY_LEN],
            end: [u8; KEY_LEN],
            limit: usize,
        },
        Prune(u32),
    }

    struct StoreLink {
        ops: mpsc::Sender<StoreOp>,
        results: mpsc::UnboundedReceiver<(QueryId, Entries)>,
    }

    fn store_thread(
        mut store: Box<dyn Store>,
        mut ops: mpsc::Receiver<StoreOp>,
        results: mpsc::UnboundedSender<(QueryId, Entries)>,
        on_commit: Option<StoreCommitHook>,
    ) {
        let mut next = ops.blocking_recv();
        while let Some(op) = next.take() {
            match op {
                StoreOp::Put(key, value) => {
                    let mut batch = vec![(key, value)];
                    while batch.len() < PUT_BATCH {
                        match ops.try_recv() {
                            Ok(StoreOp::Put(k, v)) => batch.push((k, v)),
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    let (n, started) = (batch.len(), std::time::Instant::now());
                    match store.put_batch(batch) {
                        Ok(()) => {
                            if let Some(hook) = &on_commit {
                                hook(started.elapsed(), n);
                            }
                        }
                        Err(e) => tracing::warn!(envelopes = n, "mailserver store: {e}"),
                    }
                }
                StoreOp::Range {
                    query,
                    start,
                    end,
                    limit,
                } => {
                    // A failed read answers with nothing (the request completes without envelopes).
                    let entries = store.range(start, end, limit).unwrap_or_else(|e| {
                        tracing::warn!("mailserver query: {e}");
                        vec![]
                    });
                    if results.send((query, entries)).is_err() {
                        return;
                    }
                }
                StoreOp::Prune(before) => {
                    if let Err(e) = store.prune(before) {
                        tracing::warn!("mailserver prune: {e}");
                    }
                }
            }
            if next.is_none() {
                next = ops.blocking_recv();
            }
        }
    }

    /// A socket's tasks as the node task holds them: the writer's queue, and the reader to stop when the
    /// engine closes the socket (dropping both halves closes it; the writer drops its half once it has
    /// written what was queued).
    struct Socket {
        writer: mpsc::Sender<bytes::Bytes>,
        reader: Option<tokio::task::AbortHandle>,
    }

    /// What the node task knows of a socket, for logs and [`NodeCommand::Peers`].
    struct Link {
        info: PeerInfo,
        span: tracing::Span,
    }

    fn link(conn: ConnId, addr: SocketAddr, inbound: bool) -> Link {
        // Dials carry the engine's high id bit; the log shows the number without it.
        let span = tracing::info_span!(
            "peer",
            conn = conn.0 & (u64::MAX >> 1),
            %addr,
            dir = if inbound { "in" } else { "out" },
            id = tracing::field::Empty
        );
        Link {
            info: PeerInfo {
                conn,
                addr,
                inbound,
                id: None,
                client: None,
                dialect: None,
            },
            span,
        }
    }

    /// Log an engine event in its peer's span, keeping the connection table current.
    fn log_event(links: &mut BTreeMap<ConnId, Link>, e: &Event) {
        match e {
            Event::PeerConnected {
                conn,
                id,
                client,
                dialect,
            } => {
                let dialect_name = dialect.map(|d| d.capability()).unwrap_or("none");
                if let Some(l) = links.get_mut(conn) {
                    l.span.record("id", short_id(id));
                    l.info.id = Some(*id);
                    l.info.client = Some(client.clone());
                    l.info.dialect = *dialect;
                    let _g = l.span.enter();
                    tracing::info!(%client, dialect = dialect_name, "peer connected");
                } else {
                    tracing::info!(conn = conn.0, id = %short_id(id), %client, dialect = dialect_name, "peer connected");
                }
            }
            Event::PeerDisconnected {
                conn,
                id,
                reason,
                remote,
            } => {
                let by = if *remote { "peer" } else { "us" };
                let id = id.as_ref().map(short_id).unwrap_or_else(|| "-".into());
                match links.remove(conn) {
                    Some(l) => {
                        let _g = l.span.enter();
                        tracing::info!(%reason, by, "peer disconnected");
                    }
                    None => tracing::info!(conn = conn.0, %id, %reason, by, "peer disconnected"),
                }
            }
            Event::Waku(w) => {
                let peer_span = |peer: &waku::ConnId| {
                    links
                        .get(peer)
                        .map(|l| l.span.clone())
                        .unwrap_or_else(tracing::Span::none)
                };
                match w {
                    waku::Event::PeerReady { peer, options } => {
                        let _g = peer_span(peer).entered();
                        tracing::info!(
                            pow = ?options.pow_requirement,
                            light = ?options.light_node,
                            "waku handshake done"
                        );
                    }
                    waku::Event::PeerFault {
                        peer,
                        fault,
                        disconnected,
                    } => {
                        let _g = peer_span(peer).entered();
                        tracing::info!(%fault, disconnected, "peer fault: message dropped");
                    }
                    waku::Event::RateLimited { peer } => {
                        let _g = peer_span(peer).entered();
                        tracing::debug!("packet dropped: rate limit");
                    }
                    waku::Event::PostFailed { error } => tracing::warn!(%error, "post failed"),
                    other => tracing::trace!(event = ?other, "waku"),
                }
            }
            _ => {}
        }
    }

    impl Drop for Socket {
        fn drop(&mut self) {
            // Without this a peer that keeps its end open would keep the read half, the task and the
            // descriptor alive for ever.
            if let Some(r) = self.reader.take() {
                r.abort();
            }
        }
    }

    /// How long a socket keeps reading after we said goodbye, so the peer can read our Disconnect (a
    /// socket closed with unread input is reset, and a reset can discard what we wrote last).
    const GOODBYE_LINGER: Duration = Duration::from_secs(2);

    impl Socket {
        /// Close gracefully: the writer finishes what is queued, and the reader is stopped only after
        /// [`GOODBYE_LINGER`] (or when the peer closes first).
        fn linger(mut self) {
            if let Some(r) = self.reader.take() {
                tokio::spawn(async move {
                    tokio::time::sleep(GOODBYE_LINGER).await;
                    r.abort();
                });
            }
        }
    }

    /// Stop: every peer hears why we go (ClientQuitting) before its socket closes gracefully.
    fn goodbye(engine: &mut Engine, writers: &mut BTreeMap<ConnId, Socket>, now: status_sansio::Timestamp) {
        engine.disconnect_all(now, status_sansio::rlpx::DisconnectReason::ClientQuitting);
        while let Some(o) = engine.poll_output() {
            if let Output::Transmit { conn, data } = o {
                if let Some(w) = writers.get(&conn) {
                    let _ = w.writer.try_send(data);
                }
            }
        }
        for (_, w) in std::mem::take(writers) {
            w.linger();
        }
    }

    fn start_socket(
        stream: TcpStream,
        conn: ConnId,
        net: &mpsc::Sender<Net>,
        writers: &mut BTreeMap<ConnId, Socket>,
        span: tracing::Span,
    ) {
        use tracing::Instrument;
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(parent: &span, "TCP_NODELAY: {e}");
        }
        let (mut r, mut w) = stream.into_split();
        let net = net.clone();
        let reader = tokio::spawn(
            async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match r.read(&mut buf).await {
                        Ok(0) => {
                            tracing::debug!("the peer closed the connection");
                            let _ = net.send(Net::Eof(conn)).await;
                            break;
                        }
                        Err(e) => {
                            tracing::debug!("read error: {e}");
                            let _ = net.send(Net::Eof(conn)).await;
                            break;
                        }
                        Ok(n) => {
                            if net.send(Net::Read(conn, buf[..n].to_vec())).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            }
            .instrument(span.clone()),
        );
        let (tx, mut rx) = mpsc::channel::<bytes::Bytes>(WRITE_QUEUE);
        tokio::spawn(
            async move {
                // A peer that stops reading cannot pin this task: a write that makes no progress for
                // WRITE_TIMEOUT ends it (and with it the socket's write half).
                while let Some(b) = rx.recv().await {
                    match tokio::time::timeout(WRITE_TIMEOUT, w.write_all(&b)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            tracing::debug!("write error: {e}");
                            return;
                        }
                        Err(_) => {
                            tracing::info!("write timed out: the peer does not read");
                            return;
                        }
                    }
                }
                let _ = tokio::time::timeout(WRITE_TIMEOUT, w.shutdown()).await;
            }
            .instrument(span),
        );
        writers.insert(
            conn,
            Socket {
                writer: tx,
                reader: Some(reader.abort_handle()),
            },
        );
    }

    async fn run(
        mut engine: Engine,
        listener: Option<TcpListener>,
        mut cmds: mpsc::Receiver<NodeCommand>,
        events: mpsc::Sender<Event>,
        mut store: StoreLink,
        resolver: Arc<dyn TxtResolve>,
        peer_cache_file: Option<PathBuf>,
    ) -> Engine {
        let save = |engine: &Engine| {
            if let Some(path) = &peer_cache_file {
                if let Err(e) = save_peer_cache(path, &engine.export_peer_cache()) {
                    tracing::warn!("peer cache: {e}");
                }
            }
        };
        let mut save_timer = tokio::time::interval(PEER_CACHE_SAVE_INTERVAL);
        save_timer.tick().await;
        let clock = Clock::new();
        let (net_tx, mut net_rx) = mpsc::channel::<Net>(1024);
        let mut writers: BTreeMap<ConnId, Socket> = BTreeMap::new();
        let mut links: BTreeMap<ConnId, Link> = BTreeMap::new();
        // Addresses whose last dial failed: when and how many times in a row, so a redial shows the
        // backoff the engine waited (bounded; cleared when the peer connects).
        let mut failed: BTreeMap<SocketAddr, (std::time::Instant, u32)> = BTreeMap::new();
        let mut next_accept = 1u64;
        loop {
            // Carry out what the engine asked for.
            while let Some(o) = engine.poll_output() {
                match o {
                    Output::Dial { conn, addr } => {
                        let l = link(conn, addr, false);
                        match failed.get(&addr) {
                            Some((at, n)) => tracing::info!(
                                parent: &l.span,
                                failures = n,
                                backoff_s = at.elapsed().as_secs(),
                                "redialling after backoff"
                            ),
                            None => tracing::info!(parent: &l.span, "dialing"),
                        }
                        links.insert(conn, l);
                        let tx = net_tx.clone();
                        tokio::spawn(async move {
                            let r = tokio::time::timeout(
                                std::time::Duration::from_secs(10),
                                TcpStream::connect(addr),
                            )
                            .await
                            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "dial timeout")));
                            let _ = tx.send(Net::Dialed(conn, r)).await;
                        });
                    }
                    Output::Transmit { conn, data } => {
                        let full = match writers.get(&conn) {
                            Some(w) => w.writer.try_send(data).is_err(),
                            None => false,
                        };
                        if full {
                            // The peer is not reading: drop it rather than buffer without bound.
                            if let Some(l) = links.get(&conn) {
                                tracing::info!(parent: &l.span, "write queue full: dropping the peer");
                            }
                            writers.remove(&conn);
                            let _ = engine.handle_input(clock.now(), Input::Closed { conn });
                        }
                    }
                    Output::Close { conn } => {
                        writers.remove(&conn);
                        // A socket closed before the handshake named its peer has no PeerDisconnected.
                        if links.get(&conn).is_some_and(|l| l.info.id.is_none()) {
                            if let Some(l) = links.remove(&conn) {
                                tracing::debug!(parent: &l.span, "closed before the handshake completed");
                            }
                        }
                    }
                    Output::Storage(StorageOp::Store { key, value }) => {
                        let sent = store.ops.send(StoreOp::Put(key, value)).await;
                        if sent.is_err() {
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
                        if store.ops.send(op).await.is_err() {
                            tracing::warn!("mailserver query: the store thread is gone");
                            let entries = vec![];
                            let _ = engine.handle_input(clock.now(), Input::QueryResult { query, entries });
                        }
                    }
                    Output::Storage(StorageOp::Prune { before }) => {
                        let sent = store.ops.send(StoreOp::Prune(before)).await;
                        if sent.is_err() {
                            tracing::warn!("mailserver prune: the store thread is gone");
                        }
                    }
                    Output::ResolveTxt { name } => {
                        let (tx, resolver) = (net_tx.clone(), resolver.clone());
                        tokio::spawn(async move {
                            let txt = resolver.resolve_txt(name.clone()).await.ok();
                            let _ = tx.send(Net::Resolved(name, txt)).await;
                        });
                    }
                    Output::Event(e) => {
                        if let Event::PeerConnected { conn, .. } = &e {
                            if let Some(l) = links.get(conn) {
                                failed.remove(&l.info.addr);
                            }
                        }
                        log_event(&mut links, &e);
                        if events.send(e).await.is_err() {
                            goodbye(&mut engine, &mut writers, clock.now());
                            save(&engine);
                            return engine;
                        }
                    }
                    // Outputs added after this driver was written.
                    _ => {}
                }
            }
            let deadline = engine.poll_timeout();
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
                cmd = cmds.recv() => {
                    let now = clock.now();
                    match cmd {
                        Some(NodeCommand::Waku(w)) => { let _ = engine.handle_input(now, Input::Waku(w)); }
                        Some(NodeCommand::Subscribe(f, reply)) => { let _ = reply.send(engine.subscribe(f)); }
                        Some(NodeCommand::AddStaticPeer(e)) => { let _ = engine.handle_input(now, Input::AddStaticPeer(e)); }
                        Some(NodeCommand::Chat(c)) => {
                            if let Err(e) = engine.handle_input(now, Input::Chat(c)) {
                                tracing::warn!("chat command refused: {e}");
                            }
                        }
                        Some(NodeCommand::ChatChecked(c, reply)) => {
                            // The caller may have stopped waiting; the command was still carried out.
                            let _ = reply.send(engine.handle_input(now, Input::Chat(c)));
                        }
                        Some(NodeCommand::Peers(reply)) => {
                            let _ = reply.send(links.values().map(|l| l.info.clone()).collect());
                        }
                        Some(NodeCommand::Inspect(f)) => (f.0)(&engine),
                        Some(NodeCommand::AddPeerCandidate(e)) => { let _ = engine.handle_input(now, Input::AddPeerCandidate(e)); }
                        Some(NodeCommand::ExportPeerCache(reply)) => { let _ = reply.send(engine.export_peer_cache()); }
                        Some(NodeCommand::ExportMessenger(reply)) => { let _ = reply.send(engine.export_messenger()); }
                        Some(NodeCommand::ExportHistory(reply)) => { let _ = reply.send(engine.export_history()); }
                        Some(NodeCommand::Shutdown) | None => {
                            goodbye(&mut engine, &mut writers, now);
                            save(&engine);
                            return engine
                        }
                    }
                }
                Some(ev) = net_rx.recv() => {
                    let now = clock.now();
                    match ev {
                        Net::Read(conn, bytes) => { let _ = engine.handle_input(now, Input::Received { conn, data: &bytes }); }
                        Net::Eof(conn) => { let _ = engine.handle_input(now, Input::Closed { conn }); }
                        Net::Dialed(conn, Ok(stream)) => {
                            let span = links.get(&conn).map(|l| l.span.clone()).unwrap_or_else(tracing::Span::none);
                            tracing::debug!(parent: &span, "TCP connected; RLPx handshake");
                            start_socket(stream, conn, &net_tx, &mut writers, span);
                            let _ = engine.handle_input(now, Input::Connected { conn });
                        }
                        Net::Dialed(conn, Err(e)) => {
                            if let Some(l) = links.get(&conn) {
                                let addr = l.info.addr;
                                if failed.len() < MAX_FAILED_ADDRS || failed.contains_key(&addr) {
                                    let n = failed.get(&addr).map_or(0, |f| f.1);
                                    failed.insert(addr, (std::time::Instant::now(), n + 1));
                                }
                            }
                            match links.remove(&conn) {
                                Some(l) => tracing::warn!(parent: &l.span, error = %e, "dial failed (static peers are redialled with backoff)"),
                                None => tracing::warn!(conn = conn.0, error = %e, "dial failed"),
                            }
                            let _ = engine.handle_input(now, Input::DialFailed { conn });
                        }
                        Net::Resolved(name, txt) => { let _ = engine.handle_input(now, Input::DnsResolved { name, txt }); }
                    }
                }
                Ok((stream, addr)) = accept => {
                    let conn = ConnId(next_accept);
                    next_accept += 1;
                    let l = link(conn, addr, true);
                    tracing::debug!(parent: &l.span, "accepted; RLPx handshake");
                    start_socket(stream, conn, &net_tx, &mut writers, l.span.clone());
                    links.insert(conn, l);
                    let _ = engine.handle_input(clock.now(), Input::AcceptedFrom { conn, addr });
                }
                Some((query, entries)) = store.results.recv() => {
                    let _ = engine.handle_input(clock.now(), Input::QueryResult { query, entries });
                }
                _ = sleep => engine.handle_timeout(clock.now()),
                _ = save_timer.tick(), if peer_cache_file.is_some() => save(&engine),
            }
        }
    }
}
