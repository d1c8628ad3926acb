//! 解锁 Unlocking a device's store: its key comes from the key file next to it, unwrapped with
//! a person's passphrase (see `linli_store::keys`). A new store, or a plain one made by an
//! older Linli (encrypted in place when it is opened), gets a new random key, wrapped for the
//! person who sets the passphrase.

use std::path::Path;

use linli_store::DbKey;
use linli_store::keys;

use crate::ApiError;

/// Minutes without use after which the app locks, unless staff set otherwise.
pub const LOCK_MINUTES: u32 = 5;

impl crate::Api {
    /// Minutes without use after which the app locks.
    pub fn lock_minutes(&self) -> Result<u32, ApiError> {
        Ok(self.store().lock_minutes()?.unwrap_or(LOCK_MINUTES))
    }

    /// Lets another person use this device (a shared office PC) with their own passphrase,
    /// or sets a new passphrase for one (committee staff, signed in).
    pub fn enrol_person(&self, person: &str, passphrase: &str) -> Result<(), ApiError> {
        let person = crate::required("person", person)?;
        {
            let store = self.store();
            if !self.role(&store)?.may_manage {
                return Err(ApiError::Forbidden(
                    "only committee staff may add the people who use this device".into(),
                ));
            }
        }
        if !keys::exists(&self.dir) {
            return Err(ApiError::invalid(
                "person",
                "this store has no key file (it was opened with a raw key)",
            ));
        }
        if keys::people(&self.dir)?.iter().any(|p| p == person) {
            return Err(ApiError::invalid(
                "person",
                "already uses this device (each person changes their own passphrase)",
            ));
        }
        keys::enrol(&self.dir, &self.key, person, passphrase)?;
        self.log("enrol", person, "")?;
        tracing::info!("a person was enrolled on this device");
        Ok(())
    }

    /// Sets the minutes without use after which the app locks (committee staff; 1 to 60).
    pub fn set_lock_minutes(&self, minutes: u32) -> Result<(), ApiError> {
        let store = self.store();
        if !self.role(&store)?.may_manage {
            return Err(ApiError::Forbidden(
                "only committee staff may set when the app locks".into(),
            ));
        }
        if !(1..=60).contains(&minutes) {
            return Err(ApiError::invalid("minutes", "must be from 1 to 60"));
        }
        Ok(store.set_lock_minutes(minutes)?)
    }
}

/// What opening the store in a directory needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, specta::Type)]
#[serde(rename_all = "snake_case")]
pub enum LockState {
    /// No store, or a plain one of an older Linli: a person chooses a passphrase (at least
    /// [`keys::MIN_PASSPHRASE`] characters).
    New,
    /// An encrypted store: a person who may use it enters their passphrase.
    Locked,
    /// An encrypted store whose key file is missing: it cannot be opened until `store.key`
    /// is restored (a new passphrase would make a key that does not open it).
    KeyMissing,
}

/// Whether the store in `dir` is new (a passphrase to choose) or locked (one to enter).
pub fn lock_state(dir: &Path) -> LockState {
    if keys::exists(dir) {
        LockState::Locked
    } else if keys::key_missing(dir).unwrap_or(true) {
        LockState::KeyMissing
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

/// The key of the store in `dir` and the person it was unlocked for: unwrapped with
/// `person`'s passphrase (or, `person` not known here, whoever's it is), or — a new or plain
/// store — a new key, wrapped for `person` with `passphrase`.
pub fn unlock(dir: &Path, person: &str, passphrase: &str) -> Result<(DbKey, String), ApiError> {
    match lock_state(dir) {
        LockState::Locked => {
            let known = keys::people(dir)?.iter().any(|p| p == person);
            Ok(keys::unlock(dir, known.then_some(person), passphrase)?)
        }
        LockState::New | LockState::KeyMissing => {
            Ok((keys::create(dir, person, passphrase)?, person.to_string()))
        }
    }
}
