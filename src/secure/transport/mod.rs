//! The secure-transport state machine (docs/protocol/secure-transport.md §8): "encrypt this for identity X"
//! and "these bytes came from identity X" in, wire messages, plaintexts, new-device events and bundle
//! requests out.
//!
//! Shape (docs/architecture.md): [`SecureTransport::handle_input`] / [`SecureTransport::poll_output`], plus
//! [`SecureTransport::handle_timeout`] / [`SecureTransport::poll_timeout`] for the own-prekey rotation
//! (every [`Config::bundle_refresh_interval`]) and skipped-key expiry. The machine owns a `ChaCha20Rng`
//! seeded at construction and every store (own prekeys, installations, sessions, agreed installations) in
//! memory; [`SecureTransport::export`] / [`SecureTransport::import`] move them to and from bytes.
//!
//! A fault caused by a peer (bad bundle signature, bad MAC, replay, unknown installation, ...) never returns
//! `Err`: it becomes [`Event::PeerFault`]. What a rejected message may still change, exactly:
//! * the installation registry, from the message's bundles once they *all* verified (each is signed by its
//!   identity and applied as §8.2 step 2 does, whatever happens to the entry), with the
//!   [`Event::NewInstallations`] this reports;
//! * for [`SecureError::NoEntryForInstallation`] from another identity (§8.3): the advert rate-limit
//!   record and the advert `Transmit` (building it draws from the RNG and rotates our prekey if that was due);
//! * the output queue (the `PeerFault` event itself; at the cap the oldest output is dropped).
//!
//! Nothing else: sessions (chains, skipped keys, their expiry), agreed installations, announced secrets,
//! own prekeys and the RNG are untouched (a ratchet decrypt commits, and draws its next ratchet key, only
//! after the MAC verified; a new responder session is stored only after its first message decrypted).
//!
//! Work a peer can make us do before a MAC fails: decoding and bundle verification (at most
//! [`Config::max_bundles_per_message`] signature recoveries), then per message at most `2 × max_skip + 1`
//! chain steps (two HMAC-SHA256 each), one DH and two HKDF for an existing session, plus one X3DH (three
//! DH) for a new one ([`Session::decrypt`](super::ratchet::Session::decrypt)).
//!
//! As in status-go, DH-only entries (§6) and public messages carry no replay protection: a re-delivered
//! copy decrypts again and is reported again (the transport or the application deduplicates).
//!
//! Bounds (in [`Config`], plus [`bundle::MAX_INSTALLATION_ID_LEN`] for every installation id a peer or an
//! imported state introduces): message size, bundles and entries per message, installations per identity
//! and identities, sessions in total (least recently used evicted) and per peer installation, skipped keys
//! per session and in total (oldest evicted from the session holding most), agreed installations per
//! identity and in total (least recently recorded dropped), own prekeys kept, advert
//! rate-limit records, and queued outputs.
//!
//! Files: [`interface`] (inputs, outputs, events), `session` (session store and eviction), `bundles`
//! (our bundle, prekey rotation, adverts), `encrypt` (the sending path), `decrypt` (the receiving path),
//! `persist` (export/import).

mod bundles;
mod decrypt;
mod encrypt;
mod interface;
mod persist;
mod session;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use core::time::Duration;

use prost::bytes::Bytes;
use prost::Message as _;
use rand_chacha::ChaCha20Rng;
use status_proto::encryption as pb;

use super::bundle::{self, OwnPrekeys, OwnSignedPreKey, VerifiedBundles};
use super::dh::CompressedKey;
use super::multidevice::{AgreedInstallations, Installations};
use super::ratchet::RatchetConfig;
use super::sharedsecret::NegotiatedSecret;
use super::SecureError;
use crate::crypto::{PublicKey, SecretKey};
use crate::rng::Seed;
use crate::time::Timestamp;

pub use interface::{Event, Input, Outgoing, Output, Route};
use session::{SessionEntry, SessionKey};

/// The map key of a DH-only entry.
pub const NO_INSTALLATION: &str = "none";

