//! The RLPx [`Connection`]: one TCP connection's handshake, framing and `p2p` base protocol as a sans-IO
//! state machine (docs/protocol/rlpx.md §3–§8).
//!
//! The machine is re-exported as [`crate::rlpx::Connection`], whose documentation describes it.
//!
//! Files: this one holds the machine and its entry points; `config.rs` the shared [`Config`]; `wire.rs`
//! what happens to bytes: handshake steps, frames, Hello, base-protocol messages and sealing.

mod config;
mod wire;

pub use config::Config;
use wire::seal_message;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;

use super::frame::FrameCodec;
use super::handshake::{self};
use super::p2p::{self, DisconnectReason, Hello, SharedCapability};
use super::RlpxError;
use crate::crypto::{PublicKey, SecretKey};
use crate::rng::Seed;
use crate::time::{earliest, Timestamp};

/// Which side of the TCP connection we are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// We dialled and know the remote's static key.
    Initiator,
    /// We accepted.
    Recipient,
}

/// What the caller feeds the connection.
#[derive(Debug)]
pub enum Input<'a> {
    /// Bytes read from the transport, split anywhere.
    Receive(&'a [u8]),
    /// Send a sub-protocol message: `code` is relative to the capability (0 = its first message).
    Send {
        /// Capability name, e.g. `"waku"`.
        capability: &'a str,
        /// Message code within the capability.
        code: u64,
        /// RLP msg-data (compressed for the wire here when Snappy is on).
        payload: &'a [u8],
    },
    /// Send a Ping now; the answer comes back as [`Event::Pong`].
    Ping,
    /// Disconnect with this reason.
    Disconnect(DisconnectReason),
    /// The transport was closed or failed.
    TransportClosed,
}

/// What the connection asks of the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// Write these bytes to the transport, in order.
    Transmit(Bytes),
    /// Something happened.
    Event(Event),
    /// Close the transport (after writing everything transmitted before). Always the last output.
    Close,
}

/// Events for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Handshake and Hello exchange completed.
    Connected {
        /// The remote's static key (its identity, authenticated by the handshake).
        remote_id: PublicKey,
        /// The remote's Hello.
        hello: Box<Hello>,
        /// The capabilities both sides share, with their id offsets.
        capabilities: Vec<SharedCapability>,
    },
    /// A sub-protocol message arrived.
    Message {
        /// The capability it belongs to.
        capability: SharedCapability,
        /// Code relative to the capability.
        code: u64,
        /// Decompressed msg-data.
        payload: Bytes,
    },
    /// A Pong answered our Ping.
    Pong {
        /// Time since the Ping was sent.
        rtt: Duration,
    },
    /// The connection ended (once, before [`Output::Close`]).
    Disconnected {
        /// The Disconnect reason, sent or received.
        reason: DisconnectReason,
        /// True if the remote sent the Disconnect or closed the transport.
        remote: bool,
        /// The fault that caused it, if any.
        error: Option<RlpxError>,
    },
}

pub(super) enum State {
    AwaitAck {
        ephemeral: SecretKey,
        nonce: [u8; 32],
        auth: Vec<u8>,
        remote_id: PublicKey,
    },
    AwaitAuth {
        ephemeral: SecretKey,
        nonce: [u8; 32],
    },
    AwaitHello {
        codec: Box<FrameCodec>,
        remote_id: PublicKey,
    },
    Active {
        codec: Box<FrameCodec>,
        remote_id: PublicKey,
        shared: Vec<SharedCapability>,
        snappy: bool,
    },
    Disconnecting,
    Closed,
}

