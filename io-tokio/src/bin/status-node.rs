//! The `status-node` program.
//!
//! `status-node demo` runs the chat demo (see `chat_demo`): a relay with a mailserver and three chat
//! clients on loopback TCP, public, 1:1 and group chats, an offline client catching up; it exits 0 only
//! if everything arrived. `status-node demo-rlpx` runs, on loopback, two peers that do the RLPx
//! handshake, the Hello exchange with Snappy, a Ping, and a message and its echo on the `test/1`
//! capability; once with the tokio driver and once with the blocking std driver (and once across the
//! two). `run` is the long-running node; `keygen` prints a new identity.

#[path = "status-node/chat_demo.rs"]
mod chat_demo;

use std::collections::BTreeMap;
use std::net::TcpListener as StdListener;
use std::sync::Arc;
use std::time::Duration;

use status_io_std::{demo, os_seed};
use status_sansio::chat::identity::{pubkey_from_hex, pubkey_to_hex, three_word_name};
use status_sansio::chat::messenger::{Event as ChatEvent, Input as ChatInput};
use status_sansio::crypto::SecretKey;
use status_sansio::enode::Enode;
use status_sansio::rlpx::{Config, DisconnectReason, Event};
use tokio::io::AsyncBufReadExt;
use tokio::net::TcpListener;

const USAGE: &str = "\
status-node: a Status protocol node built on status-sansio

USAGE:
    status-node demo     run the chat demo on loopback TCP: a relay (also a mailserver) and three
                         clients, alice, bob and carol, talking in a public chat, 1:1 and in a group;
                         carol goes offline and catches up (MVDS and the mailserver) when she returns.
                         Prints a transcript and a summary; exits 0 only if everything arrived
    status-node demo-rlpx
                         the transport-level demo (RLPx handshake, Hello, Ping, a message and its echo)
                         with the tokio driver, the std driver, and across the two
    status-node keygen   print a new identity: secret key, public key, compressed key, 3-word name, enode
    status-node run [OPTIONS]
                         run a long-lived node: prints its enode:// URL as the first line, relays,
                         keeps its static peers connected, chats (commands on stdin), prints every
                         received message on one line, and logs to stderr
    status-node --help   print this help

