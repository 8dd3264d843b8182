use super::*;
use crate::mvds::{Mode, Schedule};
use std::time::Duration;

fn peer(n: u8) -> PeerId {
    PeerId::new(vec![n])
}

fn t(ms: u64) -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000 + ms)
}

fn node(n: u64, config: Config) -> Node {
    Node::new(config, &Seed::from_u64(n), t(0)).unwrap()
}

fn drain(node: &mut Node) -> (Vec<(PeerId, Payload)>, Vec<Event>) {
    let (mut tx, mut ev) = (vec![], vec![]);
    while let Some(o) = node.poll_output() {
        match o {
            Output::Transmit { peer, payload } => tx.push((peer, payload)),
            Output::Event(e) => ev.push(e),
        }
    }
    (tx, ev)
}

fn no_jitter() -> Config {
    Config {
        schedule: Schedule::Exponential {
            initial: 2,
            max: 8,
            jitter: 0,
        },
        ..Config::default()
    }
}

#[test]
fn batch_send_ack_delivered() {
    let g = GroupId([9; 32]);
    let mut a = node(1, no_jitter());
    let mut b = node(2, no_jitter());
    a.add_peer(g, peer(2)).unwrap();
    let id = a.send(t(10), g, b"hello".to_vec()).unwrap();
    // Nothing before the next epoch.
    assert!(drain(&mut a).0.is_empty());
    assert_eq!(a.poll_timeout(), Some(t(300)));
    a.handle_timeout(t(299));
    assert!(drain(&mut a).0.is_empty());
    a.handle_timeout(t(300));
    let (tx, _) = drain(&mut a);
    assert_eq!(tx.len(), 1);
    assert_eq!(tx[0].0, peer(2));
    assert_eq!(tx[0].1.messages[0].body, &b"hello"[..]);
    assert_eq!(a.state(&peer(2), &id).unwrap().send_epoch, 3);

    b.receive(t(350), peer(1), &tx[0].1.encode_to_vec());
    let (_, ev) = drain(&mut b);
    assert!(matches!(&ev[..], [Event::MessageReceived { message_id, .. }] if *message_id == id));
    assert_eq!(b.poll_timeout(), Some(t(600)));
    b.handle_timeout(t(600));
    let (tx, _) = drain(&mut b);
    assert_eq!(
        tx,
        vec![(
            peer(1),
            Payload {
                acks: vec![id],
                ..Payload::default()
            }
        )]
    );
    assert_eq!(b.poll_timeout(), None);

    a.receive_payload(t(700), peer(2), tx[0].1.clone());
    let (_, ev) = drain(&mut a);
    assert_eq!(
        ev,
        vec![Event::Delivered {
            peer: peer(2),
            message_id: id
        }]
    );
    assert_eq!(a.state_count(), 0);
    assert_eq!(a.poll_timeout(), None);
    // A second ACK finds nothing and is silent.
    a.receive_payload(t(800), peer(2), tx[0].1.clone());
    assert!(drain(&mut a).1.is_empty());
}

#[test]
fn duplicates_are_acked_again_but_delivered_once() {
    let g = GroupId([9; 32]);
    let mut b = node(2, Config::default());
    let m = Message::new(g, 1, b"x".to_vec());
    let p = Payload {
        messages: vec![m.clone()],
        ..Payload::default()
    };
    for round in 0..3u64 {
        b.receive_payload(t(round * 1000), peer(1), p.clone());
        b.handle_timeout(t(round * 1000 + 300));
        let (tx, ev) = drain(&mut b);
        assert_eq!(tx[0].1.acks, vec![m.id()], "round {round}");
        assert_eq!(ev.len(), usize::from(round == 0));
    }
    assert_eq!(b.stats().duplicates_received, 2);
}

#[test]
fn unknown_acks_do_not_stop_the_loop() {
    let g = GroupId([9; 32]);
    let mut a = node(1, Config::default());
    a.add_peer(g, peer(2)).unwrap();
    let id = a.send(t(0), g, b"m".to_vec()).unwrap();
    let p = Payload {
        acks: vec![MessageId([1; 32]), id],
        ..Payload::default()
    };
    a.receive_payload(t(10), peer(2), p);
    assert_eq!(a.state_count(), 0);
}

