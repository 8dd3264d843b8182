//! The Waku node: a sans-IO state machine composing the per-peer state, the envelope pool, the filters
//! and the relay (docs/protocol/waku.md §5–§8, docs/protocol/status-transport-usage.md §1 and §4.1).
//!
//! It speaks in packets, not bytes: the caller connects it to RLPx (or anything else) by passing
//! [`Input::PeerConnected`] with the negotiated [`Dialect`], each received sub-protocol message as
//! [`Input::Packet`], and by carrying out [`Output::Transmit`] and [`Output::Disconnect`].
//!
//! Behaviour:
//! * **Handshake**: both sides send Status at once; the first packet from the peer must be Status
//!   (a fault otherwise), within `status_timeout`. Two light nodes are refused when
//!   `restrict_light_to_light` is set.
//! * **Receive**: envelopes are checked as status-go does (from the future by more than 10 s, or older than
//!   20 s past expiry: time-sync error; slightly expired: dropped silently; too large or below our PoW:
//!   error; outside our interest: dropped silently), de-duplicated by hash, delivered to the filters and
//!   queued for relay. A peer never gets back what it sent.
//! * **Relay**: every `transmission_cycle` (300 ms), the envelopes that arrived since the last cycle, that
//!   a peer did not send us, and that meet its PoW requirement and its topic interest (or bloom) join that
//!   peer's send queue. The queue is paced to the rate limits the peer advertised in its Status (packets
//!   and bytes per second, the lower of its per-IP and per-peer figures, at 3/4 of them so its own
//!   one-second windows never see more), served round-robin across the envelopes' sources (so one
//!   flooding source cannot crowd out the others), and bounded (`max_queued_per_peer`; past it the oldest
//!   envelope of the longest source queue is dropped). A new peer's queue starts with the pool, bounded
//!   and paced like everything else, so a (re)connect never replays a pool in one burst. A change of
//!   interest applies to envelopes arriving from then on (history is the mailserver's job), so a Status
//!   Update never causes a rescan. A light node relays only its own envelopes.
//! * **Confirmations**: with `confirmations` on, each Messages packet is answered with a Message Response
//!   (listing invalid envelopes) and a Batch Ack; confirmations a peer sends us come out as
//!   [`Event::Confirmed`] naming the envelopes of that batch.
//! * **Limits**: every packet counts, whatever its code, with its decoded (inflated) size: per peer and
//!   per source (the caller groups peers by IP with [`WakuNode::set_peer_source`]; status-go's limiter
//!   has both), envelopes and bytes per second. When drops and when disconnects:
//!   - a packet over the *per-peer* limit we advertise is dropped and is a violation; past
//!     `rate_limit_tolerance` violations the peer is disconnected (0x10);
//!   - a packet within the peer's own limit but over its *source's* shared budget (other connections from
//!     the same IP spent it) is dropped only: a peer within its advertised limits is never faulted for
//!     what others sent;
//!   - faults (malformed packets, invalid envelopes, unknown packet codes, Status Updates beyond
//!     `max_status_updates_per_minute`) count toward a budget per minute past which the peer is
//!     disconnected with 0x10.
//!
//!   Envelopes whose TTL is above `max_ttl` are dropped silently. A cap on envelopes per packet and on
//!   envelope size; the pool (with a share per source, see [`super::pool`]), the filters, the peers and
//!   the pending posts are capped too (see [`WakuConfig`]).
//! * **Mailserver plumbing**: P2P Message (127) and Request Complete (125) are accepted only from peers
//!   marked trusted; their envelopes skip the expiry and PoW checks, go to filters with `p2p` set, and are
//!   never relayed. P2P Request (126) is surfaced only when `mailserver` is on.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use rand_chacha::ChaCha20Rng;

use super::envelope::{Envelope, PowSealer, SealProgress, Stamp};
use super::filter::{Filter, Filters, ReceivedMessage, SubscriptionId};
use super::message::{wrap, NewMessage};
use super::options::{RateLimits, StatusOptions, WhisperStatus};
use super::packet::{self, Dialect, EnvelopeError, Packet};
use super::peer::{PeerState, WakuPeer};
use super::pool::{Insert, Pool, PoolConfig, LOCAL_SOURCE};
use super::topic::{Bloom, Topic};
use super::WakuError;
use crate::conn::ConnId;
use crate::rlpx::DisconnectReason;
use crate::rng::{Seed, SeededHashSet, SeededState};
use crate::time::{earliest, Timestamp};

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
    /// Serve P2P requests (surface code 126 as [`Event::P2PRequest`]). Default false.
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
    /// Envelopes per second all peers of one source (an IP group, see [`WakuNode::set_peer_source`])
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