RUN OPTIONS:
    --listen ADDR        TCP address to listen on (default 127.0.0.1:30303)
    --data-dir DIR       where state lives (default .): node.key, identity.key (the chat key),
                         messenger.state (sessions, chats, clocks; saved every 10 s and on exit),
                         history.state (when each watched topic was last fetched from a mailserver),
                         peers.cache (good peers, dialled first after a restart), and mailserver.redb
                         with --mailserver
    --key-file PATH      the node key (64 hex characters); created if missing (default DATA-DIR/node.key)
    --static-peer ENODE  keep this peer connected (repeatable)
    --mailserver         archive envelopes (in DATA-DIR/mailserver.redb) and answer history requests
    --mailserver-db URL  with --mailserver: archive in PostgreSQL instead (table `envelopes`, created if
                         missing), e.g. postgres://user:password@host/db or host=/run/postgresql dbname=db
    --light              run as a Waku light node (does not relay others' envelopes)
    --mailserver-peer ENODE
                         use this peer as a mailserver: on connecting, fetch the history of joined
                         chats since last seen (repeatable; the next one is used if one fails)
    --dns-discovery URL  find peers in this EIP-1459 tree (enrtree://KEY@DOMAIN; repeatable)
    --target-peers N     peers to keep connected, static ones included (default 3)
    --public-chat NAME   join this public chat (repeatable); received messages print one per line as
                         [CHAT] Three Word Name: text

COMMANDS (stdin):
    /join NAME           join a public chat
    /leave NAME          leave a public chat
    /add 0x04...         start a 1:1 chat with this chat key (its chat is named by the key)
    /group NAME 0x04... [0x04...]
                         create a group chat with these members; prints its id
    /invite GROUP 0x04...
                         add a member to a group (admins only)
    /kick GROUP 0x04...  remove a member from a group (admins only)
    /msg CHAT TEXT       send TEXT to CHAT: a public chat name, a 0x04... key or a group id
    /whoami              print our chat key and name
    /quit                save state and stop

The chat identity is kept in DATA-DIR/identity.key (created if missing), separate from the node key.
Received 1:1 messages print as [0x04...] Name: text; contact requests and group changes print too.

Logs go to stderr through tracing; set RUST_LOG (e.g. RUST_LOG=debug) to change the level.
";

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

/// Read the node key from `path`, or create it (mode 0600) if the file does not exist.
fn load_or_create_key(path: &std::path::Path) -> std::io::Result<SecretKey> {
    match std::fs::read_to_string(path).map(zeroize::Zeroizing::new) {
        Ok(text) => {
            #[cfg(unix)]
            if let Ok(meta) = std::fs::metadata(path) {
                use std::os::unix::fs::PermissionsExt;
                if meta.permissions().mode() & 0o077 != 0 {
                    tracing::warn!(path = %path.display(), "key file is readable by others; chmod 600 it");
                }
            }
            demo::parse_key(&text).ok_or_else(|| {
                std::io::Error::other(format!(
                    "{}: not a 64-hex-character secp256k1 key",
                    path.display()
                ))
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SecretKey::random(&mut os_seed().rng());
            let hex: zeroize::Zeroizing<String> =
                zeroize::Zeroizing::new(key.to_bytes().iter().map(|x| format!("{x:02x}")).collect());
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(path)?;
            std::io::Write::write_all(&mut f, hex.as_bytes())?;
            std::io::Write::write_all(&mut f, b"\n")?;
            Ok(key)
        }
        Err(e) => Err(e),
    }
}

async fn run(args: &[String]) -> std::io::Result<()> {
    use status_io_tokio::node::NodeCommand;
    use status_sansio::chat::messenger::Messenger;
    use status_sansio::node::{Engine as NodeEngine, EngineConfig, Event as NodeEvent};
    let mut listen: std::net::SocketAddr = "127.0.0.1:30303".parse().map_err(std::io::Error::other)?;
    let mut key_file: Option<std::path::PathBuf> = None;
    let mut data_dir = std::path::PathBuf::from(".");
    let mut statics = Vec::new();
    let (mut mailserver, mut light) = (false, false);
    let mut mailserver_db: Option<String> = None;
    let mut chats: Vec<String> = Vec::new();
    let mut mailserver_peers: Vec<Enode> = Vec::new();
    let mut dns = Vec::new();
    let mut target_peers: Option<usize> = None;
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned();
        match (args[i].as_str(), value) {
            ("--listen", Some(v)) => {
                listen = v
                    .parse()
                    .map_err(|e| std::io::Error::other(format!("--listen: {e}")))?
            }
            ("--key-file", Some(v)) => key_file = Some(v.into()),
            ("--data-dir", Some(v)) => data_dir = v.into(),
            ("--static-peer", Some(v)) => statics.push(
                v.parse::<Enode>()
                    .map_err(|e| std::io::Error::other(format!("--static-peer: {e}")))?,
            ),
            ("--public-chat", Some(v)) => chats.push(v),
            ("--mailserver-db", Some(v)) => mailserver_db = Some(v),
            ("--mailserver-peer", Some(v)) => mailserver_peers.push(
                v.parse::<Enode>()
                    .map_err(|e| std::io::Error::other(format!("--mailserver-peer: {e}")))?,
            ),
            ("--dns-discovery", Some(v)) => dns.push(
                v.parse::<status_sansio::discovery::EnrTreeUrl>()
                    .map_err(|e| std::io::Error::other(format!("--dns-discovery: {e}")))?,
            ),
            ("--target-peers", Some(v)) => {
                target_peers = Some(
                    v.parse()
                        .map_err(|e| std::io::Error::other(format!("--target-peers: {e}")))?,
                )
            }
            ("--mailserver", _) => {
                mailserver = true;
                i += 1;
                continue;
            }
            ("--light", _) => {
                light = true;
                i += 1;
                continue;
            }
            (other, _) => {
                return Err(std::io::Error::other(format!(
                    "unknown or incomplete option {other:?}; see --help"
                )))
            }
        }
        i += 2;
    }
    if mailserver_db.is_some() && !mailserver {
        return Err(std::io::Error::other("--mailserver-db needs --mailserver"));
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    std::fs::create_dir_all(&data_dir)?;
    let key = load_or_create_key(&key_file.unwrap_or_else(|| data_dir.join("node.key")))?;
    let protocols = vec![
        status_sansio::rlpx::Protocol::new("waku", 1, 128).unwrap_or_else(|| unreachable!()),
        status_sansio::rlpx::Protocol::new("shh", 6, 128).unwrap_or_else(|| unreachable!()),
    ];
    let mut rlpx = Config::new(key, protocols);
    rlpx.client_id = concat!("status-node/v", env!("CARGO_PKG_VERSION")).to_string();
    rlpx.listen_port = listen.port();
    let mut config = EngineConfig::new(Arc::new(rlpx));
    config.static_peers = statics;
    config.waku.light_node = light;
    if mailserver {
        config.mailserver = Some(Default::default());
    }
    // The chat identity is separate from the node key, as in Status.
    let identity = load_or_create_key(&data_dir.join("identity.key"))?;
    let me = identity.public_key();
    let messenger_config =
        status_sansio::chat::messenger::MessengerConfig::new(identity, "status-node".into());
    config.mailservers = mailserver_peers;
    config.dns_discovery = dns;
    if let Some(t) = target_peers {
        config.target_peers = t;
    }
    // Good peers of earlier runs are dialled first.
    let peer_cache = status_io_std::dns::peer_cache_path(&data_dir);
    config.peer_cache = status_io_std::dns::load_peer_cache(&peer_cache);
    let state_path = data_dir.join("messenger.state");
    let history_path = data_dir.join("history.state");
    let now = status_io_std::Clock::new().now();
    let listener = TcpListener::bind(listen).await?;
    let enode = Enode::new(config.rlpx.public_key(), listener.local_addr()?);
    println!("{enode}");
    tracing::info!(%enode, mailserver, light, "node started");
    let engine = match std::fs::read(&state_path) {
        Ok(bytes) => {
            let bytes = zeroize::Zeroizing::new(bytes);
            let m = Messenger::import(now, messenger_config, os_seed(), &bytes)
                .map_err(|e| std::io::Error::other(format!("{}: {e}", state_path.display())))?;
            tracing::info!(path = %state_path.display(), "messenger state restored");
            NodeEngine::with_messenger(now, config, os_seed(), m)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            config.messenger = Some(messenger_config);
            NodeEngine::new(now, config, os_seed())
        }
        Err(e) => return Err(e),
    };
    // Opened on a blocking thread: the PostgreSQL client must not run on a runtime worker.
    let redb = data_dir.join("mailserver.redb");
    let store =
        tokio::task::spawn_blocking(move || -> std::io::Result<Box<dyn status_io_std::store::Store>> {
            Ok(match (mailserver, mailserver_db) {
                (true, Some(url)) => Box::new(status_io_std::store::PostgresStore::connect(&url)?),
                (true, None) => Box::new(status_io_std::store::RedbStore::open(&redb)?),
                (false, _) => Box::new(status_io_std::store::MemoryStore::default()),
            })
        })
        .await
        .map_err(std::io::Error::other)??;
    // The history client's last-seen times: after a restart, history is asked from where it stopped.
    let mut engine = engine;
    match std::fs::read(&history_path) {
        Ok(bytes) => {
            if let Err(e) = engine.import_history(&bytes) {
                tracing::warn!(path = %history_path.display(), "history state ignored: {e}");
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut options = status_io_tokio::node::NodeOptions::new(1024);
    options.store = store;
    options.peer_cache_file = Some(peer_cache);
    let mut node = status_io_tokio::node::spawn_node_with_options(engine, Some(listener), options);
    tracing::info!(identity = %three_word_name(&me), key = %pubkey_to_hex(&me), "chat identity");
    for c in chats {
        let _ = node
            .commands
            .send(NodeCommand::Chat(ChatInput::JoinPublicChat(c)))
            .await;
    }
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let mut save_every = tokio::time::interval(Duration::from_secs(10));
    let mut groups: BTreeMap<String, String> = BTreeMap::new();
    loop {
        tokio::select! {
            line = stdin.next_line(), if stdin_open => match line {
                Ok(Some(line)) => match parse_command(&line) {
                    Ok(Command::Quit) => break,
                    Ok(Command::WhoAmI) => println!("{} {}", pubkey_to_hex(&me), three_word_name(&me)),
                    Ok(Command::Chat(c)) => { let _ = node.commands.send(NodeCommand::Chat(c)).await; }
                    Ok(Command::None) => {}
                    Err(usage) => eprintln!("{usage}"),
                },
                Ok(None) | Err(_) => stdin_open = false,
            },
            _ = save_every.tick() => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                if node.commands.send(NodeCommand::ExportMessenger(tx)).await.is_ok() {
                    if let Ok(Some(state)) = rx.await {
                        save_state(&state_path, &state)?;
                    }
                }
                let (tx, rx) = tokio::sync::oneshot::channel();
                if node.commands.send(NodeCommand::ExportHistory(tx)).await.is_ok() {
                    if let Ok(state) = rx.await {
                        save_state(&history_path, &state)?;
                    }
                }
            }
            ev = node.events.recv() => match ev {
                Some(NodeEvent::PeerConnected { id, client, dialect, .. }) => {
                    let id = status_sansio::crypto::pubkey_to_raw64(&id);
                    tracing::info!(peer = %hex8(&id), %client, ?dialect, "peer connected");
                }
                Some(NodeEvent::PeerDisconnected { reason, remote, .. }) => tracing::info!(%reason, remote, "peer disconnected"),
                Some(NodeEvent::Chat(e)) => print_chat_event(e, &mut groups),
                Some(NodeEvent::Waku(e)) => tracing::debug!(event = ?e, "waku"),
                Some(e) => tracing::debug!(event = ?e, "node"),
                None => break,
            },
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("shutting down");
                break;
            }
        }
    }
    // Save the final state: stop the node and export from the engine it hands back.
    let engine = node.shutdown().await?;
    if let Some(state) = engine.export_messenger() {
        save_state(&state_path, &state)?;
        tracing::info!(path = %state_path.display(), "messenger state saved");
    }
    save_state(&history_path, &engine.export_history())?;
    Ok(())
}

/// Write `state` to `path` atomically (a temporary file renamed over it), readable by the owner only.
fn save_state(path: &std::path::Path, state: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    // The mode applies only to a file being created: a leftover temporary file (from a crash, or made
    // by someone else) is removed first, so the secrets never land in a file with looser permissions.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp)?;
    std::io::Write::write_all(&mut f, state)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// A line from stdin.
enum Command {
    Chat(ChatInput),
    WhoAmI,
    Quit,
    None,
}

const COMMANDS: &str = "commands: /join NAME, /leave NAME, /add 0x04..., /group NAME 0x04..., \
/invite GROUP 0x04..., /kick GROUP 0x04..., /msg CHAT TEXT, /whoami, /quit";

fn parse_command(line: &str) -> Result<Command, String> {
    let line = line.trim();
    let key = |s: &str| pubkey_from_hex(s.trim()).map_err(|e| format!("{s:?}: {e}"));
    let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
    let rest = rest.trim();
    let chat = match cmd {
        "" => return Ok(Command::None),
        "/quit" => return Ok(Command::Quit),
        "/whoami" => return Ok(Command::WhoAmI),
        "/join" if !rest.is_empty() => ChatInput::JoinPublicChat(rest.into()),
        "/leave" if !rest.is_empty() => ChatInput::LeavePublicChat(rest.into()),
        "/add" if !rest.is_empty() => ChatInput::StartOneToOne(key(rest)?),
        "/msg" => match rest.split_once(' ') {
            Some((chat, text)) if !text.trim().is_empty() => ChatInput::SendText {
                chat: chat.into(),
                text: text.into(),
            },
            _ => return Err("usage: /msg CHAT TEXT".into()),
        },
        "/group" => {
            let mut words = rest.split_whitespace();
            let name = words.next().ok_or("usage: /group NAME 0x04... [0x04...]")?;
            let members = words.map(key).collect::<Result<Vec<_>, _>>()?;
            ChatInput::CreateGroup {
                name: name.into(),
                members,
            }
        }
        "/invite" | "/kick" => {
            let (group, member) = rest
                .split_once(' ')
                .ok_or_else(|| format!("usage: {cmd} GROUP 0x04..."))?;
            let member = key(member)?;
            if cmd == "/invite" {
                ChatInput::AddMembers {
                    chat: group.into(),
                    members: vec![member],
                }
            } else {
                ChatInput::RemoveMember {
                    chat: group.into(),
                    member,
                }
            }
        }
        _ => return Err(COMMANDS.into()),
    };
    Ok(Command::Chat(chat))
}

/// One line per chat event: received messages on stdout, the rest on stdout or in the log.
fn print_chat_event(e: ChatEvent, groups: &mut BTreeMap<String, String>) {
    if let Some(line) = chat_event_line(e, groups) {
        println!("{line}");
    }
}

/// `s` with control characters (escape sequences, line breaks) and bidirectional overrides shown
/// escaped: texts, group names and group ids come from peers and must not drive the terminal.
fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The stdout line for a chat event, if it has one (the others go to the log).
fn chat_event_line(e: ChatEvent, groups: &mut BTreeMap<String, String>) -> Option<String> {
    match e {
        ChatEvent::MessageReceived {
            chat,
            message,
            own: false,
        } => {
            let who = three_word_name(&message.author);
            let label = groups.get(&chat).map(|n| format!("{n} {chat}")).unwrap_or(chat);
            Some(format!(
                "[{}] {who}: {}",
                printable(&label),
                printable(&message.text)
            ))
        }
        ChatEvent::ContactRequest { from, chat } => Some(format!(
            "contact request from {} ({chat})",
            three_word_name(&from)
        )),
        ChatEvent::GroupCreated { chat, name } => {
            let line = format!("group {} created: {}", printable(&name), printable(&chat));
            groups.insert(chat, name);
            Some(line)
        }
        ChatEvent::MembershipChanged {
            chat,
            name,
            members,
            removed_self,
            ..
        } => {
            let names: Vec<String> = members.iter().map(three_word_name).collect();
            let line = if removed_self {
                format!("removed from group {} ({})", printable(&name), printable(&chat))
            } else {
                format!(
                    "group {} ({}): members {}",
                    printable(&name),
                    printable(&chat),
                    names.join(", ")
                )
            };
            groups.insert(chat, name);
            Some(line)
        }
        ChatEvent::Delivered { chat, id, to } => {
            tracing::info!(chat = %printable(&chat), %id, to = %three_word_name(&to), "delivered");
            None
        }
        ChatEvent::DeliveryFailed { chat, id, to } => Some(format!(
            "could not deliver {id} in {} to {}",
            printable(&chat),
            three_word_name(&to)
        )),
        ChatEvent::MessageSent { chat, id } => {
            tracing::info!(chat = %printable(&chat), %id, "message sent");
            None
        }
        ChatEvent::Dropped { reason } => {
            tracing::debug!(reason = %printable(&reason), "message dropped");
            None
        }
        other => {
            tracing::debug!(event = ?other, "chat");
            None
        }
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("demo") => match chat_demo::run().await {
            Ok(true) => return,
            Ok(false) => std::process::exit(1),
            Err(e) => {
                eprintln!("status-node demo: {e}");
                std::process::exit(1);
            }
        },
        Some("demo-rlpx") => {}
        Some("keygen") => return keygen(),
        Some("run") => {
            if let Err(e) = run(&args[1..]).await {
                eprintln!("status-node: {e}");
                std::process::exit(1);
            }
            return;
        }
        Some("--help" | "-h" | "help") => {
            print!("{USAGE}");
            return;
        }
        _ => {
            eprint!("{USAGE}");
            std::process::exit(2);
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

#[cfg(test)]
mod tests {
    use super::*;
    use status_sansio::chat::messenger::ChatEntry;
    use status_sansio::chat::payloads::MessageId;
    use status_sansio::Seed;

    #[test]
    fn peer_texts_and_group_names_cannot_drive_the_terminal() {
        let author = SecretKey::random(&mut Seed::from_u64(1).rng()).public_key();
        let chat = format!("\u{1b}]52;c;ZXZpbA==\u{7}-{}", pubkey_to_hex(&author));
        let mut groups = BTreeMap::new();
        let created = ChatEvent::MembershipChanged {
            chat: chat.clone(),
            name: "evil\u{1b}[2J\u{202e}".into(),
            members: vec![author],
            admins: vec![author],
            removed_self: false,
        };
        let text = ChatEvent::MessageReceived {
            chat,
            message: ChatEntry {
                id: MessageId([0; 32]),
                author,
                clock: 1,
                timestamp: 1,
                text: "hi\u{1b}[31m\nfake line\r".into(),
                content: Default::default(),
            },
            own: false,
        };
        for e in [created, text] {
            let line = chat_event_line(e, &mut groups).unwrap_or_default();
            assert!(!line.is_empty());
            assert!(
                line.chars()
                    .all(|c| !c.is_control() && !('\u{202a}'..='\u{202e}').contains(&c)),
                "{line:?}"
            );
        }
        assert_eq!(printable("plain text, ünïcode"), "plain text, ünïcode");
    }

    #[cfg(unix)]
    #[test]
    fn saved_state_is_owner_only_even_over_a_leftover_temporary_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("status-node-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("messenger.state");
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, b"old").unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
        save_state(&path, b"secret state").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(std::fs::read(&path).unwrap(), b"secret state");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(mode, 0o600);
    }
}
