//! Unit tests.

use super::*;

fn digest_example() -> Envelope {
    Envelope {
        expiry: 1_600_000_050,
        ttl: 50,
        topic: Topic([0xcd, 0x42, 0x37, 0x60]),
        data: Bytes::from((1u8..=16).collect::<Vec<_>>()),
        nonce: 0x1234,
    }
}

#[test]
fn digest_worked_example() {
    let e = digest_example();
    assert_eq!(
        hex::encode(e.short_rlp()),
        "dc845f5e10323284cd423760900102030405060708090a0b0c0d0e0f10"
    );
    assert_eq!(
        hex::encode(e.encode()),
        "df845f5e10323284cd423760900102030405060708090a0b0c0d0e0f10821234"
    );
    assert_eq!(
        hex::encode(e.hash()),
        "a631530c7e6c8e044f02262b15b22009947cb1980b74d4e048ec7db06c1d7ab6"
    );
    assert_eq!(e.pow_bits(), 1);
    assert!((e.pow() - 0.001379310344827586).abs() < 1e-18);
    assert_eq!(Envelope::decode_bytes(&e.encode()).unwrap(), e);
}

#[test]
fn streamed_rlp_matches_the_rlp_crate() {
    for len in [0usize, 1, 2, 55, 56, 57, 255, 256, 65_535, 65_536, 1 << 20] {
        let data = vec![0x90u8; len];
        let mut s = RlpStream::new();
        s.append(&data.as_slice());
        let (h, n) = rlp_header(len, false);
        let mut ours = h[..n].to_vec();
        ours.extend_from_slice(&data);
        assert_eq!(ours, s.out().to_vec(), "string of {len}");
        let mut l = RlpStream::new_list(1);
        l.append_raw(&data, 1);
        let (h, n) = rlp_header(len, true);
        let mut ours = h[..n].to_vec();
        ours.extend_from_slice(&data);
        assert_eq!(ours, l.out().to_vec(), "list of {len}");
    }
    for (expiry, ttl, nonce, len) in [
        (0u32, 0u32, 0u64, 0usize),
        (1, 127, 128, 1),
        (u32::MAX, 50, u64::MAX, 60),
        (1_700_000_000, 15, 77, 4000),
    ] {
        for first in [0u8, 0x7f, 0x80] {
            let mut data = vec![first; len];
            if len > 1 {
                data[1] = 9;
            }
            let e = Envelope {
                expiry,
                ttl,
                topic: Topic([1, 2, 3, 4]),
                data: Bytes::from(data),
                nonce,
            };
            let mut s = RlpStream::new();
            e.append_to(&mut s);
            assert_eq!(e.encode(), s.out().to_vec());
            let mut s = RlpStream::new_list(4);
            append_short(&mut s, &e);
            assert_eq!(e.short_rlp(), s.out().to_vec());
            assert_eq!(e.stamp().short_len, e.short_rlp().len());
        }
    }
}

#[test]
fn items_must_fill_the_list() {
    // Found by the fuzz corpus: a bit flip in a status-go envelope shortened the data from 118 to 102
    // bytes. The rlp crate still counted five items (the last one claiming more bytes than remain),
    // and the envelope re-encoded to different bytes. Go's decoder rejects it, and so do we.
    let input = hex::decode(
        "f884846553f25e3284f67a027ab866047f838bedc868b93d4094a4e40520cc44deb6f7586b2e3f8d36dadb4058cdaecbc2\
         c755732a6cc056b692288e56b7f4160b10fa0efdbd4345e1d7910b5798092c64c0cc54a727e8b31752c3c623ce6f32b786\
         6091be3965047d304a0f2da1151c2f5d0888260da9237d2e645b7fb703aea9d0f1becd80",
    )
    .unwrap();
    assert_eq!(
        Envelope::decode_bytes(&input),
        Err(WakuError::MalformedEnvelope(
            "list length does not match its items"
        ))
    );
}

#[test]
fn strict_decoding() {
    let mut bytes = digest_example().encode();
    bytes.push(0);
    assert!(Envelope::decode_bytes(&bytes).is_err());
    // Non-canonical integer (leading zero) for ttl: 0x82 0x00 0x32.
    let bad =
        hex::decode("e1845f5e1032820032".to_owned() + "84cd423760900102030405060708090a0b0c0d0e0f10821234")
            .unwrap();
    assert!(Envelope::decode_bytes(&bad).is_err());
    assert!(Envelope::decode_bytes(&[0xc0]).is_err());
}

#[test]
fn sealing_reaches_target_resumably() {
    let mut e = digest_example();
    let mut s = PowSealer::new(&e, 0.01);
    assert_eq!(s.target(), target_bits(0.01, e.size(), e.ttl));
    let mut calls = 0;
    let nonce = loop {
        calls += 1;
        match s.step(3) {
            SealProgress::Done { nonce, bits } => {
                assert!(bits >= s.target());
                break nonce;
            }
            SealProgress::Pending { .. } => assert!(calls < 10_000),
        }
    };
    e.nonce = nonce;
    assert!(e.pow_bits() >= s.target());
    assert_eq!(
        PowSealer::new(&e, 0.0).step(0),
        SealProgress::Done { nonce: 0, bits: 0 }
    );
    // Clock skew lowers the value for envelopes from the future.
    assert!(e.pow_at(u64::from(e.sent()) - 5) < e.pow());
}
