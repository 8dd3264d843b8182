//! Installations (devices) learned from bundles (docs/protocol/secure-transport.md §3.5, §9), with their
//! current signed prekeys.
//!
//! * Another identity's installations are enabled as soon as they appear in a verified bundle; our own
//!   other installations start disabled and must be enabled by the user (pairing).
//! * An installation's signed prekey is replaced when a bundle carries a higher version (the older one is
//!   then "expired": sessions bound to it stop being chosen for sending, §10).
//! * A known installation's timestamp (the bundle's signing time, the "last activity" that orders devices)
//!   and protocol version only move forward.
//!
//! Bounds: at most `max_per_identity` installations per identity (the one with the oldest timestamp is
//! evicted for a newer one: those timestamps are signed by that identity itself, so only it can order its
//! own devices) and at most `max_identities` identities. The identity evicted for a new one is the one
//! least recently used *locally*: identities are ordered by a local counter bumped when a verified bundle
//! of theirs is processed and when we send to them ([`Installations::touch`]); nothing a peer signs (such
//! as a far-future bundle timestamp) affects that order. Our own identity is never evicted.
//!
//! [`AgreedInstallations`] records which installations have written to us (§11.2), with the same local
//! recency order and caps per identity and in total.

use std::collections::BTreeMap;
use std::ops::Bound;

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

/// Keys ordered by a local use counter (least recently used first). Two indexes kept in step by every
/// method: `stamp[k] == s` iff `order[s] == k`, and every stamp is below `clock`.
#[derive(Debug, Clone)]
struct Recency<K: Ord + Clone> {
    stamp: BTreeMap<K, u64>,
    order: BTreeMap<u64, K>,
    clock: u64,
}

impl<K: Ord + Clone> Recency<K> {
    fn new() -> Self {
        Recency {
            stamp: BTreeMap::new(),
            order: BTreeMap::new(),
            clock: 0,
        }
    }

    fn len(&self) -> usize {
        self.stamp.len()
    }

    fn contains(&self, k: &K) -> bool {
        self.stamp.contains_key(k)
    }

    /// Insert `k` or mark it most recently used.
    fn touch(&mut self, k: K) {
        if self.clock == u64::MAX {
            let order = core::mem::take(&mut self.order);
            for (s, key) in (0u64..).zip(order.into_values()) {
                self.stamp.insert(key.clone(), s);
                self.order.insert(s, key);
            }
            self.clock = self.order.len() as u64;
        }
        let s = self.clock;
        self.clock += 1;
        if let Some(old) = self.stamp.insert(k.clone(), s) {
            self.order.remove(&old);
        }
        self.order.insert(s, k);
    }

    fn remove(&mut self, k: &K) -> bool {
        match self.stamp.remove(k) {
            Some(s) => {
                self.order.remove(&s);
                true
            }
            None => false,
        }
    }

    /// The least recently used key accepted by `pred`.
    fn oldest_where(&self, pred: impl Fn(&K) -> bool) -> Option<&K> {
        self.order.values().find(|k| pred(k))
    }

    /// Keys, least recently used first.
    fn iter(&self) -> impl Iterator<Item = &K> {
        self.order.values()
    }
}

/// The installation registry.
#[derive(Debug, Clone)]
pub struct Installations {
    by_identity: BTreeMap<CompressedKey, BTreeMap<String, Installation>>,
    /// The identities of `by_identity` (exactly), by local use.
    recency: Recency<CompressedKey>,
    max_per_identity: usize,
    max_identities: usize,
}

