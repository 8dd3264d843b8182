//! The mailserver client: history requests on (re)connect, cursor paging, timeouts and failover
//! (docs/protocol/status-transport-usage.md §4.3 (c), §4.5, §4.6; docs/protocol/status-client.md "Mailserver
//! trust" and availability).
//!
//! The [`HistoryClient`] knows mailservers by node key. Everything comes in through
//! [`HistoryClient::handle_input`]: when one becomes usable ([`Input::Connected`]: Waku handshake done, peer
//! marked trusted) or goes away ([`Input::Disconnected`]), which topics the node watches
//! ([`Input::SetTopics`]), every request-complete payload from a trusted peer ([`Input::RequestComplete`];
//! [`HistoryClient::last_completion`] tells what it made of it) and every envelope hash that arrived in a
//! P2P message ([`Input::Envelope`]; ask [`HistoryClient::is_new`] first whether it is new). It emits
//! [`Output::Transmit`] (a direct-form `MessagesRequest` to send as P2P Request, code 126, encoded with
//! [`super::encode_request`] for the peer's dialect) and [`Event`]s.
//!
//! Files: this one holds the machine and its inputs; [`request`](self) building and pacing, the topics and
//! their persistence, and the cursor/paging state of the request in flight live in `request.rs`,
//! `topics.rs` and `paging.rs`.
//!
//! **Dialects** (§4.3 (c)): a mailserver that connected over `shh/6`
//! ([`Input::Connected`] with [`Dialect::Whisper6`]) cannot take topics: its requests carry the bloom of the batch's
//! topics and no topics (six fields on the wire), and envelopes of other topics that share bloom bits
//! may come back (the Waku filters drop them). Over `waku/1` requests carry the topics and no bloom, as
//! the 2024 Status client sends them.
//!
//! Behaviour:
//! * **When**: every watched topic is synced when the first usable mailserver connects (a reconnect
//!   after an outage counts), when a topic is added, and on [`Input::Fetch`].
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
//! * **De-duplication**: [`Input::Envelope`] remembers the last `max_seen_envelopes` hashes;
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

mod paging;
mod request;
#[cfg(test)]
mod tests;
mod topics;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use rand_chacha::ChaCha20Rng;

use super::MailserverError;
use crate::crypto::PublicKey;
use crate::rng::Seed;
use crate::time::{earliest, Timestamp};
use crate::waku::request::{MessagesRequest, MAX_LIMIT};
use crate::waku::{Dialect, Topic};
use paging::{Job, JobState, Mailserver, TopicState};

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

impl HistoryConfig {
    /// `Err(InvalidConfig)` when a value cannot work: a `page_limit` of 0 or above 1000, no pages
    /// (`max_pages` 0) or no topics per request (`max_topics_per_request` 0).
    pub fn validate(&self) -> Result<(), MailserverError> {
        if self.page_limit == 0 || self.page_limit > MAX_LIMIT {
            return Err(MailserverError::InvalidConfig("page_limit is outside 1-1000"));
        }
        if self.max_pages == 0 {
            return Err(MailserverError::InvalidConfig("max_pages is zero"));
        }
        if self.max_topics_per_request == 0 {
            return Err(MailserverError::InvalidConfig("max_topics_per_request is zero"));
        }
        Ok(())
    }
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
#[non_exhaustive]
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
#[non_exhaustive]
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

/// Inputs.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// A mailserver became usable over `dialect` (its Waku handshake is done and it is trusted): its
    /// requests take the shape that dialect understands (see the [module docs](self)). If no other usable
    /// mailserver was connected, every watched topic is synced from its `last_seen`. Past
    /// `max_mailservers` the mailserver is ignored.
    Connected {
        /// The mailserver's node key.
        peer: PublicKey,
        /// The dialect of the connection.
        dialect: Dialect,
    },
    /// A mailserver went away. A request in flight to it fails over at once.
    Disconnected {
        /// The mailserver's node key.
        peer: PublicKey,
    },
    /// The topics the node watches now. New topics are synced; topics no longer watched keep their
    /// `last_seen` (bounded by `max_topics`). Requests for them start at the next
    /// [`HistoryClient::handle_timeout`] ([`HistoryClient::poll_timeout`] says it is due).
    SetTopics(Vec<Topic>),
    /// Ask for history now: of `topics` (those watched), or of every watched topic when empty.
    Fetch {
        /// The topics (empty: every watched topic).
        topics: Vec<Topic>,
    },
    /// An envelope arrived in a mailserver's P2P message. If it was not seen before
    /// ([`HistoryClient::is_new`]) it counts toward the request in flight. At most
    /// `max_seen_envelopes` hashes are remembered.
    Envelope {
        /// The envelope hash.
        hash: [u8; 32],
    },
    /// A request-complete payload (code 125) from `peer`; [`HistoryClient::last_completion`] tells what
    /// the client made of it.
    RequestComplete {
        /// The mailserver's node key.
        peer: PublicKey,
        /// The flat completion payload.
        payload: Bytes,
    },
}

