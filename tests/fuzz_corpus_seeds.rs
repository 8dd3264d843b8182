//! The committed seed corpus of the cargo-fuzz targets, `fuzz/corpus/TARGET/`.
//!
//! `FUZZ_WRITE_CORPUS=1 cargo test -p status-sansio --test fuzz_corpus_seeds` (re)writes it: for each
//! target, the seeds its harness generates (`fuzzing::seeds::generated`: handshake plaintexts, scripts
//! that complete handshakes and fill pools, exported states), the recorded vectors that fit it, and
//! otherwise a few deterministic noise inputs. Without the variable the test checks that every target
//! of `fuzz/Cargo.toml` has a non-empty corpus (and no corpus lacks a target), that the corpus stays
//! small, and runs every target over its committed inputs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use serde_json::Value;
use status_sansio::fuzzing::corpus::Generator;
use status_sansio::fuzzing::seeds::{generated, TARGETS};

/// The committed corpus stays small (it lives in git).
const MAX_CORPUS_BYTES: u64 = 400 * 1024;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn vectors(name: &str) -> Value {
    let path = root().join("tests/vectors").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every hex string under one of `keys` in a vector file.
fn hex_under(v: &Value, keys: &[&str], out: &mut Vec<Vec<u8>>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if let (true, Some(s)) = (keys.contains(&k.as_str()), x.as_str()) {
                    if let Ok(b) = hex::decode(s) {
                        out.push(b);
                    }
                }
                hex_under(x, keys, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| hex_under(x, keys, out)),
        _ => {}
    }
}

fn hex_seeds(file: &str, keys: &[&str]) -> Vec<Vec<u8>> {
    let mut out = vec![];
    hex_under(&vectors(file), keys, &mut out);
    out
}

fn prefixed(mode: u8, seeds: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    seeds
        .into_iter()
        .map(|s| {
            let mut v = vec![mode];
            v.extend(s);
            v
        })
        .collect()
}

/// Text seeds of the discovery vectors (ENR texts, tree entries, the tree URL).
fn discovery_texts() -> Vec<Vec<u8>> {
    let enr = vectors("discovery_enr.json");
    let dns = vectors("discovery_dnstree.json");
    let mut out: Vec<String> = vec![enr["eip778_example"]["text"].as_str().unwrap().to_string()];
    for t in enr["valid_texts"]["texts"].as_array().unwrap() {
        out.push(t.as_str().unwrap().to_string());
    }
    for (_, t) in dns["example_tree"]["records"].as_object().unwrap() {
        out.push(t.as_str().unwrap().to_string());
    }
    for e in dns["entries"].as_array().unwrap() {
        out.push(e["input"].as_str().unwrap().to_string());
    }
    out.push(dns["url_example"]["url"].as_str().unwrap().to_string());
    out.into_iter().map(String::into_bytes).collect()
}

