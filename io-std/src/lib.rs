//! Blocking driver for status-sansio: std::net TCP and a poll loop whose socket read timeout is the engine's
//! next deadline.
#![forbid(unsafe_code)]
