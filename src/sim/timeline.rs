//! The observable record of a run: timeline entries and the summary, written as JSON lines.

use super::{NetStats, NodeId};
use crate::time::Timestamp;

/// One step of a run ([`super::TraceLevel::Full`] only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineEntry {
    /// The virtual time.
    pub at: Timestamp,
    /// The node the step happened at (the sender for deliveries and cuts).
    pub node: NodeId,
    /// The other end, for deliveries, cuts and losses.
    pub peer: Option<NodeId>,
    /// What happened: `deliver`, `segment`, `lost`, `cut`, `cut_at_send`, `unreachable`,
    /// `no_such_node`, `command`, `event`, `timeout` or `wake`.
    pub event: &'static str,
    /// The bytes on the wire (deliveries) or of the canonical encoding (commands, events).
    pub bytes: usize,
}

impl TimelineEntry {
    /// The entry as one JSON object (no trailing newline).
    pub fn to_json(&self) -> String {
        let peer = self.peer.map_or("null".to_string(), |p| p.0.to_string());
        format!(
            r#"{{"t_ms":{},"node":{},"peer":{},"event":"{}","bytes":{}}}"#,
            self.at.as_millis(),
            self.node.0,
            peer,
            self.event,
            self.bytes
        )
    }
}

/// The totals of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The seed.
    pub seed: u64,
    /// The virtual time reached.
    pub now: Timestamp,
    /// Nodes.
    pub nodes: usize,
    /// Steps taken.
    pub steps: u64,
    /// Events recorded.
    pub events: usize,
    /// Network counters.
    pub stats: NetStats,
    /// The trace digest (hex).
    pub digest: String,
}

impl Summary {
    /// The summary as one JSON object (no trailing newline).
    pub fn to_json(&self) -> String {
        let s = &self.stats;
        format!(
            concat!(
                r#"{{"summary":{{"seed":{},"t_ms":{},"nodes":{},"steps":{},"events":{},"#,
                r#""sent":{},"segments":{},"bytes_sent":{},"delivered":{},"lost":{},"duplicated":{},"#,
                r#""cut":{},"unreachable":{},"retransmits":{},"digest":"{}"}}}}"#
            ),
            self.seed,
            self.now.as_millis(),
            self.nodes,
            self.steps,
            self.events,
            s.sent,
            s.segments,
            s.bytes_sent,
            s.delivered,
            s.lost,
            s.duplicated,
            s.cut,
            s.unreachable,
            s.retransmits,
            self.digest
        )
    }
}
