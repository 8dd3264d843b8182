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
//! `Err`: it becomes [`Event::Rejected`]. What a rejected message may still change, exactly:
//! * the installation registry, from the message's bundles once they *all* verified (each is signed by its
//!   identity and applied as §8.2 step 2 does, whatever happens to the entry), with the
//!   [`Event::NewInstallations`] this reports;
//! * for [`SecureError::NoEntryForInstallation`] from another identity (§8.3): the advert rate-limit
//!   record and the advert `Send` (building it draws from the RNG and rotates our prekey if that was due);
//! * the output queue (the `Rejected` event itself; at the cap the oldest output is dropped).
//!
//! Nothing else: sessions (chains, skipped keys, their expiry), agreed installations, announced secrets,
//! own prekeys and the RNG are untouched (a ratchet decrypt commits, and draws its next ratchet key, only
//! after the MAC verified; a new responder session is stored only after its first message decrypted).
//!
//! Work a peer can make us do before a MAC fails: decoding and bundle verification (at most
//! [`Config::max_bundles_per_message`] signature recoveries), then per message at most `2 × max_skip + 1`
//! chain steps (two HMAC-SHA256 each), one DH and two HKDF for an existing session, plus one X3DH (three
//! DH) for a new one ([`Session::decrypt`]).
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

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use core::time::Duration;

use prost::bytes::Bytes;
use prost::Message as _;
use rand_chacha::ChaCha20Rng;
use status_proto::encryption as pb;
use zeroize::Zeroizing;

use super::bundle::{
    self, Bundle, OwnPrekeys, OwnSignedPreKey, SignedPreKey, VerifiedBundles, PROTOCOL_VERSION,
};
use super::dh::{CompressedKey, Curve, Secp256k1};
use super::kdf::{self, GCM_NONCE_LEN};
use super::multidevice::{AgreedInstallations, Installation, Installations};
use super::ratchet::{self, Header, RatchetConfig, Session};
use super::sharedsecret::NegotiatedSecret;
use super::{x3dh, SecureError};
use crate::crypto::{PublicKey, SecretKey};
use crate::rng::Seed;
use crate::time::Timestamp;

/// The map key of a DH-only entry.
pub const NO_INSTALLATION: &str = "none";
const STATE_FORMAT: u32 = 1;

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

/// Inputs of the machine.
#[derive(Clone)]
pub enum Input {
    /// Encrypt `payload` for every enabled installation of `recipient` (and for our own paired
    /// installations when `recipient` is someone else and we have any).
    Encrypt {
        /// The recipient identity.
        recipient: PublicKey,
        /// The application payload.
        payload: Vec<u8>,
    },
    /// Encrypt `payload` in the DH-only mode (no session; readable by every installation of `recipient`),
    /// as pairing messages are sent.
    EncryptDhOnly {
        /// The recipient identity.
        recipient: PublicKey,
        /// The application payload.
        payload: Vec<u8>,
    },
    /// Wrap a public (unencrypted) payload with our bundle.
    Public {
        /// The cleartext payload.
        payload: Vec<u8>,
    },
    /// Send our bundle to `recipient` (a DH-only message with an empty payload).
    AdvertiseBundle {
        /// The recipient identity.
        recipient: PublicKey,
    },
    /// Bytes of a `ProtocolMessage` whose transport signature was made by `sender`.
    Received {
        /// The transport-verified sender identity.
        sender: PublicKey,
        /// The `ProtocolMessage` bytes.
        bytes: Vec<u8>,
    },
    /// Enable (pair) or disable an installation.
    SetInstallationEnabled {
        /// The identity owning the installation (usually our own).
        identity: PublicKey,
        /// The installation id.
        installation_id: String,
        /// Whether to encrypt to it.
        enabled: bool,
    },
}

impl core::fmt::Debug for Input {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Input::Encrypt { payload, .. } => write!(f, "Encrypt({} bytes)", payload.len()),
            Input::EncryptDhOnly { payload, .. } => write!(f, "EncryptDhOnly({} bytes)", payload.len()),
            Input::Public { payload } => write!(f, "Public({} bytes)", payload.len()),
            Input::AdvertiseBundle { .. } => f.write_str("AdvertiseBundle"),
            Input::Received { bytes, .. } => write!(f, "Received({} bytes)", bytes.len()),
            Input::SetInstallationEnabled {
                installation_id,
                enabled,
                ..
            } => {
                write!(f, "SetInstallationEnabled({installation_id}, {enabled})")
            }
        }
    }
}

/// How the transport should carry an outgoing message (§11.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Asymmetrically to the recipient on its partitioned topic (no agreement yet).
    Partitioned,
    /// On the negotiated topic with the negotiated secret: every targeted installation has written to us.
    Negotiated {
        /// The negotiated secret `S`.
        secret: NegotiatedSecret,
    },
    /// A public message (the caller picks the chat topic).
    Public,
}

/// What the machine reports to the application. `Debug` prints payload lengths, never plaintexts.
#[derive(Clone, PartialEq, Eq)]
pub enum Event {
    /// A private payload decrypted.
    Decrypted {
        /// The sender identity.
        sender: PublicKey,
        /// The sender's installation id.
        installation_id: String,
        /// The plaintext.
        plaintext: Vec<u8>,
    },
    /// A public payload arrived.
    Public {
        /// The sender identity.
        sender: PublicKey,
        /// The cleartext.
        payload: Vec<u8>,
    },
    /// Installations we had not seen before (own ones start disabled).
    NewInstallations {
        /// Their identity.
        identity: PublicKey,
        /// Their ids.
        installation_ids: Vec<String>,
    },
    /// We have no installation of `identity`: the message went DH-only; fetching its bundle (contact code)
    /// would allow forward-secret sessions.
    BundleRequested {
        /// The identity whose bundle we lack.
        identity: PublicKey,
    },
    /// Listen on the negotiated topic with `peer` (§11.2). Reported the first time (per machine lifetime)
    /// we send a private message to `peer` (before that message's `Send`, so the filter is up before an
    /// answer can arrive) or receive one from an installation of `peer` whose protocol version is at
    /// least 1.
    NegotiatedSecret {
        /// The peer identity.
        peer: PublicKey,
        /// The negotiated secret `S`.
        secret: NegotiatedSecret,
    },
    /// A received message was rejected. Sessions, agreed installations and the RNG are unchanged; verified
    /// bundles it carried may have been applied (see the module documentation for the exact list).
    Rejected {
        /// The transport sender.
        sender: PublicKey,
        /// Why.
        error: SecureError,
    },
}

