//! The terminal chat of `status-node run`: commands read from stdin, chats named by short names, and the
//! lines printed for chat events.
//!
//! Names: a public chat by its name; a 1:1 chat by the contact's nickname (`/add KEY NICK`, kept in
//! `DATA-DIR/contacts.toml`) or 3-word name; a group by its name (kept in the Messenger's state, so it
//! survives a restart). Full chat ids keep working. Keys are accepted in every form `keygen` prints: the
//! uncompressed `0x04…` hex, the compressed `zQ3sh…` string and an `enode://` URL's node id.
//!
//! Stdin is read as bytes, a line at a time, at most [`MAX_LINE`] bytes: a longer line, or one that is not
//! UTF-8, is refused with a message and the reader goes on with the next line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use status_sansio::chat::identity::{pubkey_from_hex, pubkey_from_multibase, pubkey_to_hex, three_word_name};
use status_sansio::chat::messenger::{ChatKind, Event as ChatEvent, Input as ChatInput, Messenger};
use status_sansio::chat::payloads::MessageId;
use status_sansio::crypto::PublicKey;
use std::io::BufRead;

use tokio::sync::mpsc;

/// Longest stdin line accepted, in bytes (without the line break).
pub const MAX_LINE: usize = 8 * 1024;

/// One line of stdin.
#[derive(Debug, PartialEq, Eq)]
pub enum StdinLine {
    /// A UTF-8 line (without its line break).
    Text(String),
    /// A line longer than [`MAX_LINE`] bytes (skipped up to its line break, never buffered whole).
    TooLong,
    /// A line that is not valid UTF-8.
    NotUtf8,
}

/// Read `input` line by line on its own OS thread; the channel closes at end of input or on a read error.
///
/// A thread rather than a task: a blocking read cannot be cancelled, and a runtime waits for its blocking
/// tasks when it shuts down, so a pending read of stdin would keep `/quit` from ending the program.
pub fn spawn_stdin_reader<R: std::io::Read + Send + 'static>(input: R) -> mpsc::Receiver<StdinLine> {
    let (tx, rx) = mpsc::channel(16);
    let reader = move || {
        let mut reader = std::io::BufReader::new(input);
        let mut line: Vec<u8> = Vec::new();
        let mut too_long = false;
        loop {
            let chunk = match reader.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!("stdin: {e}");
                    break;
                }
            };
            if chunk.is_empty() {
                // End of input: a last line without a line break still counts.
                if too_long || !line.is_empty() {
                    // The receiver may be gone (the program is stopping); nothing to do then.
                    tx.blocking_send(finish(&mut line, too_long)).ok();
                }
                break;
            }
            let (part, end) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (&chunk[..i], Some(i + 1)),
                None => (chunk, None),
            };
            if !too_long {
                if line.len() + part.len() > MAX_LINE {
                    too_long = true;
                    line = Vec::new();
                } else {
                    line.extend_from_slice(part);
                }
            }
            let used = end.unwrap_or(chunk.len());
            reader.consume(used);
            if end.is_some() {
                let l = finish(&mut line, too_long);
                too_long = false;
                if tx.blocking_send(l).is_err() {
                    break;
                }
            }
        }
    };
    if let Err(e) = std::thread::Builder::new().name("stdin".into()).spawn(reader) {
        // Without a reader the channel is closed at once: the node runs without commands.
        tracing::warn!("cannot read stdin: {e}");
    }
    rx
}

fn finish(line: &mut Vec<u8>, too_long: bool) -> StdinLine {
    let bytes = std::mem::take(line);
    if too_long {
        return StdinLine::TooLong;
    }
    match String::from_utf8(bytes) {
        Ok(mut s) => {
            if s.ends_with('\r') {
                s.pop();
            }
            StdinLine::Text(s)
        }
        Err(_) => StdinLine::NotUtf8,
    }
}

