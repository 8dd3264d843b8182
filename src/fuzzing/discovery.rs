//! Discovery fuzz targets: the ENR decoder, the DNS tree entry parsers, and a DNS tree client fed a
//! script of answers (true, corrupted, unknown, failed, late) by the fuzzer.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use arbitrary::Unstructured;
use core::time::Duration;

use crate::crypto::{secret_from_bytes, SecretKey};
use crate::discovery::dnstree::{
    decode_hash, entry_hash, hash_matches, DnsConfig, DnsTreeClient, EnrTreeUrl, Entry, Input, Output,
    RootEntry,
};
use crate::discovery::enr::{Enr, MAX_RECORD_SIZE};
use crate::enode::Enode;
use crate::rng::Seed;
use crate::time::Timestamp;

/// Decode arbitrary bytes as an ENR (RLP and text forms). Whatever decodes re-encodes to the same bytes
/// and the same text, and its `enode://` URL (if any) parses back to itself.
pub fn discovery_enr(data: &[u8]) {
    if let Ok(enr) = Enr::decode(data) {
        assert_eq!(enr.encode(), data);
        assert!(data.len() <= MAX_RECORD_SIZE);
        let text = enr.to_text();
        assert!(Enr::from_text(&text).ok().as_ref() == Some(&enr));
        let _ = (
            enr.ip4(),
            enr.ip6(),
            enr.tcp(),
            enr.udp(),
            enr.tcp6(),
            enr.udp6(),
            enr.node_id(),
        );
        if let Some(e) = enr.to_enode() {
            assert!(e.to_string().parse::<Enode>().ok().as_ref() == Some(&e));
            assert_eq!(&e.id, enr.public_key());
        }
    }
    if let Ok(s) = core::str::from_utf8(data) {
        if let Ok(enr) = Enr::from_text(s) {
            assert_eq!(enr.to_text(), s);
        }
    }
}

/// Parse arbitrary text as every EIP-1459 entry form. Whatever parses prints to text that parses to the
/// same value (byte-identical for branches and records, which have one text form).
pub fn discovery_dns_entry(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();
    if let Ok(e) = Entry::parse(text) {
        let printed = e.to_string();
        assert!(Entry::parse(&printed).ok().as_ref() == Some(&e));
        match &e {
            Entry::Branch(_) | Entry::Enr(_) => assert_eq!(printed, text),
            Entry::Link(_) => {}
        }
    }
    if let Ok(r) = RootEntry::parse(text) {
        let printed = r.to_string();
        assert!(RootEntry::parse(&printed).ok().as_ref() == Some(&r));
        if let Some(k) = key(1) {
            let _ = r.verify(&k.public_key());
        }
    }
    if let Ok(u) = text.parse::<EnrTreeUrl>() {
        assert!(u.to_string().parse::<EnrTreeUrl>().ok().as_ref() == Some(&u));
    }
    if decode_hash(text).is_ok() {
        let _ = hash_matches(text, text);
    }
}

struct Zone {
    records: BTreeMap<String, String>,
    url: EnrTreeUrl,
}

fn key(n: u8) -> Option<SecretKey> {
    secret_from_bytes(&[n; 32])
}

fn put(z: &mut BTreeMap<String, String>, domain: &str, text: String) -> String {
    let h = entry_hash(&text);
    z.insert(format!("{h}.{domain}"), text);
    h
}

/// A small valid zone: tree `a.example` (three records, a link to `b.example`) and tree `b.example`
/// (one record, a link back to `a.example`).
fn zone() -> Option<Zone> {
    let ka = key(1)?;
    let kb = key(2)?;
    let mut z = BTreeMap::new();
    let url_a = EnrTreeUrl::new(ka.public_key(), "a.example").ok()?;
    let url_b = EnrTreeUrl::new(kb.public_key(), "b.example").ok()?;
    for (domain, k, n, link) in [("a.example", &ka, 3u8, &url_b), ("b.example", &kb, 1, &url_a)] {
        let mut leaves = Vec::new();
        for i in 0..n {
            let enr = crate::discovery::EnrBuilder::new()
                .ip4(Ipv4Addr::new(10, 0, n, i))
                .tcp(443)
                .sign(&key(10 + n + i)?)
                .ok()?;
            leaves.push(put(&mut z, domain, enr.to_text()));
        }
        let e = put(&mut z, domain, format!("enrtree-branch:{}", leaves.join(",")));
        let l = put(&mut z, domain, link.to_string());
        let root = RootEntry::sign(&e, &l, 1, k).ok()?;
        z.insert(domain.to_string(), root.to_string());
    }
    Some(Zone {
        records: z,
        url: url_a,
    })
}

