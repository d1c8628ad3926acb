//! The sync crate's tests, in one test binary: `peer` (the peer protocol over an in-memory
//! network with real stores) and `live` (the live relay session against the relay library in
//! one process, on a virtual clock).
// Helpers here panic on purpose: a failed step fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod live;
mod peer;