/// Limits and intervals of the secure transport.
#[derive(Debug, Clone)]
pub struct Config {
    /// Per-session ratchet limits (skip window, skipped keys, their age).
    pub ratchet: RatchetConfig,
    /// Installations of one identity we encrypt to (reference `MaxInstallations` = 3).
    pub max_installations_used: usize,
    /// Installations stored per identity.
    pub max_installations_per_identity: usize,
    /// Identities whose installations are stored.
    pub max_identities: usize,
    /// Sessions in total; the least recently used is evicted.
    pub max_sessions: usize,
    /// Sessions per peer installation (old prekeys); the least recently used is evicted.
    pub max_sessions_per_installation: usize,
    /// Skipped message keys over all sessions.
    pub max_total_skipped_keys: usize,
    /// Installations recorded as having written to us (negotiated-topic agreement, §11.2), in total; per
    /// identity the cap is [`Config::max_installations_per_identity`]. The least recently recorded is
    /// dropped.
    pub max_agreed_installations: usize,
    /// Own signed prekey rotation interval (reference `BundleRefreshInterval`, 24 h).
    pub bundle_refresh_interval: Duration,
    /// Own signed prekeys kept (the current one plus recently rotated ones still accepted for X3DH).
    pub own_prekeys_kept: usize,
    /// Largest `ProtocolMessage` accepted, in bytes.
    pub max_message_size: usize,
    /// Bundles accepted in one message.
    pub max_bundles_per_message: usize,
    /// Encrypted entries accepted in one message.
    pub max_entries_per_message: usize,
    /// Minimum time between two automatic bundle adverts to the same sender (§8.3, 2 h).
    pub bundle_advert_interval: Duration,
    /// Outputs queued before the oldest are dropped (the caller should drain after every call).
    pub max_queued_outputs: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ratchet: RatchetConfig::default(),
            max_installations_used: 3,
            max_installations_per_identity: 8,
            max_identities: 10_000,
            max_sessions: 4096,
            max_sessions_per_installation: 4,
            max_total_skipped_keys: 50_000,
            max_agreed_installations: 4096,
            bundle_refresh_interval: Duration::from_secs(24 * 3600),
            own_prekeys_kept: 4,
            max_message_size: 1 << 20,
            max_bundles_per_message: 4,
            max_entries_per_message: 16,
            bundle_advert_interval: Duration::from_secs(2 * 3600),
            max_queued_outputs: 1024,
        }
    }
}

impl Config {
    /// Check the limits: every cap that bounds a store or a queue must be at least 1. The constructors
    /// call it; an invalid configuration is an error, never replaced by defaults.
    pub fn validate(&self) -> Result<(), SecureError> {
        let caps = [
            (self.max_installations_used, "max_installations_used is 0"),
            (
                self.max_installations_per_identity,
                "max_installations_per_identity is 0",
            ),
            (self.max_identities, "max_identities is 0"),
            (self.max_sessions, "max_sessions is 0"),
            (
                self.max_sessions_per_installation,
                "max_sessions_per_installation is 0",
            ),
            (self.max_agreed_installations, "max_agreed_installations is 0"),
            (self.own_prekeys_kept, "own_prekeys_kept is 0"),
            (self.max_message_size, "max_message_size is 0"),
            (self.max_queued_outputs, "max_queued_outputs is 0"),
        ];
        match caps.into_iter().find(|(v, _)| *v == 0) {
            Some((_, why)) => Err(SecureError::InvalidConfig(why)),
            None => Ok(()),
        }
    }
}

