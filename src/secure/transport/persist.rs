//! Export and import of every store as a protobuf `SecureState` (docs/protocol/secure-transport.md §5.4).

use std::collections::BTreeMap;

use prost::bytes::Bytes;
use prost::Message as _;
use status_proto::encryption as pb;
use zeroize::Zeroizing;

use super::super::bundle::{self, OwnPrekeys, OwnSignedPreKey};
use super::super::dh::{CompressedKey, Curve, Secp256k1};
use super::super::multidevice::{AgreedInstallations, Installation, Installations};
use super::super::ratchet::{self, Session};
use super::super::SecureError;
use super::session::{SessionEntry, SessionKey};
use super::{bytes33, SecureTransport};
use crate::time::Timestamp;

const STATE_FORMAT: u32 = 1;

impl SecureTransport {
    /// Everything a rejected message must not change, for tests: the exported stores, the advert records,
    /// the announced set and the RNG position.
    #[cfg(test)]
    #[allow(clippy::type_complexity)]
    pub(super) fn snapshot(&self) -> (Vec<u8>, Vec<(CompressedKey, Timestamp)>, Vec<CompressedKey>, u128) {
        (
            self.export().to_vec(),
            self.last_advert.iter().map(|(k, t)| (*k, *t)).collect(),
            self.announced.iter().copied().collect(),
            self.rng.get_word_pos(),
        )
    }

    /// Every store (own prekeys, installations, sessions, agreed installations) as bytes (protobuf
    /// `SecureState`). The identity key, installation id, RNG and queued outputs are not included. The
    /// result holds secrets and is zeroized on drop.
    pub fn export(&self) -> Zeroizing<Vec<u8>> {
        let state = pb::SecureState {
            format: STATE_FORMAT,
            own_pre_keys: self
                .own_prekeys
                .all()
                .iter()
                .map(|k| pb::OwnSignedPreKey {
                    private_key: Bytes::from(Secp256k1::secret_to_bytes(k.secret()).to_vec()),
                    version: k.version,
                    created_ms: k.created.as_millis(),
                    expired: k.expired,
                })
                .collect(),
            installations: self
                .installations
                .iter()
                .map(|(identity, i)| pb::StoredInstallation {
                    identity: bytes33(identity),
                    installation_id: i.id.clone(),
                    timestamp: i.timestamp,
                    enabled: i.enabled,
                    protocol_version: i.protocol_version,
                    signed_pre_key: i.signed_pre_key.map(|(k, _)| bytes33(&k)).unwrap_or_default(),
                    signed_pre_key_version: i.signed_pre_key.map(|(_, v)| v).unwrap_or(0),
                })
                .collect(),
            sessions: self
                .sessions
                .iter()
                .map(|(k, e)| pb::StoredSession {
                    peer_identity: bytes33(&k.peer),
                    peer_installation_id: k.installation.clone(),
                    bundle_id: bytes33(&k.bundle_id),
                    pending_ephemeral_key: e.pending_ephemeral.map(|p| bytes33(&p)).unwrap_or_default(),
                    initiator: e.initiator,
                    last_used_ms: e.last_used.as_millis(),
                    ratchet: Some(e.ratchet.to_proto()),
                })
                .collect(),
            agreed: self
                .agreed
                .iter()
                .map(|(p, i)| pb::AgreedInstallation {
                    identity: bytes33(p),
                    installation_id: i.clone(),
                })
                .collect(),
        };
        let out = Zeroizing::new(state.encode_to_vec());
        wipe_state(state);
        out
    }

    /// Replace every store with an [`SecureTransport::export`]ed state. The state is validated against
    /// the current [`Config`](super::Config), never repaired: a malformed key, a repeated record (prekey, installation,
    /// session, agreed installation, skipped key), an installation id longer than
    /// [`bundle::MAX_INSTALLATION_ID_LEN`], any count above its cap (own prekeys, installations per identity,
    /// identities, sessions in total and per installation, skipped keys per session and in total, agreed
    /// installations) or an inconsistent skipped-key store gives [`SecureError::InvalidState`]. Import into
    /// a machine whose limits are at least those of the exporter. On error nothing is changed.
    pub fn import(&mut self, bytes: &[u8]) -> Result<(), SecureError> {
        let state = pb::SecureState::decode(bytes).map_err(|_| SecureError::InvalidState)?;
        let result = self.import_state(&state);
        wipe_state(state);
        result
    }

