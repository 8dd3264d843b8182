//! Unit tests.

use super::*;

#[test]
fn status_topic_and_go_quirk() {
    let t = Topic::from_str_hash("status");
    assert_eq!(t.to_string(), "cd423760");
    assert_eq!(t.bloom_go(), t.bloom_or());
    let q = Topic([1, 2, 3, 0]);
    assert_eq!(q.bloom_go().0[0], 0x08);
    assert_eq!(q.bloom_or().0[0], 0x0e);
    assert!(
        q.bloom_or().matches(&q.bloom_go()),
        "the Go form is a subset of the OR form"
    );
    assert!(Bloom::FULL.matches_topic(&t));
    assert!(!Bloom::EMPTY.matches_topic(&t));
    assert_eq!(Bloom::from_wire(&[]), Some(Bloom::FULL));
    assert_eq!(Bloom::from_wire(&[0; 3]), None);
}
