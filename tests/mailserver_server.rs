//! The mailserver server against an in-memory store that carries out its storage actions: archive,
//! history by topics and by bloom over several cursor pages (every matching envelope exactly once, in
//! time order), the envelope-form request (signed, encrypted), rejected requests with the error payload,
//! the work limiter (per peer, per address, burst, continuations), a bounded scan over a sparse window, and retention.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use status_sansio::mailserver::StorageOp;
use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use status_sansio::crypto::SecretKey;
use status_sansio::mailserver::server::{Input, MailServer, MailServerConfig, Output, KEY_LEN};
use status_sansio::waku::message::{wrap, NewMessage, PostKey};
use status_sansio::waku::request::{MessagesRequest, MessagesRequestPayload, RequestComplete};
use status_sansio::waku::{status, Bloom, ConnId, Envelope, Topic};
use status_sansio::{Seed, Timestamp};
use zeroize::Zeroizing;

const T0: u64 = 1_700_000_000;

/// The server plus a store that executes its actions; collects what it sends.
struct Harness {
    server: MailServer,
    store: BTreeMap<[u8; KEY_LEN], Bytes>,
    sent: Vec<(ConnId, Vec<Envelope>)>,
    completions: Vec<(ConnId, RequestComplete)>,
    queries: usize,
}

impl Harness {
    fn new(cfg: MailServerConfig) -> Harness {
        Harness {
            server: MailServer::new(cfg, &Seed::from_u64(0), Timestamp::from_secs(T0)),
            store: BTreeMap::new(),
            sent: vec![],
            completions: vec![],
            queries: 0,
        }
    }

    fn run(&mut self, now: Timestamp, input: Input) {
        self.server.handle_input(now, input).unwrap();
        self.drain(now);
    }

    fn drain(&mut self, now: Timestamp) {
        while let Some(o) = self.server.poll_output() {
            match o {
                Output::Storage(StorageOp::Store { key, value }) => {
                    self.store.insert(key, value);
                }
                Output::Storage(StorageOp::Query {
                    query,
                    start,
                    end,
                    limit,
                }) => {
                    self.queries += 1;
                    let entries: Vec<_> = self
                        .store
                        .range(start..end)
                        .take(limit)
                        .map(|(k, v)| (*k, v.clone()))
                        .collect();
                    self.server
                        .handle_input(now, Input::QueryResult { query, entries })
                        .unwrap();
                }
                Output::Storage(StorageOp::Prune { before }) => self
                    .store
                    .retain(|k, _| u32::from_be_bytes([k[0], k[1], k[2], k[3]]) >= before),
                Output::Transmit { peer, envelopes } => self.sent.push((peer, envelopes)),
                Output::Complete { peer, payload } => self
                    .completions
                    .push((peer, RequestComplete::decode(&payload).unwrap())),
                other => panic!("unexpected output {other:?}"),
            }
        }
    }
}

/// `n` envelopes on `topics`, one per second from T0.
fn envelopes(n: usize, topics: &[Topic]) -> Vec<Envelope> {
    let mut rng = Seed::from_u64(1).rng();
    (0..n)
        .map(|i| {
            let msg = NewMessage {
                topic: topics[i % topics.len()],
                payload: format!("m{i}").into_bytes(),
                key: PostKey::Symmetric(Zeroizing::new([5; 32])),
                signer: None,
                ttl: 30,
                pow_target: 0.0,
                padding: None,
            };
            wrap(&mut rng, T0 + i as u64, &msg).unwrap()
        })
        .collect()
}

fn archive(h: &mut Harness, envs: &[Envelope]) {
    for e in envs {
        h.run(
            Timestamp::from_secs(T0),
            Input::Archive {
                hash: e.hash(),
                envelope: e.clone(),
            },
        );
    }
}

fn request(id: u8, topics: Vec<Topic>, bloom: Bytes, limit: u32, cursor: Bytes) -> Bytes {
    Bytes::from(
        MessagesRequest {
            id: Bytes::from(vec![b'a' + id % 26; 32]),
            from: T0 as u32,
            to: T0 as u32 + 10_000,
            limit,
            cursor,
            bloom,
            topics,
        }
        .encode(),
    )
}

fn topics() -> Vec<Topic> {
    ["a", "b", "c", "d"]
        .iter()
        .map(|n| status::public_chat_topic(n))
        .collect()
}

