//! Fuzz bodies for the mailserver: the server (raw, scripted and sealed requests against a small in-memory
//! store; oracle in [`mailserver_request`]) and the history client
//! (arbitrary operations and completions; oracle in [`mailserver_client`]).

use crate::mailserver::StorageOp;
use std::collections::BTreeMap;

use bytes::Bytes;

use std::sync::OnceLock;

use super::script::Script;
use crate::crypto::SecretKey;
use crate::mailserver::server::{storage_key, Input, MailServer, MailServerConfig, Output, KEY_LEN};
use crate::rng::Seed;
use crate::time::Timestamp;
use crate::waku::message::{build_plaintext, encrypt_symmetric_with};
use crate::waku::request::{MessagesRequest, MessagesRequestPayload};
use crate::waku::{Bloom, ConnId, Envelope, Topic};

/// The time of [`mailserver_request`].
pub const REQUEST_NOW: u64 = 1_700_000_100;
/// The symmetric key the server of [`mailserver_request`] opens envelope-form requests with.
pub const REQUEST_KEY: [u8; 32] = [7; 32];

/// The signing key of envelope-form requests, built once per process.
fn signer() -> &'static SecretKey {
    static KEY: OnceLock<SecretKey> = OnceLock::new();
    KEY.get_or_init(|| SecretKey::random(&mut Seed::from_u64(41).rng()))
}

/// What the server must respect when it answers a request.
#[derive(Debug)]
struct Window {
    /// Checked only for requests without a cursor, unless [`STRICT_CURSORS`].
    lower: Option<u32>,
    upper: u32,
    topics: Vec<Topic>,
    bloom: Option<Bloom>,
}

impl Window {
    fn new(lower: u32, upper: u32, topics: Vec<Topic>, bloom: &[u8], cursor: &[u8], strict: bool) -> Self {
        let upper = if upper == 0 {
            (REQUEST_NOW + 60) as u32
        } else {
            upper
        };
        Window {
            lower: (strict || cursor.is_empty()).then_some(lower),
            upper,
            topics,
            bloom: Bloom::from_wire(bloom),
        }
    }

    fn check(&self, e: &Envelope) {
        assert!(
            (self.lower.unwrap_or(0)..=self.upper).contains(&e.sent()),
            "an answer outside the requested window: sent {} not in {self:?}",
            e.sent()
        );
        let wanted = if self.topics.is_empty() {
            self.bloom.is_some_and(|b| b.matches_topic(&e.topic))
        } else {
            self.topics.contains(&e.topic)
        };
        assert!(
            wanted,
            "an answer with an unrequested topic {:?}: {self:?}",
            e.topic
        );
    }
}

/// Build a request from a script: `lower` and `upper` as `u16` offsets around the stored envelopes
/// (an `upper` offset of 0 means "0", the server's "now + 60"), a limit byte, 0–3 topics (one byte each),
/// a bloom flag byte (bit 0: send the bloom of the topics, bit 1: send no topics), and a cursor byte
/// (0: none, 1–8: the cursor of the n-th stored envelope, 9: 36 bytes from the script, else a 36-byte
/// cursor of all `0xff`).
fn scripted_request(s: &mut Script<'_>, stored: &[Envelope]) -> MessagesRequestPayload {
    const BASE: u32 = 1_700_000_000 - 200;
    let lower = BASE + u32::from(s.u16() % 512);
    let upper = match s.u16() % 512 {
        0 => 0,
        o => BASE + u32::from(o),
    };
    let limit = u32::from(s.byte() % 12);
    let topics: Vec<Topic> = (0..s.byte() % 4)
        .map(|_| Topic([s.byte() % 4, 0, 0, 0]))
        .collect();
    let flags = s.byte();
    let bloom = if flags & 1 != 0 {
        Bloom::of_topics(topics.iter()).0.to_vec()
    } else {
        vec![]
    };
    let topics = if flags & 2 != 0 { vec![] } else { topics };
    let cursor = match s.byte() {
        0 => vec![],
        c @ 1..=8 => stored
            .get(usize::from(c - 1))
            .map(|e| storage_key(e, &e.hash())[..36].to_vec())
            .unwrap_or_default(),
        9 => {
            let mut c = s.bytes().to_vec();
            c.resize(36, 0);
            c
        }
        _ => vec![0xff; 36],
    };
    MessagesRequestPayload {
        lower,
        upper,
        bloom: bloom.into(),
        topics,
        limit,
        cursor: cursor.into(),
        batch: true,
    }
}

