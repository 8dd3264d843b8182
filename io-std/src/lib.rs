//! Blocking driver for status-sansio: `std::net` TCP and a poll loop whose socket read timeout is the
//! engine's next deadline.
//!
//! The driver owns what the core refuses to touch: the socket, the clock ([`Clock`]: a monotonic clock
//! anchored to the wall clock at start-up, so `now` never runs backwards) and the seed ([`os_seed`]). It moves
//! bytes between the socket and the engine and contains nothing protocol-specific.
//!
//! ```no_run
//! use std::sync::Arc;
//! use status_io_std::RlpxStream;
//! use status_sansio::rlpx::{Config, Event, Protocol};
//! # fn main() -> std::io::Result<()> {
//! let key = status_sansio::crypto::SecretKey::random(&mut status_io_std::os_seed().rng());
//! let config = Arc::new(Config::new(key, vec![Protocol::new("test", 1, 8).unwrap()]));
//! let enode = "enode://...@127.0.0.1:30303".parse().unwrap();
//! let mut peer = RlpxStream::connect(&enode, config)?;
//! while let Some(event) = peer.next_event()? {
//!     if let Event::Connected { .. } = event {
//!         peer.send("test", 0, &[0xc0])?;
//!     }
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand_core::{OsRng, RngCore};
use status_sansio::enode::Enode;
use status_sansio::rlpx::{Config, Connection, DisconnectReason, Event, Input, Output, RlpxError};
use status_sansio::{Seed, Timestamp};

/// Read buffer size per `read` call.
const READ_CHUNK: usize = 64 * 1024;

/// A monotonic clock anchored to the wall clock once, at construction.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
    start_wall: Timestamp,
}

impl Clock {
    /// Anchor a new clock to the current wall time.
    pub fn new() -> Self {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Clock {
            start: Instant::now(),
            start_wall: Timestamp::from_millis(wall.as_millis() as u64),
        }
    }

    /// The current time: the anchor plus monotonic time elapsed since.
    pub fn now(&self) -> Timestamp {
        self.start_wall + self.start.elapsed()
    }

    /// Time from now until `deadline` (zero if past).
    pub fn until(&self, deadline: Timestamp) -> Duration {
        deadline - self.now()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// A fresh seed from the operating system's randomness.
pub fn os_seed() -> Seed {
    let mut s = [0u8; 32];
    OsRng.fill_bytes(&mut s);
    Seed(s)
}

fn to_io(e: RlpxError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e)
}

/// An RLPx [`Connection`] driven over a blocking [`TcpStream`].
pub struct RlpxStream {
    stream: TcpStream,
    conn: Connection,
    clock: Clock,
    events: VecDeque<Event>,
    closed: bool,
    buf: Vec<u8>,
}

impl RlpxStream {
    /// Dial the node named by an `enode://` URL and start the handshake.
    pub fn connect(enode: &Enode, config: Arc<Config>) -> io::Result<Self> {
        Self::connect_addr(enode.addr, enode.id, config)
    }

    /// Dial `addr`, expecting the node identity `remote_id`.
    pub fn connect_addr(
        addr: SocketAddr,
        remote_id: status_sansio::crypto::PublicKey,
        config: Arc<Config>,
    ) -> io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        let clock = Clock::new();
        let conn = Connection::initiator(config, remote_id, &os_seed(), clock.now()).map_err(to_io)?;
        Self::new(stream, conn, clock)
    }

    /// Accept one inbound connection from `listener` and start the recipient side of the handshake.
    pub fn accept(listener: &TcpListener, config: Arc<Config>) -> io::Result<Self> {
        let (stream, _) = listener.accept()?;
        let clock = Clock::new();
        let conn = Connection::recipient(config, &os_seed(), clock.now()).map_err(to_io)?;
        Self::new(stream, conn, clock)
    }

