//! The fuzz targets by name, and the seeds the harnesses can generate themselves (real protocol output:
//! handshake plaintexts, scripts that complete handshakes and fill pools, exported states).
//!
//! `tests/fuzz_corpus_seeds.rs` adds the seeds taken from the recorded vectors and writes the committed
//! corpus `fuzz/corpus/TARGET/` (`FUZZ_WRITE_CORPUS=1 cargo test -p status-sansio --test
//! fuzz_corpus_seeds`); without the variable it runs every target over the committed corpus.

use super::script::ScriptWriter;
use super::{chat, discovery, mailserver, mvds, node, rlpx, secure, waku};
use crate::rlpx::handshake::{self, HandshakeFormat};
use crate::rng::Seed;

/// A fuzz target: its name (the binary in `fuzz/`) and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every fuzz target, by the name of its binary in `fuzz/fuzz_targets/`.
pub const TARGETS: &[Target] = &[
    ("chat_membership", chat::chat_membership),
    ("chat_message", chat::chat_message),
    ("chat_messenger", |d| {
        chat::chat_messenger(d);
    }),
    ("chat_messenger_import", |d| {
        chat::chat_messenger_import(d);
    }),
    ("chat_metadata", chat::chat_metadata),
    ("discovery_dns_client", discovery::discovery_dns_client),
    ("discovery_dns_entry", discovery::discovery_dns_entry),
    ("discovery_enode", discovery::discovery_enode),
    ("discovery_enr", discovery::discovery_enr),
    ("discovery_peer_cache", discovery::discovery_peer_cache),
    ("discovery_peerpool", |d| {
        discovery::discovery_peerpool(d);
    }),
    ("mailserver_client", mailserver::mailserver_client),
    ("mailserver_request", mailserver::mailserver_request),
    ("mvds_node", mvds::mvds_node),
    ("mvds_payload", mvds::mvds_payload),
    ("node_engine", |d| {
        node::node_engine(d);
    }),
    ("rlpx_ack", rlpx::rlpx_ack),
    ("rlpx_auth", rlpx::rlpx_auth),
    ("rlpx_connection", |d| {
        rlpx::rlpx_connection(d);
    }),
    ("rlpx_frame", rlpx::rlpx_frame),
    ("rlpx_hello", rlpx::rlpx_hello),
    ("rlpx_initiator", |d| {
        rlpx::rlpx_initiator(d);
    }),
    ("secure_bundle", secure::secure_bundle),
    ("secure_decrypt", secure::secure_decrypt),
    ("secure_machine", secure::secure_machine),
    ("waku_envelope", waku::waku_envelope),
    ("waku_message", waku::waku_message),
    ("waku_node", |d| {
        waku::waku_node(d);
    }),
    ("waku_status", waku::waku_status),
];

fn with_mode(mode: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![mode];
    v.extend_from_slice(body);
    v
}

/// Handshake packets for the RLPx targets' keys: `(auth, ack)` in both formats.
fn handshake_packets() -> Vec<(Vec<u8>, Vec<u8>)> {
    let k = rlpx::keys();
    let mut rng = Seed::from_u64(61).rng();
    let mut out = Vec::new();
    for format in [HandshakeFormat::Eip8, HandshakeFormat::Legacy] {
        let auth = handshake::encode_auth(
            &mut rng,
            &k.initiator,
            &k.initiator_pub,
            &k.ephemeral,
            &[1; 32],
            &k.recipient_pub,
            format,
        );
        let ack = handshake::encode_ack(&mut rng, &k.ephemeral, &[2; 32], &k.initiator_pub, format);
        if let Ok(auth) = auth {
            out.push((auth, ack));
        }
    }
    out
}

fn handshake_seeds(auth: bool) -> Vec<Vec<u8>> {
    let k = rlpx::keys();
    let secret = if auth { &k.recipient } else { &k.initiator };
    let mut out = Vec::new();
    for (i, (a, b)) in handshake_packets().into_iter().enumerate() {
        let packet = if auth { a } else { b };
        if let Some(pt) = rlpx::open_handshake(secret, &packet) {
            // EIP-8 bodies in modes 1 and 2, the legacy body in mode 3.
            if i == 0 {
                out.push(with_mode(1, &pt));
                out.push(with_mode(2, &pt));
            } else {
                out.push(with_mode(3, &pt));
            }
        }
        out.push(with_mode(0, &packet));
    }
    out
}