/// Seal a request payload as an envelope-form request: signed, encrypted with [`REQUEST_KEY`].
fn sealed_request(p: &MessagesRequestPayload) -> Vec<u8> {
    let mut rng = Seed::from_u64(42).rng();
    let pt = build_plaintext(&mut rng, &p.encode(), None, Some(signer())).unwrap_or_default();
    let data = encrypt_symmetric_with(&REQUEST_KEY, [1; 12], &pt).unwrap_or_default();
    Envelope {
        expiry: REQUEST_NOW as u32 + 50,
        ttl: 50,
        topic: Topic([0, 0, 0, 0]),
        data: data.into(),
        nonce: 0,
    }
    .encode()
}

/// The mailserver answering requests from a store of 8 envelopes (three topics, 8 seconds).
///
/// Input: a mode byte, then (mode % 3) 0: raw request bytes, also split at their first byte into two
/// more requests (the decoders); 1: a script (`scripted_request`) the harness turns into a direct
/// `MessagesRequest`; 2: the same script sealed as a signed, encrypted request envelope. Two scripted
/// requests follow each other when the script has bytes left.
///
/// Oracle: no panic, no `Err`; one completion per request; every envelope sent lies in its request's
/// time window and matches its topics (or bloom); with [`STRICT_CURSORS`], also when the request's
/// cursor lies outside its window, and every store query has `start <= end`.
pub fn mailserver_request(data: &[u8]) {
    mailserver_request_with(data, STRICT_CURSORS);
}

/// Whether [`mailserver_request`] holds the server to the window of requests whose cursor lies outside
/// it: a cursor past the window must give no store query with `start > end` (a store built on an
/// ordered map's range panics on that), and a cursor before the window must not widen the answer past
/// the window's lower bound. Both were found by this target (issue 14) and are fixed in the server; the
/// failing inputs are regression tests in `tests/fuzz_corpus_mailserver.rs`.
pub const STRICT_CURSORS: bool = true;

