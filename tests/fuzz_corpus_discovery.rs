//! The discovery fuzz targets over a seeded, generated corpus, so CI exercises them on stable without
//! libFuzzer. ENR and entry inputs mix noise with mutations of the published EIP-778/EIP-1459 vectors
//! (`tests/vectors/discovery_*.json`); client inputs are noise (the target reads them as a script).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use status_sansio::discovery::Enr;
use status_sansio::fuzzing::corpus::Generator;
use status_sansio::fuzzing::discovery as targets;

/// Bytes substituted into text inputs: base32/base64 letters and the entry separators.
const TEXT_ALPHABET: &[u8] = b"AZ27az-_=,@. :";

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn texts() -> Vec<String> {
    let enr = load("discovery_enr.json");
    let dns = load("discovery_dnstree.json");
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
    out
}

#[test]
fn discovery_enr_corpus() {
    let texts = texts();
    let mut seeds: Vec<Vec<u8>> = vec![];
    for t in texts.iter().filter(|t| t.starts_with("enr:")) {
        if let Ok(e) = t.parse::<Enr>() {
            seeds.push(e.encode().to_vec());
        }
        seeds.push(t.as_bytes().to_vec());
    }
    assert!(seeds.len() >= 10);
    for s in &seeds {
        targets::discovery_enr(s);
    }
    let mut g = Generator::new(0x0065_6e72).with_alphabet(TEXT_ALPHABET);
    for i in 0..6000 {
        targets::discovery_enr(&g.input(i, &seeds, 4, 320));
    }
}

#[test]
fn discovery_dns_entry_corpus() {
    let seeds: Vec<Vec<u8>> = texts().into_iter().map(String::into_bytes).collect();
    for s in &seeds {
        targets::discovery_dns_entry(s);
    }
    let mut g = Generator::new(0x0064_6e73).with_alphabet(TEXT_ALPHABET);
    for i in 0..6000 {
        targets::discovery_dns_entry(&g.input(i, &seeds, 4, 200));
    }
}

#[test]
fn discovery_dns_client_corpus() {
    // A script of true answers syncs both trees: 3 + 1 records.
    assert_eq!(targets::dns_client_script(&[0u8; 400]), 4);
    let mut g = Generator::new(0x0063_6c69);
    let mut found = 0;
    for i in 0..200 {
        let mut input = g.noise(600);
        // Bias a third of the scripts towards true answers (op 0) so the walks get deep.
        if i % 3 == 0 {
            for b in input.iter_mut().step_by(2) {
                *b &= 0x0f;
            }
        }
        targets::discovery_dns_client(&input);
        found += targets::dns_client_script(&input);
    }
    assert!(found > 0);
}

/// Whether an engine refuses these bytes as a peer cache.
fn targets_reject(bytes: &[u8]) -> bool {
    let now = status_sansio::Timestamp::from_secs(1_700_000_000);
    let key = status_sansio::crypto::secret_from_bytes(&[0x78; 32]).unwrap();
    let rlpx = std::sync::Arc::new(status_sansio::rlpx::Config::new(key, vec![]));
    let mut e = status_sansio::node::Engine::new(
        status_sansio::node::EngineConfig::new(rlpx),
        &status_sansio::Seed::from_u64(1),
        now,
    )
    .unwrap();
    e.import_peer_cache(now, bytes).is_err()
}

/// A well-formed peer cache of `n` peers (the engine's export format).
fn peer_cache(n: u8) -> Vec<u8> {
    use status_sansio::crypto::{pubkey_to_raw64, secret_from_bytes};
    let mut s = rlp::RlpStream::new_list(2);
    s.append(&1u64);
    s.begin_list(usize::from(n));
    for i in 0..n {
        let key = secret_from_bytes(&[i + 1; 32]).unwrap().public_key();
        s.begin_list(5);
        s.append(&pubkey_to_raw64(&key).as_slice());
        if i % 2 == 0 {
            s.append(&[10u8, 0, 0, i].as_slice());
        } else {
            s.append(&[0x20u8, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, i].as_slice());
        }
        s.append(&30303u16);
        s.append(&u16::from(i));
        s.append(&(1_600_000_000_000u64 + u64::from(i % 4)));
    }
    s.out().to_vec()
}

