//! Fuzz bodies for the RLPx layer, and [`RawPeer`], a scripted peer that completes the handshake by hand
//! and then sends whatever frame-data it is told to (so fuzzing and tests reach past the MACs).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use bytes::BytesMut;

use crate::crypto::{PublicKey, SecretKey};
use crate::rlpx::ecies;
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

    /// A fresh copy of the peer [`RawPeer::new`] builds with seed 5 for [`keys`]' recipient, and its auth;
    /// built once per process and per format (key generation and ECIES dominate a short run otherwise).
    pub fn cached(format: HandshakeFormat) -> Option<(Self, Vec<u8>)> {
        static EIP8: OnceLock<Option<(RawPeer, Vec<u8>)>> = OnceLock::new();
        static LEGACY: OnceLock<Option<(RawPeer, Vec<u8>)>> = OnceLock::new();
        let cell = match format {
            HandshakeFormat::Eip8 => &EIP8,
            HandshakeFormat::Legacy => &LEGACY,
        };
        let (p, auth) = cell
            .get_or_init(|| RawPeer::new(5, &keys().recipient_pub, format).ok())
            .as_ref()?;
        let peer = RawPeer {
            static_key: p.static_key.clone(),
            ephemeral: p.ephemeral.clone(),
            nonce: p.nonce,
            auth: p.auth.clone(),
            codec: None,
            recv: BytesMut::new(),
        };
        Some((peer, auth.clone()))
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

/// The keys and configurations of the RLPx targets, built once per process so a run costs only the
/// handshake work of its input.
pub struct Keys {
    /// The recipient's static key (auth packets are sealed to it).
    pub recipient: SecretKey,
    /// Its public key.
    pub recipient_pub: PublicKey,
    /// The initiator's static key (ack packets are sealed to it).
    pub initiator: SecretKey,
    /// Its public key.
    pub initiator_pub: PublicKey,
    /// The ephemeral key of the harness's side of a handshake (and of the packets it seals).
    pub ephemeral: SecretKey,
    /// Its public key.
    pub ephemeral_pub: PublicKey,
    /// The recipient's configuration ([`fuzz_config`] around `recipient`).
    pub recipient_config: Arc<Config>,
    /// The initiator's configuration ([`fuzz_config`] around `initiator`).
    pub initiator_config: Arc<Config>,
}

/// The process-wide [`Keys`].
pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let recipient_config = fuzz_config(3);
        let initiator_config = fuzz_config(4);
        let ephemeral = fixed_key(5);
        Keys {
            recipient: recipient_config.static_key().clone(),
            recipient_pub: recipient_config.public_key(),
            initiator: initiator_config.static_key().clone(),
            initiator_pub: initiator_config.public_key(),
            ephemeral_pub: ephemeral.public_key(),
            ephemeral,
            recipient_config,
            initiator_config,
        }
    })
}

/// The nonce the harness uses on its side of a handshake.
pub const HARNESS_NONCE: [u8; 32] = [0x5a; 32];

/// Seal `plaintext` as an EIP-8 handshake packet to `remote` (size prefix, ECIES with the prefix as
/// shared MAC data), with the harness's ephemeral key; `None` when it would exceed the 2 KiB cap.
pub fn seal_eip8(remote: &PublicKey, plaintext: &[u8], iv: u8) -> Option<Vec<u8>> {
    let size = plaintext.len() + ecies::OVERHEAD;
    let size = u16::try_from(size).ok().filter(|s| *s <= 2048)?;
    let prefix = size.to_be_bytes();
    let mut out = prefix.to_vec();
    out.extend_from_slice(&ecies::encrypt_with(
        remote,
        &keys().ephemeral,
        [iv; 16],
        plaintext,
        &prefix,
    ));
    Some(out)
}

/// Seal `plaintext` as a legacy (pre-EIP-8) handshake packet to `remote`.
pub fn seal_legacy(remote: &PublicKey, plaintext: &[u8], iv: u8) -> Vec<u8> {
    ecies::encrypt_with(remote, &keys().ephemeral, [iv; 16], plaintext, &[])
}

/// The plaintext inside a handshake packet sealed to `secret` (EIP-8 or legacy), for seed corpora.
pub fn open_handshake(secret: &SecretKey, packet: &[u8]) -> Option<Vec<u8>> {
    if packet.len() > 2 {
        if let Ok(p) = ecies::decrypt(secret, &packet[2..], &packet[..2]) {
            return Some(p);
        }
    }
    ecies::decrypt(secret, packet, &[]).ok()
}

