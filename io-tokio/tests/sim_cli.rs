//! `status-node sim` as a user runs it: a couple of seeds pass with the invariants on and print the
//! summary and the trace digest last; the same seed prints the same digest; `--until-fail` with a bound
//! tries consecutive seeds; a bad fault level is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_status-node");

fn sim(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("sim")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The digest on the last line.
fn digest(out: &Output) -> String {
    let stdout = text(&out.stdout);
    let last = stdout.lines().last().unwrap_or("").to_string();
    let d = last.strip_prefix("digest ").unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(d.len(), 64, "{stdout}");
    d.to_string()
}

#[test]
fn two_seeds_pass_and_print_the_digest_last() {
    let a = sim(&["--seed", "3", "--nodes", "6", "--minutes", "1", "--faults", "low"]);
    let stdout = text(&a.stdout);
    assert!(a.status.success(), "{stdout}\n{}", text(&a.stderr));
    assert!(stdout.starts_with("seed 3: ok"), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    let summary: serde_json::Value = serde_json::from_str(lines[lines.len() - 2]).unwrap();
    assert_eq!(summary["summary"]["seed"], 3);
    assert_eq!(summary["summary"]["digest"].as_str().unwrap(), digest(&a));
    let again = sim(&["--seed", "3", "--nodes", "6", "--minutes", "1", "--faults", "low"]);
    assert_eq!(digest(&a), digest(&again), "replayable");

    let b = sim(&[
        "--seed",
        "10",
        "--nodes",
        "6",
        "--minutes",
        "1",
        "--faults",
        "high",
        "--until-fail",
        "--runs",
        "2",
    ]);
    let stdout = text(&b.stdout);
    assert!(b.status.success(), "{stdout}\n{}", text(&b.stderr));
    assert!(
        stdout.contains("seed 10: ok") && stdout.contains("seed 11: ok"),
        "{stdout}"
    );
    assert!(stdout.contains("no failure in 2 seeds"), "{stdout}");
    digest(&b);
}

#[test]
fn a_bad_fault_level_is_refused() {
    let out = sim(&["--faults", "loud"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("unknown fault level"),
        "{}",
        text(&out.stderr)
    );
    let out = sim(&["--nodes", "2"]);
    assert!(!out.status.success());
}
