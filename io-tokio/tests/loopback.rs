//! The tokio driver over real loopback TCP: a stream-driven pair, the spawned-task API, and the
//! `status-node demo` program end to end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use status_io_std::demo;
use status_io_tokio::{spawn, Command, RlpxStream};
use status_sansio::crypto::SecretKey;
use status_sansio::enode::Enode;
use status_sansio::rlpx::{Config, DisconnectReason, Event};
use status_sansio::Seed;
use tokio::net::TcpListener;

async fn next(h: &mut status_io_tokio::Handle) -> Option<Event> {
    tokio::time::timeout(Duration::from_secs(10), h.events.recv())
        .await
        .unwrap()
}

fn config(n: u64) -> Arc<Config> {
    Arc::new(Config::new(
        SecretKey::random(&mut Seed::from_u64(n).rng()),
        vec![demo::protocol()],
    ))
}

#[tokio::test]
async fn spawned_tasks_exchange_messages_and_disconnect() {
    let (ca, cb) = (config(1), config(2));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let enode = Enode::new(cb.public_key(), listener.local_addr().unwrap());
    let accept = tokio::spawn(async move { RlpxStream::accept(&listener, cb).await.unwrap() });
    let a = spawn(RlpxStream::connect(&enode, ca).await.unwrap(), 16);
    let b = spawn(accept.await.unwrap(), 16);
    let (mut a, mut b) = (a, b);
    assert!(matches!(next(&mut a).await, Some(Event::Connected { .. })));
    assert!(matches!(next(&mut b).await, Some(Event::Connected { .. })));
    for i in 0..20u8 {
        let payload = demo::encode_text(&format!("m{i}"));
        a.commands
            .send(Command::Send {
                capability: "test".into(),
                code: 3,
                payload,
            })
            .await
            .unwrap();
    }
    for i in 0..20u8 {
        match next(&mut b).await {
            Some(Event::Message { code: 3, payload, .. }) => {
                assert_eq!(demo::decode_text(&payload).unwrap(), format!("m{i}"))
            }
            e => panic!("{e:?}"),
        }
    }
    a.commands.send(Command::Ping).await.unwrap();
    assert!(matches!(next(&mut a).await, Some(Event::Pong { .. })));
    b.commands
        .send(Command::Disconnect(DisconnectReason::TooManyPeers))
        .await
        .unwrap();
    assert_eq!(
        next(&mut a).await,
        Some(Event::Disconnected {
            reason: DisconnectReason::TooManyPeers,
            remote: true,
            error: None
        })
    );
    assert_eq!(next(&mut a).await, None, "the task ends after the disconnect");
}

#[tokio::test]
async fn handshake_with_the_wrong_identity_fails() {
    // Dial bob's address while expecting carol's key: bob cannot open the auth, so nothing connects.
    let (ca, cb, cc) = (config(1), config(2), config(3));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = tokio::spawn(async move {
        let mut s = RlpxStream::accept(&listener, cb).await.unwrap();
        let mut evs = vec![];
        while let Some(e) = s.next_event().await.unwrap() {
            evs.push(e);
        }
        evs
    });
    let mut s = RlpxStream::connect_addr(addr, cc.public_key(), ca).await.unwrap();
    let mut evs = vec![];
    while let Some(e) = tokio::time::timeout(Duration::from_secs(10), s.next_event())
        .await
        .unwrap()
        .unwrap()
    {
        evs.push(e);
    }
    let server = accept.await.unwrap();
    assert!(!evs
        .iter()
        .chain(&server)
        .any(|e| matches!(e, Event::Connected { .. })));
    assert!(
        matches!(server.last(), Some(Event::Disconnected { error: Some(_), .. })),
        "{server:?}"
    );
}

#[test]
fn status_node_demo_rlpx_succeeds() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_status-node"))
        .arg("demo-rlpx")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "alice pong after",
        "echo: hello from alice",
        "echo: hello from carol",
        "echo: hello from erin",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in\n{stdout}");
    }
    assert_eq!(stdout.matches(" ok\n").count(), 3, "{stdout}");
}

