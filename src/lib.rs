//! # status-sansio
//!
//! The Status messaging protocol stack as pure, deterministic, sans-IO state machines.
//!
//! Every layer is a state machine that never touches a socket, a clock or the operating system's
//! randomness: bytes, time ([`Timestamp`]) and a 32-byte seed come in as arguments, and bytes to send,
//! timers and application events come out. The shape follows quinn-proto and str0m:
//!
//! * `handle_input(now, input)` feeds bytes received, connection changes and application commands;
//! * `handle_timeout(now)` fires every deadline `<= now` (a spurious call is a no-op);
//! * `poll_output()` drains what the machine wants done, after every mutation;
//! * `poll_timeout()` returns the earliest pending deadline.
//!
//! A fault caused by a remote peer never comes back as `Err`: it becomes a disconnect with the protocol's
//! reason plus an event that says why. `Err` is reserved for misuse of the API by the caller.
//!
//! Layers:
//!
//! | module | protocol |
//! |---|---|
//! | [`rlpx`] | RLPx v5 transport: ECIES handshake, framing, the `p2p` base protocol, capability multiplexing |
//! | [`secure`] | Secure transport: prekey bundles, X3DH, Double Ratchet, DH-only messages, multi-device |
//! | [`crypto`] | the secp256k1 and Keccak helpers every layer shares |
//! | [`enode`] | `enode://` URLs |
//! | [`mailserver`] | the mailserver server: archive, history requests with cursors, retention |
//! | [`persist`] | durable state as outputs: records, batches, the barrier that holds outputs until durable |
//! | [`node`] | the engine composing RLPx connections and the Waku node; static peers with backoff |
//! | [`discovery`] | ENR (EIP-778), DNS node lists (EIP-1459), the PeerPool |
//! | [`waku`] | Waku v1 / Whisper v6: envelopes, PoW, bloom, message crypto, options, packets |
//! | [`mvds`] | MVDS data sync: payload codec, message and group ids, the sync node |
//! | [`chat`] | the application layer: identity forms, payload wrapper and ids, clocks, validation, groups |
//! | [`sim`] | a deterministic network simulator for any engine (tests and benchmarks) |
//!
//! # Example: an engine on plain `std::net` sockets
//!
//! Two [`node::Engine`]s on 127.0.0.1 in one thread exchange one public-chat message. The loop is the
//! whole driver: it owns the sockets and the clock, and the engine only says what to do
//! (`examples/embed_engine.rs` is the same driver as a program).
//!
//! ```
//! use std::collections::HashMap;
//! use std::io::{ErrorKind, Read, Write};
//! use std::net::{TcpListener, TcpStream};
//! use std::sync::Arc;
//! use std::time::{Duration, Instant};
//! use status_sansio::chat::messenger::{Event as ChatEvent, Input as Chat, MessengerConfig};
//! use status_sansio::crypto::SecretKey;
//! use status_sansio::enode::Enode;
//! use status_sansio::node::{Engine, EngineConfig, Event, Input, Output};
//! use status_sansio::rlpx::{self, Protocol};
//! use status_sansio::waku::{packet::CODE_COUNT, Dialect};
//! use status_sansio::{ConnId, Seed, Timestamp};
//!
//! struct Node { engine: Engine, listener: TcpListener, sockets: HashMap<ConnId, TcpStream>, accepted: u64 }
//!
//! fn node(i: u64, peers: Vec<Enode>) -> Result<Node, Box<dyn std::error::Error>> {
//!     let key = |n: u64| SecretKey::random(&mut Seed::from_u64(n).rng());
//!     let waku = Protocol::new(Dialect::Waku1.capability(), Dialect::Waku1.version(), CODE_COUNT);
//!     let mut config = EngineConfig::new(Arc::new(rlpx::Config::new(key(i), waku.into_iter().collect())));
//!     config.static_peers = peers;
//!     config.messenger = Some(MessengerConfig::new(key(100 + i), "doc".into()));
//!     let mut engine = Engine::new(config, &Seed::from_u64(i), Timestamp::from_secs(0))?;
//!     engine.handle_input(Timestamp::from_secs(0), Input::Chat(Chat::JoinPublicChat("status".into())))?;
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     listener.set_nonblocking(true)?;
//!     Ok(Node { engine, listener, sockets: HashMap::new(), accepted: 0 })
//! }
//!
//! /// One turn: accept, read, fire timers, then carry out every output; returns the events.
//! fn step(n: &mut Node, now: Timestamp) -> Result<Vec<Event>, Box<dyn std::error::Error>> {
//!     if let Ok((socket, addr)) = n.listener.accept() {
//!         let conn = ConnId(n.accepted); // the engine's own dials have the top bit set
//!         n.accepted += 1;
//!         socket.set_nonblocking(true)?;
//!         n.sockets.insert(conn, socket);
//!         n.engine.handle_input(now, Input::AcceptedFrom { conn, addr })?;
//!     }
//!     let (mut buf, mut closed) = ([0u8; 16384], Vec::new());
//!     for (&conn, socket) in &mut n.sockets {
//!         match socket.read(&mut buf) {
//!             Ok(0) => closed.push(conn),
//!             Ok(len) => n.engine.handle_input(now, Input::Received { conn, data: &buf[..len] })?,
//!             Err(e) if e.kind() == ErrorKind::WouldBlock => {}
//!             Err(_) => closed.push(conn),
//!         }
//!     }
//!     for conn in closed {
//!         n.sockets.remove(&conn);
//!         n.engine.handle_input(now, Input::Closed { conn })?;
//!     }
//!     if n.engine.poll_timeout().is_some_and(|t| t <= now) {
//!         n.engine.handle_timeout(now);
//!     }
//!     let mut events = Vec::new();
//!     while let Some(output) = n.engine.poll_output() {
//!         match output {
//!             Output::Dial { conn, addr } => {
//!                 n.sockets.insert(conn, TcpStream::connect(addr)?);
//!                 n.sockets[&conn].set_nonblocking(true)?;
//!                 n.engine.handle_input(now, Input::Connected { conn })?;
//!             }
//!             // Small writes here; a real driver queues what a full socket buffer refuses.
//!             Output::Transmit { conn, data } => n.sockets.get_mut(&conn).ok_or("gone")?.write_all(&data)?,
//!             Output::Close { conn } => drop(n.sockets.remove(&conn)),
//!             Output::Event(event) => events.push(event),
//!             _ => {} // no mailserver storage or DNS discovery configured
//!         }
//!     }
//!     Ok(events)
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut a = node(1, vec![])?;
//! let mut b = node(2, vec![Enode::new(a.engine.public_key(), a.listener.local_addr()?)])?;
//! let start = Instant::now();
//! let mut sent = false;
//! while start.elapsed() < Duration::from_secs(20) {
//!     let now = Timestamp::from_secs(0).saturating_add(start.elapsed());
//!     for event in step(&mut a, now)? {
//!         if !sent && matches!(event, Event::PeerConnected { .. }) {
//!             let hello = Chat::SendText { chat: "status".into(), text: "hello".into() };
//!             a.engine.handle_input(now, Input::Chat(hello))?;
//!             sent = true;
//!         }
//!     }
//!     for event in step(&mut b, now)? {
//!         if let Event::Chat(ChatEvent::MessageReceived { message, own: false, .. }) = event {
//!             assert_eq!(message.text, "hello");
//!             return Ok(());
//!         }
//!     }
//!     std::thread::sleep(Duration::from_millis(1));
//! }
//! Err("no message within 20 s".into())
//! # }
//! ```
//!
//! # The public API
//!
//! Each layer is one public module whose root re-exports what an embedder needs: the machine, its
//! config, `Input`/`Output`/`Event`, its fault and error types and its ids (`waku::{WakuNode,
//! WakuConfig, Envelope, Filter, SubscriptionId, Input, Output, Event}`, `secure::{SecureTransport,
//! Config, Input, Output, Event}`, `rlpx::{Connection, Config, Input, Output, Event}`, ...). The files that
//! implement a machine are private modules. A submodule stays public only when it is a coherent unit of
//! its own:
//!
//! * a wire codec or cryptographic building block that is checked against test vectors and used on its
//!   own: `rlpx::{ecies, frame, handshake, p2p}`, `waku::{envelope, message, packet, options, request,
//!   status, pool}`, `secure::{bundle, dh, kdf, ratchet, sharedsecret, x3dh}`, `chat::{payloads, identity,
//!   group, validate, message_log}`, `discovery::dnstree`;
//! * a second machine with its own `Input`/`Output`: `chat::messenger`, `mailserver::{server, client}`,
//!   `discovery::peerpool`;
//! * the simulator's parts: `sim::{full, conn, adversary, invariants, mvds}`.
//!
//! Enums that will grow (outputs, events, faults, errors) are `#[non_exhaustive]`; inputs are not (a new
//! input is a new feature a caller opts into). The fuzz harnesses (`fuzzing`) exist only with the
//! `fuzzing` feature.
#![forbid(unsafe_code)]
#![warn(unnameable_types)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod chat;
mod conn;
pub mod crypto;
pub mod demo;
pub mod discovery;
pub mod enode;
mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod machine;
pub mod mailserver;
pub mod mvds;
pub mod node;
pub mod persist;
pub mod rlpx;
mod rng;
pub mod secure;
pub mod sim;
mod time;
pub mod waku;

pub use conn::ConnId;
pub use error::Error;
pub use machine::StateMachine;
pub use rng::{Seed, SeededState};
pub use time::Timestamp;
