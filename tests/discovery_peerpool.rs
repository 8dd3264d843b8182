#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The PeerPool rules (docs/protocol/status-client.md "Discovery and peers"): target relay count, one
//! mailserver, suspend/resume signals, the cache across restarts, and backoff determinism from the seed.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use status_sansio::crypto::secret_from_bytes;
use status_sansio::discovery::peerpool::{Input, Output};
use status_sansio::discovery::{NodeId, PeerKind, PeerPool, PeerPoolConfig};
use status_sansio::enode::Enode;
use status_sansio::{Seed, Timestamp};

const T0: Timestamp = Timestamp::from_secs(1_700_000_000);

fn enode(n: u32) -> Enode {
    let mut b = [3u8; 32];
    b[..4].copy_from_slice(&n.to_be_bytes());
    let pk = secret_from_bytes(&b).unwrap().public_key();
    Enode::new(
        pk,
        SocketAddr::new(Ipv4Addr::new(10, 0, (n >> 8) as u8, n as u8).into(), 443),
    )
}

fn id(e: &Enode) -> NodeId {
    NodeId::from_public_key(&e.id)
}

fn drain(p: &mut PeerPool) -> Vec<Output> {
    std::iter::from_fn(|| p.poll_output()).collect()
}

fn dials(out: &[Output]) -> Vec<(Enode, PeerKind)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Dial { enode, kind } => Some((enode.clone(), *kind)),
            _ => None,
        })
        .collect()
}

fn pool(seed: u64) -> PeerPool {
    PeerPool::new(PeerPoolConfig::default(), &Seed::from_u64(seed)).unwrap()
}

fn discover(p: &mut PeerPool, now: Timestamp, relays: std::ops::Range<u32>, mails: std::ops::Range<u32>) {
    for n in relays {
        p.handle_input(
            now,
            Input::Discovered {
                enode: enode(n),
                kind: PeerKind::Relay,
            },
        );
    }
    for n in mails {
        p.handle_input(
            now,
            Input::Discovered {
                enode: enode(n),
                kind: PeerKind::Mailserver,
            },
        );
    }
}

#[test]
fn dials_to_target_with_one_mailserver_then_suspends_and_resumes() {
    let mut p = pool(1);
    // Empty pool: starving from the first call.
    p.handle_timeout(T0);
    assert_eq!(drain(&mut p), vec![Output::ResumeDiscovery]);
    discover(&mut p, T0, 0..10, 100..102);
    let out = drain(&mut p);
    let d = dials(&out);
    assert_eq!(d.iter().filter(|(_, k)| *k == PeerKind::Relay).count(), 3);
    assert_eq!(d.iter().filter(|(_, k)| *k == PeerKind::Mailserver).count(), 1);
    // First discovered first.
    assert_eq!(d[0].0, enode(0));
    assert!(!out.contains(&Output::SuspendDiscovery));
    for (e, _) in &d {
        p.handle_input(T0, Input::Connected { id: id(e) });
    }
    assert_eq!(drain(&mut p), vec![Output::SuspendDiscovery]);
    assert_eq!(p.connected(PeerKind::Relay), 3);
    assert_eq!(p.connected(PeerKind::Mailserver), 1);
    assert!(!p.discovery_running());

    // A relay drops: another candidate is dialed, discovery stays suspended (candidates remain).
    p.handle_input(T0, Input::Disconnected { id: id(&d[0].0) });
    let out = drain(&mut p);
    assert_eq!(dials(&out).len(), 1);
    assert!(!out.contains(&Output::ResumeDiscovery));

    // The mailserver drops and the only other one fails: discovery resumes.
    let mail = d
        .iter()
        .find(|(_, k)| *k == PeerKind::Mailserver)
        .unwrap()
        .0
        .clone();
    p.handle_input(T0, Input::Disconnected { id: id(&mail) });
    let out = drain(&mut p);
    let other = dials(&out);
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].1, PeerKind::Mailserver);
    assert_ne!(other[0].0, mail);
    p.handle_input(T0, Input::DialFailed { id: id(&other[0].0) });
    assert_eq!(drain(&mut p), vec![Output::ResumeDiscovery]);
    assert!(p.discovery_running());
}

#[test]
fn extra_connections_are_closed() {
    let mut p = pool(2);
    discover(&mut p, T0, 0..3, 100..102);
    let d = dials(&drain(&mut p));
    for (e, _) in &d {
        p.handle_input(T0, Input::Connected { id: id(e) });
    }
    drain(&mut p);
    // An inbound relay past max_relays is closed.
    let stranger = id(&enode(999));
    p.handle_input(T0, Input::Connected { id: stranger });
    assert_eq!(drain(&mut p), vec![Output::Disconnect { id: stranger }]);
    assert_eq!(p.connected(PeerKind::Relay), 3);
    // A second mailserver connecting (not dialed by the pool) is closed: exactly one.
    assert!(d.contains(&(enode(100), PeerKind::Mailserver)));
    p.handle_input(T0, Input::Connected { id: id(&enode(101)) });
    assert_eq!(drain(&mut p), vec![Output::Disconnect { id: id(&enode(101)) }]);
    assert_eq!(p.connected(PeerKind::Mailserver), 1);
}

