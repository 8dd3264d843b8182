//! The application-layer fuzz targets over a seeded, generated corpus, so CI exercises them on stable
//! without libFuzzer. Inputs mix noise with mutations of the recorded vectors (wrappers, chat messages)
//! and of generated valid group messages; the membership target also reads each input as a script.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde_json::Value;
use status_proto::protobuf as pb;
use status_sansio::chat::group::{
    encode_membership_update, group_chat_id, new_event, EventType, Group, GroupLimits,
};
use status_sansio::chat::identity::{compressed_key_string, pubkey_to_hex};
use status_sansio::chat::payloads::{wrap_chat_message, wrap_message, MessageKind};
use status_sansio::fuzzing::chat::{self as targets, fixed_key, NOW_MS};
use status_sansio::Timestamp;

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn h(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

fn noise(rng: &mut ChaCha20Rng, max: usize) -> Vec<u8> {
    let n = rng.next_u32() as usize % max;
    let mut v = vec![0u8; n];
    rng.fill_bytes(&mut v);
    v
}

fn mutate(rng: &mut ChaCha20Rng, mut v: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.next_u32() % 3 {
        match rng.next_u32() % 5 {
            0 | 1 if !v.is_empty() => {
                let i = rng.next_u32() as usize % v.len();
                v[i] ^= 1 << (rng.next_u32() % 8);
            }
            2 => v.truncate(rng.next_u32() as usize % (v.len() + 1)),
            3 => v.extend(noise(rng, 32)),
            _ => {}
        }
    }
    v
}

/// Recorded vectors plus generated wrappers of every in-scope type.
fn payload_seeds() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let p = load("payloads.json");
    let m = &p["chat_message"];
    let mut wrappers = vec![
        h(&m["application_metadata_message_pb"]),
        h(&m["unsigned_application_metadata_pb"]),
        h(&m["minimal"]["application_metadata_message_pb"]),
        h(&load("status_ids_topics_computed.json")["status_message_id"]
            ["wrapped_application_metadata_bytes"]),
    ];
    let mut bodies = vec![h(&m["chat_message_pb"]), h(&m["minimal"]["chat_message_pb"])];
    let key = fixed_key(0).unwrap();
    let reaction = pb::EmojiReaction {
        clock: NOW_MS,
        chat_id: "status".into(),
        message_id: format!("0x{}", "ab".repeat(32)),
        message_type: 2,
        r#type: 3,
        ..Default::default()
    };
    let pair = pb::PairInstallation {
        clock: NOW_MS,
        installation_id: "id".into(),
        device_type: "desktop".into(),
        name: "n".into(),
        ..Default::default()
    };
    let contact = pb::ContactUpdate {
        clock: NOW_MS,
        ens_name: "a.eth".into(),
        ..Default::default()
    };
    let sync = pb::SyncInstallation {
        contacts: vec![pb::SyncInstallationContact {
            clock: 1,
            id: pubkey_to_hex(&key.public_key()),
            system_tags: vec![":contact/added".into()],
            ..Default::default()
        }],
        ..Default::default()
    };
    wrappers.push(
        wrap_message(&reaction, MessageKind::EmojiReaction, &key)
            .unwrap()
            .bytes
            .to_vec(),
    );
    wrappers.push(
        wrap_message(&pair, MessageKind::PairInstallation, &key)
            .unwrap()
            .bytes
            .to_vec(),
    );
    wrappers.push(
        wrap_message(&contact, MessageKind::ContactUpdate, &key)
            .unwrap()
            .bytes
            .to_vec(),
    );
    wrappers.push(
        wrap_message(&sync, MessageKind::SyncInstallation, &key)
            .unwrap()
            .bytes
            .to_vec(),
    );
    wrappers.push(group_message());
    bodies.push(prost::Message::encode_to_vec(&reaction));
    bodies.push(prost::Message::encode_to_vec(&pair));
    bodies.push(prost::Message::encode_to_vec(&sync));
    let text = pb::ChatMessage {
        clock: NOW_MS,
        timestamp: NOW_MS,
        text: "hello".into(),
        chat_id: "status".into(),
        message_type: 2,
        content_type: 1,
        ..Default::default()
    };
    wrappers.push(wrap_chat_message(&text, &key).unwrap().bytes.to_vec());
    bodies.push(status_sansio::chat::payloads::encode_chat_message(&text));
    // Key and id strings for the string parsers.
    bodies.push(compressed_key_string(&key.public_key()).into_bytes());
    bodies.push(pubkey_to_hex(&key.public_key()).into_bytes());
    bodies.push(format!("0x{}", "cd".repeat(32)).into_bytes());
    (wrappers, bodies)
}

