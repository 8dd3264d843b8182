//! The connection model of the simulator: TCP-like sockets between simulated hosts, carried as
//! [`SimOutput::Stream`](super::SimOutput::Stream) segments (docs/architecture.md "Simulation").
//!
//! A host listens on [`PORT`] of its address [`addr`]`(node)` (`10.x.y.z`, derived from the node index).
//! A dial sends a `Syn`; the other end accepts (`SynAck`) when it listens on that port, else refuses
//! (`Rst`). Data segments of one connection arrive in order (the simulator keeps every directed link in
//! order for segments); `Fin` closes, `Rst` resets. A segment the network cannot deliver (partition,
//! link down, host offline) comes back to the sender, which resets the connection (a dial fails): the
//! peer learns when its own next segment is refused or from its own timers, as with TCP. A dial that
//! hears nothing within [`Sockets::connect_timeout`] fails. Bytes written while a dial is in progress are
//! kept and sent once it connects. [`Sockets`] is the socket table every simulated host uses (full nodes
//! and adversaries alike).

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::NodeId;
use crate::time::{earliest, Timestamp};

/// The port every simulated host listens on.
pub const PORT: u16 = 30303;

/// The address of a simulated host: `10.x.y.z:30303` with `x.y.z` the index plus one.
pub fn addr(node: NodeId) -> SocketAddr {
    let n = (node.0 as u32).wrapping_add(1) & 0x00ff_ffff;
    let [_, a, b, c] = n.to_be_bytes();
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, a, b, c)), PORT)
}

/// The host behind an address made by [`addr`] (any port), if it is one.
pub fn node_of(addr: &SocketAddr) -> Option<NodeId> {
    match addr.ip() {
        IpAddr::V4(v4) => {
            let [ten, a, b, c] = v4.octets();
            let n = u32::from_be_bytes([0, a, b, c]);
            (ten == 10 && n > 0).then(|| NodeId(n as usize - 1))
        }
        IpAddr::V6(_) => None,
    }
}

/// One segment on the wire between two simulated hosts. `conn` is always the receiver's id of the
/// connection (the dialer's own id in a `Syn`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// Open a connection to `port`; `conn` is the dialer's id.
    Syn {
        /// The dialer's id.
        conn: u64,
        /// The port dialled.
        port: u16,
    },
    /// Accepted: `conn` is the dialer's id, `peer` the acceptor's.
    SynAck {
        /// The dialer's id.
        conn: u64,
        /// The acceptor's id.
        peer: u64,
    },
    /// Stream bytes.
    Data {
        /// The receiver's id.
        conn: u64,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Orderly close.
    Fin {
        /// The receiver's id.
        conn: u64,
    },
    /// Reset (or refusal of a `Syn`).
    Rst {
        /// The receiver's id.
        conn: u64,
    },
    /// The answer to data for a connection the receiver does not have (it was reset, or the host
    /// restarted): `conn` is the id the data was sent to, which the receiver of this segment knows as
    /// its peer's.
    NoConnection {
        /// The peer's (unknown) id.
        conn: u64,
    },
}

impl Segment {
    /// The wire encoding: a kind byte, the ids as big-endian `u64`, then the payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Segment::Syn { conn, port } => {
                out.push(1);
                out.extend_from_slice(&conn.to_be_bytes());
                out.extend_from_slice(&port.to_be_bytes());
            }
            Segment::SynAck { conn, peer } => {
                out.push(2);
                out.extend_from_slice(&conn.to_be_bytes());
                out.extend_from_slice(&peer.to_be_bytes());
            }
            Segment::Data { conn, bytes } => {
                out.push(3);
                out.extend_from_slice(&conn.to_be_bytes());
                out.extend_from_slice(bytes);
            }
            Segment::Fin { conn } => {
                out.push(4);
                out.extend_from_slice(&conn.to_be_bytes());
            }
            Segment::Rst { conn } => {
                out.push(5);
                out.extend_from_slice(&conn.to_be_bytes());
            }
            Segment::NoConnection { conn } => {
                out.push(6);
                out.extend_from_slice(&conn.to_be_bytes());
            }
        }
        out
    }

    /// Decode [`Segment::encode`]'s output (`None` for anything else).
    pub fn decode(b: &[u8]) -> Option<Segment> {
        let (&kind, rest) = b.split_first()?;
        let id = |r: &[u8]| -> Option<u64> { Some(u64::from_be_bytes(r.get(..8)?.try_into().ok()?)) };
        let conn = id(rest)?;
        let tail = rest.get(8..)?;
        Some(match kind {
            1 => Segment::Syn {
                conn,
                port: u16::from_be_bytes(tail.try_into().ok()?),
            },
            2 => Segment::SynAck {
                conn,
                peer: id(tail)?,
            },
            3 => Segment::Data {
                conn,
                bytes: tail.to_vec(),
            },
            4 => Segment::Fin { conn },
            5 => Segment::Rst { conn },
            6 => Segment::NoConnection { conn },
            _ => return None,
        })
    }
}

