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
//!   per source (the caller groups peers by IP with [`Input::SetPeerSource`]; status-go's limiter
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
//!
//! Files: this one holds the machine's state and its entry points; the configuration and the
//! inputs/outputs live in `config.rs` and `interface.rs`; the work is split by concept: `interest.rs`
//! (what we advertise and Status Updates), `limits.rs` (rate limits and fault budgets), `posting.rs`
//! (sealing our own posts), `receive.rs` (packets from peers) and `relay.rs` (the transmission cycle).

mod config;
mod interest;
mod interface;
mod limits;
mod posting;
mod receive;
mod relay;

pub use config::{Interest, WakuConfig};
pub use interface::{Event, Input, Output, Stats};

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use rand_chacha::ChaCha20Rng;

use super::envelope::PowSealer;
use super::filter::{Filters, SubscriptionId};
use super::message::wrap;
use super::options::{RateLimits, WhisperStatus};
use super::packet::{self, Dialect};
use super::peer::{PeerState, WakuPeer};
use super::pool::Pool;
use super::topic::Topic;
use super::WakuError;
use crate::conn::ConnId;
use crate::rlpx::DisconnectReason;
use crate::rng::{Seed, SeededHashSet, SeededState};
use crate::time::{earliest, Timestamp};
use limits::SourceWindow;
use posting::PendingPost;

/// The Waku node. See the [layer docs](crate::waku).
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

    fn require_active(&self, peer: ConnId) -> Result<(), WakuError> {
        match self.peers.get(&peer) {
            Some(p) if p.is_active() => Ok(()),
            Some(_) => Err(WakuError::NotReady),
            None => Err(WakuError::UnknownPeer),
        }
    }
}
