//! A mailserver on the tokio driver over real loopback TCP, archiving into PostgreSQL (a local server the
//! test starts) and into redb: a client posts, the mailserver archives what it relays, and a client that
//! connects later gets every envelope back as history (P2P envelopes) followed by the completion.
//!
//! The runtime is current-thread on purpose: the sync PostgreSQL client panics if it is driven from a
//! runtime worker, so this proves the driver keeps the store on its own thread.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use status_io_std::os_seed;
use status_io_std::store::postgres::TempServer;
use status_io_std::store::{PostgresStore, RedbStore, Store};
use status_io_tokio::node::{spawn_node, spawn_node_with_store, NodeCommand, NodeHandle};
use status_sansio::crypto::SecretKey;
use status_sansio::enode::Enode;
use status_sansio::mailserver::server::MailServerConfig;
use status_sansio::node::{Engine, EngineConfig, Event};
use status_sansio::rlpx::{self, Protocol};
use status_sansio::waku::message::{NewMessage, PostKey};
use status_sansio::waku::request::MessagesRequest;
use status_sansio::waku::{self, status};
use status_sansio::Seed;
use tokio::net::TcpListener;

fn rlpx_config(n: u64) -> Arc<rlpx::Config> {
    let key = SecretKey::random(&mut Seed::from_u64(n).rng());
    Arc::new(rlpx::Config::new(
        key,
        vec![Protocol::new("waku", 1, 128).unwrap()],
    ))
}

