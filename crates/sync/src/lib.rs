//! Linli's local store and (from the sync issue on) its sync protocol and transports.
//!
//! The main type is [`Store`]: every record as an Automerge document in one SQLite file, saved
//! incrementally and compacted, with a local change feed and derived query tables. See
//! `ARCHITECTURE.md` for how it fits with the rest.

mod aside;
mod audit;
pub mod checkpoint;
mod codec;
mod drafts;
mod edit;
mod error;
pub mod feed;
mod history;
mod identity;
pub mod index;
pub mod lan;
pub mod live;
mod merge;
mod outbox;
pub mod p2p;
pub mod peer;
pub mod query;
mod recent;
pub mod relay_client;
pub mod replica;
pub mod screens;
pub mod store;

pub use aside::SetAside;
pub use audit::AuditEntry;
pub use codec::TRAIN_AFTER;
pub use error::StoreError;
pub use history::HistoryEntry;
pub use identity::{Identity, KnownPeer};
pub use merge::{Incoming, MergeReport, scope_name};
pub use outbox::{InFlight, Outgoing};
pub use query::{Hit, ListFilter, Row};
pub use replica::{PeerReport, Replica};
pub use store::{Author, FeedEntry, Store, WriteReport};
