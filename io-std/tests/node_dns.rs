//! DNS discovery through the blocking driver over real loopback TCP: the engine's TXT lookups go to a
//! resolver (a fake one over a zone signed here: no real DNS), the answers come back, and the node
//! connects to the relay the tree lists; dropping the node writes its peer cache file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use status_io_std::dns::{load_peer_cache, peer_cache_path, TxtResolver};
use status_io_std::node::BlockingNode;
use status_io_std::os_seed;
use status_sansio::crypto::{secret_from_bytes, SecretKey};
use status_sansio::discovery::dnstree::entry_hash;
use status_sansio::discovery::{EnrBuilder, EnrTreeUrl, RootEntry};
use status_sansio::node::{Engine, EngineConfig, Event};
use status_sansio::rlpx::{self, Protocol};
use status_sansio::Seed;

const DOMAIN: &str = "blocking.example.org";

fn key(n: u64) -> SecretKey {
    SecretKey::random(&mut Seed::from_u64(n).rng())
}

fn config(n: u64) -> EngineConfig {
    EngineConfig::new(Arc::new(rlpx::Config::new(
        key(n),
        vec![Protocol::new("waku", 1, 128).unwrap()],
    )))
}

struct FakeResolver {
    zone: BTreeMap<String, Vec<String>>,
    asked: Mutex<Vec<String>>,
}

impl TxtResolver for FakeResolver {
    fn resolve_txt(&self, name: &str) -> io::Result<Vec<String>> {
        self.asked.lock().unwrap().push(name.to_string());
        self.zone
            .get(name)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "NXDOMAIN"))
    }
}

fn put(zone: &mut BTreeMap<String, Vec<String>>, text: String) -> String {
    let h = entry_hash(&text);
    zone.insert(format!("{h}.{DOMAIN}"), vec![text]);
    h
}

#[test]
fn txt_lookups_round_trip_through_the_blocking_driver() {
    let now = status_io_std::Clock::new().now();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut relay = BlockingNode::new(Engine::new(config(31), &os_seed(), now).unwrap(), Some(listener));
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let relay_thread = std::thread::spawn(move || {
        while !stop2.load(Ordering::Relaxed) {
            relay.step(Duration::from_millis(20));
        }
    });

    let mut zone = BTreeMap::new();
    let IpAddr::V4(ip) = addr.ip() else { panic!("v4") };
    let enr = EnrBuilder::new().ip4(ip).tcp(addr.port()).sign(&key(31)).unwrap();
    let leaf = put(&mut zone, enr.to_text());
    let links = put(&mut zone, "enrtree-branch:".into());
    let signer = secret_from_bytes(&[0x31; 32]).unwrap();
    zone.insert(
        DOMAIN.into(),
        vec![RootEntry::sign(&leaf, &links, 7, &signer).unwrap().to_string()],
    );
    let resolver = Arc::new(FakeResolver {
        zone,
        asked: Mutex::new(vec![]),
    });

    let dir = std::env::temp_dir().join(format!("status-std-dns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cache_file = peer_cache_path(&dir);
    let _ = std::fs::remove_file(&cache_file);

    let mut c = config(30);
    c.target_peers = 1;
    c.dns_discovery = vec![EnrTreeUrl::new(signer.public_key(), DOMAIN).unwrap()];
    c.stable_after = Duration::from_millis(200);
    let mut client = BlockingNode::new(Engine::new(c, &os_seed(), now).unwrap(), None)
        .with_resolver(resolver.clone())
        .with_peer_cache_file(cache_file.clone());
    let (ok, events) = client.run_until(Duration::from_secs(15), |e| {
        matches!(e, Event::PeerConnected { .. })
    });
    assert!(ok, "{events:?}");
    assert!(events.contains(&Event::DiscoveryResumed));
    let mut asked = resolver.asked.lock().unwrap().clone();
    assert_eq!(asked.first().map(String::as_str), Some(DOMAIN));
    asked.sort();
    let mut want = vec![
        DOMAIN.to_string(),
        format!("{links}.{DOMAIN}"),
        format!("{leaf}.{DOMAIN}"),
    ];
    want.sort();
    assert_eq!(asked, want);
    // Stay up past `stable_after`; dropping the node writes the cache.
    client.run_until(Duration::from_millis(500), |_| false);
    assert_eq!(client.engine().peer_cache_len(), 1);
    drop(client);
    let saved = load_peer_cache(&cache_file)
        .unwrap()
        .expect("cache written on drop");
    let mut fresh = Engine::new(config(40), &os_seed(), now).unwrap();
    assert_eq!(fresh.import_peer_cache(now, &saved).unwrap(), 1);

    stop.store(true, Ordering::Relaxed);
    relay_thread.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
