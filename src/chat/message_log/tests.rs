use super::*;

fn id(n: u8) -> MessageId {
    MessageId([n; 32])
}

#[test]
fn dedup_order_and_last() {
    let mut log = ChatLog::new(10);
    assert_eq!(log.insert(id(3), 30, "c"), Insert::Added);
    assert_eq!(log.insert(id(1), 10, "a"), Insert::Added);
    assert_eq!(log.insert(id(2), 30, "b"), Insert::Added);
    assert_eq!(log.insert(id(1), 99, "again"), Insert::Duplicate);
    let order: Vec<_> = log.iter().map(|(_, _, m)| *m).collect();
    assert_eq!(order, ["a", "b", "c"]);
    // Tie on clock 30: the one processed last is the last message.
    assert_eq!(log.last_message().map(|(i, _)| i), Some(id(2)));
    assert_eq!(log.get(&id(3)), Some(&"c"));
    assert_eq!(log.clock().last(), 30);
    assert_eq!(log.tick(Timestamp::from_millis(20)), (31, 20));
}

#[test]
fn cap_evicts_oldest_and_refuses_below_window() {
    let mut log = ChatLog::new(2);
    log.insert(id(1), 1, ());
    log.insert(id(2), 2, ());
    assert_eq!(log.insert(id(3), 3, ()), Insert::Added);
    assert_eq!(log.len(), 2);
    assert!(!log.contains(&id(1)));
    // The evicted message replayed: below the window, never shown again.
    assert_eq!(log.insert(id(1), 1, ()), Insert::BelowWindow);
    assert_eq!(log.insert(id(0), 2, ()), Insert::BelowWindow);
    assert_eq!(log.insert(id(9), 2, ()), Insert::Added);
    assert_eq!(log.iter().map(|(i, _, _)| i).collect::<Vec<_>>(), [id(9), id(3)]);
    assert_eq!(ChatLog::<()>::new(0).max_messages(), 1);
}
