//! The network model: per-link latency, loss, duplication and reordering, plus scheduled faults.

use std::time::Duration;

use rand_core::RngCore;

use super::NodeId;
use crate::time::Timestamp;

/// How one directed link treats the datagrams sent over it. Every random choice is drawn from the
/// simulation's seeded RNG.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkModel {
    /// Smallest one-way latency.
    pub latency_min: Duration,
    /// Largest one-way latency; each datagram draws uniformly in `[latency_min, latency_max]`.
    pub latency_max: Duration,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a datagram is delivered twice (each copy draws its own latency).
    pub duplicate: f64,
    /// Probability that a datagram is held back by up to `reorder_delay` extra, so that later ones
    /// overtake it.
    pub reorder: f64,
    /// The largest extra delay of a held-back datagram.
    pub reorder_delay: Duration,
    /// Deliver in sending order (a byte stream such as TCP): a datagram never overtakes an earlier one on
    /// the same directed link. Stream segments ([`super::SimOutput::Stream`]) are always in order.
    pub ordered: bool,
    /// Bytes per second the link carries (`None`: unlimited). Each datagram or segment waits for the ones
    /// sent before it on the same directed link, then takes `len / bandwidth` to serialise.
    pub bandwidth: Option<u64>,
    /// The delay a lost stream segment costs (it is sent again after it; several losses in a row add
    /// up). Datagrams are simply lost.
    pub rto: Duration,
}

impl LinkModel {
    /// A perfect link with a fixed latency.
    pub fn perfect(latency: Duration) -> Self {
        LinkModel {
            latency_min: latency,
            latency_max: latency,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            ordered: false,
            bandwidth: None,
            rto: Duration::from_millis(200),
        }
    }

    /// A lossy datagram link: 20–200 ms latency, the given loss, 10 % duplication and 10 % reordering by
    /// up to one second.
    pub fn lossy(loss: f64) -> Self {
        LinkModel {
            latency_min: Duration::from_millis(20),
            latency_max: Duration::from_millis(200),
            loss,
            duplicate: 0.1,
            reorder: 0.1,
            reorder_delay: Duration::from_secs(1),
            ordered: false,
            bandwidth: None,
            rto: Duration::from_millis(200),
        }
    }

    /// A link for byte streams between full nodes: latency uniform in `[latency_min, latency_max]` (the
    /// jitter), the given loss (each loss of a stream segment costs [`LinkModel::rto`]), an optional
    /// bandwidth in bytes per second, in order.
    pub fn stream(latency_min: Duration, latency_max: Duration, loss: f64, bandwidth: Option<u64>) -> Self {
        LinkModel {
            latency_min,
            latency_max,
            loss,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            ordered: true,
            bandwidth,
            rto: Duration::from_millis(200),
        }
    }
}

impl Default for LinkModel {
    /// A perfect 50 ms link.
    fn default() -> Self {
        LinkModel::perfect(Duration::from_millis(50))
    }
}

/// A scheduled fault.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// During `[from, until)` no datagram crosses between `side` and the other nodes (checked when sent
    /// and when due for delivery).
    Partition {
        /// One side of the cut.
        side: Vec<NodeId>,
        /// Start.
        from: Timestamp,
        /// End (exclusive).
        until: Timestamp,
    },
    /// During `[from, until)` nothing crosses between `a` and `b` (either direction).
    LinkDown {
        /// One end.
        a: NodeId,
        /// The other end.
        b: NodeId,
        /// Start.
        from: Timestamp,
        /// End (exclusive).
        until: Timestamp,
    },
    /// During `[from, until)` the node is down: it is not driven at all, datagrams to it are lost and
    /// commands for it wait until it is back; at `until` it resumes with `handle_timeout(until)`.
    Offline {
        /// The node.
        node: NodeId,
        /// Start.
        from: Timestamp,
        /// End (exclusive).
        until: Timestamp,
    },
}

impl Fault {
    pub(crate) fn cuts(&self, a: NodeId, b: NodeId, at: Timestamp) -> bool {
        match self {
            Fault::Partition { side, from, until } => {
                (*from..*until).contains(&at) && (side.contains(&a) != side.contains(&b))
            }
            Fault::LinkDown {
                a: x,
                b: y,
                from,
                until,
            } => (*from..*until).contains(&at) && ((a, b) == (*x, *y) || (a, b) == (*y, *x)),
            Fault::Offline { .. } => false,
        }
    }

    pub(crate) fn offline(&self, n: NodeId, at: Timestamp) -> Option<Timestamp> {
        match self {
            Fault::Offline { node, from, until } if *node == n && (*from..*until).contains(&at) => {
                Some(*until)
            }
            _ => None,
        }
    }
}

/// `true` with probability `p`.
pub(crate) fn chance(rng: &mut impl RngCore, p: f64) -> bool {
    if p <= 0.0 {
        return false;
    }
    let x = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    x < p
}

/// A uniform duration in `[lo, hi]`.
pub(crate) fn between(rng: &mut impl RngCore, lo: Duration, hi: Duration) -> Duration {
    let lo_ms = lo.as_millis() as u64;
    let hi_ms = (hi.as_millis() as u64).max(lo_ms);
    let span = hi_ms - lo_ms + 1;
    let draw = ((u128::from(rng.next_u64()) * u128::from(span)) >> 64) as u64;
    Duration::from_millis(lo_ms + draw)
}
