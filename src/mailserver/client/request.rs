//! Building and pacing history requests (docs/protocol/status-transport-usage.md §4.3 (c), §4.6): which
//! mailserver, which topics and window, when the next request may go out, and the request itself in the
//! shape of the mailserver's dialect.

use bytes::Bytes;
use rand_core::RngCore;

use super::paging::{Job, JobState};
use super::{secs, HistoryClient, Output};
use crate::crypto::PublicKey;
use crate::time::Timestamp;
use crate::waku::request::{MessagesRequest, MAX_LIMIT};
use crate::waku::{Bloom, Dialect, Topic};

impl HistoryClient {
    pub(super) fn usable(&self, now: Timestamp, key: &PublicKey) -> bool {
        self.mailservers
            .iter()
            .any(|m| m.key == *key && m.cooldown_until.is_none_or(|t| t <= now))
    }

    pub(super) fn pick(&self, now: Timestamp, except: Option<&PublicKey>) -> Option<PublicKey> {
        self.mailservers
            .iter()
            .find(|m| Some(&m.key) != except && m.cooldown_until.is_none_or(|t| t <= now))
            .map(|m| m.key)
    }
    /// When the next request to `peer` may go out.
    pub(super) fn next_slot(&self, now: Timestamp, peer: &PublicKey) -> Timestamp {
        let last = self
            .mailservers
            .iter()
            .find(|m| m.key == *peer)
            .and_then(|m| m.last_request);
        last.map_or(now, |l| (l + self.config.request_gap).max(now))
    }

    /// Start a job if topics are due and a mailserver is usable; send a waiting request when its time
    /// has come.
    pub(super) fn drive(&mut self, now: Timestamp) {
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
        self.outputs.push_back(Output::Transmit { peer, request });
    }
}
