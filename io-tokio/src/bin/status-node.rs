//! The `status-node` program.
//!
//! `status-node demo` runs the chat demo (see `chat_demo`): a relay with a mailserver and three chat
//! clients on loopback TCP, public, 1:1 and group chats, an offline client catching up; it exits 0 only
//! if everything arrived. `status-node demo-rlpx` runs, on loopback, two peers that do the RLPx
//! handshake, the Hello exchange with Snappy, a Ping, and a message and its echo on the `test/1`
//! capability; once with the tokio driver and once with the blocking std driver (and once across the
//! two). `run` is the long-running node; `keygen` prints a new identity; `completions SHELL` prints a
//! shell completion script; `sim` runs random simulator scenarios (see `sim`). The command line is in `cli`, the terminal chat in `term`, the metrics
//! endpoint in `metrics`.

#[path = "status-node/chat_demo.rs"]
mod chat_demo;
#[path = "status-node/cli.rs"]
mod cli;
#[path = "status-node/metrics.rs"]
mod metrics;
#[path = "status-node/sim.rs"]
mod sim;
#[path = "status-node/term.rs"]
mod term;

use std::net::TcpListener as StdListener;
use std::sync::Arc;
use std::time::Duration;

use cli::{LogFormat, Nat, RunArgs};
use status_io_std::state::StateStore;
use status_io_std::state_file;
use status_io_std::{demo, os_seed};
use status_sansio::chat::identity::{pubkey_to_hex, three_word_name};
use status_sansio::chat::messenger::Input as ChatInput;
use status_sansio::crypto::SecretKey;
use status_sansio::enode::Enode;
use status_sansio::rlpx::{Config, DisconnectReason, Event};
use tokio::net::TcpListener;

fn config(name: &str) -> Arc<Config> {
    let mut c = Config::new(SecretKey::random(&mut os_seed().rng()), vec![demo::protocol()]);
    c.client_id = format!("status-sansio/{name}");
    Arc::new(c)
}

/// What one side saw, for the summary.
#[derive(Default, Debug)]
struct Seen {
    connected: bool,
    pong: bool,
    text: bool,
    disconnected: bool,
}

impl Seen {
    fn complete(&self, dialer: bool) -> bool {
        self.connected && self.text && self.disconnected && (self.pong || !dialer)
    }
}

fn log(tag: &str, who: &str, what: String) {
    println!("{:<7} {who:<5} {what}", format!("[{tag}]"));
}

/// The dialer's half of the script, shared by both drivers: the event decides the next action.
enum Action {
    None,
    Ping,
    Send(Vec<u8>),
    Disconnect,
}

fn on_event(tag: &str, who: &str, dialer: bool, seen: &mut Seen, event: Event) -> Action {
    match event {
        Event::Connected {
            remote_id,
            hello,
            capabilities,
        } => {
            seen.connected = true;
            let id = status_sansio::crypto::pubkey_to_raw64(&remote_id);
            let caps: Vec<String> = capabilities
                .iter()
                .map(|c| format!("{}/{}", c.name, c.version))
                .collect();
            log(
                tag,
                who,
                format!(
                    "connected to {}.. ({}, p2p v{}, shared {})",
                    hex8(&id),
                    hello.client_id,
                    hello.protocol_version,
                    caps.join(",")
                ),
            );
            if dialer {
                Action::Ping
            } else {
                Action::None
            }
        }
        Event::Pong { rtt } => {
            seen.pong = true;
            log(tag, who, format!("pong after {} ms", rtt.as_millis()));
            Action::Send(demo::encode_text(&format!("hello from {who}")))
        }
        Event::Message {
            code,
            payload,
            capability,
        } => {
            let text = demo::decode_text(&payload).unwrap_or_default();
            seen.text = true;
            log(
                tag,
                who,
                format!(
                    "received on {}/{} code {code}: {text:?}",
                    capability.name, capability.version
                ),
            );
            if dialer {
                Action::Disconnect
            } else {
                Action::Send(demo::encode_text(&format!("echo: {text}")))
            }
        }
        Event::Disconnected {
            reason,
            remote,
            error,
        } => {
            seen.disconnected = error.is_none();
            let by = if remote { "peer" } else { "us" };
            let err = error.map(|e| format!(" ({e})")).unwrap_or_default();
            log(tag, who, format!("disconnected: {reason}, by {by}{err}"));
            Action::None
        }
        _ => Action::None,
    }
}

