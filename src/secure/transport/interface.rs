//! Inputs, outputs and events of the [`SecureTransport`](super::SecureTransport) machine
//! (docs/protocol/secure-transport.md §8, §11.2).

use super::super::dh::CompressedKey;
use super::super::sharedsecret::NegotiatedSecret;
use super::super::SecureError;
use crate::crypto::PublicKey;

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
#[non_exhaustive]
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
    /// we send a private message to `peer` (before that message's `Transmit`, so the filter is up before an
    /// answer can arrive) or receive one from an installation of `peer` whose protocol version is at
    /// least 1.
    NegotiatedSecret {
        /// The peer identity.
        peer: PublicKey,
        /// The negotiated secret `S`.
        secret: NegotiatedSecret,
    },
    /// A received message was rejected because of a fault of its sender. Sessions, agreed installations
    /// and the RNG are unchanged; verified bundles it carried may have been applied (see the
    /// [layer documentation](crate::secure) for the exact list).
    PeerFault {
        /// The transport sender.
        peer: PublicKey,
        /// Why.
        fault: SecureError,
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
            Event::PeerFault { peer, fault } => f
                .debug_struct("PeerFault")
                .field("peer", &CompressedKey::from_public(peer))
                .field("fault", fault)
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
#[non_exhaustive]
pub enum Output {
    /// Bytes to hand to the transport (the layer below).
    Transmit(Outgoing),
    /// Something for the application.
    Event(Event),
}
