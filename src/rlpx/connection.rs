//! The RLPx [`Connection`]: one TCP connection's handshake, framing and `p2p` base protocol as a sans-IO
//! state machine (docs/protocol/rlpx.md §3–§8).
//!
//! ```text
//! initiator: SendAuth → AwaitAck ──┐
//! recipient: AwaitAuth → SendAck ──┴→ AwaitHello (our Hello sent) → Active → Disconnecting → Closed
//! ```
//!
//! Feed it TCP bytes (split anywhere) with [`Input::Receive`], application commands with
//! [`Input::Send`] / [`Input::Ping`] / [`Input::Disconnect`], and the transport's end with
//! [`Input::TransportClosed`]; drain [`Connection::poll_output`] after every call and sleep until
//! [`Connection::poll_timeout`].
//!
//! Timers: the handshake deadline (auth/ack plus Hello, 5 s like geth), a keep-alive Ping every 15 s with a
//! Pong deadline, and a short linger after we send a Disconnect so the peer can read it before we close.
//!
//! Peer faults never come back as `Err`: they become a Disconnect with the protocol's reason (when the
//! handshake got far enough to send one), an [`Event::Disconnected`] naming the cause, and
//! [`Output::Close`].
//!
//! Bounds: the receive buffer holds at most one incomplete handshake packet (≤ `max_handshake_size` + 2)
//! or one incomplete frame (≤ `max_frame_size` + 48 bytes) beyond the chunk being processed; decompressed
//! messages are limited to `max_message_size` before inflating; queued output is limited to
//! `max_pending_output` bytes, past which [`Input::Send`] returns [`RlpxError::OutputFull`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;

use super::frame::{FrameCodec, MAX_FRAME_SIZE};
use super::handshake::{self, derive_secrets, HandshakeFormat};
use super::p2p::{
    self, match_capabilities, Capability, DisconnectReason, Hello, Protocol, SharedCapability,
    MAX_HELLO_SIZE, MAX_MESSAGE_SIZE, P2P_VERSION,
};
use super::RlpxError;
use crate::crypto::{pubkey_to_raw64, PublicKey, SecretKey};
use crate::rng::Seed;
use crate::time::{earliest, Timestamp};

/// Configuration shared by connections (wrap it in an [`Arc`] and hand it to many).
#[derive(Clone)]
pub struct Config {
    /// Our static identity key (set by [`Config::new`]; its public key is computed once there).
    static_key: SecretKey,
    public_key: PublicKey,
    /// Client id sent in Hello.
    pub client_id: String,
    /// Sub-protocols we speak.
    pub protocols: Vec<Protocol>,
    /// Listening port advertised in Hello (legacy; 0 is fine).
    pub listen_port: u16,
    /// Encoding of the auth/ack we send. Default: EIP-8.
    pub handshake_format: HandshakeFormat,
    /// Accept a legacy (pre-EIP-8) auth or ack from the peer. Default: true.
    pub accept_legacy_handshake: bool,
    /// Largest EIP-8 handshake packet accepted (size prefix value). Default: 2048.
    pub max_handshake_size: usize,
    /// Largest frame accepted, in bytes of frame-data. Default and maximum: 2^24 − 1.
    pub max_frame_size: usize,
    /// Largest message after Snappy decompression. Default and maximum: 2^24 − 1.
    pub max_message_size: usize,
    /// Largest number of bytes queued in [`Output::Transmit`] before [`Input::Send`] refuses. Default: 32 MiB.
    pub max_pending_output: usize,
    /// Deadline for the handshake and Hello exchange. Default: 5 s.
    pub handshake_timeout: Duration,
    /// Interval between keep-alive Pings. Default: 15 s.
    pub ping_interval: Duration,
    /// How long a Ping may go unanswered before we disconnect with 0x0b. Default: 15 s.
    pub pong_timeout: Duration,
    /// How long we wait after sending a Disconnect before asking the driver to close. Default: 1 s.
    pub disconnect_linger: Duration,
}