/// The secure-transport state machine for one installation of one identity.
///
/// Two parties exchange one message: Alice sends Bob her bundle, Bob encrypts for Alice (X3DH, then the
/// Double Ratchet), and Alice decrypts. The transport between them is the caller's: here, a loop.
///
/// ```
/// use status_sansio::crypto::SecretKey;
/// use status_sansio::secure::{Config, Event, Input, Output, SecureTransport};
/// use status_sansio::{Seed, Timestamp};
///
/// let now = Timestamp::from_secs(1_700_000_000);
/// let key = |n: u64| SecretKey::random(&mut Seed::from_u64(n).rng());
/// let mut alice = SecureTransport::new(Config::default(), key(1), "alice-1".into(), &Seed::from_u64(11), now)?;
/// let mut bob = SecureTransport::new(Config::default(), key(2), "bob-1".into(), &Seed::from_u64(12), now)?;
/// let (a, b) = (*alice.identity(), *bob.identity());
/// // Carry every wire message of `from` to `to`; return `to`'s decrypted plaintexts.
/// let deliver = |from: &mut SecureTransport, to: &mut SecureTransport, sender| {
///     let mut plaintexts = Vec::new();
///     while let Some(output) = from.poll_output() {
///         if let Output::Transmit(msg) = output {
///             to.handle_input(now, Input::Received { sender, bytes: msg.bytes })?;
///         }
///     }
///     while let Some(output) = to.poll_output() {
///         if let Output::Event(Event::Decrypted { plaintext, .. }) = output {
///             plaintexts.push(plaintext);
///         }
///     }
///     Ok::<_, status_sansio::secure::SecureError>(plaintexts)
/// };
/// alice.handle_input(now, Input::AdvertiseBundle { recipient: b })?;
/// deliver(&mut alice, &mut bob, a)?;
/// bob.handle_input(now, Input::Encrypt { recipient: a, payload: b"hello".to_vec() })?;
/// assert_eq!(deliver(&mut bob, &mut alice, b)?, vec![b"hello".to_vec()]);
/// # Ok::<(), status_sansio::secure::SecureError>(())
/// ```
pub struct SecureTransport {
    config: Config,
    identity: SecretKey,
    identity_pub: PublicKey,
    identity_c: CompressedKey,
    installation_id: String,
    rng: ChaCha20Rng,
    own_prekeys: OwnPrekeys,
    installations: Installations,
    sessions: BTreeMap<SessionKey, SessionEntry>,
    agreed: AgreedInstallations,
    announced: BTreeSet<CompressedKey>,
    last_advert: BTreeMap<CompressedKey, Timestamp>,
    /// Bundle signatures already recovered (a sender's bundle comes with each of its messages).
    verified: VerifiedBundles,
    outputs: VecDeque<Output>,
}

impl core::fmt::Debug for SecureTransport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SecureTransport")
            .field("identity", &self.identity_c)
            .field("installation_id", &self.installation_id)
            .field("sessions", &self.sessions.len())
            .field("installations", &self.installations.len())
            .finish_non_exhaustive()
    }
}

impl SecureTransport {
    /// A machine for `identity` on installation `installation_id`, with its first signed prekey made at
    /// `now`. Fails with [`SecureError::InvalidConfig`] if [`Config::validate`] does, and with
    /// [`SecureError::InvalidInstallationId`] for an installation id longer than
    /// [`bundle::MAX_INSTALLATION_ID_LEN`] bytes.
    pub fn new(
        config: Config,
        identity: SecretKey,
        installation_id: String,
        seed: &Seed,
        now: Timestamp,
    ) -> Result<Self, SecureError> {
        let mut m = Self::without_prekey(config, identity, installation_id, seed)?;
        m.own_prekeys.rotate_if_due(
            now,
            m.config.bundle_refresh_interval,
            m.config.own_prekeys_kept,
            &mut m.rng,
        );
        Ok(m)
    }

    fn without_prekey(
        config: Config,
        identity: SecretKey,
        installation_id: String,
        seed: &Seed,
    ) -> Result<Self, SecureError> {
        config.validate()?;
        if installation_id.len() > bundle::MAX_INSTALLATION_ID_LEN {
            return Err(SecureError::InvalidInstallationId);
        }
        let identity_pub = identity.public_key();
        Ok(SecureTransport {
            installations: Installations::new(config.max_installations_per_identity, config.max_identities),
            agreed: AgreedInstallations::new(
                config.max_installations_per_identity,
                config.max_agreed_installations,
            ),
            config,
            identity_c: CompressedKey::from_public(&identity_pub),
            identity_pub,
            identity,
            installation_id,
            rng: seed.rng(),
            own_prekeys: OwnPrekeys::default(),
            sessions: BTreeMap::new(),
            announced: BTreeSet::new(),
            last_advert: BTreeMap::new(),
            verified: VerifiedBundles::default(),
            outputs: VecDeque::new(),
        })
    }

    /// A machine whose current signed prekey is given explicitly (vectors, migrations). Fails as
    /// [`SecureTransport::new`] does.
    pub fn with_signed_prekey(
        config: Config,
        identity: SecretKey,
        installation_id: String,
        seed: &Seed,
        prekey: OwnSignedPreKey,
    ) -> Result<Self, SecureError> {
        let mut m = Self::without_prekey(config, identity, installation_id, seed)?;
        let keep = m.config.own_prekeys_kept;
        m.own_prekeys.insert(prekey, keep);
        Ok(m)
    }