    /// Drive an existing connection over an existing stream.
    pub fn new(stream: TcpStream, conn: Connection, clock: Clock) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        let mut s = RlpxStream {
            stream,
            conn,
            clock,
            events: VecDeque::new(),
            closed: false,
            buf: vec![0; READ_CHUNK],
        };
        s.flush()?;
        Ok(s)
    }

    /// The connection state machine.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The remote socket address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.peer_addr()
    }

    /// Send a sub-protocol message (written before returning).
    pub fn send(&mut self, capability: &str, code: u64, payload: &[u8]) -> io::Result<()> {
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
        self.flush()
    }

    /// Send a Ping; the answer arrives as [`Event::Pong`].
    pub fn ping(&mut self) -> io::Result<()> {
        let now = self.clock.now();
        self.conn.handle_input(now, Input::Ping).map_err(to_io)?;
        self.flush()
    }

    /// Disconnect with `reason`; keep calling [`RlpxStream::next_event`] until it returns `None`.
    pub fn disconnect(&mut self, reason: DisconnectReason) -> io::Result<()> {
        let now = self.clock.now();
        self.conn
            .handle_input(now, Input::Disconnect(reason))
            .map_err(to_io)?;
        self.flush()
    }

    /// Write what the engine produced, queue its events, and honour Close.
    fn flush(&mut self) -> io::Result<()> {
        while let Some(o) = self.conn.poll_output() {
            match o {
                Output::Transmit(b) => {
                    let failed = !self.closed && self.stream.write_all(&b).is_err();
                    if failed {
                        // The engine reports the failure as a Disconnected event and asks to close.
                        let _ = self.conn.handle_input(self.clock.now(), Input::TransportClosed);
                    }
                }
                Output::Event(e) => self.events.push_back(e),
                Output::Close => {
                    let _ = self.stream.shutdown(Shutdown::Both);
                    self.closed = true;
                }
                // Outputs added later: nothing for a plain stream to do.
                _ => {}
            }
        }
        Ok(())
    }

    /// Block until the next event; `Ok(None)` once the connection is closed and every event was returned.
    pub fn next_event(&mut self) -> io::Result<Option<Event>> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(Some(e));
            }
            if self.closed {
                return Ok(None);
            }
            let timeout = self.conn.poll_timeout().map(|d| self.clock.until(d));
            if timeout == Some(Duration::ZERO) {
                self.conn.handle_timeout(self.clock.now());
                self.flush()?;
                continue;
            }
            // A zero read timeout means "block forever" to std, so clamp to at least 1 ms.
            self.stream
                .set_read_timeout(timeout.map(|t| t.max(Duration::from_millis(1))))?;
            let now_result = self.stream.read(&mut self.buf);
            let now = self.clock.now();
            match now_result {
                Ok(0) => {
                    let _ = self.conn.handle_input(now, Input::TransportClosed);
                }
                Ok(n) => {
                    let _ = self.conn.handle_input(now, Input::Receive(&self.buf[..n]));
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    self.conn.handle_timeout(now);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    let _ = self.conn.handle_input(now, Input::TransportClosed);
                }
            }
            self.flush()?;
        }
    }
}

pub mod demo {
    //! The `test/1` capability the examples, the demo and the interop tests speak: code 0 carries a text
    //! message as the RLP list `[text]`; code 1 is the interop greeting, in the same form.

    use status_sansio::rlpx::Protocol;

    /// Code of a text message.
    pub const TEXT: u64 = 0;
    /// Code of the interop greeting.
    pub const GREETING: u64 = 1;

    /// The `test/1` capability with 8 message codes.
    pub fn protocol() -> Protocol {
        match Protocol::new("test", 1, 8) {
            Some(p) => p,
            None => unreachable!("\"test\" is a valid capability name"),
        }
    }

    /// Encode `[text]`.
    pub fn encode_text(text: &str) -> Vec<u8> {
        let mut s = rlp::RlpStream::new_list(1);
        s.append(&text.as_bytes());
        s.out().to_vec()
    }

    /// Decode `[text]`; `None` if it is anything else.
    pub fn decode_text(payload: &[u8]) -> Option<String> {
        let r = rlp::Rlp::new(payload);
        if !r.is_list() || r.item_count().ok()? != 1 {
            return None;
        }
        String::from_utf8(r.at(0).ok()?.data().ok()?.to_vec()).ok()
    }

    /// Parse a 64-hex-character secret key argument.
    pub fn parse_key(hex_key: &str) -> Option<status_sansio::crypto::SecretKey> {
        let s = hex_key.trim().trim_start_matches("0x");
        if s.len() != 64 || !s.is_ascii() {
            return None;
        }
        let mut b = [0u8; 32];
        for (i, c) in s.as_bytes().chunks(2).enumerate() {
            b[i] = u8::from_str_radix(std::str::from_utf8(c).ok()?, 16).ok()?;
        }
        status_sansio::crypto::secret_from_bytes(&b)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn text_round_trip() {
            assert_eq!(
                super::decode_text(&super::encode_text("hi")).as_deref(),
                Some("hi")
            );
            assert_eq!(super::decode_text(&[0xc0]), None);
            assert!(super::parse_key(&"11".repeat(32)).is_some());
            assert!(super::parse_key("zz").is_none());
        }
    }
}

pub mod node {
    //! Drive a [`status_sansio::node::Engine`] with blocking `std::net`: a reader thread per socket feeds
    //! one channel; the calling thread owns the engine, waits on that channel with a timeout equal to the
    //! engine's next deadline, and writes to sockets directly. The same concepts as
    //! `status_io_tokio::node`, for programs without an async runtime.
    //!
    //! DNS discovery: each [`Output::ResolveTxt`] is looked up on its own thread through the node's
    //! [`TxtResolver`] (default [`BlockingResolver`]; the engine keeps at most a few lookups out at once)
    //! and answered with [`Input::DnsResolved`]. With [`BlockingNode::with_peer_cache_file`] the engine's
    //! peer cache is written to that file every [`PEER_CACHE_SAVE_INTERVAL`] and when the node is dropped.

