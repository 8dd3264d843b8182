//! DNS discovery in the public simulator: relays published in a signed EIP-1459 tree served from the
//! simulated zone (`sim::full::Zone`); a client that knows only the tree's URL finds and connects to
//! its target, then suspends discovery.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sim_common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use status_sansio::crypto::{secret_from_bytes, SecretKey};
use status_sansio::discovery::dnstree::entry_hash;
use status_sansio::discovery::{EnrBuilder, EnrTreeUrl, RootEntry};
use status_sansio::node::Event;
use status_sansio::sim::conn;
use status_sansio::sim::full::{FullNode, NodeEvent};
use status_sansio::sim::NodeId;

use sim_common::{lossy, Net};

const DOMAIN: &str = "nodes.example.org";

fn put(zone: &mut BTreeMap<String, Vec<String>>, text: String) -> String {
    let h = entry_hash(&text);
    zone.insert(format!("{h}.{DOMAIN}"), vec![text]);
    h
}

/// A tree of `nodes` (at most 13 of them: one branch) signed by `signer`, in a new zone.
fn publish(net: &Net, nodes: &[NodeId], signer: &SecretKey) -> (BTreeMap<String, Vec<String>>, EnrTreeUrl) {
    let mut zone = BTreeMap::new();
    let leaves: Vec<String> = nodes
        .iter()
        .map(|n| {
            let addr = conn::addr(*n);
            let IpAddr::V4(ip) = addr.ip() else { panic!("v4") };
            let enr = EnrBuilder::new()
                .seq(1)
                .ip4(ip)
                .tcp(addr.port())
                .sign(&net.node_key(*n))
                .unwrap();
            assert_eq!(enr.to_enode().unwrap(), net.enode(*n));
            put(&mut zone, enr.to_text())
        })
        .collect();
    let e = put(&mut zone, format!("enrtree-branch:{}", leaves.join(",")));
    let l = put(&mut zone, "enrtree-branch:".into());
    let root = RootEntry::sign(&e, &l, 1, signer).unwrap();
    zone.insert(DOMAIN.into(), vec![root.to_string()]);
    (zone, EnrTreeUrl::new(signer.public_key(), DOMAIN).unwrap())
}

#[test]
fn a_client_finds_its_peers_in_a_dns_tree() {
    let mut net = Net::new(sim_common::seed(41), lossy());
    let relays: Vec<NodeId> = (0..5).map(|_| net.relay(&[])).collect();
    let signer = secret_from_bytes(&[0x42; 32]).unwrap();
    let (zone, url) = publish(&net, &relays, &signer);
    let mut c = net.config(&[], true);
    c.target_peers = 3;
    c.dns_discovery = vec![url];
    let zone = Arc::new(zone);
    let client = net.add(|id, seed, now| FullNode::new(id, c, seed, now).with_zone(zone).boxed());
    net.run(30);
    assert_eq!(net.connected(client), 3);
    let suspended = net
        .sim
        .events()
        .iter()
        .any(|(_, n, e)| *n == client && matches!(e, NodeEvent::Engine(Event::DiscoverySuspended)));
    assert!(suspended);
    net.assert_healthy();
}
