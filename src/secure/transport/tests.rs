use core::time::Duration;

use super::*;
use crate::crypto::SecretKey;

use crate::secure::dh::CompressedKey;

pub(crate) fn drain(m: &mut SecureTransport) -> (Vec<Outgoing>, Vec<Event>) {
    let (mut sends, mut events) = (Vec::new(), Vec::new());
    while let Some(o) = m.poll_output() {
        match o {
            Output::Transmit(s) => sends.push(s),
            Output::Event(e) => events.push(e),
        }
    }
    (sends, events)
}

fn identity(n: u8) -> SecretKey {
    SecretKey::from_slice(&[n; 32]).unwrap()
}

fn machine(id: u8, inst: &str, now: Timestamp) -> SecureTransport {
    SecureTransport::new(
        Config::default(),
        identity(id),
        inst.to_string(),
        &Seed::from_u64(u64::from(id)),
        now,
    )
    .unwrap()
}

fn deliver(to: &mut SecureTransport, from: &SecureTransport, msg: &Outgoing, now: Timestamp) -> Vec<Event> {
    to.handle_input(
        now,
        Input::Received {
            sender: *from.identity(),
            bytes: msg.bytes.clone(),
        },
    )
    .unwrap();
    drain(to).1
}

fn decrypted(events: &[Event]) -> Vec<Vec<u8>> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Decrypted { plaintext, .. } => Some(plaintext.clone()),
            _ => None,
        })
        .collect()
}

fn rejected(events: &[Event]) -> Vec<SecureError> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::PeerFault { fault: error, .. } => Some(error.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn first_contact_then_sessions_then_negotiated_topic() {
    let now = Timestamp::from_secs(1_700_000_000);
    let mut alice = machine(1, "alice-1", now);
    let mut bob = machine(2, "bob-1", now);
    let (alice_id, bob_id) = (*alice.identity(), *bob.identity());
    let s_ab = NegotiatedSecret::derive(&identity(1), &bob_id);
    assert_eq!(s_ab, NegotiatedSecret::derive(&identity(2), &alice_id));
    alice
        .handle_input(
            now,
            Input::Encrypt {
                recipient: bob_id,
                payload: b"hi".to_vec(),
            },
        )
        .unwrap();
    let (sends, events) = drain(&mut alice);
    // Listen on the negotiated topic before sending; ask for Bob's bundle; send DH-only, partitioned.
    assert_eq!(
        events,
        vec![
            Event::NegotiatedSecret {
                peer: bob_id,
                secret: s_ab.clone()
            },
            Event::BundleRequested { identity: bob_id }
        ]
    );
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].route, Route::Partitioned);
    let wire = pb::ProtocolMessage::decode(&sends[0].bytes[..]).unwrap();
    assert!(wire.encrypted_message[NO_INSTALLATION].dh_header.is_some());
    let ev = deliver(&mut bob, &alice, &sends[0], now);
    assert_eq!(decrypted(&ev), vec![b"hi".to_vec()]);
    assert!(ev.iter().any(|e| matches!(e, Event::NewInstallations { installation_ids, .. } if installation_ids == &["alice-1".to_string()])));
    assert!(ev.contains(&Event::NegotiatedSecret {
        peer: alice_id,
        secret: s_ab.clone()
    }));

    // Bob knows Alice's installation and has heard from it: X3DH + ratchet, on the negotiated topic.
    bob.handle_input(
        now,
        Input::Encrypt {
            recipient: alice_id,
            payload: b"yo".to_vec(),
        },
    )
    .unwrap();
    let (sends, events) = drain(&mut bob);
    assert!(events.is_empty(), "already announced: {events:?}");
    assert_eq!(sends[0].route, Route::Negotiated { secret: s_ab.clone() });
    let wire = pb::ProtocolMessage::decode(&sends[0].bytes[..]).unwrap();
    let entry = &wire.encrypted_message["alice-1"];
    assert!(entry.x3dh_header.is_some() && entry.dr_header.is_some());
    let ev = deliver(&mut alice, &bob, &sends[0], now);
    assert_eq!(decrypted(&ev), vec![b"yo".to_vec()]);
    assert_eq!(alice.session_count(), 1);

    // Alice answers on the same session (she was responder), on the negotiated topic.
    alice
        .handle_input(
            now,
            Input::Encrypt {
                recipient: bob_id,
                payload: b"again".to_vec(),
            },
        )
        .unwrap();
    let (sends, _) = drain(&mut alice);
    assert_eq!(sends[0].route, Route::Negotiated { secret: s_ab.clone() });
    assert_eq!(
        format!("{:?}", sends[0].route),
        "Negotiated { secret: NegotiatedSecret(..) }"
    );
    let ev = deliver(&mut bob, &alice, &sends[0], now);
    assert_eq!(decrypted(&ev), vec![b"again".to_vec()]);
    // Bob has heard from Alice's installation on this session: his X3DH header stops.
    bob.handle_input(
        now,
        Input::Encrypt {
            recipient: alice_id,
            payload: b"more".to_vec(),
        },
    )
    .unwrap();
    let (sends, _) = drain(&mut bob);
    let wire = pb::ProtocolMessage::decode(&sends[0].bytes[..]).unwrap();
    assert!(wire.encrypted_message["alice-1"].x3dh_header.is_none());
    assert_eq!(
        decrypted(&deliver(&mut alice, &bob, &sends[0], now)),
        vec![b"more".to_vec()]
    );
}

