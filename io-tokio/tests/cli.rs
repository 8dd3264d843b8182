//! `status-node` as a user runs it: the command line (help, version, validation, completions, the config
//! file, `--nat`), the terminal chat by short names, `/peers` and `/chats`, stdin's line checks, JSON logs
//! and the metrics endpoint, each through the real program over loopback TCP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use status_sansio::chat::identity::{compressed_key_string, pubkey_to_hex, three_word_name};

const BIN: &str = env!("CARGO_BIN_EXE_status-node");

fn status_node(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("status-node-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn every_subcommand_has_help_and_version() {
    let version = env!("CARGO_PKG_VERSION");
    for sub in ["run", "demo", "demo-rlpx", "keygen", "completions"] {
        let out = status_node(&[sub, "--help"]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{sub} --help: {out:?}");
        assert!(
            stdout.contains(&format!("Usage: status-node {sub}")),
            "{sub}: {stdout}"
        );
        let out = status_node(&[sub, "--version"]);
        assert!(out.status.success(), "{sub} --version: {out:?}");
        assert!(text(&out.stdout).contains(version), "{out:?}");
    }
    // keygen --help prints help, not a key.
    let out = status_node(&["keygen", "--help"]);
    assert!(!text(&out.stdout).contains("secret key:"), "{out:?}");
    let out = status_node(&["--version"]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).trim(), format!("status-node {version}"));
    let out = status_node(&["--help"]);
    assert!(out.status.success());
    for sub in ["run", "demo", "demo-rlpx", "keygen", "completions"] {
        assert!(text(&out.stdout).contains(sub), "{out:?}");
    }
    // Every run option is documented.
    let help = text(&status_node(&["run", "--help"]).stdout);
    for flag in [
        "--listen",
        "--nat",
        "--data-dir",
        "--key-file",
        "--static-peer",
        "--mailserver",
        "--mailserver-db",
        "--light",
        "--mailserver-peer",
        "--dns-discovery",
        "--target-peers",
        "--public-chat",
        "--config",
        "--log-format",
        "--metrics",
        "--mailserver-max-bytes",
        "--mailserver-peer-scan-rate",
        "--mailserver-ip-scan-rate",
    ] {
        assert!(help.contains(flag), "{flag} missing in\n{help}");
    }
}

#[test]
fn bad_flags_and_values_are_refused_with_their_reason() {
    let key =
        status_sansio::crypto::SecretKey::random(&mut status_sansio::Seed::from_u64(5).rng()).public_key();
    let id = &pubkey_to_hex(&key)[4..];
    let localhost = format!("--static-peer=enode://{id}@localhost:30303");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["frobnicate"], "unrecognized subcommand 'frobnicate'"),
        (vec!["run", "--bogus"], "unexpected argument '--bogus'"),
        (vec!["run", "--public-chat", ""], "a chat name cannot be empty"),
        (vec!["run", "--target-peers", "0"], "must be at least 1"),
        (vec!["run", "--target-peers=many"], "at least 1"),
        (vec!["run", "--listen=nonsense"], "--listen <ADDR>"),
        (vec!["run", "--nat", "upnp"], "extip:IP"),
        (vec!["run", "--nat=extip:host.example"], "not an IP address"),
        (vec!["run", &localhost], "an enode needs an IP address"),
        (vec!["run", "--log-format", "xml"], "--log-format"),
        (
            vec!["run", "--mailserver-max-bytes", "0"],
            "must be more than zero",
        ),
        (vec!["run", "--mailserver-max-bytes=12Q"], "unknown size suffix"),
        (vec!["run", "--mailserver-max-bytes=99999999999T"], "too large"),
        (
            vec!["run", "--mailserver-peer-scan-rate", "0"],
            "must be more than zero",
        ),
        (
            vec!["run", "--mailserver-ip-scan-rate=lots"],
            "not a whole number",
        ),
        (vec!["completions", "tcsh"], "invalid value 'tcsh'"),
    ];
    for (args, needle) in cases {
        let out = status_node(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {needle:?} not in {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn completions_name_the_subcommands_and_flags() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = status_node(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = text(&out.stdout);
        for word in ["status-node", "demo-rlpx", "keygen", "static-peer", "log-format"] {
            assert!(script.contains(word), "{shell}: {word} missing");
        }
    }
}

/// Read lines on a thread.
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

/// Wait for a line containing `needle`.
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

/// A `status-node run` with piped stdio.
struct Node {
    child: std::process::Child,
    out: Receiver<String>,
    err: Receiver<String>,
    input: std::process::ChildStdin,
    enode: String,
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
        let enode = out.recv_timeout(Duration::from_secs(20)).unwrap();
        assert!(enode.starts_with("enode://"), "{enode}");
        Node {
            child,
            out,
            err,
            input,
            enode,
        }
    }

    fn send(&mut self, line: &str) {
        self.send_bytes(format!("{line}\n").as_bytes());
    }

    fn send_bytes(&mut self, b: &[u8]) {
        self.input.write_all(b).unwrap();
        self.input.flush().unwrap();
    }

    fn expect(&self, needle: &str) -> String {
        expect(&self.out, needle)
    }

    fn connected(&self) {
        expect(&self.err, "peer connected");
    }

    fn quit(mut self) {
        self.send("/quit");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "{status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("/quit did not stop the node");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chat_key(dir: &Path) -> status_sansio::crypto::PublicKey {
    status_io_std::state_file::read_key(&dir.join("identity.key"))
        .unwrap()
        .unwrap()
        .public_key()
}

#[test]
fn config_file_sets_options_and_flags_override_it() {
    let dir = tmp("config");
    let file = dir.join("node.toml");
    std::fs::write(
        &file,
        format!(
            "listen = \"127.0.0.1:0\"\nnat = \"extip:10.1.1.1\"\ndata-dir = {:?}\npublic-chat = [\"town\", \"news\"]\n\
             target-peers = 2\nlight = true\n",
            dir.join("data").display().to_string()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "--nat", "extip:10.2.2.2", "--config"])
        .arg(&file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = lines_of(child.stdout.take().unwrap());
    let mut input = child.stdin.take().unwrap();
    let enode = out.recv_timeout(Duration::from_secs(20)).unwrap();
    // The flag wins over the file's nat; the file's data dir and chats are used.
    assert!(enode.contains("@10.2.2.2:"), "{enode}");
    assert!(dir.join("data/identity.key").exists());
    writeln!(input, "/chats").unwrap();
    input.flush().unwrap();
    expect(&out, "public  news");
    writeln!(input, "/quit").unwrap();
    input.flush().unwrap();
    assert!(child.wait().unwrap().success());

    // The file's values are checked as the flags are, and the message names the file.
    for (body, needle) in [
        ("target-peers = 0\n", "must be at least 1"),
        ("colour = \"blue\"\n", "unknown key \"colour\""),
        ("light = \"yes\"\n", "light: expected true or false"),
        ("listen = [", "config file"),
    ] {
        std::fs::write(&file, body).unwrap();
        let out = Command::new(BIN)
            .args(["run", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{body}: {stderr}");
        assert!(
            stderr.contains(needle) && stderr.contains(&file.display().to_string()),
            "{body}: {stderr}"
        );
    }
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(dir.join("missing.toml"))
        .output()
        .unwrap();
    assert!(text(&out.stderr).contains("missing.toml"), "{out:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn nat_extip_is_the_enode_address_and_an_unspecified_one_is_warned_about() {
    let dir = tmp("nat");
    let a = Node::start(&dir.join("a"), &["--nat", "extip:203.0.113.9"]);
    let port = a.enode.rsplit(':').next().unwrap().to_string();
    assert!(a.enode.ends_with(&format!("@203.0.113.9:{port}")), "{}", a.enode);
    let mut child = Command::new(BIN)
        .args(["run", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.join("b"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = lines_of(child.stderr.take().unwrap());
    let line = expect(&err, "not dialable");
    assert!(line.contains("--nat extip:IP"), "{line}");
    let _ = child.kill();
    let _ = child.wait();
    drop(a);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_static_peer_that_cannot_be_dialled_is_logged_at_warn_with_its_address() {
    let dir = tmp("dialfail");
    // A port nobody listens on: bound, then closed.
    let addr = free_port();
    let key =
        status_sansio::crypto::SecretKey::random(&mut status_sansio::Seed::from_u64(8).rng()).public_key();
    let enode = format!("enode://{}@{addr}", &pubkey_to_hex(&key)[4..]);
    let a = Node::start(&dir.join("a"), &["--static-peer", &enode]);
    let line = expect(&a.err, "dial failed");
    assert!(
        line.contains("WARN") && line.contains(&format!("addr={addr}")),
        "{line}"
    );
    // It is redialled after a backoff, which the log shows, and each failure shows again.
    let redial = expect(&a.err, "redialling after backoff");
    assert!(
        redial.contains(&addr) && redial.contains("failures=1"),
        "{redial}"
    );
    let again = expect(&a.err, "dial failed");
    assert!(again.contains(&addr), "{again}");
    drop(a);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn errors_name_the_address_and_the_path() {
    let dir = tmp("errors");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let out = Command::new(BIN)
        .args(["run", "--listen", &addr, "--data-dir"])
        .arg(dir.join("a"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&addr) && stderr.contains("in use"), "{stderr}");
    // A data dir that is a file.
    let file = dir.join("file");
    std::fs::write(&file, b"x").unwrap();
    let out = Command::new(BIN)
        .args(["run", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    // A key file in a directory that does not exist.
    let key = dir.join("no/such/dir/node.key");
    let out = Command::new(BIN)
        .args(["run", "--listen", "127.0.0.1:0", "--key-file"])
        .arg(&key)
        .arg("--data-dir")
        .arg(dir.join("b"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&key.display().to_string()), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stdin_refuses_invalid_utf8_and_overlong_lines_and_keeps_reading() {
    let dir = tmp("stdin");
    let mut a = Node::start(&dir.join("a"), &[]);
    a.send_bytes(b"/join caf\xc3\x28\n");
    a.expect("refused: line is not valid UTF-8");
    let mut long = vec![b'x'; 100_000];
    long.push(b'\n');
    a.send_bytes(&long);
    a.expect("refused: line longer than");
    a.send("/nonsense");
    a.expect("unknown command /nonsense");
    a.send("hello");
    a.expect("commands start with /");
    a.send("/whoami");
    let me = chat_key(&dir.join("a"));
    assert_eq!(
        a.expect("0x04"),
        format!("{} {}", pubkey_to_hex(&me), three_word_name(&me))
    );
    a.quit();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Scrape `addr` once; the body.
fn scrape(addr: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

/// The value of the sample `name` (with its labels, as printed).
fn sample(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {name} in\n{body}"))
        .trim()
        .parse()
        .unwrap()
}

fn free_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

#[test]
fn one_to_one_chat_by_short_names_with_metrics_json_logs_peers_and_chats() {
    let dir = tmp("short");
    let metrics = free_port();
    let relay = Node::start(
        &dir.join("relay"),
        &["--mailserver", "--metrics", &metrics, "--log-format", "json"],
    );
    let peer = ["--static-peer", relay.enode.as_str()];
    let a_metrics = free_port();
    let mut a = Node::start(&dir.join("a"), &[peer[0], peer[1], "--metrics", &a_metrics]);
    let mut b = Node::start(&dir.join("b"), &peer);
    a.connected();
    b.connected();
    // The relay counts both once its side of each handshake is done (it may lag the clients' by a moment).
    let waku_peers = "status_node_peers{dialect=\"waku\"}";
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut before = scrape(&metrics);
    while sample(&before, waku_peers) != 2.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        before = scrape(&metrics);
    }
    assert_eq!(sample(&before, waku_peers), 2.0, "{before}");
    let (ka, kb) = (chat_key(&dir.join("a")), chat_key(&dir.join("b")));
    let (na, nb) = (three_word_name(&ka), three_word_name(&kb));

    // /peers lists the relay with its short id and address.
    a.send("/peers");
    a.expect("1 peers connected");
    let relay_id = &relay.enode["enode://".len().."enode://".len() + 8];
    let line = a.expect(relay_id);
    let relay_addr = relay.enode.rsplit('@').next().unwrap();
    assert!(line.contains(relay_addr) && line.contains("waku/1"), "{line}");

    // A adds B by the compressed key keygen prints, with a nickname; B answers by A's 3-word name.
    a.send(&format!("/add {} bob", compressed_key_string(&kb)));
    assert_eq!(a.expect("added"), format!("added bob ({nb}): /msg bob TEXT"));
    a.send("/msg bob first contact");
    a.expect("[bob] sent");
    b.expect(&format!("contact request from {na}"));
    assert_eq!(b.expect("first contact"), format!("[{na}] {na}: first contact"));
    a.expect("delivered");
    b.send(&format!("/msg {na} hello a"));
    assert_eq!(a.expect("hello a"), format!("[bob] {nb}: hello a"));
    // B names A by the uncompressed key and a nickname too.
    b.send(&format!("/add {} alice", pubkey_to_hex(&ka)));
    b.expect("added alice");
    b.send("/msg alice by nickname");
    assert_eq!(a.expect("by nickname"), format!("[bob] {nb}: by nickname"));
    b.expect("[alice] delivered");

    // A group by name; its name survives A's restart.
    a.send("/group friends bob");
    a.expect("group friends created");
    b.expect("group friends");
    a.send("/msg friends hi group");
    assert_eq!(b.expect("hi group"), format!("[friends] {na}: hi group"));
    a.send("/msg nobody x");
    a.expect("no chat named \"nobody\"");
    a.send("/add 0x04zz");
    a.expect("is not a key");

    // The relay's counters moved mid-chat.
    let after = scrape(&metrics);
    let relayed = "status_node_envelopes_relayed_total";
    assert!(sample(&after, relayed) > sample(&before, relayed), "{after}");
    let received = "status_node_envelopes_received_total";
    assert!(sample(&after, received) > sample(&before, received), "{after}");
    assert!(sample(&after, "status_node_pool_envelopes") >= 1.0, "{after}");
    assert!(
        sample(&after, "status_node_store_commit_seconds_count") >= 1.0,
        "{after}"
    );
    let chat = scrape(&a_metrics);
    assert!(
        sample(&chat, "status_node_chat_messages_total{event=\"sent\"}") >= 2.0,
        "{chat}"
    );
    assert!(
        sample(&chat, "status_node_chat_messages_total{event=\"received\"}") >= 2.0,
        "{chat}"
    );
    assert!(
        sample(&chat, "status_node_chat_messages_total{event=\"delivered\"}") >= 1.0,
        "{chat}"
    );

    a.quit();
    let mut a = Node::start(&dir.join("a"), &peer);
    a.connected();
    a.send("/chats");
    assert!(a.expect("1:1     bob").contains(&format!("({nb})")));
    a.expect("group   friends");
    std::thread::sleep(Duration::from_secs(1));
    a.send("/msg friends after the restart");
    assert_eq!(
        b.expect("after the restart"),
        format!("[friends] {na}: after the restart")
    );
    a.send("/msg bob still bob");
    assert_eq!(b.expect("still bob"), format!("[alice] {na}: still bob"));

    // The relay's log, line by line, is JSON; peer events carry the peer span's address and id.
    drop((a, b));
    std::thread::sleep(Duration::from_secs(1));
    let relay_err = relay.err.try_iter().collect::<Vec<_>>();
    drop(relay);
    let mut connected = 0;
    for l in &relay_err {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{l}");
        if v["fields"]["message"] == "peer connected" {
            connected += 1;
            assert!(
                v["span"]["addr"].as_str().unwrap().starts_with("127.0.0.1:"),
                "{l}"
            );
            assert_eq!(v["span"]["id"].as_str().unwrap().len(), 8, "{l}");
            assert_eq!(v["fields"]["dialect"], "waku", "{l}");
        }
    }
    assert!(connected >= 3, "{relay_err:#?}");
    assert!(
        relay_err
            .iter()
            .any(|l| l.contains("\"peer disconnected\"") && l.contains("\"by\"")),
        "{relay_err:#?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
