#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Peer management in the node engine (docs/protocol/status-client.md "Discovery and peers"): a node that
//! knows only an EIP-1459 tree (served by the in-memory network from a tree signed here) discovers and
//! connects to its target, suspends discovery there, resumes it and replaces a peer that goes away; a restart
//! with the exported cache reconnects to the cached peers without any lookup; static peers are always kept; a
//! flood of candidates stays bounded. Virtual clock, seeded: every run is the same.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::engine_net::{rlpx_config, Net};
use status_sansio::crypto::{pubkey_to_raw64, secret_from_bytes, SecretKey};
use status_sansio::discovery::dnstree::entry_hash;
use status_sansio::discovery::{EnrBuilder, EnrTreeUrl, RootEntry};
use status_sansio::enode::Enode;
use status_sansio::node::{Engine, EngineConfig, Event, Input};
use status_sansio::node::{MAX_PEER_CANDIDATES as MAX_CANDIDATES, PEER_CACHE_SIZE as CACHE_SIZE};
use status_sansio::{Seed, Timestamp};

const DOMAIN: &str = "nodes.example.org";

/// The secret key of host `i` of the network (as `Net::new` makes it).
fn host_key(i: usize) -> SecretKey {
    SecretKey::random(&mut Seed::from_u64(500 + i as u64).rng())
}

fn tree_key() -> SecretKey {
    secret_from_bytes(&[0x42; 32]).unwrap()
}

fn put(zone: &mut BTreeMap<String, Vec<String>>, text: String) -> String {
    let h = entry_hash(&text);
    zone.insert(format!("{h}.{DOMAIN}"), vec![text]);
    h
}

/// Publish (or re-publish with a higher `seq`) a tree whose records are the hosts `nodes`, at most 13
/// children per branch as go-ethereum's tree builder does. Returns the tree's URL.
fn publish(net: &mut Net, seq: u64, nodes: &[usize]) -> EnrTreeUrl {
    let mut leaves = Vec::new();
    for &i in nodes {
        let addr = net.hosts[i].addr;
        let IpAddr::V4(ip) = addr.ip() else { panic!("v4") };
        let enr = EnrBuilder::new()
            .seq(1)
            .ip4(ip)
            .tcp(addr.port())
            .sign(&host_key(i))
            .unwrap();
        assert_eq!(enr.to_enode().unwrap(), net.hosts[i].enode);
        leaves.push(put(&mut net.zone, enr.to_text()));
    }
    let mut level = leaves;
    let e = loop {
        if level.len() == 1 {
            break level.remove(0);
        }
        level = level
            .chunks(13)
            .map(|c| put(&mut net.zone, format!("enrtree-branch:{}", c.join(","))))
            .collect();
    };
    let l = put(&mut net.zone, "enrtree-branch:".into());
    let root = RootEntry::sign(&e, &l, seq, &tree_key()).unwrap();
    net.zone.insert(DOMAIN.into(), vec![root.to_string()]);
    EnrTreeUrl::new(tree_key().public_key(), DOMAIN).unwrap()
}

fn url() -> EnrTreeUrl {
    EnrTreeUrl::new(tree_key().public_key(), DOMAIN).unwrap()
}

/// A network of `n` hosts; host 0 looks for `target` peers in the tree, the others only accept.
fn network(n: usize, target: usize) -> Net {
    Net::new(n, |i, _| {
        let mut c = EngineConfig::new(rlpx_config(0));
        if i == 0 {
            c.target_peers = target;
            c.dns_discovery = vec![url()];
        }
        c
    })
}

/// The peers host `i` is connected to now (from its events), as raw keys.
fn connected(net: &Net, i: usize) -> BTreeSet<[u8; 64]> {
    let mut by_conn = BTreeMap::new();
    for e in &net.hosts[i].events {
        match e {
            Event::PeerConnected { conn, id, .. } => {
                by_conn.insert(*conn, pubkey_to_raw64(id));
            }
            Event::PeerDisconnected { conn, .. } => {
                by_conn.remove(conn);
            }
            _ => {}
        }
    }
    by_conn.into_values().collect()
}

fn key_of(net: &Net, i: usize) -> [u8; 64] {
    pubkey_to_raw64(&net.hosts[i].enode.id)
}

fn count(net: &Net, i: usize, what: &Event) -> usize {
    net.hosts[i].events.iter().filter(|e| *e == what).count()
}

