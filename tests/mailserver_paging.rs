//! Our mailserver (default configuration, full engines over the in-memory network) against a history
//! client that behaves like status-go's: it asks for the next page as soon as a completion brings a
//! cursor, splits its topics into requests of 10 started 50 ms apart with 3 in flight, and gives up the
//! whole sync at the first error completion. It gets every one of 1,100 archived envelopes over 60
//! topics, across many pages, with no error; meanwhile a flooding peer asking for whole windows every
//! few milliseconds is refused with "rate limit exceeded" once its bucket of scan work is spent, and is
//! never served more than its bucket and refill allow.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use common::engine_net::{rlpx_config, Net};
use status_sansio::mailserver::encode_request;
use status_sansio::mailserver::server::{storage_key, MailServerConfig};
use status_sansio::node::{ConnId, EngineConfig, Event, Input};
use status_sansio::waku::message::{wrap, NewMessage, PostKey};
use status_sansio::waku::request::{MessagesRequest, RequestComplete};
use status_sansio::waku::{self, status, Dialect, Topic};
use status_sansio::{Seed, Timestamp};
use zeroize::Zeroizing;

const ENVELOPES: usize = 1_100;
const TOPICS: usize = 60;
/// status-go's client asks 1,000 per page; smaller pages here make it page often.
const PAGE: u32 = 50;

/// The connection of host `i` to its (only) peer, and the dialect, once the Waku handshake is done.
fn ready_conn(net: &Net, i: usize) -> Option<(ConnId, Dialect)> {
    let (conn, dialect): (ConnId, Dialect) = net.hosts[i].events.iter().find_map(|e| match e {
        Event::PeerConnected {
            conn,
            dialect: Some(d),
            ..
        } => Some((*conn, *d)),
        _ => None,
    })?;
    let peer = conn;
    let ready = net.hosts[i]
        .events
        .iter()
        .any(|e| matches!(e, Event::Waku(waku::Event::PeerReady { peer: p, .. }) if *p == peer));
    ready.then_some((peer, dialect))
}

struct Requester {
    host: usize,
    peer: ConnId,
    dialect: Dialect,
    next_id: u64,
    /// Events of the host already looked at.
    seen_events: usize,
}

impl Requester {
    fn send(&mut self, net: &mut Net, topics: &[Topic], cursor: Bytes, limit: u32, now: u32) -> [u8; 32] {
        self.next_id += 1;
        let id: [u8; 32] = format!("{:032x}", self.next_id + 1000 * self.host as u64)
            .into_bytes()
            .try_into()
            .unwrap();
        let request = MessagesRequest {
            id: Bytes::copy_from_slice(&id),
            from: now - 2 * 3600,
            to: now,
            limit,
            cursor,
            bloom: Bytes::new(),
            topics: topics.to_vec(),
        };
        net.input(
            self.host,
            Input::Waku(waku::Input::SendP2PRequest {
                peer: self.peer,
                data: encode_request(&request, self.dialect),
            }),
        );
        id
    }

    /// New completions and P2P envelope hashes since the last call.
    fn news(&mut self, net: &Net) -> (Vec<RequestComplete>, Vec<[u8; 32]>) {
        let (mut done, mut hashes) = (vec![], vec![]);
        for e in &net.hosts[self.host].events[self.seen_events..] {
            match e {
                Event::Waku(waku::Event::RequestComplete { payload, .. }) => {
                    done.push(RequestComplete::decode(payload).unwrap())
                }
                Event::Waku(waku::Event::P2PEnvelopes { hashes: h, .. }) => hashes.extend_from_slice(h),
                _ => {}
            }
        }
        self.seen_events = net.hosts[self.host].events.len();
        (done, hashes)
    }
}

