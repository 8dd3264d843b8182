//! The Double Ratchet as status-im/doubleratchet runs it (docs/protocol/secure-transport.md §5), generic over
//! the [`Curve`].
//!
//! * Initial states (§5.2): the initiator generates its first ratchet key, derives its sending chain from
//!   `DH(DHs, SPK_B)` and sets `CKr = SK`; the responder starts with `DHs = SPK_B` and
//!   `RK = CKs = CKr = SK` (the reference's non-standard responder state, kept for interop).
//! * The header `(dh, n, pn)` is the associated data `le_u32(n) ‖ le_u32(pn) ‖ dh` (§5.3).
//! * Decryption is staged: every new chain key and skipped key is computed aside and committed only once the
//!   MAC verified, so a bad message leaves the session exactly as it was (and does not touch the RNG: the
//!   next ratchet key is drawn after the MAC check).
//!
//! Skipped message keys (§5.6) are stored per session under `(ratchet key, n)`:
//! * at most [`RatchetConfig::max_skip`] keys are skipped per chain by one message (`MaxSkip`, 1000);
//!   a header further ahead is rejected with [`SecureError::TooFarAhead`] before any key is derived;
//! * at most [`RatchetConfig::max_skipped_keys`] are kept (`MaxMessageKeysPerSession`, 2000); beyond that
//!   the oldest are evicted first;
//! * a key older than [`RatchetConfig::skipped_key_max_age`] no longer opens anything and is dropped on the
//!   next successful decrypt or [`Session::expire`] (the reference has no time limit).
//!
//! Deliberate deviation: a message key is deleted as soon as it has opened its message, so a replayed
//! message is rejected ([`SecureError::DuplicateOrExpired`]). The reference keeps the current message key
//! until the application confirms the envelope, which lets a re-delivered copy decrypt twice; that is local
//! policy and does not change the wire format.

use std::collections::{BTreeMap, VecDeque};

use core::time::Duration;

use prost::bytes::Bytes;
use prost::Message as _;
use rand_core::CryptoRngCore;
use status_proto::encryption as pb;
use zeroize::{Zeroize, Zeroizing};

use super::dh::Curve;
use super::kdf::{self, Key32};
use super::SecureError;
use crate::time::Timestamp;

/// Limits of one ratchet session.
#[derive(Debug, Clone)]
pub struct RatchetConfig {
    /// Most message keys one message may make us skip in one chain (reference `MaxSkip` = 1000).
    pub max_skip: u32,
    /// Most skipped keys kept per session; the oldest are evicted first (`MaxMessageKeysPerSession`).
    pub max_skipped_keys: usize,
    /// Skipped keys older than this are deleted.
    pub skipped_key_max_age: Duration,
}