#[test]
fn dns_discovery_fills_the_target_then_suspends() {
    let mut net = network(7, 3);
    // The tree lists the node itself too: it is never dialled.
    publish(&mut net, 1, &[0, 1, 2, 3, 4, 5, 6]);
    net.run(Duration::from_secs(20));

    let h = &net.hosts[0];
    assert_eq!(h.engine.connected_peers(), 3);
    assert_eq!(connected(&net, 0).len(), 3);
    assert_eq!(h.dials.len(), 3, "one dial per peer, no more");
    assert!(!h.dialled.contains(&h.addr));
    // The whole tree was walked: root, link subtree, branch and 7 records.
    assert_eq!(h.lookups.len(), 10, "{:?}", h.lookups);
    assert_eq!(h.engine.peer_candidates(), 6);
    assert_eq!(count(&net, 0, &Event::DiscoveryResumed), 1);
    assert_eq!(count(&net, 0, &Event::DiscoverySuspended), 1);
    assert!(!h.engine.discovery_running());
    let resumed = h
        .events
        .iter()
        .position(|e| *e == Event::DiscoveryResumed)
        .unwrap();
    let suspended = h
        .events
        .iter()
        .position(|e| *e == Event::DiscoverySuspended)
        .unwrap();
    assert!(resumed < suspended);

    // Suspended: hours pass (several resync intervals) without a lookup or a dial.
    let lookups = net.hosts[0].lookups.len();
    net.run(Duration::from_secs(3 * 3600));
    assert_eq!(net.hosts[0].lookups.len(), lookups);
    assert_eq!(net.hosts[0].dials.len(), 3);
    assert_eq!(net.hosts[0].engine.connected_peers(), 3);
}

#[test]
fn a_peer_that_goes_away_is_replaced_from_the_candidates() {
    let mut net = network(6, 3);
    publish(&mut net, 1, &[1, 2, 3, 4, 5]);
    net.run(Duration::from_secs(60));
    let before = connected(&net, 0);
    assert_eq!(before.len(), 3);
    let victim = (1..6).find(|&i| before.contains(&key_of(&net, i))).unwrap();
    let lookups = net.hosts[0].lookups.len();

    net.kill(victim);
    net.run(Duration::from_secs(10));
    let after = connected(&net, 0);
    assert_eq!(after.len(), 3, "back at the target");
    assert!(!after.contains(&key_of(&net, victim)));
    assert_eq!(after.intersection(&before).count(), 2);
    // An idle candidate was enough: no lookup.
    assert_eq!(net.hosts[0].lookups.len(), lookups);
}

#[test]
fn discovery_resumes_when_a_peer_goes_and_no_candidate_is_left() {
    let mut net = network(6, 3);
    publish(&mut net, 1, &[1, 2, 3]);
    net.run(Duration::from_secs(60));
    assert_eq!(connected(&net, 0).len(), 3);
    assert_eq!(count(&net, 0, &Event::DiscoverySuspended), 1);
    // The publisher adds hosts 4 and 5; a suspended node does not look.
    publish(&mut net, 2, &[1, 2, 3, 4, 5]);
    let lookups = net.hosts[0].lookups.len();
    net.run(Duration::from_secs(3600));
    assert_eq!(net.hosts[0].lookups.len(), lookups);

    let resumed_at = net.now;
    net.kill(2);
    net.run(Duration::from_secs(30));
    let h = &net.hosts[0];
    assert_eq!(count(&net, 0, &Event::DiscoveryResumed), 2);
    assert_eq!(count(&net, 0, &Event::DiscoverySuspended), 2);
    assert!(h.lookups.iter().any(|(t, n)| *t >= resumed_at && n == DOMAIN));
    let now = connected(&net, 0);
    assert_eq!(now.len(), 3);
    assert!(!now.contains(&key_of(&net, 2)));
    assert!(now.contains(&key_of(&net, 4)) || now.contains(&key_of(&net, 5)));
}