/// Read `child`'s stderr on a thread, forwarding lines.
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
fn status_node_run_connects_two_processes_and_keeps_its_key() {
    use std::process::{Command, Stdio};
    let dir = std::env::temp_dir().join(format!("status-node-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let spawn = |key: &str, extra: &[String]| {
        Command::new(env!("CARGO_BIN_EXE_status-node"))
            .args(["run", "--listen", "127.0.0.1:0", "--key-file"])
            .arg(dir.join(key))
            // Each node its own data dir (chat identity, state): never the working directory.
            .arg("--data-dir")
            .arg(dir.join(format!("{key}.data")))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut a = spawn("a.key", &[]);
    let a_out = lines_of(a.stdout.take().unwrap());
    let a_err = lines_of(a.stderr.take().unwrap());
    let enode_a = a_out.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(enode_a.starts_with("enode://"), "{enode_a}");
    let mut b = spawn("b.key", &["--static-peer".into(), enode_a.clone()]);
    let b_err = lines_of(b.stderr.take().unwrap());
    let connected = |rx: &std::sync::mpsc::Receiver<String>| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
                if l.contains("peer connected") {
                    return true;
                }
            }
        }
        false
    };
    assert!(connected(&b_err), "B connected to A");
    assert!(connected(&a_err), "A saw B");
    let _ = b.kill();
    let _ = a.kill();
    let _ = (a.wait(), b.wait());
    // The key file persists: a restart has the same identity.
    let mut a2 = spawn("a.key", &[]);
    let again = lines_of(a2.stdout.take().unwrap())
        .recv_timeout(Duration::from_secs(20))
        .unwrap();
    let _ = a2.kill();
    let _ = a2.wait();
    assert_eq!(
        again.split('@').next(),
        enode_a.split('@').next(),
        "same node id after restart"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn status_node_keygen_prints_an_identity() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_status-node"))
        .arg("keygen")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap()
            .to_string()
    };
    let secret = status_io_std::demo::parse_key(&field("secret key:")).unwrap();
    let pk = secret.public_key();
    assert_eq!(
        field("public key:"),
        format!("0x{}", hex(&status_sansio::crypto::pubkey_to_uncompressed(&pk)))
    );
    assert_eq!(
        status_sansio::chat::identity::pubkey_from_multibase(&field("compressed key:")).unwrap(),
        pk
    );
    assert_eq!(
        field("name:"),
        status_sansio::chat::identity::three_word_name(&pk)
    );
    assert_eq!(field("name:").split(' ').count(), 3);
    let enode: Enode = field("enode:").parse().unwrap();
    assert_eq!(enode.id, pk);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn status_node_run_public_chat_between_two_processes() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let dir = std::env::temp_dir().join(format!("status-node-chat-{}", std::process::id()));
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
    let mut a = spawn("a", &[]);
    let a_out = lines_of(a.stdout.take().unwrap());
    let a_err = lines_of(a.stderr.take().unwrap());
    let enode_a = a_out.recv_timeout(Duration::from_secs(20)).unwrap();
    let mut b = spawn("b", &["--static-peer".into(), enode_a]);
    let b_out = lines_of(b.stdout.take().unwrap());
    let _b_err = lines_of(b.stderr.take().unwrap());
    let _enode_b = b_out.recv_timeout(Duration::from_secs(20)).unwrap();
    // Wait until A has its peer, then A speaks.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut connected = false;
    while !connected && std::time::Instant::now() < deadline {
        if let Ok(l) = a_err.recv_timeout(Duration::from_millis(200)) {
            connected = l.contains("peer connected");
        }
    }
    assert!(connected, "A saw B");
    // A's identity name, from its key file: what B must print as the author.
    let key = status_io_std::state_file::read_key(&dir.join("a/identity.key"))
        .unwrap()
        .unwrap();
    let name = status_sansio::chat::identity::three_word_name(&key.public_key());
    let mut a_in = a.stdin.take().unwrap();
    writeln!(a_in, "/msg town hello from a").unwrap();
    a_in.flush().unwrap();
    let line = b_out.recv_timeout(Duration::from_secs(20));
    let _ = (a.kill(), b.kill());
    let _ = (a.wait(), b.wait());
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(line.unwrap(), format!("[town] {name}: hello from a"));
}

#[test]
fn status_node_demo_chats_and_catches_up() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_status-node"))
        .arg("demo")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "bob    got in 1:1 with alice from alice",
        "carol  got in group 'demo-group' from alice",
        "carol  got in #status-sansio-demo from bob",
        "\"carol, you missed this\"",
        "\"public news while carol is away\"",
        "delivered to carol",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in\n{stdout}");
    }
    assert!(!stdout.contains("FAILED"), "{stdout}");
    let summary = stdout.lines().find(|l| l.starts_with("summary: ")).unwrap();
    let (done, total) = summary["summary: ".len()..]
        .trim_end_matches(" steps")
        .split_once('/')
        .unwrap();
    assert_eq!(done, total, "{summary}");
    assert!(total.parse::<usize>().unwrap() >= 12, "{summary}");
}

/// A child `status-node run` with piped stdio.
struct Proc {
    child: std::process::Child,
    out: std::sync::mpsc::Receiver<String>,
    input: std::process::ChildStdin,
    enode: String,
}

