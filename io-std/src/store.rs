//! Mailserver storage for the drivers: the [`Store`] trait the engine's storage actions map onto,
//! [`MemoryStore`] (in memory), `RedbStore` (on disk, the embedded default; feature `redb`), and
//! `PostgresStore` (a PostgreSQL table, see the `postgres` module; feature `postgres`).
//!
//! Why redb: it is a pure-Rust embedded key-value store (no C toolchain, no server, nothing to set up),
//! ACID with copy-on-write B-trees, actively maintained, and its ordered byte-key tables map one to one
//! onto the mailserver's time-ordered 40-byte keys, so a history query is a single range scan.
//! Writes use eventual durability (a crash may lose the last few envelopes, which peers still hold);
//! pruning commits durably.
//!
//! Size: every store counts the bytes of envelope data it holds ([`Store::data_bytes`]) and can evict
//! oldest first ([`Store::evict_to`]); [`CappedStore`] wraps any store to keep it under a byte cap.

use std::collections::BTreeMap;
use std::io;

use bytes::Bytes;
#[cfg(feature = "redb")]
use redb::{Database, Durability, ReadableTable, ReadableTableMetadata, TableDefinition};
use status_sansio::mailserver::server::KEY_LEN;

#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;

/// Where a mailserver keeps envelopes, keyed by the 40-byte time-ordered key.
pub trait Store: Send {
    /// Store `value` under `key` (overwriting is fine: the key includes the envelope hash).
    fn put(&mut self, key: [u8; KEY_LEN], value: Bytes) -> io::Result<()>;
    /// Store many entries at once (one transaction where the backend has them).
    fn put_batch(&mut self, entries: Vec<([u8; KEY_LEN], Bytes)>) -> io::Result<()> {
        entries.into_iter().try_for_each(|(k, v)| self.put(k, v))
    }
    /// Up to `limit` entries with `start ≤ key < end`, ascending.
    ///
    /// Contract: callers pass `start <= end` (the mailserver server only emits `start < end`); an
    /// implementation returns no entries for `start >= end` and never panics on it.
    fn range(
        &self,
        start: [u8; KEY_LEN],
        end: [u8; KEY_LEN],
        limit: usize,
    ) -> io::Result<Vec<([u8; KEY_LEN], Bytes)>>;
    /// Delete entries whose sent time (the first four key bytes) is before `before`.
    fn prune(&mut self, before: u32) -> io::Result<()>;
    /// Number of entries.
    fn len(&self) -> io::Result<usize>;
    /// True if there are no entries.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Bytes of envelope data held: the sum of the values' lengths (what the archive cap counts).
    fn data_bytes(&self) -> io::Result<u64>;
    /// Delete entries oldest first (lowest keys) until [`Store::data_bytes`] is at most `max`.
    fn evict_to(&mut self, max: u64) -> io::Result<()>;
}

impl<S: Store + ?Sized> Store for Box<S> {
    fn put(&mut self, key: [u8; KEY_LEN], value: Bytes) -> io::Result<()> {
        (**self).put(key, value)
    }
    fn put_batch(&mut self, entries: Vec<([u8; KEY_LEN], Bytes)>) -> io::Result<()> {
        (**self).put_batch(entries)
    }
    fn range(
        &self,
        start: [u8; KEY_LEN],
        end: [u8; KEY_LEN],
        limit: usize,
    ) -> io::Result<Vec<([u8; KEY_LEN], Bytes)>> {
        (**self).range(start, end, limit)
    }
    fn prune(&mut self, before: u32) -> io::Result<()> {
        (**self).prune(before)
    }
    fn len(&self) -> io::Result<usize> {
        (**self).len()
    }
    fn data_bytes(&self) -> io::Result<u64> {
        (**self).data_bytes()
    }
    fn evict_to(&mut self, max: u64) -> io::Result<()> {
        (**self).evict_to(max)
    }
}

/// A store kept under a cap on [`Store::data_bytes`], evicting oldest first: when a write takes it past
/// the cap, the oldest envelopes go until it is at 90% of it (so eviction runs once per tenth of the
/// cap, not on every write). Between evictions it counts written bytes itself (an overwrite counts
/// twice, so it errs towards evicting early) and re-reads the true figure after each eviction and prune.
#[derive(Debug)]
pub struct CappedStore<S: Store> {
    inner: S,
    max_bytes: u64,
    bytes: u64,
}

