//! Mailservers (docs/protocol/status-transport-usage.md §4): the server side, as a sans-IO machine whose
//! storage is a set of actions the driver carries out.
//!
//! * [`server::MailServer`] archives envelopes ([`StorageOp::Store`] under the 40-byte key
//!   `sent_time (u32 BE) ‖ envelope hash ‖ topic`), answers history requests in both wire forms (the
//!   direct `MessagesRequest` and the older signed, encrypted request envelope) by asking the driver for
//!   key ranges ([`StorageOp::Query`]), filters by topics or bloom, pages with 36-byte cursors,
//!   sends P2P messages and a request-complete, and prunes by age.
//!
//! * [`client::HistoryClient`] fetches what a node missed: on (re)connect to a mailserver it asks for the
//!   watched topics since their last sync, follows cursors page by page, times out, retries and fails
//!   over to another mailserver, and de-duplicates the envelopes it gets. The node engine wires it to
//!   Waku (`node::history`).
//!
//! * [`encode_request`] / [`decode_request`]: the direct `MessagesRequest` in the shape of each dialect
//!   (status-transport-usage.md §4.3 (c)): seven fields `[ID, From, To, Limit, Cursor, Bloom, Topics]`
//!   over `waku/1`, six `[ID, From, To, Limit, Cursor, Bloom]` (no Topics, selection by bloom) over
//!   `shh/6`. A 2021 `shh/6` server drops a peer that sends seven fields; a 2024 `waku/1` server refuses
//!   six. Our server takes both shapes on either dialect.

pub mod client;
pub mod server;
mod storage;

pub use storage::StorageOp;

use bytes::Bytes;
use rlp::{Rlp, RlpStream};

use crate::waku::request::MessagesRequest;
use crate::waku::{Bloom, Dialect};

/// The shape of a direct history request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestShape {
    /// `[ID, From, To, Limit, Cursor, Bloom]`: Whisper v6 (`shh/6`).
    SixFields,
    /// `[ID, From, To, Limit, Cursor, Bloom, Topics]`: Waku v1.
    SevenFields,
}

impl RequestShape {
    /// The shape a peer of `dialect` understands.
    pub fn of(dialect: Dialect) -> Self {
        match dialect {
            Dialect::Whisper6 => RequestShape::SixFields,
            Dialect::Waku1 => RequestShape::SevenFields,
        }
    }
}

/// Encode `r` as the msg-data of a P2P Request (code 126) for a peer of `dialect`. Over `shh/6` the
/// topics cannot travel: an empty bloom is replaced by the bloom of `r.topics`, so the server selects
/// the same envelopes (and possibly a few more that share bloom bits).
pub fn encode_request(r: &MessagesRequest, dialect: Dialect) -> Vec<u8> {
    match RequestShape::of(dialect) {
        RequestShape::SevenFields => r.encode(),
        RequestShape::SixFields => {
            let bloom = if r.bloom.is_empty() && !r.topics.is_empty() {
                Bytes::copy_from_slice(&Bloom::of_topics(&r.topics).0)
            } else {
                r.bloom.clone()
            };
            let mut s = RlpStream::new_list(6);
            s.append(&&r.id[..]);
            s.append(&r.from);
            s.append(&r.to);
            s.append(&r.limit);
            s.append(&&r.cursor[..]);
            s.append(&&bloom[..]);
            s.out().to_vec()
        }
    }
}

/// Decode a direct history request of either shape (a six-field request has no topics).
pub fn decode_request(data: &[u8]) -> Result<(MessagesRequest, RequestShape), MailserverError> {
    let r = Rlp::new(data);
    let bad = MailserverError::InvalidRequest("not a MessagesRequest");
    match r.item_count() {
        Ok(7) if r.is_list() => MessagesRequest::decode(data)
            .map(|m| (m, RequestShape::SevenFields))
            .map_err(|_| bad),
        Ok(6) if r.is_list() => {
            let bytes = |i: usize| {
                r.at(i)
                    .and_then(|x| x.data().map(Bytes::copy_from_slice))
                    .map_err(|_| bad.clone())
            };
            let m = MessagesRequest {
                id: bytes(0)?,
                from: r.val_at(1).map_err(|_| bad.clone())?,
                to: r.val_at(2).map_err(|_| bad.clone())?,
                limit: r.val_at(3).map_err(|_| bad.clone())?,
                cursor: bytes(4)?,
                bloom: bytes(5)?,
                topics: vec![],
            };
            Ok((m, RequestShape::SixFields))
        }
        _ => Err(bad),
    }
}

/// Errors of the mailserver layer (what a request-complete error payload says, and API misuse).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MailserverError {
    /// The request could not be decoded or opened.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// The request is well-formed but not allowed (limits, range, missing filter).
    #[error("request rejected: {0}")]
    Rejected(&'static str),
    /// The peer asked again too soon.
    #[error("rate limit exceeded")]
    RateLimited,
    /// Too many requests are being served.
    #[error("server busy")]
    Busy,
    /// API misuse: a query result for no pending query.
    #[error("unknown query")]
    UnknownQuery,
    /// Exported client state could not be imported.
    #[error("invalid history state: {0}")]
    InvalidState(&'static str),
    /// A configuration that cannot work.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
}