/// [`mailserver_request`] with the checks of [`STRICT_CURSORS`] on or off.
pub fn mailserver_request_with(data: &[u8], strict_cursors: bool) {
    let now = Timestamp::from_secs(REQUEST_NOW);
    let cfg = MailServerConfig {
        symmetric_key: Some(REQUEST_KEY),
        min_request_interval: std::time::Duration::ZERO,
        ..Default::default()
    };
    let mut s = MailServer::new(cfg, &Seed::from_u64(0), now);
    let mut store: BTreeMap<[u8; KEY_LEN], Bytes> = BTreeMap::new();
    let mut stored = Vec::new();
    for i in 0..8u8 {
        let e = Envelope {
            expiry: 1_700_000_050 + u32::from(i),
            ttl: 50,
            topic: Topic([i % 3, 0, 0, 0]),
            data: vec![i; 8].into(),
            nonce: 0,
        };
        stored.push(e.clone());
        assert!(s
            .handle_input(
                now,
                Input::Archive {
                    hash: e.hash(),
                    envelope: e,
                },
            )
            .is_ok());
    }
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut requests: Vec<(Vec<u8>, Option<Window>)> = Vec::new();
    match mode % 3 {
        0 => {
            let split = usize::from(rest.first().copied().unwrap_or(0)) % (rest.len() + 1);
            for r in [rest, &rest[..split], &rest[split..]] {
                let w = MessagesRequest::decode(r)
                    .ok()
                    .map(|m| Window::new(m.from, m.to, m.topics, &m.bloom, &m.cursor, strict_cursors));
                requests.push((r.to_vec(), w));
            }
        }
        m => {
            let mut script = Script::new(rest);
            loop {
                let p = scripted_request(&mut script, &stored);
                let w = Window::new(
                    p.lower,
                    p.upper,
                    p.topics.clone(),
                    &p.bloom,
                    &p.cursor,
                    strict_cursors,
                );
                let bytes = if m == 1 {
                    MessagesRequest {
                        id: Bytes::copy_from_slice(&[requests.len() as u8; 32]),
                        from: p.lower,
                        to: p.upper,
                        limit: p.limit,
                        cursor: p.cursor.clone(),
                        bloom: p.bloom.clone(),
                        topics: p.topics.clone(),
                    }
                    .encode()
                } else {
                    sealed_request(&p)
                };
                requests.push((bytes, Some(w)));
                if script.is_empty() || requests.len() == 2 {
                    break;
                }
            }
        }
    }
    let mut completions = 0;
    for (k, (r, window)) in requests.iter().enumerate() {
        assert!(s
            .handle_input(
                now,
                Input::Request {
                    peer: ConnId(k as u64),
                    data: Bytes::copy_from_slice(r)
                }
            )
            .is_ok());
        while let Some(o) = s.poll_output() {
            match o {
                Output::Storage(StorageOp::Store { key, value }) => {
                    store.insert(key, value);
                }
                Output::Storage(StorageOp::Query {
                    query,
                    start,
                    end,
                    limit,
                }) => {
                    assert!(
                        !strict_cursors || start <= end,
                        "a store query with start above end"
                    );
                    let entries = store
                        .range(start..end.max(start))
                        .take(limit)
                        .map(|(k, v)| (*k, v.clone()))
                        .collect();
                    assert!(s.handle_input(now, Input::QueryResult { query, entries }).is_ok());
                }
                Output::Complete { .. } => completions += 1,
                Output::Transmit { peer, envelopes } => {
                    assert!(envelopes.len() <= 1000);
                    assert_eq!(peer, ConnId(k as u64), "answers go to the asking peer");
                    if let Some(w) = window {
                        envelopes.iter().for_each(|e| w.check(e));
                    }
                }
                Output::Storage(StorageOp::Prune { .. }) => {}
            }
        }
    }
    assert_eq!(completions, requests.len(), "one completion per request");
    assert_eq!(s.active(), 0);
}

