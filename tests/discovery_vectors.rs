#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Discovery against published vectors: EIP-778 (the example record and its key), EIP-1459 (the example
//! tree) and go-ethereum's `p2p/enr`, `p2p/enode` and `p2p/dnsdisc` tests. The vectors live in
//! `tests/vectors/discovery_*.json`, which name their sources; expected values are the published ones.

use std::net::Ipv4Addr;

use serde_json::Value;
use status_sansio::crypto::{pubkey_to_compressed, secret_from_bytes};
use status_sansio::discovery::{Enr, EnrBuilder, EnrError};

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn hx(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

#[test]
fn eip778_example_record_decodes_and_verifies() {
    let v = load("discovery_enr.json");
    let ex = &v["eip778_example"];
    let enr: Enr = s(&ex["text"]).parse().unwrap();
    assert_eq!(enr.encode(), hx(&ex["rlp"]).as_slice());
    assert_eq!(Enr::decode(&hx(&ex["rlp"])).unwrap(), enr);
    assert_eq!(enr.to_text(), s(&ex["text"]));
    assert_eq!(enr.seq(), ex["seq"].as_u64().unwrap());
    assert_eq!(enr.node_id().0.to_vec(), hx(&ex["node_id"]));
    assert_eq!(enr.signature().to_vec(), hx(&ex["signature"]));
    assert_eq!(
        pubkey_to_compressed(enr.public_key()).to_vec(),
        hx(&ex["secp256k1"])
    );
    assert_eq!(enr.ip4(), Some(s(&ex["ip"]).parse::<Ipv4Addr>().unwrap()));
    assert_eq!(enr.udp(), Some(ex["udp"].as_u64().unwrap() as u16));
    assert_eq!(enr.tcp(), None);
    // The record has no TCP port, so there is no enode URL for it.
    assert!(enr.to_enode().is_none());
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = enr
        .pairs()
        .map(|(k, v)| (k.to_vec(), rlp::Rlp::new(v).data().unwrap().to_vec()))
        .collect();
    let want: Vec<(Vec<u8>, Vec<u8>)> = ex["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let k = s(&p[0]).as_bytes().to_vec();
            let val = if k == b"id" {
                s(&p[1]).as_bytes().to_vec()
            } else {
                hx(&p[1])
            };
            (k, val)
        })
        .collect();
    assert_eq!(pairs, want);
    // The key from the EIP owns the record.
    let sk = secret_from_bytes(&hx(&ex["private_key"])).unwrap();
    assert_eq!(enr.public_key(), &sk.public_key());
}

#[test]
fn eip778_example_record_is_reproduced_by_signing() {
    // RFC 6979 nonces make secp256k1 signatures deterministic, so signing the EIP's content with the
    // EIP's key must give the published record byte for byte.
    let v = load("discovery_enr.json");
    let ex = &v["eip778_example"];
    let sk = secret_from_bytes(&hx(&ex["private_key"])).unwrap();
    let built = EnrBuilder::new()
        .seq(ex["seq"].as_u64().unwrap())
        .ip4(s(&ex["ip"]).parse().unwrap())
        .udp(ex["udp"].as_u64().unwrap() as u16)
        .sign(&sk)
        .unwrap();
    assert_eq!(built.to_text(), s(&ex["text"]));
    let empty = EnrBuilder::new().sign(&sk).unwrap();
    assert_eq!(
        empty.node_id().0.to_vec(),
        hx(&v["empty_record_node_id"]["node_id"])
    );
}

#[test]
fn published_records_verify_and_tampered_ones_do_not() {
    let v = load("discovery_enr.json");
    for t in v["valid_texts"]["texts"].as_array().unwrap() {
        let enr: Enr = s(t).parse().unwrap_or_else(|e| panic!("{}: {e}", s(t)));
        assert_eq!(enr.to_text(), s(t));
        // Every single-bit flip of the RLP is rejected (signature, structure or canonical form).
        let raw = enr.encode().to_vec();
        for i in 0..raw.len() {
            for bit in [0u8, 3, 7] {
                let mut bad = raw.clone();
                bad[i] ^= 1 << bit;
                assert!(Enr::decode(&bad).is_err(), "flip {i}/{bit} of {}", s(t));
            }
        }
    }
    let invalid = v["invalid_texts"]["texts"].as_array().unwrap();
    assert_eq!(s(&invalid[0]).parse::<Enr>(), Err(EnrError::Base64));
    assert_eq!(s(&invalid[1]).parse::<Enr>(), Err(EnrError::Base64));
}
