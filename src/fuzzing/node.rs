//! Fuzz body for the node [`Engine`]: sockets accepted, dialled, fed bytes and closed in any order, with
//! scripted peers that complete real handshakes on both sides (the harness holds the keys of the
//! inbound peer and of the static peer the engine dials), so the fuzzer reaches Hello, the Waku Status
//! exchange and Waku packets, not only the ECIES layer.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::rlpx::{keys, RawPeer, HARNESS_NONCE};
use super::script::Script;
use crate::enode::Enode;
use crate::node::{ConnId, Engine, EngineConfig, Event, Input, Output};
use crate::rlpx::frame::FrameCodec;
use crate::rlpx::handshake::{self, HandshakeFormat};
use crate::rlpx::p2p::{self, Protocol};
use crate::rlpx::Config;
use crate::rng::Seed;
use crate::time::Timestamp;
use crate::waku::PoolConfig;

/// Most peers the engine under test keeps (so the fuzzer reaches the caps).
pub const MAX_PEERS: usize = 3;

/// The engine's RLPx configuration: the RLPx targets' recipient key, `waku/1` and `shh/6`. Built once.
fn engine_rlpx() -> Arc<Config> {
    static CONFIG: OnceLock<Arc<Config>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let protocols = [("waku", 1, 128), ("shh", 6, 128)]
                .into_iter()
                .filter_map(|(n, v, c)| Protocol::new(n, v, c))
                .collect();
            let mut c = Config::new(keys().recipient.clone(), protocols);
            c.max_frame_size = 64 * 1024;
            c.max_message_size = 256 * 1024;
            Arc::new(c)
        })
        .clone()
}

/// The static peer the engine dials: the RLPx targets' initiator key, whose secret the harness holds.
fn static_peer() -> Enode {
    Enode::new(
        keys().initiator_pub,
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 30303),
    )
}

/// The harness's end of one socket.
enum Remote {
    /// An inbound socket: the harness is the initiator.
    Inbound(Option<Box<RawPeer>>),
    /// A dial of the engine: the harness answers as the static peer.
    Outbound {
        /// Bytes the engine sent that the harness has not consumed (its auth).
        recv: Vec<u8>,
        codec: Option<Box<FrameCodec>>,
    },
}

impl Remote {
    fn seal(&mut self, frame_data: &[u8]) -> Vec<u8> {
        let codec = match self {
            Remote::Inbound(Some(p)) => return p.seal(frame_data).unwrap_or_default(),
            Remote::Inbound(None) => return vec![],
            Remote::Outbound { codec, .. } => codec,
        };
        let mut out = Vec::new();
        if let Some(c) = codec {
            if c.seal(&[frame_data], &mut out).is_err() {
                out.clear();
            }
        }
        out
    }

    /// Take in what the engine sent on this socket.
    fn receive(&mut self, data: &[u8]) {
        match self {
            Remote::Inbound(Some(p)) => {
                if p.receive(data, &keys().recipient_pub).is_err() {
                    // The engine's bytes did not open: the session is over for the harness.
                    *self = Remote::Inbound(None);
                }
            }
            Remote::Inbound(None) => {}
            Remote::Outbound { recv, codec } => {
                if codec.is_none() && recv.len() < 4096 {
                    recv.extend_from_slice(data);
                }
            }
        }
    }

    /// For a dial: answer the engine's auth with a valid ack (EIP-8 or legacy); the bytes to deliver.
    fn ack(&mut self, legacy: bool) -> Vec<u8> {
        let Remote::Outbound { recv, codec } = self else {
            return vec![];
        };
        let k = keys();
        let Ok(Some((auth, used))) = handshake::decode_auth(&k.initiator, recv, true, 2048) else {
            return vec![];
        };
        let format = if legacy {
            HandshakeFormat::Legacy
        } else {
            HandshakeFormat::Eip8
        };
        let ack = handshake::encode_ack(
            &mut Seed::from_u64(31).rng(),
            &k.ephemeral,
            &HARNESS_NONCE,
            &k.recipient_pub,
            format,
        );
        let secrets = handshake::derive_secrets(
            false,
            &k.ephemeral,
            &auth.remote_ephemeral,
            &auth.nonce,
            &HARNESS_NONCE,
            &recv[..used],
            &ack,
            k.recipient_pub,
        );
        *codec = Some(Box::new(FrameCodec::new(secrets, p2p::MAX_MESSAGE_SIZE)));
        recv.clear();
        ack
    }
}

