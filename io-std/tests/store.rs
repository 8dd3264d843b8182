//! The same mailserver store tests against every backend: in memory, redb on disk and PostgreSQL (a real
//! local server started by the tests themselves; they fail, never skip, if PostgreSQL cannot be started).
//! The persistent backends are also reopened, so archived envelopes survive a restart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use status_io_std::store::postgres::TempServer;
use status_io_std::store::{CappedStore, MemoryStore, PostgresStore, RedbStore, Store};
use status_sansio::mailserver::server::KEY_LEN;

fn key(sent: u32, n: u8) -> [u8; KEY_LEN] {
    let mut k = [n; KEY_LEN];
    k[..4].copy_from_slice(&sent.to_be_bytes());
    k
}

/// A backend under test: opens (or reopens) the same store.
trait Fixture {
    fn open(&self) -> Box<dyn Store>;
}

struct Memory;
impl Fixture for Memory {
    fn open(&self) -> Box<dyn Store> {
        Box::new(MemoryStore::default())
    }
}

struct Redb(PathBuf);
impl Redb {
    fn new() -> Redb {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "status-store-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Redb(dir)
    }
}
impl Fixture for Redb {
    fn open(&self) -> Box<dyn Store> {
        Box::new(RedbStore::open(&self.0.join("mail.redb")).unwrap())
    }
}
impl Drop for Redb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh database on the process's shared temporary server.
struct Postgres {
    server: Arc<TempServer>,
    url: String,
}
impl Postgres {
    fn new() -> Postgres {
        let server = TempServer::shared().expect("start a local PostgreSQL server");
        let url = server.create_database().unwrap();
        Postgres { server, url }
    }
}
impl Fixture for Postgres {
    fn open(&self) -> Box<dyn Store> {
        Box::new(PostgresStore::connect(&self.url).unwrap())
    }
}

fn ranges_overwrites_and_pruning(f: &dyn Fixture) {
    let mut store = f.open();
    assert!(store.is_empty().unwrap());
    for t in 0..100u32 {
        store
            .put(key(1000 + t, (t % 7) as u8), Bytes::from(format!("env{t}")))
            .unwrap();
    }
    // Putting the same key again keeps one entry.
    store.put(key(1000, 0), Bytes::from_static(b"env0")).unwrap();
    assert_eq!(store.len().unwrap(), 100);
    // Ranges are ascending, bounded by start (inclusive), end (exclusive) and limit.
    let r = store.range(key(1010, 0), key(1020, 0), 1000).unwrap();
    assert_eq!(r.len(), 10);
    assert!(r.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(r[0], (key(1010, 3), Bytes::from_static(b"env10")));
    assert_eq!(r[9].0, key(1019, 5));
    assert_eq!(store.range(key(1010, 0), key(1020, 0), 3).unwrap().len(), 3);
    assert!(store.range(key(1010, 0), key(1020, 0), 0).unwrap().is_empty());
    assert!(store.range(key(1020, 0), key(1010, 0), 10).unwrap().is_empty());
    assert!(store.range(key(1020, 0), key(1020, 0), 10).unwrap().is_empty());
    // Start is inclusive at the exact key, end exclusive at the exact key.
    let r = store.range(key(1010, 3), key(1011, 3), 10).unwrap();
    assert_eq!(r.iter().map(|e| e.0).collect::<Vec<_>>(), vec![key(1010, 3)]);
    // Pruning removes everything sent before the cut-off.
    store.prune(1050).unwrap();
    assert_eq!(store.len().unwrap(), 50);
    assert!(store.range(key(0, 0), key(1050, 0), 1000).unwrap().is_empty());
    assert_eq!(
        store.range(key(1050, 0), [0xff; KEY_LEN], 1).unwrap()[0].1,
        Bytes::from_static(b"env50")
    );
}

/// Keys compare bytewise and unsigned (bytes ≥ 0x80 sort last), whatever the byte positions.
fn keys_sort_bytewise(f: &dyn Fixture) {
    let mut store = f.open();
    let mut want: Vec<[u8; KEY_LEN]> = Vec::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..300 {
        let mut k = [0u8; KEY_LEN];
        for b in k.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = (x >> 24) as u8;
        }
        // Cluster the first bytes so later bytes decide the order too.
        k[0] &= 0x81;
        k[1] = 0x7f | (k[1] & 0x80);
        want.push(k);
    }
    for k in &want {
        store.put(*k, Bytes::copy_from_slice(&k[..8])).unwrap();
    }
    want.sort();
    want.dedup();
    let all = store.range([0; KEY_LEN], [0xff; KEY_LEN], usize::MAX).unwrap();
    assert_eq!(all.iter().map(|e| e.0).collect::<Vec<_>>(), want);
    assert!(all.iter().all(|(k, v)| v[..] == k[..8]));
    let (lo, hi) = (want[37], want[201]);
    let mid = store.range(lo, hi, usize::MAX).unwrap();
    assert_eq!(
        mid.iter().map(|e| e.0).collect::<Vec<_>>(),
        want[37..201].to_vec()
    );
}