impl<S: Store> CappedStore<S> {
    /// Wrap `inner` with a cap of `max_bytes`, evicting at once if it holds more.
    pub fn new(mut inner: S, max_bytes: u64) -> io::Result<Self> {
        if inner.data_bytes()? > max_bytes {
            inner.evict_to(max_bytes / 10 * 9)?;
        }
        let bytes = inner.data_bytes()?;
        Ok(CappedStore {
            inner,
            max_bytes,
            bytes,
        })
    }

    /// The cap.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The wrapped store.
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn enforce(&mut self) -> io::Result<()> {
        if self.bytes > self.max_bytes {
            self.inner.evict_to(self.max_bytes / 10 * 9)?;
            self.bytes = self.inner.data_bytes()?;
        }
        Ok(())
    }
}

impl<S: Store> Store for CappedStore<S> {
    fn put(&mut self, key: [u8; KEY_LEN], value: Bytes) -> io::Result<()> {
        self.bytes = self.bytes.saturating_add(value.len() as u64);
        self.inner.put(key, value)?;
        self.enforce()
    }
    fn put_batch(&mut self, entries: Vec<([u8; KEY_LEN], Bytes)>) -> io::Result<()> {
        let added: u64 = entries.iter().map(|(_, v)| v.len() as u64).sum();
        self.bytes = self.bytes.saturating_add(added);
        self.inner.put_batch(entries)?;
        self.enforce()
    }
    fn range(
        &self,
        start: [u8; KEY_LEN],
        end: [u8; KEY_LEN],
        limit: usize,
    ) -> io::Result<Vec<([u8; KEY_LEN], Bytes)>> {
        self.inner.range(start, end, limit)
    }
    fn prune(&mut self, before: u32) -> io::Result<()> {
        self.inner.prune(before)?;
        self.bytes = self.inner.data_bytes()?;
        Ok(())
    }
    fn len(&self) -> io::Result<usize> {
        self.inner.len()
    }
    fn data_bytes(&self) -> io::Result<u64> {
        self.inner.data_bytes()
    }
    fn evict_to(&mut self, max: u64) -> io::Result<()> {
        self.inner.evict_to(max)?;
        self.bytes = self.inner.data_bytes()?;
        Ok(())
    }
}

fn cut(before: u32) -> [u8; KEY_LEN] {
    let mut c = [0u8; KEY_LEN];
    c[..4].copy_from_slice(&before.to_be_bytes());
    c
}

/// An in-memory store.
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: BTreeMap<[u8; KEY_LEN], Bytes>,
    bytes: u64,
}

impl Store for MemoryStore {
    fn put(&mut self, key: [u8; KEY_LEN], value: Bytes) -> io::Result<()> {
        self.bytes += value.len() as u64;
        if let Some(old) = self.entries.insert(key, value) {
            self.bytes -= old.len() as u64;
        }
        Ok(())
    }

    fn range(
        &self,
        start: [u8; KEY_LEN],
        end: [u8; KEY_LEN],
        limit: usize,
    ) -> io::Result<Vec<([u8; KEY_LEN], Bytes)>> {
        if start >= end {
            return Ok(vec![]);
        }
        Ok(self
            .entries
            .range(start..end)
            .take(limit)
            .map(|(k, v)| (*k, v.clone()))
            .collect())
    }

    fn prune(&mut self, before: u32) -> io::Result<()> {
        let kept = self.entries.split_off(&cut(before));
        let gone: u64 = self.entries.values().map(|v| v.len() as u64).sum();
        self.entries = kept;
        self.bytes -= gone;
        Ok(())
    }

    fn len(&self) -> io::Result<usize> {
        Ok(self.entries.len())
    }

    fn data_bytes(&self) -> io::Result<u64> {
        Ok(self.bytes)
    }

    fn evict_to(&mut self, max: u64) -> io::Result<()> {
        while self.bytes > max {
            let Some((_, v)) = self.entries.pop_first() else {
                break;
            };
            self.bytes -= v.len() as u64;
        }
        Ok(())
    }
}

#[cfg(feature = "redb")]
const ENVELOPES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("envelopes");

#[cfg(feature = "redb")]
fn db_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// An error opening a redb file; a short or corrupted file is `InvalidData` and says so.
#[cfg(feature = "redb")]
fn open_err(e: redb::DatabaseError) -> io::Error {
    let damaged = match &e {
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) => io.kind() == io::ErrorKind::UnexpectedEof,
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(_)) => true,
        _ => false,
    };
    if damaged {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("damaged or truncated redb file ({e}); refusing to use it"),
        )
    } else {
        db_err(e)
    }
}

/// An on-disk store in a single redb file (feature `redb`).
#[cfg(feature = "redb")]
pub struct RedbStore {
    db: Database,
}

