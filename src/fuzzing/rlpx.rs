//! Fuzz bodies for the RLPx layer, and [`RawPeer`], a scripted peer that completes the handshake by hand
//! and then sends whatever frame-data it is told to (so fuzzing and tests reach past the MACs).

use std::sync::Arc;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use bytes::BytesMut;

use crate::crypto::{PublicKey, SecretKey};
use crate::rlpx::frame::FrameCodec;
use crate::rlpx::handshake::{self, HandshakeFormat};
use crate::rlpx::p2p::{self, DisconnectReason, Hello, Protocol};
use crate::rlpx::{Config, Connection, Event, Input, Output, RlpxError};
use crate::rng::Seed;
use crate::time::Timestamp;

fn fixed_key(tag: u8) -> SecretKey {
    SecretKey::random(&mut Seed::from_u64(u64::from(tag)).rng())
}

/// The configuration used by the fuzz bodies: a `test/1` capability with 8 codes and small caps.
pub fn fuzz_config(tag: u8) -> Arc<Config> {
    let mut c = Config::new(fixed_key(tag), vec![test_protocol()]);
    c.max_frame_size = 64 * 1024;
    c.max_message_size = 256 * 1024;
    Arc::new(c)
}

/// The `test/1` capability (8 codes) used by tests, fuzzing and the examples.
pub fn test_protocol() -> Protocol {
    match Protocol::new("test", 1, 8) {
        Some(p) => p,
        None => unreachable!("\"test\" is a valid capability name"),
    }
}

/// A scripted initiator: does the handshake by hand, then seals arbitrary frame-data.
pub struct RawPeer {
    static_key: SecretKey,
    ephemeral: SecretKey,
    nonce: [u8; 32],
    auth: Vec<u8>,
    codec: Option<FrameCodec>,
    recv: BytesMut,
}

impl RawPeer {
    /// Build the auth for `remote`; returns the peer and the auth bytes to deliver.
    pub fn new(seed: u64, remote: &PublicKey, format: HandshakeFormat) -> Result<(Self, Vec<u8>), RlpxError> {
        let mut rng = Seed::from_u64(seed).rng();
        let static_key = SecretKey::random(&mut rng);
        let ephemeral = SecretKey::random(&mut rng);
        let nonce = [seed as u8; 32];
        let auth = handshake::encode_auth(
            &mut rng,
            &static_key,
            &static_key.public_key(),
            &ephemeral,
            &nonce,
            remote,
            format,
        )?;
        let peer = RawPeer {
            static_key,
            ephemeral,
            nonce,
            auth: auth.clone(),
            codec: None,
            recv: BytesMut::new(),
        };
        Ok((peer, auth))
    }

    /// Our static key.
    pub fn public_key(&self) -> PublicKey {
        self.static_key.public_key()
    }

    /// Feed bytes from the remote; completes the handshake when the ack is in and returns opened frames.
    pub fn receive(&mut self, data: &[u8], remote: &PublicKey) -> Result<Vec<BytesMut>, RlpxError> {
        self.recv.extend_from_slice(data);
        if self.codec.is_none() {
            let Some((ack, used)) = handshake::decode_ack(&self.static_key, &self.recv, true, 2048)? else {
                return Ok(vec![]);
            };
            let ack_bytes = self.recv.split_to(used);
            let secrets = handshake::derive_secrets(
                true,
                &self.ephemeral,
                &ack.ephemeral_pubkey,
                &self.nonce,
                &ack.nonce,
                &self.auth,
                &ack_bytes,
                *remote,
            );
            self.codec = Some(FrameCodec::new(secrets, p2p::MAX_MESSAGE_SIZE));
        }
        let mut frames = Vec::new();
        if let Some(codec) = &mut self.codec {
            while let Some(f) = codec.open(&mut self.recv)? {
                frames.push(f);
            }
        }
        Ok(frames)
    }

    /// Seal raw frame-data (msg-id included). `NotReady` before the ack arrived.
    pub fn seal(&mut self, frame_data: &[u8]) -> Result<Vec<u8>, RlpxError> {
        let codec = self.codec.as_mut().ok_or(RlpxError::NotReady)?;
        let mut out = Vec::new();
        codec.seal(&[frame_data], &mut out)?;
        Ok(out)
    }