/// One RLPx connection: a TCP connection's handshake, framing and `p2p` base protocol.
///
/// ```text
/// initiator: SendAuth → AwaitAck ──┐
/// recipient: AwaitAuth → SendAck ──┴→ AwaitHello (our Hello sent) → Active → Disconnecting → Closed
/// ```
///
/// Feed it TCP bytes (split anywhere) with [`Input::Receive`], application commands with
/// [`Input::Send`] / [`Input::Ping`] / [`Input::Disconnect`], and the transport's end with
/// [`Input::TransportClosed`]; drain [`Connection::poll_output`] after every call and sleep until
/// [`Connection::poll_timeout`].
///
/// Timers: the handshake deadline (auth/ack plus Hello, 5 s like geth), a keep-alive Ping every 15 s with a
/// Pong deadline, and a short linger after we send a Disconnect so the peer can read it before we close.
///
/// Peer faults never come back as `Err`: they become a Disconnect with the protocol's reason (when the
/// handshake got far enough to send one), an [`Event::Disconnected`] naming the cause, and
/// [`Output::Close`].
///
/// Bounds: the receive buffer holds at most one incomplete handshake packet (≤ `max_handshake_size` + 2)
/// or one incomplete frame (≤ `max_frame_size` + 48 bytes) beyond the chunk being processed; decompressed
/// messages are limited to `max_message_size` before inflating; queued output is limited to
/// `max_pending_output` bytes, past which [`Input::Send`] returns [`RlpxError::OutputFull`].
///
/// Two connections handshake in memory: whatever one transmits, the other receives. After the auth/ack
/// and Hello exchange both are connected, then a `waku` message crosses.
///
/// ```
/// use std::sync::Arc;
/// use status_sansio::crypto::SecretKey;
/// use status_sansio::rlpx::{Config, Connection, Event, Input, Output, Protocol};
/// use status_sansio::{Seed, Timestamp};
///
/// let now = Timestamp::from_secs(1_700_000_000);
/// let config = |n: u64| {
///     let key = SecretKey::random(&mut Seed::from_u64(n).rng());
///     Arc::new(Config::new(key, Protocol::new("waku", 1, 128).into_iter().collect()))
/// };
/// let (alice, bob) = (config(1), config(2));
/// let mut dialer = Connection::initiator(alice, bob.public_key(), &Seed::from_u64(3), now)?;
/// let mut listener = Connection::recipient(bob, &Seed::from_u64(4), now)?;
/// // Move what `from` transmitted to `to`; keep `from`'s events. True if any bytes moved.
/// fn carry(from: &mut Connection, to: &mut Connection, events: &mut Vec<Event>, now: Timestamp)
///     -> Result<bool, status_sansio::rlpx::RlpxError> {
///     let mut moved = false;
///     while let Some(output) = from.poll_output() {
///         match output {
///             Output::Transmit(bytes) => {
///                 to.handle_input(now, Input::Receive(&bytes))?;
///                 moved = true;
///             }
///             Output::Event(event) => events.push(event),
///             _ => {}
///         }
///     }
///     Ok(moved)
/// }
/// let mut events = Vec::new();
/// let mut exchange = |a: &mut Connection, b: &mut Connection| -> Result<(), status_sansio::rlpx::RlpxError> {
///     while carry(a, b, &mut events, now)? | carry(b, a, &mut events, now)? {}
///     Ok(())
/// };
/// exchange(&mut dialer, &mut listener)?;
/// assert!(dialer.is_active() && listener.is_active());
/// let hello = Input::Send { capability: "waku", code: 1, payload: &[0xc0] };
/// dialer.handle_input(now, hello)?;
/// exchange(&mut dialer, &mut listener)?;
/// assert!(events.iter().any(|e| matches!(e, Event::Message { code: 1, payload, .. } if payload[..] == [0xc0])));
/// # Ok::<(), status_sansio::rlpx::RlpxError>(())
/// ```
pub struct Connection {
    role: Role,
    config: Arc<Config>,
    rng: ChaCha20Rng,
    state: State,
    recv: BytesMut,
    outputs: VecDeque<Output>,
    pending_output: usize,
    handshake_deadline: Option<Timestamp>,
    next_ping: Option<Timestamp>,
    pong_deadline: Option<Timestamp>,
    ping_sent_at: Option<Timestamp>,
    linger_deadline: Option<Timestamp>,
    remote_hello: Option<Hello>,
}

