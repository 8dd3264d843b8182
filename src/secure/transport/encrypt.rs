//! The sending path: X3DH and ratchet encryption per installation, DH-only entries, all-or-nothing
//! plans (docs/protocol/secure-transport.md §4, §5, §6, §8.1).

use std::collections::BTreeMap;

use prost::bytes::Bytes;
use prost::Message as _;
use rand_chacha::ChaCha20Rng;
use status_proto::encryption as pb;

use super::super::dh::{CompressedKey, Curve, Secp256k1};
use super::super::kdf::{self, GCM_NONCE_LEN};
use super::super::multidevice::Installation;
use super::super::ratchet::{self, Session};
use super::super::sharedsecret::NegotiatedSecret;
use super::super::{x3dh, SecureError};
use super::session::{SessionEntry, SessionKey};
use super::{bytes33, Event, Outgoing, Output, Route, SecureTransport, NO_INSTALLATION};
use crate::crypto::PublicKey;
use crate::time::Timestamp;

/// A session change computed by [`SecureTransport::plan`], applied by [`SecureTransport::commit_plan`].
pub(super) enum SessionChange {
    Advance(SessionKey, ratchet::SendStep),
    New(SessionKey, Box<SessionEntry>),
}

/// One outgoing message, computed but not committed.
pub(super) struct Plan {
    changes: Vec<SessionChange>,
    bundle_requested: bool,
    outgoing: Outgoing,
}

impl SecureTransport {
    pub(super) fn dh_only_entry(
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

    pub(super) fn send_dh_only(
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
        self.push(Output::Transmit(Outgoing {
            recipient: *recipient,
            bytes: msg.encode_to_vec(),
            route: Route::Partitioned,
        }));
        Ok(())
    }

    /// `Input::Encrypt`, all or nothing: the message to `recipient` and, when we have paired devices, the
    /// copy to our own identity are both computed first (on a copy of the RNG, without touching any
    /// session) and only then committed: chains advanced, new sessions stored, events and `Transmit`s queued.
    /// An error leaves sessions, RNG and queue as they were (the own prekey may have been rotated if it was
    /// due, as [`SecureTransport::handle_timeout`] would have).
    pub(super) fn encrypt(
        &mut self,
        now: Timestamp,
        recipient: &PublicKey,
        payload: &[u8],
    ) -> Result<(), SecureError> {
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
    pub(super) fn plan(
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

    pub(super) fn commit_plan(&mut self, now: Timestamp, plan: Plan) {
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
        self.push(Output::Transmit(plan.outgoing));
    }

    pub(super) fn encrypt_to_installation(
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
                #[cfg(feature = "fuzzing")]
                let mk = entry.ratchet.next_message_key();
                let (header, ct, step) = entry.ratchet.encrypt_staged(payload)?;
                #[cfg(feature = "fuzzing")]
                self.observe_encryption(key, &header, &mk, &ct);
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
                #[cfg(feature = "fuzzing")]
                let mk = ratchet.next_message_key();
                let (header, ct) = ratchet.encrypt(payload)?;
                let key = SessionKey {
                    peer: *recipient_c,
                    installation: inst.id.clone(),
                    bundle_id: spk,
                };
                #[cfg(feature = "fuzzing")]
                self.observe_encryption(&key, &header, &mk, &ct);
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
}

#[cfg(feature = "fuzzing")]
impl SecureTransport {
    /// Report an encryption to [`crate::persist::observe`] (test support).
    fn observe_encryption(
        &self,
        key: &SessionKey,
        header: &ratchet::Header<Secp256k1>,
        mk: &[u8; 32],
        ct: &[u8],
    ) {
        let chain = || {
            crate::persist::observe::hash(&[
                self.identity_c.as_ref(),
                key.peer.as_ref(),
                key.installation.as_bytes(),
                key.bundle_id.as_ref(),
                header.dh.as_ref(),
            ])
        };
        crate::persist::observe::encrypted(chain, header.n, mk, ct);
    }
}