/// Drive a history client with operations read from `data`: mailservers connecting and leaving, topic
/// sets, request-completes (arbitrary bytes, or built around the id of the request in flight with an
/// arbitrary cursor), envelope hashes, time passing, imports. Oracle: no panic; every request is
/// well-formed and within the caps; the de-duplication memory and the export stay bounded; an export
/// always imports back.
pub fn mailserver_client(data: &[u8]) {
    use crate::crypto::SecretKey;
    use crate::mailserver::client::{Completion, Event, HistoryClient, HistoryConfig, Input, Output};
    use crate::rng::Seed;
    use crate::waku::request::RequestComplete;
    use std::time::Duration;

    let cfg = HistoryConfig {
        page_limit: 3,
        max_pages: 4,
        max_topics_per_request: 2,
        max_topics: 5,
        max_seen_envelopes: 16,
        max_mailservers: 2,
        ..Default::default()
    };
    let keys: Vec<_> = (0..3u64)
        .map(|i| SecretKey::random(&mut Seed::from_u64(i).rng()).public_key())
        .collect();
    let mut now = Timestamp::from_secs(1_700_000_000);
    let mut c = HistoryClient::new(cfg.clone(), &Seed::from_u64(9), now)
        .unwrap_or_else(|_| unreachable!("the harness config is valid"));
    let feed = |c: &mut HistoryClient, now: Timestamp, input: Input| {
        assert!(
            c.handle_input(now, input).is_ok(),
            "the history client refuses no input"
        );
    };
    let mut last: Option<(usize, [u8; 32])> = None;
    let mut i = 0;
    let byte = |i: &mut usize| -> u8 {
        let b = data.get(*i).copied().unwrap_or(0);
        *i += 1;
        b
    };
    while i < data.len() {
        let op = byte(&mut i);
        let k = usize::from(byte(&mut i)) % keys.len();
        match op % 8 {
            0 => feed(
                &mut c,
                now,
                Input::Connected {
                    peer: keys[k],
                    dialect: crate::waku::Dialect::Waku1,
                },
            ),
            1 => feed(&mut c, now, Input::Disconnected { peer: keys[k] }),
            2 => {
                let n = usize::from(byte(&mut i)) % 120;
                let start = i.min(data.len());
                let end = (start + n).min(data.len());
                let payload = &data[start..end];
                let input = Input::RequestComplete {
                    peer: keys[k],
                    payload: Bytes::copy_from_slice(payload),
                };
                feed(&mut c, now, input);
                if RequestComplete::decode(payload).is_err() {
                    assert_eq!(
                        c.last_completion(),
                        Some(Completion::Ignored),
                        "undecodable completions are ignored"
                    );
                }
                i = end;
            }
            3 => {
                if let Some((peer, id)) = last {
                    let n = usize::from(byte(&mut i)) % 40;
                    let start = i.min(data.len());
                    let end = (start + n).min(data.len());
                    let cursor = (n > 0).then(|| Bytes::copy_from_slice(&data[start..end]));
                    i = end;
                    let payload = RequestComplete::Success {
                        request_id: id,
                        last_envelope_hash: None,
                        cursor,
                    }
                    .encode();
                    let input = Input::RequestComplete {
                        peer: keys[peer],
                        payload: Bytes::from(payload),
                    };
                    feed(&mut c, now, input);
                }
            }
            4 => {
                let h = [byte(&mut i); 32];
                feed(&mut c, now, Input::Envelope { hash: h });
            }
            5 => {
                now += Duration::from_millis(u64::from(byte(&mut i)) * 250);
                c.handle_timeout(now);
            }
            6 => {
                let n = usize::from(byte(&mut i)) % 8;
                let topics: Vec<Topic> = (0..n).map(|_| Topic([byte(&mut i) % 10, 0, 0, 0])).collect();
                feed(&mut c, now, Input::SetTopics(topics));
                if byte(&mut i) % 2 == 0 {
                    feed(&mut c, now, Input::Fetch { topics: vec![] });
                }
            }
            _ => {
                let n = usize::from(byte(&mut i)) % 64;
                let start = i.min(data.len());
                let end = (start + n).min(data.len());
                let before = c.export();
                if c.import(&data[start..end]).is_err() {
                    assert_eq!(c.export(), before, "a failed import changes nothing");
                }
                i = end;
            }
        }
        while let Some(o) = c.poll_output() {
            match o {
                Output::Transmit { peer, request } => {
                    assert!(request.validate().is_ok());
                    assert!(request.topics.len() <= cfg.max_topics_per_request);
                    assert!(request.limit <= cfg.page_limit);
                    assert!(request.from <= request.to);
                    let mut id = [0u8; 32];
                    id.copy_from_slice(&request.id);
                    let p = keys.iter().position(|k| *k == peer);
                    assert!(p.is_some(), "requests go to known mailservers");
                    last = p.map(|p| (p, id));
                }
                Output::Event(Event::HistoryFetched { pages, .. }) => assert!(pages <= cfg.max_pages),
                Output::Event(_) => {}
            }
        }
        assert!(c.seen_len() <= cfg.max_seen_envelopes);
        let blob = c.export();
        assert!(blob.len() <= 5 + 8 * cfg.max_topics);
        assert!(c.mailservers().count() <= cfg.max_mailservers);
        let mut copy = HistoryClient::new(cfg.clone(), &Seed::from_u64(1), now)
            .unwrap_or_else(|_| unreachable!("the harness config is valid"));
        assert!(copy.import(&blob).is_ok());
        assert_eq!(copy.export(), blob);
    }
}
