//! The command line of `status-node`, on `clap` (derive), and the optional TOML config file of `run`.
//!
//! Adding a flag to `run`: add a field to [`RunArgs`] with its `#[arg(...)]` attribute and a doc comment
//! (the doc comment is the `--help` text). The config file accepts it at once under the flag's long name
//! (`data-dir = "..."`, `static-peer = ["enode://..."]`, `mailserver = true`), with the same validation:
//! the file's keys become `--key=value` arguments placed before the command line's, and a key also given on
//! the command line is skipped, so flags override the file.

use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use status_sansio::discovery::EnrTreeUrl;
use status_sansio::enode::Enode;

/// A Status protocol node built on status-sansio.
#[derive(Parser, Debug)]
#[command(name = "status-node", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a long-lived node: prints its enode:// URL as the first line, relays, keeps its peers
    /// connected, chats (commands on stdin, /help lists them), prints every received message on one line
    /// and logs to stderr.
    Run(Box<RunArgs>),
    /// Run the chat demo on loopback TCP: a relay (also a mailserver) and three clients, alice, bob and
    /// carol, in a public chat, 1:1 and in a group; carol goes offline and catches up when she returns.
    /// Exits 0 only if everything arrived.
    Demo,
    /// The transport-level demo: RLPx handshake, Hello (Snappy), Ping, a message and its echo, with the
    /// tokio driver, the std driver and across the two.
    #[command(name = "demo-rlpx")]
    DemoRlpx,
    /// Print a new identity: secret key, public key, compressed key, 3-word name and enode.
    Keygen,
    /// Run random scenarios in the deterministic simulator with the invariants on (network, workload and
    /// faults drawn from a seed); prints the line that replays a failure, then the summary and the trace
    /// digest.
    Sim(Box<crate::sim::SimArgs>),
    /// Print a shell completion script, e.g. `status-node completions bash > /etc/bash_completion.d/status-node`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// The log line format.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (fields, span fields, level, target, timestamp).
    Json,
}

/// How other nodes reach us (geth's `--nat` spelling).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nat {
    /// No translation: the listening address is the external one.
    None,
    /// This external IP, with the listening port.
    ExtIp(IpAddr),
}

/// The options of `status-node run`. Each can also be given in the `--config` file under its long name.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Read options from this TOML file; its keys are the long flag names (`listen = "0.0.0.0:30303"`,
    /// `static-peer = ["enode://..."]`, `mailserver = true`); flags on the command line override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// TCP address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:30303")]
    pub listen: SocketAddr,
    /// The external address others dial, put into the printed enode: extip:IP, or none (the listening
    /// address).
    #[arg(long, value_name = "extip:IP|none", default_value = "none", value_parser = parse_nat)]
    pub nat: Nat,
    /// Where state lives: node.key, identity.key (the chat key), state.redb (sessions, chats, clocks,
    /// group names; each change committed before what reveals it leaves), contacts.toml (nicknames), history.state,
    /// peers.cache, and mailserver.redb with --mailserver.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub data_dir: PathBuf,
    /// The node key (64 hex characters); created if missing [default: DATA-DIR/node.key].
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// Keep this peer connected (repeatable). The address must be an IP.
    #[arg(long, value_name = "ENODE", value_parser = parse_enode)]
    pub static_peer: Vec<Enode>,
    /// Archive envelopes (in DATA-DIR/mailserver.redb) and answer history requests.
    #[arg(long)]
    pub mailserver: bool,
    /// With --mailserver: archive in PostgreSQL instead (table `envelopes`, created if missing), e.g.
    /// postgres://user:password@host/db or "host=/run/postgresql dbname=db".
    #[arg(long, value_name = "URL")]
    pub mailserver_db: Option<String>,
    /// With --mailserver: keep the archive under this many bytes of envelopes, evicting the oldest first
    /// (suffixes K, M, G, T: powers of 1024).
    #[arg(long, value_name = "BYTES", default_value = "8G", value_parser = parse_bytes)]
    pub mailserver_max_bytes: u64,
    /// With --mailserver: keys of the archive one peer may scan per second for history requests (its
    /// burst is ten seconds' worth; a cursor continuation is always let through). status-go's client
    /// pages without pause, so this limits work, not requests.
    #[arg(long, value_name = "KEYS", default_value = "50000", value_parser = parse_positive)]
    pub mailserver_peer_scan_rate: u64,
    /// With --mailserver: keys all peers from one IP address may scan per second (burst: ten seconds').
    #[arg(long, value_name = "KEYS", default_value = "200000", value_parser = parse_positive)]
    pub mailserver_ip_scan_rate: u64,
    /// Run as a Waku light node (does not relay others' envelopes).
    #[arg(long)]
    pub light: bool,
    /// Use this peer as a mailserver: on connecting, fetch the history of joined chats since last seen
    /// (repeatable; the next one is used if one fails).
    #[arg(long, value_name = "ENODE", value_parser = parse_enode)]
    pub mailserver_peer: Vec<Enode>,
    /// Find peers in this EIP-1459 tree, enrtree://KEY@DOMAIN (repeatable).
    #[arg(long, value_name = "URL", value_parser = parse_enrtree)]
    pub dns_discovery: Vec<EnrTreeUrl>,
    /// Peers to keep connected, static ones included (at least 1).
    #[arg(long, value_name = "N", default_value = "3", value_parser = parse_target_peers)]
    pub target_peers: usize,
    /// Join this public chat (repeatable); received messages print as `[CHAT] Three Word Name: text`.
    #[arg(long, value_name = "NAME", value_parser = parse_chat_name)]
    pub public_chat: Vec<String>,
    /// Log format on stderr (the level comes from RUST_LOG, default info).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Serve Prometheus metrics (text format) over HTTP at this address, e.g. 127.0.0.1:9100.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
}