impl core::fmt::Debug for Event {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Event::Decrypted {
                sender,
                installation_id,
                plaintext,
            } => f
                .debug_struct("Decrypted")
                .field("sender", &CompressedKey::from_public(sender))
                .field("installation_id", installation_id)
                .field("plaintext_len", &plaintext.len())
                .finish(),
            Event::Public { sender, payload } => f
                .debug_struct("Public")
                .field("sender", &CompressedKey::from_public(sender))
                .field("payload_len", &payload.len())
                .finish(),
            Event::NewInstallations {
                identity,
                installation_ids,
            } => f
                .debug_struct("NewInstallations")
                .field("identity", &CompressedKey::from_public(identity))
                .field("installation_ids", installation_ids)
                .finish(),
            Event::BundleRequested { identity } => f
                .debug_struct("BundleRequested")
                .field("identity", &CompressedKey::from_public(identity))
                .finish(),
            Event::NegotiatedSecret { peer, secret } => f
                .debug_struct("NegotiatedSecret")
                .field("peer", &CompressedKey::from_public(peer))
                .field("secret", secret)
                .finish(),
            Event::Rejected { sender, error } => f
                .debug_struct("Rejected")
                .field("sender", &CompressedKey::from_public(sender))
                .field("error", error)
                .finish(),
        }
    }
}

/// An outgoing message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The identity it is for (our own for copies to paired devices).
    pub recipient: PublicKey,
    /// The encoded `ProtocolMessage`.
    pub bytes: Vec<u8>,
    /// How to carry it.
    pub route: Route,
}

/// Outputs of the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Bytes to hand to the transport.
    Send(Outgoing),
    /// Something for the application.
    Event(Event),
}

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct SessionKey {
    peer: CompressedKey,
    installation: String,
    bundle_id: CompressedKey,
}

#[derive(Clone, Debug)]
struct SessionEntry {
    ratchet: Session<Secp256k1>,
    /// Our X3DH ephemeral key, repeated in every message until the peer answered.
    pending_ephemeral: Option<CompressedKey>,
    initiator: bool,
    last_used: Timestamp,
}

/// A session change computed by [`SecureTransport::plan`], applied by [`SecureTransport::commit_plan`].
enum SessionChange {
    Advance(SessionKey, ratchet::SendStep),
    New(SessionKey, Box<SessionEntry>),
}

/// One outgoing message, computed but not committed.
struct Plan {
    changes: Vec<SessionChange>,
    bundle_requested: bool,
    outgoing: Outgoing,
}