fn established(now: Timestamp) -> (SecureTransport, SecureTransport) {
    let mut alice = machine(1, "alice-1", now);
    let mut bob = machine(2, "bob-1", now);
    alice
        .handle_input(
            now,
            Input::AdvertiseBundle {
                recipient: *bob.identity(),
            },
        )
        .unwrap();
    let (s, _) = drain(&mut alice);
    deliver(&mut bob, &alice, &s[0], now);
    bob.handle_input(
        now,
        Input::AdvertiseBundle {
            recipient: *alice.identity(),
        },
    )
    .unwrap();
    let (s, _) = drain(&mut bob);
    deliver(&mut alice, &bob, &s[0], now);
    (alice, bob)
}

#[test]
fn bad_inputs_are_typed_events_and_change_nothing() {
    let now = Timestamp::from_secs(1_700_000_000);
    let (mut alice, mut bob) = established(now);
    let send = |m: &mut SecureTransport, to: PublicKey, p: &[u8]| {
        m.handle_input(
            now,
            Input::Encrypt {
                recipient: to,
                payload: p.to_vec(),
            },
        )
        .unwrap();
        drain(m).0.remove(0)
    };
    let m1 = send(&mut alice, *bob.identity(), b"one");
    assert_eq!(
        decrypted(&deliver(&mut bob, &alice, &m1, now)),
        vec![b"one".to_vec()]
    );
    let m2 = send(&mut alice, *bob.identity(), b"two");
    let before = bob.snapshot();

    let mut wire = pb::ProtocolMessage::decode(&m2.bytes[..]).unwrap();
    let orig = wire.clone();
    let tamper = |w: &pb::ProtocolMessage| Outgoing {
        recipient: m2.recipient,
        bytes: w.encode_to_vec(),
        route: Route::Partitioned,
    };
    // Wrong MAC.
    let e = wire.encrypted_message.get_mut("bob-1").unwrap();
    let mut p = e.payload.to_vec();
    let last = p.len() - 1;
    p[last] ^= 1;
    e.payload = p.into();
    assert_eq!(
        rejected(&deliver(&mut bob, &alice, &tamper(&wire), now)),
        vec![SecureError::BadMac]
    );
    assert_eq!(bob.snapshot(), before);
    // Truncated payload and truncated header key.
    let mut w = orig.clone();
    w.encrypted_message.get_mut("bob-1").unwrap().payload = Bytes::from_static(&[1, 2, 3]);
    assert_eq!(
        rejected(&deliver(&mut bob, &alice, &tamper(&w), now)),
        vec![SecureError::CiphertextTooShort]
    );
    assert_eq!(bob.snapshot(), before);
    let mut w = orig.clone();
    w.encrypted_message
        .get_mut("bob-1")
        .unwrap()
        .dr_header
        .as_mut()
        .unwrap()
        .key = Bytes::from_static(&[2, 3]);
    assert_eq!(
        rejected(&deliver(&mut bob, &alice, &tamper(&w), now)),
        vec![SecureError::InvalidPublicKey]
    );
    assert_eq!(bob.snapshot(), before);
    // 10,000 steps ahead.
    let mut w = orig.clone();
    w.encrypted_message
        .get_mut("bob-1")
        .unwrap()
        .dr_header
        .as_mut()
        .unwrap()
        .n = 10_000;
    assert_eq!(
        rejected(&deliver(&mut bob, &alice, &tamper(&w), now)),
        vec![SecureError::TooFarAhead]
    );
    assert_eq!(bob.snapshot(), before);
    // Unknown installation: an entry only for someone else.
    let mut w = orig.clone();
    let e = w.encrypted_message.remove("bob-1").unwrap();
    w.encrypted_message.insert("somebody-else".into(), e);
    let ev = deliver(&mut bob, &alice, &tamper(&w), now);
    assert_eq!(rejected(&ev), vec![SecureError::NoEntryForInstallation]);
    // The documented exception: the device-not-found advert (rate-limit record, RNG).
    let after = bob.snapshot();
    assert_eq!((&after.0, &after.2), (&before.0, &before.2));
    assert_ne!(after.1, before.1);
    let before = after;
    // A bundle with a bad signature.
    let mut w = orig.clone();
    let mut sig = w.bundles[0].signature.to_vec();
    sig[3] ^= 1;
    w.bundles[0].signature = sig.into();
    assert_eq!(
        rejected(&deliver(&mut bob, &alice, &tamper(&w), now)),
        vec![SecureError::BadBundleSignature]
    );
    assert_eq!(bob.snapshot(), before);
    // Garbage.
    let ev = deliver(
        &mut bob,
        &alice,
        &Outgoing {
            recipient: m2.recipient,
            bytes: vec![0xff; 7],
            route: Route::Public,
        },
        now,
    );
    assert_eq!(rejected(&ev), vec![SecureError::Decode]);
    assert_eq!(bob.snapshot(), before, "no rejected input changed the state");
    drain(&mut bob);

    // The genuine message still opens; its replay is rejected.
    assert_eq!(
        decrypted(&deliver(&mut bob, &alice, &m2, now)),
        vec![b"two".to_vec()]
    );
    let after = bob.snapshot();
    assert_eq!(
        rejected(&deliver(&mut bob, &alice, &m2, now)),
        vec![SecureError::DuplicateOrExpired]
    );
    assert_eq!(bob.snapshot(), after);
}

