//! Durable state as outputs: records, batches and the release barrier (docs/architecture.md
//! "Persistence").
//!
//! A machine with state that must survive a crash does not write files. It describes each change as a
//! [`Record`] (a value under a [`RecordKey`], or the key's removal), hands the driver a [`Batch`] of them,
//! and **holds back every output that reveals the change** — a ciphertext made with a new message key, an
//! acknowledgement, a delivered event — until the driver reports the batch durable. The core decides what
//! must be durable and when; the driver decides how (one transaction, fsynced, per batch).
//!
//! [`Barrier`] is that rule as a reusable part:
//!
//! * a machine pushes its outputs with [`Barrier::push`] as it makes them, and ends each call that can
//!   change durable state with [`Barrier::seal`], saying whether it did. Outputs of a call that changed
//!   state wait for the batch that will carry the change; outputs of a call that did not wait only for
//!   batches already on their way (so the order of outputs never changes);
//! * [`Barrier::poll`] gives, in order: outputs whose batch is durable, then (if state changed) one new
//!   [`Batch`] built by the machine's snapshot function at that moment, which covers every change made so
//!   far — so however many inputs the driver feeds before it polls, they cost **one** durable write
//!   (group commit);
//! * [`Barrier::confirm`] is the driver's "batch `seq` is durable", after which the outputs behind it
//!   come out.
//!
//! A crash at any instant therefore loses only changes that nothing outside the process has seen: a
//! restarted machine can never re-use a message key whose ciphertext left, never acknowledge a message it
//! no longer has, and never show a message twice because it forgot it had shown it.
//!
//! With the barrier disabled ([`Barrier::disabled`]) outputs pass straight through and no batch is made:
//! the machine is exactly as before, for tests, simulations that do not crash, and embedders that persist
//! snapshots themselves.
//!
//! [`MemoryStore`] applies batches to an in-memory map: the simulator's and the tests' store, and the
//! reference for what a driver's store must do (apply a whole batch or none of it).
//!
//! ```
//! use status_sansio::persist::{Barrier, Polled, Record, RecordKey};
//!
//! let mut barrier = Barrier::enabled();
//! let mut counter = 0u64;
//!
//! // A call changes state and makes an output that reveals it.
//! counter += 1;
//! barrier.push("ciphertext made with key 1");
//! barrier.seal(true);
//!
//! // The driver polls: first the batch, never the output.
//! let batch = match barrier.poll(|| vec![Record::put(RecordKey::new("counter"), counter.to_be_bytes().to_vec())]) {
//!     Some(Polled::Batch(b)) => b,
//!     _ => unreachable!(),
//! };
//! assert!(barrier.poll(Vec::new).is_none()); // held until durable
//!
//! // The driver commits the batch, then confirms it.
//! barrier.confirm(batch.seq).unwrap();
//! assert_eq!(barrier.poll(Vec::new), Some(Polled::Output("ciphertext made with key 1")));
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use zeroize::Zeroizing;

/// The name of one durable value, namespaced by the machine that owns it (`"messenger/secure"`,
/// `"messenger/chat/…"`). Keys are at most [`MAX_KEY_LEN`] bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordKey(String);

/// Longest record key, in bytes.
pub const MAX_KEY_LEN: usize = 256;

impl RecordKey {
    /// A key. Keys longer than [`MAX_KEY_LEN`] bytes are cut at a character boundary (the core only makes
    /// short keys; the cap keeps a store's key column bounded).
    pub fn new(key: impl Into<String>) -> Self {
        let mut s: String = key.into();
        if s.len() > MAX_KEY_LEN {
            let mut end = MAX_KEY_LEN;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
        }
        RecordKey(s)
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True if this key is `prefix` itself or lies under `prefix/`.
    pub fn is_under(&self, prefix: &str) -> bool {
        self.0 == prefix
            || (self.0.len() > prefix.len()
                && self.0.starts_with(prefix)
                && self.0.as_bytes()[prefix.len()] == b'/')
    }
}

impl fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordKey({:?})", self.0)
    }
}

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One durable change: `value` stored under `key`, or `key` removed (`value: None`). Values may hold
/// secrets (ratchet keys), so they are zeroized on drop and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Record {
    /// Which value.
    pub key: RecordKey,
    /// The new value, or `None` to remove the key.
    pub value: Option<Zeroizing<Vec<u8>>>,
}

impl Record {
    /// Store `value` under `key`.
    pub fn put(key: RecordKey, value: Vec<u8>) -> Self {
        Record {
            key,
            value: Some(Zeroizing::new(value)),
        }
    }

    /// Remove `key`.
    pub fn delete(key: RecordKey) -> Self {
        Record { key, value: None }
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "Record::put({}, {} bytes)", self.key, v.len()),
            None => write!(f, "Record::delete({})", self.key),
        }
    }
}

/// The sequence number of a [`Batch`]: 1, 2, 3, … per machine instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BatchSeq(pub u64);

/// Records to make durable together, atomically: a store applies all of them or none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Confirm this with the machine's `Persisted` input once the batch is durable.
    pub seq: BatchSeq,
    /// The changes, applied in order.
    pub records: Vec<Record>,
}

/// What [`Barrier::poll`] gives.
#[derive(Debug, PartialEq, Eq)]
pub enum Polled<O> {
    /// Make these records durable, then [`Barrier::confirm`] the batch.
    Batch(Batch),
    /// An output whose state is durable (or needs none): release it.
    Output(O),
}