#[test]
fn a_status_go_style_client_pages_through_everything_while_a_flooder_is_limited() {
    let mut net = Net::new(3, |i, enodes| {
        let mut c = EngineConfig::new(rlpx_config(0));
        if i == 0 {
            c.mailserver = Some(MailServerConfig::default());
        } else {
            c.static_peers = vec![enodes[0].clone()];
        }
        c
    });
    // The archive: 1,100 envelopes over 60 topics in the last hour, stored as the server stores them.
    let t0 = net.now.as_secs();
    let topics: Vec<Topic> = (0..TOPICS)
        .map(|i| status::public_chat_topic(&format!("paging-{i}")))
        .collect();
    let mut rng = Seed::from_u64(42).rng();
    let mut all = BTreeSet::new();
    for i in 0..ENVELOPES {
        let msg = NewMessage {
            topic: topics[i % TOPICS],
            payload: format!("archived {i}").into_bytes(),
            key: PostKey::Symmetric(Zeroizing::new([3; 32])),
            signer: None,
            ttl: 30,
            pow_target: 0.0,
            padding: None,
        };
        let env = wrap(&mut rng, t0 - 3600 + (i as u64 * 3), &msg).unwrap();
        all.insert(env.hash());
        net.hosts[0]
            .store
            .insert(storage_key(&env, &env.hash()), Bytes::from(env.encode()));
    }
    net.run(Duration::from_secs(3));
    let mut client = None;
    let mut flooder = None;
    for (host, slot) in [(1, &mut client), (2, &mut flooder)] {
        let (peer, dialect) = ready_conn(&net, host).expect("connected to the mailserver");
        // status-go trusts its mailserver's P2P messages.
        net.input(host, Input::Waku(waku::Input::SetTrusted { peer, trusted: true }));
        *slot = Some(Requester {
            host,
            peer,
            dialect,
            next_id: 0,
            seen_events: net.hosts[host].events.len(),
        });
    }
    let (mut client, mut flooder) = (client.unwrap(), flooder.unwrap());

    // The status-go-style client.
    let batches: Vec<Vec<Topic>> = topics.chunks(10).map(<[Topic]>::to_vec).collect();
    let mut next_batch = 0;
    let mut last_start: Option<Timestamp> = None;
    let mut in_flight: BTreeMap<[u8; 32], usize> = BTreeMap::new();
    let mut finished = 0;
    let mut pages = 0;
    let mut errors = vec![];
    let mut got = BTreeSet::new();
    // The flooder: a whole window for a topic nobody posts on (every key examined, nothing sent).
    let nobody = [status::public_chat_topic("nobody-posts-here")];
    let (mut flood_sent, mut flood_served, mut flood_refused) = (0u64, 0u64, 0u64);
    let start = net.now;

    let step = Duration::from_millis(5);
    while net.now < start + Duration::from_secs(20) {
        let now = net.now;
        let secs = now.as_secs() as u32;
        let flooding = now.saturating_duration_since(start) < Duration::from_secs(2);
        if flooding {
            // Four flood requests every 5 ms for two seconds, while the client syncs.
            for _ in 0..4 {
                flooder.send(&mut net, &nobody, Bytes::new(), 1000, secs);
                flood_sent += 1;
            }
        }
        let due = last_start.is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_millis(50));
        if errors.is_empty() && next_batch < batches.len() && in_flight.len() < 3 && due {
            let id = client.send(&mut net, &batches[next_batch], Bytes::new(), PAGE, secs);
            in_flight.insert(id, next_batch);
            next_batch += 1;
            last_start = Some(now);
        }
        net.run(step);
        let (done, hashes) = client.news(&net);
        got.extend(hashes);
        for c in done {
            match c {
                RequestComplete::Success {
                    request_id, cursor, ..
                } => {
                    let Some(batch) = in_flight.remove(&request_id) else {
                        continue;
                    };
                    pages += 1;
                    match cursor {
                        // The next page at once, as status-go does.
                        Some(cursor) if errors.is_empty() => {
                            let id = client.send(&mut net, &batches[batch], cursor, PAGE, secs);
                            in_flight.insert(id, batch);
                        }
                        _ => finished += 1,
                    }
                }
                RequestComplete::Failure { error, .. } => errors.push(error),
            }
        }
        let (done, _) = flooder.news(&net);
        for c in done {
            match c {
                RequestComplete::Success { .. } => flood_served += 1,
                RequestComplete::Failure { error, .. } => {
                    assert_eq!(
                        error,
                        status_sansio::mailserver::MailserverError::RateLimited.to_string()
                    );
                    flood_refused += 1;
                }
            }
        }
        if finished == batches.len() && in_flight.is_empty() && !flooding {
            break;
        }
    }
    let elapsed = net.now.saturating_duration_since(start);

    assert!(errors.is_empty(), "the client's sync was cancelled: {errors:?}");
    assert_eq!(finished, batches.len());
    assert!(pages >= ENVELOPES / PAGE as usize, "{pages} pages");
    assert_eq!(got.len(), all.len());
    assert_eq!(got, all, "every archived envelope arrived");

    // The flooder: refused once its bucket ran out, and served no more than bucket + refill allow (each
    // of its requests examines every archived key).
    let c = MailServerConfig::default();
    let cost = c.request_cost + ENVELOPES as u64;
    let allowed =
        (c.peer_scan_burst + c.peer_scan_rate * (elapsed.as_millis() as u64 + 1000) / 1000) / cost + 1;
    assert!(flood_refused > 0, "sent {flood_sent}, served {flood_served}");
    assert!(
        flood_served <= allowed,
        "served {flood_served} > {allowed} in {elapsed:?}"
    );
    assert!(flood_served > 0);
}
