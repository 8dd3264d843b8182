//! Protobuf types of the Status protocols, with the field numbers the network uses.
//!
//! Every `.proto` file under `protos/` is compiled at build time by `protox` (a pure-Rust protobuf
//! compiler, so no `protoc` is needed) and `prost-build`; each protobuf package becomes a module here.
//! `bytes` fields are [`prost::bytes::Bytes`].
#![forbid(unsafe_code)]

pub use prost;

include!(concat!(env!("OUT_DIR"), "/modules.rs"));
