//! Unit tests of the history client.

use super::*;
use crate::crypto::SecretKey;
use crate::waku::request::{MessagesRequest, RequestComplete};

/// The old call names, each one input: the tests read as the behaviour they check.
trait Drive {
    fn connected(&mut self, now: Timestamp, peer: PublicKey);
    fn disconnected(&mut self, now: Timestamp, peer: &PublicKey);
    fn set_topics(&mut self, topics: impl IntoIterator<Item = Topic>);
    fn on_envelope(&mut self, hash: [u8; 32]) -> bool;
    fn on_request_complete(&mut self, now: Timestamp, peer: &PublicKey, payload: &[u8]) -> Completion;
}

impl Drive for HistoryClient {
    fn connected(&mut self, now: Timestamp, peer: PublicKey) {
        let dialect = Dialect::Waku1;
        self.handle_input(now, Input::Connected { peer, dialect })
            .unwrap();
    }

    fn disconnected(&mut self, now: Timestamp, peer: &PublicKey) {
        self.handle_input(now, Input::Disconnected { peer: *peer })
            .unwrap();
    }

    fn set_topics(&mut self, topics: impl IntoIterator<Item = Topic>) {
        let now = self.last_now;
        let topics = topics.into_iter().collect();
        self.handle_input(now, Input::SetTopics(topics)).unwrap();
    }

    fn on_envelope(&mut self, hash: [u8; 32]) -> bool {
        let new = self.is_new(&hash);
        let now = self.last_now;
        self.handle_input(now, Input::Envelope { hash }).unwrap();
        new
    }

    fn on_request_complete(&mut self, now: Timestamp, peer: &PublicKey, payload: &[u8]) -> Completion {
        let input = Input::RequestComplete {
            peer: *peer,
            payload: Bytes::copy_from_slice(payload),
        };
        self.handle_input(now, input).unwrap();
        self.last_completion().unwrap()
    }
}

const T0: u64 = 1_700_000_000;

fn key(n: u64) -> PublicKey {
    SecretKey::random(&mut Seed::from_u64(n).rng()).public_key()
}

fn topic(n: u8) -> Topic {
    Topic([n, 0, 0, 0])
}

fn cfg() -> HistoryConfig {
    HistoryConfig {
        page_limit: 5,
        ..Default::default()
    }
}

fn client(c: HistoryConfig) -> HistoryClient {
    HistoryClient::new(c, &Seed::from_u64(3), Timestamp::ZERO).unwrap()
}

/// Drain outputs into (requests, events).
fn drain(c: &mut HistoryClient) -> (Vec<(PublicKey, MessagesRequest)>, Vec<Event>) {
    let (mut r, mut e) = (vec![], vec![]);
    while let Some(o) = c.poll_output() {
        match o {
            Output::Transmit { peer, request } => r.push((peer, request)),
            Output::Event(ev) => e.push(ev),
        }
    }
    (r, e)
}

/// A store of `(sent, hash)` keys answering like the server: the page after the cursor, and the
/// cursor of the last entry when the page is full.
fn serve(store: &[(u32, [u8; 32])], req: &MessagesRequest) -> (Vec<[u8; 32]>, Vec<u8>) {
    let mut page = vec![];
    let mut last = None;
    for (t, h) in store {
        let mut k = t.to_be_bytes().to_vec();
        k.extend_from_slice(h);
        if *t < req.from || *t > req.to || (!req.cursor.is_empty() && k[..] <= req.cursor[..]) {
            continue;
        }
        page.push(*h);
        last = Some(k);
        if page.len() == req.limit as usize {
            break;
        }
    }
    let mut id = [0u8; 32];
    id.copy_from_slice(&req.id);
    let cursor = (page.len() == req.limit as usize).then(|| Bytes::from(last.unwrap()));
    let rc = RequestComplete::Success {
        request_id: id,
        last_envelope_hash: page.last().copied(),
        cursor,
    };
    (page, rc.encode())
}

