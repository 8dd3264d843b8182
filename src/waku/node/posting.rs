//! Our own posts (docs/protocol/waku.md §2–§3, §9): PoW sealing within a per-call budget, and
//! publishing into the pool (offered to our own filters when `open_own_posts` is on).

use super::super::envelope::{Envelope, PowSealer, SealProgress};
use super::super::pool::{Insert, LOCAL_SOURCE};
use super::super::WakuError;
use super::{Event, WakuNode};
use crate::time::Timestamp;

pub(super) struct PendingPost {
    pub(super) envelope: Envelope,
    pub(super) sealer: PowSealer,
    pub(super) tried: u64,
}

impl WakuNode {
    /// Run PoW for pending posts within the per-call budget.
    pub(super) fn seal(&mut self, now: Timestamp) {
        let mut budget = self.config.seal_budget;
        while budget > 0 {
            let Some(p) = self.pending.front_mut() else { break };
            let step = budget
                .min(self.config.max_seal_iterations.saturating_sub(p.tried))
                .max(1);
            let progress = p.sealer.step(step);
            p.tried += step;
            budget = budget.saturating_sub(step);
            match progress {
                SealProgress::Done { nonce, .. } => {
                    let Some(mut p) = self.pending.pop_front() else {
                        break;
                    };
                    p.envelope.nonce = nonce;
                    self.publish(now, p.envelope);
                }
                SealProgress::Pending { .. } if p.tried >= self.config.max_seal_iterations => {
                    self.pending.pop_front();
                    self.event(Event::PostFailed {
                        error: WakuError::PowNotReached,
                    });
                }
                SealProgress::Pending { .. } => {}
            }
        }
    }

    pub(super) fn publish(&mut self, now: Timestamp, envelope: Envelope) {
        let stamp = envelope.stamp();
        let hash = envelope.hash();
        let pow = stamp.pow(envelope.ttl, 0);
        let opened = if self.config.open_own_posts {
            self.filters.open(&envelope, pow, false)
        } else {
            Vec::new()
        };
        match self
            .pool
            .insert_from(stamp.id, envelope, pow, now.as_secs(), LOCAL_SOURCE)
        {
            Insert::New => {
                self.own.insert(stamp.id);
                self.stats.accepted += 1;
                for m in opened {
                    self.event(Event::Message(Box::new(m)));
                }
                self.event(Event::Posted { hash });
                self.schedule_cycle(now);
            }
            Insert::Duplicate => self.event(Event::Posted { hash }),
            Insert::Expired => self.event(Event::PostFailed {
                error: WakuError::Expired,
            }),
            Insert::Full => self.event(Event::PostFailed {
                error: WakuError::LimitReached("pool"),
            }),
        }
    }
}
