//! What an RLPx connection does with bytes (docs/protocol/rlpx.md §3–§8): the handshake steps on the
//! receive buffer, framing, the Hello exchange, base-protocol messages and sealing messages into frames.

use bytes::{Bytes, BytesMut};

use super::super::frame::FrameCodec;
use super::super::handshake::{self, derive_secrets};
use super::super::p2p::{
    self, match_capabilities, Capability, DisconnectReason, Hello, MAX_HELLO_SIZE, MAX_MESSAGE_SIZE,
    P2P_VERSION,
};
use super::super::RlpxError;
use super::{Connection, Event, State};
use crate::crypto::{pubkey_to_raw64, PublicKey};
use crate::time::Timestamp;

impl Connection {
    pub(super) fn on_receive(&mut self, now: Timestamp, data: &[u8]) {
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

    pub(super) fn send_ping(&mut self, now: Timestamp) {
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

    pub(super) fn send_subprotocol(
        &mut self,
        capability: &str,
        code: u64,
        payload: &[u8],
    ) -> Result<(), RlpxError> {
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

pub(super) fn seal_message(
    codec: &mut FrameCodec,
    id: u64,
    body: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), RlpxError> {
    let mut idb = BytesMut::with_capacity(9);
    p2p::encode_msg_id(id, &mut idb);
    codec.seal(&[&idb, body], out)
}
