//! `BlockingResolver` against a name server on loopback: TXT answers over UDP, a truncated UDP answer
//! retried over TCP, NXDOMAIN, stray datagrams ignored, a dead server skipped for the next one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::thread;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{RData, Record};
use status_io_std::dns::{BlockingResolver, TxtResolver};

/// The answer a zone gives to `query`: TXT records for known names, NXDOMAIN otherwise.
fn answer(query: &Message, zone: &[(&str, Vec<&str>)], truncate: bool) -> Message {
    let mut reply = Message::new();
    reply.set_id(query.id()).set_message_type(MessageType::Response);
    let Some(q) = query.query() else { return reply };
    reply.add_query(q.clone());
    match zone.iter().find(|(name, _)| q.name().to_ascii() == *name) {
        Some(_) if truncate => {
            reply.set_truncated(true);
        }
        Some((_, strings)) => {
            let txt = TXT::new(strings.iter().map(|s| s.to_string()).collect());
            reply.add_answer(Record::from_rdata(q.name().clone(), 60, RData::TXT(txt)));
        }
        None => {
            reply.set_response_code(ResponseCode::NXDomain);
        }
    }
    reply
}

/// A name server on loopback (UDP and TCP on the same port). With `truncate_udp` every UDP answer that
/// has records comes back truncated and empty, so the client must ask again over TCP. With `stray` a
/// datagram that answers another query is sent first.
fn serve(zone: Vec<(&'static str, Vec<&'static str>)>, truncate_udp: bool, stray: bool) -> SocketAddr {
    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let addr = udp.local_addr().expect("addr");
    let tcp = TcpListener::bind(addr).expect("bind tcp on the same port");
    let zone2 = zone.clone();
    thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = udp.recv_from(&mut buf) {
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            if stray {
                let mut other = answer(&query, &zone, false);
                other.set_id(query.id().wrapping_add(1));
                udp.send_to(&other.to_vec().expect("encode"), from).expect("send");
            }
            let reply = answer(&query, &zone, truncate_udp);
            udp.send_to(&reply.to_vec().expect("encode"), from).expect("send");
        }
    });
    thread::spawn(move || {
        for stream in tcp.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut len = [0u8; 2];
            if stream.read_exact(&mut len).is_err() {
                continue;
            }
            let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
            if stream.read_exact(&mut buf).is_err() {
                continue;
            }
            let Ok(query) = Message::from_vec(&buf) else {
                continue;
            };
            let reply = answer(&query, &zone2, false).to_vec().expect("encode");
            let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&reply);
            let _ = stream.write_all(&framed);
        }
    });
    addr
}

fn zone() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        (
            "nodes.example.org.",
            vec!["enrtree-root:v1 e=ABC l=DEF seq=1 ", "sig=xyz"],
        ),
        ("multi.example.org.", vec!["one"]),
    ]
}

#[test]
fn txt_over_udp_joins_each_records_strings() {
    let server = serve(zone(), false, false);
    let resolver = BlockingResolver::with_servers(vec![server]).timeout(Duration::from_secs(2));
    let texts = resolver.resolve_txt("nodes.example.org").expect("answer");
    assert_eq!(
        texts,
        vec!["enrtree-root:v1 e=ABC l=DEF seq=1 sig=xyz".to_string()]
    );
    // A fully qualified name is asked as is.
    assert_eq!(
        resolver.resolve_txt("multi.example.org.").expect("answer"),
        vec!["one".to_string()]
    );
}

#[test]
fn truncated_udp_answer_is_asked_again_over_tcp() {
    let server = serve(zone(), true, false);
    let resolver = BlockingResolver::with_servers(vec![server]).timeout(Duration::from_secs(2));
    let texts = resolver
        .resolve_txt("nodes.example.org")
        .expect("answer over tcp");
    assert_eq!(
        texts,
        vec!["enrtree-root:v1 e=ABC l=DEF seq=1 sig=xyz".to_string()]
    );
}

#[test]
fn nxdomain_is_not_found_and_stray_datagrams_are_ignored() {
    let server = serve(zone(), false, true);
    let resolver = BlockingResolver::with_servers(vec![server]).timeout(Duration::from_secs(2));
    let err = resolver
        .resolve_txt("missing.example.org")
        .expect_err("no such name");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    // The stray answer (another id) arrives first and is skipped.
    assert_eq!(
        resolver.resolve_txt("multi.example.org").expect("answer"),
        vec!["one".to_string()]
    );
}

#[test]
fn a_silent_server_is_skipped_for_the_next() {
    // A bound socket that never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let good = serve(zone(), false, false);
    let resolver = BlockingResolver::with_servers(vec![silent.local_addr().expect("addr"), good])
        .timeout(Duration::from_millis(200));
    assert_eq!(
        resolver.resolve_txt("multi.example.org").expect("answer"),
        vec!["one".to_string()]
    );
    let none = BlockingResolver::with_servers(vec![]);
    assert!(none.resolve_txt("multi.example.org").is_err());
}
