//! Async RLPx dialer: connects to an `enode://` URL, completes the handshake and Hello, pings, sends a
//! text message on `test/1`, waits for the echo and disconnects cleanly. Exits non-zero if any step fails.
//!
//! `cargo run -p status-io-tokio --example tokio_dialer -- ENODE [--key HEX]`

use std::sync::Arc;

use status_io_std::{demo, os_seed};
use status_io_tokio::RlpxStream;
use status_sansio::crypto::SecretKey;
use status_sansio::enode::Enode;
use status_sansio::rlpx::{Config, DisconnectReason, Event};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(enode) = args.first().and_then(|a| a.parse::<Enode>().ok()) else {
        eprintln!("usage: dialer enode://ID@IP:PORT [--key HEX]");
        std::process::exit(2);
    };
    let key = match args
        .iter()
        .position(|a| a == "--key")
        .and_then(|i| args.get(i + 1))
    {
        Some(k) => demo::parse_key(k).ok_or_else(|| std::io::Error::other("--key: 64 hex characters"))?,
        None => SecretKey::random(&mut os_seed().rng()),
    };
    let config = Arc::new(Config::new(key, vec![demo::protocol()]));
    let mut peer = RlpxStream::connect(&enode, config).await?;
    let (mut ponged, mut echoed) = (false, false);
    while let Some(event) = peer.next_event().await? {
        match event {
            Event::Connected { hello, .. } => {
                println!("connected: {} (p2p v{})", hello.client_id, hello.protocol_version);
                peer.ping().await?;
            }
            Event::Pong { rtt } => {
                println!("pong after {rtt:?}");
                ponged = true;
                peer.send(
                    "test",
                    demo::TEXT,
                    &demo::encode_text("hello from the tokio dialer"),
                )
                .await?;
            }
            Event::Message {
                code: demo::TEXT,
                payload,
                ..
            } => {
                println!("received: {}", demo::decode_text(&payload).unwrap_or_default());
                echoed = true;
                peer.disconnect(DisconnectReason::Requested).await?;
            }
            Event::Message { code, .. } => println!("received code {code}"),
            Event::Disconnected { reason, remote, .. } => println!(
                "disconnected: {reason} (by {})",
                if remote { "peer" } else { "us" }
            ),
            _ => {}
        }
    }
    if !(ponged && echoed) {
        eprintln!("dialer: did not complete ping and echo");
        std::process::exit(1);
    }
    Ok(())
}