#[test]
fn export_import_mid_conversation_and_rotation() {
    let now = Timestamp::from_secs(1_700_000_000);
    let (mut alice, mut bob) = established(now);
    alice
        .handle_input(
            now,
            Input::Encrypt {
                recipient: *bob.identity(),
                payload: b"a".to_vec(),
            },
        )
        .unwrap();
    let m = drain(&mut alice).0.remove(0);
    deliver(&mut bob, &alice, &m, now);
    let saved = bob.export();
    let mut bob2 = SecureTransport::new(
        Config::default(),
        identity(2),
        "bob-1".into(),
        &Seed::from_u64(99),
        now,
    )
    .unwrap();
    bob2.import(&saved).unwrap();
    assert_eq!(*bob2.export(), *saved);
    alice
        .handle_input(
            now,
            Input::Encrypt {
                recipient: *bob.identity(),
                payload: b"b".to_vec(),
            },
        )
        .unwrap();
    let m = drain(&mut alice).0.remove(0);
    assert_eq!(
        decrypted(&deliver(&mut bob2, &alice, &m, now)),
        vec![b"b".to_vec()]
    );
    assert!(bob2.import(b"\x08\x07").is_err());

    // Rotation after 24 h; the old prekey still answers X3DH, a new session uses the new prekey.
    let day = Duration::from_secs(86_400);
    assert_eq!(bob2.poll_timeout(), Some(now + day));
    let later = now + day;
    bob2.handle_timeout(later);
    let b = bob2.bundle(later).unwrap();
    assert_eq!(b.signed_pre_keys["bob-1"].version, 2);
    bob2.handle_input(
        later,
        Input::Encrypt {
            recipient: *alice.identity(),
            payload: b"c".to_vec(),
        },
    )
    .unwrap();
    let m = drain(&mut bob2).0.remove(0);
    assert_eq!(
        decrypted(&deliver(&mut alice, &bob2, &m, later)),
        vec![b"c".to_vec()]
    );
    assert!(!format!("{bob2:?}").contains("secret"));
}

