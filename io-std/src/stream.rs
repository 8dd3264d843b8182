//! [`RlpxStream`]: one RLPx [`Connection`] (`docs/protocol/rlpx.md`) over a blocking [`TcpStream`].

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use status_sansio::enode::Enode;
use status_sansio::rlpx::{Config, Connection, DisconnectReason, Event, Input, Output, RlpxError};

use crate::{os_seed, Clock};

/// Read buffer size per `read` call.
const READ_CHUNK: usize = 64 * 1024;

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
                Output::Transmit(b) if !self.closed && self.stream.write_all(&b).is_err() => {
                    // The engine reports the failure as a Disconnected event and asks to close.
                    self.conn
                        .handle_input(self.clock.now(), Input::TransportClosed)
                        .map_err(to_io)?;
                }
                Output::Transmit(_) => {}
                Output::Event(e) => self.events.push_back(e),
                Output::Close => {
                    // NotConnected: the peer closed first, which is what Close wants anyway.
                    if let Err(e) = self.stream.shutdown(Shutdown::Both) {
                        if e.kind() != io::ErrorKind::NotConnected {
                            return Err(e);
                        }
                    }
                    self.closed = true;
                }
                // An output kind newer than this driver: nothing it could do with it.
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
                Ok(0) => self
                    .conn
                    .handle_input(now, Input::TransportClosed)
                    .map_err(to_io)?,
                Ok(n) => self
                    .conn
                    .handle_input(now, Input::Receive(&self.buf[..n]))
                    .map_err(to_io)?,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    self.conn.handle_timeout(now);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self
                    .conn
                    .handle_input(now, Input::TransportClosed)
                    .map_err(to_io)?,
            }
            self.flush()?;
        }
    }
}