/// Inputs.
#[derive(Debug)]
pub enum Input {
    /// A connection now carries this dialect; we send our Status.
    PeerConnected {
        /// The caller's id for the connection.
        peer: ConnId,
        /// `waku/1` or `shh/6`.
        dialect: Dialect,
    },
    /// A packet from a peer (code relative to the capability).
    Packet {
        /// From whom.
        peer: ConnId,
        /// Packet code.
        code: u64,
        /// msg-data (envelopes share this buffer while they are processed; the pool keeps its own copy).
        data: Bytes,
    },
    /// The connection ended.
    PeerDisconnected {
        /// Which.
        peer: ConnId,
    },
    /// Encrypt, sign, seal and publish a message.
    Post(Box<NewMessage>),
    /// Publish a ready envelope (already sealed).
    Broadcast(Envelope),
    /// Mark a peer trusted (a mailserver we use) or not.
    SetTrusted {
        /// Which.
        peer: ConnId,
        /// Trusted?
        trusted: bool,
    },
    /// Send a P2P Request (126) with this msg-data.
    SendP2PRequest {
        /// To whom.
        peer: ConnId,
        /// msg-data (an envelope or a `MessagesRequest`).
        data: Vec<u8>,
    },
    /// Send envelopes as a P2P Message (127).
    SendP2PMessages {
        /// To whom.
        peer: ConnId,
        /// The envelopes.
        envelopes: Vec<Envelope>,
    },
    /// Send a P2P Request Complete (125) with this payload.
    SendRequestComplete {
        /// To whom.
        peer: ConnId,
        /// The flat completion payload.
        payload: Vec<u8>,
    },
    /// Change our PoW requirement (announced to peers).
    SetMinPow(f64),
    /// Add a filter under an id the caller chooses ([`WakuNode::unused_subscription_id`] names a free
    /// one); announces the new interest to peers when it is derived from filters. `Err` if `id` is taken
    /// ([`WakuError::DuplicateSubscription`]) or `max_filters` is reached.
    Subscribe {
        /// The caller's id for it.
        id: SubscriptionId,
        /// What to watch and how to open it.
        filter: Filter,
    },
    /// Remove a filter. `Err(UnknownSubscription)` if there is none under `id`.
    Unsubscribe {
        /// Which.
        id: SubscriptionId,
    },
    /// Count `peer` toward rate-limit source `source` (for example a number derived from its IP
    /// address): every peer of a source shares one budget (`max_*_per_sec_per_source`) and the pool
    /// share. By default each peer is its own source (its [`ConnId`] number). `Err(UnknownPeer)` for an
    /// unknown peer.
    SetPeerSource {
        /// Which.
        peer: ConnId,
        /// Its source.
        source: u64,
    },
    /// Turn [`WakuConfig::open_own_posts`] on or off.
    SetOpenOwnPosts(bool),
}

/// Outputs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Output {
    /// A packet for the transport below (RLPx) to send to a peer.
    Transmit {
        /// To whom.
        peer: ConnId,
        /// Packet code.
        code: u64,
        /// msg-data.
        data: Bytes,
    },
    /// Disconnect a peer.
    Disconnect {
        /// Which.
        peer: ConnId,
        /// The RLPx reason to send.
        reason: DisconnectReason,
    },
    /// An event.
    Event(Event),
}

/// Events for the application.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The Status exchange with a peer completed.
    PeerReady {
        /// Which.
        peer: ConnId,
        /// Its options.
        options: Box<StatusOptions>,
    },
    /// A filter opened a message.
    Message(Box<ReceivedMessage>),
    /// A posted message was sealed and is in the pool (it goes out with the next cycle).
    Posted {
        /// Its envelope hash.
        hash: [u8; 32],
    },
    /// A post failed (PoW target not reached within `max_seal_iterations`, or encryption failed).
    PostFailed {
        /// Why.
        error: WakuError,
    },
    /// A peer confirmed a batch we sent.
    Confirmed {
        /// Who.
        peer: ConnId,
        /// The batch.
        batch_hash: [u8; 32],
        /// The envelopes in it, if we still remember the batch.
        envelopes: Vec<[u8; 32]>,
        /// Envelopes it rejected.
        errors: Vec<EnvelopeError>,
    },
    /// A peer broke a rule; `disconnected` tells whether it was dropped for it.
    PeerFault {
        /// Who.
        peer: ConnId,
        /// What it did.
        fault: WakuError,
        /// True if this fault ended the connection.
        disconnected: bool,
    },
    /// A packet from the peer was dropped for exceeding the rate limit.
    RateLimited {
        /// Who.
        peer: ConnId,
    },
    /// A P2P Request arrived (only when `mailserver` is on).
    P2PRequest {
        /// From whom.
        peer: ConnId,
        /// msg-data.
        data: Bytes,
    },
    /// Envelopes arrived in a trusted peer's P2P Message (already offered to the filters).
    P2PEnvelopes {
        /// From whom.
        peer: ConnId,
        /// Hashes, in order.
        hashes: Vec<[u8; 32]>,
    },
    /// A trusted peer completed a request.
    RequestComplete {
        /// From whom.
        peer: ConnId,
        /// The flat completion payload.
        payload: Bytes,
    },
    /// A new envelope entered the pool (for a mailserver to archive).
    EnvelopeAccepted {
        /// Its hash.
        hash: [u8; 32],
        /// The envelope.
        envelope: Envelope,
    },
}

/// Counters for observability and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Envelopes accepted into the pool.
    pub accepted: u64,
    /// Duplicates received.
    pub duplicates: u64,
    /// Envelopes rejected as invalid.
    pub rejected: u64,
    /// Envelopes sent to peers.
    pub relayed: u64,
    /// Packets dropped by the rate limiter.
    pub rate_limited: u64,
    /// Envelopes dropped at expiry.
    pub expired: u64,
    /// Envelopes dropped from a peer's send queue (it was full).
    pub queue_dropped: u64,
}

/// One source's shared rate window.
#[derive(Debug)]
struct SourceWindow {
    start: Timestamp,
    envelopes: u64,
    bytes: u64,
    peers: usize,
}

struct PendingPost {
    envelope: Envelope,
    sealer: PowSealer,
    tried: u64,
}

/// The Waku node. See the [module docs](self).
pub struct WakuNode {
    config: WakuConfig,
    rng: ChaCha20Rng,
    peers: BTreeMap<ConnId, WakuPeer>,
    pool: Pool,
    filters: Filters,
    /// Hashes of envelopes we posted ourselves (relayed even when we are light).
    own: SeededHashSet<[u8; 32]>,
    p2p_seen: BTreeSet<(u32, [u8; 32])>,
    p2p_seen_set: SeededHashSet<[u8; 32]>,
    hasher: SeededState,
    pending: VecDeque<PendingPost>,
    outputs: VecDeque<Output>,
    next_cycle: Option<Timestamp>,
    stats: Stats,
    sources: BTreeMap<u64, SourceWindow>,
}

