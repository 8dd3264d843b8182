//! Lamport clocks per chat (6/PAYLOADS; docs/protocol/payloads.md §4).
//!
//! Sending (the reference's `Chat.NextClockAndTimestamp`, used for chat messages, group events, pairing,
//! contact and sync messages):
//!
//! ```text
//! timestamp = now_ms
//! clock     = (last == 0 || last < timestamp) ? timestamp : last + 1
//! last      = clock
//! ```
//!
//! i.e. `max(now_ms, last + 1)`: a message from a user who was offline for a long time bids to sort last.
//! Receiving: `last = max(last, received clock)`. Display order is by clock, never by timestamp. The
//! reference's unused `CalcMessageClock` (a 60 s bump) is not reproduced. The clock saturates at
//! `u64::MAX` instead of wrapping (unreachable with millisecond clocks; a hostile clock is refused by the
//! future-drift rule of [`super::validate`] before it is observed).

use crate::time::Timestamp;

/// The Lamport clock of one chat. A plain value: persist it with [`LamportClock::last`] and restore it
/// with [`LamportClock::from_last`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LamportClock {
    last: u64,
}

impl LamportClock {
    /// A fresh clock (`last = 0`).
    pub const fn new() -> Self {
        LamportClock { last: 0 }
    }

    /// A clock restored from its persisted last value.
    pub const fn from_last(last: u64) -> Self {
        LamportClock { last }
    }

    /// The highest clock sent or seen.
    pub const fn last(&self) -> u64 {
        self.last
    }

    /// The clock for a message sent at `now` (see the module docs), and the message's `timestamp` field;
    /// the clock advances to it.
    pub fn tick(&mut self, now: Timestamp) -> (u64, u64) {
        let timestamp = now.as_millis();
        let clock = if self.last == 0 || self.last < timestamp {
            timestamp
        } else {
            self.last.saturating_add(1)
        };
        self.last = clock;
        (clock, timestamp)
    }

    /// Account for a received (and accepted) message's clock.
    pub fn observe(&mut self, clock: u64) {
        self.last = self.last.max(clock);
    }
}

#[cfg(test)]
mod tests;
