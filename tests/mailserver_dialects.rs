//! History requests in both dialects' shapes, through our client and our server (status-transport-usage
//! §4.3 (c)): a [`HistoryClient`] attached to a mailserver over `shh/6` sends six-field requests that
//! select by the topics' bloom, over `waku/1` seven-field requests with the topics; in both cases the
//! server answers page by page and the client ends with every archived envelope of its topics (over
//! `shh/6` possibly with a few others that share bloom bits, never fewer) and advances its `last_seen`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use status_sansio::mailserver::StorageOp;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use status_sansio::crypto::SecretKey;
use status_sansio::mailserver::client::{
    Event, HistoryClient, HistoryConfig, Input as ClientInput, Output as ClientOutput,
};
use status_sansio::mailserver::server::{Input, MailServer, MailServerConfig, Output, KEY_LEN};
use status_sansio::mailserver::{decode_request, encode_request, RequestShape};
use status_sansio::waku::message::{wrap, NewMessage, PostKey};
use status_sansio::waku::{status, Bloom, ConnId, Dialect, Envelope, Topic};
use status_sansio::{Seed, Timestamp};
use zeroize::Zeroizing;

const T0: u64 = 1_700_000_000;

fn topic(i: usize) -> Topic {
    status::public_chat_topic(&format!("dialect-{i}"))
}

/// `n` envelopes, one per 10 s from T0 - 1 h, round-robin over `topics`.
fn envelopes(n: usize, topics: &[Topic]) -> Vec<Envelope> {
    let mut rng = Seed::from_u64(11).rng();
    (0..n)
        .map(|i| {
            let msg = NewMessage {
                topic: topics[i % topics.len()],
                payload: format!("m{i}").into_bytes(),
                key: PostKey::Symmetric(Zeroizing::new([9; 32])),
                signer: None,
                ttl: 30,
                pow_target: 0.0,
                padding: None,
            };
            wrap(&mut rng, T0 - 3600 + 10 * i as u64, &msg).unwrap()
        })
        .collect()
}

/// Run `client` against `server` (whose storage is `store`) until the client is idle; returns the
/// envelope hashes received, the request shapes seen on the wire and the client's events.
fn sync(
    dialect: Dialect,
    server: &mut MailServer,
    store: &mut BTreeMap<[u8; KEY_LEN], Bytes>,
    client: &mut HistoryClient,
    ms: SecretKey,
    mut now: Timestamp,
) -> (BTreeSet<[u8; 32]>, Vec<RequestShape>, Vec<Event>) {
    let ms = ms.public_key();
    let (mut got, mut shapes, mut events) = (BTreeSet::new(), vec![], vec![]);
    for _ in 0..2_000 {
        while let Some(o) = client.poll_output() {
            match o {
                ClientOutput::Transmit { peer, request } => {
                    assert_eq!(peer, ms);
                    let data = encode_request(&request, dialect);
                    let (decoded, shape) = decode_request(&data).unwrap();
                    shapes.push(shape);
                    if shape == RequestShape::SixFields {
                        assert!(decoded.topics.is_empty());
                        assert_eq!(decoded.bloom.len(), 64);
                    }
                    server
                        .handle_input(
                            now,
                            Input::Request {
                                peer: ConnId(1),
                                data: Bytes::from(data),
                            },
                        )
                        .unwrap();
                }
                ClientOutput::Event(e) => events.push(e),
                _ => {}
            }
        }
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
                    let entries = store
                        .range(start..end)
                        .take(limit)
                        .map(|(k, v)| (*k, v.clone()))
                        .collect();
                    server
                        .handle_input(now, Input::QueryResult { query, entries })
                        .unwrap();
                }
                Output::Transmit { envelopes, .. } => {
                    for e in envelopes {
                        got.insert(e.hash());
                        let hash = e.hash();
                        client.handle_input(now, ClientInput::Envelope { hash }).unwrap();
                    }
                }
                Output::Complete { payload, .. } => {
                    let complete = ClientInput::RequestComplete {
                        peer: ms,
                        payload: Bytes::from(payload),
                    };
                    client.handle_input(now, complete).unwrap();
                }
                Output::Storage(StorageOp::Prune { .. }) => {}
                other => panic!("unexpected output {other:?}"),
            }
        }
        if !client.busy() && client.due_topics() == 0 {
            while let Some(o) = client.poll_output() {
                match o {
                    ClientOutput::Event(e) => events.push(e),
                    ClientOutput::Transmit { .. } => panic!("a request from an idle client"),
                    _ => {}
                }
            }
            break;
        }
        now += Duration::from_millis(100);
        if client.poll_timeout().is_some_and(|t| t <= now) {
            client.handle_timeout(now);
        }
    }
    (got, shapes, events)
}