impl Default for RatchetConfig {
    fn default() -> Self {
        RatchetConfig {
            max_skip: 1000,
            max_skipped_keys: 2000,
            skipped_key_max_age: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// How many earlier remote ratchet keys are remembered to recognise replays from finished chains.
const PREVIOUS_RATCHET_KEYS: usize = 8;
const STATE_FORMAT: u32 = 1;

/// A Double Ratchet message header.
#[derive(Debug)]
pub struct Header<C: Curve> {
    /// The sender's current ratchet public key.
    pub dh: C::PublicKey,
    /// Index in the sending chain.
    pub n: u32,
    /// Length of the sender's previous sending chain.
    pub pn: u32,
}

impl<C: Curve> Clone for Header<C> {
    fn clone(&self) -> Self {
        Header {
            dh: self.dh.clone(),
            n: self.n,
            pn: self.pn,
        }
    }
}

impl<C: Curve> PartialEq for Header<C> {
    fn eq(&self, other: &Self) -> bool {
        self.dh == other.dh && self.n == other.n && self.pn == other.pn
    }
}

impl<C: Curve> Eq for Header<C> {}

impl<C: Curve> Header<C> {
    /// The associated data the MAC covers.
    pub fn ad(&self) -> Vec<u8> {
        kdf::header_ad(self.dh.as_ref(), self.n, self.pn)
    }
}

struct StoredKey {
    mk: Key32,
    seq: u64,
    stored_at: Timestamp,
}

/// The skipped-key store: two indexes over the same keys, by id `(ratchet key, n)` and by insertion
/// sequence number (oldest first).
///
/// Invariant (kept by every method, checked by [`SkippedKeys::is_consistent`] in tests): `by_id` and
/// `by_seq` hold exactly the same keys (`by_seq[k.seq] == id` for every `(id, k)` in `by_id`), and every
/// `seq` is below `next_seq`. Sequence numbers are assigned here, never taken from outside except through
/// [`SkippedKeys::restore`], which checks them; an existing key is never overwritten.
struct SkippedKeys<C: Curve> {
    by_id: BTreeMap<(C::PublicKey, u32), StoredKey>,
    by_seq: BTreeMap<u64, (C::PublicKey, u32)>,
    next_seq: u64,
}

impl<C: Curve> Clone for SkippedKeys<C> {
    fn clone(&self) -> Self {
        SkippedKeys {
            by_id: self
                .by_id
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        StoredKey {
                            mk: v.mk.clone(),
                            seq: v.seq,
                            stored_at: v.stored_at,
                        },
                    )
                })
                .collect(),
            by_seq: self.by_seq.clone(),
            next_seq: self.next_seq,
        }
    }
}

impl<C: Curve> SkippedKeys<C> {
    fn new() -> Self {
        SkippedKeys {
            by_id: BTreeMap::new(),
            by_seq: BTreeMap::new(),
            next_seq: 0,
        }
    }

    fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Store a key under the next sequence number. A key already stored under `(dh, n)` is kept and the
    /// new one dropped (only a misbehaving peer reusing a ratchet key can cause this); returns whether it
    /// was stored.
    fn insert(&mut self, dh: C::PublicKey, n: u32, mk: Key32, stored_at: Timestamp) -> bool {
        let id = (dh, n);
        if self.by_id.contains_key(&id) {
            return false;
        }
        if self.next_seq == u64::MAX {
            self.renumber();
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_seq.insert(seq, id.clone());
        self.by_id.insert(id, StoredKey { mk, seq, stored_at });
        true
    }

    /// Reassign sequence numbers `0..len` in the current order (only reachable after 2^64 insertions or
    /// from an imported counter near the top).
    fn renumber(&mut self) {
        let order = core::mem::take(&mut self.by_seq);
        for (seq, id) in (0u64..).zip(order.into_values()) {
            if let Some(k) = self.by_id.get_mut(&id) {
                k.seq = seq;
            }
            self.by_seq.insert(seq, id);
        }
        self.next_seq = self.by_seq.len() as u64;
    }

    /// Rebuild from exported entries `(ratchet key, n, key, seq, stored_at)` listed oldest first. Rejects
    /// (`InvalidState`) more than `cap` entries, a repeated id, sequence numbers that do not strictly
    /// increase, and any `seq >= next_seq`.
    fn restore(
        entries: impl Iterator<Item = (C::PublicKey, u32, Key32, u64, Timestamp)>,
        next_seq: u64,
        cap: usize,
    ) -> Result<Self, SecureError> {
        let mut s = SkippedKeys::new();
        s.next_seq = next_seq;
        let mut last: Option<u64> = None;
        for (dh, n, mk, seq, stored_at) in entries {
            if s.by_id.len() >= cap || seq >= next_seq || last.is_some_and(|l| seq <= l) {
                return Err(SecureError::InvalidState);
            }
            let id = (dh, n);
            if s.by_id.contains_key(&id) {
                return Err(SecureError::InvalidState);
            }
            last = Some(seq);
            s.by_seq.insert(seq, id.clone());
            s.by_id.insert(id, StoredKey { mk, seq, stored_at });
        }
        Ok(s)
    }

    fn get(&self, dh: &C::PublicKey, n: u32) -> Option<&StoredKey> {
        self.by_id.get(&(dh.clone(), n))
    }

    fn remove(&mut self, dh: &C::PublicKey, n: u32) -> Option<Key32> {
        let stored = self.by_id.remove(&(dh.clone(), n))?;
        self.by_seq.remove(&stored.seq);
        Some(stored.mk)
    }

    /// Remove the oldest key; false if the store is empty.
    fn evict_oldest(&mut self) -> bool {
        match self.by_seq.pop_first() {
            Some((_, id)) => {
                self.by_id.remove(&id);
                true
            }
            None => false,
        }
    }

    /// Evict the oldest keys until at most `cap` remain (at most `len - cap` iterations).
    fn truncate(&mut self, cap: usize) {
        while self.len() > cap && self.evict_oldest() {}
    }

    /// Drop keys stored at least `max_age` before `now`, oldest first (stops at the first younger key; every
    /// iteration removes one entry, so the loop ends).
    fn expire(&mut self, now: Timestamp, max_age: Duration) {
        while let Some((_, id)) = self.by_seq.first_key_value() {
            let old = self.by_id.get(id).is_none_or(|k| k.stored_at + max_age <= now);
            if !old || !self.evict_oldest() {
                break;
            }
        }
    }

    fn next_expiry(&self, max_age: Duration) -> Option<Timestamp> {
        let (_, id) = self.by_seq.first_key_value()?;
        self.by_id.get(id).map(|k| k.stored_at + max_age)
    }

    /// Entries oldest first, for export.
    fn iter(&self) -> impl Iterator<Item = (&(C::PublicKey, u32), &StoredKey)> {
        self.by_seq
            .values()
            .filter_map(|id| self.by_id.get(id).map(|k| (id, k)))
    }

    #[cfg(test)]
    fn is_consistent(&self) -> bool {
        self.by_id.len() == self.by_seq.len()
            && self
                .by_id
                .iter()
                .all(|(id, k)| k.seq < self.next_seq && self.by_seq.get(&k.seq) == Some(id))
    }
}

/// One Double Ratchet session. Key material is zeroized on drop; `Debug` prints no secret.
pub struct Session<C: Curve> {
    dhs: C::SecretKey,
    dhs_pub: C::PublicKey,
    dhr: Option<C::PublicKey>,
    previous_dhr: VecDeque<C::PublicKey>,
    rk: Key32,
    cks: Key32,
    ckr: Key32,
    ns: u32,
    nr: u32,
    pn: u32,
    skipped: SkippedKeys<C>,
}

impl<C: Curve> Clone for Session<C> {
    fn clone(&self) -> Self {
        Session {
            dhs: self.dhs.clone(),
            dhs_pub: self.dhs_pub.clone(),
            dhr: self.dhr.clone(),
            previous_dhr: self.previous_dhr.clone(),
            rk: self.rk.clone(),
            cks: self.cks.clone(),
            ckr: self.ckr.clone(),
            ns: self.ns,
            nr: self.nr,
            pn: self.pn,
            skipped: self.skipped.clone(),
        }
    }
}

impl<C: Curve> core::fmt::Debug for Session<C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("curve", &C::NAME)
            .field("dhs_pub", &self.dhs_pub)
            .field("dhr", &self.dhr)
            .field("ns", &self.ns)
            .field("nr", &self.nr)
            .field("pn", &self.pn)
            .field("skipped_keys", &self.skipped.len())
            .finish_non_exhaustive()
    }
}

/// The sending-chain advance of one encrypted message, computed by `Session::encrypt_staged`.
pub(crate) struct SendStep {
    cks: Key32,
    ns: u32,
}

/// Everything a successful decrypt changes, computed before the MAC check.
struct Staged<C: Curve> {
    ratchet: Option<StagedRatchet<C>>,
    ckr: Key32,
    new_skipped: Vec<(C::PublicKey, u32, Key32)>,
}

