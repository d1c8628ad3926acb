//! What Linli's tests share, as a crate every test binary depends on (instead of files included
//! with `#[path]`): [`roster`] (a community and roster lines in the generator's format),
//! [`relay`] (a `linli-relay` process on 127.0.0.1 and raw requests to it) and [`namespaces`]
//! (a test that reruns itself on a network of loopback only, or on a small disk that fills up).
//!
//! Helpers here panic on purpose: a failed step fails the test that called it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The key tests encrypt their stores with (a store's real key is random, unwrapped from its
/// key file with a person's passphrase; tests that need that path make one).
pub fn key() -> linli_store::DbKey {
    linli_store::DbKey::from_bytes([0x5a; 32])
}

/// A raw connection to a store's database file, keyed with [`key`] (tests that look under the
/// store, or damage it on purpose).
pub fn open_db(path: impl AsRef<std::path::Path>) -> Result<rusqlite::Connection, rusqlite::Error> {
    linli_sqlite::open(
        path.as_ref(),
        std::time::Duration::from_secs(5),
        Some(&key()),
    )
}

pub mod namespaces;
pub mod relay;
pub mod roster;