fn parse_nat(s: &str) -> Result<Nat, String> {
    if s == "none" {
        return Ok(Nat::None);
    }
    match s.strip_prefix("extip:") {
        Some(ip) => ip
            .parse()
            .map(Nat::ExtIp)
            .map_err(|_| format!("{ip:?} is not an IP address (extip:IP, e.g. extip:203.0.113.7)")),
        None => Err("supported: extip:IP (e.g. extip:203.0.113.7) or none".into()),
    }
}

/// An enode URL; a host name where the IP belongs gets a message saying so.
/// A byte count with an optional binary suffix: `512`, `64K`, `100M`, `8G`, `1T`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, shift) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("unknown size suffix {c:?} (use K, M, G or T)")),
            };
            (&s[..i], shift)
        }
        _ => (s, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a byte count such as 512M or 8G"))?;
    let bytes = n
        .checked_shl(shift)
        .filter(|b| b >> shift == n)
        .ok_or("too large")?;
    if bytes == 0 {
        return Err("must be more than zero".into());
    }
    Ok(bytes)
}

fn parse_positive(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("must be more than zero".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{s:?} is not a whole number")),
    }
}

pub fn parse_enode(s: &str) -> Result<Enode, String> {
    s.parse::<Enode>().map_err(|e| {
        let host = s
            .trim()
            .split_once('@')
            .map(|(_, a)| a.split('?').next().unwrap_or(a))
            .and_then(|a| a.rsplit_once(':').map(|(h, _)| h.trim_matches(['[', ']'])));
        match (e, host) {
            (status_sansio::enode::EnodeError::Address, Some(h))
                if !h.is_empty() && h.parse::<IpAddr>().is_err() =>
            {
                format!(
                    "{h:?} is a host name: an enode needs an IP address \
                     (e.g. enode://ID@127.0.0.1:30303 instead of enode://ID@localhost:30303)"
                )
            }
            (e, _) => format!("{e} (expected enode://<128 hex characters>@IP:PORT)"),
        }
    })
}

fn parse_enrtree(s: &str) -> Result<EnrTreeUrl, String> {
    s.parse::<EnrTreeUrl>()
        .map_err(|e| format!("{e} (expected enrtree://KEY@DOMAIN)"))
}

fn parse_target_peers(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{e} (a number of peers, at least 1)")),
    }
}

fn parse_chat_name(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() {
        Err("a chat name cannot be empty".into())
    } else if t.chars().any(char::is_whitespace) {
        Err("a chat name has no spaces".into())
    } else {
        Ok(t.to_string())
    }
}

/// Parse the command line (exiting with clap's message and status 2 on an error, 0 for `--help` and
/// `--version`), reading `run --config FILE` if given.
pub fn parse(args: Vec<OsString>) -> Cli {
    match try_parse(args) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    }
}

/// [`parse`] without exiting.
pub fn try_parse(args: Vec<OsString>) -> Result<Cli, clap::Error> {
    let mut cmd = Cli::command();
    let matches = cmd.try_get_matches_from_mut(args.clone())?;
    let matches = match matches.subcommand() {
        Some(("run", run)) => match run.get_one::<PathBuf>("config") {
            Some(path) => {
                let run_cmd = cmd
                    .find_subcommand("run")
                    .cloned()
                    .unwrap_or_else(|| clap::Command::new("run"));
                let from_file = config_args(path, run, &run_cmd).map_err(|msg| {
                    clap::Error::raw(clap::error::ErrorKind::InvalidValue, format!("{msg}\n"))
                })?;
                // The file alone first, so its errors name the file.
                let mut alone: Vec<OsString> = vec!["status-node".into(), "run".into()];
                alone.extend(from_file.iter().map(OsString::from));
                if let Err(e) = Cli::command().try_get_matches_from(alone) {
                    let rendered = e.render().to_string();
                    let first = rendered.lines().next().unwrap_or_default();
                    let msg = format!(
                        "config file {}: {}\n",
                        path.display(),
                        first.trim_start_matches("error: ")
                    );
                    return Err(clap::Error::raw(e.kind(), msg));
                }
                // The subcommand is the first argument (the top level has only --help and --version).
                let mut merged: Vec<OsString> = args.iter().take(2).cloned().collect();
                merged.extend(from_file.into_iter().map(OsString::from));
                merged.extend(args.iter().skip(2).cloned());
                Cli::command().try_get_matches_from(merged)?
            }
            None => matches,
        },
        _ => matches,
    };
    Cli::from_arg_matches(&matches)
}