/// What happened to the host's sockets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocketEvent {
    /// A dial connected.
    Connected(u64),
    /// A dial was refused, timed out or could not reach its host.
    DialFailed(u64),
    /// An inbound connection was accepted and named `conn`.
    Accepted {
        /// Its id.
        conn: u64,
        /// The remote address.
        from: SocketAddr,
    },
    /// Bytes arrived.
    Data {
        /// Which connection.
        conn: u64,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// The connection ended (closed or reset by the peer, or unreachable).
    Closed(u64),
}

enum State {
    /// Dialling: give up at `deadline`; bytes written meanwhile.
    SynSent {
        deadline: Timestamp,
        buffered: Vec<Vec<u8>>,
    },
    Open {
        remote: u64,
    },
}

struct Socket {
    peer: NodeId,
    state: State,
}

/// A host's sockets: dials, accepted connections, the segments to send and the events to report.
pub struct Sockets {
    socks: BTreeMap<u64, Socket>,
    next_accept: u64,
    /// Accept inbound connections (`false`: every `Syn` is refused).
    pub listening: bool,
    /// How long a dial waits for an answer. Default 10 s.
    pub connect_timeout: Duration,
    segments: VecDeque<(NodeId, Vec<u8>)>,
    events: VecDeque<SocketEvent>,
}

impl Default for Sockets {
    fn default() -> Self {
        Sockets {
            socks: BTreeMap::new(),
            next_accept: 1,
            listening: true,
            connect_timeout: Duration::from_secs(10),
            segments: VecDeque::new(),
            events: VecDeque::new(),
        }
    }
}

impl Sockets {
    fn emit(&mut self, to: NodeId, s: Segment) {
        self.segments.push_back((to, s.encode()));
    }

    /// Dial `to` as connection `conn` (the caller's id; it must not be in use, and accepted ids are
    /// small numbers counting from 1, so dial ids should have a high bit set).
    pub fn dial(&mut self, now: Timestamp, conn: u64, to: SocketAddr) {
        let Some(peer) = node_of(&to).filter(|_| !self.socks.contains_key(&conn)) else {
            self.events.push_back(SocketEvent::DialFailed(conn));
            return;
        };
        self.socks.insert(
            conn,
            Socket {
                peer,
                state: State::SynSent {
                    deadline: now + self.connect_timeout,
                    buffered: vec![],
                },
            },
        );
        self.emit(
            peer,
            Segment::Syn {
                conn,
                port: to.port(),
            },
        );
    }

    /// Write bytes (kept until a dial connects; ignored on an unknown connection).
    pub fn send(&mut self, conn: u64, bytes: Vec<u8>) {
        let Some(s) = self.socks.get_mut(&conn) else {
            return;
        };
        match &mut s.state {
            State::SynSent { buffered, .. } => buffered.push(bytes),
            State::Open { remote } => {
                let (peer, conn) = (s.peer, *remote);
                self.emit(peer, Segment::Data { conn, bytes });
            }
        }
    }

    /// Close a connection after what was written (a dial in progress is abandoned).
    pub fn close(&mut self, conn: u64) {
        if let Some(s) = self.socks.remove(&conn) {
            if let State::Open { remote } = s.state {
                self.emit(s.peer, Segment::Fin { conn: remote });
            }
        }
    }

    /// Reset every connection (a crashing process: the peers see their connections reset).
    pub fn reset_all(&mut self) {
        for (_, s) in std::mem::take(&mut self.socks) {
            if let State::Open { remote } = s.state {
                self.emit(s.peer, Segment::Rst { conn: remote });
            }
        }
    }

    /// Forget every connection without a word (a host whose network vanished).
    pub fn forget_all(&mut self) {
        self.socks.clear();
    }

    /// Forget every connection and stop listening (a crashed host); ids are not reused afterwards.
    pub fn crash(&mut self) {
        self.reset_all();
        self.listening = false;
    }

    /// Open connections and dials in progress.
    pub fn len(&self) -> usize {
        self.socks.len()
    }

    /// `true` without connections.
    pub fn is_empty(&self) -> bool {
        self.socks.is_empty()
    }