/// Outputs.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Output {
    /// Send `request` to `peer` as a P2P Request (126), encoded with [`super::encode_request`] for the
    /// dialect of the connection (six fields over `shh/6`, seven over `waku/1`).
    Transmit {
        /// The mailserver.
        peer: PublicKey,
        /// The request.
        request: MessagesRequest,
    },
    /// Something for the application.
    Event(Event),
}

/// What the client made of an [`Input::RequestComplete`] (see [`HistoryClient::last_completion`]).
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
    last_completion: Option<Completion>,
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
    /// A client with `config`, drawing request ids from `seed`, started at `now`.
    /// `Err(InvalidConfig)` if `config` cannot work (see [`HistoryConfig::validate`]).
    pub fn new(config: HistoryConfig, seed: &Seed, now: Timestamp) -> Result<Self, MailserverError> {
        config.validate()?;
        Ok(Self::new_unvalidated(config, seed, now))
    }

    /// [`HistoryClient::new`] without the check, for the engine until its own constructor can fail.
    pub(crate) fn new_unvalidated(config: HistoryConfig, seed: &Seed, now: Timestamp) -> Self {
        HistoryClient {
            config,
            rng: seed.rng(),
            mailservers: Vec::new(),
            topics: BTreeMap::new(),
            job: None,
            seen: BTreeSet::new(),
            seen_order: VecDeque::new(),
            outputs: VecDeque::new(),
            last_now: now,
            last_completion: None,
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

    /// True if an envelope with `hash` would be new to [`Input::Envelope`] (not among the remembered
    /// hashes; always true when `max_seen_envelopes` is 0).
    pub fn is_new(&self, hash: &[u8; 32]) -> bool {
        self.config.max_seen_envelopes == 0 || !self.seen.contains(hash)
    }

    /// What the last [`Input::RequestComplete`] was taken for (`None` before the first).
    pub fn last_completion(&self) -> Option<Completion> {
        self.last_completion
    }

    /// Feed an input (see [`Input`]). No input is misuse today: the `Result` is there so a future check
    /// can refuse one without changing the signature.
    pub fn handle_input(&mut self, now: Timestamp, input: Input) -> Result<(), MailserverError> {
        match input {
            Input::Connected { peer, dialect } => self.on_connected(now, peer, dialect),
            Input::Disconnected { peer } => self.on_disconnected(now, &peer),
            Input::SetTopics(topics) => self.apply_topics(topics),
            Input::Fetch { topics } => self.fetch(now, &topics),
            Input::Envelope { hash } => {
                self.record_envelope(hash);
            }
            Input::RequestComplete { peer, payload } => {
                let completion = self.apply_completion(now, &peer, &payload);
                self.last_completion = Some(completion);
            }
        }
        Ok(())
    }

    /// See [`Input::Connected`].
    fn on_connected(&mut self, now: Timestamp, peer: PublicKey, dialect: Dialect) {
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

    /// See [`Input::Disconnected`].
    fn on_disconnected(&mut self, now: Timestamp, peer: &PublicKey) {
        self.last_now = now;
        let before = self.mailservers.len();
        self.mailservers.retain(|m| m.key != *peer);
        if self.mailservers.len() != before && self.job.as_ref().is_some_and(|j| j.peer == *peer) {
            self.attempt_failed(now, FailureReason::Disconnected, true);
        }
        self.drive(now);
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
}
