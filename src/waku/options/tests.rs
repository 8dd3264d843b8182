//! Unit tests.

use super::*;

#[test]
fn digest_example_in_any_order() {
    let rlp =
        hex::decode("e5ca80883f60624dd2f1a9fcc20201c20380c504c3808080c506c3808080c705c584cd423760").unwrap();
    let o = StatusOptions::decode(&Rlp::new(&rlp)).unwrap();
    assert_eq!(o.pow_requirement, Some(0.002));
    assert_eq!(o.light_node, Some(true));
    assert_eq!(o.confirmations, Some(false));
    assert_eq!(o.topic_interest, Some(vec![Topic([0xcd, 0x42, 0x37, 0x60])]));
    assert_eq!(StatusOptions::decode(&Rlp::new(&o.encode())).unwrap(), o);
}

#[test]
fn validation() {
    let nan = StatusOptions {
        pow_requirement: Some(f64::NAN),
        ..Default::default()
    }
    .encode();
    assert!(StatusOptions::decode(&Rlp::new(&nan)).is_err());
    let mut s = RlpStream::new_list(1);
    s.begin_list(2).append(&1u8).append(&&[0u8; 10][..]);
    assert!(StatusOptions::decode(&Rlp::new(&s.out())).is_err());
    assert!(StatusOptions::decode(&Rlp::new(&[0x80])).is_err());
}

#[test]
fn whisper_status() {
    let w = WhisperStatus {
        pow_requirement: 0.2,
        bloom: Bloom::FULL,
        light_node: true,
        confirmations: false,
        rate_limits: RateLimits {
            ip: 1,
            peer_id: 2,
            topic: 3,
        },
    };
    assert_eq!(WhisperStatus::decode(&Rlp::new(&w.encode())).unwrap(), w);
    let minimal = WhisperStatus::decode(&Rlp::new(&[0xc1, 0x06])).unwrap();
    assert_eq!(minimal.bloom, Bloom::FULL);
    assert!(WhisperStatus::decode(&Rlp::new(&[0xc1, 0x05])).is_err());
}
