//! The same mailserver store tests against every backend: in memory and redb on disk (including reopening
//! the file, so archived envelopes survive a restart).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use status_io_std::store::{MemoryStore, RedbStore, Store};
use status_sansio::mailserver::server::KEY_LEN;

fn key(sent: u32, n: u8) -> [u8; KEY_LEN] {
    let mut k = [n; KEY_LEN];
    k[..4].copy_from_slice(&sent.to_be_bytes());
    k
}

fn exercise(store: &mut dyn Store) {
    for t in 0..100u32 {
        store
            .put(key(1000 + t, (t % 7) as u8), Bytes::from(format!("env{t}")))
            .unwrap();
    }
    // Overwriting the same key keeps one entry.
    store.put(key(1000, 0), Bytes::from_static(b"env0")).unwrap();
    assert_eq!(store.len().unwrap(), 100);
    // Ranges are ascending, bounded by start (inclusive), end (exclusive) and limit.
    let r = store.range(key(1010, 0), key(1020, 0), 1000).unwrap();
    assert_eq!(r.len(), 10);
    assert!(r.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(r[0].1, Bytes::from_static(b"env10"));
    assert_eq!(store.range(key(1010, 0), key(1020, 0), 3).unwrap().len(), 3);
    assert!(store.range(key(1020, 0), key(1010, 0), 10).unwrap().is_empty());
    // Pruning removes everything sent before the cut-off.
    store.prune(1050).unwrap();
    assert_eq!(store.len().unwrap(), 50);
    assert!(store.range(key(0, 0), key(1050, 0), 1000).unwrap().is_empty());
    assert_eq!(
        store.range(key(1050, 0), [0xff; KEY_LEN], 1).unwrap()[0].1,
        Bytes::from_static(b"env50")
    );
}

#[test]
fn memory_store() {
    exercise(&mut MemoryStore::default());
}

#[test]
fn redb_store_and_reopen() {
    let dir = std::env::temp_dir().join(format!("status-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mail.redb");
    let _ = std::fs::remove_file(&path);
    {
        let mut s = RedbStore::open(&path).unwrap();
        exercise(&mut s);
    }
    let s = RedbStore::open(&path).unwrap();
    assert_eq!(s.len().unwrap(), 50, "the archive survives a restart");
    let _ = std::fs::remove_dir_all(&dir);
}
