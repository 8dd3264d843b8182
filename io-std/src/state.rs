//! A node's durable state in one redb file (feature `redb`): the driver's half of the persistence
//! contract ([`status_sansio::persist`]).
//!
//! The core hands out [`Batch`]es of [`Record`](status_sansio::persist::Record)s and holds back what they reveal; [`StateStore::commit`]
//! writes one batch as one redb write transaction with immediate durability (fsync before it returns), so
//! a batch is on disk whole or not at all, and the caller then confirms it to the core. At start-up
//! [`StateStore::load`] reads every record back for the core to restore from.
//!
//! Why redb: a pure-Rust embedded transactional store (no C toolchain, no server), already the mailserver's
//! archive, with atomic, fsynced commits — what group commit needs.
//!
//! The file carries a format version (table `meta`) and each value a checksum (the first 8 bytes of
//! SHA-256 over key and value), so damage is found at load instead of half-restoring a node. Every
//! failure names the file: a missing version, a newer version, a checksum mismatch, an empty or
//! truncated file, or a file redb cannot read (redb panics on some damaged files; the open is guarded so
//! that becomes an error too). A damaged file is never written to.

use std::fmt;
use std::path::{Path, PathBuf};

use redb::{Database, Durability, ReadableTable, TableDefinition};
use sha2::{Digest, Sha256};
use status_sansio::persist::{Batch, MemoryStore, RecordKey};

/// The state file's format version.
pub const STATE_FORMAT_VERSION: u32 = 1;

const META: TableDefinition<&str, u32> = TableDefinition::new("meta");
const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");
const CHECKSUM_LEN: usize = 8;

/// Why the state store could not be used. Every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateStoreError {
    /// The file exists but is damaged (empty, truncated, unreadable, or a record fails its checksum).
    #[error("state store {path} is damaged ({reason}); it was left untouched")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file was written by another format version.
    #[error("state store {path} has format version {found}, this build reads version {expected}; it was left untouched")]
    Version {
        /// The file.
        path: PathBuf,
        /// The version in the file (0 if none).
        found: u32,
        /// The version this build reads and writes.
        expected: u32,
    },
    /// Reading or writing failed (disk full, permissions, …).
    #[error("state store {path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// One redb file holding every record of a node. See the [module docs](self).
pub struct StateStore {
    db: Database,
    path: PathBuf,
    commits: u64,
}

impl fmt::Debug for StateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateStore")
            .field("path", &self.path)
            .field("commits", &self.commits)
            .finish()
    }
}

fn checksum(key: &str, value: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut h = Sha256::new();
    h.update((key.len() as u32).to_be_bytes());
    h.update(key.as_bytes());
    h.update(value);
    let d = h.finalize();
    let mut out = [0u8; CHECKSUM_LEN];
    out.copy_from_slice(&d[..CHECKSUM_LEN]);
    out
}