/// Regression: an imported state whose skipped-key store is inconsistent (repeated sequence numbers,
/// `keys_count` below them) or over a cap is rejected quickly and leaves the machine as it was.
#[test]
fn import_rejects_inconsistent_or_oversized_state() {
    let now = Timestamp::from_secs(1_700_000_000);
    let (mut alice, mut bob) = established(now);
    for p in [b"1", b"2", b"3"] {
        alice
            .handle_input(
                now,
                Input::Encrypt {
                    recipient: *bob.identity(),
                    payload: p.to_vec(),
                },
            )
            .unwrap();
    }
    let last = drain(&mut alice).0.pop().unwrap();
    assert_eq!(
        decrypted(&deliver(&mut bob, &alice, &last, now)),
        vec![b"3".to_vec()]
    );
    assert_eq!(bob.skipped_key_count(), 2);
    let saved = bob.export();
    let good = pb::SecureState::decode(&saved[..]).unwrap();
    let tight = Config {
        ratchet: RatchetConfig {
            max_skipped_keys: 1,
            ..RatchetConfig::default()
        },
        ..Config::default()
    };
    let mut small =
        SecureTransport::new(tight, identity(2), "bob-1".into(), &Seed::from_u64(3), now).unwrap();
    let small_before = small.export();
    let before = bob.export();
    let check = |m: &mut SecureTransport, st: &pb::SecureState, expect_before: &[u8]| {
        assert_eq!(m.import(&st.encode_to_vec()), Err(SecureError::InvalidState));
        assert_eq!(&m.export()[..], expect_before);
    };

    // Five skipped keys, all with seq 0, into a cap of 1 (used to hang) and of 2000.
    let mut st = good.clone();
    let r = st.sessions[0].ratchet.as_mut().unwrap();
    let k = r.skipped[0].clone();
    r.skipped = (0..5)
        .map(|n| pb::SkippedMessageKey {
            n: 100 + n,
            seq: 0,
            ..k.clone()
        })
        .collect();
    check(&mut small, &st, &small_before);
    check(&mut bob, &st, &before);
    // keys_count below the stored sequence numbers (used to create untracked keys later).
    let mut st = good.clone();
    st.sessions[0].ratchet.as_mut().unwrap().keys_count = 0;
    check(&mut bob, &st, &before);
    // Over the per-session cap of the importing machine.
    check(&mut small, &good, &small_before);
    // Repeated records.
    let mut st = good.clone();
    st.sessions.push(st.sessions[0].clone());
    check(&mut bob, &st, &before);
    let mut st = good.clone();
    st.installations.push(st.installations[0].clone());
    check(&mut bob, &st, &before);
    let mut st = good.clone();
    st.own_pre_keys.push(st.own_pre_keys[0].clone());
    check(&mut bob, &st, &before);
    let mut st = good.clone();
    st.agreed.push(st.agreed[0].clone());
    check(&mut bob, &st, &before);
    // An installation id over the limit.
    let mut st = good.clone();
    st.sessions[0].peer_installation_id = "x".repeat(bundle::MAX_INSTALLATION_ID_LEN + 1);
    check(&mut bob, &st, &before);

    // The genuine state still imports and round-trips.
    bob.import(&saved).unwrap();
    assert_eq!(*bob.export(), *saved);
}

