//! Routing between the layers (docs/protocol/status-client.md; docs/architecture.md "The engine"): one
//! function per edge, each a `match` on one layer's typed output, the way quinn passes endpoint and
//! connection events explicitly. An input to a layer is followed at once by the routing of that layer's
//! outputs, so a received byte travels up (socket → RLPx → Waku → Messenger → application) in one pass
//! and nothing is polled that has nothing to say. What a layer refuses is reported as
//! [`Event::LayerError`]; nothing is dropped silently.
//!
//! | edge | function | goes to |
//! |---|---|---|
//! | RLPx connection | [`Engine::route_conn`] | socket transmit / close, Waku packet, peer up / down |
//! | Waku node | [`Engine::route_waku`] | RLPx send / disconnect, Messenger, mailserver, history, app event |
//! | Messenger | [`Engine::route_messenger`] | Waku post / subscribe / unsubscribe, app event |
//! | mailserver server | [`Engine::route_mailserver`] | storage op for the driver, Waku P2P send |
//! | history client | [`Engine::route_history`](super::history) | Waku P2P request, app event |
//! | DNS tree client | [`Engine::route_dns`] | resolve request for the driver, peer candidate |
//! | peer pool | [`Engine::route_peers`] | dials, dial timeouts, disconnects, discovery suspend / resume |

use super::admission::ip_source;
use super::{ConnId, Engine, Event, LayerError, Output};
use crate::chat::messenger;
use crate::discovery::{dnstree, peerpool, NodeId};
use crate::mailserver::server as mailserver;
use crate::rlpx::{self, DisconnectReason};
use crate::time::Timestamp;
use crate::waku::{self, Dialect};

impl Engine {
    /// Report what a layer refused.
    pub(super) fn report(&mut self, e: LayerError) {
        self.outputs.push_back(Output::Event(Event::LayerError(e)));
    }

    /// Ask connection `conn` to disconnect with `reason` (routed by the caller).
    pub(super) fn disconnect(&mut self, now: Timestamp, conn: ConnId, reason: DisconnectReason) {
        if let Some(c) = self.conns.get_mut(&conn) {
            if let Err(error) = c.rlpx.handle_input(now, rlpx::Input::Disconnect(reason)) {
                self.report(LayerError::Rlpx { conn, error });
            }
        }
    }

    /// Edge RLPx connection → engine: admission, then every output of `conn` (none while it dials).
    pub(super) fn route_conn(&mut self, now: Timestamp, conn: ConnId) {
        self.refuse_if_due(now, conn);
        while let Some(o) =
            self.conns
                .get_mut(&conn)
                .and_then(|c| if c.dialing() { None } else { c.rlpx.poll_output() })
        {
            match o {
                rlpx::Output::Transmit(data) => self.outputs.push_back(Output::Transmit { conn, data }),
                rlpx::Output::Close => {
                    let gone = self.conns.remove(&conn);
                    self.outputs.push_back(Output::Close { conn });
                    // The pool hears of the end of what it dialled and of what it was told is up.
                    let reported = gone.and_then(|c| {
                        let inbound = c.id.filter(|_| c.pooled).map(|k| NodeId::from_public_key(&k));
                        c.origin.or(inbound)
                    });
                    if let Some(id) = reported {
                        self.peer_input(now, peerpool::Input::Disconnected { id });
                    }
                }
                rlpx::Output::Event(rlpx::Event::Connected {
                    remote_id,
                    hello,
                    capabilities,
                }) => {
                    if let Some(reason) = self.refuse_on_hello(conn, &remote_id) {
                        self.disconnect(now, conn, reason);
                        continue;
                    }
                    // The highest shared dialect, from the typed capabilities.
                    let dialect = [Dialect::Waku1, Dialect::Whisper6].into_iter().find(|d| {
                        capabilities
                            .iter()
                            .any(|c| c.name.as_str() == d.capability() && c.version == d.version())
                    });
                    self.peer_up(now, conn, remote_id, dialect);
                    self.outputs.push_back(Output::Event(Event::PeerConnected {
                        conn,
                        id: remote_id,
                        client: hello.client_id,
                        dialect,
                    }));
                }
                rlpx::Output::Event(rlpx::Event::Message { code, payload, .. }) => {
                    let packet = waku::Input::Packet {
                        peer: conn,
                        code,
                        data: payload,
                    };
                    if let Err(e) = self.waku.handle_input(now, packet) {
                        self.report(LayerError::Waku(e));
                    }
                    self.route_waku(now);
                }
                rlpx::Output::Event(rlpx::Event::Disconnected { reason, remote, .. }) => {
                    let id = self.conns.get(&conn).and_then(|c| c.id);
                    self.note_fault(now, conn, reason, remote);
                    self.history_peer_gone(now, conn, id);
                    let gone = waku::Input::PeerDisconnected { peer: conn };
                    if let Err(e) = self.waku.handle_input(now, gone) {
                        self.report(LayerError::Waku(e));
                    }
                    self.route_waku(now);
                    self.route_history(now);
                    self.outputs.push_back(Output::Event(Event::PeerDisconnected {
                        conn,
                        id,
                        reason,
                        remote,
                    }));
                }
                rlpx::Output::Event(rlpx::Event::Pong { .. }) => {}
            }
        }
    }