#[test]
fn backoff_then_give_up() {
    let g = GroupId([9; 32]);
    let config = Config {
        max_send_count: Some(3),
        ..no_jitter()
    };
    let mut a = node(1, config);
    a.add_peer(g, peer(2)).unwrap();
    let id = a.send(t(0), g, b"m".to_vec()).unwrap();
    let mut sends = vec![];
    let mut failed = false;
    while let Some(at) = a.poll_timeout() {
        a.handle_timeout(at);
        let (tx, ev) = drain(&mut a);
        if !tx.is_empty() {
            sends.push(a.epoch(at));
        }
        if ev
            == vec![Event::DeliveryFailed {
                peer: peer(2),
                message_id: id,
            }]
        {
            failed = true;
            assert_eq!(a.epoch(at), 1 + 2 + 4 + 8);
        }
    }
    assert_eq!(sends, [1, 3, 7]);
    assert!(failed);
    assert_eq!(a.state_count(), 0);
}

#[test]
fn interactive_offer_request_message_ack() {
    let g = GroupId([3; 32]);
    let config = Config {
        mode: Mode::Interactive,
        ..no_jitter()
    };
    let mut a = node(1, config.clone());
    let mut b = node(2, config);
    a.add_peer(g, peer(2)).unwrap();
    b.add_peer(g, peer(1)).unwrap();
    let id = a.send(t(0), g, b"i".to_vec()).unwrap();
    let mut now = t(0);
    let mut received = 0;
    let mut delivered = 0;
    for _ in 0..10 {
        now += Duration::from_millis(300);
        a.handle_timeout(now);
        b.handle_timeout(now);
        let (ta, ea) = drain(&mut a);
        let (tb, eb) = drain(&mut b);
        delivered += ea.iter().filter(|e| matches!(e, Event::Delivered { .. })).count();
        received += eb
            .iter()
            .filter(|e| matches!(e, Event::MessageReceived { .. }))
            .count();
        for (_, p) in ta {
            b.receive_payload(now, peer(1), p);
        }
        for (_, p) in tb {
            a.receive_payload(now, peer(2), p);
        }
        let (_, ea) = drain(&mut a);
        let (_, eb) = drain(&mut b);
        delivered += ea.iter().filter(|e| matches!(e, Event::Delivered { .. })).count();
        received += eb
            .iter()
            .filter(|e| matches!(e, Event::MessageReceived { .. }))
            .count();
    }
    assert_eq!((received, delivered), (1, 1));
    assert_eq!(a.state_count() + b.state_count(), 0);
    assert!(b.message(&id).is_some());
}

#[test]
fn a_stale_request_after_delivery_is_answered_without_a_second_delivered() {
    let g = GroupId([3; 32]);
    let config = Config {
        mode: Mode::Interactive,
        ..no_jitter()
    };
    let mut a = node(1, config);
    a.add_peer(g, peer(2)).unwrap();
    let id = a.send(t(0), g, b"i".to_vec()).unwrap();
    let request = Payload {
        requests: vec![id],
        ..Payload::default()
    };
    let ack = Payload {
        acks: vec![id],
        ..Payload::default()
    };
    a.receive_payload(t(400), peer(2), request.clone());
    a.receive_payload(t(500), peer(2), ack.clone());
    let (_, ev) = drain(&mut a);
    assert_eq!(
        ev,
        vec![Event::Delivered {
            peer: peer(2),
            message_id: id
        }]
    );
    // The duplicate REQUEST arrives late: the message is sent again, the ACK settles it quietly.
    a.receive_payload(t(600), peer(2), request);
    a.handle_timeout(t(900));
    let (tx, _) = drain(&mut a);
    assert_eq!(tx[0].1.messages.len(), 1);
    a.receive_payload(t(1000), peer(2), ack);
    assert_eq!(drain(&mut a).1, vec![]);
    assert_eq!(a.state_count(), 0);
}

