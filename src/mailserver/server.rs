//! The mailserver server (docs/protocol/status-transport-usage.md §4.2–§4.5).
//!
//! Storage is the driver's: the machine emits [`Output::Storage`] with a [`StorageOp`]:
//! [`StorageOp::Store`] for each archived envelope, [`StorageOp::Query`] for a key range, and
//! [`StorageOp::Prune`] for retention; the driver answers a query
//! with [`Input::QueryResult`] (entries in ascending key order, at most the asked number). Keys sort by
//! time, so a range is a time window.
//!
//! Serving a request:
//! 1. decode it: the direct `MessagesRequest` list of six fields (`shh/6`, selection by bloom) or seven
//!    (`waku/1`) (request id = its `ID`; see [`super::decode_request`]), or a request envelope (form b),
//!    opened with the configured symmetric key or private key, signed (required), carrying a
//!    `MessagesRequestPayload` (request id = the envelope hash);
//! 2. admit it ([the limiter](#the-limiter)), apply the defaults and checks of status-go (`limit 0 → 1000`,
//!    `upper 0 → now + 60`, `lower ≤ upper`, bloom or topics given, `limit ≤ 1000`), and serve at most
//!    `max_active` requests at once; a failure is answered with the `ERROR=` completion;
//! 3. scan the window in pages of `scan_page` keys (continuing after a 36-byte cursor if one was given),
//!    keep envelopes whose topic is in the topic set (or, without topics, whose Go-form bloom matches), and
//!    stop at `limit` envelopes or after `max_scan` keys;
//! 4. send them in P2P messages of at most `max_batch_bytes`, then the completion: request id, last
//!    envelope hash and, if the page was full or the scan budget ran out, the cursor of the last key seen.
//!
//! # The limiter
//!
//! What a request costs the server is the keys it examines (a request for a few topics over a busy
//! window scans every envelope in that window), not the request itself. So the limiter is a token bucket
//! of *scan work* per peer ([`MailServerConfig::peer_scan_rate`], [`MailServerConfig::peer_scan_burst`])
//! and per IP address (the `ip_*` fields; the driver names a peer's address with [`Input::PeerIp`]):
//! a request is charged [`MailServerConfig::request_cost`] when admitted and every key it examines as it
//! examines it. A new request needs `request_cost` in both buckets; otherwise it gets
//! `ERROR=… rate limit exceeded`.
//!
//! Why not requests per second: status-go's client (the one every Status app runs) sends the next page
//! as soon as a cursor arrives and splits its topics into requests of 10 started 50 ms apart, 3 in
//! flight; one failed request cancels its whole sync. A one-request-per-second limit therefore let it
//! fetch one page and ten topics at most. status-go's own server has no limiter by default. Charging work
//! lets such a client through, with a burst for the first seconds of a sync, while a peer asking for full
//! windows again and again is held to `peer_scan_rate` keys per second.
//!
//! A **cursor continuation** (a request whose cursor is one this server gave that peer in a completion)
//! is let through even when the bucket is short, so a sync under way is never cut in the middle: it may
//! run the bucket into debt down to minus one burst (then it is refused too), which the peer pays back
//! before its next new request. The work of one continuation is bounded by `max_scan`, and the cursors a
//! peer may continue are the last 16 given to it, each usable once.
//! [`MailServerConfig::max_active_per_peer`] bounds a peer's requests in flight.
//!
//! Deviation: status-go's cursor is the last envelope *sent*; ours is the last key *examined* when the scan
//! budget runs out first, so a request over a long sparse window still makes progress page by page.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;

pub use super::storage::StorageOp;
use super::MailserverError;
use crate::crypto::SecretKey;
use crate::rng::{SeededHashMap, SeededState};
use crate::time::Timestamp;
use crate::waku::message::{decrypt_asymmetric, decrypt_symmetric, parse_plaintext};
use crate::waku::request::{MessagesRequestPayload, RequestComplete, CURSOR_LEN, MAX_LIMIT};
use crate::waku::{Bloom, ConnId, Envelope, Topic};