/// A batch is the same as its puts one by one (duplicates included), and stores large values intact.
fn batch_put(f: &dyn Fixture) {
    let mut store = f.open();
    let mut batch: Vec<([u8; KEY_LEN], Bytes)> = (0..2000u32)
        .map(|i| {
            (
                key(5000 + i / 3, (i % 3) as u8),
                Bytes::from(i.to_be_bytes().to_vec()),
            )
        })
        .collect();
    batch.push(batch[10].clone());
    let big = Bytes::from((0..300_000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    batch.push((key(9999, 9), big.clone()));
    store.put_batch(batch).unwrap();
    store.put_batch(vec![]).unwrap();
    assert_eq!(store.len().unwrap(), 2001);
    let r = store.range(key(5000, 0), key(5001, 0), 10).unwrap();
    assert_eq!(r.len(), 3);
    assert_eq!(r[2], (key(5000, 2), Bytes::from(2u32.to_be_bytes().to_vec())));
    assert_eq!(
        store.range(key(9999, 0), key(10_000, 0), 10).unwrap(),
        vec![(key(9999, 9), big)]
    );
}

/// Prune keeps envelopes sent exactly at the cut-off and handles the extremes of the time range.
fn prune_boundaries(f: &dyn Fixture) {
    let mut store = f.open();
    for t in [0, 1, 99, 100, 101, u32::MAX - 1, u32::MAX] {
        store.put(key(t, 0xff), Bytes::from_static(b"x")).unwrap();
        store.put(key(t, 0x00), Bytes::from_static(b"y")).unwrap();
    }
    store.prune(0).unwrap();
    assert_eq!(store.len().unwrap(), 14);
    store.prune(100).unwrap();
    assert_eq!(store.len().unwrap(), 8, "sent at 0, 1 and 99 are gone, 100 stays");
    assert_eq!(store.range([0; KEY_LEN], key(101, 0), 100).unwrap().len(), 2);
    store.prune(u32::MAX).unwrap();
    assert_eq!(store.len().unwrap(), 2);
    // The end bound is exclusive even at the largest key.
    let left = store.range([0; KEY_LEN], [0xff; KEY_LEN], 100).unwrap();
    assert_eq!(
        left.iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![key(u32::MAX, 0)]
    );
}

/// What was written is there after closing and reopening the store.
fn survives_reopen(f: &dyn Fixture) {
    {
        let mut s = f.open();
        for t in 0..20u32 {
            s.put(key(t, 1), Bytes::from(format!("v{t}"))).unwrap();
        }
        s.prune(5).unwrap();
    }
    let mut s = f.open();
    assert_eq!(s.len().unwrap(), 15, "the archive survives a restart");
    assert_eq!(
        s.range(key(5, 0), key(6, 0), 9).unwrap()[0].1,
        Bytes::from_static(b"v5")
    );
    s.put(key(30, 1), Bytes::from_static(b"later")).unwrap();
    assert_eq!(s.len().unwrap(), 16);
}

/// The byte cap: data bytes are counted exactly (overwrites included), eviction is oldest first, and a
/// capped store stays under its cap through a long stream of writes, single and batched.
fn byte_cap_evicts_oldest_first(f: &dyn Fixture) {
    let mut store = f.open();
    for t in 0..100u32 {
        store.put(key(1000 + t, 1), Bytes::from(vec![7u8; 100])).unwrap();
    }
    store.put(key(1000, 1), Bytes::from(vec![7u8; 100])).unwrap();
    assert_eq!(store.data_bytes().unwrap(), 100 * 100);
    store.evict_to(2_550).unwrap();
    assert_eq!(store.data_bytes().unwrap(), 2_500);
    assert_eq!(store.len().unwrap(), 25);
    assert!(
        store.range(key(0, 0), key(1075, 0), 100).unwrap().is_empty(),
        "the oldest went first"
    );
    assert_eq!(store.range(key(1075, 0), [0xff; KEY_LEN], 100).unwrap().len(), 25);
    let mut capped = CappedStore::new(store, 5_000).unwrap();
    let mut max_seen = 0;
    for t in 0..300u32 {
        if t % 3 == 0 {
            let batch = (0..3u8)
                .map(|n| (key(2000 + t, n), Bytes::from(vec![t as u8; 50 + usize::from(n)])))
                .collect();
            capped.put_batch(batch).unwrap();
        } else {
            capped
                .put(key(2000 + t, 9), Bytes::from(vec![t as u8; 120]))
                .unwrap();
        }
        max_seen = max_seen.max(capped.data_bytes().unwrap());
    }
    assert!(max_seen <= 5_000, "stayed under the cap: {max_seen}");
    assert!(capped.data_bytes().unwrap() >= 4_000, "and kept most of it");
    // What is left is the newest.
    let newest = capped.range(key(2299, 0), [0xff; KEY_LEN], 10).unwrap();
    assert_eq!(newest.len(), 1);
    assert!(capped.range(key(0, 0), key(2200, 0), 10).unwrap().is_empty());
}

macro_rules! store_suite {
    ($backend:ident, $fixture:expr $(, $persistent:ident)?) => {
        mod $backend {
            use super::*;

            #[test]
            fn ranges_overwrites_and_pruning() {
                super::ranges_overwrites_and_pruning(&$fixture);
            }

            #[test]
            fn keys_sort_bytewise() {
                super::keys_sort_bytewise(&$fixture);
            }

            #[test]
            fn batch_put() {
                super::batch_put(&$fixture);
            }

            #[test]
            fn prune_boundaries() {
                super::prune_boundaries(&$fixture);
            }

            #[test]
            fn byte_cap_evicts_oldest_first() {
                super::byte_cap_evicts_oldest_first(&$fixture);
            }

            $(
                #[test]
                fn $persistent() {
                    super::survives_reopen(&$fixture);
                }
            )?
        }
    };
}

store_suite!(memory, Memory);
store_suite!(redb, Redb::new(), survives_reopen);
store_suite!(postgres, Postgres::new(), survives_reopen);

/// An existing status-go table (`id` UNIQUE rather than PRIMARY KEY, its secondary indexes) is used as it
/// is, and rows carry status-go's `topic` and `bloom` columns.
#[test]
fn postgres_uses_a_status_go_table_and_fills_its_columns() {
    let pg = Postgres::new();
    let mut admin = ::postgres::Client::connect(&pg.url, ::postgres::NoTls).unwrap();
    admin
        .batch_execute(
            "CREATE TABLE envelopes (id BYTEA NOT NULL UNIQUE, data BYTEA NOT NULL, topic BYTEA NOT NULL, \
             bloom BIT(512) NOT NULL);
             CREATE INDEX id_bloom_idx ON envelopes (id DESC, bloom);
             CREATE INDEX id_topic_idx ON envelopes (id DESC, topic);",
        )
        .unwrap();
    let mut s = pg.open();
    let topic = status_sansio::waku::Topic([0x12, 0x34, 0x56, 0x07]);
    let mut k = key(77, 0xab);
    k[36..].copy_from_slice(&topic.0);
    s.put(k, Bytes::from_static(b"envelope")).unwrap();
    s.put(k, Bytes::from_static(b"envelope")).unwrap();
    assert_eq!(s.len().unwrap(), 1);
    let row = admin
        .query_one("SELECT id, topic, bloom::text FROM envelopes", &[])
        .unwrap();
    assert_eq!(row.get::<_, Vec<u8>>(0), k.to_vec());
    assert_eq!(row.get::<_, Vec<u8>>(1), topic.0.to_vec());
    let bits: String = row.get(2);
    // Go-form bloom: byte n/8 gets bit n%8, written most significant bit first.
    let mut want = vec!['0'; 512];
    for j in 0..3 {
        let n = usize::from(topic.0[j]) + if topic.0[3] & (1 << j) != 0 { 256 } else { 0 };
        want[n / 8 * 8 + 7 - n % 8] = '1';
    }
    assert_eq!(bits, want.into_iter().collect::<String>());
}

/// Migrations are idempotent and safe when several stores start at once on a fresh database.
#[test]
fn postgres_concurrent_first_start() {
    let pg = Arc::new(Postgres::new());
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let pg = pg.clone();
            std::thread::spawn(move || {
                let mut s = pg.open();
                s.put(key(i, 1), Bytes::from_static(b"e")).unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(pg.open().len().unwrap(), 4);
}

/// A connection the server dropped is re-opened transparently.
#[test]
fn postgres_reconnects_after_the_server_drops_the_connection() {
    let pg = Postgres::new();
    let mut s = pg.open();
    s.put(key(1, 1), Bytes::from_static(b"a")).unwrap();
    let mut admin = ::postgres::Client::connect(&pg.server.url("postgres"), ::postgres::NoTls).unwrap();
    let db = pg.url.rsplit('/').next().unwrap().to_string();
    let killed = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&db],
        )
        .unwrap();
    assert_eq!(killed.len(), 1, "the store's connection was terminated");
    s.put(key(2, 1), Bytes::from_static(b"b")).unwrap();
    assert_eq!(s.len().unwrap(), 2);
}

/// Rows whose id is not a 40-byte key (status-go's 36-byte keys from before 2020, or rows another tool
/// wrote) do not count toward a range's limit: a page is `limit` real entries, so the mailserver, which
/// takes a short page for the end of the range, does not stop serving history early.
#[test]
fn postgres_foreign_rows_do_not_shorten_a_page() {
    let pg = Postgres::new();
    let mut s = pg.open();
    let mut admin = ::postgres::Client::connect(&pg.url, ::postgres::NoTls).unwrap();
    for t in 10..20u32 {
        s.put(key(t, 1), Bytes::from_static(b"envelope")).unwrap();
        // A legacy 36-byte key just after each real one.
        let mut legacy = key(t, 2)[..36].to_vec();
        legacy[35] = 9;
        admin
            .execute(
                "INSERT INTO envelopes (id, data, topic, bloom) VALUES ($1, 'x', '\\x00000000', \
                 repeat('0', 512)::bit(512))",
                &[&legacy],
            )
            .unwrap();
    }
    let page = s.range(key(0, 0), key(100, 0), 4).unwrap();
    let sent: Vec<u32> = page
        .iter()
        .map(|(k, _)| u32::from_be_bytes([k[0], k[1], k[2], k[3]]))
        .collect();
    assert_eq!(sent, vec![10, 11, 12, 13]);
}