    /// The host at the other end of `conn`.
    pub fn peer(&self, conn: u64) -> Option<NodeId> {
        self.socks.get(&conn).map(|s| s.peer)
    }

    /// A segment arrived from `from`.
    pub fn receive(&mut self, from: NodeId, bytes: &[u8]) {
        let Some(seg) = Segment::decode(bytes) else {
            return;
        };
        match seg {
            Segment::Syn { conn, port } => {
                if !self.listening || port != PORT {
                    self.emit(from, Segment::Rst { conn });
                    return;
                }
                let id = self.next_accept;
                self.next_accept += 1;
                self.socks.insert(
                    id,
                    Socket {
                        peer: from,
                        state: State::Open { remote: conn },
                    },
                );
                self.emit(from, Segment::SynAck { conn, peer: id });
                self.events.push_back(SocketEvent::Accepted {
                    conn: id,
                    from: addr(from),
                });
            }
            Segment::SynAck { conn, peer } => {
                let dialing = self
                    .socks
                    .get(&conn)
                    .is_some_and(|s| s.peer == from && matches!(s.state, State::SynSent { .. }));
                if !dialing {
                    // A late answer to a dial given up: reset the other end.
                    self.emit(from, Segment::Rst { conn: peer });
                    return;
                }
                let Some(s) = self.socks.get_mut(&conn) else {
                    return;
                };
                let old = std::mem::replace(&mut s.state, State::Open { remote: peer });
                self.events.push_back(SocketEvent::Connected(conn));
                if let State::SynSent { buffered, .. } = old {
                    for bytes in buffered {
                        self.emit(from, Segment::Data { conn: peer, bytes });
                    }
                }
            }
            Segment::Data { conn, bytes } => match self.socks.get(&conn) {
                Some(s) if s.peer == from && matches!(s.state, State::Open { .. }) => {
                    self.events.push_back(SocketEvent::Data { conn, bytes });
                }
                _ => self.emit(from, Segment::NoConnection { conn }),
            },
            Segment::NoConnection { conn } => {
                if let Some(local) = self.by_remote(from, conn) {
                    self.socks.remove(&local);
                    self.events.push_back(SocketEvent::Closed(local));
                }
            }
            Segment::Fin { conn } | Segment::Rst { conn } => {
                if let Some(s) = self.socks.get(&conn).filter(|s| s.peer == from) {
                    let dialing = matches!(s.state, State::SynSent { .. });
                    self.socks.remove(&conn);
                    self.events.push_back(if dialing {
                        SocketEvent::DialFailed(conn)
                    } else {
                        SocketEvent::Closed(conn)
                    });
                }
            }
        }
    }

    /// A segment we sent to `to` could not arrive: its connection fails.
    pub fn unreachable(&mut self, to: NodeId, bytes: &[u8]) {
        let Some(seg) = Segment::decode(bytes) else {
            return;
        };
        let local = match seg {
            Segment::Syn { conn, .. } => Some(conn),
            Segment::SynAck { peer, .. } => Some(peer),
            Segment::Data { conn, .. } => self.by_remote(to, conn),
            // The peer is gone already.
            Segment::Fin { .. } | Segment::Rst { .. } | Segment::NoConnection { .. } => None,
        };
        let Some(local) = local else {
            return;
        };
        if let Some(s) = self.socks.remove(&local) {
            self.events.push_back(match s.state {
                State::SynSent { .. } => SocketEvent::DialFailed(local),
                State::Open { .. } => SocketEvent::Closed(local),
            });
        }
    }

    fn by_remote(&self, peer: NodeId, remote: u64) -> Option<u64> {
        self.socks.iter().find_map(|(id, s)| match s.state {
            State::Open { remote: r } if r == remote && s.peer == peer => Some(*id),
            _ => None,
        })
    }

    /// Fail the dials past their deadline.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let late: Vec<u64> = self
            .socks
            .iter()
            .filter_map(|(id, s)| match s.state {
                State::SynSent { deadline, .. } if deadline <= now => Some(*id),
                _ => None,
            })
            .collect();
        for id in late {
            self.socks.remove(&id);
            self.events.push_back(SocketEvent::DialFailed(id));
        }
    }

    /// The earliest dial deadline.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.socks.values().fold(None, |t, s| match s.state {
            State::SynSent { deadline, .. } => earliest(t, Some(deadline)),
            State::Open { .. } => t,
        })
    }

    /// The next segment to send: `(to, bytes)`.
    pub fn poll_segment(&mut self) -> Option<(NodeId, Vec<u8>)> {
        self.segments.pop_front()
    }

    /// The next socket event.
    pub fn poll_event(&mut self) -> Option<SocketEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests;
