//! The mailserver client: history requests on (re)connect, cursor paging, timeouts and failover
//! (docs/protocol/status-transport-usage.md §4.3 (c), §4.5, §4.6; docs/protocol/status-client.md "Mailserver
//! trust" and availability).
//!
//! The [`HistoryClient`] knows mailservers by node key. The caller tells it when one becomes usable
//! ([`HistoryClient::connected`]: Waku handshake done, peer marked trusted) or goes away
//! ([`HistoryClient::disconnected`]), which topics the node watches ([`HistoryClient::set_topics`]), and
//! hands it every request-complete payload from a trusted peer ([`HistoryClient::on_request_complete`])
//! and every envelope hash that arrived in a P2P message ([`HistoryClient::on_envelope`], which answers
//! whether the envelope is new). It emits [`Output::Request`] (a direct-form `MessagesRequest` to send as
//! P2P Request, code 126, encoded with [`super::encode_request`] for the peer's dialect) and [`Event`]s.
//!
//! **Dialects** (§4.3 (c)): a mailserver that connected over `shh/6`
//! ([`HistoryClient::connected_over`]) cannot take topics: its requests carry the bloom of the batch's
//! topics and no topics (six fields on the wire), and envelopes of other topics that share bloom bits
//! may come back (the Waku filters drop them). Over `waku/1` requests carry the topics and no bloom, as
//! the 2024 Status client sends them.
//!
//! Behaviour:
//! * **When**: every watched topic is synced when the first usable mailserver connects (a reconnect
//!   after an outage counts), when a topic is added, and on [`HistoryClient::request`].
//! * **Window**: `[last_seen − tolerance, now]` per topic, or `[now − initial_lookback, now]` for a
//!   topic never synced, never reaching back further than `max_lookback`. Topics are sent at most
//!   `max_topics_per_request` per request (the Status app sends 10); a batch uses the earliest `from` of
//!   its topics. One request is in flight at a time.
//! * **Paging**: a completion with a cursor asks for the next page (same window, that cursor), at most
//!   `max_pages` pages per request; a cursor must be 36 bytes, inside the window and strictly after the
//!   previous one, so a server cannot make the client loop. An empty cursor completes the window: each
//!   topic's `last_seen` advances to the window's end and [`Event::HistoryFetched`] is emitted.
//! * **Failures**: an `ERROR=` completion, a bad cursor, or no completion within `request_timeout` is a
//!   failed attempt ([`Event::RequestFailed`]); the same page is asked again after `retry_delay` up to
//!   `max_tries` attempts per mailserver (the Status app's `mailserverMaxTries` is 2), then the client
//!   fails over ([`Event::FailedOver`]) to another usable mailserver, continuing from the same cursor
//!   (storage keys, hence cursors, are derived from the envelope alone, so they mean the same on every
//!   mailserver). The failed mailserver is left alone for `failover_cooldown` or until it reconnects. The
//!   disconnection of the mailserver in use fails over at once. With no mailserver left the topics stay
//!   due and are synced when one connects; `last_seen` keeps the progress made (the last cursor's time).
//! * **Pacing**: requests to one mailserver are at least `request_gap` apart (politeness toward servers
//!   that still limit requests per second; ours limits scan work, see [`super::server`]).
//! * **De-duplication**: [`HistoryClient::on_envelope`] remembers the last `max_seen_envelopes` hashes;
//!   an envelope seen again (a page asked twice, an overlap of windows, two mailservers) is reported as
//!   not new.
//! * **Persistence**: [`HistoryClient::export`] / [`HistoryClient::import`] carry the per-topic
//!   `last_seen` times (`0x01 ‖ count u32 BE ‖ (topic 4 ‖ last_seen u32 BE)*`, at most `max_topics`
//!   entries), so a restart continues where the last sync ended.
//!
//! Randomness (the seeded RNG) is used only for request ids: the 32 lowercase hex characters of 16
//! random bytes, as the Status client builds them.
//!
//! Deviations: the reference app walks history backwards in 1-day windows and keeps its request loop in
//! the application; this client asks for one window per topic batch, oldest first, and relies on
//! paging. It never sends the older envelope-form request (form b).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;

use super::MailserverError;
use crate::crypto::PublicKey;
use crate::rng::Seed;
use crate::time::{earliest, Timestamp};
use crate::waku::request::{MessagesRequest, RequestComplete, CURSOR_LEN, MAX_LIMIT};
use crate::waku::{Bloom, Dialect, Topic};

/// Export format version.
const EXPORT_VERSION: u8 = 1;
/// Longest server error text kept in an event.
const MAX_ERROR_TEXT: usize = 256;

/// Configuration. Every bound is here.
#[derive(Clone, Debug)]
pub struct HistoryConfig {
    /// A request without a completion after this long has failed. Default 20 s.
    pub request_timeout: Duration,
    /// Envelopes per page (the request's `Limit`, at most 1000). Default 1000.
    pub page_limit: u32,
    /// Most pages followed for one request; past it the request fails with
    /// [`FailureReason::TooManyPages`] and the topics keep the progress made. Default 100.
    pub max_pages: u32,
    /// Most topics in one request (more are split into several requests). Default 10.
    pub max_topics_per_request: usize,
    /// Most topics tracked (watched plus remembered `last_seen`); further topics are not synced and
    /// remembered topics that are no longer watched are forgotten oldest first. Default 1024.
    pub max_topics: usize,
    /// Envelope hashes remembered for de-duplication (oldest forgotten first). Default 50,000.
    pub max_seen_envelopes: usize,
    /// Mailservers tracked at once (more connections are ignored). Default 16.
    pub max_mailservers: usize,
    /// Attempts of one page on one mailserver before failing over. Default 2.
    pub max_tries: u32,
    /// Delay before asking the same mailserver again after a failed attempt. Default 2 s.
    pub retry_delay: Duration,
    /// Least time between two requests to one mailserver. Default 1.5 s.
    pub request_gap: Duration,
    /// A mailserver we failed over from is not used again for this long (unless it reconnects).
    /// Default 5 min.
    pub failover_cooldown: Duration,
    /// Window for a topic never synced. Default 24 h.
    pub initial_lookback: Duration,
    /// Earliest `from` relative to now, whatever `last_seen` says. Default 7 days.
    pub max_lookback: Duration,
    /// Overlap with the previous window (`from = last_seen − tolerance`). Default 60 s.
    pub tolerance: Duration,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            request_timeout: Duration::from_secs(20),
            page_limit: MAX_LIMIT,
            max_pages: 100,
            max_topics_per_request: 10,
            max_topics: 1024,
            max_seen_envelopes: 50_000,
            max_mailservers: 16,
            max_tries: 2,
            retry_delay: Duration::from_secs(2),
            request_gap: Duration::from_millis(1500),
            failover_cooldown: Duration::from_secs(300),
            initial_lookback: Duration::from_secs(24 * 3600),
            max_lookback: Duration::from_secs(7 * 24 * 3600),
            tolerance: Duration::from_secs(60),
        }
    }
}

