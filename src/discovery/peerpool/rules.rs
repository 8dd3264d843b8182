//! The PeerPool's rules (`docs/protocol/status-client.md` "Discovery and peers"): what each input does
//! to a peer, the backoffs, and the step that dials, trims and switches discovery (see the
//! [module documentation](super)).

use core::time::Duration;

use rand_core::RngCore;

use super::{Candidate, Inbound, Output, PeerKind, PeerPool, State, StaticPeer, MAX_STATIC_PEERS};
use crate::discovery::enr::NodeId;
use crate::discovery::DiscoveryError;
use crate::enode::Enode;
use crate::time::Timestamp;

/// Static peers are redialled after their backoff plus up to this much jitter.
const STATIC_JITTER_MS: u64 = 1000;

impl PeerPool {
    /// Learn of a candidate (`good`: cached, last good then). Returns whether it is now known (a static
    /// peer and our own node are not candidates).
    pub(super) fn discovered(
        &mut self,
        now: Timestamp,
        enode: Enode,
        kind: PeerKind,
        good: Option<Timestamp>,
    ) -> bool {
        let id = NodeId::from_public_key(&enode.id);
        if self.config.local == Some(id) || self.static_index(&id).is_some() {
            return false;
        }
        if let Some(c) = self.peers.get_mut(&id) {
            if matches!(c.state, State::Idle | State::Backoff { .. }) {
                c.enode = enode;
                c.kind = kind;
            }
            if good.is_some() && c.good < good {
                c.good = good;
                self.trim_cache(id);
            }
            return true;
        }
        if !self.make_room() {
            return false;
        }
        let order = self.next_order();
        // A node that connected to us before we heard of it is that connection from now on.
        let state = match self.inbound.remove(&id) {
            Some(Inbound { order }) => State::Up {
                since: now,
                order,
                stable: true,
            },
            None => State::Idle,
        };
        self.peers.insert(
            id,
            Candidate {
                enode,
                kind,
                state,
                failures: 0,
                good,
                order,
            },
        );
        if good.is_some() {
            self.trim_cache(id);
        }
        true
    }

    pub(super) fn add_static(&mut self, enode: Enode, kind: PeerKind) -> Result<(), DiscoveryError> {
        let id = NodeId::from_public_key(&enode.id);
        if self.static_index(&id).is_some() {
            return Ok(());
        }
        if self.statics.len() >= MAX_STATIC_PEERS {
            return Err(DiscoveryError::TooManyStaticPeers);
        }
        // A static peer is no longer a candidate (a connection it had stays counted as its own).
        let state = match self.peers.remove(&id).map(|c| c.state) {
            Some(s @ (State::Up { .. } | State::Dialing { .. } | State::Handshaking { .. })) => s,
            _ => match self.inbound.remove(&id) {
                Some(Inbound { order }) => State::Up {
                    since: self.created,
                    order,
                    stable: true,
                },
                None => State::Idle,
            },
        };
        self.statics.push(StaticPeer {
            id,
            enode,
            kind,
            state,
            backoff: self.config.backoff_initial,
        });
        Ok(())
    }

    pub(super) fn reached(&mut self, now: Timestamp, id: NodeId) {
        let state = match self.static_index(&id) {
            Some(i) => self.statics.get_mut(i).map(|s| &mut s.state),
            None => self.peers.get_mut(&id).map(|c| &mut c.state),
        };
        if let Some(s) = state {
            if matches!(s, State::Dialing { .. }) {
                *s = State::Handshaking { since: now };
            }
        }
    }

    pub(super) fn connected_peer(&mut self, now: Timestamp, id: NodeId, useful: bool) {
        let order = self.next_order();
        if let Some(i) = self.static_index(&id) {
            if let Some(s) = self.statics.get_mut(i) {
                if !s.state.up() {
                    s.state = State::Up {
                        since: now,
                        order,
                        stable: true,
                    };
                }
            }
        } else if let Some(c) = self.peers.get_mut(&id) {
            if !c.state.up() {
                // A peer without what we need never becomes stable, so it is never cached.
                c.state = State::Up {
                    since: now,
                    order,
                    stable: !useful,
                };
            }
        } else {
            self.inbound.entry(id).or_insert(Inbound { order });
        }
    }