    /// Our installation id.
    pub fn installation_id(&self) -> &str {
        &self.installation_id
    }

    /// Our identity public key.
    pub fn identity(&self) -> &PublicKey {
        &self.identity_pub
    }

    /// The installation registry.
    pub fn installations(&self) -> &Installations {
        &self.installations
    }

    /// Number of sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Skipped message keys over all sessions.
    pub fn skipped_key_count(&self) -> usize {
        self.sessions.values().map(|s| s.ratchet.skipped_keys()).sum()
    }

    /// Queued outputs.
    pub fn queued_outputs(&self) -> usize {
        self.outputs.len()
    }

    /// Feed an input. `Err` only for misuse (a payload over the size limit, or a bundle that cannot be
    /// signed); peer faults become [`Event::PeerFault`].
    pub fn handle_input(&mut self, now: Timestamp, input: Input) -> Result<(), SecureError> {
        match input {
            Input::Encrypt { recipient, payload } => {
                self.check_size(payload.len())?;
                self.encrypt(now, &recipient, &payload)
            }
            Input::EncryptDhOnly { recipient, payload } => {
                self.check_size(payload.len())?;
                self.send_dh_only(now, &recipient, &payload)
            }
            Input::AdvertiseBundle { recipient } => self.send_dh_only(now, &recipient, &[]),
            Input::Public { payload } => {
                self.check_size(payload.len())?;
                let msg = pb::ProtocolMessage {
                    installation_id: self.installation_id.clone(),
                    bundles: vec![self.bundle(now)?.to_proto()],
                    encrypted_message: BTreeMap::new(),
                    public_message: payload.into(),
                };
                let me = self.identity_pub;
                self.push(Output::Transmit(Outgoing {
                    recipient: me,
                    bytes: msg.encode_to_vec(),
                    route: Route::Public,
                }));
                Ok(())
            }
            Input::Received { sender, bytes } => {
                if let Err(fault) = self.receive(now, &sender, &bytes) {
                    self.push(Output::Event(Event::PeerFault { peer: sender, fault }));
                }
                Ok(())
            }
            Input::SetInstallationEnabled {
                identity,
                installation_id,
                enabled,
            } => {
                let key = CompressedKey::from_public(&identity);
                if self.installations.set_enabled(&key, &installation_id, enabled) {
                    Ok(())
                } else {
                    Err(SecureError::NoEntryForInstallation)
                }
            }
        }
    }

    /// The next output to act on.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Rotate the own prekey if due and drop expired skipped keys.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.rotate(now);
        for s in self.sessions.values_mut() {
            s.ratchet.expire(now, &self.config.ratchet);
        }
    }

    /// The earliest deadline: the next prekey rotation or skipped-key expiry.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let rotation = self
            .own_prekeys
            .next_rotation(self.config.bundle_refresh_interval);
        let expiry = self
            .sessions
            .values()
            .filter_map(|s| s.ratchet.next_expiry(&self.config.ratchet))
            .min();
        crate::time::earliest(rotation, expiry)
    }

    pub(super) fn check_size(&self, len: usize) -> Result<(), SecureError> {
        if len > self.config.max_message_size {
            return Err(SecureError::PayloadTooLarge);
        }
        Ok(())
    }

    /// Report the negotiated secret with `peer` once (the set is cleared at its cap; re-announcing is
    /// harmless).
    pub(super) fn announce(&mut self, peer: &PublicKey) {
        let key = CompressedKey::from_public(peer);
        if key == self.identity_c || self.announced.contains(&key) {
            return;
        }
        if self.announced.len() >= self.config.max_identities.max(1) {
            self.announced.clear();
        }
        self.announced.insert(key);
        let secret = NegotiatedSecret::derive(&self.identity, peer);
        self.push(Output::Event(Event::NegotiatedSecret { peer: *peer, secret }));
    }

    pub(super) fn push(&mut self, out: Output) {
        if self.outputs.len() >= self.config.max_queued_outputs.max(1) {
            self.outputs.pop_front();
        }
        self.outputs.push_back(out);
    }
}

fn bytes33(k: &CompressedKey) -> Bytes {
    Bytes::from(k.to_bytes().to_vec())
}