#[test]
fn history_by_topic_over_cursor_pages() {
    let ts = topics();
    let envs = envelopes(250, &ts);
    let mut h = Harness::new(MailServerConfig {
        scan_page: 37,
        ..MailServerConfig::default()
    });
    archive(&mut h, &envs);
    assert_eq!(h.store.len(), 250);
    let want: Vec<[u8; 32]> = envs
        .iter()
        .filter(|e| e.topic == ts[0] || e.topic == ts[2])
        .map(|e| e.hash())
        .collect();
    let mut got = Vec::new();
    let mut cursor = Bytes::new();
    let mut now = Timestamp::from_secs(T0 + 20_000);
    for page in 0..10u8 {
        h.run(
            now,
            Input::Request {
                peer: ConnId(1),
                data: request(page, vec![ts[0], ts[2]], Bytes::new(), 40, cursor.clone()),
            },
        );
        let batch: Vec<_> = h.sent.drain(..).flat_map(|(_, e)| e).collect();
        assert!(batch.len() <= 40);
        got.extend(batch.iter().map(|e| e.hash()));
        match h.completions.pop().unwrap().1 {
            RequestComplete::Success {
                cursor: c,
                last_envelope_hash,
                ..
            } => {
                assert_eq!(last_envelope_hash, batch.last().map(|e| e.hash()));
                match c {
                    Some(c) => cursor = c,
                    None => break,
                }
            }
            f => panic!("{f:?}"),
        }
        now += Duration::from_secs(2);
        assert!(page < 9, "too many pages");
    }
    assert_eq!(got, want, "every matching envelope exactly once, in time order");
    assert!(h.queries > 7, "scanned in pages of 37 keys");
}

#[test]
fn history_by_bloom_and_the_envelope_form() {
    let ts = topics();
    let envs = envelopes(40, &ts);
    let key = *status::symmetric_key_from_password("status-offline-inbox");
    let mut h = Harness::new(MailServerConfig {
        symmetric_key: Some(key),
        ..MailServerConfig::default()
    });
    archive(&mut h, &envs);
    let bloom = Bloom::of_topics([ts[1]].iter());
    let payload = MessagesRequestPayload {
        lower: T0 as u32,
        upper: T0 as u32 + 100,
        bloom: Bytes::copy_from_slice(&bloom.0),
        topics: vec![],
        limit: 0,
        cursor: Bytes::new(),
        batch: true,
    };
    let client = SecretKey::random(&mut Seed::from_u64(3).rng());
    let mut rng = Seed::from_u64(4).rng();
    let req = wrap(
        &mut rng,
        T0 + 200,
        &NewMessage {
            topic: Topic([0; 4]),
            payload: payload.encode(),
            key: PostKey::Symmetric(Zeroizing::new(key)),
            signer: Some(client.clone()),
            ttl: 50,
            pow_target: 0.0,
            padding: None,
        },
    )
    .unwrap();
    h.run(
        Timestamp::from_secs(T0 + 200),
        Input::Request {
            peer: ConnId(2),
            data: Bytes::from(req.encode()),
        },
    );
    let got: Vec<_> = h.sent.drain(..).flat_map(|(_, e)| e).collect();
    assert_eq!(got.len(), 10);
    assert!(got.iter().all(|e| bloom.matches_topic(&e.topic)));
    match &h.completions[0].1 {
        RequestComplete::Success {
            request_id,
            cursor: None,
            ..
        } => assert_eq!(*request_id, req.hash()),
        c => panic!("{c:?}"),
    }
    // Unsigned: rejected with the error payload naming the request.
    let unsigned = wrap(
        &mut rng,
        T0 + 200,
        &NewMessage {
            topic: Topic([0; 4]),
            payload: payload.encode(),
            key: PostKey::Symmetric(Zeroizing::new(key)),
            signer: None,
            ttl: 50,
            pow_target: 0.0,
            padding: None,
        },
    )
    .unwrap();
    h.run(
        Timestamp::from_secs(T0 + 300),
        Input::Request {
            peer: ConnId(3),
            data: Bytes::from(unsigned.encode()),
        },
    );
    match &h.completions[1].1 {
        RequestComplete::Failure { request_id, error } => {
            assert_eq!(*request_id, unsigned.hash());
            assert!(error.contains("not signed"), "{error}");
        }
        c => panic!("{c:?}"),
    }
}