#[test]
fn a_restart_with_the_cache_reconnects_without_discovery() {
    let mut net = network(7, 3);
    publish(&mut net, 1, &[1, 2, 3, 4, 5, 6]);
    net.run(Duration::from_secs(20));
    // Not yet up for `stable_after` (30 s): nothing is cached.
    assert_eq!(net.hosts[0].engine.peer_cache_len(), 0);
    net.run(Duration::from_secs(20));
    assert_eq!(net.hosts[0].engine.peer_cache_len(), 3);
    let good = connected(&net, 0);
    let cache = net.hosts[0].engine.export_peer_cache();

    net.kill(0);
    net.run(Duration::from_secs(5));
    let events = net.hosts[0].events.len();
    let lookups = net.hosts[0].lookups.len();
    let dials = net.hosts[0].dials.len();
    let mut cfg = EngineConfig::new(rlpx_config(500));
    cfg.target_peers = 3;
    cfg.dns_discovery = vec![url()];
    cfg.peer_cache = Some(cache.clone());
    let engine = Engine::new(cfg, &Seed::from_u64(77), net.now).unwrap();
    assert_eq!(engine.peer_cache_len(), 3);
    net.revive(0, engine);
    net.run(Duration::from_secs(20));

    let h = &net.hosts[0];
    assert_eq!(connected(&net, 0).len(), 3);
    assert_eq!(h.engine.connected_peers(), 3);
    let reconnected: BTreeSet<[u8; 64]> = {
        let mut s = BTreeSet::new();
        for e in &h.events[events..] {
            if let Event::PeerConnected { id, .. } = e {
                s.insert(pubkey_to_raw64(id));
            }
        }
        s
    };
    assert_eq!(reconnected, good, "the cached peers, and only them");
    assert_eq!(h.dials.len() - dials, 3);
    assert_eq!(h.lookups.len(), lookups, "no DNS lookup at all");
    assert!(!h.events[events..].contains(&Event::DiscoveryResumed));

    // The same cache exported again round-trips.
    net.run(Duration::from_secs(60));
    let again = net.hosts[0].engine.export_peer_cache();
    let mut fresh = Engine::new(EngineConfig::new(rlpx_config(1)), &Seed::from_u64(1), net.now).unwrap();
    assert_eq!(fresh.import_peer_cache(net.now, &again).unwrap(), 3);
}

#[test]
fn static_peers_are_kept_past_the_target_and_count_towards_it() {
    // Host 0: target 2, one static peer (host 1), a tree with hosts 1..5.
    let mut net = Net::new(6, |i, enodes| {
        let mut c = EngineConfig::new(rlpx_config(0));
        if i == 0 {
            c.target_peers = 2;
            c.static_peers = vec![enodes[1].clone()];
            c.dns_discovery = vec![url()];
        }
        c
    });
    publish(&mut net, 1, &[1, 2, 3, 4, 5]);
    net.run(Duration::from_secs(20));
    let peers = connected(&net, 0);
    assert_eq!(peers.len(), 2);
    assert!(peers.contains(&key_of(&net, 1)));
    assert_eq!(net.hosts[0].dials.len(), 2);
    assert_eq!(
        net.hosts[0].engine.peer_candidates(),
        4,
        "the static peer is not a candidate"
    );

    // Target 1 with two static peers: both are kept, nothing is discovered or dialled besides them.
    let mut net = Net::new(6, |i, enodes| {
        let mut c = EngineConfig::new(rlpx_config(0));
        if i == 0 {
            c.target_peers = 1;
            c.static_peers = vec![enodes[1].clone(), enodes[2].clone()];
            c.dns_discovery = vec![url()];
        }
        c
    });
    publish(&mut net, 1, &[3, 4, 5]);
    net.run(Duration::from_secs(20));
    let statics: BTreeSet<_> = [key_of(&net, 1), key_of(&net, 2)].into();
    assert_eq!(connected(&net, 0), statics);
    assert!(net.hosts[0].lookups.is_empty());
    let addrs: BTreeSet<SocketAddr> = net.hosts[0].dialled.iter().copied().collect();
    assert_eq!(addrs, [net.hosts[1].addr, net.hosts[2].addr].into());

    // A static peer that goes away is redialled until it is back, even though the target is met.
    net.kill(1);
    net.run(Duration::from_secs(30));
    assert_eq!(connected(&net, 0).len(), 1);
    assert!(net.hosts[0].dials.len() > 3);
    let fresh = Engine::new(EngineConfig::new(rlpx_config(501)), &Seed::from_u64(5), net.now).unwrap();
    net.revive(1, fresh);
    net.run(Duration::from_secs(60));
    assert_eq!(connected(&net, 0), statics);
    assert!(net.hosts[0].lookups.is_empty());
}