/// Auth (`auth == true`) or ack decoding. Input: a mode byte, then
/// * mode 0: raw bytes, decoded with and without legacy support (the ECIES layer itself);
/// * modes 1, 2: a plaintext the harness seals as an EIP-8 packet to the decoder's key (legacy support
///   off, on), so the fuzzer drives the RLP body parser behind the MAC;
/// * mode 3: a plaintext the harness resizes to the legacy body size and seals as a legacy packet.
///
/// Oracle: a sealed packet always opens (never `Ok(None)` nor an ECIES error: the parser decides), and
/// an accepted one occupies exactly the sealed bytes.
fn handshake_body(data: &[u8], auth: bool) {
    let k = keys();
    let (secret, public, legacy_len) = if auth {
        (&k.recipient, &k.recipient_pub, 194)
    } else {
        (&k.initiator, &k.initiator_pub, 97)
    };
    let decode = |buf: &[u8], legacy: bool| -> Result<Option<usize>, RlpxError> {
        if auth {
            handshake::decode_auth(secret, buf, legacy, 2048).map(|o| o.map(|(_, used)| used))
        } else {
            handshake::decode_ack(secret, buf, legacy, 2048).map(|o| o.map(|(_, used)| used))
        }
    };
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (packet, legacy) = match mode % 4 {
        0 => {
            for legacy in [true, false] {
                if let Ok(Some(used)) = decode(rest, legacy) {
                    assert!(used <= rest.len());
                }
            }
            return;
        }
        m @ (1 | 2) => match seal_eip8(public, rest, mode) {
            Some(p) => (p, m == 2),
            None => return,
        },
        _ => {
            let mut pt = rest.to_vec();
            pt.resize(legacy_len, 0);
            (seal_legacy(public, &pt, mode), true)
        }
    };
    match decode(&packet, legacy) {
        Ok(Some(used)) => assert_eq!(used, packet.len(), "an accepted packet is the sealed one"),
        Ok(None) => unreachable!("a whole sealed packet needs no more bytes"),
        Err(e) => assert!(
            matches!(e, RlpxError::MalformedHandshake(_) | RlpxError::InvalidSignature),
            "a sealed packet opens and only its body can be wrong: {e:?}"
        ),
    }
}

/// Auth decoding (see `handshake_body` for the input modes and the oracle).
pub fn rlpx_auth(data: &[u8]) {
    handshake_body(data, true);
}