#[test]
fn bad_requests_get_the_error_payload_and_nothing_else() {
    let mut h = Harness::new(MailServerConfig::default());
    archive(&mut h, &envelopes(10, &topics()));
    let now = Timestamp::from_secs(T0 + 1000);
    let cases: Vec<(Bytes, &str)> = vec![
        (
            request(0, vec![], Bytes::new(), 10, Bytes::new()),
            "neither bloom nor topics",
        ),
        (
            request(1, vec![topics()[0]], Bytes::new(), 1001, Bytes::new()),
            "limit above 1000",
        ),
        (
            request(2, vec![topics()[0]], Bytes::from(vec![1; 10]), 10, Bytes::new()),
            "bloom is not 64 bytes",
        ),
        (
            request(3, vec![topics()[0]], Bytes::new(), 10, Bytes::from(vec![1; 7])),
            "cursor is not 36 bytes",
        ),
        (Bytes::from_static(&[0xc1, 0x80]), "neither a request envelope"),
        (Bytes::from_static(&[0xff, 0x00]), "neither a request envelope"),
    ];
    for (i, (data, why)) in cases.into_iter().enumerate() {
        h.run(
            now + Duration::from_secs(10 * i as u64),
            Input::Request {
                peer: ConnId(i as u64),
                data,
            },
        );
        match h.completions.pop().unwrap().1 {
            RequestComplete::Failure { error, .. } => assert!(error.contains(why), "{error} / {why}"),
            c => panic!("{c:?}"),
        }
    }
    let mut reversed =
        MessagesRequest::decode(&request(5, vec![topics()[0]], Bytes::new(), 10, Bytes::new())).unwrap();
    reversed.from = reversed.to + 1;
    h.run(
        now + Duration::from_secs(100),
        Input::Request {
            peer: ConnId(50),
            data: Bytes::from(reversed.encode()),
        },
    );
    assert!(matches!(
        h.completions.pop().unwrap().1,
        RequestComplete::Failure { .. }
    ));
    assert!(h.sent.is_empty(), "a rejected request sends no envelopes");
    assert_eq!(h.server.active(), 0);
    let stray = Input::QueryResult {
        query: status_sansio::mailserver::server::QueryId(999),
        entries: vec![],
    };
    assert!(h.server.handle_input(now, stray).is_err());
}

/// Outcomes of `h`'s completions to `peer` from index `from` on: true for success.
fn outcomes(h: &Harness, peer: u64, from: usize) -> Vec<bool> {
    h.completions[from..]
        .iter()
        .filter(|(p, _)| p.0 == peer)
        .map(|(_, c)| matches!(c, RequestComplete::Success { .. }))
        .collect()
}

fn ask(h: &mut Harness, now: Timestamp, peer: u64, cursor: Bytes) -> RequestComplete {
    let n = h.completions.len();
    h.run(
        now,
        Input::Request {
            peer: ConnId(peer),
            data: request(peer as u8, vec![topics()[0]], Bytes::new(), 2, cursor),
        },
    );
    assert_eq!(h.completions.len(), n + 1);
    h.completions[n].1.clone()
}