/// The help printed by `/help`.
pub const HELP: &str = "\
commands:
  /join NAME                 join a public chat
  /leave CHAT                leave a public chat or a group
  /add KEY [NICK]            start a 1:1 chat; KEY is a 0x04... key, a zQ3sh... key or an enode://;
                             the chat is then named NICK or the contact's 3-word name
  /group NAME MEMBER...      create a group (members by key or nickname)
  /invite GROUP MEMBER       add a member to a group (admins only)
  /kick GROUP MEMBER         remove a member from a group (admins only)
  /msg CHAT TEXT             write TEXT in CHAT (a public chat, a contact's nickname or 3-word name, a
                             group's name, or a chat id)
  /chats                     list the chats and their names
  /peers                     list the connected peers
  /whoami                    print our chat key and name
  /help                      this list
  /quit                      save state and stop";

/// Parse a public key in any form `keygen` prints.
pub fn parse_key(s: &str) -> Result<PublicKey, String> {
    let s = s.trim();
    let r = if let Some(rest) = s.strip_prefix("enode://") {
        let id = rest.split('@').next().unwrap_or(rest);
        pubkey_from_hex(&format!("0x04{id}")).map_err(|e| e.to_string())
    } else if s.starts_with('z') {
        pubkey_from_multibase(s).map_err(|e| e.to_string())
    } else if s.len() == 128 && !s.starts_with("0x") {
        pubkey_from_hex(&format!("0x04{s}")).map_err(|e| e.to_string())
    } else {
        pubkey_from_hex(s).map_err(|e| e.to_string())
    };
    r.map_err(|e| format!("{s:?} is not a key ({e}): give a 0x04... key, a zQ3sh... key or an enode:// URL"))
}

/// The chats and their short names.
#[derive(Debug, Default)]
pub struct Book {
    public: BTreeSet<String>,
    /// 1:1 chats by chat id (the contact's `0x04…` key) with the key.
    direct: BTreeMap<String, PublicKey>,
    /// Groups: id → name.
    groups: BTreeMap<String, String>,
    /// Nicknames of contacts.
    nicks: BTreeMap<String, PublicKey>,
    /// Where the nicknames are kept.
    path: Option<PathBuf>,
}

/// What a command asks the node to do.
#[derive(Debug)]
pub enum Command {
    /// Nothing (an empty line).
    None,
    /// Print this.
    Say(String),
    /// Print the chats.
    Chats,
    /// Print the peers.
    Peers,
    /// Print our key and name.
    WhoAmI,
    /// Stop.
    Quit,
    /// A Messenger command, and what to do when it is accepted.
    Chat(Box<ChatInput>, OnOk),
}

fn chat_cmd(input: ChatInput, ok: OnOk) -> Command {
    Command::Chat(Box::new(input), ok)
}

/// What to do when a Messenger command is accepted.
#[derive(Debug)]
pub enum OnOk {
    /// Print this line.
    Say(String),
    /// A contact was added (with a nickname, maybe).
    Added(PublicKey, Option<String>),
    /// A public chat was joined.
    Joined(String),
    /// A chat was left.
    Left(String),
}

impl Book {
    /// The chats the Messenger has (after restoring its state), and the nicknames kept at `path`.
    pub fn new(messenger: Option<&Messenger>, path: Option<PathBuf>) -> std::io::Result<Book> {
        let mut book = Book {
            path,
            ..Book::default()
        };
        if let Some(m) = messenger {
            for chat in m.chats() {
                match m.chat_kind(chat) {
                    Some(ChatKind::Public) => {
                        book.public.insert(chat.to_string());
                    }
                    Some(ChatKind::OneToOne) => {
                        if let Ok(k) = pubkey_from_hex(chat) {
                            book.direct.insert(chat.to_string(), k);
                        }
                    }
                    Some(ChatKind::Group) => {
                        let name = m.group(chat).map(|g| g.name().to_string()).unwrap_or_default();
                        book.groups.insert(chat.to_string(), name);
                    }
                    None => {}
                }
            }
        }
        if let Some(p) = &book.path {
            book.nicks = load_nicks(p)?;
        }
        Ok(book)
    }

    /// The short name of a chat, as printed.
    pub fn label(&self, chat: &str) -> String {
        if let Some(k) = self.direct.get(chat) {
            return self.contact_name(k);
        }
        if let Some(name) = self.groups.get(chat) {
            if !name.is_empty() {
                return name.clone();
            }
        }
        chat.to_string()
    }

    /// A contact's nickname, or its 3-word name.
    pub fn contact_name(&self, k: &PublicKey) -> String {
        self.nicks
            .iter()
            .find(|(_, v)| *v == k)
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| three_word_name(k))
    }

    /// Every (name, chat id) pair a chat can be called by.
    fn names(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for p in &self.public {
            out.push((p.clone(), p.clone()));
        }
        for (id, k) in &self.direct {
            out.push((id.clone(), id.clone()));
            out.push((three_word_name(k), id.clone()));
        }
        for (nick, k) in &self.nicks {
            let id = pubkey_to_hex(k);
            if self.direct.contains_key(&id) {
                out.push((nick.clone(), id));
            }
        }
        for (id, name) in &self.groups {
            out.push((id.clone(), id.clone()));
            if !name.is_empty() {
                out.push((name.clone(), id.clone()));
            }
        }
        out
    }

    /// Split `rest` into a chat (its longest known name at the start) and what follows.
    pub fn split_chat<'a>(&self, rest: &'a str) -> Result<(String, &'a str), String> {
        let mut best: Option<(usize, BTreeSet<String>)> = None;
        for (name, id) in self.names() {
            let n = name.len();
            let fits = rest.len() >= n
                && rest.is_char_boundary(n)
                && rest[..n].eq_ignore_ascii_case(&name)
                && (rest.len() == n || rest[n..].starts_with(' '));
            if !fits {
                continue;
            }
            match &mut best {
                Some((len, ids)) if *len == n => {
                    ids.insert(id);
                }
                Some((len, _)) if *len > n => {}
                _ => best = Some((n, BTreeSet::from([id]))),
            }
        }
        match best {
            Some((n, ids)) if ids.len() == 1 => {
                let id = ids.into_iter().next().unwrap_or_default();
                Ok((id, rest[n..].trim_start()))
            }
            Some((n, ids)) => Err(format!(
                "{:?} names {} chats ({}): use the chat id",
                &rest[..n],
                ids.len(),
                ids.into_iter().collect::<Vec<_>>().join(", ")
            )),
            None => {
                let first = rest.split_whitespace().next().unwrap_or("");
                Err(format!("no chat named {first:?}; /chats lists the chats"))
            }
        }
    }

    /// A member: a key in any form, or a contact's nickname.
    pub fn member(&self, s: &str) -> Result<PublicKey, String> {
        match self.nicks.get(s) {
            Some(k) => Ok(*k),
            None => parse_key(s).map_err(|e| format!("{e}, or a nickname")),
        }
    }

    /// Parse a command line.
    pub fn parse(&self, me: &PublicKey, line: &str) -> Command {
        match self.try_parse(me, line) {
            Ok(c) => c,
            Err(msg) => Command::Say(msg),
        }
    }

    fn try_parse(&self, me: &PublicKey, line: &str) -> Result<Command, String> {
        let line = line.trim();
        let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
        let rest = rest.trim();
        let need = |ok: bool, usage: &str| {
            if ok {
                Ok(())
            } else {
                Err(format!("usage: {usage}"))
            }
        };
        Ok(match cmd {
            "" => Command::None,
            "/quit" => Command::Quit,
            "/whoami" => Command::WhoAmI,
            "/help" => Command::Say(HELP.into()),
            "/chats" => Command::Chats,
            "/peers" => Command::Peers,
            "/join" => {
                need(!rest.is_empty() && !rest.contains(' '), "/join NAME")?;
                chat_cmd(ChatInput::JoinPublicChat(rest.into()), OnOk::Joined(rest.into()))
            }
            "/leave" => {
                need(!rest.is_empty(), "/leave CHAT")?;
                let (chat, tail) = self.split_chat(rest)?;
                need(tail.is_empty(), "/leave CHAT")?;
                let input = if self.groups.contains_key(&chat) {
                    ChatInput::LeaveGroup {
                        chat: chat.clone().into(),
                    }
                } else {
                    ChatInput::LeavePublicChat(chat.clone().into())
                };
                chat_cmd(input, OnOk::Left(chat))
            }
            "/add" => {
                let mut words = rest.split_whitespace();
                let (key, nick) = (words.next(), words.next());
                need(key.is_some() && words.next().is_none(), "/add KEY [NICK]")?;
                let key = parse_key(key.unwrap_or_default())?;
                if key == *me {
                    return Err("that is our own key".into());
                }
                if let Some(n) = nick {
                    self.check_nick(n, &key)?;
                }
                chat_cmd(
                    ChatInput::StartOneToOne(key),
                    OnOk::Added(key, nick.map(String::from)),
                )
            }
            "/msg" => {
                need(!rest.is_empty(), "/msg CHAT TEXT")?;
                let (chat, text) = self.split_chat(rest)?;
                need(!text.is_empty(), "/msg CHAT TEXT")?;
                chat_cmd(
                    ChatInput::SendText {
                        chat: chat.into(),
                        text: text.into(),
                    },
                    OnOk::Say(String::new()),
                )
            }
            "/group" => {
                let mut words = rest.split_whitespace();
                let name = words.next();
                need(name.is_some(), "/group NAME MEMBER...")?;
                let members = words.map(|w| self.member(w)).collect::<Result<Vec<_>, _>>()?;
                chat_cmd(
                    ChatInput::CreateGroup {
                        name: name.unwrap_or_default().into(),
                        members,
                    },
                    OnOk::Say(String::new()),
                )
            }
            "/invite" | "/kick" => {
                let usage = format!("{cmd} GROUP MEMBER");
                let (group, member) = rest.rsplit_once(' ').ok_or(format!("usage: {usage}"))?;
                let (chat, tail) = self.split_chat(group.trim())?;
                need(tail.is_empty() && self.groups.contains_key(&chat), &usage)?;
                let member = self.member(member)?;
                let label = self.label(&chat);
                if cmd == "/invite" {
                    let say = format!("invited {} to {label}", self.contact_name(&member));
                    chat_cmd(
                        ChatInput::AddMembers {
                            chat: chat.into(),
                            members: vec![member],
                        },
                        OnOk::Say(say),
                    )
                } else {
                    let say = format!("removed {} from {label}", self.contact_name(&member));
                    chat_cmd(
                        ChatInput::RemoveMember {
                            chat: chat.into(),
                            member,
                        },
                        OnOk::Say(say),
                    )
                }
            }
            c if c.starts_with('/') => {
                return Err(format!("unknown command {c}; /help lists the commands"));
            }
            _ => return Err("commands start with /; to write in a chat: /msg CHAT TEXT (/help)".into()),
        })
    }

    fn check_nick(&self, nick: &str, key: &PublicKey) -> Result<(), String> {
        if nick.starts_with('/') || nick.starts_with("0x") || nick.starts_with("enode:") {
            return Err(format!("{nick:?} cannot be a nickname"));
        }
        if let Some(k) = self.nicks.get(nick) {
            if k != key {
                return Err(format!("{nick:?} already names {}", three_word_name(k)));
            }
        }
        if self.public.contains(nick) || self.groups.values().any(|g| g == nick) {
            return Err(format!("{nick:?} already names a chat"));
        }
        Ok(())
    }

    /// The line to print when a command was accepted, updating the names.
    pub fn accepted(&mut self, ok: OnOk) -> std::io::Result<Option<String>> {
        Ok(match ok {
            OnOk::Say(s) if s.is_empty() => None,
            OnOk::Say(s) => Some(s),
            OnOk::Joined(name) => {
                let line = format!("joined {name}");
                self.public.insert(name);
                Some(line)
            }
            OnOk::Left(chat) => {
                let line = format!("left {}", self.label(&chat));
                self.public.remove(&chat);
                self.groups.remove(&chat);
                Some(line)
            }
            OnOk::Added(key, nick) => {
                let id = pubkey_to_hex(&key);
                self.direct.insert(id.clone(), key);
                if let Some(n) = &nick {
                    self.nicks.retain(|_, k| *k != key);
                    self.nicks.insert(n.clone(), key);
                    if let Some(p) = &self.path {
                        save_nicks(p, &self.nicks)?;
                    }
                }
                let name = three_word_name(&key);
                Some(match nick {
                    Some(n) => format!("added {n} ({name}): /msg {n} TEXT"),
                    None => format!("added {name}: /msg {name} TEXT"),
                })
            }
        })
    }

    /// The `/chats` listing.
    pub fn chats(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.public {
            out.push(format!("public  {}", printable(p)));
        }
        for (id, k) in &self.direct {
            let name = three_word_name(k);
            let label = self.contact_name(k);
            if label == name {
                out.push(format!("1:1     {name}  {id}"));
            } else {
                out.push(format!("1:1     {}  ({name})  {id}", printable(&label)));
            }
        }
        for (id, name) in &self.groups {
            out.push(format!("group   {}  {}", printable(name), printable(id)));
        }
        if out.is_empty() {
            out.push("no chats: /join NAME, /add KEY [NICK] or /group NAME MEMBER...".into());
        }
        out
    }

    /// The stdout line for a chat event, if it has one, updating the names.
    pub fn event_line(&mut self, e: ChatEvent) -> Option<String> {
        match e {
            ChatEvent::MessageReceived {
                chat,
                message,
                own: false,
            } => {
                let who = three_word_name(&message.author);
                Some(format!(
                    "[{}] {who}: {}",
                    printable(&self.label(&chat)),
                    printable(&message.describe())
                ))
            }
            ChatEvent::ContactRequest { from, chat } => {
                self.direct.insert(chat.into_string(), from);
                let name = three_word_name(&from);
                Some(format!("contact request from {name}: /msg {name} TEXT answers"))
            }
            ChatEvent::GroupCreated { chat, name } => {
                let line = format!("group {} created: {}", printable(&name), printable(&chat));
                self.groups.insert(chat.into_string(), name);
                Some(line)
            }
            ChatEvent::MembershipChanged {
                chat,
                name,
                members,
                removed_self,
                ..
            } => {
                let line = if removed_self {
                    self.groups.remove(chat.as_str());
                    format!("removed from group {} ({})", printable(&name), printable(&chat))
                } else {
                    let names: Vec<String> = members.iter().map(|m| self.contact_name(m)).collect();
                    let line = format!(
                        "group {} ({}): members {}",
                        printable(&name),
                        printable(&chat),
                        printable(&names.join(", "))
                    );
                    self.groups.insert(chat.into_string(), name);
                    line
                };
                Some(line)
            }
            ChatEvent::MessageSent { chat, id } => {
                Some(format!("[{}] sent {}", printable(&self.label(&chat)), short(&id)))
            }
            ChatEvent::Delivered { chat, id, to } => Some(format!(
                "[{}] delivered {} to {} \u{2713}",
                printable(&self.label(&chat)),
                short(&id),
                printable(&self.contact_name(&to))
            )),
            ChatEvent::DeliveryFailed { chat, id, to } => Some(format!(
                "[{}] could not deliver {} to {}",
                printable(&self.label(&chat)),
                short(&id),
                printable(&self.contact_name(&to))
            )),
            ChatEvent::Dropped { reason } => {
                tracing::info!(reason = %printable(&reason.to_string()), "chat message dropped");
                None
            }
            other => {
                tracing::debug!(event = ?other, "chat");
                None
            }
        }
    }
}

