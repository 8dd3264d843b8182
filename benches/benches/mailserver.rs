//! Mailserver storage benchmark: an embedded redb archive of 1,000,000 envelopes, queried through the real
//! [`MailServer`] machine.
//!
//! The archive is built once per run in a temporary directory: Status-like envelopes of 300–500 bytes
//! (random payloads, as encrypted ones look), on 300 public-chat-like topics, spread evenly over 30 days,
//! written in batches as the tokio driver does. It prints the ingest rate and the stored bytes per envelope
//! (file size / count).
//!
//! Each measured iteration is a client fetching history with cursor paging: it sends a `MessagesRequest`
//! (time window + topics, limit 1000), the machine asks the store for key ranges, filters topics on the
//! key, decodes and batches the envelopes, and the client follows the completion's cursor until there is
//! none. The window moves to another day every iteration. Scenarios:
//! - `day_10_topics`: one day of 10 chats (the common "fetch what I missed" request);
//! - `week_1_topic`: seven days of one chat (a sparse topic over a long window: the time-ordered key makes
//!   this scan-bound, and the machine's scan budget splits it into several requests).
//!
//! Printed per scenario: envelopes served per second, and keys examined per second.
//!
//! Set `MAILSERVER_BENCH_N` to change the archive size (default 1,000,000), and `MAILSERVER_BENCH_PG=1`
//! to build the same archive in a throwaway local PostgreSQL server (see `TempServer`) and run the same
//! scenarios against it.

use status_sansio::mailserver::StorageOp;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::Criterion;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use status_io_std::store::postgres::TempServer;
use status_io_std::store::{PostgresStore, RedbStore, Store};
use status_sansio::mailserver::server::{storage_key, Input, MailServer, MailServerConfig, Output, KEY_LEN};
use status_sansio::waku::request::{MessagesRequest, RequestComplete};
use status_sansio::waku::{ConnId, Envelope, Topic};
use status_sansio::Seed;
use status_sansio::Timestamp;

const NOW: u32 = 1_700_000_000;
const DAY: u32 = 86_400;
const SPAN_DAYS: u32 = 30;
const TOPICS: usize = 300;
const BATCH: usize = 10_000;

fn topic(i: usize) -> Topic {
    Topic::from_str_hash(&format!("public-chat-{i}"))
}

type Entries = Vec<([u8; KEY_LEN], Bytes)>;

/// An archive under test; removes what it created on drop.
struct Archive {
    name: &'static str,
    store: Box<dyn Store>,
    count: usize,
    dir: Option<PathBuf>,
    _server: Option<Arc<TempServer>>,
}

