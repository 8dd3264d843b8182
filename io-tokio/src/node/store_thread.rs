//! The mailserver store's own OS thread: puts (batched), range queries and prunes in the order the engine
//! asked for them, query results sent back to the node task.

use bytes::Bytes;
use status_io_std::store::Store;
use status_sansio::mailserver::server::{QueryId, KEY_LEN};
use tokio::sync::mpsc;

use super::StoreCommitHook;

/// Storage operations waiting for the store thread; when full, the node task waits (backpressure).
const STORE_QUEUE: usize = 1024;

/// Most puts the store thread writes in one batch.
const PUT_BATCH: usize = 512;

pub(super) type Entries = Vec<([u8; KEY_LEN], Bytes)>;

/// One storage operation for the thread.
pub(super) enum StoreOp {
    Put([u8; KEY_LEN], Bytes),
    Range {
        query: QueryId,
        start: [u8; KEY_LEN],
        end: [u8; KEY_LEN],
        limit: usize,
    },
    Prune(u32),
}

/// The node task's end of the store thread.
pub(super) struct StoreLink {
    pub(super) ops: mpsc::Sender<StoreOp>,
    pub(super) results: mpsc::UnboundedReceiver<(QueryId, Entries)>,
}

/// Start the thread for `store`; `None` as the handle if the thread could not start (then writes fail and
/// queries come back empty, logged).
pub(super) fn start(
    store: Box<dyn Store>,
    on_commit: Option<StoreCommitHook>,
) -> (StoreLink, Option<std::thread::JoinHandle<()>>) {
    let (op_tx, op_rx) = mpsc::channel(STORE_QUEUE);
    // At most one query per request being served is in flight, so the mailserver's `max_active`
    // bounds this channel.
    let (res_tx, res_rx) = mpsc::unbounded_channel();
    let worker = std::thread::Builder::new()
        .name("status-store".into())
        .spawn(move || run(store, op_rx, res_tx, on_commit));
    let worker = match worker {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::error!("cannot start the store thread: {e}");
            None
        }
    };
    let link = StoreLink {
        ops: op_tx,
        results: res_rx,
    };
    (link, worker)
}

fn run(
    mut store: Box<dyn Store>,
    mut ops: mpsc::Receiver<StoreOp>,
    results: mpsc::UnboundedSender<(QueryId, Entries)>,
    on_commit: Option<StoreCommitHook>,
) {
    let mut next = ops.blocking_recv();
    while let Some(op) = next.take() {
        match op {
            StoreOp::Put(key, value) => {
                let mut batch = vec![(key, value)];
                while batch.len() < PUT_BATCH {
                    match ops.try_recv() {
                        Ok(StoreOp::Put(k, v)) => batch.push((k, v)),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let (n, started) = (batch.len(), std::time::Instant::now());
                match store.put_batch(batch) {
                    Ok(()) => {
                        if let Some(hook) = &on_commit {
                            hook(started.elapsed(), n);
                        }
                    }
                    Err(e) => tracing::warn!(envelopes = n, "mailserver store: {e}"),
                }
            }
            StoreOp::Range {
                query,
                start,
                end,
                limit,
            } => {
                // A failed read answers with nothing (the request completes without envelopes).
                let entries = store.range(start, end, limit).unwrap_or_else(|e| {
                    tracing::warn!("mailserver query: {e}");
                    vec![]
                });
                if results.send((query, entries)).is_err() {
                    return;
                }
            }
            StoreOp::Prune(before) => {
                if let Err(e) = store.prune(before) {
                    tracing::warn!("mailserver prune: {e}");
                }
            }
        }
        if next.is_none() {
            next = ops.blocking_recv();
        }
    }
}