/// Storage key length: `sent (4) ‖ hash (32) ‖ topic (4)`.
pub const KEY_LEN: usize = 40;

/// The storage key of an envelope.
pub fn storage_key(env: &Envelope, hash: &[u8; 32]) -> [u8; KEY_LEN] {
    let mut k = [0u8; KEY_LEN];
    k[..4].copy_from_slice(&env.sent().to_be_bytes());
    k[4..36].copy_from_slice(hash);
    k[36..].copy_from_slice(&env.topic.0);
    k
}

/// Identifies a storage query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueryId(pub u64);

/// Configuration.
#[derive(Clone)]
pub struct MailServerConfig {
    /// Key of envelope-form requests (PBKDF2 of the mailserver password).
    pub symmetric_key: Option<[u8; 32]>,
    /// Private key for asymmetric envelope-form requests.
    pub private_key: Option<SecretKey>,
    /// Least time between two new requests of one peer (cursor continuations are exempt). Default zero:
    /// the work limiter below is the limit (see [the limiter](self#the-limiter)).
    pub min_request_interval: Duration,
    /// Scan work (keys examined) a peer may spend per second, sustained. Default 50,000.
    pub peer_scan_rate: u64,
    /// Scan work a peer may spend at once: its bucket, full at first. Default 500,000 (five requests
    /// that each spend the whole `max_scan`, or a full sync of many topics over a busy day).
    pub peer_scan_burst: u64,
    /// Scan work all peers from one IP address may spend per second. Default 200,000.
    pub ip_scan_rate: u64,
    /// The IP bucket. Default 2,000,000.
    pub ip_scan_burst: u64,
    /// Work charged per request on top of the keys it examines, so that requests that find nothing are
    /// not free. Default 1,000 (a peer's sustained rate is then at most 50 requests/s).
    pub request_cost: u64,
    /// Requests of one peer served at once (status-go's client keeps 3 in flight). Default 4.
    pub max_active_per_peer: usize,
    /// Requests served at once. Default 16.
    pub max_active: usize,
    /// Keys asked per query. Default 2,000.
    pub scan_page: usize,
    /// Keys examined per request before it stops with a cursor. Default 100,000.
    pub max_scan: usize,
    /// Largest P2P message. Default 1 MiB.
    pub max_batch_bytes: usize,
    /// Envelopes older than this are pruned. Default 30 days.
    pub retention: Duration,
    /// How often to prune. Default 1 h.
    pub prune_interval: Duration,
    /// Peers, and IP addresses, remembered by the limiter (oldest forgotten first). Default 10,000.
    pub max_tracked_peers: usize,
}

impl Default for MailServerConfig {
    fn default() -> Self {
        MailServerConfig {
            symmetric_key: None,
            private_key: None,
            min_request_interval: Duration::ZERO,
            peer_scan_rate: 50_000,
            peer_scan_burst: 500_000,
            ip_scan_rate: 200_000,
            ip_scan_burst: 2_000_000,
            request_cost: 1_000,
            max_active_per_peer: 4,
            max_active: 16,
            scan_page: 2_000,
            max_scan: 100_000,
            max_batch_bytes: 1 << 20,
            retention: Duration::from_secs(30 * 24 * 3600),
            prune_interval: Duration::from_secs(3600),
            max_tracked_peers: 10_000,
        }
    }
}

impl core::fmt::Debug for MailServerConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MailServerConfig")
            .field("symmetric_key", &self.symmetric_key.map(|_| ".."))
            .field("max_active", &self.max_active)
            .field("peer_scan_rate", &self.peer_scan_rate)
            .field("peer_scan_burst", &self.peer_scan_burst)
            .field("ip_scan_rate", &self.ip_scan_rate)
            .field("ip_scan_burst", &self.ip_scan_burst)
            .field("request_cost", &self.request_cost)
            .finish_non_exhaustive()
    }
}

