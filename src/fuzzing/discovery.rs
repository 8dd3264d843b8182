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
/// (one record, a link back to `a.example`). Built once per process (it takes eight signatures).
fn zone() -> Option<&'static Zone> {
    static ZONE: std::sync::OnceLock<Option<Zone>> = std::sync::OnceLock::new();
    ZONE.get_or_init(build_zone).as_ref()
}

fn build_zone() -> Option<Zone> {
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
    dns_client_script(data);
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
        assert!(c.handle_input(now, input).is_ok(), "an answer is never misuse");
    }
    found
}

/// Import arbitrary bytes as a peer cache into a [`PeerPool`](crate::discovery::PeerPool) set up as
/// the engine sets it up (one target, our own key known). Whatever imports stays within
/// [`CACHE_SIZE`](crate::discovery::peerpool::CACHE_SIZE) cached peers, and its export imports into a
/// fresh pool that exports the same bytes.
pub fn discovery_peer_cache(data: &[u8]) {
    use crate::discovery::peerpool::{PeerPool, PeerPoolConfig, CACHE_SIZE, MAX_CACHE_BYTES};
    let now = Timestamp::from_secs(1_700_000_000);
    // Our own key: cache entries with it are skipped on import.
    let own = crate::crypto::SecretKey::from_slice(&[0x42; 32])
        .map(|k| k.public_key())
        .ok();
    let Some(own) = own else { return };
    let config = PeerPoolConfig {
        min_relays: 3,
        max_relays: 3,
        mailserver: false,
        close_excess: false,
        local: Some(crate::discovery::NodeId::from_public_key(&own)),
        ..PeerPoolConfig::default()
    };
    let Ok(mut p) = PeerPool::new(config.clone(), &Seed([1; 32]), now) else {
        return;
    };
    if p.import_cache(now, data).is_ok() {
        assert!(p.cache_len() <= CACHE_SIZE);
        let out = p.export_cache();
        assert!(out.len() <= MAX_CACHE_BYTES);
        let Ok(mut q) = PeerPool::new(config, &Seed([2; 32]), now) else {
            unreachable!("the same configuration")
        };
        assert!(q.import_cache(now, &out).is_ok());
        assert_eq!(q.cache_len(), p.cache_len());
        assert_eq!(q.export_cache(), out);
    }
}

/// Parse arbitrary text as an `enode://` URL and as an `enr:` record. Whatever parses prints to text that
/// parses to the same value; an enode prints canonically (lower-case hex, no surrounding space) and a
/// record's `enode://` form parses back to the same identity and endpoint.
pub fn discovery_enode(data: &[u8]) {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    if let Ok(e) = text.parse::<Enode>() {
        let printed = e.to_string();
        assert_eq!(printed.parse::<Enode>().as_ref(), Ok(&e), "{text:?} -> {printed}");
        assert_eq!(
            printed.parse::<Enode>().map(|p| p.to_string()),
            Ok(printed.clone())
        );
        assert!(
            printed.len() <= text.trim().len() + 2,
            "printing does not grow the URL"
        );
    }
    if let Ok(enr) = Enr::from_text(text) {
        assert_eq!(enr.to_text(), text);
        if let Some(e) = enr.to_enode() {
            assert_eq!(e.to_string().parse::<Enode>().as_ref(), Ok(&e));
            assert_eq!(&e.id, enr.public_key());
        }
    }
}

/// The public keys of the [`discovery_peerpool`] peers, built once per process.
fn pool_keys() -> &'static [crate::crypto::PublicKey] {
    static KEYS: std::sync::OnceLock<Vec<crate::crypto::PublicKey>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| (1..=12u8).filter_map(key).map(|k| k.public_key()).collect())
}

/// Small caps so the fuzzer reaches them.
pub fn fuzz_peerpool_config() -> crate::discovery::peerpool::PeerPoolConfig {
    crate::discovery::peerpool::PeerPoolConfig {
        min_relays: 1,
        max_relays: 2,
        mailserver: true,
        max_candidates: 6,
        cache_size: 3,
        dial_timeout: Duration::from_secs(10),
        backoff_initial: Duration::from_secs(2),
        backoff_max: Duration::from_secs(60),
        max_dial_failures: 3,
        stable_after: Duration::from_secs(20),
        ..crate::discovery::peerpool::PeerPoolConfig::default()
    }
}

/// What a [`discovery_peerpool`] run reached, for the corpus test.
#[derive(Debug, Default, Clone, Copy)]
pub struct PoolReached {
    /// Dials the pool asked for.
    pub dials: usize,
    /// Most relays connected at once.
    pub max_relays: usize,
    /// A mailserver was connected at some point.
    pub mailserver: bool,
    /// A cache import succeeded.
    pub imported: bool,
}