async fn wait_for<T>(h: &mut NodeHandle, what: &str, mut pick: impl FnMut(Event) -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, h.events.recv()).await {
            Ok(Some(e)) => {
                if let Some(t) = pick(e) {
                    return t;
                }
            }
            Ok(None) => panic!("node stopped while waiting for {what}"),
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

const CHAT: &str = "archive-over-tcp";
const POSTS: usize = 5;

type Probe = Arc<dyn Fn() -> usize + Send + Sync>;

/// Posts through a mailserver using `store` and fetches the history from a late client. `archived`, if
/// given, counts the store's entries from outside (it is polled off the runtime until it holds them all).
async fn history_through(store: Box<dyn Store>, archived: Option<Probe>) {
    let now = status_io_std::Clock::new().now();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut cfg = EngineConfig::new(rlpx_config(1));
    cfg.mailserver = Some(MailServerConfig::default());
    cfg.waku.confirmations = true;
    let server_enode = Enode::new(cfg.rlpx.public_key(), listener.local_addr().unwrap());
    let server = spawn_node_with_store(
        Engine::new(cfg, &os_seed(), now).unwrap(),
        Some(listener),
        1024,
        store,
    );

    let client = |n| {
        let mut c = EngineConfig::new(rlpx_config(n));
        c.static_peers = vec![server_enode.clone()];
        spawn_node(Engine::new(c, &os_seed(), now).unwrap(), None, 1024)
    };
    let mut poster = client(2);
    wait_for(&mut poster, "the poster's Waku handshake", |e| {
        matches!(e, Event::Waku(waku::Event::PeerReady { .. })).then_some(())
    })
    .await;
    let signer = SecretKey::random(&mut Seed::from_u64(9).rng());
    let mut posted = BTreeSet::new();
    // The mailserver confirms each batch once it has taken the envelopes in (and queued them for the
    // store, ahead of any later query). Confirmations may arrive while later posts are sealed.
    let mut confirmed = BTreeSet::new();
    let note = |e: &Event, confirmed: &mut BTreeSet<[u8; 32]>| {
        if let Event::Waku(waku::Event::Confirmed {
            envelopes, errors, ..
        }) = e
        {
            assert!(errors.is_empty(), "{errors:?}");
            confirmed.extend(envelopes.iter().copied());
        }
    };
    for k in 0..POSTS {
        poster
            .waku(waku::Input::Post(Box::new(NewMessage {
                topic: status::public_chat_topic(CHAT),
                payload: format!("archived {k}").into_bytes(),
                key: PostKey::Symmetric(status::public_chat_key(CHAT)),
                signer: Some(signer.clone()),
                ttl: 60,
                pow_target: 0.002,
                padding: None,
            })))
            .await
            .unwrap();
        let h = wait_for(&mut poster, "the post", |e| {
            note(&e, &mut confirmed);
            match e {
                Event::Waku(waku::Event::Posted { hash }) => Some(hash),
                Event::Waku(waku::Event::PostFailed { error }) => panic!("{error:?}"),
                _ => None,
            }
        })
        .await;
        posted.insert(h);
    }
    if !posted.is_subset(&confirmed) {
        wait_for(&mut poster, "the mailserver's confirmations", |e| {
            note(&e, &mut confirmed);
            posted.is_subset(&confirmed).then_some(())
        })
        .await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while let Some(archived) = archived.clone() {
        let n = tokio::task::spawn_blocking(move || archived()).await.unwrap();
        if n >= POSTS {
            assert_eq!(n, POSTS, "each envelope archived once");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "archived {n} of {POSTS}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A client that comes later asks the (trusted) mailserver for the last hour of the chat.
    let mut late = client(3);
    let peer = wait_for(&mut late, "the late client's Waku handshake", |e| match e {
        Event::Waku(waku::Event::PeerReady { peer, .. }) => Some(peer),
        _ => None,
    })
    .await;
    late.waku(waku::Input::SetTrusted { peer, trusted: true })
        .await
        .unwrap();
    let to = now.as_secs() as u32 + 60;
    let request = MessagesRequest {
        id: bytes::Bytes::from(vec![b'7'; 32]),
        from: to - 3600,
        to,
        limit: 100,
        cursor: bytes::Bytes::new(),
        bloom: bytes::Bytes::new(),
        topics: vec![status::public_chat_topic(CHAT)],
    };
    late.waku(waku::Input::SendP2PRequest {
        peer,
        data: request.encode(),
    })
    .await
    .unwrap();
    let mut history = BTreeSet::new();
    wait_for(&mut late, "the request completion", |e| match e {
        Event::Waku(waku::Event::P2PEnvelopes { hashes, .. }) => {
            history.extend(hashes);
            None
        }
        Event::Waku(waku::Event::RequestComplete { .. }) => Some(()),
        _ => None,
    })
    .await;
    assert_eq!(history, posted, "the history is exactly what was posted");
    for h in [&poster, &late] {
        h.commands.send(NodeCommand::Shutdown).await.unwrap();
    }
    // Shutdown returns once the store thread has closed the store.
    server.shutdown().await.unwrap();
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn mailserver_on_postgres_serves_history_through_the_tokio_driver() {
    let server = TempServer::shared().expect("start a local PostgreSQL server");
    let url = server.create_database().unwrap();
    let store = PostgresStore::connect(&url).unwrap();
    let probe = url.clone();
    let count: Probe = Arc::new(move || PostgresStore::connect(&probe).unwrap().len().unwrap());
    current_thread().block_on(history_through(Box::new(store), Some(count)));
    // The archive outlives the node.
    assert_eq!(PostgresStore::connect(&url).unwrap().len().unwrap(), POSTS);
}

#[test]
fn mailserver_on_redb_serves_history_through_the_tokio_driver() {
    let dir = std::env::temp_dir().join(format!("status-tokio-redb-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = RedbStore::open(&dir.join("mail.redb")).unwrap();
    // redb locks its file: it is counted after the node stops.
    let rt = current_thread();
    rt.block_on(history_through(Box::new(store), None));
    drop(rt);
    // The node has shut down and closed the file: it opens at once, with the archive in it.
    let reopened = RedbStore::open(&dir.join("mail.redb")).unwrap();
    assert_eq!(reopened.len().unwrap(), POSTS);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Read lines on a thread.
fn lines_of(r: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

#[test]
fn status_node_run_mailserver_db_archives_into_postgres() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let server = TempServer::shared().expect("start a local PostgreSQL server");
    let url = server.create_database().unwrap();
    let dir = std::env::temp_dir().join(format!("status-node-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let spawn = |name: &str, extra: &[String]| {
        Command::new(env!("CARGO_BIN_EXE_status-node"))
            .args([
                "run",
                "--listen",
                "127.0.0.1:0",
                "--public-chat",
                "town",
                "--data-dir",
            ])
            .arg(dir.join(name))
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut a = spawn(
        "a",
        &["--mailserver".into(), "--mailserver-db".into(), url.clone()],
    );
    let a_out = lines_of(a.stdout.take().unwrap());
    let _a_err = lines_of(a.stderr.take().unwrap());
    let enode_a = a_out.recv_timeout(Duration::from_secs(20)).unwrap();
    let mut b = spawn("b", &["--static-peer".into(), enode_a]);
    let _b_out = lines_of(b.stdout.take().unwrap());
    let b_err = lines_of(b.stderr.take().unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut connected = false;
    while !connected && std::time::Instant::now() < deadline {
        if let Ok(l) = b_err.recv_timeout(Duration::from_millis(200)) {
            connected = l.contains("peer connected");
        }
    }
    let mut b_in = b.stdin.take().unwrap();
    writeln!(b_in, "/msg town kept in postgres").unwrap();
    b_in.flush().unwrap();
    let store = PostgresStore::connect(&url).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while store.is_empty().unwrap() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = (a.kill(), b.kill());
    let _ = (a.wait(), b.wait());
    let _ = std::fs::remove_dir_all(&dir);
    assert!(connected, "B connected to the mailserver");
    let rows = store
        .range([0; status_sansio::mailserver::server::KEY_LEN], [0xff; 40], 10)
        .unwrap();
    assert!(
        !rows.is_empty(),
        "the mailserver archived B's message in PostgreSQL"
    );
    let town = status::public_chat_topic("town");
    assert!(rows.iter().any(|(key, value)| {
        let env = waku::Envelope::decode_bytes(value).unwrap();
        env.topic == town && key[36..] == town.0
    }));
    assert!(
        !dir.join("a/mailserver.redb").exists(),
        "no redb file with --mailserver-db"
    );
}

#[test]
fn status_node_run_rejects_a_mailserver_db_without_mailserver_or_a_bad_url() {
    let dir = std::env::temp_dir().join(format!("status-node-pgbad-{}", std::process::id()));
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_status-node"))
            .args(["run", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&dir)
            .args(extra)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let out = run(&["--mailserver-db", "postgres://nobody@localhost/x"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--mailserver-db needs --mailserver"));
    // Nothing listens there: the node reports the failure and exits instead of running without archive.
    let out = run(&[
        "--mailserver",
        "--mailserver-db",
        "host=/nonexistent-socket-dir port=1 user=x dbname=x connect_timeout=2",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("postgres"),
        "{out:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
