//! Unit tests of the entry codec.

use super::*;

#[test]
fn entries_round_trip() {
    let b = "enrtree-branch:AAAAAAAAAAAAAAAAAAAA,BBBBBBBBBBBBBBBBBBBB";
    assert_eq!(Entry::parse(b).unwrap().to_string(), b);
    assert_eq!(Entry::parse("enrtree-branch:").unwrap(), Entry::Branch(vec![]));
    assert_eq!(Entry::parse("enrtree-branch:1,2"), Err(EntryError::InvalidHash));
    assert_eq!(Entry::parse("foo"), Err(EntryError::Unknown));
    assert_eq!(Entry::parse(&"x".repeat(2000)), Err(EntryError::TooLong));
    assert_eq!(entry_hash("").len(), 26);
    assert!(hash_matches(&entry_hash("abc"), "abc"));
    assert!(!hash_matches(&entry_hash("abd"), "abc"));
}