impl Installations {
    /// An empty registry with its caps.
    pub fn new(max_per_identity: usize, max_identities: usize) -> Self {
        Installations {
            by_identity: BTreeMap::new(),
            recency: Recency::new(),
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
        if !self.by_identity.contains_key(&bundle.identity) {
            while self.by_identity.len() >= self.max_identities {
                if !self.evict_identity(own_identity) {
                    return Vec::new();
                }
            }
        }
        self.recency.touch(bundle.identity);
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

    /// Evict the least recently used identity other than ours; false if there is none.
    fn evict_identity(&mut self, own_identity: &CompressedKey) -> bool {
        let Some(victim) = self.recency.oldest_where(|k| k != own_identity).copied() else {
            return false;
        };
        self.recency.remove(&victim);
        self.by_identity.remove(&victim);
        true
    }

    /// Mark `identity` as just used by us (we sent to it), if it is stored.
    pub fn touch(&mut self, identity: &CompressedKey) {
        if self.recency.contains(identity) {
            self.recency.touch(*identity);
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
        if !self.recency.contains(&identity) {
            self.recency.touch(identity);
        }
        Ok(())
    }

    /// All records, identities least recently used first (the order [`Installations::restore`] rebuilds).
    pub fn iter(&self) -> impl Iterator<Item = (&CompressedKey, &Installation)> {
        self.recency.iter().flat_map(|k| {
            self.by_identity
                .get(k)
                .into_iter()
                .flat_map(move |m| m.values().map(move |i| (k, i)))
        })
    }

    /// Number of identities stored.
    pub fn identities(&self) -> usize {
        self.by_identity.len()
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

/// Installations that have written to us (§11.2 "agreed"), bounded per identity and in total. Recording an
/// installation again marks it most recently used; beyond `max_per_identity` records of one identity the
/// least recently used of that identity is dropped, beyond `max_total` the least recently used overall.
/// A dropped record only means the next message to that identity goes on the partitioned topic until the
/// installation writes again.
#[derive(Debug, Clone)]
pub struct AgreedInstallations {
    set: Recency<(CompressedKey, String)>,
    max_per_identity: usize,
    max_total: usize,
}

impl AgreedInstallations {
    /// An empty set with its caps.
    pub fn new(max_per_identity: usize, max_total: usize) -> Self {
        AgreedInstallations {
            set: Recency::new(),
            max_per_identity: max_per_identity.max(1),
            max_total: max_total.max(1),
        }
    }

    /// Whether `installation` of `identity` has written to us.
    pub fn contains(&self, identity: &CompressedKey, installation: &str) -> bool {
        self.set.contains(&(*identity, installation.to_string()))
    }

    fn of(&self, identity: CompressedKey) -> impl Iterator<Item = (&(CompressedKey, String), &u64)> {
        let start = (identity, String::new());
        self.set
            .stamp
            .range((Bound::Included(start), Bound::Unbounded))
            .take_while(move |((k, _), _)| *k == identity)
    }

    /// Record that `installation` of `identity` wrote to us, evicting as described on the type.
    pub fn record(&mut self, identity: &CompressedKey, installation: &str) {
        self.set.touch((*identity, installation.to_string()));
        if self.of(*identity).count() > self.max_per_identity {
            let oldest = self
                .of(*identity)
                .min_by_key(|(_, s)| **s)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.set.remove(&k);
            }
        }
        while self.set.len() > self.max_total {
            let Some(k) = self.set.oldest_where(|_| true).cloned() else {
                break;
            };
            self.set.remove(&k);
        }
    }

    /// Insert an exported record (import path); a repeated record or one beyond a cap is rejected.
    pub fn restore(&mut self, identity: CompressedKey, installation: String) -> Result<(), SecureError> {
        let key = (identity, installation);
        if self.set.contains(&key)
            || self.set.len() >= self.max_total
            || self.of(identity).count() >= self.max_per_identity
        {
            return Err(SecureError::InvalidState);
        }
        self.set.touch(key);
        Ok(())
    }

    /// Records, least recently used first.
    pub fn iter(&self) -> impl Iterator<Item = &(CompressedKey, String)> {
        self.set.iter()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether there is no record.
    pub fn is_empty(&self) -> bool {
        self.set.len() == 0
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
mod tests;