fn store(n: u8, from: u32) -> Vec<(u32, [u8; 32])> {
    (0..n).map(|i| (from + u32::from(i) * 60, [i + 1; 32])).collect()
}

#[test]
fn pages_through_cursors_and_advances_last_seen() {
    let mut c = client(cfg());
    let ms = key(1);
    c.set_topics([topic(1)]);
    let mut now = Timestamp::from_secs(T0);
    c.connected(now, ms);
    let st = store(23, (T0 - 3600) as u32);
    let mut pages = 0;
    let mut sent_at = vec![];
    let mut got = BTreeSet::new();
    loop {
        let (reqs, events) = drain(&mut c);
        if let Some(Event::HistoryFetched {
            peer,
            topics,
            from,
            to,
            envelopes,
            pages: p,
        }) = events.first()
        {
            assert_eq!(*peer, ms);
            assert_eq!(topics, &vec![topic(1)]);
            assert_eq!(
                *from,
                (T0 - 24 * 3600) as u32,
                "a topic never synced looks back 24 h"
            );
            assert_eq!(*to, T0 as u32);
            assert_eq!(*envelopes, 23);
            assert_eq!(*p, 5);
            break;
        }
        if reqs.is_empty() {
            now = c.poll_timeout().expect("a deadline while paging");
            c.handle_timeout(now);
            continue;
        }
        assert_eq!(reqs.len(), 1);
        let (peer, req) = &reqs[0];
        assert_eq!(*peer, ms);
        req.validate().unwrap();
        assert_eq!(req.limit, 5);
        sent_at.push(now);
        let (page, rc) = serve(&st, req);
        for h in page {
            assert!(c.on_envelope(h));
            got.insert(h);
        }
        pages += 1;
        now += Duration::from_millis(30);
        c.on_request_complete(now, &ms, &rc);
    }
    assert_eq!(pages, 5, "23 envelopes in pages of 5");
    assert_eq!(got.len(), 23);
    for w in sent_at.windows(2) {
        assert!(
            w[1].saturating_duration_since(w[0]) >= Duration::from_millis(1500),
            "paced"
        );
    }
    assert_eq!(c.last_seen(&topic(1)), Some(T0 as u32));
    assert!(!c.busy());
    assert_eq!(c.poll_timeout(), None);

    // Reconnect hours later: the window starts at last_seen − tolerance.
    c.disconnected(now, &ms);
    let later = Timestamp::from_secs(T0 + 5 * 3600);
    c.connected(later, ms);
    let (reqs, _) = drain(&mut c);
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].1.from, T0 as u32 - 60);
    assert_eq!(reqs[0].1.to, (T0 + 5 * 3600) as u32);
    assert!(reqs[0].1.cursor.is_empty());
}