#[test]
fn snapshot_round_trip_resumes_schedule() {
    let g = GroupId([4; 32]);
    let mut a = node(1, no_jitter());
    a.add_peer(g, peer(2)).unwrap();
    let id = a.send(t(0), g, b"persist".to_vec()).unwrap();
    a.handle_timeout(t(300));
    let snap = a.snapshot(t(400));
    let bytes = snap.encode_to_vec();
    let back = Snapshot::decode(&bytes).unwrap();
    assert_eq!(back, snap);
    let restored = Node::from_snapshot(no_jitter(), &Seed::from_u64(5), t(10_000), back).unwrap();
    assert_eq!(restored.state(&peer(2), &id), a.state(&peer(2), &id));
    assert_eq!(restored.message_count(), 1);
    // Due at epoch 3, restored at epoch 1 at t=10 s: 2 epochs later.
    assert_eq!(restored.poll_timeout(), Some(t(10_600)));
    assert!(Snapshot::decode(b"\xff").is_err());
    let tiny = Config {
        max_messages: 0,
        ..Config::default()
    };
    assert!(Node::from_snapshot(tiny, &Seed::from_u64(5), t(0), snap).is_err());
}

#[test]
fn caps_hold() {
    let g = GroupId([5; 32]);
    let config = Config {
        max_messages: 3,
        max_states: 1,
        max_remote_states: 1,
        max_groups: 1,
        max_peers_per_group: 1,
        max_body_bytes: 4,
        ..Config::default()
    };
    let mut a = node(1, config);
    assert_eq!(a.send(t(0), g, b"1".to_vec()), Err(MvdsError::NoPeers));
    assert_eq!(a.message_count(), 0);
    a.add_peer(g, peer(2)).unwrap();
    assert_eq!(a.add_peer(g, peer(3)), Err(MvdsError::TooManyPeers));
    assert_eq!(
        a.add_peer(GroupId([6; 32]), peer(2)),
        Err(MvdsError::TooManyGroups)
    );
    assert_eq!(a.send(t(0), g, vec![0u8; 5]), Err(MvdsError::BodyTooLarge(5)));
    let first = a.send(t(0), g, b"1".to_vec()).unwrap();
    assert_eq!(a.send(t(0), g, b"2".to_vec()), Err(MvdsError::StateFull));
    // Received messages fill the store; the oldest unreferenced ones are evicted, the message
    // with a pending record never is.
    for i in 0..5u8 {
        let m = Message::new(g, 1, vec![i]);
        a.receive_payload(
            t(1),
            peer(2),
            Payload {
                messages: vec![m],
                ..Payload::default()
            },
        );
        assert!(a.message_count() <= 3);
    }
    assert!(a.message(&first).is_some());
    assert!(a.message(&Message::new(g, 1, vec![4]).id()).is_some());
    assert!(a.message(&Message::new(g, 1, vec![0]).id()).is_none());
}

#[test]
fn config_validation() {
    assert_eq!(Config::default().validate(), Ok(()));
    let invalid = [
        Config {
            tick: Duration::ZERO,
            ..Config::default()
        },
        Config {
            max_send_count: Some(0),
            ..Config::default()
        },
        Config {
            max_messages: 70_000,
            ..Config::default()
        },
        Config {
            max_payload_bytes: 1024 * 1024,
            ..Config::default()
        },
        Config {
            max_body_bytes: 512 * 1024,
            ..Config::default()
        },
        Config {
            max_queued_outputs: 1,
            ..Config::default()
        },
        Config {
            max_pending_acks: 0,
            ..Config::default()
        },
        Config {
            schedule: Schedule::Exponential {
                initial: 0,
                max: 4,
                jitter: 0,
            },
            ..Config::default()
        },
    ];
    for c in invalid {
        assert!(
            matches!(
                Node::new(c.clone(), &Seed::from_u64(1), t(0)),
                Err(MvdsError::InvalidConfig(_))
            ),
            "{c:?}"
        );
    }
}

