//! Linli's local store and (from the sync issue on) its sync protocol and transports.
//!
//! The main type is [`Store`]: every record as an Automerge document in one SQLite file, saved
//! incrementally and compacted, with a local change feed and derived query tables. See
//! `ARCHITECTURE.md` for how it fits with the rest.

mod codec;
mod edit;
mod error;
mod history;
pub mod index;
pub mod query;
pub mod store;

pub use codec::TRAIN_AFTER;
pub use error::StoreError;
pub use history::HistoryEntry;
pub use query::{Hit, ListFilter, Row};
pub use store::{Author, FeedEntry, Store, WriteReport};