fn hex8(b: &[u8]) -> String {
    b.iter().take(4).map(|x| format!("{x:02x}")).collect()
}

async fn tokio_side(
    tag: &'static str,
    who: &'static str,
    mut s: status_io_tokio::RlpxStream,
    dialer: bool,
) -> std::io::Result<Seen> {
    let mut seen = Seen::default();
    while let Some(ev) = s.next_event().await? {
        match on_event(tag, who, dialer, &mut seen, ev) {
            Action::None => {}
            Action::Ping => s.ping().await?,
            Action::Send(p) => s.send("test", demo::TEXT, &p).await?,
            Action::Disconnect => s.disconnect(DisconnectReason::Requested).await?,
        }
    }
    Ok(seen)
}

fn std_side(
    tag: &'static str,
    who: &'static str,
    mut s: status_io_std::RlpxStream,
    dialer: bool,
) -> std::io::Result<Seen> {
    let mut seen = Seen::default();
    while let Some(ev) = s.next_event()? {
        match on_event(tag, who, dialer, &mut seen, ev) {
            Action::None => {}
            Action::Ping => s.ping()?,
            Action::Send(p) => s.send("test", demo::TEXT, &p)?,
            Action::Disconnect => s.disconnect(DisconnectReason::Requested)?,
        }
    }
    Ok(seen)
}

async fn demo_tokio() -> std::io::Result<bool> {
    let (ca, cb) = (config("alice"), config("bob"));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let enode = Enode::new(cb.public_key(), listener.local_addr()?);
    log("tokio", "bob", format!("listening at {enode}"));
    let server = tokio::spawn(async move {
        let s = status_io_tokio::RlpxStream::accept(&listener, cb).await?;
        tokio_side("tokio", "bob", s, false).await
    });
    let s = status_io_tokio::RlpxStream::connect(&enode, ca).await?;
    let a = tokio_side("tokio", "alice", s, true).await?;
    let b = server.await.map_err(std::io::Error::other)??;
    Ok(a.complete(true) && b.complete(false))
}

fn demo_std() -> std::io::Result<bool> {
    let (ca, cb) = (config("carol"), config("dave"));
    let listener = StdListener::bind("127.0.0.1:0")?;
    let enode = Enode::new(cb.public_key(), listener.local_addr()?);
    log("std", "dave", format!("listening at {enode}"));
    let server = std::thread::spawn(move || {
        let s = status_io_std::RlpxStream::accept(&listener, cb)?;
        std_side("std", "dave", s, false)
    });
    let s = status_io_std::RlpxStream::connect(&enode, ca)?;
    let a = std_side("std", "carol", s, true)?;
    let b = server
        .join()
        .map_err(|_| std::io::Error::other("server thread panicked"))??;
    Ok(a.complete(true) && b.complete(false))
}

async fn demo_cross() -> std::io::Result<bool> {
    let (ca, cb) = (config("erin"), config("frank"));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let enode = Enode::new(cb.public_key(), listener.local_addr()?);
    log("mixed", "frank", format!("listening (tokio driver) at {enode}"));
    let server = tokio::spawn(async move {
        let s = status_io_tokio::RlpxStream::accept(&listener, cb).await?;
        tokio_side("mixed", "frank", s, false).await
    });
    let client = tokio::task::spawn_blocking(move || {
        let s = status_io_std::RlpxStream::connect(&enode, ca)?;
        std_side("mixed", "erin", s, true)
    });
    let a = client.await.map_err(std::io::Error::other)??;
    let b = server.await.map_err(std::io::Error::other)??;
    Ok(a.complete(true) && b.complete(false))
}

fn keygen() {
    let key = SecretKey::random(&mut os_seed().rng());
    let pk = key.public_key();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    println!("secret key:      {}", hex(&key.to_bytes()));
    println!(
        "public key:      0x{}",
        hex(&status_sansio::crypto::pubkey_to_uncompressed(&pk))
    );
    println!(
        "compressed key:  {}",
        status_sansio::chat::identity::compressed_key_string(&pk)
    );
    println!(
        "name:            {}",
        status_sansio::chat::identity::three_word_name(&pk)
    );
    println!(
        "enode:           {}",
        Enode::new(pk, "127.0.0.1:30303".parse().unwrap_or_else(|_| unreachable!()))
    );
}