    /// A connection completed Hello: the peer rules learn it, and with a dialect it joins the Waku node
    /// (grouped by address for rate budgets, named to the mailserver's per-IP limiter).
    fn peer_up(
        &mut self,
        now: Timestamp,
        conn: ConnId,
        remote_id: crate::crypto::PublicKey,
        dialect: Option<Dialect>,
    ) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.id = Some(remote_id);
        c.dialect = dialect;
        c.since = now;
        let ip = c.ip;
        let dialled = c.origin;
        // An inbound peer is reported unless another connection to it is the pool's already.
        let node = NodeId::from_public_key(&remote_id);
        let inbound = dialled.is_none()
            && !self.conns.iter().any(|(k, o)| {
                *k != conn && (o.origin == Some(node) || (o.pooled && o.id == Some(remote_id)))
            });
        if let Some(c) = self.conns.get_mut(&conn) {
            c.pooled = inbound;
        }
        if dialled.is_some() || inbound {
            let useful = dialect.is_some();
            self.peer_input(now, peerpool::Input::Connected { id: node, useful });
        }
        let Some(dialect) = dialect else {
            return;
        };
        let peer = conn;
        if let Err(e) = self
            .waku
            .handle_input(now, waku::Input::PeerConnected { peer, dialect })
        {
            self.report(LayerError::Waku(e));
            self.route_waku(now);
            return;
        }
        // Every connection from one address shares one rate budget and pool share.
        if let Some(ip) = ip.filter(|ip| !ip.is_loopback()) {
            let source = waku::Input::SetPeerSource {
                peer,
                source: ip_source(ip),
            };
            if let Err(e) = self.waku.handle_input(now, source) {
                self.report(LayerError::Waku(e));
            }
            // The mailserver charges this peer's history scans to its address as well.
            if let Some(m) = &mut self.mailserver {
                if let Err(e) = m.handle_input(now, mailserver::Input::PeerIp { peer, ip }) {
                    self.report(LayerError::Mailserver(e));
                }
            }
        }
        self.route_waku(now);
    }

    /// Edge Waku node → engine: every output of the Waku node (and the messages a history verdict
    /// released).
    pub(super) fn route_waku(&mut self, now: Timestamp) {
        while let Some((o, released)) = self.history_next_waku_output() {
            match o {
                waku::Output::Event(e) if self.history.wants(&e, released) => {
                    self.history_on_waku(now, e);
                    self.route_history(now);
                }
                waku::Output::Transmit {
                    peer: conn,
                    code,
                    data,
                } => {
                    let Some(c) = self.conns.get_mut(&conn) else {
                        continue;
                    };
                    let capability = c.dialect.unwrap_or(Dialect::Waku1).capability();
                    let send = rlpx::Input::Send {
                        capability,
                        code,
                        payload: &data,
                    };
                    // A full output queue refuses the packet (the RLPx cap is the backpressure).
                    if let Err(error) = c.rlpx.handle_input(now, send) {
                        self.report(LayerError::Rlpx { conn, error });
                    }
                    self.route_conn(now, conn);
                }
                waku::Output::Disconnect { peer: conn, reason } => {
                    self.disconnect(now, conn, reason);
                    self.route_conn(now, conn);
                }
                waku::Output::Event(waku::Event::EnvelopeAccepted { hash, envelope })
                    if self.mailserver.is_some() =>
                {
                    if let Some(m) = &mut self.mailserver {
                        if let Err(e) = m.handle_input(now, mailserver::Input::Archive { hash, envelope }) {
                            self.report(LayerError::Mailserver(e));
                        }
                    }
                    self.route_mailserver(now);
                }
                waku::Output::Event(waku::Event::P2PRequest { peer, data }) if self.mailserver.is_some() => {
                    if let Some(m) = &mut self.mailserver {
                        self.mailserver_stats.requests += 1;
                        if let Err(e) = m.handle_input(now, mailserver::Input::Request { peer, data }) {
                            self.report(LayerError::Mailserver(e));
                        }
                    }
                    self.route_mailserver(now);
                }
                waku::Output::Event(waku::Event::Message(m))
                    if self.chat_filters.values().any(|f| *f == m.filter) =>
                {
                    if let Some(ms) = &mut self.messenger {
                        if let Err(e) = ms.handle_input(now, messenger::Input::Received(m)) {
                            self.report(LayerError::Messenger(e));
                        }
                    }
                    self.route_messenger(now);
                }
                waku::Output::Event(e) => self.outputs.push_back(Output::Event(Event::Waku(e))),
            }
        }
    }

    /// Edge Messenger → engine: its filters and posts go to the Waku node, its events to the application.
    pub(super) fn route_messenger(&mut self, now: Timestamp) {
        while let Some(o) = self.messenger.as_mut().and_then(|m| m.poll_output()) {
            match o {
                messenger::Output::Subscribe { chat, filter } => {
                    let id = self.waku.unused_subscription_id();
                    match self.waku.handle_input(now, waku::Input::Subscribe { id, filter }) {
                        Ok(()) => {
                            if let Some(old) = self.chat_filters.insert(chat, id) {
                                let gone = waku::Input::Unsubscribe { id: old };
                                if let Err(e) = self.waku.handle_input(now, gone) {
                                    self.report(LayerError::Waku(e));
                                }
                            }
                        }
                        Err(e) => self.report(LayerError::Waku(e)),
                    }
                    self.route_waku(now);
                    self.route_history(now);
                }
                messenger::Output::Unsubscribe { chat } => {
                    if let Some(id) = self.chat_filters.remove(&chat) {
                        if let Err(e) = self.waku.handle_input(now, waku::Input::Unsubscribe { id }) {
                            self.report(LayerError::Waku(e));
                        }
                    }
                    self.route_waku(now);
                    self.route_history(now);
                }
                messenger::Output::Transmit(m) => {
                    if let Err(e) = self.waku.handle_input(now, waku::Input::Post(m)) {
                        self.report(LayerError::Waku(e));
                    }
                    self.route_waku(now);
                }
                messenger::Output::Event(e) => self.outputs.push_back(Output::Event(Event::Chat(e))),
                messenger::Output::Persist(batch) => self.outputs.push_back(Output::Persist(batch)),
            }
        }
    }

    /// Edge mailserver server → engine: storage ops pass through to the driver as they are; envelopes
    /// and completions go to the Waku node as P2P messages.
    pub(super) fn route_mailserver(&mut self, now: Timestamp) {
        while let Some(o) = self.mailserver.as_mut().and_then(|m| m.poll_output()) {
            let send = match o {
                mailserver::Output::Storage(op) => {
                    self.outputs.push_back(Output::Storage(op));
                    continue;
                }
                mailserver::Output::Transmit { peer, envelopes } => {
                    self.mailserver_stats.envelopes_served += envelopes.len() as u64;
                    waku::Input::SendP2PMessages { peer, envelopes }
                }
                mailserver::Output::Complete { peer, payload } => {
                    waku::Input::SendRequestComplete { peer, payload }
                }
            };
            if let Err(e) = self.waku.handle_input(now, send) {
                self.report(LayerError::Waku(e));
            }
            self.route_waku(now);
        }
    }

    /// Edge DNS tree client → engine: lookups go to the driver, found nodes become the pool's candidates.
    pub(super) fn route_dns(&mut self, now: Timestamp) {
        let mut found = false;
        while let Some(o) = self.dns.as_mut().and_then(|d| d.poll_output()) {
            match o {
                dnstree::Output::Resolve { name } => self.outputs.push_back(Output::ResolveTxt { name }),
                dnstree::Output::Event(dnstree::Event::Node(enr)) => {
                    if let Some(e) = enr.to_enode() {
                        self.add_candidate(now, e);
                        found = true;
                    }
                }
                dnstree::Output::Event(e) => self.outputs.push_back(Output::Event(Event::DnsTree(e))),
            }
        }
        if found {
            self.route_peers(now);
        }
    }

    /// Edge peer pool → engine: dials become sockets, a timed-out dial is closed (and reported), a
    /// disconnect goes to the connection, and discovery is suspended or resumed (the DNS trees are
    /// re-checked on resume; both reported only with `dns_discovery`).
    pub(super) fn route_peers(&mut self, now: Timestamp) {
        while let Some(o) = self.peers.poll_output() {
            match o {
                peerpool::Output::Dial { enode, .. } => self.dial(now, &enode),
                peerpool::Output::DialTimedOut { id } => {
                    let timed_out: Vec<ConnId> = self
                        .conns
                        .iter()
                        .filter(|(_, c)| c.origin == Some(id) && c.dialing())
                        .map(|(k, _)| *k)
                        .collect();
                    for conn in timed_out {
                        self.conns.remove(&conn);
                        self.outputs.push_back(Output::Close { conn });
                        self.outputs
                            .push_back(Output::Event(Event::DialTimedOut { conn }));
                    }
                }
                peerpool::Output::Disconnect { id } => {
                    let conns: Vec<ConnId> = self
                        .conns
                        .iter()
                        .filter(|(_, c)| c.id.as_ref().map(NodeId::from_public_key) == Some(id))
                        .map(|(k, _)| *k)
                        .collect();
                    for conn in conns {
                        self.disconnect(now, conn, DisconnectReason::TooManyPeers);
                        self.route_conn(now, conn);
                    }
                }
                peerpool::Output::ResumeDiscovery => {
                    if let Some(d) = &mut self.dns {
                        if let Err(e) = d.handle_input(now, dnstree::Input::Resync) {
                            self.report(LayerError::Discovery(e));
                        }
                        self.outputs.push_back(Output::Event(Event::DiscoveryResumed));
                    }
                    self.route_dns(now);
                }
                peerpool::Output::SuspendDiscovery => {
                    if self.dns.is_some() {
                        self.outputs.push_back(Output::Event(Event::DiscoverySuspended));
                    }
                }
            }
        }
    }
}