    /// A valid Hello from this peer advertising `caps`, as frame-data.
    pub fn hello_frame(&self, version: u64, caps: &[(&str, u32)]) -> Vec<u8> {
        let hello = Hello {
            protocol_version: version,
            client_id: "raw-peer".into(),
            capabilities: caps
                .iter()
                .map(|(n, v)| p2p::Capability {
                    name: n.to_string(),
                    version: *v,
                })
                .collect(),
            listen_port: 0,
            node_id: crate::crypto::pubkey_to_raw64(&self.public_key()),
        };
        let mut f = vec![0x80];
        f.extend_from_slice(&hello.encode());
        f
    }
}

/// What a [`rlpx_connection`] run reached, so corpus tests can check the corpus is not vacuous.
#[derive(Debug, Default, Clone, Copy)]
pub struct Reached {
    /// The Hello exchange completed.
    pub connected: bool,
    /// Sub-protocol messages delivered.
    pub messages: usize,
    /// The connection reported a disconnect.
    pub disconnected: bool,
}

/// Drain a connection's outputs, returning the transmitted bytes and checking the output invariants.
fn drain(conn: &mut Connection, reached: &mut Reached) -> Vec<u8> {
    let mut out = Vec::new();
    let mut closed = false;
    while let Some(o) = conn.poll_output() {
        assert!(!closed, "nothing may follow Close");
        match o {
            Output::Transmit(b) => out.extend_from_slice(&b),
            Output::Event(Event::Connected { .. }) => reached.connected = true,
            Output::Event(Event::Message { .. }) => reached.messages += 1,
            Output::Event(Event::Disconnected { .. }) => reached.disconnected = true,
            Output::Event(_) => {}
            Output::Close => closed = true,
        }
    }
    out
}

/// Auth decoding over arbitrary bytes (both legacy modes).
pub fn rlpx_auth(data: &[u8]) {
    let key = fixed_key(1);
    for legacy in [true, false] {
        if let Ok(Some((_, used))) = handshake::decode_auth(&key, data, legacy, 2048) {
            assert!(used <= data.len());
        }
    }
}

/// Ack decoding over arbitrary bytes (both legacy modes).
pub fn rlpx_ack(data: &[u8]) {
    let key = fixed_key(2);
    for legacy in [true, false] {
        if let Ok(Some((_, used))) = handshake::decode_ack(&key, data, legacy, 2048) {
            assert!(used <= data.len());
        }
    }
}

/// Hello, Disconnect, msg-id and Snappy decoding over arbitrary bytes.
pub fn rlpx_hello(data: &[u8]) {
    if let Ok(h) = Hello::decode(data) {
        let again = Hello::decode(&h.encode());
        assert_eq!(again.as_ref().ok(), Some(&h), "Hello must round-trip");
    }
    let _ = DisconnectReason::decode(data);
    if let Ok((_, skip)) = p2p::split_msg_id(data) {
        assert!(skip <= data.len());
    }
    if let Ok(b) = p2p::decompress(data, 1 << 20) {
        assert!(b.len() <= 1 << 20);
    }
}

/// Structured input for [`rlpx_frame`].
#[derive(Debug, Arbitrary)]
struct FrameInput {
    frames: Vec<Vec<u8>>,
    flip: Option<(u16, u8)>,
    chunk: u8,
    raw_tail: Vec<u8>,
}

/// Frame sealing and opening: valid frames split into arbitrary chunks, an optional bit flip, and
/// arbitrary trailing bytes. Every frame before the corruption opens intact; nothing panics.
pub fn rlpx_frame(data: &[u8]) {
    let Ok(input) = FrameInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let k = [7u8; 32];
    let mut tx = FrameCodec::from_parts(&k, &k, Default::default(), Default::default(), 1 << 16);
    let mut rx = FrameCodec::from_parts(&k, &k, Default::default(), Default::default(), 1 << 16);
    let mut wire = Vec::new();
    for f in input.frames.iter().take(16) {
        if tx.seal(&[f], &mut wire).is_err() {
            return;
        }
    }
    let clean_len = wire.len();
    if let Some((pos, bits)) = input.flip {
        if !wire.is_empty() && bits != 0 {
            let i = usize::from(pos) % wire.len();
            wire[i] ^= bits;
        }
    }
    wire.extend_from_slice(&input.raw_tail);
    let chunk = usize::from(input.chunk.max(1));
    let mut buf = BytesMut::new();
    let mut opened = 0usize;
    'outer: for piece in wire.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match rx.open(&mut buf) {
                Ok(Some(f)) => {
                    if input.flip.is_none() && opened < input.frames.len().min(16) {
                        assert_eq!(&f[..], &input.frames[opened][..], "frame must open intact");
                    }
                    opened += 1;
                }
                Ok(None) => break,
                Err(_) => break 'outer,
            }
        }
        assert!(buf.len() <= (1 << 16) + 64 + chunk, "receive buffer past its cap");
    }
    if input.flip.is_none() && input.raw_tail.is_empty() {
        assert_eq!(opened, input.frames.len().min(16));
        assert!(clean_len == 0 || buf.is_empty());
    }
}

