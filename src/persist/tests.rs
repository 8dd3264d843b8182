use rand_core::{RngCore, SeedableRng};

use super::*;

fn rec(k: &str, v: u8) -> Record {
    Record::put(RecordKey::new(k), vec![v])
}

fn drain<O>(b: &mut Barrier<O>, mut snap: impl FnMut() -> Vec<Record>) -> (Vec<Batch>, Vec<O>) {
    let (mut batches, mut outs) = (Vec::new(), Vec::new());
    while let Some(p) = b.poll(&mut snap) {
        match p {
            Polled::Batch(x) => batches.push(x),
            Polled::Output(o) => outs.push(o),
        }
    }
    (batches, outs)
}

#[test]
fn output_waits_for_its_batch() {
    let mut b = Barrier::enabled();
    b.push(1);
    b.seal(true);
    let (batches, outs) = drain(&mut b, || vec![rec("a", 1)]);
    assert_eq!(batches.len(), 1);
    assert!(outs.is_empty());
    assert!(b.is_pending());
    b.confirm(batches[0].seq).unwrap();
    let (batches, outs) = drain(&mut b, Vec::new);
    assert!(batches.is_empty());
    assert_eq!(outs, vec![1]);
    assert!(!b.is_pending());
}

#[test]
fn many_calls_before_a_poll_make_one_batch() {
    let mut b = Barrier::enabled();
    for i in 0..10 {
        b.push(i);
        b.seal(true);
    }
    let mut snapshots = 0;
    let (batches, outs) = drain(&mut b, || {
        snapshots += 1;
        vec![rec("a", 1)]
    });
    assert_eq!((batches.len(), snapshots), (1, 1));
    assert!(outs.is_empty());
    b.confirm(batches[0].seq).unwrap();
    assert_eq!(drain(&mut b, Vec::new).1, (0..10).collect::<Vec<_>>());
}

#[test]
fn an_unchanged_call_waits_only_for_batches_in_flight() {
    let mut b = Barrier::enabled();
    b.push("x");
    b.seal(false);
    assert_eq!(b.poll(Vec::new), Some(Polled::Output("x")));

    b.push("reveals");
    b.seal(true);
    let Some(Polled::Batch(first)) = b.poll(|| vec![rec("a", 1)]) else {
        panic!("expected a batch")
    };
    // A later call that changes nothing still keeps its place behind the batch in flight.
    b.push("after");
    b.seal(false);
    assert_eq!(b.poll(Vec::new), None);
    b.confirm(first.seq).unwrap();
    assert_eq!(drain(&mut b, Vec::new).1, vec!["reveals", "after"]);
}

#[test]
fn changes_after_a_batch_go_into_the_next_one() {
    let mut b = Barrier::enabled();
    b.push(1);
    b.seal(true);
    let Some(Polled::Batch(first)) = b.poll(|| vec![rec("a", 1)]) else {
        panic!("expected a batch")
    };
    b.push(2);
    b.seal(true);
    let Some(Polled::Batch(second)) = b.poll(|| vec![rec("a", 2)]) else {
        panic!("expected a batch")
    };
    assert_eq!((first.seq, second.seq), (BatchSeq(1), BatchSeq(2)));
    b.confirm(first.seq).unwrap();
    assert_eq!(drain(&mut b, Vec::new).1, vec![1]);
    b.confirm(second.seq).unwrap();
    assert_eq!(drain(&mut b, Vec::new).1, vec![2]);
}

#[test]
fn an_unsealed_output_is_never_released() {
    let mut b: Barrier<u8> = Barrier::disabled();
    b.push(7);
    assert_eq!(b.poll(Vec::new), None);
    b.seal(true);
    assert_eq!(b.poll(Vec::new), Some(Polled::Output(7)));
}