/// The receiving half of a DH ratchet step, computed before the MAC check.
struct StagedRatchet<C: Curve> {
    dhr: C::PublicKey,
    /// The root key after `KDF_RK(RK, DH(DHs, DHr))`.
    rk: Key32,
    pn: u32,
}

/// The sending half of a DH ratchet step, computed only after the MAC verified (it draws the new ratchet
/// key from the RNG, so a rejected message does not advance the RNG).
struct FinishedRatchet<C: Curve> {
    dhs: C::SecretKey,
    dhr: C::PublicKey,
    rk: Key32,
    cks: Key32,
    pn: u32,
}

impl<C: Curve> StagedRatchet<C> {
    fn finish(self, rng: &mut dyn CryptoRngCore) -> Result<FinishedRatchet<C>, SecureError> {
        let dhs = C::generate(rng);
        let dh_send = C::diffie_hellman(&dhs, &self.dhr)?;
        let (rk, cks) = kdf::kdf_rk(&self.rk, &dh_send);
        Ok(FinishedRatchet {
            dhs,
            dhr: self.dhr,
            rk,
            cks,
            pn: self.pn,
        })
    }
}

/// Advance `ck` from index `from` to `until`, collecting the skipped keys under `dh`.
fn skip_chain<C: Curve>(
    ck: &mut Key32,
    dh: &C::PublicKey,
    from: u32,
    until: u32,
    out: &mut Vec<(C::PublicKey, u32, Key32)>,
) {
    for i in from..until {
        let (next, mk) = kdf::kdf_ck(ck);
        *ck = next;
        out.push((dh.clone(), i, mk));
    }
}

