//! The Waku node's configuration: every bound it keeps (docs/protocol/waku.md §5–§8).

use std::time::Duration;

use super::super::pool::PoolConfig;
use super::super::WakuError;

/// What a node advertises as its interest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interest {
    /// Everything (a relay): a full bloom.
    Full,
    /// A bloom built from the filters' topics.
    Bloom,
    /// The exact topics of the filters (Waku topic interest; shh/6 peers get the bloom).
    Topics,
}

/// Configuration. Every bound is here.
#[derive(Clone, Debug)]
pub struct WakuConfig {
    /// Minimum PoW we accept and advertise. Default 0.000002 (Status's `WakuMinimumPoW`).
    pub min_pow: f64,
    /// We are a light node: we never relay others' envelopes. Default false.
    pub light_node: bool,
    /// We send Message Response and Batch Ack for each Messages packet. Default false.
    pub confirmations: bool,
    /// What we advertise. Default [`Interest::Full`].
    pub interest: Interest,
    /// Refuse a light peer when we are light too. Default true.
    pub restrict_light_to_light: bool,
    /// Serve P2P requests (surface code 126 as [`Event::P2PRequest`](super::Event::P2PRequest)). Default false.
    pub mailserver: bool,
    /// Envelopes a peer may send per second (0 = unlimited). Default 1000.
    pub max_envelopes_per_sec: u64,
    /// Envelope bytes a peer may send per second (0 = unlimited). Default 4 MiB.
    pub max_bytes_per_sec: u64,
    /// Packets over the rate limit tolerated before disconnecting. Default 10.
    pub rate_limit_tolerance: u32,
    /// Faults (malformed packets, invalid envelopes) tolerated per minute. Default 20.
    pub max_faults_per_minute: u32,
    /// Largest envelope, `20 + len(data)`. Default 1 MiB.
    pub max_envelope_size: usize,
    /// Most envelopes accepted in one packet. Default 1000.
    pub max_envelopes_per_packet: usize,
    /// Largest Messages packet we build when relaying. Default 1 MiB.
    pub max_packet_size: usize,
    /// The envelope pool's limits.
    pub pool: PoolConfig,
    /// Most peers. Default 64.
    pub max_peers: usize,
    /// Most filters. Default 1024.
    pub max_filters: usize,
    /// Most posts waiting for PoW. Default 256.
    pub max_pending_posts: usize,
    /// Most P2P envelope hashes remembered to de-duplicate mailserver history. Default 50,000.
    pub max_p2p_seen: usize,
    /// Most events queued for the application before the oldest message events are dropped. Default 100,000.
    pub max_queued_outputs: usize,
    /// PoW nonces tried per `handle_timeout` call. Default 20,000.
    pub seal_budget: u64,
    /// PoW nonces tried for one post before it fails. Default 20,000,000.
    pub max_seal_iterations: u64,
    /// Relay period. Default 300 ms.
    pub transmission_cycle: Duration,
    /// Envelopes per second all peers of one source (an IP group, see [`Input::SetPeerSource`](super::Input::SetPeerSource))
    /// may send together (0 = unlimited). Default 1000.
    pub max_envelopes_per_sec_per_source: u64,
    /// Bytes per second all peers of one source may send together (0 = unlimited). Default 4 MiB.
    pub max_bytes_per_sec_per_source: u64,
    /// Status Updates (and shh/6 bloom or PoW packets) a peer may send per minute; each one past it is
    /// dropped and is a fault. Default 30.
    pub max_status_updates_per_minute: u32,
    /// Longest TTL accepted, in seconds; longer-lived envelopes are dropped silently. Default 3600.
    /// (status-go sets no maximum; Status's own envelopes live 10–50 s.)
    pub max_ttl: u32,
    /// Share of the pool's caps one source may hold, in percent (1–100). Default 25.
    pub pool_source_share: u8,
    /// Envelopes queued for one peer before the oldest are dropped. Default 20,000.
    pub max_queued_per_peer: usize,
    /// Time allowed for the peer's Status. Default 10 s.
    pub status_timeout: Duration,
    /// Offer our own posts to our own filters, as Whisper/Waku nodes do. Default on. The node
    /// [`Engine`](crate::node::Engine) turns it off when it runs a Messenger, which records what it sends
    /// itself: opening its own post (AES-GCM and signature recovery) would be work thrown away.
    pub open_own_posts: bool,
}

impl WakuConfig {
    /// `Err(InvalidConfig)` when a value cannot work: a PoW requirement that is NaN, infinite or
    /// negative, a pool source share outside 1–100 %, or a zero transmission cycle.
    pub fn validate(&self) -> Result<(), WakuError> {
        if !self.min_pow.is_finite() || self.min_pow < 0.0 {
            return Err(WakuError::InvalidConfig("min_pow is NaN, infinite or negative"));
        }
        if !(1..=100).contains(&self.pool_source_share) {
            return Err(WakuError::InvalidConfig("pool_source_share is outside 1-100"));
        }
        if self.transmission_cycle.is_zero() {
            return Err(WakuError::InvalidConfig("transmission_cycle is zero"));
        }
        Ok(())
    }
}

impl Default for WakuConfig {
    fn default() -> Self {
        WakuConfig {
            min_pow: 0.000002,
            light_node: false,
            confirmations: false,
            interest: Interest::Full,
            restrict_light_to_light: true,
            mailserver: false,
            max_envelopes_per_sec: 1000,
            max_bytes_per_sec: 4 << 20,
            rate_limit_tolerance: 10,
            max_faults_per_minute: 20,
            max_envelope_size: 1 << 20,
            max_envelopes_per_packet: 1000,
            max_packet_size: 1 << 20,
            pool: PoolConfig::default(),
            max_peers: 64,
            max_filters: 1024,
            max_pending_posts: 256,
            max_p2p_seen: 50_000,
            max_queued_outputs: 100_000,
            seal_budget: 20_000,
            max_seal_iterations: 20_000_000,
            transmission_cycle: Duration::from_millis(300),
            status_timeout: Duration::from_secs(10),
            max_envelopes_per_sec_per_source: 1000,
            max_bytes_per_sec_per_source: 4 << 20,
            max_status_updates_per_minute: 30,
            max_ttl: 3600,
            pool_source_share: 25,
            max_queued_per_peer: 20_000,
            open_own_posts: true,
        }
    }
}