impl core::fmt::Debug for Connection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.role)
            .field("state", &self.state_name())
            .finish()
    }
}

impl Connection {
    /// Start a connection we dialled to `remote_id`; the auth packet is queued at once.
    pub fn initiator(
        config: Arc<Config>,
        remote_id: PublicKey,
        seed: &Seed,
        now: Timestamp,
    ) -> Result<Self, RlpxError> {
        config.validate()?;
        let mut rng = seed.rng();
        let ephemeral = SecretKey::random(&mut rng);
        let mut nonce = [0u8; 32];
        rng.fill_bytes(&mut nonce);
        let auth = handshake::encode_auth(
            &mut rng,
            &config.static_key,
            &config.public_key,
            &ephemeral,
            &nonce,
            &remote_id,
            config.handshake_format,
        )?;
        let mut c = Connection::new(now, Role::Initiator, config, rng);
        c.queue_transmit(Bytes::copy_from_slice(&auth));
        c.state = State::AwaitAck {
            ephemeral,
            nonce,
            auth,
            remote_id,
        };
        Ok(c)
    }

    /// Start a connection we accepted; it waits for the peer's auth.
    pub fn recipient(config: Arc<Config>, seed: &Seed, now: Timestamp) -> Result<Self, RlpxError> {
        config.validate()?;
        let mut rng = seed.rng();
        let ephemeral = SecretKey::random(&mut rng);
        let mut nonce = [0u8; 32];
        rng.fill_bytes(&mut nonce);
        let mut c = Connection::new(now, Role::Recipient, config, rng);
        c.state = State::AwaitAuth { ephemeral, nonce };
        Ok(c)
    }

    fn new(now: Timestamp, role: Role, config: Arc<Config>, rng: ChaCha20Rng) -> Self {
        Connection {
            role,
            handshake_deadline: Some(now + config.handshake_timeout),
            config,
            rng,
            state: State::Closed,
            recv: BytesMut::new(),
            outputs: VecDeque::new(),
            pending_output: 0,
            next_ping: None,
            pong_deadline: None,
            ping_sent_at: None,
            linger_deadline: None,
            remote_hello: None,
        }
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The remote's static key, once known (at once for an initiator, after the auth for a recipient).
    pub fn remote_id(&self) -> Option<PublicKey> {
        match &self.state {
            State::AwaitAck { remote_id, .. }
            | State::AwaitHello { remote_id, .. }
            | State::Active { remote_id, .. } => Some(*remote_id),
            _ => None,
        }
    }

    /// The remote's Hello, once received.
    pub fn remote_hello(&self) -> Option<&Hello> {
        self.remote_hello.as_ref()
    }

    /// The shared capabilities, once Hello is done.
    pub fn shared_capabilities(&self) -> &[SharedCapability] {
        match &self.state {
            State::Active { shared, .. } => shared,
            _ => &[],
        }
    }

    /// True once Hello is exchanged and until a disconnect.
    pub fn is_active(&self) -> bool {
        matches!(self.state, State::Active { .. })
    }

    /// True once [`Output::Close`] has been queued.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Bytes buffered from the transport and not yet consumed (an incomplete packet or frame).
    pub fn buffered(&self) -> usize {
        self.recv.len()
    }

    fn state_name(&self) -> &'static str {
        match self.state {
            State::AwaitAck { .. } => "AwaitAck",
            State::AwaitAuth { .. } => "AwaitAuth",
            State::AwaitHello { .. } => "AwaitHello",
            State::Active { .. } => "Active",
            State::Disconnecting => "Disconnecting",
            State::Closed => "Closed",
        }
    }

