//! Fuzz body for the mailserver server: arbitrary request bytes against a small in-memory store.
//! Oracle: no panic, no `Err`, and every request is answered by exactly one completion.

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
