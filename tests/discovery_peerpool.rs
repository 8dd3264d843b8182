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

/// A pool made at `T0`, not started yet (nothing is dialled before its first `handle_timeout`).
fn fresh(seed: u64) -> PeerPool {
    PeerPool::new(PeerPoolConfig::default(), &Seed::from_u64(seed), T0).unwrap()
}

/// A pool started at `T0` (its outputs not drained).
fn pool(seed: u64) -> PeerPool {
    let mut p = fresh(seed);
    p.handle_timeout(T0);
    p
}

fn input(p: &mut PeerPool, now: Timestamp, input: Input) {
    p.handle_input(now, input).unwrap();
}

/// A connection that speaks what the pool keeps peers for.
fn up(id: NodeId) -> Input {
    Input::Connected { id, useful: true }
}

fn discover(p: &mut PeerPool, now: Timestamp, relays: std::ops::Range<u32>, mails: std::ops::Range<u32>) {
    for n in relays {
        input(
            p,
            now,
            Input::Discovered {
                enode: enode(n),
                kind: PeerKind::Relay,
            },
        );
    }
    for n in mails {
        input(
            p,
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
        input(&mut p, T0, up(id(e)));
    }
    assert_eq!(drain(&mut p), vec![Output::SuspendDiscovery]);
    assert_eq!(p.connected(PeerKind::Relay), 3);
    assert_eq!(p.connected(PeerKind::Mailserver), 1);
    assert!(!p.discovery_running());

    // A relay drops: another candidate is dialed, discovery stays suspended (candidates remain).
    input(&mut p, T0, Input::Disconnected { id: id(&d[0].0) });
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
    input(&mut p, T0, Input::Disconnected { id: id(&mail) });
    let out = drain(&mut p);
    let other = dials(&out);
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].1, PeerKind::Mailserver);
    assert_ne!(other[0].0, mail);
    input(&mut p, T0, Input::DialFailed { id: id(&other[0].0) });
    assert_eq!(drain(&mut p), vec![Output::ResumeDiscovery]);
    assert!(p.discovery_running());
}

#[test]
fn extra_connections_are_closed() {
    let mut p = pool(2);
    discover(&mut p, T0, 0..3, 100..102);
    let d = dials(&drain(&mut p));
    for (e, _) in &d {
        input(&mut p, T0, up(id(e)));
    }
    drain(&mut p);
    // An inbound relay past max_relays is closed.
    let stranger = id(&enode(999));
    input(&mut p, T0, up(stranger));
    assert_eq!(drain(&mut p), vec![Output::Disconnect { id: stranger }]);
    assert_eq!(p.connected(PeerKind::Relay), 3);
    // A second mailserver connecting (not dialed by the pool) is closed: exactly one.
    assert!(d.contains(&(enode(100), PeerKind::Mailserver)));
    input(&mut p, T0, up(id(&enode(101))));
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
        let mut p = PeerPool::new(cfg, &Seed::from_u64(seed), T0).unwrap();
        p.handle_timeout(T0);
        discover(&mut p, T0, 0..1, 0..0);
        let mut now = T0;
        let mut times = vec![];
        for _ in 0..4 {
            let d = dials(&drain(&mut p));
            assert_eq!(d.len(), 1);
            input(&mut p, now, Input::DialFailed { id: id(&d[0].0) });
            let t = p.poll_timeout().unwrap();
            times.push(t);
            now = t;
            p.handle_timeout(now);
        }
        // Fifth failure: the candidate is forgotten.
        let d = dials(&drain(&mut p));
        input(&mut p, now, Input::DialFailed { id: id(&d[0].0) });
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
        input(&mut p, T0, up(id(&e)));
    }
    drain(&mut p);
    // A peer is cached once it stayed up for `stable_after` (30 s), not as soon as it connects.
    assert_eq!(p.cache_len(), 0);
    let stable = T0 + Duration::from_secs(30);
    p.handle_timeout(stable);
    assert_eq!(p.cache_len(), 4);
    let bytes = p.export_cache();

    let mut q = fresh(5);
    assert_eq!(q.import_cache(stable, &bytes).unwrap(), 4);
    assert_eq!(q.export_cache(), bytes);
    q.handle_timeout(stable + Duration::from_secs(1));
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
    let mut s = PeerPool::new(cfg, &Seed::from_u64(7), T0).unwrap();
    assert_eq!(s.import_cache(T0, &bytes).unwrap(), 2);
    assert_eq!(s.cache_len(), 2);
}

#[test]
fn candidates_are_bounded() {
    let cfg = PeerPoolConfig {
        max_candidates: 10,
        ..PeerPoolConfig::default()
    };
    let mut p = PeerPool::new(cfg, &Seed::from_u64(8), T0).unwrap();
    discover(&mut p, T0, 0..100, 100..150);
    assert!(p.candidate_count() <= 10);
    assert!(PeerPool::new(
        PeerPoolConfig {
            min_relays: 4,
            ..PeerPoolConfig::default()
        },
        &Seed::from_u64(1),
        T0
    )
    .is_err());
}

