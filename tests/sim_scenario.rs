//! Random scenarios (`status_sansio::sim::scenario`): a network, workload and fault schedule drawn from a
//! seed runs with the invariants on and passes at every fault level; the same configuration gives the
//! same digest; a replay line names the configuration.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sim_common;

use status_sansio::sim::scenario::{FaultLevel, Scenario, ScenarioConfig, ScenarioError};

fn config(seed: u64, faults: FaultLevel) -> ScenarioConfig {
    ScenarioConfig {
        seed,
        nodes: 8,
        minutes: 1,
        faults,
        ..ScenarioConfig::default()
    }
}

fn run(c: &ScenarioConfig) -> Scenario {
    let mut s = Scenario::new(c).unwrap();
    let outcome = s
        .run()
        .unwrap_or_else(|v| panic!("{v}; replay: {}", s.net.sim.replay_command()));
    assert!(outcome.texts > 0 && outcome.checked > 0, "{outcome:?}");
    assert!(outcome.received >= outcome.checked, "{outcome:?}");
    s
}

#[test]
fn random_scenarios_pass_at_every_fault_level() {
    let seed = sim_common::seed(1);
    for level in [FaultLevel::None, FaultLevel::Low, FaultLevel::High] {
        let s = run(&config(seed, level));
        if level != FaultLevel::None {
            assert!(s.planned().partitions > 0, "{level}");
        }
        if level == FaultLevel::High {
            assert_eq!(s.planned().adversaries, 3);
        }
    }
}

#[test]
fn the_same_configuration_gives_the_same_digest() {
    let c = ScenarioConfig {
        nodes: 6,
        ..config(sim_common::seed(2), FaultLevel::Low)
    };
    let a = run(&c);
    let b = run(&c);
    assert_eq!(a.net.sim.trace_digest(), b.net.sim.trace_digest());
    assert_eq!(a.sent, b.sent);
    let other = run(&ScenarioConfig {
        seed: c.seed + 1,
        ..c.clone()
    });
    assert_ne!(a.net.sim.trace_digest(), other.net.sim.trace_digest());
}

#[test]
fn the_replay_line_names_the_configuration() {
    let c = config(77, FaultLevel::High);
    let s = Scenario::new(&c).unwrap();
    assert_eq!(
        s.net.sim.replay_command(),
        "status-node sim --seed 77 --nodes 8 --minutes 1 --faults high"
    );
    assert_eq!("high".parse::<FaultLevel>().unwrap(), FaultLevel::High);
    assert!("loud".parse::<FaultLevel>().is_err());
    let tiny = ScenarioConfig { nodes: 2, ..c };
    assert_eq!(Scenario::new(&tiny).err(), Some(ScenarioError::TooFewNodes(2)));
}