    pub(super) fn import_state(&mut self, state: &pb::SecureState) -> Result<(), SecureError> {
        let bad = SecureError::InvalidState;
        if state.format != STATE_FORMAT {
            return Err(bad);
        }
        let key33 = |b: &Bytes| Secp256k1::public_from_bytes(b).ok_or(SecureError::InvalidState);
        let id_ok = |id: &str| id.len() <= bundle::MAX_INSTALLATION_ID_LEN;
        if state.own_pre_keys.len() > self.config.own_prekeys_kept.max(1) {
            return Err(bad);
        }
        let mut own = OwnPrekeys::default();
        for k in &state.own_pre_keys {
            let secret = Secp256k1::secret_from_bytes(&k.private_key).ok_or(bad.clone())?;
            let mut prekey =
                OwnSignedPreKey::from_secret(secret, k.version, Timestamp::from_millis(k.created_ms));
            if own.find(prekey.public()).is_some() {
                return Err(bad);
            }
            prekey.expired = k.expired;
            own.push_raw(prekey, self.config.own_prekeys_kept);
        }
        let mut installations = Installations::new(
            self.config.max_installations_per_identity,
            self.config.max_identities,
        );
        for i in &state.installations {
            let spk = if i.signed_pre_key.is_empty() {
                None
            } else {
                Some((key33(&i.signed_pre_key)?, i.signed_pre_key_version))
            };
            if i.installation_id.is_empty() || !id_ok(&i.installation_id) {
                return Err(bad);
            }
            installations.restore(
                key33(&i.identity)?,
                Installation {
                    id: i.installation_id.clone(),
                    timestamp: i.timestamp,
                    enabled: i.enabled,
                    protocol_version: i.protocol_version,
                    signed_pre_key: spk,
                },
            )?;
        }
        if state.sessions.len() > self.config.max_sessions.max(1) {
            return Err(bad);
        }
        let mut sessions = BTreeMap::new();
        let mut per_installation: BTreeMap<(CompressedKey, &str), usize> = BTreeMap::new();
        let mut total_skipped = 0usize;
        for s in &state.sessions {
            let ratchet = s.ratchet.as_ref().ok_or(bad.clone())?;
            if !id_ok(&s.peer_installation_id) {
                return Err(bad);
            }
            let key = SessionKey {
                peer: key33(&s.peer_identity)?,
                installation: s.peer_installation_id.clone(),
                bundle_id: key33(&s.bundle_id)?,
            };
            let count = per_installation
                .entry((key.peer, s.peer_installation_id.as_str()))
                .or_default();
            *count += 1;
            if *count > self.config.max_sessions_per_installation.max(1) {
                return Err(bad);
            }
            let pending = if s.pending_ephemeral_key.is_empty() {
                None
            } else {
                Some(key33(&s.pending_ephemeral_key)?)
            };
            let ratchet = Session::from_proto(ratchet, &self.config.ratchet)?;
            total_skipped += ratchet.skipped_keys();
            if total_skipped > self.config.max_total_skipped_keys {
                return Err(bad);
            }
            let entry = SessionEntry {
                ratchet,
                pending_ephemeral: pending,
                initiator: s.initiator,
                last_used: Timestamp::from_millis(s.last_used_ms),
            };
            if sessions.insert(key, entry).is_some() {
                return Err(bad);
            }
        }
        let mut agreed = AgreedInstallations::new(
            self.config.max_installations_per_identity,
            self.config.max_agreed_installations,
        );
        for a in &state.agreed {
            if !id_ok(&a.installation_id) {
                return Err(bad);
            }
            agreed.restore(key33(&a.identity)?, a.installation_id.clone())?;
        }
        self.own_prekeys = own;
        self.installations = installations;
        self.sessions = sessions;
        self.agreed = agreed;
        Ok(())
    }
}

fn wipe_state(state: pb::SecureState) {
    for k in state.own_pre_keys {
        ratchet::wipe(k.private_key);
    }
    for s in state.sessions {
        if let Some(r) = s.ratchet {
            ratchet::wipe_ratchet_state(r);
        }
    }
}
