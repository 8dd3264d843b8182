//! Invariants of a [`NetSim`] run, checked during a run ([`run_checked`]) and after it; each reports
//! the first violation with its virtual time and node (docs/architecture.md "Simulation").
//!
//! * [`exactly_once`]: every expected chat message reached each recipient exactly once;
//! * [`no_duplicate_deliveries`]: no node shows the same chat message (same id) twice;
//! * [`no_honest_fault_disconnects`]: no honest node dropped another honest node for a protocol fault;
//! * [`caps_respected`]: every engine's bounded state is within its configured caps (Waku pool, peer
//!   candidates and cache, connections).
//!
//! * `no_key_reuse` (crate feature `fuzzing`): no message key encrypted two different ciphertexts that
//!   left a Messenger, across crashes and restarts (from `persist::observe`).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::full::{NetSim, NodeEvent};
use super::NodeId;
use crate::chat::messenger;
use crate::crypto::pubkey_to_compressed;
use crate::discovery::peerpool as peers;
use crate::node::Event;
use crate::rlpx::DisconnectReason;
use crate::time::Timestamp;

/// The first violation of an invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// When (the end of the run for something that never happened).
    pub at: Timestamp,
    /// Where.
    pub node: NodeId,
    /// Which invariant, and what.
    pub what: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at {:?} on n{}: {}", self.at, self.node.0, self.what)
    }
}

impl std::error::Error for Violation {}

/// A chat message a recipient must receive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    /// The recipient.
    pub to: NodeId,
    /// The chat id as the recipient names it.
    pub chat: String,
    /// The text.
    pub text: String,
}

/// Chat messages received from others: `(time, node, chat, text, message id)`.
fn received(sim: &NetSim) -> impl Iterator<Item = (Timestamp, NodeId, &str, &str, [u8; 32])> + '_ {
    sim.events().iter().filter_map(|(t, n, e)| match e {
        NodeEvent::Engine(Event::Chat(messenger::Event::MessageReceived {
            chat,
            message,
            own: false,
        })) => Some((*t, *n, chat.as_str(), message.text.as_str(), message.id.0)),
        _ => None,
    })
}

/// Each expected message arrived exactly once at its recipient (run after the network healed).
pub fn exactly_once(sim: &NetSim, expected: &[Expected]) -> Result<(), Violation> {
    for e in expected {
        let got: Vec<Timestamp> = received(sim)
            .filter(|(_, n, c, t, _)| *n == e.to && *c == e.chat && *t == e.text)
            .map(|(t, ..)| t)
            .collect();
        match got.as_slice() {
            [_] => {}
            [] => {
                return Err(Violation {
                    at: sim.now(),
                    node: e.to,
                    what: format!("exactly once: {:?} in {:?} never arrived", e.text, e.chat),
                })
            }
            [_, second, ..] => {
                return Err(Violation {
                    at: *second,
                    node: e.to,
                    what: format!(
                        "exactly once: {:?} in {:?} arrived {} times",
                        e.text,
                        e.chat,
                        got.len()
                    ),
                })
            }
        }
    }
    Ok(())
}

/// No node received the same chat message (by id) twice.
pub fn no_duplicate_deliveries(sim: &NetSim) -> Result<(), Violation> {
    let mut seen: BTreeMap<(NodeId, [u8; 32]), ()> = BTreeMap::new();
    for (t, n, chat, text, id) in received(sim) {
        if seen.insert((n, id), ()).is_some() {
            return Err(Violation {
                at: t,
                node: n,
                what: format!("duplicate delivery of {text:?} in {chat:?}"),
            });
        }
    }
    Ok(())
}

/// The reasons that mean "you misbehaved".
fn is_fault(r: DisconnectReason) -> bool {
    matches!(
        r,
        DisconnectReason::ProtocolBreach | DisconnectReason::SubprotocolError | DisconnectReason::UselessPeer
    )
}

/// No honest node dropped (or was told it was dropped by) another honest node for a protocol fault.
/// Honest nodes are the hosts whose [`Host::honest`](super::full::Host::honest) is `true`, known by
/// their current engine's identity.
pub fn no_honest_fault_disconnects(sim: &NetSim) -> Result<(), Violation> {
    let honest: BTreeMap<[u8; 33], NodeId> = sim
        .nodes()
        .filter(|(_, h)| h.honest())
        .filter_map(|(n, h)| Some((pubkey_to_compressed(&h.engine()?.public_key()), n)))
        .collect();
    for (t, n, e) in sim.events() {
        let NodeEvent::Engine(Event::PeerDisconnected {
            id: Some(id), reason, ..
        }) = e
        else {
            continue;
        };
        let peer = honest.get(&pubkey_to_compressed(id));
        let me_honest = sim.node(*n).is_some_and(|h| h.honest());
        if let (Some(peer), true, true) = (peer, me_honest, is_fault(*reason)) {
            return Err(Violation {
                at: *t,
                node: *n,
                what: format!("honest peer n{} disconnected for a fault ({reason:?})", peer.0),
            });
        }
    }
    Ok(())
}

/// Every engine's bounded state is within its caps: the Waku pool within its configured size, the peer
/// candidates and cache within [`peers::MAX_CANDIDATES`] and [`peers::CACHE_SIZE`].
pub fn caps_respected(sim: &NetSim) -> Result<(), Violation> {
    for (n, h) in sim.nodes() {
        let Some(e) = h.engine() else {
            continue;
        };
        let pool = e.waku().pool();
        let checks = [
            ("waku pool", pool.len(), pool.config().max_envelopes),
            ("peer candidates", e.peer_candidates(), peers::MAX_CANDIDATES),
            ("peer cache", e.peer_cache_len(), peers::CACHE_SIZE),
        ];
        for (what, len, cap) in checks {
            if len > cap {
                return Err(Violation {
                    at: sim.now(),
                    node: n,
                    what: format!("cap: {what} holds {len}, more than {cap}"),
                });
            }
        }
    }
    Ok(())
}

/// Run `sim` until `until`, checking `check` every `every` of virtual time and at the end; the first
/// violation stops the run.
pub fn run_checked(
    sim: &mut NetSim,
    until: Timestamp,
    every: Duration,
    mut check: impl FnMut(&NetSim) -> Result<(), Violation>,
) -> Result<(), Violation> {
    let every = every.max(Duration::from_millis(1));
    while sim.now() < until {
        let next = (sim.now() + every).min(until);
        sim.run_until(next);
        check(sim)?;
    }
    check(sim)
}

/// No message key encrypted two different released ciphertexts ([`crate::persist::observe::key_reuse`]
/// over what was recorded since [`crate::persist::observe::start`]); `at` is the end of the run.
#[cfg(feature = "fuzzing")]
pub fn no_key_reuse(sim: &NetSim, seen: &crate::persist::observe::Observations) -> Result<(), Violation> {
    match crate::persist::observe::key_reuse(seen) {
        None => Ok(()),
        Some(r) => Err(Violation {
            at: sim.now(),
            node: NodeId(0),
            what: format!(
                "message key {} of chain {} encrypted two released ciphertexts",
                r.index,
                hex_prefix(&r.chain)
            ),
        }),
    }
}

#[cfg(feature = "fuzzing")]
fn hex_prefix(b: &[u8; 32]) -> String {
    b[..8].iter().map(|x| format!("{x:02x}")).collect()
}
