//! The mailserver history client in full engines over the in-memory network, on a virtual clock:
//! a Messenger client that was offline for hours gets every missed public-chat message from the
//! mailserver exactly once, across several cursor pages (and the messages it had already seen live are
//! not shown twice); and a client whose first mailserver does not answer fails over to the second.
//! Every scenario is reproducible from its seed (printed on failure).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::engine_net::{rlpx_config, Net};
use status_sansio::chat::messenger::{self, MessengerConfig};
use status_sansio::crypto::SecretKey;
use status_sansio::mailserver::client::FailureReason;
use status_sansio::mailserver::server::MailServerConfig;
use status_sansio::node::{EngineConfig, Event, HistoryConfig, HistoryEvent, Input};
use status_sansio::waku::{self, status, Filter};
use status_sansio::Seed;

const CHAT: &str = "history-test";

fn messenger(n: u64) -> MessengerConfig {
    let key = SecretKey::random(&mut Seed::from_u64(7000 + n).rng());
    let mut c = MessengerConfig::new(key, format!("device-{n}"));
    // These tests count the envelopes the mailserver archives: keep them to the chat's.
    c.contact_code_interval = None;
    c
}

fn history() -> HistoryConfig {
    HistoryConfig {
        page_limit: 5,
        ..Default::default()
    }
}

fn join(net: &mut Net, i: usize) {
    net.input(i, Input::Chat(messenger::Input::JoinPublicChat(CHAT.into())));
}

fn say(net: &mut Net, i: usize, text: &str) {
    net.input(
        i,
        Input::Chat(messenger::Input::SendText {
            chat: CHAT.into(),
            text: text.into(),
        }),
    );
}

/// Texts of the chat messages host `i` received from others, with how often each was shown.
fn received(net: &Net, i: usize) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for e in &net.hosts[i].events {
        if let Event::Chat(messenger::Event::MessageReceived {
            message, own: false, ..
        }) = e
        {
            *m.entry(message.text.clone()).or_default() += 1;
        }
    }
    m
}

fn history_events(net: &Net, i: usize) -> Vec<HistoryEvent> {
    net.hosts[i]
        .events
        .iter()
        .filter_map(|e| match e {
            Event::History(h) => Some(h.clone()),
            _ => None,
        })
        .collect()
}