/// Inputs.
#[derive(Debug)]
pub enum Input {
    /// Archive an envelope the node accepted (from `waku::Event::EnvelopeAccepted`).
    Archive {
        /// Its hash.
        hash: [u8; 32],
        /// The envelope.
        envelope: Envelope,
    },
    /// A P2P request arrived (from `waku::Event::P2PRequest`).
    Request {
        /// From whom.
        peer: ConnId,
        /// The raw msg-data.
        data: Bytes,
    },
    /// The IP address `peer` connected from: its requests are then also charged to that address's
    /// bucket. Without it a peer is limited on its own only.
    PeerIp {
        /// The peer.
        peer: ConnId,
        /// Its address.
        ip: IpAddr,
    },
    /// The driver's answer to a query: entries in ascending key order, at most the asked number.
    QueryResult {
        /// Which query.
        query: QueryId,
        /// `(key, envelope RLP)` pairs.
        entries: Vec<([u8; KEY_LEN], Bytes)>,
    },
}

/// Outputs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Output {
    /// A storage action for the driver ([`StorageOp::Query`] is answered with [`Input::QueryResult`]).
    Storage(StorageOp),
    /// Send envelopes to a peer as a P2P Message (`waku::Input::SendP2PMessages`).
    Transmit {
        /// To whom.
        peer: ConnId,
        /// The envelopes.
        envelopes: Vec<Envelope>,
    },
    /// Send a request-complete payload (`waku::Input::SendRequestComplete`).
    Complete {
        /// To whom.
        peer: ConnId,
        /// The flat payload.
        payload: Vec<u8>,
    },
}

struct Active {
    peer: ConnId,
    ip: Option<IpAddr>,
    request_id: [u8; 32],
    topics: Vec<Topic>,
    bloom: Option<Bloom>,
    limit: usize,
    end: [u8; KEY_LEN],
    sent: usize,
    scanned: usize,
    last_hash: Option<[u8; 32]>,
    batch: Vec<Envelope>,
    batch_bytes: usize,
}

struct Parsed {
    request_id: [u8; 32],
    lower: u32,
    upper: u32,
    limit: u32,
    cursor: Bytes,
    bloom: Bytes,
    topics: Vec<Topic>,
}

/// A token bucket of scan work.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    balance: i64,
    at: Timestamp,
}

impl Bucket {
    fn full(now: Timestamp, burst: u64) -> Bucket {
        Bucket {
            balance: clamp(burst),
            at: now,
        }
    }

    fn refill(&mut self, now: Timestamp, rate: u64, burst: u64) {
        let ms = now.saturating_duration_since(self.at).as_millis();
        let gained = ms.saturating_mul(u128::from(rate)) / 1000;
        let gained = i64::try_from(gained).unwrap_or(i64::MAX);
        self.balance = self.balance.saturating_add(gained).min(clamp(burst));
        if now > self.at {
            self.at = now;
        }
    }

    fn charge(&mut self, work: u64) {
        self.balance = self.balance.saturating_sub(clamp(work));
    }
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The limiter's settings, copied out of the configuration.
#[derive(Clone, Copy)]
struct Limits {
    peer_scan_rate: u64,
    peer_scan_burst: u64,
    ip_scan_burst: u64,
    request_cost: u64,
    max_active_per_peer: usize,
    min_request_interval: Duration,
}

impl Limits {
    fn of(c: &MailServerConfig) -> Limits {
        Limits {
            peer_scan_rate: c.peer_scan_rate,
            peer_scan_burst: c.peer_scan_burst,
            ip_scan_burst: c.ip_scan_burst,
            request_cost: c.request_cost,
            max_active_per_peer: c.max_active_per_peer,
            min_request_interval: c.min_request_interval,
        }
    }
}

/// Cursors remembered per peer for continuations.
const MAX_CURSORS_PER_PEER: usize = 16;

#[derive(Debug)]
struct PeerState {
    bucket: Bucket,
    ip: Option<IpAddr>,
    last_new: Option<Timestamp>,
    active: usize,
    cursors: VecDeque<Bytes>,
}

/// The server. See the [module docs](self).
pub struct MailServer {
    config: MailServerConfig,
    active: BTreeMap<QueryId, Active>,
    peers: SeededHashMap<ConnId, PeerState>,
    request_order: VecDeque<ConnId>,
    ips: SeededHashMap<IpAddr, Bucket>,
    ip_order: VecDeque<IpAddr>,
    next_query: u64,
    next_prune: Option<Timestamp>,
    outputs: VecDeque<Output>,
}

impl core::fmt::Debug for MailServer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MailServer")
            .field("active", &self.active.len())
            .finish_non_exhaustive()
    }
}

