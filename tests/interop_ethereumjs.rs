//! Interoperability with an independent RLPx implementation: `@ethereumjs/devp2p` (npm), driven by
//! `tests/interop/ethereumjs/peer.mjs`. Both directions: the JS peer dials our listener, and we dial the JS
//! listener. Each completes the EIP-8 handshake, the Hello exchange with Snappy (p2p v5), and one `test/1`
//! message each way, then a clean disconnect.
//!
//! The test installs its Node dependencies with `npm ci` from the committed lock file. It fails (never
//! skips) when `node` or `npm` is missing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use status_io_std::{demo, RlpxStream};
use status_sansio::crypto::SecretKey;
use status_sansio::enode::Enode;
use status_sansio::rlpx::{Config, Event};
use status_sansio::Seed;

const OUR_GREETING: &str = "hello from status-sansio";
const THEIR_GREETING: &str = "hello from ethereumjs";

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/ethereumjs")
}

/// Run `npm ci` once per test process (serialised: both tests share node_modules).
fn install() -> PathBuf {
    static DONE: OnceLock<Mutex<bool>> = OnceLock::new();
    let dir = interop_dir();
    let lock = DONE.get_or_init(|| Mutex::new(false));
    let mut done = lock.lock().unwrap();
    if !*done {
        for tool in ["node", "npm"] {
            let ok = Command::new(tool)
                .arg("--version")
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            assert!(
                ok,
                "`{tool}` is required for the ethereumjs interop test and was not found on PATH"
            );
        }
        if !dir.join("node_modules/@ethereumjs/devp2p/package.json").exists() {
            let out = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir)
                .output()
                .expect("run npm ci");
            assert!(
                out.status.success(),
                "npm ci failed:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        *done = true;
    }
    dir
}

/// The JS peer's stdout lines, read on a thread so the test can wait with a deadline.
struct JsPeer {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl JsPeer {
    fn spawn(args: &[&str]) -> JsPeer {
        let dir = install();
        let mut child = Command::new("node")
            .arg("peer.mjs")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start node");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        JsPeer {
            child,
            lines: rx,
            seen: vec![],
        }
    }

    fn next_line(&mut self) -> String {
        let l = self
            .lines
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| {
                panic!("no line from the JS peer in time; seen so far: {:?}", self.seen);
            });
        self.seen.push(l.clone());
        l
    }

    /// Wait for exit and return every stdout line.
    fn finish(mut self) -> Vec<String> {
        let status = wait_with_timeout(&mut self.child, Duration::from_secs(20));
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(l);
        }
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        assert!(status, "JS peer failed; stdout: {:?}\nstderr:\n{err}", self.seen);
        self.seen
    }
}

fn wait_with_timeout(child: &mut Child, limit: Duration) -> bool {
    let start = std::time::Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.success();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn key(n: u64) -> SecretKey {
    SecretKey::random(&mut Seed::from_u64(n).rng())
}

fn our_config(n: u64) -> Arc<Config> {
    Arc::new(Config::new(key(n), vec![demo::protocol()]))
}

/// Drive our side: on Connected send the greeting; collect what arrives until the connection closes.
/// The remote's (client id, p2p version), and the `test` messages received as (code, text).
type Outcome = (Option<(String, u64)>, Vec<(u64, String)>);

fn run_our_side(mut peer: RlpxStream) -> Outcome {
    let mut hello = None;
    let mut received = Vec::new();
    while let Some(event) = peer.next_event().unwrap() {
        match event {
            Event::Connected {
                hello: h,
                capabilities,
                ..
            } => {
                assert_eq!(capabilities.len(), 1);
                assert_eq!(capabilities[0].name.as_str(), "test");
                assert_eq!(capabilities[0].offset, 0x10);
                hello = Some((h.client_id.clone(), h.protocol_version));
                peer.send("test", demo::GREETING, &demo::encode_text(OUR_GREETING))
                    .unwrap();
            }
            Event::Message { code, payload, .. } => {
                received.push((code, demo::decode_text(&payload).unwrap_or_default()));
            }
            Event::Disconnected { error, .. } => assert_eq!(error, None, "clean disconnect expected"),
            Event::Pong { .. } => {}
            _ => {}
        }
    }
    (hello, received)
}

fn check(hello: Option<(String, u64)>, received: Vec<(u64, String)>, js: Vec<String>) {
    let (client, version) = hello.expect("Hello exchange completed");
    assert!(client.starts_with("ethereumjs-devp2p/"), "{client}");
    assert_eq!(version, 5, "the JS peer speaks p2p v5, so Snappy was on");
    assert_eq!(received, vec![(demo::GREETING, THEIR_GREETING.to_string())]);
    let ours = format!(
        "RECEIVED {} {}",
        demo::GREETING,
        hex::encode(demo::encode_text(OUR_GREETING))
    );
    let our_hello = format!("HELLO status-sansio/v{} 5", env!("CARGO_PKG_VERSION"));
    assert!(js.contains(&our_hello), "JS saw our Hello: {js:?}");
    assert!(js.contains(&ours), "JS got our message: {js:?}");
    assert_eq!(js.last().map(String::as_str), Some("OK"), "{js:?}");
}

#[test]
fn ethereumjs_dials_our_listener() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let config = our_config(1);
    let enode = Enode::new(config.public_key(), listener.local_addr().unwrap());
    let js = JsPeer::spawn(&["dial", "--key", &"42".repeat(32), "--enode", &enode.to_string()]);
    let peer = RlpxStream::accept(&listener, config).unwrap();
    let (hello, received) = run_our_side(peer);
    check(hello, received, js.finish());
}

#[test]
fn we_dial_the_ethereumjs_listener() {
    let mut js = JsPeer::spawn(&["listen", "--key", &"43".repeat(32)]);
    let line = js.next_line();
    let enode: Enode = line
        .strip_prefix("ENODE ")
        .unwrap_or_else(|| panic!("{line}"))
        .parse()
        .unwrap();
    let peer = RlpxStream::connect(&enode, our_config(2)).unwrap();
    let (hello, received) = run_our_side(peer);
    check(hello, received, js.finish());
}
