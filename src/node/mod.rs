//! The node engine: RLPx connections and the Waku node composed into one sans-IO state machine
//! (docs/protocol/status-client.md: relayer and mobile-node roles, static peers).
//!
//! The driver owns sockets: it dials when asked ([`Output::Dial`]), reports the outcome
//! ([`Input::Connected`] / [`Input::DialFailed`]), reports inbound connections ([`Input::Accepted`]), moves
//! bytes ([`Input::Received`] / [`Output::Transmit`]) and closes when asked ([`Output::Close`]) or when the
//! socket ends ([`Input::Closed`]). Everything else is here:
//!
//! * one [`Connection`] per socket; when its Hello completes, the highest shared dialect (`waku/1`, else
//!   `shh/6`) is attached to the [`WakuNode`] as a peer;
//! * static peers are dialled at start and redialled after a failure or a disconnect, with exponential
//!   backoff (`reconnect_min` doubling to `reconnect_max`, with jitter from the seeded RNG), reset once a
//!   connection has lasted `stable_after`;
//! * more peers, up to `target_peers`, come from a cache of good peers and from discovery: EIP-1459 DNS
//!   trees walked by a [`DnsTreeClient`] inside the engine (the driver answers [`Output::ResolveTxt`] with
//!   [`Input::DnsResolved`]) and [`Input::AddPeerCandidate`]; discovery is suspended at the target and
//!   resumed below it (the rules are in [`peers`]);
//! * **admission**: inbound sockets still in their handshake (no Hello yet) have their own slots,
//!   `max_handshakes` in all and `max_handshakes_per_ip` from one address (the driver names it with
//!   [`Input::AcceptedFrom`]): a socket past the per-IP cap is closed at once, and when every slot is
//!   taken the oldest handshake of the address holding the most slots is closed to make room, so idle
//!   sockets cannot lock honest peers out. An inbound connection beyond `max_peers` *established*
//!   peers is refused with 0x04 once frames can carry it; a second connection to a node we are already
//!   connected to with 0x05. Outbound dials are never held back by inbound sockets: static peers and
//!   mailservers are always dialled, discovery candidates while established peers plus our dials are
//!   below `max_peers`. A peer we drop for a protocol fault (reasons 0x02 and 0x10), and its address,
//!   are refused for `fault_backoff` (inbound sockets from the address are closed at once; its key is
//!   refused with 0x03 after the handshake); every connection from the address shares one Waku rate
//!   budget and pool share ([`WakuNode::set_peer_source`]). Loopback addresses are exempt from the
//!   address back-off and the address grouping (local tools and tests run many nodes on one address;
//!   the per-address handshake cap still applies);
//! * application commands go to the Waku node ([`Input::Waku`], [`Engine::subscribe`]), and its events come
//!   out as [`Event::Waku`];
//! * with `messenger` set, the [`Messenger`] runs on top: its subscriptions and posts go to the Waku node,
//!   the messages its filters open come back to it, its timers (MVDS retransmission) run with the
//!   engine's, and its events come out as [`Event::Chat`]; [`Engine::with_messenger`] starts with a
//!   resumed one ([`Messenger::import`] of [`Engine::export_messenger`]);
//! * with `mailserver` set, every accepted envelope is archived and history requests are answered by the
//!   [`MailServer`], whose storage actions come out as [`Output::Store`] / [`Output::Query`] /
//!   [`Output::Prune`] for the driver to carry out;
//! * with `mailservers` set, they are dialled like static peers, trusted, and asked for the history of
//!   the watched topics on every (re)connect ([`history`]; events as [`Event::History`]).
//!
//! Misuse is reported as [`NodeError`] (or the layer's own error). Connection ids are chosen by the engine for dials and by the driver for accepted sockets; the two
//! ranges never meet (dials use ids with the top bit set).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand_chacha::ChaCha20Rng;

use crate::chat::messenger::{self, Messenger, MessengerConfig};
use crate::crypto::PublicKey;
use crate::discovery::dnstree::{self, DnsConfig, DnsTreeClient, EnrTreeUrl};
use crate::enode::Enode;
use crate::mailserver::server::{self as mailserver, MailServer, MailServerConfig, QueryId, KEY_LEN};
use crate::rlpx::{self, Connection, DisconnectReason};
use crate::rng::{fork, Seed};
use crate::time::{earliest, Timestamp};
use crate::waku::{self, Dialect, Filter, FilterId, PeerId, WakuConfig, WakuError, WakuNode};

pub mod history;
pub use crate::mailserver::client::{Event as HistoryEvent, HistoryConfig};
pub mod peers;

use peers::{Origin, Peers, PeersConfig};