#[cfg(feature = "redb")]
impl RedbStore {
    /// Open (or create) the store at `path`. A truncated or damaged file is an error (kind
    /// `InvalidData`), and the file is left as it is.
    pub fn open(path: &std::path::Path) -> io::Result<Self> {
        // Last resort: redb 2 asserts (panics) on a file shorter than its header says, instead of
        // returning an error; turn that panic into the error it should have been. redb's own panic
        // message still reaches the panic hook (stderr) first.
        let db = match std::panic::catch_unwind(|| Database::create(path)) {
            Ok(r) => r.map_err(open_err)?,
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "damaged or truncated redb file (redb could not open it); refusing to use it",
                ))
            }
        };
        let tx = db.begin_write().map_err(db_err)?;
        tx.open_table(ENVELOPES).map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        Ok(RedbStore { db })
    }

    /// Compact the file (return free pages to the file system, e.g. after a large prune). Blocks while
    /// it runs; the file only shrinks if no read is in progress.
    pub fn compact(&mut self) -> io::Result<()> {
        while self.db.compact().map_err(db_err)? {}
        Ok(())
    }
}

#[cfg(feature = "redb")]
impl Store for RedbStore {
    fn put(&mut self, key: [u8; KEY_LEN], value: Bytes) -> io::Result<()> {
        let mut tx = self.db.begin_write().map_err(db_err)?;
        tx.set_durability(Durability::Eventual);
        {
            let mut t = tx.open_table(ENVELOPES).map_err(db_err)?;
            t.insert(&key[..], &value[..]).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }

    fn put_batch(&mut self, entries: Vec<([u8; KEY_LEN], Bytes)>) -> io::Result<()> {
        let mut tx = self.db.begin_write().map_err(db_err)?;
        tx.set_durability(Durability::Eventual);
        {
            let mut t = tx.open_table(ENVELOPES).map_err(db_err)?;
            for (key, value) in &entries {
                t.insert(&key[..], &value[..]).map_err(db_err)?;
            }
        }
        tx.commit().map_err(db_err)
    }

    fn range(
        &self,
        start: [u8; KEY_LEN],
        end: [u8; KEY_LEN],
        limit: usize,
    ) -> io::Result<Vec<([u8; KEY_LEN], Bytes)>> {
        if start >= end {
            return Ok(vec![]);
        }
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(ENVELOPES).map_err(db_err)?;
        let mut out = Vec::new();
        for r in t.range(&start[..]..&end[..]).map_err(db_err)?.take(limit) {
            let (k, v) = r.map_err(db_err)?;
            let Ok(key) = <[u8; KEY_LEN]>::try_from(k.value()) else {
                continue;
            };
            out.push((key, Bytes::copy_from_slice(v.value())));
        }
        Ok(out)
    }

    fn prune(&mut self, before: u32) -> io::Result<()> {
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = tx.open_table(ENVELOPES).map_err(db_err)?;
            let c = cut(before);
            let old: Vec<Vec<u8>> = t
                .range(..&c[..])
                .map_err(db_err)?
                .map(|r| r.map(|(k, _)| k.value().to_vec()))
                .collect::<Result<_, _>>()
                .map_err(db_err)?;
            for k in old {
                t.remove(&k[..]).map_err(db_err)?;
            }
        }
        tx.commit().map_err(db_err)
    }

    fn len(&self) -> io::Result<usize> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(ENVELOPES).map_err(db_err)?;
        t.len().map(|n| n as usize).map_err(db_err)
    }

    fn data_bytes(&self) -> io::Result<u64> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(ENVELOPES).map_err(db_err)?;
        let mut total = 0u64;
        for r in t.iter().map_err(db_err)? {
            let (_, v) = r.map_err(db_err)?;
            total += v.value().len() as u64;
        }
        Ok(total)
    }

    fn evict_to(&mut self, max: u64) -> io::Result<()> {
        let mut total = self.data_bytes()?;
        if total <= max {
            return Ok(());
        }
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = tx.open_table(ENVELOPES).map_err(db_err)?;
            let mut old: Vec<Vec<u8>> = Vec::new();
            for r in t.iter().map_err(db_err)? {
                if total <= max {
                    break;
                }
                let (k, v) = r.map_err(db_err)?;
                total -= v.value().len() as u64;
                old.push(k.value().to_vec());
            }
            for k in old {
                t.remove(&k[..]).map_err(db_err)?;
            }
        }
        tx.commit().map_err(db_err)
    }
}
