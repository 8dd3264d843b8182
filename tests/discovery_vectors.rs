#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Discovery against published vectors: EIP-778 (the example record and its key), EIP-1459 (the example
//! tree) and go-ethereum's `p2p/enr`, `p2p/enode` and `p2p/dnsdisc` tests. The vectors live in
//! `tests/vectors/discovery_*.json`, which name their sources; expected values are the published ones.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde_json::Value;
use status_sansio::crypto::{pubkey_to_compressed, pubkey_to_uncompressed, secret_from_bytes};
use status_sansio::discovery::dnstree::{entry_hash, hash_matches, Event, Input, Output};
use status_sansio::discovery::{
    DnsConfig, DnsTreeClient, Enr, EnrBuilder, EnrError, EnrTreeUrl, Entry, EntryError, RootEntry, TreeError,
};
use status_sansio::{Seed, Timestamp};

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

fn records(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, t)| (k.clone(), s(t).to_string()))
        .collect()
}

/// Run a client against a fixed name → TXT map until it has nothing left to ask; return its events.
fn sync(url: &str, zone: &BTreeMap<String, String>) -> Vec<Event> {
    let url: EnrTreeUrl = url.parse().unwrap();
    let mut c = DnsTreeClient::new(DnsConfig::default(), &[url], &Seed::from_u64(1)).unwrap();
    let now = Timestamp::from_secs(1_700_000_000);
    c.handle_timeout(now);
    let mut events = vec![];
    while let Some(o) = c.poll_output() {
        match o {
            Output::Resolve { name } => match zone.get(&name) {
                Some(t) => c
                    .handle_input(
                        now,
                        Input::TxtRecords {
                            name,
                            texts: vec![t.clone()],
                        },
                    )
                    .unwrap(),
                None => c.handle_input(now, Input::ResolveFailed { name }).unwrap(),
            },
            Output::Event(e) => events.push(e),
            _ => {}
        }
    }
    events
}

#[test]
fn eip1459_url_example() {
    let v = load("discovery_dnstree.json");
    let ex = &v["url_example"];
    let url: EnrTreeUrl = s(&ex["url"]).parse().unwrap();
    assert_eq!(url.domain, s(&ex["domain"]));
    assert_eq!(
        pubkey_to_compressed(&url.public_key).to_vec(),
        hx(&ex["public_key_compressed"])
    );
    // The EIP's prose key does not match its own URL (see the notes in the JSON).
    assert_ne!(
        pubkey_to_uncompressed(&url.public_key).to_vec(),
        hx(&ex["eip_prose_public_key"])
    );
    assert_eq!(url.to_string(), s(&ex["url"]));
}

#[test]
fn eip1459_example_tree_hashes_signature_and_sync() {
    let v = load("discovery_dnstree.json");
    let tree = &v["example_tree"];
    let zone = records(&tree["records"]);
    let url: EnrTreeUrl = s(&tree["url"]).parse().unwrap();
    let sk = secret_from_bytes(&hx(&tree["signing_private_key"])).unwrap();
    assert_eq!(url.public_key, sk.public_key());
    // Every subdomain is the published hash of its entry's text.
    for (name, text) in &zone {
        if let Some(hash) = name.strip_suffix(".n") {
            assert_eq!(entry_hash(text), hash, "{name}");
            assert!(hash_matches(hash, text));
            assert!(Entry::parse(text).is_ok(), "{text}");
        }
    }
    // The published root verifies against the tree key, and only against it.
    let root = RootEntry::parse(&zone["n"]).unwrap();
    assert_eq!(root.seq, tree["seq"].as_u64().unwrap());
    assert_eq!(root.to_string(), zone["n"]);
    assert!(root.verify(&url.public_key));
    let other: EnrTreeUrl = s(&v["url_example"]["url"]).parse().unwrap();
    assert!(!root.verify(&other.public_key));
    // A full sync finds the three records and the link.
    let events = sync(s(&tree["url"]), &zone);
    let mut nodes: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::Node(n) => Some(n.to_text()),
            _ => None,
        })
        .collect();
    nodes.sort();
    let mut want: Vec<String> = zone.values().filter(|t| t.starts_with("enr:")).cloned().collect();
    want.sort();
    assert_eq!(nodes, want);
    let links: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::Linked(u) => Some(u.to_string()),
            _ => None,
        })
        .collect();
    let want_links: Vec<String> = tree["want_links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| s(l).to_string())
        .collect();
    assert_eq!(links, want_links);
    assert!(events.contains(&Event::TreeSynced {
        domain: "n".into(),
        seq: 1,
        nodes: 3,
        complete: true
    }));
}

#[test]
fn go_ethereum_bad_node_tree() {
    let v = load("discovery_dnstree.json");
    let t = &v["bad_node_tree"];
    let zone = records(&t["records"]);
    let events = sync(s(&t["url"]), &zone);
    assert!(events.contains(&Event::Error {
        name: s(&t["bad_name"]).to_string(),
        error: TreeError::Entry(EntryError::Enr(EnrError::Base64)),
    }));
    assert!(events.contains(&Event::TreeSynced {
        domain: "n".into(),
        seq: 3,
        nodes: 0,
        complete: false
    }));
    assert!(!events.iter().any(|e| matches!(e, Event::Node(_))));
}

#[test]
fn go_ethereum_root_and_entry_parsing() {
    let v = load("discovery_dnstree.json");
    for r in v["roots"].as_array().unwrap() {
        let got = RootEntry::parse(s(&r["input"]));
        match r.get("error").map(s) {
            Some("syntax") => assert_eq!(got, Err(EntryError::RootSyntax)),
            Some("invalid_sig") => assert_eq!(got, Err(EntryError::SignatureEncoding)),
            Some(other) => panic!("unexpected {other}"),
            None => {
                let root = got.unwrap();
                assert_eq!(root.enr_root, s(&r["eroot"]));
                assert_eq!(root.link_root, s(&r["lroot"]));
                assert_eq!(root.seq, r["seq"].as_u64().unwrap());
                assert_eq!(root.signature.to_vec(), hx(&r["sig"]));
            }
        }
    }
    let signing = secret_from_bytes(&hx(&v["example_tree"]["signing_private_key"])).unwrap();
    for e in v["entries"].as_array().unwrap() {
        let input = s(&e["input"]);
        let got = Entry::parse(input);
        if let Some(err) = e.get("error") {
            let want = match s(err) {
                "invalid_child" => EntryError::InvalidHash,
                "no_pubkey" => EntryError::NoPublicKey,
                "bad_pubkey" => EntryError::BadPublicKey,
                "invalid_enr" => EntryError::Enr(EnrError::Base64),
                "unknown" => EntryError::Unknown,
                other => panic!("unexpected {other}"),
            };
            assert_eq!(got, Err(want), "{input}");
        } else if let Some(b) = e.get("branch") {
            let want: Vec<String> = b.as_array().unwrap().iter().map(|h| s(h).to_string()).collect();
            assert_eq!(got, Ok(Entry::Branch(want)), "{input}");
        } else if let Some(d) = e.get("link_domain") {
            let Ok(Entry::Link(url)) = got else {
                panic!("{input}")
            };
            assert_eq!(url.domain, s(d));
            assert_eq!(url.public_key, signing.public_key());
            assert_eq!(url.to_string(), input);
        } else {
            let Ok(Entry::Enr(enr)) = got else {
                panic!("{input}")
            };
            assert_eq!(enr.to_text(), input);
        }
    }
}