impl Config {
    /// Defaults for everything but the identity and the sub-protocols.
    pub fn new(static_key: SecretKey, protocols: Vec<Protocol>) -> Self {
        Config {
            public_key: static_key.public_key(),
            static_key,
            client_id: concat!("status-sansio/v", env!("CARGO_PKG_VERSION")).to_string(),
            protocols,
            listen_port: 0,
            handshake_format: HandshakeFormat::Eip8,
            accept_legacy_handshake: true,
            max_handshake_size: 2048,
            max_frame_size: MAX_FRAME_SIZE,
            max_message_size: MAX_MESSAGE_SIZE,
            max_pending_output: 32 << 20,
            handshake_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(15),
            pong_timeout: Duration::from_secs(15),
            disconnect_linger: Duration::from_secs(1),
        }
    }

    /// Our static public key.
    pub fn public_key(&self) -> PublicKey {
        self.public_key
    }

    /// Our static secret key.
    pub fn static_key(&self) -> &SecretKey {
        &self.static_key
    }

    fn validate(&self) -> Result<(), RlpxError> {
        if self.protocols.is_empty() {
            return Err(RlpxError::InvalidConfig("no sub-protocols"));
        }
        if self.max_handshake_size < handshake::LEGACY_AUTH_SIZE
            || self.max_handshake_size > usize::from(u16::MAX)
        {
            return Err(RlpxError::InvalidConfig("max_handshake_size outside 307..=65535"));
        }
        if self.max_frame_size < MAX_HELLO_SIZE + 16 {
            return Err(RlpxError::InvalidConfig("max_frame_size below the Hello limit"));
        }
        Ok(())
    }
}

impl core::fmt::Debug for Config {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Config")
            .field("public_key", &self.public_key())
            .field("client_id", &self.client_id)
            .field("protocols", &self.protocols)
            .field("handshake_format", &self.handshake_format)
            .finish_non_exhaustive()
    }
}

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