#[test]
fn disabled_passes_through_without_batches() {
    let mut b = Barrier::disabled();
    for i in 0..5 {
        b.push(i);
        b.seal(true);
    }
    let (batches, outs) = drain(&mut b, || panic!("no snapshot when disabled"));
    assert!(batches.is_empty());
    assert_eq!(outs, (0..5).collect::<Vec<_>>());
    assert!(!b.is_pending());
}

#[test]
fn an_empty_snapshot_releases_at_once() {
    let mut b = Barrier::enabled();
    b.push(1);
    b.seal(true);
    let (batches, outs) = drain(&mut b, Vec::new);
    assert!(batches.is_empty());
    assert_eq!(outs, vec![1]);
}

#[test]
fn confirming_an_unknown_batch_is_misuse() {
    let mut b: Barrier<()> = Barrier::enabled();
    assert_eq!(
        b.confirm(BatchSeq(1)),
        Err(PersistError::UnknownBatch {
            confirmed: 1,
            emitted: 0
        })
    );
}

/// Random calls, polls and confirmations against a model: outputs come out in push order, and none
/// before the batch that was handed out after its call changed state has been confirmed.
#[test]
fn model_order_and_barrier_hold_over_random_schedules() {
    for seed in 0..300u64 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut b = Barrier::enabled();
        let mut next = 0u32;
        // For each output: the number of batches handed out when it was sealed, and whether its call
        // changed state.
        let mut sealed_at: Vec<(u64, bool)> = Vec::new();
        let mut pending_call: Vec<u32> = Vec::new();
        let mut emitted = 0u64;
        let mut confirmed = 0u64;
        let mut released: Vec<u32> = Vec::new();
        for _ in 0..200 {
            match rng.next_u32() % 4 {
                0 => {
                    b.push(next);
                    pending_call.push(next);
                    next += 1;
                }
                1 => {
                    let changed = rng.next_u32() % 2 == 0;
                    b.seal(changed);
                    for _ in pending_call.drain(..) {
                        sealed_at.push((emitted, changed));
                    }
                }
                2 => {
                    while let Some(p) = b.poll(|| vec![rec("k", 0)]) {
                        match p {
                            Polled::Batch(x) => {
                                emitted += 1;
                                assert_eq!(x.seq, BatchSeq(emitted));
                            }
                            Polled::Output(o) => released.push(o),
                        }
                    }
                }
                _ => {
                    if confirmed < emitted {
                        confirmed += 1 + u64::from(rng.next_u32()) % (emitted - confirmed);
                        b.confirm(BatchSeq(confirmed)).unwrap();
                    }
                }
            }
            for (i, &o) in released.iter().enumerate() {
                assert_eq!(o, i as u32, "seed {seed}: out of order");
                let (at, changed) = sealed_at[o as usize];
                // A changed call needs a batch handed out after it; any call needs those before it.
                let needs = if changed { at + 1 } else { at };
                assert!(
                    needs <= confirmed,
                    "seed {seed}: output {o} released before batch {needs}"
                );
            }
        }
    }
}

#[test]
fn memory_store_applies_puts_and_deletes() {
    let mut s = MemoryStore::new();
    s.apply(&Batch {
        seq: BatchSeq(1),
        records: vec![rec("a", 1), rec("b", 2)],
    });
    s.apply(&Batch {
        seq: BatchSeq(2),
        records: vec![Record::delete(RecordKey::new("a")), rec("b", 3)],
    });
    assert_eq!(s.get(&RecordKey::new("a")), None);
    assert_eq!(s.get(&RecordKey::new("b")), Some(&[3u8][..]));
    assert_eq!((s.len(), s.batches()), (1, 2));
}

#[test]
fn keys_are_capped_and_nest() {
    let long = "é".repeat(300);
    assert!(RecordKey::new(long).as_str().len() <= MAX_KEY_LEN);
    let k = RecordKey::new("messenger/chat/abc");
    assert!(k.is_under("messenger"));
    assert!(k.is_under("messenger/chat"));
    assert!(!k.is_under("messeng"));
    assert!(!format!("{:?}", Record::put(k, vec![9; 4])).contains('9'));
}