/// The Hello of a harness peer with `node_id`, offering capability `caps % 4`: waku/1, shh/6, both, none.
fn hello(node_id: &crate::crypto::PublicKey, caps: u8) -> Vec<u8> {
    let cap = |name: &str, version| p2p::Capability {
        name: name.into(),
        version,
    };
    let capabilities = match caps % 4 {
        0 => vec![cap("waku", 1)],
        1 => vec![cap("shh", 6)],
        2 => vec![cap("shh", 6), cap("waku", 1)],
        _ => vec![cap("other", 1)],
    };
    let h = p2p::Hello {
        protocol_version: 5,
        client_id: "fuzz".into(),
        capabilities,
        listen_port: 0,
        node_id: crate::crypto::pubkey_to_raw64(node_id),
    };
    let mut f = vec![0x80];
    f.extend_from_slice(&h.encode());
    f
}

/// What an [`node_engine`] run reached, for the corpus test.
#[derive(Debug, Default, Clone, Copy)]
pub struct EngineReached {
    /// `PeerConnected` events (Hello done, both directions counted).
    pub connected: usize,
    /// Of those, peers with a Waku dialect attached.
    pub waku_peers: usize,
    /// Dials the engine asked for.
    pub dials: usize,
    /// Sockets the engine closed.
    pub closes: usize,
}

