//! The node state store: batches round-trip, and every kind of damage is refused with an error that names
//! the file, leaving the file byte for byte as it was.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use status_io_std::state::{StateStore, StateStoreError, STATE_FORMAT_VERSION};
use status_sansio::persist::{Batch, BatchSeq, Record, RecordKey};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("state-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const MARK: &[u8] = b"RECORD-VALUE-MARKER-0123456789";

fn batch(seq: u64, records: Vec<Record>) -> Batch {
    Batch {
        seq: BatchSeq(seq),
        records,
    }
}

fn write_sample(path: &Path) {
    let mut s = StateStore::open(path).unwrap();
    s.commit(&batch(1, vec![Record::put(RecordKey::new("a"), MARK.to_vec())]))
        .unwrap();
    s.commit(&batch(2, vec![Record::put(RecordKey::new("b"), vec![2; 100])]))
        .unwrap();
}

fn assert_refused(path: &Path, what: &str) {
    let before = std::fs::read(path).unwrap();
    let err = match StateStore::open(path).and_then(|s| s.load()) {
        Ok(_) => panic!("{what}: a damaged store was accepted"),
        Err(e) => e,
    };
    let text = err.to_string();
    assert!(
        text.contains(&path.display().to_string()),
        "{what}: error does not name the file: {text}"
    );
    assert!(
        matches!(
            err,
            StateStoreError::Damaged { .. } | StateStoreError::Version { .. }
        ),
        "{what}: {err:?}"
    );
    assert_eq!(
        std::fs::read(path).unwrap(),
        before,
        "{what}: the file was changed"
    );
}

#[test]
fn batches_round_trip_across_reopen() {
    let d = dir("roundtrip");
    let p = d.join("state.redb");
    write_sample(&p);
    let mut s = StateStore::open(&p).unwrap();
    s.commit(&batch(
        3,
        vec![
            Record::delete(RecordKey::new("b")),
            Record::put(RecordKey::new("c"), vec![3]),
        ],
    ))
    .unwrap();
    drop(s);
    let loaded = StateStore::open(&p).unwrap().load().unwrap();
    assert_eq!(loaded.get(&RecordKey::new("a")), Some(MARK));
    assert_eq!(loaded.get(&RecordKey::new("b")), None);
    assert_eq!(loaded.get(&RecordKey::new("c")), Some(&[3u8][..]));
    assert_eq!(loaded.len(), 2);
}

#[test]
fn an_empty_file_is_refused() {
    let d = dir("empty");
    let p = d.join("state.redb");
    std::fs::write(&p, b"").unwrap();
    assert_refused(&p, "empty");
}

#[test]
fn a_truncated_file_is_refused() {
    let d = dir("truncated");
    let p = d.join("state.redb");
    write_sample(&p);
    let bytes = std::fs::read(&p).unwrap();
    for cut in [bytes.len() / 2, 100, 10] {
        std::fs::write(&p, &bytes[..cut]).unwrap();
        assert_refused(&p, &format!("truncated to {cut} bytes"));
    }
}

#[test]
fn a_bit_flip_inside_a_record_is_refused() {
    let d = dir("bitflip");
    let p = d.join("state.redb");
    write_sample(&p);
    let mut bytes = std::fs::read(&p).unwrap();
    let at = bytes
        .windows(MARK.len())
        .position(|w| w == MARK)
        .expect("the value is stored in the file");
    bytes[at + 5] ^= 0x04;
    std::fs::write(&p, &bytes).unwrap();
    assert_refused(&p, "bit flip");
}

#[test]
fn garbage_is_refused() {
    let d = dir("garbage");
    let p = d.join("state.redb");
    std::fs::write(&p, vec![0xa5; 8192]).unwrap();
    assert_refused(&p, "garbage");
}

#[test]
fn another_format_version_is_refused() {
    let d = dir("version");
    let p = d.join("state.redb");
    {
        let db = redb::Database::create(&p).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let meta: redb::TableDefinition<&str, u32> = redb::TableDefinition::new("meta");
            tx.open_table(meta)
                .unwrap()
                .insert("format", STATE_FORMAT_VERSION + 1)
                .unwrap();
        }
        tx.commit().unwrap();
    }
    assert_refused(&p, "newer version");
    let StateStoreError::Version { found, expected, .. } = StateStore::open(&p).unwrap_err() else {
        panic!("expected a version error")
    };
    assert_eq!(
        (found, expected),
        (STATE_FORMAT_VERSION + 1, STATE_FORMAT_VERSION)
    );
}
