//! `status-node demo`: a relay (which is also a mailserver) and three chat clients, alice, bob and carol,
//! each a full node (RLPx, Waku, secure transport, MVDS, Messenger) on the tokio driver over loopback TCP.
//!
//! The script: all three talk in a public chat; alice and bob chat 1:1 (first contact, contact request,
//! delivery confirmations); alice creates a group with bob and carol and everyone writes in it; carol goes
//! offline (her node stops and her Messenger state is exported), alice writes in the group and bob in the
//! public chat; carol comes back from the exported state: MVDS redelivers the group message and the
//! mailserver serves the public-chat history she missed. Every step is checked; the summary lists them
//! and the program exits 0 only if all of them happened.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use status_io_std::{os_seed, Clock};
use status_io_tokio::node::{spawn_node_with_store, NodeCommand, NodeHandle};
use status_sansio::chat::identity::{pubkey_to_hex, three_word_name};
use status_sansio::chat::messenger::{Event as ChatEvent, Input as ChatInput, Messenger, MessengerConfig};
use status_sansio::chat::payloads::MessageId;
use status_sansio::crypto::{PublicKey, SecretKey};
use status_sansio::enode::Enode;
use status_sansio::node::{Engine, EngineConfig, Event, HistoryEvent, Input};
use status_sansio::rlpx::{self, Protocol};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use zeroize::Zeroizing;

const PUBLIC: &str = "status-sansio-demo";
const GROUP: &str = "demo-group";
/// How long one step may take before it counts as failed.
const STEP: Duration = Duration::from_secs(30);

const ALICE: usize = 0;
const BOB: usize = 1;
const CAROL: usize = 2;
const NAMES: [&str; 3] = ["alice", "bob", "carol"];

fn rlpx_config(key: SecretKey, name: &str) -> Arc<rlpx::Config> {
    let protocols = vec![Protocol::new("waku", 1, 128).unwrap_or_else(|| unreachable!())];
    let mut c = rlpx::Config::new(key, protocols);
    c.client_id = format!("status-node-demo/{name}");
    Arc::new(c)
}

struct Person {
    node_key: SecretKey,
    chat_key: SecretKey,
    commands: Option<mpsc::Sender<NodeCommand>>,
    task: Option<tokio::task::JoinHandle<Engine>>,
}

/// The demo's world: who is who, every event seen so far, and the steps' outcomes.
struct Demo {
    people: Vec<Person>,
    relay: Enode,
    events_tx: mpsc::Sender<(usize, Event)>,
    events: mpsc::Receiver<(usize, Event)>,
    log: Vec<(usize, Event)>,
    groups: BTreeMap<String, String>,
    steps: Vec<(String, bool)>,
}

impl Demo {
    fn name_of(&self, pk: &PublicKey) -> String {
        self.people
            .iter()
            .position(|p| p.chat_key.public_key() == *pk)
            .map(|i| NAMES[i].to_string())
            .unwrap_or_else(|| three_word_name(pk))
    }

    fn chat_label(&self, chat: &str) -> String {
        if let Some(name) = self.groups.get(chat) {
            format!("group '{name}'")
        } else if chat.starts_with("0x04") {
            match status_sansio::chat::identity::pubkey_from_hex(chat) {
                Ok(pk) => format!("1:1 with {}", self.name_of(&pk)),
                Err(_) => chat.to_string(),
            }
        } else {
            format!("#{chat}")
        }
    }

    fn key(&self, who: usize) -> PublicKey {
        self.people[who].chat_key.public_key()
    }