/// Read the key at `path` (a checksummed state file, or a hand-written hex key), or create it (mode 0600)
/// if the file does not exist. A damaged file is refused with an error naming it and left as it is.
fn load_or_create_key(path: &std::path::Path) -> std::io::Result<SecretKey> {
    if let Some(key) = state_file::read_key(path)? {
        #[cfg(unix)]
        if let Ok(meta) = std::fs::metadata(path) {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "key file is readable by others; chmod 600 it");
            }
        }
        return Ok(key);
    }
    let key = SecretKey::random(&mut os_seed().rng());
    state_file::write_key(path, &key)?;
    Ok(key)
}

/// `path: error`, keeping the error's kind.
fn at(path: &std::path::Path) -> impl Fn(std::io::Error) -> std::io::Error + '_ {
    move |e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Start the logger on stderr: text (coloured on a terminal) or one JSON object per line.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

/// The node's durable state in its data dir (`status_io_std::state::StateStore`).
const STATE_STORE_FILE: &str = "state.redb";

/// Largest Messenger state file read at start.
const MAX_MESSENGER_STATE: usize = 256 << 20;
/// Largest history state file read at start.
const MAX_HISTORY_STATE: usize = 16 << 20;

/// Ask the node task for a Messenger command's result.
async fn chat_checked(node: &status_io_tokio::node::NodeHandle, input: ChatInput) -> Result<(), String> {
    match node.input(status_sansio::node::Input::Chat(input)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Resolves when the process is asked to stop: SIGTERM or SIGINT (Ctrl-C).
struct StopSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Install the handlers (from now on neither signal kills the process).
    fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(StopSignals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(StopSignals {})
    }

    /// The name of the signal that arrived.
    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            match tokio::signal::ctrl_c().await {
                Ok(()) => "Ctrl-C",
                Err(_) => std::future::pending().await,
            }
        }
    }
}