/// The config file's keys as `--key=value` arguments, skipping those the command line gives.
fn config_args(path: &Path, cli: &ArgMatches, run: &clap::Command) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the config file {}: {e}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("config file {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (key, value) in table {
        let arg = run
            .get_arguments()
            .find(|a| {
                a.get_long() == Some(key.as_str()) && !matches!(key.as_str(), "config" | "help" | "version")
            })
            .ok_or_else(|| {
                format!(
                    "config file {}: unknown key {key:?} (the keys are the long flags of `status-node run`: \
                     listen, data-dir, static-peer, ...)",
                    path.display()
                )
            })?;
        if cli.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine) {
            continue;
        }
        let takes_value = arg.get_action().takes_values();
        let scalar = |v: &toml::Value| -> Result<String, String> {
            match v {
                toml::Value::String(s) => Ok(s.clone()),
                toml::Value::Integer(i) => Ok(i.to_string()),
                toml::Value::Float(f) => Ok(f.to_string()),
                _ => Err(format!(
                    "config file {}: {key}: expected a string or a number",
                    path.display()
                )),
            }
        };
        match (&value, takes_value) {
            (toml::Value::Boolean(b), false) => {
                if *b {
                    out.push(format!("--{key}"));
                }
            }
            (_, false) => {
                return Err(format!(
                    "config file {}: {key}: expected true or false",
                    path.display()
                ))
            }
            (toml::Value::Array(items), true) => {
                for item in items {
                    out.push(format!("--{key}={}", scalar(item)?));
                }
            }
            (v, true) => out.push(format!("--{key}={}", scalar(v)?)),
        }
    }
    Ok(out)
}

/// Print the completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "status-node", &mut std::io::stdout());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_take_binary_suffixes() {
        assert_eq!(parse_bytes("512"), Ok(512));
        assert_eq!(parse_bytes("64K"), Ok(64 << 10));
        assert_eq!(parse_bytes("100m"), Ok(100 << 20));
        assert_eq!(parse_bytes("8G"), Ok(8 << 30));
        assert_eq!(parse_bytes("1T"), Ok(1 << 40));
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("G").is_err());
        assert!(parse_bytes("16777216T").is_err(), "2^64 overflows");
        assert!(parse_bytes("-1").is_err());
    }

    fn args(a: &[&str]) -> Vec<OsString> {
        std::iter::once("status-node")
            .chain(a.iter().copied())
            .map(OsString::from)
            .collect()
    }

    #[test]
    fn the_command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn equals_and_space_forms_parse_alike() {
        let a = try_parse(args(&["run", "--listen=127.0.0.1:1", "--target-peers", "5"])).unwrap();
        let Command::Run(r) = a.command else {
            panic!("not run")
        };
        assert_eq!(r.listen.port(), 1);
        assert_eq!(r.target_peers, 5);
        assert_eq!(r.nat, Nat::None);
    }

    #[test]
    fn nat_and_enode_values_are_checked() {
        assert_eq!(
            parse_nat("extip:10.1.2.3"),
            Ok(Nat::ExtIp("10.1.2.3".parse().unwrap()))
        );
        assert!(parse_nat("upnp").unwrap_err().contains("extip:IP"));
        assert!(parse_nat("extip:example.org").unwrap_err().contains("not an IP"));
        let key = status_sansio::crypto::SecretKey::random(&mut status_sansio::Seed::from_u64(3).rng());
        let id = &status_sansio::chat::identity::pubkey_to_hex(&key.public_key())[4..];
        let e = parse_enode(&format!("enode://{id}@localhost:30303")).unwrap_err();
        assert!(e.contains("needs an IP address"), "{e}");
        assert!(parse_enode(&format!("enode://{id}@127.0.0.1:30303")).is_ok());
        let e = parse_enode(&format!("enode://{}@127.0.0.1:30303", "ab".repeat(64))).unwrap_err();
        assert!(e.contains("expected enode://"), "{e}");
    }
}