    pub(super) fn disconnected(&mut self, now: Timestamp, id: NodeId) {
        let stable_after = self.config.stable_after;
        let lasted = |s: State| match s {
            State::Up { since, .. } | State::Handshaking { since } => {
                Some(now.saturating_duration_since(since))
            }
            State::Dialing { .. } => Some(Duration::ZERO),
            _ => None,
        };
        if let Some(i) = self.static_index(&id) {
            let Some(s) = self.statics.get_mut(i) else {
                return;
            };
            let Some(lasted) = lasted(s.state) else {
                return;
            };
            if lasted >= stable_after {
                s.backoff = self.config.backoff_initial;
            }
            self.static_redial(now, i);
        } else if let Some(c) = self.peers.get_mut(&id) {
            if !c.state.busy() {
                return;
            }
            if c.state.up() && lasted(c.state).is_some_and(|l| l >= stable_after) {
                c.failures = 0;
                c.state = State::Backoff {
                    until: now + self.config.backoff_initial,
                };
            } else {
                self.candidate_failed(now, id);
            }
        } else {
            self.inbound.remove(&id);
        }
    }

    pub(super) fn dial_failed(&mut self, now: Timestamp, id: NodeId) {
        if let Some(i) = self.static_index(&id) {
            if self.statics.get(i).is_some_and(|s| s.state.pending()) {
                self.static_redial(now, i);
            }
        } else if self.peers.get(&id).is_some_and(|c| c.state.pending()) {
            self.candidate_failed(now, id);
        }
    }

    /// Dial deadlines (reported with [`Output::DialTimedOut`]), backoff ends and stability checks.
    pub(super) fn fire_timers(&mut self, now: Timestamp) {
        let mut timed_out = Vec::new();
        for s in &mut self.statics {
            match s.state {
                State::Dialing { deadline } if deadline <= now => timed_out.push(s.id),
                State::Backoff { until } if until <= now => s.state = State::Idle,
                _ => {}
            }
        }
        let stable_after = self.config.stable_after;
        let mut newly_good = Vec::new();
        for (id, c) in self.peers.iter_mut() {
            match c.state {
                State::Dialing { deadline } if deadline <= now => timed_out.push(*id),
                State::Backoff { until } if until <= now => c.state = State::Idle,
                State::Up {
                    since,
                    order,
                    stable: false,
                } if since + stable_after <= now => {
                    c.state = State::Up {
                        since,
                        order,
                        stable: true,
                    };
                    c.failures = 0;
                    c.good = Some(now);
                    newly_good.push(*id);
                }
                _ => {}
            }
        }
        for id in newly_good {
            self.trim_cache(id);
        }
        for id in timed_out {
            self.outputs.push_back(Output::DialTimedOut { id });
            self.dial_failed(now, id);
        }
    }

    /// Make room for one more candidate; `false` if every candidate is busy or cached.
    fn make_room(&mut self) -> bool {
        if self.peers.len() < self.config.max_candidates {
            return true;
        }
        let victim = self
            .peers
            .iter()
            .filter(|(_, c)| c.good.is_none() && matches!(c.state, State::Idle | State::Backoff { .. }))
            .max_by_key(|(_, c)| (c.failures, core::cmp::Reverse(c.order)))
            .map(|(id, _)| *id);
        match victim {
            Some(id) => {
                self.peers.remove(&id);
                true
            }
            None => false,
        }
    }

    /// Keep at most `cache_size` good peers: the least recently good other than `keep` leaves.
    pub(super) fn trim_cache(&mut self, keep: NodeId) {
        while self.cache_len() > self.config.cache_size {
            let victim = self
                .peers
                .iter()
                .filter(|(id, c)| c.good.is_some() && **id != keep)
                .min_by_key(|(_, c)| (c.good, c.order))
                .map(|(id, _)| *id)
                .unwrap_or(keep);
            if let Some(c) = self.peers.get_mut(&victim) {
                c.good = None;
            }
        }
    }

    /// Static peer `i` failed or went away: redial after its backoff plus jitter; the backoff doubles.
    fn static_redial(&mut self, now: Timestamp, i: usize) {
        let jitter_ms = self.rng.next_u64() % STATIC_JITTER_MS;
        let max = self.config.backoff_max;
        let Some(s) = self.statics.get_mut(i) else {
            return;
        };
        s.state = State::Backoff {
            until: now + s.backoff + Duration::from_millis(jitter_ms),
        };
        s.backoff = s.backoff.saturating_mul(2).min(max);
    }

