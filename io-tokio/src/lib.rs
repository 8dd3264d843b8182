//! Async driver for status-sansio on tokio.
//!
//! [`RlpxStream`] drives one RLPx [`Connection`](status_sansio::rlpx::Connection) over a tokio
//! `TcpStream`: `next_event` selects over the socket and the engine's deadline. [`spawn`] runs one in its
//! own task and talks to it over channels (commands in, events out). [`node`] runs a whole
//! [`Engine`](status_sansio::node::Engine); [`dns`] answers its TXT lookups. Clock and seed come from
//! [`status_io_std::Clock`] and [`status_io_std::os_seed`], so both drivers see time the same way, and the
//! two drivers use the same names for the same concepts (`TxtResolver`, `SystemResolver`, commands that are
//! the engine's own `node::Input`, `dropped_events`).
#![forbid(unsafe_code)]

pub mod dns;
pub mod node;
mod stream;

pub use stream::{spawn, Command, Handle, RlpxStream};
