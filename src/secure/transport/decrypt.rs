//! The receiving path: bundle verification, ratchet and DH-only decryption, new responder sessions
//! (docs/protocol/secure-transport.md §4.3, §5, §6, §8.2).

use prost::Message as _;
use status_proto::encryption as pb;
use zeroize::Zeroizing;

use super::super::bundle::{self, Bundle};
use super::super::dh::{CompressedKey, Curve, Secp256k1};
use super::super::kdf::{self};
use super::super::ratchet::{Header, Session};
use super::super::{x3dh, SecureError};
use super::session::{SessionEntry, SessionKey};
use super::{Event, Output, SecureTransport, NO_INSTALLATION};
use crate::crypto::PublicKey;
use crate::time::Timestamp;

impl SecureTransport {
    pub(super) fn receive(
        &mut self,
        now: Timestamp,
        sender: &PublicKey,
        bytes: &[u8],
    ) -> Result<(), SecureError> {
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

    pub(super) fn receive_ratchet(
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
}
