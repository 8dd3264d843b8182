//! Group membership: adding and removing peers (docs/protocol/mvds.md §4, §6).

use super::super::payload::{GroupId, PeerId};
use super::super::state::{RecordKind, SyncState};
use super::super::MvdsError;
use super::{Event, Node, Output};

impl Node {
    /// Add `peer` to `group` (idempotent).
    pub(super) fn add_peer(&mut self, group: GroupId, peer: PeerId) -> Result<(), MvdsError> {
        if !self.groups.contains_key(&group) && self.groups.len() >= self.config.max_groups {
            return Err(MvdsError::TooManyGroups);
        }
        let peers = self.groups.entry(group).or_default();
        if peers.contains(&peer) {
            return Ok(());
        }
        if peers.len() >= self.config.max_peers_per_group {
            if peers.is_empty() {
                self.groups.remove(&group);
            }
            return Err(MvdsError::TooManyPeers);
        }
        peers.insert(peer.clone());
        *self.peer_groups.entry(peer).or_insert(0) += 1;
        Ok(())
    }

    /// Remove `peer` from `group`. Its pending OFFER and MESSAGE records of that group are abandoned:
    /// each one that reports to the application raises [`Event::DeliveryFailed`], at once while the
    /// output queue has room, otherwise in the next epoch (the record is made due and abandoned then,
    /// unless the peer has been added back). If the peer shares no group with us any more, the
    /// REQUESTs we were sending it are dropped too (silently: they report nothing).
    pub(crate) fn remove_peer(&mut self, group: &GroupId, peer: &PeerId) {
        if let Some(peers) = self.groups.get_mut(group) {
            if peers.remove(peer) {
                if let Some(n) = self.peer_groups.get_mut(peer) {
                    *n -= 1;
                    if *n == 0 {
                        self.peer_groups.remove(peer);
                    }
                }
            }
            if peers.is_empty() {
                self.groups.remove(group);
            }
        }
        let shares_a_group = self.peer_groups.contains_key(peer);
        for id in self.states.ids_of_peer(peer) {
            let Some(s) = self.states.get(peer, &id).copied() else {
                continue;
            };
            if s.kind == RecordKind::Request {
                if !shares_a_group {
                    self.remove_state(peer, &id);
                }
                continue;
            }
            if s.group != Some(*group) {
                continue;
            }
            if !s.notify {
                self.remove_state(peer, &id);
            } else if !self.queue_full() {
                self.remove_state(peer, &id);
                self.outputs.push_back(Output::Event(Event::DeliveryFailed {
                    peer: peer.clone(),
                    message_id: id,
                }));
            } else {
                self.stats.deferred += 1;
                let s = SyncState {
                    send_epoch: s.send_epoch.min(self.processed_epoch),
                    ..s
                };
                self.insert_state(peer.clone(), id, s);
            }
        }
    }
}
