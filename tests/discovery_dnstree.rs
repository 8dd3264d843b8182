#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The EIP-1459 client driven by a fake resolver: self-signed trees built here (entry hashes from
//! `entry_hash`, itself checked against the published EIP-1459 hashes in `discovery_vectors.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use status_sansio::crypto::{secret_from_bytes, SecretKey};
use status_sansio::discovery::dnstree::{entry_hash, Event, Input, Output};
use status_sansio::discovery::{DnsConfig, DnsTreeClient, Enr, EnrBuilder, EnrTreeUrl, RootEntry, TreeError};
use status_sansio::{Seed, Timestamp};

type Zone = BTreeMap<String, String>;

fn key(n: u32) -> SecretKey {
    let mut b = [7u8; 32];
    b[..4].copy_from_slice(&n.to_be_bytes());
    secret_from_bytes(&b).unwrap()
}

fn enrs(from: u32, n: u32) -> Vec<Enr> {
    (from..from + n)
        .map(|i| {
            EnrBuilder::new()
                .seq(1)
                .ip4(Ipv4Addr::from(0x0a00_0000 + i))
                .tcp(443)
                .sign(&key(1000 + i))
                .unwrap()
        })
        .collect()
}

fn put(zone: &mut Zone, domain: &str, text: String) -> String {
    let h = entry_hash(&text);
    zone.insert(format!("{h}.{domain}"), text);
    h
}

/// A subtree over `leaves` with at most 13 children per branch, as go-ethereum's MakeTree builds.
fn subtree(zone: &mut Zone, domain: &str, leaves: Vec<String>) -> String {
    let mut level: Vec<String> = leaves.into_iter().map(|t| put(zone, domain, t)).collect();
    if level.len() == 1 {
        return level.remove(0);
    }
    loop {
        let next: Vec<String> = level
            .chunks(13)
            .map(|c| put(zone, domain, format!("enrtree-branch:{}", c.join(","))))
            .collect();
        if next.len() == 1 {
            return next.into_iter().next().unwrap();
        }
        level = next;
    }
}

fn make_tree(
    zone: &mut Zone,
    domain: &str,
    sk: &SecretKey,
    seq: u64,
    nodes: &[Enr],
    links: &[EnrTreeUrl],
) -> EnrTreeUrl {
    let e = if nodes.is_empty() {
        put(zone, domain, "enrtree-branch:".into())
    } else {
        subtree(zone, domain, nodes.iter().map(|n| n.to_text()).collect())
    };
    let l = if links.is_empty() {
        put(zone, domain, "enrtree-branch:".into())
    } else {
        subtree(zone, domain, links.iter().map(|u| u.to_string()).collect())
    };
    let root = RootEntry::sign(&e, &l, seq, sk).unwrap();
    zone.insert(domain.to_string(), root.to_string());
    EnrTreeUrl::new(sk.public_key(), domain).unwrap()
}

/// Drive the client: answer queries in a random order (several outstanding at once), advance the clock
/// to timers when idle. Returns events and the names queried.
struct Run {
    events: Vec<Event>,
    queried: Vec<String>,
    max_in_flight: usize,
    now: Timestamp,
}

fn run(c: &mut DnsTreeClient, zone: &Zone, mut now: Timestamp, until: Timestamp, seed: u64) -> Run {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut pending: Vec<String> = vec![];
    let mut r = Run {
        events: vec![],
        queried: vec![],
        max_in_flight: 0,
        now,
    };
    c.handle_timeout(now);
    loop {
        while let Some(o) = c.poll_output() {
            match o {
                Output::Resolve { name } => {
                    r.queried.push(name.clone());
                    pending.push(name);
                }
                Output::Event(e) => r.events.push(e),
                _ => {}
            }
        }
        r.max_in_flight = r.max_in_flight.max(c.in_flight());
        if !pending.is_empty() {
            let name = pending.swap_remove(rng.next_u32() as usize % pending.len());
            match zone.get(&name) {
                Some(t) => c
                    .handle_input(
                        now,
                        Input::TxtRecords {
                            name,
                            texts: vec![t.clone()],
                        },
                    )
                    .unwrap(),
                None => c.handle_input(now, Input::ResolveFailed { name }).unwrap(),
            }
            continue;
        }
        match c.poll_timeout() {
            Some(t) if t <= until => {
                now = now.max(t);
                c.handle_timeout(now);
            }
            _ => break,
        }
    }
    r.now = now;
    r
}

fn nodes(events: &[Event]) -> BTreeSet<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Node(n) => Some(n.to_text()),
            _ => None,
        })
        .collect()
}

