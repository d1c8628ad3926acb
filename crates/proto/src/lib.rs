//! Linli's sync protocol as state machines without I/O, in the manner of iroh-gossip's `proto`
//! and samod-core: each session is driven by inputs (bytes that arrived, work the driver did,
//! the time) and answers with outputs (bytes to send, work to do), and never touches a socket,
//! a file or a clock.
//!
//! - [`peer`]: a peer-to-peer [`peer::Session`] (negentropy reconciliation, then the changes
//!   each side lacks);
//! - [`relay`]: a live session with the relay, [`relay::Live`]: when local changes are sealed
//!   and sent, what counts as sent, when an upload closes, what arrives to be merged.
//!
//! `linli-sync` runs these against the store (`linli-store`) over HTTP, iroh and the local
//! network; the tests run them in one process with a virtual clock.
//!
//! Architecture invariant: this crate does no I/O. Its normal dependencies are the wire types,
//! negentropy, sha2 and thiserror; Cargo enforces it (`cargo tree -p linli-proto -e normal`).

pub mod peer;
pub mod relay;

/// What a sync did: documents each way, bytes, requests, time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Documents sent.
    pub sent: usize,
    /// Documents received that were new here.
    pub created: usize,
    /// Documents received that changed here.
    pub changed: usize,
    /// Documents received that were already up to date.
    pub unchanged: usize,
    /// Request bytes sent (HTTP bodies).
    pub bytes_up: u64,
    /// Response bytes received (HTTP bodies).
    pub bytes_down: u64,
    /// Blobs received that could not be used and were set aside.
    pub set_aside: usize,
    /// Requests made.
    pub round_trips: u32,
    /// Wall time.
    pub ms: u128,
}

/// Document ids and their encoded heads.
pub type Heads = Vec<(String, Vec<u8>)>;