/// The limiter charges work (a fixed cost per request plus the keys examined) to a bucket per peer and
/// per IP address: a burst of requests at one instant is served up to the bucket, then refused with
/// "rate limit exceeded"; a continuation of a cursor this server gave is still served (a forged cursor is
/// not); the bucket refills with time; peers behind one address share its bucket, others do not.
#[test]
fn scan_work_is_limited_per_peer_and_per_ip_with_burst_and_continuations() {
    let cfg = MailServerConfig {
        peer_scan_rate: 100,
        peer_scan_burst: 1_000,
        ip_scan_rate: 100,
        ip_scan_burst: 1_500,
        request_cost: 100,
        ..MailServerConfig::default()
    };
    let mut h = Harness::new(cfg);
    archive(&mut h, &envelopes(12, &topics()));
    let now = Timestamp::from_secs(T0 + 1000);

    // A burst from peer 1 at one instant: served while its bucket lasts, then refused.
    let mut cursor = None;
    let mut verdicts = vec![];
    for _ in 0..20 {
        let c = ask(&mut h, now, 1, Bytes::new());
        if let RequestComplete::Success { cursor: Some(k), .. } = &c {
            cursor = Some(k.clone());
        }
        verdicts.push(matches!(c, RequestComplete::Success { .. }));
    }
    let served = verdicts.iter().filter(|v| **v).count();
    // Each request costs 100 plus the keys it examined (at least one): at most 10 fit in 1,000.
    assert!((5..10).contains(&served), "{verdicts:?}");
    assert!(verdicts[..served].iter().all(|v| *v) && verdicts[served..].iter().all(|v| !*v));
    match &h.completions.last().unwrap().1 {
        RequestComplete::Failure { error, .. } => assert_eq!(error, "rate limit exceeded"),
        c => panic!("{c:?}"),
    }
    // A continuation of a cursor we gave peer 1 still goes through; a cursor we never gave does not.
    let cursor = cursor.expect("pages of 2 give cursors");
    assert!(matches!(
        ask(&mut h, now, 1, cursor.clone()),
        RequestComplete::Success { .. }
    ));
    let mut forged = cursor.to_vec();
    forged[35] ^= 1;
    assert!(matches!(
        ask(&mut h, now, 1, Bytes::from(forged)),
        RequestComplete::Failure { .. }
    ));
    // ... and each cursor once only.
    assert!(matches!(
        ask(&mut h, now, 1, cursor),
        RequestComplete::Failure { .. }
    ));
    // Another peer is not affected.
    assert!(matches!(
        ask(&mut h, now, 9, Bytes::new()),
        RequestComplete::Success { .. }
    ));
    // The bucket refills: 20 s at 100/s is more than a burst.
    let later = now + Duration::from_secs(20);
    assert!(matches!(
        ask(&mut h, later, 1, Bytes::new()),
        RequestComplete::Success { .. }
    ));

    // Peers 2 and 3 behind one address share its bucket of 1,500: together they get about what one
    // address may spend, peer 3 less than its own bucket would allow; peer 4 elsewhere gets its own.
    let ip_a: std::net::IpAddr = "192.0.2.1".parse().unwrap();
    let ip_b: std::net::IpAddr = "198.51.100.7".parse().unwrap();
    for (peer, ip) in [(2, ip_a), (3, ip_a), (4, ip_b)] {
        h.run(
            later,
            Input::PeerIp {
                peer: ConnId(peer),
                ip,
            },
        );
    }
    let mark = h.completions.len();
    for peer in [2, 3, 4] {
        for _ in 0..20 {
            ask(&mut h, later, peer, Bytes::new());
        }
    }
    let count = |peer| outcomes(&h, peer, mark).iter().filter(|v| **v).count();
    let (two, three, four) = (count(2), count(3), count(4));
    assert!((5..10).contains(&two), "{two}");
    assert!(two + three < 15 && three < two, "{two} {three}");
    assert_eq!(four, two, "another address has its own bucket");
}

#[test]
fn a_sparse_window_is_scanned_within_budget_and_resumed() {
    let ts = topics();
    // 300 envelopes, only the last one on the wanted topic.
    let mut envs = envelopes(299, &ts[1..]);
    envs.extend(envelopes(300, &[ts[0]]).into_iter().skip(299));
    let mut h = Harness::new(MailServerConfig {
        scan_page: 50,
        max_scan: 100,
        ..MailServerConfig::default()
    });
    archive(&mut h, &envs);
    let mut now = Timestamp::from_secs(T0 + 5000);
    let mut cursor = Bytes::new();
    let mut pages = 0;
    let mut found = Vec::new();
    loop {
        pages += 1;
        h.run(
            now,
            Input::Request {
                peer: ConnId(1),
                data: request(pages, vec![ts[0]], Bytes::new(), 10, cursor.clone()),
            },
        );
        found.extend(h.sent.drain(..).flat_map(|(_, e)| e));
        match h.completions.pop().unwrap().1 {
            RequestComplete::Success { cursor: Some(c), .. } => cursor = c,
            RequestComplete::Success { cursor: None, .. } => break,
            c => panic!("{c:?}"),
        }
        now += Duration::from_secs(2);
        assert!(pages < 10);
    }
    // 100 keys per request: three requests cover the 300 keys; the budget ran out exactly at the end, so
    // a fourth, empty one is needed to learn that the window is exhausted.
    assert_eq!(pages, 4);
    assert!(h.queries <= 4 * 2, "each request scans at most two pages of 50");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].topic, ts[0]);
}

#[test]
fn retention_prunes_old_envelopes() {
    let mut h = Harness::new(MailServerConfig {
        retention: Duration::from_secs(100),
        prune_interval: Duration::from_secs(60),
        ..MailServerConfig::default()
    });
    archive(&mut h, &envelopes(200, &topics()));
    assert_eq!(h.server.poll_timeout(), Some(Timestamp::from_secs(T0 + 60)));
    let now = Timestamp::from_secs(T0 + 250);
    h.server.handle_timeout(now);
    h.drain(now);
    // Kept: sent at or after T0 + 150.
    assert_eq!(h.store.len(), 50);
    assert_eq!(h.server.poll_timeout(), Some(now + Duration::from_secs(60)));
}