impl MailServer {
    /// A server; the first prune is due one `prune_interval` after `now`. `seed` keys the rate
    /// limiter's tables.
    pub fn new(config: MailServerConfig, seed: &crate::Seed, now: Timestamp) -> Self {
        let hasher = SeededState::new(&mut seed.rng());
        MailServer {
            next_prune: Some(now + config.prune_interval),
            config,
            active: BTreeMap::new(),
            peers: SeededHashMap::with_hasher(hasher),
            request_order: VecDeque::new(),
            ips: SeededHashMap::with_hasher(hasher),
            ip_order: VecDeque::new(),
            next_query: 1,
            outputs: VecDeque::new(),
        }
    }

    /// Requests being served.
    pub fn active(&self) -> usize {
        self.active.len()
    }

    /// Feed an input. `Err` only for a query result nobody asked for.
    pub fn handle_input(&mut self, now: Timestamp, input: Input) -> Result<(), MailserverError> {
        match input {
            Input::Archive { hash, envelope } => {
                let key = storage_key(&envelope, &hash);
                self.outputs.push_back(Output::Storage(StorageOp::Store {
                    key,
                    value: Bytes::from(envelope.encode()),
                }));
                Ok(())
            }
            Input::Request { peer, data } => {
                self.on_request(now, peer, &data);
                Ok(())
            }
            Input::PeerIp { peer, ip } => {
                self.peer_state(now, peer).ip = Some(ip);
                Ok(())
            }
            Input::QueryResult { query, entries } => {
                let a = self.active.remove(&query).ok_or(MailserverError::UnknownQuery)?;
                self.on_result(a, entries);
                Ok(())
            }
        }
    }

    fn fail(&mut self, peer: ConnId, request_id: [u8; 32], e: MailserverError) {
        let payload = RequestComplete::Failure {
            request_id,
            error: e.to_string(),
        }
        .encode();
        self.outputs.push_back(Output::Complete { peer, payload });
    }

    fn parse(&self, data: &[u8]) -> Result<Parsed, ([u8; 32], MailserverError)> {
        // Form b: a request envelope, opened with our keys, signed, carrying the RLP payload.
        if let Ok(env) = Envelope::decode_bytes(data) {
            let id = env.hash();
            let bad = |what| (id, MailserverError::InvalidRequest(what));
            let pt = self
                .config
                .private_key
                .as_ref()
                .and_then(|k| decrypt_asymmetric(k, &env.data).ok())
                .or_else(|| {
                    self.config
                        .symmetric_key
                        .as_ref()
                        .and_then(|k| decrypt_symmetric(k, &env.data).ok())
                })
                .ok_or(bad("cannot open the request envelope"))?;
            let msg = parse_plaintext(&pt).map_err(|_| bad("malformed request message"))?;
            if msg.signer.is_none() {
                return Err(bad("request is not signed"));
            }
            let p =
                MessagesRequestPayload::decode(&msg.payload).map_err(|_| bad("malformed request payload"))?;
            return Ok(Parsed {
                request_id: id,
                lower: p.lower,
                upper: p.upper,
                limit: p.limit,
                cursor: p.cursor,
                bloom: p.bloom,
                topics: p.topics,
            });
        }
        // Form c: the direct request, six fields (shh/6) or seven (waku/1), whatever our dialect.
        let (r, _shape) = super::decode_request(data).map_err(|_| {
            let id: [u8; 32] = crate::crypto::keccak256(data);
            (
                id,
                MailserverError::InvalidRequest("neither a request envelope nor a MessagesRequest"),
            )
        })?;
        let mut request_id = [0u8; 32];
        if r.id.len() != 32 {
            let id = crate::crypto::keccak256(&r.id);
            return Err((id, MailserverError::InvalidRequest("id is not 32 bytes")));
        }
        request_id.copy_from_slice(&r.id);
        Ok(Parsed {
            request_id,
            lower: r.from,
            upper: r.to,
            limit: r.limit,
            cursor: r.cursor,
            bloom: r.bloom,
            topics: r.topics,
        })
    }

