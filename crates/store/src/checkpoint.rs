//! Checkpoints in the background: writing SQLite's write-ahead log back into the database file
//! on a thread of its own, a moment after writes, instead of inside whichever write crosses
//! SQLite's threshold (1,000 pages by default).
//!
//! With `synchronous = NORMAL` a commit reaches the log but is made durable against a power
//! cut only by the next checkpoint, and the write that triggers an automatic checkpoint pays
//! for it (copying the pages and an fsync: on a tablet's flash, a visible stall of an edit, or
//! of a sync's merge). A long-running process (the app, `linli sync --watch`, `linli p2p
//! serve`) starts a [`Checkpointer`]: its own connection runs a passive checkpoint a period
//! after a commit (none while nothing is written: an idle tablet sleeps), which copies what it
//! can without waiting for readers or writers, so commits are on disk within a period even
//! under light editing and no edit waits for one. The store's own
//! connection keeps an automatic checkpoint far higher ([`BACKSTOP_PAGES`]) as a bound on the
//! log should the thread fall behind. The same thread prunes the change feed when it is due
//! (see [`crate::feed`]), without waiting for a lock another connection holds.

use std::time::Duration;

pub use linli_sqlite::BACKSTOP_PAGES;

use crate::{Store, StoreError, Subscription};

/// Checkpoints of a store on a thread of their own, until dropped (a last one then; the
/// process's handles of the file then checkpoint inline again, past SQLite's own threshold).
#[derive(Debug)]
pub struct Checkpointer {
    // Dropped first: no commit is announced to a thread that is gone.
    _subscription: Subscription,
    _thread: linli_sqlite::Checkpointer,
    pages: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.pages.store(
            crate::changes::DEFAULT_CHECKPOINT_PAGES,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

impl Store {
    /// Moves this store's checkpoints to a background thread that runs one `every` after a
    /// commit on this database file in this process (none while nothing is written), and
    /// prunes the change feed when it is due, never waiting for a lock; checkpoints run inline
    /// again only past [`BACKSTOP_PAGES`], on every handle of the file in this process. Keep
    /// the returned handle as long as the store.
    pub fn checkpoint_in_background(&self, every: Duration) -> Result<Checkpointer, StoreError> {
        // Not the `wal_autocheckpoint` pragma: it would replace the hook that announces
        // commits (see `crate::changes`), which checkpoints past this threshold instead.
        self.checkpoint_pages
            .store(BACKSTOP_PAGES, std::sync::atomic::Ordering::Relaxed);
        let (thread, nudge) = linli_sqlite::Checkpointer::on_commits(
            self.path(),
            Some(&self.cipher),
            "linli-checkpoint",
            every,
            |conn| match crate::feed::prune_if_due(conn) {
                Ok(Some(n)) => tracing::debug!(rows = n, "pruned the change feed"),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "pruning the change feed failed"),
            },
        )
        .map_err(|source| StoreError::Io {
            path: self.path().to_path_buf(),
            source,
        })?;
        // Once a period after the start too: what an earlier process left in the log (or a
        // prune another process made due) is not left until this one writes.
        nudge.committed();
        let subscription = self.on_commit(move || nudge.committed());
        Ok(Checkpointer {
            _subscription: subscription,
            _thread: thread,
            pages: self.checkpoint_pages.clone(),
        })
    }
}
