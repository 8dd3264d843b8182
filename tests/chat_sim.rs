//! The Messenger across every layer: node engines (RLPx + Waku + Messenger) on the in-memory network of
//! `common::engine_net`, with a virtual clock. A relay (host 0) connects the clients. Public, 1:1 and
//! group chats survive outages (envelopes relayed while a client is down are lost to it; MVDS
//! retransmission fills the gap), a client restarted from its exported Messenger state still decrypts and
//! sends, and a member removed from a group never reads what follows although it stays on the network.
//! Each scenario runs for several seeds (chat identities and the outage schedule come from the seed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::engine_net::{rlpx_config, Net};
use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;
use status_sansio::chat::messenger::{Event as ChatEvent, Input as Chat, Messenger, MessengerConfig};
use status_sansio::crypto::{PublicKey, SecretKey};
use status_sansio::enode::Enode;
use status_sansio::node::{Engine, EngineConfig, Event, Input};
use status_sansio::Seed;

fn chat_key(seed: u64, i: usize) -> SecretKey {
    SecretKey::random(&mut Seed::from_u64(seed * 1000 + i as u64).rng())
}

fn messenger_config(seed: u64, i: usize) -> MessengerConfig {
    MessengerConfig::new(chat_key(seed, i), format!("device-{i}"))
}

/// Host 0 relays; hosts 1.. run a Messenger and keep host 0 as a static peer.
fn config(seed: u64, i: usize, enodes: &[Enode]) -> EngineConfig {
    let mut c = EngineConfig::new(rlpx_config(500 + i as u64));
    if i > 0 {
        c.static_peers = vec![enodes[0].clone()];
        c.messenger = Some(messenger_config(seed, i));
    }
    c
}

fn network(seed: u64, n: usize) -> Net {
    let mut net = Net::new(n, |i, e| config(seed, i, e));
    net.run(Duration::from_secs(5));
    for i in 1..n {
        assert_eq!(net.hosts[i].engine.connected_peers(), 1, "host {i} connected");
    }
    net
}

fn pk(seed: u64, i: usize) -> PublicKey {
    chat_key(seed, i).public_key()
}

fn chat(net: &mut Net, i: usize, input: Chat) {
    net.input(i, Input::Chat(input));
}

fn send(net: &mut Net, i: usize, chat_id: &str, text: &str) {
    chat(
        net,
        i,
        Chat::SendText {
            chat: chat_id.into(),
            text: text.into(),
        },
    );
}

fn events(net: &Net, i: usize) -> impl Iterator<Item = &ChatEvent> {
    net.hosts[i].events.iter().filter_map(|e| match e {
        Event::Chat(c) => Some(c),
        _ => None,
    })
}

