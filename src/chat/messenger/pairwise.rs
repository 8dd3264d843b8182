//! The pairwise plumbing under 1:1 chats and groups: MVDS in, secure transport out, Waku routes
//! (partitioned and negotiated topics), delivery tracking, the datasync unwrap of what was decrypted
//! (docs/protocol/mvds.md §6; docs/protocol/secure-transport.md §11; see the [parent module](super)).

use bytes::Bytes;

use super::{
    DropReason, Event, Messenger, MessengerError, Negotiated, Opened, Output, Pending,
    NEGOTIATED_SUBSCRIPTION_PREFIX,
};
use crate::chat::identity::pubkey_to_hex;
use crate::chat::payloads::{decode_chat_message, unwrap, MessageId, MessageKind};
use crate::chat::ChatId;
use crate::crypto::{pubkey_from_sec1, pubkey_to_uncompressed, PublicKey};
use crate::mvds::{self, GroupId, PeerId};
use crate::secure::{self, sharedsecret::NegotiatedSecret, Route};
use crate::time::Timestamp;
use crate::waku::message::PostKey;
use crate::waku::{status, Filter, Topic};
use zeroize::Zeroizing;

fn peer_id(pk: &PublicKey) -> PeerId {
    PeerId::new(Bytes::copy_from_slice(&pubkey_to_uncompressed(pk)))
}

impl Messenger {
    /// Act on the secure transport's outputs: post what it sends, subscribe negotiated topics, report
    /// rejections; return what it opened.
    pub(super) fn drain_secure(&mut self) -> Vec<Opened> {
        let mut opened = Vec::new();
        while let Some(o) = self.secure.poll_output() {
            match o {
                secure::Output::Transmit(out) => self.post_outgoing(out),
                secure::Output::Event(secure::Event::Decrypted {
                    sender, plaintext, ..
                }) => opened.push(Opened::Private(sender, plaintext)),
                secure::Output::Event(secure::Event::Public { payload, .. }) => {
                    opened.push(Opened::Public(payload))
                }
                secure::Output::Event(secure::Event::NegotiatedSecret { peer, secret }) => {
                    self.ensure_negotiated(&peer, &secret)
                }
                secure::Output::Event(secure::Event::PeerFault { fault: error, .. }) => {
                    self.drop_with(DropReason::Secure(error))
                }
                secure::Output::Event(_) => {}
            }
        }
        opened
    }

    pub(super) fn ensure_negotiated(&mut self, peer: &PublicKey, secret: &NegotiatedSecret) {
        let hex = pubkey_to_hex(peer);
        if self.negotiated.contains_key(&hex) || self.negotiated.len() >= self.config.max_negotiated_topics {
            return;
        }
        let topic = status::negotiated_topic(secret.as_bytes());
        let key = status::negotiated_key(secret.as_bytes());
        self.subscribe_negotiated(hex, topic, key);
    }

    /// Listen on a negotiated topic (the caller checked the cap).
    pub(super) fn subscribe_negotiated(&mut self, hex: String, topic: Topic, key: Zeroizing<[u8; 32]>) {
        let filter = Filter::symmetric(vec![topic], *key);
        self.negotiated.insert(hex.clone(), Negotiated { topic, key });
        self.push(Output::Subscribe {
            chat: format!("{NEGOTIATED_SUBSCRIPTION_PREFIX}{hex}"),
            filter,
        });
    }

    /// Post a secure-transport message as its route says (docs/protocol/secure-transport.md §11.2).
    pub(super) fn post_outgoing(&mut self, out: secure::Outgoing) {
        match out.route {
            Route::Partitioned => {
                let topic = status::partitioned_topic(&out.recipient);
                self.post(topic, out.bytes, PostKey::Asymmetric(out.recipient));
            }
            Route::Negotiated { secret } => {
                self.ensure_negotiated(&out.recipient, &secret);
                let hex = pubkey_to_hex(&out.recipient);
                match self.negotiated.get(&hex) {
                    Some(n) => {
                        let (topic, key) = (n.topic, n.key.clone());
                        self.post(topic, out.bytes, PostKey::Symmetric(key));
                    }
                    // Beyond `max_negotiated_topics`: the partitioned topic, which every client
                    // listens on.
                    None => {
                        let topic = status::partitioned_topic(&out.recipient);
                        self.post(topic, out.bytes, PostKey::Asymmetric(out.recipient));
                    }
                }
            }
            // Only `Input::Public` produces it, and public sends post it themselves.
            Route::Public => {}
        }
    }

    /// Append `body` to the pairwise MVDS group with `to`, tracking it for delivery reports.
    pub(super) fn mvds_send(
        &mut self,
        now: Timestamp,
        to: &PublicKey,
        body: Bytes,
        chat: &str,
        id: MessageId,
        notify: bool,
    ) -> Result<(), MessengerError> {
        let group = GroupId::one_to_one(&self.me, to);
        self.mvds.handle_input(
            now,
            mvds::Input::AddPeer {
                group,
                peer: peer_id(to),
            },
        )?;
        let mid = mvds::MessageId::for_send(&group, now, &body);
        self.mvds.handle_input(now, mvds::Input::Send { group, body })?;
        self.track(
            mid,
            Pending {
                chat: chat.to_string(),
                id,
                to: *to,
                notify,
            },
        );
        Ok(())
    }

