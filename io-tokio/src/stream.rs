//! [`RlpxStream`]: one RLPx [`Connection`] (`docs/protocol/rlpx.md`) over a tokio [`TcpStream`], and
//! [`spawn`], which runs one in its own task behind channels.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;

use status_io_std::{os_seed, Clock};
use status_sansio::crypto::PublicKey;
use status_sansio::enode::Enode;
use status_sansio::rlpx::{Config, Connection, DisconnectReason, Event, Input, Output, RlpxError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const READ_CHUNK: usize = 64 * 1024;

fn to_io(e: RlpxError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e)
}

/// An RLPx [`Connection`] driven over a tokio [`TcpStream`].
pub struct RlpxStream {
    stream: TcpStream,
    conn: Connection,
    clock: Clock,
    events: VecDeque<Event>,
    /// Bytes the engine produced and the socket has not taken yet (kept here so a cancelled write
    /// loses nothing).
    out: BytesMut,
    close_requested: bool,
    closed: bool,
    buf: Vec<u8>,
}

impl RlpxStream {
    /// Dial the node named by an `enode://` URL.
    pub async fn connect(enode: &Enode, config: Arc<Config>) -> io::Result<Self> {
        Self::connect_addr(enode.addr, enode.id, config).await
    }

    /// Dial `addr`, expecting the node identity `remote_id`.
    pub async fn connect_addr(
        addr: SocketAddr,
        remote_id: PublicKey,
        config: Arc<Config>,
    ) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        let clock = Clock::new();
        let conn = Connection::initiator(config, remote_id, &os_seed(), clock.now()).map_err(to_io)?;
        Self::new(stream, conn, clock).await
    }

    /// Accept one inbound connection.
    pub async fn accept(listener: &TcpListener, config: Arc<Config>) -> io::Result<Self> {
        let (stream, _) = listener.accept().await?;
        let clock = Clock::new();
        let conn = Connection::recipient(config, &os_seed(), clock.now()).map_err(to_io)?;
        Self::new(stream, conn, clock).await
    }

    /// Drive an existing connection over an existing stream.
    pub async fn new(stream: TcpStream, conn: Connection, clock: Clock) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        let mut s = RlpxStream {
            stream,
            conn,
            clock,
            events: VecDeque::new(),
            out: BytesMut::new(),
            close_requested: false,
            closed: false,
            buf: vec![0; READ_CHUNK],
        };
        s.flush().await;
        Ok(s)
    }

    /// The connection state machine.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Send a sub-protocol message.
    pub async fn send(&mut self, capability: &str, code: u64, payload: &[u8]) -> io::Result<()> {
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
        self.flush().await;
        Ok(())
    }

    /// Send a Ping; the answer arrives as [`Event::Pong`].
    pub async fn ping(&mut self) -> io::Result<()> {
        let now = self.clock.now();
        self.conn.handle_input(now, Input::Ping).map_err(to_io)?;
        self.flush().await;
        Ok(())
    }

    /// Disconnect; keep calling [`RlpxStream::next_event`] until it returns `None`.
    pub async fn disconnect(&mut self, reason: DisconnectReason) -> io::Result<()> {
        let now = self.clock.now();
        self.conn
            .handle_input(now, Input::Disconnect(reason))
            .map_err(to_io)?;
        self.flush().await;
        Ok(())
    }

    /// Move the engine's outputs into the write buffer and the event queue.
    fn collect(&mut self) {
        while let Some(o) = self.conn.poll_output() {
            match o {
                Output::Transmit(b) => self.out.extend_from_slice(&b),
                Output::Event(e) => self.events.push_back(e),
                Output::Close => self.close_requested = true,
                // An output kind newer than this driver: nothing it could do with it.
                _ => {}
            }
        }
    }

    /// Write everything pending, then honour Close. Cancel-safe: `write_buf` advances the buffer only by
    /// what was written.
    async fn flush(&mut self) {
        self.collect();
        while !self.out.is_empty() && !self.closed {
            match self.stream.write_buf(&mut self.out).await {
                Ok(n) if n > 0 => {}
                _ => {
                    self.out.clear();
                    // TransportClosed is never refused (see `rlpx::Connection::handle_input`).
                    if let Err(e) = self.conn.handle_input(self.clock.now(), Input::TransportClosed) {
                        tracing::warn!("rlpx: transport close refused: {e}");
                    }
                    self.collect();
                    self.out.clear();
                }
            }
        }
        if self.close_requested && !self.closed {
            if let Err(e) = self.stream.shutdown().await {
                tracing::debug!("socket shutdown: {e}");
            }
            self.closed = true;
        }
    }

    /// Wait for the next event; `Ok(None)` once closed and drained. Cancel-safe: dropping the future
    /// between polls loses no bytes (a read either completed and was fed, or did not happen).
    pub async fn next_event(&mut self) -> io::Result<Option<Event>> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(Some(e));
            }
            if !self.out.is_empty() || self.close_requested {
                self.flush().await;
            }
            if self.closed {
                return self.events.pop_front().map_or(Ok(None), |e| Ok(Some(e)));
            }
            let deadline = self.conn.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep(self.clock.until(d)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = self.stream.read(&mut self.buf) => {
                    let now = self.clock.now();
                    let input = match r {
                        Ok(0) | Err(_) => Input::TransportClosed,
                        Ok(n) => Input::Receive(&self.buf[..n]),
                    };
                    self.conn.handle_input(now, input).map_err(to_io)?;
                }
                _ = sleep => self.conn.handle_timeout(self.clock.now()),
            }
            self.flush().await;
        }
    }
}

