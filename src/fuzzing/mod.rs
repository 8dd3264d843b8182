//! Fuzz entry points, one function per target.
//!
//! The cargo-fuzz crate in `fuzz/` calls these, and the ordinary test suite runs the same functions over a
//! seeded, generated corpus (`tests/fuzz_corpus_*.rs`) and over the committed seed corpus
//! (`fuzz/corpus/TARGET/`, written by [`seeds`]), so CI exercises them on stable. The oracle is the
//! core's contract: arbitrary input never panics, never makes `handle_input` return `Err`, and never grows
//! state past the documented caps (the bodies assert what they can). Where cryptography stands between
//! the fuzzer and a parser, the harness holds the keys (built once per process) and seals what the
//! fuzzer chooses: handshake bodies, frames, envelopes, decrypted payloads.
pub mod chat;
pub mod corpus;
pub mod discovery;
pub mod mailserver;
pub mod mvds;
pub mod node;
pub mod rlpx;
pub mod script;
pub mod secure;
pub mod seeds;
pub mod waku;
