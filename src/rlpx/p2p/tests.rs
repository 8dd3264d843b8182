//! Unit tests.

use super::*;

fn caps(list: &[(&str, u32)]) -> Vec<Capability> {
    list.iter()
        .map(|(n, v)| Capability {
            name: n.to_string(),
            version: *v,
        })
        .collect()
}

#[test]
fn eip8_hello_vector_decodes_with_extra_fields() {
    let rlp = hex::decode("f87137916b6e6574682f76302e39312f706c616e39cdc5836574683dc6846d6f726b1682270fb840fda1cff674c90c9a197539fe3dfb53086ace64f83ed7c6eabec741f7f381cc803e52ab2cd55d5569bce4347107a310dfd5f88a010cd2ffd1005ca406f1842877c883666f6f836261720304").unwrap();
    let h = Hello::decode(&rlp).unwrap();
    assert_eq!(h.protocol_version, 55);
    assert_eq!(h.client_id, "kneth/v0.91/plan9");
    assert_eq!(h.capabilities, caps(&[("eth", 61), ("mork", 22)]));
    assert_eq!(h.listen_port, 9999);
    assert_eq!(hex::encode(&h.node_id[..4]), "fda1cff6");
    let again = Hello::decode(&h.encode()).unwrap();
    assert_eq!(again, h);
}

#[test]
fn hello_rejects_bad_input() {
    assert!(Hello::decode(&[0xc0]).is_err());
    assert!(Hello::decode(&[0xff; 3000]).is_err());
    let mut h = Hello {
        protocol_version: 5,
        client_id: "x".into(),
        capabilities: vec![],
        listen_port: 0,
        node_id: [1; 64],
    }
    .encode();
    h.truncate(h.len() - 1);
    assert!(Hello::decode(&h).is_err());
}

#[test]
fn capability_matching_follows_geth() {
    let local = [
        Protocol::new("waku", 0, 128).unwrap(),
        Protocol::new("waku", 1, 128).unwrap(),
        Protocol::new("shh", 6, 128).unwrap(),
    ];
    let shared = match_capabilities(
        &local,
        &caps(&[("waku", 1), ("eth", 63), ("waku", 0), ("shh", 6)]),
    );
    assert_eq!(shared.len(), 2);
    assert_eq!(
        (shared[0].name.as_str(), shared[0].version, shared[0].offset),
        ("shh", 6, 0x10)
    );
    assert_eq!(
        (shared[1].name.as_str(), shared[1].version, shared[1].offset),
        ("waku", 1, 0x90)
    );
    assert!(match_capabilities(&local, &caps(&[("eth", 63)])).is_empty());
    assert!(CapName::new("toolongname").is_none());
    assert!(CapName::new("").is_none());
}

#[test]
fn disconnect_reasons_decode_leniently() {
    assert_eq!(
        DisconnectReason::decode(&[0xc0]),
        Some(DisconnectReason::Requested)
    );
    assert_eq!(
        DisconnectReason::decode(&[0xc1, 0x04]),
        Some(DisconnectReason::TooManyPeers)
    );
    assert_eq!(
        DisconnectReason::decode(&[0x0b]),
        Some(DisconnectReason::PingTimeout)
    );
    assert_eq!(
        DisconnectReason::decode(&[0xc1, 0x33]),
        Some(DisconnectReason::Unknown(0x33))
    );
    assert_eq!(DisconnectReason::decode(&[]), None);
    for r in [
        DisconnectReason::ProtocolBreach,
        DisconnectReason::SubprotocolError,
    ] {
        assert_eq!(DisconnectReason::decode(&r.encode()), Some(r));
    }
}

#[test]
fn msg_ids_round_trip() {
    for id in [0u64, 1, 0x10, 0x7f, 0x80, 0x8f, 0x10f, u64::MAX] {
        let mut b = BytesMut::new();
        encode_msg_id(id, &mut b);
        b.put_u8(0xc0);
        assert_eq!(split_msg_id(&b).unwrap(), (id, b.len() - 1), "{id}");
    }
    assert!(split_msg_id(&[0x81, 0x05]).is_err());
    assert!(split_msg_id(&[0x82, 0x00, 0x90]).is_err());
    assert!(split_msg_id(&[0xc0]).is_err());
    assert!(split_msg_id(&[]).is_err());
}

#[test]
fn snappy_limit_checked_before_inflating() {
    let c = compress(&[7u8; 5000]).unwrap();
    assert_eq!(decompress(&c, MAX_MESSAGE_SIZE).unwrap().len(), 5000);
    assert!(decompress(&c, 4999).is_err());
    // A header declaring 16 MiB (varint 0x80 0x80 0x80 0x08) must be rejected without allocating.
    assert!(decompress(&[0x80, 0x80, 0x80, 0x08, 0x00], usize::MAX).is_err());
    assert!(decompress(&[0xff], usize::MAX).is_err());
}
