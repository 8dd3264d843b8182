//! Async RLPx listener: prints its `enode://` URL, then serves each connection in its own task, answering
//! every text message on `test/1` with an echo.
//!
//! `cargo run -p status-io-tokio --example tokio_listener -- [--port N] [--key HEX] [--once]`

use std::sync::Arc;

use status_io_std::{demo, os_seed};
use status_io_tokio::RlpxStream;
use status_sansio::crypto::SecretKey;
use status_sansio::enode::Enode;
use status_sansio::rlpx::{Config, Event};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let port: u16 = arg("--port").and_then(|p| p.parse().ok()).unwrap_or(0);
    let key = match arg("--key") {
        Some(k) => demo::parse_key(&k).ok_or_else(|| std::io::Error::other("--key: 64 hex characters"))?,
        None => SecretKey::random(&mut os_seed().rng()),
    };
    let once = args.iter().any(|a| a == "--once");
    let config = Arc::new(Config::new(key, vec![demo::protocol()]));
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("{}", Enode::new(config.public_key(), listener.local_addr()?));
    loop {
        let mut peer = RlpxStream::accept(&listener, config.clone()).await?;
        let task = tokio::spawn(async move {
            while let Some(event) = peer.next_event().await? {
                match event {
                    Event::Connected { hello, .. } => {
                        println!("connected: {} (p2p v{})", hello.client_id, hello.protocol_version)
                    }
                    Event::Message {
                        code: demo::TEXT,
                        payload,
                        ..
                    } => {
                        let text = demo::decode_text(&payload).unwrap_or_default();
                        println!("received: {text}");
                        peer.send("test", demo::TEXT, &demo::encode_text(&format!("echo: {text}")))
                            .await?;
                    }
                    Event::Message { code, .. } => println!("received code {code}"),
                    Event::Pong { rtt } => println!("pong after {rtt:?}"),
                    Event::Disconnected { reason, remote, .. } => println!(
                        "disconnected: {reason} (by {})",
                        if remote { "peer" } else { "us" }
                    ),
                    _ => {}
                }
            }
            Ok::<_, std::io::Error>(())
        });
        if once {
            return task.await.map_err(std::io::Error::other)?;
        }
    }
}
