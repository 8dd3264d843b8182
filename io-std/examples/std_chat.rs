//! A chat client on the blocking driver: the whole node (RLPx, Waku, secure transport, MVDS, Messenger)
//! in one thread, commands from stdin, one line per received message.
//!
//! `cargo run -p status-io-std --example std_chat -- --static-peer ENODE [--public-chat NAME]...`
//!
//! Commands: `/join NAME`, `/add 0x04…` (start a 1:1 chat), `/msg CHAT TEXT` (CHAT is a public chat name,
//! a `0x04…` key or a group id), `/group NAME 0x04… 0x04…` (create a group), `/quit`.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use status_io_std::node::BlockingNode;
use status_io_std::{os_seed, Clock};
use status_sansio::chat::identity::{pubkey_from_hex, pubkey_to_hex, three_word_name};
use status_sansio::chat::messenger::{Event as ChatEvent, Input as ChatInput, Messenger, MessengerConfig};
use status_sansio::crypto::SecretKey;
use status_sansio::enode::Enode;
use status_sansio::node::{Engine, EngineConfig, Event, Input};
use status_sansio::rlpx::{self, Protocol};

fn parse_command(line: &str) -> Result<Option<ChatInput>, String> {
    let line = line.trim();
    let bad = |e| format!("{e}");
    if let Some(name) = line.strip_prefix("/join ") {
        Ok(Some(ChatInput::JoinPublicChat(name.trim().into())))
    } else if let Some(key) = line.strip_prefix("/add ") {
        Ok(Some(ChatInput::StartOneToOne(
            pubkey_from_hex(key.trim()).map_err(bad)?,
        )))
    } else if let Some(rest) = line.strip_prefix("/msg ") {
        let (chat, text) = rest.split_once(' ').ok_or("usage: /msg CHAT TEXT")?;
        Ok(Some(ChatInput::SendText {
            chat: chat.into(),
            text: text.into(),
        }))
    } else if let Some(rest) = line.strip_prefix("/group ") {
        let mut words = rest.split_whitespace();
        let name = words.next().ok_or("usage: /group NAME 0x04... [0x04...]")?;
        let members = words
            .map(pubkey_from_hex)
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        Ok(Some(ChatInput::CreateGroup {
            name: name.into(),
            members,
        }))
    } else if line.is_empty() {
        Ok(None)
    } else {
        Err("commands: /join NAME, /add 0x04..., /msg CHAT TEXT, /group NAME 0x04..., /quit".into())
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut statics = Vec::new();
    let mut chats = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match (args[i].as_str(), args.get(i + 1)) {
            ("--static-peer", Some(e)) => statics.push(e.parse::<Enode>().map_err(std::io::Error::other)?),
            ("--public-chat", Some(c)) => chats.push(c.clone()),
            _ => {
                eprintln!("usage: std_chat --static-peer ENODE [--public-chat NAME]...");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    let mut rng = os_seed().rng();
    let identity = SecretKey::random(&mut rng);
    let protocols = vec![Protocol::new("waku", 1, 128).unwrap_or_else(|| unreachable!())];
    let mut config = EngineConfig::new(Arc::new(rlpx::Config::new(
        SecretKey::random(&mut rng),
        protocols,
    )));
    config.static_peers = statics;
    println!(
        "chat key {} ({})",
        pubkey_to_hex(&identity.public_key()),
        three_word_name(&identity.public_key())
    );
    config.messenger = Some(MessengerConfig::new(identity, "std-chat".into()));
    let mut node = BlockingNode::new(
        Engine::new(config, &os_seed(), Clock::new().now()).map_err(std::io::Error::other)?,
        None,
    );
    for c in chats {
        let _ = node.input(Input::Chat(ChatInput::JoinPublicChat(c.into())));
    }
    // Stdin on its own thread; the node thread polls the channel between steps.
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        while let Ok(line) = rx.try_recv() {
            if line.trim() == "/quit" {
                return Ok(());
            }
            match parse_command(&line) {
                Ok(Some(cmd)) => {
                    if let Err(e) = node.input(Input::Chat(cmd)) {
                        eprintln!("refused: {e}");
                    }
                }
                Ok(None) => {}
                Err(usage) => eprintln!("{usage}"),
            }
        }
        for e in node.step(Duration::from_millis(100)) {
            match e {
                Event::PeerConnected { client, .. } => eprintln!("connected to {client}"),
                Event::Chat(ChatEvent::MessageReceived {
                    chat,
                    message,
                    own: false,
                }) => println!("[{chat}] {}: {}", three_word_name(&message.author), message.text),
                Event::Chat(ChatEvent::ContactRequest { from, .. }) => println!(
                    "contact request from {} (chat {})",
                    three_word_name(&from),
                    Messenger::one_to_one_chat_id(&from)
                ),
                Event::Chat(ChatEvent::GroupCreated { chat, name }) => println!("group {name} is {chat}"),
                Event::Chat(ChatEvent::Delivered { id, .. }) => eprintln!("delivered {id}"),
                _ => {}
            }
        }
    }
}
