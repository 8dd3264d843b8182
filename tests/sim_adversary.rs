//! Each adversary of `status_sansio::sim::adversary` attacks the relay two honest chat clients share:
//! the clients still deliver every public and 1:1 message exactly once, no honest node is dropped for a
//! fault, and every cap holds throughout (checked every virtual second).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sim_common;

use std::time::Duration;

use status_sansio::chat::messenger::{Input as Chat, Messenger};
use status_sansio::node::{EngineConfig, Event};
use status_sansio::sim::adversary::{Flooder, Replayer, SocketAttacker};
use status_sansio::sim::full::{FullNode, NodeEvent};
use status_sansio::sim::invariants::{self, caps_respected};
use status_sansio::sim::NodeId;

use sim_common::{expect, lossy, Net};

/// A relay (node 0), Alice (1) and Bob (2), and the attacker `add` builds; honest traffic under attack.
fn under_attack(seed: u64, add: impl FnOnce(&mut Net, NodeId) -> NodeId) -> (Net, NodeId) {
    under_attack_with(seed, |_| {}, add)
}

/// [`under_attack`] with the relay's configuration adjusted by `relay`.
fn under_attack_with(
    seed: u64,
    relay: impl FnOnce(&mut EngineConfig),
    add: impl FnOnce(&mut Net, NodeId) -> NodeId,
) -> (Net, NodeId) {
    let mut net = Net::new(seed, lossy());
    let mut c = net.config(&[], false);
    relay(&mut c);
    let relay = net.add(|id, seed, now| FullNode::new(id, c, seed, now).boxed());
    let alice = net.client(&[relay]);
    let bob = net.client(&[relay]);
    let attacker = add(&mut net, relay);
    let check = |until: Duration, net: &mut Net| {
        let until = net.sim.now() + until;
        invariants::run_checked(&mut net.sim, until, Duration::from_secs(1), caps_respected).unwrap();
    };
    check(Duration::from_secs(10), &mut net);
    assert_eq!(
        (net.connected(alice), net.connected(bob)),
        (1, 1),
        "honest clients connected"
    );
    for n in [alice, bob] {
        net.chat(n, Chat::JoinPublicChat("sim".into()));
    }
    check(Duration::from_secs(1), &mut net);
    let (a, b) = (net.chat_pk(alice), net.chat_pk(bob));
    let at_alice = Messenger::one_to_one_chat_id(&b);
    let at_bob = Messenger::one_to_one_chat_id(&a);
    net.send(alice, "sim", "p1");
    net.chat(alice, Chat::StartOneToOne(b));
    for k in 1..4 {
        net.send(alice, &at_alice, &format!("a{k}"));
        check(Duration::from_secs(5), &mut net);
    }
    net.send(bob, &at_bob, "b1");
    net.send(bob, "sim", "p2");
    check(Duration::from_secs(40), &mut net);
    let mut expected = expect(bob, &at_bob, &["a1", "a2", "a3"]);
    expected.extend(expect(bob, "sim", &["p1"]));
    expected.extend(expect(alice, &at_alice, &["b1"]));
    expected.extend(expect(alice, "sim", &["p2"]));
    invariants::exactly_once(&net.sim, &expected).unwrap();
    net.assert_healthy();
    (net, attacker)
}

/// How many times the attacker reported acting.
fn attacks(net: &Net, attacker: NodeId) -> u64 {
    net.sim
        .events()
        .iter()
        .filter_map(|(_, n, e)| match e {
            NodeEvent::Attack { count, .. } if *n == attacker => Some(*count),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// Disconnects the relay made of `peer`'s connections, with their reasons.
fn relay_dropped(net: &Net, relay: NodeId, peer: NodeId) -> usize {
    let key = net.node_key(peer).public_key();
    net.sim
        .events()
        .iter()
        .filter(|(_, n, e)| {
            *n == relay
                && matches!(e, NodeEvent::Engine(Event::PeerDisconnected { id: Some(k), .. }) if *k == key)
        })
        .count()
}

#[test]
fn a_flooder_does_not_stop_honest_delivery() {
    // The relay takes 20 envelopes a second from each source; the flooder posts 50.
    let limit = |c: &mut EngineConfig| c.waku.max_envelopes_per_sec_per_source = 20;
    let (net, flooder) = under_attack_with(sim_common::seed(11), limit, |net, relay| {
        let c = net.config(&[relay], false);
        net.add(|id, seed, now| Box::new(Flooder::new(id, c, seed, now, now, Duration::from_millis(20))))
    });
    let relay = NodeId(0);
    let stats = net.engine(relay).unwrap().waku().stats();
    let secs = net.sim.now().as_secs() - sim_common::START_SECS;
    let posted = attacks(&net, flooder);
    assert!(posted >= 45 * secs, "the flooder posted {posted} in {secs} s");
    // The honest clients sent a handful; the rest came from the flooder, within the limit.
    assert!(
        stats.accepted <= 20 * secs + 20 && stats.accepted < posted / 2,
        "the relay took {} of {posted} flood envelopes in {secs} s: {stats:?}",
        stats.accepted
    );
    assert_eq!(
        relay_dropped(&net, relay, flooder),
        0,
        "a flooder within the limits is not a fault"
    );
}

#[test]
fn a_slowloris_does_not_lock_honest_peers_out() {
    let (net, attacker) = under_attack(sim_common::seed(12), |net, relay| {
        net.add(|_, seed, now| {
            Box::new(SocketAttacker::slowloris(
                relay,
                16,
                seed,
                now,
                Duration::from_secs(1),
            ))
        })
    });
    assert!(attacks(&net, attacker) > 16, "the slowloris kept opening sockets");
}

#[test]
fn a_garbage_sender_is_shut_out_and_harmless() {
    let (net, attacker) = under_attack(sim_common::seed(13), |net, relay| {
        net.add(|_, seed, now| {
            Box::new(SocketAttacker::garbage(
                relay,
                256,
                seed,
                now,
                Duration::from_millis(500),
            ))
        })
    });
    assert!(attacks(&net, attacker) > 0, "garbage was written");
}

#[test]
fn a_replayer_causes_no_duplicate_deliveries() {
    let (net, attacker) = under_attack(sim_common::seed(14), |net, relay| {
        let c = net.config(&[relay], false);
        net.add(|id, seed, now| Box::new(Replayer::new(id, c, seed, now, Duration::from_secs(7))))
    });
    assert!(attacks(&net, attacker) > 0, "envelopes were replayed");
    invariants::no_duplicate_deliveries(&net.sim).unwrap();
}
