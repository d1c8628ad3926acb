//! Checkpoints in the background: writing SQLite's write-ahead log back into the database file
//! on a thread of its own, a moment after writes, instead of inside whichever write crosses
//! SQLite's threshold (1,000 pages by default).
//!
//! With `synchronous = NORMAL` a commit reaches the log but is made durable against a power
//! cut only by the next checkpoint, and the write that triggers an automatic checkpoint pays
//! for it (copying the pages and an fsync: on a tablet's flash, a visible stall of an edit, or
//! of a sync's merge). A long-running process (the app, `linli sync --watch`, `linli p2p
//! serve`) starts a [`Checkpointer`]: its own connection runs a passive checkpoint every
//! period, which copies what it can without waiting for readers or writers, so commits are on
//! disk within a period even under light editing and no edit waits for one. The store's own
//! connection keeps an automatic checkpoint far higher ([`BACKSTOP_PAGES`]) as a bound on the
//! log should the thread fall behind. The same thread prunes the change feed when it is due
//! (see [`crate::feed`]), without waiting for a lock another connection holds.

use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;

use crate::{Store, StoreError};

/// The automatic checkpoint left on a store whose checkpoints run in the background: 8,192
/// pages (32 MB of log).
pub const BACKSTOP_PAGES: i64 = 8192;

/// A thread that checkpoints a store's log every period, until dropped.
#[derive(Debug)]
pub struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Store {
    /// Moves this store's checkpoints to a background thread that runs one every `every`;
    /// checkpoints run inline again only past [`BACKSTOP_PAGES`]. Keep the returned handle as
    /// long as the store: dropping it stops the thread after a last checkpoint.
    pub fn checkpoint_in_background(&self, every: Duration) -> Result<Checkpointer, StoreError> {
        let conn = Connection::open(self.path())?;
        // A prune never waits behind another writer: it is tried again next period.
        conn.busy_timeout(Duration::ZERO)?;
        self.conn()
            .pragma_update(None, "wal_autocheckpoint", BACKSTOP_PAGES)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("linli-checkpoint".into())
            .spawn(move || {
                loop {
                    let last = !matches!(
                        stopped.recv_timeout(every),
                        Err(mpsc::RecvTimeoutError::Timeout)
                    );
                    passive(&conn);
                    match crate::feed::prune_if_due(&conn) {
                        Ok(Some(n)) => tracing::debug!(rows = n, "pruned the change feed"),
                        Ok(None) => {}
                        Err(e) => tracing::warn!(error = %e, "pruning the change feed failed"),
                    }
                    if last {
                        break;
                    }
                }
            })
            .map_err(|source| StoreError::Io {
                path: self.path().to_path_buf(),
                source,
            })?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// One passive checkpoint: copies the log's frames no reader still needs; never waits.
fn passive(conn: &Connection) {
    match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    }) {
        Ok((log, copied)) => tracing::trace!(log, copied, "checkpoint"),
        // Another checkpoint under way, or a write holding a lock: the next period tries again.
        Err(e) => tracing::debug!(error = %e, "checkpoint skipped"),
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
