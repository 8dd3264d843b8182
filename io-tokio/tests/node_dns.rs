//! DNS discovery through the tokio driver over real loopback TCP: the engine's TXT lookups go to a
//! resolver (a fake one over a zone signed here, so no real DNS is involved), the answers come back, and the
//! node connects to the nodes the tree lists; at shutdown the peer cache file holds the good peers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use status_io_std::dns::load_peer_cache;
use status_io_std::os_seed;
use status_io_tokio::dns::{TxtFuture, TxtResolver};
use status_io_tokio::node::{spawn_node, spawn_node_with_options, NodeCommand, NodeHandle, NodeOptions};
use status_sansio::crypto::{pubkey_to_raw64, secret_from_bytes, SecretKey};
use status_sansio::discovery::dnstree::entry_hash;
use status_sansio::discovery::{EnrBuilder, EnrTreeUrl, RootEntry};
use status_sansio::node::{Engine, EngineConfig, Event};
use status_sansio::rlpx::{self, Protocol};
use status_sansio::Seed;
use tokio::net::TcpListener;

const DOMAIN: &str = "peers.example.org";

fn key(n: u64) -> SecretKey {
    SecretKey::random(&mut Seed::from_u64(n).rng())
}

fn rlpx_config(n: u64) -> Arc<rlpx::Config> {
    Arc::new(rlpx::Config::new(
        key(n),
        vec![Protocol::new("waku", 1, 128).unwrap()],
    ))
}

/// A resolver over a fixed zone that records what it was asked.
struct FakeResolver {
    zone: BTreeMap<String, Vec<String>>,
    asked: Mutex<Vec<String>>,
}

impl TxtResolver for FakeResolver {
    fn resolve_txt(&self, name: String) -> TxtFuture<'_> {
        Box::pin(async move {
            self.asked.lock().unwrap().push(name.clone());
            // Answer a little later, as a real resolver would.
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.zone
                .get(&name)
                .cloned()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "NXDOMAIN"))
        })
    }
}

fn put(zone: &mut BTreeMap<String, Vec<String>>, text: String) -> String {
    let h = entry_hash(&text);
    zone.insert(format!("{h}.{DOMAIN}"), vec![text]);
    h
}

/// A signed tree listing `nodes` (key seed, address).
fn tree(nodes: &[(u64, SocketAddr)]) -> (BTreeMap<String, Vec<String>>, EnrTreeUrl) {
    let mut zone = BTreeMap::new();
    let leaves: Vec<String> = nodes
        .iter()
        .map(|(n, addr)| {
            let IpAddr::V4(ip) = addr.ip() else { panic!("v4") };
            let enr = EnrBuilder::new().ip4(ip).tcp(addr.port()).sign(&key(*n)).unwrap();
            put(&mut zone, enr.to_text())
        })
        .collect();
    let e = put(&mut zone, format!("enrtree-branch:{}", leaves.join(",")));
    let l = put(&mut zone, "enrtree-branch:".into());
    let signer = secret_from_bytes(&[0x24; 32]).unwrap();
    let root = RootEntry::sign(&e, &l, 1, &signer).unwrap();
    zone.insert(DOMAIN.into(), vec![root.to_string()]);
    (zone, EnrTreeUrl::new(signer.public_key(), DOMAIN).unwrap())
}

async fn next_event(h: &mut NodeHandle, what: &str) -> Event {
    match tokio::time::timeout(Duration::from_secs(15), h.events.recv()).await {
        Ok(Some(e)) => e,
        Ok(None) => panic!("node stopped while waiting for {what}"),
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

#[tokio::test]
async fn txt_lookups_round_trip_through_the_driver_and_the_cache_is_saved() {
    let now = status_io_std::Clock::new().now();
    // Two relays listening on loopback.
    let mut relays = vec![];
    let mut listed = vec![];
    for n in [11u64, 12] {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listed.push((n, l.local_addr().unwrap()));
        let engine = Engine::new(EngineConfig::new(rlpx_config(n)), &os_seed(), now).unwrap();
        relays.push(spawn_node(engine, Some(l), 64));
    }
    // A name that does not exist in the zone is a failed lookup; the tree also lists a dead address.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    listed.push((13, dead));
    let (zone, url) = tree(&listed);
    let resolver = Arc::new(FakeResolver {
        zone,
        asked: Mutex::new(vec![]),
    });

    let dir = std::env::temp_dir().join(format!("status-node-dns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cache_file = status_io_std::dns::peer_cache_path(&dir);
    let _ = std::fs::remove_file(&cache_file);

    let mut cfg = EngineConfig::new(rlpx_config(10));
    cfg.target_peers = 2;
    cfg.dns_discovery = vec![url];
    cfg.stable_after = Duration::from_millis(300);
    let mut options = NodeOptions::new(256);
    options.resolver = resolver.clone();
    options.peer_cache_file = Some(cache_file.clone());
    let mut client = spawn_node_with_options(Engine::new(cfg, &os_seed(), now).unwrap(), None, options);

    let want: BTreeSet<[u8; 64]> = [11u64, 12]
        .iter()
        .map(|n| pubkey_to_raw64(&key(*n).public_key()))
        .collect();
    let mut got = BTreeSet::new();
    let mut seen = vec![];
    while got.len() < 2 {
        let e = next_event(&mut client, "connections to the listed relays").await;
        if let Event::PeerConnected { id, .. } = &e {
            got.insert(pubkey_to_raw64(id));
        }
        seen.push(e);
    }
    assert_eq!(got, want);
    assert!(seen.contains(&Event::DiscoveryResumed));
    let asked = resolver.asked.lock().unwrap().clone();
    assert_eq!(asked.first().map(String::as_str), Some(DOMAIN), "{asked:?}");
    // Root, both subtree roots and the three records.
    assert_eq!(asked.len(), 6, "{asked:?}");

    // Stay up past `stable_after`, then stop: the cache file holds both relays.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let exported = client.inspect(|e| e.export_peer_cache()).await.unwrap();
    client.commands.send(NodeCommand::Shutdown).await.unwrap();
    while client.events.recv().await.is_some() {}
    let saved = load_peer_cache(&cache_file)
        .unwrap()
        .expect("cache file written at shutdown");
    assert_eq!(saved, exported);
    let mut fresh = Engine::new(EngineConfig::new(rlpx_config(20)), &os_seed(), now).unwrap();
    assert_eq!(fresh.import_peer_cache(now, &saved).unwrap(), 2);
    let _ = std::fs::remove_dir_all(&dir);
    drop(relays);
}
