//! What the node advertises (docs/protocol/waku.md §6): its options, bloom or topic interest and PoW
//! requirement, and the Status Updates that announce a change to every active peer.

use super::super::options::{RateLimits, StatusOptions};
use super::super::packet::{self, Dialect};
use super::super::topic::{Bloom, Topic};
use super::{Interest, WakuNode};
use crate::conn::ConnId;

impl WakuNode {
    /// Our current options, as we advertise them.
    pub fn local_options(&self) -> StatusOptions {
        let mut o = StatusOptions {
            pow_requirement: Some(self.config.min_pow),
            bloom: None,
            light_node: Some(self.config.light_node),
            confirmations: Some(self.config.confirmations),
            packet_rate_limits: Some(RateLimits {
                ip: self.config.max_envelopes_per_sec_per_source,
                peer_id: self.config.max_envelopes_per_sec,
                topic: 0,
            }),
            topic_interest: None,
            bytes_rate_limits: Some(RateLimits {
                ip: self.config.max_bytes_per_sec_per_source,
                peer_id: self.config.max_bytes_per_sec,
                topic: 0,
            }),
        };
        match self.config.interest {
            Interest::Full => o.bloom = Some(Bloom::FULL),
            Interest::Bloom => o.bloom = Some(self.local_bloom()),
            Interest::Topics => o.topic_interest = Some(self.filters.topics().into_iter().collect()),
        }
        o
    }

    pub(super) fn local_bloom(&self) -> Bloom {
        match self.config.interest {
            Interest::Full => Bloom::FULL,
            _ => Bloom::of_topics(self.filters.topics().iter()),
        }
    }

    /// True if we want envelopes on `topic`.
    pub(super) fn we_want(&self, topic: &Topic) -> bool {
        match self.config.interest {
            Interest::Full => true,
            Interest::Bloom => self.local_bloom().matches_topic(topic),
            Interest::Topics => self.filters.watches(topic),
        }
    }

    pub(super) fn announce_interest(&mut self) {
        if self.config.interest == Interest::Full {
            return;
        }
        let opts = self.local_options();
        let bloom = self.local_bloom();
        let active = self.active_peers();
        for (peer, dialect) in active {
            match dialect {
                Dialect::Waku1 => {
                    let update = StatusOptions {
                        bloom: opts.bloom,
                        topic_interest: opts.topic_interest.clone(),
                        ..Default::default()
                    };
                    self.send(peer, packet::STATUS_UPDATE, update.encode());
                }
                Dialect::Whisper6 => {
                    self.send(peer, packet::BLOOM_FILTER, rlp::encode(&&bloom.0[..]).to_vec())
                }
            }
        }
    }

    /// Peers whose handshake is done, with their dialect.
    fn active_peers(&self) -> Vec<(ConnId, Dialect)> {
        self.peers
            .iter()
            .filter(|(_, p)| p.is_active())
            .map(|(id, p)| (*id, p.dialect))
            .collect()
    }

    /// Adopt a new PoW requirement and announce it to every active peer.
    pub(super) fn set_min_pow(&mut self, pow: f64) {
        self.config.min_pow = pow;
        let active = self.active_peers();
        for (peer, dialect) in active {
            match dialect {
                Dialect::Waku1 => {
                    let u = StatusOptions {
                        pow_requirement: Some(pow),
                        ..Default::default()
                    };
                    self.send(peer, packet::STATUS_UPDATE, u.encode());
                }
                Dialect::Whisper6 => self.send(
                    peer,
                    packet::POW_REQUIREMENT,
                    rlp::encode(&pow.to_bits()).to_vec(),
                ),
            }
        }
    }
}