async fn run(args: RunArgs) -> std::io::Result<()> {
    use status_io_tokio::node::NodeCommand;
    use status_sansio::chat::messenger::Messenger;
    use status_sansio::node::{Engine as NodeEngine, EngineConfig, Event as NodeEvent};
    if args.mailserver_db.is_some() && !args.mailserver {
        return Err(std::io::Error::other("--mailserver-db needs --mailserver"));
    }
    init_logging(args.log_format);
    // First, so a stop request during start-up is handled too (it takes effect once the node runs).
    let mut stop = StopSignals::install()?;
    let data_dir = args.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| std::io::Error::new(e.kind(), format!("--data-dir {}: {e}", data_dir.display())))?;
    // One process per data directory; held until `run` returns (the OS drops it if we crash).
    let _lock = state_file::DataDirLock::acquire(&data_dir)?;
    let key_path = args.key_file.clone().unwrap_or_else(|| data_dir.join("node.key"));
    let key = load_or_create_key(&key_path)?;
    let protocols = vec![
        status_sansio::rlpx::Protocol::new("waku", 1, 128).unwrap_or_else(|| unreachable!()),
        status_sansio::rlpx::Protocol::new("shh", 6, 128).unwrap_or_else(|| unreachable!()),
    ];
    let mut rlpx = Config::new(key, protocols);
    rlpx.client_id = concat!("status-node/v", env!("CARGO_PKG_VERSION")).to_string();
    let mut config = EngineConfig::new(Arc::new(rlpx));
    config.static_peers = args.static_peer.clone();
    config.waku.light_node = args.light;
    if args.mailserver {
        config.mailserver = Some(status_sansio::mailserver::server::MailServerConfig {
            peer_scan_rate: args.mailserver_peer_scan_rate,
            peer_scan_burst: args.mailserver_peer_scan_rate.saturating_mul(10),
            ip_scan_rate: args.mailserver_ip_scan_rate,
            ip_scan_burst: args.mailserver_ip_scan_rate.saturating_mul(10),
            ..Default::default()
        });
    }
    // The chat identity is separate from the node key, as in Status.
    let identity = load_or_create_key(&data_dir.join("identity.key"))?;
    let me = identity.public_key();
    let mut messenger_config =
        status_sansio::chat::messenger::MessengerConfig::new(identity, "status-node".into());
    // Crash safety: every state change is committed to state.redb before what reveals it leaves.
    messenger_config.durable = true;
    config.mailservers = args.mailserver_peer.clone();
    config.dns_discovery = args.dns_discovery.clone();
    config.target_peers = args.target_peers;
    // Good peers of earlier runs are dialled first.
    let peer_cache = status_io_std::dns::peer_cache_path(&data_dir);
    config.peer_cache = status_io_std::dns::load_peer_cache(&peer_cache)?;
    // The old snapshot (before state.redb): imported once if state.redb has no messenger yet.
    let state_path = data_dir.join("messenger.state");
    let state_store_path = data_dir.join(STATE_STORE_FILE);
    let history_path = data_dir.join("history.state");
    let now = status_io_std::Clock::new().now();
    let listener = TcpListener::bind(args.listen).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("--listen: cannot listen on {}: {e}", args.listen),
        )
    })?;
    let local = listener.local_addr()?;
    // The enode advertises the external address: --nat extip:IP, else the listening one.
    let external = match args.nat {
        Nat::ExtIp(ip) => std::net::SocketAddr::new(ip, local.port()),
        Nat::None => local,
    };
    let mut rlpx = (*config.rlpx).clone();
    rlpx.listen_port = external.port();
    config.rlpx = Arc::new(rlpx);
    let enode = Enode::new(config.rlpx.public_key(), external);
    println!("{enode}");
    if external.ip().is_unspecified() {
        tracing::warn!(
            %enode,
            "the enode's address {} is not dialable: give the address others reach with --nat extip:IP",
            external.ip()
        );
    }
    let metrics_listener = match args.metrics {
        Some(addr) => Some(metrics::bind(addr).await?),
        None => None,
    };
    tracing::info!(%enode, listen = %local, mailserver = args.mailserver, light = args.light, "node started");
    // Every state file is checked before anything is loaded: a damaged one stops the start.
    let (state_store, records) = {
        let p = state_store_path.clone();
        tokio::task::spawn_blocking(move || {
            // redb panics on some damaged files; StateStore turns that into an error naming the file,
            // so the default hook's "panicked at" report would only mislead: silenced while opening.
            let hook = std::panic::take_hook();
            std::panic::set_hook(Box::new(|_| {}));
            let r = StateStore::open(&p).and_then(|s| s.load().map(|records| (s, records)));
            std::panic::set_hook(hook);
            r
        })
        .await
        .map_err(std::io::Error::other)?
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?
    };
    let has_messenger = records.iter().any(|(k, _)| k.is_under("messenger"));
    let messenger_state = if has_messenger {
        None
    } else {
        state_file::read(&state_path, MAX_MESSENGER_STATE)?
    };
    let history_state = state_file::read(&history_path, MAX_HISTORY_STATE)?;
    let engine = match messenger_state {
        Some(bytes) => {
            // An older status-node saved the Messenger as one snapshot: import it; its first change
            // is committed to state.redb, which is read from then on.
            let m = Messenger::import(messenger_config, &os_seed(), now, &bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}; refusing to load it", state_path.display()),
                )
            })?;
            tracing::info!(
                from = %state_path.display(),
                into = %state_store_path.display(),
                "messenger state imported from the old snapshot file (once: state.redb holds it from its first change)"
            );
            NodeEngine::with_messenger(config, m, &os_seed(), now).map_err(std::io::Error::other)?
        }
        None => {
            config.messenger = Some(messenger_config);
            let engine = NodeEngine::restore(config, &records, &os_seed(), now).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}; refusing to load it", state_store_path.display()),
                )
            })?;
            if has_messenger {
                tracing::info!(
                    path = %state_store_path.display(),
                    records = records.len(),
                    "messenger state restored"
                );
            }
            engine
        }
    };
    let mut book = term::Book::new(engine.messenger(), Some(data_dir.join("contacts.toml")))?;
    // Opened on a blocking thread: the PostgreSQL client must not run on a runtime worker.
    let redb = data_dir.join("mailserver.redb");
    let (mailserver, mailserver_db) = (args.mailserver, args.mailserver_db.clone());
    let max_bytes = args.mailserver_max_bytes;
    let store =
        tokio::task::spawn_blocking(move || -> std::io::Result<Box<dyn status_io_std::store::Store>> {
            use status_io_std::store::{CappedStore, MemoryStore, PostgresStore, RedbStore};
            Ok(match (mailserver, mailserver_db) {
                (true, Some(url)) => Box::new(CappedStore::new(PostgresStore::connect(&url)?, max_bytes)?),
                (true, None) => {
                    let store = RedbStore::open(&redb).map_err(at(&redb))?;
                    Box::new(CappedStore::new(store, max_bytes).map_err(at(&redb))?)
                }
                (false, _) => Box::new(MemoryStore::default()),
            })
        })
        .await
        .map_err(std::io::Error::other)??;
    // The history client's last-seen times: after a restart, history is asked from where it stopped.
    let mut engine = engine;
    if let Some(bytes) = history_state {
        engine.import_history(&bytes).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}; refusing to load it", history_path.display()),
            )
        })?;
    }
    let metrics = Arc::new(metrics::Metrics::new());
    let mut options = status_io_tokio::node::NodeOptions::new(1024);
    options.store = store;
    options.peer_cache_file = Some(peer_cache);
    options.state_store = Some(state_store);
    if metrics_listener.is_some() {
        let m = metrics.clone();
        options.on_store_commit = Some(Arc::new(move |took, _| m.store_commit(took)));
    }
    let mut node = status_io_tokio::node::spawn_node_with_options(engine, Some(listener), options);
    if let Some(l) = metrics_listener {
        tracing::info!(url = %format!("http://{}/metrics", l.local_addr()?), "metrics served");
        tokio::spawn(metrics::serve(
            l,
            metrics.clone(),
            node.commands.clone(),
            node.dropped.clone(),
        ));
    }
    tracing::info!(identity = %three_word_name(&me), key = %pubkey_to_hex(&me), "chat identity");
    for c in &args.public_chat {
        match chat_checked(&node, ChatInput::JoinPublicChat(c.clone().into())).await {
            Ok(()) => {
                book.accepted(term::OnOk::Joined(c.clone()))?;
            }
            Err(e) => println!("cannot join {c}: {e}"),
        }
    }
    let mut stdin = term::spawn_stdin_reader(std::io::stdin());
    let mut stdin_open = true;
    let mut save_every = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            line = stdin.recv(), if stdin_open => match line {
                Some(term::StdinLine::Text(line)) => match book.parse(&me, &line) {
                    term::Command::Quit => break,
                    term::Command::None => {}
                    term::Command::Say(s) => println!("{s}"),
                    term::Command::WhoAmI => println!("{} {}", pubkey_to_hex(&me), three_word_name(&me)),
                    term::Command::Chats => book.chats().iter().for_each(|l| println!("{l}")),
                    term::Command::Peers => match node.peers().await {
                        Ok(peers) => print_peers(&peers),
                        Err(e) => println!("peers: {e}"),
                    },
                    term::Command::Chat(input, ok) => match chat_checked(&node, *input).await {
                        Ok(()) => {
                            if let Some(l) = book.accepted(ok)? {
                                println!("{l}");
                            }
                        }
                        Err(e) => println!("refused: {}", term::printable(&e)),
                    },
                },
                Some(term::StdinLine::TooLong) => {
                    println!("refused: line longer than {} bytes", term::MAX_LINE);
                }
                Some(term::StdinLine::NotUtf8) => println!("refused: line is not valid UTF-8"),
                None => stdin_open = false,
            },
            _ = save_every.tick() => {
                // The Messenger commits itself to state.redb; only the history cursors are saved here.
                match node.inspect(|e| e.export_history()).await {
                    Ok(history) => state_file::write(&history_path, &history)?,
                    // The node stopped; the loop ends on its closed event queue.
                    Err(e) => tracing::warn!("state export: {e}"),
                }
            }
            ev = node.events.recv() => match ev {
                Some(NodeEvent::Chat(e)) => {
                    metrics.chat_event(&e);
                    if let Some(line) = book.event_line(e) {
                        println!("{line}");
                    }
                }
                // Peers, Waku handshakes, faults and drops are logged by the driver, in the peer's span.
                Some(NodeEvent::PeerConnected { .. } | NodeEvent::PeerDisconnected { .. }) => {}
                Some(NodeEvent::History(e)) => log_history(&e),
                Some(NodeEvent::Waku(e)) => tracing::debug!(event = ?e, "waku"),
                Some(e) => tracing::debug!(event = ?e, "node"),
                None => break,
            },
            signal = stop.recv() => {
                tracing::info!(signal, "shutting down");
                break;
            }
        }
    }
    // Stop the node (its goodbye makes the final commit to state.redb) and save the history cursors
    // from the engine it hands back.
    let state_failed = node.state_failed.clone();
    // Messages that arrive until the node has stopped (and what its goodbye releases) are committed as
    // shown: print them all, so none is lost between the stop request and the end of the node task.
    if node.commands.send(NodeCommand::Shutdown).await.is_err() {
        tracing::debug!("the node had already stopped");
    }
    while let Some(ev) = node.events.recv().await {
        if let NodeEvent::Chat(e) = ev {
            metrics.chat_event(&e);
            if let Some(line) = book.event_line(e) {
                println!("{line}");
            }
        }
    }
    let node_dropped = node.dropped_events();
    let engine = node.shutdown().await?;
    if state_failed.get() {
        return Err(std::io::Error::other(format!(
            "{}: a state commit failed (see the log); the node stopped",
            state_store_path.display()
        )));
    }
    tracing::info!(path = %state_store_path.display(), "messenger state saved");
    state_file::write(&history_path, &engine.export_history())?;
    if node_dropped > 0 {
        tracing::warn!(
            events = node_dropped,
            "events were dropped because the terminal fell behind"
        );
    }
    Ok(())
}