    /// Feed an input. `Err` only for misuse (sending before the connection is active, an unknown
    /// capability, a code outside its range, an oversized message, a full output queue).
    pub fn handle_input(&mut self, now: Timestamp, input: Input<'_>) -> Result<(), RlpxError> {
        match input {
            Input::Receive(data) => {
                self.on_receive(now, data);
                Ok(())
            }
            Input::Send {
                capability,
                code,
                payload,
            } => self.send_subprotocol(capability, code, payload),
            Input::Ping => {
                if !self.is_active() {
                    return Err(RlpxError::NotReady);
                }
                self.send_ping(now);
                Ok(())
            }
            Input::Disconnect(reason) => {
                match self.state {
                    State::Disconnecting | State::Closed => {}
                    _ => self.disconnect(now, reason, None),
                }
                Ok(())
            }
            Input::TransportClosed => {
                self.on_transport_closed();
                Ok(())
            }
        }
    }

    /// Fire every deadline `<= now`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        if self.linger_deadline.is_some_and(|d| d <= now) {
            self.linger_deadline = None;
            self.close();
            return;
        }
        if self.handshake_deadline.is_some_and(|d| d <= now) {
            self.disconnect(
                now,
                DisconnectReason::PingTimeout,
                Some(RlpxError::HandshakeTimeout),
            );
            return;
        }
        if self.pong_deadline.is_some_and(|d| d <= now) {
            self.disconnect(now, DisconnectReason::PingTimeout, Some(RlpxError::PingTimeout));
            return;
        }
        if self.next_ping.is_some_and(|d| d <= now) {
            self.send_ping(now);
        }
    }

    /// The earliest pending deadline.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        [
            self.handshake_deadline,
            self.next_ping,
            self.pong_deadline,
            self.linger_deadline,
        ]
        .into_iter()
        .fold(None, earliest)
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        let o = self.outputs.pop_front()?;
        if let Output::Transmit(b) = &o {
            self.pending_output = self.pending_output.saturating_sub(b.len());
        }
        Some(o)
    }

    fn queue_transmit(&mut self, b: Bytes) {
        self.pending_output += b.len();
        self.outputs.push_back(Output::Transmit(b));
    }

    fn event(&mut self, e: Event) {
        self.outputs.push_back(Output::Event(e));
    }

    fn close(&mut self) {
        if !matches!(self.state, State::Closed) {
            self.state = State::Closed;
            self.recv = BytesMut::new();
            self.outputs.push_back(Output::Close);
        }
        self.handshake_deadline = None;
        self.next_ping = None;
        self.pong_deadline = None;
        self.linger_deadline = None;
    }

    /// Locally initiated end: send Disconnect if frames are up, report, then linger or close.
    fn disconnect(&mut self, now: Timestamp, reason: DisconnectReason, error: Option<RlpxError>) {
        let framed = match &mut self.state {
            State::AwaitHello { codec, .. } => {
                let mut out = Vec::new();
                let ok = seal_message(codec, p2p::DISCONNECT, &reason.encode(), &mut out).is_ok();
                ok.then_some(out)
            }
            State::Active { codec, snappy, .. } => {
                let mut out = Vec::new();
                let body = reason.encode();
                let ok = if *snappy {
                    p2p::compress(&body).and_then(|c| seal_message(codec, p2p::DISCONNECT, &c, &mut out))
                } else {
                    seal_message(codec, p2p::DISCONNECT, &body, &mut out)
                };
                ok.is_ok().then_some(out)
            }
            State::Disconnecting | State::Closed => return,
            _ => None,
        };
        self.event(Event::Disconnected {
            reason,
            remote: false,
            error,
        });
        match framed {
            Some(bytes) => {
                self.queue_transmit(Bytes::from(bytes));
                self.state = State::Disconnecting;
                self.recv = BytesMut::new();
                self.handshake_deadline = None;
                self.next_ping = None;
                self.pong_deadline = None;
                self.linger_deadline = Some(now + self.config.disconnect_linger);
            }
            None => self.close(),
        }
    }

    fn on_transport_closed(&mut self) {
        match self.state {
            State::Closed => {}
            State::Disconnecting => self.close(),
            _ => {
                self.event(Event::Disconnected {
                    reason: DisconnectReason::TcpError,
                    remote: true,
                    error: Some(RlpxError::TransportClosed),
                });
                self.close();
            }
        }
    }
}
