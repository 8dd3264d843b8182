//! Unit tests.

use super::*;
use crate::crypto::secret_from_bytes;

fn key(n: u8) -> SecretKey {
    secret_from_bytes(&[n; 32]).unwrap()
}

#[test]
fn build_decode_round_trip_and_accessors() {
    let enr = EnrBuilder::new()
        .seq(7)
        .ip4(Ipv4Addr::new(10, 0, 0, 1))
        .tcp(443)
        .udp(30303)
        .ip6(Ipv6Addr::LOCALHOST)
        .sign(&key(1))
        .unwrap();
    assert_eq!(enr.seq(), 7);
    assert_eq!(enr.tcp(), Some(443));
    assert_eq!(enr.tcp6(), Some(443));
    assert_eq!(enr.udp6(), Some(30303));
    assert_eq!(enr.ip6(), Some(Ipv6Addr::LOCALHOST));
    let text = enr.to_text();
    assert!(!text.contains('='));
    let again: Enr = text.parse().unwrap();
    assert_eq!(again, enr);
    let enode = enr.to_enode().unwrap();
    assert_eq!(
        enode.to_string().split('@').nth(1),
        Some("10.0.0.1:443?discport=30303")
    );
    assert_eq!(enode.id, key(1).public_key());
    // IPv6 only.
    let v6 = EnrBuilder::new()
        .ip6(Ipv6Addr::LOCALHOST)
        .tcp6(1)
        .udp6(1)
        .sign(&key(2))
        .unwrap();
    assert_eq!(
        v6.to_enode().unwrap().to_string().split('@').nth(1),
        Some("[::1]:1")
    );
    // No endpoint at all: valid record, no enode.
    assert!(EnrBuilder::new().sign(&key(3)).unwrap().to_enode().is_none());
}

#[test]
fn rejects_tampering_order_duplicates_and_size() {
    let enr = EnrBuilder::new().ip4(Ipv4Addr::LOCALHOST).sign(&key(1)).unwrap();
    let raw = enr.encode().to_vec();
    // Flip a bit in the IP: signature no longer verifies.
    let mut bad = raw.clone();
    let pos = raw.windows(4).position(|w| w == [127, 0, 0, 1]).unwrap();
    bad[pos] ^= 1;
    assert_eq!(Enr::decode(&bad), Err(EnrError::Signature));
    // Oversized.
    let big = EnrBuilder::new().bytes(b"z", &[0u8; 300]).sign(&key(1));
    assert_eq!(big, Err(EnrError::TooBig));
    // Unsorted and duplicate keys (signature checked after structure).
    let sig = [1u8; 64];
    let mk = |pairs: &[(&[u8], &[u8])]| {
        let mut s = RlpStream::new_list(2 + 2 * pairs.len());
        s.append(&sig.as_slice());
        s.append(&1u64);
        for (k, v) in pairs {
            s.append(k);
            s.append(v);
        }
        s.out().to_vec()
    };
    assert_eq!(
        Enr::decode(&mk(&[(b"b", b"1"), (b"a", b"1")])),
        Err(EnrError::NotSorted)
    );
    assert_eq!(
        Enr::decode(&mk(&[(b"a", b"1"), (b"a", b"2")])),
        Err(EnrError::DuplicateKey)
    );
    assert_eq!(Enr::decode(&mk(&[(b"id", b"v5")])), Err(EnrError::UnknownScheme));
    assert_eq!(Enr::decode(&mk(&[(b"id", b"v4")])), Err(EnrError::PublicKey));
    assert_eq!(
        Enr::decode(&[0xc0]),
        Err(EnrError::Malformed("missing signature or seq"))
    );
    assert_eq!(
        Enr::decode(&[0xc3, 0x80, 0x01, 0x80]),
        Err(EnrError::IncompletePair)
    );
    assert!(Enr::decode(&[0x80]).is_err());
    assert!("enr:".parse::<Enr>().is_err());
    assert_eq!("enx:AA".parse::<Enr>(), Err(EnrError::Prefix));
    assert_eq!(format!("{}=", enr).parse::<Enr>(), Err(EnrError::Base64));
}

#[test]
fn huge_length_prefixes_are_errors_not_overflows() {
    // A fuzz find: eight 0xff length bytes overflowed `PayloadInfo::total` (a panic in debug builds),
    // reachable from DNS TXT answers. As the record's own list header and as an item inside it.
    let mut outer = vec![0xff];
    outer.extend_from_slice(&[0xff; 8]);
    outer.extend_from_slice(&[0x80; 8]);
    assert!(matches!(Enr::decode(&outer), Err(EnrError::Malformed(_))));
    let mut inner = vec![0xcd, 0xbf];
    inner.extend_from_slice(&[0xff; 8]);
    inner.extend_from_slice(&[0x80; 4]);
    assert!(matches!(Enr::decode(&inner), Err(EnrError::Malformed(_))));
    let mut list_item = vec![0xcd, 0xff];
    list_item.extend_from_slice(&[0xff; 8]);
    list_item.extend_from_slice(&[0x80; 4]);
    assert!(matches!(Enr::decode(&list_item), Err(EnrError::Malformed(_))));
}

#[test]
fn high_s_signature_is_rejected() {
    let enr = EnrBuilder::new().sign(&key(4)).unwrap();
    let sig = Signature::from_slice(enr.signature()).unwrap();
    // s' = n - s verifies mathematically but is the malleable twin.
    let high = Signature::from_scalars(sig.r(), -*sig.s()).unwrap();
    let mut hs = [0u8; 64];
    hs.copy_from_slice(&high.to_bytes());
    let raw = record_rlp(&hs, enr.seq, &enr.pairs);
    assert_eq!(Enr::decode(&raw), Err(EnrError::Signature));
}