/// A Snappy-compressed Hello-less session script for [`rlpx::rlpx_initiator`]: the ack (mode, body,
/// chunk), then the recipient's Hello, messages, a ping, time and a close.
fn initiator_seeds() -> Vec<Vec<u8>> {
    let k = rlpx::keys();
    let mut out = Vec::new();
    let ack_pt = handshake_packets()
        .first()
        .and_then(|(_, ack)| rlpx::open_handshake(&k.initiator, ack))
        .unwrap_or_default();
    for (mode, body, chunk) in [
        (0u8, &[][..], 255u8),
        (1, &[][..], 7),
        (2, &ack_pt[..], 255),
        (3, &ack_pt[..], 255),
        (4, &[0u8; 40][..], 3),
    ] {
        let mut w = ScriptWriter::new();
        w.byte(mode).bytes(body).byte(chunk);
        // Hello (v5, shared), two messages, a Send, a Ping, a second, a close.
        w.byte(2).byte(5).byte(0);
        w.byte(3).byte(1).bytes(b"\xc3\x01\x02\x03");
        w.byte(3).byte(9).bytes(&[0x80; 16]);
        w.byte(5).byte(2).bytes(b"\xc1\x80");
        w.byte(7);
        w.byte(4).u16(20);
        w.byte(1).bytes(&[0x01, 0xc1, 0x10]);
        w.byte(6);
        out.push(w.finish());
    }
    // Only a valid ack and then silence past the Hello deadline.
    out.push(
        ScriptWriter::new()
            .byte(0)
            .bytes(&[])
            .byte(255)
            .byte(4)
            .u16(200)
            .finish(),
    );
    out
}

/// Scripts for [`waku::waku_node`]: peers connect (waku/1 and shh/6), exchange Status, and send sealed
/// envelopes (symmetric, asymmetric, signed, to other topics, expired) in Messages and P2P packets.
fn waku_node_seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (peer, shh) in [(0u8, 1u8), (1, 0)] {
        let mut w = ScriptWriter::new();
        w.byte(0).byte(peer).byte(shh);
        w.byte(2).byte(peer);
        for (op, flags, ttl, payload) in [
            (7u8, 0u8, 20u8, &b"hello"[..]),
            (7, 0x21, 50, b"signed hello"),
            (7, 0x12, 10, b"to the asymmetric filter"),
            (7, 0x03, 30, b"another topic"),
            (7, 0x40, 30, b"expired"),
        ] {
            w.byte(op).byte(peer).byte(0).byte(flags).byte(ttl).bytes(payload);
        }
        w.byte(5).byte(peer);
        w.byte(8).byte(peer).byte(1);
        w.byte(0x01)
            .byte(0x20)
            .byte(0x10)
            .bytes(b"p2p one")
            .byte(0)
            .byte(40)
            .bytes(b"p2p two");
        w.byte(4).byte(0).u16(40);
        w.byte(6).byte(0);
        w.byte(1).byte(peer).byte(22).bytes(&[0xc0]);
        w.byte(4).byte(0).u16(3000);
        w.byte(3).byte(peer);
        out.push(w.finish());
    }
    out
}

/// Scripts for [`node::node_engine`]: an inbound peer completes the handshake, Hello (waku/1) and
/// Status; the static peer is dialled, acked and greeted; sockets close and time passes.
fn node_engine_seeds() -> Vec<Vec<u8>> {
    let status = crate::waku::WakuNode::new(crate::waku::WakuConfig::default(), &Seed::from_u64(2))
        .unwrap_or_else(|_| unreachable!("the default config is valid"))
        .local_options()
        .encode();
    let mut out = Vec::new();
    for legacy in [1u8, 0] {
        let mut w = ScriptWriter::new();
        // Inbound socket 0: accept, auth, Hello, Status.
        w.byte(0).byte(0);
        w.byte(2).byte(0).byte(legacy);
        w.byte(4).byte(0).byte(legacy * 2);
        w.byte(5).byte(0).byte(0).bytes(&status);
        // The dial of the static peer: connects, gets an ack, Hello, Status.
        w.byte(8).byte(4);
        w.byte(9).byte(4).byte(legacy);
        w.byte(4).byte(4).byte(0);
        w.byte(5).byte(4).byte(0).bytes(&status);
        w.byte(6).byte(0).u16(100);
        // A second inbound socket with the same identity (refused as already connected), raw noise on
        // a third, then closes and time.
        w.byte(0).byte(1).byte(2).byte(1).byte(1);
        w.byte(0).byte(2).byte(1).byte(2).bytes(&[0x04; 40]);
        w.byte(7).byte(0);
        w.byte(6).byte(0).u16(1000);
        w.byte(10).byte(5);
        out.push(w.finish());
    }
    out
}

