//! Mailserver request and completion payloads carried by codes 126 and 125
//! (docs/protocol/status-transport-usage.md §4.3–§4.5). The mailserver issue builds the server and client on
//! these.
//!
//! * [`MessagesRequest`]: the direct form (c), the whole msg-data of code 126:
//!   `[ID (32), From, To, Limit, Cursor, Bloom, Topics]`.
//! * [`MessagesRequestPayload`]: the payload of the envelope form (b):
//!   `[Lower, Upper, Bloom, Topics, Limit, Cursor, Batch]`.
//! * [`RequestComplete`]: the flat (not RLP) completion payload of code 125.

use bytes::Bytes;
use rlp::{Rlp, RlpStream};

use super::topic::Topic;
use super::WakuError;

/// Largest page a request may ask for.
pub const MAX_LIMIT: u32 = 1000;
/// Cursor length: `sent_time (u32 BE) ‖ envelope hash (32)`.
pub const CURSOR_LEN: usize = 36;

fn topics_of(r: &Rlp<'_>) -> Result<Vec<Topic>, WakuError> {
    if !r.is_list() {
        return Err(WakuError::MalformedRequest("topics are not a list"));
    }
    let n = r
        .item_count()
        .map_err(|_| WakuError::MalformedRequest("bad RLP"))?;
    if n > super::options::MAX_TOPIC_INTEREST {
        return Err(WakuError::MalformedRequest("too many topics"));
    }
    r.iter()
        .map(|t| {
            t.data()
                .ok()
                .and_then(|d| <[u8; 4]>::try_from(d).ok())
                .map(Topic)
                .ok_or(WakuError::MalformedRequest("topic is not 4 bytes"))
        })
        .collect()
}

fn append_topics(s: &mut RlpStream, topics: &[Topic]) {
    s.begin_list(topics.len());
    for t in topics {
        s.append(&&t.0[..]);
    }
}

fn bytes_at(r: &Rlp<'_>, i: usize) -> Result<Bytes, WakuError> {
    r.at(i)
        .and_then(|x| x.data().map(Bytes::copy_from_slice))
        .map_err(|_| WakuError::MalformedRequest("bad byte string"))
}

/// The direct history request (form c).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessagesRequest {
    /// Request id (the client uses the 32 ASCII hex characters of a random UUID).
    pub id: Bytes,
    /// Lower bound, UNIX seconds.
    pub from: u32,
    /// Upper bound, UNIX seconds.
    pub to: u32,
    /// Page size.
    pub limit: u32,
    /// Continue after this cursor (empty: from the start).
    pub cursor: Bytes,
    /// Bloom (empty when topics are given).
    pub bloom: Bytes,
    /// Exact topics.
    pub topics: Vec<Topic>,
}

impl MessagesRequest {
    /// RLP-encode.
    pub fn encode(&self) -> Vec<u8> {
        let mut s = RlpStream::new_list(7);
        s.append(&&self.id[..]);
        s.append(&self.from);
        s.append(&self.to);
        s.append(&self.limit);
        s.append(&&self.cursor[..]);
        s.append(&&self.bloom[..]);
        append_topics(&mut s, &self.topics);
        s.out().to_vec()
    }

    /// Decode (exactly seven fields).
    pub fn decode(data: &[u8]) -> Result<MessagesRequest, WakuError> {
        let r = Rlp::new(data);
        let bad = |_| WakuError::MalformedRequest("bad RLP");
        if !r.is_list() || r.item_count().map_err(bad)? != 7 {
            return Err(WakuError::MalformedRequest("not a 7-field list"));
        }
        Ok(MessagesRequest {
            id: bytes_at(&r, 0)?,
            from: r.val_at(1).map_err(bad)?,
            to: r.val_at(2).map_err(bad)?,
            limit: r.val_at(3).map_err(bad)?,
            cursor: bytes_at(&r, 4)?,
            bloom: bytes_at(&r, 5)?,
            topics: topics_of(&r.at(6).map_err(bad)?)?,
        })
    }

    /// The client-side checks: a 32-byte id, `from ≤ to`, `limit ≤ 1000`, bloom or topics given.
    pub fn validate(&self) -> Result<(), WakuError> {
        if self.id.len() != 32 {
            return Err(WakuError::MalformedRequest("id is not 32 bytes"));
        }
        if self.from > self.to {
            return Err(WakuError::MalformedRequest("from > to"));
        }
        if self.limit > MAX_LIMIT {
            return Err(WakuError::MalformedRequest("limit above 1000"));
        }
        if self.bloom.is_empty() && self.topics.is_empty() {
            return Err(WakuError::MalformedRequest("neither bloom nor topics"));
        }
        Ok(())
    }
}