/// The first 8 hex characters of a message id.
fn short(id: &MessageId) -> String {
    id.0.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// `s` with control characters (escape sequences, line breaks) and bidirectional overrides shown
/// escaped: texts, group names and group ids come from peers and must not drive the terminal.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn load_nicks(path: &Path) -> std::io::Result<BTreeMap<String, PublicKey>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    };
    let table: toml::Table = text
        .parse()
        .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?;
    let mut out = BTreeMap::new();
    if let Some(toml::Value::Table(nicks)) = table.get("nicknames") {
        for (nick, key) in nicks {
            match key.as_str().map(pubkey_from_hex) {
                Some(Ok(k)) => {
                    out.insert(nick.clone(), k);
                }
                _ => tracing::warn!(path = %path.display(), %nick, "not a 0x04... key; nickname ignored"),
            }
        }
    }
    Ok(out)
}

fn save_nicks(path: &Path, nicks: &BTreeMap<String, PublicKey>) -> std::io::Result<()> {
    let mut inner = toml::Table::new();
    for (n, k) in nicks {
        inner.insert(n.clone(), toml::Value::String(pubkey_to_hex(k)));
    }
    let mut table = toml::Table::new();
    table.insert("nicknames".into(), toml::Value::Table(inner));
    let text = format!(
        "# Nicknames of contacts (status-node /add KEY NICK).\n{}",
        toml::to_string(&table).map_err(std::io::Error::other)?
    );
    status_io_std::state_file::write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use status_sansio::chat::messenger::ChatEntry;
    use status_sansio::crypto::SecretKey;
    use status_sansio::Seed;

    fn key(n: u64) -> PublicKey {
        SecretKey::random(&mut Seed::from_u64(n).rng()).public_key()
    }

    #[test]
    fn peer_texts_and_group_names_cannot_drive_the_terminal() {
        let author = key(1);
        let chat = format!("\u{1b}]52;c;ZXZpbA==\u{7}-{}", pubkey_to_hex(&author));
        let mut book = Book::default();
        let created = ChatEvent::MembershipChanged {
            chat: chat.clone().into(),
            name: "evil\u{1b}[2J\u{202e}".into(),
            members: vec![author],
            admins: vec![author],
            removed_self: false,
        };
        let text = ChatEvent::MessageReceived {
            chat: chat.into(),
            message: ChatEntry {
                id: MessageId([0; 32]),
                author,
                clock: 1,
                timestamp: 1,
                text: "hi\u{1b}[31m\nfake line\r".into(),
                content: Default::default(),
            },
            own: false,
        };
        for e in [created, text] {
            let line = book.event_line(e).unwrap_or_default();
            assert!(!line.is_empty());
            assert!(
                line.chars()
                    .all(|c| !c.is_control() && !('\u{202a}'..='\u{202e}').contains(&c)),
                "{line:?}"
            );
        }
        assert_eq!(printable("plain text, ünïcode"), "plain text, ünïcode");
    }

    #[test]
    fn chats_are_found_by_short_names_and_keys_in_every_form() {
        let (me, bob) = (key(1), key(2));
        let mut book = Book::default();
        let compressed = status_sansio::chat::identity::compressed_key_string(&bob);
        let Command::Chat(input, ok) = book.parse(&me, &format!("/add {compressed} bob")) else {
            panic!("not an add")
        };
        let ChatInput::StartOneToOne(k) = *input else {
            panic!("not an add")
        };
        assert_eq!(k, bob);
        assert!(book.accepted(ok).unwrap().unwrap().starts_with("added bob ("));
        let name = three_word_name(&bob);
        for line in ["/msg bob hi there".to_string(), format!("/msg {name} hi there")] {
            match book.parse(&me, &line) {
                Command::Chat(input, _) => match *input {
                    ChatInput::SendText { chat, text } => {
                        assert_eq!(chat, pubkey_to_hex(&bob));
                        assert_eq!(text, "hi there");
                    }
                    other => panic!("{line}: {other:?}"),
                },
                other => panic!("{line}: {other:?}"),
            }
        }
        let enode = format!("enode://{}@127.0.0.1:1", &pubkey_to_hex(&bob)[4..]);
        assert_eq!(parse_key(&enode), Ok(bob));
        assert!(
            matches!(book.parse(&me, "/msg nobody hi"), Command::Say(s) if s.contains("no chat named \"nobody\""))
        );
        assert!(
            matches!(book.parse(&me, "/frobnicate"), Command::Say(s) if s.contains("unknown command /frobnicate"))
        );
        let mut g = book.event_line(ChatEvent::GroupCreated {
            chat: "g1".into(),
            name: "friends".into(),
        });
        assert!(g.take().unwrap().contains("friends"));
        assert!(
            matches!(book.parse(&me, "/msg friends yo"), Command::Chat(input, _) if matches!(&*input, ChatInput::SendText { chat, .. } if chat == "g1"))
        );
        assert_eq!(book.label("g1"), "friends");
    }
}