/// Why an attempt failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureReason {
    /// No completion within `request_timeout`.
    Timeout,
    /// The mailserver answered with an error completion (its text, truncated to 256 bytes).
    Rejected(String),
    /// The completion's cursor was malformed, outside the window, or did not advance.
    BadCursor,
    /// The mailserver disconnected (or could not be sent to).
    Disconnected,
    /// More than `max_pages` pages.
    TooManyPages,
}

/// Events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A window was fetched completely.
    HistoryFetched {
        /// The mailserver that served the last page.
        peer: PublicKey,
        /// The topics.
        topics: Vec<Topic>,
        /// Window start, UNIX seconds.
        from: u32,
        /// Window end, UNIX seconds (the topics' new `last_seen`).
        to: u32,
        /// New (not yet seen) envelopes that arrived while the request was in flight.
        envelopes: u64,
        /// Pages followed: completions accepted (a completion with a bad cursor is a failed attempt and
        /// does not count), at most `max_pages`.
        pages: u32,
    },
    /// An attempt failed; `will_retry` tells whether the client goes on (same mailserver or another)
    /// or gives up until a mailserver connects.
    RequestFailed {
        /// The mailserver.
        peer: PublicKey,
        /// Why.
        reason: FailureReason,
        /// The topics of the request.
        topics: Vec<Topic>,
        /// True if the request continues.
        will_retry: bool,
    },
    /// The request moved to another mailserver.
    FailedOver {
        /// The mailserver given up on.
        from: PublicKey,
        /// The one used now.
        to: PublicKey,
    },
}

/// Outputs.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Send `request` to `peer` as a P2P Request (126), encoded with [`super::encode_request`] for the
    /// dialect of the connection (six fields over `shh/6`, seven over `waku/1`).
    Request {
        /// The mailserver.
        peer: PublicKey,
        /// The request.
        request: MessagesRequest,
    },
    /// Something for the application.
    Event(Event),
}

/// What [`HistoryClient::on_request_complete`] made of a completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// Not for the request in flight (unknown id, other peer, late, or undecodable): ignored.
    Ignored,
    /// The next page was scheduled.
    NextPage,
    /// The window is complete.
    Done,
    /// The attempt failed (error completion or bad cursor).
    Failed,
}

#[derive(Debug)]
struct Mailserver {
    key: PublicKey,
    dialect: Dialect,
    cooldown_until: Option<Timestamp>,
    last_request: Option<Timestamp>,
}

#[derive(Debug, Default, Clone, Copy)]
struct TopicState {
    last_seen: Option<u32>,
    watched: bool,
    due: bool,
}

#[derive(Debug)]
enum JobState {
    /// Send when `at` is reached.
    Waiting { at: Timestamp },
    /// Sent with `id`; fails at `deadline`.
    Sent { id: [u8; 32], deadline: Timestamp },
}

#[derive(Debug)]
struct Job {
    peer: PublicKey,
    topics: Vec<Topic>,
    from: u32,
    to: u32,
    cursor: Bytes,
    pages: u32,
    envelopes: u64,
    tries: u32,
    state: JobState,
}

/// The history client. See the [module docs](self).
pub struct HistoryClient {
    config: HistoryConfig,
    rng: ChaCha20Rng,
    /// Usable mailservers, in the order they connected.
    mailservers: Vec<Mailserver>,
    topics: BTreeMap<Topic, TopicState>,
    job: Option<Job>,
    seen: BTreeSet<[u8; 32]>,
    seen_order: VecDeque<[u8; 32]>,
    outputs: VecDeque<Output>,
    last_now: Timestamp,
}

impl core::fmt::Debug for HistoryClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HistoryClient")
            .field("mailservers", &self.mailservers.len())
            .field("topics", &self.topics.len())
            .field("job", &self.job)
            .finish_non_exhaustive()
    }
}

fn secs(t: Timestamp) -> u32 {
    u32::try_from(t.as_secs()).unwrap_or(u32::MAX)
}

fn dur_secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