    fn on_request(&mut self, now: Timestamp, peer: ConnId, data: &[u8]) {
        let p = match self.parse(data) {
            Ok(p) => p,
            Err((id, e)) => return self.fail(peer, id, e),
        };
        let id = p.request_id;
        if let Err(e) = self.admit(now, peer, &p.cursor) {
            return self.fail(peer, id, e);
        }
        let limit = if p.limit == 0 { MAX_LIMIT } else { p.limit };
        let upper = if p.upper == 0 {
            (now.as_secs() + 60).min(u64::from(u32::MAX)) as u32
        } else {
            p.upper
        };
        if upper < p.lower {
            return self.fail(
                peer,
                id,
                MailserverError::Rejected("upper bound below lower bound"),
            );
        }
        if limit > MAX_LIMIT {
            return self.fail(peer, id, MailserverError::Rejected("limit above 1000"));
        }
        let bloom = match p.bloom.len() {
            0 => None,
            _ => match Bloom::from_wire(&p.bloom) {
                Some(b) => Some(b),
                None => return self.fail(peer, id, MailserverError::Rejected("bloom is not 64 bytes")),
            },
        };
        if p.topics.is_empty() && bloom.is_none() {
            return self.fail(peer, id, MailserverError::Rejected("neither bloom nor topics"));
        }
        let mut start = [0u8; KEY_LEN];
        start[..4].copy_from_slice(&p.lower.to_be_bytes());
        if !p.cursor.is_empty() {
            if p.cursor.len() != CURSOR_LEN {
                return self.fail(peer, id, MailserverError::Rejected("cursor is not 36 bytes"));
            }
            // Continue after the cursor: the smallest key above every key with this 36-byte prefix.
            start[..CURSOR_LEN].copy_from_slice(&p.cursor);
            start[CURSOR_LEN..].copy_from_slice(&[0xff; KEY_LEN - CURSOR_LEN]);
            if !increment(&mut start) {
                return self.complete(peer, id, None, None);
            }
            // A cursor before the window never widens it.
            let mut lower = [0u8; KEY_LEN];
            lower[..4].copy_from_slice(&p.lower.to_be_bytes());
            start = start.max(lower);
        }
        let mut end = [0u8; KEY_LEN];
        match upper.checked_add(1) {
            Some(u) => end[..4].copy_from_slice(&u.to_be_bytes()),
            None => end = [0xff; KEY_LEN],
        }
        let ip = self.peers.get_mut(&peer).and_then(|s| {
            s.active += 1;
            s.ip
        });
        let a = Active {
            peer,
            ip,
            request_id: id,
            topics: p.topics,
            bloom,
            limit: limit as usize,
            end,
            sent: 0,
            scanned: 0,
            last_hash: None,
            batch: vec![],
            batch_bytes: 0,
        };
        self.query(a, start);
    }

    /// The limiter's state of `peer`, created with a full bucket (the oldest peer is forgotten at the
    /// cap).
    fn peer_state(&mut self, now: Timestamp, peer: ConnId) -> &mut PeerState {
        if !self.peers.contains_key(&peer) {
            self.request_order.push_back(peer);
            while self.request_order.len() > self.config.max_tracked_peers.max(1) {
                if let Some(old) = self.request_order.pop_front() {
                    self.peers.remove(&old);
                }
            }
        }
        let burst = self.config.peer_scan_burst;
        self.peers.entry(peer).or_insert_with(|| PeerState {
            bucket: Bucket::full(now, burst),
            ip: None,
            last_new: None,
            active: 0,
            cursors: VecDeque::new(),
        })
    }

