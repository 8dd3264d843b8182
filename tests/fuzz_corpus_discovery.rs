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