fn errors(events: &[Event]) -> Vec<TreeError> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Error { error, .. } => Some(*error),
            _ => None,
        })
        .collect()
}

const T0: Timestamp = Timestamp::from_secs(1_700_000_000);

fn client(urls: &[EnrTreeUrl], config: DnsConfig) -> DnsTreeClient {
    DnsTreeClient::new(config, urls, &Seed::from_u64(9)).unwrap()
}

#[test]
fn syncs_a_large_tree_and_a_linked_tree() {
    let mut zone = Zone::new();
    let a_nodes = enrs(0, 60);
    let b_nodes = enrs(100, 25);
    let b = make_tree(&mut zone, "b.example.org", &key(2), 1, &b_nodes, &[]);
    let a = make_tree(
        &mut zone,
        "a.example.org",
        &key(1),
        5,
        &a_nodes,
        std::slice::from_ref(&b),
    );
    let mut c = client(std::slice::from_ref(&a), DnsConfig::default());
    let r = run(&mut c, &zone, T0, T0, 1);
    let want: BTreeSet<String> = a_nodes.iter().chain(&b_nodes).map(|n| n.to_text()).collect();
    assert_eq!(nodes(&r.events), want);
    assert_eq!(nodes(&r.events).len(), 85);
    assert!(errors(&r.events).is_empty(), "{:?}", errors(&r.events));
    assert!(r.events.contains(&Event::Linked(b)));
    assert!(r.events.contains(&Event::TreeSynced {
        domain: "a.example.org".into(),
        seq: 5,
        nodes: 60,
        complete: true
    }));
    assert!(r.events.contains(&Event::TreeSynced {
        domain: "b.example.org".into(),
        seq: 1,
        nodes: 25,
        complete: true
    }));
    assert!(r.max_in_flight <= 4 && r.max_in_flight > 1);
    // Every entry was asked for exactly once.
    let distinct: BTreeSet<&String> = r.queried.iter().collect();
    assert_eq!(distinct.len(), r.queried.len());
    assert_eq!(r.queried.len(), zone.len());
    assert_eq!(c.tree_count(), 2);

    // Same seed, same order of queries; another seed, another order (random traversal).
    let mut c2 = client(std::slice::from_ref(&a), DnsConfig::default());
    assert_eq!(run(&mut c2, &zone, T0, T0, 1).queried, r.queried);
    let mut c3 = DnsTreeClient::new(DnsConfig::default(), &[a], &Seed::from_u64(10)).unwrap();
    assert_ne!(run(&mut c3, &zone, T0, T0, 1).queried, r.queried);
}

#[test]
fn resync_skips_an_unchanged_root_and_walks_a_new_one() {
    let mut zone = Zone::new();
    let n = enrs(0, 20);
    let a = make_tree(&mut zone, "a.example.org", &key(1), 1, &n, &[]);
    let mut c = client(std::slice::from_ref(&a), DnsConfig::default());
    let r = run(&mut c, &zone, T0, T0, 2);
    assert_eq!(nodes(&r.events).len(), 20);
    let next = c.poll_timeout().unwrap();
    assert_eq!(next, T0 + Duration::from_secs(30 * 60));
    // Unchanged root: one query, no walk, no nodes.
    let r2 = run(&mut c, &zone, r.now, next, 2);
    assert_eq!(r2.queried, vec!["a.example.org".to_string()]);
    assert!(r2.events.is_empty());
    // A new root (seq 2, one more node) is walked; only the new record is new, all are reported.
    let mut zone2 = Zone::new();
    let n2 = enrs(0, 21);
    make_tree(&mut zone2, "a.example.org", &key(1), 2, &n2, &[]);
    let t = c.poll_timeout().unwrap();
    let r3 = run(&mut c, &zone2, r2.now, t, 2);
    assert_eq!(nodes(&r3.events).len(), 21);
    // A stale root (seq 1 again) is refused.
    let t = c.poll_timeout().unwrap();
    let r4 = run(&mut c, &zone, r3.now, t, 2);
    assert_eq!(errors(&r4.events), vec![TreeError::StaleRoot { have: 2, got: 1 }]);
    assert!(nodes(&r4.events).is_empty());
}