/// Log a mailserver history event with plain fields.
fn log_history(e: &status_sansio::node::HistoryEvent) {
    use status_io_tokio::node::short_id;
    use status_sansio::node::HistoryEvent as H;
    match e {
        H::HistoryFetched {
            peer,
            topics,
            from,
            to,
            envelopes,
            pages,
        } => tracing::info!(
            mailserver = %short_id(peer),
            topics = topics.len(),
            from,
            to,
            envelopes,
            pages,
            "history fetched"
        ),
        H::RequestFailed {
            peer,
            reason,
            topics,
            will_retry,
        } => tracing::warn!(
            mailserver = %short_id(peer),
            reason = ?reason,
            topics = topics.len(),
            will_retry,
            "history request failed"
        ),
        H::FailedOver { from, to } => tracing::warn!(
            from = %short_id(from),
            to = %short_id(to),
            "history request moved to another mailserver"
        ),
        _ => {}
    }
}

fn print_peers(peers: &[status_io_tokio::node::PeerInfo]) {
    let connected: Vec<_> = peers.iter().filter(|p| p.id.is_some()).collect();
    println!("{} peers connected", connected.len());
    for p in connected {
        let id =
            p.id.as_ref()
                .map(status_io_tokio::node::short_id)
                .unwrap_or_default();
        let dialect = p
            .dialect
            .map(|d| format!("{}/{}", d.capability(), d.version()))
            .unwrap_or_else(|| "-".into());
        println!(
            "  {id} {} {} {dialect} {}",
            p.addr,
            if p.inbound { "in" } else { "out" },
            term::printable(p.client.as_deref().unwrap_or("")),
        );
    }
    let pending = peers.len() - peers.iter().filter(|p| p.id.is_some()).count();
    if pending > 0 {
        println!("  ({pending} connecting)");
    }
}