#[test]
fn a_flood_of_candidates_stays_bounded_and_dead_ones_are_dropped() {
    let mut net = network(4, 3);
    // A warm cache of the three live hosts... is made by a first run.
    publish(&mut net, 1, &[1, 2, 3]);
    net.run(Duration::from_secs(40));
    assert_eq!(net.hosts[0].engine.peer_cache_len(), 3);
    let live = connected(&net, 0);

    // ...then thousands of candidates that lead nowhere arrive.
    let mut rng = Seed::from_u64(3).rng();
    for n in 0..2000u32 {
        let key = SecretKey::random(&mut rng).public_key();
        let addr = SocketAddr::from(([192, 168, (n >> 8) as u8, n as u8], 30303));
        net.input(0, Input::AddPeerCandidate(Enode::new(key, addr)));
        assert!(net.hosts[0].engine.peer_candidates() <= MAX_CANDIDATES);
    }
    assert_eq!(net.hosts[0].engine.peer_candidates(), MAX_CANDIDATES);
    assert_eq!(
        net.hosts[0].engine.peer_cache_len(),
        3,
        "cached peers are never evicted"
    );
    assert_eq!(connected(&net, 0), live);
    let dials = net.hosts[0].dials.len();

    // Peers fail over and over: with the target met, no flood candidate is even tried.
    net.run(Duration::from_secs(600));
    assert_eq!(net.hosts[0].dials.len(), dials);

    // Take the live peers away: the node works through the flood, a few dials at a time, and forgets
    // candidates that keep failing.
    for i in 1..4 {
        net.kill(i);
    }
    let start = net.hosts[0].dials.len();
    let mut t = Duration::ZERO;
    while t < Duration::from_secs(3600) {
        net.run(Duration::from_secs(5));
        t += Duration::from_secs(5);
        assert!(net.hosts[0].engine.peer_candidates() <= MAX_CANDIDATES);
        assert!(net.hosts[0].engine.peer_cache_len() <= CACHE_SIZE);
    }
    let h = &net.hosts[0];
    assert!(h.dials.len() > start + 100, "{} dials", h.dials.len() - start);
    assert!(
        h.engine.peer_candidates() < MAX_CANDIDATES,
        "dead candidates are forgotten: {}",
        h.engine.peer_candidates()
    );
    // Never more than `target` dials in the same instant burst window of one second.
    let mut per_ms: BTreeMap<u64, usize> = BTreeMap::new();
    for d in &h.dials[start..] {
        *per_ms.entry(d.as_millis()).or_default() += 1;
    }
    assert!(per_ms.values().all(|&n| n <= 3), "at most target dials at once");
}

#[test]
fn peer_caches_that_are_not_caches_are_refused() {
    let now = Timestamp::from_secs(1_700_000_000);
    let mut e = Engine::new(EngineConfig::new(rlpx_config(9)), &Seed::from_u64(9), now).unwrap();
    assert!(e.import_peer_cache(now, b"").is_err());
    assert!(
        e.import_peer_cache(now, &[0xc2, 0x02, 0xc0]).is_err(),
        "unknown version"
    );
    assert!(e.import_peer_cache(now, &vec![0u8; 20_000]).is_err(), "too large");
    assert_eq!(e.import_peer_cache(now, &[0xc2, 0x01, 0xc0]).unwrap(), 0);
    // A config with a broken cache (garbled, or of another version) is refused with a typed error
    // (issue 11: it was silently ignored before).
    for broken in [vec![1, 2, 3], vec![0xc2, 0x02, 0xc0]] {
        let mut cfg = EngineConfig::new(rlpx_config(9));
        cfg.peer_cache = Some(broken);
        assert!(matches!(
            Engine::new(cfg, &Seed::from_u64(9), now),
            Err(status_sansio::Error::Node(
                status_sansio::node::NodeError::PeerCache(_)
            ))
        ));
    }
}

#[test]
fn runs_are_reproducible_from_the_seed() {
    let run = || {
        let mut net = network(8, 3);
        publish(&mut net, 1, &[1, 2, 3, 4, 5, 6, 7]);
        net.run(Duration::from_secs(30));
        net.kill(1);
        net.kill(2);
        net.run(Duration::from_secs(60));
        let h = &net.hosts[0];
        (
            h.dials.clone(),
            h.dialled.clone(),
            h.lookups.clone(),
            connected(&net, 0),
        )
    };
    let a = run();
    assert_eq!(a, run());
    assert_eq!(a.3.len(), 3);
}