#[test]
fn wrong_signature_is_rejected_and_retried_with_backoff() {
    let mut zone = Zone::new();
    let a = make_tree(&mut zone, "a.example.org", &key(1), 1, &enrs(0, 5), &[]);
    // The client trusts another key for that domain.
    let wrong = EnrTreeUrl::new(key(3).public_key(), "a.example.org").unwrap();
    let mut c = client(&[wrong], DnsConfig::default());
    let r = run(&mut c, &zone, T0, T0, 3);
    assert_eq!(errors(&r.events), vec![TreeError::BadSignature]);
    assert_eq!(r.queried, vec!["a.example.org".to_string()]);
    assert_eq!(c.poll_timeout(), Some(T0 + Duration::from_secs(5)));
    let r = run(&mut c, &zone, T0, T0 + Duration::from_secs(5), 3);
    assert_eq!(errors(&r.events), vec![TreeError::BadSignature]);
    assert_eq!(c.poll_timeout(), Some(T0 + Duration::from_secs(15)));
    // A tampered root text (seq changed after signing) fails too.
    let mut c = client(&[a], DnsConfig::default());
    let root = zone["a.example.org"].replace("seq=1", "seq=2");
    zone.insert("a.example.org".into(), root);
    let r = run(&mut c, &zone, T0, T0, 3);
    assert_eq!(errors(&r.events), vec![TreeError::BadSignature]);
}

#[test]
fn wrong_hash_missing_records_and_misplaced_entries() {
    let mut zone = Zone::new();
    let n = enrs(0, 30);
    let other = enrs(500, 1);
    let a = make_tree(&mut zone, "a.example.org", &key(1), 1, &n, &[]);
    // Swap one leaf's text for another valid record: its hash no longer matches.
    let victim = format!("{}.a.example.org", entry_hash(&n[3].to_text()));
    zone.insert(victim, other[0].to_text());
    // Drop another leaf entirely.
    zone.remove(&format!("{}.a.example.org", entry_hash(&n[4].to_text())));
    let mut c = client(&[a], DnsConfig::default());
    let r = run(&mut c, &zone, T0, T0, 4);
    let errs = errors(&r.events);
    assert!(errs.contains(&TreeError::HashMismatch));
    assert!(errs.contains(&TreeError::ResolveFailed));
    let got = nodes(&r.events);
    assert_eq!(got.len(), 28);
    assert!(!got.contains(&other[0].to_text()));
    assert!(r.events.contains(&Event::TreeSynced {
        domain: "a.example.org".into(),
        seq: 1,
        nodes: 28,
        complete: false
    }));
    // An incomplete walk is walked again at the next check even though the root is unchanged.
    let t = c.poll_timeout().unwrap();
    let r2 = run(&mut c, &zone, r.now, t, 4);
    assert_eq!(nodes(&r2.events).len(), 28);

    // A record in the link subtree and a link in the record subtree are refused.
    let mut zone = Zone::new();
    let link = EnrTreeUrl::new(key(9).public_key(), "x.example.org").unwrap();
    let e = put(&mut zone, "m.example.org", link.to_string());
    let l = put(&mut zone, "m.example.org", n[0].to_text());
    zone.insert(
        "m.example.org".into(),
        RootEntry::sign(&e, &l, 1, &key(1)).unwrap().to_string(),
    );
    let mut c = client(
        &[EnrTreeUrl::new(key(1).public_key(), "m.example.org").unwrap()],
        DnsConfig::default(),
    );
    let r = run(&mut c, &zone, T0, T0, 5);
    let errs = errors(&r.events);
    assert!(errs.contains(&TreeError::LinkInEnrTree) && errs.contains(&TreeError::EnrInLinkTree));
    assert!(nodes(&r.events).is_empty());
    assert_eq!(c.tree_count(), 1);
}

