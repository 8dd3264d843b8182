//! Shared scenario building for the `sim_*` tests: the library's [`scenario::Net`] (full nodes with
//! deterministic identities derived from the scenario seed and the node index), with the seed taken from
//! `SIM_SEED` when set and assertions that panic.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ops::{Deref, DerefMut};

use status_sansio::sim::scenario;
use status_sansio::sim::LinkModel;

#[allow(unused_imports)]
pub use status_sansio::sim::scenario::{expect, lossy, START_SECS};

/// The seed to run a scenario with: `SIM_SEED` when set (to replay the line a failed run printed), else
/// `default`.
pub fn seed(default: u64) -> u64 {
    std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// [`scenario::Net`] with a panicking health check.
pub struct Net(pub scenario::Net);

impl Net {
    pub fn new(seed: u64, link: LinkModel) -> Net {
        Net(scenario::Net::new(seed, link))
    }

    /// [`scenario::Net::healthy`], panicking with the first violation.
    pub fn assert_healthy(&self) {
        if let Err(v) = self.0.healthy() {
            panic!("{v}");
        }
    }
}

impl Deref for Net {
    type Target = scenario::Net;
    fn deref(&self) -> &scenario::Net {
        &self.0
    }
}

impl DerefMut for Net {
    fn deref_mut(&mut self) -> &mut scenario::Net {
        &mut self.0
    }
}

pub fn strings(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}
