//! The session store of the machine: session keys, least-recently-used eviction, the skipped-key cap
//! (docs/protocol/secure-transport.md §5, §10).

use super::super::dh::{CompressedKey, Secp256k1};
use super::super::multidevice::Installation;
use super::super::ratchet::Session;
use super::SecureTransport;
use crate::time::Timestamp;

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(super) struct SessionKey {
    pub(super) peer: CompressedKey,
    pub(super) installation: String,
    pub(super) bundle_id: CompressedKey,
}

#[derive(Clone, Debug)]
pub(super) struct SessionEntry {
    pub(super) ratchet: Session<Secp256k1>,
    /// Our X3DH ephemeral key, repeated in every message until the peer answered.
    pub(super) pending_ephemeral: Option<CompressedKey>,
    pub(super) initiator: bool,
    pub(super) last_used: Timestamp,
}

impl SecureTransport {
    /// Whether a session's prekey is still current: the peer's current prekey for sessions we initiated,
    /// our own current prekey for sessions we answered (§10).
    pub(super) fn usable_for_sending(
        &self,
        key: &SessionKey,
        entry: &SessionEntry,
        inst: &Installation,
    ) -> bool {
        if entry.initiator {
            inst.signed_pre_key.map(|(k, _)| k) == Some(key.bundle_id)
        } else {
            self.own_prekeys.current().map(|k| *k.public()) == Some(key.bundle_id)
        }
    }

    pub(super) fn insert_session(&mut self, key: SessionKey, entry: SessionEntry) {
        if !self.sessions.contains_key(&key) {
            let same: Vec<(Timestamp, SessionKey)> = self
                .sessions
                .iter()
                .filter(|(k, _)| k.peer == key.peer && k.installation == key.installation)
                .map(|(k, e)| (e.last_used, k.clone()))
                .collect();
            if same.len() >= self.config.max_sessions_per_installation.max(1) {
                if let Some((_, k)) = same.into_iter().min() {
                    self.sessions.remove(&k);
                }
            }
            if self.sessions.len() >= self.config.max_sessions.max(1) {
                let lru = self
                    .sessions
                    .iter()
                    .min_by_key(|(_, e)| e.last_used)
                    .map(|(k, _)| k.clone());
                if let Some(k) = lru {
                    self.sessions.remove(&k);
                }
            }
        }
        self.sessions.insert(key, entry);
        self.enforce_total_skipped();
    }

    /// Evict skipped keys (oldest first, from the session holding most) until the total is within
    /// [`Config::max_total_skipped_keys`]. Every iteration removes one key or stops, so the loop runs at
    /// most `total - cap` times.
    pub(super) fn enforce_total_skipped(&mut self) {
        let mut total = self.skipped_key_count();
        while total > self.config.max_total_skipped_keys {
            let evicted = self
                .sessions
                .values_mut()
                .max_by_key(|s| s.ratchet.skipped_keys())
                .is_some_and(|s| s.ratchet.evict_oldest_skipped());
            if !evicted {
                break;
            }
            total -= 1;
        }
    }
}
