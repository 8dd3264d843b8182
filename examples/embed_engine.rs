//! Embed the [`Engine`](status_sansio::node::Engine) without any driver crate: a node on plain `std::net`
//! sockets that joins one public chat, prints what arrives and posts each line read from stdin.
//!
//! ```text
//! cargo run --example embed_engine -- 127.0.0.1:30303
//! cargo run --example embed_engine -- 127.0.0.1:30304 enode://<id printed by the first>@127.0.0.1:30303
//! ```
//!
//! The driver is everything below: it owns the sockets and the clock, hands the engine what happened
//! (`handle_input`, `handle_timeout`) and carries out what it asks (`poll_output`). The engine never
//! touches a socket, so the same engine runs here, under tokio, or in the simulator.

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use status_sansio::chat::messenger::{Event as ChatEvent, Input as Chat, MessengerConfig};
use status_sansio::crypto::SecretKey;
use status_sansio::enode::Enode;
use status_sansio::node::{Engine, EngineConfig, Event, Input, Output};
use status_sansio::rlpx::{self, Protocol};
use status_sansio::waku::{packet::CODE_COUNT, Dialect};
use status_sansio::{ConnId, Seed, Timestamp};

/// The public chat every node of this example joins.
const CHAT: &str = "embed-engine";

/// One engine, its listening socket and its connections: the whole driver.
struct Node {
    engine: Engine,
    listener: TcpListener,
    sockets: HashMap<ConnId, TcpStream>,
    next_conn: u64,
    epoch: (Instant, u64),
}

impl Node {
    /// A node listening on `listen` that keeps `peers` connected and has joined [`CHAT`].
    fn new(listen: SocketAddr, peers: Vec<Enode>, seed: Seed) -> io::Result<Node> {
        let mut rng = seed.rng();
        let waku = Protocol::new(Dialect::Waku1.capability(), Dialect::Waku1.version(), CODE_COUNT);
        let rlpx = rlpx::Config::new(SecretKey::random(&mut rng), waku.into_iter().collect());
        let mut config = EngineConfig::new(Arc::new(rlpx));
        config.static_peers = peers;
        config.messenger = Some(MessengerConfig::new(SecretKey::random(&mut rng), "embed".into()));
        let listener = TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(io::Error::other)?
            .as_millis();
        let epoch = (Instant::now(), u64::try_from(ms).map_err(io::Error::other)?);
        let engine = Engine::new(config, &seed, Timestamp::from_millis(epoch.1)).map_err(io::Error::other)?;
        let mut node = Node {
            engine,
            listener,
            sockets: HashMap::new(),
            next_conn: 0,
            epoch,
        };
        node.input(Input::Chat(Chat::JoinPublicChat(CHAT.into())))?;
        Ok(node)
    }