/// The secure-transport state machine for one installation of one identity.
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
    /// `now`.
    pub fn new(
        identity: SecretKey,
        installation_id: String,
        seed: Seed,
        config: Config,
        now: Timestamp,
    ) -> Self {
        let mut m = Self::without_prekey(identity, installation_id, seed, config);
        m.own_prekeys.rotate_if_due(
            now,
            m.config.bundle_refresh_interval,
            m.config.own_prekeys_kept,
            &mut m.rng,
        );
        m
    }

    fn without_prekey(identity: SecretKey, installation_id: String, seed: Seed, config: Config) -> Self {
        let identity_pub = identity.public_key();
        SecureTransport {
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
        }
    }

    /// A machine whose current signed prekey is given explicitly (vectors, migrations).
    pub fn with_signed_prekey(
        identity: SecretKey,
        installation_id: String,
        seed: Seed,
        config: Config,
        prekey: OwnSignedPreKey,
    ) -> Self {
        let mut m = Self::without_prekey(identity, installation_id, seed, config);
        let keep = m.config.own_prekeys_kept;
        m.own_prekeys.insert(prekey, keep);
        m
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

    fn rotate(&mut self, now: Timestamp) {
        self.own_prekeys.rotate_if_due(
            now,
            self.config.bundle_refresh_interval,
            self.config.own_prekeys_kept,
            &mut self.rng,
        );
    }

    /// Feed an input. `Err` only for misuse (a payload over the size limit, or a bundle that cannot be
    /// signed); peer faults become [`Event::Rejected`].
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
                self.push(Output::Send(Outgoing {
                    recipient: me,
                    bytes: msg.encode_to_vec(),
                    route: Route::Public,
                }));
                Ok(())
            }
            Input::Received { sender, bytes } => {
                if let Err(error) = self.receive(now, &sender, &bytes) {
                    self.push(Output::Event(Event::Rejected { sender, error }));
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

    fn check_size(&self, len: usize) -> Result<(), SecureError> {
        if len > self.config.max_message_size {
            return Err(SecureError::PayloadTooLarge);
        }
        Ok(())
    }

    /// Report the negotiated secret with `peer` once (the set is cleared at its cap; re-announcing is
    /// harmless).
    fn announce(&mut self, peer: &PublicKey) {
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

    fn push(&mut self, out: Output) {
        if self.outputs.len() >= self.config.max_queued_outputs.max(1) {
            self.outputs.pop_front();
        }
        self.outputs.push_back(out);
    }

    // ---- sending -------------------------------------------------------------------------------------

    fn dh_only_entry(
        rng: &mut ChaCha20Rng,
        recipient: &PublicKey,
        payload: &[u8],
    ) -> Result<pb::EncryptedMessageProtocol, SecureError> {
        let eph = Secp256k1::generate(rng);
        let key = crate::crypto::ecdh_x(&eph, recipient);
        let mut nonce = [0u8; GCM_NONCE_LEN];
        rand_core::RngCore::fill_bytes(rng, &mut nonce);
        let sealed = kdf::gcm_seal(&key, &nonce, payload)?;
        Ok(pb::EncryptedMessageProtocol {
            dh_header: Some(pb::DhHeader {
                key: bytes33(&Secp256k1::public_key(&eph)),
            }),
            payload: sealed.into(),
            ..Default::default()
        })
    }

    fn send_dh_only(
        &mut self,
        now: Timestamp,
        recipient: &PublicKey,
        payload: &[u8],
    ) -> Result<(), SecureError> {
        let bundle = self.bundle(now)?.to_proto();
        let entry = Self::dh_only_entry(&mut self.rng, recipient, payload)?;
        let msg = pb::ProtocolMessage {
            installation_id: self.installation_id.clone(),
            bundles: vec![bundle],
            encrypted_message: [(NO_INSTALLATION.to_string(), entry)].into_iter().collect(),
            public_message: Bytes::new(),
        };
        self.push(Output::Send(Outgoing {
            recipient: *recipient,
            bytes: msg.encode_to_vec(),
            route: Route::Partitioned,
        }));
        Ok(())
    }

    /// Whether a session's prekey is still current: the peer's current prekey for sessions we initiated,
    /// our own current prekey for sessions we answered (§10).
    fn usable_for_sending(&self, key: &SessionKey, entry: &SessionEntry, inst: &Installation) -> bool {
        if entry.initiator {
            inst.signed_pre_key.map(|(k, _)| k) == Some(key.bundle_id)
        } else {
            self.own_prekeys.current().map(|k| *k.public()) == Some(key.bundle_id)
        }
    }

    /// `Input::Encrypt`, all or nothing: the message to `recipient` and, when we have paired devices, the
    /// copy to our own identity are both computed first (on a copy of the RNG, without touching any
    /// session) and only then committed: chains advanced, new sessions stored, events and `Send`s queued.
    /// An error leaves sessions, RNG and queue as they were (the own prekey may have been rotated if it was
    /// due, as [`SecureTransport::handle_timeout`] would have).
    fn encrypt(&mut self, now: Timestamp, recipient: &PublicKey, payload: &[u8]) -> Result<(), SecureError> {
        let bundle = self.bundle(now)?.to_proto();
        let mut rng = self.rng.clone();
        let mut plans = vec![self.plan(now, &mut rng, recipient, payload, &bundle)?];
        let me = self.identity_pub;
        let paired = !self.installations.active(&self.identity_c, 1).is_empty();
        if *recipient != me && paired {
            plans.push(self.plan(now, &mut rng, &me, payload, &bundle)?);
        }
        self.rng = rng;
        for plan in plans {
            self.commit_plan(now, plan);
        }
        Ok(())
    }

    /// Compute the message for every targeted installation of `recipient` without changing any store.
    fn plan(
        &self,
        now: Timestamp,
        rng: &mut ChaCha20Rng,
        recipient: &PublicKey,
        payload: &[u8],
        bundle: &pb::Bundle,
    ) -> Result<Plan, SecureError> {
        let recipient_c = CompressedKey::from_public(recipient);
        let limit = if recipient_c == self.identity_c {
            self.config.max_installations_used.saturating_sub(1)
        } else {
            self.config.max_installations_used
        };
        let targets: Vec<&Installation> = self
            .installations
            .active(&recipient_c, limit)
            .into_iter()
            .filter(|i| !(recipient_c == self.identity_c && i.id == self.installation_id))
            .collect();
        let mut map = BTreeMap::new();
        let mut changes = Vec::new();
        for inst in targets {
            if let Some((entry, change)) =
                self.encrypt_to_installation(now, rng, &recipient_c, recipient, inst, payload)?
            {
                map.insert(inst.id.clone(), entry);
                changes.push(change);
            }
        }
        let bundle_requested = map.is_empty() && recipient_c != self.identity_c;
        let route = if map.is_empty() {
            map.insert(
                NO_INSTALLATION.to_string(),
                Self::dh_only_entry(rng, recipient, payload)?,
            );
            Route::Partitioned
        } else if map.keys().all(|id| self.agreed.contains(&recipient_c, id)) {
            Route::Negotiated {
                secret: NegotiatedSecret::derive(&self.identity, recipient),
            }
        } else {
            Route::Partitioned
        };
        let msg = pb::ProtocolMessage {
            installation_id: self.installation_id.clone(),
            bundles: vec![bundle.clone()],
            encrypted_message: map,
            public_message: Bytes::new(),
        };
        Ok(Plan {
            changes,
            bundle_requested,
            outgoing: Outgoing {
                recipient: *recipient,
                bytes: msg.encode_to_vec(),
                route,
            },
        })
    }

    fn commit_plan(&mut self, now: Timestamp, plan: Plan) {
        let recipient = plan.outgoing.recipient;
        self.announce(&recipient);
        self.installations.touch(&CompressedKey::from_public(&recipient));
        for change in plan.changes {
            match change {
                SessionChange::Advance(key, step) => {
                    if let Some(e) = self.sessions.get_mut(&key) {
                        e.ratchet.apply_send(step);
                        e.last_used = now;
                    }
                }
                SessionChange::New(key, entry) => self.insert_session(key, *entry),
            }
        }
        if plan.bundle_requested {
            self.push(Output::Event(Event::BundleRequested { identity: recipient }));
        }
        self.push(Output::Send(plan.outgoing));
    }

    fn encrypt_to_installation(
        &self,
        now: Timestamp,
        rng: &mut ChaCha20Rng,
        recipient_c: &CompressedKey,
        recipient: &PublicKey,
        inst: &Installation,
        payload: &[u8],
    ) -> Result<Option<(pb::EncryptedMessageProtocol, SessionChange)>, SecureError> {
        let existing = self
            .sessions
            .iter()
            .filter(|(k, e)| {
                &k.peer == recipient_c && k.installation == inst.id && self.usable_for_sending(k, e, inst)
            })
            .max_by_key(|(_, e)| e.last_used);
        let (key, header, ct, pending, change) = match existing {
            Some((key, entry)) => {
                let (header, ct, step) = entry.ratchet.encrypt_staged(payload)?;
                let change = SessionChange::Advance(key.clone(), step);
                (key.clone(), header, ct, entry.pending_ephemeral, change)
            }
            None => {
                let Some((spk, _)) = inst.signed_pre_key else {
                    return Ok(None);
                };
                let eph = Secp256k1::generate(rng);
                let sk = x3dh::initiate::<Secp256k1>(
                    &self.identity,
                    &eph,
                    &CompressedKey::from_public(recipient),
                    &spk,
                )?;
                let mut ratchet = Session::initiator(&sk, spk, rng)?;
                let (header, ct) = ratchet.encrypt(payload)?;
                let key = SessionKey {
                    peer: *recipient_c,
                    installation: inst.id.clone(),
                    bundle_id: spk,
                };
                let pending = Some(Secp256k1::public_key(&eph));
                let entry = SessionEntry {
                    ratchet,
                    pending_ephemeral: pending,
                    initiator: true,
                    last_used: now,
                };
                let change = SessionChange::New(key.clone(), Box::new(entry));
                (key, header, ct, pending, change)
            }
        };
        let entry = pb::EncryptedMessageProtocol {
            x3dh_header: pending.map(|eph| pb::X3dhHeader {
                key: bytes33(&eph),
                id: bytes33(&key.bundle_id),
            }),
            dr_header: Some(pb::DrHeader {
                key: bytes33(&header.dh),
                n: header.n,
                pn: header.pn,
                id: bytes33(&key.bundle_id),
            }),
            dh_header: None,
            hr_header: None,
            payload: ct.into(),
        };
        Ok(Some((entry, change)))
    }

    fn insert_session(&mut self, key: SessionKey, entry: SessionEntry) {
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
    fn enforce_total_skipped(&mut self) {
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

    // ---- receiving -----------------------------------------------------------------------------------

    fn receive(&mut self, now: Timestamp, sender: &PublicKey, bytes: &[u8]) -> Result<(), SecureError> {
        if bytes.len() > self.config.max_message_size {
            return Err(SecureError::LimitExceeded);
        }
        let msg = pb::ProtocolMessage::decode(bytes).map_err(|_| SecureError::Decode)?;
        // The sender's installation id keys sessions and agreed records and is copied into events: the
        // same cap as the ids inside bundles.
        if msg.installation_id.len() > bundle::MAX_INSTALLATION_ID_LEN {
            return Err(SecureError::InvalidInstallationId);
        }
        if msg.bundles.len() > self.config.max_bundles_per_message
            || msg.encrypted_message.len() > self.config.max_entries_per_message
        {
            return Err(SecureError::LimitExceeded);
        }
        let max_inst = self.config.max_installations_per_identity;
        let verified = &mut self.verified;
        let bundles = msg
            .bundles
            .iter()
            .map(|b| Bundle::from_proto_cached(b, max_inst, verified))
            .collect::<Result<Vec<_>, _>>()?;
        let sender_c = CompressedKey::from_public(sender);
        let is_me = sender_c == self.identity_c;
        let entry = msg
            .encrypted_message
            .get(&self.installation_id)
            .or_else(|| msg.encrypted_message.get(NO_INSTALLATION));
        // Every bundle verified: apply them (§3.5). They are signed state of their identity, so they are
        // kept even if the entry below is rejected; sessions are only touched by a successful decrypt.
        for b in &bundles {
            let new = self
                .installations
                .process_bundle(b, &self.identity_c, &self.installation_id);
            if !new.is_empty() {
                if let Some(identity) = b.identity.to_public() {
                    self.push(Output::Event(Event::NewInstallations {
                        identity,
                        installation_ids: new,
                    }));
                }
            }
        }
        if !msg.public_message.is_empty() {
            self.push(Output::Event(Event::Public {
                sender: *sender,
                payload: msg.public_message.to_vec(),
            }));
            return Ok(());
        }
        let Some(entry) = entry else {
            if !is_me {
                self.maybe_advertise(now, sender)?;
                return Err(SecureError::NoEntryForInstallation);
            }
            if msg.installation_id != self.installation_id {
                return Err(SecureError::NotPairedInstallation);
            }
            return Ok(());
        };
        let plaintext = if let Some(dr) = &entry.dr_header {
            self.receive_ratchet(now, &sender_c, &msg.installation_id, entry, dr)?
        } else if let Some(dh) = &entry.dh_header {
            let eph = Secp256k1::public_from_bytes(&dh.key).ok_or(SecureError::InvalidPublicKey)?;
            let eph = eph.to_public().ok_or(SecureError::InvalidPublicKey)?;
            let key = crate::crypto::ecdh_x(&self.identity, &eph);
            kdf::gcm_open(&key, &entry.payload)?
        } else {
            return Err(SecureError::NoKey);
        };
        // §8.2 step 7: record that this installation has written to us.
        let version = bundles
            .iter()
            .filter(|b| b.identity == sender_c)
            .filter_map(|b| b.signed_pre_keys.get(&msg.installation_id))
            .map(|s| s.protocol_version)
            .max()
            .unwrap_or(0);
        if version >= 1 && !is_me {
            self.agreed.record(&sender_c, &msg.installation_id);
            self.announce(sender);
        }
        self.push(Output::Event(Event::Decrypted {
            sender: *sender,
            installation_id: msg.installation_id,
            plaintext: plaintext.to_vec(),
        }));
        Ok(())
    }

    fn receive_ratchet(
        &mut self,
        now: Timestamp,
        sender_c: &CompressedKey,
        sender_installation: &str,
        entry: &pb::EncryptedMessageProtocol,
        dr: &pb::DrHeader,
    ) -> Result<Zeroizing<Vec<u8>>, SecureError> {
        let bundle_id = Secp256k1::public_from_bytes(&dr.id).ok_or(SecureError::InvalidPublicKey)?;
        let header = Header::<Secp256k1> {
            dh: Secp256k1::public_from_bytes(&dr.key).ok_or(SecureError::InvalidPublicKey)?,
            n: dr.n,
            pn: dr.pn,
        };
        let key = SessionKey {
            peer: *sender_c,
            installation: sender_installation.to_string(),
            bundle_id,
        };
        if let Some(existing) = self.sessions.get_mut(&key) {
            // Decrypt in place: `Session::decrypt` commits nothing unless the MAC verified.
            let pt = existing.ratchet.decrypt(
                &header,
                &entry.payload,
                now,
                &self.config.ratchet,
                &mut self.rng,
            )?;
            existing.pending_ephemeral = None;
            existing.last_used = now;
            self.enforce_total_skipped();
            return Ok(pt);
        }
        // §4.3: a new session needs the X3DH header naming one of our prekeys; it is stored only once its
        // first message decrypted.
        let x = entry.x3dh_header.as_ref().ok_or(SecureError::SessionNotFound)?;
        let id = Secp256k1::public_from_bytes(&x.id).ok_or(SecureError::InvalidPublicKey)?;
        if id != bundle_id {
            return Err(SecureError::InvalidHeader);
        }
        let eph = Secp256k1::public_from_bytes(&x.key).ok_or(SecureError::InvalidPublicKey)?;
        let spk = self
            .own_prekeys
            .find(&bundle_id)
            .ok_or(SecureError::UnknownPreKey)?;
        let sk = x3dh::respond::<Secp256k1>(&self.identity, spk.secret(), sender_c, &eph)?;
        let mut ratchet = Session::responder(&sk, spk.secret().clone());
        let pt = ratchet.decrypt(&header, &entry.payload, now, &self.config.ratchet, &mut self.rng)?;
        let fresh = SessionEntry {
            ratchet,
            pending_ephemeral: None,
            initiator: false,
            last_used: now,
        };
        self.insert_session(key, fresh);
        Ok(pt)
    }

    fn maybe_advertise(&mut self, now: Timestamp, sender: &PublicKey) -> Result<(), SecureError> {
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

    /// Everything a rejected message must not change, for tests: the exported stores, the advert records,
    /// the announced set and the RNG position.
    #[cfg(test)]
    #[allow(clippy::type_complexity)]
    fn snapshot(&self) -> (Vec<u8>, Vec<(CompressedKey, Timestamp)>, Vec<CompressedKey>, u128) {
        (
            self.export().to_vec(),
            self.last_advert.iter().map(|(k, t)| (*k, *t)).collect(),
            self.announced.iter().copied().collect(),
            self.rng.get_word_pos(),
        )
    }

    // ---- persistence ---------------------------------------------------------------------------------

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
    /// the current [`Config`], never repaired: a malformed key, a repeated record (prekey, installation,
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

    fn import_state(&mut self, state: &pb::SecureState) -> Result<(), SecureError> {
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

fn bytes33(k: &CompressedKey) -> Bytes {
    Bytes::from(k.to_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn drain(m: &mut SecureTransport) -> (Vec<Outgoing>, Vec<Event>) {
        let (mut sends, mut events) = (Vec::new(), Vec::new());
        while let Some(o) = m.poll_output() {
            match o {
                Output::Send(s) => sends.push(s),
                Output::Event(e) => events.push(e),
            }
        }
        (sends, events)
    }

    fn identity(n: u8) -> SecretKey {
        SecretKey::from_slice(&[n; 32]).unwrap()
    }

    fn machine(id: u8, inst: &str, now: Timestamp) -> SecureTransport {
        SecureTransport::new(
            identity(id),
            inst.to_string(),
            Seed::from_u64(u64::from(id)),
            Config::default(),
            now,
        )
    }

    fn deliver(
        to: &mut SecureTransport,
        from: &SecureTransport,
        msg: &Outgoing,
        now: Timestamp,
    ) -> Vec<Event> {
        to.handle_input(
            now,
            Input::Received {
                sender: *from.identity(),
                bytes: msg.bytes.clone(),
            },
        )
        .unwrap();
        drain(to).1
    }

    fn decrypted(events: &[Event]) -> Vec<Vec<u8>> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Decrypted { plaintext, .. } => Some(plaintext.clone()),
                _ => None,
            })
            .collect()
    }

    fn rejected(events: &[Event]) -> Vec<SecureError> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Rejected { error, .. } => Some(error.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn first_contact_then_sessions_then_negotiated_topic() {
        let now = Timestamp::from_secs(1_700_000_000);
        let mut alice = machine(1, "alice-1", now);
        let mut bob = machine(2, "bob-1", now);
        let (alice_id, bob_id) = (*alice.identity(), *bob.identity());
        let s_ab = NegotiatedSecret::derive(&identity(1), &bob_id);
        assert_eq!(s_ab, NegotiatedSecret::derive(&identity(2), &alice_id));
        alice
            .handle_input(
                now,
                Input::Encrypt {
                    recipient: bob_id,
                    payload: b"hi".to_vec(),
                },
            )
            .unwrap();
        let (sends, events) = drain(&mut alice);
        // Listen on the negotiated topic before sending; ask for Bob's bundle; send DH-only, partitioned.
        assert_eq!(
            events,
            vec![
                Event::NegotiatedSecret {
                    peer: bob_id,
                    secret: s_ab.clone()
                },
                Event::BundleRequested { identity: bob_id }
            ]
        );
        assert_eq!(sends.len(), 1);
        assert_eq!(sends[0].route, Route::Partitioned);
        let wire = pb::ProtocolMessage::decode(&sends[0].bytes[..]).unwrap();
        assert!(wire.encrypted_message[NO_INSTALLATION].dh_header.is_some());
        let ev = deliver(&mut bob, &alice, &sends[0], now);
        assert_eq!(decrypted(&ev), vec![b"hi".to_vec()]);
        assert!(ev.iter().any(|e| matches!(e, Event::NewInstallations { installation_ids, .. } if installation_ids == &["alice-1".to_string()])));
        assert!(ev.contains(&Event::NegotiatedSecret {
            peer: alice_id,
            secret: s_ab.clone()
        }));

        // Bob knows Alice's installation and has heard from it: X3DH + ratchet, on the negotiated topic.
        bob.handle_input(
            now,
            Input::Encrypt {
                recipient: alice_id,
                payload: b"yo".to_vec(),
            },
        )
        .unwrap();
        let (sends, events) = drain(&mut bob);
        assert!(events.is_empty(), "already announced: {events:?}");
        assert_eq!(sends[0].route, Route::Negotiated { secret: s_ab.clone() });
        let wire = pb::ProtocolMessage::decode(&sends[0].bytes[..]).unwrap();
        let entry = &wire.encrypted_message["alice-1"];
        assert!(entry.x3dh_header.is_some() && entry.dr_header.is_some());
        let ev = deliver(&mut alice, &bob, &sends[0], now);
        assert_eq!(decrypted(&ev), vec![b"yo".to_vec()]);
        assert_eq!(alice.session_count(), 1);

        // Alice answers on the same session (she was responder), on the negotiated topic.
        alice
            .handle_input(
                now,
                Input::Encrypt {
                    recipient: bob_id,
                    payload: b"again".to_vec(),
                },
            )
            .unwrap();
        let (sends, _) = drain(&mut alice);
        assert_eq!(sends[0].route, Route::Negotiated { secret: s_ab.clone() });
        assert_eq!(
            format!("{:?}", sends[0].route),
            "Negotiated { secret: NegotiatedSecret(..) }"
        );
        let ev = deliver(&mut bob, &alice, &sends[0], now);
        assert_eq!(decrypted(&ev), vec![b"again".to_vec()]);
        // Bob has heard from Alice's installation on this session: his X3DH header stops.
        bob.handle_input(
            now,
            Input::Encrypt {
                recipient: alice_id,
                payload: b"more".to_vec(),
            },
        )
        .unwrap();
        let (sends, _) = drain(&mut bob);
        let wire = pb::ProtocolMessage::decode(&sends[0].bytes[..]).unwrap();
        assert!(wire.encrypted_message["alice-1"].x3dh_header.is_none());
        assert_eq!(
            decrypted(&deliver(&mut alice, &bob, &sends[0], now)),
            vec![b"more".to_vec()]
        );
    }

    fn established(now: Timestamp) -> (SecureTransport, SecureTransport) {
        let mut alice = machine(1, "alice-1", now);
        let mut bob = machine(2, "bob-1", now);
        alice
            .handle_input(
                now,
                Input::AdvertiseBundle {
                    recipient: *bob.identity(),
                },
            )
            .unwrap();
        let (s, _) = drain(&mut alice);
        deliver(&mut bob, &alice, &s[0], now);
        bob.handle_input(
            now,
            Input::AdvertiseBundle {
                recipient: *alice.identity(),
            },
        )
        .unwrap();
        let (s, _) = drain(&mut bob);
        deliver(&mut alice, &bob, &s[0], now);
        (alice, bob)
    }

    #[test]
    fn bad_inputs_are_typed_events_and_change_nothing() {
        let now = Timestamp::from_secs(1_700_000_000);
        let (mut alice, mut bob) = established(now);
        let send = |m: &mut SecureTransport, to: PublicKey, p: &[u8]| {
            m.handle_input(
                now,
                Input::Encrypt {
                    recipient: to,
                    payload: p.to_vec(),
                },
            )
            .unwrap();
            drain(m).0.remove(0)
        };
        let m1 = send(&mut alice, *bob.identity(), b"one");
        assert_eq!(
            decrypted(&deliver(&mut bob, &alice, &m1, now)),
            vec![b"one".to_vec()]
        );
        let m2 = send(&mut alice, *bob.identity(), b"two");
        let before = bob.snapshot();

        let mut wire = pb::ProtocolMessage::decode(&m2.bytes[..]).unwrap();
        let orig = wire.clone();
        let tamper = |w: &pb::ProtocolMessage| Outgoing {
            recipient: m2.recipient,
            bytes: w.encode_to_vec(),
            route: Route::Partitioned,
        };
        // Wrong MAC.
        let e = wire.encrypted_message.get_mut("bob-1").unwrap();
        let mut p = e.payload.to_vec();
        let last = p.len() - 1;
        p[last] ^= 1;
        e.payload = p.into();
        assert_eq!(
            rejected(&deliver(&mut bob, &alice, &tamper(&wire), now)),
            vec![SecureError::BadMac]
        );
        assert_eq!(bob.snapshot(), before);
        // Truncated payload and truncated header key.
        let mut w = orig.clone();
        w.encrypted_message.get_mut("bob-1").unwrap().payload = Bytes::from_static(&[1, 2, 3]);
        assert_eq!(
            rejected(&deliver(&mut bob, &alice, &tamper(&w), now)),
            vec![SecureError::CiphertextTooShort]
        );
        assert_eq!(bob.snapshot(), before);
        let mut w = orig.clone();
        w.encrypted_message
            .get_mut("bob-1")
            .unwrap()
            .dr_header
            .as_mut()
            .unwrap()
            .key = Bytes::from_static(&[2, 3]);
        assert_eq!(
            rejected(&deliver(&mut bob, &alice, &tamper(&w), now)),
            vec![SecureError::InvalidPublicKey]
        );
        assert_eq!(bob.snapshot(), before);
        // 10,000 steps ahead.
        let mut w = orig.clone();
        w.encrypted_message
            .get_mut("bob-1")
            .unwrap()
            .dr_header
            .as_mut()
            .unwrap()
            .n = 10_000;
        assert_eq!(
            rejected(&deliver(&mut bob, &alice, &tamper(&w), now)),
            vec![SecureError::TooFarAhead]
        );
        assert_eq!(bob.snapshot(), before);
        // Unknown installation: an entry only for someone else.
        let mut w = orig.clone();
        let e = w.encrypted_message.remove("bob-1").unwrap();
        w.encrypted_message.insert("somebody-else".into(), e);
        let ev = deliver(&mut bob, &alice, &tamper(&w), now);
        assert_eq!(rejected(&ev), vec![SecureError::NoEntryForInstallation]);
        // The documented exception: the device-not-found advert (rate-limit record, RNG).
        let after = bob.snapshot();
        assert_eq!((&after.0, &after.2), (&before.0, &before.2));
        assert_ne!(after.1, before.1);
        let before = after;
        // A bundle with a bad signature.
        let mut w = orig.clone();
        let mut sig = w.bundles[0].signature.to_vec();
        sig[3] ^= 1;
        w.bundles[0].signature = sig.into();
        assert_eq!(
            rejected(&deliver(&mut bob, &alice, &tamper(&w), now)),
            vec![SecureError::BadBundleSignature]
        );
        assert_eq!(bob.snapshot(), before);
        // Garbage.
        let ev = deliver(
            &mut bob,
            &alice,
            &Outgoing {
                recipient: m2.recipient,
                bytes: vec![0xff; 7],
                route: Route::Public,
            },
            now,
        );
        assert_eq!(rejected(&ev), vec![SecureError::Decode]);
        assert_eq!(bob.snapshot(), before, "no rejected input changed the state");
        drain(&mut bob);

        // The genuine message still opens; its replay is rejected.
        assert_eq!(
            decrypted(&deliver(&mut bob, &alice, &m2, now)),
            vec![b"two".to_vec()]
        );
        let after = bob.snapshot();
        assert_eq!(
            rejected(&deliver(&mut bob, &alice, &m2, now)),
            vec![SecureError::DuplicateOrExpired]
        );
        assert_eq!(bob.snapshot(), after);
    }

    #[test]
    fn export_import_mid_conversation_and_rotation() {
        let now = Timestamp::from_secs(1_700_000_000);
        let (mut alice, mut bob) = established(now);
        alice
            .handle_input(
                now,
                Input::Encrypt {
                    recipient: *bob.identity(),
                    payload: b"a".to_vec(),
                },
            )
            .unwrap();
        let m = drain(&mut alice).0.remove(0);
        deliver(&mut bob, &alice, &m, now);
        let saved = bob.export();
        let mut bob2 = SecureTransport::new(
            identity(2),
            "bob-1".into(),
            Seed::from_u64(99),
            Config::default(),
            now,
        );
        bob2.import(&saved).unwrap();
        assert_eq!(*bob2.export(), *saved);
        alice
            .handle_input(
                now,
                Input::Encrypt {
                    recipient: *bob.identity(),
                    payload: b"b".to_vec(),
                },
            )
            .unwrap();
        let m = drain(&mut alice).0.remove(0);
        assert_eq!(
            decrypted(&deliver(&mut bob2, &alice, &m, now)),
            vec![b"b".to_vec()]
        );
        assert!(bob2.import(b"\x08\x07").is_err());

        // Rotation after 24 h; the old prekey still answers X3DH, a new session uses the new prekey.
        let day = Duration::from_secs(86_400);
        assert_eq!(bob2.poll_timeout(), Some(now + day));
        let later = now + day;
        bob2.handle_timeout(later);
        let b = bob2.bundle(later).unwrap();
        assert_eq!(b.signed_pre_keys["bob-1"].version, 2);
        bob2.handle_input(
            later,
            Input::Encrypt {
                recipient: *alice.identity(),
                payload: b"c".to_vec(),
            },
        )
        .unwrap();
        let m = drain(&mut bob2).0.remove(0);
        assert_eq!(
            decrypted(&deliver(&mut alice, &bob2, &m, later)),
            vec![b"c".to_vec()]
        );
        assert!(!format!("{bob2:?}").contains("secret"));
    }

    /// Regression: an imported state whose skipped-key store is inconsistent (repeated sequence numbers,
    /// `keys_count` below them) or over a cap is rejected quickly and leaves the machine as it was.
    #[test]
    fn import_rejects_inconsistent_or_oversized_state() {
        let now = Timestamp::from_secs(1_700_000_000);
        let (mut alice, mut bob) = established(now);
        for p in [b"1", b"2", b"3"] {
            alice
                .handle_input(
                    now,
                    Input::Encrypt {
                        recipient: *bob.identity(),
                        payload: p.to_vec(),
                    },
                )
                .unwrap();
        }
        let last = drain(&mut alice).0.pop().unwrap();
        assert_eq!(
            decrypted(&deliver(&mut bob, &alice, &last, now)),
            vec![b"3".to_vec()]
        );
        assert_eq!(bob.skipped_key_count(), 2);
        let saved = bob.export();
        let good = pb::SecureState::decode(&saved[..]).unwrap();
        let tight = Config {
            ratchet: RatchetConfig {
                max_skipped_keys: 1,
                ..RatchetConfig::default()
            },
            ..Config::default()
        };
        let mut small = SecureTransport::new(identity(2), "bob-1".into(), Seed::from_u64(3), tight, now);
        let small_before = small.export();
        let before = bob.export();
        let check = |m: &mut SecureTransport, st: &pb::SecureState, expect_before: &[u8]| {
            assert_eq!(m.import(&st.encode_to_vec()), Err(SecureError::InvalidState));
            assert_eq!(&m.export()[..], expect_before);
        };

        // Five skipped keys, all with seq 0, into a cap of 1 (used to hang) and of 2000.
        let mut st = good.clone();
        let r = st.sessions[0].ratchet.as_mut().unwrap();
        let k = r.skipped[0].clone();
        r.skipped = (0..5)
            .map(|n| pb::SkippedMessageKey {
                n: 100 + n,
                seq: 0,
                ..k.clone()
            })
            .collect();
        check(&mut small, &st, &small_before);
        check(&mut bob, &st, &before);
        // keys_count below the stored sequence numbers (used to create untracked keys later).
        let mut st = good.clone();
        st.sessions[0].ratchet.as_mut().unwrap().keys_count = 0;
        check(&mut bob, &st, &before);
        // Over the per-session cap of the importing machine.
        check(&mut small, &good, &small_before);
        // Repeated records.
        let mut st = good.clone();
        st.sessions.push(st.sessions[0].clone());
        check(&mut bob, &st, &before);
        let mut st = good.clone();
        st.installations.push(st.installations[0].clone());
        check(&mut bob, &st, &before);
        let mut st = good.clone();
        st.own_pre_keys.push(st.own_pre_keys[0].clone());
        check(&mut bob, &st, &before);
        let mut st = good.clone();
        st.agreed.push(st.agreed[0].clone());
        check(&mut bob, &st, &before);
        // An installation id over the limit.
        let mut st = good.clone();
        st.sessions[0].peer_installation_id = "x".repeat(bundle::MAX_INSTALLATION_ID_LEN + 1);
        check(&mut bob, &st, &before);

        // The genuine state still imports and round-trips.
        bob.import(&saved).unwrap();
        assert_eq!(*bob.export(), *saved);
    }

    /// Regression: a sender's installation id is capped like the ids inside bundles, on every path (a
    /// stranger's DH-only message without bundles, an established session).
    #[test]
    fn long_sender_installation_ids_are_rejected() {
        let now = Timestamp::from_secs(1_700_000_000);
        let (mut alice, mut bob) = established(now);
        let long = "i".repeat(bundle::MAX_INSTALLATION_ID_LEN + 1);
        // A stranger without bundles, DH-only.
        let mut eve = machine(9, "eve-1", now);
        eve.handle_input(
            now,
            Input::EncryptDhOnly {
                recipient: *bob.identity(),
                payload: b"x".to_vec(),
            },
        )
        .unwrap();
        let m = drain(&mut eve).0.remove(0);
        let mut w = pb::ProtocolMessage::decode(&m.bytes[..]).unwrap();
        w.bundles.clear();
        w.installation_id = long.clone();
        let before = bob.export();
        let ev = deliver(
            &mut bob,
            &eve,
            &Outgoing {
                bytes: w.encode_to_vec(),
                ..m.clone()
            },
            now,
        );
        assert_eq!(
            ev,
            vec![Event::Rejected {
                sender: *eve.identity(),
                error: SecureError::InvalidInstallationId
            }]
        );
        // Exactly at the limit is accepted.
        w.installation_id = "i".repeat(bundle::MAX_INSTALLATION_ID_LEN);
        let ev = deliver(
            &mut bob,
            &eve,
            &Outgoing {
                bytes: w.encode_to_vec(),
                ..m
            },
            now,
        );
        assert_eq!(decrypted(&ev), vec![b"x".to_vec()]);
        assert_eq!(*bob.export(), *before, "no bundle, no agreement: nothing stored");
        // An established session.
        alice
            .handle_input(
                now,
                Input::Encrypt {
                    recipient: *bob.identity(),
                    payload: b"y".to_vec(),
                },
            )
            .unwrap();
        let m = drain(&mut alice).0.remove(0);
        let mut w = pb::ProtocolMessage::decode(&m.bytes[..]).unwrap();
        w.installation_id = long;
        let ev = deliver(
            &mut bob,
            &alice,
            &Outgoing {
                bytes: w.encode_to_vec(),
                ..m.clone()
            },
            now,
        );
        assert_eq!(rejected(&ev), vec![SecureError::InvalidInstallationId]);
        assert_eq!(*bob.export(), *before);
        assert_eq!(
            decrypted(&deliver(&mut bob, &alice, &m, now)),
            vec![b"y".to_vec()]
        );
    }

    /// `Input::Encrypt` is all or nothing: when the copy to our paired device fails, the message to the
    /// recipient is not queued and no chain, session or RNG moved.
    #[test]
    fn event_debug_redacts_plaintexts() {
        let ev = Event::Decrypted {
            sender: identity(1).public_key(),
            installation_id: "i".into(),
            plaintext: b"attack at dawn".to_vec(),
        };
        let dbg = format!("{ev:?}");
        assert!(dbg.contains("plaintext_len: 14"), "{dbg}");
        assert!(!dbg.contains(&format!("{:?}", b"attack at dawn").replace(['[', ']'], "")));
        assert!(!dbg.contains("attack"));
    }

    #[test]
    fn failed_encrypt_changes_nothing() {
        let now = Timestamp::from_secs(1_700_000_000);
        let (mut a1, bob) = established(now);
        let mut a2 = SecureTransport::new(
            identity(1),
            "a2".into(),
            Seed::from_u64(77),
            Config::default(),
            now,
        );
        let me = *a1.identity();
        a2.handle_input(
            now,
            Input::EncryptDhOnly {
                recipient: me,
                payload: b"pair".to_vec(),
            },
        )
        .unwrap();
        let m = drain(&mut a2).0.remove(0);
        deliver(&mut a1, &a2, &m, now);
        a1.handle_input(
            now,
            Input::SetInstallationEnabled {
                identity: me,
                installation_id: "a2".into(),
                enabled: true,
            },
        )
        .unwrap();
        let send = |a1: &mut SecureTransport| {
            a1.handle_input(
                now,
                Input::Encrypt {
                    recipient: *bob.identity(),
                    payload: b"x".to_vec(),
                },
            )
        };
        send(&mut a1).unwrap();
        assert_eq!(drain(&mut a1).0.len(), 2);
        // Exhaust the sending chain of the session to a2 (through export/import).
        let mut st = pb::SecureState::decode(&a1.export()[..]).unwrap();
        let s = st
            .sessions
            .iter_mut()
            .find(|s| s.peer_installation_id == "a2")
            .unwrap();
        s.ratchet.as_mut().unwrap().ns = u32::MAX;
        a1.import(&st.encode_to_vec()).unwrap();
        let before = a1.snapshot();
        assert_eq!(send(&mut a1), Err(SecureError::CounterExhausted));
        assert_eq!(a1.queued_outputs(), 0, "the message to bob was not queued");
        assert_eq!(a1.snapshot(), before);
    }

    #[test]
    fn multidevice_pairing_and_fan_out() {
        let now = Timestamp::from_secs(1_700_000_000);
        let mut a1 = machine(1, "a1", now);
        let mut a2 = SecureTransport::new(
            identity(1),
            "a2".into(),
            Seed::from_u64(77),
            Config::default(),
            now,
        );
        let mut bob = machine(2, "bob-1", now);
        let me = *a1.identity();
        // a2 pairs: DH-only message to the own identity with its bundle.
        a2.handle_input(
            now,
            Input::EncryptDhOnly {
                recipient: me,
                payload: b"pair".to_vec(),
            },
        )
        .unwrap();
        let m = drain(&mut a2).0.remove(0);
        let ev = deliver(&mut a1, &a2, &m, now);
        assert_eq!(decrypted(&ev), vec![b"pair".to_vec()]);
        assert!(
            !a1.installations()
                .get(&CompressedKey::from_public(&me), "a2")
                .unwrap()
                .enabled
        );
        a1.handle_input(
            now,
            Input::SetInstallationEnabled {
                identity: me,
                installation_id: "a2".into(),
                enabled: true,
            },
        )
        .unwrap();
        assert!(a1
            .handle_input(
                now,
                Input::SetInstallationEnabled {
                    identity: me,
                    installation_id: "zz".into(),
                    enabled: true
                }
            )
            .is_err());
        // Bob meets a1; a1's bundle now advertises a2 too.
        bob.handle_input(now, Input::AdvertiseBundle { recipient: me })
            .unwrap();
        let m = drain(&mut bob).0.remove(0);
        deliver(&mut a1, &bob, &m, now);
        a1.handle_input(
            now,
            Input::Encrypt {
                recipient: *bob.identity(),
                payload: b"fan".to_vec(),
            },
        )
        .unwrap();
        let (sends, _) = drain(&mut a1);
        assert_eq!(sends.len(), 2, "one to bob, one copy to our paired device");
        assert_eq!(sends[1].recipient, me);
        let ev = deliver(&mut bob, &a1, &sends[0], now);
        assert_eq!(decrypted(&ev), vec![b"fan".to_vec()]);
        assert!(bob
            .installations()
            .get(&CompressedKey::from_public(&me), "a2")
            .is_some());
        assert_eq!(
            decrypted(&deliver(&mut a2, &a1, &sends[1], now)),
            vec![b"fan".to_vec()]
        );
        // Bob's reply reaches both of Alice's devices.
        bob.handle_input(
            now,
            Input::Encrypt {
                recipient: me,
                payload: b"both".to_vec(),
            },
        )
        .unwrap();
        let (sends, _) = drain(&mut bob);
        let wire = pb::ProtocolMessage::decode(&sends[0].bytes[..]).unwrap();
        assert_eq!(
            wire.encrypted_message.keys().cloned().collect::<Vec<_>>(),
            vec!["a1".to_string(), "a2".to_string()]
        );
        assert_eq!(
            decrypted(&deliver(&mut a1, &bob, &sends[0], now)),
            vec![b"both".to_vec()]
        );
        assert_eq!(
            decrypted(&deliver(&mut a2, &bob, &sends[0], now)),
            vec![b"both".to_vec()]
        );
        // Disabling a2 on a1 stops the copies.
        a1.handle_input(
            now,
            Input::SetInstallationEnabled {
                identity: me,
                installation_id: "a2".into(),
                enabled: false,
            },
        )
        .unwrap();
        a1.handle_input(
            now,
            Input::Encrypt {
                recipient: *bob.identity(),
                payload: b"solo".to_vec(),
            },
        )
        .unwrap();
        assert_eq!(drain(&mut a1).0.len(), 1);
    }

    #[test]
    fn device_not_found_advert_is_rate_limited() {
        let now = Timestamp::from_secs(1_700_000_000);
        let (mut alice, mut bob) = established(now);
        // Bob's new device knows nobody; Alice writes to bob-1 only.
        let mut bob_new = SecureTransport::new(
            identity(2),
            "bob-2".into(),
            Seed::from_u64(5),
            Config::default(),
            now,
        );
        alice
            .handle_input(
                now,
                Input::Encrypt {
                    recipient: *bob.identity(),
                    payload: b"x".to_vec(),
                },
            )
            .unwrap();
        let m = drain(&mut alice).0.remove(0);
        deliver(&mut bob, &alice, &m, now);
        bob_new
            .handle_input(
                now,
                Input::Received {
                    sender: *alice.identity(),
                    bytes: m.bytes.clone(),
                },
            )
            .unwrap();
        let (sends, events) = drain(&mut bob_new);
        assert_eq!(rejected(&events), vec![SecureError::NoEntryForInstallation]);
        assert_eq!(sends.len(), 1, "bundle advert");
        bob_new
            .handle_input(
                now,
                Input::Received {
                    sender: *alice.identity(),
                    bytes: m.bytes.clone(),
                },
            )
            .unwrap();
        assert!(drain(&mut bob_new).0.is_empty(), "rate limited");
        // Alice learns bob-2 from the advert and includes it next time.
        deliver(&mut alice, &bob_new, &sends[0], now);
        alice
            .handle_input(
                now,
                Input::Encrypt {
                    recipient: *bob.identity(),
                    payload: b"y".to_vec(),
                },
            )
            .unwrap();
        let m = drain(&mut alice).0.remove(0);
        assert_eq!(
            decrypted(&deliver(&mut bob_new, &alice, &m, now)),
            vec![b"y".to_vec()]
        );
    }

    #[test]
    fn caps_evict_and_skipped_keys_expire() {
        let now = Timestamp::from_secs(1_700_000_000);
        let config = Config {
            max_sessions: 2,
            max_total_skipped_keys: 30,
            ratchet: RatchetConfig {
                skipped_key_max_age: Duration::from_secs(600),
                ..RatchetConfig::default()
            },
            ..Config::default()
        };
        let mut bob = SecureTransport::new(
            identity(2),
            "bob-1".into(),
            Seed::from_u64(2),
            config.clone(),
            now,
        );
        for id in [3u8, 4, 5] {
            let mut peer = SecureTransport::new(
                identity(id),
                format!("p{id}"),
                Seed::from_u64(id.into()),
                config.clone(),
                now,
            );
            bob.handle_input(
                now,
                Input::AdvertiseBundle {
                    recipient: *peer.identity(),
                },
            )
            .unwrap();
            let m = drain(&mut bob).0.remove(0);
            deliver(&mut peer, &bob, &m, now);
            let mut last = None;
            for _ in 0..20 {
                peer.handle_input(
                    now,
                    Input::Encrypt {
                        recipient: *bob.identity(),
                        payload: vec![id],
                    },
                )
                .unwrap();
                last = drain(&mut peer).0.pop();
            }
            assert_eq!(
                decrypted(&deliver(&mut bob, &peer, &last.unwrap(), now)),
                vec![vec![id]]
            );
            assert!(bob.session_count() <= 2);
            assert!(bob.skipped_key_count() <= 30);
        }
        assert_eq!(bob.session_count(), 2);
        assert_eq!(bob.skipped_key_count(), 30);
        let expiry = now + Duration::from_secs(600);
        assert_eq!(bob.poll_timeout(), Some(expiry));
        bob.handle_timeout(expiry);
        assert_eq!(bob.skipped_key_count(), 0);
        assert_eq!(bob.poll_timeout(), Some(now + Duration::from_secs(86_400)));
    }
}