    /// The bucket of `ip`, refilled to `now` (created full; the oldest address is forgotten at the cap).
    fn ip_bucket(&mut self, now: Timestamp, ip: IpAddr) -> &mut Bucket {
        if !self.ips.contains_key(&ip) {
            self.ip_order.push_back(ip);
            while self.ip_order.len() > self.config.max_tracked_peers.max(1) {
                if let Some(old) = self.ip_order.pop_front() {
                    self.ips.remove(&old);
                }
            }
        }
        let (rate, burst) = (self.config.ip_scan_rate, self.config.ip_scan_burst);
        let b = self.ips.entry(ip).or_insert_with(|| Bucket::full(now, burst));
        b.refill(now, rate, burst);
        b
    }

    /// The limiter's verdict on a request of `peer` with `cursor`; charges `request_cost` if admitted.
    fn admit(&mut self, now: Timestamp, peer: ConnId, cursor: &Bytes) -> Result<(), MailserverError> {
        if self.active.len() >= self.config.max_active {
            return Err(MailserverError::Busy);
        }
        let c = Limits::of(&self.config);
        let state = self.peer_state(now, peer);
        state.bucket.refill(now, c.peer_scan_rate, c.peer_scan_burst);
        if state.active >= c.max_active_per_peer {
            return Err(MailserverError::Busy);
        }
        let continuation = !cursor.is_empty() && state.cursors.iter().any(|k| k == cursor);
        let ip = state.ip;
        let ip_balance = match ip {
            Some(ip) => self.ip_bucket(now, ip).balance,
            None => i64::MAX,
        };
        let Some(state) = self.peers.get_mut(&peer) else {
            return Err(MailserverError::RateLimited);
        };
        let ok = if continuation {
            state.bucket.balance > -clamp(c.peer_scan_burst) && ip_balance > -clamp(c.ip_scan_burst)
        } else {
            let spaced = state
                .last_new
                .is_none_or(|t| now.saturating_duration_since(t) >= c.min_request_interval);
            let cost = clamp(c.request_cost);
            spaced && state.bucket.balance >= cost && ip_balance >= cost
        };
        if !ok {
            return Err(MailserverError::RateLimited);
        }
        if continuation {
            state.cursors.retain(|k| k != cursor);
        } else {
            state.last_new = Some(now);
        }
        self.charge(peer, ip, c.request_cost);
        Ok(())
    }

    /// Charge `work` to `peer` and its address.
    fn charge(&mut self, peer: ConnId, ip: Option<IpAddr>, work: u64) {
        if let Some(s) = self.peers.get_mut(&peer) {
            s.bucket.charge(work);
        }
        if let Some(b) = ip.and_then(|ip| self.ips.get_mut(&ip)) {
            b.charge(work);
        }
    }

    /// A request of `a` ended: free its slot; remember the cursor it was given for a continuation.
    fn ended(&mut self, a: &Active, cursor: Option<&Bytes>) {
        if let Some(s) = self.peers.get_mut(&a.peer) {
            s.active = s.active.saturating_sub(1);
            if let Some(c) = cursor {
                if s.cursors.len() >= MAX_CURSORS_PER_PEER {
                    s.cursors.pop_front();
                }
                s.cursors.push_back(c.clone());
            }
        }
    }

    /// Ask the store for the next page from `start`; an empty rest of the window (a cursor at or past
    /// its end, or a scan that reached it) completes the request instead: a query always has
    /// `start < end`.
    fn query(&mut self, mut a: Active, start: [u8; KEY_LEN]) {
        if start >= a.end {
            self.flush(&mut a);
            return self.complete(a.peer, a.request_id, a.last_hash, None);
        }
        let q = QueryId(self.next_query);
        self.next_query += 1;
        let limit = self
            .config
            .scan_page
            .min(self.config.max_scan.saturating_sub(a.scanned))
            .max(1);
        self.outputs.push_back(Output::Storage(StorageOp::Query {
            query: q,
            start,
            end: a.end,
            limit,
        }));
        self.active.insert(q, a);
    }