/// One cache format (version 1, the engine's) with a version every import checks: the engine's export
/// imports into a pool and a pool's into the engine; the version 2 the standalone pool once wrote is
/// refused by both.
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
    assert_eq!(p.import_cache(T0, &engine_cache), Ok(0));

    // Relays cached by a pool import into the engine.
    discover(&mut p, T0, 0..3, 0..0);
    for (e, _) in dials(&drain(&mut p)) {
        input(&mut p, T0, up(id(&e)));
    }
    let stable = T0 + Duration::from_secs(30);
    p.handle_timeout(stable);
    assert_eq!(engine.import_peer_cache(stable, &p.export_cache()), Ok(3));
    assert_eq!(engine.export_peer_cache(), p.export_cache());

    let version_2 = [0xc2, 0x02, 0xc0];
    assert_eq!(
        p.import_cache(T0, &version_2),
        Err(status_sansio::discovery::DiscoveryError::Cache(
            "unknown cache version"
        ))
    );
    assert_eq!(
        engine.import_peer_cache(T0, &version_2),
        Err(status_sansio::node::NodeError::PeerCache("unknown cache version"))
    );
}

/// Static peers are dialled when the pool starts, whatever the targets, never closed, and redialled
/// after a failure with a backoff that doubles (plus under 1 s of jitter) and resets once a connection
/// lasted `stable_after`.
#[test]
fn static_peers_are_kept_and_redialled_with_backoff() {
    let cfg = PeerPoolConfig {
        min_relays: 0,
        max_relays: 0,
        mailserver: false,
        ..PeerPoolConfig::default()
    };
    let mut p = PeerPool::new(cfg, &Seed::from_u64(11), T0).unwrap();
    let kind = PeerKind::Relay;
    input(
        &mut p,
        T0,
        Input::AddStatic {
            enode: enode(1),
            kind,
        },
    );
    assert!(drain(&mut p).is_empty(), "nothing before the pool starts");
    assert_eq!(p.poll_timeout(), Some(T0));
    p.handle_timeout(T0);
    assert_eq!(dials(&drain(&mut p)), vec![(enode(1), kind)]);
    let s = id(&enode(1));

    // Failures: 5 s, 10 s, 20 s (+ < 1 s each).
    let mut now = T0;
    for k in 0..3u32 {
        input(&mut p, now, Input::DialFailed { id: s });
        let next = p.poll_timeout().unwrap();
        let wait = next.as_millis() - now.as_millis();
        let base = 5_000u64 << k;
        assert!(wait >= base && wait < base + 1000, "failure {k}: {wait} ms");
        now = next;
        p.handle_timeout(now);
        assert_eq!(dials(&drain(&mut p)).len(), 1);
    }
    // Up past the (zero) target: kept; it stays up for `stable_after`, so the backoff resets.
    input(&mut p, now, Input::Reached { id: s });
    input(&mut p, now, up(s));
    assert_eq!(p.connected(PeerKind::Relay), 1);
    assert!(drain(&mut p)
        .iter()
        .all(|o| !matches!(o, Output::Disconnect { .. })));
    now += Duration::from_secs(31);
    input(&mut p, now, Input::Disconnected { id: s });
    let wait = p.poll_timeout().unwrap().as_millis() - now.as_millis();
    assert!((5_000..6_000).contains(&wait), "{wait} ms");
    assert_eq!(p.static_count(), 1);
    assert_eq!(p.candidate_count(), 0, "a static peer is not a candidate");
    // Discovered again, it stays static.
    discover(&mut p, now, 1..2, 0..0);
    assert_eq!(p.candidate_count(), 0);
    // At most 64.
    for n in 2..65 {
        input(
            &mut p,
            now,
            Input::AddStatic {
                enode: enode(n),
                kind,
            },
        );
    }
    assert_eq!(
        p.handle_input(
            now,
            Input::AddStatic {
                enode: enode(99),
                kind
            }
        ),
        Err(status_sansio::discovery::DiscoveryError::TooManyStaticPeers)
    );
}

/// A peer is cached only once it stayed up for `stable_after` and was useful: one that drops before,
/// or one without the wanted protocol, is not, and a short-lived connection counts as a failure.
#[test]
fn only_peers_that_stayed_up_are_cached() {
    let mut p = pool(12);
    discover(&mut p, T0, 0..3, 0..0);
    let d = dials(&drain(&mut p));
    assert_eq!(d.len(), 3);
    input(&mut p, T0, up(id(&d[0].0)));
    input(
        &mut p,
        T0,
        Input::Connected {
            id: id(&d[1].0),
            useful: false,
        },
    );
    input(&mut p, T0, up(id(&d[2].0)));
    // The third goes away after 10 s: a failure, backed off in the upper half of 5 s.
    let t10 = T0 + Duration::from_secs(10);
    input(&mut p, t10, Input::Disconnected { id: id(&d[2].0) });
    assert_eq!(p.connected(PeerKind::Relay), 2);
    p.handle_timeout(T0 + Duration::from_secs(30));
    assert_eq!(p.cache_len(), 1, "only the useful peer that stayed up");
    let mut q = fresh(13);
    assert_eq!(
        q.import_cache(T0 + Duration::from_secs(30), &p.export_cache()),
        Ok(1)
    );
}

/// A dial with no answer by its deadline is reported so the driver cancels it; a socket that connects
/// in time stops the deadline while the handshake runs.
#[test]
fn a_dial_past_its_deadline_is_reported() {
    let mut p = pool(14);
    discover(&mut p, T0, 0..2, 0..0);
    let d = dials(&drain(&mut p));
    assert_eq!(d.len(), 2);
    input(&mut p, T0, Input::Reached { id: id(&d[1].0) });
    p.handle_timeout(T0 + Duration::from_secs(30));
    let out = drain(&mut p);
    assert!(out.contains(&Output::DialTimedOut { id: id(&d[0].0) }), "{out:?}");
    assert!(!out.contains(&Output::DialTimedOut { id: id(&d[1].0) }));
    assert_eq!(p.dialing(PeerKind::Relay), 1, "the handshake still runs");
}