#[test]
fn discovery_peer_cache_corpus() {
    let mut g = Generator::new(0x7065_6572);
    let now = status_sansio::Timestamp::from_secs(1_700_000_000);
    let key = status_sansio::crypto::secret_from_bytes(&[0x77; 32]).unwrap();
    let rlpx = std::sync::Arc::new(status_sansio::rlpx::Config::new(key, vec![]));
    for n in [0u8, 1, 5, 32] {
        targets::discovery_peer_cache(&peer_cache(n));
        let mut e = status_sansio::node::Engine::new(
            status_sansio::node::EngineConfig::new(rlpx.clone()),
            &status_sansio::Seed::from_u64(1),
            now,
        )
        .unwrap();
        assert_eq!(e.import_peer_cache(now, &peer_cache(n)).unwrap(), usize::from(n));
        assert_eq!(e.peer_cache_len(), usize::from(n));
    }
    assert!(targets_reject(&peer_cache(33)));
    // A cache holding our own key (copied from another data dir, say): that entry is skipped.
    let me = status_sansio::crypto::secret_from_bytes(&[3; 32]).unwrap();
    let mut e = status_sansio::node::Engine::new(
        status_sansio::node::EngineConfig::new(std::sync::Arc::new(status_sansio::rlpx::Config::new(
            me,
            vec![],
        ))),
        &status_sansio::Seed::from_u64(1),
        now,
    )
    .unwrap();
    assert_eq!(e.import_peer_cache(now, &peer_cache(5)).unwrap(), 4);
    let base = peer_cache(6);
    for _ in 0..300 {
        targets::discovery_peer_cache(&g.mutate(base.clone()));
        targets::discovery_peer_cache(&g.noise(300));
    }
}

#[test]
fn discovery_enode_corpus() {
    let mut seeds = status_sansio::fuzzing::seeds::generated("discovery_enode");
    seeds.extend(texts().into_iter().map(String::into_bytes));
    // The generated enodes parse (the corpus is not vacuous).
    let parsed = seeds
        .iter()
        .filter(|s| {
            std::str::from_utf8(s)
                .ok()
                .and_then(|t| t.parse::<status_sansio::enode::Enode>().ok())
                .is_some()
        })
        .count();
    assert!(parsed >= 3, "{parsed} seeds parse as enodes");
    let mut g = Generator::new(0x656e_6f64).with_alphabet(b"0123456789abcdefABCDEF:[]@?=.%/ ");
    for s in &seeds {
        targets::discovery_enode(s);
    }
    for i in 0..6000 {
        targets::discovery_enode(&g.input(i, &seeds, 6, 200));
    }
}

#[test]
fn discovery_peerpool_corpus() {
    let seeds = status_sansio::fuzzing::seeds::generated("discovery_peerpool");
    let r = targets::discovery_peerpool(&seeds[0]);
    assert!(
        r.dials >= 3 && r.max_relays == 2 && r.mailserver && r.imported,
        "{r:?}"
    );
    let mut g = Generator::new(0x706f_6f6c);
    let (mut dials, mut full) = (0, 0);
    for i in 0..1500 {
        let r = targets::discovery_peerpool(&g.input(i, &seeds, 3, 400));
        dials += r.dials;
        full += usize::from(r.max_relays == 2);
    }
    assert!(
        dials > 1000 && full > 300,
        "{dials} dials, {full} runs at the relay cap"
    );
}

/// Regression input from the fuzz targets (issue 14): an ENR whose RLP list header carries an eight-byte
/// length of all `0xff` overflows the length arithmetic of the RLP decoder (a panic in debug builds);
/// `discovery_enr`, `discovery_enode` and `discovery_dns_entry` (through `enr:` text) all find it within
/// seconds. Fixed in the ENR decoder (checked length arithmetic).
#[test]
fn enr_with_an_overflowing_length_prefix_is_refused() {
    let mut rlp = vec![0xff];
    rlp.extend_from_slice(&[0xff; 8]);
    rlp.extend_from_slice(&[0u8; 8]);
    targets::discovery_enr(&rlp);
    let text = format!("enr:{}", "_".repeat(24));
    targets::discovery_enode(text.as_bytes());
    targets::discovery_dns_entry(text.as_bytes());
}
