//! Mailservers (docs/protocol/status-transport-usage.md §4): the server side, as a sans-IO machine whose
//! storage is a set of actions the driver carries out.
//!
//! * [`server::MailServer`] archives envelopes ([`server::Output::Store`] under the 40-byte key
//!   `sent_time (u32 BE) ‖ envelope hash ‖ topic`), answers history requests in both wire forms (the
//!   direct `MessagesRequest` and the older signed, encrypted request envelope) by asking the driver for
//!   key ranges ([`server::Output::Query`]), filters by topics or bloom, pages with 36-byte cursors,
//!   sends P2P messages and a request-complete, and prunes by age.
//!
//! * [`client::HistoryClient`] fetches what a node missed: on (re)connect to a mailserver it asks for the
//!   watched topics since their last sync, follows cursors page by page, times out, retries and fails
//!   over to another mailserver, and de-duplicates the envelopes it gets. The node engine wires it to
//!   Waku (`node::history`).

pub mod client;
pub mod server;

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
}
