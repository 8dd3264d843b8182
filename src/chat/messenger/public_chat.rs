//! Public chats: joining, posting, received public messages (docs/protocol/payloads.md §5;
//! docs/protocol/status-transport-usage.md §2; see the [parent module](super)).

use super::*;

impl Messenger {
    pub(super) fn join_public(&mut self, name: String) -> Result<(), MessengerError> {
        if self.public.contains_key(&name) {
            return Ok(());
        }
        if self.public.len() >= self.config.max_chats {
            return Err(MessengerError::TooManyChats);
        }
        let topic = status::public_chat_topic(&name);
        let key = status::public_chat_key(&name);
        let filter = Filter::symmetric(vec![topic], *key);
        self.public.insert(
            name.clone(),
            PublicChat {
                topic,
                key,
                log: ChatLog::new(self.config.max_messages_per_chat),
            },
        );
        self.push(Output::Subscribe { chat: name, filter });
        Ok(())
    }

    /// Post `payload` as a secure-transport public message (it carries our bundle) on `topic`.
    pub(super) fn post_public(
        &mut self,
        now: Timestamp,
        payload: &[u8],
        topic: Topic,
        key: Zeroizing<[u8; 32]>,
    ) -> Result<(), MessengerError> {
        self.secure.handle_input(
            now,
            secure::Input::Public {
                payload: payload.to_vec(),
            },
        )?;
        let mut bytes = None;
        while let Some(o) = self.secure.poll_output() {
            if let secure::Output::Transmit(out) = o {
                bytes = Some(out.bytes);
            }
        }
        let payload = bytes.ok_or(MessengerError::NoMessage)?;
        self.post(topic, payload, PostKey::Symmetric(key));
        Ok(())
    }

    pub(super) fn on_public(
        &mut self,
        chat: String,
        sender: PublicKey,
        payload: &[u8],
        transport_time: Timestamp,
    ) {
        let unwrapped = match unwrap(payload, Some(&sender)) {
            Ok(u) => u,
            Err(e) => return self.drop_with(DropReason::Wrapper(e)),
        };
        if unwrapped.message_kind() != Some(MessageKind::ChatMessage) {
            return self.drop_with(DropReason::NotChatMessage);
        }
        let (Some(author), Some(id)) = (unwrapped.author, unwrapped.id) else {
            return self.drop_with(DropReason::NoAuthor);
        };
        let cm = match decode_chat_message(&unwrapped.payload) {
            Ok(cm) => cm,
            Err(e) => return self.drop_with(DropReason::ChatMessage(e)),
        };
        if let Err(e) = validate_chat_message(&cm, transport_time) {
            return self.drop_with(DropReason::Invalid(e));
        }
        if cm.chat_id != chat || cm.message_type != pb::MessageType::PublicGroup as i32 {
            return self.drop_with(DropReason::WrongPublicChat);
        }
        self.show(ChatKind::Public, chat, id, author, cm);
    }
}