#[test]
fn timeout_retries_then_fails_over_keeping_the_cursor() {
    let mut c = client(cfg());
    let (a, b) = (key(1), key(2));
    c.set_topics([topic(1)]);
    let mut now = Timestamp::from_secs(T0);
    c.connected(now, a);
    c.connected(now, b);
    let (reqs, _) = drain(&mut c);
    assert_eq!(reqs.len(), 1, "one request in flight, to the first mailserver");
    assert_eq!(reqs[0].0, a);
    // A answers one page with a cursor, then goes silent.
    let st = store(12, (T0 - 1000) as u32);
    let (page, rc) = serve(&st, &reqs[0].1);
    for h in page {
        c.on_envelope(h);
    }
    assert_eq!(c.on_request_complete(now, &a, &rc), Completion::NextPage);
    now = c.poll_timeout().unwrap();
    c.handle_timeout(now);
    let (reqs, _) = drain(&mut c);
    let cursor = reqs[0].1.cursor.clone();
    assert_eq!(cursor.len(), 36);
    assert_eq!(c.poll_timeout(), Some(now + Duration::from_secs(20)));
    now += Duration::from_secs(20);
    c.handle_timeout(now);
    let (reqs, events) = drain(&mut c);
    assert!(reqs.is_empty(), "the retry waits retry_delay");
    assert_eq!(
        events,
        vec![Event::RequestFailed {
            peer: a,
            reason: FailureReason::Timeout,
            topics: vec![topic(1)],
            will_retry: true
        }]
    );
    now = c.poll_timeout().unwrap();
    c.handle_timeout(now);
    let (reqs, _) = drain(&mut c);
    assert_eq!(reqs[0].0, a, "second try on the same mailserver");
    assert_eq!(reqs[0].1.cursor, cursor);
    now += Duration::from_secs(20);
    c.handle_timeout(now);
    let (reqs, events) = drain(&mut c);
    assert!(events.contains(&Event::FailedOver { from: a, to: b }));
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].0, b);
    assert_eq!(reqs[0].1.cursor, cursor, "continues from the last complete page");
    // A late answer from A is ignored.
    assert_eq!(c.on_request_complete(now, &a, &rc), Completion::Ignored);
    let (page, rc) = serve(&st, &reqs[0].1);
    assert_eq!(page.len(), 5);
    for h in page {
        assert!(c.on_envelope(h));
    }
    assert_eq!(c.on_request_complete(now, &b, &rc), Completion::NextPage);
    now = c.poll_timeout().unwrap();
    c.handle_timeout(now);
    let (reqs, _) = drain(&mut c);
    let (page, rc) = serve(&st, &reqs[0].1);
    assert_eq!(page.len(), 2);
    for h in page {
        assert!(c.on_envelope(h));
    }
    assert_eq!(c.on_request_complete(now, &b, &rc), Completion::Done);
    let (_, events) = drain(&mut c);
    assert!(matches!(
        events[..],
        [Event::HistoryFetched { peer, envelopes: 12, pages: 3, .. }] if peer == b
    ));
    assert_eq!(c.last_seen(&topic(1)), Some(T0 as u32));
}

#[test]
fn error_completion_retries_and_no_mailserver_left_keeps_topics_due() {
    let mut c = client(cfg());
    let a = key(1);
    c.set_topics([topic(1), topic(2)]);
    let mut now = Timestamp::from_secs(T0);
    c.connected(now, a);
    let (reqs, _) = drain(&mut c);
    let mut id = [0u8; 32];
    id.copy_from_slice(&reqs[0].1.id);
    assert!(
        reqs[0].1.id.iter().all(|b| b.is_ascii_hexdigit()),
        "hex request id"
    );
    let err = RequestComplete::Failure {
        request_id: id,
        error: "x".repeat(1000),
    }
    .encode();
    assert_eq!(c.on_request_complete(now, &a, &err), Completion::Failed);
    let (_, events) = drain(&mut c);
    match &events[..] {
        [Event::RequestFailed {
            reason: FailureReason::Rejected(t),
            will_retry: true,
            ..
        }] => assert_eq!(t.len(), MAX_ERROR_TEXT),
        e => panic!("{e:?}"),
    }
    now = c.poll_timeout().unwrap();
    assert_eq!(now, Timestamp::from_secs(T0) + Duration::from_secs(2));
    c.handle_timeout(now);
    let (reqs, _) = drain(&mut c);
    assert_eq!(reqs.len(), 1);
    // The mailserver leaves: nobody to fail over to.
    c.disconnected(now, &a);
    let (_, events) = drain(&mut c);
    assert!(matches!(
        events[..],
        [Event::RequestFailed {
            reason: FailureReason::Disconnected,
            will_retry: false,
            ..
        }]
    ));
    assert_eq!(c.due_topics(), 2);
    assert_eq!(c.poll_timeout(), None);
    assert_eq!(c.last_seen(&topic(1)), None);
    c.connected(now, a);
    let (reqs, _) = drain(&mut c);
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].1.topics, vec![topic(1), topic(2)]);
}

