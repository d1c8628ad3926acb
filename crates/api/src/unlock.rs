//! 解锁 Unlocking a device's store: its key comes from the key file next to it, unwrapped with
//! a person's passphrase (see `linli_store::keys`). A new store, or a plain one made by an
//! older Linli (encrypted in place when it is opened), gets a new random key, wrapped for the
//! person who sets the passphrase.

use std::path::Path;

use linli_store::DbKey;
use linli_store::keys;

use crate::ApiError;

/// What opening the store in a directory needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, specta::Type)]
#[serde(rename_all = "snake_case")]
pub enum LockState {
    /// No store, or a plain one of an older Linli: a person chooses a passphrase (at least
    /// [`keys::MIN_PASSPHRASE`] characters).
    New,
    /// An encrypted store: a person who may use it enters their passphrase.
    Locked,
}

/// Whether the store in `dir` is new (a passphrase to choose) or locked (one to enter).
pub fn lock_state(dir: &Path) -> LockState {
    if keys::exists(dir) {
        LockState::Locked
    } else {
        LockState::New
    }
}

/// The people who may unlock the store in `dir` (none: a new store).
pub fn people(dir: &Path) -> Result<Vec<String>, ApiError> {
    if !keys::exists(dir) {
        return Ok(Vec::new());
    }
    Ok(keys::people(dir)?)
}

/// The fewest characters of a passphrase.
pub const MIN_PASSPHRASE: usize = keys::MIN_PASSPHRASE;

/// The key of the store in `dir`: unwrapped with `passphrase` (any person's), or — a new or
/// plain store — a new one, wrapped for `person` with it.
pub fn unlock(dir: &Path, person: &str, passphrase: &str) -> Result<DbKey, ApiError> {
    match lock_state(dir) {
        LockState::Locked => Ok(keys::unlock(dir, None, passphrase)?.0),
        LockState::New => Ok(keys::create(dir, person, passphrase)?),
    }
}