enum State {
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

/// One RLPx connection. See the [module docs](self).
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
        now: Timestamp,
        config: Arc<Config>,
        remote_id: PublicKey,
        seed: Seed,
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
    pub fn recipient(now: Timestamp, config: Arc<Config>, seed: Seed) -> Result<Self, RlpxError> {
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

    fn on_receive(&mut self, now: Timestamp, data: &[u8]) {
        if matches!(self.state, State::Disconnecting | State::Closed) {
            return;
        }
        self.recv.extend_from_slice(data);
        loop {
            let progressed = match self.step(now) {
                Ok(p) => p,
                Err(e) => {
                    let reason = match e {
                        RlpxError::InvalidNodeId => DisconnectReason::InvalidIdentity,
                        _ => DisconnectReason::ProtocolBreach,
                    };
                    self.disconnect(now, reason, Some(e));
                    false
                }
            };
            if !progressed || matches!(self.state, State::Disconnecting | State::Closed) {
                break;
            }
        }
    }

    /// Make one unit of progress on the receive buffer. `Ok(false)`: more bytes are needed.
    fn step(&mut self, now: Timestamp) -> Result<bool, RlpxError> {
        let cfg = self.config.clone();
        match &mut self.state {
            State::AwaitAuth { ephemeral, nonce } => {
                let Some((auth, used)) = handshake::decode_auth(
                    &cfg.static_key,
                    &self.recv,
                    cfg.accept_legacy_handshake,
                    cfg.max_handshake_size,
                )?
                else {
                    return Ok(false);
                };
                let auth_bytes = self.recv.split_to(used);
                let ack = handshake::encode_ack(
                    &mut self.rng,
                    ephemeral,
                    nonce,
                    &auth.initiator_pubkey,
                    auth.format,
                );
                let secrets = derive_secrets(
                    false,
                    ephemeral,
                    &auth.remote_ephemeral,
                    &auth.nonce,
                    nonce,
                    &auth_bytes,
                    &ack,
                    auth.initiator_pubkey,
                );
                let remote_id = auth.initiator_pubkey;
                self.queue_transmit(Bytes::from(ack));
                self.start_framing(secrets, remote_id)?;
                Ok(true)
            }
            State::AwaitAck {
                ephemeral,
                nonce,
                auth,
                remote_id,
            } => {
                let Some((ack, used)) = handshake::decode_ack(
                    &cfg.static_key,
                    &self.recv,
                    cfg.accept_legacy_handshake,
                    cfg.max_handshake_size,
                )?
                else {
                    return Ok(false);
                };
                let ack_bytes = self.recv.split_to(used);
                let remote_id = *remote_id;
                let secrets = derive_secrets(
                    true,
                    ephemeral,
                    &ack.ephemeral_pubkey,
                    nonce,
                    &ack.nonce,
                    auth,
                    &ack_bytes,
                    remote_id,
                );
                self.start_framing(secrets, remote_id)?;
                Ok(true)
            }
            State::AwaitHello { codec, .. } | State::Active { codec, .. } => {
                let Some(frame) = codec.open(&mut self.recv)? else {
                    return Ok(false);
                };
                self.on_frame(now, frame)?;
                Ok(true)
            }
            State::Disconnecting | State::Closed => Ok(false),
        }
    }

    fn start_framing(&mut self, secrets: handshake::Secrets, remote_id: PublicKey) -> Result<(), RlpxError> {
        let mut codec = Box::new(FrameCodec::new(secrets, self.config.max_frame_size));
        let hello = Hello {
            protocol_version: P2P_VERSION,
            client_id: self.config.client_id.clone(),
            capabilities: self
                .config
                .protocols
                .iter()
                .map(|p| Capability {
                    name: p.name.as_str().to_string(),
                    version: p.version,
                })
                .collect(),
            listen_port: u64::from(self.config.listen_port),
            node_id: pubkey_to_raw64(&self.config.public_key()),
        };
        let mut out = Vec::new();
        seal_message(&mut codec, p2p::HELLO, &hello.encode(), &mut out)?;
        self.queue_transmit(Bytes::from(out));
        self.state = State::AwaitHello { codec, remote_id };
        Ok(())
    }

    fn on_frame(&mut self, now: Timestamp, frame: BytesMut) -> Result<(), RlpxError> {
        let (id, skip) = p2p::split_msg_id(&frame)?;
        let raw = frame.freeze().slice(skip..);
        match &mut self.state {
            State::AwaitHello { remote_id, .. } => match id {
                p2p::HELLO => {
                    let remote_id = *remote_id;
                    self.on_hello(now, remote_id, &raw)
                }
                p2p::DISCONNECT => {
                    self.on_remote_disconnect(&raw, false);
                    Ok(())
                }
                _ => Err(RlpxError::ExpectedHello),
            },
            State::Active { snappy, shared, .. } => {
                let snappy = *snappy;
                let payload = if snappy && id != p2p::DISCONNECT {
                    p2p::decompress(&raw, self.config.max_message_size)?
                } else {
                    raw
                };
                match id {
                    p2p::HELLO => Err(RlpxError::ExpectedHello),
                    p2p::DISCONNECT => {
                        self.on_remote_disconnect(&payload, snappy);
                        Ok(())
                    }
                    p2p::PING => {
                        self.send_base(p2p::PONG, &[0xc0]);
                        Ok(())
                    }
                    p2p::PONG => {
                        self.pong_deadline = None;
                        if let Some(sent) = self.ping_sent_at.take() {
                            self.event(Event::Pong { rtt: now - sent });
                        }
                        Ok(())
                    }
                    4..=0x0f => Ok(()),
                    _ => {
                        let cap = shared
                            .iter()
                            .find(|c| id >= c.offset && id - c.offset < c.length)
                            .copied()
                            .ok_or(RlpxError::MessageIdOutOfRange(id))?;
                        self.event(Event::Message {
                            capability: cap,
                            code: id - cap.offset,
                            payload,
                        });
                        Ok(())
                    }
                }
            }
            _ => Ok(()),
        }
    }

    fn on_hello(&mut self, now: Timestamp, remote_id: PublicKey, raw: &[u8]) -> Result<(), RlpxError> {
        let hello = Hello::decode(raw)?;
        if hello.node_id.iter().all(|b| *b == 0) {
            return Err(RlpxError::InvalidNodeId);
        }
        if hello.node_id != pubkey_to_raw64(&remote_id) {
            let e = RlpxError::InvalidHello("node id does not match the handshake");
            self.disconnect(now, DisconnectReason::UnexpectedIdentity, Some(e));
            return Ok(());
        }
        if remote_id == self.config.public_key() {
            self.disconnect(now, DisconnectReason::ConnectedToSelf, None);
            return Ok(());
        }
        let shared = match_capabilities(&self.config.protocols, &hello.capabilities);
        if shared.is_empty() {
            self.disconnect(now, DisconnectReason::UselessPeer, None);
            return Ok(());
        }
        let State::AwaitHello { codec, .. } = core::mem::replace(&mut self.state, State::Closed) else {
            return Ok(());
        };
        // EIP-706: Snappy in both directions once the remote says p2p version 5 or later.
        let snappy = hello.protocol_version >= 5;
        self.state = State::Active {
            codec,
            remote_id,
            shared: shared.clone(),
            snappy,
        };
        self.handshake_deadline = None;
        self.next_ping = Some(now + self.config.ping_interval);
        self.remote_hello = Some(hello.clone());
        self.event(Event::Connected {
            remote_id,
            hello: Box::new(hello),
            capabilities: shared,
        });
        Ok(())
    }

    fn on_remote_disconnect(&mut self, raw: &[u8], snappy: bool) {
        // Lenient: a compressed body if Snappy is on, else (or if that fails) the raw body.
        let reason = snappy
            .then(|| p2p::decompress(raw, MAX_HELLO_SIZE).ok())
            .flatten()
            .and_then(|b| DisconnectReason::decode(&b))
            .or_else(|| DisconnectReason::decode(raw))
            .unwrap_or(DisconnectReason::Requested);
        self.event(Event::Disconnected {
            reason,
            remote: true,
            error: None,
        });
        self.close();
    }

    fn send_ping(&mut self, now: Timestamp) {
        self.send_base(p2p::PING, &[0xc0]);
        if self.pong_deadline.is_none() {
            self.pong_deadline = Some(now + self.config.pong_timeout);
            self.ping_sent_at = Some(now);
        }
        self.next_ping = Some(now + self.config.ping_interval);
    }

    /// Send a base-protocol message in the Active state (internal; never refused for queue space).
    fn send_base(&mut self, id: u64, body: &[u8]) {
        if let Ok(bytes) = self.seal_active(id, body) {
            self.queue_transmit(bytes);
        }
    }

    fn seal_active(&mut self, id: u64, body: &[u8]) -> Result<Bytes, RlpxError> {
        let State::Active { codec, snappy, .. } = &mut self.state else {
            return Err(RlpxError::NotReady);
        };
        let mut out = Vec::new();
        if *snappy {
            let c = p2p::compress(body)?;
            seal_message(codec, id, &c, &mut out)?;
        } else {
            seal_message(codec, id, body, &mut out)?;
        }
        Ok(Bytes::from(out))
    }

    fn send_subprotocol(&mut self, capability: &str, code: u64, payload: &[u8]) -> Result<(), RlpxError> {
        let State::Active { shared, .. } = &self.state else {
            return Err(RlpxError::NotReady);
        };
        let cap = shared
            .iter()
            .find(|c| c.name.as_str() == capability)
            .copied()
            .ok_or_else(|| RlpxError::UnknownCapability(capability.to_string()))?;
        if code >= cap.length {
            return Err(RlpxError::CodeOutOfRange {
                code,
                length: cap.length,
            });
        }
        if payload.len() > self.config.max_message_size.min(MAX_MESSAGE_SIZE) {
            return Err(RlpxError::MessageTooLarge(payload.len()));
        }
        if self.pending_output.saturating_add(payload.len()) > self.config.max_pending_output {
            return Err(RlpxError::OutputFull);
        }
        let bytes = self.seal_active(cap.offset + code, payload)?;
        self.queue_transmit(bytes);
        Ok(())
    }
}

fn seal_message(codec: &mut FrameCodec, id: u64, body: &[u8], out: &mut Vec<u8>) -> Result<(), RlpxError> {
    let mut idb = BytesMut::with_capacity(9);
    p2p::encode_msg_id(id, &mut idb);
    codec.seal(&[&idb, body], out)
}