/// One step of the scripted peer in [`rlpx_connection`].
#[derive(Debug, Arbitrary)]
enum Step {
    /// Raw bytes straight onto the wire.
    Raw(Vec<u8>),
    /// A properly sealed frame with arbitrary frame-data.
    Frame(Vec<u8>),
    /// A valid Hello with the given version and whether it offers the shared capability.
    Hello(u8, bool),
    /// A sealed, Snappy-compressed message with id `0x10 + n % 12` (8 valid `test` codes, 4 out of range).
    Message(u8, Vec<u8>),
    /// Advance the clock.
    Tick(u16),
    /// An application command on the connection under test.
    Send(u8, Vec<u8>),
    /// The transport closes.
    Close,
}

#[derive(Debug, Arbitrary)]
struct ConnectionInput {
    recipient_side_raw_only: bool,
    /// Send a valid Hello (p2p v5, sharing `test/1`) right after the handshake.
    hello_first: bool,
    legacy: bool,
    steps: Vec<Step>,
}

/// A whole [`Connection`] (recipient side) fed arbitrary bytes, well-formed-but-hostile frames, timer
/// ticks and application commands. Oracle: no panic, `Receive` never returns `Err`, the receive buffer
/// never passes its cap, and nothing follows `Close`.
pub fn rlpx_connection(data: &[u8]) -> Reached {
    let mut reached = Reached::default();
    let Ok(input) = ConnectionInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return reached;
    };
    let config = fuzz_config(3);
    let cap = config.max_frame_size + 64;
    let mut now = Timestamp::from_secs(1_000);
    let Ok(mut conn) = Connection::recipient(now, config.clone(), Seed::from_u64(9)) else {
        return reached;
    };
    let format = if input.legacy {
        HandshakeFormat::Legacy
    } else {
        HandshakeFormat::Eip8
    };
    let Ok((mut peer, auth)) = RawPeer::new(5, &config.public_key(), format) else {
        return reached;
    };
    if !input.recipient_side_raw_only {
        assert!(conn.handle_input(now, Input::Receive(&auth)).is_ok());
        let reply = drain(&mut conn, &mut reached);
        if peer.receive(&reply, &config.public_key()).is_err() {
            return reached;
        }
        if input.hello_first {
            let hello = peer.hello_frame(5, &[("test", 1)]);
            let bytes = peer.seal(&hello).unwrap_or_default();
            assert!(conn.handle_input(now, Input::Receive(&bytes)).is_ok());
            let reply = drain(&mut conn, &mut reached);
            let _ = peer.receive(&reply, &config.public_key());
        }
    }
    for step in input.steps.into_iter().take(64) {
        let bytes = match step {
            Step::Raw(b) => b,
            Step::Frame(f) => peer.seal(&f).unwrap_or_default(),
            Step::Hello(v, shared) => {
                let caps: &[(&str, u32)] = if shared { &[("test", 1)] } else { &[("other", 1)] };
                let f = peer.hello_frame(u64::from(v), caps);
                peer.seal(&f).unwrap_or_default()
            }
            Step::Message(id, body) => {
                let mut f = vec![0x10 + id % 12];
                f.extend_from_slice(&p2p::compress(&body).unwrap_or_default());
                peer.seal(&f).unwrap_or_default()
            }
            Step::Tick(ms) => {
                now += Duration::from_millis(u64::from(ms) * 50);
                conn.handle_timeout(now);
                vec![]
            }
            Step::Send(code, body) => {
                let _ = conn.handle_input(
                    now,
                    Input::Send {
                        capability: "test",
                        code: u64::from(code % 10),
                        payload: &body,
                    },
                );
                vec![]
            }
            Step::Close => {
                assert!(conn.handle_input(now, Input::TransportClosed).is_ok());
                vec![]
            }
        };
        if !bytes.is_empty() {
            assert!(
                conn.handle_input(now, Input::Receive(&bytes)).is_ok(),
                "peer bytes must never be Err"
            );
        }
        assert!(conn.buffered() <= cap, "receive buffer past its cap");
        let reply = drain(&mut conn, &mut reached);
        let _ = peer.receive(&reply, &config.public_key());
    }
    reached
}