#[tokio::main]
async fn main() {
    let cli = cli::parse(std::env::args_os().collect());
    match cli.command {
        cli::Command::Demo => match chat_demo::run().await {
            Ok(true) => return,
            Ok(false) => std::process::exit(1),
            Err(e) => {
                eprintln!("status-node demo: {e}");
                std::process::exit(1);
            }
        },
        cli::Command::DemoRlpx => {}
        cli::Command::Keygen => return keygen(),
        cli::Command::Completions { shell } => return cli::completions(shell),
        cli::Command::Sim(args) => std::process::exit(sim::run(&args)),
        cli::Command::Run(args) => {
            if let Err(e) = run(*args).await {
                eprintln!("status-node: {e}");
                std::process::exit(1);
            }
            return;
        }
    }
    let limit = Duration::from_secs(30);
    let mut results = Vec::new();
    for (name, r) in [
        ("tokio driver", tokio::time::timeout(limit, demo_tokio()).await),
        (
            "std driver",
            tokio::time::timeout(limit, async {
                tokio::task::spawn_blocking(demo_std)
                    .await
                    .map_err(std::io::Error::other)?
            })
            .await,
        ),
        (
            "std dialer -> tokio listener",
            tokio::time::timeout(limit, demo_cross()).await,
        ),
    ] {
        let ok = matches!(r, Ok(Ok(true)));
        if let Ok(Err(e)) = &r {
            println!("{name}: error: {e}");
        }
        results.push((name, ok));
    }
    println!("summary:");
    for (name, ok) in &results {
        println!("  {:<30} {}", name, if *ok { "ok" } else { "FAILED" });
    }
    if results.iter().all(|(_, ok)| *ok) {
        println!(
            "all steps completed: handshake, Hello (Snappy), ping/pong, message and echo, clean disconnect"
        );
    } else {
        std::process::exit(1);
    }
}