/// A valid group of four members with a carried chat message, as a MembershipUpdateMessage.
fn group_message_bytes() -> Vec<u8> {
    let keys: Vec<_> = (0..4).map(|i| fixed_key(i).unwrap()).collect();
    let ids: Vec<String> = keys.iter().map(|k| pubkey_to_hex(&k.public_key())).collect();
    let chat = group_chat_id([3; 16], &keys[0].public_key());
    let now = Timestamp::from_millis(NOW_MS);
    let created = status_sansio::chat::group::sign_event(
        &chat,
        &new_event(EventType::ChatCreated, NOW_MS - 50, &[], "g"),
        &keys[0],
    )
    .unwrap();
    let g = Group::from_events(&chat, vec![created], now, GroupLimits::default()).unwrap();
    let steps = [
        (0, EventType::MembersAdded, ids[1..].to_vec(), ""),
        (1, EventType::MemberJoined, vec![], ""),
        (0, EventType::AdminsAdded, vec![ids[1].clone()], ""),
        (1, EventType::NameChanged, vec![], "renamed"),
        (2, EventType::MemberRemoved, vec![ids[2].clone()], ""),
    ];
    let mut g = g;
    for (i, (by, kind, members, name)) in steps.into_iter().enumerate() {
        let ev = new_event(kind, NOW_MS - 40 + i as u64, &members, name);
        g = g.apply_own(&ev, &keys[by], now).unwrap().0;
    }
    let msg = pb::ChatMessage {
        clock: NOW_MS,
        timestamp: NOW_MS,
        text: "hi group".into(),
        chat_id: chat.clone(),
        message_type: 3,
        content_type: 1,
        ..Default::default()
    };
    let entity = pb::membership_update_message::ChatEntity::Message(msg);
    encode_membership_update(&chat, g.events(), Some(&entity))
}

fn group_message() -> Vec<u8> {
    let key = fixed_key(0).unwrap();
    status_sansio::chat::payloads::wrap(&group_message_bytes(), MessageKind::MembershipUpdateMessage, &key)
        .unwrap()
        .bytes
        .to_vec()
}

#[test]
fn chat_metadata_corpus() {
    let (wrappers, _) = payload_seeds();
    let mut rng = ChaCha20Rng::seed_from_u64(0x616d6d);
    for s in &wrappers {
        targets::chat_metadata(s);
    }
    for i in 0..1500 {
        let input = if i % 4 == 0 {
            noise(&mut rng, 300)
        } else {
            mutate(&mut rng, wrappers[i % wrappers.len()].clone())
        };
        targets::chat_metadata(&input);
    }
}

#[test]
fn chat_message_corpus() {
    let (_, bodies) = payload_seeds();
    let mut rng = ChaCha20Rng::seed_from_u64(0x63686d);
    for s in &bodies {
        targets::chat_message(s);
    }
    for i in 0..3000 {
        let input = if i % 4 == 0 {
            noise(&mut rng, 300)
        } else {
            mutate(&mut rng, bodies[i % bodies.len()].clone())
        };
        targets::chat_message(&input);
    }
}

#[test]
fn chat_membership_corpus() {
    let seed = group_message_bytes();
    let mut rng = ChaCha20Rng::seed_from_u64(0x67726f);
    targets::chat_membership(&seed);
    for i in 0..600 {
        let input = if i % 2 == 0 {
            noise(&mut rng, 400)
        } else {
            mutate(&mut rng, seed.clone())
        };
        targets::chat_membership(&input);
    }
}

/// One `chat_messenger` record.
fn record(mode: u8, tag: u8, bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![mode, tag];
    v.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    v.extend_from_slice(bytes);
    v
}

#[test]
fn chat_messenger_corpus() {
    // Real plaintexts a Messenger produced (1:1 text, group creation, group text, ACKs).
    let plaintexts = targets::messenger_seed_plaintexts();
    assert!(plaintexts.len() >= 3, "{} plaintexts", plaintexts.len());
    let mut seed: Vec<u8> = plaintexts.iter().flat_map(|p| record(0, 1, p)).collect();
    // A timer step, then a membership script by the admin (key 1): add key 3, make key 0 admin, with a
    // text (odd length); then a rename by a non-admin (key 2), which the fold rejects.
    seed.extend(record(2, 0, &[]));
    seed.extend(record(1, 1, &[1, 3, 3, 1, 1, 6, 0, 1, 9]));
    seed.extend(record(1, 2, &[2, 2, 2, 1]));
    let shown = targets::chat_messenger(&seed);
    assert!(
        shown >= 3,
        "the 1:1 text, the group text and the script's text are shown: {shown}"
    );
    let mut rng = ChaCha20Rng::seed_from_u64(0x6d7367);
    for i in 0..400 {
        let input = match i % 4 {
            0 => noise(&mut rng, 400),
            1 => {
                let p = &plaintexts[i % plaintexts.len()];
                record(0, (i % 4) as u8, &mutate(&mut rng, p.clone()))
            }
            _ => mutate(&mut rng, seed.clone()),
        };
        let _ = targets::chat_messenger(&input);
    }
}

#[test]
fn chat_messenger_import_corpus() {
    let seeds = status_sansio::fuzzing::seeds::generated("chat_messenger_import");
    assert_eq!(seeds.len(), 2);
    for s in &seeds {
        assert!(targets::chat_messenger_import(s), "an exported state imports");
    }
    let mut g = status_sansio::fuzzing::corpus::Generator::new(0x696d_706f);
    let mut imported = 0;
    for i in 0..300 {
        imported += usize::from(targets::chat_messenger_import(&g.input(i, &seeds, 3, 600)));
    }
    // Most mutations are refused (lengths, keys, signatures are checked); some survive (texts, clocks).
    eprintln!("{imported} of 300 mutated states imported");
}