    fn flush(&mut self, a: &mut Active) {
        if !a.batch.is_empty() {
            self.outputs.push_back(Output::Transmit {
                peer: a.peer,
                envelopes: std::mem::take(&mut a.batch),
            });
            a.batch_bytes = 0;
        }
    }

    fn on_result(&mut self, mut a: Active, entries: Vec<([u8; KEY_LEN], Bytes)>) {
        let asked = self
            .config
            .scan_page
            .min(self.config.max_scan.saturating_sub(a.scanned))
            .max(1);
        let n = entries.len();
        let before = a.scanned;
        let mut last_key: Option<[u8; KEY_LEN]> = None;
        for (key, value) in entries.into_iter().take(asked) {
            a.scanned += 1;
            last_key = Some(key);
            if key >= a.end {
                break;
            }
            let topic = Topic([key[36], key[37], key[38], key[39]]);
            let wanted = if a.topics.is_empty() {
                a.bloom.is_some_and(|b| b.matches_topic(&topic))
            } else {
                a.topics.contains(&topic)
            };
            if !wanted {
                continue;
            }
            let Ok(env) = Envelope::decode_bytes(&value) else {
                continue;
            };
            if a.batch_bytes + value.len() > self.config.max_batch_bytes {
                self.flush(&mut a);
            }
            a.batch_bytes += value.len();
            a.batch.push(env);
            let mut h = [0u8; 32];
            h.copy_from_slice(&key[4..36]);
            a.last_hash = Some(h);
            a.sent += 1;
            if a.sent >= a.limit {
                self.flush(&mut a);
                let cursor = Bytes::copy_from_slice(&key[..CURSOR_LEN]);
                return self.finish(a, before, Some(cursor));
            }
        }
        let exhausted = n < asked;
        if exhausted || last_key.is_none() {
            self.flush(&mut a);
            return self.finish(a, before, None);
        }
        if a.scanned >= self.config.max_scan {
            // Scan budget spent: stop here and let the client continue from the last key examined.
            self.flush(&mut a);
            let cursor = last_key.map(|k| Bytes::copy_from_slice(&k[..CURSOR_LEN]));
            return self.finish(a, before, cursor);
        }
        let Some(mut next) = last_key else { return };
        if !increment(&mut next) {
            self.flush(&mut a);
            return self.finish(a, before, None);
        }
        self.charge(a.peer, a.ip, (a.scanned - before) as u64);
        self.query(a, next);
    }

    /// Complete the request of `a` (charging the keys examined since `before`) and free its slot.
    fn finish(&mut self, a: Active, before: usize, cursor: Option<Bytes>) {
        self.charge(a.peer, a.ip, a.scanned.saturating_sub(before) as u64);
        self.ended(&a, cursor.as_ref());
        self.complete(a.peer, a.request_id, a.last_hash, cursor);
    }

    fn complete(
        &mut self,
        peer: ConnId,
        request_id: [u8; 32],
        last: Option<[u8; 32]>,
        cursor: Option<Bytes>,
    ) {
        let payload = RequestComplete::Success {
            request_id,
            last_envelope_hash: last,
            cursor,
        }
        .encode();
        self.outputs.push_back(Output::Complete { peer, payload });
    }

    /// Fire the retention timer.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        if self.next_prune.is_some_and(|t| t <= now) {
            let before = now
                .as_secs()
                .saturating_sub(self.config.retention.as_secs())
                .min(u64::from(u32::MAX)) as u32;
            self.outputs
                .push_back(Output::Storage(StorageOp::Prune { before }));
            self.next_prune = Some(now + self.config.prune_interval);
        }
    }

    /// The next deadline.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.next_prune
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }
}

/// The next key in lexicographic order (false on overflow).
fn increment(k: &mut [u8; KEY_LEN]) -> bool {
    for b in k.iter_mut().rev() {
        if *b == 0xff {
            *b = 0;
        } else {
            *b += 1;
            return true;
        }
    }
    false
}