impl core::fmt::Debug for WakuNode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WakuNode")
            .field("peers", &self.peers.len())
            .field("pool", &self.pool.len())
            .field("filters", &self.filters.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// How much envelope time may run ahead of ours (status-go `DefaultSyncAllowance`).
const SYNC_ALLOWANCE: u64 = 10;
/// How long past expiry an envelope is still silently dropped rather than a time-sync error.
const EXPIRED_GRACE: u64 = 20;

impl WakuNode {
    /// A node with `config`, drawing randomness (padding, nonces, ECIES keys) from `seed`.
    /// `Err(InvalidConfig)` if `config` is inconsistent (see [`WakuConfig::validate`]).
    pub fn new(config: WakuConfig, seed: &Seed) -> Result<Self, WakuError> {
        config.validate()?;
        Ok(Self::new_unvalidated(config, seed))
    }

    /// [`WakuNode::new`] without the check, for the engine until its own constructor can fail.
    pub(crate) fn new_unvalidated(config: WakuConfig, seed: &Seed) -> Self {
        let mut rng = seed.rng();
        let hasher = SeededState::new(&mut rng);
        let mut pool = Pool::new(config.pool, hasher);
        pool.set_source_share(config.pool_source_share);
        WakuNode {
            rng,
            hasher,
            peers: BTreeMap::new(),
            pool,
            sources: BTreeMap::new(),
            filters: Filters::new(config.max_filters),
            own: SeededHashSet::with_hasher(hasher),
            p2p_seen: BTreeSet::new(),
            p2p_seen_set: SeededHashSet::with_hasher(hasher),
            pending: VecDeque::new(),
            outputs: VecDeque::new(),
            next_cycle: None,
            stats: Stats::default(),
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &WakuConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The envelope pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// A peer's state.
    pub fn peer(&self, peer: ConnId) -> Option<&WakuPeer> {
        self.peers.get(&peer)
    }

    /// Connected peers.
    pub fn peers(&self) -> impl Iterator<Item = (&ConnId, &WakuPeer)> {
        self.peers.iter()
    }

    /// Every topic some filter watches.
    pub fn filter_topics(&self) -> BTreeSet<Topic> {
        self.filters.topics()
    }

    /// Changes whenever a filter is added or removed.
    pub fn filters_generation(&self) -> (u64, usize) {
        self.filters.generation()
    }

    /// A subscription id never used on this node so far, for [`Input::Subscribe`].
    pub fn unused_subscription_id(&self) -> SubscriptionId {
        self.filters.unused_id()
    }

    /// True if a filter is subscribed under `id`.
    pub fn has_subscription(&self, id: SubscriptionId) -> bool {
        self.filters.contains(id)
    }

    /// Our current options, as we advertise them.
    pub fn local_options(&self) -> StatusOptions {
        let mut o = StatusOptions {
            pow_requirement: Some(self.config.min_pow),
            bloom: None,
            light_node: Some(self.config.light_node),
            confirmations: Some(self.config.confirmations),
            packet_rate_limits: Some(RateLimits {
                ip: self.config.max_envelopes_per_sec_per_source,
                peer_id: self.config.max_envelopes_per_sec,
                topic: 0,
            }),
            topic_interest: None,
            bytes_rate_limits: Some(RateLimits {
                ip: self.config.max_bytes_per_sec_per_source,
                peer_id: self.config.max_bytes_per_sec,
                topic: 0,
            }),
        };
        match self.config.interest {
            Interest::Full => o.bloom = Some(Bloom::FULL),
            Interest::Bloom => o.bloom = Some(self.local_bloom()),
            Interest::Topics => o.topic_interest = Some(self.filters.topics().into_iter().collect()),
        }
        o
    }

    fn local_bloom(&self) -> Bloom {
        match self.config.interest {
            Interest::Full => Bloom::FULL,
            _ => Bloom::of_topics(self.filters.topics().iter()),
        }
    }

    /// True if we want envelopes on `topic`.
    fn we_want(&self, topic: &Topic) -> bool {
        match self.config.interest {
            Interest::Full => true,
            Interest::Bloom => self.local_bloom().matches_topic(topic),
            Interest::Topics => self.filters.watches(topic),
        }
    }

    fn announce_interest(&mut self) {
        if self.config.interest == Interest::Full {
            return;
        }
        let opts = self.local_options();
        let bloom = self.local_bloom();
        let active = self.active_peers();
        for (peer, dialect) in active {
            match dialect {
                Dialect::Waku1 => {
                    let update = StatusOptions {
                        bloom: opts.bloom,
                        topic_interest: opts.topic_interest.clone(),
                        ..Default::default()
                    };
                    self.send(peer, packet::STATUS_UPDATE, update.encode());
                }
                Dialect::Whisper6 => {
                    self.send(peer, packet::BLOOM_FILTER, rlp::encode(&&bloom.0[..]).to_vec())
                }
            }
        }
    }

    /// Peers whose handshake is done, with their dialect.
    fn active_peers(&self) -> Vec<(ConnId, Dialect)> {
        self.peers
            .iter()
            .filter(|(_, p)| p.is_active())
            .map(|(id, p)| (*id, p.dialect))
            .collect()
    }

    fn send(&mut self, peer: ConnId, code: u64, data: Vec<u8>) {
        self.outputs.push_back(Output::Transmit {
            peer,
            code,
            data: Bytes::from(data),
        });
    }

    fn event(&mut self, e: Event) {
        if self.outputs.len() >= self.config.max_queued_outputs {
            // Drop the oldest queued message event rather than grow without bound.
            if let Some(i) = self
                .outputs
                .iter()
                .position(|o| matches!(o, Output::Event(Event::Message(_))))
            {
                self.outputs.remove(i);
            }
        }
        self.outputs.push_back(Output::Event(e));
    }

    /// Drop a peer: tell the caller to disconnect it and forget it.
    fn drop_peer(&mut self, peer: ConnId, reason: DisconnectReason) {
        if let Some(p) = self.peers.remove(&peer) {
            self.leave_source(p.source);
            self.outputs.push_back(Output::Disconnect { peer, reason });
        }
    }

    fn join_source(&mut self, now: Timestamp, source: u64) {
        self.sources
            .entry(source)
            .or_insert(SourceWindow {
                start: now,
                envelopes: 0,
                bytes: 0,
                peers: 0,
            })
            .peers += 1;
    }

    fn leave_source(&mut self, source: u64) {
        if let Some(w) = self.sources.get_mut(&source) {
            w.peers = w.peers.saturating_sub(1);
            if w.peers == 0 {
                self.sources.remove(&source);
            }
        }
    }

    /// See [`Input::SetPeerSource`].
    fn set_peer_source(&mut self, now: Timestamp, peer: ConnId, source: u64) -> Result<(), WakuError> {
        let old = self.peers.get(&peer).map(|p| p.source).ok_or(WakuError::UnknownPeer)?;
        if old != source {
            self.leave_source(old);
            self.join_source(now, source);
            if let Some(p) = self.peers.get_mut(&peer) {
                p.source = source;
            }
        }
        Ok(())
    }

    /// Charge a packet of `envelopes` envelopes and `bytes` (decoded) bytes to `peer` and its source.
    /// Returns false if it was dropped for the rate limit (and handles the consequences, see the module
    /// docs).
    fn charge(&mut self, now: Timestamp, peer: ConnId, envelopes: u64, bytes: u64) -> bool {
        let (max_e, max_b) = (self.config.max_envelopes_per_sec, self.config.max_bytes_per_sec);
        let (src_e, src_b) = (
            self.config.max_envelopes_per_sec_per_source,
            self.config.max_bytes_per_sec_per_source,
        );
        let tolerance = self.config.rate_limit_tolerance;
        let Some(p) = self.peers.get_mut(&peer) else {
            return false;
        };
        let source = p.source;
        // The source's budget is checked first so a packet it refuses does not use the peer's.
        let source_ok = match self.sources.get_mut(&source) {
            Some(w) => {
                if now.saturating_duration_since(w.start).as_millis() >= 1000 {
                    w.start = now;
                    w.envelopes = 0;
                    w.bytes = 0;
                }
                let e = w.envelopes + envelopes;
                let b = w.bytes + bytes;
                let over = (src_e > 0 && e > src_e) || (src_b > 0 && b > src_b);
                !over
            }
            None => true,
        };
        if !p.admit(now, envelopes, bytes, max_e, max_b) {
            // Over the peer's own advertised limit: a violation.
            let over = p.rate_violations > tolerance;
            self.stats.rate_limited += 1;
            self.event(Event::RateLimited { peer });
            if over {
                self.event(Event::PeerFault {
                    peer,
                    fault: WakuError::RateLimited,
                    disconnected: true,
                });
                self.drop_peer(peer, DisconnectReason::SubprotocolError);
            }
            return false;
        }
        if !source_ok {
            // Within its own limit, but its source's shared budget is spent: dropped, not a fault.
            self.stats.rate_limited += 1;
            self.event(Event::RateLimited { peer });
            return false;
        }
        if let Some(w) = self.sources.get_mut(&source) {
            w.envelopes += envelopes;
            w.bytes += bytes;
        }
        true
    }

    /// Count a fault; disconnect past the budget.
    fn fault(&mut self, now: Timestamp, peer: ConnId, error: WakuError) {
        let max = self.config.max_faults_per_minute;
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let n = p.fault(now, 60_000);
        let disconnected = n > max;
        self.event(Event::PeerFault {
            peer,
            fault: error,
            disconnected,
        });
        if disconnected {
            self.drop_peer(peer, DisconnectReason::SubprotocolError);
        }
    }

    /// Feed an input. `Err` only for misuse: a duplicate `PeerConnected`, a full peer table or post
    /// queue, or a command for an unknown peer or one whose handshake is not done. Packets from a peer
    /// that is not (or no longer) connected are ignored.
    pub fn handle_input(&mut self, now: Timestamp, input: Input) -> Result<(), WakuError> {
        match input {
            Input::PeerConnected { peer, dialect } => {
                if self.peers.contains_key(&peer) {
                    return Err(WakuError::UnknownPeer);
                }
                if self.peers.len() >= self.config.max_peers {
                    return Err(WakuError::LimitReached("peers"));
                }
                let mut p = WakuPeer::new(dialect, now, now + self.config.status_timeout, self.hasher);
                p.source = peer.0;
                self.join_source(now, peer.0);
                self.peers.insert(peer, p);
                let status = match dialect {
                    Dialect::Waku1 => self.local_options().encode(),
                    Dialect::Whisper6 => WhisperStatus {
                        pow_requirement: self.config.min_pow,
                        bloom: self.local_bloom(),
                        light_node: self.config.light_node,
                        confirmations: self.config.confirmations,
                        rate_limits: RateLimits {
                            ip: self.config.max_envelopes_per_sec_per_source,
                            peer_id: self.config.max_envelopes_per_sec,
                            topic: 0,
                        },
                    }
                    .encode(),
                };
                self.send(peer, packet::STATUS, status);
                Ok(())
            }
            Input::Packet { peer, code, data } => {
                // A packet for a peer we already dropped is a benign race with the transport (it was read
                // before the disconnect took effect): ignore it.
                if self.peers.contains_key(&peer) {
                    self.on_packet(now, peer, code, &data);
                }
                Ok(())
            }
            Input::PeerDisconnected { peer } => {
                if let Some(p) = self.peers.remove(&peer) {
                    self.leave_source(p.source);
                }
                Ok(())
            }
            Input::Post(msg) => {
                if self.pending.len() >= self.config.max_pending_posts {
                    return Err(WakuError::LimitReached("pending posts"));
                }
                match wrap(&mut self.rng, now.as_secs(), &msg) {
                    Ok(envelope) => {
                        let sealer = PowSealer::new(&envelope, msg.pow_target);
                        self.pending.push_back(PendingPost {
                            envelope,
                            sealer,
                            tried: 0,
                        });
                        self.seal(now);
                    }
                    Err(error) => self.event(Event::PostFailed { error }),
                }
                Ok(())
            }
            Input::Broadcast(envelope) => {
                self.publish(now, envelope);
                Ok(())
            }
            Input::SetTrusted { peer, trusted } => {
                self.peers.get_mut(&peer).ok_or(WakuError::UnknownPeer)?.trusted = trusted;
                Ok(())
            }
            Input::SendP2PRequest { peer, data } => {
                self.require_active(peer)?;
                self.send(peer, packet::P2P_REQUEST, data);
                Ok(())
            }
            Input::SendP2PMessages { peer, envelopes } => {
                self.require_active(peer)?;
                self.send(
                    peer,
                    packet::P2P_MESSAGE,
                    packet::encode_envelopes(envelopes.iter()),
                );
                Ok(())
            }
            Input::SendRequestComplete { peer, payload } => {
                self.require_active(peer)?;
                self.send(
                    peer,
                    packet::P2P_REQUEST_COMPLETE,
                    packet::encode_request_complete(&payload),
                );
                Ok(())
            }
            Input::SetMinPow(pow) => {
                if !pow.is_finite() || pow < 0.0 {
                    return Err(WakuError::MalformedStatus("pow is NaN, infinite or negative"));
                }
                self.set_min_pow(pow);
                Ok(())
            }
            Input::Subscribe { id, filter } => {
                self.filters.add(id, filter)?;
                self.announce_interest();
                Ok(())
            }
            Input::Unsubscribe { id } => {
                if !self.filters.remove(id) {
                    return Err(WakuError::UnknownSubscription(id));
                }
                self.announce_interest();
                Ok(())
            }
            Input::SetPeerSource { peer, source } => self.set_peer_source(now, peer, source),
            Input::SetOpenOwnPosts(on) => {
                self.config.open_own_posts = on;
                Ok(())
            }
        }
    }

    /// Adopt a new PoW requirement and announce it to every active peer.
    fn set_min_pow(&mut self, pow: f64) {
        self.config.min_pow = pow;
        let active = self.active_peers();
                for (peer, dialect) in active {
                    match dialect {
                        Dialect::Waku1 => {
                            let u = StatusOptions {
                                pow_requirement: Some(pow),
                                ..Default::default()
                            };
                            self.send(peer, packet::STATUS_UPDATE, u.encode());
                        }
                        Dialect::Whisper6 => self.send(
                            peer,
                            packet::POW_REQUIREMENT,
                            rlp::encode(&pow.to_bits()).to_vec(),
                        ),
                    }
                }
    }

    fn require_active(&self, peer: ConnId) -> Result<(), WakuError> {
        match self.peers.get(&peer) {
            Some(p) if p.is_active() => Ok(()),
            Some(_) => Err(WakuError::NotReady),
            None => Err(WakuError::UnknownPeer),
        }
    }

    /// Run PoW for pending posts within the per-call budget.
    fn seal(&mut self, now: Timestamp) {
        let mut budget = self.config.seal_budget;
        while budget > 0 {
            let Some(p) = self.pending.front_mut() else { break };
            let step = budget
                .min(self.config.max_seal_iterations.saturating_sub(p.tried))
                .max(1);
            let progress = p.sealer.step(step);
            p.tried += step;
            budget = budget.saturating_sub(step);
            match progress {
                SealProgress::Done { nonce, .. } => {
                    let Some(mut p) = self.pending.pop_front() else {
                        break;
                    };
                    p.envelope.nonce = nonce;
                    self.publish(now, p.envelope);
                }
                SealProgress::Pending { .. } if p.tried >= self.config.max_seal_iterations => {
                    self.pending.pop_front();
                    self.event(Event::PostFailed {
                        error: WakuError::PowNotReached,
                    });
                }
                SealProgress::Pending { .. } => {}
            }
        }
    }

    fn publish(&mut self, now: Timestamp, envelope: Envelope) {
        let stamp = envelope.stamp();
        let hash = envelope.hash();
        let pow = stamp.pow(envelope.ttl, 0);
        let opened = if self.config.open_own_posts {
            self.filters.open(&envelope, pow, false)
        } else {
            Vec::new()
        };
        match self
            .pool
            .insert_from(stamp.id, envelope, pow, now.as_secs(), LOCAL_SOURCE)
        {
            Insert::New => {
                self.own.insert(stamp.id);
                self.stats.accepted += 1;
                for m in opened {
                    self.event(Event::Message(Box::new(m)));
                }
                self.event(Event::Posted { hash });
                self.schedule_cycle(now);
            }
            Insert::Duplicate => self.event(Event::Posted { hash }),
            Insert::Expired => self.event(Event::PostFailed {
                error: WakuError::Expired,
            }),
            Insert::Full => self.event(Event::PostFailed {
                error: WakuError::LimitReached("pool"),
            }),
        }
    }

    fn schedule_cycle(&mut self, now: Timestamp) {
        if self.next_cycle.is_none() {
            self.next_cycle = Some(now + self.config.transmission_cycle);
        }
    }

    fn on_packet(&mut self, now: Timestamp, peer: ConnId, code: u64, data: &Bytes) {
        let Some(p) = self.peers.get(&peer) else { return };
        let dialect = p.dialect;
        let awaiting = !p.is_active();
        let decoded = Packet::decode_bytes(dialect, code, data, self.config.max_envelopes_per_packet);
        if !awaiting {
            // Every packet costs its decoded (inflated) bytes, whatever its code or fate. Envelopes of
            // a Messages packet count too; a trusted mailserver's history (P2P Message) is exempt from
            // the rate limit, being what we asked for.
            let trusted_history = matches!(
                decoded,
                Ok(Packet::P2PMessage(_)) | Ok(Packet::P2PRequestComplete(_))
            ) && self.peers.get(&peer).is_some_and(|p| p.trusted);
            let envelopes = match &decoded {
                Ok(Packet::Messages(e)) => e.len() as u64,
                _ => 0,
            };
            if !trusted_history && !self.charge(now, peer, envelopes, data.len() as u64) {
                return;
            }
        }
        let packet = match decoded {
            Ok(p) => p,
            Err(e) => {
                if awaiting {
                    self.event(Event::PeerFault {
                        peer,
                        fault: e,
                        disconnected: true,
                    });
                    self.drop_peer(peer, DisconnectReason::SubprotocolError);
                } else {
                    self.fault(now, peer, e);
                }
                return;
            }
        };
        if awaiting {
            let opts = match packet {
                Packet::Status(o) => o,
                Packet::WhisperStatus(w) => {
                    let Some(p) = self.peers.get_mut(&peer) else {
                        return;
                    };
                    p.set_whisper_status(&w);
                    let o = p.remote.clone();
                    return self.peer_ready(now, peer, o);
                }
                _ => {
                    self.event(Event::PeerFault {
                        peer,
                        fault: WakuError::ExpectedStatus,
                        disconnected: true,
                    });
                    self.drop_peer(peer, DisconnectReason::ProtocolBreach);
                    return;
                }
            };
            let Some(p) = self.peers.get_mut(&peer) else {
                return;
            };
            p.set_status(opts);
            let o = p.remote.clone();
            return self.peer_ready(now, peer, o);
        }
        if matches!(
            packet,
            Packet::StatusUpdate(_) | Packet::PowRequirement(_) | Packet::BloomFilter(_)
        ) {
            let max = self.config.max_status_updates_per_minute;
            let allowed = self
                .peers
                .get_mut(&peer)
                .is_some_and(|p| p.status_update_allowed(now, max));
            if !allowed {
                return self.fault(now, peer, WakuError::TooManyStatusUpdates);
            }
        }
        match packet {
            Packet::Status(_) | Packet::WhisperStatus(_) => {}
            Packet::Unknown(c) => self.fault(now, peer, WakuError::UnknownPacket(c)),
            Packet::StatusUpdate(u) => {
                // The new interest applies from the next cycle on: no rescan (see the module docs).
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.update_status(&u);
                }
            }
            Packet::PowRequirement(pow) => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.remote.pow_requirement = Some(pow);
                }
            }
            Packet::BloomFilter(b) => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.remote.bloom = Some(b);
                }
            }
            Packet::Messages(envelopes) => self.on_messages(now, peer, envelopes, data),
            Packet::BatchAck(batch_hash) => {
                let envelopes = self
                    .peers
                    .get_mut(&peer)
                    .and_then(|p| p.take_batch(&batch_hash))
                    .unwrap_or_default();
                self.event(Event::Confirmed {
                    peer,
                    batch_hash,
                    envelopes,
                    errors: vec![],
                });
            }
            Packet::MessageResponse { batch_hash, errors } => {
                if !errors.is_empty() {
                    let envelopes = self
                        .peers
                        .get(&peer)
                        .and_then(|p| {
                            p.sent_batches
                                .iter()
                                .find(|(h, _)| *h == batch_hash)
                                .map(|(_, v)| v.clone())
                        })
                        .unwrap_or_default();
                    self.event(Event::Confirmed {
                        peer,
                        batch_hash,
                        envelopes,
                        errors,
                    });
                }
            }
            Packet::P2PRequest(data) => {
                if self.config.mailserver {
                    self.event(Event::P2PRequest { peer, data });
                }
            }
            Packet::P2PMessage(envelopes) => {
                if self.peers.get(&peer).is_some_and(|p| p.trusted) {
                    self.on_p2p_envelopes(now, peer, envelopes);
                }
            }
            Packet::P2PRequestComplete(payload) => {
                if self.peers.get(&peer).is_some_and(|p| p.trusted) {
                    self.event(Event::RequestComplete { peer, payload });
                }
            }
        }
    }

    fn peer_ready(&mut self, now: Timestamp, peer: ConnId, options: StatusOptions) {
        if self.config.light_node && self.config.restrict_light_to_light && options.light_node == Some(true) {
            self.event(Event::PeerFault {
                peer,
                fault: WakuError::LightToLight,
                disconnected: true,
            });
            self.drop_peer(peer, DisconnectReason::UselessPeer);
            return;
        }
        self.event(Event::PeerReady {
            peer,
            options: Box::new(options),
        });
        self.schedule_cycle(now);
    }

    /// Validate one envelope as status-go's `addAndBridge` does. `Ok(false)`: drop silently.
    fn validate(&self, now_secs: u64, env: &Envelope, stamp: &Stamp) -> Result<bool, EnvelopeFault> {
        let sent = u64::from(env.sent());
        let pow = stamp.pow_at(env, now_secs);
        if sent > now_secs && sent - SYNC_ALLOWANCE > now_secs {
            return Err(EnvelopeFault::TimeSync("envelope from the future"));
        }
        let expiry = u64::from(env.expiry);
        if expiry < now_secs {
            if expiry + EXPIRED_GRACE < now_secs {
                return Err(EnvelopeFault::TimeSync("very old envelope"));
            }
            return Ok(false);
        }
        if env.ttl > self.config.max_ttl {
            return Ok(false);
        }
        if env.size() > self.config.max_envelope_size {
            return Err(EnvelopeFault::Invalid(WakuError::EnvelopeTooLarge(env.size())));
        }
        if pow < self.config.min_pow {
            return Err(EnvelopeFault::Invalid(WakuError::InsufficientPow));
        }
        Ok(self.we_want(&env.topic))
    }

    fn on_messages(&mut self, now: Timestamp, peer: ConnId, envelopes: Vec<Envelope>, data: &[u8]) {
        // The packet was charged to the peer and its source in `on_packet`.
        let source = match self.peers.get(&peer) {
            Some(p) => p.source,
            None => return,
        };
        let now_secs = now.as_secs();
        let mut errors = Vec::new();
        for env in envelopes {
            let stamp = env.stamp();
            if let Some(p) = self.peers.get_mut(&peer) {
                p.mark_known(stamp.id);
            }
            if self.pool.contains(&stamp.id) {
                self.stats.duplicates += 1;
                continue;
            }
            match self.validate(now_secs, &env, &stamp) {
                Ok(true) => self.accept(now, &stamp, env, source),
                Ok(false) => {}
                Err(EnvelopeFault::TimeSync(what)) => {
                    self.stats.rejected += 1;
                    let hash = env.hash();
                    errors.push(EnvelopeError {
                        hash,
                        code: packet::ERROR_TIME_SYNC,
                        description: what.into(),
                    });
                }
                Err(EnvelopeFault::Invalid(e)) => {
                    self.stats.rejected += 1;
                    let hash = env.hash();
                    errors.push(EnvelopeError {
                        hash,
                        code: packet::ERROR_OTHER,
                        description: e.to_string(),
                    });
                    self.fault(now, peer, e);
                    if !self.peers.contains_key(&peer) {
                        return;
                    }
                }
            }
        }
        if self.config.confirmations {
            let batch_hash = crate::crypto::keccak256(data);
            self.send(
                peer,
                packet::MESSAGE_RESPONSE,
                packet::encode_message_response(&batch_hash, &errors),
            );
            self.send(peer, packet::BATCH_ACK, packet::encode_batch_ack(&batch_hash));
        }
    }

    fn accept(&mut self, now: Timestamp, stamp: &Stamp, env: Envelope, source: u64) {
        let pow = stamp.pow_at(&env, now.as_secs());
        let plain_pow = stamp.pow(env.ttl, 0);
        let opened = self.filters.open(&env, pow, false);
        let archived = self.config.mailserver.then(|| env.clone());
        match self
            .pool
            .insert_from(stamp.id, env, plain_pow, now.as_secs(), source)
        {
            Insert::New => {
                self.stats.accepted += 1;
                for m in opened {
                    self.event(Event::Message(Box::new(m)));
                }
                if let Some(envelope) = archived {
                    self.event(Event::EnvelopeAccepted {
                        hash: envelope.hash(),
                        envelope,
                    });
                }
                self.schedule_cycle(now);
            }
            Insert::Duplicate => self.stats.duplicates += 1,
            Insert::Expired | Insert::Full => {}
        }
    }

    fn on_p2p_envelopes(&mut self, _now: Timestamp, peer: ConnId, envelopes: Vec<Envelope>) {
        let mut hashes = Vec::with_capacity(envelopes.len());
        for env in envelopes {
            let stamp = env.stamp();
            hashes.push(env.hash());
            if self.pool.contains(&stamp.id) || self.p2p_seen_set.contains(&stamp.id) {
                continue;
            }
            if self.config.max_p2p_seen > 0 {
                while self.p2p_seen_set.len() >= self.config.max_p2p_seen {
                    let Some((_, h)) = self.p2p_seen.pop_first() else {
                        break;
                    };
                    self.p2p_seen_set.remove(&h);
                }
                self.p2p_seen.insert((env.expiry, stamp.id));
                self.p2p_seen_set.insert(stamp.id);
            }
            for m in self.filters.open(&env, stamp.pow(env.ttl, 0), true) {
                self.event(Event::Message(Box::new(m)));
            }
        }
        self.event(Event::P2PEnvelopes { peer, hashes });
    }

    /// Fire every deadline `<= now`: Status timeouts, expiry, the relay cycle, and PoW work.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let late: Vec<ConnId> = self
            .peers
            .iter()
            .filter(|(_, p)| matches!(p.state, PeerState::AwaitStatus { deadline } if deadline <= now))
            .map(|(id, _)| *id)
            .collect();
        for peer in late {
            self.event(Event::PeerFault {
                peer,
                fault: WakuError::StatusTimeout,
                disconnected: true,
            });
            self.drop_peer(peer, DisconnectReason::PingTimeout);
        }
        let gone = self.pool.expire(now.as_secs());
        if !gone.is_empty() {
            self.stats.expired += gone.len() as u64;
            for h in &gone {
                self.own.remove(h);
                for p in self.peers.values_mut() {
                    p.forget(h);
                }
            }
        }
        while let Some(&(exp, h)) = self.p2p_seen.first() {
            if u64::from(exp) + EXPIRED_GRACE >= now.as_secs() {
                break;
            }
            self.p2p_seen.pop_first();
            self.p2p_seen_set.remove(&h);
        }
        if !self.pending.is_empty() {
            self.seal(now);
        }
        if self.next_cycle.is_some_and(|t| t <= now) {
            self.next_cycle = None;
            self.broadcast();
            let queued = self.peers.values().any(|p| p.queued() > 0);
            if queued || (!self.pool.is_empty() && self.peers.values().any(|p| p.is_active())) {
                self.next_cycle = Some(now + self.config.transmission_cycle);
            }
        }
    }

    /// One relay cycle: new envelopes join each active peer's queue (if it lacks and wants them), and
    /// each queue sends what the peer's advertised rate limits allow (see the module docs).
    fn broadcast(&mut self) {
        let mark = self.pool.next_seq();
        let ids: Vec<ConnId> = self.peers.keys().copied().collect();
        let cycle_ms = self.config.transmission_cycle.as_millis().max(1) as u64;
        let max_queue = self.config.max_queued_per_peer;
        for id in ids {
            let Some(p) = self.peers.get_mut(&id) else {
                continue;
            };
            if !p.is_active() {
                continue;
            }
            let pow_req = p.pow_requirement();
            let confirming = p.remote.confirmations == Some(true);
            let mut dropped = 0u64;
            let new: Vec<(u64, u64)> = self
                .pool
                .iter_from(p.cursor)
                .filter(|(_, eid, entry)| {
                    !p.knows(eid)
                        && p.wants(&entry.envelope.topic)
                        && entry.pow >= pow_req
                        && (!self.config.light_node || self.own.contains(*eid))
                })
                .map(|(seq, _, entry)| (entry.source, seq))
                .collect();
            for (source, seq) in new {
                dropped += p.enqueue(source, seq, max_queue) as u64;
            }
            p.cursor = mark;
            self.stats.queue_dropped += dropped;
            // This cycle's allowance: 3/4 of the peer's advertised per-second limits, pro rata.
            let (env_limit, byte_limit) = advertised_limits(&p.remote);
            let pace = |limit: u64| (limit > 0).then(|| (limit.saturating_mul(cycle_ms) * 3 / 4000).max(1));
            let (mut env_left, mut bytes_left) = (pace(env_limit), pace(byte_limit));
            let pool = &self.pool;
            let mut first = true;
            let picks = p.dequeue(|seq| {
                let Some(entry) = pool.get_seq(seq) else {
                    return Some(false);
                };
                if !p_wants(entry, pow_req) {
                    return Some(false);
                }
                let len = entry.wire.len() as u64;
                if env_left == Some(0) || (!first && bytes_left.is_some_and(|b| b < len)) {
                    return None;
                }
                first = false;
                env_left = env_left.map(|e| e - 1);
                bytes_left = bytes_left.map(|b| b.saturating_sub(len));
                Some(true)
            });
            // Re-check interest against the peer (the closure above cannot borrow it).
            let picks: Vec<u64> = picks
                .into_iter()
                .filter(|seq| {
                    self.pool
                        .get_seq(*seq)
                        .is_some_and(|e| p.wants(&e.envelope.topic) && !p.knows(&e.id))
                })
                .collect();
            let mut packets = Vec::new();
            {
                let entries: Vec<&super::pool::Entry> =
                    picks.iter().filter_map(|s| self.pool.get_seq(*s)).collect();
                let wires: Vec<&Bytes> = entries.iter().map(|e| &e.wire).collect();
                let ids: Vec<[u8; 32]> = entries.iter().map(|e| e.id).collect();
                let (mut start, mut size) = (0usize, 0usize);
                for (k, w) in wires.iter().enumerate() {
                    if k > start && size + w.len() > self.config.max_packet_size {
                        packets.push(OutBatch::build(&wires[start..k], &ids[start..k], confirming));
                        start = k;
                        size = 0;
                    }
                    size += w.len();
                }
                if start < wires.len() {
                    packets.push(OutBatch::build(&wires[start..], &ids[start..], confirming));
                }
            }
            for b in packets {
                self.stats.relayed += b.ids as u64;
                if confirming {
                    p.record_batch(crate::crypto::keccak256(&b.data), b.hashes);
                }
                self.outputs.push_back(Output::Transmit {
                    peer: id,
                    code: packet::MESSAGES,
                    data: b.data,
                });
            }
        }
    }

    /// The earliest pending deadline.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let mut t = self.next_cycle;
        for p in self.peers.values() {
            if let PeerState::AwaitStatus { deadline } = p.state {
                t = earliest(t, Some(deadline));
            }
        }
        if let Some(e) = self.pool.next_expiry() {
            t = earliest(t, Some(Timestamp::from_secs(u64::from(e) + 1)));
        }
        if let Some(&(e, _)) = self.p2p_seen.first() {
            t = earliest(t, Some(Timestamp::from_secs(u64::from(e) + EXPIRED_GRACE + 1)));
        }
        if !self.pending.is_empty() {
            // PoW work remains: come back at once.
            t = Some(Timestamp::ZERO);
        }
        t
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }
}

