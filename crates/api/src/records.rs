//! The operations of the command line over records: what the store holds, lists, a record,
//! an edit by field path, a record's history, its raw document, the derived tables rebuilt
//! and checked, import and the demo. The app's screens use their own views (roster, requests,
//! tasks …); both doors check roles, mask and audit here and in the store, never in the caller.

use std::path::Path;

use linli_domain::{Collection, Community};
use linli_store::{HistoryEntry, ListFilter, Row, StoreStats, WriteReport};
use serde::Serialize;
use serde_json::Value;

use crate::{Api, ApiError, setup};

/// What `linli doctor` found.
#[derive(Debug, Clone, Serialize)]
pub struct Doctor {
    /// SQLite's own check: `ok` when the file is sound.
    pub integrity: String,
    /// Documents that load.
    pub documents: usize,
    /// Rows of the derived query tables.
    pub index_rows: usize,
    /// Whether the derived tables and stored records equalled a rebuild from the documents
    /// (they were rebuilt either way).
    pub index_matches: bool,
}

/// What a demo fill made.
#[derive(Debug, Clone)]
pub struct DemoFill {
    /// The write.
    pub report: WriteReport,
    /// The generated records, one JSON line each.
    pub lines: Vec<String>,
}

/// The collections a list may name (not the community's own document or sensitive ones).
fn listable(collection: &str) -> Result<Collection, ApiError> {
    Collection::parse(collection)
        .filter(|c| !matches!(c, Collection::Sensitive | Collection::Community))
        .ok_or_else(|| {
            ApiError::invalid(
                "collection",
                format!(
                    "unknown collection `{collection}`; one of: households, people, \
                     organisations, visits, tasks, requests, posts, notices, ballots"
                ),
            )
        })
}

impl Api {
    /// Creates this device's community (the device becomes its root: committee staff). Its id
    /// is `label` (default `c`), `-` and a tag of this device's key.
    pub fn init_community(
        &self,
        name: &str,
        street: &str,
        label: Option<&str>,
        user: Option<&str>,
    ) -> Result<Community, ApiError> {
        let mut store = self.store();
        setup::init(&mut store, name, street, label, user, self.now())
    }

    /// Fills a new store with the demo community: `households` households, `tasks`
    /// inspection tasks, deterministic for `seed` and the instant `as_of` (not in the
    /// future). Creates the community (`demo{seed}-…`) if the store has none.
    pub fn fill_demo(
        &self,
        households: usize,
        tasks: usize,
        seed: u64,
        as_of: linli_domain::Timestamp,
        user: Option<&str>,
    ) -> Result<DemoFill, ApiError> {
        // What was recorded cannot have happened yet (visits, request steps).
        if as_of > self.now() {
            return Err(ApiError::invalid(
                "as_of",
                format!(
                    "{} is in the future",
                    as_of.to_china().format("%Y-%m-%d %H:%M")
                ),
            ));
        }
        let mut store = self.store();
        let (report, lines) = setup::fill_demo(&mut store, households, tasks, seed, user, as_of)?;
        Ok(DemoFill { report, lines })
    }

    /// Imports records from a JSON Lines file, all or nothing (`message` goes into each
    /// document's history).
    pub fn import_file(&self, file: &Path, message: &str) -> Result<WriteReport, ApiError> {
        let mut store = self.store();
        if store.community_id()?.is_some() {
            self.roster_role(&store, "import records")?;
        }
        setup::import_file(&mut store, file, message, self.today())
    }

    /// What the store holds.
    pub fn stats(&self) -> Result<(Option<Community>, StoreStats), ApiError> {
        let store = self.store();
        let community = store.community().ok();
        Ok((community, store.stats()?))
    }

    /// A collection's records as JSON, masked unless `reveal` (which the role must allow; it is
    /// written to the audit log).
    pub fn list_records(
        &self,
        collection: &str,
        filter: &ListFilter,
        reveal: bool,
    ) -> Result<Vec<Value>, ApiError> {
        let c = listable(collection)?;
        Ok(self.store().list_json(c, filter, reveal)?)
    }

    /// A collection's rows, as the command line prints them (never an ID number or phone).
    pub fn list_rows(&self, collection: &str, filter: &ListFilter) -> Result<Vec<Row>, ApiError> {
        let c = listable(collection)?;
        Ok(self.store().list(c, filter)?)
    }

    /// One record as JSON (a person id shows the person), masked unless `reveal` (which the
    /// role must allow; it is written to the audit log).
    pub fn show(&self, id: &str, reveal: bool) -> Result<Value, ApiError> {
        Ok(self.store().view(id, reveal)?)
    }

    /// Sets one field of a record by its path (`phone`, `checklist[1].ok` …), validated, if
    /// this device's role may change that record; whether anything changed.
    pub fn edit_field(&self, id: &str, field: &str, value: &str) -> Result<bool, ApiError> {
        self.edit(id, field, value)
    }

    /// Who changed what and when, masked unless `reveal` (role-checked and audited).
    pub fn history(&self, id: &str, reveal: bool) -> Result<Vec<HistoryEntry>, ApiError> {
        Ok(self.store().history(id, reveal)?)
    }

    /// A document's raw Automerge bytes (committee staff only: they hold every field of it,
    /// unmasked).
    pub fn export_doc(&self, id: &str) -> Result<Vec<u8>, ApiError> {
        let store = self.store();
        if !self.role(&store)?.may_manage {
            return Err(ApiError::Forbidden(
                "only committee staff devices may export a raw document".into(),
            ));
        }
        let bytes = store.export_doc(id)?;
        store.audit("export", id, "raw document")?;
        Ok(bytes)
    }

    /// Recomputes the derived query tables and stored records from the documents; returns
    /// how many documents there are.
    pub fn rebuild_index(&self) -> Result<usize, ApiError> {
        Ok(self.store().rebuild_index()?)
    }

    /// Checks the store: SQLite's integrity, every document loads, and the derived tables and
    /// stored records equal a rebuild from the documents (rebuilt either way).
    pub fn doctor(&self) -> Result<Doctor, ApiError> {
        let mut store = self.store();
        let integrity = store.integrity_check()?;
        let before = store.dump_index()?;
        let documents = store.rebuild_index()?;
        let after = store.dump_index()?;
        Ok(Doctor {
            integrity,
            documents,
            // The comparison covers the stored records too; they are not index rows.
            index_rows: after.iter().filter(|l| !l.starts_with("record: ")).count(),
            index_matches: before == after,
        })
    }
}
