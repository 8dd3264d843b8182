//! Unit tests of the connection model.

use super::*;

fn t(ms: u64) -> Timestamp {
    Timestamp::from_millis(1_000_000 + ms)
}

/// Move every segment between two socket tables until both are quiet.
fn exchange(a: (NodeId, &mut Sockets), b: (NodeId, &mut Sockets)) {
    loop {
        let mut moved = false;
        while let Some((to, bytes)) = a.1.poll_segment() {
            assert_eq!(to, b.0);
            b.1.receive(a.0, &bytes);
            moved = true;
        }
        while let Some((to, bytes)) = b.1.poll_segment() {
            assert_eq!(to, a.0);
            a.1.receive(b.0, &bytes);
            moved = true;
        }
        if !moved {
            break;
        }
    }
}

fn events(s: &mut Sockets) -> Vec<SocketEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

#[test]
fn addresses_map_back_to_nodes() {
    for n in [0, 1, 255, 256, 70_000] {
        assert_eq!(node_of(&addr(NodeId(n))), Some(NodeId(n)));
    }
    assert_eq!(
        node_of(&"127.0.0.1:30303".parse().unwrap_or(addr(NodeId(0)))),
        None
    );
}

#[test]
fn segments_round_trip() {
    for s in [
        Segment::Syn {
            conn: 1 << 63,
            port: PORT,
        },
        Segment::SynAck { conn: 5, peer: 9 },
        Segment::Data {
            conn: 3,
            bytes: vec![1, 2, 3],
        },
        Segment::Fin { conn: 4 },
        Segment::Rst { conn: 6 },
        Segment::NoConnection { conn: 7 },
    ] {
        assert_eq!(Segment::decode(&s.encode()), Some(s));
    }
    assert_eq!(Segment::decode(&[9, 0]), None);
}

#[test]
fn dial_accept_send_close() {
    let (na, nb) = (NodeId(0), NodeId(1));
    let (mut a, mut b) = (Sockets::default(), Sockets::default());
    a.dial(t(0), 1 << 63, addr(nb));
    // Written before the dial connects: kept and sent after.
    a.send(1 << 63, b"early".to_vec());
    exchange((na, &mut a), (nb, &mut b));
    assert_eq!(events(&mut a), vec![SocketEvent::Connected(1 << 63)]);
    assert_eq!(
        events(&mut b),
        vec![
            SocketEvent::Accepted {
                conn: 1,
                from: addr(na)
            },
            SocketEvent::Data {
                conn: 1,
                bytes: b"early".to_vec()
            }
        ]
    );
    b.send(1, b"reply".to_vec());
    b.close(1);
    exchange((na, &mut a), (nb, &mut b));
    assert_eq!(
        events(&mut a),
        vec![
            SocketEvent::Data {
                conn: 1 << 63,
                bytes: b"reply".to_vec()
            },
            SocketEvent::Closed(1 << 63)
        ]
    );
    assert!(a.is_empty() && b.is_empty());
}

#[test]
fn refused_unreachable_and_timed_out_dials_fail() {
    let (na, nb) = (NodeId(0), NodeId(1));
    let (mut a, mut b) = (Sockets::default(), Sockets::default());
    b.listening = false;
    a.dial(t(0), 7, addr(nb));
    exchange((na, &mut a), (nb, &mut b));
    assert_eq!(events(&mut a), vec![SocketEvent::DialFailed(7)]);
    // Unreachable: the network hands the Syn back.
    a.dial(t(0), 8, addr(nb));
    let (_, syn) = a.poll_segment().unwrap_or((nb, vec![]));
    a.unreachable(nb, &syn);
    assert_eq!(events(&mut a), vec![SocketEvent::DialFailed(8)]);
    // No answer at all.
    a.dial(t(0), 9, addr(nb));
    assert_eq!(a.poll_timeout(), Some(t(0) + a.connect_timeout));
    a.handle_timeout(t(10_000));
    assert_eq!(events(&mut a), vec![SocketEvent::DialFailed(9)]);
}

#[test]
fn a_reset_reaches_the_peer() {
    let (na, nb) = (NodeId(0), NodeId(1));
    let (mut a, mut b) = (Sockets::default(), Sockets::default());
    a.dial(t(0), 1 << 63, addr(nb));
    exchange((na, &mut a), (nb, &mut b));
    events(&mut a);
    events(&mut b);
    a.reset_all();
    exchange((na, &mut a), (nb, &mut b));
    assert_eq!(events(&mut b), vec![SocketEvent::Closed(1)]);
}

#[test]
fn data_for_a_forgotten_connection_resets_the_sender() {
    let (na, nb) = (NodeId(0), NodeId(1));
    let (mut a, mut b) = (Sockets::default(), Sockets::default());
    a.dial(t(0), 1 << 63, addr(nb));
    exchange((na, &mut a), (nb, &mut b));
    events(&mut a);
    events(&mut b);
    // B freezes and forgets; A writes on.
    b.forget_all();
    a.send(1 << 63, b"hello?".to_vec());
    exchange((na, &mut a), (nb, &mut b));
    assert_eq!(events(&mut a), vec![SocketEvent::Closed(1 << 63)]);
    assert!(a.is_empty() && events(&mut b).is_empty());
}