/// The PeerPool driven by a script (a [`Script`](super::script::Script)) of discovery results,
/// connections (dialled or inbound), disconnections, failed dials, time and cache imports, over 12 fixed
/// peers. Opcodes (`% 7`): 0 discovered (peer byte, kind byte, port `u16`), 1 connected (peer), 2
/// disconnected (peer), 3 dial failed (peer), 4 time passes (`u16` × 100 ms), 5 the pending dials all
/// connect, 6 a cache import (bytes; or, on an empty string, the pool's own export).
///
/// The harness is the driver: it carries out `Disconnect` at once. Oracle: no panic; after each step
/// relays connected ≤ `max_relays`, mailservers connected ≤ 1 and dialing ≤ 1, candidates ≤
/// `max_candidates`, cache ≤ `cache_size`; every dial is for a discovered peer (or any, after an import), and never for
/// one already connected; an export imports into a fresh pool that exports the same bytes.
pub fn discovery_peerpool(data: &[u8]) -> PoolReached {
    use crate::discovery::enr::NodeId;
    use crate::discovery::peerpool::{Input as PoolInput, Output as PoolOutput, PeerKind, PeerPool};
    use std::collections::BTreeSet;
    let mut reached = PoolReached::default();
    let config = fuzz_peerpool_config();
    let start = Timestamp::from_secs(1_700_000_000);
    let Ok(mut pool) = PeerPool::new(config.clone(), &Seed([3; 32]), start) else {
        return reached;
    };
    let keys = pool_keys();
    let ids: Vec<NodeId> = keys.iter().map(NodeId::from_public_key).collect();
    let mut now = start;
    let mut s = super::script::Script::new(data);
    let mut known: BTreeSet<NodeId> = BTreeSet::new();
    let mut connected: BTreeSet<NodeId> = BTreeSet::new();
    let mut pending: Vec<NodeId> = Vec::new();
    pool.handle_timeout(now);
    let mut steps = 0;
    loop {
        while let Some(o) = pool.poll_output() {
            match o {
                PoolOutput::Dial { enode, .. } => {
                    let id = NodeId::from_public_key(&enode.id);
                    assert!(
                        reached.imported || known.contains(&id),
                        "a dial for a peer never discovered"
                    );
                    assert!(!connected.contains(&id), "a dial for a connected peer");
                    reached.dials += 1;
                    pending.push(id);
                }
                PoolOutput::Disconnect { id } => {
                    connected.remove(&id);
                    let input = PoolInput::Disconnected { id };
                    assert!(pool.handle_input(now, input).is_ok(), "never misuse");
                }
                PoolOutput::DialTimedOut { id } => pending.retain(|p| *p != id),
                _ => {}
            }
        }
        let relays = pool.connected(PeerKind::Relay);
        assert!(relays <= config.max_relays, "{relays} relays connected");
        assert!(pool.connected(PeerKind::Mailserver) <= 1);
        assert!(pool.dialing(PeerKind::Mailserver) <= 1);
        assert!(pool.candidate_count() <= config.max_candidates);
        assert!(pool.cache_len() <= config.cache_size);
        reached.max_relays = reached.max_relays.max(relays);
        reached.mailserver |= pool.connected(PeerKind::Mailserver) > 0;
        if s.is_empty() || steps >= 128 {
            break;
        }
        steps += 1;
        let op = s.byte() % 7;
        let i = usize::from(s.byte()) % keys.len();
        let id = ids[i];
        match op {
            0 => {
                let kind = if s.byte() % 3 == 0 {
                    PeerKind::Mailserver
                } else {
                    PeerKind::Relay
                };
                let port = s.u16();
                let enode = Enode::new(
                    keys[i],
                    std::net::SocketAddr::new(Ipv4Addr::new(10, 1, 0, i as u8).into(), port),
                );
                known.insert(id);
                assert!(pool
                    .handle_input(now, PoolInput::Discovered { enode, kind })
                    .is_ok());
            }
            1 => {
                connected.insert(id);
                let useful = true;
                assert!(pool
                    .handle_input(now, PoolInput::Connected { id, useful })
                    .is_ok());
            }
            2 => {
                connected.remove(&id);
                assert!(pool.handle_input(now, PoolInput::Disconnected { id }).is_ok());
            }
            3 => assert!(pool.handle_input(now, PoolInput::DialFailed { id }).is_ok()),
            4 => {
                now += Duration::from_millis(u64::from(s.u16()) * 100);
                pool.handle_timeout(now);
            }
            5 => {
                // Each socket connects, then its handshake completes.
                for id in pending.drain(..) {
                    connected.insert(id);
                    assert!(pool.handle_input(now, PoolInput::Reached { id }).is_ok());
                    let useful = true;
                    assert!(pool
                        .handle_input(now, PoolInput::Connected { id, useful })
                        .is_ok());
                }
            }
            _ => {
                let bytes = s.bytes();
                let bytes = if bytes.is_empty() {
                    pool.export_cache()
                } else {
                    bytes.to_vec()
                };
                if pool.import_cache(now, &bytes).is_ok() {
                    // Imported peers are dialable too, whoever they are.
                    reached.imported = true;
                }
            }
        }
    }
    let out = pool.export_cache();
    if let Ok(mut fresh) = PeerPool::new(config, &Seed([5; 32]), now) {
        assert!(fresh.import_cache(now, &out).is_ok(), "an export imports");
        assert_eq!(fresh.export_cache(), out, "export, import, export is stable");
    }
    reached
}
