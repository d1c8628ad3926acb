//! The store's error type.

use std::path::PathBuf;

use linli_domain::ValidationErrors;
use linli_domain::interchange::LineError;

/// What can go wrong in the store. Messages name the record, field or line concerned and never
/// contain an ID number or phone number.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The store's key file is damaged or of a newer Linli.
    #[error("{0}")]
    KeyFile(String),
    /// A new passphrase does not fit (too short).
    #[error("passphrase: {0}")]
    Passphrase(String),
    /// The passphrase given does not unlock the store (or the person has none here).
    #[error("{0}")]
    WrongPassphrase(String),
    /// The store does not open with the key given: not this store's key, or not a store.
    #[error("{0} does not open with this key: it belongs to another store, or is damaged")]
    WrongKey(PathBuf),
    /// A file or directory could not be used.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A stored document could not be loaded.
    #[error("document {id} is damaged: {source}")]
    Automerge {
        /// Document id.
        id: String,
        /// The cause (boxed: it is large, and rare).
        source: Box<automerge::AutomergeError>,
    },
    /// A stored document does not have the shape of its collection.
    #[error("document {id} cannot be read as {collection}: {source}")]
    Hydrate {
        /// Document id.
        id: String,
        /// Its collection.
        collection: String,
        /// The cause (boxed: it is large, and rare).
        source: Box<autosurgeon::HydrateError>,
    },
    /// A record could not be written into its document.
    #[error("cannot write document {id}: {source}")]
    Reconcile {
        /// Document id.
        id: String,
        /// The cause (boxed: it is large, and rare).
        source: Box<autosurgeon::ReconcileError>,
    },
    /// Compressing a snapshot failed.
    #[error("compression failed: {0}")]
    Codec(String),
    /// Keys, certificates or sealed data were not valid.
    #[error("{0}")]
    Wire(#[from] linli_wire::WireError),
    /// This device may not do what was asked.
    #[error("{0}")]
    Identity(String),
    /// No record has this id.
    #[error("no record with id {}", shown(.0))]
    NotFound(String),
    /// The record breaks a rule.
    #[error("{id}: {errors}")]
    Invalid {
        /// Record id.
        id: String,
        /// The problems, by field.
        errors: ValidationErrors,
    },
    /// A field given to `edit` is unknown, read-only, or its value does not fit.
    #[error("{id}: field `{field}`: {message}")]
    Field {
        /// Record id.
        id: String,
        /// The field path.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A line of an import file is wrong; nothing was imported.
    #[error("{file}:{line}: {error}")]
    Import {
        /// The file (as given).
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        error: LineError,
    },
    /// The same record id appears twice in one import.
    #[error("{file}:{line}: record {id} already appeared on line {first}")]
    Duplicate {
        /// The file.
        file: String,
        /// The line of the repeat.
        line: usize,
        /// The record id.
        id: String,
        /// The line where it first appeared.
        first: usize,
    },
    /// A document received from another device was refused (it does not load, does not
    /// read as its collection, or claims another scope than it came sealed for).
    #[error("received document {id} refused: {reason}")]
    Received {
        /// Document id.
        id: String,
        /// Why (never a value of the document).
        reason: String,
    },
    /// The store has no community yet.
    #[error("this store has no community yet: run `linli init --community NAME` first")]
    NoCommunity,
    /// The store already has a community.
    #[error("this store already belongs to community {0}")]
    HasCommunity(String),
    /// The store was written by a newer Linli.
    #[error(
        "the store's schema version {found} is newer than this program ({supported}); update Linli"
    )]
    TooNew {
        /// Version in the file.
        found: i64,
        /// Newest version this program knows.
        supported: i64,
    },
}

impl StoreError {
    /// The id of the received document this error refused, if it is such a refusal (and not
    /// a failure of the store itself, which refuses nothing received).
    pub fn refused_document(&self) -> Option<&str> {
        match self {
            StoreError::Received { id, .. } => Some(id),
            _ => None,
        }
    }

    /// Whether SQLite refused the write because the disk (or the store's size limit) is full.
    /// The transaction was rolled back: nothing of it was written.
    pub fn is_storage_full(&self) -> bool {
        matches!(
            self,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DiskFull
        )
    }
}

/// An id or field path as typed, for a message, unless it could be something else typed in
/// its place (a phone or an ID number: five digits in a row not after a letter prefix, or
/// characters no id or path has).
pub(crate) fn shown(text: &str) -> String {
    let mut run = 0;
    let mut longest = 0;
    for c in text.chars() {
        run = if c.is_ascii_digit() { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let plain = text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']' | '-'));
    // Record ids start with a letter (`hh-000123`); phones and ID numbers with a digit.
    let id_like = text.starts_with(|c: char| c.is_ascii_alphabetic());
    if plain && (longest < 5 || id_like) {
        text.to_string()
    } else {
        "(as given)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_repeated_but_not_numbers_typed_in_their_place() {
        assert_eq!(shown("hh-000123"), "hh-000123");
        assert_eq!(shown("checklist[1].ok"), "checklist[1].ok");
        assert_eq!(shown("13812345678"), "(as given)");
        assert_eq!(shown("32010619800101001X"), "(as given)");
        assert_eq!(shown("王芳"), "(as given)");
        let e = StoreError::NotFound("13812345678".into()).to_string();
        assert!(!e.contains("5678"), "{e}");
    }
}