/// A command for a spawned connection task.
#[derive(Debug, Clone)]
pub enum Command {
    /// Send a sub-protocol message.
    Send {
        /// Capability name.
        capability: String,
        /// Code within the capability.
        code: u64,
        /// msg-data.
        payload: Vec<u8>,
    },
    /// Send a Ping.
    Ping,
    /// Disconnect with a reason.
    Disconnect(DisconnectReason),
}

/// Handle to a connection running in its own task.
pub struct Handle {
    /// Commands to the task.
    pub commands: mpsc::Sender<Command>,
    /// Events from the task; closed when the connection is.
    pub events: mpsc::Receiver<Event>,
}

/// Run `stream` in its own task: commands in, events out. Events are delivered through a bounded channel
/// of `capacity`; the task stops reading the socket while the application is not taking events
/// (backpressure instead of unbounded buffering).
pub fn spawn(mut stream: RlpxStream, capacity: usize) -> Handle {
    let (cmd_tx, mut cmd_rx) = mpsc::channel::<Command>(capacity);
    let (ev_tx, ev_rx) = mpsc::channel::<Event>(capacity);
    tokio::spawn(async move {
        let mut commands_open = true;
        loop {
            tokio::select! {
                cmd = cmd_rx.recv(), if commands_open => {
                    let r = match cmd {
                        Some(Command::Send { capability, code, payload }) => stream.send(&capability, code, &payload).await,
                        Some(Command::Ping) => stream.ping().await,
                        Some(Command::Disconnect(r)) => stream.disconnect(r).await,
                        None => { commands_open = false; stream.disconnect(DisconnectReason::ClientQuitting).await }
                    };
                    if let Err(e) = r {
                        // Misuse by the application (e.g. sending before Connected); the connection is
                        // unaffected.
                        tracing::warn!("command refused: {e}");
                    }
                }
                ev = stream.next_event() => match ev {
                    Ok(Some(e)) => if ev_tx.send(e).await.is_err() {
                        if let Err(e) = stream.disconnect(DisconnectReason::ClientQuitting).await {
                            tracing::warn!("disconnect refused: {e}");
                        }
                    },
                    Ok(None) | Err(_) => break,
                },
            }
        }
    });
    Handle {
        commands: cmd_tx,
        events: ev_rx,
    }
}
