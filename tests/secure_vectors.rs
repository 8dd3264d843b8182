#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Secure-transport vectors: the published X3DH key, the computed Double Ratchet composition, and the
//! status-go recorded conversation (bundles, X3DH, every Double Ratchet message) reproduced byte-exact.

use std::collections::VecDeque;

use prost::Message as _;
use serde_json::Value;
use status_proto::encryption as pb;
use status_sansio::crypto::{secret_from_bytes, SecretKey};
use status_sansio::secure::bundle::{signature_material, Bundle};
use status_sansio::secure::dh::{Curve, Secp256k1};
use status_sansio::secure::kdf::{self, Key32, MessageKeys};
use status_sansio::secure::ratchet::{Header, RatchetConfig, Session};
use status_sansio::secure::x3dh;
use status_sansio::Timestamp;

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn h(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

fn sk(v: &Value) -> SecretKey {
    secret_from_bytes(&h(v)).unwrap()
}

fn pk(v: &Value) -> <Secp256k1 as Curve>::PublicKey {
    Secp256k1::public_from_bytes(&h(v)).unwrap()
}

fn key32(v: &Value) -> Key32 {
    Key32::from_slice(&h(v)).unwrap()
}

/// An RNG that hands out recorded 32-byte draws in order (the reference's key generation reads 32 bytes).
struct ReplayRng(VecDeque<Vec<u8>>);

impl rand_core::RngCore for ReplayRng {
    fn next_u32(&mut self) -> u32 {
        panic!("unexpected draw")
    }
    fn next_u64(&mut self) -> u64 {
        panic!("unexpected draw")
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let next = self.0.pop_front().expect("no recorded draw left");
        assert_eq!(next.len(), dest.len());
        dest.copy_from_slice(&next);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl rand_core::CryptoRng for ReplayRng {}

const NOW: Timestamp = Timestamp::from_secs(1_700_000_000);

#[test]
fn x3dh_published_shared_key() {
    let v = load("x3dh_status_go.json");
    let p = &v["published"];
    let ascii = |k: &str| secret_from_bytes(p[k].as_str().unwrap().as_bytes()).unwrap();
    let (ika, eka, ikb, spkb) = (
        ascii("alice_identity_priv_ascii"),
        ascii("alice_ephemeral_priv_ascii"),
        ascii("bob_identity_priv_ascii"),
        ascii("bob_signed_prekey_priv_ascii"),
    );
    let d = &v["derived_by_researcher"];
    let pubc = |s: &SecretKey| Secp256k1::public_key(s);
    assert_eq!(pubc(&ika), pk(&d["alice_identity_pub_compressed"]));
    assert_eq!(pubc(&eka), pk(&d["alice_ephemeral_pub_compressed"]));
    assert_eq!(pubc(&ikb), pk(&d["bob_identity_pub_compressed"]));
    assert_eq!(pubc(&spkb), pk(&d["bob_signed_prekey_pub_compressed"]));
    assert_eq!(
        &Secp256k1::diffie_hellman(&ika, &pubc(&spkb)).unwrap()[..],
        &h(&d["dh1_IKa_SPKb"])[..]
    );
    assert_eq!(
        &Secp256k1::diffie_hellman(&eka, &pubc(&ikb)).unwrap()[..],
        &h(&d["dh2_EKa_IKb"])[..]
    );
    assert_eq!(
        &Secp256k1::diffie_hellman(&eka, &pubc(&spkb)).unwrap()[..],
        &h(&d["dh3_EKa_SPKb"])[..]
    );
    let expected = h(&p["shared_key"]);
    let a = x3dh::initiate::<Secp256k1>(&ika, &eka, &pubc(&ikb), &pubc(&spkb)).unwrap();
    let b = x3dh::respond::<Secp256k1>(&ikb, &spkb, &pubc(&ika), &pubc(&eka)).unwrap();
    assert_eq!(&a.as_bytes()[..], &expected[..]);
    assert_eq!(&b.as_bytes()[..], &expected[..]);
}

#[test]
fn computed_ratchet_composition() {
    let v = load("double_ratchet_status_computed.json");
    let x = &v["x3dh"];
    let sk_ab = x3dh::initiate::<Secp256k1>(
        &sk(&x["alice_identity_priv"]),
        &sk(&x["alice_ephemeral_priv"]),
        &pk(&x["bob_identity_pub"]),
        &pk(&x["bob_signed_prekey_pub"]),
    )
    .unwrap();
    assert_eq!(sk_ab, key32(&x["sk"]));

    for step in v["kdf_ck_chain_from_sk"].as_array().unwrap() {
        let (next, mk) = kdf::kdf_ck(&key32(&step["ck"]));
        assert_eq!(next, key32(&step["next_ck"]));
        assert_eq!(mk, key32(&step["mk"]));
    }

    let alice_r = sk(&v["alice_ratchet_priv"]);
    assert_eq!(Secp256k1::public_key(&alice_r), pk(&v["alice_ratchet_pub"]));
    let bob_spk = sk(&x["bob_signed_prekey_priv"]);
    let dh = Secp256k1::diffie_hellman(&alice_r, &pk(&x["bob_signed_prekey_pub"])).unwrap();
    assert_eq!(&dh[..], &h(&v["alice_init"]["dh_alice_r1_bob_spk"])[..]);
    let (root, send) = kdf::kdf_rk(&sk_ab, &dh);
    assert_eq!(root, key32(&v["alice_init"]["alice_root_after_init"]));
    assert_eq!(send, key32(&v["alice_init"]["alice_send_ck_after_init"]));

    let msgs = v["messages"].as_array().unwrap();
    let keys = MessageKeys::derive(&key32(&msgs[0]["mk"]));
    let (enc, auth, iv) = keys.parts();
    assert_eq!(enc.to_vec(), h(&msgs[0]["enc_keys"][0]));
    assert_eq!(auth.to_vec(), h(&msgs[0]["enc_keys"][1]));
    assert_eq!(iv.to_vec(), h(&msgs[0]["enc_keys"][2]));

    let cfg = RatchetConfig::default();
    let mut alice =
        Session::<Secp256k1>::initiator_with_key(&sk_ab, pk(&x["bob_signed_prekey_pub"]), alice_r).unwrap();
    let mut bob = Session::<Secp256k1>::responder(&sk_ab, bob_spk.clone());
    let mut sent = Vec::new();
    for m in &msgs[..2] {
        let (hd, ct) = alice
            .encrypt(m["plaintext_utf8"].as_str().unwrap().as_bytes())
            .unwrap();
        assert_eq!(hd.dh, pk(&m["header"]["dh"]));
        assert_eq!(hd.n as u64, m["header"]["n"].as_u64().unwrap());
        assert_eq!(hd.pn as u64, m["header"]["pn"].as_u64().unwrap());
        assert_eq!(hd.ad(), h(&m["ad"]));
        assert_eq!(ct, h(&m["ciphertext"]));
        sent.push((hd, ct));
    }
    // Bob receives the second message first; his next ratchet key is the fixed 0x35… key.
    let mut bob_rng = ReplayRng(VecDeque::from([h(&v["bob_ratchet_priv"])]));
    let pt = bob
        .decrypt(&sent[1].0, &sent[1].1, NOW, &cfg, &mut bob_rng)
        .unwrap();
    assert_eq!(&pt[..], b"second message");
    assert_eq!(bob.skipped_keys(), 1);
    let pt = bob
        .decrypt(&sent[0].0, &sent[0].1, NOW, &cfg, &mut bob_rng)
        .unwrap();
    assert_eq!(&pt[..], b"hello bob");
    let m = &msgs[2];
    let (hd, ct) = bob.encrypt(b"hi alice").unwrap();
    assert_eq!(hd.dh, pk(&m["header"]["dh"]));
    assert_eq!(hd.ad(), h(&m["ad"]));
    assert_eq!(ct, h(&m["ciphertext"]));
    let mut alice_rng = ReplayRng(VecDeque::from([vec![0x37; 32]]));
    assert_eq!(
        &alice.decrypt(&hd, &ct, NOW, &cfg, &mut alice_rng).unwrap()[..],
        b"hi alice"
    );

    // The responder sends first on CKs = SK.
    let r = &v["responder_sends_first"];
    let mut bob = Session::<Secp256k1>::responder(&sk_ab, bob_spk);
    let (hd, ct) = bob.encrypt(b"early").unwrap();
    assert_eq!(hd.dh, pk(&r["header"]["dh"]));
    assert_eq!(hd.ad(), h(&r["ad"]));
    assert_eq!(ct, h(&r["ciphertext"]));
    let alice_r = sk(&v["alice_ratchet_priv"]);
    let mut alice =
        Session::<Secp256k1>::initiator_with_key(&sk_ab, pk(&x["bob_signed_prekey_pub"]), alice_r).unwrap();
    let mut no_draws = ReplayRng(VecDeque::new());
    assert_eq!(
        &alice.decrypt(&hd, &ct, NOW, &cfg, &mut no_draws).unwrap()[..],
        b"early"
    );

    // DH-only mode.
    let d = &v["dh_only_mode"];
    let eph = sk(&d["ephemeral_priv"]);
    assert_eq!(Secp256k1::public_key(&eph), pk(&d["ephemeral_pub_compressed"]));
    let key = Secp256k1::diffie_hellman(&eph, &pk(&d["recipient_identity_pub_compressed"])).unwrap();
    assert_eq!(&key[..], &h(&d["key"])[..]);
    let nonce: [u8; 12] = h(&d["nonce"]).try_into().unwrap();
    let sealed = kdf::gcm_seal(&key, &nonce, d["plaintext_utf8"].as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(sealed, h(&d["payload"]));
    let back = Secp256k1::diffie_hellman(
        &sk(&d["recipient_identity_priv"]),
        &pk(&d["ephemeral_pub_compressed"]),
    )
    .unwrap();
    assert_eq!(&kdf::gcm_open(&back, &sealed).unwrap()[..], b"pair installation");
}

fn check_bundle(b: &Value, identity_priv: &Value) -> Bundle {
    let wire = h(&b["pb"]);
    let bundle = Bundle::decode(&wire, 3).unwrap();
    assert_eq!(bundle.identity, pk(&b["identity"]));
    assert_eq!(bundle.timestamp.to_string(), b["timestamp"].as_str().unwrap());
    let material = signature_material(&bundle.signed_pre_keys, bundle.timestamp);
    assert_eq!(material, h(&b["signature_material"]));
    assert_eq!(
        status_sansio::crypto::keccak256(&material).to_vec(),
        h(&b["signature_hash"])
    );
    assert_eq!(bundle.signature.to_vec(), h(&b["signature"]));
    // Re-signing with the identity key and the recorded timestamp reproduces the signature and the bytes.
    let resigned = Bundle::sign(
        &sk(identity_priv),
        bundle.signed_pre_keys.clone(),
        bundle.timestamp,
    )
    .unwrap();
    assert_eq!(resigned, bundle);
    assert_eq!(resigned.encode(), wire);
    for (id, spk) in b["signed_pre_keys"].as_object().unwrap() {
        let ours = &bundle.signed_pre_keys[id];
        assert_eq!(ours.signed_pre_key, pk(&spk["signed_pre_key"]));
        assert_eq!(ours.version as u64, spk["version"].as_u64().unwrap());
        assert_eq!(
            ours.protocol_version as u64,
            spk["protocol_version"].as_u64().unwrap()
        );
    }
    // A flipped signature byte is rejected.
    let mut bad = pb::Bundle::decode(&wire[..]).unwrap();
    let mut sig = bad.signature.to_vec();
    sig[10] ^= 1;
    bad.signature = sig.into();
    assert!(Bundle::from_proto(&bad, 3).is_err());
    bundle
}

#[test]
fn recorded_bundles_verify_and_resign_byte_exact() {
    let v = load("double_ratchet.json");
    check_bundle(&v["bob_bundle"], &v["bob"]["identity_priv"]);
    for m in v["messages"].as_array().unwrap() {
        let who = m["from"].as_str().unwrap();
        for b in m["bundles"].as_array().unwrap() {
            check_bundle(b, &v[who]["identity_priv"]);
        }
    }
}

/// Both parties of the recorded status-go conversation, driven from the recorded random draws: every
/// header, payload, entry and whole `ProtocolMessage` is reproduced byte-exact, and every message decrypts
/// to its plaintext in the recorded delivery order.
#[test]
fn recorded_conversation_reproduced_byte_exact() {
    let v = load("double_ratchet.json");
    let draws: Vec<Vec<u8>> = v["random_draws"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| h(&d["bytes"]))
        .collect();
    let alice_ik = sk(&v["alice"]["identity_priv"]);
    let bob_ik = sk(&v["bob"]["identity_priv"]);
    let bob_spk = sk(&v["bob"]["signed_prekey_priv"]);
    assert_eq!(h(&v["bob"]["signed_prekey_priv"]), draws[0]);
    let bob_spk_pub = Secp256k1::public_key(&bob_spk);

    // Alice: X3DH with draw 1 as the ephemeral key, then her sessions' ratchet keys 2, 5, 7.
    let eph = secret_from_bytes(&draws[1]).unwrap();
    let sk_a =
        x3dh::initiate::<Secp256k1>(&alice_ik, &eph, &Secp256k1::public_key(&bob_ik), &bob_spk_pub).unwrap();
    assert_eq!(sk_a, key32(&v["x3dh_shared_key"]));
    let mut alice_rng = ReplayRng(VecDeque::from([draws[5].clone(), draws[7].clone()]));
    let mut alice =
        Session::<Secp256k1>::initiator_with_key(&sk_a, bob_spk_pub, secret_from_bytes(&draws[2]).unwrap())
            .unwrap();
    // Bob: responder X3DH from the header of the first message; ratchet keys 4, 6, 8.
    let sk_b = x3dh::respond::<Secp256k1>(
        &bob_ik,
        &bob_spk,
        &Secp256k1::public_key(&alice_ik),
        &Secp256k1::public_key(&eph),
    )
    .unwrap();
    assert_eq!(sk_b, sk_a);
    let mut bob_rng = ReplayRng(VecDeque::from([
        draws[4].clone(),
        draws[6].clone(),
        draws[8].clone(),
    ]));
    let mut bob = Session::<Secp256k1>::responder(&sk_b, bob_spk.clone());

    let cfg = RatchetConfig::default();
    let msgs = v["messages"].as_array().unwrap();
    let mut built = 0usize;
    let mut alice_confirmed = false;
    for d in v["delivery_order"].as_array().unwrap() {
        let target = d.as_u64().unwrap() as usize;
        while built <= target {
            let m = &msgs[built];
            let from_alice = m["from"] == "alice";
            let (to_inst, session) = if from_alice {
                ("bob-device-A", &mut alice)
            } else {
                ("alice-device-A", &mut bob)
            };
            let (hd, ct) = session
                .encrypt(m["plaintext_utf8"].as_str().unwrap().as_bytes())
                .unwrap();
            let entry = &m["encrypted_message"][to_inst];
            assert_eq!(hd.dh, pk(&entry["dr_header"]["key"]), "message {built}");
            assert_eq!(hd.n as u64, entry["dr_header"]["n"].as_u64().unwrap());
            assert_eq!(hd.pn as u64, entry["dr_header"]["pn"].as_u64().unwrap());
            assert_eq!(ct, h(&entry["payload"]), "payload of message {built}");
            let x3dh_header = (from_alice && !alice_confirmed).then(|| pb::X3dhHeader {
                key: Secp256k1::public_key(&eph).to_bytes().to_vec().into(),
                id: bob_spk_pub.to_bytes().to_vec().into(),
            });
            let emp = pb::EncryptedMessageProtocol {
                x3dh_header,
                dr_header: Some(pb::DrHeader {
                    key: hd.dh.to_bytes().to_vec().into(),
                    n: hd.n,
                    pn: hd.pn,
                    id: bob_spk_pub.to_bytes().to_vec().into(),
                }),
                dh_header: None,
                hr_header: None,
                payload: ct.into(),
            };
            assert_eq!(emp.encode_to_vec(), h(&entry["pb"]), "entry of message {built}");
            let bundles = m["bundles"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| Bundle::decode(&h(&b["pb"]), 3).unwrap().to_proto())
                .collect();
            let whole = pb::ProtocolMessage {
                installation_id: m["installation_id"].as_str().unwrap().to_string(),
                bundles,
                encrypted_message: [(to_inst.to_string(), emp)].into_iter().collect(),
                public_message: Default::default(),
            };
            assert_eq!(
                whole.encode_to_vec(),
                h(&m["protocol_message_pb"]),
                "message {built}"
            );
            built += 1;
        }
        // Deliver from the recorded wire bytes.
        let m = &msgs[target];
        let wire = pb::ProtocolMessage::decode(&h(&m["protocol_message_pb"])[..]).unwrap();
        let from_alice = m["from"] == "alice";
        let (inst, session, rng) = if from_alice {
            ("bob-device-A", &mut bob, &mut bob_rng)
        } else {
            ("alice-device-A", &mut alice, &mut alice_rng)
        };
        let dr = wire.encrypted_message[inst].dr_header.clone().unwrap();
        let header = Header::<Secp256k1> {
            dh: Secp256k1::public_from_bytes(&dr.key).unwrap(),
            n: dr.n,
            pn: dr.pn,
        };
        let pt = session
            .decrypt(&header, &wire.encrypted_message[inst].payload, NOW, &cfg, rng)
            .unwrap();
        assert_eq!(pt.to_vec(), h(&m["plaintext"]), "delivery of message {target}");
        if !from_alice {
            alice_confirmed = true;
        }
    }
    assert_eq!(built, msgs.len());
    assert!(
        alice_rng.0.is_empty() && bob_rng.0.is_empty(),
        "every recorded draw was used"
    );
}

/// Bob's state machine, seeded with the recorded identity and signed prekey, opens Alice's recorded
/// messages from their wire bytes in the recorded (out-of-order) delivery order, up to Bob's first reply:
/// later Alice messages are encrypted to Bob's recorded ratchet keys, which the machine draws from its own
/// seeded RNG instead (the ratchet-level test above replays those draws).
#[test]
fn machine_receives_recorded_messages() {
    use status_sansio::secure::bundle::OwnSignedPreKey;
    use status_sansio::secure::{Config, Event, Input, Output, SecureTransport};
    let v = load("double_ratchet.json");
    let prekey = OwnSignedPreKey::from_secret(sk(&v["bob"]["signed_prekey_priv"]), 1, NOW);
    let mut bob = SecureTransport::with_signed_prekey(
        Config::default(),
        sk(&v["bob"]["identity_priv"]),
        "bob-device-A".into(),
        &status_sansio::Seed::from_u64(1),
        prekey,
    )
    .unwrap();
    let alice = secret_from_bytes(&h(&v["alice"]["identity_priv"]))
        .unwrap()
        .public_key();
    let msgs = v["messages"].as_array().unwrap();
    let mut opened = 0;
    for d in v["delivery_order"].as_array().unwrap() {
        let m = &msgs[d.as_u64().unwrap() as usize];
        if m["from"] != "alice" {
            break;
        }
        bob.handle_input(
            NOW,
            Input::Received {
                sender: alice,
                bytes: h(&m["protocol_message_pb"]),
            },
        )
        .unwrap();
        let mut got = None;
        while let Some(o) = bob.poll_output() {
            match o {
                Output::Event(Event::Decrypted {
                    plaintext,
                    installation_id,
                    ..
                }) => {
                    assert_eq!(installation_id, "alice-device-A");
                    got = Some(plaintext);
                }
                Output::Event(Event::PeerFault { fault: error, .. }) => panic!("rejected: {error}"),
                _ => {}
            }
        }
        assert_eq!(got.unwrap(), h(&m["plaintext"]));
        opened += 1;
    }
    assert_eq!(opened, 3);
}

#[test]
fn negotiated_secret_and_topic_names() {
    use status_sansio::secure::sharedsecret::*;
    let p = load("payloads.json");
    let n = &p["negotiated"];
    let a = sk(&n["a_priv"]);
    let b = sk(&n["b_priv"]);
    let s = negotiated_secret(&a, &b.public_key());
    assert_eq!(&s[..], &h(&n["shared_secret"])[..]);
    assert_eq!(*negotiated_secret(&b, &a.public_key()), *s);
    assert_eq!(
        hex::encode(topic(&negotiated_topic_name(&s))),
        n["topic"].as_str().unwrap()
    );
    assert_eq!(
        negotiated_chat_id(&b.public_key()),
        n["a_chat_id_for_b"].as_str().unwrap()
    );
    for k in p["per_public_key"].as_array().unwrap() {
        let pk = sk(&k["priv"]).public_key();
        assert_eq!(
            partitioned_topic_name(&pk),
            k["partitioned_string"].as_str().unwrap()
        );
        assert_eq!(
            hex::encode(topic(&partitioned_topic_name(&pk))),
            k["partitioned_topic"].as_str().unwrap()
        );
        assert_eq!(
            contact_code_topic_name(&pk),
            k["contact_code_string"].as_str().unwrap()
        );
        assert_eq!(
            hex::encode(topic(&contact_code_topic_name(&pk))),
            k["contact_code_topic"].as_str().unwrap()
        );
        assert_eq!(negotiated_chat_id(&pk), k["negotiated_chat_id"].as_str().unwrap());
    }
    let c = load("status_ids_topics_computed.json");
    let x = load("x3dh_status_go.json");
    let alice = secret_from_bytes(&h(&x["derived_by_researcher"]["alice_identity_priv"])).unwrap();
    let bob = secret_from_bytes(&h(&x["derived_by_researcher"]["bob_identity_priv"])).unwrap();
    let s = negotiated_secret(&alice, &bob.public_key());
    assert_eq!(&s[..], &h(&c["negotiated"]["shared_secret_ecdh_x"])[..]);
    assert_eq!(
        negotiated_topic_name(&s),
        c["negotiated"]["filter_name_hex"].as_str().unwrap()
    );
    assert_eq!(
        hex::encode(topic(&negotiated_topic_name(&s))),
        c["negotiated"]["topic"].as_str().unwrap()
    );
    assert_eq!(
        partitioned_topic_name(&alice.public_key()),
        c["topics"]["alice_partitioned"]["name"].as_str().unwrap()
    );
    assert_eq!(
        partitioned_topic_name(&bob.public_key()),
        c["topics"]["bob_partitioned"]["name"].as_str().unwrap()
    );
}

/// The signature rules documented in `secure` (module doc): recovery ids 0..=3 and 27..=30, high-S rejected.
#[test]
fn recover_accepts_legacy_v_and_rejects_high_s() {
    use k256::ecdsa::Signature;
    let key = status_sansio::fuzzing::secure::fixed_key(5);
    let digest = status_sansio::crypto::keccak256(b"bundle");
    let sig = status_sansio::crypto::sign_recoverable(&key, &digest).unwrap();
    let me = key.public_key();
    assert_eq!(status_sansio::crypto::recover(&sig, &digest).unwrap(), me);
    let mut legacy = sig;
    legacy[64] += 27;
    assert_eq!(status_sansio::crypto::recover(&legacy, &digest).unwrap(), me);
    // The same signature with s replaced by n - s (and the parity flipped) is valid ECDSA but high-S.
    let s = Signature::from_slice(&sig[..64]).unwrap();
    let high = Signature::from_scalars(s.r().to_bytes(), (-*s.s().as_ref()).to_bytes()).unwrap();
    let mut h = [0u8; 65];
    h[..64].copy_from_slice(&high.to_bytes());
    h[64] = sig[64] ^ 1;
    assert!(status_sansio::crypto::recover(&h, &digest).is_err());
}
