//! Packets from peers (docs/protocol/waku.md §5, §8; docs/protocol/status-transport-usage.md §4.1): the
//! Status handshake, envelope validation as status-go does it, confirmations, and the mailserver plumbing
//! (P2P messages and request completions from trusted peers).

use bytes::Bytes;

use super::super::envelope::{Envelope, Stamp};
use super::super::options::StatusOptions;
use super::super::packet::{self, EnvelopeError, Packet};
use super::super::pool::Insert;
use super::super::WakuError;
use super::{Event, WakuNode, EXPIRED_GRACE, SYNC_ALLOWANCE};
use crate::conn::ConnId;
use crate::rlpx::DisconnectReason;
use crate::time::Timestamp;

impl WakuNode {
    pub(super) fn on_packet(&mut self, now: Timestamp, peer: ConnId, code: u64, data: &Bytes) {
        let Some(p) = self.peers.get(&peer) else { return };
        let dialect = p.dialect;
        let awaiting = !p.is_active();
        let decoded = Packet::decode_bytes(dialect, code, data, self.config.max_envelopes_per_packet);
        if !awaiting {
            // Every packet costs its decoded (inflated) bytes, whatever its code or fate. Envelopes of
            // a Messages packet count too; a trusted mailserver's history (P2P Message) is exempt from
            // the rate limit, being what we asked for.
            let trusted_history = matches!(
                decoded,
                Ok(Packet::P2PMessage(_)) | Ok(Packet::P2PRequestComplete(_))
            ) && self.peers.get(&peer).is_some_and(|p| p.trusted);
            let envelopes = match &decoded {
                Ok(Packet::Messages(e)) => e.len() as u64,
                _ => 0,
            };
            if !trusted_history && !self.charge(now, peer, envelopes, data.len() as u64) {
                return;
            }
        }
        let packet = match decoded {
            Ok(p) => p,
            Err(e) => {
                if awaiting {
                    self.event(Event::PeerFault {
                        peer,
                        fault: e,
                        disconnected: true,
                    });
                    self.drop_peer(peer, DisconnectReason::SubprotocolError);
                } else {
                    self.fault(now, peer, e);
                }
                return;
            }
        };
        if awaiting {
            let opts = match packet {
                Packet::Status(o) => o,
                Packet::WhisperStatus(w) => {
                    let Some(p) = self.peers.get_mut(&peer) else {
                        return;
                    };
                    p.set_whisper_status(&w);
                    let o = p.remote.clone();
                    return self.peer_ready(now, peer, o);
                }
                _ => {
                    self.event(Event::PeerFault {
                        peer,
                        fault: WakuError::ExpectedStatus,
                        disconnected: true,
                    });
                    self.drop_peer(peer, DisconnectReason::ProtocolBreach);
                    return;
                }
            };
            let Some(p) = self.peers.get_mut(&peer) else {
                return;
            };
            p.set_status(opts);
            let o = p.remote.clone();
            return self.peer_ready(now, peer, o);
        }
        if matches!(
            packet,
            Packet::StatusUpdate(_) | Packet::PowRequirement(_) | Packet::BloomFilter(_)
        ) {
            let max = self.config.max_status_updates_per_minute;
            let allowed = self
                .peers
                .get_mut(&peer)
                .is_some_and(|p| p.status_update_allowed(now, max));
            if !allowed {
                return self.fault(now, peer, WakuError::TooManyStatusUpdates);
            }
        }
        match packet {
            Packet::Status(_) | Packet::WhisperStatus(_) => {}
            Packet::Unknown(c) => self.fault(now, peer, WakuError::UnknownPacket(c)),
            Packet::StatusUpdate(u) => {
                // The new interest applies from the next cycle on: no rescan (see the module docs).
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.update_status(&u);
                }
            }
            Packet::PowRequirement(pow) => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.remote.pow_requirement = Some(pow);
                }
            }
            Packet::BloomFilter(b) => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.remote.bloom = Some(b);
                }
            }
            Packet::Messages(envelopes) => self.on_messages(now, peer, envelopes, data),
            Packet::BatchAck(batch_hash) => {
                let envelopes = self
                    .peers
                    .get_mut(&peer)
                    .and_then(|p| p.take_batch(&batch_hash))
                    .unwrap_or_default();
                self.event(Event::Confirmed {
                    peer,
                    batch_hash,
                    envelopes,
                    errors: vec![],
                });
            }
            Packet::MessageResponse { batch_hash, errors } => {
                if !errors.is_empty() {
                    let envelopes = self
                        .peers
                        .get(&peer)
                        .and_then(|p| {
                            p.sent_batches
                                .iter()
                                .find(|(h, _)| *h == batch_hash)
                                .map(|(_, v)| v.clone())
                        })
                        .unwrap_or_default();
                    self.event(Event::Confirmed {
                        peer,
                        batch_hash,
                        envelopes,
                        errors,
                    });
                }
            }
            Packet::P2PRequest(data) => {
                if self.config.mailserver {
                    self.event(Event::P2PRequest { peer, data });
                }
            }
            Packet::P2PMessage(envelopes) => {
                if self.peers.get(&peer).is_some_and(|p| p.trusted) {
                    self.on_p2p_envelopes(now, peer, envelopes);
                }
            }
            Packet::P2PRequestComplete(payload) => {
                if self.peers.get(&peer).is_some_and(|p| p.trusted) {
                    self.event(Event::RequestComplete { peer, payload });
                }
            }
        }
    }

    fn peer_ready(&mut self, now: Timestamp, peer: ConnId, options: StatusOptions) {
        if self.config.light_node && self.config.restrict_light_to_light && options.light_node == Some(true) {
            self.event(Event::PeerFault {
                peer,
                fault: WakuError::LightToLight,
                disconnected: true,
            });
            self.drop_peer(peer, DisconnectReason::UselessPeer);
            return;
        }
        self.event(Event::PeerReady {
            peer,
            options: Box::new(options),
        });
        self.schedule_cycle(now);
    }

    /// Validate one envelope as status-go's `addAndBridge` does. `Ok(false)`: drop silently.
    fn validate(&self, now_secs: u64, env: &Envelope, stamp: &Stamp) -> Result<bool, EnvelopeFault> {
        let sent = u64::from(env.sent());
        let pow = stamp.pow_at(env, now_secs);
        if sent > now_secs && sent - SYNC_ALLOWANCE > now_secs {
            return Err(EnvelopeFault::TimeSync("envelope from the future"));
        }
        let expiry = u64::from(env.expiry);
        if expiry < now_secs {
            if expiry + EXPIRED_GRACE < now_secs {
                return Err(EnvelopeFault::TimeSync("very old envelope"));
            }
            return Ok(false);
        }
        if env.ttl > self.config.max_ttl {
            return Ok(false);
        }
        if env.size() > self.config.max_envelope_size {
            return Err(EnvelopeFault::Invalid(WakuError::EnvelopeTooLarge(env.size())));
        }
        if pow < self.config.min_pow {
            return Err(EnvelopeFault::Invalid(WakuError::InsufficientPow));
        }
        Ok(self.we_want(&env.topic))
    }

    fn on_messages(&mut self, now: Timestamp, peer: ConnId, envelopes: Vec<Envelope>, data: &[u8]) {
        // The packet was charged to the peer and its source in `on_packet`.
        let source = match self.peers.get(&peer) {
            Some(p) => p.source,
            None => return,
        };
        let now_secs = now.as_secs();
        let mut errors = Vec::new();
        for env in envelopes {
            let stamp = env.stamp();
            if let Some(p) = self.peers.get_mut(&peer) {
                p.mark_known(stamp.id);
            }
            if self.pool.contains(&stamp.id) {
                self.stats.duplicates += 1;
                continue;
            }
            match self.validate(now_secs, &env, &stamp) {
                Ok(true) => self.accept(now, &stamp, env, source),
                Ok(false) => {}
                Err(EnvelopeFault::TimeSync(what)) => {
                    self.stats.rejected += 1;
                    let hash = env.hash();
                    errors.push(EnvelopeError {
                        hash,
                        code: packet::ERROR_TIME_SYNC,
                        description: what.into(),
                    });
                }
                Err(EnvelopeFault::Invalid(e)) => {
                    self.stats.rejected += 1;
                    let hash = env.hash();
                    errors.push(EnvelopeError {
                        hash,
                        code: packet::ERROR_OTHER,
                        description: e.to_string(),
                    });
                    self.fault(now, peer, e);
                    if !self.peers.contains_key(&peer) {
                        return;
                    }
                }
            }
        }
        if self.config.confirmations {
            let batch_hash = crate::crypto::keccak256(data);
            self.send(
                peer,
                packet::MESSAGE_RESPONSE,
                packet::encode_message_response(&batch_hash, &errors),
            );
            self.send(peer, packet::BATCH_ACK, packet::encode_batch_ack(&batch_hash));
        }
    }

    fn accept(&mut self, now: Timestamp, stamp: &Stamp, env: Envelope, source: u64) {
        let pow = stamp.pow_at(&env, now.as_secs());
        let plain_pow = stamp.pow(env.ttl, 0);
        let opened = self.filters.open(&env, pow, false);
        let archived = self.config.mailserver.then(|| env.clone());
        match self
            .pool
            .insert_from(stamp.id, env, plain_pow, now.as_secs(), source)
        {
            Insert::New => {
                self.stats.accepted += 1;
                for m in opened {
                    self.event(Event::Message(Box::new(m)));
                }
                if let Some(envelope) = archived {
                    self.event(Event::EnvelopeAccepted {
                        hash: envelope.hash(),
                        envelope,
                    });
                }
                self.schedule_cycle(now);
            }
            Insert::Duplicate => self.stats.duplicates += 1,
            Insert::Expired | Insert::Full => {}
        }
    }

    fn on_p2p_envelopes(&mut self, _now: Timestamp, peer: ConnId, envelopes: Vec<Envelope>) {
        let mut hashes = Vec::with_capacity(envelopes.len());
        for env in envelopes {
            let stamp = env.stamp();
            hashes.push(env.hash());
            if self.pool.contains(&stamp.id) || self.p2p_seen_set.contains(&stamp.id) {
                continue;
            }
            if self.config.max_p2p_seen > 0 {
                while self.p2p_seen_set.len() >= self.config.max_p2p_seen {
                    let Some((_, h)) = self.p2p_seen.pop_first() else {
                        break;
                    };
                    self.p2p_seen_set.remove(&h);
                }
                self.p2p_seen.insert((env.expiry, stamp.id));
                self.p2p_seen_set.insert(stamp.id);
            }
            for m in self.filters.open(&env, stamp.pow(env.ttl, 0), true) {
                self.event(Event::Message(Box::new(m)));
            }
        }
        self.event(Event::P2PEnvelopes { peer, hashes });
    }
}

enum EnvelopeFault {
    TimeSync(&'static str),
    Invalid(WakuError),
}