/// Ack decoding (see `handshake_body` for the input modes and the oracle).
pub fn rlpx_ack(data: &[u8]) {
    handshake_body(data, false);
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
    let config = keys().recipient_config.clone();
    let cap = config.max_frame_size + 64;
    let mut now = Timestamp::from_secs(1_000);
    let Ok(mut conn) = Connection::recipient(config.clone(), &Seed::from_u64(9), now) else {
        return reached;
    };
    let format = if input.legacy {
        HandshakeFormat::Legacy
    } else {
        HandshakeFormat::Eip8
    };
    let Some((mut peer, auth)) = RawPeer::cached(format) else {
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

/// A scripted initiator-side session: the harness is the recipient (it holds the recipient's static key),
/// so it reads the auth the [`Connection`] under test sends, answers with an ack, and then seals frames
/// with the secrets of that handshake.
struct Responder {
    codec: Option<FrameCodec>,
}

impl Responder {
    fn seal(&mut self, frame_data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(c) = &mut self.codec {
            if c.seal(&[frame_data], &mut out).is_err() {
                out.clear();
            }
        }
        out
    }
}

/// The Hello of the harness's recipient as frame-data.
fn recipient_hello(version: u64, shared: bool) -> Vec<u8> {
    let hello = Hello {
        protocol_version: version,
        client_id: "fuzz-recipient".into(),
        capabilities: vec![p2p::Capability {
            name: if shared { "test" } else { "other" }.into(),
            version: 1,
        }],
        listen_port: 0,
        node_id: crate::crypto::pubkey_to_raw64(&keys().recipient_pub),
    };
    let mut f = vec![0x80];
    f.extend_from_slice(&hello.encode());
    f
}

/// The initiator side of a [`Connection`]: it dials the harness's recipient, and the ack it receives is
/// chosen by the fuzzer, then the session continues with a script of frames.
///
/// Input: a [`Script`](super::script::Script). First the ack: a mode byte (0: a valid EIP-8 ack, 1: a
/// valid legacy ack, 2: a plaintext the harness seals as an EIP-8 ack, 3: a plaintext sealed as a legacy
/// ack, otherwise raw bytes) with its byte string (plaintext or raw bytes), and a chunk size (the ack
/// arrives in pieces). When the ack the initiator accepts carries the harness's ephemeral key, the harness
/// derives the session secrets and seals the script's frames; otherwise they are empty. Then operations
/// (opcode % 8): 0 raw bytes, 1 a sealed frame (frame-data), 2 the recipient's Hello (version byte,
/// shared-capability flag), 3 a sealed Snappy message (id byte, body), 4 time passes (`u16` × 50 ms),
/// 5 an application `Send` (code byte, body), 6 the transport closes, 7 an application `Ping`.
///
/// Oracle: no panic; `Receive` never returns `Err`; the receive buffer stays under its cap; nothing
/// follows `Close`; a valid ack always completes the handshake (the initiator sends its Hello frame).
pub fn rlpx_initiator(data: &[u8]) -> Reached {
    use super::script::Script;
    let k = keys();
    let mut reached = Reached::default();
    let mut s = Script::new(data);
    let config = k.initiator_config.clone();
    let cap = config.max_frame_size + 64;
    let mut now = Timestamp::from_secs(1_000);
    let Ok(mut conn) = Connection::initiator(config, k.recipient_pub, &Seed::from_u64(11), now) else {
        return reached;
    };
    let auth = drain(&mut conn, &mut reached);
    // The harness is the recipient: it opens the auth with the recipient's key.
    let Ok(Some((auth_msg, used))) = handshake::decode_auth(&k.recipient, &auth, true, 2048) else {
        unreachable!("the initiator's auth opens with the recipient's key");
    };
    assert_eq!(used, auth.len());
    let mode = s.byte();
    let body = s.bytes();
    let ack = match mode % 5 {
        0 | 1 => {
            let format = if mode % 5 == 0 {
                HandshakeFormat::Eip8
            } else {
                HandshakeFormat::Legacy
            };
            handshake::encode_ack(
                &mut Seed::from_u64(12).rng(),
                &k.ephemeral,
                &HARNESS_NONCE,
                &k.initiator_pub,
                format,
            )
        }
        2 => seal_eip8(&k.initiator_pub, body, mode).unwrap_or_default(),
        3 => {
            let mut pt = body.to_vec();
            pt.resize(97, 0);
            seal_legacy(&k.initiator_pub, &pt, mode)
        }
        _ => body.to_vec(),
    };
    // What the initiator will make of it (it accepts legacy acks): with our ephemeral key, we can talk.
    let mut responder = Responder { codec: None };
    let mut ack_len = ack.len();
    if let Ok(Some((a, used))) = handshake::decode_ack(&k.initiator, &ack, true, 2048) {
        ack_len = used;
        if a.ephemeral_pubkey == k.ephemeral_pub {
            let secrets = handshake::derive_secrets(
                false,
                &k.ephemeral,
                &auth_msg.remote_ephemeral,
                &auth_msg.nonce,
                &a.nonce,
                &auth,
                &ack[..used],
                k.initiator_pub,
            );
            responder.codec = Some(FrameCodec::new(secrets, p2p::MAX_MESSAGE_SIZE));
        }
    }
    let chunk = usize::from(s.byte()).max(1);
    let mut sent_after_ack = 0;
    for (i, piece) in ack.chunks(chunk).enumerate() {
        assert!(
            conn.handle_input(now, Input::Receive(piece)).is_ok(),
            "peer bytes must never be Err"
        );
        let out = drain(&mut conn, &mut reached);
        if (i + 1) * chunk >= ack_len {
            sent_after_ack += out.len();
        }
    }
    if mode % 5 < 2 {
        assert!(
            sent_after_ack > 0,
            "a valid ack completes the handshake and the Hello goes out"
        );
    }
    let mut steps = 0;
    while !s.is_empty() && steps < 64 {
        steps += 1;
        let bytes = match s.byte() % 8 {
            0 => s.bytes().to_vec(),
            1 => {
                let f = s.bytes();
                responder.seal(f)
            }
            2 => {
                let (v, shared) = (s.byte(), s.byte() % 2 == 0);
                responder.seal(&recipient_hello(u64::from(v), shared))
            }
            3 => {
                let id = s.byte();
                let body = s.bytes();
                let mut f = vec![0x10 + id % 12];
                f.extend_from_slice(&p2p::compress(body).unwrap_or_default());
                responder.seal(&f)
            }
            4 => {
                now += Duration::from_millis(u64::from(s.u16()) * 50);
                conn.handle_timeout(now);
                vec![]
            }
            5 => {
                let code = s.byte();
                let body = s.bytes();
                let _ = conn.handle_input(
                    now,
                    Input::Send {
                        capability: "test",
                        code: u64::from(code % 10),
                        payload: body,
                    },
                );
                vec![]
            }
            6 => {
                assert!(conn.handle_input(now, Input::TransportClosed).is_ok());
                vec![]
            }
            _ => {
                let _ = conn.handle_input(now, Input::Ping);
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
        drain(&mut conn, &mut reached);
    }
    reached
}
