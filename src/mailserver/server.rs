//! The mailserver server (status-transport-usage.md §4.2–§4.5).
//!
//! Storage is the driver's: the machine emits [`Output::Store`] for each archived envelope,
//! [`Output::Query`] for a key range, and [`Output::Prune`] for retention; the driver answers a query
//! with [`Input::QueryResult`] (entries in ascending key order, at most the asked number). Keys sort by
//! time, so a range is a time window.
//!
//! Serving a request:
//! 1. decode it: the direct `MessagesRequest` list (request id = its `ID`), or a request envelope (form b),
//!    opened with the configured symmetric key or private key, signed (required), carrying a
//!    `MessagesRequestPayload` (request id = the envelope hash);
//! 2. apply the defaults and checks of status-go (`limit 0 → 1000`, `upper 0 → now + 60`, `lower ≤ upper`,
//!    bloom or topics given, `limit ≤ 1000`), one request per `min_request_interval` per peer, and at most
//!    `max_active` requests at once; a failure is answered with the `ERROR=` completion;
//! 3. scan the window in pages of `scan_page` keys (continuing after a 36-byte cursor if one was given),
//!    keep envelopes whose topic is in the topic set (or, without topics, whose Go-form bloom matches), and
//!    stop at `limit` envelopes or after `max_scan` keys;
//! 4. send them in P2P messages of at most `max_batch_bytes`, then the completion: request id, last
//!    envelope hash and, if the page was full or the scan budget ran out, the cursor of the last key seen.
//!
//! Deviation: status-go's cursor is the last envelope *sent*; ours is the last key *examined* when the scan
//! budget runs out first, so a request over a long sparse window still makes progress page by page.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;

use super::MailserverError;
use crate::crypto::SecretKey;
use crate::rng::{SeededHashMap, SeededState};
use crate::time::Timestamp;
use crate::waku::message::{decrypt_asymmetric, decrypt_symmetric, parse_plaintext};
use crate::waku::request::{MessagesRequest, MessagesRequestPayload, RequestComplete, CURSOR_LEN, MAX_LIMIT};
use crate::waku::{Bloom, Envelope, PeerId, Topic};

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
    /// One request per peer per this interval. Default 1 s.
    pub min_request_interval: Duration,
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
    /// Peers remembered by the rate limiter (oldest forgotten first). Default 10,000.
    pub max_tracked_peers: usize,
}

impl Default for MailServerConfig {
    fn default() -> Self {
        MailServerConfig {
            symmetric_key: None,
            private_key: None,
            min_request_interval: Duration::from_secs(1),
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
        peer: PeerId,
        /// The raw msg-data.
        data: Bytes,
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
pub enum Output {
    /// Store `value` (the envelope RLP) under `key`.
    Store {
        /// The key.
        key: [u8; KEY_LEN],
        /// The envelope RLP.
        value: Bytes,
    },
    /// Return up to `limit` entries with `start ≤ key < end`, ascending. Always `start < end`.
    Query {
        /// Answer with this id.
        query: QueryId,
        /// Inclusive lower bound.
        start: [u8; KEY_LEN],
        /// Exclusive upper bound.
        end: [u8; KEY_LEN],
        /// Most entries.
        limit: usize,
    },
    /// Delete every entry whose sent time is before `before` (UNIX seconds).
    Prune {
        /// The cut-off.
        before: u32,
    },
    /// Send envelopes to a peer as a P2P Message (`waku::Input::SendP2PMessages`).
    Send {
        /// To whom.
        peer: PeerId,
        /// The envelopes.
        envelopes: Vec<Envelope>,
    },
    /// Send a request-complete payload (`waku::Input::SendRequestComplete`).
    Complete {
        /// To whom.
        peer: PeerId,
        /// The flat payload.
        payload: Vec<u8>,
    },
}

struct Active {
    peer: PeerId,
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

/// The server. See the [module docs](self).
pub struct MailServer {
    config: MailServerConfig,
    active: BTreeMap<QueryId, Active>,
    last_request: SeededHashMap<PeerId, Timestamp>,
    request_order: VecDeque<PeerId>,
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
    /// A server; the first prune is due one `prune_interval` after `now`. `hasher` keys the rate
    /// limiter's table (draw it from the node's seed).
    pub fn new(now: Timestamp, config: MailServerConfig, hasher: SeededState) -> Self {
        MailServer {
            next_prune: Some(now + config.prune_interval),
            config,
            active: BTreeMap::new(),
            last_request: SeededHashMap::with_hasher(hasher),
            request_order: VecDeque::new(),
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
                self.outputs.push_back(Output::Store {
                    key,
                    value: Bytes::from(envelope.encode()),
                });
                Ok(())
            }
            Input::Request { peer, data } => {
                self.on_request(now, peer, &data);
                Ok(())
            }
            Input::QueryResult { query, entries } => {
                let a = self.active.remove(&query).ok_or(MailserverError::UnknownQuery)?;
                self.on_result(a, entries);
                Ok(())
            }
        }
    }

    fn fail(&mut self, peer: PeerId, request_id: [u8; 32], e: MailserverError) {
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
        // Form c: the direct request.
        let r = MessagesRequest::decode(data).map_err(|_| {
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

    fn on_request(&mut self, now: Timestamp, peer: PeerId, data: &[u8]) {
        let p = match self.parse(data) {
            Ok(p) => p,
            Err((id, e)) => return self.fail(peer, id, e),
        };
        let id = p.request_id;
        if let Some(last) = self.last_request.get(&peer) {
            if now.saturating_duration_since(*last) < self.config.min_request_interval {
                return self.fail(peer, id, MailserverError::RateLimited);
            }
        }
        self.remember(peer, now);
        if self.active.len() >= self.config.max_active {
            return self.fail(peer, id, MailserverError::Busy);
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
        let a = Active {
            peer,
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

    fn remember(&mut self, peer: PeerId, now: Timestamp) {
        if self.last_request.insert(peer, now).is_none() {
            self.request_order.push_back(peer);
            while self.request_order.len() > self.config.max_tracked_peers {
                if let Some(old) = self.request_order.pop_front() {
                    self.last_request.remove(&old);
                }
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
        self.outputs.push_back(Output::Query {
            query: q,
            start,
            end: a.end,
            limit,
        });
        self.active.insert(q, a);
    }

    fn flush(&mut self, a: &mut Active) {
        if !a.batch.is_empty() {
            self.outputs.push_back(Output::Send {
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
                return self.complete(a.peer, a.request_id, a.last_hash, Some(cursor));
            }
        }
        let exhausted = n < asked;
        if exhausted || last_key.is_none() {
            self.flush(&mut a);
            return self.complete(a.peer, a.request_id, a.last_hash, None);
        }
        if a.scanned >= self.config.max_scan {
            // Scan budget spent: stop here and let the client continue from the last key examined.
            self.flush(&mut a);
            let cursor = last_key.map(|k| Bytes::copy_from_slice(&k[..CURSOR_LEN]));
            return self.complete(a.peer, a.request_id, a.last_hash, cursor);
        }
        let Some(mut next) = last_key else { return };
        if !increment(&mut next) {
            self.flush(&mut a);
            return self.complete(a.peer, a.request_id, a.last_hash, None);
        }
        self.query(a, next);
    }

    fn complete(
        &mut self,
        peer: PeerId,
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
            self.outputs.push_back(Output::Prune { before });
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
