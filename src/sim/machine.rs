//! The machine contract of the simulator: what a simulated node is given and what it hands back
//! (docs/architecture.md "Simulation").

use std::fmt::Debug;

use super::NodeId;
use crate::time::Timestamp;

/// What a simulated machine hands the simulator.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SimOutput<E> {
    /// Send `bytes` to node `to` through the network model.
    Transmit {
        /// Destination.
        to: NodeId,
        /// The datagram (or stream chunk).
        bytes: Vec<u8>,
    },
    /// Send one segment of a reliable, ordered byte stream to node `to`: segments on a directed link
    /// arrive in sending order and are never duplicated; a loss drawn by the link model costs
    /// [`LinkModel::rto`](super::LinkModel::rto) of delay instead of the segment. A segment that cannot arrive (partition, link
    /// down, destination offline or absent) is handed back with [`Machine::handle_unreachable`].
    Stream {
        /// Destination.
        to: NodeId,
        /// The segment.
        bytes: Vec<u8>,
    },
    /// An application event, recorded with its time and node.
    Event(E),
}

/// A canonical byte encoding of a command or event for the trace digest (independent of `Debug`).
pub trait TraceEncode {
    /// Append the encoding to `out`.
    fn trace_encode(&self, out: &mut Vec<u8>);
}

impl TraceEncode for () {
    fn trace_encode(&self, _: &mut Vec<u8>) {}
}

impl TraceEncode for u32 {
    fn trace_encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

/// Append `bytes` with a little-endian `u64` length prefix (for [`TraceEncode`] implementations).
pub fn trace_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// A state machine the simulator can drive: the sans-IO shape of every machine in the crate. Times given
/// to it are its local clock (the virtual time plus its [`Sim::set_clock_skew`](super::Sim::set_clock_skew)); deadlines it returns are
/// on the same clock.
pub trait Machine {
    /// Application commands (send a message, add a peer, ...).
    type Command: Debug + TraceEncode;
    /// Application events.
    type Event: Debug + TraceEncode;
    /// Apply an application command.
    fn handle_command(&mut self, now: Timestamp, command: Self::Command);
    /// Bytes arrived from `from`.
    fn handle_receive(&mut self, now: Timestamp, from: NodeId, bytes: Vec<u8>);
    /// Fire every deadline `<= now`.
    fn handle_timeout(&mut self, now: Timestamp);
    /// The next output.
    fn poll_output(&mut self) -> Option<SimOutput<Self::Event>>;
    /// The earliest deadline.
    fn poll_timeout(&self) -> Option<Timestamp>;
    /// A stream segment sent to `to` could not arrive (see [`SimOutput::Stream`]). By default ignored.
    fn handle_unreachable(&mut self, _now: Timestamp, _to: NodeId, _bytes: Vec<u8>) {}
}

impl<M: Machine + ?Sized> Machine for Box<M> {
    type Command = M::Command;
    type Event = M::Event;
    fn handle_command(&mut self, now: Timestamp, command: Self::Command) {
        (**self).handle_command(now, command);
    }
    fn handle_receive(&mut self, now: Timestamp, from: NodeId, bytes: Vec<u8>) {
        (**self).handle_receive(now, from, bytes);
    }
    fn handle_timeout(&mut self, now: Timestamp) {
        (**self).handle_timeout(now);
    }
    fn poll_output(&mut self) -> Option<SimOutput<Self::Event>> {
        (**self).poll_output()
    }
    fn poll_timeout(&self) -> Option<Timestamp> {
        (**self).poll_timeout()
    }
    fn handle_unreachable(&mut self, now: Timestamp, to: NodeId, bytes: Vec<u8>) {
        (**self).handle_unreachable(now, to, bytes);
    }
}