/// Texts others wrote that host `i` received in `chat_id`, sorted (arrival order varies with outages).
fn texts(net: &Net, i: usize, chat_id: &str) -> Vec<String> {
    let mut v: Vec<String> = events(net, i)
        .filter_map(|e| match e {
            ChatEvent::MessageReceived {
                chat,
                message,
                own: false,
            } if chat == chat_id => Some(message.text.clone()),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

/// Only legitimate traffic ran: no client dropped anything (duplicates from retransmission and our own
/// posts echoed on shared topics are silently absorbed, not dropped).
fn assert_no_drops(net: &Net) {
    for i in 1..net.hosts.len() {
        let d: Vec<_> = events(net, i)
            .filter(|e| matches!(e, ChatEvent::Dropped { .. }))
            .collect();
        assert!(d.is_empty(), "host {i} dropped {d:?}");
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// Run for `d`, taking host `i` down for 1–3 s at random moments (probability `p` percent per second).
fn run_flapping(net: &mut Net, rng: &mut ChaCha20Rng, i: usize, d: Duration, p: u32) {
    let mut left = d.as_secs();
    while left > 0 {
        if rng.next_u32() % 100 < p {
            let down = 1 + u64::from(rng.next_u32() % 3);
            net.kill(i);
            net.run(Duration::from_secs(down.min(left)));
            net.resume(i);
            left = left.saturating_sub(down);
        } else {
            net.run(Duration::from_secs(1));
            left -= 1;
        }
    }
}

/// Restart host `i` from its exported Messenger state.
fn restart(net: &mut Net, seed: u64, i: usize) {
    let state = net.hosts[i].engine.export_messenger().unwrap();
    net.kill(i);
    net.run(Duration::from_secs(1));
    let enodes: Vec<Enode> = net.hosts.iter().map(|h| h.enode.clone()).collect();
    let now = net.now;
    let m = Messenger::import(messenger_config(seed, i), &Seed::from_u64(seed + 77), now, &state).unwrap();
    let engine =
        Engine::with_messenger(config(seed, i, &enodes), m, &Seed::from_u64(seed + 78), now).unwrap();
    net.revive(i, engine);
    net.run(Duration::from_secs(5));
    assert_eq!(
        net.hosts[i].engine.connected_peers(),
        1,
        "restarted host reconnected"
    );
}

fn one_to_one_scenario(seed: u64) {
    let mut rng = Seed::from_u64(seed).rng();
    let mut net = network(seed, 3);
    let (alice, bob) = (pk(seed, 1), pk(seed, 2));

    // Public chat.
    for i in [1, 2] {
        chat(&mut net, i, Chat::JoinPublicChat("sim".into()));
    }
    send(&mut net, 1, "sim", "public hello");
    net.run(Duration::from_secs(3));
    assert_eq!(texts(&net, 2, "sim"), strings(&["public hello"]));

    // 1:1 first contact.
    let at_alice = Messenger::one_to_one_chat_id(&bob);
    let at_bob = Messenger::one_to_one_chat_id(&alice);
    chat(&mut net, 1, Chat::StartOneToOne(bob));
    send(&mut net, 1, &at_alice, "a1");
    net.run(Duration::from_secs(5));
    assert_eq!(texts(&net, 2, &at_bob), strings(&["a1"]));
    assert_eq!(
        events(&net, 2)
            .filter(|e| matches!(e, ChatEvent::ContactRequest { from, .. } if *from == alice))
            .count(),
        1
    );
    send(&mut net, 2, &at_bob, "b1");
    net.run(Duration::from_secs(5));
    assert_eq!(texts(&net, 1, &at_alice), strings(&["b1"]));

    // Texts while Bob's link flaps: all arrive, once.
    for k in 2..6 {
        send(&mut net, 1, &at_alice, &format!("a{k}"));
        run_flapping(&mut net, &mut rng, 2, Duration::from_secs(4), 40);
    }
    // Bob fully offline, then back: MVDS retransmission brings what he missed.
    net.kill(2);
    send(&mut net, 1, &at_alice, "while bob was away");
    send(&mut net, 1, "sim", "public while bob was away");
    // Longer than the envelopes' TTL, so the relay's pool no longer holds the public message.
    net.run(Duration::from_secs(
        u64::from(status_sansio::chat::messenger::CHAT_TTL) + 5,
    ));
    net.resume(2);
    net.run(Duration::from_secs(120));
    assert_eq!(
        texts(&net, 2, &at_bob),
        strings(&["a1", "a2", "a3", "a4", "a5", "while bob was away"])
    );
    // Public chats have no MVDS (as in the reference): what was relayed while Bob was down is lost.
    assert_eq!(texts(&net, 2, "sim"), strings(&["public hello"]));
    let delivered = events(&net, 1)
        .filter(|e| matches!(e, ChatEvent::Delivered { to, .. } if *to == bob))
        .count();
    assert_eq!(delivered, 6, "every text to Bob reported delivered once");
    let stats = net.hosts[1].engine.messenger().unwrap().mvds().stats();
    assert!(
        stats.messages_sent > 7,
        "the outages cost transmissions that MVDS repeated: {stats:?}"
    );

    // Alice restarts from her exported state: she still decrypts Bob and he still decrypts her.
    restart(&mut net, seed, 1);
    send(&mut net, 1, &at_alice, "after restart");
    send(&mut net, 2, &at_bob, "b2");
    net.run(Duration::from_secs(20));
    assert!(texts(&net, 2, &at_bob).contains(&"after restart".to_string()));
    assert_eq!(texts(&net, 1, &at_alice), strings(&["b1", "b2"]));
    send(&mut net, 1, "sim", "public after restart");
    net.run(Duration::from_secs(3));
    assert_eq!(
        texts(&net, 2, "sim"),
        strings(&["public hello", "public after restart"])
    );
    assert_no_drops(&net);
}

#[test]
fn one_to_one_and_public_with_outages_and_a_restart() {
    for seed in [1, 2] {
        one_to_one_scenario(seed);
    }
}

fn group_scenario(seed: u64) {
    let mut rng = Seed::from_u64(seed + 500).rng();
    let mut net = network(seed, 5);
    let (b, c, d) = (pk(seed, 2), pk(seed, 3), pk(seed, 4));
    chat(
        &mut net,
        1,
        Chat::CreateGroup {
            name: "sim group".into(),
            members: vec![b, c, d],
        },
    );
    let group = events(&net, 1)
        .find_map(|e| match e {
            ChatEvent::GroupCreated { chat, .. } => Some(chat.clone()),
            _ => None,
        })
        .unwrap();
    net.run(Duration::from_secs(5));
    let members = |net: &Net, i: usize| {
        net.hosts[i]
            .engine
            .messenger()
            .and_then(|m| m.group(&group))
            .map(|g| g.members().clone())
    };
    let view = members(&net, 1).unwrap();
    assert_eq!(view.len(), 4);
    for i in 2..5 {
        assert_eq!(members(&net, i).as_ref(), Some(&view), "member {i}");
    }

    // Dave goes offline; texts meanwhile, with Bob's link flapping.
    net.kill(4);
    send(&mut net, 1, &group, "g1");
    run_flapping(&mut net, &mut rng, 2, Duration::from_secs(5), 40);
    send(&mut net, 2, &group, "g2");
    net.run(Duration::from_secs(10));

    // Carol is removed; she stays on the network (connected, relaying) but reads nothing later.
    chat(
        &mut net,
        1,
        Chat::RemoveMember {
            chat: group.clone(),
            member: c,
        },
    );
    net.run(Duration::from_secs(10));
    assert!(events(&net, 3).any(|e| matches!(
        e,
        ChatEvent::MembershipChanged { removed_self: true, chat, .. } if *chat == group
    )));
    send(&mut net, 1, &group, "g3");
    send(&mut net, 2, &group, "g4");
    net.run(Duration::from_secs(10));

    // Dave comes back and gets everything he missed, from both senders, through MVDS.
    net.resume(4);
    net.run(Duration::from_secs(150));
    assert_eq!(texts(&net, 4, &group), strings(&["g1", "g2", "g3", "g4"]));
    assert_eq!(members(&net, 4), members(&net, 1));
    assert_eq!(members(&net, 1).unwrap().len(), 3);
    assert_eq!(members(&net, 2), members(&net, 1));
    assert_eq!(texts(&net, 2, &group), strings(&["g1", "g3"]));

    // Bob restarts from his exported state and keeps talking in the group.
    restart(&mut net, seed, 2);
    send(&mut net, 2, &group, "g5 after restart");
    send(&mut net, 1, &group, "g6");
    net.run(Duration::from_secs(30));
    assert!(texts(&net, 1, &group).contains(&"g5 after restart".to_string()));
    assert!(texts(&net, 4, &group).contains(&"g5 after restart".to_string()));
    assert!(texts(&net, 2, &group).contains(&"g6".to_string()));

    // Carol, still connected all along, never read anything sent after her removal.
    assert_eq!(net.hosts[3].engine.connected_peers(), 1);
    assert_eq!(texts(&net, 3, &group), strings(&["g1", "g2"]));
    assert_no_drops(&net);
    let carol = net.hosts[3].engine.messenger().unwrap();
    let seen: Vec<&str> = carol.messages(&group).iter().map(|m| m.text.as_str()).collect();
    for later in ["g3", "g4", "g5 after restart", "g6"] {
        assert!(!seen.contains(&later), "removed member read {later:?}");
    }
}

#[test]
fn group_with_an_offline_member_a_removal_and_a_restart() {
    for seed in [3, 4] {
        group_scenario(seed);
    }
}
