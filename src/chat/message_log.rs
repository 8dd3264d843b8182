//! The message log of one chat: de-duplication by message id, display order, and the chat's Lamport clock
//! (docs/protocol/payloads.md §2.1, §4).
//!
//! * A message is identified by its [`MessageId`]; the same id arriving again (MVDS retransmission, a
//!   mailserver replay, the same group message through two paths) is reported as
//!   [`Insert::Duplicate`] and not stored twice.
//! * Display order is `(clock, id)` ascending: by Lamport clock, ties broken by id so that every member
//!   shows the same order (the reference leaves ties to insertion order). The chat's *last message* is the
//!   one with the highest clock, ties to the one processed last, as in the reference.
//! * Each accepted message's clock is observed by the chat's [`LamportClock`], and [`ChatLog::tick`] gives
//!   the clock of the next message sent.
//!
//! Cap: at most `max_messages` entries (default [`DEFAULT_MAX_MESSAGES`]). When full, inserting evicts the
//! entry that sorts first (the oldest by display order), and a message that would sort before every
//! retained entry is refused as [`Insert::BelowWindow`]. So the de-duplication is exact for everything at
//! or after the retained window, and an evicted message that is replayed can never come back. Validation
//! happens before insertion ([`super::validate`]).

use std::collections::BTreeMap;

use super::clock::LamportClock;
use super::payloads::MessageId;
use crate::time::Timestamp;

/// Default cap of messages retained per chat.
pub const DEFAULT_MAX_MESSAGES: usize = 10_000;

/// What [`ChatLog::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// Stored (possibly evicting the oldest entry at the cap).
    Added,
    /// The id is already in the log; nothing changed.
    Duplicate,
    /// The log is full and the message sorts before everything retained; not stored.
    BelowWindow,
}

/// Messages of one chat in display order, de-duplicated by id.
#[derive(Debug, Clone)]
pub struct ChatLog<T> {
    clock: LamportClock,
    max_messages: usize,
    ordered: BTreeMap<(u64, MessageId), T>,
    clocks: BTreeMap<MessageId, u64>,
    last: Option<(u64, MessageId)>,
}

impl<T> Default for ChatLog<T> {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_MESSAGES)
    }
}

impl<T> ChatLog<T> {
    /// An empty log retaining at most `max_messages` (at least one).
    pub fn new(max_messages: usize) -> Self {
        ChatLog {
            clock: LamportClock::new(),
            max_messages: max_messages.max(1),
            ordered: BTreeMap::new(),
            clocks: BTreeMap::new(),
            last: None,
        }
    }

    /// An empty log whose clock is restored from a persisted value.
    pub fn with_clock(max_messages: usize, clock: LamportClock) -> Self {
        ChatLog {
            clock,
            ..Self::new(max_messages)
        }
    }

    /// Store a validated message.
    pub fn insert(&mut self, id: MessageId, clock: u64, message: T) -> Insert {
        if self.clocks.contains_key(&id) {
            return Insert::Duplicate;
        }
        let key = (clock, id);
        if self.ordered.len() >= self.max_messages {
            match self.ordered.first_key_value() {
                Some((first, _)) if key < *first => return Insert::BelowWindow,
                _ => {}
            }
            if let Some(((_, old), _)) = self.ordered.pop_first() {
                self.clocks.remove(&old);
            }
        }
        self.ordered.insert(key, message);
        self.clocks.insert(id, clock);
        self.clock.observe(clock);
        let newest = match self.last {
            None => true,
            Some((c, _)) => clock >= c,
        };
        if newest {
            self.last = Some(key);
        }
        Insert::Added
    }

    /// Whether a message with this id is retained.
    pub fn contains(&self, id: &MessageId) -> bool {
        self.clocks.contains_key(id)
    }

    /// The message with this id.
    pub fn get(&self, id: &MessageId) -> Option<&T> {
        let clock = *self.clocks.get(id)?;
        self.ordered.get(&(clock, *id))
    }

    /// Messages in display order: `(id, clock, message)`.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (MessageId, u64, &T)> + '_ {
        self.ordered.iter().map(|((c, id), m)| (*id, *c, m))
    }

    /// The chat's last message: highest clock, ties to the one processed last.
    pub fn last_message(&self) -> Option<(MessageId, &T)> {
        let key = self.last?;
        self.ordered.get(&key).map(|m| (key.1, m))
    }

    /// Number of retained messages.
    pub fn len(&self) -> usize {
        self.ordered.len()
    }

    /// Whether no message is retained.
    pub fn is_empty(&self) -> bool {
        self.ordered.is_empty()
    }

    /// The cap.
    pub fn max_messages(&self) -> usize {
        self.max_messages
    }

    /// The chat's Lamport clock (persist [`LamportClock::last`]).
    pub fn clock(&self) -> LamportClock {
        self.clock
    }

    /// The clock and timestamp of a message sent now (advances the clock; see [`LamportClock::tick`]).
    pub fn tick(&mut self, now: Timestamp) -> (u64, u64) {
        self.clock.tick(now)
    }
}

#[cfg(test)]
mod tests;
