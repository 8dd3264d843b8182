use super::*;
use crate::rng::Seed;

#[test]
fn schedules_follow_the_reference_formulas() {
    let mut rng = Seed::from_u64(1).rng();
    let lin: Vec<u64> = (1..=4).map(|c| Schedule::STATUS_2020.gap(c, &mut rng)).collect();
    assert_eq!(lin, [2, 4, 6, 8]);
    for c in 1..=5u32 {
        let g = Schedule::STATUS_HEAD.gap(c, &mut rng);
        let base = 90u64 << (c - 1);
        assert!((base..base + 30).contains(&g), "count {c}: gap {g}");
    }
    let capped = Schedule::Exponential {
        initial: 2,
        max: 10,
        jitter: 0,
    };
    let gaps: Vec<u64> = (1..=6).map(|c| capped.gap(c, &mut rng)).collect();
    assert_eq!(gaps, [2, 4, 8, 10, 10, 10]);
    assert_eq!(capped.gap(u32::MAX, &mut rng), 10);
}

#[test]
fn states_index_stays_consistent() {
    let mut st = States::default();
    let p = PeerId::new(vec![1u8]);
    let s = SyncState {
        kind: RecordKind::Message,
        group: None,
        send_count: 0,
        send_epoch: 5,
        notify: true,
        local: true,
    };
    assert!(st.insert(p.clone(), MessageId([1; 32]), s));
    let moved = SyncState {
        send_epoch: 9,
        local: false,
        ..s
    };
    assert!(!st.insert(p.clone(), MessageId([1; 32]), moved));
    assert_eq!(st.len(), 1);
    assert_eq!((st.counts(), st.peer_counts(&p)), ((0, 1), (0, 1)));
    assert_eq!(st.earliest_due(), Some(9));
    assert_eq!(st.due_peers(8).count(), 0);
    assert_eq!(st.due_peers(9).count(), 1);
    let q = PeerId::new(vec![2u8]);
    st.insert(q.clone(), MessageId([1; 32]), SyncState { send_epoch: 3, ..s });
    assert_eq!(st.due_peers(9).collect::<Vec<_>>(), [&q, &p]);
    assert_eq!(st.first_due(&q), Some((3, MessageId([1; 32]))));
    assert_eq!(
        st.remove(&p, &MessageId([1; 32])).map(|(_, last)| last),
        Some(false)
    );
    assert_eq!(
        st.remove(&q, &MessageId([1; 32])).map(|(_, last)| last),
        Some(true)
    );
    assert_eq!((st.len(), st.peer_counts(&p)), (0, (0, 0)));
    assert_eq!(st.earliest_due(), None);
    assert!(!st.refers_to(&MessageId([1; 32])));
}
