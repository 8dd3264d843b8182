//! Installations (devices) learned from bundles (digest §3.5, §9), with their current signed prekeys.
//!
//! * Another identity's installations are enabled as soon as they appear in a verified bundle; our own
//!   other installations start disabled and must be enabled by the user (pairing).
//! * An installation's signed prekey is replaced when a bundle carries a higher version (the older one is
//!   then "expired": sessions bound to it stop being chosen for sending, §10).
//! * A known installation's timestamp (the bundle's signing time, the "last activity" that orders devices)
//!   and protocol version only move forward.
//!
//! Bounds: at most `max_per_identity` installations per identity (the one with the oldest timestamp is
//! evicted for a newer one) and at most `max_identities` identities (the least recently active identity is
//! evicted).

use std::collections::BTreeMap;

use super::bundle::{Bundle, SignedPreKey};
use super::dh::CompressedKey;
use super::SecureError;

/// One installation of an identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    /// The installation id (a UUID string in the reference).
    pub id: String,
    /// Signing time (ns) of the newest bundle that mentioned it.
    pub timestamp: i64,
    /// Whether we encrypt to it.
    pub enabled: bool,
    /// Its protocol version.
    pub protocol_version: u32,
    /// Its current signed prekey and that prekey's version.
    pub signed_pre_key: Option<(CompressedKey, u32)>,
}

/// The installation registry.
#[derive(Debug, Clone)]
pub struct Installations {
    by_identity: BTreeMap<CompressedKey, BTreeMap<String, Installation>>,
    max_per_identity: usize,
    max_identities: usize,
}

impl Installations {
    /// An empty registry with its caps.
    pub fn new(max_per_identity: usize, max_identities: usize) -> Self {
        Installations {
            by_identity: BTreeMap::new(),
            max_per_identity: max_per_identity.max(1),
            max_identities,
        }
    }

    /// Record what a verified bundle says. Installations new to us are returned (for "new device" events);
    /// `own_installation` is never recorded for our own identity.
    pub fn process_bundle(
        &mut self,
        bundle: &Bundle,
        own_identity: &CompressedKey,
        own_installation: &str,
    ) -> Vec<String> {
        let is_own = &bundle.identity == own_identity;
        if !self.by_identity.contains_key(&bundle.identity) && self.by_identity.len() >= self.max_identities {
            self.evict_identity();
        }
        if self.max_identities == 0 {
            return Vec::new();
        }
        let max = self.max_per_identity;
        let map = self.by_identity.entry(bundle.identity).or_default();
        let mut new = Vec::new();
        for (id, spk) in &bundle.signed_pre_keys {
            if is_own && id == own_installation {
                continue;
            }
            match map.get_mut(id) {
                Some(inst) => {
                    update_prekey(inst, spk);
                    if inst.timestamp < bundle.timestamp {
                        inst.timestamp = bundle.timestamp;
                        inst.protocol_version = inst.protocol_version.max(spk.protocol_version);
                    }
                }
                None => {
                    if map.len() >= max {
                        let oldest = map
                            .values()
                            .min_by_key(|i| i.timestamp)
                            .map(|i| (i.id.clone(), i.timestamp));
                        match oldest {
                            Some((old_id, ts)) if ts < bundle.timestamp => {
                                map.remove(&old_id);
                            }
                            _ => continue,
                        }
                    }
                    map.insert(
                        id.clone(),
                        Installation {
                            id: id.clone(),
                            timestamp: bundle.timestamp,
                            enabled: !is_own,
                            protocol_version: spk.protocol_version,
                            signed_pre_key: Some((spk.signed_pre_key, spk.version)),
                        },
                    );
                    new.push(id.clone());
                }
            }
        }
        new
    }

    fn evict_identity(&mut self) {
        let victim = self
            .by_identity
            .iter()
            .map(|(k, m)| (m.values().map(|i| i.timestamp).max().unwrap_or(i64::MIN), *k))
            .min()
            .map(|(_, k)| k);
        if let Some(k) = victim {
            self.by_identity.remove(&k);
        }
    }

    /// Enabled installations of `identity`, newest first, at most `limit`.
    pub fn active(&self, identity: &CompressedKey, limit: usize) -> Vec<&Installation> {
        let mut v: Vec<&Installation> = self
            .by_identity
            .get(identity)
            .map(|m| m.values().filter(|i| i.enabled).collect())
            .unwrap_or_default();
        v.sort_by(|a, b| b.timestamp.cmp(&a.timestamp).then_with(|| a.id.cmp(&b.id)));
        v.truncate(limit);
        v
    }

    /// One installation.
    pub fn get(&self, identity: &CompressedKey, id: &str) -> Option<&Installation> {
        self.by_identity.get(identity)?.get(id)
    }

    /// Every installation of `identity`.
    pub fn of(&self, identity: &CompressedKey) -> impl Iterator<Item = &Installation> {
        self.by_identity
            .get(identity)
            .into_iter()
            .flat_map(|m| m.values())
    }

