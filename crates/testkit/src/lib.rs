//! What Linli's tests share, as a crate every test binary depends on (instead of files included
//! with `#[path]`): [`roster`] (a community and roster lines in the generator's format),
//! [`relay`] (a `linli-relay` process on 127.0.0.1 and raw requests to it) and [`namespaces`]
//! (a test that reruns itself on a network of loopback only, or on a small disk that fills up).
//!
//! Helpers here panic on purpose: a failed step fails the test that called it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod namespaces;
pub mod relay;
pub mod roster;