/// The review's attack: OFFERs from many sender ids used to fill the global record table, after
/// which every local send failed with `StateFull`.
#[test]
fn offer_floods_cannot_starve_local_sends() {
    let g = GroupId([7; 32]);
    let config = Config {
        max_states: 10,
        max_states_per_peer: 5,
        max_remote_states: 8,
        max_remote_states_per_peer: 4,
        ..Config::default()
    };
    let mut a = node(1, config);
    for p in 2..5 {
        a.add_peer(g, peer(p)).unwrap();
    }
    let flood = |k: u8| Payload {
        offers: (0..50u8).map(|i| MessageId([k ^ i; 32])).collect(),
        ..Payload::default()
    };
    // Strangers (sharing no group with us) create nothing.
    for p in 10..30 {
        a.receive_payload(t(1), peer(p), flood(p));
    }
    assert_eq!(a.state_count(), 0);
    assert_eq!(a.stats().offers_from_non_members, 20 * 50);
    // Members create REQUESTs within the peer quota only.
    for p in 2..5 {
        a.receive_payload(t(1), peer(p), flood(p));
    }
    assert_eq!(a.state_counts(), (0, 8));
    // A local send to the whole group still succeeds.
    let id = a.send(t(2), g, b"mine".to_vec()).unwrap();
    assert_eq!(a.state_counts(), (3, 8));
    for p in 2..5 {
        assert!(a.state(&peer(p), &id).is_some());
    }
    // A message from a non-member is accepted and ACKed, but not shared with the group.
    let m = Message::new(g, 9, b"theirs".to_vec());
    a.receive_payload(
        t(3),
        peer(40),
        Payload {
            messages: vec![m.clone()],
            ..Payload::default()
        },
    );
    assert!(a.message(&m.id()).is_some());
    assert_eq!(a.pending_acks(), (1, 1));
    assert_eq!(a.state_counts(), (3, 8));
}

#[test]
fn total_pending_acks_are_capped() {
    let g = GroupId([8; 32]);
    let config = Config {
        max_pending_acks: 5,
        max_pending_acks_per_peer: 3,
        ..Config::default()
    };
    let mut a = node(1, config);
    for p in 2..6u8 {
        let messages = (0..3u8).map(|i| Message::new(g, 1, vec![p, i])).collect();
        a.receive_payload(
            t(1),
            peer(p),
            Payload {
                messages,
                ..Payload::default()
            },
        );
    }
    // 12 messages received and delivered; only 5 ACKs queued, the rest dropped.
    assert_eq!(a.message_count(), 12);
    assert_eq!(a.pending_acks(), (2, 5));
    assert_eq!(a.stats().records_dropped, 7);
    a.handle_timeout(t(300));
    let (tx, ev) = drain(&mut a);
    assert_eq!(ev.len(), 12);
    assert_eq!(tx.iter().map(|(_, p)| p.acks.len()).sum::<usize>(), 5);
    assert_eq!(a.pending_acks(), (0, 0));
    // A retransmission of a message whose ACK was dropped is ACKed now.
    a.receive_payload(
        t(400),
        peer(5),
        Payload {
            messages: vec![Message::new(g, 1, vec![5, 0])],
            ..Payload::default()
        },
    );
    assert_eq!(a.pending_acks(), (1, 1));
}

#[test]
fn the_output_queue_never_exceeds_its_cap() {
    let g = GroupId([9; 32]);
    let cap = 4;
    let config = Config {
        max_queued_outputs: cap,
        max_send_count: Some(2),
        ..no_jitter()
    };
    let mut a = node(1, config);
    let mut ids = vec![];
    for p in 2..12 {
        a.add_peer(g, peer(p)).unwrap();
    }
    for i in 0..3u8 {
        ids.push(a.send(t(0), g, vec![i]).unwrap());
    }
    // Ten peers are due: only `cap` payloads are built; the rest wait.
    a.handle_timeout(t(300));
    assert_eq!(a.queued_outputs(), cap);
    // An ACK payload settling everything while the queue is full: settlements are deferred.
    for p in 2..12 {
        a.receive_payload(
            t(310),
            peer(p),
            Payload {
                acks: ids.clone(),
                messages: vec![Message::new(g, 2, vec![p])],
                ..Payload::default()
            },
        );
        assert_eq!(a.queued_outputs(), cap);
    }
    a.remove_peer(&g, &peer(11));
    assert_eq!(a.queued_outputs(), cap);
    assert!(a.stats().deferred > 0);
    // Never draining more than one output at a time, everything still completes: each obligation
    // ends in exactly one Delivered or DeliveryFailed.
    let mut outcomes = BTreeMap::new();
    let mut now = t(300);
    for _ in 0..2000 {
        if let Some(Output::Event(
            Event::Delivered { peer, message_id } | Event::DeliveryFailed { peer, message_id },
        )) = a.poll_output()
        {
            *outcomes.entry((peer, message_id)).or_insert(0) += 1;
        }
        if let Some(at) = a.poll_timeout() {
            now = now.max(at);
            a.handle_timeout(now);
        }
        assert!(a.queued_outputs() <= cap);
    }
    assert_eq!(outcomes.len(), 30);
    assert!(outcomes.values().all(|n| *n == 1));
    assert_eq!(a.state_count(), 0);
}

