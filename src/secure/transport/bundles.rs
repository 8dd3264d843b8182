//! Our bundle, own signed-prekey rotation and bundle adverts (docs/protocol/secure-transport.md §3.3,
//! §8.3, §10).

use std::collections::BTreeMap;

use super::super::bundle::{self, Bundle, SignedPreKey, PROTOCOL_VERSION};
use super::super::dh::CompressedKey;
use super::super::SecureError;
use super::SecureTransport;
use crate::crypto::PublicKey;
use crate::time::Timestamp;

impl SecureTransport {
    /// Our current bundle, signed at `now` (§3.3): our signed prekey plus those of our enabled paired
    /// installations (newest first, at most `max_installations_used - 1`).
    pub fn bundle(&mut self, now: Timestamp) -> Result<Bundle, SecureError> {
        self.rotate(now);
        let mut spks = BTreeMap::new();
        let paired = self.installations.active(
            &self.identity_c,
            self.config.max_installations_used.saturating_sub(1),
        );
        for inst in paired {
            if let Some((key, version)) = inst.signed_pre_key {
                spks.insert(
                    inst.id.clone(),
                    SignedPreKey {
                        signed_pre_key: key,
                        version,
                        protocol_version: inst.protocol_version,
                    },
                );
            }
        }
        if let Some(own) = self.own_prekeys.current() {
            spks.insert(
                self.installation_id.clone(),
                SignedPreKey {
                    signed_pre_key: *own.public(),
                    version: own.version,
                    protocol_version: PROTOCOL_VERSION,
                },
            );
        }
        Bundle::sign(&self.identity, spks, bundle::timestamp_nanos(now))
    }

    pub(super) fn rotate(&mut self, now: Timestamp) {
        self.own_prekeys.rotate_if_due(
            now,
            self.config.bundle_refresh_interval,
            self.config.own_prekeys_kept,
            &mut self.rng,
        );
    }

    pub(super) fn maybe_advertise(&mut self, now: Timestamp, sender: &PublicKey) -> Result<(), SecureError> {
        let key = CompressedKey::from_public(sender);
        if let Some(last) = self.last_advert.get(&key) {
            if now < *last + self.config.bundle_advert_interval {
                return Ok(());
            }
        }
        if self.last_advert.len() >= self.config.max_identities.max(1) {
            let oldest = self.last_advert.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.last_advert.remove(&k);
            }
        }
        self.last_advert.insert(key, now);
        self.send_dh_only(now, sender, &[])
    }
}