impl<C: Curve> Session<C> {
    /// The initiator's session (`NewWithRemoteKey`), drawing its first ratchet key from `rng`.
    pub fn initiator(
        sk: &Key32,
        remote_ratchet_key: C::PublicKey,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Self, SecureError> {
        Self::initiator_with_key(sk, remote_ratchet_key, C::generate(rng))
    }

    /// The initiator's session with an explicit first ratchet key (vectors).
    pub fn initiator_with_key(
        sk: &Key32,
        remote_ratchet_key: C::PublicKey,
        ratchet_key: C::SecretKey,
    ) -> Result<Self, SecureError> {
        let dh = C::diffie_hellman(&ratchet_key, &remote_ratchet_key)?;
        let (rk, cks) = kdf::kdf_rk(sk, &dh);
        Ok(Session {
            dhs_pub: C::public_key(&ratchet_key),
            dhs: ratchet_key,
            dhr: Some(remote_ratchet_key),
            previous_dhr: VecDeque::new(),
            rk,
            cks,
            ckr: sk.clone(),
            ns: 0,
            nr: 0,
            pn: 0,
            skipped: SkippedKeys::new(),
        })
    }

    /// The responder's session (`New`): `DHs` is the signed prekey pair, `RK = CKs = CKr = SK`.
    pub fn responder(sk: &Key32, signed_prekey: C::SecretKey) -> Self {
        Session {
            dhs_pub: C::public_key(&signed_prekey),
            dhs: signed_prekey,
            dhr: None,
            previous_dhr: VecDeque::new(),
            rk: sk.clone(),
            cks: sk.clone(),
            ckr: sk.clone(),
            ns: 0,
            nr: 0,
            pn: 0,
            skipped: SkippedKeys::new(),
        }
    }

    /// Our current ratchet public key.
    pub fn ratchet_public_key(&self) -> &C::PublicKey {
        &self.dhs_pub
    }

    /// Number of stored skipped message keys.
    pub fn skipped_keys(&self) -> usize {
        self.skipped.len()
    }

    /// Messages sent on the current sending chain.
    pub fn sent_in_chain(&self) -> u32 {
        self.ns
    }

    /// `RatchetEncrypt` (§5.4).
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<(Header<C>, Vec<u8>), SecureError> {
        let (header, ct, step) = self.encrypt_staged(plaintext)?;
        self.apply_send(step);
        Ok((header, ct))
    }

    /// `RatchetEncrypt` without changing the session: the ciphertext and the chain step to apply with
    /// [`Session::apply_send`] (on this session, unchanged in between) once the message is committed.
    pub(crate) fn encrypt_staged(
        &self,
        plaintext: &[u8],
    ) -> Result<(Header<C>, Vec<u8>, SendStep), SecureError> {
        let next_ns = self.ns.checked_add(1).ok_or(SecureError::CounterExhausted)?;
        let header = Header {
            dh: self.dhs_pub.clone(),
            n: self.ns,
            pn: self.pn,
        };
        let (cks, mk) = kdf::kdf_ck(&self.cks);
        let ct = kdf::encrypt(&mk, plaintext, &header.ad());
        Ok((header, ct, SendStep { cks, ns: next_ns }))
    }

    /// The message key the next encryption uses (test support for the key-reuse check of
    /// [`crate::persist::observe`]).
    #[cfg(feature = "fuzzing")]
    pub(crate) fn next_message_key(&self) -> [u8; 32] {
        *kdf::kdf_ck(&self.cks).1.as_bytes()
    }

    /// Apply a step computed by [`Session::encrypt_staged`].
    pub(crate) fn apply_send(&mut self, step: SendStep) {
        self.cks = step.cks;
        self.ns = step.ns;
    }

    /// `RatchetDecrypt` (§5.5). On any error the session is unchanged and `rng` is not used; on success
    /// `rng` supplies the next ratchet key when the header starts a new chain, and skipped keys older than
    /// [`RatchetConfig::skipped_key_max_age`] are dropped.
    ///
    /// Work done before the MAC is checked (what an attacker can make us spend per message): at most
    /// `2 × max_skip + 1` chain steps (two HMAC-SHA256 each), one DH and two HKDF-SHA256 expansions, plus
    /// the MAC itself. The new ratchet key and the second DH of a ratchet step are computed only after the
    /// MAC verified.
    pub fn decrypt(
        &mut self,
        header: &Header<C>,
        ciphertext: &[u8],
        now: Timestamp,
        config: &RatchetConfig,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Zeroizing<Vec<u8>>, SecureError> {
        let ad = header.ad();
        if let Some(stored) = self.skipped.get(&header.dh, header.n) {
            if stored.stored_at + config.skipped_key_max_age <= now {
                return Err(SecureError::DuplicateOrExpired);
            }
            let pt = kdf::decrypt(&stored.mk, ciphertext, &ad)?;
            self.skipped.remove(&header.dh, header.n);
            self.skipped.expire(now, config.skipped_key_max_age);
            return Ok(pt);
        }
        let staged = self.stage(header, config)?;
        let (ckr, mk) = kdf::kdf_ck(&staged.ckr);
        let pt = kdf::decrypt(&mk, ciphertext, &ad)?;
        let ratchet = match staged.ratchet {
            Some(r) => Some(r.finish(rng)?),
            None => None,
        };
        self.commit(ratchet, staged.new_skipped, ckr, header.n, now, config);
        Ok(pt)
    }

    fn stage(&self, header: &Header<C>, config: &RatchetConfig) -> Result<Staged<C>, SecureError> {
        if self.dhr.as_ref() == Some(&header.dh) {
            if header.n < self.nr {
                return Err(SecureError::DuplicateOrExpired);
            }
            if header.n - self.nr > config.max_skip {
                return Err(SecureError::TooFarAhead);
            }
            let mut ckr = self.ckr.clone();
            let mut new_skipped = Vec::new();
            skip_chain::<C>(&mut ckr, &header.dh, self.nr, header.n, &mut new_skipped);
            return Ok(Staged {
                ratchet: None,
                ckr,
                new_skipped,
            });
        }
        if self.previous_dhr.contains(&header.dh) {
            return Err(SecureError::DuplicateOrExpired);
        }
        if header.n > config.max_skip {
            return Err(SecureError::TooFarAhead);
        }
        let mut new_skipped = Vec::new();
        if let Some(dhr) = &self.dhr {
            if header.pn < self.nr {
                return Err(SecureError::InvalidHeader);
            }
            if header.pn - self.nr > config.max_skip {
                return Err(SecureError::TooFarAhead);
            }
            let mut old = self.ckr.clone();
            skip_chain::<C>(&mut old, dhr, self.nr, header.pn, &mut new_skipped);
        }
        let dh_recv = C::diffie_hellman(&self.dhs, &header.dh)?;
        let (rk, mut ckr) = kdf::kdf_rk(&self.rk, &dh_recv);
        skip_chain::<C>(&mut ckr, &header.dh, 0, header.n, &mut new_skipped);
        Ok(Staged {
            ratchet: Some(StagedRatchet {
                dhr: header.dh.clone(),
                rk,
                pn: self.ns,
            }),
            ckr,
            new_skipped,
        })
    }

    fn commit(
        &mut self,
        ratchet: Option<FinishedRatchet<C>>,
        new_skipped: Vec<(C::PublicKey, u32, Key32)>,
        ckr: Key32,
        n: u32,
        now: Timestamp,
        config: &RatchetConfig,
    ) {
        self.skipped.expire(now, config.skipped_key_max_age);
        for (dh, i, mk) in new_skipped {
            self.skipped.insert(dh, i, mk, now);
        }
        if let Some(r) = ratchet {
            if let Some(old) = self.dhr.replace(r.dhr) {
                self.previous_dhr.push_back(old);
                if self.previous_dhr.len() > PREVIOUS_RATCHET_KEYS {
                    self.previous_dhr.pop_front();
                }
            }
            self.dhs_pub = C::public_key(&r.dhs);
            self.dhs = r.dhs;
            self.rk = r.rk;
            self.cks = r.cks;
            self.pn = r.pn;
            self.ns = 0;
        }
        self.ckr = ckr;
        self.nr = n.saturating_add(1);
        self.skipped.truncate(config.max_skipped_keys);
    }

    /// Drop skipped keys older than the configured age.
    pub fn expire(&mut self, now: Timestamp, config: &RatchetConfig) {
        self.skipped.expire(now, config.skipped_key_max_age);
    }

    /// When the oldest skipped key expires, if any.
    pub fn next_expiry(&self, config: &RatchetConfig) -> Option<Timestamp> {
        self.skipped.next_expiry(config.skipped_key_max_age)
    }

    /// Evict the oldest skipped key (used by a store enforcing a cap across sessions); false if there was
    /// none.
    pub fn evict_oldest_skipped(&mut self) -> bool {
        self.skipped.evict_oldest()
    }

    /// The session as a protobuf [`pb::RatchetState`]. It holds every secret of the session in plain
    /// `Bytes` (not zeroized on drop): crate-internal; callers outside use [`Session::export`], whose
    /// buffer is zeroized.
    pub(crate) fn to_proto(&self) -> pb::RatchetState {
        pb::RatchetState {
            format: STATE_FORMAT,
            dhs_private: Bytes::from(C::secret_to_bytes(&self.dhs).to_vec()),
            dhr: self
                .dhr
                .as_ref()
                .map(|k| Bytes::from(k.as_ref().to_vec()))
                .unwrap_or_default(),
            root_key: Bytes::from(self.rk.as_bytes().to_vec()),
            send_chain_key: Bytes::from(self.cks.as_bytes().to_vec()),
            recv_chain_key: Bytes::from(self.ckr.as_bytes().to_vec()),
            ns: self.ns,
            nr: self.nr,
            pn: self.pn,
            keys_count: self.skipped.next_seq,
            skipped: self
                .skipped
                .iter()
                .map(|(id, k)| pb::SkippedMessageKey {
                    ratchet_key: Bytes::from(id.0.as_ref().to_vec()),
                    n: id.1,
                    message_key: Bytes::from(k.mk.as_bytes().to_vec()),
                    seq: k.seq,
                    stored_at_ms: k.stored_at.as_millis(),
                })
                .collect(),
            previous_dhr: self
                .previous_dhr
                .iter()
                .map(|k| Bytes::from(k.as_ref().to_vec()))
                .collect(),
        }
    }

    /// Rebuild a session from `Session::to_proto`. The state is validated, not repaired: a bad key, more
    /// than [`RatchetConfig::max_skipped_keys`] skipped keys or more than the remembered number of previous
    /// ratchet keys, a repeated skipped-key id, skipped-key sequence numbers that do not strictly increase
    /// or are not below `keys_count` are all rejected with [`SecureError::InvalidState`]. (A state exported
    /// under larger limits must be imported with limits at least as large.)
    pub fn from_proto(state: &pb::RatchetState, config: &RatchetConfig) -> Result<Self, SecureError> {
        let bad = SecureError::InvalidState;
        if state.format != STATE_FORMAT || state.previous_dhr.len() > PREVIOUS_RATCHET_KEYS {
            return Err(bad);
        }
        let dhs = C::secret_from_bytes(&state.dhs_private).ok_or(bad.clone())?;
        let dhr = if state.dhr.is_empty() {
            None
        } else {
            Some(C::public_from_bytes(&state.dhr).ok_or(bad.clone())?)
        };
        let key = |b: &Bytes| Key32::from_slice(b).ok_or(SecureError::InvalidState);
        if state.skipped.len() > config.max_skipped_keys {
            return Err(bad);
        }
        let mut entries = Vec::with_capacity(state.skipped.len());
        for s in &state.skipped {
            entries.push((
                C::public_from_bytes(&s.ratchet_key).ok_or(bad.clone())?,
                s.n,
                key(&s.message_key)?,
                s.seq,
                Timestamp::from_millis(s.stored_at_ms),
            ));
        }
        let skipped = SkippedKeys::restore(entries.into_iter(), state.keys_count, config.max_skipped_keys)?;
        let mut previous_dhr = VecDeque::new();
        for k in &state.previous_dhr {
            previous_dhr.push_back(C::public_from_bytes(k).ok_or(bad.clone())?);
        }
        Ok(Session {
            dhs_pub: C::public_key(&dhs),
            dhs,
            dhr,
            previous_dhr,
            rk: key(&state.root_key)?,
            cks: key(&state.send_chain_key)?,
            ckr: key(&state.recv_chain_key)?,
            ns: state.ns,
            nr: state.nr,
            pn: state.pn,
            skipped,
        })
    }

    /// Export the session as bytes (protobuf `RatchetState`). The result holds secrets and is zeroized on
    /// drop.
    pub fn export(&self) -> Zeroizing<Vec<u8>> {
        let state = self.to_proto();
        let out = Zeroizing::new(state.encode_to_vec());
        wipe_ratchet_state(state);
        out
    }

    /// Import a session exported by [`Session::export`].
    pub fn import(bytes: &[u8], config: &RatchetConfig) -> Result<Self, SecureError> {
        let state = pb::RatchetState::decode(bytes).map_err(|_| SecureError::InvalidState)?;
        let session = Self::from_proto(&state, config);
        wipe_ratchet_state(state);
        session
    }
}

/// Overwrite the buffer behind `b` if this is its only owner (best effort for decoded/encoded secrets).
pub(crate) fn wipe(b: Bytes) {
    if let Ok(mut m) = b.try_into_mut() {
        m.as_mut().zeroize();
    }
}

/// Wipe the secret fields of a protobuf ratchet state.
pub(crate) fn wipe_ratchet_state(state: pb::RatchetState) {
    wipe(state.dhs_private);
    wipe(state.root_key);
    wipe(state.send_chain_key);
    wipe(state.recv_chain_key);
    for s in state.skipped {
        wipe(s.message_key);
    }
}

#[cfg(test)]
mod tests;