#[test]
fn the_incoming_size_cap_holds_for_decoded_payloads() {
    let config = Config {
        max_incoming_payload_bytes: 200 + 10 * 36,
        max_payload_bytes: 200,
        max_body_bytes: 100,
        max_records_per_payload: 10,
        ..Config::default()
    };
    let mut a = node(1, config);
    let p = Payload {
        acks: vec![MessageId([1; 32]); 20],
        ..Payload::default()
    };
    a.handle_input(
        t(0),
        Input::ReceivedPayload {
            from: peer(2),
            payload: p.clone(),
        },
    )
    .unwrap();
    a.receive(t(0), peer(2), &p.encode_to_vec());
    let (_, ev) = drain(&mut a);
    assert_eq!(ev.len(), 2);
    assert!(ev.iter().all(|e| matches!(
        e,
        Event::PayloadIgnored {
            reason: PayloadError::TooLarge(720),
            ..
        }
    )));
}

#[test]
fn a_bad_id_does_not_stop_the_messages_from_being_acked() {
    use prost::Message as _;
    let g = GroupId([2; 32]);
    let mut a = node(1, Config::default());
    let m = Message::new(g, 3, b"m".to_vec());
    let mut bytes = status_proto::mvds::Payload {
        acks: vec![Bytes::from_static(b"bad")],
        offers: vec![],
        requests: vec![Bytes::from_static(b"also bad")],
        messages: vec![m.to_proto()],
    }
    .encode_to_vec();
    // A STATUS-HEAD group offer with a bad id too.
    prost::encoding::message::encode(
        5005,
        &status_proto::mvds::Offer {
            group_id: Bytes::new(),
            message_ids: vec![Bytes::from_static(b"x")],
        },
        &mut bytes,
    );
    a.receive(t(0), peer(2), &bytes);
    assert_eq!(a.stats().ids_skipped, 2);
    let (_, ev) = drain(&mut a);
    assert!(matches!(&ev[..], [Event::MessageReceived { .. }]));
    a.handle_timeout(t(300));
    let (tx, _) = drain(&mut a);
    assert_eq!(tx[0].1.acks, [m.id()]);
}

#[test]
fn snapshots_with_absurd_values_are_rejected_or_cleaned() {
    let g = GroupId([4; 32]);
    let m = Message::new(g, 1, b"dup".to_vec());
    let huge = Snapshot {
        epoch: u64::MAX - 1,
        ..Snapshot::default()
    };
    assert_eq!(
        Node::from_snapshot(Config::default(), &Seed::from_u64(1), t(0), huge).err(),
        Some(MvdsError::BadSnapshot("epoch out of range"))
    );
    // The largest accepted epoch, a duplicate message and a record due at u64::MAX.
    let snap = Snapshot {
        epoch: MAX_SNAPSHOT_EPOCH,
        messages: vec![m.clone(), m.clone()],
        groups: vec![(g, vec![peer(2)])],
        states: vec![(
            peer(2),
            m.id(),
            SyncState {
                kind: RecordKind::Message,
                group: Some(g),
                send_count: u32::MAX,
                send_epoch: u64::MAX,
                notify: true,
                local: true,
            },
        )],
    };
    let mut a = Node::from_snapshot(no_jitter(), &Seed::from_u64(1), t(0), snap).unwrap();
    assert_eq!(a.message_count(), 1);
    assert_eq!(a.snapshot(t(0)).messages.len(), 1);
    let id = a.send(t(10), g, b"after".to_vec()).unwrap();
    a.handle_timeout(t(u64::MAX / 2));
    a.handle_timeout(Timestamp::from_millis(u64::MAX));
    let _ = drain(&mut a);
    assert!(a.poll_timeout().is_some() || a.state(&peer(2), &id).is_none());
    let orphan = Snapshot {
        states: vec![(
            peer(2),
            MessageId([1; 32]),
            SyncState {
                kind: RecordKind::Offer,
                group: Some(g),
                send_count: 0,
                send_epoch: 0,
                notify: true,
                local: true,
            },
        )],
        ..Snapshot::default()
    };
    assert!(Node::from_snapshot(Config::default(), &Seed::from_u64(1), t(0), orphan).is_err());
}