impl StateStore {
    /// Open the state file at `path`, creating it if it does not exist. An existing file is checked
    /// (version, readability) and refused with an error naming it if anything is wrong.
    pub fn open(path: &Path) -> Result<Self, StateStoreError> {
        let path = path.to_path_buf();
        let damaged = |reason: String| StateStoreError::Damaged {
            path: path.clone(),
            reason,
        };
        let io = |reason: String| StateStoreError::Io {
            path: path.clone(),
            reason,
        };
        match std::fs::metadata(&path) {
            Ok(m) if m.len() == 0 => Err(damaged("the file is empty".into())),
            Ok(_) => {
                let db = guarded(|| Database::open(&path))
                    .map_err(damaged)?
                    .map_err(|e| damaged(e.to_string()))?;
                let version = guarded(|| -> Result<u32, String> {
                    let tx = db.begin_read().map_err(|e| e.to_string())?;
                    let t = match tx.open_table(META) {
                        Ok(t) => t,
                        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
                        Err(e) => return Err(e.to_string()),
                    };
                    Ok(t.get("format")
                        .map_err(|e| e.to_string())?
                        .map(|v| v.value())
                        .unwrap_or(0))
                })
                .map_err(damaged)?
                .map_err(damaged)?;
                if version != STATE_FORMAT_VERSION {
                    return Err(StateStoreError::Version {
                        path,
                        found: version,
                        expected: STATE_FORMAT_VERSION,
                    });
                }
                Ok(StateStore { db, path, commits: 0 })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let db = Database::create(&path).map_err(|e| io(e.to_string()))?;
                let mut tx = db.begin_write().map_err(|e| io(e.to_string()))?;
                tx.set_durability(Durability::Immediate);
                {
                    let mut meta = tx.open_table(META).map_err(|e| io(e.to_string()))?;
                    meta.insert("format", STATE_FORMAT_VERSION)
                        .map_err(|e| io(e.to_string()))?;
                    tx.open_table(RECORDS).map_err(|e| io(e.to_string()))?;
                }
                tx.commit().map_err(|e| io(e.to_string()))?;
                Ok(StateStore { db, path, commits: 0 })
            }
            Err(e) => Err(io(e.to_string())),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Batches committed through this handle.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// Make `batch` durable: one write transaction, fsynced before this returns. Then confirm the batch to
    /// the machine that made it.
    pub fn commit(&mut self, batch: &Batch) -> Result<(), StateStoreError> {
        self.commit_with(batch, Durability::Immediate)
    }

    /// [`StateStore::commit`] without the fsync (redb's eventual durability): for benchmarks that measure
    /// what the fsync costs, and for tests. A crash may lose such batches, so never confirm them to a
    /// machine that relies on the barrier.
    pub fn commit_unsynced(&mut self, batch: &Batch) -> Result<(), StateStoreError> {
        self.commit_with(batch, Durability::Eventual)
    }

    fn commit_with(&mut self, batch: &Batch, durability: Durability) -> Result<(), StateStoreError> {
        let io = |e: &dyn fmt::Display| StateStoreError::Io {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        let mut tx = self.db.begin_write().map_err(|e| io(&e))?;
        tx.set_durability(durability);
        {
            let mut t = tx.open_table(RECORDS).map_err(|e| io(&e))?;
            let mut buf = Vec::new();
            for r in &batch.records {
                let key = r.key.as_str();
                match &r.value {
                    Some(v) => {
                        buf.clear();
                        buf.extend_from_slice(&checksum(key, v));
                        buf.extend_from_slice(v);
                        t.insert(key, buf.as_slice()).map_err(|e| io(&e))?;
                    }
                    None => {
                        t.remove(key).map_err(|e| io(&e))?;
                    }
                }
            }
            zeroize::Zeroize::zeroize(&mut buf);
        }
        tx.commit().map_err(|e| io(&e))?;
        self.commits += 1;
        Ok(())
    }

    /// Every record, checked against its checksum. A record that fails is an error naming the file and
    /// the key; nothing is half-loaded.
    pub fn load(&self) -> Result<MemoryStore, StateStoreError> {
        let damaged = |reason: String| StateStoreError::Damaged {
            path: self.path.clone(),
            reason,
        };
        guarded(|| -> Result<MemoryStore, String> {
            let tx = self.db.begin_read().map_err(|e| e.to_string())?;
            let t = tx.open_table(RECORDS).map_err(|e| e.to_string())?;
            let mut out = MemoryStore::new();
            for r in t.iter().map_err(|e| e.to_string())? {
                let (k, v) = r.map_err(|e| e.to_string())?;
                let (key, stored) = (k.value(), v.value());
                if stored.len() < CHECKSUM_LEN
                    || stored[..CHECKSUM_LEN] != checksum(key, &stored[CHECKSUM_LEN..])
                {
                    return Err(format!("record {key:?} fails its checksum"));
                }
                out.insert(RecordKey::new(key), stored[CHECKSUM_LEN..].to_vec());
            }
            Ok(out)
        })
        .map_err(damaged)?
        .map_err(damaged)
    }
}

/// Run `f`, turning a panic inside redb (it panics on some damaged files) into an error.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        format!("the storage engine could not read it: {what}")
    })
}