    /// Start (or restart, from `state`) one person's node.
    fn start(&mut self, who: usize, state: Option<Zeroizing<Vec<u8>>>) -> std::io::Result<()> {
        let p = &self.people[who];
        let mut config = EngineConfig::new(rlpx_config(p.node_key.clone(), NAMES[who]));
        config.static_peers = vec![self.relay.clone()];
        config.mailservers = vec![self.relay.clone()];
        let messenger = MessengerConfig::new(p.chat_key.clone(), format!("{}-device", NAMES[who]));
        let now = Clock::new().now();
        let engine = match state {
            Some(state) => {
                let m = Messenger::import(messenger, &os_seed(), now, &state)
                    .map_err(|e| std::io::Error::other(format!("importing {}: {e}", NAMES[who])))?;
                Engine::with_messenger(config, m, &os_seed(), now).map_err(std::io::Error::other)?
            }
            None => {
                config.messenger = Some(messenger);
                Engine::new(config, &os_seed(), now).map_err(std::io::Error::other)?
            }
        };
        let NodeHandle {
            commands,
            mut events,
            task,
            ..
        } = spawn_node_with_store(
            engine,
            None,
            1024,
            Box::new(status_io_std::store::MemoryStore::default()),
        );
        let tx = self.events_tx.clone();
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                if tx.send((who, e)).await.is_err() {
                    break;
                }
            }
        });
        self.people[who].commands = Some(commands);
        self.people[who].task = Some(task);
        Ok(())
    }

    /// Stop a person's node; returns the exported Messenger state.
    async fn stop(&mut self, who: usize) -> std::io::Result<Zeroizing<Vec<u8>>> {
        if let Some(c) = self.people[who].commands.take() {
            if c.send(NodeCommand::Shutdown).await.is_err() {
                println!("  {:<6} node had already stopped", NAMES[who]);
            }
        }
        let task = self.people[who]
            .task
            .take()
            .ok_or_else(|| std::io::Error::other("not running"))?;
        let engine = task.await.map_err(std::io::Error::other)?;
        engine
            .export_messenger()
            .ok_or_else(|| std::io::Error::other("no messenger"))
    }

    async fn chat(&self, who: usize, input: ChatInput) {
        if let Some(c) = &self.people[who].commands {
            // A refusal is logged by the node; the demo's checks see what arrived.
            if c.send(NodeCommand::Input(Input::Chat(input))).await.is_err() {
                println!("  {:<6} node has stopped", NAMES[who]);
            }
        }
    }

    async fn say(&self, who: usize, chat: &str, text: &str) {
        println!("  {:<6} says in {}: {text:?}", NAMES[who], self.chat_label(chat));
        self.chat(
            who,
            ChatInput::SendText {
                chat: chat.to_string().into(),
                text: text.to_string(),
            },
        )
        .await;
    }

    fn print(&self, who: usize, e: &Event) {
        let me = NAMES[who];
        match e {
            Event::PeerConnected { client, .. } => println!("  {me:<6} connected to {client}"),
            Event::Chat(ChatEvent::MessageReceived {
                chat,
                message,
                own: false,
            }) => println!(
                "  {me:<6} got in {} from {} (clock {}): {:?}",
                self.chat_label(chat),
                self.name_of(&message.author),
                message.clock,
                message.text
            ),
            Event::Chat(ChatEvent::Delivered { chat, id, to }) => println!(
                "  {me:<6} message {} in {} delivered to {}",
                &id.to_string()[..10],
                self.chat_label(chat),
                self.name_of(to)
            ),
            Event::Chat(ChatEvent::DeliveryFailed { chat, id, to }) => println!(
                "  {me:<6} message {} in {} could NOT be delivered to {}",
                &id.to_string()[..10],
                self.chat_label(chat),
                self.name_of(to)
            ),
            Event::History(HistoryEvent::HistoryFetched { envelopes, pages, .. }) if *envelopes > 0 => {
                println!(
                    "  {me:<6} fetched {envelopes} envelopes of history from the mailserver ({pages} pages)"
                )
            }
            Event::Chat(ChatEvent::ContactRequest { from, .. }) => {
                println!("  {me:<6} contact request from {}", self.name_of(from))
            }
            Event::Chat(ChatEvent::MembershipChanged { chat, members, .. }) => {
                let names: Vec<String> = members.iter().map(|m| self.name_of(m)).collect();
                println!(
                    "  {me:<6} sees {} with members {}",
                    self.chat_label(chat),
                    names.join(", ")
                )
            }
            _ => {}
        }
    }

    /// Wait until `done` holds over the events seen so far; record the step.
    async fn step(&mut self, what: &str, done: impl Fn(&Demo) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + STEP;
        let ok = loop {
            if done(self) {
                break true;
            }
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some((who, e))) => {
                    self.print(who, &e);
                    if let Event::Chat(ChatEvent::GroupCreated { chat, name }) = &e {
                        self.groups.insert(chat.to_string(), name.clone());
                    }
                    self.log.push((who, e));
                }
                Ok(None) | Err(_) => break false,
            }
        };
        println!("{} {what}", if ok { "[ok]    " } else { "[FAILED]" });
        self.steps.push((what.to_string(), ok));
        ok
    }

    fn connected(&self, who: usize) -> usize {
        self.log
            .iter()
            .filter(|(w, e)| *w == who && matches!(e, Event::PeerConnected { .. }))
            .count()
    }

    /// How many times `who` received `text` in `chat` from someone else.
    fn got(&self, who: usize, chat: &str, text: &str) -> usize {
        self.log
            .iter()
            .filter(|(w, e)| {
                *w == who
                    && matches!(e, Event::Chat(ChatEvent::MessageReceived { chat: c, message, own: false })
                        if c == chat && message.text == text)
            })
            .count()
    }

    /// The id of the message `who` received as `text` in `chat`.
    fn received_id(&self, who: usize, chat: &str, text: &str) -> Option<MessageId> {
        self.log.iter().find_map(|(w, e)| match e {
            Event::Chat(ChatEvent::MessageReceived { chat: c, message, .. })
                if *w == who && c == chat && message.text == text =>
            {
                Some(message.id)
            }
            _ => None,
        })
    }

    /// Whether `who` saw message `id` delivered to `to`.
    fn delivered_id(&self, who: usize, id: &MessageId, to: usize) -> bool {
        let to = self.key(to);
        self.log.iter().any(|(w, e)| {
            *w == who
                && matches!(e, Event::Chat(ChatEvent::Delivered { id: i, to: t, .. }) if i == id && *t == to)
        })
    }

    fn delivered(&self, who: usize, chat: &str, to: usize) -> bool {
        let to = self.key(to);
        self.log.iter().any(|(w, e)| {
            *w == who
                && matches!(e, Event::Chat(ChatEvent::Delivered { chat: c, to: t, .. }) if c == chat && *t == to)
        })
    }

    fn contact_request(&self, who: usize, from: usize) -> bool {
        let from = self.key(from);
        self.log.iter().any(|(w, e)| {
            *w == who && matches!(e, Event::Chat(ChatEvent::ContactRequest { from: f, .. }) if *f == from)
        })
    }

    /// Whether `who` fetched envelopes from the mailserver after log position `since`.
    fn fetched_history(&self, who: usize, since: usize) -> bool {
        self.log[since.min(self.log.len())..].iter().any(|(w, e)| {
            *w == who
                && matches!(e, Event::History(HistoryEvent::HistoryFetched { envelopes, .. }) if *envelopes > 0)
        })
    }

    fn group_id(&self) -> Option<String> {
        self.groups.keys().next().cloned()
    }

    fn in_group(&self, who: usize, chat: &str) -> bool {
        self.log.iter().any(|(w, e)| {
            *w == who
                && matches!(e, Event::Chat(ChatEvent::MembershipChanged { chat: c, members, .. })
                    if c == chat && members.len() == 3)
        })
    }
}