#[test]
fn interactive_send_count_spans_offer_and_message() {
    let g = GroupId([3; 32]);
    let config = Config {
        mode: Mode::Interactive,
        max_send_count: Some(3),
        ..no_jitter()
    };
    let mut a = node(1, config);
    a.add_peer(g, peer(2)).unwrap();
    let id = a.send(t(0), g, b"i".to_vec()).unwrap();
    a.handle_timeout(t(300));
    a.handle_timeout(t(900));
    assert_eq!(drain(&mut a).0.len(), 2);
    assert_eq!(a.state(&peer(2), &id).unwrap().send_count, 2);
    let request = Payload {
        requests: vec![id],
        ..Payload::default()
    };
    a.receive_payload(t(1000), peer(2), request);
    let s = a.state(&peer(2), &id).unwrap();
    assert_eq!((s.kind, s.send_count), (RecordKind::Message, 2));
    // One more transmission (the MESSAGE), then the give-up.
    let mut sends = 0;
    let mut failed = 0;
    while let Some(at) = a.poll_timeout() {
        a.handle_timeout(at);
        let (tx, ev) = drain(&mut a);
        sends += tx.len();
        failed += ev.len();
    }
    assert_eq!((sends, failed), (1, 1));
}

#[test]
fn remove_peer_reports_abandoned_obligations() {
    let g = GroupId([6; 32]);
    let mut a = node(1, no_jitter());
    a.add_peer(g, peer(2)).unwrap();
    a.add_peer(g, peer(3)).unwrap();
    let id = a.send(t(0), g, b"x".to_vec()).unwrap();
    a.remove_peer(&g, &peer(2));
    assert_eq!(
        drain(&mut a).1,
        vec![Event::DeliveryFailed {
            peer: peer(2),
            message_id: id
        }]
    );
    assert!(a.state(&peer(3), &id).is_some());
    assert_eq!(a.state_count(), 1);
}

#[test]
fn malformed_input_is_an_event() {
    let mut a = node(1, Config::default());
    a.handle_input(
        t(0),
        Input::Received {
            from: peer(9),
            bytes: Bytes::from_static(&[0xff, 0xff]),
        },
    )
    .unwrap();
    let (_, ev) = drain(&mut a);
    assert!(matches!(
        ev[..],
        [Event::PayloadIgnored {
            reason: PayloadError::Protobuf,
            ..
        }]
    ));
}

#[test]
fn the_id_of_a_send_is_computable_before_the_call() {
    let mut a = node(1, Config::default());
    let g = GroupId([3; 32]);
    let add = Input::AddPeer {
        group: g,
        peer: peer(2),
    };
    assert_eq!(a.handle_input(t(0), add), Ok(()));
    let body = Bytes::from_static(b"hello");
    let id = MessageId::for_send(&g, t(1_500), &body);
    assert!(a.message(&id).is_none());
    assert_eq!(a.handle_input(t(1_500), Input::Send { group: g, body }), Ok(()));
    assert_eq!(a.message(&id).map(Message::id), Some(id));
    assert_eq!(a.state(&peer(2), &id).map(|s| s.kind), Some(RecordKind::Message));
    let lonely = Input::Send {
        group: GroupId([4; 32]),
        body: Bytes::new(),
    };
    assert_eq!(a.handle_input(t(1_500), lonely), Err(MvdsError::NoPeers));
}
