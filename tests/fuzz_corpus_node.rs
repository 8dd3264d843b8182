//! The node-engine fuzz target over a seeded corpus: the harness's scripts (an inbound peer and the
//! dialled static peer completing real handshakes, Hello and Status) and their mutations, so CI exercises
//! it on stable and the corpus is shown to reach connected Waku peers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use status_sansio::fuzzing::corpus::Generator;
use status_sansio::fuzzing::node::node_engine;
use status_sansio::fuzzing::seeds;

#[test]
fn fuzz_node_engine() {
    let seeds = seeds::generated("node_engine");
    for s in &seeds {
        let r = node_engine(s);
        // Both the inbound peer and the dialled static peer complete Hello with a Waku dialect.
        assert!(r.dials >= 1 && r.waku_peers >= 2, "seed reached {r:?}");
    }
    let mut g = Generator::new(0x656e_6769);
    let (mut inputs, mut connected, mut closes) = (0, 0, 0);
    for i in 0..400 {
        let r = node_engine(&g.input(i, &seeds, 4, 600));
        inputs += 1;
        connected += usize::from(r.waku_peers > 0);
        closes += r.closes;
    }
    eprintln!("{inputs} inputs: {connected} reached a Waku peer, {closes} closes");
    assert!(
        connected * 3 >= inputs,
        "only {connected} of {inputs} inputs reached a Waku peer"
    );
    assert!(closes > 50, "only {closes} closes");
}