/// Errors of the engine itself (API misuse); the layers' own errors pass through [`crate::Error`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// No socket with this id (or it is still dialling when it should not be).
    #[error("unknown connection {0:?}")]
    UnknownConnection(ConnId),
    /// An accepted socket id is in use or has the dial bit set.
    #[error("connection id {0:?} is in use or has the dial bit")]
    InvalidConnectionId(ConnId),
    /// A command for a part that is not configured (`"messenger"`, `"mailserver"`).
    #[error("{0} is not configured")]
    NotConfigured(&'static str),
    /// The Messenger refused a command.
    #[error(transparent)]
    Messenger(#[from] messenger::MessengerError),
    /// [`peers::MAX_STATIC_PEERS`] static peers are kept already.
    #[error("too many static peers")]
    TooManyStaticPeers,
    /// Bytes given as a peer cache are not one.
    #[error("invalid peer cache: {0}")]
    PeerCache(&'static str),
}

/// Identifies one socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// Ids the engine assigns to its dials have this bit set; the driver must use ids without it.
pub const DIAL_ID_BIT: u64 = 1 << 63;

/// Engine configuration.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// RLPx: identity, client id, capabilities (include `waku/1`; `shh/6` for old peers) and limits.
    pub rlpx: Arc<rlpx::Config>,
    /// The Waku node.
    pub waku: WakuConfig,
    /// Peers to keep connected.
    pub static_peers: Vec<Enode>,
    /// Most simultaneous connections, in and out. Default 32. Inbound sockets past it are refused with
    /// 0x04 after the handshake, at most `max_peers` of them at a time; further ones are closed at once.
    pub max_peers: usize,
    /// First redial delay. Default 1 s.
    pub reconnect_min: Duration,
    /// Longest redial delay. Default 2 min.
    pub reconnect_max: Duration,
    /// A connection that lasts this long resets the backoff. Default 30 s.
    pub stable_after: Duration,
    /// Run a mailserver: archive every envelope and answer history requests (storage goes through
    /// [`Output::Store`], [`Output::Query`], [`Output::Prune`]). Default off.
    pub mailserver: Option<MailServerConfig>,
    /// Run the Messenger (chats) with this identity. Default off.
    pub messenger: Option<MessengerConfig>,
    /// Mailservers to fetch history from: dialled like static peers and trusted. Default none.
    pub mailservers: Vec<Enode>,
    /// The history client's limits and timers.
    pub history: HistoryConfig,
    /// Inbound sockets in their handshake at once (separate from `max_peers`). Default 64.
    pub max_handshakes: usize,
    /// Inbound sockets in their handshake from one IP address. Default 4.
    pub max_handshakes_per_ip: usize,
    /// How long a peer dropped for a protocol fault, and its IP address, are refused. Default 5 min.
    pub fault_backoff: Duration,
    /// Peers to keep (static ones included; static peers are kept even past it). Default 3, the upper
    /// end of the mobile target of docs/protocol/status-client.md ("2-3 peers").
    pub target_peers: usize,
    /// EIP-1459 trees (`enrtree://<key>@<domain>`, parsed with `str::parse`) to find peers in. At most
    /// [`DnsConfig::max_trees`] are used. Default none.
    pub dns_discovery: Vec<EnrTreeUrl>,
    /// Limits and timers of the DNS tree client.
    pub dns: DnsConfig,
    /// A peer cache from [`Engine::export_peer_cache`] of an earlier run; its peers are dialled first. A
    /// cache that does not decode is ignored (use [`Engine::import_peer_cache`] to see why). Default none.
    pub peer_cache: Option<Vec<u8>>,
}

impl EngineConfig {
    /// Defaults around an RLPx configuration.
    pub fn new(rlpx: Arc<rlpx::Config>) -> Self {
        EngineConfig {
            rlpx,
            waku: WakuConfig::default(),
            static_peers: vec![],
            max_peers: 32,
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(120),
            stable_after: Duration::from_secs(30),
            mailserver: None,
            messenger: None,
            mailservers: vec![],
            history: HistoryConfig::default(),
            max_handshakes: 64,
            max_handshakes_per_ip: 4,
            fault_backoff: Duration::from_secs(300),
            target_peers: 3,
            dns_discovery: vec![],
            dns: DnsConfig::default(),
            peer_cache: None,
        }
    }
}

/// Inputs.
#[derive(Debug)]
pub enum Input<'a> {
    /// The driver accepted an inbound socket and named it `conn` (top bit clear); its address is
    /// unknown (all such sockets share one address for admission). Prefer [`Input::AcceptedFrom`].
    Accepted {
        /// The id.
        conn: ConnId,
    },
    /// The driver accepted an inbound socket from `addr` and named it `conn` (top bit clear).
    AcceptedFrom {
        /// The id.
        conn: ConnId,
        /// The remote address.
        addr: SocketAddr,
    },
    /// A dial we asked for connected.
    Connected {
        /// The id from [`Output::Dial`].
        conn: ConnId,
    },
    /// A dial we asked for failed.
    DialFailed {
        /// The id from [`Output::Dial`].
        conn: ConnId,
    },
    /// Bytes read from a socket.
    Received {
        /// From which.
        conn: ConnId,
        /// The bytes.
        data: &'a [u8],
    },
    /// A socket ended (EOF or error).
    Closed {
        /// Which.
        conn: ConnId,
    },
    /// Keep this peer connected from now on (at most [`peers::MAX_STATIC_PEERS`]).
    AddStaticPeer(Enode),
    /// A peer found by some discovery method: dialled when the engine is below `target_peers`.
    AddPeerCandidate(Enode),
    /// The answer to [`Output::ResolveTxt`]: the TXT records of `name` (each record's strings joined), or
    /// `None` if the lookup failed.
    /// An answer for a name that was not asked (or without `dns_discovery`) is ignored.
    DnsResolved {
        /// The name from [`Output::ResolveTxt`].
        name: String,
        /// The records, or `None`.
        txt: Option<Vec<String>>,
    },
    /// The store's answer to [`Output::Query`] (mailserver only).
    QueryResult {
        /// The query.
        query: QueryId,
        /// `(key, envelope RLP)` in ascending key order.
        entries: Vec<([u8; KEY_LEN], Bytes)>,
    },
    /// A Waku command (post, broadcast, trust, P2P requests, PoW requirement).
    Waku(waku::Input),
    /// A Messenger command (join a chat, send a text); requires `messenger` in the configuration.
    Chat(messenger::Input),
    /// Ask the mailservers for history now: of these topics, or of every watched topic when empty.
    /// Requires `mailservers` in the configuration.
    RequestHistory(Vec<waku::Topic>),
}

