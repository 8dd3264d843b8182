//! The node engine: RLPx connections and the Waku node composed into one sans-IO state machine
//! (docs/protocol/status-client.md: relayer and mobile-node roles, static peers).
//!
//! The driver owns sockets: it dials when asked ([`Output::Dial`]), reports the outcome
//! ([`Input::Connected`] / [`Input::DialFailed`]), reports inbound connections ([`Input::Accepted`]), moves
//! bytes ([`Input::Received`] / [`Output::Transmit`]) and closes when asked ([`Output::Close`]) or when the
//! socket ends ([`Input::Closed`]). Everything else is here:
//!
//! * one [`Connection`] per socket; when its Hello completes, the highest shared dialect (`waku/1`, else
//!   `shh/6`) is attached to the [`WakuNode`] as a peer;
//! * static peers are dialled at start and redialled after a failure or a disconnect, with exponential
//!   backoff (`reconnect_min` doubling to `reconnect_max`, with jitter from the seeded RNG), reset once a
//!   connection has lasted `stable_after`;
//! * more peers, up to `target_peers`, come from a cache of good peers and from discovery: EIP-1459 DNS
//!   trees walked by a [`DnsTreeClient`] inside the engine (the driver answers [`Output::ResolveTxt`] with
//!   [`Input::DnsResolved`]) and [`Input::AddPeerCandidate`]; discovery is suspended at the target and
//!   resumed below it (the rules are those of the [`PeerPool`](crate::discovery::PeerPool), which the
//!   engine drives and routes in `route_peers`);
//! * **admission**: inbound sockets still in their handshake (no Hello yet) have their own slots,
//!   `max_handshakes` in all and `max_handshakes_per_ip` from one address (the driver names it with
//!   [`Input::AcceptedFrom`]): a socket past the per-IP cap is closed at once, and when every slot is
//!   taken the oldest handshake of the address holding the most slots is closed to make room, so idle
//!   sockets cannot lock honest peers out. An inbound connection beyond `max_peers` *established*
//!   peers is refused with 0x04 once frames can carry it; a second connection to a node we are already
//!   connected to with 0x05. Outbound dials are never held back by inbound sockets: static peers and
//!   mailservers are always dialled, discovery candidates while established peers plus our dials are
//!   below `max_peers`. A peer we drop for a protocol fault (reasons 0x02 and 0x10), and its address,
//!   are refused for `fault_backoff` (inbound sockets from the address are closed at once; its key is
//!   refused with 0x03 after the handshake); every connection from the address shares one Waku rate
//!   budget and pool share (`WakuNode::set_peer_source`). Loopback addresses are exempt from the
//!   address back-off and the address grouping (local tools and tests run many nodes on one address;
//!   the per-address handshake cap still applies);
//! * application commands go to the Waku node ([`Input::Waku`], [`Engine::unused_subscription_id`]), and its events come
//!   out as [`Event::Waku`];
//! * with `messenger` set, the [`Messenger`] runs on top: its subscriptions and posts go to the Waku node,
//!   the messages its filters open come back to it, its timers (MVDS retransmission) run with the
//!   engine's, and its events come out as [`Event::Chat`]; [`Engine::with_messenger`] starts with a
//!   resumed one ([`Messenger::import`] of [`Engine::export_messenger`]);
//! * with `mailserver` set, every accepted envelope is archived and history requests are answered by the
//!   [`MailServer`], whose storage actions come out unchanged as [`Output::Storage`] (a
//!   [`StorageOp`]) for the driver to carry out;
//! * with `mailservers` set, they are dialled like static peers, trusted, and asked for the history of
//!   the watched topics on every (re)connect (`history`; events as [`Event::History`]).
//!
//! * a dial not reported connected within [`EngineConfig::dial_timeout`] has failed: the engine emits
//!   [`Output::Close`] for it (the driver cancels the dial) and [`Event::DialTimedOut`].
//!
//! Misuse and invalid configuration are returned as [`NodeError`] (or the layer's own error); what a
//! layer refuses while the engine routes to it comes out as [`Event::LayerError`]. Connection ids are
//! chosen by the engine for dials and by the driver for accepted sockets; the two ranges never meet
//! (dials use ids with the top bit set).
//!
//! # Routing
//!
//! The engine routes: one function per edge, each a `match` on one layer's typed output (`node/routing.rs`).
//! An input to a layer is followed at once by the routing of that layer's outputs, so nothing is polled
//! that has nothing to say. Hops of one received packet that the Messenger opens, from
//! `handle_input(Received)` to [`Event::Chat`], with `N` connections:
//!
//! * **before** (a fixed-point `pump` over every layer with a `moved` flag): 6 calls that move it
//!   (`rlpx.handle_input`, `rlpx.poll_output`, `waku.handle_input`, `waku.poll_output`,
//!   `messenger.handle_input`, `messenger.poll_output`) plus `N + 4` empty polls in the round that moved
//!   it and `N + 4` more in the quiet round that ended the loop: `2N + 14` layer calls in 2 passes over
//!   every layer (16 with one connection);
//! * **after**: the same 6 calls plus one empty poll of each of the 3 layers on the path
//!   (`route_conn` → `route_waku` → `route_messenger`): 9 layer calls, whatever `N`.

mod admission;
mod config;
mod engine;
mod error;
mod events;
mod history;
mod routing;

pub use crate::discovery::peerpool::{
    CACHE_SIZE as PEER_CACHE_SIZE, MAX_CACHE_BYTES as MAX_PEER_CACHE_BYTES,
    MAX_CANDIDATES as MAX_PEER_CANDIDATES, MAX_STATIC_PEERS,
};
pub use crate::mailserver::client::{Event as HistoryEvent, HistoryConfig};
pub use crate::mailserver::StorageOp;
pub use admission::MAX_BACKOFF_ENTRIES;
pub use config::EngineConfig;
pub use engine::{Engine, MailserverStats};
pub use error::{LayerError, NodeError};
pub use events::{ConnId, Event, Input, Output, DIAL_ID_BIT};

#[cfg(doc)]
use crate::chat::messenger::Messenger;
#[cfg(doc)]
use crate::discovery::dnstree::DnsTreeClient;
#[cfg(doc)]
use crate::mailserver::server::MailServer;
#[cfg(doc)]
use crate::rlpx::Connection;
#[cfg(doc)]
use crate::waku::WakuNode;
use engine::Conn;