/// Regression: a sender's installation id is capped like the ids inside bundles, on every path (a
/// stranger's DH-only message without bundles, an established session).
#[test]
fn long_sender_installation_ids_are_rejected() {
    let now = Timestamp::from_secs(1_700_000_000);
    let (mut alice, mut bob) = established(now);
    let long = "i".repeat(bundle::MAX_INSTALLATION_ID_LEN + 1);
    // A stranger without bundles, DH-only.
    let mut eve = machine(9, "eve-1", now);
    eve.handle_input(
        now,
        Input::EncryptDhOnly {
            recipient: *bob.identity(),
            payload: b"x".to_vec(),
        },
    )
    .unwrap();
    let m = drain(&mut eve).0.remove(0);
    let mut w = pb::ProtocolMessage::decode(&m.bytes[..]).unwrap();
    w.bundles.clear();
    w.installation_id = long.clone();
    let before = bob.export();
    let ev = deliver(
        &mut bob,
        &eve,
        &Outgoing {
            bytes: w.encode_to_vec(),
            ..m.clone()
        },
        now,
    );
    assert_eq!(
        ev,
        vec![Event::PeerFault {
            peer: *eve.identity(),
            fault: SecureError::InvalidInstallationId
        }]
    );
    // Exactly at the limit is accepted.
    w.installation_id = "i".repeat(bundle::MAX_INSTALLATION_ID_LEN);
    let ev = deliver(
        &mut bob,
        &eve,
        &Outgoing {
            bytes: w.encode_to_vec(),
            ..m
        },
        now,
    );
    assert_eq!(decrypted(&ev), vec![b"x".to_vec()]);
    assert_eq!(*bob.export(), *before, "no bundle, no agreement: nothing stored");
    // An established session.
    alice
        .handle_input(
            now,
            Input::Encrypt {
                recipient: *bob.identity(),
                payload: b"y".to_vec(),
            },
        )
        .unwrap();
    let m = drain(&mut alice).0.remove(0);
    let mut w = pb::ProtocolMessage::decode(&m.bytes[..]).unwrap();
    w.installation_id = long;
    let ev = deliver(
        &mut bob,
        &alice,
        &Outgoing {
            bytes: w.encode_to_vec(),
            ..m.clone()
        },
        now,
    );
    assert_eq!(rejected(&ev), vec![SecureError::InvalidInstallationId]);
    assert_eq!(*bob.export(), *before);
    assert_eq!(
        decrypted(&deliver(&mut bob, &alice, &m, now)),
        vec![b"y".to_vec()]
    );
}

/// `Input::Encrypt` is all or nothing: when the copy to our paired device fails, the message to the
/// recipient is not queued and no chain, session or RNG moved.
#[test]
fn event_debug_redacts_plaintexts() {
    let ev = Event::Decrypted {
        sender: identity(1).public_key(),
        installation_id: "i".into(),
        plaintext: b"attack at dawn".to_vec(),
    };
    let dbg = format!("{ev:?}");
    assert!(dbg.contains("plaintext_len: 14"), "{dbg}");
    assert!(!dbg.contains(&format!("{:?}", b"attack at dawn").replace(['[', ']'], "")));
    assert!(!dbg.contains("attack"));
}

#[test]
fn failed_encrypt_changes_nothing() {
    let now = Timestamp::from_secs(1_700_000_000);
    let (mut a1, bob) = established(now);
    let mut a2 = SecureTransport::new(
        Config::default(),
        identity(1),
        "a2".into(),
        &Seed::from_u64(77),
        now,
    )
    .unwrap();
    let me = *a1.identity();
    a2.handle_input(
        now,
        Input::EncryptDhOnly {
            recipient: me,
            payload: b"pair".to_vec(),
        },
    )
    .unwrap();
    let m = drain(&mut a2).0.remove(0);
    deliver(&mut a1, &a2, &m, now);
    a1.handle_input(
        now,
        Input::SetInstallationEnabled {
            identity: me,
            installation_id: "a2".into(),
            enabled: true,
        },
    )
    .unwrap();
    let send = |a1: &mut SecureTransport| {
        a1.handle_input(
            now,
            Input::Encrypt {
                recipient: *bob.identity(),
                payload: b"x".to_vec(),
            },
        )
    };
    send(&mut a1).unwrap();
    assert_eq!(drain(&mut a1).0.len(), 2);
    // Exhaust the sending chain of the session to a2 (through export/import).
    let mut st = pb::SecureState::decode(&a1.export()[..]).unwrap();
    let s = st
        .sessions
        .iter_mut()
        .find(|s| s.peer_installation_id == "a2")
        .unwrap();
    s.ratchet.as_mut().unwrap().ns = u32::MAX;
    a1.import(&st.encode_to_vec()).unwrap();
    let before = a1.snapshot();
    assert_eq!(send(&mut a1), Err(SecureError::CounterExhausted));
    assert_eq!(a1.queued_outputs(), 0, "the message to bob was not queued");
    assert_eq!(a1.snapshot(), before);
}

