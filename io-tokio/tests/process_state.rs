//! `status-node` as a process on its data directory: SIGTERM and SIGINT stop it gracefully (exit 0, state
//! saved and restored), a second process on the same data directory is refused, and damaged state files,
//! key files and mailserver databases are refused with an error naming the file and are left untouched.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_status-node");

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("status-node-state-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn lines_of(r: impl Read + Send + 'static) -> Receiver<String> {
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

fn expect(rx: &Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            if l.contains(needle) {
                return l;
            }
            seen.push(l);
        }
    }
    panic!("no line with {needle:?}; saw {seen:#?}");
}

/// A running `status-node run` on `dir`.
struct Node {
    child: Child,
    out: Receiver<String>,
    err: Receiver<String>,
    input: std::process::ChildStdin,
}

impl Node {
    fn start(dir: &Path, extra: &[&str]) -> Node {
        let mut child = Command::new(BIN)
            .args(["run", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = lines_of(child.stdout.take().unwrap());
        let err = lines_of(child.stderr.take().unwrap());
        let input = child.stdin.take().unwrap();
        let node = Node {
            child,
            out,
            err,
            input,
        };
        // Running the terminal loop (and so past every start-up step) once it answers a command.
        node.ask("/whoami", "0x04")
    }

    fn ask(mut self, line: &str, needle: &str) -> Node {
        writeln!(self.input, "{line}").unwrap();
        self.input.flush().unwrap();
        expect(&self.out, needle);
        self
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name}");
    }

    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the node did not stop");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `status-node run` on `dir` expecting it to refuse to start: (exit code, stderr).
fn refused(dir: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        .args(["run", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("status-node started on a data dir it should refuse");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut text = String::new();
    stderr.read_to_string(&mut text).unwrap();
    (status.code(), text)
}

#[test]
fn sigterm_and_sigint_stop_gracefully_exit_0_and_the_state_is_restored() {
    let dir = tmp("sigterm");
    let mut a = Node::start(&dir, &["--public-chat", "sigterm-room"]).ask("/chats", "sigterm-room");
    a.signal("TERM");
    let status = a.wait();
    assert_eq!(status.code(), Some(0), "{status}");
    expect(&a.err, "messenger state saved");
    for f in ["history.state", "peers.cache"] {
        let bytes = status_io_std::state_file::read(&dir.join(f), 1 << 30).unwrap();
        assert!(bytes.is_some(), "{f} written at shutdown");
    }
    // The Messenger lives in state.redb (committed as it changes), not in an exported snapshot.
    let records = status_io_std::state::StateStore::open(&dir.join("state.redb"))
        .unwrap()
        .load()
        .unwrap();
    assert!(
        records.iter().any(|(k, _)| k.is_under("messenger")),
        "{records:?}"
    );
    assert!(!dir.join("messenger.state").exists());
    // The restart sees the saved state: the chat is still joined, without --public-chat.
    let mut b = Node::start(&dir, &[]).ask("/chats", "public  sigterm-room");
    expect(&b.err, "messenger state restored");
    b.signal("INT");
    let status = b.wait();
    assert_eq!(status.code(), Some(0), "{status}");
    expect(&b.err, "messenger state saved");
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_second_process_on_a_locked_data_dir_is_refused_naming_the_lock() {
    let dir = tmp("lock");
    let mut a = Node::start(&dir, &[]);
    let (code, stderr) = refused(&dir, &[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("status-node.lock"), "{stderr}");
    assert!(stderr.contains("in use by another process"), "{stderr}");
    // The first node is unaffected, and once it stopped the lock is free again.
    a.signal("TERM");
    assert_eq!(a.wait().code(), Some(0));
    let mut b = Node::start(&dir, &[]);
    b.signal("TERM");
    assert_eq!(b.wait().code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The ways a file gets damaged.
fn damages(good: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mut flipped = good.to_vec();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    let mut wrong_version = good.to_vec();
    // The format version: the two bytes after the eight-byte magic.
    wrong_version[8..10].copy_from_slice(&99u16.to_be_bytes());
    vec![
        ("truncated", good[..good.len() / 2].to_vec()),
        ("bit-flipped", flipped),
        ("empty", vec![]),
        ("wrong-version", wrong_version),
    ]
}

#[test]
fn damaged_state_and_key_files_are_refused_by_name_and_left_untouched() {
    let dir = tmp("damaged");
    let mut a = Node::start(&dir, &["--public-chat", "room"]).ask("/chats", "room");
    a.signal("TERM");
    assert_eq!(a.wait().code(), Some(0));
    drop(a);
    for file in ["history.state", "peers.cache", "node.key", "identity.key"] {
        let path = dir.join(file);
        let good = std::fs::read(&path).unwrap();
        for (how, bad) in damages(&good) {
            std::fs::write(&path, &bad).unwrap();
            let (code, stderr) = refused(&dir, &[]);
            assert_eq!(code, Some(1), "{how} {file}: {stderr}");
            assert!(stderr.contains(file), "{how} {file}: {stderr}");
            assert!(!stderr.contains("panicked"), "{how} {file}: {stderr}");
            assert_eq!(std::fs::read(&path).unwrap(), bad, "{how} {file} was modified");
        }
        std::fs::write(&path, &good).unwrap();
    }
    // The state store: truncated, empty and garbage are refused by name and left untouched.
    let path = dir.join("state.redb");
    let good = std::fs::read(&path).unwrap();
    for (how, bad) in [
        ("truncated", good[..good.len() / 2].to_vec()),
        ("empty", vec![]),
        ("garbage", vec![0x5a; good.len()]),
    ] {
        std::fs::write(&path, &bad).unwrap();
        let (code, stderr) = refused(&dir, &[]);
        assert_eq!(code, Some(1), "{how} state.redb: {stderr}");
        assert!(stderr.contains("state.redb"), "{how} state.redb: {stderr}");
        assert!(!stderr.contains("panicked"), "{how} state.redb: {stderr}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bad,
            "{how} state.redb was modified"
        );
    }
    std::fs::write(&path, &good).unwrap();
    // With every file restored, the node starts again.
    let mut b = Node::start(&dir, &[]).ask("/chats", "public  room");
    b.signal("TERM");
    assert_eq!(b.wait().code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_truncated_mailserver_database_is_refused_without_a_crash() {
    let dir = tmp("redb");
    let mut a = Node::start(&dir, &["--mailserver"]);
    a.signal("TERM");
    assert_eq!(a.wait().code(), Some(0));
    drop(a);
    let path = dir.join("mailserver.redb");
    let good = std::fs::read(&path).unwrap();
    let bad = good[..good.len() / 2].to_vec();
    std::fs::write(&path, &bad).unwrap();
    let (code, stderr) = refused(&dir, &["--mailserver"]);
    // Exit 1 with the error, not 101 (a panic that ended the process).
    assert_eq!(code, Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.contains("mailserver.redb"), "{stderr}");
    assert!(last.contains("damaged or truncated"), "{stderr}");
    assert_eq!(std::fs::read(&path).unwrap(), bad, "the database was modified");
    let _ = std::fs::remove_dir_all(&dir);
}