#[test]
fn bad_cursors_are_not_counted_as_pages() {
    // A fuzz find: completions with bad cursors were counted as pages, so interleaved bad cursors
    // cut a request short (or reported more than `max_pages` pages).
    let mut c = client(HistoryConfig {
        max_pages: 3,
        max_tries: 10,
        ..cfg()
    });
    let a = key(1);
    c.set_topics([topic(1)]);
    let mut now = Timestamp::from_secs(T0);
    c.connected(now, a);
    let mut good = T0 as u32 - 1000;
    let mut completions = vec![];
    // valid, bad, bad, valid, bad, end: three pages followed.
    for (k, kind) in ["valid", "bad", "bad", "valid", "bad", "end"].iter().enumerate() {
        let (reqs, _) = drain(&mut c);
        assert_eq!(reqs.len(), 1, "step {k}: one request out");
        let mut id = [0u8; 32];
        id.copy_from_slice(&reqs[0].1.id);
        let cursor = match *kind {
            "valid" => {
                good += 10;
                let mut cur = good.to_be_bytes().to_vec();
                cur.extend_from_slice(&[9; 32]);
                Some(cur.into())
            }
            "bad" => {
                // Well formed, outside the window.
                let mut cur = (T0 as u32 + 100_000).to_be_bytes().to_vec();
                cur.extend_from_slice(&[9; 32]);
                Some(cur.into())
            }
            _ => None,
        };
        let rc = RequestComplete::Success {
            request_id: id,
            last_envelope_hash: None,
            cursor,
        };
        completions.push(c.on_request_complete(now, &a, &rc.encode()));
        // Let the retry delay or the request gap pass.
        if c.job
            .as_ref()
            .is_some_and(|j| matches!(j.state, JobState::Waiting { .. }))
        {
            now = c.poll_timeout().unwrap();
            c.handle_timeout(now);
        }
    }
    use Completion::*;
    assert_eq!(
        completions,
        vec![NextPage, Failed, Failed, NextPage, Failed, Done]
    );
    let (_, events) = drain(&mut c);
    assert!(
        matches!(events.last(), Some(Event::HistoryFetched { pages: 3, .. })),
        "{events:?}"
    );
}

#[test]
fn bad_cursors_and_page_cap() {
    let mut c = client(HistoryConfig {
        max_pages: 3,
        max_tries: 1,
        ..cfg()
    });
    let a = key(1);
    c.set_topics([topic(1)]);
    let mut now = Timestamp::from_secs(T0);
    c.connected(now, a);
    let (reqs, _) = drain(&mut c);
    let mut id = [0u8; 32];
    id.copy_from_slice(&reqs[0].1.id);
    // A cursor outside the window fails the attempt.
    let mut far = (T0 as u32 + 100).to_be_bytes().to_vec();
    far.extend_from_slice(&[0; 32]);
    let rc = RequestComplete::Success {
        request_id: id,
        last_envelope_hash: None,
        cursor: Some(far.into()),
    };
    assert_eq!(c.on_request_complete(now, &a, &rc.encode()), Completion::Failed);
    let (_, events) = drain(&mut c);
    assert!(matches!(
        events[..],
        [Event::RequestFailed {
            reason: FailureReason::BadCursor,
            will_retry: false,
            ..
        }]
    ));
    // Cooldown over: the topic is asked again; a server that keeps paging is cut at max_pages.
    now = c.poll_timeout().unwrap();
    assert_eq!(now, Timestamp::from_secs(T0) + Duration::from_secs(300));
    c.handle_timeout(now);
    let mut t = T0 as u32 - 1000;
    let mut cursor_times = vec![];
    for round in 0..3 {
        let (reqs, events) = drain(&mut c);
        assert!(events.is_empty(), "{events:?}");
        assert_eq!(reqs.len(), 1, "round {round}");
        id.copy_from_slice(&reqs[0].1.id);
        t += 10;
        cursor_times.push(t);
        let mut cur = t.to_be_bytes().to_vec();
        cur.extend_from_slice(&[9; 32]);
        let rc = RequestComplete::Success {
            request_id: id,
            last_envelope_hash: None,
            cursor: Some(cur.clone().into()),
        };
        c.on_request_complete(now, &a, &rc.encode());
        if round < 2 {
            // The same cursor again does not advance: refused.
            assert_eq!(
                c.on_request_complete(now, &a, &rc.encode()),
                Completion::Ignored,
                "not sent yet"
            );
            now = c.poll_timeout().unwrap();
            c.handle_timeout(now);
        }
    }
    let (_, events) = drain(&mut c);
    assert!(matches!(
        events[..],
        [Event::RequestFailed {
            reason: FailureReason::TooManyPages,
            will_retry: false,
            ..
        }]
    ));
    assert_eq!(
        c.last_seen(&topic(1)),
        cursor_times.last().copied(),
        "progress kept"
    );
}

