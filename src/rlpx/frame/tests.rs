//! Unit tests.

use super::*;
use crate::crypto::keccak256;

fn pair() -> (FrameCodec, FrameCodec) {
    let k = keccak256(b"");
    let mut a = Keccak256::new();
    a.update(b"a");
    let mut b = Keccak256::new();
    b.update(b"b");
    (
        FrameCodec::from_parts(&k, &k, a.clone(), b.clone(), MAX_FRAME_SIZE),
        FrameCodec::from_parts(&k, &k, b, a, MAX_FRAME_SIZE),
    )
}

#[test]
fn geth_frame_vector_layout_and_keystream() {
    // TestFrameReadWrite: the ciphertexts do not depend on the MAC state, only on the keystream.
    let (mut a, _) = pair();
    let mut out = Vec::new();
    a.seal(&[&hex::decode("08c401020304").unwrap()], &mut out)
        .unwrap();
    assert_eq!(out.len(), 64);
    assert_eq!(hex::encode(&out[..16]), "00828ddae471818bb0bfa6b551d1cb42");
    assert_eq!(hex::encode(&out[32..48]), "ba628a4ba590cb43f7848f41c4382885");
}

#[test]
fn seal_open_byte_by_byte_and_tamper() {
    let (mut a, mut b) = pair();
    let mut wire = Vec::new();
    for n in [0usize, 1, 15, 16, 17, 1000] {
        a.seal(&[&[0x10], &vec![n as u8; n]], &mut wire).unwrap();
    }
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for byte in wire {
        buf.extend_from_slice(&[byte]);
        while let Some(f) = b.open(&mut buf).unwrap() {
            got.push(f.len() - 1);
        }
    }
    assert_eq!(got, vec![0, 1, 15, 16, 17, 1000]);

    let (mut a, mut b) = pair();
    let mut wire = Vec::new();
    a.seal(&[b"hello"], &mut wire).unwrap();
    wire[40] ^= 1;
    assert_eq!(
        b.open(&mut BytesMut::from(&wire[..])),
        Err(RlpxError::BadFrameMac)
    );
    let (mut a, mut b) = pair();
    let mut wire = Vec::new();
    a.seal(&[b"hello"], &mut wire).unwrap();
    wire[3] ^= 1;
    assert_eq!(
        b.open(&mut BytesMut::from(&wire[..])),
        Err(RlpxError::BadHeaderMac)
    );
}

#[test]
fn oversized_frame_refused_at_header() {
    let k = keccak256(b"");
    let mut a = FrameCodec::from_parts(&k, &k, Keccak256::new(), Keccak256::new(), MAX_FRAME_SIZE);
    let mut b = FrameCodec::from_parts(&k, &k, Keccak256::new(), Keccak256::new(), 64);
    let mut wire = Vec::new();
    a.seal(&[&[0u8; 65]], &mut wire).unwrap();
    let mut buf = BytesMut::from(&wire[..32]);
    assert_eq!(b.open(&mut buf), Err(RlpxError::FrameTooLarge(65)));
}
