//! Writes announce themselves: every commit on a store's connection calls the listeners of
//! that database file in this process ([`Store::on_commit`]), so that a live sync session
//! sends a change the moment it is made and an idle device reads nothing at all (it used to
//! look at the change feed every few milliseconds, keeping a tablet's processor awake).
//!
//! The announcement comes from SQLite's write-ahead log hook, which runs after a transaction
//! is in the log: a listener that reads the feed then sees the write. The hook replaces
//! SQLite's automatic checkpoint (which is itself a log hook), so it also runs a passive
//! checkpoint once the log passes the connection's threshold (SQLite's 1,000 pages, or
//! [`crate::checkpoint::BACKSTOP_PAGES`] once checkpoints run in the background).
//!
//! Writes of another process (the command line while the app runs) are not announced here:
//! a session that must see them also looks at the feed now and then (see `linli_sync::live`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use rusqlite::Connection;

use crate::{Store, StoreError};

/// SQLite's own automatic checkpoint threshold, in pages.
pub(crate) const DEFAULT_CHECKPOINT_PAGES: i64 = 1000;

type Listener = dyn Fn() + Send + Sync;

/// The listeners of each database file (by canonical path) in this process.
fn listeners() -> &'static Mutex<HashMap<PathBuf, Vec<Weak<Listener>>>> {
    static LISTENERS: OnceLock<Mutex<HashMap<PathBuf, Vec<Weak<Listener>>>>> = OnceLock::new();
    LISTENERS.get_or_init(Mutex::default)
}

/// Keeps a listener registered with [`Store::on_commit`]; dropping it unregisters it.
#[must_use = "the listener is unregistered when this is dropped"]
pub struct Subscription {
    _listener: Arc<Listener>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Subscription")
    }
}

/// Calls the listeners of the database file at `path`.
fn announce(path: &Path) {
    let live: Vec<Arc<Listener>> = {
        let mut map = listeners().lock().unwrap_or_else(|e| e.into_inner());
        let Some(list) = map.get_mut(path) else {
            return;
        };
        list.retain(|l| l.strong_count() > 0);
        list.iter().filter_map(Weak::upgrade).collect()
    };
    for l in live {
        l();
    }
}

/// The checkpoint threshold of every connection of this process to the database file `key`
/// (shared, so that a process whose checkpoints run in the background raises it for its sync
/// handles too).
pub(crate) fn threshold(key: &Path) -> Arc<AtomicI64> {
    static THRESHOLDS: OnceLock<Mutex<HashMap<PathBuf, Arc<AtomicI64>>>> = OnceLock::new();
    THRESHOLDS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key.to_path_buf())
        .or_insert_with(|| Arc::new(AtomicI64::new(DEFAULT_CHECKPOINT_PAGES)))
        .clone()
}

/// The key a database file's listeners are kept under: its canonical path (two handles may
/// name the same directory differently).
pub(crate) fn key(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Installs the hook on `conn`, the connection of the store whose file is `key`: announces
/// each commit, and checkpoints past `threshold` pages of log.
pub(crate) fn install(
    conn: &mut Connection,
    key: PathBuf,
    threshold: Arc<AtomicI64>,
) -> Result<(), StoreError> {
    conn.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages: i32| {
        announce(&key);
        if i64::from(pages) >= threshold.load(Ordering::Relaxed) {
            // Passive, as SQLite's own: copies what no reader still needs, never waits.
            if let Err(e) = wal.checkpoint() {
                tracing::debug!(error = %e, "checkpoint skipped");
            }
        }
        Ok(())
    }))?;
    Ok(())
}

impl Store {
    /// Calls `listener` after every commit on this database file by any store handle of this
    /// process (on the committing thread: keep it short, e.g. wake a task), until the returned
    /// [`Subscription`] is dropped.
    pub fn on_commit(&self, listener: impl Fn() + Send + Sync + 'static) -> Subscription {
        let listener: Arc<Listener> = Arc::new(listener);
        listeners()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(self.key.clone())
            .or_default()
            .push(Arc::downgrade(&listener));
        Subscription {
            _listener: listener,
        }
    }
}
