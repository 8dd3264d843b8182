//! MVDS benchmarks: payload encode/decode throughput (criterion), and a 100-node simulation moving
//! 10,000 messages under 20 % loss, reporting messages delivered per CPU second and the bandwidth
//! amplification (MVDS payload bytes on the wire per delivered message, against the message bytes).
//!
//! `cargo bench -p status-benches --bench mvds`. Under `cargo test` (`--test`) the simulation shrinks.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use rand_core::RngCore;
use status_sansio::mvds::{Config, Event, GroupId, Input, Message, MessageId, Payload};
use status_sansio::sim::mvds::{peer_id, MvdsEngine};
use status_sansio::sim::{LinkModel, NodeId, Sim, TraceLevel};
use status_sansio::{Seed, Timestamp};

fn sample_payload() -> Payload {
    let mut rng = Seed::from_u64(1).rng();
    let messages = (0..10)
        .map(|i| {
            let mut body = vec![0u8; 256];
            rng.fill_bytes(&mut body);
            Message::new(GroupId([i; 32]), 1_700_000_000, body)
        })
        .collect();
    Payload {
        acks: (0..20).map(|i| MessageId([i; 32])).collect(),
        messages,
        ..Payload::default()
    }
}

fn codec(c: &mut Criterion) {
    let p = sample_payload();
    let bytes = p.encode_to_vec();
    let mut g = c.benchmark_group("mvds_payload");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("encode", |b| b.iter(|| std::hint::black_box(&p).encode_to_vec()));
    g.bench_function("decode", |b| {
        b.iter(|| Payload::decode(std::hint::black_box(&bytes)).map(|p| p.messages.len()))
    });
    g.finish();
}

/// CPU time of this thread (Linux `schedstat`), or `None` where unavailable.
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

fn pair_group(a: usize, b: usize) -> GroupId {
    let mut g = [0u8; 32];
    g[..8].copy_from_slice(&(a.min(b) as u64).to_le_bytes());
    g[8..16].copy_from_slice(&(a.max(b) as u64).to_le_bytes());
    GroupId(g)
}

/// Run the simulation and print its figures; returns whether it settled and the number of
/// `DeliveryFailed` events.
fn simulation(nodes: usize, messages: usize, body_len: usize, loss: f64) -> (bool, u64) {
    let start = Timestamp::from_millis(1_700_000_000_000);
    let mut sim = Sim::new(42, start, LinkModel::lossy(loss));
    sim.set_trace_level(TraceLevel::Off);
    for _ in 0..nodes {
        sim.add_node(|_, seed, now| MvdsEngine::new(Config::default(), &seed, now).expect("valid config"));
    }
    let mut rng = Seed::from_u64(43).rng();
    for _ in 0..messages {
        let from = rng.next_u64() as usize % nodes;
        let to = (from + 1 + rng.next_u64() as usize % (nodes - 1)) % nodes;
        let at = start + Duration::from_millis(rng.next_u64() % 100_000);
        let group = pair_group(from, to);
        let peer = peer_id(NodeId(to));
        sim.schedule(at, NodeId(from), Input::AddPeer { group, peer });
        let mut body = vec![0u8; body_len];
        rng.fill_bytes(&mut body);
        sim.schedule(
            at,
            NodeId(from),
            Input::Send {
                group,
                body: body.into(),
            },
        );
    }
    let (wall, cpu) = (Instant::now(), thread_cpu());
    let idle = sim.run_until_idle(start + Duration::from_secs(24 * 3600));
    let wall = wall.elapsed();
    let cpu = match (cpu, thread_cpu()) {
        (Some(a), Some(b)) => b - a,
        _ => wall,
    };
    let (mut delivered, mut acked, mut failed) = (0u64, 0u64, 0u64);
    for (_, _, e) in sim.events() {
        match e {
            Event::MessageReceived { .. } => delivered += 1,
            Event::Delivered { .. } => acked += 1,
            Event::DeliveryFailed { .. } => failed += 1,
            _ => {}
        }
    }
    let st = sim.stats();
    let per_msg = st.bytes_sent as f64 / delivered.max(1) as f64;
    println!("mvds simulation: {nodes} nodes, {messages} messages of {body_len} B, {:.0} % loss (+10 % duplication, 10 % reordering)", loss * 100.0);
    println!(
        "  settled: {idle}; virtual time {:?}; {} sim steps",
        sim.now() - start,
        sim.steps()
    );
    println!("  delivered {delivered}, acknowledged {acked}, failed {failed}");
    println!(
        "  CPU {:.3} s (wall {:.3} s): {:.0} messages delivered per CPU second",
        cpu.as_secs_f64(),
        wall.as_secs_f64(),
        delivered as f64 / cpu.as_secs_f64()
    );
    println!(
        "  datagrams {} ({} lost, {} duplicated), wire bytes {}",
        st.sent, st.lost, st.duplicated, st.bytes_sent
    );
    println!(
        "  wire bytes per delivered message {per_msg:.1} vs message bytes {body_len}: amplification {:.2}x",
        per_msg / body_len as f64
    );
    (idle, failed)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test` does not and gets a small simulation.
    let test_mode = !std::env::args().any(|a| a == "--bench");
    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .configure_from_args();
    codec(&mut c);
    c.final_summary();
    if test_mode {
        let (settled, failed) = simulation(10, 200, 200, 0.2);
        assert!(settled, "the test-mode simulation did not settle");
        assert_eq!(failed, 0, "deliveries failed in the test-mode simulation");
    } else {
        simulation(100, 10_000, 200, 0.2);
        // Baseline: the same traffic without loss (duplication and reordering remain).
        simulation(100, 10_000, 200, 0.0);
    }
}
