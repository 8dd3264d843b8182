//! 1:1 chats, private groups, and the plumbing under both: MVDS in, secure transport out, Waku routes
//! (see the [parent module](super) docs).

use bytes::Bytes;
use rand_core::RngCore;
use status_proto::protobuf as pb;

use super::{
    text_message, ChatKind, DirectChat, Event, GroupChat, Messenger, MessengerError, Negotiated, Opened,
    Output, Pending, NEGOTIATED_SUBSCRIPTION_PREFIX,
};
use crate::chat::group::{
    decode_membership_update, encode_membership_update, group_chat_id, new_event, sign_event, EventType,
    Group,
};
use crate::chat::identity::{pubkey_from_hex, pubkey_to_hex};
use crate::chat::log::ChatLog;
use crate::chat::payloads::{decode_chat_message, unwrap, wrap, wrap_chat_message, MessageId, MessageKind};
use crate::chat::validate::validate_chat_message;
use crate::crypto::{pubkey_from_sec1, pubkey_to_uncompressed, PublicKey};
use crate::mvds::{self, GroupId, PeerId};
use crate::secure::{self, sharedsecret::NegotiatedSecret, Route};
use crate::time::Timestamp;
use crate::waku::message::PostKey;
use crate::waku::{status, Filter, Topic};
use zeroize::Zeroizing;

use pb::membership_update_message::ChatEntity;

fn peer_id(pk: &PublicKey) -> PeerId {
    PeerId::new(Bytes::copy_from_slice(&pubkey_to_uncompressed(pk)))
}

