//! The `status-node` program.
//!
//! `status-node demo` runs, on loopback, two peers that do the RLPx handshake, the Hello exchange with
//! Snappy, a Ping, and a message and its echo on the `test/1` capability; once with the tokio driver and
//! once with the blocking std driver (and once across the two). It prints a transcript and exits 0 only if
//! every step happened.

use std::net::TcpListener as StdListener;
use std::sync::Arc;
use std::time::Duration;

use status_io_std::{demo, os_seed};
use status_sansio::crypto::SecretKey;
use status_sansio::enode::Enode;
use status_sansio::rlpx::{Config, DisconnectReason, Event};
use tokio::io::AsyncBufReadExt;
use tokio::net::TcpListener;

const USAGE: &str = "\
status-node: a Status protocol node built on status-sansio

USAGE:
    status-node demo     run the loopback demo (RLPx handshake, Hello, Ping, a message and its echo)
                         with the tokio driver, the std driver, and across the two; exits 0 on success
    status-node keygen   print a new identity: secret key, public key, compressed key, 3-word name, enode
    status-node run [OPTIONS]
                         run a long-lived Waku node: prints its enode:// URL as the first line, relays,
                         keeps its static peers connected, and logs peers to stderr
    status-node --help   print this help

RUN OPTIONS:
    --listen ADDR        TCP address to listen on (default 127.0.0.1:30303)
    --data-dir DIR       where state lives (default .): node.key, and mailserver.redb with --mailserver
    --key-file PATH      the node key (64 hex characters); created if missing (default DATA-DIR/node.key)
    --static-peer ENODE  keep this peer connected (repeatable)
    --mailserver         archive envelopes (in DATA-DIR/mailserver.redb) and answer history requests
    --mailserver-db URL  with --mailserver: archive in PostgreSQL instead (table `envelopes`, created if
                         missing), e.g. postgres://user:password@host/db or host=/run/postgresql dbname=db
    --light              run as a Waku light node (does not relay others' envelopes)
    --public-chat NAME   join this public chat (repeatable); received messages print one per line as
                         [CHAT] Three Word Name: text

Commands on stdin: /join NAME, /leave NAME, /msg CHAT TEXT, /quit. The chat identity is kept in
DATA-DIR/identity.key (created if missing), separate from the node key.

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
    match std::fs::read_to_string(path) {
        Ok(text) => demo::parse_key(&text).ok_or_else(|| {
            std::io::Error::other(format!(
                "{}: not a 64-hex-character secp256k1 key",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SecretKey::random(&mut os_seed().rng());
            let hex: String = key.to_bytes().iter().map(|x| format!("{x:02x}")).collect();
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            std::io::Write::write_all(&mut opts.open(path)?, format!("{hex}\n").as_bytes())?;
            Ok(key)
        }
        Err(e) => Err(e),
    }
}

async fn run(args: &[String]) -> std::io::Result<()> {
    use status_sansio::node::{Engine as NodeEngine, EngineConfig, Event as NodeEvent};
    let mut listen: std::net::SocketAddr = "127.0.0.1:30303".parse().map_err(std::io::Error::other)?;
    let mut key_file: Option<std::path::PathBuf> = None;
    let mut data_dir = std::path::PathBuf::from(".");
    let mut statics = Vec::new();
    let (mut mailserver, mut light) = (false, false);
    let mut mailserver_db: Option<String> = None;
    let mut chats: Vec<String> = Vec::new();
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
    let me = status_sansio::chat::identity::three_word_name(&identity.public_key());
    config.messenger = Some(status_sansio::chat::messenger::MessengerConfig::new(
        identity,
        "status-node".into(),
    ));
    let listener = TcpListener::bind(listen).await?;
    let enode = Enode::new(config.rlpx.public_key(), listener.local_addr()?);
    println!("{enode}");
    tracing::info!(%enode, mailserver, light, "node started");
    let engine = NodeEngine::new(status_io_std::Clock::new().now(), config, os_seed());
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
    let mut node = status_io_tokio::node::spawn_node_with_store(engine, Some(listener), 1024, store);
    tracing::info!(identity = %me, "chat identity");
    use status_io_tokio::node::NodeCommand;
    use status_sansio::chat::messenger::{Event as ChatEvent, Input as ChatInput};
    for c in chats {
        let _ = node
            .commands
            .send(NodeCommand::Chat(ChatInput::JoinPublicChat(c)))
            .await;
    }
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    loop {
        tokio::select! {
            line = stdin.next_line(), if stdin_open => match line {
                Ok(Some(line)) => {
                    let line = line.trim();
                    let cmd = if let Some(name) = line.strip_prefix("/join ") {
                        Some(ChatInput::JoinPublicChat(name.trim().to_string()))
                    } else if let Some(name) = line.strip_prefix("/leave ") {
                        Some(ChatInput::LeavePublicChat(name.trim().to_string()))
                    } else if let Some(rest) = line.strip_prefix("/msg ") {
                        rest.split_once(' ').map(|(chat, text)| ChatInput::SendText { chat: chat.to_string(), text: text.to_string() })
                    } else if line == "/quit" {
                        let _ = node.commands.send(NodeCommand::Shutdown).await;
                        return Ok(());
                    } else {
                        None
                    };
                    match cmd {
                        Some(c) => { let _ = node.commands.send(NodeCommand::Chat(c)).await; }
                        None if line.is_empty() => {}
                        None => eprintln!("commands: /join NAME, /leave NAME, /msg CHAT TEXT, /quit"),
                    }
                }
                Ok(None) | Err(_) => stdin_open = false,
            },
            ev = node.events.recv() => match ev {
                Some(NodeEvent::PeerConnected { id, client, dialect, .. }) => {
                    let id = status_sansio::crypto::pubkey_to_raw64(&id);
                    tracing::info!(peer = %hex8(&id), %client, ?dialect, "peer connected");
                }
                Some(NodeEvent::PeerDisconnected { reason, remote, .. }) => tracing::info!(%reason, remote, "peer disconnected"),
                Some(NodeEvent::Chat(ChatEvent::MessageReceived { chat, message, own: false })) => {
                    let who = status_sansio::chat::identity::three_word_name(&message.author);
                    println!("[{chat}] {who}: {}", message.text);
                }
                Some(NodeEvent::Chat(ChatEvent::MessageSent { chat, id })) => tracing::info!(%chat, %id, "message sent"),
                Some(NodeEvent::Chat(ChatEvent::Dropped { reason })) => tracing::debug!(%reason, "message dropped"),
                Some(NodeEvent::Waku(e)) => tracing::debug!(event = ?e, "waku"),
                Some(_) => {}
                None => return Ok(()),
            },
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("shutting down");
                let _ = node.commands.send(status_io_tokio::node::NodeCommand::Shutdown).await;
                return Ok(());
            }
        }
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("demo") => {}
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
