//! The engine's mailserver client wiring (docs/protocol/status-transport-usage.md §4.1, §4.6;
//! docs/protocol/status-client.md "Mailserver trust"): the [`HistoryClient`] on top of the Waku node.
//!
//! * The peers in [`EngineConfig::mailservers`](super::EngineConfig::mailservers) are dialled like static
//!   peers. When one's Waku handshake completes it is marked trusted (so its P2P messages and
//!   request-completes are accepted) and handed to the client as usable; its disconnection is reported.
//! * The topics to fetch are those of every installed Waku filter: the Messenger's chats and any filter
//!   the application subscribed. They are re-read whenever a filter is added or removed.
//! * The client's requests go out as P2P Requests (code 126, direct `MessagesRequest` form, six fields
//!   over `shh/6` and seven over `waku/1`: the client learns each mailserver's dialect); completions
//!   (125) from mailservers go back to it.
//! * Historic envelopes: Waku opens a trusted peer's P2P envelopes with its filters (skipping expiry and
//!   PoW, as the reference does) and reports them; the engine holds the opened messages until Waku names
//!   the packet's envelope hashes ([`waku::Event::P2PEnvelopes`], which follows them at once), asks the
//!   client whether each envelope is new, and delivers the messages of new envelopes exactly as live
//!   ones (to the Messenger or as [`Event::Waku`]); the others are dropped. The
//!   Messenger still drops a message it already has (same id) when a live envelope and its archived copy
//!   both arrive.
//! * Client events come out as [`Event::History`];
//!   [`Input::RequestHistory`](super::Input::RequestHistory) asks for history at once.
//!
//! At most 4,096 opened messages wait for their verdict; past that they are delivered without one (the
//! Messenger's id check still applies).
//!
//! Deviation: status-go hands every trusted P2P envelope to the filters and leaves duplicates to the
//! application's message store; here the engine also drops the messages of envelopes the history client
//! has already seen, so an overlapping window or a second mailserver does not re-deliver them.

use std::collections::VecDeque;

use super::{ConnId, Engine, Event, LayerError, NodeError, Output};
use crate::crypto::PublicKey;
use crate::mailserver::client::{self, HistoryClient, HistoryConfig};
use crate::rng::Seed;
use crate::time::Timestamp;
use crate::waku::{self, ReceivedMessage, Topic};

/// Most opened P2P messages held while waiting for their packet's hashes.
const MAX_HELD: usize = 4096;

/// The engine's history state.
pub(super) struct History {
    pub(super) client: HistoryClient,
    mailservers: Vec<PublicKey>,
    held: VecDeque<Box<ReceivedMessage>>,
    released: VecDeque<waku::Output>,
    filters_generation: Option<(u64, usize)>,
    duplicates: u64,
}

impl History {
    pub(super) fn new(
        config: HistoryConfig,
        mailservers: Vec<PublicKey>,
        seed: &Seed,
        now: Timestamp,
    ) -> Result<Self, crate::Error> {
        Ok(History {
            client: HistoryClient::new(config, seed, now)?,
            mailservers,
            held: VecDeque::new(),
            released: VecDeque::new(),
            filters_generation: None,
            duplicates: 0,
        })
    }

    /// True if the engine should hand this Waku event to [`Engine::history_on_waku`]; `released` if a
    /// verdict released it (it is not held again).
    pub(super) fn wants(&self, e: &waku::Event, released: bool) -> bool {
        match e {
            waku::Event::Message(m) => m.p2p && !released && self.held.len() < MAX_HELD,
            waku::Event::P2PEnvelopes { .. } => true,
            waku::Event::RequestComplete { .. } | waku::Event::PeerReady { .. } => {
                !self.mailservers.is_empty()
            }
            _ => false,
        }
    }
}

impl Engine {
    /// The mailserver history client (read-only: last-seen times, state).
    pub fn history(&self) -> &HistoryClient {
        &self.history.client
    }

    /// Historic envelopes dropped as already seen (their opened messages were not delivered).
    pub fn history_duplicates(&self) -> u64 {
        self.history.duplicates
    }

    /// The history client's per-topic last-seen times, for the driver to store across restarts.
    pub fn export_history(&self) -> Vec<u8> {
        self.history.client.export()
    }

    /// Restore what [`export_history`](Self::export_history) produced.
    pub fn import_history(&mut self, data: &[u8]) -> Result<(), crate::Error> {
        Ok(self.history.client.import(data)?)
    }

    /// The node key of a connection's peer, if it is a configured mailserver.
    fn mailserver_key(&self, peer: ConnId) -> Option<PublicKey> {
        let id = self.conns.get(&peer)?.id?;
        self.history.mailservers.contains(&id).then_some(id)
    }

    /// Feed the history client; a refusal is reported as a layer error.
    fn history_input(&mut self, now: Timestamp, input: client::Input) {
        if let Err(e) = self.history.client.handle_input(now, input) {
            self.report(LayerError::Mailserver(e));
        }
    }