#[test]
fn non_advancing_cursor_is_refused() {
    let mut c = client(HistoryConfig {
        max_tries: 1,
        ..cfg()
    });
    let a = key(1);
    c.set_topics([topic(1)]);
    let mut now = Timestamp::from_secs(T0);
    c.connected(now, a);
    let mut id = [0u8; 32];
    let mut cur = (T0 as u32 - 5).to_be_bytes().to_vec();
    cur.extend_from_slice(&[9; 32]);
    for expect in [Completion::NextPage, Completion::Failed] {
        let (reqs, _) = drain(&mut c);
        id.copy_from_slice(&reqs[0].1.id);
        let rc = RequestComplete::Success {
            request_id: id,
            last_envelope_hash: None,
            cursor: Some(cur.clone().into()),
        };
        assert_eq!(c.on_request_complete(now, &a, &rc.encode()), expect);
        if let Some(t) = c.poll_timeout() {
            now = t;
            c.handle_timeout(now);
        }
    }
}

#[test]
fn topics_are_split_and_windows_bounded() {
    let mut c = client(HistoryConfig {
        max_topics_per_request: 3,
        ..cfg()
    });
    let a = key(1);
    c.set_topics((0..7).map(topic));
    // An old import: the window is still bounded by max_lookback.
    let mut state = vec![1, 0, 0, 0, 1];
    state.extend_from_slice(&topic(6).0);
    state.extend_from_slice(&((T0 - 30 * 24 * 3600) as u32).to_be_bytes());
    c.import(&state).unwrap();
    let mut now = Timestamp::from_secs(T0);
    c.connected(now, a);
    let mut batches = vec![];
    while c.busy() {
        let (reqs, _) = drain(&mut c);
        if reqs.is_empty() {
            now = c.poll_timeout().unwrap();
            c.handle_timeout(now);
            continue;
        }
        let r = &reqs[0].1;
        batches.push((r.from, r.topics.clone()));
        let (_, rc) = serve(&[], r);
        assert_eq!(c.on_request_complete(now, &a, &rc), Completion::Done);
    }
    assert_eq!(batches.len(), 3);
    assert_eq!(
        batches[0].1,
        vec![topic(6), topic(0), topic(1)],
        "oldest window first"
    );
    assert_eq!(batches[0].0, (T0 - 7 * 24 * 3600) as u32);
    assert_eq!(batches[1].1.len(), 3);
    assert_eq!(batches[2].1, vec![topic(5)]);
    for i in 0..7 {
        assert!(c.last_seen(&topic(i)).is_some());
    }
    // A new topic is synced on its own; a removed one is no longer asked.
    c.set_topics((1..8).map(topic));
    c.handle_timeout(now);
    let (reqs, _) = drain(&mut c);
    if reqs.is_empty() {
        now = c.poll_timeout().unwrap();
        c.handle_timeout(now);
    }
    let (reqs2, _) = drain(&mut c);
    let r = reqs.first().or(reqs2.first()).unwrap();
    assert_eq!(r.1.topics, vec![topic(7)]);
}

