//! Private group chats: creation, membership changes, group texts, received membership updates
//! (docs/protocol/payloads.md §6; see the [parent module](super)).

use super::*;

use rand_core::RngCore;
use status_proto::protobuf as pb;

use super::{text_message, ChatKind, DropReason, Event, GroupChat, Messenger, MessengerError};
use crate::chat::group::{
    decode_membership_update, encode_membership_update, group_chat_id, new_event, sign_event, EventType,
    Group,
};
use crate::chat::identity::{pubkey_from_hex, pubkey_to_hex};
use crate::chat::message_log::ChatLog;
use crate::chat::payloads::{wrap, MessageId, MessageKind};
use crate::chat::validate::validate_chat_message;
use crate::crypto::PublicKey;
use crate::time::Timestamp;

use pb::membership_update_message::ChatEntity;

impl Messenger {
    pub(super) fn on_group_update(
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
            Err(e) => return self.drop_with(DropReason::MembershipUpdate(e)),
        };
        let chat = update.chat_id.clone();
        let author_hex = pubkey_to_hex(&author);
        let (old, new) = match self.groups.get(&chat) {
            Some(gc) => {
                let new = match gc.group.merge_update(&update, now) {
                    Ok(g) => g,
                    Err(e) => return self.drop_with(DropReason::Membership(e)),
                };
                if !(gc.group.is_member(&author_hex) || new.is_member(&author_hex)) {
                    return self.drop_with(DropReason::GroupMessageFromNonMember);
                }
                (Some(gc.group.clone()), new)
            }
            None => {
                let new = match Group::from_events(&chat, update.events.clone(), now, limits) {
                    Ok(g) => g,
                    Err(e) => return self.drop_with(DropReason::Membership(e)),
                };
                if !new.is_member(&self.me_hex) {
                    return self.drop_with(DropReason::NotAGroupMember);
                }
                if !new.is_member(&author_hex) {
                    return self.drop_with(DropReason::GroupMessageFromNonMember);
                }
                if self.groups.len() >= self.config.max_groups && !self.evict_unaccepted_group() {
                    return self.drop_with(DropReason::GroupLimit);
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
            return self.drop_with(DropReason::GroupTextFromNonMember);
        }
        if !new.is_member(&self.me_hex) {
            return self.drop_with(DropReason::GroupTextAfterLeft);
        }
        if let Err(e) = validate_chat_message(&cm, t) {
            return self.drop_with(DropReason::Invalid(e));
        }
        if cm.message_type != pb::MessageType::PrivateGroup as i32 || cm.chat_id != chat {
            return self.drop_with(DropReason::WrongGroup);
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
            chat: chat.into(),
            name: gc.group.name().to_string(),
            members: keys(gc.group.members()),
            admins: keys(gc.group.admins()),
            removed_self,
        };
        self.event(e);
    }

    /// Make room for a group by dropping the oldest one we were added to and never wrote in (a stranger
    /// can make groups with us in them at will). False if we wrote in every group.
    pub(super) fn evict_unaccepted_group(&mut self) -> bool {
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
            self.drop_with(DropReason::GroupEvicted(ChatId::from(chat)));
        }
        true
    }

    pub(super) fn group_member(&self, chat: &str) -> Result<&GroupChat, MessengerError> {
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
    pub(super) fn next_group_clock(&mut self, now: Timestamp, chat: &str) -> (u64, u64) {
        let Some(gc) = self.groups.get_mut(chat) else {
            return (now.as_millis().max(1), now.as_millis());
        };
        let (clock, timestamp) = gc.log.tick(now);
        (clock.max(gc.group.last_clock().saturating_add(1)), timestamp)
    }

    /// Send the group's events (and `entity`) to `recipients` (ids; ourselves skipped). Per-recipient
    /// MVDS refusals are reported as [`Event::DeliveryFailed`] for texts.
    pub(super) fn send_group_update(
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
                    chat: chat.into(),
                    id: w.id,
                    to,
                });
            }
        }
        Ok(w.id)
    }

    pub(super) fn group_member_or_leaving(&self, chat: &str) -> Result<&GroupChat, MessengerError> {
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
            chat: ChatId::from(&chat),
            name,
        });
        self.membership_changed(&chat, false);
        self.send_group_update(now, &chat, None, hexes)?;
        Ok(())
    }

    /// Sign and apply our event in `chat`, then send the events to `recipients(old, new)`.
    pub(super) fn group_change(
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