    /// The next Waku output to route, and whether a verdict released it: released messages first.
    pub(super) fn history_next_waku_output(&mut self) -> Option<(waku::Output, bool)> {
        if let Some(o) = self.history.released.pop_front() {
            return Some((o, true));
        }
        self.waku.poll_output().map(|o| (o, false))
    }

    /// A Waku event [`History::wants`].
    pub(super) fn history_on_waku(&mut self, now: Timestamp, e: waku::Event) {
        match e {
            waku::Event::Message(m) => self.history.held.push_back(m),
            waku::Event::P2PEnvelopes { peer, hashes } => {
                // Sets, so the verdict is O(held · log hashes), not O(held · hashes).
                let mut fresh = std::collections::BTreeSet::new();
                for h in &hashes {
                    if self.history.client.is_new(h) {
                        fresh.insert(*h);
                    }
                    self.history_input(now, client::Input::Envelope { hash: *h });
                }
                let all: std::collections::BTreeSet<_> = hashes.iter().copied().collect();
                for m in std::mem::take(&mut self.history.held) {
                    if fresh.contains(&m.envelope_hash) || !all.contains(&m.envelope_hash) {
                        self.history
                            .released
                            .push_back(waku::Output::Event(waku::Event::Message(m)));
                    } else {
                        self.history.duplicates += 1;
                    }
                }
                self.outputs
                    .push_back(Output::Event(Event::Waku(waku::Event::P2PEnvelopes {
                        peer,
                        hashes,
                    })));
            }
            waku::Event::RequestComplete { peer, payload } => {
                if let Some(key) = self.mailserver_key(peer) {
                    let payload = payload.clone();
                    self.history_input(now, client::Input::RequestComplete { peer: key, payload });
                }
                self.outputs
                    .push_back(Output::Event(Event::Waku(waku::Event::RequestComplete {
                        peer,
                        payload,
                    })));
            }
            waku::Event::PeerReady { peer, options } => {
                if let Some(key) = self.mailserver_key(peer) {
                    let trust = waku::Input::SetTrusted { peer, trusted: true };
                    if let Err(e) = self.waku.handle_input(now, trust) {
                        self.report(LayerError::Waku(e));
                    }
                    let dialect = self.conns.get(&peer).and_then(|c| c.dialect);
                    let dialect = dialect.unwrap_or(waku::Dialect::Waku1);
                    self.history_input(now, client::Input::Connected { peer: key, dialect });
                }
                self.outputs
                    .push_back(Output::Event(Event::Waku(waku::Event::PeerReady {
                        peer,
                        options,
                    })));
            }
            other => self.outputs.push_back(Output::Event(Event::Waku(other))),
        }
    }

    /// A connection went away (a mailserver is gone unless another connection to it is up).
    pub(super) fn history_peer_gone(&mut self, now: Timestamp, conn: ConnId, id: Option<PublicKey>) {
        if let Some(id) = id {
            let other = self
                .conns
                .iter()
                .any(|(k, c)| *k != conn && c.id == Some(id) && c.dialect.is_some() && c.rlpx.is_active());
            if self.history.mailservers.contains(&id) && !other {
                self.history_input(now, client::Input::Disconnected { peer: id });
            }
        }
    }

    /// Edge history client → engine: re-read the topics if the filters changed, then send the client's
    /// requests as Waku P2P requests and pass its events to the application.
    pub(super) fn route_history(&mut self, now: Timestamp) {
        let generation = self.waku.filters_generation();
        if self.history.filters_generation != Some(generation) {
            self.history.filters_generation = Some(generation);
            let topics = self.waku.filter_topics().into_iter().collect();
            self.history_input(now, client::Input::SetTopics(topics));
        }
        while let Some(o) = self.history.client.poll_output() {
            match o {
                client::Output::Transmit { peer, request } => {
                    let conn = self
                        .conns
                        .iter()
                        .find(|(_, c)| c.id == Some(peer) && c.dialect.is_some() && c.rlpx.is_active())
                        .and_then(|(k, c)| Some((*k, c.dialect?)));
                    let sent = match conn {
                        Some((conn, dialect)) => {
                            let send = waku::Input::SendP2PRequest {
                                peer: conn,
                                data: crate::mailserver::encode_request(&request, dialect),
                            };
                            let r = self.waku.handle_input(now, send);
                            if let Err(e) = &r {
                                self.report(LayerError::Waku(e.clone()));
                            }
                            self.route_waku(now);
                            r.is_ok()
                        }
                        None => false,
                    };
                    if !sent {
                        // Not connected after all (or Waku refused): the client fails over.
                        self.history_input(now, client::Input::Disconnected { peer });
                    }
                }
                client::Output::Event(e) => self.outputs.push_back(Output::Event(Event::History(e))),
            }
        }
    }

    /// [`Input::RequestHistory`](super::Input::RequestHistory).
    pub(super) fn history_request(&mut self, now: Timestamp, topics: &[Topic]) -> Result<(), NodeError> {
        if self.history.mailservers.is_empty() {
            return Err(NodeError::NotConfigured("mailservers"));
        }
        let topics = topics.to_vec();
        self.history_input(now, client::Input::Fetch { topics });
        Ok(())
    }
}