impl Drop for Archive {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Generate `n` envelopes over the 30 days before `NOW`, in time order, handed to `sink` in batches.
/// Returns their average encoded size.
fn generate(n: usize, mut sink: impl FnMut(Entries)) -> f64 {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let start = NOW - SPAN_DAYS * DAY;
    let span = u64::from(SPAN_DAYS * DAY);
    let topics: Vec<Topic> = (0..TOPICS).map(topic).collect();
    let mut batch = Vec::with_capacity(BATCH);
    let mut bytes = 0usize;
    for i in 0..n {
        let sent = start + (i as u64 * span / n as u64) as u32;
        let ttl = 10 + rng.next_u32() % 290;
        let len = 280 + (rng.next_u32() % 180) as usize;
        let mut data = vec![0u8; len];
        rng.fill_bytes(&mut data);
        let env = Envelope {
            expiry: sent + ttl,
            ttl,
            topic: topics[rng.next_u32() as usize % TOPICS],
            data: Bytes::from(data),
            nonce: rng.next_u64(),
        };
        let value = Bytes::from(env.encode());
        bytes += value.len();
        batch.push((storage_key(&env, &env.hash()), value));
        if batch.len() == BATCH {
            sink(std::mem::take(&mut batch));
        }
    }
    if !batch.is_empty() {
        sink(batch);
    }
    bytes as f64 / n as f64
}

/// Fill `store` with `n` envelopes, printing the ingest rate.
fn fill(name: &str, store: &mut dyn Store, n: usize) {
    let t0 = Instant::now();
    let avg = generate(n, |batch| store.put_batch(batch).expect("put"));
    // A durable commit, as the hourly prune makes in a running mailserver.
    store.prune(0).expect("prune");
    let took = t0.elapsed();
    assert_eq!(store.len().expect("len"), n, "every envelope stored");
    println!(
        "mailserver archive ({name}): {n} envelopes ({avg:.0} bytes each on average) built in {:.1} s = {:.0} \
         envelopes/s",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
}

fn per_envelope(name: &str, what: &str, bytes: u64, n: usize) {
    println!(
        "mailserver archive ({name}): {what} {:.1} MiB = {:.0} stored bytes per envelope",
        bytes as f64 / (1 << 20) as f64,
        bytes as f64 / n as f64
    );
}

/// The embedded redb archive in a temporary directory.
fn build_redb(n: usize) -> Archive {
    let dir = std::env::temp_dir().join(format!("status-bench-mailserver-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("mail.redb");
    let mut store = RedbStore::open(&path).expect("open redb");
    fill("redb", &mut store, n);
    per_envelope("redb", "file", std::fs::metadata(&path).expect("file").len(), n);
    let t0 = Instant::now();
    store.compact().expect("compact");
    per_envelope(
        "redb",
        &format!("after compaction ({:.1} s)", t0.elapsed().as_secs_f64()),
        std::fs::metadata(&path).expect("file").len(),
        n,
    );
    Archive {
        name: "redb",
        store: Box::new(store),
        count: n,
        dir: Some(dir),
        _server: None,
    }
}

/// The same archive in a throwaway local PostgreSQL server.
fn build_postgres(n: usize) -> Archive {
    let server = TempServer::shared().expect("start a local PostgreSQL server");
    let url = server.create_database().expect("create database");
    let mut store = PostgresStore::connect(&url).expect("connect");
    fill("postgres", &mut store, n);
    per_envelope("postgres", "table", store.table_bytes().expect("size"), n);
    Archive {
        name: "postgres",
        store: Box::new(store),
        count: n,
        dir: None,
        _server: Some(server),
    }
}

/// What one paged history fetch did.
#[derive(Default, Clone, Copy)]
struct Fetch {
    served: u64,
    scanned: u64,
    requests: u64,
}

/// One client's paged history fetch through the machine and the store.
fn fetch(store: &dyn Store, now: &mut u64, from: u32, to: u32, topics: &[Topic]) -> Fetch {
    let mut ms = MailServer::new(
        MailServerConfig::default(),
        &Seed::from_u64(1),
        Timestamp::from_secs(*now),
    );
    let peer = ConnId(1);
    let mut f = Fetch::default();
    let mut cursor = Bytes::new();
    loop {
        // One request per second per peer: the client's clock moves on between pages.
        *now += 2;
        let t = Timestamp::from_secs(*now);
        let mut id = vec![0u8; 32];
        id[..8].copy_from_slice(&f.requests.to_be_bytes());
        let request = MessagesRequest {
            id: Bytes::from(id),
            from,
            to,
            limit: 1000,
            cursor: std::mem::take(&mut cursor),
            bloom: Bytes::new(),
            topics: topics.to_vec(),
        };
        f.requests += 1;
        ms.handle_input(
            t,
            Input::Request {
                peer,
                data: Bytes::from(request.encode()),
            },
        )
        .expect("request");
        let mut done = false;
        while !done {
            let Some(o) = ms.poll_output() else {
                panic!("the machine stopped before completing");
            };
            match o {
                Output::Storage(StorageOp::Query {
                    query,
                    start,
                    end,
                    limit,
                }) => {
                    let entries = store.range(start, end, limit).expect("range");
                    f.scanned += entries.len() as u64;
                    ms.handle_input(t, Input::QueryResult { query, entries })
                        .expect("result");
                }
                Output::Transmit { envelopes, .. } => {
                    f.served += envelopes.len() as u64;
                    black_box(envelopes);
                }
                Output::Complete { payload, .. } => {
                    match RequestComplete::decode(&payload).expect("completion") {
                        RequestComplete::Success { cursor: c, .. } => cursor = c.unwrap_or_default(),
                        RequestComplete::Failure { error, .. } => panic!("{error}"),
                    }
                    done = true;
                }
                Output::Storage(StorageOp::Store { .. } | StorageOp::Prune { .. }) => {}
                other => panic!("unexpected output {other:?}"),
            }
        }
        if cursor.is_empty() {
            return f;
        }
    }
}

struct Scenario {
    name: &'static str,
    days: u32,
    topics: Vec<Topic>,
}

fn bench(c: &mut Criterion) {
    let n = std::env::var("MAILSERVER_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000usize);
    let scenarios = [
        Scenario {
            name: "day_10_topics",
            days: 1,
            topics: (0..10).map(|i| topic(i * 29 + 3)).collect(),
        },
        Scenario {
            name: "week_1_topic",
            days: 7,
            topics: vec![topic(42)],
        },
    ];
    let mut archives = vec![build_redb(n)];
    // PostgreSQL too, on request (loading it takes longer).
    if std::env::var_os("MAILSERVER_BENCH_PG").is_some() {
        archives.push(build_postgres(n));
    }
    for archive in &archives {
        history(c, archive, &scenarios);
    }
}

fn history(c: &mut Criterion, archive: &Archive, scenarios: &[Scenario]) {
    let mut g = c.benchmark_group(format!("mailserver_history_{}", archive.name));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.warm_up_time(Duration::from_secs(2));
    for s in scenarios {
        let mut total = Fetch::default();
        let mut time = Duration::ZERO;
        let mut now = u64::from(NOW) + 60;
        let mut day = 0u32;
        g.bench_function(s.name, |b| {
            b.iter_custom(|iters| {
                let t0 = Instant::now();
                for _ in 0..iters {
                    // Every window lies inside the archive: days 0 ..= 30 - days.
                    let from = NOW - SPAN_DAYS * DAY + (day % (SPAN_DAYS - s.days + 1)) * DAY;
                    day += 1;
                    let f = fetch(
                        &*archive.store,
                        &mut now,
                        from,
                        from + s.days * DAY - 1,
                        &s.topics,
                    );
                    total.served += f.served;
                    total.scanned += f.scanned;
                    total.requests += f.requests;
                }
                let el = t0.elapsed();
                time += el;
                el
            })
        });
        let (t, secs) = (total, time.as_secs_f64());
        println!(
            "mailserver {} {}: {:.0} envelopes served/s, {:.0} keys examined/s ({:.0} envelopes and {:.1} requests per \
             fetch on average; archive of {})",
            archive.name,
            s.name,
            t.served as f64 / secs,
            t.scanned as f64 / secs,
            t.served as f64 / day.max(1) as f64,
            t.requests as f64 / day.max(1) as f64,
            archive.count
        );
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
