//! The topics the history client syncs and their `last_seen` times (docs/protocol/status-transport-usage.md
//! §4.5): watched and remembered topics bounded by `max_topics`, the window each asks for, and the
//! export/import of the times so a restart continues where the last sync ended.

use std::collections::{BTreeMap, BTreeSet};

use super::paging::TopicState;
use super::{dur_secs, HistoryClient, EXPORT_VERSION};
use crate::mailserver::MailserverError;
use crate::time::Timestamp;
use crate::waku::Topic;

impl HistoryClient {
    /// See [`Input::SetTopics`](super::Input::SetTopics).
    pub(super) fn apply_topics(&mut self, topics: impl IntoIterator<Item = Topic>) {
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

    /// See [`Input::Fetch`](super::Input::Fetch).
    pub(super) fn fetch(&mut self, now: Timestamp, topics: &[Topic]) {
        self.last_now = now;
        for (k, t) in self.topics.iter_mut() {
            if t.watched && (topics.is_empty() || topics.contains(k)) {
                t.due = true;
            }
        }
        self.drive(now);
    }

    /// The window start for a topic.
    pub(super) fn window_start(&self, now: u32, t: &TopicState) -> u32 {
        let floor = now.saturating_sub(dur_secs(self.config.max_lookback));
        let from = match t.last_seen {
            Some(l) => l.saturating_sub(dur_secs(self.config.tolerance)),
            None => now.saturating_sub(dur_secs(self.config.initial_lookback)),
        };
        from.max(floor).min(now)
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
