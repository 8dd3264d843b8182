//! MVDS fuzz targets: the payload decoder and a node fed arbitrary payloads, commands and timer ticks.

use arbitrary::Unstructured;
use bytes::Bytes;

use crate::mvds::{
    Config, GroupId, Input, Message, MessageId, Mode, Node, Output, Payload, PeerId, Schedule, Snapshot,
};
use crate::rng::Seed;
use crate::time::Timestamp;

/// Decode arbitrary bytes as a payload, a message and a snapshot; whatever decodes re-encodes to bytes
/// that decode to the same value, and a node restored from a decoded snapshot runs a few epochs (sends,
/// timeouts, a removed peer) within its caps.
pub fn mvds_payload(data: &[u8]) {
    if let Ok(p) = Payload::decode(data) {
        let bytes = p.encode_to_vec();
        assert_eq!(bytes.len(), p.encoded_len());
        assert!(Payload::decode(&bytes).ok().as_ref() == Some(&p));
        assert_eq!(Payload::unwrap_datasync(data).is_some(), p.is_valid());
    }
    if let Ok(m) = Message::decode(data) {
        assert!(Message::decode(&m.encode_to_vec()).ok().as_ref() == Some(&m));
        let _ = m.id();
    }
    if let Ok(s) = Snapshot::decode(data) {
        assert!(Snapshot::decode(&s.encode_to_vec()).ok().as_ref() == Some(&s));
        let now = Timestamp::from_secs(1_700_000_000);
        if let Ok(mut node) = Node::from_snapshot(small_config(Mode::Batch), &Seed([1; 32]), now, s.clone()) {
            run_restored(&mut node, &s, now);
        }
    }
}

/// A few steps of a node restored from `snapshot`.
fn run_restored(node: &mut Node, snapshot: &Snapshot, mut now: Timestamp) {
    let config = node.config().clone();
    let groups: Vec<GroupId> = snapshot.groups.iter().map(|(g, _)| *g).collect();
    for (i, g) in groups.iter().enumerate().take(3) {
        let body = Bytes::from(vec![i as u8; 3]);
        let _ = node.handle_input(now, Input::Send { group: *g, body });
    }
    for step in 0..6u64 {
        if step == 3 {
            if let Some((g, peers)) = snapshot.groups.first() {
                if let Some(p) = peers.first() {
                    let removed = Input::RemovePeer {
                        group: *g,
                        peer: p.clone(),
                    };
                    assert!(node.handle_input(now, removed).is_ok());
                }
            }
        }
        now = node.poll_timeout().unwrap_or(now).max(now);
        node.handle_timeout(now);
        if let Some(t) = node.poll_timeout() {
            assert!(t > now);
        }
        check_caps(node, &config);
        while node.poll_output().is_some() {}
    }
}

fn check_caps(node: &Node, config: &Config) {
    assert!(node.queued_outputs() <= config.max_queued_outputs);
    assert!(node.message_count() <= config.max_messages);
    let (local, remote) = node.state_counts();
    assert!(local <= config.max_states && remote <= config.max_remote_states);
    assert_eq!(local + remote, node.state_count());
    assert!(node.group_count() <= config.max_groups);
    let (ack_peers, acks) = node.pending_acks();
    assert!(ack_peers <= config.max_ack_peers);
    assert!(acks <= config.max_pending_acks);
}

fn small_config(mode: Mode) -> Config {
    Config {
        mode,
        schedule: Schedule::Exponential {
            initial: 1,
            max: 16,
            jitter: 3,
        },
        max_send_count: Some(5),
        max_messages: 16,
        max_groups: 3,
        max_peers_per_group: 3,
        max_states: 8,
        max_states_per_peer: 4,
        max_remote_states: 6,
        max_remote_states_per_peer: 3,
        max_records_per_payload: 5,
        max_payload_bytes: 2048,
        max_incoming_payload_bytes: 4096,
        max_body_bytes: 16,
        max_pending_acks_per_peer: 4,
        max_ack_peers: 3,
        max_pending_acks: 7,
        max_queued_outputs: 12,
        ..Config::default()
    }
}

fn pick_id(u: &mut Unstructured<'_>, known: &[MessageId]) -> arbitrary::Result<MessageId> {
    if !known.is_empty() && u.arbitrary::<bool>()? {
        Ok(*u.choose(known)?)
    } else {
        Ok(MessageId([u.arbitrary::<u8>()?; 32]))
    }
}