/// Outputs.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Open a TCP connection to `addr`; report [`Input::Connected`] or [`Input::DialFailed`] with `conn`.
    Dial {
        /// The id the engine gives this socket.
        conn: ConnId,
        /// Where.
        addr: SocketAddr,
    },
    /// Write bytes to a socket.
    Transmit {
        /// Which.
        conn: ConnId,
        /// The bytes.
        data: Bytes,
    },
    /// Close a socket (after writing what was transmitted before).
    Close {
        /// Which.
        conn: ConnId,
    },
    /// Mailserver storage: store `value` under `key`.
    Store {
        /// The 40-byte key.
        key: [u8; KEY_LEN],
        /// The envelope RLP.
        value: Bytes,
    },
    /// Mailserver storage: answer with [`Input::QueryResult`] the entries with `start ≤ key < end`.
    Query {
        /// The query id.
        query: QueryId,
        /// Inclusive lower bound.
        start: [u8; KEY_LEN],
        /// Exclusive upper bound.
        end: [u8; KEY_LEN],
        /// Most entries.
        limit: usize,
    },
    /// Mailserver storage: delete entries sent before `before` (UNIX seconds).
    Prune {
        /// The cut-off.
        before: u32,
    },
    /// Look up the TXT records of `name` and answer with [`Input::DnsResolved`] (DNS discovery; a few at a
    /// time, [`DnsConfig::max_in_flight`]).
    ResolveTxt {
        /// The DNS name.
        name: String,
    },
    /// Something happened.
    Event(Event),
}

/// Events.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A peer completed the RLPx handshake and Hello.
    PeerConnected {
        /// Its socket.
        conn: ConnId,
        /// Its identity.
        id: PublicKey,
        /// Its client id.
        client: String,
        /// The Waku dialect attached.
        dialect: Option<Dialect>,
    },
    /// A peer went away.
    PeerDisconnected {
        /// Its socket.
        conn: ConnId,
        /// Its identity, if the handshake got that far.
        id: Option<PublicKey>,
        /// The Disconnect reason.
        reason: DisconnectReason,
        /// True if the remote ended it.
        remote: bool,
    },
    /// A Waku event (messages opened by the Messenger's filters go to the Messenger instead).
    Waku(waku::Event),
    /// A Messenger event.
    Chat(messenger::Event),
    /// A mailserver history event.
    History(HistoryEvent),
    /// The peer target is reached: DNS discovery stops looking (only with `dns_discovery`).
    DiscoverySuspended,
    /// Below the peer target with nothing left to dial: DNS discovery looks again (only with
    /// `dns_discovery`).
    DiscoveryResumed,
    /// A DNS tree event (a linked tree, a finished walk, a rejected entry); found nodes become candidates.
    DnsTree(dnstree::Event),
}

struct Conn {
    rlpx: Connection,
    id: Option<PublicKey>,
    dialect: Option<Dialect>,
    /// Why we dialled it (dials only).
    origin: Option<Origin>,
    since: Timestamp,
    /// Dial requested, socket not yet connected.
    dialing: bool,
    /// Refuse this connection with this reason as soon as frames can carry it.
    refuse: Option<DisconnectReason>,
    /// The remote IP address (dials: the enode's; inbound: from [`Input::AcceptedFrom`]).
    ip: Option<IpAddr>,
}

impl Conn {
    /// An inbound socket whose Hello has not completed.
    fn handshaking_inbound(&self) -> bool {
        self.origin.is_none() && !self.rlpx.is_active()
    }
}

/// Most entries in each back-off table (keys and addresses); the soonest to expire gives way.
pub const MAX_BACKOFF_ENTRIES: usize = 4096;

/// Peers and addresses refused until a time.
#[derive(Debug, Default)]
struct Backoff {
    keys: BTreeMap<[u8; 33], Timestamp>,
    ips: BTreeMap<IpAddr, Timestamp>,
}

fn insert_bounded<K: Ord + Clone>(map: &mut BTreeMap<K, Timestamp>, now: Timestamp, k: K, until: Timestamp) {
    map.retain(|_, t| *t > now);
    if map.len() >= MAX_BACKOFF_ENTRIES && !map.contains_key(&k) {
        let soonest = map.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone());
        if let Some(old) = soonest {
            map.remove(&old);
        }
    }
    map.insert(k, until);
}

/// The Waku rate-limit source of an address: IPv4 addresses each, IPv6 by /64 prefix.
fn ip_source(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => (1 << 62) | u64::from(u32::from(v4)),
        IpAddr::V6(v6) => {
            let o = v6.octets();
            let mut p = [0u8; 8];
            p.copy_from_slice(&o[..8]);
            (3 << 62) | (u64::from_be_bytes(p) & 0x3fff_ffff_ffff_fffe)
        }
    }
}