fn round_trip(dialect: Dialect) {
    let wanted: Vec<Topic> = (0..12).map(topic).collect();
    let others: Vec<Topic> = (100..140).map(topic).collect();
    let now = Timestamp::from_secs(T0);
    let mut server = MailServer::new(MailServerConfig::default(), &Seed::from_u64(0), now);
    let mut store = BTreeMap::new();
    let mut all = envelopes(240, &wanted);
    all.extend(envelopes(200, &others));
    let mut wanted_hashes = BTreeSet::new();
    for e in &all {
        if wanted.contains(&e.topic) {
            wanted_hashes.insert(e.hash());
        }
        server
            .handle_input(
                now,
                Input::Archive {
                    hash: e.hash(),
                    envelope: e.clone(),
                },
            )
            .unwrap();
    }
    let mut client = HistoryClient::new(
        HistoryConfig {
            page_limit: 25,
            ..Default::default()
        },
        &Seed::from_u64(4),
        now,
    )
    .unwrap();
    client
        .handle_input(now, ClientInput::SetTopics(wanted.clone()))
        .unwrap();
    let ms = SecretKey::random(&mut Seed::from_u64(5).rng());
    let peer = ms.public_key();
    client
        .handle_input(now, ClientInput::Connected { peer, dialect })
        .unwrap();
    let (got, shapes, events) = sync(dialect, &mut server, &mut store, &mut client, ms, now);

    let expected = RequestShape::of(dialect);
    assert!(shapes.len() > 2, "{shapes:?}");
    assert!(shapes.iter().all(|s| *s == expected), "{dialect:?}: {shapes:?}");
    let missing = wanted_hashes.difference(&got).count();
    assert_eq!(
        missing,
        0,
        "{dialect:?}: {missing} of {} missing",
        wanted_hashes.len()
    );
    let extra: Vec<_> = all
        .iter()
        .filter(|e| got.contains(&e.hash()) && !wanted.contains(&e.topic))
        .collect();
    match dialect {
        // Exact topics: nothing else.
        Dialect::Waku1 => assert!(extra.is_empty()),
        // By bloom: only envelopes whose topic matches the bloom of some requested batch.
        Dialect::Whisper6 => {
            let bloom = Bloom::of_topics(&wanted);
            assert!(extra.iter().all(|e| bloom.matches_topic(&e.topic)));
        }
    }
    let fetched: BTreeSet<Topic> = events
        .iter()
        .filter_map(|e| match e {
            Event::HistoryFetched { topics, .. } => Some(topics.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(fetched, wanted.iter().copied().collect(), "{events:?}");
    for t in &wanted {
        assert!(client.last_seen(t).is_some_and(|s| u64::from(s) >= T0));
    }
}

#[test]
fn six_field_requests_over_shh6_round_trip_through_client_and_server() {
    round_trip(Dialect::Whisper6);
}

#[test]
fn seven_field_requests_over_waku1_round_trip_through_client_and_server() {
    round_trip(Dialect::Waku1);
}