    use std::collections::BTreeMap;
    use std::io::{self, Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::path::PathBuf;
    use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use crate::dns::{save_peer_cache, BlockingResolver, TxtResolver};

    /// How often a node with a peer cache file writes it.
    pub const PEER_CACHE_SAVE_INTERVAL: Duration = Duration::from_secs(60);

    use status_sansio::node::{ConnId, Engine, Event, Input, Output, StorageOp};

    use crate::Clock;

    enum Net {
        Read(ConnId, Vec<u8>),
        Eof(ConnId),
        Accepted(TcpStream),
        Dialed(ConnId, io::Result<TcpStream>),
        Resolved(String, Option<Vec<String>>),
    }

    /// A blocking node: call [`BlockingNode::step`] in a loop (or [`BlockingNode::run_until`]).
    pub struct BlockingNode {
        engine: Engine,
        store: Box<dyn crate::store::Store>,
        store_errors: u64,
        clock: Clock,
        tx: Sender<Net>,
        rx: Receiver<Net>,
        sockets: BTreeMap<ConnId, TcpStream>,
        next_accept: u64,
        resolver: Arc<dyn TxtResolver>,
        peer_cache: Option<(PathBuf, Instant)>,
    }

    fn reader(mut s: TcpStream, conn: ConnId, tx: Sender<Net>) {
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(Net::Eof(conn));
                        break;
                    }
                    Ok(n) => {
                        if tx.send(Net::Read(conn, buf[..n].to_vec())).is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }

    impl BlockingNode {
        /// Wrap `engine`; if `listener` is given, a thread accepts on it.
        pub fn new(engine: Engine, listener: Option<TcpListener>) -> Self {
            let (tx, rx) = mpsc::channel();
            if let Some(l) = listener {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for s in l.incoming().flatten() {
                        if tx.send(Net::Accepted(s)).is_err() {
                            break;
                        }
                    }
                });
            }
            BlockingNode {
                engine,
                store: Box::new(crate::store::MemoryStore::default()),
                store_errors: 0,
                clock: Clock::new(),
                tx,
                rx,
                sockets: BTreeMap::new(),
                next_accept: 1,
                resolver: Arc::new(BlockingResolver::system()),
                peer_cache: None,
            }
        }

        /// Answer the engine's TXT lookups with `resolver` (default: [`BlockingResolver::system`]).
        pub fn with_resolver(mut self, resolver: Arc<dyn TxtResolver>) -> Self {
            self.resolver = resolver;
            self
        }

        /// Save the engine's peer cache to `path` every [`PEER_CACHE_SAVE_INTERVAL`] and when the node is
        /// dropped (load it with [`crate::dns::load_peer_cache`] into
        /// [`EngineConfig::peer_cache`](status_sansio::node::EngineConfig::peer_cache)).
        pub fn with_peer_cache_file(mut self, path: PathBuf) -> Self {
            self.peer_cache = Some((path, Instant::now()));
            self
        }

        /// Write the peer cache file now (a no-op without one).
        pub fn save_peer_cache(&mut self) -> io::Result<()> {
            match &mut self.peer_cache {
                Some((path, last)) => {
                    *last = Instant::now();
                    save_peer_cache(path, &self.engine.export_peer_cache())
                }
                None => Ok(()),
            }
        }

        /// Use `store` for the mailserver's envelopes (default: in memory).
        pub fn with_store(mut self, store: Box<dyn crate::store::Store>) -> Self {
            self.store = store;
            self
        }

        /// Storage operations that failed so far.
        pub fn store_errors(&self) -> u64 {
            self.store_errors
        }

        fn count(&mut self, failed: bool) {
            self.store_errors += u64::from(failed);
        }

        /// The engine (for subscriptions and inspection).
        pub fn engine(&mut self) -> &mut Engine {
            &mut self.engine
        }

        /// The driver's clock.
        pub fn clock(&self) -> Clock {
            self.clock
        }

        /// Feed an application input now.
        pub fn input(&mut self, input: Input<'_>) -> Result<(), status_sansio::Error> {
            let now = self.clock.now();
            self.engine.handle_input(now, input)
        }

        fn start(&mut self, s: TcpStream, conn: ConnId) {
            let _ = s.set_nodelay(true);
            if let Ok(r) = s.try_clone() {
                reader(r, conn, self.tx.clone());
                self.sockets.insert(conn, s);
            }
        }

