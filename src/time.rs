//! Time as the core sees it: a [`Timestamp`] passed in by the caller on every call that can depend on it.
//!
//! The core never reads a clock. Drivers derive `now` from a monotonic clock anchored to the wall clock at
//! start-up, so it never runs backwards; simulations drive a virtual clock. One type serves both the Waku
//! expiry rules (which need wall time) and timer ordering.

use core::fmt;
use core::ops::{Add, AddAssign, Sub};
use core::time::Duration;

/// Milliseconds since the UNIX epoch.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The UNIX epoch itself.
    pub const ZERO: Timestamp = Timestamp(0);
    /// The latest representable instant; used as "never".
    pub const MAX: Timestamp = Timestamp(u64::MAX);

    /// A timestamp `ms` milliseconds after the UNIX epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Timestamp(ms)
    }

    /// A timestamp `s` whole seconds after the UNIX epoch (saturating).
    pub const fn from_secs(s: u64) -> Self {
        Timestamp(s.saturating_mul(1000))
    }

    /// Milliseconds since the UNIX epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Whole seconds since the UNIX epoch (rounded down), as protocols with second resolution need.
    pub const fn as_secs(self) -> u64 {
        self.0 / 1000
    }

    /// `self + d`, saturating at [`Timestamp::MAX`].
    pub fn saturating_add(self, d: Duration) -> Self {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(ms))
    }

    /// The time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        self.saturating_add(d)
    }
}

impl AddAssign<Duration> for Timestamp {
    fn add_assign(&mut self, d: Duration) {
        *self = self.saturating_add(d);
    }
}

impl Sub<Timestamp> for Timestamp {
    type Output = Duration;
    fn sub(self, earlier: Timestamp) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.0 / 1000, self.0 % 1000)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The earlier of two optional deadlines.
pub fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_secs(10);
        assert_eq!((t + Duration::from_millis(1500)).as_millis(), 11_500);
        assert_eq!(Timestamp::MAX + Duration::from_secs(1), Timestamp::MAX);
        assert_eq!(Timestamp::from_secs(1) - Timestamp::from_secs(5), Duration::ZERO);
        assert_eq!(earliest(Some(t), None), Some(t));
        assert_eq!(earliest(Some(t), Some(Timestamp::ZERO)), Some(Timestamp::ZERO));
        assert_eq!(format!("{t:?}"), "10.000s");
    }
}
