#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Application-layer vectors: every entry of `payloads.json`, `alias_3word.json`,
//! `pubkey_serialization.json` and the `status_message_id` entry of `status_ids_topics_computed.json`,
//! compared against the recorded values.

use serde_json::Value;
use status_sansio::chat::identity::*;
use status_sansio::crypto::{pubkey_from_sec1, secret_from_bytes, PublicKey, SecretKey};

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
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

mod payloads {
    use super::*;
    use prost::Message as _;
    use status_proto::protobuf as pb;
    use status_sansio::chat::payloads::*;

    #[test]
    fn chat_message_full_set() {
        let p = load("payloads.json");
        let m = &p["chat_message"];
        let author = sk(&m["author_priv"]);
        let chat_pb = h(&m["chat_message_pb"]);
        let wrapped = h(&m["application_metadata_message_pb"]);

        // The typed payload decodes to the recorded fields and re-encodes byte for byte.
        let msg = decode_chat_message(&chat_pb).unwrap();
        let f = &m["chat_message_fields"];
        assert_eq!(msg.clock, f["clock"].as_u64().unwrap());
        assert_eq!(msg.timestamp, f["timestamp"].as_u64().unwrap());
        assert_eq!(msg.text, s(&f["text"]));
        assert_eq!(msg.response_to, s(&f["response_to"]));
        assert_eq!(msg.ens_name, s(&f["ens_name"]));
        assert_eq!(msg.chat_id, s(&f["chat_id"]));
        assert_eq!(i64::from(msg.message_type), f["message_type"].as_i64().unwrap());
        assert_eq!(i64::from(msg.content_type), f["content_type"].as_i64().unwrap());
        assert_eq!(&msg.grant[..], &h(&f["grant"])[..]);
        assert_eq!(msg.display_name, s(&f["display_name"]));
        assert_eq!(
            i64::from(msg.customization_color),
            f["customization_color"].as_i64().unwrap()
        );
        // The oneof payload: its Go type name is the recorded one, and its fields appear in the recorded
        // Go literal (prototext form: `name:{field:value  field:value}`, strings quoted).
        let go = s(&m["chat_message_go"]);
        let (oneof, literal) = match &msg.payload {
            Some(pb::chat_message::Payload::Sticker(st)) => (
                "Sticker",
                Some(format!("sticker:{{hash:{:?}  pack:{}}}", st.hash, st.pack)),
            ),
            Some(pb::chat_message::Payload::Image(_)) => ("Image", None),
            Some(pb::chat_message::Payload::Audio(a)) => {
                ("Audio", Some(format!("duration_ms:{}", a.duration_ms)))
            }
            Some(pb::chat_message::Payload::Community(_)) => ("Community", None),
            Some(pb::chat_message::Payload::DiscordMessage(_)) => ("DiscordMessage", None),
            Some(pb::chat_message::Payload::BridgeMessage(_)) => ("BridgeMessage", None),
            None => ("", None),
        };
        assert_eq!(
            s(&f["payload_oneof"]),
            if oneof.is_empty() {
                String::new()
            } else {
                format!("*protobuf.ChatMessage_{oneof}")
            }
        );
        if let Some(literal) = literal {
            assert!(go.contains(&literal), "{literal} not in {go}");
        }
        let crp = msg.contact_request_propagated_state.as_ref().unwrap();
        assert!(go.contains(&format!(
            "local_clock:{}  local_state:{}  remote_clock:{}  remote_state:{}",
            crp.local_clock, crp.local_state, crp.remote_clock, crp.remote_state
        )));
        let shard = msg.shard.as_ref().unwrap();
        assert!(go.contains(&format!(
            "shard:{{cluster:{}  index:{}}}",
            shard.cluster, shard.index
        )));
        // As many links as the literal shows (the nested status-link list is one field).
        assert_eq!(
            msg.unfurled_links.len(),
            go.matches("unfurled_links:{url:").count()
        );
        assert_eq!(
            !msg.unfurled_status_links.is_empty(),
            go.contains("unfurled_status_links:{")
        );
        assert_eq!(encode_chat_message(&msg), chat_pb);

        // Wrapping with the recorded key reproduces the recorded signature, wrapper and id (RFC 6979).
        assert!(m["signature_deterministic_rfc6979"].as_bool().unwrap());
        assert_eq!(
            status_sansio::crypto::keccak256(&chat_pb).to_vec(),
            h(&m["signed_hash"])
        );
        let kind = MessageKind::try_from(m["type"].as_i64().unwrap() as i32).unwrap();
        assert_eq!(kind, MessageKind::ChatMessage);
        let w = wrap(&chat_pb, kind, &author).unwrap();
        assert_eq!(&w.bytes[..], &wrapped[..]);
        assert_eq!(w.id.0.to_vec(), h(&m["message_id"]));
        assert_eq!(wrap_chat_message(&msg, &author).unwrap(), w);

        // Receiving: the author is recovered and the id recomputed from the received bytes.
        let u = unwrap(&wrapped, None).unwrap();
        assert!(u.signed);
        assert_eq!(u.author.unwrap(), pk(&m["author_pub"]));
        assert_eq!(u.id.unwrap().0.to_vec(), h(&m["message_id"]));
        assert_eq!(&u.signature[..], &h(&m["signature"])[..]);
        assert_eq!(&u.payload[..], &chat_pb[..]);
        assert_eq!(u.decode_payload().unwrap(), AppPayload::ChatMessage(msg));

        // The unsigned wrapper.
        assert_eq!(
            &wrap_unsigned(&chat_pb, kind)[..],
            &h(&m["unsigned_application_metadata_pb"])[..]
        );
        let u = unwrap(&h(&m["unsigned_application_metadata_pb"]), None).unwrap();
        assert!(!u.signed && u.author.is_none() && u.id.is_none());
    }