fn peerpool_seeds() -> Vec<Vec<u8>> {
    let mut w = ScriptWriter::new();
    for i in 0..8u8 {
        w.byte(0).byte(i).byte(i % 3).u16(30303);
    }
    w.byte(5).byte(0);
    w.byte(1).byte(9);
    w.byte(2).byte(0);
    w.byte(3).byte(1);
    w.byte(4).byte(0).u16(600);
    w.byte(5).byte(0);
    w.byte(6).byte(0).bytes(&[]);
    w.byte(4).byte(0).u16(6000);
    let a = w.finish();
    // A restart: a cache import first.
    let b = ScriptWriter::new()
        .byte(6)
        .byte(0)
        .bytes(&[])
        .byte(4)
        .byte(0)
        .u16(10)
        .byte(5)
        .byte(0)
        .finish();
    vec![a, b]
}

fn enode_seeds() -> Vec<Vec<u8>> {
    let k = rlpx::keys();
    let id = crate::crypto::pubkey_to_raw64(&k.initiator_pub);
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let mut out = vec![
        format!("enode://{hex}@127.0.0.1:30303").into_bytes(),
        format!("enode://{hex}@[::1]:30303?discport=30301").into_bytes(),
        format!(" enode://{}@10.0.0.1:1 ", hex.to_uppercase()).into_bytes(),
    ];
    let enr = crate::discovery::EnrBuilder::new()
        .ip4(std::net::Ipv4Addr::new(10, 0, 0, 1))
        .tcp(30303)
        .udp(30301)
        .sign(&k.initiator);
    if let Ok(e) = enr {
        out.push(e.to_text().into_bytes());
    }
    out
}

fn mailserver_request_seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for mode in [1u8, 2] {
        // The whole window, topics 0 and 1, limit 3, no cursor; then a page after the second envelope.
        let mut w = ScriptWriter::new();
        w.byte(mode);
        w.u16(200)
            .u16(300)
            .byte(3)
            .byte(2)
            .byte(0)
            .byte(1)
            .byte(0)
            .byte(0);
        w.u16(200).u16(0).byte(0).byte(1).byte(2).byte(1).byte(2);
        out.push(w.finish());
        // By bloom only, continuing after the third envelope.
        let mut w = ScriptWriter::new();
        w.byte(mode);
        w.u16(195).u16(205).byte(5).byte(1).byte(1).byte(3).byte(3);
        out.push(w.finish());
    }
    out
}

fn messenger_seed_script() -> Vec<u8> {
    let record = |w: &mut ScriptWriter, mode: u8, tag: u8, bytes: &[u8]| {
        w.byte(mode).byte(tag).bytes(bytes);
    };
    let mut w = ScriptWriter::new();
    for p in chat::messenger_seed_plaintexts() {
        record(&mut w, 0, 1, &p);
    }
    record(&mut w, 2, 0, &[]);
    record(&mut w, 1, 1, &[1, 3, 3, 1, 1, 6, 0, 1, 9]);
    record(&mut w, 1, 2, &[2, 2, 2, 1]);
    w.finish()
}

/// The seeds a target's harness generates (empty for targets whose seeds all come from vectors).
pub fn generated(target: &str) -> Vec<Vec<u8>> {
    match target {
        "rlpx_auth" => handshake_seeds(true),
        "rlpx_ack" => handshake_seeds(false),
        "rlpx_initiator" => initiator_seeds(),
        "waku_node" => waku_node_seeds(),
        "node_engine" => node_engine_seeds(),
        "discovery_peerpool" => peerpool_seeds(),
        "discovery_enode" => enode_seeds(),
        "mailserver_request" => mailserver_request_seeds(),
        "chat_messenger" => vec![messenger_seed_script()],
        "chat_messenger_import" => vec![
            chat::messenger_state_after(&messenger_seed_script()),
            chat::messenger_state_after(&[]),
        ],
        _ => vec![],
    }
}
