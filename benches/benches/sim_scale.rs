//! The simulator at scale (issue 13): about 1,000 full nodes (5 % relays, 5 of them mailservers, the
//! rest chat clients in public, 1:1 and group chats, about one text per client per virtual minute) and
//! 10,000 relays, on one core. Prints the virtual-to-wall time ratio, memory per node (a counting global
//! allocator: live heap bytes after the run, and the peak), and simulator steps per second.
//!
//! `cargo bench -p status-benches --bench sim_scale -- [--nodes N] [--relays N] [--minutes M]`: with
//! `--nodes` one mixed network, with `--relays` one relay-only network; neither runs both at their
//! defaults (1,000 nodes for 1 virtual minute, 10,000 relays for 20 virtual seconds).
#![allow(unsafe_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use status_sansio::sim::scenario::{FaultLevel, Scenario, ScenarioConfig};
use status_sansio::sim::TraceLevel;

/// Counts live and peak heap bytes; forwards to the system allocator.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call forwards to `System` with the caller's arguments unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
            PEAK.fetch_max(live, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
            let live = LIVE.fetch_add(new_size, Relaxed) + new_size;
            PEAK.fetch_max(live, Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn mib(b: usize) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// Build and run one network; print its figures.
fn run(label: &str, config: &ScenarioConfig, virtual_secs: u64) {
    let before = LIVE.load(Relaxed);
    let t0 = Instant::now();
    let mut s = Scenario::new(config).unwrap();
    let setup_wall = t0.elapsed();
    let setup_steps = s.net.sim.steps();
    let nodes = s.net.sim.len();
    let built = LIVE.load(Relaxed) - before;
    let start = s.net.sim.now();
    let t1 = Instant::now();
    s.net.sim.run_until(start + Duration::from_secs(virtual_secs));
    let wall = t1.elapsed().as_secs_f64();
    // Events are kept for the invariants; a long run would drain them.
    let events = s.net.sim.take_events().len();
    let live = LIVE.load(Relaxed) - before;
    let steps = s.net.sim.steps() - setup_steps;
    let stats = s.net.sim.stats();
    println!(
        "{label}: {nodes} nodes ({} clients)",
        s.roles.iter().filter(|r| r.name() == "client").count()
    );
    println!(
        "  setup: 15 virtual s in {:.1} wall s, {setup_steps} steps; heap after setup {:.1} MiB ({:.0} KiB per node)",
        setup_wall.as_secs_f64(),
        mib(built),
        built as f64 / 1024.0 / nodes as f64
    );
    println!(
        "  run: {virtual_secs} virtual s in {wall:.1} wall s: virtual/wall {:.2}; {steps} steps, {:.0} steps/s; \
         {} texts scheduled in the window",
        virtual_secs as f64 / wall,
        steps as f64 / wall,
        s.sent.iter().filter(|t| t.at < s.net.sim.now()).count()
    );
    println!(
        "  heap live {:.1} MiB ({:.0} KiB per node), peak {:.1} MiB; {events} events; {} segments, {:.1} MiB on the wire",
        mib(live),
        live as f64 / 1024.0 / nodes as f64,
        mib(PEAK.load(Relaxed)),
        stats.segments,
        mib(stats.bytes_sent as usize)
    );
    let ten_min = 600.0 * wall / virtual_secs as f64;
    println!(
        "  extrapolated: 10 virtual minutes in about {:.1} wall minutes",
        ten_min / 60.0
    );
}

fn arg(args: &[String], name: &str) -> Option<u64> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let nodes = arg(&args, "--nodes");
    let relays = arg(&args, "--relays");
    let minutes = arg(&args, "--minutes");
    let seconds = arg(&args, "--seconds");
    let both = nodes.is_none() && relays.is_none();
    if let Some(n) = nodes.or(both.then_some(1_000)) {
        let secs = seconds.unwrap_or(minutes.unwrap_or(1) * 60);
        let config = ScenarioConfig {
            seed: 1,
            nodes: n as usize,
            minutes: secs.div_ceil(60).max(1),
            faults: FaultLevel::None,
            mailservers: 5,
            trace: TraceLevel::Off,
            relays_per_100: 5,
        };
        run("mixed network", &config, secs);
    }
    if let Some(n) = relays.or(both.then_some(10_000)) {
        let secs = seconds.unwrap_or(minutes.map_or(20, |m| m * 60));
        let config = ScenarioConfig {
            seed: 2,
            nodes: n as usize,
            minutes: secs.div_ceil(60).max(1),
            faults: FaultLevel::None,
            mailservers: 0,
            trace: TraceLevel::Off,
            // All relays but the two chat clients that give them traffic.
            relays_per_100: 100,
        };
        run("relay-only network", &config, secs);
    }
}
