//! 1:1 chats, contact requests and contacts' contact-code topics (docs/protocol/payloads.md §5;
//! docs/protocol/secure-transport.md §3.4; see the [parent module](super)).

use super::*;

use status_proto::protobuf as pb;

use super::{text_message, ChatKind, DirectChat, DropReason, Event, Messenger, MessengerError, Output};
use crate::chat::identity::{pubkey_from_hex, pubkey_to_hex};
use crate::chat::message_log::ChatLog;
use crate::chat::payloads::{unwrap, wrap_chat_message, MessageId, MessageKind};
use crate::chat::validate::validate_chat_message;
use crate::crypto::PublicKey;
use crate::time::Timestamp;
use crate::waku::{status, Filter};

impl Messenger {
    pub(super) fn on_direct_message(
        &mut self,
        author: PublicKey,
        id: MessageId,
        cm: pb::ChatMessage,
        t: Timestamp,
    ) {
        if let Err(e) = validate_chat_message(&cm, t) {
            return self.drop_with(DropReason::Invalid(e));
        }
        if cm.message_type != pb::MessageType::OneToOne as i32 {
            return self.drop_with(DropReason::NotOneToOne);
        }
        let own = author == self.me;
        let (chat, peer) = if own {
            // Written on another device of ours: the chat is the recipient's.
            match pubkey_from_hex(&cm.chat_id) {
                Ok(p) if p != self.me => (cm.chat_id.clone(), p),
                _ => return self.drop_with(DropReason::OwnOneToOneWithoutChatId),
            }
        } else {
            (pubkey_to_hex(&author), author)
        };
        if !self.direct.contains_key(&chat) {
            if self.direct.len() >= self.config.max_one_to_one_chats && !self.evict_contact_request() {
                return self.drop_with(DropReason::OneToOneLimit);
            }
            // A message we wrote on another device means we accepted the chat there.
            self.insert_direct(chat.clone(), peer, own);
            if own {
                self.listen_contact_code(&peer);
            }
            if !own {
                self.event(Event::ContactRequest {
                    from: author,
                    chat: ChatId::from(&chat),
                });
            }
        }
        self.show(ChatKind::OneToOne, chat, id, author, cm);
    }

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
            Ok(_) => self.drop_with(DropReason::NotContactAdvertisement),
            Err(e) => self.drop_with(DropReason::ContactCode(e)),
        }
    }

    pub(super) fn insert_direct(&mut self, chat: String, peer: PublicKey, accepted: bool) {
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
    pub(super) fn evict_contact_request(&mut self) -> bool {
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
            self.drop_with(DropReason::ContactRequestEvicted(ChatId::from(chat)));
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
}