/// The engine fed a script of socket events and bytes. Input: a [`Script`]; each operation is an opcode
/// byte, a socket byte (slot `% 4` is an inbound socket id, slot `% 4 + 4` the n-th dial the engine
/// asked for) and its fields; opcodes (`% 11`): 0 accept the socket, 1 raw bytes on it, 2 the harness's
/// initiator sends its auth (flag byte: legacy), 3 a sealed frame (frame-data), 4 a Hello (capability
/// byte), 5 a sealed Snappy Waku packet (code byte, body), 6 time passes (`u16` × 10 ms), 7 the socket
/// closes, 8 a dial connects (then the engine's auth goes out), 9 the harness answers a dial's auth with
/// an ack (flag byte: legacy), 10 a dial fails.
///
/// Oracle: no panic; bytes and closes on any socket never return `Err` (accepts and dial reports for ids
/// the engine holds or forgot are the driver's misuse and may); established
/// peers stay within `max_peers`; the Waku pool stays under its caps; nothing is sent on a socket after
/// the engine closed it.
pub fn node_engine(data: &[u8]) -> EngineReached {
    let mut reached = EngineReached::default();
    let mut now = Timestamp::from_secs(1_700_000_000);
    let mut config = EngineConfig::new(engine_rlpx());
    config.max_peers = MAX_PEERS;
    config.target_peers = 2;
    config.static_peers = vec![static_peer()];
    config.waku.min_pow = 0.0;
    config.waku.pool = PoolConfig {
        max_bytes: 64 * 1024,
        max_envelopes: 64,
    };
    let (max_bytes, max_envelopes) = (config.waku.pool.max_bytes, config.waku.pool.max_envelopes);
    let Ok(mut engine) = Engine::new(config, &Seed::from_u64(7), now) else {
        unreachable!("the fuzz configuration is valid")
    };
    engine.handle_timeout(now);
    let mut remotes: BTreeMap<ConnId, Remote> = BTreeMap::new();
    let mut dials: Vec<ConnId> = Vec::new();
    let mut closed: Vec<ConnId> = Vec::new();
    let mut s = Script::new(data);
    let mut steps = 0;
    loop {
        // The driver: carry the engine's outputs to the harness's peers.
        while let Some(o) = engine.poll_output() {
            match o {
                Output::Transmit { conn, data } => {
                    assert!(!closed.contains(&conn), "bytes after Close on {conn:?}");
                    if let Some(r) = remotes.get_mut(&conn) {
                        r.receive(&data);
                    }
                }
                Output::Dial { conn, .. } => {
                    reached.dials += 1;
                    if dials.len() < 16 {
                        dials.push(conn);
                    }
                    remotes.insert(
                        conn,
                        Remote::Outbound {
                            recv: vec![],
                            codec: None,
                        },
                    );
                }
                Output::Close { conn } => {
                    reached.closes += 1;
                    remotes.remove(&conn);
                    closed.push(conn);
                }
                Output::Event(Event::PeerConnected { dialect, .. }) => {
                    reached.connected += 1;
                    reached.waku_peers += usize::from(dialect.is_some());
                }
                _ => {}
            }
        }
        assert!(engine.connected_peers() <= MAX_PEERS, "peers within max_peers");
        let pool = engine.waku().pool();
        assert!(pool.bytes() <= max_bytes && pool.len() <= max_envelopes);
        if s.is_empty() || steps >= 96 {
            break;
        }
        steps += 1;
        let op = s.byte() % 11;
        let slot = s.byte();
        let conn = if slot % 8 < 4 {
            ConnId(u64::from(slot % 4))
        } else {
            match dials.get(usize::from(slot % 4)) {
                Some(c) => *c,
                None => continue,
            }
        };
        let r = match op {
            0 => {
                if remotes.contains_key(&conn) || conn.0 >= 4 {
                    continue;
                }
                closed.retain(|c| *c != conn);
                remotes.insert(conn, Remote::Inbound(None));
                // `Err` for an id the engine still holds is the driver's misuse, not a fault.
                if engine.handle_input(now, Input::Accepted { conn }).is_err() {
                    remotes.remove(&conn);
                }
                Ok(())
            }
            1 => engine.handle_input(
                now,
                Input::Received {
                    conn,
                    data: s.bytes(),
                },
            ),
            2 => {
                let format = if s.byte() % 4 == 0 {
                    HandshakeFormat::Legacy
                } else {
                    HandshakeFormat::Eip8
                };
                let Some(Remote::Inbound(peer)) = remotes.get_mut(&conn) else {
                    continue;
                };
                let Some((p, auth)) = RawPeer::cached(format) else {
                    continue;
                };
                *peer = Some(Box::new(p));
                engine.handle_input(now, Input::Received { conn, data: &auth })
            }
            3..=5 => {
                let frame = match op {
                    3 => s.bytes().to_vec(),
                    4 => {
                        let id = match remotes.get(&conn) {
                            Some(Remote::Inbound(Some(p))) => p.public_key(),
                            _ => keys().initiator_pub,
                        };
                        hello(&id, s.byte())
                    }
                    _ => {
                        let code = s.byte();
                        let body = s.bytes();
                        let mut f = vec![0x10 + code % 32];
                        f.extend_from_slice(&p2p::compress(body).unwrap_or_default());
                        f
                    }
                };
                let Some(bytes) = remotes.get_mut(&conn).map(|r| r.seal(&frame)) else {
                    continue;
                };
                engine.handle_input(now, Input::Received { conn, data: &bytes })
            }
            6 => {
                now += Duration::from_millis(u64::from(s.u16()) * 10);
                engine.handle_timeout(now);
                Ok(())
            }
            7 => {
                remotes.remove(&conn);
                engine.handle_input(now, Input::Closed { conn })
            }
            8 => {
                if !matches!(remotes.get(&conn), Some(Remote::Outbound { .. })) {
                    continue;
                }
                // A dial the engine already gave up on is unknown to it: misuse, not a fault.
                let _ = engine.handle_input(now, Input::Connected { conn });
                Ok(())
            }
            9 => {
                let legacy = s.byte() % 4 == 0;
                let Some(ack) = remotes.get_mut(&conn).map(|r| r.ack(legacy)) else {
                    continue;
                };
                engine.handle_input(now, Input::Received { conn, data: &ack })
            }
            _ => {
                if !matches!(remotes.get(&conn), Some(Remote::Outbound { codec: None, .. })) {
                    continue;
                }
                remotes.remove(&conn);
                let _ = engine.handle_input(now, Input::DialFailed { conn });
                Ok(())
            }
        };
        assert!(r.is_ok(), "socket inputs are never Err: {r:?}");
    }
    reached
}