    fn candidate_failed(&mut self, now: Timestamp, id: NodeId) {
        let Some(c) = self.peers.get_mut(&id) else {
            return;
        };
        c.failures = c.failures.saturating_add(1);
        if c.failures >= self.config.max_dial_failures {
            self.peers.remove(&id);
            return;
        }
        let shift = (c.failures - 1).min(30);
        let span = self
            .config
            .backoff_initial
            .saturating_mul(1u32 << shift)
            .min(self.config.backoff_max);
        let span_ms = u64::try_from(span.as_millis()).unwrap_or(u64::MAX);
        let half = span_ms / 2;
        let jitter = self.rng.next_u64() % (span_ms - half).saturating_add(1);
        c.state = State::Backoff {
            until: Timestamp::from_millis(now.as_millis().saturating_add(half + jitter)),
        };
    }

    /// The best idle candidate of `kind` to dial: cached first, then fewest failures, then oldest.
    fn pick(&self, kind: PeerKind) -> Option<NodeId> {
        self.peers
            .iter()
            .filter(|(_, c)| c.kind == kind && c.state == State::Idle)
            .min_by_key(|(_, c)| (c.good.is_none(), c.failures, c.order))
            .map(|(id, _)| *id)
    }

    fn dial(&mut self, now: Timestamp, id: NodeId) {
        let deadline = now + self.config.dial_timeout;
        if let Some(c) = self.peers.get_mut(&id) {
            c.state = State::Dialing { deadline };
            self.outputs.push_back(Output::Dial {
                enode: c.enode.clone(),
                kind: c.kind,
            });
        }
    }

    /// Connections the pool holds: dialled ones in any state and peers that connected to us.
    fn connections(&self) -> usize {
        let statics = self.statics.iter().filter(|s| s.state.busy()).count();
        let candidates = self.peers.values().filter(|c| c.state.busy()).count();
        statics + candidates + self.inbound.len()
    }

    /// Close the newest connections of `kind` past `max` (static peers are never closed).
    fn trim(&mut self, kind: PeerKind, max: usize) {
        let statics = self
            .statics
            .iter()
            .filter(|s| s.kind == kind && s.state.up())
            .count();
        let mut conns: Vec<(u64, NodeId)> = self
            .peers
            .iter()
            .filter_map(|(id, c)| match c.state {
                State::Up { order, .. } if c.kind == kind => Some((order, *id)),
                _ => None,
            })
            .collect();
        if kind == PeerKind::Relay {
            conns.extend(self.inbound.iter().map(|(id, i)| (i.order, *id)));
        }
        let keep = max.saturating_sub(statics);
        if conns.len() <= keep {
            return;
        }
        conns.sort();
        for (_, id) in conns.split_off(keep) {
            // The disconnect is ours: no failure counted, the peer may be dialled again.
            if let Some(c) = self.peers.get_mut(&id) {
                c.state = State::Idle;
            }
            self.inbound.remove(&id);
            self.outputs.push_back(Output::Disconnect { id });
        }
    }

    /// Apply the rules (see the module documentation); nothing happens before the pool started.
    pub(super) fn step(&mut self, now: Timestamp) {
        if !self.started {
            return;
        }
        let mail_max = usize::from(self.config.mailserver);
        if self.config.close_excess {
            self.trim(PeerKind::Relay, self.config.max_relays);
            self.trim(PeerKind::Mailserver, mail_max);
        }
        let deadline = now + self.config.dial_timeout;
        for s in &mut self.statics {
            if s.state == State::Idle {
                s.state = State::Dialing { deadline };
                self.outputs.push_back(Output::Dial {
                    enode: s.enode.clone(),
                    kind: s.kind,
                });
            }
        }
        while self.connected(PeerKind::Relay) + self.dialing(PeerKind::Relay) < self.config.max_relays
            && self.connections() < self.config.max_connections
        {
            match self.pick(PeerKind::Relay) {
                Some(id) => self.dial(now, id),
                None => break,
            }
        }
        if self.connected(PeerKind::Mailserver) + self.dialing(PeerKind::Mailserver) < mail_max
            && self.connections() < self.config.max_connections
        {
            if let Some(id) = self.pick(PeerKind::Mailserver) {
                self.dial(now, id);
            }
        }
        let relays = self.connected(PeerKind::Relay);
        let mails = self.connected(PeerKind::Mailserver);
        let satisfied = relays >= self.config.max_relays && mails >= mail_max;
        let starving = relays + self.dialing(PeerKind::Relay) < self.config.min_relays
            || mails + self.dialing(PeerKind::Mailserver) < mail_max;
        if self.discovery_running && satisfied {
            self.discovery_running = false;
            self.outputs.push_back(Output::SuspendDiscovery);
        } else if !self.discovery_running && starving {
            self.discovery_running = true;
            self.outputs.push_back(Output::ResumeDiscovery);
        }
    }
}
