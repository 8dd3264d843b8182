//! `status-node sim`: random scenarios of the deterministic simulator (`status_sansio::sim::scenario`),
//! VOPR-style. One run draws a network, a workload and a fault schedule from `--seed` and checks the
//! invariants; `--until-fail` tries `seed`, `seed + 1`, ... until one fails and prints the line that
//! replays it. The run's summary and its trace digest are printed last.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use status_sansio::sim::scenario::{FaultLevel, Scenario, ScenarioConfig};
use status_sansio::sim::TraceLevel;

/// The options of `status-node sim`.
#[derive(Args, Debug, Clone)]
pub struct SimArgs {
    /// The seed of the (first) run: network, workload and faults are drawn from it.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Honest full nodes: about one relay in ten (--mailservers of them mailservers), the rest
    /// chat clients.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u64).range(3..))]
    pub nodes: u64,
    /// Virtual minutes of traffic and faults (five settling minutes follow).
    #[arg(long, default_value_t = 2)]
    pub minutes: u64,
    /// How hostile: none (clean links), low (loss, partitions, crashes, skew), high (more of them, and
    /// adversaries).
    #[arg(long, value_name = "LEVEL", default_value = "low", value_parser = parse_level)]
    pub faults: FaultLevel,
    /// How many of the relays are mailservers (clients know them all).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub mailservers: usize,
    /// Try seed, seed+1, ... until an invariant fails (at most --runs seeds; forever without it).
    #[arg(long)]
    pub until_fail: bool,
    /// With --until-fail: stop after this many seeds.
    #[arg(long, value_name = "N")]
    pub runs: Option<u64>,
    /// Write the run's timeline (JSON lines, then the summary) to this file.
    #[arg(long, value_name = "FILE")]
    pub timeline: Option<PathBuf>,
}

fn parse_level(s: &str) -> Result<FaultLevel, String> {
    s.parse().map_err(|e| format!("{e}"))
}

/// Run `status-node sim`; the process's exit code (0: every run passed).
pub fn run(args: &SimArgs) -> i32 {
    let mut config = ScenarioConfig {
        seed: args.seed,
        nodes: args.nodes as usize,
        minutes: args.minutes,
        faults: args.faults,
        mailservers: args.mailservers,
        trace: if args.timeline.is_some() {
            TraceLevel::Full
        } else {
            TraceLevel::Digest
        },
        ..ScenarioConfig::default()
    };
    let runs = if args.until_fail {
        args.runs.unwrap_or(u64::MAX)
    } else {
        1
    };
    let mut tried = 0u64;
    loop {
        let started = Instant::now();
        let mut scenario = match Scenario::new(&config) {
            Ok(s) => s,
            Err(e) => {
                println!("seed {}: FAILED to build: {e}", config.seed);
                println!("replay: status-node sim {}", config.args());
                return 1;
            }
        };
        let result = scenario.run();
        tried += 1;
        let wall = started.elapsed().as_secs_f64();
        let sim = &scenario.net.sim;
        let failed = match &result {
            Ok(o) => {
                println!(
                    "seed {}: ok in {wall:.1} s: {} texts, {} deliveries checked, {} received, \
                     {} partitions, {} crashes, {} adversaries",
                    config.seed, o.texts, o.checked, o.received, o.partitions, o.crashes, o.adversaries
                );
                false
            }
            Err(v) => {
                println!("seed {}: FAILED in {wall:.1} s: {v}", config.seed);
                println!("replay: status-node sim {}", config.args());
                true
            }
        };
        if let Some(path) = &args.timeline {
            let mut out = String::new();
            if sim.write_timeline(&mut out).is_ok() {
                if let Err(e) = std::fs::write(path, out) {
                    eprintln!("status-node sim: writing {}: {e}", path.display());
                }
            }
        }
        if failed || tried >= runs {
            if args.until_fail && !failed {
                println!("no failure in {tried} seeds");
            }
            println!("{}", sim.summary().to_json());
            println!("digest {}", sim.trace_digest_hex());
            return i32::from(failed);
        }
        config.seed = config.seed.wrapping_add(1);
    }
}
