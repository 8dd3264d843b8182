//! The MVDS adapter: a [`Node`] as a simulated [`Machine`], addressed by [`NodeId`].

use super::{trace_bytes, Machine, NodeId, SimOutput, TraceEncode};
use crate::mvds::{Config, Event, Input, MvdsError, Node, Output, PeerId};
use crate::rng::Seed;
use crate::time::Timestamp;

/// The MVDS peer id of a simulated node: its index as 4 big-endian bytes.
pub fn peer_id(node: NodeId) -> PeerId {
    PeerId::new((node.0 as u32).to_be_bytes().to_vec())
}

/// The simulated node behind an MVDS peer id made by [`peer_id`].
pub fn node_id(peer: &PeerId) -> Option<NodeId> {
    let b: [u8; 4] = peer.as_bytes().try_into().ok()?;
    Some(NodeId(u32::from_be_bytes(b) as usize))
}

impl TraceEncode for Input {
    fn trace_encode(&self, out: &mut Vec<u8>) {
        match self {
            Input::Received { from, bytes } => {
                out.push(0);
                trace_bytes(out, from.as_bytes());
                trace_bytes(out, bytes);
            }
            Input::ReceivedPayload { from, payload } => {
                out.push(1);
                trace_bytes(out, from.as_bytes());
                trace_bytes(out, &payload.encode_to_vec());
            }
            Input::Send { group, body } => {
                out.push(2);
                trace_bytes(out, &group.0);
                trace_bytes(out, body);
            }
            Input::AddPeer { group, peer } => {
                out.push(3);
                trace_bytes(out, &group.0);
                trace_bytes(out, peer.as_bytes());
            }
            Input::RemovePeer { group, peer } => {
                out.push(4);
                trace_bytes(out, &group.0);
                trace_bytes(out, peer.as_bytes());
            }
        }
    }
}

impl TraceEncode for Event {
    fn trace_encode(&self, out: &mut Vec<u8>) {
        match self {
            Event::MessageReceived {
                from,
                message_id,
                message,
            } => {
                out.push(0);
                trace_bytes(out, from.as_bytes());
                trace_bytes(out, &message_id.0);
                trace_bytes(out, &message.encode_to_vec());
            }
            Event::Delivered { peer, message_id } => {
                out.push(1);
                trace_bytes(out, peer.as_bytes());
                trace_bytes(out, &message_id.0);
            }
            Event::DeliveryFailed { peer, message_id } => {
                out.push(2);
                trace_bytes(out, peer.as_bytes());
                trace_bytes(out, &message_id.0);
            }
            Event::PayloadIgnored { from, reason } => {
                out.push(3);
                trace_bytes(out, from.as_bytes());
                trace_bytes(out, reason.to_string().as_bytes());
            }
        }
    }
}

/// An MVDS node driven by the simulator. Payloads travel as their protobuf encoding; refused commands
/// are counted in [`MvdsEngine::refused`].
#[derive(Debug)]
pub struct MvdsEngine {
    /// The node.
    pub node: Node,
    /// Commands that returned `Err`.
    pub refused: u64,
}

impl MvdsEngine {
    /// A node with `config` (`Err` if the configuration is invalid).
    pub fn new(config: Config, seed: &Seed, now: Timestamp) -> Result<Self, MvdsError> {
        Ok(MvdsEngine {
            node: Node::new(config, seed, now)?,
            refused: 0,
        })
    }
}

impl Machine for MvdsEngine {
    type Command = Input;
    type Event = Event;

    fn handle_command(&mut self, now: Timestamp, command: Input) {
        if self.node.handle_input(now, command).is_err() {
            self.refused += 1;
        }
    }

    fn handle_receive(&mut self, now: Timestamp, from: NodeId, bytes: Vec<u8>) {
        let from = peer_id(from);
        self.node.receive(now, from, &bytes);
    }

    fn handle_timeout(&mut self, now: Timestamp) {
        self.node.handle_timeout(now);
    }

    fn poll_output(&mut self) -> Option<SimOutput<Event>> {
        loop {
            match self.node.poll_output()? {
                Output::Event(e) => return Some(SimOutput::Event(e)),
                Output::Transmit { peer, payload } => {
                    // A peer id that is not a simulated node has nowhere to go.
                    if let Some(to) = node_id(&peer) {
                        return Some(SimOutput::Transmit {
                            to,
                            bytes: payload.encode_to_vec(),
                        });
                    }
                }
            }
        }
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        self.node.poll_timeout()
    }
}
