//! The command line's tests, in one test binary: `commands` (acceptance tests of each command
//! on a real SQLite store) and `sync` (end to end with real processes: a relay on 127.0.0.1,
//! stores syncing through it and peer to peer). `common` runs the `linli` binary.
// Helpers here panic on purpose: a failed step fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod commands;
mod common;
mod sync;