/// Misuse of the persistence contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PersistError {
    /// A confirmation for a batch that was never handed out.
    #[error("batch {confirmed} confirmed, but only {emitted} were handed out")]
    UnknownBatch {
        /// The sequence number confirmed.
        confirmed: u64,
        /// The highest one handed out.
        emitted: u64,
    },
    /// A stored record could not be read back (names the key).
    #[error("stored record {key} is damaged: {reason}")]
    Damaged {
        /// The record.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Holds outputs back until the state they reveal is durable. See the [module docs](self).
#[derive(Debug)]
pub struct Barrier<O> {
    enabled: bool,
    /// Highest batch handed out.
    emitted: u64,
    /// Highest batch confirmed durable.
    confirmed: u64,
    /// State changed since the last batch was handed out.
    dirty: bool,
    /// Outputs in order, each with the batch it waits for (`None`: pushed in a call not yet sealed).
    held: VecDeque<(Option<u64>, O)>,
}

impl<O> Barrier<O> {
    /// A barrier that holds outputs until their batch is confirmed.
    pub fn enabled() -> Self {
        Barrier {
            enabled: true,
            emitted: 0,
            confirmed: 0,
            dirty: false,
            held: VecDeque::new(),
        }
    }

    /// A pass-through: no batches, outputs released as soon as their call is sealed.
    pub fn disabled() -> Self {
        Barrier {
            enabled: false,
            ..Self::enabled()
        }
    }

    /// True unless made with [`Barrier::disabled`].
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Queue an output made by the current call.
    pub fn push(&mut self, output: O) {
        self.held.push_back((None, output));
    }

    /// End the current call: `changed` says whether it changed durable state. Its outputs then wait for
    /// the batch that will carry the change (or, if nothing changed, for the batches already handed out).
    pub fn seal(&mut self, changed: bool) {
        if changed && self.enabled {
            self.dirty = true;
        }
        let tag = if !self.enabled {
            0
        } else if self.dirty {
            self.emitted + 1
        } else {
            self.emitted
        };
        for (t, _) in self.held.iter_mut().rev() {
            if t.is_some() {
                break;
            }
            *t = Some(tag);
        }
    }

    /// The next thing to do: release an output whose state is durable, else hand out a batch of the
    /// changes so far (built by `snapshot`, called only then), else nothing. A batch that `snapshot`
    /// leaves empty is not handed out; the outputs waiting for it are released at once.
    pub fn poll(&mut self, snapshot: impl FnOnce() -> Vec<Record>) -> Option<Polled<O>> {
        if let Some((Some(tag), _)) = self.held.front() {
            if *tag <= self.confirmed {
                return self.held.pop_front().map(|(_, o)| Polled::Output(o));
            }
        }
        if self.dirty {
            self.dirty = false;
            self.emitted += 1;
            let records = snapshot();
            if records.is_empty() && self.confirmed + 1 == self.emitted {
                // Nothing to write and nothing in flight before it: durable by definition.
                self.confirmed = self.emitted;
                return self.poll(Vec::new);
            }
            return Some(Polled::Batch(Batch {
                seq: BatchSeq(self.emitted),
                records,
            }));
        }
        None
    }

    /// The driver made batch `seq` (and every batch before it) durable.
    pub fn confirm(&mut self, seq: BatchSeq) -> Result<(), PersistError> {
        if seq.0 > self.emitted {
            return Err(PersistError::UnknownBatch {
                confirmed: seq.0,
                emitted: self.emitted,
            });
        }
        self.confirmed = self.confirmed.max(seq.0);
        Ok(())
    }

    /// True while a batch is handed out and not confirmed, or changes wait for a batch.
    pub fn is_pending(&self) -> bool {
        self.dirty || self.confirmed < self.emitted
    }

    /// The outputs held (sealed or not), oldest first: what a machine puts in its outbox record, so
    /// that what a batch made durable but a crash kept from coming out is not lost.
    pub fn held_outputs(&self) -> impl Iterator<Item = &O> {
        self.held.iter().map(|(_, o)| o)
    }

    /// True if the next [`Barrier::poll`] that releases nothing hands out a batch.
    pub fn batch_due(&self) -> bool {
        self.dirty
    }

    /// Outputs held (sealed or not).
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Highest batch confirmed durable.
    pub fn confirmed(&self) -> BatchSeq {
        BatchSeq(self.confirmed)
    }
}

/// Records in memory, applied a whole batch at a time: the simulator's store, and the model a driver's
/// store follows.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MemoryStore {
    records: BTreeMap<RecordKey, Zeroizing<Vec<u8>>>,
    batches: u64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Apply every record of `batch`, in order.
    pub fn apply(&mut self, batch: &Batch) {
        for r in &batch.records {
            match &r.value {
                Some(v) => {
                    self.records.insert(r.key.clone(), v.clone());
                }
                None => {
                    self.records.remove(&r.key);
                }
            }
        }
        self.batches += 1;
    }

    /// Store `value` under `key` directly (a driver loading what it committed before).
    pub fn insert(&mut self, key: RecordKey, value: Vec<u8>) {
        self.records.insert(key, Zeroizing::new(value));
    }

    /// The stored value of `key`.
    pub fn get(&self, key: &RecordKey) -> Option<&[u8]> {
        self.records.get(key).map(|v| v.as_slice())
    }

    /// Every record, in key order (what a machine restores from).
    pub fn iter(&self) -> impl Iterator<Item = (&RecordKey, &[u8])> {
        self.records.iter().map(|(k, v)| (k, v.as_slice()))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True if no key is stored.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Batches applied so far.
    pub fn batches(&self) -> u64 {
        self.batches
    }

    /// Total bytes of keys and values.
    pub fn bytes(&self) -> usize {
        self.records.iter().map(|(k, v)| k.0.len() + v.len()).sum()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("keys", &self.records.len())
            .field("bytes", &self.bytes())
            .field("batches", &self.batches)
            .finish()
    }
}

#[cfg(feature = "fuzzing")]
pub mod observe;

#[cfg(test)]
mod tests;