impl Messenger {
    // ---- secure transport and Waku routes ---------------------------------------------------------

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
                    self.drop_with(format!("secure transport: {error}"))
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
    fn post_outgoing(&mut self, out: secure::Outgoing) {
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

    // ---- MVDS ----------------------------------------------------------------------------------------

    /// Append `body` to the pairwise MVDS group with `to`, tracking it for delivery reports.
    fn mvds_send(
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
    fn untrack(&mut self, mid: &mvds::MessageId) -> Option<Pending> {
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

    fn settle(&mut self, mid: mvds::MessageId, delivered: bool) {
        let Some(p) = self.untrack(&mid) else {
            return;
        };
        if p.notify {
            let (chat, id, to) = (p.chat, p.id, p.to);
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
    fn prune_peer(&mut self, peer: &PublicKey) {
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

    // ---- receiving -----------------------------------------------------------------------------------

    /// Handle bytes the secure transport decrypted from `sender` (the path after decryption: datasync
    /// unwrap, then every application message). `transport_time` is the envelope's time, for the clock
    /// rule. Public for fuzzing and tests; peer faults become [`Event::Dropped`].
    pub fn receive_decrypted(
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

    fn on_app_message(&mut self, now: Timestamp, sender: PublicKey, bytes: &[u8], transport_time: Timestamp) {
        let u = match unwrap(bytes, Some(&sender)) {
            Ok(u) => u,
            Err(e) => return self.drop_with(format!("wrapper: {e}")),
        };
        let (Some(author), Some(id)) = (u.author, u.id) else {
            return self.drop_with("no author");
        };
        match u.message_kind() {
            Some(MessageKind::ChatMessage) => match decode_chat_message(&u.payload) {
                Ok(cm) => self.on_direct_message(author, id, cm, transport_time),
                Err(e) => self.drop_with(format!("chat message: {e}")),
            },
            Some(MessageKind::MembershipUpdateMessage) => {
                self.on_group_update(now, author, id, &u.payload, transport_time)
            }
            _ => self.drop_with("unsupported message type"),
        }
    }

    fn on_direct_message(&mut self, author: PublicKey, id: MessageId, cm: pb::ChatMessage, t: Timestamp) {
        if let Err(e) = validate_chat_message(&cm, t) {
            return self.drop_with(format!("invalid: {e}"));
        }
        if cm.message_type != pb::MessageType::OneToOne as i32 {
            return self.drop_with("not a 1:1 message");
        }
        let own = author == self.me;
        let (chat, peer) = if own {
            // Written on another device of ours: the chat is the recipient's.
            match pubkey_from_hex(&cm.chat_id) {
                Ok(p) if p != self.me => (cm.chat_id.clone(), p),
                _ => return self.drop_with("own 1:1 message without a valid chat id"),
            }
        } else {
            (pubkey_to_hex(&author), author)
        };
        if !self.direct.contains_key(&chat) {
            if self.direct.len() >= self.config.max_one_to_one_chats && !self.evict_contact_request() {
                return self.drop_with("1:1 chat limit reached");
            }
            // A message we wrote on another device means we accepted the chat there.
            self.insert_direct(chat.clone(), peer, own);
            if own {
                self.listen_contact_code(&peer);
            }
            if !own {
                self.event(Event::ContactRequest {
                    from: author,
                    chat: chat.clone(),
                });
            }
        }
        self.show(ChatKind::OneToOne, chat, id, author, cm);
    }

    fn on_group_update(
        &mut self,
        now: Timestamp,
        author: PublicKey,
        id: MessageId,
        payload: &[u8],
        t: Timestamp,
    ) {
        let limits = self.config.group_limits();
        let update = match decode_membership_update(payload, &limits) {
            Ok(u) => u,
            Err(e) => return self.drop_with(format!("membership update: {e}")),
        };
        let chat = update.chat_id.clone();
        let author_hex = pubkey_to_hex(&author);
        let (old, new) = match self.groups.get(&chat) {
            Some(gc) => {
                let new = match gc.group.merge_update(&update, now) {
                    Ok(g) => g,
                    Err(e) => return self.drop_with(format!("membership: {e}")),
                };
                if !(gc.group.is_member(&author_hex) || new.is_member(&author_hex)) {
                    return self.drop_with("group message from a non-member");
                }
                (Some(gc.group.clone()), new)
            }
            None => {
                let new = match Group::from_events(&chat, update.events.clone(), now, limits) {
                    Ok(g) => g,
                    Err(e) => return self.drop_with(format!("membership: {e}")),
                };
                if !new.is_member(&self.me_hex) {
                    return self.drop_with("a group we are not a member of");
                }
                if !new.is_member(&author_hex) {
                    return self.drop_with("group message from a non-member");
                }
                if self.groups.len() >= self.config.max_groups && !self.evict_unaccepted_group() {
                    return self.drop_with("group limit reached");
                }
                (None, new)
            }
        };
        let changed = old.as_ref().is_none_or(|o| {
            o.name() != new.name() || o.members() != new.members() || o.admins() != new.admins()
        });
        let removed_self =
            old.as_ref().is_some_and(|o| o.is_member(&self.me_hex)) && !new.is_member(&self.me_hex);
        let gone: Vec<String> = old
            .as_ref()
            .map(|o| o.members().difference(new.members()).cloned().collect())
            .unwrap_or_default();
        match self.groups.get_mut(&chat) {
            Some(gc) => gc.group = new.clone(),
            None => {
                let seq = self.next_chat_seq;
                self.next_chat_seq += 1;
                let log = ChatLog::new(self.config.max_messages_per_chat);
                self.groups.insert(
                    chat.clone(),
                    GroupChat {
                        group: new.clone(),
                        log,
                        accepted: false,
                        seq,
                    },
                );
            }
        }
        if changed {
            self.membership_changed(&chat, removed_self);
        }
        for g in gone {
            if let Ok(pk) = pubkey_from_hex(&g) {
                self.prune_peer(&pk);
            }
        }
        let Some(ChatEntity::Message(cm)) = update.entity else {
            return;
        };
        if !new.is_member(&author_hex) {
            return self.drop_with("group text from a non-member");
        }
        if !new.is_member(&self.me_hex) {
            return self.drop_with("group text after we left");
        }
        if let Err(e) = validate_chat_message(&cm, t) {
            return self.drop_with(format!("invalid: {e}"));
        }
        if cm.message_type != pb::MessageType::PrivateGroup as i32 || cm.chat_id != chat {
            return self.drop_with("not for this group");
        }
        self.show(ChatKind::Group, chat, id, author, cm);
    }

    pub(super) fn membership_changed(&mut self, chat: &str, removed_self: bool) {
        let Some(gc) = self.groups.get(chat) else {
            return;
        };
        let keys = |s: &std::collections::BTreeSet<String>| -> Vec<PublicKey> {
            s.iter().filter_map(|k| pubkey_from_hex(k).ok()).collect()
        };
        let e = Event::MembershipChanged {
            chat: chat.to_string(),
            name: gc.group.name().to_string(),
            members: keys(gc.group.members()),
            admins: keys(gc.group.admins()),
            removed_self,
        };
        self.event(e);
    }

    // ---- 1:1 -----------------------------------------------------------------------------------------

    pub(super) fn start_one_to_one(&mut self, peer: &PublicKey) -> Result<String, MessengerError> {
        if *peer == self.me {
            return Err(MessengerError::OwnKey);
        }
        let chat = pubkey_to_hex(peer);
        match self.direct.get_mut(&chat) {
            Some(c) => c.accepted = true,
            None => {
                if self.direct.len() >= self.config.max_one_to_one_chats && !self.evict_contact_request() {
                    return Err(MessengerError::TooManyChats);
                }
                self.insert_direct(chat.clone(), *peer, true);
            }
        }
        self.listen_contact_code(peer);
        Ok(chat)
    }

    /// Listen on `peer`'s contact-code topic (a contact: we started or wrote in the chat), unless we do
    /// or [`MessengerConfig::max_contact_codes`](super::MessengerConfig::max_contact_codes) is reached.
    pub(super) fn listen_contact_code(&mut self, peer: &PublicKey) {
        let hex = pubkey_to_hex(peer);
        if self.contact_codes.contains_key(&hex) || self.contact_codes.len() >= self.config.max_contact_codes
        {
            return;
        }
        let topic = status::contact_code_topic(peer);
        let key = status::contact_code_key(peer);
        self.contact_codes
            .insert(hex.clone(), super::ContactCode { peer: *peer, topic });
        self.push(Output::Subscribe {
            chat: format!("{}{hex}", super::CONTACT_CODE_SUBSCRIPTION_PREFIX),
            filter: Filter::symmetric(vec![topic], *key),
        });
    }

    /// A public message on `contact`'s contact-code topic (its bundle, if any, is already with the secure
    /// transport): it must be that contact's signed advertisement.
    pub(super) fn on_contact_code(&mut self, contact: PublicKey, sender: PublicKey, payload: &[u8]) {
        match unwrap(payload, Some(&sender)) {
            Ok(u)
                if u.message_kind() == Some(MessageKind::ContactCodeAdvertisement)
                    && u.signed
                    && u.author == Some(contact) => {}
            Ok(_) => self.drop_with("not the contact's contact-code advertisement"),
            Err(e) => self.drop_with(format!("contact code: {e}")),
        }
    }

    /// Make room for a group by dropping the oldest one we were added to and never wrote in (a stranger
    /// can make groups with us in them at will). False if we wrote in every group.
    fn evict_unaccepted_group(&mut self) -> bool {
        let victim = self
            .groups
            .iter()
            .filter(|(_, g)| !g.accepted)
            .min_by_key(|(_, g)| g.seq)
            .map(|(chat, _)| chat.clone());
        let Some(chat) = victim else {
            return false;
        };
        if let Some(g) = self.groups.remove(&chat) {
            for m in g.group.members() {
                if let Ok(pk) = pubkey_from_hex(m) {
                    self.prune_peer(&pk);
                }
            }
            self.drop_with(format!("group limit: group {chat} we never wrote in dropped"));
        }
        true
    }

    fn insert_direct(&mut self, chat: String, peer: PublicKey, accepted: bool) {
        let seq = self.next_chat_seq;
        self.next_chat_seq += 1;
        let log = ChatLog::new(self.config.max_messages_per_chat);
        self.direct.insert(
            chat,
            DirectChat {
                peer,
                log,
                accepted,
                seq,
            },
        );
    }

    /// Make room for a 1:1 chat by dropping the oldest chat that is only a contact request (we never
    /// started it nor wrote in it), so strangers cannot fill the table for good. False if every chat is
    /// accepted.
    fn evict_contact_request(&mut self) -> bool {
        let victim = self
            .direct
            .iter()
            .filter(|(_, c)| !c.accepted)
            .min_by_key(|(_, c)| c.seq)
            .map(|(chat, _)| chat.clone());
        let Some(chat) = victim else {
            return false;
        };
        if let Some(c) = self.direct.remove(&chat) {
            self.prune_peer(&c.peer);
            self.drop_with(format!(
                "1:1 chat limit: unanswered contact request {chat} dropped"
            ));
        }
        true
    }

    pub(super) fn send_one_to_one(
        &mut self,
        now: Timestamp,
        chat: String,
        text: String,
    ) -> Result<(), MessengerError> {
        let c = self
            .direct
            .get_mut(&chat)
            .ok_or_else(|| MessengerError::NotJoined(chat.clone()))?;
        let peer = c.peer;
        c.accepted = true;
        let (clock, timestamp) = c.log.tick(now);
        self.listen_contact_code(&peer);
        let m = text_message(clock, timestamp, &text, &chat, pb::MessageType::OneToOne);
        let wrapped = wrap_chat_message(&m, &self.config.identity)?;
        self.mvds_send(now, &peer, wrapped.bytes.clone(), &chat, wrapped.id, true)?;
        self.sent(ChatKind::OneToOne, chat, wrapped.id, clock, timestamp, text);
        Ok(())
    }

    // ---- groups --------------------------------------------------------------------------------------

    fn group_member(&self, chat: &str) -> Result<&GroupChat, MessengerError> {
        let gc = self
            .groups
            .get(chat)
            .ok_or_else(|| MessengerError::NotJoined(chat.to_string()))?;
        if !gc.group.is_member(&self.me_hex) {
            return Err(MessengerError::NotMember(chat.to_string()));
        }
        Ok(gc)
    }

    /// The clock of our next event or text in `chat`: past the chat's clock and every event.
    fn next_group_clock(&mut self, now: Timestamp, chat: &str) -> (u64, u64) {
        let Some(gc) = self.groups.get_mut(chat) else {
            return (now.as_millis().max(1), now.as_millis());
        };
        let (clock, timestamp) = gc.log.tick(now);
        (clock.max(gc.group.last_clock().saturating_add(1)), timestamp)
    }

    /// Send the group's events (and `entity`) to `recipients` (ids; ourselves skipped). Per-recipient
    /// MVDS refusals are reported as [`Event::DeliveryFailed`] for texts.
    fn send_group_update(
        &mut self,
        now: Timestamp,
        chat: &str,
        entity: Option<&ChatEntity>,
        recipients: Vec<String>,
    ) -> Result<MessageId, MessengerError> {
        let gc = self.group_member_or_leaving(chat)?;
        let bytes = encode_membership_update(chat, gc.group.events(), entity);
        if let Some(gc) = self.groups.get_mut(chat) {
            gc.accepted = true;
        }
        let w = wrap(
            &bytes,
            MessageKind::MembershipUpdateMessage,
            &self.config.identity,
        )?;
        let notify = entity.is_some();
        for r in recipients {
            if r == self.me_hex {
                continue;
            }
            let Ok(to) = pubkey_from_hex(&r) else { continue };
            if self
                .mvds_send(now, &to, w.bytes.clone(), chat, w.id, notify)
                .is_err()
                && notify
            {
                self.event(Event::DeliveryFailed {
                    chat: chat.to_string(),
                    id: w.id,
                    to,
                });
            }
        }
        Ok(w.id)
    }

    fn group_member_or_leaving(&self, chat: &str) -> Result<&GroupChat, MessengerError> {
        self.groups
            .get(chat)
            .ok_or_else(|| MessengerError::NotJoined(chat.to_string()))
    }

    pub(super) fn create_group(
        &mut self,
        now: Timestamp,
        name: String,
        members: Vec<PublicKey>,
    ) -> Result<(), MessengerError> {
        if self.groups.len() >= self.config.max_groups {
            return Err(MessengerError::TooManyChats);
        }
        let mut uuid = [0u8; 16];
        self.rng.fill_bytes(&mut uuid);
        let chat = group_chat_id(uuid, &self.me);
        let mut log = ChatLog::new(self.config.max_messages_per_chat);
        let limits = self.config.group_limits();
        let (clock, _) = log.tick(now);
        let created = sign_event(
            &chat,
            &new_event(EventType::ChatCreated, clock, &[], &name),
            &self.config.identity,
        )?;
        let mut group = Group::from_events(&chat, vec![created], now, limits)?;
        let mut hexes: Vec<String> = members
            .iter()
            .filter(|m| **m != self.me)
            .map(pubkey_to_hex)
            .collect();
        hexes.sort();
        hexes.dedup();
        if !hexes.is_empty() {
            let (clock, _) = log.tick(now);
            let ev = new_event(EventType::MembersAdded, clock, &hexes, "");
            group = group.apply_own(&ev, &self.config.identity, now)?.0;
        }
        let seq = self.next_chat_seq;
        self.next_chat_seq += 1;
        self.groups.insert(
            chat.clone(),
            GroupChat {
                group,
                log,
                accepted: true,
                seq,
            },
        );
        self.event(Event::GroupCreated {
            chat: chat.clone(),
            name,
        });
        self.membership_changed(&chat, false);
        self.send_group_update(now, &chat, None, hexes)?;
        Ok(())
    }

    /// Sign and apply our event in `chat`, then send the events to `recipients(old, new)`.
    fn group_change(
        &mut self,
        now: Timestamp,
        chat: String,
        kind: EventType,
        targets: Vec<String>,
        name: &str,
        to_old_members: bool,
    ) -> Result<(), MessengerError> {
        self.group_member(&chat)?;
        let (clock, _) = self.next_group_clock(now, &chat);
        let identity = self.config.identity.clone();
        let gc = self.group_member(&chat)?;
        let old = gc.group.clone();
        let (new, _) = old.apply_own(&new_event(kind, clock, &targets, name), &identity, now)?;
        let mut recipients: Vec<String> = new.members().iter().cloned().collect();
        if to_old_members {
            recipients.extend(old.members().iter().cloned());
            recipients.sort();
            recipients.dedup();
        }
        let removed_self = !new.is_member(&self.me_hex);
        let gone: Vec<String> = old.members().difference(new.members()).cloned().collect();
        if let Some(gc) = self.groups.get_mut(&chat) {
            gc.group = new;
        }
        self.membership_changed(&chat, removed_self);
        self.send_group_update(now, &chat, None, recipients)?;
        for g in gone {
            if let Ok(pk) = pubkey_from_hex(&g) {
                self.prune_peer(&pk);
            }
        }
        Ok(())
    }

    pub(super) fn add_members(
        &mut self,
        now: Timestamp,
        chat: String,
        members: Vec<PublicKey>,
    ) -> Result<(), MessengerError> {
        let gc = self.group_member(&chat)?;
        let mut hexes: Vec<String> = members
            .iter()
            .map(pubkey_to_hex)
            .filter(|h| !gc.group.is_member(h))
            .collect();
        hexes.sort();
        hexes.dedup();
        if hexes.is_empty() {
            return Ok(());
        }
        self.group_change(now, chat, EventType::MembersAdded, hexes, "", false)
    }

    pub(super) fn remove_member(
        &mut self,
        now: Timestamp,
        chat: String,
        member: PublicKey,
    ) -> Result<(), MessengerError> {
        let target = pubkey_to_hex(&member);
        self.group_change(now, chat, EventType::MemberRemoved, vec![target], "", true)
    }

    pub(super) fn make_admin(
        &mut self,
        now: Timestamp,
        chat: String,
        member: PublicKey,
    ) -> Result<(), MessengerError> {
        let target = pubkey_to_hex(&member);
        self.group_change(now, chat, EventType::AdminsAdded, vec![target], "", false)
    }

    pub(super) fn rename_group(
        &mut self,
        now: Timestamp,
        chat: String,
        name: String,
    ) -> Result<(), MessengerError> {
        self.group_change(now, chat, EventType::NameChanged, vec![], &name, false)
    }

    pub(super) fn leave_group(&mut self, now: Timestamp, chat: String) -> Result<(), MessengerError> {
        let me = self.me_hex.clone();
        self.group_change(now, chat, EventType::MemberRemoved, vec![me], "", true)
    }

    pub(super) fn send_group_text(
        &mut self,
        now: Timestamp,
        chat: String,
        text: String,
    ) -> Result<(), MessengerError> {
        self.group_member(&chat)?;
        let (clock, timestamp) = self.next_group_clock(now, &chat);
        let cm = text_message(clock, timestamp, &text, &chat, pb::MessageType::PrivateGroup);
        let recipients: Vec<String> = self
            .group_member(&chat)?
            .group
            .members()
            .iter()
            .cloned()
            .collect();
        let entity = ChatEntity::Message(cm);
        let id = self.send_group_update(now, &chat, Some(&entity), recipients)?;
        self.sent(ChatKind::Group, chat, id, clock, timestamp, text);
        Ok(())
    }
}