/// The engine. See the [module docs](self).
pub struct Engine {
    config: EngineConfig,
    rng: ChaCha20Rng,
    waku: WakuNode,
    conns: BTreeMap<ConnId, Conn>,
    peers: Peers,
    dns: Option<DnsTreeClient>,
    outputs: std::collections::VecDeque<Output>,
    next_dial_id: u64,
    mailserver: Option<MailServer>,
    messenger: Option<Messenger>,
    history: history::History,
    /// Waku filters installed for the Messenger's chats.
    chat_filters: BTreeMap<String, FilterId>,
    /// The latest time the engine was given (for calls that take no time, such as `subscribe`).
    last_now: Timestamp,
    mailserver_stats: MailserverStats,
    backoff: Backoff,
}

/// Mailserver counters (see [`Engine::mailserver_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MailserverStats {
    /// History requests received (P2P requests handed to the mailserver).
    pub requests: u64,
    /// Envelopes sent to requesting peers.
    pub envelopes_served: u64,
}

impl core::fmt::Debug for Engine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Engine")
            .field("conns", &self.conns.len())
            .field("waku", &self.waku)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// A new engine; static peers are dialled on the first `handle_timeout` at or after `now`.
    pub fn new(now: Timestamp, config: EngineConfig, seed: Seed) -> Self {
        let mut rng = seed.rng();
        let mut waku_config = config.waku.clone();
        waku_config.mailserver |= config.mailserver.is_some();
        // The Messenger records its own sends: its posts need not be opened by its own filters.
        waku_config.open_own_posts &= config.messenger.is_none();
        let waku = WakuNode::new(waku_config, fork(&mut rng));
        let mailserver = config
            .mailserver
            .clone()
            .map(|m| MailServer::new(now, m, crate::rng::SeededState::new(&mut rng)));
        let messenger = config
            .messenger
            .clone()
            // An invalid Messenger configuration leaves the engine without one until `Engine::new`
            // returns `Result` (engine rework, issue 11).
            .and_then(|m| Messenger::new(m, &fork(&mut rng), now).ok());
        let history = history::History::new(
            config.history.clone(),
            config.mailservers.iter().map(|e| e.id).collect(),
            fork(&mut rng),
        );
        // Mailservers are kept connected like static peers.
        let mut keep: Vec<Enode> = vec![];
        for e in config.static_peers.iter().chain(&config.mailservers) {
            if !keep.iter().any(|k| k.id == e.id) {
                keep.push(e.clone());
            }
        }
        let peers = Peers::new(
            now,
            PeersConfig {
                target: config.target_peers,
                reconnect_min: config.reconnect_min,
                reconnect_max: config.reconnect_max,
                stable_after: config.stable_after,
            },
            &keep,
        );
        let dns = (!config.dns_discovery.is_empty())
            .then(|| {
                let mut urls = config.dns_discovery.clone();
                urls.truncate(config.dns.max_trees);
                DnsTreeClient::new(config.dns.clone(), &urls, &fork(&mut rng)).ok()
            })
            .flatten();
        let cache = config.peer_cache.clone();
        let mut engine = Engine {
            config,
            rng,
            waku,
            conns: BTreeMap::new(),
            peers,
            dns,
            outputs: Default::default(),
            next_dial_id: DIAL_ID_BIT,
            mailserver,
            messenger,
            history,
            chat_filters: BTreeMap::new(),
            last_now: now,
            mailserver_stats: MailserverStats::default(),
            backoff: Backoff::default(),
        };
        if let Some(c) = cache {
            let _ = engine.import_peer_cache(now, &c);
        }
        engine
    }

    /// Add the good peers of a cache made by [`Engine::export_peer_cache`] (they are dialled first).
    /// Returns how many were added; fails, adding nothing, on bytes that are not a peer cache.
    pub fn import_peer_cache(&mut self, now: Timestamp, bytes: &[u8]) -> Result<usize, NodeError> {
        let own = self.public_key();
        self.peers.import_cache(now, bytes, &own)
    }

    /// The good peers (dialled, Waku, up for `stable_after`) as bytes to keep across restarts: at most
    /// [`peers::CACHE_SIZE`] peers, under [`peers::MAX_CACHE_BYTES`]. Give them back in
    /// [`EngineConfig::peer_cache`].
    pub fn export_peer_cache(&self) -> Vec<u8> {
        self.peers.export_cache()
    }

    /// Candidates remembered (discovered and cached), at most [`peers::MAX_CANDIDATES`].
    pub fn peer_candidates(&self) -> usize {
        self.peers.candidate_count()
    }

    /// Good peers in the cache, at most [`peers::CACHE_SIZE`].
    pub fn peer_cache_len(&self) -> usize {
        self.peers.cache_len()
    }

    /// Whether discovery is running (below the target with nothing left to dial).
    pub fn discovery_running(&self) -> bool {
        self.peers.discovery_running()
    }

    /// A new engine running `messenger` (e.g. one resumed with [`Messenger::import`]) instead of a fresh
    /// one from `config.messenger`.
    pub fn with_messenger(now: Timestamp, config: EngineConfig, seed: Seed, messenger: Messenger) -> Self {
        let mut e = Engine::new(now, config, seed);
        e.waku.set_open_own_posts(false);
        e.messenger = Some(messenger);
        e.pump(now);
        e
    }

    /// The Messenger's state for [`Messenger::import`] (`None` without a messenger). Holds secrets.
    pub fn export_messenger(&self) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        self.messenger.as_ref().map(Messenger::export)
    }

    /// The Messenger (read-only: chats, messages).
    pub fn messenger(&self) -> Option<&Messenger> {
        self.messenger.as_ref()
    }

    /// The Waku node (read-only: pool, peers, stats).
    pub fn waku(&self) -> &WakuNode {
        &self.waku
    }

    /// Our node identity.
    pub fn public_key(&self) -> PublicKey {
        self.config.rlpx.public_key()
    }

    /// Say goodbye to every peer: connections past their handshake send a Disconnect with `reason`
    /// (e.g. [`DisconnectReason::ClientQuitting`] at shutdown) and close; the others just close. Drain
    /// [`Engine::poll_output`] afterwards and write the transmits before closing the sockets.
    pub fn disconnect_all(&mut self, now: Timestamp, reason: DisconnectReason) {
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in conns {
            let Some(c) = self.conns.get_mut(&conn) else {
                continue;
            };
            if c.rlpx.handle_input(now, rlpx::Input::Disconnect(reason)).is_err() {
                let _ = c.rlpx.handle_input(now, rlpx::Input::TransportClosed);
            }
        }
        self.pump(now);
    }

    /// Subscribe a Waku filter.
    pub fn subscribe(&mut self, filter: Filter) -> Result<FilterId, WakuError> {
        let r = self.waku.subscribe(filter);
        self.pump(self.last_now);
        r
    }

    /// Remove a Waku filter.
    pub fn unsubscribe(&mut self, id: FilterId) -> bool {
        let r = self.waku.unsubscribe(id);
        self.pump(self.last_now);
        r
    }

    /// The mailserver's counters (all zero without `mailserver`).
    pub fn mailserver_stats(&self) -> MailserverStats {
        self.mailserver_stats
    }

    /// Number of sockets with a completed Hello.
    pub fn connected_peers(&self) -> usize {
        self.conns.values().filter(|c| c.rlpx.is_active()).count()
    }

    /// Feed an input. `Err` only for misuse: an unknown connection id, an accepted id with the dial bit,
    /// or an invalid Waku command.
    pub fn handle_input(&mut self, now: Timestamp, input: Input<'_>) -> Result<(), crate::Error> {
        match input {
            Input::Accepted { conn } => self.accept(now, conn, None)?,
            Input::AcceptedFrom { conn, addr } => self.accept(now, conn, Some(addr.ip()))?,
            Input::Connected { conn } => {
                let c = self
                    .conns
                    .get_mut(&conn)
                    .ok_or(NodeError::UnknownConnection(conn))?;
                c.dialing = false;
                c.since = now;
            }
            Input::DialFailed { conn } => {
                let c = self
                    .conns
                    .remove(&conn)
                    .ok_or(NodeError::UnknownConnection(conn))?;
                if let Some(o) = c.origin {
                    self.peers.on_dial_failed(now, o, &mut self.rng);
                }
            }
            Input::Received { conn, data } => {
                // Bytes for a socket we already closed are a benign race with the driver: ignored.
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.rlpx.handle_input(now, rlpx::Input::Receive(data))?;
                }
            }
            Input::Closed { conn } => {
                let dialing = self.conns.get(&conn).is_some_and(|c| c.dialing);
                if dialing {
                    // A socket that ends before it was reported connected is a failed dial.
                    if let Some(o) = self.conns.remove(&conn).and_then(|c| c.origin) {
                        self.peers.on_dial_failed(now, o, &mut self.rng);
                    }
                } else if let Some(c) = self.conns.get_mut(&conn) {
                    c.rlpx.handle_input(now, rlpx::Input::TransportClosed)?;
                }
            }
            Input::AddStaticPeer(enode) => self.peers.add_static(now, enode)?,
            Input::AddPeerCandidate(enode) => self.add_candidate(enode),
            Input::DnsResolved { name, txt } => {
                if let Some(d) = &mut self.dns {
                    let input = match txt {
                        Some(texts) => dnstree::Input::TxtRecords { name, texts },
                        None => dnstree::Input::ResolveFailed { name },
                    };
                    d.handle_input(now, input);
                }
                self.drain_dns();
            }
            Input::Waku(w) => self.waku.handle_input(now, w)?,
            Input::Chat(c) => {
                let m = self
                    .messenger
                    .as_mut()
                    .ok_or(NodeError::NotConfigured("messenger"))?;
                m.handle_input(now, c).map_err(NodeError::from)?;
            }
            Input::QueryResult { query, entries } => {
                let m = self
                    .mailserver
                    .as_mut()
                    .ok_or(NodeError::NotConfigured("mailserver"))?;
                m.handle_input(now, mailserver::Input::QueryResult { query, entries })?;
            }
            Input::RequestHistory(topics) => self.history_request(now, &topics)?,
        }
        self.pump(now);
        if self.peers.take_dirty() {
            self.dial_candidates(now);
        }
        Ok(())
    }

    /// Admit an inbound socket (see the module docs).
    fn accept(&mut self, now: Timestamp, conn: ConnId, ip: Option<IpAddr>) -> Result<(), crate::Error> {
        if conn.0 & DIAL_ID_BIT != 0 || self.conns.contains_key(&conn) {
            return Err(NodeError::InvalidConnectionId(conn).into());
        }
        let banned = ip.is_some_and(|ip| self.backoff.ips.get(&ip).is_some_and(|t| *t > now));
        let from_ip = self
            .conns
            .values()
            .filter(|c| c.handshaking_inbound() && c.ip == ip)
            .count();
        if banned || from_ip >= self.config.max_handshakes_per_ip || self.config.max_handshakes == 0 {
            self.outputs.push_back(Output::Close { conn });
            return Ok(());
        }
        let pending = self.conns.values().filter(|c| c.handshaking_inbound()).count();
        if pending >= self.config.max_handshakes {
            // Every slot taken: the oldest handshake of the address holding the most slots gives way.
            let mut per_ip: BTreeMap<Option<IpAddr>, (usize, Timestamp, ConnId)> = BTreeMap::new();
            for (k, c) in self.conns.iter().filter(|(_, c)| c.handshaking_inbound()) {
                let e = per_ip.entry(c.ip).or_insert((0, c.since, *k));
                e.0 += 1;
                if (c.since, *k) < (e.1, e.2) {
                    e.1 = c.since;
                    e.2 = *k;
                }
            }
            let victim = per_ip
                .values()
                .max_by(|a, b| a.0.cmp(&b.0).then((b.1, b.2).cmp(&(a.1, a.2))))
                .map(|v| v.2);
            if let Some(v) = victim {
                self.conns.remove(&v);
                self.outputs.push_back(Output::Close { conn: v });
            }
        }
        let seed = fork(&mut self.rng);
        let c = Connection::recipient(now, self.config.rlpx.clone(), seed)?;
        // Over the cap of established peers: the handshake goes on until frames exist, so the peer is
        // told why (0x04).
        let refuse =
            (self.connected_peers() >= self.config.max_peers).then_some(DisconnectReason::TooManyPeers);
        self.conns.insert(
            conn,
            Conn {
                rlpx: c,
                id: None,
                dialect: None,
                origin: None,
                since: now,
                dialing: false,
                refuse,
                ip,
            },
        );
        Ok(())
    }

    /// Outbound connections being set up or established, and established inbound ones.
    fn outbound_and_established(&self) -> usize {
        self.conns
            .values()
            .filter(|c| c.origin.is_some() || c.rlpx.is_active())
            .count()
    }

    fn add_candidate(&mut self, enode: Enode) {
        if enode.id != self.public_key() {
            self.peers.add_candidate(enode, None);
        }
    }

    /// Move the DNS client's queries out and its nodes into the candidates.
    fn drain_dns(&mut self) {
        while let Some(o) = self.dns.as_mut().and_then(|d| d.poll_output()) {
            match o {
                dnstree::Output::Resolve { name } => self.outputs.push_back(Output::ResolveTxt { name }),
                dnstree::Output::Event(dnstree::Event::Node(enr)) => {
                    if let Some(e) = enr.to_enode() {
                        self.add_candidate(e);
                    }
                }
                dnstree::Output::Event(e) => self.outputs.push_back(Output::Event(Event::DnsTree(e))),
            }
        }
    }

    /// Open an outbound connection for `origin`.
    fn dial(&mut self, now: Timestamp, enode: &Enode, origin: Origin) {
        let conn = ConnId(self.next_dial_id);
        self.next_dial_id += 1;
        let seed = fork(&mut self.rng);
        match Connection::initiator(now, self.config.rlpx.clone(), enode.id, seed) {
            Ok(c) => {
                self.conns.insert(
                    conn,
                    Conn {
                        rlpx: c,
                        id: Some(enode.id),
                        dialect: None,
                        origin: Some(origin),
                        since: now,
                        dialing: true,
                        refuse: None,
                        ip: Some(enode.addr.ip()),
                    },
                );
                self.peers.dialing(origin, conn);
                self.outputs.push_back(Output::Dial {
                    conn,
                    addr: enode.addr,
                });
            }
            Err(_) => self.peers.dial_impossible(origin),
        }
    }

    fn busy(&self, id: &PublicKey) -> bool {
        self.conns.values().any(|c| c.id.as_ref() == Some(id))
    }

    /// Dial candidates up to the target, then suspend or resume discovery.
    fn dial_candidates(&mut self, now: Timestamp) {
        loop {
            let established = self.connected_peers();
            if !self.peers.wants_dial(established) || self.outbound_and_established() >= self.config.max_peers
            {
                break;
            }
            let conns = &self.conns;
            let pick = self
                .peers
                .pick(|k| conns.values().any(|c| c.id.as_ref() == Some(k)));
            match pick {
                Some((id, enode)) => self.dial(now, &enode, Origin::Candidate(id)),
                None => break,
            }
        }
        match self.peers.discovery_step(self.connected_peers()) {
            Some(true) => {
                if let Some(d) = &mut self.dns {
                    d.resync(now);
                    self.outputs.push_back(Output::Event(Event::DiscoveryResumed));
                }
            }
            Some(false) if self.dns.is_some() => {
                self.outputs.push_back(Output::Event(Event::DiscoverySuspended))
            }
            _ => {}
        }
        self.drain_dns();
    }

    /// Fire every deadline `<= now`: dials, RLPx timers, Waku timers.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        for i in self.peers.due_statics(now) {
            let Some(enode) = self.peers.static_enode(i).cloned() else {
                continue;
            };
            // Static peers and mailservers are always dialled: inbound load never holds them back.
            if self.busy(&enode.id) {
                // Already connected (it dialled us): look again later.
                self.peers.static_retry_later(now, i);
                continue;
            }
            self.dial(now, &enode, Origin::Static(i));
        }
        self.peers.handle_timeout(now);
        if self.peers.discovery_running() {
            if let Some(d) = &mut self.dns {
                d.handle_timeout(now);
            }
        }
        for c in self.conns.values_mut() {
            c.rlpx.handle_timeout(now);
        }
        self.waku.handle_timeout(now);
        if let Some(m) = &mut self.mailserver {
            m.handle_timeout(now);
        }
        self.history.client.handle_timeout(now);
        if let Some(m) = &mut self.messenger {
            m.handle_timeout(now);
        }
        self.pump(now);
        self.peers.take_dirty();
        self.dial_candidates(now);
    }

    /// The earliest pending deadline.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let mut t = self.waku.poll_timeout();
        for c in self.conns.values() {
            t = earliest(t, c.rlpx.poll_timeout());
        }
        t = earliest(t, self.peers.poll_timeout());
        if self.peers.discovery_running() {
            t = earliest(t, self.dns.as_ref().and_then(|d| d.poll_timeout()));
        }
        t = earliest(t, self.history.client.poll_timeout());
        t = earliest(t, self.messenger.as_ref().and_then(|m| m.poll_timeout()));
        earliest(t, self.mailserver.as_ref().and_then(|m| m.poll_timeout()))
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Move outputs between the connections and the Waku node until both are quiet.
    fn pump(&mut self, now: Timestamp) {
        self.last_now = self.last_now.max(now);
        loop {
            let mut moved = false;
            let ids: Vec<ConnId> = self.conns.keys().copied().collect();
            for id in ids {
                if let Some(c) = self.conns.get_mut(&id) {
                    if c.origin.is_none() && c.refuse.is_none() {
                        // A key in back-off is refused once the handshake names it.
                        if let Some(k) = c.rlpx.remote_id() {
                            let key = crate::crypto::pubkey_to_compressed(&k);
                            if self.backoff.keys.get(&key).is_some_and(|t| *t > now) {
                                c.refuse = Some(DisconnectReason::UselessPeer);
                            }
                        }
                    }
                    if c.refuse.is_some() && c.rlpx.remote_id().is_some() {
                        let reason = c.refuse.take().unwrap_or(DisconnectReason::TooManyPeers);
                        let _ = c.rlpx.handle_input(now, rlpx::Input::Disconnect(reason));
                    }
                }
                while let Some(o) =
                    self.conns
                        .get_mut(&id)
                        .and_then(|c| if c.dialing { None } else { c.rlpx.poll_output() })
                {
                    moved = true;
                    self.on_rlpx_output(now, id, o);
                }
            }
            while let Some(o) = self.history_next_waku_output() {
                moved = true;
                match o {
                    waku::Output::Event(e) if self.history.wants(&e) => self.history_on_waku(now, e),
                    waku::Output::Send { peer, code, data } => {
                        let conn = ConnId(peer.0);
                        if let Some(c) = self.conns.get_mut(&conn) {
                            let cap = c.dialect.map_or("waku", |d| d.capability());
                            // A full output queue drops the packet (the RLPx cap is the backpressure).
                            let _ = c.rlpx.handle_input(
                                now,
                                rlpx::Input::Send {
                                    capability: cap,
                                    code,
                                    payload: &data,
                                },
                            );
                        }
                    }
                    waku::Output::Disconnect { peer, reason } => {
                        if let Some(c) = self.conns.get_mut(&ConnId(peer.0)) {
                            let _ = c.rlpx.handle_input(now, rlpx::Input::Disconnect(reason));
                        }
                    }
                    waku::Output::Event(waku::Event::EnvelopeAccepted { hash, envelope })
                        if self.mailserver.is_some() =>
                    {
                        if let Some(m) = &mut self.mailserver {
                            let _ = m.handle_input(now, mailserver::Input::Archive { hash, envelope });
                        }
                    }
                    waku::Output::Event(waku::Event::P2PRequest { peer, data })
                        if self.mailserver.is_some() =>
                    {
                        if let Some(m) = &mut self.mailserver {
                            self.mailserver_stats.requests += 1;
                            let _ = m.handle_input(now, mailserver::Input::Request { peer, data });
                        }
                    }
                    waku::Output::Event(waku::Event::Message(m))
                        if self.chat_filters.values().any(|f| *f == m.filter) =>
                    {
                        if let Some(ms) = &mut self.messenger {
                            let _ = ms.handle_input(now, messenger::Input::Received(m));
                        }
                    }
                    waku::Output::Event(e) => self.outputs.push_back(Output::Event(Event::Waku(e))),
                }
            }
            while let Some(o) = self.messenger.as_mut().and_then(|m| m.poll_output()) {
                moved = true;
                match o {
                    messenger::Output::Subscribe { chat, filter } => {
                        if let Ok(id) = self.waku.subscribe(filter) {
                            if let Some(old) = self.chat_filters.insert(chat, id) {
                                self.waku.unsubscribe(old);
                            }
                        }
                    }
                    messenger::Output::Unsubscribe { chat } => {
                        if let Some(id) = self.chat_filters.remove(&chat) {
                            self.waku.unsubscribe(id);
                        }
                    }
                    messenger::Output::Transmit(m) => {
                        let _ = self.waku.handle_input(now, waku::Input::Post(m));
                    }
                    messenger::Output::Event(e) => self.outputs.push_back(Output::Event(Event::Chat(e))),
                }
            }
            moved |= self.history_pump(now);
            while let Some(o) = self.mailserver.as_mut().and_then(|m| m.poll_output()) {
                moved = true;
                match o {
                    mailserver::Output::Store { key, value } => {
                        self.outputs.push_back(Output::Store { key, value })
                    }
                    mailserver::Output::Query {
                        query,
                        start,
                        end,
                        limit,
                    } => self.outputs.push_back(Output::Query {
                        query,
                        start,
                        end,
                        limit,
                    }),
                    mailserver::Output::Prune { before } => self.outputs.push_back(Output::Prune { before }),
                    mailserver::Output::Send { peer, envelopes } => {
                        self.mailserver_stats.envelopes_served += envelopes.len() as u64;
                        let _ = self
                            .waku
                            .handle_input(now, waku::Input::SendP2PMessages { peer, envelopes });
                    }
                    mailserver::Output::Complete { peer, payload } => {
                        let _ = self
                            .waku
                            .handle_input(now, waku::Input::SendRequestComplete { peer, payload });
                    }
                }
            }
            if !moved {
                break;
            }
        }
    }

    fn on_rlpx_output(&mut self, now: Timestamp, conn: ConnId, o: rlpx::Output) {
        match o {
            rlpx::Output::Transmit(data) => self.outputs.push_back(Output::Transmit { conn, data }),
            rlpx::Output::Close => {
                if let Some(c) = self.conns.remove(&conn) {
                    if let Some(o) = c.origin {
                        let lasted = now.saturating_duration_since(c.since);
                        self.peers.on_closed(now, o, lasted, &mut self.rng);
                    }
                }
                self.outputs.push_back(Output::Close { conn });
            }
            rlpx::Output::Event(rlpx::Event::Connected {
                remote_id,
                hello,
                capabilities,
            }) => {
                let duplicate = self
                    .conns
                    .iter()
                    .any(|(k, c)| *k != conn && c.id == Some(remote_id) && c.rlpx.is_active());
                if duplicate {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        let _ = c
                            .rlpx
                            .handle_input(now, rlpx::Input::Disconnect(DisconnectReason::AlreadyConnected));
                    }
                    return;
                }
                // Handshakes run in their own slots, so the cap on established peers is checked again
                // when an inbound Hello completes.
                let inbound = self.conns.get(&conn).is_some_and(|c| c.origin.is_none());
                let established = self
                    .conns
                    .iter()
                    .filter(|(k, c)| **k != conn && c.rlpx.is_active())
                    .count();
                if inbound && established >= self.config.max_peers {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        let _ = c
                            .rlpx
                            .handle_input(now, rlpx::Input::Disconnect(DisconnectReason::TooManyPeers));
                    }
                    return;
                }
                let dialect = if capabilities
                    .iter()
                    .any(|c| c.name.as_str() == "waku" && c.version == 1)
                {
                    Some(Dialect::Waku1)
                } else if capabilities
                    .iter()
                    .any(|c| c.name.as_str() == "shh" && c.version == 6)
                {
                    Some(Dialect::Whisper6)
                } else {
                    None
                };
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.id = Some(remote_id);
                    c.dialect = dialect;
                    c.since = now;
                    if let Some(o) = c.origin {
                        self.peers.on_up(now, o, dialect.is_some());
                    }
                }
                if let Some(d) = dialect {
                    let peer = PeerId(conn.0);
                    let attached = self
                        .waku
                        .handle_input(now, waku::Input::PeerConnected { peer, dialect: d })
                        .is_ok();
                    // Every connection from one address shares one rate budget and pool share.
                    let grouped = self
                        .conns
                        .get(&conn)
                        .and_then(|c| c.ip)
                        .filter(|ip| attached && !ip.is_loopback());
                    if let Some(ip) = grouped {
                        let known = self.waku.set_peer_source(now, peer, ip_source(ip));
                        debug_assert!(known, "the peer was just attached");
                        // The mailserver charges this peer's history scans to its address as well.
                        if let Some(m) = &mut self.mailserver {
                            let named = m.handle_input(now, mailserver::Input::PeerIp { peer, ip });
                            debug_assert!(named.is_ok(), "naming a peer's address cannot fail");
                        }
                    }
                }
                self.outputs.push_back(Output::Event(Event::PeerConnected {
                    conn,
                    id: remote_id,
                    client: hello.client_id,
                    dialect,
                }));
            }
            rlpx::Output::Event(rlpx::Event::Message { code, payload, .. }) => {
                let _ = self.waku.handle_input(
                    now,
                    waku::Input::Packet {
                        peer: PeerId(conn.0),
                        code,
                        data: payload,
                    },
                );
            }
            rlpx::Output::Event(rlpx::Event::Disconnected { reason, remote, .. }) => {
                let id = self.conns.get(&conn).and_then(|c| c.id);
                let fault = !remote
                    && matches!(
                        reason,
                        DisconnectReason::ProtocolBreach | DisconnectReason::SubprotocolError
                    );
                let inbound = self.conns.get(&conn).is_some_and(|c| c.origin.is_none());
                if fault && inbound {
                    // Dropped for a fault: its key and address wait out the back-off.
                    let until = now + self.config.fault_backoff;
                    if let Some(k) = id {
                        let key = crate::crypto::pubkey_to_compressed(&k);
                        insert_bounded(&mut self.backoff.keys, now, key, until);
                    }
                    if let Some(ip) = self.conns.get(&conn).and_then(|c| c.ip) {
                        if !ip.is_loopback() {
                            insert_bounded(&mut self.backoff.ips, now, ip, until);
                        }
                    }
                }
                self.history_peer_gone(now, conn, id);
                let _ = self
                    .waku
                    .handle_input(now, waku::Input::PeerDisconnected { peer: PeerId(conn.0) });
                self.outputs.push_back(Output::Event(Event::PeerDisconnected {
                    conn,
                    id,
                    reason,
                    remote,
                }));
            }
            rlpx::Output::Event(rlpx::Event::Pong { .. }) => {}
        }
    }
}