/// The vector seeds of a target.
fn vector_seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "rlpx_auth" | "rlpx_ack" => {
            let v = vectors("rlpx-eip8.json");
            let packets = v["packets"]
                .as_object()
                .unwrap()
                .values()
                .map(|p| hex::decode(p.as_str().unwrap()).unwrap())
                .collect();
            prefixed(0, packets)
        }
        "waku_envelope" => hex_seeds(
            "waku.json",
            &["envelope_rlp", "messages_packet_msg_data", "short_rlp"],
        ),
        "waku_message" => hex_seeds("waku.json", &["plaintext", "data"]),
        "waku_status" => hex_seeds(
            "waku.json",
            &[
                "rlp",
                "input_rlp",
                "with_defaults_rlp",
                "payload_failed",
                "payload_with_cursor",
                "payload_no_cursor",
            ],
        ),
        "mailserver_request" => {
            let v = vectors("waku.json");
            let mut raw = vec![];
            for form in [
                "messages_request_direct_form",
                "messages_request_payload_envelope_form",
            ] {
                for c in v["mailserver"][form]["cases"].as_array().unwrap() {
                    raw.push(hex::decode(c["rlp"].as_str().unwrap()).unwrap());
                }
            }
            prefixed(0, raw)
        }
        "secure_bundle" => {
            let v = vectors("double_ratchet.json");
            let mut out = vec![hex::decode(v["bob_bundle"]["pb"].as_str().unwrap()).unwrap()];
            for m in v["messages"].as_array().unwrap() {
                out.push(hex::decode(m["protocol_message_pb"].as_str().unwrap()).unwrap());
            }
            out
        }
        "discovery_enr" | "discovery_dns_entry" | "discovery_enode" => {
            let mut texts = discovery_texts();
            if target == "discovery_enr" {
                texts.retain(|t| t.starts_with(b"enr:"));
            }
            texts
        }
        "chat_metadata" => {
            let p = vectors("payloads.json");
            let m = &p["chat_message"];
            [
                &m["application_metadata_message_pb"],
                &m["unsigned_application_metadata_pb"],
                &m["minimal"]["application_metadata_message_pb"],
            ]
            .iter()
            .map(|h| hex::decode(h.as_str().unwrap()).unwrap())
            .collect()
        }
        "chat_message" => {
            let p = vectors("payloads.json");
            let m = &p["chat_message"];
            [&m["chat_message_pb"], &m["minimal"]["chat_message_pb"]]
                .iter()
                .map(|h| hex::decode(h.as_str().unwrap()).unwrap())
                .collect()
        }
        "discovery_dns_client" => vec![vec![0u8; 400]],
        _ => vec![],
    }
}

/// Everything the corpus of `target` gets.
fn seeds(target: &str) -> Vec<Vec<u8>> {
    let mut s = generated(target);
    s.extend(vector_seeds(target));
    if s.is_empty() {
        let mut g = Generator::new(target.len() as u64 * 131 + u64::from(target.as_bytes()[0]));
        s = (0..8).map(|_| g.noise(512)).collect();
    }
    s.sort();
    s.dedup();
    s
}

fn corpus_dir(target: &str) -> PathBuf {
    root().join("fuzz/corpus").join(target)
}

/// The binaries declared in `fuzz/Cargo.toml`.
fn fuzz_bins() -> Vec<String> {
    let toml = std::fs::read_to_string(root().join("fuzz/Cargo.toml")).unwrap();
    let mut bins: Vec<String> = toml
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|n| *n != "status-sansio-fuzz")
        .map(str::to_string)
        .collect();
    bins.sort();
    bins
}

#[test]
fn committed_seed_corpus() {
    let mut names: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    names.sort();
    assert_eq!(
        names,
        fuzz_bins(),
        "fuzzing::seeds::TARGETS and fuzz/Cargo.toml list the same targets"
    );
    if std::env::var_os("FUZZ_WRITE_CORPUS").is_some() {
        for (name, _) in TARGETS {
            let dir = corpus_dir(name);
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            for s in seeds(name) {
                let h = hex::encode(&status_sansio::crypto::keccak256(&s)[..8]);
                std::fs::write(dir.join(format!("seed-{h}")), s).unwrap();
            }
        }
    }
    let mut total = 0;
    for entry in std::fs::read_dir(root().join("fuzz/corpus")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(names.contains(&name), "fuzz/corpus/{name} belongs to no target");
    }
    for (name, body) in TARGETS {
        let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir(name))
            .unwrap_or_else(|e| panic!("fuzz/corpus/{name}: {e} (FUZZ_WRITE_CORPUS=1 writes it)"))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "fuzz/corpus/{name} is empty");
        for f in files {
            let input = std::fs::read(&f).unwrap();
            total += input.len() as u64;
            body(&input);
        }
    }
    assert!(total <= MAX_CORPUS_BYTES, "the committed corpus is {total} bytes");
}
