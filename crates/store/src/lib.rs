//! Linli's local store: everything a device keeps in its SQLite file.
//!
//! The main type is [`Store`]: every record as an Automerge document in one SQLite file, saved
//! incrementally and compacted, with a local change feed and derived query tables. Each module
//! holds one concern:
//!
//! - [`store`]: opening, migrations and the write path (`put`, `edit`, `merge`);
//! - `codec`: compression of snapshots and chunks with trained dictionaries;
//! - [`feed`]: the change feed and its pruning; `changes`: every commit announced to listeners
//!   ([`Store::on_commit`]); [`checkpoint`]: the background checkpoints;
//! - `merge`, `outbox`, `aside`, `peers`: what sync receives, sends, sets aside and answers a
//!   peer (the protocol itself is `linli-proto`; the transports are `linli-sync`);
//! - [`index`], [`query`], [`screens`]: derived query tables and the screens' queries;
//! - `history`, `drafts`, `audit`, `identity`: a record's history, unsaved forms, the audit log,
//!   this device's keys and membership, known peers and settings.
//!
//! See `ARCHITECTURE.md` for how it fits with the rest.

mod aside;
mod audit;
mod changes;
pub mod checkpoint;
mod codec;
mod drafts;
mod edit;
mod error;
pub mod feed;
mod history;
mod identity;
pub mod index;
pub mod keys;
mod merge;
mod outbox;
mod peers;
pub mod query;
mod recent;
pub mod screens;
pub mod store;

pub use aside::SetAside;
pub use audit::{AuditCheck, AuditEntry};
pub use changes::Subscription;
pub use codec::TRAIN_AFTER;
pub use error::StoreError;
pub use history::HistoryEntry;
pub use identity::{Identity, KnownPeer};
pub use keys::DbKey;
pub use merge::{Incoming, MergeReport, scope_name};
pub use outbox::{InFlight, Outgoing};
pub use query::{Hit, ListFilter, Row};
pub use store::{Author, FeedEntry, Store, StoreStats, WriteReport};
