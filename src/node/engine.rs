//! The [`Engine`]: its state, construction, the four verbs and the read-only accessors
//! (docs/protocol/status-client.md). What happens to each layer's outputs is in
//! [`routing`](super::routing); who may connect is in [`admission`](super::admission).

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;

use rand_chacha::ChaCha20Rng;

use super::history::History;
use super::{admission::Backoff, ConnId, EngineConfig, Input, LayerError, NodeError, Output, DIAL_ID_BIT};
use crate::chat::messenger::Messenger;
use crate::crypto::PublicKey;
use crate::discovery::dnstree::{self, DnsTreeClient};
use crate::discovery::peerpool::{self, PeerKind, PeerPool};
use crate::discovery::{DiscoveryError, NodeId};
use crate::enode::Enode;
use crate::mailserver::server::{self as mailserver, MailServer};
use crate::rlpx::{self, Connection, DisconnectReason};
use crate::rng::{fork, Seed};
use crate::time::{earliest, Timestamp};
use crate::waku::{Dialect, SubscriptionId, WakuNode};

/// One socket and its RLPx connection.
pub(super) struct Conn {
    pub(super) rlpx: Connection,
    pub(super) id: Option<PublicKey>,
    pub(super) dialect: Option<Dialect>,
    /// The peer pool's node we dialled (dials only).
    pub(super) origin: Option<NodeId>,
    pub(super) since: Timestamp,
    /// Dial requested, socket not yet connected (the pool keeps its deadline).
    pub(super) dialing: bool,
    /// An inbound connection reported up to the peer pool (its end is reported too).
    pub(super) pooled: bool,
    /// Refuse this connection with this reason as soon as frames can carry it.
    pub(super) refuse: Option<DisconnectReason>,
    /// The remote IP address (dials: the enode's; inbound: from [`Input::AcceptedFrom`]).
    pub(super) ip: Option<IpAddr>,
}

impl Conn {
    /// An inbound socket whose Hello has not completed.
    pub(super) fn handshaking_inbound(&self) -> bool {
        self.origin.is_none() && !self.rlpx.is_active()
    }

    /// Dial requested, socket not yet connected.
    pub(super) fn dialing(&self) -> bool {
        self.dialing
    }
}

/// Mailserver counters (see [`Engine::mailserver_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MailserverStats {
    /// History requests received (P2P requests handed to the mailserver).
    pub requests: u64,
    /// Envelopes sent to requesting peers.
    pub envelopes_served: u64,
}