    /// Enable or disable an installation; false if it is unknown.
    pub fn set_enabled(&mut self, identity: &CompressedKey, id: &str, enabled: bool) -> bool {
        match self.by_identity.get_mut(identity).and_then(|m| m.get_mut(id)) {
            Some(inst) => {
                inst.enabled = enabled;
                true
            }
            None => false,
        }
    }

    /// Insert a record as it was exported (import path). A repeated record, or one beyond the caps
    /// (installations per identity, identities), is rejected with [`SecureError::InvalidState`].
    pub fn restore(&mut self, identity: CompressedKey, inst: Installation) -> Result<(), SecureError> {
        if !self.by_identity.contains_key(&identity) && self.by_identity.len() >= self.max_identities {
            return Err(SecureError::InvalidState);
        }
        let map = self.by_identity.entry(identity).or_default();
        if map.len() >= self.max_per_identity || map.contains_key(&inst.id) {
            return Err(SecureError::InvalidState);
        }
        map.insert(inst.id.clone(), inst);
        Ok(())
    }

    /// All records, for export.
    pub fn iter(&self) -> impl Iterator<Item = (&CompressedKey, &Installation)> {
        self.by_identity
            .iter()
            .flat_map(|(k, m)| m.values().map(move |i| (k, i)))
    }

    /// Total number of installations stored.
    pub fn len(&self) -> usize {
        self.by_identity.values().map(|m| m.len()).sum()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.by_identity.is_empty()
    }
}

fn update_prekey(inst: &mut Installation, spk: &SignedPreKey) {
    let replace = match inst.signed_pre_key {
        None => true,
        Some((_, version)) => spk.version > version,
    };
    if replace {
        inst.signed_pre_key = Some((spk.signed_pre_key, spk.version));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secure::dh::{Curve, Secp256k1};
    use rand_core::SeedableRng;

    fn bundle(ik: &crate::crypto::SecretKey, entries: &[(&str, &CompressedKey, u32)], ts: i64) -> Bundle {
        let m = entries
            .iter()
            .map(|(id, k, v)| {
                (
                    id.to_string(),
                    SignedPreKey {
                        signed_pre_key: **k,
                        version: *v,
                        protocol_version: 1,
                    },
                )
            })
            .collect();
        Bundle::sign(ik, m, ts).unwrap()
    }

    #[test]
    fn learn_enable_rotate_and_cap() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        let me = Secp256k1::generate(&mut rng);
        let me_pub = Secp256k1::public_key(&me);
        let peer = Secp256k1::generate(&mut rng);
        let peer_pub = Secp256k1::public_key(&peer);
        let k1 = Secp256k1::public_key(&Secp256k1::generate(&mut rng));
        let k2 = Secp256k1::public_key(&Secp256k1::generate(&mut rng));
        let mut reg = Installations::new(2, 10);

        let new = reg.process_bundle(&bundle(&peer, &[("p1", &k1, 1)], 10), &me_pub, "mine");
        assert_eq!(new, vec!["p1".to_string()]);
        assert!(reg.get(&peer_pub, "p1").unwrap().enabled);
        // A higher prekey version replaces; a lower one does not.
        reg.process_bundle(&bundle(&peer, &[("p1", &k2, 2)], 20), &me_pub, "mine");
        assert_eq!(reg.get(&peer_pub, "p1").unwrap().signed_pre_key, Some((k2, 2)));
        reg.process_bundle(&bundle(&peer, &[("p1", &k1, 1)], 30), &me_pub, "mine");
        assert_eq!(reg.get(&peer_pub, "p1").unwrap().signed_pre_key, Some((k2, 2)));
        assert_eq!(reg.get(&peer_pub, "p1").unwrap().timestamp, 30);

        // Own devices start disabled; our own installation is never recorded.
        let new = reg.process_bundle(
            &bundle(&me, &[("mine", &k1, 1), ("other", &k2, 1)], 40),
            &me_pub,
            "mine",
        );
        assert_eq!(new, vec!["other".to_string()]);
        assert!(!reg.get(&me_pub, "other").unwrap().enabled);
        assert!(reg.active(&me_pub, 2).is_empty());
        assert!(reg.set_enabled(&me_pub, "other", true));
        assert_eq!(reg.active(&me_pub, 2).len(), 1);
        assert!(!reg.set_enabled(&me_pub, "nope", true));

        // The per-identity cap evicts the oldest installation for a newer one.
        reg.process_bundle(&bundle(&peer, &[("p2", &k1, 1)], 50), &me_pub, "mine");
        reg.process_bundle(&bundle(&peer, &[("p3", &k1, 1)], 60), &me_pub, "mine");
        let ids: Vec<_> = reg.active(&peer_pub, 3).iter().map(|i| i.id.clone()).collect();
        assert_eq!(ids, vec!["p3".to_string(), "p2".to_string()]);
    }
}