fn group(u: &mut Unstructured<'_>) -> arbitrary::Result<GroupId> {
    Ok(GroupId([u.int_in_range(0..=3)?; 32]))
}

fn peer(u: &mut Unstructured<'_>) -> arbitrary::Result<PeerId> {
    Ok(PeerId::new(vec![u.int_in_range(0..=4u8)?]))
}

/// Drive a node with small caps through arbitrary received bytes, structured payloads, local commands
/// and timer ticks; the output queue is drained only when the script says so. Oracle: no panic, `Err`
/// never comes from received data, every cap (the output queue's included) holds after every step, a
/// payload never carries more records or bytes than allowed, and after `handle_timeout(now)` the next
/// deadline is in the future.
pub fn mvds_node(data: &[u8]) {
    let _ = run_node(&mut Unstructured::new(data));
}

fn run_node(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let mode = if u.arbitrary::<bool>()? {
        Mode::Interactive
    } else {
        Mode::Batch
    };
    let config = small_config(mode);
    let mut now = Timestamp::from_secs(1_700_000_000);
    let Ok(mut node) = Node::new(config.clone(), &Seed([u.arbitrary::<u8>()?; 32]), now) else {
        return Ok(());
    };
    let mut known: Vec<MessageId> = Vec::new();
    for _ in 0..200 {
        if u.is_empty() {
            break;
        }
        let mut drain = false;
        match u.int_in_range(0..=7u8)? {
            0 => {
                let len = u.int_in_range(0..=48usize)?;
                let bytes = Bytes::copy_from_slice(u.bytes(len)?);
                let r = node.handle_input(
                    now,
                    Input::Received {
                        from: peer(u)?,
                        bytes,
                    },
                );
                assert!(r == Ok(()));
            }
            1 => {
                let mut p = Payload::default();
                for _ in 0..u.int_in_range(0..=3)? {
                    p.acks.push(pick_id(u, &known)?);
                }
                for _ in 0..u.int_in_range(0..=2)? {
                    p.offers.push(pick_id(u, &known)?);
                }
                for _ in 0..u.int_in_range(0..=2)? {
                    p.requests.push(pick_id(u, &known)?);
                }
                for _ in 0..u.int_in_range(0..=3)? {
                    let n = u.int_in_range(0..=8)?;
                    let body = u.bytes(n)?.to_vec();
                    let m = Message::new(group(u)?, u.int_in_range(0..=3)?, body);
                    known.push(m.id());
                    p.messages.push(m);
                }
                let r = node.handle_input(
                    now,
                    Input::ReceivedPayload {
                        from: peer(u)?,
                        payload: p,
                    },
                );
                assert!(r == Ok(()));
            }
            2 => {
                let n = u.int_in_range(0..=24)?;
                let body = u.bytes(n)?.to_vec();
                let g = group(u)?;
                let id = MessageId::for_send(&g, now, &body);
                if node
                    .handle_input(
                        now,
                        Input::Send {
                            group: g,
                            body: body.into(),
                        },
                    )
                    .is_ok()
                {
                    known.push(id);
                }
            }
            3 => {
                let (group, peer) = (group(u)?, peer(u)?);
                let _ = node.handle_input(now, Input::AddPeer { group, peer });
            }
            4 => {
                let (group, peer) = (group(u)?, peer(u)?);
                assert!(node.handle_input(now, Input::RemovePeer { group, peer }).is_ok());
            }
            5 => {
                now += core::time::Duration::from_millis(u.int_in_range(0..=5_000)?);
                node.handle_timeout(now);
                if let Some(t) = node.poll_timeout() {
                    assert!(t > now);
                }
            }
            6 => {
                if let Some(t) = node.poll_timeout() {
                    now = now.max(t);
                    node.handle_timeout(now);
                }
            }
            _ => drain = true,
        }
        check_caps(&node, &config);
        if drain {
            while let Some(out) = node.poll_output() {
                if let Output::Transmit { payload, .. } = out {
                    let records = payload.acks.len()
                        + payload.offers.len()
                        + payload.requests.len()
                        + payload.messages.len();
                    assert!(records <= config.max_records_per_payload);
                    assert!(payload.is_valid());
                    assert!(payload.encoded_len() <= config.max_incoming_payload_bytes);
                }
            }
        }
        if known.len() > 64 {
            known.drain(..32);
        }
    }
    Ok(())
}