impl HistoryClient {
    /// A client with `config`, drawing request ids from `seed`.
    pub fn new(config: HistoryConfig, seed: Seed) -> Self {
        HistoryClient {
            config,
            rng: seed.rng(),
            mailservers: Vec::new(),
            topics: BTreeMap::new(),
            job: None,
            seen: BTreeSet::new(),
            seen_order: VecDeque::new(),
            outputs: VecDeque::new(),
            last_now: Timestamp::ZERO,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &HistoryConfig {
        &self.config
    }

    /// A topic's `last_seen` (UNIX seconds), if it was ever synced.
    pub fn last_seen(&self, topic: &Topic) -> Option<u32> {
        self.topics.get(topic).and_then(|t| t.last_seen)
    }

    /// True if a request is in flight or waiting to be sent.
    pub fn busy(&self) -> bool {
        self.job.is_some()
    }

    /// Topics waiting to be synced (not counting the request in flight).
    pub fn due_topics(&self) -> usize {
        self.topics.values().filter(|t| t.due && t.watched).count()
    }

    /// Envelope hashes currently remembered.
    pub fn seen_len(&self) -> usize {
        self.seen.len()
    }

    /// Mailservers currently usable or cooling down.
    pub fn mailservers(&self) -> impl Iterator<Item = &PublicKey> {
        self.mailservers.iter().map(|m| &m.key)
    }

    fn usable(&self, now: Timestamp, key: &PublicKey) -> bool {
        self.mailservers
            .iter()
            .any(|m| m.key == *key && m.cooldown_until.is_none_or(|t| t <= now))
    }

    fn pick(&self, now: Timestamp, except: Option<&PublicKey>) -> Option<PublicKey> {
        self.mailservers
            .iter()
            .find(|m| Some(&m.key) != except && m.cooldown_until.is_none_or(|t| t <= now))
            .map(|m| m.key)
    }

    /// A mailserver became usable (its Waku handshake is done and it is trusted). If no other usable
    /// mailserver was connected, every watched topic is synced from its `last_seen`.
    pub fn connected(&mut self, now: Timestamp, peer: PublicKey) {
        self.connected_over(now, peer, Dialect::Waku1);
    }

    /// [`HistoryClient::connected`] for a mailserver attached over `dialect`: its requests take the
    /// shape that dialect understands (see the [module docs](self)).
    pub fn connected_over(&mut self, now: Timestamp, peer: PublicKey, dialect: Dialect) {
        self.last_now = now;
        let had_one = self.pick(now, Some(&peer)).is_some();
        if let Some(m) = self.mailservers.iter_mut().find(|m| m.key == peer) {
            m.cooldown_until = None;
            m.dialect = dialect;
        } else if self.mailservers.len() < self.config.max_mailservers {
            self.mailservers.push(Mailserver {
                key: peer,
                dialect,
                cooldown_until: None,
                last_request: None,
            });
        } else {
            return;
        }
        if !had_one {
            for t in self.topics.values_mut() {
                if t.watched {
                    t.due = true;
                }
            }
        }
        self.drive(now);
    }

    /// A mailserver went away. A request in flight to it fails over at once.
    pub fn disconnected(&mut self, now: Timestamp, peer: &PublicKey) {
        self.last_now = now;
        let before = self.mailservers.len();
        self.mailservers.retain(|m| m.key != *peer);
        if self.mailservers.len() != before && self.job.as_ref().is_some_and(|j| j.peer == *peer) {
            self.attempt_failed(now, FailureReason::Disconnected, true);
        }
        self.drive(now);
    }

    /// The topics the node watches now. New topics are synced; topics no longer watched keep their
    /// `last_seen` (bounded by `max_topics`). Takes effect at the next call that has a time.
    pub fn set_topics(&mut self, topics: impl IntoIterator<Item = Topic>) {
        let want: BTreeSet<Topic> = topics.into_iter().collect();
        for (topic, t) in self.topics.iter_mut() {
            if !want.contains(topic) {
                t.watched = false;
                t.due = false;
            }
        }
        for topic in want {
            if let Some(t) = self.topics.get_mut(&topic) {
                if !t.watched {
                    t.watched = true;
                    t.due = true;
                }
                continue;
            }
            if self.topics.len() >= self.config.max_topics && !self.evict_unwatched() {
                continue;
            }
            self.topics.insert(
                topic,
                TopicState {
                    last_seen: None,
                    watched: true,
                    due: true,
                },
            );
        }
    }

    /// Forget the unwatched topic with the oldest `last_seen`; false if every topic is watched.
    fn evict_unwatched(&mut self) -> bool {
        let victim = self
            .topics
            .iter()
            .filter(|(_, t)| !t.watched)
            .min_by_key(|(_, t)| t.last_seen)
            .map(|(k, _)| *k);
        match victim {
            Some(k) => {
                self.topics.remove(&k);
                true
            }
            None => false,
        }
    }

    /// Ask for history now: of `topics` (those watched), or of every watched topic when empty.
    pub fn request(&mut self, now: Timestamp, topics: &[Topic]) {
        self.last_now = now;
        for (k, t) in self.topics.iter_mut() {
            if t.watched && (topics.is_empty() || topics.contains(k)) {
                t.due = true;
            }
        }
        self.drive(now);
    }

    /// An envelope arrived in a mailserver's P2P message. Returns true if it was not seen before (then
    /// it counts toward the request in flight). Remembers at most `max_seen_envelopes` hashes.
    pub fn on_envelope(&mut self, hash: [u8; 32]) -> bool {
        if self.config.max_seen_envelopes == 0 {
            return true;
        }
        if !self.seen.insert(hash) {
            return false;
        }
        self.seen_order.push_back(hash);
        while self.seen_order.len() > self.config.max_seen_envelopes {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        if let Some(j) = &mut self.job {
            if matches!(j.state, JobState::Sent { .. }) {
                j.envelopes += 1;
            }
        }
        true
    }

    /// A request-complete payload (code 125) from `peer`.
    pub fn on_request_complete(&mut self, now: Timestamp, peer: &PublicKey, payload: &[u8]) -> Completion {
        self.last_now = now;
        let Ok(rc) = RequestComplete::decode(payload) else {
            return Completion::Ignored;
        };
        let Some(job) = &mut self.job else {
            return Completion::Ignored;
        };
        let JobState::Sent { id, .. } = job.state else {
            return Completion::Ignored;
        };
        let request_id = match &rc {
            RequestComplete::Failure { request_id, .. } | RequestComplete::Success { request_id, .. } => {
                *request_id
            }
        };
        if job.peer != *peer || request_id != id {
            return Completion::Ignored;
        }
        let r = match rc {
            RequestComplete::Failure { mut error, .. } => {
                if error.len() > MAX_ERROR_TEXT {
                    let mut cut = MAX_ERROR_TEXT;
                    while !error.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    error.truncate(cut);
                }
                self.attempt_failed(now, FailureReason::Rejected(error), false);
                Completion::Failed
            }
            RequestComplete::Success { cursor: None, .. } => {
                job.pages = job.pages.saturating_add(1);
                self.finish();
                Completion::Done
            }
            RequestComplete::Success { cursor: Some(c), .. } => {
                let valid = c.len() == CURSOR_LEN
                    && cursor_time(&c).is_some_and(|t| t >= job.from && t <= job.to)
                    && c[..] > job.cursor[..];
                // A bad cursor is a failed attempt, retried from the same cursor: not a page followed.
                if valid {
                    job.pages = job.pages.saturating_add(1);
                }
                if !valid {
                    self.attempt_failed(now, FailureReason::BadCursor, false);
                    Completion::Failed
                } else if job.pages >= self.config.max_pages {
                    job.cursor = c;
                    self.give_up(FailureReason::TooManyPages);
                    Completion::Failed
                } else {
                    job.cursor = c;
                    job.tries = 0;
                    let p = job.peer;
                    let at = self.next_slot(now, &p);
                    if let Some(j) = &mut self.job {
                        j.state = JobState::Waiting { at };
                    }
                    Completion::NextPage
                }
            }
        };
        self.drive(now);
        r
    }

    /// When the next request to `peer` may go out.
    fn next_slot(&self, now: Timestamp, peer: &PublicKey) -> Timestamp {
        let last = self
            .mailservers
            .iter()
            .find(|m| m.key == *peer)
            .and_then(|m| m.last_request);
        last.map_or(now, |l| (l + self.config.request_gap).max(now))
    }

    /// The window is complete: advance the topics and report.
    fn finish(&mut self) {
        let Some(job) = self.job.take() else { return };
        for topic in &job.topics {
            if let Some(t) = self.topics.get_mut(topic) {
                t.last_seen = Some(t.last_seen.map_or(job.to, |l| l.max(job.to)));
            }
        }
        self.outputs.push_back(Output::Event(Event::HistoryFetched {
            peer: job.peer,
            topics: job.topics,
            from: job.from,
            to: job.to,
            envelopes: job.envelopes,
            pages: job.pages,
        }));
    }

    /// Stop the request for good: keep the progress (the cursor's time) and report.
    fn give_up(&mut self, reason: FailureReason) {
        let Some(job) = self.job.take() else { return };
        let reached = cursor_time(&job.cursor);
        for topic in &job.topics {
            if let Some(t) = self.topics.get_mut(topic) {
                if let Some(r) = reached {
                    t.last_seen = Some(t.last_seen.map_or(r, |l| l.max(r)));
                }
            }
        }
        self.outputs.push_back(Output::Event(Event::RequestFailed {
            peer: job.peer,
            reason,
            topics: job.topics,
            will_retry: false,
        }));
    }

    /// An attempt failed: retry on the same mailserver, fail over, or put the topics back as due.
    fn attempt_failed(&mut self, now: Timestamp, reason: FailureReason, gone: bool) {
        let Some(mut job) = self.job.take() else { return };
        job.tries = job.tries.saturating_add(1);
        let retry_here = !gone && job.tries < self.config.max_tries && self.usable(now, &job.peer);
        let next = if retry_here {
            Some(job.peer)
        } else {
            if let Some(m) = self.mailservers.iter_mut().find(|m| m.key == job.peer) {
                m.cooldown_until = Some(now + self.config.failover_cooldown);
            }
            self.pick(now, Some(&job.peer))
        };
        self.outputs.push_back(Output::Event(Event::RequestFailed {
            peer: job.peer,
            reason,
            topics: job.topics.clone(),
            will_retry: next.is_some(),
        }));
        match next {
            Some(p) if p == job.peer => {
                job.state = JobState::Waiting {
                    at: self.next_slot(now + self.config.retry_delay, &p),
                };
                self.job = Some(job);
            }
            Some(p) => {
                self.outputs.push_back(Output::Event(Event::FailedOver {
                    from: job.peer,
                    to: p,
                }));
                job.peer = p;
                job.tries = 0;
                job.state = JobState::Waiting {
                    at: self.next_slot(now, &p),
                };
                self.job = Some(job);
            }
            None => {
                // Nobody left: keep the progress and wait for a mailserver.
                let reached = cursor_time(&job.cursor);
                for topic in &job.topics {
                    if let Some(t) = self.topics.get_mut(topic) {
                        if let Some(r) = reached {
                            t.last_seen = Some(t.last_seen.map_or(r, |l| l.max(r)));
                        }
                        if t.watched {
                            t.due = true;
                        }
                    }
                }
            }
        }
    }

    /// The window start for a topic.
    fn window_start(&self, now: u32, t: &TopicState) -> u32 {
        let floor = now.saturating_sub(dur_secs(self.config.max_lookback));
        let from = match t.last_seen {
            Some(l) => l.saturating_sub(dur_secs(self.config.tolerance)),
            None => now.saturating_sub(dur_secs(self.config.initial_lookback)),
        };
        from.max(floor).min(now)
    }

    /// Start a job if topics are due and a mailserver is usable; send a waiting request when its time
    /// has come.
    fn drive(&mut self, now: Timestamp) {
        if self.job.is_none() {
            if let Some(peer) = self.pick(now, None) {
                let n = secs(now);
                let mut due: Vec<(u32, Topic)> = self
                    .topics
                    .iter()
                    .filter(|(_, t)| t.due && t.watched)
                    .map(|(k, t)| (self.window_start(n, t), *k))
                    .collect();
                if !due.is_empty() {
                    // Oldest first, so one batch shares a similar window.
                    due.sort();
                    due.truncate(self.config.max_topics_per_request.max(1));
                    let from = due.first().map_or(n, |d| d.0);
                    let topics: Vec<Topic> = due.iter().map(|d| d.1).collect();
                    for k in &topics {
                        if let Some(t) = self.topics.get_mut(k) {
                            t.due = false;
                        }
                    }
                    self.job = Some(Job {
                        peer,
                        topics,
                        from,
                        to: n,
                        cursor: Bytes::new(),
                        pages: 0,
                        envelopes: 0,
                        tries: 0,
                        state: JobState::Waiting {
                            at: self.next_slot(now, &peer),
                        },
                    });
                }
            }
        }
        let ready = self
            .job
            .as_ref()
            .is_some_and(|j| matches!(j.state, JobState::Waiting { at } if at <= now));
        if ready {
            self.send(now);
        }
    }

    fn send(&mut self, now: Timestamp) {
        let mut raw = [0u8; 16];
        self.rng.fill_bytes(&mut raw);
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut id = [0u8; 32];
        for (i, b) in raw.iter().enumerate() {
            id[2 * i] = HEX[usize::from(b >> 4)];
            id[2 * i + 1] = HEX[usize::from(b & 15)];
        }
        let Some(job) = &mut self.job else { return };
        job.state = JobState::Sent {
            id,
            deadline: now + self.config.request_timeout,
        };
        let peer = job.peer;
        let mut dialect = Dialect::Waku1;
        if let Some(m) = self.mailservers.iter_mut().find(|m| m.key == peer) {
            m.last_request = Some(now);
            dialect = m.dialect;
        }
        let (bloom, topics) = match dialect {
            Dialect::Waku1 => (Bytes::new(), job.topics.clone()),
            Dialect::Whisper6 => (Bytes::copy_from_slice(&Bloom::of_topics(&job.topics).0), vec![]),
        };
        let request = MessagesRequest {
            id: Bytes::copy_from_slice(&id),
            from: job.from,
            to: job.to,
            limit: self.config.page_limit.min(MAX_LIMIT),
            cursor: job.cursor.clone(),
            bloom,
            topics,
        };
        self.outputs.push_back(Output::Request { peer, request });
    }

    /// Fire deadlines `<= now`: request timeouts, delayed sends, cooldowns ending.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.last_now = now;
        let timed_out = self
            .job
            .as_ref()
            .is_some_and(|j| matches!(j.state, JobState::Sent { deadline, .. } if deadline <= now));
        if timed_out {
            self.attempt_failed(now, FailureReason::Timeout, false);
        }
        self.drive(now);
    }

    /// The earliest deadline.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        match &self.job {
            Some(Job {
                state: JobState::Waiting { at },
                ..
            }) => Some(*at),
            Some(Job {
                state: JobState::Sent { deadline, .. },
                ..
            }) => Some(*deadline),
            None => {
                if !self.topics.values().any(|t| t.due && t.watched) || self.mailservers.is_empty() {
                    return None;
                }
                if self.pick(self.last_now, None).is_some() {
                    // Work can start (topics were set without a time): at once.
                    return Some(self.last_now);
                }
                self.mailservers
                    .iter()
                    .filter_map(|m| m.cooldown_until)
                    .fold(None, |t, c| earliest(t, Some(c)))
            }
        }
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The per-topic `last_seen` times, for the driver to store.
    pub fn export(&self) -> Vec<u8> {
        let entries: Vec<(&Topic, u32)> = self
            .topics
            .iter()
            .filter_map(|(k, t)| t.last_seen.map(|l| (k, l)))
            .collect();
        let mut out = Vec::with_capacity(5 + entries.len() * 8);
        out.push(EXPORT_VERSION);
        out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        for (k, l) in entries {
            out.extend_from_slice(&k.0);
            out.extend_from_slice(&l.to_be_bytes());
        }
        out
    }

    /// Restore `last_seen` times from [`export`](Self::export) (the later of the stored and the known
    /// time wins). The whole input is checked before anything changes.
    pub fn import(&mut self, data: &[u8]) -> Result<(), MailserverError> {
        let bad = MailserverError::InvalidState;
        let (&version, rest) = data.split_first().ok_or(bad("empty"))?;
        if version != EXPORT_VERSION {
            return Err(bad("unknown version"));
        }
        let count = rest
            .get(..4)
            .and_then(|c| <[u8; 4]>::try_from(c).ok())
            .map(u32::from_be_bytes)
            .ok_or(bad("truncated"))? as usize;
        if count > self.config.max_topics {
            return Err(bad("too many topics"));
        }
        let body = &rest[4..];
        if body.len() != count * 8 {
            return Err(bad("length does not match the count"));
        }
        let mut parsed = BTreeMap::new();
        for e in body.chunks_exact(8) {
            let topic = Topic([e[0], e[1], e[2], e[3]]);
            let l = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
            if parsed.insert(topic, l).is_some() {
                return Err(bad("duplicate topic"));
            }
        }
        for (topic, l) in parsed {
            if let Some(t) = self.topics.get_mut(&topic) {
                t.last_seen = Some(t.last_seen.map_or(l, |o| o.max(l)));
                continue;
            }
            if self.topics.len() >= self.config.max_topics && !self.evict_unwatched() {
                continue;
            }
            self.topics.insert(
                topic,
                TopicState {
                    last_seen: Some(l),
                    watched: false,
                    due: false,
                },
            );
        }
        Ok(())
    }
}

/// The time prefix of a cursor.
fn cursor_time(c: &[u8]) -> Option<u32> {
    c.get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::crypto::SecretKey;

    const T0: u64 = 1_700_000_000;

    fn key(n: u64) -> PublicKey {
        SecretKey::random(&mut Seed::from_u64(n).rng()).public_key()
    }

    fn topic(n: u8) -> Topic {
        Topic([n, 0, 0, 0])
    }

    fn cfg() -> HistoryConfig {
        HistoryConfig {
            page_limit: 5,
            ..Default::default()
        }
    }

    fn client(c: HistoryConfig) -> HistoryClient {
        HistoryClient::new(c, Seed::from_u64(3))
    }

    /// Drain outputs into (requests, events).
    fn drain(c: &mut HistoryClient) -> (Vec<(PublicKey, MessagesRequest)>, Vec<Event>) {
        let (mut r, mut e) = (vec![], vec![]);
        while let Some(o) = c.poll_output() {
            match o {
                Output::Request { peer, request } => r.push((peer, request)),
                Output::Event(ev) => e.push(ev),
            }
        }
        (r, e)
    }

    /// A store of `(sent, hash)` keys answering like the server: the page after the cursor, and the
    /// cursor of the last entry when the page is full.
    fn serve(store: &[(u32, [u8; 32])], req: &MessagesRequest) -> (Vec<[u8; 32]>, Vec<u8>) {
        let mut page = vec![];
        let mut last = None;
        for (t, h) in store {
            let mut k = t.to_be_bytes().to_vec();
            k.extend_from_slice(h);
            if *t < req.from || *t > req.to || (!req.cursor.is_empty() && k[..] <= req.cursor[..]) {
                continue;
            }
            page.push(*h);
            last = Some(k);
            if page.len() == req.limit as usize {
                break;
            }
        }
        let mut id = [0u8; 32];
        id.copy_from_slice(&req.id);
        let cursor = (page.len() == req.limit as usize).then(|| Bytes::from(last.unwrap()));
        let rc = RequestComplete::Success {
            request_id: id,
            last_envelope_hash: page.last().copied(),
            cursor,
        };
        (page, rc.encode())
    }

    fn store(n: u8, from: u32) -> Vec<(u32, [u8; 32])> {
        (0..n).map(|i| (from + u32::from(i) * 60, [i + 1; 32])).collect()
    }

    #[test]
    fn pages_through_cursors_and_advances_last_seen() {
        let mut c = client(cfg());
        let ms = key(1);
        c.set_topics([topic(1)]);
        let mut now = Timestamp::from_secs(T0);
        c.connected(now, ms);
        let st = store(23, (T0 - 3600) as u32);
        let mut pages = 0;
        let mut sent_at = vec![];
        let mut got = BTreeSet::new();
        loop {
            let (reqs, events) = drain(&mut c);
            if let Some(Event::HistoryFetched {
                peer,
                topics,
                from,
                to,
                envelopes,
                pages: p,
            }) = events.first()
            {
                assert_eq!(*peer, ms);
                assert_eq!(topics, &vec![topic(1)]);
                assert_eq!(
                    *from,
                    (T0 - 24 * 3600) as u32,
                    "a topic never synced looks back 24 h"
                );
                assert_eq!(*to, T0 as u32);
                assert_eq!(*envelopes, 23);
                assert_eq!(*p, 5);
                break;
            }
            if reqs.is_empty() {
                now = c.poll_timeout().expect("a deadline while paging");
                c.handle_timeout(now);
                continue;
            }
            assert_eq!(reqs.len(), 1);
            let (peer, req) = &reqs[0];
            assert_eq!(*peer, ms);
            req.validate().unwrap();
            assert_eq!(req.limit, 5);
            sent_at.push(now);
            let (page, rc) = serve(&st, req);
            for h in page {
                assert!(c.on_envelope(h));
                got.insert(h);
            }
            pages += 1;
            now += Duration::from_millis(30);
            c.on_request_complete(now, &ms, &rc);
        }
        assert_eq!(pages, 5, "23 envelopes in pages of 5");
        assert_eq!(got.len(), 23);
        for w in sent_at.windows(2) {
            assert!(
                w[1].saturating_duration_since(w[0]) >= Duration::from_millis(1500),
                "paced"
            );
        }
        assert_eq!(c.last_seen(&topic(1)), Some(T0 as u32));
        assert!(!c.busy());
        assert_eq!(c.poll_timeout(), None);

        // Reconnect hours later: the window starts at last_seen − tolerance.
        c.disconnected(now, &ms);
        let later = Timestamp::from_secs(T0 + 5 * 3600);
        c.connected(later, ms);
        let (reqs, _) = drain(&mut c);
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].1.from, T0 as u32 - 60);
        assert_eq!(reqs[0].1.to, (T0 + 5 * 3600) as u32);
        assert!(reqs[0].1.cursor.is_empty());
    }

    #[test]
    fn timeout_retries_then_fails_over_keeping_the_cursor() {
        let mut c = client(cfg());
        let (a, b) = (key(1), key(2));
        c.set_topics([topic(1)]);
        let mut now = Timestamp::from_secs(T0);
        c.connected(now, a);
        c.connected(now, b);
        let (reqs, _) = drain(&mut c);
        assert_eq!(reqs.len(), 1, "one request in flight, to the first mailserver");
        assert_eq!(reqs[0].0, a);
        // A answers one page with a cursor, then goes silent.
        let st = store(12, (T0 - 1000) as u32);
        let (page, rc) = serve(&st, &reqs[0].1);
        for h in page {
            c.on_envelope(h);
        }
        assert_eq!(c.on_request_complete(now, &a, &rc), Completion::NextPage);
        now = c.poll_timeout().unwrap();
        c.handle_timeout(now);
        let (reqs, _) = drain(&mut c);
        let cursor = reqs[0].1.cursor.clone();
        assert_eq!(cursor.len(), 36);
        assert_eq!(c.poll_timeout(), Some(now + Duration::from_secs(20)));
        now += Duration::from_secs(20);
        c.handle_timeout(now);
        let (reqs, events) = drain(&mut c);
        assert!(reqs.is_empty(), "the retry waits retry_delay");
        assert_eq!(
            events,
            vec![Event::RequestFailed {
                peer: a,
                reason: FailureReason::Timeout,
                topics: vec![topic(1)],
                will_retry: true
            }]
        );
        now = c.poll_timeout().unwrap();
        c.handle_timeout(now);
        let (reqs, _) = drain(&mut c);
        assert_eq!(reqs[0].0, a, "second try on the same mailserver");
        assert_eq!(reqs[0].1.cursor, cursor);
        now += Duration::from_secs(20);
        c.handle_timeout(now);
        let (reqs, events) = drain(&mut c);
        assert!(events.contains(&Event::FailedOver { from: a, to: b }));
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].0, b);
        assert_eq!(reqs[0].1.cursor, cursor, "continues from the last complete page");
        // A late answer from A is ignored.
        assert_eq!(c.on_request_complete(now, &a, &rc), Completion::Ignored);
        let (page, rc) = serve(&st, &reqs[0].1);
        assert_eq!(page.len(), 5);
        for h in page {
            assert!(c.on_envelope(h));
        }
        assert_eq!(c.on_request_complete(now, &b, &rc), Completion::NextPage);
        now = c.poll_timeout().unwrap();
        c.handle_timeout(now);
        let (reqs, _) = drain(&mut c);
        let (page, rc) = serve(&st, &reqs[0].1);
        assert_eq!(page.len(), 2);
        for h in page {
            assert!(c.on_envelope(h));
        }
        assert_eq!(c.on_request_complete(now, &b, &rc), Completion::Done);
        let (_, events) = drain(&mut c);
        assert!(matches!(
            events[..],
            [Event::HistoryFetched { peer, envelopes: 12, pages: 3, .. }] if peer == b
        ));
        assert_eq!(c.last_seen(&topic(1)), Some(T0 as u32));
    }

    #[test]
    fn error_completion_retries_and_no_mailserver_left_keeps_topics_due() {
        let mut c = client(cfg());
        let a = key(1);
        c.set_topics([topic(1), topic(2)]);
        let mut now = Timestamp::from_secs(T0);
        c.connected(now, a);
        let (reqs, _) = drain(&mut c);
        let mut id = [0u8; 32];
        id.copy_from_slice(&reqs[0].1.id);
        assert!(
            reqs[0].1.id.iter().all(|b| b.is_ascii_hexdigit()),
            "hex request id"
        );
        let err = RequestComplete::Failure {
            request_id: id,
            error: "x".repeat(1000),
        }
        .encode();
        assert_eq!(c.on_request_complete(now, &a, &err), Completion::Failed);
        let (_, events) = drain(&mut c);
        match &events[..] {
            [Event::RequestFailed {
                reason: FailureReason::Rejected(t),
                will_retry: true,
                ..
            }] => assert_eq!(t.len(), MAX_ERROR_TEXT),
            e => panic!("{e:?}"),
        }
        now = c.poll_timeout().unwrap();
        assert_eq!(now, Timestamp::from_secs(T0) + Duration::from_secs(2));
        c.handle_timeout(now);
        let (reqs, _) = drain(&mut c);
        assert_eq!(reqs.len(), 1);
        // The mailserver leaves: nobody to fail over to.
        c.disconnected(now, &a);
        let (_, events) = drain(&mut c);
        assert!(matches!(
            events[..],
            [Event::RequestFailed {
                reason: FailureReason::Disconnected,
                will_retry: false,
                ..
            }]
        ));
        assert_eq!(c.due_topics(), 2);
        assert_eq!(c.poll_timeout(), None);
        assert_eq!(c.last_seen(&topic(1)), None);
        c.connected(now, a);
        let (reqs, _) = drain(&mut c);
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].1.topics, vec![topic(1), topic(2)]);
    }

    #[test]
    fn bad_cursors_are_not_counted_as_pages() {
        // A fuzz find: completions with bad cursors were counted as pages, so interleaved bad cursors
        // cut a request short (or reported more than `max_pages` pages).
        let mut c = client(HistoryConfig {
            max_pages: 3,
            max_tries: 10,
            ..cfg()
        });
        let a = key(1);
        c.set_topics([topic(1)]);
        let mut now = Timestamp::from_secs(T0);
        c.connected(now, a);
        let mut good = T0 as u32 - 1000;
        let mut completions = vec![];
        // valid, bad, bad, valid, bad, end: three pages followed.
        for (k, kind) in ["valid", "bad", "bad", "valid", "bad", "end"].iter().enumerate() {
            let (reqs, _) = drain(&mut c);
            assert_eq!(reqs.len(), 1, "step {k}: one request out");
            let mut id = [0u8; 32];
            id.copy_from_slice(&reqs[0].1.id);
            let cursor = match *kind {
                "valid" => {
                    good += 10;
                    let mut cur = good.to_be_bytes().to_vec();
                    cur.extend_from_slice(&[9; 32]);
                    Some(cur.into())
                }
                "bad" => {
                    // Well formed, outside the window.
                    let mut cur = (T0 as u32 + 100_000).to_be_bytes().to_vec();
                    cur.extend_from_slice(&[9; 32]);
                    Some(cur.into())
                }
                _ => None,
            };
            let rc = RequestComplete::Success {
                request_id: id,
                last_envelope_hash: None,
                cursor,
            };
            completions.push(c.on_request_complete(now, &a, &rc.encode()));
            // Let the retry delay or the request gap pass.
            if c.job
                .as_ref()
                .is_some_and(|j| matches!(j.state, JobState::Waiting { .. }))
            {
                now = c.poll_timeout().unwrap();
                c.handle_timeout(now);
            }
        }
        use Completion::*;
        assert_eq!(
            completions,
            vec![NextPage, Failed, Failed, NextPage, Failed, Done]
        );
        let (_, events) = drain(&mut c);
        assert!(
            matches!(events.last(), Some(Event::HistoryFetched { pages: 3, .. })),
            "{events:?}"
        );
    }

    #[test]
    fn bad_cursors_and_page_cap() {
        let mut c = client(HistoryConfig {
            max_pages: 3,
            max_tries: 1,
            ..cfg()
        });
        let a = key(1);
        c.set_topics([topic(1)]);
        let mut now = Timestamp::from_secs(T0);
        c.connected(now, a);
        let (reqs, _) = drain(&mut c);
        let mut id = [0u8; 32];
        id.copy_from_slice(&reqs[0].1.id);
        // A cursor outside the window fails the attempt.
        let mut far = (T0 as u32 + 100).to_be_bytes().to_vec();
        far.extend_from_slice(&[0; 32]);
        let rc = RequestComplete::Success {
            request_id: id,
            last_envelope_hash: None,
            cursor: Some(far.into()),
        };
        assert_eq!(c.on_request_complete(now, &a, &rc.encode()), Completion::Failed);
        let (_, events) = drain(&mut c);
        assert!(matches!(
            events[..],
            [Event::RequestFailed {
                reason: FailureReason::BadCursor,
                will_retry: false,
                ..
            }]
        ));
        // Cooldown over: the topic is asked again; a server that keeps paging is cut at max_pages.
        now = c.poll_timeout().unwrap();
        assert_eq!(now, Timestamp::from_secs(T0) + Duration::from_secs(300));
        c.handle_timeout(now);
        let mut t = T0 as u32 - 1000;
        let mut cursor_times = vec![];
        for round in 0..3 {
            let (reqs, events) = drain(&mut c);
            assert!(events.is_empty(), "{events:?}");
            assert_eq!(reqs.len(), 1, "round {round}");
            id.copy_from_slice(&reqs[0].1.id);
            t += 10;
            cursor_times.push(t);
            let mut cur = t.to_be_bytes().to_vec();
            cur.extend_from_slice(&[9; 32]);
            let rc = RequestComplete::Success {
                request_id: id,
                last_envelope_hash: None,
                cursor: Some(cur.clone().into()),
            };
            c.on_request_complete(now, &a, &rc.encode());
            if round < 2 {
                // The same cursor again does not advance: refused.
                assert_eq!(
                    c.on_request_complete(now, &a, &rc.encode()),
                    Completion::Ignored,
                    "not sent yet"
                );
                now = c.poll_timeout().unwrap();
                c.handle_timeout(now);
            }
        }
        let (_, events) = drain(&mut c);
        assert!(matches!(
            events[..],
            [Event::RequestFailed {
                reason: FailureReason::TooManyPages,
                will_retry: false,
                ..
            }]
        ));
        assert_eq!(
            c.last_seen(&topic(1)),
            cursor_times.last().copied(),
            "progress kept"
        );
    }

    #[test]
    fn non_advancing_cursor_is_refused() {
        let mut c = client(HistoryConfig {
            max_tries: 1,
            ..cfg()
        });
        let a = key(1);
        c.set_topics([topic(1)]);
        let mut now = Timestamp::from_secs(T0);
        c.connected(now, a);
        let mut id = [0u8; 32];
        let mut cur = (T0 as u32 - 5).to_be_bytes().to_vec();
        cur.extend_from_slice(&[9; 32]);
        for expect in [Completion::NextPage, Completion::Failed] {
            let (reqs, _) = drain(&mut c);
            id.copy_from_slice(&reqs[0].1.id);
            let rc = RequestComplete::Success {
                request_id: id,
                last_envelope_hash: None,
                cursor: Some(cur.clone().into()),
            };
            assert_eq!(c.on_request_complete(now, &a, &rc.encode()), expect);
            if let Some(t) = c.poll_timeout() {
                now = t;
                c.handle_timeout(now);
            }
        }
    }

    #[test]
    fn topics_are_split_and_windows_bounded() {
        let mut c = client(HistoryConfig {
            max_topics_per_request: 3,
            ..cfg()
        });
        let a = key(1);
        c.set_topics((0..7).map(topic));
        // An old import: the window is still bounded by max_lookback.
        let mut state = vec![1, 0, 0, 0, 1];
        state.extend_from_slice(&topic(6).0);
        state.extend_from_slice(&((T0 - 30 * 24 * 3600) as u32).to_be_bytes());
        c.import(&state).unwrap();
        let mut now = Timestamp::from_secs(T0);
        c.connected(now, a);
        let mut batches = vec![];
        while c.busy() {
            let (reqs, _) = drain(&mut c);
            if reqs.is_empty() {
                now = c.poll_timeout().unwrap();
                c.handle_timeout(now);
                continue;
            }
            let r = &reqs[0].1;
            batches.push((r.from, r.topics.clone()));
            let (_, rc) = serve(&[], r);
            assert_eq!(c.on_request_complete(now, &a, &rc), Completion::Done);
        }
        assert_eq!(batches.len(), 3);
        assert_eq!(
            batches[0].1,
            vec![topic(6), topic(0), topic(1)],
            "oldest window first"
        );
        assert_eq!(batches[0].0, (T0 - 7 * 24 * 3600) as u32);
        assert_eq!(batches[1].1.len(), 3);
        assert_eq!(batches[2].1, vec![topic(5)]);
        for i in 0..7 {
            assert!(c.last_seen(&topic(i)).is_some());
        }
        // A new topic is synced on its own; a removed one is no longer asked.
        c.set_topics((1..8).map(topic));
        c.handle_timeout(now);
        let (reqs, _) = drain(&mut c);
        if reqs.is_empty() {
            now = c.poll_timeout().unwrap();
            c.handle_timeout(now);
        }
        let (reqs2, _) = drain(&mut c);
        let r = reqs.first().or(reqs2.first()).unwrap();
        assert_eq!(r.1.topics, vec![topic(7)]);
    }

    #[test]
    fn topic_cap_and_dedup_cap() {
        let mut c = client(HistoryConfig {
            max_topics: 4,
            max_seen_envelopes: 3,
            ..cfg()
        });
        c.set_topics((0..10).map(topic));
        assert_eq!(c.due_topics(), 4);
        for i in 0..5u8 {
            assert!(c.on_envelope([i; 32]));
        }
        assert_eq!(c.seen_len(), 3);
        assert!(!c.on_envelope([4; 32]), "recent hash remembered");
        assert!(c.on_envelope([0; 32]), "oldest forgotten at the cap");
    }

    #[test]
    fn ignores_foreign_and_garbage_completions() {
        let mut c = client(cfg());
        let (a, b) = (key(1), key(2));
        c.set_topics([topic(1)]);
        let now = Timestamp::from_secs(T0);
        c.connected(now, a);
        let (reqs, _) = drain(&mut c);
        let mut id = [0u8; 32];
        id.copy_from_slice(&reqs[0].1.id);
        let ok = RequestComplete::Success {
            request_id: id,
            last_envelope_hash: None,
            cursor: None,
        }
        .encode();
        let other = RequestComplete::Success {
            request_id: [b'0'; 32],
            last_envelope_hash: None,
            cursor: None,
        }
        .encode();
        assert_eq!(c.on_request_complete(now, &b, &ok), Completion::Ignored);
        assert_eq!(c.on_request_complete(now, &a, &other), Completion::Ignored);
        assert_eq!(c.on_request_complete(now, &a, &[1, 2, 3]), Completion::Ignored);
        assert_eq!(c.on_request_complete(now, &a, &[0; 101]), Completion::Ignored);
        assert_eq!(c.on_request_complete(now, &a, &ok), Completion::Done);
        assert_eq!(
            c.on_request_complete(now, &a, &ok),
            Completion::Ignored,
            "only once"
        );
    }

    #[test]
    fn export_import_round_trip_and_garbage() {
        let mut c = client(cfg());
        let a = key(1);
        c.set_topics([topic(1), topic(2)]);
        let now = Timestamp::from_secs(T0);
        c.connected(now, a);
        let (reqs, _) = drain(&mut c);
        let (_, rc) = serve(&[], &reqs[0].1);
        c.on_request_complete(now, &a, &rc);
        let blob = c.export();
        assert_eq!(blob.len(), 5 + 2 * 8);
        let mut d = client(cfg());
        d.import(&blob).unwrap();
        assert_eq!(d.last_seen(&topic(1)), Some(T0 as u32));
        assert_eq!(d.export(), blob);
        // A restart continues: the imported topic is asked from last_seen − tolerance.
        d.set_topics([topic(2)]);
        d.connected(now + Duration::from_secs(3600), a);
        let (reqs, _) = drain(&mut d);
        assert_eq!(reqs[0].1.from, T0 as u32 - 60);

        let mut e = client(HistoryConfig {
            max_topics: 1,
            ..cfg()
        });
        let mut dup = vec![1, 0, 0, 0, 2];
        dup.extend_from_slice(&blob[5..13]);
        dup.extend_from_slice(&blob[5..13]);
        for bad in [
            vec![],
            vec![2, 0, 0, 0, 0],
            vec![1, 0, 0],
            blob[..blob.len() - 1].to_vec(),
            [&blob[..], &[0]].concat(),
            vec![1, 255, 255, 255, 255],
            blob.clone(),
            dup,
        ] {
            assert!(
                matches!(e.import(&bad), Err(MailserverError::InvalidState(_))),
                "{bad:?}"
            );
            assert_eq!(e.export(), vec![1, 0, 0, 0, 0], "nothing changed");
        }
        assert!(c.import(&[1, 0, 0, 0, 0]).is_ok());
    }
}
