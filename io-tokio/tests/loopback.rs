//! The tokio driver over real loopback TCP: a stream-driven pair, the spawned-task API, and the
//! `status-node demo` program end to end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use status_io_std::demo;
use status_io_tokio::{spawn, Command, RlpxStream};
use status_sansio::crypto::SecretKey;
use status_sansio::enode::Enode;
use status_sansio::rlpx::{Config, DisconnectReason, Event};
use status_sansio::Seed;
use tokio::net::TcpListener;

async fn next(h: &mut status_io_tokio::Handle) -> Option<Event> {
    tokio::time::timeout(Duration::from_secs(10), h.events.recv())
        .await
        .unwrap()
}

fn config(n: u64) -> Arc<Config> {
    Arc::new(Config::new(
        SecretKey::random(&mut Seed::from_u64(n).rng()),
        vec![demo::protocol()],
    ))
}

#[tokio::test]
async fn spawned_tasks_exchange_messages_and_disconnect() {
    let (ca, cb) = (config(1), config(2));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let enode = Enode::new(cb.public_key(), listener.local_addr().unwrap());
    let accept = tokio::spawn(async move { RlpxStream::accept(&listener, cb).await.unwrap() });
    let a = spawn(RlpxStream::connect(&enode, ca).await.unwrap(), 16);
    let b = spawn(accept.await.unwrap(), 16);
    let (mut a, mut b) = (a, b);
    assert!(matches!(next(&mut a).await, Some(Event::Connected { .. })));
    assert!(matches!(next(&mut b).await, Some(Event::Connected { .. })));
    for i in 0..20u8 {
        let payload = demo::encode_text(&format!("m{i}"));
        a.commands
            .send(Command::Send {
                capability: "test".into(),
                code: 3,
                payload,
            })
            .await
            .unwrap();
    }
    for i in 0..20u8 {
        match next(&mut b).await {
            Some(Event::Message { code: 3, payload, .. }) => {
                assert_eq!(demo::decode_text(&payload).unwrap(), format!("m{i}"))
            }
            e => panic!("{e:?}"),
        }
    }
    a.commands.send(Command::Ping).await.unwrap();
    assert!(matches!(next(&mut a).await, Some(Event::Pong { .. })));
    b.commands
        .send(Command::Disconnect(DisconnectReason::TooManyPeers))
        .await
        .unwrap();
    assert_eq!(
        next(&mut a).await,
        Some(Event::Disconnected {
            reason: DisconnectReason::TooManyPeers,
            remote: true,
            error: None
        })
    );
    assert_eq!(next(&mut a).await, None, "the task ends after the disconnect");
}

#[tokio::test]
async fn handshake_with_the_wrong_identity_fails() {
    // Dial bob's address while expecting carol's key: bob cannot open the auth, so nothing connects.
    let (ca, cb, cc) = (config(1), config(2), config(3));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = tokio::spawn(async move {
        let mut s = RlpxStream::accept(&listener, cb).await.unwrap();
        let mut evs = vec![];
        while let Some(e) = s.next_event().await.unwrap() {
            evs.push(e);
        }
        evs
    });
    let mut s = RlpxStream::connect_addr(addr, cc.public_key(), ca).await.unwrap();
    let mut evs = vec![];
    while let Some(e) = tokio::time::timeout(Duration::from_secs(10), s.next_event())
        .await
        .unwrap()
        .unwrap()
    {
        evs.push(e);
    }
    let server = accept.await.unwrap();
    assert!(!evs
        .iter()
        .chain(&server)
        .any(|e| matches!(e, Event::Connected { .. })));
    assert!(
        matches!(server.last(), Some(Event::Disconnected { error: Some(_), .. })),
        "{server:?}"
    );
}

#[test]
fn status_node_demo_succeeds() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_status-node"))
        .arg("demo")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "alice pong after",
        "echo: hello from alice",
        "echo: hello from carol",
        "echo: hello from erin",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in\n{stdout}");
    }
    assert_eq!(stdout.matches(" ok\n").count(), 3, "{stdout}");
}