/// Run the demo; `Ok(true)` if every step happened.
pub async fn run() -> std::io::Result<bool> {
    let mut rng = os_seed().rng();
    println!("status-node demo: a relay with a mailserver, and alice, bob and carol on loopback TCP\n");

    // The relay: relays everything and archives it as a mailserver.
    let relay_key = SecretKey::random(&mut rng);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let relay = Enode::new(relay_key.public_key(), listener.local_addr()?);
    let mut relay_config = EngineConfig::new(rlpx_config(relay_key, "relay"));
    relay_config.mailserver = Some(Default::default());
    let relay_node = spawn_node_with_store(
        Engine::new(relay_config, &os_seed(), Clock::new().now()).map_err(std::io::Error::other)?,
        Some(listener),
        1024,
        Box::new(status_io_std::store::MemoryStore::default()),
    );
    println!("relay   listening at {relay}");
    // Drain the relay's events so it never waits on us.
    let NodeHandle {
        commands: relay_commands,
        events: mut relay_events,
        task: relay_task,
        ..
    } = relay_node;
    tokio::spawn(async move { while relay_events.recv().await.is_some() {} });

    let (events_tx, events) = mpsc::channel(4096);
    let people = (0..3)
        .map(|_| Person {
            node_key: SecretKey::random(&mut rng),
            chat_key: SecretKey::random(&mut rng),
            commands: None,
            task: None,
        })
        .collect();
    let mut d = Demo {
        people,
        relay,
        events_tx,
        events,
        log: vec![],
        groups: BTreeMap::new(),
        steps: vec![],
    };
    for who in [ALICE, BOB, CAROL] {
        let pk = d.key(who);
        println!(
            "{:<7} is {} ({}...)",
            NAMES[who],
            three_word_name(&pk),
            &pubkey_to_hex(&pk)[..14]
        );
        d.start(who, None)?;
    }
    println!();
    d.step("everyone connected to the relay", |d| {
        (0..3).all(|w| d.connected(w) >= 1)
    })
    .await;

    // Public chat.
    println!("\n-- public chat #{PUBLIC}");
    for who in [ALICE, BOB, CAROL] {
        d.chat(who, ChatInput::JoinPublicChat(PUBLIC.into())).await;
    }
    // Give the subscriptions a moment to reach the relay (Waku topic interest).
    tokio::time::sleep(Duration::from_millis(500)).await;
    for who in [ALICE, BOB, CAROL] {
        d.say(who, PUBLIC, &format!("hello everyone, {} here", NAMES[who]))
            .await;
    }
    d.step("everyone got the two other public-chat messages", |d| {
        (0..3).all(|w| {
            (0..3)
                .filter(|&o| o != w)
                .all(|o| d.got(w, PUBLIC, &format!("hello everyone, {} here", NAMES[o])) == 1)
        })
    })
    .await;

    // 1:1.
    println!("\n-- 1:1 chat between alice and bob");
    let (a_pk, b_pk) = (d.key(ALICE), d.key(BOB));
    let (to_bob, to_alice) = (
        Messenger::one_to_one_chat_id(&b_pk),
        Messenger::one_to_one_chat_id(&a_pk),
    );
    d.chat(ALICE, ChatInput::StartOneToOne(b_pk)).await;
    d.say(ALICE, &to_bob, "hi bob, this is a private message").await;
    d.step("bob got alice's contact request and 1:1 message", |d| {
        d.contact_request(BOB, ALICE) && d.got(BOB, &to_alice, "hi bob, this is a private message") == 1
    })
    .await;
    d.say(BOB, &to_alice, "hi alice, got it").await;
    d.step("alice got bob's answer", |d| {
        d.got(ALICE, &to_bob, "hi alice, got it") == 1
    })
    .await;
    d.step("delivery confirmed both ways", |d| {
        d.delivered(ALICE, &to_bob, BOB) && d.delivered(BOB, &to_alice, ALICE)
    })
    .await;

    // Group.
    println!("\n-- group chat");
    d.chat(
        ALICE,
        ChatInput::CreateGroup {
            name: GROUP.into(),
            members: vec![d.key(BOB), d.key(CAROL)],
        },
    )
    .await;
    d.step("alice created the group", |d| d.group_id().is_some())
        .await;
    let group = d.group_id().unwrap_or_default();
    d.step("bob and carol joined the group with three members", |d| {
        d.in_group(BOB, &group) && d.in_group(CAROL, &group)
    })
    .await;
    for who in [ALICE, BOB, CAROL] {
        d.say(who, &group, &format!("{} in the group", NAMES[who])).await;
    }
    d.step("everyone got the two other group messages", |d| {
        (0..3).all(|w| {
            (0..3)
                .filter(|&o| o != w)
                .all(|o| d.got(w, &group, &format!("{} in the group", NAMES[o])) == 1)
        })
    })
    .await;

    // Carol goes offline.
    println!("\n-- carol goes offline");
    let state = d.stop(CAROL).await?;
    println!(
        "  carol  stopped; exported {} bytes of Messenger state",
        state.len()
    );
    d.say(ALICE, &group, "carol, you missed this").await;
    d.say(BOB, PUBLIC, "public news while carol is away").await;
    d.step("bob got alice's group message while carol is away", |d| {
        d.got(BOB, &group, "carol, you missed this") == 1
            && d.got(ALICE, PUBLIC, "public news while carol is away") == 1
    })
    .await;
    // Stay away longer than the envelopes live (TTL), so the relay no longer holds them in its pool:
    // only the mailserver's archive can give carol the public message.
    let ttl = u64::from(status_sansio::chat::messenger::CHAT_TTL) + 2;
    println!(
        "  (carol stays offline {ttl} s, longer than the envelopes' {} s TTL)",
        ttl - 2
    );
    tokio::time::sleep(Duration::from_secs(ttl)).await;
    println!("\n-- carol comes back (state imported)");
    let back = d.log.len();
    d.start(CAROL, Some(state))?;
    d.step("carol got the group message through MVDS", |d| {
        d.got(CAROL, &group, "carol, you missed this") == 1
    })
    .await;
    d.step("carol got the public message from the mailserver", |d| {
        d.got(CAROL, PUBLIC, "public news while carol is away") == 1 && d.fetched_history(CAROL, back)
    })
    .await;
    d.step("alice saw the group message delivered to carol", |d| {
        d.received_id(CAROL, &group, "carol, you missed this")
            .is_some_and(|id| d.delivered_id(ALICE, &id, CAROL))
    })
    .await;
    // Let late duplicates show themselves, then check nothing arrived twice.
    tokio::time::sleep(Duration::from_millis(500)).await;
    while let Ok((who, e)) = d.events.try_recv() {
        d.print(who, &e);
        d.log.push((who, e));
    }
    let dups = d
        .log
        .iter()
        .filter(|(_, e)| matches!(e, Event::Chat(ChatEvent::MessageReceived { own: false, .. })))
        .count();
    let unique = {
        let mut s = std::collections::BTreeSet::new();
        for (w, e) in &d.log {
            if let Event::Chat(ChatEvent::MessageReceived {
                chat,
                message,
                own: false,
            }) = e
            {
                s.insert((*w, chat.clone(), message.id));
            }
        }
        s.len()
    };
    println!();
    let no_dups = dups == unique;
    println!(
        "{} no message shown twice ({unique} received messages)",
        if no_dups { "[ok]    " } else { "[FAILED]" }
    );
    d.steps.push(("no message shown twice".into(), no_dups));

    for who in [ALICE, BOB, CAROL] {
        if let Err(e) = d.stop(who).await {
            println!("stopping {}: {e}", NAMES[who]);
        }
    }
    if relay_commands.send(NodeCommand::Shutdown).await.is_err() {
        println!("the relay had already stopped");
    }
    if let Err(e) = relay_task.await {
        println!("the relay task: {e}");
    }

    let passed = d.steps.iter().filter(|(_, ok)| *ok).count();
    println!("\nsummary: {passed}/{} steps", d.steps.len());
    for (what, ok) in &d.steps {
        println!("  {:<58} {}", what, if *ok { "ok" } else { "FAILED" });
    }
    Ok(passed == d.steps.len())
}
