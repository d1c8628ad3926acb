//! The command line's operations with the street office's relay, on the same code as the app's
//! background loop: sync once, stay connected (`linli_sync::live::stay`, the one live loop),
//! compact, and the drops staff ask for. They hold the device's store handle while the
//! network answers: the command line makes one call at a time (the app's own sync runs on a
//! handle of its own, `background`).

use std::time::Instant;

use linli_store::Store;
use linli_sync::live::LiveEvent;
use linli_sync::relay_client::{CompactReport, SyncReport};

use crate::{Api, ApiError};

impl Api {
    /// The relay to use: `given`, or the one this store knows (from its invitation or its
    /// last sync).
    pub fn relay_url(&self, given: Option<&str>) -> Result<String, ApiError> {
        match given {
            Some(url) => Ok(url.trim().to_string()),
            None => self.store().default_relay()?.ok_or_else(|| {
                ApiError::invalid(
                    "relay",
                    "no relay known for this store: give --relay http://HOST:PORT",
                )
            }),
        }
    }

    /// Syncs once with the relay at `url`: push, then pull.
    pub fn sync_relay(&self, url: &str) -> Result<SyncReport, ApiError> {
        let mut guard = self.store();
        let store: &mut Store = &mut guard;
        crate::rt::on_own_runtime(|rt| Ok(rt.block_on(linli_sync::relay_client::sync(store, url))?))
    }

    /// Stays connected to the relay at `url` until `until` (for good without one), or until
    /// Ctrl-C or SIGTERM: merges what arrives, sends what is written here (by this process or
    /// another), reporting each exchange to `on_event`. Checkpoints run in the background
    /// meanwhile, as in the app.
    pub fn watch_relay(
        &self,
        url: &str,
        until: Option<Instant>,
        on_event: impl FnMut(LiveEvent<'_>) + Send,
    ) -> Result<(), ApiError> {
        self.checkpoint_in_background()?;
        let mut guard = self.store();
        let store: &mut Store = &mut guard;
        crate::rt::on_own_runtime(|rt| {
            rt.block_on(linli_sync::live::stay(
                store,
                url,
                until,
                stop_signal(),
                on_event,
            ))?;
            Ok(())
        })
    }

    /// Replaces, on the relay at `url`, each document's changes by one sealed snapshot (after a
    /// sync).
    pub fn compact_relay(&self, url: &str) -> Result<CompactReport, ApiError> {
        let mut guard = self.store();
        let store: &mut Store = &mut guard;
        crate::rt::on_own_runtime(|rt| {
            Ok(rt.block_on(linli_sync::relay_client::compact(store, url))?)
        })
    }

    /// Has the relay at `url` drop blobs by number (committee staff only).
    pub fn drop_blobs(&self, url: &str, seqs: &[u64]) -> Result<Vec<u64>, ApiError> {
        let mut guard = self.store();
        let store: &mut Store = &mut guard;
        crate::rt::on_own_runtime(|rt| {
            Ok(rt.block_on(linli_sync::relay_client::drop_blobs(store, url, seqs))?)
        })
    }

    /// Has the relay at `url` drop the blobs this device set aside from it (committee staff
    /// only), then forgets them; how many the relay dropped.
    pub fn drop_set_aside_at(&self, url: &str) -> Result<usize, ApiError> {
        let mut guard = self.store();
        let store: &mut Store = &mut guard;
        crate::rt::on_own_runtime(|rt| {
            Ok(rt.block_on(linli_sync::relay_client::drop_set_aside(store, url))?)
        })
    }
}

/// Completes on Ctrl-C, or SIGTERM where there is one.
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