#[test]
fn loops_and_oversized_trees_cost_bounded_work() {
    // A deep diamond: every branch lists the one below twice, and also the leaf; 2^40 paths, 41 entries.
    let mut zone = Zone::new();
    let leaf = enrs(0, 1)[0].to_text();
    let mut h = put(&mut zone, "d.example.org", leaf.clone());
    let leaf_hash = h.clone();
    for _ in 0..40 {
        h = put(
            &mut zone,
            "d.example.org",
            format!("enrtree-branch:{h},{h},{leaf_hash}"),
        );
    }
    let l = put(&mut zone, "d.example.org", "enrtree-branch:".into());
    zone.insert(
        "d.example.org".into(),
        RootEntry::sign(&h, &l, 1, &key(1)).unwrap().to_string(),
    );
    let url = EnrTreeUrl::new(key(1).public_key(), "d.example.org").unwrap();
    let mut c = client(&[url], DnsConfig::default());
    let r = run(&mut c, &zone, T0, T0, 6);
    assert_eq!(nodes(&r.events).len(), 1);
    assert_eq!(r.queried.len(), zone.len());

    // Two trees linking to each other: each is synced once.
    let mut zone = Zone::new();
    let ua = EnrTreeUrl::new(key(1).public_key(), "a.example.org").unwrap();
    let ub = EnrTreeUrl::new(key(2).public_key(), "b.example.org").unwrap();
    make_tree(
        &mut zone,
        "a.example.org",
        &key(1),
        1,
        &enrs(0, 3),
        std::slice::from_ref(&ub),
    );
    make_tree(
        &mut zone,
        "b.example.org",
        &key(2),
        1,
        &enrs(10, 3),
        std::slice::from_ref(&ua),
    );
    let mut c = client(std::slice::from_ref(&ua), DnsConfig::default());
    let r = run(&mut c, &zone, T0, T0, 7);
    assert_eq!(nodes(&r.events).len(), 6);
    assert_eq!(c.tree_count(), 2);
    assert_eq!(r.queried.len(), zone.len());

    // A tree larger than the cap: the walk stops after at most max_entries_per_tree (+ in flight) queries.
    let mut zone = Zone::new();
    let big = make_tree(&mut zone, "big.example.org", &key(1), 1, &enrs(0, 200), &[]);
    let config = DnsConfig {
        max_entries_per_tree: 30,
        ..DnsConfig::default()
    };
    let mut c = client(&[big], config);
    let r = run(&mut c, &zone, T0, T0, 8);
    assert!(errors(&r.events).contains(&TreeError::TreeTooLarge));
    assert!(r.queried.len() <= 1 + 30, "{}", r.queried.len());
    assert!(r
        .events
        .iter()
        .any(|e| matches!(e, Event::TreeSynced { complete: false, .. })));

    // Too many linked trees: links past max_trees are refused.
    let mut zone = Zone::new();
    let links: Vec<EnrTreeUrl> = (0..5)
        .map(|i| EnrTreeUrl::new(key(50 + i).public_key(), &format!("l{i}.example.org")).unwrap())
        .collect();
    let root = make_tree(&mut zone, "r.example.org", &key(1), 1, &[], &links);
    let mut c = client(
        &[root],
        DnsConfig {
            max_trees: 3,
            ..DnsConfig::default()
        },
    );
    let r = run(&mut c, &zone, T0, T0, 9);
    assert_eq!(c.tree_count(), 3);
    assert_eq!(
        errors(&r.events)
            .iter()
            .filter(|e| **e == TreeError::TooManyTrees)
            .count(),
        3
    );
}

#[test]
fn unanswered_queries_time_out_and_unknown_records_are_skipped() {
    let mut zone = Zone::new();
    let a = make_tree(&mut zone, "a.example.org", &key(1), 1, &enrs(0, 3), &[]);
    let mut c = client(&[a], DnsConfig::default());
    c.handle_timeout(T0);
    assert_eq!(
        c.poll_output(),
        Some(Output::Resolve {
            name: "a.example.org".into()
        })
    );
    // An SPF record is not a root: the query stays open.
    c.handle_input(
        T0,
        Input::TxtRecord {
            name: "a.example.org".into(),
            text: "v=spf1 -all".into(),
        },
    )
    .unwrap();
    assert_eq!(c.in_flight(), 1);
    // An answer for a name never asked for is ignored.
    c.handle_input(
        T0,
        Input::TxtRecord {
            name: "zzz".into(),
            text: zone["a.example.org"].clone(),
        },
    )
    .unwrap();
    assert_eq!(c.poll_output(), None);
    let deadline = c.poll_timeout().unwrap();
    assert_eq!(deadline, T0 + Duration::from_secs(10));
    c.handle_timeout(Timestamp::from_millis(deadline.as_millis() - 1));
    assert_eq!(c.in_flight(), 1);
    c.handle_timeout(deadline);
    assert_eq!(
        c.poll_output(),
        Some(Output::Event(Event::Error {
            name: "a.example.org".into(),
            error: TreeError::Timeout
        }))
    );
    assert_eq!(c.in_flight(), 0);
    // A full answer made only of unknown records is "no entry".
    let t = c.poll_timeout().unwrap();
    c.handle_timeout(t);
    assert_eq!(
        c.poll_output(),
        Some(Output::Resolve {
            name: "a.example.org".into()
        })
    );
    c.handle_input(
        t,
        Input::TxtRecords {
            name: "a.example.org".into(),
            texts: vec!["hello".into()],
        },
    )
    .unwrap();
    assert_eq!(
        c.poll_output(),
        Some(Output::Event(Event::Error {
            name: "a.example.org".into(),
            error: TreeError::NoEntry
        }))
    );
    // Bad configurations are API errors.
    assert!(DnsTreeClient::new(
        DnsConfig {
            max_in_flight: 0,
            ..DnsConfig::default()
        },
        &[],
        &Seed::from_u64(1)
    )
    .is_err());
}