        /// Carry out the engine's outputs, wait at most `max_wait` for the network or the next deadline,
        /// and return the events that came out.
        pub fn step(&mut self, max_wait: Duration) -> Vec<Event> {
            let mut events = Vec::new();
            while let Some(o) = self.engine.poll_output() {
                match o {
                    Output::Dial { conn, addr } => {
                        let tx = self.tx.clone();
                        std::thread::spawn(move || {
                            let r = TcpStream::connect_timeout(&addr, Duration::from_secs(10));
                            let _ = tx.send(Net::Dialed(conn, r));
                        });
                    }
                    Output::Transmit { conn, data } => {
                        let failed = self
                            .sockets
                            .get_mut(&conn)
                            .is_some_and(|s| s.write_all(&data).is_err());
                        if failed {
                            self.sockets.remove(&conn);
                            let _ = self.engine.handle_input(self.clock.now(), Input::Closed { conn });
                        }
                    }
                    Output::Close { conn } => {
                        if let Some(s) = self.sockets.remove(&conn) {
                            let _ = s.shutdown(Shutdown::Both);
                        }
                    }
                    Output::Storage(StorageOp::Store { key, value }) => {
                        let failed = self.store.put(key, value).is_err();
                        self.count(failed);
                    }
                    Output::Storage(StorageOp::Query {
                        query,
                        start,
                        end,
                        limit,
                    }) => {
                        // A failed read answers with nothing (the request completes without envelopes).
                        let r = self.store.range(start, end, limit);
                        self.count(r.is_err());
                        let entries = r.unwrap_or_default();
                        let _ = self
                            .engine
                            .handle_input(self.clock.now(), Input::QueryResult { query, entries });
                    }
                    Output::Storage(StorageOp::Prune { before }) => {
                        let failed = self.store.prune(before).is_err();
                        self.count(failed);
                    }
                    Output::ResolveTxt { name } => {
                        let (tx, resolver) = (self.tx.clone(), self.resolver.clone());
                        std::thread::spawn(move || {
                            let txt = resolver.resolve_txt(&name).ok();
                            let _ = tx.send(Net::Resolved(name, txt));
                        });
                    }
                    Output::Event(e) => events.push(e),
                    // Outputs added after this driver was written.
                    _ => {}
                }
            }
            if self
                .peer_cache
                .as_ref()
                .is_some_and(|(_, last)| last.elapsed() >= PEER_CACHE_SAVE_INTERVAL)
            {
                let _ = self.save_peer_cache();
            }
            let wait = match self.engine.poll_timeout() {
                Some(d) => self.clock.until(d).min(max_wait),
                None => max_wait,
            };
            let now_msg = self.rx.recv_timeout(wait);
            let now = self.clock.now();
            match now_msg {
                Ok(Net::Read(conn, bytes)) => {
                    let _ = self
                        .engine
                        .handle_input(now, Input::Received { conn, data: &bytes });
                }
                Ok(Net::Eof(conn)) => {
                    self.sockets.remove(&conn);
                    let _ = self.engine.handle_input(now, Input::Closed { conn });
                }
                Ok(Net::Accepted(s)) => {
                    let conn = ConnId(self.next_accept);
                    self.next_accept += 1;
                    let addr = s.peer_addr().ok();
                    self.start(s, conn);
                    let input = match addr {
                        Some(addr) => Input::AcceptedFrom { conn, addr },
                        None => Input::Accepted { conn },
                    };
                    let _ = self.engine.handle_input(now, input);
                }
                Ok(Net::Dialed(conn, Ok(s))) => {
                    self.start(s, conn);
                    let _ = self.engine.handle_input(now, Input::Connected { conn });
                }
                Ok(Net::Dialed(conn, Err(_))) => {
                    let _ = self.engine.handle_input(now, Input::DialFailed { conn });
                }
                Ok(Net::Resolved(name, txt)) => {
                    let _ = self.engine.handle_input(now, Input::DnsResolved { name, txt });
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {}
            }
            self.engine.handle_timeout(self.clock.now());
            events
        }

        /// Step until `done` returns true for some event or `limit` passes; returns every event seen.
        pub fn run_until(
            &mut self,
            limit: Duration,
            mut done: impl FnMut(&Event) -> bool,
        ) -> (bool, Vec<Event>) {
            let start = std::time::Instant::now();
            let mut all = Vec::new();
            while start.elapsed() < limit {
                let evs = self.step(Duration::from_millis(50));
                let hit = evs.iter().any(&mut done);
                all.extend(evs);
                if hit {
                    return (true, all);
                }
            }
            (false, all)
        }
    }

    impl Drop for BlockingNode {
        fn drop(&mut self) {
            let _ = self.save_peer_cache();
        }
    }
}

pub mod dns;
#[cfg(feature = "redb")]
pub mod state;
pub mod store;
