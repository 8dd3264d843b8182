//! The message store and the sync records: local appends, quotas, eviction (docs/protocol/mvds.md §5.1,
//! §5.2).

use bytes::Bytes;

use super::super::payload::{GroupId, Message, MessageId, PeerId};
use super::super::state::{Mode, RecordKind, SyncState};
use super::super::MvdsError;
use super::Node;
use crate::time::Timestamp;

impl Node {
    pub(super) fn room_for_state(&self, peer: &PeerId, local: bool) -> bool {
        let (all_local, all_remote) = self.states.counts();
        let (peer_local, peer_remote) = self.states.peer_counts(peer);
        if local {
            all_local < self.config.max_states && peer_local < self.config.max_states_per_peer
        } else {
            all_remote < self.config.max_remote_states && peer_remote < self.config.max_remote_states_per_peer
        }
    }

    pub(super) fn insert_state(&mut self, peer: PeerId, id: MessageId, s: SyncState) {
        if self.states.insert(peer, id, s) {
            if let Some((seq, _)) = self.store.get(&id) {
                self.evictable.remove(seq);
            }
        }
    }

    pub(super) fn remove_state(&mut self, peer: &PeerId, id: &MessageId) -> Option<SyncState> {
        let (s, last) = self.states.remove(peer, id)?;
        if s.send_count > 0 {
            self.first_sent.remove(&(peer.clone(), *id));
        }
        if last {
            if let Some((seq, _)) = self.store.get(id) {
                self.evictable.insert(*seq, *id);
            }
        }
        Some(s)
    }

    /// Make room for one more message by evicting the oldest unreferenced one; `false` if every stored
    /// message is still referenced (impossible with a valid configuration).
    pub(super) fn make_room(&mut self) -> bool {
        if self.store.len() < self.config.max_messages {
            return true;
        }
        match self.evictable.pop_first() {
            Some((_, id)) => {
                self.store.remove(&id);
                true
            }
            None => false,
        }
    }

    /// Store a message (no-op if present).
    pub(super) fn store_insert(&mut self, id: MessageId, message: Message) {
        if self.store.contains_key(&id) {
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.store.insert(id, (seq, message));
        if !self.states.refers_to(&id) {
            self.evictable.insert(seq, id);
        }
    }

    /// [`Input::Send`](super::Input::Send): append a message created now (timestamp in UNIX seconds) to
    /// `group`, to be sent to every peer of the group from the next epoch on (docs/protocol/mvds.md
    /// §5.2). Returns [`MessageId::for_send`].
    ///
    /// Fails with [`MvdsError::NoPeers`] if the group has no peers (nothing is stored: add the peers
    /// first, as status-go's `addToDataSync` does), [`MvdsError::BodyTooLarge`], or
    /// [`MvdsError::StateFull`] (nothing is added).
    ///
    /// Appending the same body to the same group twice within one second yields the same id. Peers that
    /// still have a pending record for it are not sent it twice; a peer that has already acknowledged it
    /// gets it again (and ACKs it as a duplicate without delivering it again, unless it has evicted it).
    pub(super) fn send(
        &mut self,
        now: Timestamp,
        group: GroupId,
        body: impl Into<Bytes>,
    ) -> Result<MessageId, MvdsError> {
        let body = body.into();
        if body.len() > self.config.max_body_bytes {
            return Err(MvdsError::BodyTooLarge(body.len()));
        }
        if self.peers(&group).next().is_none() {
            return Err(MvdsError::NoPeers);
        }
        let message = Message::new(group, now.as_secs() as i64, body);
        let id = message.id();
        let peers: Vec<PeerId> = self
            .peers(&group)
            .filter(|p| !self.states.contains(p, &id))
            .cloned()
            .collect();
        if self.states.counts().0.saturating_add(peers.len()) > self.config.max_states
            || peers
                .iter()
                .any(|p| self.states.peer_counts(p).0 >= self.config.max_states_per_peer)
        {
            return Err(MvdsError::StateFull);
        }
        if !self.store.contains_key(&id) {
            if !self.make_room() {
                return Err(MvdsError::StoreFull);
            }
            self.store_insert(id, message);
        }
        let kind = match self.config.mode {
            Mode::Batch => RecordKind::Message,
            Mode::Interactive => RecordKind::Offer,
        };
        let send_epoch = self.epoch(now).saturating_add(1);
        for p in peers {
            self.insert_state(
                p,
                id,
                SyncState {
                    kind,
                    group: Some(group),
                    send_count: 0,
                    send_epoch,
                    notify: true,
                    local: true,
                },
            );
        }
        Ok(id)
    }
}
