//! Fuzz bodies for the mailserver: the server (arbitrary request bytes against a small in-memory store;
//! oracle: no panic, no `Err`, every request answered by exactly one completion) and the history client
//! (arbitrary operations and completions; oracle in [`mailserver_client`]).

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::mailserver::server::{Input, MailServer, MailServerConfig, Output, KEY_LEN};
use crate::rng::SeededState;
use crate::time::Timestamp;
use crate::waku::{Envelope, PeerId, Topic};

/// Feed `data` as a request (and, split at its first byte, as two requests) to a server holding a few
/// envelopes.
pub fn mailserver_request(data: &[u8]) {
    let now = Timestamp::from_secs(1_700_000_100);
    let cfg = MailServerConfig {
        symmetric_key: Some([7; 32]),
        min_request_interval: std::time::Duration::ZERO,
        ..Default::default()
    };
    let mut s = MailServer::new(now, cfg, SeededState::default());
    let mut store: BTreeMap<[u8; KEY_LEN], Bytes> = BTreeMap::new();
    for i in 0..8u8 {
        let e = Envelope {
            expiry: 1_700_000_050 + u32::from(i),
            ttl: 50,
            topic: Topic([i % 3, 0, 0, 0]),
            data: vec![i; 8].into(),
            nonce: 0,
        };
        let _ = s.handle_input(
            now,
            Input::Archive {
                hash: e.hash(),
                envelope: e,
            },
        );
    }
    let split = usize::from(data.first().copied().unwrap_or(0)) % (data.len() + 1);
    let requests = [data, &data[..split], &data[split..]];
    let mut completions = 0;
    for (k, r) in requests.iter().enumerate() {
        assert!(s
            .handle_input(
                now,
                Input::Request {
                    peer: PeerId(k as u64),
                    data: Bytes::copy_from_slice(r)
                }
            )
            .is_ok());
        while let Some(o) = s.poll_output() {
            match o {
                Output::Store { key, value } => {
                    store.insert(key, value);
                }
                Output::Query {
                    query,
                    start,
                    end,
                    limit,
                } => {
                    let entries = store
                        .range(start..end)
                        .take(limit)
                        .map(|(k, v)| (*k, v.clone()))
                        .collect();
                    assert!(s.handle_input(now, Input::QueryResult { query, entries }).is_ok());
                }
                Output::Complete { .. } => completions += 1,
                Output::Send { envelopes, .. } => assert!(envelopes.len() <= 1000),
                Output::Prune { .. } => {}
            }
        }
    }
    assert_eq!(completions, 3, "one completion per request");
    assert_eq!(s.active(), 0);
}

/// Drive a history client with operations read from `data`: mailservers connecting and leaving, topic
/// sets, request-completes (arbitrary bytes, or built around the id of the request in flight with an
/// arbitrary cursor), envelope hashes, time passing, imports. Oracle: no panic; every request is
/// well-formed and within the caps; the de-duplication memory and the export stay bounded; an export
/// always imports back.
pub fn mailserver_client(data: &[u8]) {
    use crate::crypto::SecretKey;
    use crate::mailserver::client::{Completion, Event, HistoryClient, HistoryConfig, Output};
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
    let mut c = HistoryClient::new(cfg.clone(), Seed::from_u64(9));
    let mut now = Timestamp::from_secs(1_700_000_000);
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
            0 => c.connected(now, keys[k]),
            1 => c.disconnected(now, &keys[k]),
            2 => {
                let n = usize::from(byte(&mut i)) % 120;
                let start = i.min(data.len());
                let end = (start + n).min(data.len());
                let payload = &data[start..end];
                let r = c.on_request_complete(now, &keys[k], payload);
                if RequestComplete::decode(payload).is_err() {
                    assert_eq!(r, Completion::Ignored, "undecodable completions are ignored");
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
                    c.on_request_complete(now, &keys[peer], &payload);
                }
            }
            4 => {
                let h = [byte(&mut i); 32];
                c.on_envelope(h);
            }
            5 => {
                now += Duration::from_millis(u64::from(byte(&mut i)) * 250);
                c.handle_timeout(now);
            }
            6 => {
                let n = usize::from(byte(&mut i)) % 8;
                let topics: Vec<Topic> = (0..n).map(|_| Topic([byte(&mut i) % 10, 0, 0, 0])).collect();
                c.set_topics(topics);
                if byte(&mut i) % 2 == 0 {
                    c.request(now, &[]);
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
                Output::Request { peer, request } => {
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
        let mut copy = HistoryClient::new(cfg.clone(), Seed::from_u64(1));
        assert!(copy.import(&blob).is_ok());
        assert_eq!(copy.export(), blob);
    }
}
