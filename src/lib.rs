//! # status-sansio
//!
//! The Status messaging protocol stack as pure, deterministic, sans-IO state machines.
//!
//! Every layer is a state machine that never touches a socket, a clock or the operating system's
//! randomness: bytes, time ([`Timestamp`]) and a 32-byte seed come in as arguments, and bytes to send,
//! timers and application events come out. The shape follows quinn-proto and str0m:
//!
//! * `handle_input(now, input)` feeds bytes received, connection changes and application commands;
//! * `handle_timeout(now)` fires every deadline `<= now` (a spurious call is a no-op);
//! * `poll_output()` drains what the machine wants done, after every mutation;
//! * `poll_timeout()` returns the earliest pending deadline.
//!
//! A fault caused by a remote peer never comes back as `Err`: it becomes a disconnect with the protocol's
//! reason plus an event that says why. `Err` is reserved for misuse of the API by the caller.
//!
//! Layers:
//!
//! | module | protocol |
//! |---|---|
//! | [`rlpx`] | RLPx v5 transport: ECIES handshake, framing, the `p2p` base protocol, capability multiplexing |
//! | [`secure`] | Secure transport: prekey bundles, X3DH, Double Ratchet, DH-only messages, multi-device |
//! | [`crypto`] | the secp256k1 and Keccak helpers every layer shares |
//! | [`enode`] | `enode://` URLs |
//! | [`mailserver`] | the mailserver server: archive, history requests with cursors, retention |
//! | [`persist`] | durable state as outputs: records, batches, the barrier that holds outputs until durable |
//! | [`node`] | the engine composing RLPx connections and the Waku node; static peers with backoff |
//! | [`discovery`] | ENR (EIP-778), DNS node lists (EIP-1459), the PeerPool |
//! | [`waku`] | Waku v1 / Whisper v6: envelopes, PoW, bloom, message crypto, options, packets |
//! | [`mvds`] | MVDS data sync: payload codec, message and group ids, the sync node |
//! | [`chat`] | the application layer: identity forms, payload wrapper and ids, clocks, validation, groups |
//! | [`sim`] | a deterministic network simulator for any engine (tests and benchmarks) |
#![forbid(unsafe_code)]
#![warn(unnameable_types)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod chat;
mod conn;
pub mod crypto;
pub mod demo;
pub mod discovery;
pub mod enode;
mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod mailserver;
pub mod mvds;
pub mod node;
pub mod persist;
pub mod rlpx;
mod rng;
pub mod secure;
pub mod sim;
mod time;
pub mod waku;

pub use conn::ConnId;
pub use error::Error;
pub use rng::{Seed, SeededState};
pub use time::Timestamp;
