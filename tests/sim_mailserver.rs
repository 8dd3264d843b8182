//! Mailservers in the public simulator: an honest one answers history from the simulated archive (the
//! engine's `Store`/`Query`/`Prune` carried out by `sim::full::MemoryArchive`), and a stalling one
//! (`sim::adversary::stalling_mailserver`) only makes the history client time out while live chat goes
//! on through a relay.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sim_common;

use std::time::Duration;

use status_sansio::chat::messenger::{Input as Chat, CHAT_TTL};
use status_sansio::mailserver::client::FailureReason;
use status_sansio::mailserver::server::MailServerConfig;
use status_sansio::node::{Event, HistoryEvent};
use status_sansio::sim::adversary::stalling_mailserver;
use status_sansio::sim::full::{FullNode, NodeEvent};
use status_sansio::sim::invariants;
use status_sansio::sim::{Fault, NodeId};

use sim_common::{expect, lossy, Net};

const CHAT: &str = "history";

fn history(net: &Net, n: NodeId) -> Vec<&HistoryEvent> {
    net.sim
        .events()
        .iter()
        .filter_map(|(_, node, e)| match e {
            NodeEvent::Engine(Event::History(h)) if *node == n => Some(h),
            _ => None,
        })
        .collect()
}

#[test]
fn a_mailserver_serves_what_a_partitioned_client_missed() {
    let mut net = Net::new(sim_common::seed(21), lossy());
    let mut c = net.config(&[], false);
    c.mailserver = Some(MailServerConfig::default());
    let server = net.add(|id, seed, now| FullNode::new(id, c, seed, now).boxed());
    let mut c = net.config(&[], true);
    c.mailservers = vec![net.enode(server)];
    let alice = net.add(|id, seed, now| FullNode::new(id, c, seed, now).boxed());
    let bob = net.client(&[server]);
    for n in [alice, bob] {
        net.chat(n, Chat::JoinPublicChat(CHAT.into()));
    }
    net.run(5);
    net.send(bob, CHAT, "live");
    net.run(5);
    // Alice is cut off for longer than the envelopes live; Bob writes meanwhile.
    let now = net.sim.now();
    let away = Duration::from_secs(u64::from(CHAT_TTL) * 4);
    net.sim.add_fault(Fault::Partition {
        side: vec![alice],
        from: now,
        until: now + away,
    });
    for k in 0..3 {
        net.send(bob, CHAT, &format!("missed {k}"));
        net.run(5);
    }
    net.sim.run_for(away);
    net.run(60);
    invariants::exactly_once(
        &net.sim,
        &expect(alice, CHAT, &["live", "missed 0", "missed 1", "missed 2"]),
    )
    .unwrap();
    let served = net.engine(server).unwrap().mailserver_stats();
    assert!(served.envelopes_served >= 3, "{served:?}");
    assert!(
        history(&net, alice)
            .iter()
            .any(|h| matches!(h, HistoryEvent::HistoryFetched { envelopes, .. } if *envelopes >= 3)),
        "{:?}",
        history(&net, alice)
    );
    net.assert_healthy();
}

#[test]
fn a_stalling_mailserver_only_times_history_out() {
    let mut net = Net::new(sim_common::seed(22), lossy());
    let relay = net.relay(&[]);
    let mut c = net.config(&[], false);
    c.mailserver = Some(MailServerConfig::default());
    let staller = net.add(|id, seed, now| stalling_mailserver(id, c, seed, now).boxed());
    let mut c = net.config(&[relay], true);
    c.mailservers = vec![net.enode(staller)];
    let alice = net.add(|id, seed, now| FullNode::new(id, c, seed, now).boxed());
    let bob = net.client(&[relay]);
    for n in [alice, bob] {
        net.chat(n, Chat::JoinPublicChat(CHAT.into()));
    }
    net.run(5);
    net.send(bob, CHAT, "live 1");
    net.run(40);
    net.send(bob, CHAT, "live 2");
    net.run(10);
    invariants::exactly_once(&net.sim, &expect(alice, CHAT, &["live 1", "live 2"])).unwrap();
    let h = history(&net, alice);
    assert!(
        h.iter().any(|h| matches!(
            h,
            HistoryEvent::RequestFailed {
                reason: FailureReason::Timeout,
                ..
            }
        )),
        "{h:?}"
    );
    assert!(
        !h.iter().any(|h| matches!(h, HistoryEvent::HistoryFetched { .. })),
        "{h:?}"
    );
    net.assert_healthy();
}
