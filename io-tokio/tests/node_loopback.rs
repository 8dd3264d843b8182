//! The node engine on the tokio driver over real loopback TCP: a relay and two clients that have it as
//! their static peer; a public-chat message from one client reaches the other through the relay.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use status_io_std::os_seed;
use status_io_tokio::node::{spawn_node, NodeHandle};
use status_sansio::crypto::SecretKey;
use status_sansio::enode::Enode;
use status_sansio::node::{Engine, EngineConfig, Event};
use status_sansio::rlpx::{self, Protocol};
use status_sansio::waku::message::{NewMessage, PostKey};
use status_sansio::waku::{self, status, Filter};
use status_sansio::Seed;
use tokio::net::TcpListener;

fn rlpx_config(n: u64) -> Arc<rlpx::Config> {
    let key = SecretKey::random(&mut Seed::from_u64(n).rng());
    Arc::new(rlpx::Config::new(
        key,
        vec![Protocol::new("waku", 1, 128).unwrap()],
    ))
}

async fn wait_for(h: &mut NodeHandle, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match tokio::time::timeout_at(deadline, h.events.recv()).await {
            Ok(Some(e)) if pred(&e) => return e,
            Ok(Some(_)) => {}
            Ok(None) => panic!("node stopped while waiting for {what}"),
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

#[tokio::test]
async fn two_clients_chat_through_a_relay_over_tcp() {
    let now = status_io_std::Clock::new().now();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_cfg = EngineConfig::new(rlpx_config(1));
    let relay_enode = Enode::new(relay_cfg.rlpx.public_key(), listener.local_addr().unwrap());
    let mut relay = spawn_node(
        Engine::new(relay_cfg, &os_seed(), now).unwrap(),
        Some(listener),
        256,
    );

    let client = |n| {
        let mut c = EngineConfig::new(rlpx_config(n));
        c.static_peers = vec![relay_enode.clone()];
        spawn_node(Engine::new(c, &os_seed(), now).unwrap(), None, 256)
    };
    let (mut a, mut b) = (client(2), client(3));
    for h in [&mut a, &mut b] {
        wait_for(h, "connection to the relay", |e| {
            matches!(e, Event::PeerConnected { .. })
        })
        .await;
    }
    wait_for(&mut relay, "first client", |e| {
        matches!(e, Event::PeerConnected { .. })
    })
    .await;
    wait_for(&mut relay, "second client", |e| {
        matches!(e, Event::PeerConnected { .. })
    })
    .await;

    let chat = "tcp-loopback";
    let filter = Filter::symmetric(
        vec![status::public_chat_topic(chat)],
        *status::public_chat_key(chat),
    );
    b.subscribe(filter).await.unwrap().unwrap();
    let signer = SecretKey::random(&mut Seed::from_u64(9).rng());
    a.waku(waku::Input::Post(Box::new(NewMessage {
        topic: status::public_chat_topic(chat),
        payload: b"over real sockets".to_vec(),
        key: PostKey::Symmetric(status::public_chat_key(chat)),
        signer: Some(signer.clone()),
        ttl: 20,
        pow_target: 0.002,
        padding: None,
    })))
    .await
    .unwrap();
    let got = wait_for(&mut b, "the message", |e| {
        matches!(e, Event::Waku(waku::Event::Message(_)))
    })
    .await;
    match got {
        Event::Waku(waku::Event::Message(m)) => {
            assert_eq!(&m.payload[..], b"over real sockets");
            assert_eq!(m.sender, Some(signer.public_key()));
        }
        e => panic!("{e:?}"),
    }
}

/// A socket the engine closed is closed for good, not only for writing: a peer that keeps its end open
/// and goes on sending must not keep a reader task and a descriptor alive in the node (a flood of such
/// peers would exhaust the descriptors).
#[tokio::test]
async fn a_closed_connection_is_fully_closed_even_if_the_peer_keeps_sending() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let now = status_io_std::Clock::new().now();
    let engine = Engine::new(EngineConfig::new(rlpx_config(41)), &os_seed(), now).unwrap();
    let node = spawn_node(engine, Some(listener), 64);
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    // An EIP-8 auth of 64 bytes that does not decrypt: the handshake fails and the engine closes.
    let mut junk = vec![0u8, 64];
    junk.extend_from_slice(&[7u8; 64]);
    s.write_all(&junk).await.unwrap();
    let mut buf = [0u8; 256];
    let eof = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(eof.is_ok(), "the node never closed the failed connection");
    // Keep writing: once the node's side is fully closed, the kernel answers with a reset.
    let mut refused = false;
    for _ in 0..40 {
        if s.write_all(b"still here").await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "the node still reads a connection it closed");
    drop(node);
}

#[tokio::test]
async fn shutdown_tells_peers_the_client_is_quitting() {
    let now = status_io_std::Clock::new().now();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_cfg = EngineConfig::new(rlpx_config(31));
    let relay_enode = Enode::new(relay_cfg.rlpx.public_key(), listener.local_addr().unwrap());
    let mut relay = spawn_node(
        Engine::new(relay_cfg, &os_seed(), now).unwrap(),
        Some(listener),
        256,
    );
    let mut c = EngineConfig::new(rlpx_config(32));
    c.static_peers = vec![relay_enode];
    let mut client = spawn_node(Engine::new(c, &os_seed(), now).unwrap(), None, 256);
    wait_for(&mut client, "connection", |e| {
        matches!(e, Event::PeerConnected { .. })
    })
    .await;
    wait_for(&mut relay, "the client", |e| {
        matches!(e, Event::PeerConnected { .. })
    })
    .await;
    client.shutdown().await.unwrap();
    let e = wait_for(&mut relay, "the client's goodbye", |e| {
        matches!(e, Event::PeerDisconnected { .. })
    })
    .await;
    assert!(
        matches!(
            e,
            Event::PeerDisconnected {
                reason: status_sansio::rlpx::DisconnectReason::ClientQuitting,
                remote: true,
                ..
            }
        ),
        "{e:?}"
    );
}

/// Events go to the application with `try_send`: an application that never reads its (tiny) queue loses
/// events, counted, while the node goes on connecting peers and answering commands.
#[tokio::test]
async fn a_slow_application_loses_counted_events_but_never_stalls_the_node() {
    let now = status_io_std::Clock::new().now();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_cfg = EngineConfig::new(rlpx_config(51));
    let relay_enode = Enode::new(relay_cfg.rlpx.public_key(), listener.local_addr().unwrap());
    // A queue of one event that is never read.
    let relay = spawn_node(
        Engine::new(relay_cfg, &os_seed(), now).unwrap(),
        Some(listener),
        1,
    );
    let client = |n| {
        let mut c = EngineConfig::new(rlpx_config(n));
        c.static_peers = vec![relay_enode.clone()];
        spawn_node(Engine::new(c, &os_seed(), now).unwrap(), None, 256)
    };
    let (mut a, mut b) = (client(52), client(53));
    for h in [&mut a, &mut b] {
        wait_for(h, "connection to the relay", |e| {
            matches!(e, Event::PeerConnected { .. })
        })
        .await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let peers = tokio::time::timeout(Duration::from_secs(5), relay.peers())
            .await
            .expect("the relay answers commands while its application sleeps")
            .unwrap();
        if peers.iter().filter(|p| p.id.is_some()).count() == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{peers:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(relay.dropped_events() >= 1, "{}", relay.dropped_events());
    assert_eq!(a.dropped_events(), 0);
}