#[test]
fn multidevice_pairing_and_fan_out() {
    let now = Timestamp::from_secs(1_700_000_000);
    let mut a1 = machine(1, "a1", now);
    let mut a2 = SecureTransport::new(
        Config::default(),
        identity(1),
        "a2".into(),
        &Seed::from_u64(77),
        now,
    )
    .unwrap();
    let mut bob = machine(2, "bob-1", now);
    let me = *a1.identity();
    // a2 pairs: DH-only message to the own identity with its bundle.
    a2.handle_input(
        now,
        Input::EncryptDhOnly {
            recipient: me,
            payload: b"pair".to_vec(),
        },
    )
    .unwrap();
    let m = drain(&mut a2).0.remove(0);
    let ev = deliver(&mut a1, &a2, &m, now);
    assert_eq!(decrypted(&ev), vec![b"pair".to_vec()]);
    assert!(
        !a1.installations()
            .get(&CompressedKey::from_public(&me), "a2")
            .unwrap()
            .enabled
    );
    a1.handle_input(
        now,
        Input::SetInstallationEnabled {
            identity: me,
            installation_id: "a2".into(),
            enabled: true,
        },
    )
    .unwrap();
    assert!(a1
        .handle_input(
            now,
            Input::SetInstallationEnabled {
                identity: me,
                installation_id: "zz".into(),
                enabled: true
            }
        )
        .is_err());
    // Bob meets a1; a1's bundle now advertises a2 too.
    bob.handle_input(now, Input::AdvertiseBundle { recipient: me })
        .unwrap();
    let m = drain(&mut bob).0.remove(0);
    deliver(&mut a1, &bob, &m, now);
    a1.handle_input(
        now,
        Input::Encrypt {
            recipient: *bob.identity(),
            payload: b"fan".to_vec(),
        },
    )
    .unwrap();
    let (sends, _) = drain(&mut a1);
    assert_eq!(sends.len(), 2, "one to bob, one copy to our paired device");
    assert_eq!(sends[1].recipient, me);
    let ev = deliver(&mut bob, &a1, &sends[0], now);
    assert_eq!(decrypted(&ev), vec![b"fan".to_vec()]);
    assert!(bob
        .installations()
        .get(&CompressedKey::from_public(&me), "a2")
        .is_some());
    assert_eq!(
        decrypted(&deliver(&mut a2, &a1, &sends[1], now)),
        vec![b"fan".to_vec()]
    );
    // Bob's reply reaches both of Alice's devices.
    bob.handle_input(
        now,
        Input::Encrypt {
            recipient: me,
            payload: b"both".to_vec(),
        },
    )
    .unwrap();
    let (sends, _) = drain(&mut bob);
    let wire = pb::ProtocolMessage::decode(&sends[0].bytes[..]).unwrap();
    assert_eq!(
        wire.encrypted_message.keys().cloned().collect::<Vec<_>>(),
        vec!["a1".to_string(), "a2".to_string()]
    );
    assert_eq!(
        decrypted(&deliver(&mut a1, &bob, &sends[0], now)),
        vec![b"both".to_vec()]
    );
    assert_eq!(
        decrypted(&deliver(&mut a2, &bob, &sends[0], now)),
        vec![b"both".to_vec()]
    );
    // Disabling a2 on a1 stops the copies.
    a1.handle_input(
        now,
        Input::SetInstallationEnabled {
            identity: me,
            installation_id: "a2".into(),
            enabled: false,
        },
    )
    .unwrap();
    a1.handle_input(
        now,
        Input::Encrypt {
            recipient: *bob.identity(),
            payload: b"solo".to_vec(),
        },
    )
    .unwrap();
    assert_eq!(drain(&mut a1).0.len(), 1);
}

