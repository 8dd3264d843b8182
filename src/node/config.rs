//! The engine's configuration (docs/protocol/status-client.md: relayer and mobile-node roles, static
//! peers, "Discovery and peers"). Invalid values make [`Engine::new`] fail; nothing falls back to a
//! default.

use std::sync::Arc;
use std::time::Duration;

#[cfg(doc)]
use super::{Engine, Output};
use super::{HistoryConfig, NodeError};
use crate::chat::messenger::MessengerConfig;
use crate::discovery::dnstree::{DnsConfig, EnrTreeUrl};
use crate::discovery::peerpool;
use crate::enode::Enode;
use crate::mailserver::server::MailServerConfig;
use crate::rlpx;
use crate::waku::WakuConfig;

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
    /// [`Output::Storage`]). Default off.
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
    /// cache that does not decode (garbled, or of another version) makes [`Engine::new`] fail with
    /// [`NodeError::PeerCache`]. Default none.
    pub peer_cache: Option<Vec<u8>>,
    /// A dial not reported connected within this long has failed: the engine emits [`Output::Close`] for
    /// it (the driver cancels the pending dial) and backs the peer off. Default 10 s.
    pub dial_timeout: Duration,
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
            dial_timeout: Duration::from_secs(10),
        }
    }

    /// The engine's [`PeerPool`](crate::discovery::PeerPool): one target for all peers (static and
    /// inbound ones count, mailservers are static peers), nothing closed past it, candidate dials held
    /// back at `max_peers`, the engine's timers, our own node never a candidate.
    pub(super) fn peer_pool(&self) -> peerpool::PeerPoolConfig {
        peerpool::PeerPoolConfig {
            min_relays: self.target_peers,
            max_relays: self.target_peers,
            mailserver: false,
            max_candidates: peerpool::MAX_CANDIDATES,
            cache_size: peerpool::CACHE_SIZE,
            dial_timeout: self.dial_timeout,
            backoff_initial: self.reconnect_min,
            backoff_max: self.reconnect_max,
            max_dial_failures: peerpool::MAX_DIAL_FAILURES,
            stable_after: self.stable_after,
            close_excess: false,
            max_connections: self.max_peers,
            local: Some(crate::discovery::NodeId::from_public_key(&self.rlpx.public_key())),
        }
    }

    /// Check the values that have no meaningful reading: a zero `dial_timeout` or `max_peers`, a zero
    /// `reconnect_min`, `reconnect_min > reconnect_max`, more than [`peerpool::MAX_STATIC_PEERS`] static
    /// peers and mailservers. [`Engine::new`] calls it.
    pub fn validate(&self) -> Result<(), NodeError> {
        if self.dial_timeout.is_zero() {
            return Err(NodeError::Config("dial_timeout must not be zero"));
        }
        if self.max_peers == 0 {
            return Err(NodeError::Config("max_peers must be at least 1"));
        }
        if self.reconnect_min.is_zero() || self.reconnect_min > self.reconnect_max {
            return Err(NodeError::Config("need 0 < reconnect_min <= reconnect_max"));
        }
        if self.static_peers.len() + self.mailservers.len() > peerpool::MAX_STATIC_PEERS {
            return Err(NodeError::TooManyStaticPeers);
        }
        Ok(())
    }
}
