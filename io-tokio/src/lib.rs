//! Async driver for status-sansio on tokio: one task per engine, selecting over the socket, the engine's
//! timer and application commands.
#![forbid(unsafe_code)]