#[test]
fn failed_dials_back_off_deterministically_from_the_seed() {
    fn failures(seed: u64) -> Vec<Timestamp> {
        let cfg = PeerPoolConfig {
            max_relays: 1,
            min_relays: 1,
            mailserver: false,
            ..PeerPoolConfig::default()
        };
        let mut p = PeerPool::new(cfg, &Seed::from_u64(seed)).unwrap();
        discover(&mut p, T0, 0..1, 0..0);
        let mut now = T0;
        let mut times = vec![];
        for _ in 0..4 {
            let d = dials(&drain(&mut p));
            assert_eq!(d.len(), 1);
            p.handle_input(now, Input::DialFailed { id: id(&d[0].0) });
            let t = p.poll_timeout().unwrap();
            times.push(t);
            now = t;
            p.handle_timeout(now);
        }
        // Fifth failure: the candidate is forgotten.
        let d = dials(&drain(&mut p));
        p.handle_input(now, Input::DialFailed { id: id(&d[0].0) });
        assert_eq!(p.candidate_count(), 0);
        assert_eq!(p.poll_timeout(), None);
        times
    }
    let a = failures(7);
    assert_eq!(a, failures(7));
    assert_ne!(a, failures(8));
    // Delays lie in the upper half of 5 s · 2^(k-1).
    let mut prev = T0;
    for (k, t) in a.iter().enumerate() {
        let span = 5_000u64 << k;
        let d = t.as_millis() - prev.as_millis();
        assert!(d >= span / 2 && d <= span, "failure {k}: {d} ms");
        prev = *t;
    }
}

#[test]
fn unanswered_dials_time_out() {
    let mut p = pool(3);
    discover(&mut p, T0, 0..1, 0..0);
    let d = dials(&drain(&mut p));
    assert_eq!(d.len(), 1);
    assert_eq!(p.poll_timeout(), Some(T0 + Duration::from_secs(30)));
    p.handle_timeout(T0 + Duration::from_secs(30));
    assert_eq!(p.dialing(PeerKind::Relay), 0);
    assert!(p.poll_timeout().unwrap() > T0 + Duration::from_secs(30));
}

#[test]
fn cache_survives_a_restart_and_satisfies_the_pool_without_discovery() {
    let mut p = pool(4);
    discover(&mut p, T0, 0..3, 100..101);
    for (e, _) in dials(&drain(&mut p)) {
        p.handle_input(T0, Input::Connected { id: id(&e) });
    }
    drain(&mut p);
    assert_eq!(p.cache_len(), 4);
    let bytes = p.export_cache();

    let mut q = pool(5);
    assert_eq!(q.import_cache(T0, &bytes).unwrap(), 4);
    assert_eq!(q.export_cache(), bytes);
    q.handle_timeout(T0 + Duration::from_secs(1));
    let out = drain(&mut q);
    assert_eq!(dials(&out).len(), 4);
    assert!(!out.contains(&Output::ResumeDiscovery), "{out:?}");
    let mut kinds: Vec<PeerKind> = dials(&out).iter().map(|(_, k)| *k).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            PeerKind::Relay,
            PeerKind::Relay,
            PeerKind::Relay,
            PeerKind::Mailserver
        ]
    );

    // Bad bytes are refused and change nothing.
    let mut r = pool(6);
    assert!(r.import_cache(T0, &[0xc0]).is_err());
    assert!(r.import_cache(T0, &bytes[..bytes.len() - 1]).is_err());
    let mut bad = bytes.clone();
    bad[3] ^= 0xff;
    let _ = r.import_cache(T0, &bad);
    assert!(r.import_cache(T0, b"garbage").is_err());

    // The cache is bounded: the most recently seen peers are kept.
    let cfg = PeerPoolConfig {
        cache_size: 2,
        ..PeerPoolConfig::default()
    };
    let mut s = PeerPool::new(cfg, &Seed::from_u64(7)).unwrap();
    assert_eq!(s.import_cache(T0, &bytes).unwrap(), 2);
    assert_eq!(s.cache_len(), 2);
}

#[test]
fn candidates_are_bounded() {
    let cfg = PeerPoolConfig {
        max_candidates: 10,
        ..PeerPoolConfig::default()
    };
    let mut p = PeerPool::new(cfg, &Seed::from_u64(8)).unwrap();
    discover(&mut p, T0, 0..100, 100..150);
    assert!(p.candidate_count() <= 10);
    assert!(PeerPool::new(
        PeerPoolConfig {
            min_relays: 4,
            ..PeerPoolConfig::default()
        },
        &Seed::from_u64(1)
    )
    .is_err());
}

/// The pool's cache format (version 2, with a peer kind) and the engine's (version 1) are told apart by
/// their version, which each import checks: neither imports the other's bytes.
#[test]
fn cache_versions_are_checked_across_formats() {
    let key = secret_from_bytes(&[0x61; 32]).unwrap();
    let rlpx = std::sync::Arc::new(status_sansio::rlpx::Config::new(key, vec![]));
    let mut engine = status_sansio::node::Engine::new(
        status_sansio::node::EngineConfig::new(rlpx),
        &Seed::from_u64(1),
        T0,
    )
    .unwrap();
    let mut p = pool(6);
    let engine_cache = engine.export_peer_cache();
    assert_eq!(
        p.import_cache(T0, &engine_cache),
        Err(status_sansio::discovery::DiscoveryError::Cache(
            "unknown cache version"
        ))
    );
    assert_eq!(
        engine.import_peer_cache(T0, &p.export_cache()),
        Err(status_sansio::node::NodeError::PeerCache("unknown cache version"))
    );
}