/// A DNS tree client driven by a fuzzer-chosen script: each outstanding query gets the true record, a
/// corrupted one, an unknown record, a failure, or nothing (time then advances). The client never
/// panics, stays within its caps, and only reports records that verify.
pub fn discovery_dns_client(data: &[u8]) {
    let _ = dns_client_script(data);
}

/// The body of [`discovery_dns_client`]; returns how many records the client reported, so the corpus
/// test can check the script reaches deep into the trees.
pub fn dns_client_script(data: &[u8]) -> usize {
    let mut found = 0;
    let Some(zone) = zone() else { return 0 };
    let mut u = Unstructured::new(data);
    let config = DnsConfig {
        max_in_flight: 3,
        max_entries_per_tree: 8,
        max_trees: 2,
        ..DnsConfig::default()
    };
    let Ok(mut c) = DnsTreeClient::new(config.clone(), std::slice::from_ref(&zone.url), &Seed([5; 32]))
    else {
        return 0;
    };
    let mut now = Timestamp::from_secs(1_700_000_000);
    c.handle_timeout(now);
    let mut pending: Vec<String> = Vec::new();
    for _ in 0..200 {
        while let Some(o) = c.poll_output() {
            match o {
                Output::Resolve { name } => pending.push(name),
                Output::Event(crate::discovery::dnstree::Event::Node(n)) => {
                    assert!(Enr::from_text(&n.to_text()).is_ok());
                    found += 1;
                }
                Output::Event(_) => {}
            }
        }
        assert!(c.in_flight() <= config.max_in_flight);
        assert!(c.tree_count() <= config.max_trees);
        if u.is_empty() {
            break;
        }
        let op = u.int_in_range(0..=6u8).unwrap_or(0);
        if pending.is_empty() || op == 6 {
            let step = u.int_in_range(0..=3_600_000u64).unwrap_or(0);
            now += Duration::from_millis(step);
            c.handle_timeout(now);
            continue;
        }
        let i = usize::from(u.arbitrary::<u8>().unwrap_or(0)) % pending.len();
        let name = pending.swap_remove(i);
        let truth = zone.records.get(&name).cloned();
        let input = match (op, truth) {
            (0 | 1, Some(t)) => Input::TxtRecords { name, texts: vec![t] },
            (2, Some(t)) => {
                let mut b = t.into_bytes();
                if !b.is_empty() {
                    let j = usize::from(u.arbitrary::<u8>().unwrap_or(0)) % b.len();
                    b[j] ^= u.arbitrary::<u8>().unwrap_or(1) | 1;
                }
                Input::TxtRecord {
                    name,
                    text: String::from_utf8_lossy(&b).into_owned(),
                }
            }
            (3, _) => {
                let text: String = u.arbitrary().unwrap_or_default();
                Input::TxtRecords {
                    name,
                    texts: vec![text],
                }
            }
            (4, Some(t)) => Input::TxtRecords {
                name,
                texts: vec!["v=spf1 -all".into(), t],
            },
            _ => Input::ResolveFailed { name },
        };
        c.handle_input(now, input);
    }
    found
}

/// Import arbitrary bytes as the engine's peer cache (`node::peers`). Whatever imports stays within
/// [`CACHE_SIZE`](crate::node::peers::CACHE_SIZE) cached peers, and its export imports into a fresh
/// manager that exports the same bytes.
pub fn discovery_peer_cache(data: &[u8]) {
    use crate::node::peers::{Peers, PeersConfig, CACHE_SIZE, MAX_CACHE_BYTES};
    let config = PeersConfig {
        target: 3,
        reconnect_min: Duration::from_secs(1),
        reconnect_max: Duration::from_secs(120),
        stable_after: Duration::from_secs(30),
    };
    let now = Timestamp::from_secs(1_700_000_000);
    // Our own key: cache entries with it are skipped on import.
    let own = crate::crypto::SecretKey::from_slice(&[0x42; 32])
        .map(|k| k.public_key())
        .ok();
    let Some(own) = own else { return };
    let mut p = Peers::new(now, config, &[]);
    if p.import_cache(now, data, &own).is_ok() {
        assert!(p.cache_len() <= CACHE_SIZE);
        let out = p.export_cache();
        assert!(out.len() <= MAX_CACHE_BYTES);
        let mut q = Peers::new(now, config, &[]);
        assert!(q.import_cache(now, &out, &own).is_ok());
        assert_eq!(q.cache_len(), p.cache_len());
        assert_eq!(q.export_cache(), out);
    }
}