/// The engine. See the [module docs](super).
///
/// The engine asks for sockets and bytes, never opens them: with a static peer configured, its first
/// timer dials it, and once the driver reports the socket connected it transmits the RLPx auth. The
/// crate-level documentation drives two engines over real TCP sockets.
///
/// ```
/// use std::sync::Arc;
/// use status_sansio::crypto::SecretKey;
/// use status_sansio::enode::Enode;
/// use status_sansio::node::{Engine, EngineConfig, Input, Output};
/// use status_sansio::rlpx::{self, Protocol};
/// use status_sansio::{Seed, Timestamp};
///
/// let now = Timestamp::from_secs(1_700_000_000);
/// let key = |n: u64| SecretKey::random(&mut Seed::from_u64(n).rng());
/// let protocols = Protocol::new("waku", 1, 128).into_iter().collect();
/// let mut config = EngineConfig::new(Arc::new(rlpx::Config::new(key(1), protocols)));
/// config.static_peers = vec![Enode::new(key(2).public_key(), "127.0.0.1:30303".parse()?)];
/// let mut engine = Engine::new(config, &Seed::from_u64(1), now)?;
/// // Its first timer is due at once: static peers are dialled when it fires.
/// assert!(engine.poll_timeout().is_some_and(|t| t <= now));
/// engine.handle_timeout(now);
/// let dial = std::iter::from_fn(|| engine.poll_output()).find_map(|o| match o {
///     Output::Dial { conn, addr } => Some((conn, addr)),
///     _ => None,
/// });
/// let (conn, addr) = dial.ok_or("no dial")?;
/// assert_eq!(addr.port(), 30303);
/// engine.handle_input(now, Input::Connected { conn })?;
/// let mut outputs = std::iter::from_fn(|| engine.poll_output());
/// assert!(outputs.any(|o| matches!(o, Output::Transmit { conn: c, .. } if c == conn)));
/// assert!(engine.poll_timeout().is_some()); // the handshake deadline
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Engine {
    pub(super) config: EngineConfig,
    pub(super) rng: ChaCha20Rng,
    pub(super) waku: WakuNode,
    pub(super) conns: BTreeMap<ConnId, Conn>,
    pub(super) peers: PeerPool,
    pub(super) dns: Option<DnsTreeClient>,
    pub(super) outputs: VecDeque<Output>,
    next_dial_id: u64,
    pub(super) mailserver: Option<MailServer>,
    pub(super) messenger: Option<Messenger>,
    pub(super) history: History,
    /// Waku filters installed for the Messenger's chats.
    pub(super) chat_filters: BTreeMap<String, SubscriptionId>,
    /// The latest time the engine was given (only for [`Engine::subscribe`], which takes no time).
    last_now: Timestamp,
    pub(super) mailserver_stats: MailserverStats,
    pub(super) backoff: Backoff,
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
    /// A new engine; static peers are dialled on the first `handle_timeout` at or after `now`. Fails on
    /// an invalid configuration: [`EngineConfig::validate`], the DNS client's
    /// [`DnsConfig`](crate::discovery::DnsConfig), a peer cache that does not import.
    pub fn new(config: EngineConfig, seed: &Seed, now: Timestamp) -> Result<Self, crate::Error> {
        Self::build(config, None, seed, now)
    }

    /// A new engine whose Messenger resumes from `records`, what the driver's store holds after the last
    /// committed [`Output::Persist`] batch (a fresh Messenger from `config.messenger` when the store has
    /// none yet). Requires `config.messenger`.
    pub fn restore(
        config: EngineConfig,
        records: &crate::persist::MemoryStore,
        seed: &Seed,
        now: Timestamp,
    ) -> Result<Self, crate::Error> {
        let mc = config
            .messenger
            .clone()
            .ok_or(NodeError::NotConfigured("messenger"))?;
        // Its own seed, drawn apart from the engine's, so a restored engine forks the same seeds as a
        // fresh one for the parts that follow.
        let mut rng = seed.rng();
        let messenger = Messenger::restore(mc, &fork(&mut rng), now, records).map_err(NodeError::from)?;
        Self::build(config, Some(messenger), &fork(&mut rng), now)
    }

    /// A new engine running `messenger` (e.g. one resumed with [`Messenger::import`]) instead of a fresh
    /// one from `config.messenger`.
    pub fn with_messenger(
        config: EngineConfig,
        messenger: Messenger,
        seed: &Seed,
        now: Timestamp,
    ) -> Result<Self, crate::Error> {
        Self::build(config, Some(messenger), seed, now)
    }

    fn build(
        config: EngineConfig,
        resumed: Option<Messenger>,
        seed: &Seed,
        now: Timestamp,
    ) -> Result<Self, crate::Error> {
        config.validate()?;
        let mut rng = seed.rng();
        let mut waku_config = config.waku.clone();
        waku_config.mailserver |= config.mailserver.is_some();
        // The Messenger records its own sends: its posts need not be opened by its own filters.
        waku_config.open_own_posts &= config.messenger.is_none() && resumed.is_none();
        let waku = WakuNode::new(waku_config, &fork(&mut rng))?;
        let mailserver = config
            .mailserver
            .clone()
            .map(|m| MailServer::new(m, &fork(&mut rng), now));
        // The fresh Messenger's seed is drawn whether or not a resumed one replaces it, so both
        // constructors fork the same seeds for the parts that follow.
        let fresh_seed = config.messenger.as_ref().map(|_| fork(&mut rng));
        let messenger = match (resumed, config.messenger.clone(), fresh_seed) {
            (Some(m), _, _) => Some(m),
            (None, Some(m), Some(seed)) => Some(Messenger::new(m, &seed, now).map_err(NodeError::from)?),
            _ => None,
        };
        let history = History::new(
            config.history.clone(),
            config.mailservers.iter().map(|e| e.id).collect(),
            &fork(&mut rng),
            now,
        )?;
        let dns = if config.dns_discovery.is_empty() {
            None
        } else {
            let mut urls = config.dns_discovery.clone();
            // At most `max_trees` are used (documented on `EngineConfig::dns_discovery`).
            urls.truncate(config.dns.max_trees);
            Some(DnsTreeClient::new(config.dns.clone(), &urls, &fork(&mut rng))?)
        };
        // Forked last, so the other layers' seeds are those they had before the pool was a machine.
        let mut peers = PeerPool::new(config.peer_pool(), &fork(&mut rng), now).map_err(pool_error)?;
        // Mailservers are kept connected like static peers.
        for e in config.static_peers.iter().chain(&config.mailservers) {
            let kind = PeerKind::Relay;
            let add = peerpool::Input::AddStatic {
                enode: e.clone(),
                kind,
            };
            peers.handle_input(now, add).map_err(pool_error)?;
        }
        let cache = config.peer_cache.clone();
        let mut engine = Engine {
            config,
            rng,
            waku,
            conns: BTreeMap::new(),
            peers,
            dns,
            outputs: VecDeque::new(),
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
            engine.import_peer_cache(now, &c)?;
        }
        // A resumed Messenger asks for its chats' filters at once.
        engine.route_messenger(now);
        Ok(engine)
    }

    /// Add the good peers of a cache made by [`Engine::export_peer_cache`] (they are dialled first).
    /// Returns how many were added; fails, adding nothing, on bytes that are not a peer cache of this
    /// version ([`NodeError::PeerCache`]).
    pub fn import_peer_cache(&mut self, now: Timestamp, bytes: &[u8]) -> Result<usize, NodeError> {
        let n = self.peers.import_cache(now, bytes).map_err(pool_error)?;
        self.route_peers(now);
        Ok(n)
    }

    /// The good peers (dialled, Waku, up for `stable_after`) as bytes to keep across restarts: at most
    /// [`CACHE_SIZE`](peerpool::CACHE_SIZE) peers, under [`MAX_CACHE_BYTES`](peerpool::MAX_CACHE_BYTES).
    /// Give them back in [`EngineConfig::peer_cache`].
    pub fn export_peer_cache(&self) -> Vec<u8> {
        self.peers.export_cache()
    }

    /// Candidates remembered (discovered and cached), at most [`MAX_CANDIDATES`](peerpool::MAX_CANDIDATES).
    pub fn peer_candidates(&self) -> usize {
        self.peers.candidate_count()
    }

    /// Good peers in the cache, at most [`CACHE_SIZE`](peerpool::CACHE_SIZE).
    pub fn peer_cache_len(&self) -> usize {
        self.peers.cache_len()
    }

    /// The peer pool (read-only: counts, discovery state).
    pub fn peer_pool(&self) -> &PeerPool {
        &self.peers
    }

    /// Whether discovery is running (below the target with nothing left to dial).
    pub fn discovery_running(&self) -> bool {
        self.peers.discovery_running()
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

    /// The mailserver's counters (all zero without `mailserver`).
    pub fn mailserver_stats(&self) -> MailserverStats {
        self.mailserver_stats
    }

    /// Number of sockets with a completed Hello.
    pub fn connected_peers(&self) -> usize {
        self.conns.values().filter(|c| c.rlpx.is_active()).count()
    }

    /// Say goodbye to every peer: connections past their handshake send a Disconnect with `reason`
    /// (e.g. [`DisconnectReason::ClientQuitting`] at shutdown) and close; the others just close. Drain
    /// [`Engine::poll_output`] afterwards and write the transmits before closing the sockets.
    pub fn disconnect_all(&mut self, now: Timestamp, reason: DisconnectReason) {
        self.last_now = self.last_now.max(now);
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in conns {
            let Some(c) = self.conns.get_mut(&conn) else {
                continue;
            };
            if c.rlpx.handle_input(now, rlpx::Input::Disconnect(reason)).is_err() {
                // Not past the handshake: no frame can carry the reason.
                if let Err(error) = c.rlpx.handle_input(now, rlpx::Input::TransportClosed) {
                    self.report(LayerError::Rlpx { conn, error });
                }
            }
            self.route_conn(now, conn);
        }
    }

    /// A subscription id not in use on this node, for the application's
    /// `Input::Waku(waku::Input::Subscribe { id, filter })` (the engine's own chat filters take theirs the
    /// same way, so ids never collide as long as each is used before the next is asked for).
    pub fn unused_subscription_id(&self) -> SubscriptionId {
        self.waku.unused_subscription_id()
    }

    /// Feed an input. `Err` only for misuse: an unknown connection id, an accepted id with the dial bit,
    /// or an invalid Waku command.
    pub fn handle_input(&mut self, now: Timestamp, input: Input<'_>) -> Result<(), crate::Error> {
        self.last_now = self.last_now.max(now);
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
                if let Some(id) = c.origin {
                    self.peer_input(now, peerpool::Input::Reached { id });
                }
                self.route_conn(now, conn);
            }
            Input::DialFailed { conn } => {
                let c = self
                    .conns
                    .remove(&conn)
                    .ok_or(NodeError::UnknownConnection(conn))?;
                if let Some(id) = c.origin {
                    self.peer_input(now, peerpool::Input::DialFailed { id });
                }
            }
            Input::Received { conn, data } => {
                // Bytes for a socket we already closed are a benign race with the driver: ignored.
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.rlpx.handle_input(now, rlpx::Input::Receive(data))?;
                    self.route_conn(now, conn);
                }
            }
            Input::Closed { conn } => {
                let dialing = self.conns.get(&conn).is_some_and(Conn::dialing);
                if dialing {
                    // A socket that ends before it was reported connected is a failed dial.
                    if let Some(id) = self.conns.remove(&conn).and_then(|c| c.origin) {
                        self.peer_input(now, peerpool::Input::DialFailed { id });
                    }
                } else if let Some(c) = self.conns.get_mut(&conn) {
                    c.rlpx.handle_input(now, rlpx::Input::TransportClosed)?;
                    self.route_conn(now, conn);
                }
            }
            Input::AddStaticPeer(enode) => {
                let kind = PeerKind::Relay;
                let add = peerpool::Input::AddStatic { enode, kind };
                self.peers.handle_input(now, add).map_err(pool_error)?;
                self.route_peers(now);
            }
            Input::AddPeerCandidate(enode) => {
                self.add_candidate(now, enode);
                self.route_peers(now);
            }
            Input::DnsResolved { name, txt } => {
                if let Some(d) = &mut self.dns {
                    let input = match txt {
                        Some(texts) => dnstree::Input::TxtRecords { name, texts },
                        None => dnstree::Input::ResolveFailed { name },
                    };
                    if let Err(e) = d.handle_input(now, input) {
                        self.report(LayerError::Discovery(e));
                    }
                }
                self.route_dns(now);
            }
            Input::Waku(w) => {
                self.waku.handle_input(now, w)?;
                self.route_waku(now);
            }
            Input::Chat(c) => {
                let m = self
                    .messenger
                    .as_mut()
                    .ok_or(NodeError::NotConfigured("messenger"))?;
                m.handle_input(now, c).map_err(NodeError::from)?;
                self.route_messenger(now);
            }
            Input::QueryResult { query, entries } => {
                let m = self
                    .mailserver
                    .as_mut()
                    .ok_or(NodeError::NotConfigured("mailserver"))?;
                m.handle_input(now, mailserver::Input::QueryResult { query, entries })?;
                self.route_mailserver(now);
            }
            Input::RequestHistory(topics) => {
                self.history_request(now, &topics)?;
                self.route_history(now);
            }
            Input::Persisted(seq) => {
                let m = self
                    .messenger
                    .as_mut()
                    .ok_or(NodeError::NotConfigured("messenger"))?;
                m.handle_input(now, crate::chat::messenger::Input::Persisted(seq))
                    .map_err(NodeError::from)?;
                self.route_messenger(now);
            }
        }
        Ok(())
    }

    /// Fire every deadline `<= now`: the peer pool (dial timeouts, redials, backoffs, stability), DNS,
    /// RLPx, Waku, mailserver, history and Messenger timers.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.last_now = self.last_now.max(now);
        // DNS timers run only if discovery was running before this call (a resume here re-checks the
        // trees at once by itself).
        let discovering = self.peers.discovery_running();
        // The pool first: its timed-out dials are closed before it dials again.
        self.peers.handle_timeout(now);
        self.route_peers(now);
        if discovering {
            if let Some(d) = &mut self.dns {
                d.handle_timeout(now);
            }
            self.route_dns(now);
        }
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in ids {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.rlpx.handle_timeout(now);
                self.route_conn(now, conn);
            }
        }
        self.waku.handle_timeout(now);
        self.route_waku(now);
        if let Some(m) = &mut self.mailserver {
            m.handle_timeout(now);
        }
        self.route_mailserver(now);
        self.history.client.handle_timeout(now);
        self.route_history(now);
        if let Some(m) = &mut self.messenger {
            m.handle_timeout(now);
        }
        self.route_messenger(now);
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

    /// Give the peer pool a candidate (our own node is never one: the pool knows it).
    pub(super) fn add_candidate(&mut self, now: Timestamp, enode: Enode) {
        let kind = PeerKind::Relay;
        if let Err(e) = self
            .peers
            .handle_input(now, peerpool::Input::Discovered { enode, kind })
        {
            self.report(LayerError::Discovery(e));
        }
    }

    /// Feed the peer pool and route what it says.
    pub(super) fn peer_input(&mut self, now: Timestamp, input: peerpool::Input) {
        if let Err(e) = self.peers.handle_input(now, input) {
            self.report(LayerError::Discovery(e));
        }
        self.route_peers(now);
    }

    /// Open an outbound connection to `enode` for the peer pool.
    pub(super) fn dial(&mut self, now: Timestamp, enode: &Enode) {
        let origin = NodeId::from_public_key(&enode.id);
        let conn = ConnId(self.next_dial_id);
        self.next_dial_id += 1;
        let seed = fork(&mut self.rng);
        match Connection::initiator(self.config.rlpx.clone(), enode.id, &seed, now) {
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
                        pooled: false,
                        refuse: None,
                        ip: Some(enode.addr.ip()),
                    },
                );
                self.outputs.push_back(Output::Dial {
                    conn,
                    addr: enode.addr,
                });
            }
            Err(error) => {
                // No connection can be set up for this key: reported, and the peer is not tried again.
                self.report(LayerError::Rlpx { conn, error });
                let gone = peerpool::Input::Undialable { id: origin };
                if let Err(e) = self.peers.handle_input(now, gone) {
                    self.report(LayerError::Discovery(e));
                }
            }
        }
    }
}

/// The pool's errors as the engine's: a bad cache is [`NodeError::PeerCache`], a static peer too many
/// [`NodeError::TooManyStaticPeers`], an invalid pool configuration [`NodeError::Config`].
fn pool_error(e: DiscoveryError) -> NodeError {
    match e {
        DiscoveryError::Cache(why) => NodeError::PeerCache(why),
        DiscoveryError::TooManyStaticPeers => NodeError::TooManyStaticPeers,
        DiscoveryError::Config(why) => NodeError::Config(why),
        _ => NodeError::Config("peer pool"),
    }
}