#[test]
fn device_not_found_advert_is_rate_limited() {
    let now = Timestamp::from_secs(1_700_000_000);
    let (mut alice, mut bob) = established(now);
    // Bob's new device knows nobody; Alice writes to bob-1 only.
    let mut bob_new = SecureTransport::new(
        Config::default(),
        identity(2),
        "bob-2".into(),
        &Seed::from_u64(5),
        now,
    )
    .unwrap();
    alice
        .handle_input(
            now,
            Input::Encrypt {
                recipient: *bob.identity(),
                payload: b"x".to_vec(),
            },
        )
        .unwrap();
    let m = drain(&mut alice).0.remove(0);
    deliver(&mut bob, &alice, &m, now);
    bob_new
        .handle_input(
            now,
            Input::Received {
                sender: *alice.identity(),
                bytes: m.bytes.clone(),
            },
        )
        .unwrap();
    let (sends, events) = drain(&mut bob_new);
    assert_eq!(rejected(&events), vec![SecureError::NoEntryForInstallation]);
    assert_eq!(sends.len(), 1, "bundle advert");
    bob_new
        .handle_input(
            now,
            Input::Received {
                sender: *alice.identity(),
                bytes: m.bytes.clone(),
            },
        )
        .unwrap();
    assert!(drain(&mut bob_new).0.is_empty(), "rate limited");
    // Alice learns bob-2 from the advert and includes it next time.
    deliver(&mut alice, &bob_new, &sends[0], now);
    alice
        .handle_input(
            now,
            Input::Encrypt {
                recipient: *bob.identity(),
                payload: b"y".to_vec(),
            },
        )
        .unwrap();
    let m = drain(&mut alice).0.remove(0);
    assert_eq!(
        decrypted(&deliver(&mut bob_new, &alice, &m, now)),
        vec![b"y".to_vec()]
    );
}

#[test]
fn caps_evict_and_skipped_keys_expire() {
    let now = Timestamp::from_secs(1_700_000_000);
    let config = Config {
        max_sessions: 2,
        max_total_skipped_keys: 30,
        ratchet: RatchetConfig {
            skipped_key_max_age: Duration::from_secs(600),
            ..RatchetConfig::default()
        },
        ..Config::default()
    };
    let mut bob = SecureTransport::new(
        config.clone(),
        identity(2),
        "bob-1".into(),
        &Seed::from_u64(2),
        now,
    )
    .unwrap();
    for id in [3u8, 4, 5] {
        let mut peer = SecureTransport::new(
            config.clone(),
            identity(id),
            format!("p{id}"),
            &Seed::from_u64(id.into()),
            now,
        )
        .unwrap();
        bob.handle_input(
            now,
            Input::AdvertiseBundle {
                recipient: *peer.identity(),
            },
        )
        .unwrap();
        let m = drain(&mut bob).0.remove(0);
        deliver(&mut peer, &bob, &m, now);
        let mut last = None;
        for _ in 0..20 {
            peer.handle_input(
                now,
                Input::Encrypt {
                    recipient: *bob.identity(),
                    payload: vec![id],
                },
            )
            .unwrap();
            last = drain(&mut peer).0.pop();
        }
        assert_eq!(
            decrypted(&deliver(&mut bob, &peer, &last.unwrap(), now)),
            vec![vec![id]]
        );
        assert!(bob.session_count() <= 2);
        assert!(bob.skipped_key_count() <= 30);
    }
    assert_eq!(bob.session_count(), 2);
    assert_eq!(bob.skipped_key_count(), 30);
    let expiry = now + Duration::from_secs(600);
    assert_eq!(bob.poll_timeout(), Some(expiry));
    bob.handle_timeout(expiry);
    assert_eq!(bob.skipped_key_count(), 0);
    assert_eq!(bob.poll_timeout(), Some(now + Duration::from_secs(86_400)));
}

#[test]
fn invalid_configuration_or_installation_id_is_an_error() {
    let now = Timestamp::from_secs(1_700_000_000);
    let config = Config {
        max_sessions: 0,
        ..Config::default()
    };
    let r = SecureTransport::new(config, identity(1), "a-1".into(), &Seed::from_u64(1), now);
    assert_eq!(r.err(), Some(SecureError::InvalidConfig("max_sessions is 0")));
    let long = "i".repeat(bundle::MAX_INSTALLATION_ID_LEN + 1);
    let r = SecureTransport::new(Config::default(), identity(1), long, &Seed::from_u64(1), now);
    assert_eq!(r.err(), Some(SecureError::InvalidInstallationId));
}
