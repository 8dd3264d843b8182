//! The cursor and paging state of the history client (docs/protocol/status-transport-usage.md §4.3 (c),
//! §4.5): the request in flight, what a completion does to it (next page, done, failed attempt), retries
//! and failover, and the de-duplication of envelopes that arrive for it.

use bytes::Bytes;

use super::{Completion, Event, FailureReason, HistoryClient, Output, MAX_ERROR_TEXT};
use crate::crypto::PublicKey;
use crate::time::Timestamp;
use crate::waku::request::{RequestComplete, CURSOR_LEN};
use crate::waku::{Dialect, Topic};

#[derive(Debug)]
pub(super) struct Mailserver {
    pub(super) key: PublicKey,
    pub(super) dialect: Dialect,
    pub(super) cooldown_until: Option<Timestamp>,
    pub(super) last_request: Option<Timestamp>,
}

#[derive(Debug, Default, Clone, Copy)]
pub(super) struct TopicState {
    pub(super) last_seen: Option<u32>,
    pub(super) watched: bool,
    pub(super) due: bool,
}

#[derive(Debug)]
pub(super) enum JobState {
    /// Send when `at` is reached.
    Waiting { at: Timestamp },
    /// Sent with `id`; fails at `deadline`.
    Sent { id: [u8; 32], deadline: Timestamp },
}

#[derive(Debug)]
pub(super) struct Job {
    pub(super) peer: PublicKey,
    pub(super) topics: Vec<Topic>,
    pub(super) from: u32,
    pub(super) to: u32,
    pub(super) cursor: Bytes,
    pub(super) pages: u32,
    pub(super) envelopes: u64,
    pub(super) tries: u32,
    pub(super) state: JobState,
}

impl HistoryClient {
    /// See [`Input::Envelope`](super::Input::Envelope). Returns true if it was not seen before.
    pub(super) fn record_envelope(&mut self, hash: [u8; 32]) -> bool {
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

    /// See [`Input::RequestComplete`](super::Input::RequestComplete).
    pub(super) fn apply_completion(
        &mut self,
        now: Timestamp,
        peer: &PublicKey,
        payload: &[u8],
    ) -> Completion {
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

    /// The window is complete: advance the topics and report.
    pub(super) fn finish(&mut self) {
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
    pub(super) fn give_up(&mut self, reason: FailureReason) {
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
    pub(super) fn attempt_failed(&mut self, now: Timestamp, reason: FailureReason, gone: bool) {
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
}

/// The time prefix of a cursor.
pub(super) fn cursor_time(c: &[u8]) -> Option<u32> {
    c.get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
}
