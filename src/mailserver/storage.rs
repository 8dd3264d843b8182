//! The mailserver's storage actions (docs/protocol/status-transport-usage.md §4.2, "Archive"): one value
//! the server emits ([`super::server::Output::Storage`]) and the engine passes through unchanged
//! (`node::Output::Storage`) for the driver to carry out.

use bytes::Bytes;

use super::server::{QueryId, KEY_LEN};

/// One action on the mailserver's archive (a sorted key-value store the driver owns).
///
/// Keys are 40 bytes, `sent_time (u32 BE) ‖ envelope hash ‖ topic`, so a key range is a time window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageOp {
    /// Store `value` (the envelope RLP) under `key`.
    Store {
        /// The 40-byte key.
        key: [u8; KEY_LEN],
        /// The envelope RLP.
        value: Bytes,
    },
    /// Return up to `limit` entries with `start ≤ key < end`, ascending, as the query result for `query`
    /// (`server::Input::QueryResult`, or `node::Input::QueryResult` through the engine). Always
    /// `start < end`.
    Query {
        /// Answer with this id.
        query: QueryId,
        /// Inclusive lower bound.
        start: [u8; KEY_LEN],
        /// Exclusive upper bound.
        end: [u8; KEY_LEN],
        /// Most entries.
        limit: usize,
    },
    /// Delete every entry whose sent time is before `before` (UNIX seconds).
    Prune {
        /// The cut-off.
        before: u32,
    },
}
