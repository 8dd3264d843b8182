use super::*;

#[test]
fn send_and_receive_rules() {
    let mut c = LamportClock::new();
    assert_eq!(c.tick(Timestamp::from_millis(1000)), (1000, 1000));
    // Same millisecond: last + 1.
    assert_eq!(c.tick(Timestamp::from_millis(1000)), (1001, 1000));
    // A received clock ahead of the wall clock pulls the next send after it.
    c.observe(5000);
    c.observe(10);
    assert_eq!(c.last(), 5000);
    assert_eq!(c.tick(Timestamp::from_millis(2000)), (5001, 2000));
    // Wall clock ahead again: the wall clock wins.
    assert_eq!(c.tick(Timestamp::from_millis(9000)), (9000, 9000));
    let mut top = LamportClock::from_last(u64::MAX);
    assert_eq!(top.tick(Timestamp::from_millis(1)).0, u64::MAX);
}