impl Proc {
    fn start(dir: &std::path::Path, extra: &[String]) -> Proc {
        use std::process::{Command, Stdio};
        let mut child = Command::new(env!("CARGO_BIN_EXE_status-node"))
            .args(["run", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = lines_of(child.stdout.take().unwrap());
        let input = child.stdin.take().unwrap();
        let enode = out.recv_timeout(Duration::from_secs(20)).unwrap();
        assert!(enode.starts_with("enode://"), "{enode}");
        Proc {
            child,
            out,
            input,
            enode,
        }
    }

    fn send(&mut self, line: &str) {
        use std::io::Write;
        writeln!(self.input, "{line}").unwrap();
        self.input.flush().unwrap();
    }

    /// Wait for a stdout line containing `needle`; returns it.
    fn expect(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while std::time::Instant::now() < deadline {
            if let Ok(l) = self.out.recv_timeout(Duration::from_millis(200)) {
                if l.contains(needle) {
                    return l;
                }
                seen.push(l);
            }
        }
        panic!("no line with {needle:?}; saw {seen:#?}");
    }

    fn quit(mut self) {
        self.send("/quit");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "{status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("/quit did not stop the node");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chat_key(dir: &std::path::Path) -> status_sansio::crypto::PublicKey {
    status_io_std::state_file::read_key(&dir.join("identity.key"))
        .unwrap()
        .unwrap()
        .public_key()
}

#[test]
fn status_node_run_one_to_one_survives_a_restart() {
    use status_sansio::chat::identity::{pubkey_to_hex, three_word_name};
    let dir = std::env::temp_dir().join(format!("status-node-1to1-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let relay = Proc::start(&dir.join("relay"), &[]);
    let peer = ["--static-peer".to_string(), relay.enode.clone()];
    let mut a = Proc::start(&dir.join("a"), &peer);
    let mut b = Proc::start(&dir.join("b"), &peer);
    let (ka, kb) = (chat_key(&dir.join("a")), chat_key(&dir.join("b")));
    let (ha, hb) = (pubkey_to_hex(&ka), pubkey_to_hex(&kb));
    let (na, nb) = (three_word_name(&ka), three_word_name(&kb));
    // Both must be connected to the relay before the first message (no mailserver here).
    std::thread::sleep(Duration::from_secs(2));
    a.send(&format!("/add {hb}"));
    a.send(&format!("/msg {hb} first contact"));
    b.expect(&format!("contact request from {na}"));
    // A 1:1 chat is labelled by the contact's 3-word name (its key still names it in commands).
    assert_eq!(b.expect("first contact"), format!("[{na}] {na}: first contact"));
    b.send(&format!("/msg {ha} hello a"));
    assert_eq!(a.expect("hello a"), format!("[{nb}] {nb}: hello a"));
    // B restarts from its data dir: same identity, same sessions.
    b.quit();
    assert!(dir.join("b/state.redb").exists());
    let mut b = Proc::start(&dir.join("b"), &peer);
    std::thread::sleep(Duration::from_secs(2));
    a.send(&format!("/msg {hb} after your restart"));
    assert_eq!(
        b.expect("after your restart"),
        format!("[{na}] {na}: after your restart")
    );
    b.send(&format!("/msg {ha} still here"));
    assert_eq!(a.expect("still here"), format!("[{nb}] {nb}: still here"));
    drop((a, b, relay));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn status_node_run_fetches_missed_messages_from_a_mailserver_after_a_restart() {
    let dir = std::env::temp_dir().join(format!("status-node-history-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let relay = Proc::start(&dir.join("relay"), &["--mailserver".to_string()]);
    let chat = |extra: &str| {
        vec![
            extra.to_string(),
            relay.enode.clone(),
            "--public-chat".to_string(),
            "town".to_string(),
        ]
    };
    let mut a = Proc::start(&dir.join("a"), &chat("--static-peer"));
    let b = Proc::start(&dir.join("b"), &chat("--mailserver-peer"));
    std::thread::sleep(Duration::from_secs(2));
    a.send("/msg town before the restart");
    b.expect("before the restart");
    b.quit();
    assert!(dir.join("b/history.state").exists());
    a.send("/msg town while b was away");
    // Longer than the envelopes live (TTL 15 s): the relay's pool has dropped it, the archive has not.
    std::thread::sleep(Duration::from_secs(17));
    let b = Proc::start(&dir.join("b"), &chat("--mailserver-peer"));
    b.expect("while b was away");
    // The message seen before the restart comes back with the history, and is not shown again.
    std::thread::sleep(Duration::from_secs(2));
    let again: Vec<String> = b
        .out
        .try_iter()
        .filter(|l| l.contains("before the restart"))
        .collect();
    assert!(again.is_empty(), "shown twice: {again:?}");
    drop((a, b, relay));
    let _ = std::fs::remove_dir_all(&dir);
}