#[test]
fn topic_cap_and_dedup_cap() {
    let mut c = client(HistoryConfig {
        max_topics: 4,
        max_seen_envelopes: 3,
        ..cfg()
    });
    c.set_topics((0..10).map(topic));
    assert_eq!(c.due_topics(), 4);
    for i in 0..5u8 {
        assert!(c.on_envelope([i; 32]));
    }
    assert_eq!(c.seen_len(), 3);
    assert!(!c.on_envelope([4; 32]), "recent hash remembered");
    assert!(c.on_envelope([0; 32]), "oldest forgotten at the cap");
}

#[test]
fn ignores_foreign_and_garbage_completions() {
    let mut c = client(cfg());
    let (a, b) = (key(1), key(2));
    c.set_topics([topic(1)]);
    let now = Timestamp::from_secs(T0);
    c.connected(now, a);
    let (reqs, _) = drain(&mut c);
    let mut id = [0u8; 32];
    id.copy_from_slice(&reqs[0].1.id);
    let ok = RequestComplete::Success {
        request_id: id,
        last_envelope_hash: None,
        cursor: None,
    }
    .encode();
    let other = RequestComplete::Success {
        request_id: [b'0'; 32],
        last_envelope_hash: None,
        cursor: None,
    }
    .encode();
    assert_eq!(c.on_request_complete(now, &b, &ok), Completion::Ignored);
    assert_eq!(c.on_request_complete(now, &a, &other), Completion::Ignored);
    assert_eq!(c.on_request_complete(now, &a, &[1, 2, 3]), Completion::Ignored);
    assert_eq!(c.on_request_complete(now, &a, &[0; 101]), Completion::Ignored);
    assert_eq!(c.on_request_complete(now, &a, &ok), Completion::Done);
    assert_eq!(
        c.on_request_complete(now, &a, &ok),
        Completion::Ignored,
        "only once"
    );
}

#[test]
fn export_import_round_trip_and_garbage() {
    let mut c = client(cfg());
    let a = key(1);
    c.set_topics([topic(1), topic(2)]);
    let now = Timestamp::from_secs(T0);
    c.connected(now, a);
    let (reqs, _) = drain(&mut c);
    let (_, rc) = serve(&[], &reqs[0].1);
    c.on_request_complete(now, &a, &rc);
    let blob = c.export();
    assert_eq!(blob.len(), 5 + 2 * 8);
    let mut d = client(cfg());
    d.import(&blob).unwrap();
    assert_eq!(d.last_seen(&topic(1)), Some(T0 as u32));
    assert_eq!(d.export(), blob);
    // A restart continues: the imported topic is asked from last_seen − tolerance.
    d.set_topics([topic(2)]);
    d.connected(now + Duration::from_secs(3600), a);
    let (reqs, _) = drain(&mut d);
    assert_eq!(reqs[0].1.from, T0 as u32 - 60);

    let mut e = client(HistoryConfig {
        max_topics: 1,
        ..cfg()
    });
    let mut dup = vec![1, 0, 0, 0, 2];
    dup.extend_from_slice(&blob[5..13]);
    dup.extend_from_slice(&blob[5..13]);
    for bad in [
        vec![],
        vec![2, 0, 0, 0, 0],
        vec![1, 0, 0],
        blob[..blob.len() - 1].to_vec(),
        [&blob[..], &[0]].concat(),
        vec![1, 255, 255, 255, 255],
        blob.clone(),
        dup,
    ] {
        assert!(
            matches!(e.import(&bad), Err(MailserverError::InvalidState(_))),
            "{bad:?}"
        );
        assert_eq!(e.export(), vec![1, 0, 0, 0, 0], "nothing changed");
    }
    assert!(c.import(&[1, 0, 0, 0, 0]).is_ok());
}
