//! Waku v1 interoperability with an independent implementation: the `@ethereumjs/devp2p` peer of
//! `tests/interop/ethereumjs/` in `--proto waku` mode, whose envelope code (`waku.mjs`) is written in JS from
//! the spec with its own Keccak, AES-GCM, secp256k1 and RLP. Over real TCP, both directions: the two sides
//! exchange Waku Status packets, then each builds, signs, encrypts and seals a public-chat envelope that
//! the other opens and attributes to the right signer.
//!
//! Installs the Node dependencies with `npm ci`; fails (never skips) without `node` and `npm`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use status_io_std::{os_seed, Clock};
use status_sansio::crypto::{pubkey_to_uncompressed, SecretKey};
use status_sansio::enode::Enode;
use status_sansio::rlpx::{self, Connection, Protocol};
use status_sansio::waku::message::{NewMessage, PostKey};
use status_sansio::waku::{status, ConnId, Dialect, Filter};
use status_sansio::waku::{Event, Input, Output, WakuConfig, WakuNode};
use status_sansio::Seed;

const CHAT: &str = "status-sansio-interop";
const OURS: &str = "hello from status-sansio";
const THEIRS: &str = "hello from ethereumjs: ünïcode";
const JS_SIGN_KEY: &str = "5c2e4f0d8a1b3c7e9f60718293a4b5c6d7e8f9012345678901234567890abcde";
const PEER: ConnId = ConnId(1);

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/ethereumjs")
}