    pub(super) fn track(&mut self, mid: mvds::MessageId, p: Pending) {
        let cap = self.config.max_tracked_deliveries.max(1);
        if !self.pending.contains_key(&mid) {
            while self.pending.len() >= cap {
                match self.pending_order.pop_front() {
                    Some(old) => {
                        self.untrack(&old);
                    }
                    None => break,
                }
            }
            if self.pending.len() >= cap {
                return;
            }
            self.pending_order.push_back(mid);
        }
        self.untrack(&mid);
        *self
            .pending_per_peer
            .entry(pubkey_to_uncompressed(&p.to))
            .or_default() += 1;
        self.pending.insert(mid, p);
        if self.pending_order.len() > cap.saturating_mul(2) {
            let pending = &self.pending;
            self.pending_order.retain(|m| pending.contains_key(m));
        }
    }

    /// Forget a tracked delivery, keeping the per-recipient counts.
    pub(super) fn untrack(&mut self, mid: &mvds::MessageId) -> Option<Pending> {
        let p = self.pending.remove(mid)?;
        let k = pubkey_to_uncompressed(&p.to);
        if let Some(n) = self.pending_per_peer.get_mut(&k) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.pending_per_peer.remove(&k);
            }
        }
        Some(p)
    }

    /// Act on the MVDS node's outputs: encrypt and post its payloads, report deliveries.
    pub(super) fn drain_mvds(&mut self, now: Timestamp) {
        while let Some(o) = self.mvds.poll_output() {
            match o {
                mvds::Output::Transmit { peer, payload } => {
                    let Some(to) = pubkey_from_sec1(peer.as_bytes()) else {
                        continue;
                    };
                    let input = secure::Input::Encrypt {
                        recipient: to,
                        payload: payload.encode_to_vec(),
                    };
                    if self.secure.handle_input(now, input).is_ok() {
                        let _ = self.drain_secure();
                    }
                }
                mvds::Output::Event(mvds::Event::Delivered { message_id, .. }) => {
                    self.settle(message_id, true)
                }
                mvds::Output::Event(mvds::Event::DeliveryFailed { message_id, .. }) => {
                    self.settle(message_id, false)
                }
                mvds::Output::Event(_) => {}
            }
        }
    }

    pub(super) fn settle(&mut self, mid: mvds::MessageId, delivered: bool) {
        let Some(p) = self.untrack(&mid) else {
            return;
        };
        if p.notify {
            let (chat, id, to) = (ChatId::from(p.chat), p.id, p.to);
            self.event(if delivered {
                Event::Delivered { chat, id, to }
            } else {
                Event::DeliveryFailed { chat, id, to }
            });
        }
        self.prune_peer(&p.to);
    }

    /// Remove `peer` from its pairwise MVDS group once nothing links us any more: no 1:1 chat, no group
    /// we both are members of, no pending delivery.
    pub(super) fn prune_peer(&mut self, peer: &PublicKey) {
        let hex = pubkey_to_hex(peer);
        let linked = self.direct.contains_key(&hex)
            || self
                .groups
                .values()
                .any(|g| g.group.is_member(&self.me_hex) && g.group.is_member(&hex))
            || self.pending_per_peer.contains_key(&pubkey_to_uncompressed(peer));
        if !linked {
            self.mvds
                .remove_peer(&GroupId::one_to_one(&self.me, peer), &peer_id(peer));
        }
    }

    /// Handle bytes the secure transport decrypted from `sender` (the path after decryption: datasync
    /// unwrap, then every application message). `transport_time` is the envelope's time, for the clock
    /// rule. Crate-visible for the fuzz bodies ([`crate::fuzzing`]); peer faults become [`Event::Dropped`].
    pub(crate) fn receive_decrypted(
        &mut self,
        now: Timestamp,
        sender: PublicKey,
        plaintext: &[u8],
        transport_time: Timestamp,
    ) {
        if plaintext.is_empty() {
            // A bundle advert (empty DH-only message): no application content.
            return;
        }
        let limit = self.mvds.config().max_incoming_payload_bytes;
        match mvds::Payload::unwrap_datasync_with_limit(plaintext, limit) {
            Some(p) => {
                let bodies: Vec<Bytes> = p.messages.iter().map(|m| m.body.clone()).collect();
                self.mvds.receive_payload(now, peer_id(&sender), p);
                for b in bodies {
                    self.on_app_message(now, sender, &b, transport_time);
                }
            }
            None => self.on_app_message(now, sender, plaintext, transport_time),
        }
        self.drain_mvds(now);
    }

    pub(super) fn on_app_message(
        &mut self,
        now: Timestamp,
        sender: PublicKey,
        bytes: &[u8],
        transport_time: Timestamp,
    ) {
        let u = match unwrap(bytes, Some(&sender)) {
            Ok(u) => u,
            Err(e) => return self.drop_with(DropReason::Wrapper(e)),
        };
        let (Some(author), Some(id)) = (u.author, u.id) else {
            return self.drop_with(DropReason::NoAuthor);
        };
        match u.message_kind() {
            Some(MessageKind::ChatMessage) => match decode_chat_message(&u.payload) {
                Ok(cm) => self.on_direct_message(author, id, cm, transport_time),
                Err(e) => self.drop_with(DropReason::ChatMessage(e)),
            },
            Some(MessageKind::MembershipUpdateMessage) => {
                self.on_group_update(now, author, id, &u.payload, transport_time)
            }
            _ => self.drop_with(DropReason::UnsupportedMessageType),
        }
    }
}