    /// This node's `enode://` URL.
    fn enode(&self) -> io::Result<Enode> {
        Ok(Enode::new(self.engine.public_key(), self.listener.local_addr()?))
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.epoch.1).saturating_add(self.epoch.0.elapsed())
    }

    fn input(&mut self, input: Input<'_>) -> io::Result<()> {
        self.engine
            .handle_input(self.now(), input)
            .map_err(io::Error::other)
    }

    /// Post `text` to [`CHAT`].
    fn send(&mut self, text: String) -> io::Result<()> {
        self.input(Input::Chat(Chat::SendText {
            chat: CHAT.into(),
            text,
        }))
    }

    /// One turn of the loop: accept, read, fire timers, carry out the outputs; returns the events.
    fn step(&mut self) -> io::Result<Vec<Event>> {
        match self.listener.accept() {
            Ok((socket, addr)) => {
                socket.set_nonblocking(true)?;
                let conn = ConnId(self.next_conn); // the engine's own dials have the top bit set
                self.next_conn += 1;
                self.sockets.insert(conn, socket);
                self.input(Input::AcceptedFrom { conn, addr })?;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        let (mut buf, mut closed) = ([0u8; 16 * 1024], Vec::new());
        let conns: Vec<ConnId> = self.sockets.keys().copied().collect();
        for conn in conns {
            match self.sockets.get_mut(&conn).map(|s| s.read(&mut buf)) {
                Some(Ok(0)) => closed.push(conn),
                Some(Ok(n)) => self.input(Input::Received {
                    conn,
                    data: &buf[..n],
                })?,
                Some(Err(e)) if e.kind() == ErrorKind::WouldBlock => {}
                Some(Err(_)) => closed.push(conn),
                None => {}
            }
        }
        for conn in closed {
            self.sockets.remove(&conn);
            self.input(Input::Closed { conn })?;
        }
        let now = self.now();
        if self.engine.poll_timeout().is_some_and(|t| t <= now) {
            self.engine.handle_timeout(now);
        }
        let mut events = Vec::new();
        while let Some(output) = self.engine.poll_output() {
            match output {
                Output::Dial { conn, addr } => {
                    match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                        Ok(socket) => {
                            socket.set_nonblocking(true)?;
                            self.sockets.insert(conn, socket);
                            self.input(Input::Connected { conn })?;
                        }
                        Err(_) => self.input(Input::DialFailed { conn })?,
                    }
                }
                Output::Transmit { conn, data } => {
                    let written = self.sockets.get_mut(&conn).map(|s| write_all(s, &data));
                    if let Some(Err(_)) = written {
                        self.sockets.remove(&conn);
                        self.input(Input::Closed { conn })?;
                    }
                }
                Output::Close { conn } => drop(self.sockets.remove(&conn)),
                Output::Event(event) => events.push(event),
                _ => {} // storage (mailserver) and DNS discovery are not configured here
            }
        }
        Ok(events)
    }
}

/// `write_all` on a non-blocking socket: wait while the kernel's buffer is full.
fn write_all(socket: &mut TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match socket.write(data) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The text of a message someone else posted, if `event` is one.
fn received_text(event: &Event) -> Option<&str> {
    match event {
        Event::Chat(ChatEvent::MessageReceived {
            message, own: false, ..
        }) => Some(&message.text),
        _ => None,
    }
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(listen), true) = (args.first().and_then(|a| a.parse().ok()), args.len() <= 2) else {
        eprintln!("usage: embed_engine LISTEN_ADDR [ENODE]   (then type lines to post them to #{CHAT})");
        std::process::exit(2);
    };
    let peers = args
        .get(1)
        .map(|e| e.parse::<Enode>().map_err(io::Error::other))
        .transpose()?;
    let mut seed = [0u8; 32];
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(io::Error::other)?
        .as_nanos();
    seed[..16].copy_from_slice(&nanos.to_le_bytes()); // an example, not a key store: use OS randomness in a real node
    seed[16..20].copy_from_slice(&std::process::id().to_le_bytes());
    let mut node = Node::new(listen, peers.into_iter().collect(), Seed(seed))?;
    println!("{}", node.enode()?);
    let (lines, stdin) = mpsc::channel();
    std::thread::spawn(move || {
        std::io::stdin()
            .lines()
            .map_while(Result::ok)
            .try_for_each(|l| lines.send(l))
    });
    loop {
        while let Ok(line) = stdin.try_recv() {
            node.send(line)?;
        }
        for event in node.step()? {
            match (&event, received_text(&event)) {
                (_, Some(text)) => println!("#{CHAT}: {}", text.escape_debug()),
                (Event::PeerConnected { id, .. }, _) => eprintln!("connected to {id:?}"),
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two of these nodes on 127.0.0.1: the second dials the first, and a message posted by the first
    /// arrives at the second.
    #[test]
    fn two_nodes_exchange_a_message() -> io::Result<()> {
        let local = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut a = Node::new(local, vec![], Seed::from_u64(1))?;
        let mut b = Node::new(local, vec![a.enode()?], Seed::from_u64(2))?;
        let (deadline, mut sent) = (Instant::now() + Duration::from_secs(20), false);
        while Instant::now() < deadline {
            for event in a.step()? {
                if !sent && matches!(event, Event::PeerConnected { .. }) {
                    a.send("hello from a".into())?;
                    sent = true;
                }
            }
            if b.step()?.iter().any(|e| received_text(e) == Some("hello from a")) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Err(io::Error::other("the message did not arrive"))
    }
}