/// Host 0: relay + mailserver. Host 1: client A (history from host 0). Host 2: client B (posts).
fn offline_client_catches_up(seed: u64) {
    let mut net = Net::with_seed(3, seed, |i, enodes| {
        let mut c = EngineConfig::new(rlpx_config(0));
        match i {
            0 => c.mailserver = Some(MailServerConfig::default()),
            1 => {
                c.messenger = Some(messenger(1));
                c.mailservers = vec![enodes[0].clone()];
                c.history = history();
            }
            _ => {
                c.messenger = Some(messenger(2));
                c.static_peers = vec![enodes[0].clone()];
            }
        }
        c
    });
    join(&mut net, 1);
    join(&mut net, 2);
    net.run(Duration::from_secs(5));
    // A synced the (empty) chat on connecting.
    let h = history_events(&net, 1);
    assert!(
        matches!(
            h[..],
            [HistoryEvent::HistoryFetched {
                envelopes: 0,
                pages: 1,
                ..
            }]
        ),
        "{h:?}"
    );
    let topic = status::public_chat_topic(CHAT);
    let first_sync = net.hosts[1].engine.history().last_seen(&topic).unwrap();

    // Three messages while A is online: shown live.
    for k in 0..3 {
        say(&mut net, 2, &format!("live {k}"));
        net.run(Duration::from_secs(2));
    }
    assert_eq!(received(&net, 1).len(), 3);

    // A goes offline; B posts 23 messages over three hours.
    net.kill(1);
    let offline_at = net.now;
    for k in 0..23 {
        say(&mut net, 2, &format!("missed {k}"));
        net.run(Duration::from_secs(480));
    }
    net.run(Duration::from_secs(3 * 3600));
    let archived = net.hosts[0].store.len();
    assert_eq!(archived, 26, "the mailserver archived every message");

    // A comes back: it redials the mailserver and pages through the history.
    let back = net.now;
    net.resume(1);
    net.run(Duration::from_secs(120));

    let got = received(&net, 1);
    let mut want: Vec<String> = (0..3).map(|k| format!("live {k}")).collect();
    want.extend((0..23).map(|k| format!("missed {k}")));
    want.sort();
    assert_eq!(got.keys().cloned().collect::<Vec<_>>(), want, "every message");
    assert!(got.values().all(|&n| n == 1), "each shown once: {got:?}");
    // Every envelope had expired (TTL 15 s) hours before: trusted P2P envelopes skip the expiry check.
    assert!(back.saturating_duration_since(offline_at) > Duration::from_secs(3 * 3600));

    let h = history_events(&net, 1);
    assert_eq!(h.len(), 2, "{h:?}");
    match &h[1] {
        HistoryEvent::HistoryFetched {
            topics,
            from,
            to,
            envelopes,
            pages,
            ..
        } => {
            // The chat's topic, and the Messenger's own partitioned topic (1:1 chats) that it also watches.
            assert!(topics.contains(&topic), "{topics:?}");
            assert_eq!(topics.len(), 2, "{topics:?}");
            assert_eq!(*from, first_sync - 60, "since the last sync, minus the tolerance");
            assert!(u64::from(*to) >= back.as_secs());
            // The window holds the 3 live messages (already shown: the Messenger drops them by id) and
            // the 23 missed ones: 26 envelopes in pages of 5 → 5 full pages and a last one.
            assert_eq!(*envelopes, 26);
            assert_eq!(*pages, 6);
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(
        net.hosts[1].engine.history().last_seen(&topic),
        Some(match &h[1] {
            HistoryEvent::HistoryFetched { to, .. } => *to,
            _ => unreachable!(),
        })
    );
    assert_eq!(net.hosts[1].engine.history_duplicates(), 0);

    // Asking again re-fetches the recent window: every envelope is known, nothing is shown again.
    net.input(1, Input::RequestHistory(vec![]));
    net.run(Duration::from_secs(30));
    assert_eq!(received(&net, 1), got);
    let h = history_events(&net, 1);
    assert!(
        matches!(h[2], HistoryEvent::HistoryFetched { envelopes: 0, .. }),
        "{h:?}"
    );

    // The last-seen times survive a restart of the client.
    let blob = net.hosts[1].engine.export_history();
    let mut cfg = EngineConfig::new(rlpx_config(0));
    cfg.rlpx = rlpx_config(501);
    let mut fresh = status_sansio::node::Engine::new(cfg, &Seed::from_u64(5), net.now).unwrap();
    fresh.import_history(&blob).unwrap();
    assert_eq!(
        fresh.history().last_seen(&topic),
        net.hosts[1].engine.history().last_seen(&topic)
    );
    assert!(fresh.import_history(&blob[..blob.len() - 1]).is_err());
}

#[test]
fn offline_client_gets_every_missed_message_once_across_pages() {
    for seed in [0, 1, 2] {
        let r = std::panic::catch_unwind(|| offline_client_catches_up(seed));
        assert!(r.is_ok(), "failing seed: {seed}");
    }
}

/// Host 0: a relay that is not a mailserver (ignores requests). Host 1: the mailserver. Host 2: client
/// A with both as mailservers, host 0 first. Host 3: B, who posts through the mailserver.
fn fails_over(seed: u64) {
    let mut net = Net::with_seed(4, seed, |i, enodes| {
        let mut c = EngineConfig::new(rlpx_config(0));
        match i {
            0 => {}
            1 => c.mailserver = Some(MailServerConfig::default()),
            2 => {
                c.messenger = Some(messenger(1));
                c.mailservers = vec![enodes[0].clone(), enodes[1].clone()];
                c.history = history();
            }
            _ => {
                c.messenger = Some(messenger(2));
                c.static_peers = vec![enodes[1].clone()];
            }
        }
        c
    });
    let (silent, good) = (net.hosts[0].enode.id, net.hosts[1].enode.id);
    net.kill(2);
    join(&mut net, 2);
    join(&mut net, 3);
    net.run(Duration::from_secs(3));
    for k in 0..12 {
        say(&mut net, 3, &format!("old {k}"));
        net.run(Duration::from_secs(300));
    }
    assert_eq!(net.hosts[1].store.len(), 12);
    // The mailserver is down when A comes up: A reaches only the silent relay and asks it.
    net.kill(1);
    net.resume(2);
    net.run(Duration::from_secs(5));
    assert!(received(&net, 2).is_empty());
    // The mailserver comes back; A connects to it while still waiting on the silent one.
    net.resume(1);
    net.run(Duration::from_secs(180));

    let got = received(&net, 2);
    assert_eq!(got.len(), 12, "{got:?}");
    assert!(got.values().all(|&n| n == 1));
    let h = history_events(&net, 2);
    let timeouts = h
        .iter()
        .filter(|e| {
            matches!(e, HistoryEvent::RequestFailed { peer, reason: FailureReason::Timeout, .. } if *peer == silent)
        })
        .count();
    assert_eq!(timeouts, 2, "two tries on the silent mailserver: {h:?}");
    assert!(h.contains(&HistoryEvent::FailedOver {
        from: silent,
        to: good
    }));
    assert!(
        matches!(h.last(), Some(HistoryEvent::HistoryFetched { peer, envelopes: 12, pages: 3, .. }) if *peer == good),
        "{h:?}"
    );
}

#[test]
fn silent_mailserver_times_out_and_fails_over() {
    for seed in [0, 1, 2] {
        let r = std::panic::catch_unwind(|| fails_over(seed));
        assert!(r.is_ok(), "failing seed: {seed}");
    }
}

#[test]
fn unreachable_mailserver_is_skipped() {
    let mut net = Net::new(4, |i, enodes| {
        let mut c = EngineConfig::new(rlpx_config(0));
        match i {
            0 | 1 => c.mailserver = Some(MailServerConfig::default()),
            2 => {
                c.messenger = Some(messenger(1));
                c.mailservers = vec![enodes[0].clone(), enodes[1].clone()];
                c.history = HistoryConfig {
                    tolerance: Duration::from_secs(7200),
                    ..history()
                };
            }
            _ => {
                c.messenger = Some(messenger(2));
                c.static_peers = vec![enodes[1].clone()];
            }
        }
        c
    });
    net.kill(0);
    net.kill(2);
    join(&mut net, 2);
    join(&mut net, 3);
    net.run(Duration::from_secs(3));
    for k in 0..7 {
        say(&mut net, 3, &format!("old {k}"));
        net.run(Duration::from_secs(60));
    }
    // The application also watches the chat with a filter of its own.
    let f = Filter::symmetric(
        vec![status::public_chat_topic(CHAT)],
        *status::public_chat_key(CHAT),
    );
    let id = net.hosts[2].engine.unused_subscription_id();
    net.input(2, Input::Waku(waku::Input::Subscribe { id, filter: f }));
    net.resume(2);
    net.run(Duration::from_secs(60));
    assert_eq!(received(&net, 2).len(), 7);
    assert_eq!(
        app_history_messages(&net, 2),
        7,
        "the application's filter got them too"
    );
    let h = history_events(&net, 2);
    assert!(
        matches!(h[..], [HistoryEvent::HistoryFetched { peer, envelopes: 7, pages: 2, .. }] if peer == net.hosts[1].enode.id),
        "{h:?}"
    );
    assert!(
        net.hosts[2].dials.len() >= 2,
        "the dead mailserver was dialled too"
    );

    // Ask again over the same window (the tolerance reaches back two hours): the mailserver sends the
    // same envelopes, Waku opens them again (they expired long ago, so its own P2P memory is gone), and
    // the engine drops every opened message because the history client has seen the envelopes.
    net.input(2, Input::RequestHistory(vec![]));
    net.run(Duration::from_secs(30));
    let h = history_events(&net, 2);
    assert!(
        matches!(
            h[1..],
            [HistoryEvent::HistoryFetched {
                envelopes: 0,
                pages: 2,
                ..
            }]
        ),
        "{h:?}"
    );
    assert_eq!(
        net.hosts[2].engine.history_duplicates(),
        14,
        "7 envelopes × 2 filters"
    );
    assert_eq!(app_history_messages(&net, 2), 7);
    assert_eq!(received(&net, 2).len(), 7);
}

fn app_history_messages(net: &Net, i: usize) -> usize {
    net.hosts[i]
        .events
        .iter()
        .filter(|e| matches!(e, Event::Waku(waku::Event::Message(m)) if m.p2p))
        .count()
}

#[test]
fn request_history_needs_mailservers() {
    let mut net = Net::new(1, |_, _| EngineConfig::new(rlpx_config(0)));
    let now = net.now;
    assert!(net.hosts[0]
        .engine
        .handle_input(now, Input::RequestHistory(vec![]))
        .is_err());
}
