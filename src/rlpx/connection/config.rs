//! The configuration RLPx connections share (docs/protocol/rlpx.md §3–§8): identity, capabilities,
//! handshake format and every bound.

use std::time::Duration;

use super::super::frame::MAX_FRAME_SIZE;
use super::super::handshake::{self, HandshakeFormat};
use super::super::p2p::{Protocol, MAX_HELLO_SIZE, MAX_MESSAGE_SIZE};
use super::super::RlpxError;
use crate::crypto::{PublicKey, SecretKey};

/// Configuration shared by connections (wrap it in an [`Arc`](std::sync::Arc) and hand it to many).
#[derive(Clone)]
pub struct Config {
    /// Our static identity key (set by [`Config::new`]; its public key is computed once there).
    pub(super) static_key: SecretKey,
    pub(super) public_key: PublicKey,
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
    /// Largest number of bytes queued in [`Output::Transmit`](super::Output::Transmit) before [`Input::Send`](super::Input::Send) refuses. Default: 32 MiB.
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

    pub(super) fn validate(&self) -> Result<(), RlpxError> {
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