fn install() {
    static DONE: OnceLock<Mutex<bool>> = OnceLock::new();
    let mut done = DONE.get_or_init(|| Mutex::new(false)).lock().unwrap();
    if *done {
        return;
    }
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
    if !dir()
        .join("node_modules/ethereum-cryptography/package.json")
        .exists()
        || !dir()
            .join("node_modules/@ethereumjs/devp2p/package.json")
            .exists()
    {
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(dir())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "npm ci failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    *done = true;
}

struct Js {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Js {
    fn spawn(args: &[&str]) -> Js {
        install();
        let mut child = Command::new("node")
            .arg("peer.mjs")
            .args(args)
            .args([
                "--proto",
                "waku",
                "--chat",
                CHAT,
                "--text",
                THEIRS,
                "--sign-key",
                JS_SIGN_KEY,
            ])
            .current_dir(dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                seen2.lock().unwrap().push(l.clone());
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Js {
            child,
            lines: rx,
            seen,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    fn finish(mut self) -> Vec<String> {
        let start = Instant::now();
        let ok = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s.success();
            }
            if start.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                break false;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(100));
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let lines = self.lines();
        assert!(ok, "JS peer failed; stdout: {lines:?}\nstderr:\n{err}");
        lines
    }
}

/// Our side: one RLPx connection and a Waku node over a blocking socket.
struct Ours {
    stream: TcpStream,
    conn: Connection,
    waku: WakuNode,
    clock: Clock,
    events: Vec<Event>,
    closed: bool,
}

impl Ours {
    fn new(stream: TcpStream, conn: Connection, clock: Clock) -> Ours {
        let mut waku = WakuNode::new(WakuConfig::default(), &os_seed()).unwrap();
        let topic = status::public_chat_topic(CHAT);
        let filter = Filter::symmetric(vec![topic], *status::public_chat_key(CHAT));
        let id = waku.unused_subscription_id();
        waku.handle_input(clock.now(), Input::Subscribe { id, filter })
            .unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        Ours {
            stream,
            conn,
            waku,
            clock,
            events: vec![],
            closed: false,
        }
    }

    fn pump(&mut self) {
        let now = self.clock.now();
        loop {
            let mut moved = false;
            while let Some(o) = self.conn.poll_output() {
                moved = true;
                match o {
                    rlpx::Output::Transmit(b) => {
                        let failed = self.stream.write_all(&b).is_err();
                        if failed {
                            self.conn.handle_input(now, rlpx::Input::TransportClosed).unwrap();
                        }
                    }
                    rlpx::Output::Event(rlpx::Event::Connected { capabilities, .. }) => {
                        assert!(capabilities
                            .iter()
                            .any(|c| c.name.as_str() == "waku" && c.version == 1));
                        self.waku
                            .handle_input(
                                now,
                                Input::PeerConnected {
                                    peer: PEER,
                                    dialect: Dialect::Waku1,
                                },
                            )
                            .unwrap();
                    }
                    rlpx::Output::Event(rlpx::Event::Message { code, payload, .. }) => {
                        self.waku
                            .handle_input(
                                now,
                                Input::Packet {
                                    peer: PEER,
                                    code,
                                    data: payload,
                                },
                            )
                            .unwrap();
                    }
                    rlpx::Output::Event(rlpx::Event::Disconnected { .. }) => {
                        let _ = self
                            .waku
                            .handle_input(now, Input::PeerDisconnected { peer: PEER });
                    }
                    rlpx::Output::Event(_) => {}
                    rlpx::Output::Close => self.closed = true,
                    _ => {}
                }
            }
            while let Some(o) = self.waku.poll_output() {
                moved = true;
                match o {
                    Output::Transmit { code, data, .. } => {
                        let _ = self.conn.handle_input(
                            now,
                            rlpx::Input::Send {
                                capability: "waku",
                                code,
                                payload: &data,
                            },
                        );
                    }
                    Output::Disconnect { reason, .. } => self
                        .conn
                        .handle_input(now, rlpx::Input::Disconnect(reason))
                        .unwrap(),
                    Output::Event(Event::PeerReady { .. }) => {
                        let me = SecretKey::random(&mut Seed::from_u64(31).rng());
                        let msg = NewMessage {
                            topic: status::public_chat_topic(CHAT),
                            payload: OURS.as_bytes().to_vec(),
                            key: PostKey::Symmetric(status::public_chat_key(CHAT)),
                            signer: Some(me),
                            ttl: 30,
                            pow_target: 0.002,
                            padding: None,
                        };
                        self.waku.handle_input(now, Input::Post(Box::new(msg))).unwrap();
                        self.events.push(Event::PeerReady {
                            peer: PEER,
                            options: Box::default(),
                        });
                    }
                    Output::Event(e) => self.events.push(e),
                    _ => {}
                }
            }
            if !moved {
                break;
            }
        }
    }

    /// Run until the connection closes or `limit` passes.
    fn run(&mut self, limit: Duration) {
        let start = Instant::now();
        let mut buf = vec![0u8; 64 * 1024];
        self.pump();
        while !self.closed && start.elapsed() < limit {
            let now = self.clock.now();
            match self.stream.read(&mut buf) {
                Ok(0) => self.conn.handle_input(now, rlpx::Input::TransportClosed).unwrap(),
                Ok(n) => self
                    .conn
                    .handle_input(now, rlpx::Input::Receive(&buf[..n]))
                    .unwrap(),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => self.conn.handle_input(now, rlpx::Input::TransportClosed).unwrap(),
            }
            let now = self.clock.now();
            self.conn.handle_timeout(now);
            self.waku.handle_timeout(now);
            self.pump();
        }
    }
}

fn rlpx_config(seed: u64) -> Arc<rlpx::Config> {
    let key = SecretKey::random(&mut Seed::from_u64(seed).rng());
    Arc::new(rlpx::Config::new(
        key,
        vec![
            Protocol::new("waku", 1, 128).unwrap(),
            Protocol::new("shh", 6, 128).unwrap(),
        ],
    ))
}

fn check(ours: &Ours, js: &[String]) {
    // The JS peer saw our Status and opened our envelope, attributing it to our key.
    let status_line = js
        .iter()
        .find(|l| l.starts_with("STATUS "))
        .unwrap_or_else(|| panic!("{js:?}"));
    assert_eq!(
        status_line,
        &format!("STATUS {}", hex::encode(ours.waku.local_options().encode()))
    );
    let pow: f64 = js
        .iter()
        .find_map(|l| l.strip_prefix("STATUS_POW "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(pow, WakuConfig::default().min_pow);
    let posted = ours
        .events
        .iter()
        .find_map(|e| {
            if let Event::Posted { hash } = e {
                Some(*hash)
            } else {
                None
            }
        })
        .unwrap();
    let me = SecretKey::random(&mut Seed::from_u64(31).rng());
    let opened = js
        .iter()
        .find(|l| l.starts_with("OPENED "))
        .unwrap_or_else(|| panic!("JS opened nothing: {js:?}"));
    let parts: Vec<&str> = opened.splitn(5, ' ').collect();
    assert_eq!(
        parts[1],
        hex::encode(posted),
        "JS computed the same envelope hash"
    );
    assert!(parts[2].parse::<f64>().unwrap() >= 0.002 / 2.0);
    assert_eq!(
        parts[3].trim_start_matches("0x"),
        hex::encode(pubkey_to_uncompressed(&me.public_key()))
    );
    assert_eq!(parts[4], OURS);
    assert_eq!(js.last().map(String::as_str), Some("OK"), "{js:?}");

    // We opened the JS envelope, with the right signer and the hash the JS side printed.
    let js_key = status_sansio::crypto::secret_from_bytes(&hex::decode(JS_SIGN_KEY).unwrap()).unwrap();
    let sent = js.iter().find_map(|l| l.strip_prefix("SENT ")).unwrap();
    let sent_hash = sent.split(' ').next().unwrap();
    let msgs: Vec<_> = ours
        .events
        .iter()
        .filter_map(|e| if let Event::Message(m) = e { Some(m) } else { None })
        .collect();
    let theirs: Vec<_> = msgs
        .iter()
        .filter(|m| m.sender == Some(js_key.public_key()))
        .collect();
    assert_eq!(theirs.len(), 1, "exactly one JS message: {msgs:?}");
    assert_eq!(std::str::from_utf8(&theirs[0].payload).unwrap(), THEIRS);
    assert_eq!(hex::encode(theirs[0].envelope_hash), sent_hash);
    assert!(theirs[0].pow >= 0.002 / 2.0);
}

#[test]
fn waku_with_ethereumjs_dialing_us() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = rlpx_config(11);
    let enode = Enode::new(cfg.public_key(), listener.local_addr().unwrap());
    let mut js = Js::spawn(&["dial", "--key", &"51".repeat(32), "--enode", &enode.to_string()]);
    // Accept without blocking forever if the JS peer fails before dialing.
    listener.set_nonblocking(true).unwrap();
    let start = Instant::now();
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(_) if start.elapsed() < Duration::from_secs(20) => {
                if let Some(st) = js.child.try_wait().unwrap() {
                    panic!("the JS peer exited ({st}) before dialing: {:?}", js.lines());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("no inbound connection: {e}"),
        }
    };
    stream.set_nonblocking(false).unwrap();
    let clock = Clock::new();
    let conn = Connection::recipient(cfg, &os_seed(), clock.now()).unwrap();
    let mut ours = Ours::new(stream, conn, clock);
    ours.run(Duration::from_secs(20));
    let lines = js.finish();
    check(&ours, &lines);
}

#[test]
fn waku_with_us_dialing_ethereumjs() {
    let js = Js::spawn(&["listen", "--key", &"52".repeat(32)]);
    let line = js.lines.recv_timeout(Duration::from_secs(20)).unwrap();
    let enode: Enode = line
        .strip_prefix("ENODE ")
        .unwrap_or_else(|| panic!("{line}"))
        .parse()
        .unwrap();
    let stream = TcpStream::connect(enode.addr).unwrap();
    let clock = Clock::new();
    let conn = Connection::initiator(rlpx_config(12), enode.id, &os_seed(), clock.now()).unwrap();
    let mut ours = Ours::new(stream, conn, clock);
    ours.run(Duration::from_secs(20));
    let lines = js.finish();
    check(&ours, &lines);
}