    #[test]
    fn chat_message_minimal_set() {
        let p = load("payloads.json");
        let m = &p["chat_message"];
        let n = &m["minimal"];
        let author = sk(&m["author_priv"]);
        let chat_pb = h(&n["chat_message_pb"]);
        let msg = decode_chat_message(&chat_pb).unwrap();
        assert_eq!(msg.chat_id, s(&n["chat_id"]));
        assert_eq!(encode_chat_message(&msg), chat_pb);
        let w = wrap(&chat_pb, MessageKind::ChatMessage, &author).unwrap();
        assert_eq!(&w.bytes[..], &h(&n["application_metadata_message_pb"])[..]);
        assert_eq!(w.id.0.to_vec(), h(&n["message_id"]));
        let u = unwrap(&w.bytes, None).unwrap();
        assert_eq!(&u.signature[..], &h(&n["signature"])[..]);
        assert_eq!(u.id, Some(w.id));
        let wrapper = pb::ApplicationMetadataMessage::decode(&w.bytes[..]).unwrap();
        assert_eq!(wrapper.encode_to_vec(), w.bytes.to_vec());
    }

    #[test]
    fn status_message_id_computed() {
        let c = load("status_ids_topics_computed.json");
        let v = &c["status_message_id"];
        let author = pk(&v["author_pub_uncompressed"]);
        let wrapped = h(&v["wrapped_application_metadata_bytes"]);
        assert_eq!(MessageId::compute(&author, &wrapped).0.to_vec(), h(&v["id"]));
        // The wrapper is unsigned: the id follows the author a lower layer names.
        let u = unwrap(&wrapped, Some(&author)).unwrap();
        assert!(!u.signed);
        assert_eq!(u.id.unwrap().0.to_vec(), h(&v["id"]));
        assert_eq!(u.message_kind(), Some(MessageKind::ChatMessage));
        assert_eq!(&u.payload[..], b"hello");
    }
}

/// The topic and key entries of `payloads.json`, through the derivations that live at the Waku layer.
mod topics {
    use super::*;
    use status_sansio::waku::status;

    fn topic_hex(t: status_sansio::waku::Topic) -> String {
        hex::encode(t.0)
    }

    #[test]
    fn public_chats() {
        let p = load("payloads.json");
        let chats = p["public_chats"].as_array().unwrap();
        assert_eq!(chats.len(), 3);
        for c in chats {
            let name = s(&c["name"]);
            assert_eq!(topic_hex(status::public_chat_topic(name)), s(&c["topic"]));
            assert_eq!(status::public_chat_key(name).to_vec(), h(&c["sym_key"]));
        }
        let d = &p["legacy_discovery"];
        assert_eq!(s(&d["string"]), "contact-discovery");
        assert_eq!(topic_hex(status::discovery_topic()), s(&d["topic"]));
    }

    #[test]
    fn per_public_key() {
        let p = load("payloads.json");
        for k in p["per_public_key"].as_array().unwrap() {
            let key = pk(&k["pub"]);
            assert_eq!(status::contact_code_string(&key), s(&k["contact_code_string"]));
            assert_eq!(
                topic_hex(status::contact_code_topic(&key)),
                s(&k["contact_code_topic"])
            );
            assert_eq!(
                status::contact_code_key(&key).to_vec(),
                h(&k["contact_code_sym_key"])
            );
            assert_eq!(
                format!("contact-discovery-{}", status::partition(&key)),
                s(&k["partitioned_string"])
            );
            assert_eq!(
                topic_hex(status::partitioned_topic(&key)),
                s(&k["partitioned_topic"])
            );
            assert_eq!(
                format!("contact-discovery-{}", status::pubkey_hex(&key)),
                s(&k["personal_discovery_string"])
            );
            assert_eq!(
                topic_hex(status::personal_discovery_topic(&key)),
                s(&k["personal_discovery_topic"])
            );
            assert_eq!(
                format!("{}-negotiated", pubkey_to_hex(&key)),
                s(&k["negotiated_chat_id"])
            );
        }
    }

    #[test]
    fn negotiated() {
        let p = load("payloads.json");
        let n = &p["negotiated"];
        let (a, b) = (sk(&n["a_priv"]), sk(&n["b_priv"]));
        assert_eq!(a.public_key(), pk(&n["a_pub"]));
        assert_eq!(b.public_key(), pk(&n["b_pub"]));
        let secret = status::negotiated_secret(&a, &b.public_key());
        assert_eq!(secret.to_vec(), h(&n["shared_secret"]));
        assert_eq!(*status::negotiated_secret(&b, &a.public_key()), *secret);
        assert_eq!(topic_hex(status::negotiated_topic(&secret)), s(&n["topic"]));
        assert_eq!(status::negotiated_key(&secret).to_vec(), h(&n["sym_key"]));
        assert_eq!(
            format!("{}-negotiated", pubkey_to_hex(&b.public_key())),
            s(&n["a_chat_id_for_b"])
        );
    }
}