/// A Messages packet built for one or more peers.
#[derive(Clone)]
struct OutBatch {
    data: Bytes,
    /// Number of envelopes in it.
    ids: usize,
    /// Wire hashes of the envelopes, only when the peer sends confirmations.
    hashes: Vec<[u8; 32]>,
}

impl OutBatch {
    fn build(wires: &[&Bytes], ids: &[[u8; 32]], confirming: bool) -> OutBatch {
        let payload: usize = wires.iter().map(|w| w.len()).sum();
        let (h, n) = super::envelope::rlp_header(payload, true);
        let mut data = Vec::with_capacity(n + payload);
        data.extend_from_slice(&h[..n]);
        for w in wires {
            data.extend_from_slice(w);
        }
        let hashes = if confirming {
            wires.iter().map(|w| crate::crypto::keccak256(w)).collect()
        } else {
            vec![]
        };
        OutBatch {
            data: Bytes::from(data),
            ids: ids.len(),
            hashes,
        }
    }
}

/// The lower non-zero of a peer's per-IP and per-peer limits, for packets and bytes (0: unlimited).
fn advertised_limits(remote: &StatusOptions) -> (u64, u64) {
    let lower = |l: Option<RateLimits>| {
        l.map_or(0, |l| match (l.ip, l.peer_id) {
            (0, x) | (x, 0) => x,
            (a, b) => a.min(b),
        })
    };
    (lower(remote.packet_rate_limits), lower(remote.bytes_rate_limits))
}

/// Whether a pooled envelope still meets a PoW requirement.
fn p_wants(entry: &super::pool::Entry, pow_req: f64) -> bool {
    entry.pow >= pow_req
}

enum EnvelopeFault {
    TimeSync(&'static str),
    Invalid(WakuError),
}
