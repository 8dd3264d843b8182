//! Regression (a fuzz find): a history request whose cursor lies past (or before) its window. The server
//! emitted a store query with `start > end`, which every store built on an ordered map's `range` panics
//! on. The harness's store is such a map (`BTreeMap::range` panics on an inverted range), and every query
//! is also checked against the store contract (`start < end`) and the request's window.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use status_sansio::mailserver::StorageOp;
use std::collections::BTreeMap;

use bytes::Bytes;
use status_sansio::mailserver::server::{Input, MailServer, MailServerConfig, Output, KEY_LEN};
use status_sansio::waku::request::{MessagesRequest, RequestComplete};
use status_sansio::waku::{ConnId, Envelope, Topic};
use status_sansio::Seed;
use status_sansio::Timestamp;

const T0: u32 = 1_700_000_000;

fn envelope(sent: u32, n: u8) -> Envelope {
    Envelope {
        expiry: sent + 100,
        ttl: 100,
        topic: Topic([7; 4]),
        data: Bytes::from(vec![n; 8]),
        nonce: u64::from(n),
    }
}

/// Run one request against a store holding envelopes sent at T0..T0+50; returns the envelopes sent back
/// and the completion.
fn run(from: u32, to: u32, cursor: Bytes) -> (Vec<Envelope>, RequestComplete) {
    let now = Timestamp::from_secs(u64::from(T0) + 60);
    let mut server = MailServer::new(MailServerConfig::default(), &Seed::from_u64(0), now);
    let mut store: BTreeMap<[u8; KEY_LEN], Bytes> = BTreeMap::new();
    let mut sent = vec![];
    let mut done = None;
    let mut inputs: Vec<Input> = (0..50u8)
        .map(|i| {
            let e = envelope(T0 + u32::from(i), i);
            Input::Archive {
                hash: e.hash(),
                envelope: e,
            }
        })
        .collect();
    let data = MessagesRequest {
        id: Bytes::from(vec![b'r'; 32]),
        from,
        to,
        limit: 100,
        cursor,
        bloom: Bytes::new(),
        topics: vec![Topic([7; 4])],
    }
    .encode();
    inputs.push(Input::Request {
        peer: ConnId(1),
        data: Bytes::from(data),
    });
    for input in inputs {
        server.handle_input(now, input).unwrap();
        while let Some(o) = server.poll_output() {
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
                    assert!(start < end, "the store contract: start < end");
                    assert!(start[..4] >= from.to_be_bytes()[..], "inside the window");
                    let entries = store
                        .range(start..end)
                        .take(limit)
                        .map(|(k, v)| (*k, v.clone()))
                        .collect();
                    server
                        .handle_input(now, Input::QueryResult { query, entries })
                        .unwrap();
                }
                Output::Transmit { envelopes, .. } => sent.extend(envelopes),
                Output::Complete { payload, .. } => done = Some(RequestComplete::decode(&payload).unwrap()),
                Output::Storage(StorageOp::Prune { .. }) => {}
                other => panic!("unexpected output {other:?}"),
            }
        }
    }
    (sent, done.expect("the request completes"))
}

fn cursor_at(sent: u32) -> Bytes {
    let mut c = vec![0u8; 36];
    c[..4].copy_from_slice(&sent.to_be_bytes());
    Bytes::from(c)
}

#[test]
fn a_cursor_past_the_window_completes_empty_without_an_inverted_query() {
    let (sent, done) = run(T0, T0 + 10, cursor_at(T0 + 40));
    assert!(sent.is_empty());
    match done {
        RequestComplete::Success { cursor, .. } => assert_eq!(cursor, None, "nothing left to page"),
        f => panic!("{f:?}"),
    }
    // A cursor at the very last key there can be.
    let (sent, _) = run(T0, T0 + 10, Bytes::from(vec![0xff; 36]));
    assert!(sent.is_empty());
}

#[test]
fn a_cursor_before_the_window_does_not_widen_it() {
    let (sent, _) = run(T0 + 10, T0 + 19, cursor_at(T0 - 100));
    let times: Vec<u32> = sent.iter().map(|e| e.expiry - e.ttl).collect();
    assert_eq!(times, (T0 + 10..=T0 + 19).collect::<Vec<_>>());
}

#[test]
fn a_cursor_inside_the_window_continues_after_it() {
    let (sent, _) = run(T0, T0 + 19, cursor_at(T0 + 15));
    let times: Vec<u32> = sent.iter().map(|e| e.expiry - e.ttl).collect();
    assert_eq!(
        times,
        (T0 + 15..=T0 + 19).collect::<Vec<_>>(),
        "keys after the 36-byte prefix"
    );
}
