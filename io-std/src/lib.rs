//! Blocking driver for status-sansio: `std::net` TCP and a poll loop whose socket read timeout is the
//! engine's next deadline.
//!
//! The driver owns what the core refuses to touch: the socket, the clock ([`Clock`]: a monotonic clock
//! anchored to the wall clock at start-up, so `now` never runs backwards) and the seed ([`os_seed`]). It moves
//! bytes between the socket and the engine and contains nothing protocol-specific (the `test/1` demo codec
//! is [`status_sansio::demo`], re-exported here as [`demo`]).
//!
//! Modules, one concept each: [`RlpxStream`] (one RLPx connection over a blocking socket), [`node`] (a whole
//! [`Engine`](status_sansio::node::Engine) over `std::net`), [`dns`] (TXT lookups and the peer cache
//! file), [`store`] (the mailserver's storage), [`state_file`] (versioned, checksummed, atomically written
//! state files and the data-directory lock). `status_io_tokio` uses the same names for the same concepts.
//!
//! ```no_run
//! use std::sync::Arc;
//! use status_io_std::RlpxStream;
//! use status_sansio::rlpx::{Config, Event, Protocol};
//! # fn main() -> std::io::Result<()> {
//! let key = status_sansio::crypto::SecretKey::random(&mut status_io_std::os_seed().rng());
//! let config = Arc::new(Config::new(key, vec![Protocol::new("test", 1, 8).unwrap()]));
//! let enode = "enode://...@127.0.0.1:30303".parse().unwrap();
//! let mut peer = RlpxStream::connect(&enode, config)?;
//! while let Some(event) = peer.next_event()? {
//!     if let Event::Connected { .. } = event {
//!         peer.send("test", 0, &[0xc0])?;
//!     }
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand_core::{OsRng, RngCore};
use status_sansio::{Seed, Timestamp};

pub use status_sansio::demo;
pub use stream::RlpxStream;

pub mod dns;
pub mod node;
#[cfg(feature = "redb")]
pub mod state;
pub mod state_file;
pub mod store;
mod stream;

/// Longest a TCP dial may take in either driver. The engine owns the dial timeout (it closes a dial that
/// passed its deadline with `Output::Close`, which cancels it); this generous bound only makes sure a
/// dial cannot hang for ever while an engine without that timeout is in use.
pub const DIAL_SAFETY_TIMEOUT: Duration = Duration::from_secs(30);

/// A monotonic clock anchored to the wall clock once, at construction.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
    start_wall: Timestamp,
}

impl Clock {
    /// Anchor a new clock to the current wall time.
    pub fn new() -> Self {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Clock {
            start: Instant::now(),
            start_wall: Timestamp::from_millis(wall.as_millis() as u64),
        }
    }

    /// The current time: the anchor plus monotonic time elapsed since.
    pub fn now(&self) -> Timestamp {
        self.start_wall + self.start.elapsed()
    }

    /// Time from now until `deadline` (zero if past).
    pub fn until(&self, deadline: Timestamp) -> Duration {
        deadline - self.now()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// A fresh seed from the operating system's randomness.
pub fn os_seed() -> Seed {
    let mut s = [0u8; 32];
    OsRng.fill_bytes(&mut s);
    Seed(s)
}
