//! A Waku relay on the blocking driver: prints its `enode://` URL, keeps its static peers connected and
//! relays every envelope; prints peers as they come and go.
//!
//! `cargo run -p status-io-std --example std_relay -- [--port N] [--static-peer ENODE]...`

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use status_io_std::node::BlockingNode;
use status_io_std::{os_seed, Clock};
use status_sansio::crypto::SecretKey;
use status_sansio::enode::Enode;
use status_sansio::node::{Engine, EngineConfig, Event};
use status_sansio::rlpx::{self, Protocol};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut port = 0u16;
    let mut statics = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match (args[i].as_str(), args.get(i + 1)) {
            ("--port", Some(p)) => port = p.parse().map_err(std::io::Error::other)?,
            ("--static-peer", Some(e)) => statics.push(e.parse::<Enode>().map_err(std::io::Error::other)?),
            _ => {
                eprintln!("usage: std_relay [--port N] [--static-peer ENODE]...");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    let key = SecretKey::random(&mut os_seed().rng());
    let protocols = vec![
        Protocol::new("waku", 1, 128).unwrap_or_else(|| unreachable!()),
        Protocol::new("shh", 6, 128).unwrap_or_else(|| unreachable!()),
    ];
    let mut config = EngineConfig::new(Arc::new(rlpx::Config::new(key, protocols)));
    config.static_peers = statics;
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    println!("{}", Enode::new(config.rlpx.public_key(), listener.local_addr()?));
    let mut node = BlockingNode::new(
        Engine::new(config, &os_seed(), Clock::new().now()).map_err(std::io::Error::other)?,
        Some(listener),
    );
    loop {
        for e in node.step(Duration::from_secs(1)) {
            match e {
                Event::PeerConnected { client, dialect, .. } => {
                    println!("peer connected: {client} ({dialect:?})")
                }
                Event::PeerDisconnected { reason, .. } => println!("peer disconnected: {reason}"),
                _ => {}
            }
        }
    }
}
