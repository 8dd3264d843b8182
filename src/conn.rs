//! Connection ids shared by every layer that speaks per connection (docs/architecture.md): the engine
//! names each socket with one, and the Waku node and the mailserver name their peers by it.

/// Identifies one socket (one RLPx connection). Chosen by whoever owns the sockets: the driver for
/// inbound connections, the engine for its dials (see [`crate::node::DIAL_ID_BIT`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

impl core::fmt::Display for ConnId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}