/// The payload of an envelope-form history request (form b).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessagesRequestPayload {
    /// Lower bound, UNIX seconds.
    pub lower: u32,
    /// Upper bound, UNIX seconds (0: now + 60 on the server).
    pub upper: u32,
    /// Bloom filter.
    pub bloom: Bytes,
    /// Exact topics.
    pub topics: Vec<Topic>,
    /// Page size.
    pub limit: u32,
    /// Cursor.
    pub cursor: Bytes,
    /// Batch mode (many envelopes per 127 packet).
    pub batch: bool,
}

impl MessagesRequestPayload {
    /// RLP-encode.
    pub fn encode(&self) -> Vec<u8> {
        let mut s = RlpStream::new_list(7);
        s.append(&self.lower);
        s.append(&self.upper);
        s.append(&&self.bloom[..]);
        append_topics(&mut s, &self.topics);
        s.append(&self.limit);
        s.append(&&self.cursor[..]);
        s.append(&self.batch);
        s.out().to_vec()
    }

    /// Decode (exactly seven fields, as Go's struct decoding needs).
    pub fn decode(data: &[u8]) -> Result<MessagesRequestPayload, WakuError> {
        let r = Rlp::new(data);
        let bad = |_| WakuError::MalformedRequest("bad RLP");
        if !r.is_list() || r.item_count().map_err(bad)? != 7 {
            return Err(WakuError::MalformedRequest("not a 7-field list"));
        }
        Ok(MessagesRequestPayload {
            lower: r.val_at(0).map_err(bad)?,
            upper: r.val_at(1).map_err(bad)?,
            bloom: bytes_at(&r, 2)?,
            topics: topics_of(&r.at(3).map_err(bad)?)?,
            limit: r.val_at(4).map_err(bad)?,
            cursor: bytes_at(&r, 5)?,
            batch: r.val_at(6).map_err(bad)?,
        })
    }
}

/// The completion payload of code 125.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestComplete {
    /// The request was served.
    Success {
        /// The request id.
        request_id: [u8; 32],
        /// Hash of the last envelope sent, if any.
        last_envelope_hash: Option<[u8; 32]>,
        /// Where to continue (36 bytes), if the page was full.
        cursor: Option<Bytes>,
    },
    /// The request failed.
    Failure {
        /// The request id.
        request_id: [u8; 32],
        /// Error text.
        error: String,
    },
}

const ERROR_PREFIX: &[u8] = b"ERROR=";

impl RequestComplete {
    /// The flat payload: `id ‖ last_hash ‖ cursor`, or `"ERROR=" ‖ id ‖ text`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            RequestComplete::Success {
                request_id,
                last_envelope_hash,
                cursor,
            } => {
                out.extend_from_slice(request_id);
                out.extend_from_slice(&last_envelope_hash.unwrap_or([0; 32]));
                if let Some(c) = cursor {
                    out.extend_from_slice(c);
                }
            }
            RequestComplete::Failure { request_id, error } => {
                out.extend_from_slice(ERROR_PREFIX);
                out.extend_from_slice(request_id);
                out.extend_from_slice(error.as_bytes());
            }
        }
        out
    }

    /// Parse as status-go's client does (`CreateMailServerEvent`).
    pub fn decode(p: &[u8]) -> Result<RequestComplete, WakuError> {
        if p.len() < 32 {
            return Err(WakuError::MalformedRequest("completion shorter than 32 bytes"));
        }
        if p.starts_with(ERROR_PREFIX) && p.len() >= ERROR_PREFIX.len() + 32 {
            let mut request_id = [0u8; 32];
            request_id.copy_from_slice(&p[6..38]);
            return Ok(RequestComplete::Failure {
                request_id,
                error: String::from_utf8_lossy(&p[38..]).into_owned(),
            });
        }
        if p.len() > 100 {
            return Err(WakuError::MalformedRequest("completion longer than 100 bytes"));
        }
        let mut request_id = [0u8; 32];
        request_id.copy_from_slice(&p[..32]);
        let rest = &p[32..];
        let last_envelope_hash = rest.get(..32).and_then(|h| <[u8; 32]>::try_from(h).ok());
        let cursor = rest.get(32..32 + CURSOR_LEN).map(Bytes::copy_from_slice);
        Ok(RequestComplete::Success {
            request_id,
            last_envelope_hash,
            cursor,
        })
    }
}
