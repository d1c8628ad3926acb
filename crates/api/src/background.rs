//! Sync in the background: one attempt at a time with the street office's relay, retried
//! with exponential backoff while it fails, repeated periodically while it works, and at once
//! on "sync now". Between attempts, while the relay answers, the loop stays connected: a long
//! poll brings other devices' changes the moment the relay stores them, and a change made here
//! is sent within a fraction of a second. The status the app always shows (offline / syncing /
//! synced N minutes ago / N changes waiting) is [`SyncStatus`].
//!
//! A sync runs on its own handle of the store (SQLite in WAL mode serializes the writes), so
//! the screens never wait for the network.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::thread::JoinHandle;
use std::time::Duration;

use linli_store::Store;
use linli_sync::relay_client::RelayClient;
use serde::Serialize;

use crate::{Api, ApiError};

/// Where syncing stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, specta::Type)]
#[serde(rename_all = "snake_case")]
pub enum SyncPhase {
    /// No relay is set: the device works alone (peers can still sync directly).
    NoRelay,
    /// Not tried yet since the app started.
    Idle,
    /// A sync is running.
    Syncing,
    /// The last attempt succeeded.
    Synced,
    /// The relay could not be reached; retrying with backoff.
    Offline,
    /// The relay refused (e.g. this device was revoked) or answered wrongly; retrying.
    Failed,
}

/// What the app shows about syncing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
pub struct SyncStatus {
    /// Where syncing stands.
    pub phase: SyncPhase,
    /// The relay's address.
    pub relay: Option<String>,
    /// When the last sync with the relay completed (ms).
    pub last_synced_ms: Option<i64>,
    /// Documents changed here and not yet at the relay.
    pub pending: usize,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Attempts that failed in a row.
    pub failures: u32,
    /// When the next attempt is due (ms).
    pub next_attempt_ms: Option<i64>,
    /// Documents the last sync brought in (new or changed).
    pub last_received: usize,
    /// Documents the last sync sent.
    pub last_sent: usize,
    /// Connected: a live session is held open on the relay, so changes arrive and leave as
    /// they are made.
    pub live: bool,
    /// Blobs received that could not be read and were set aside (sync went on without them;
    /// committee staff can have the relay drop them, see [`Api::drop_set_aside`]).
    pub set_aside: usize,
    /// The order in which statuses were taken: one with a larger number was read later. A
    /// status reaches the screens both as a command's answer and as an event, and these may
    /// arrive out of order: the screens keep the one with the largest number, so that an
    /// answer read before a change never covers the event that reported it.
    pub rev: u64,
}

/// How long to wait between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// After a success.
    pub period: Duration,
    /// After the first failure; doubled with each further failure.
    pub base: Duration,
    /// The longest wait after failures.
    pub max: Duration,
    /// How often a staff device compacts the relay (uploads every document whole so that the
    /// relay can drop the changes they hold; new devices then download each document once).
    pub compact_every: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            period: Duration::from_secs(60),
            base: Duration::from_secs(5),
            max: Duration::from_secs(300),
            compact_every: Duration::from_secs(24 * 3600),
        }
    }
}

impl Backoff {
    /// The wait after `failures` failures in a row (0: the periodic wait).
    pub fn delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return self.period;
        }
        let factor = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }
}

pub(crate) fn initial_status(store: &Store) -> Result<SyncStatus, ApiError> {
    let relay = if store.community_id()?.is_some() {
        store.default_relay()?
    } else {
        None
    };
    Ok(SyncStatus {
        phase: if relay.is_some() {
            SyncPhase::Idle
        } else {
            SyncPhase::NoRelay
        },
        relay,
        last_synced_ms: None,
        pending: 0,
        last_error: None,
        failures: 0,
        next_attempt_ms: None,
        last_received: 0,
        last_sent: 0,
        live: false,
        set_aside: 0,
        rev: 0,
    })
}

impl Api {
    /// The peer name the relay's sync state is kept under.
    pub(crate) fn relay_peer(&self, store: &Store) -> Result<Option<String>, ApiError> {
        if store.community_id()?.is_none() {
            return Ok(None);
        }
        Ok(match store.default_relay()? {
            Some(url) => Some(RelayClient::new(&url)?.peer()),
            None => None,
        })
    }

    /// The sync status, with the counts read now.
    pub fn sync_status(&self) -> Result<SyncStatus, ApiError> {
        // Numbered before anything is read: a status numbered later reads a later state.
        let rev = self.next_rev();
        let (relay, pending, last, set_aside) = {
            let store = self.store();
            let relay = if store.community_id()?.is_some() {
                store.default_relay()?
            } else {
                None
            };
            let set_aside = store.set_aside_count()?;
            match self.relay_peer(&store)? {
                Some(peer) => (
                    relay,
                    store.pending(&peer, 0)?.1,
                    store.peer_synced_ms(&peer)?,
                    set_aside,
                ),
                None => (relay, 0, None, set_aside),
            }
        };
        let mut s = self.sync_lock();
        if relay.is_none() {
            s.phase = SyncPhase::NoRelay;
        } else if s.phase == SyncPhase::NoRelay {
            s.phase = SyncPhase::Idle;
        }
        s.relay = relay;
        s.pending = pending;
        s.set_aside = set_aside;
        s.last_synced_ms = last.or(s.last_synced_ms);
        Ok(SyncStatus { rev, ..s.clone() })
    }

    /// The sync status as [`Api::sync_status`] reads it, or the failure to read it recorded.
    fn current_status(&self) -> SyncStatus {
        self.sync_status()
            .unwrap_or_else(|e| self.record_failure(&e))
    }

    fn next_rev(&self) -> u64 {
        self.sync_rev
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1
    }

    /// Sets the street office's relay (`http://host:port`, or `https://host:port#sha256=PIN`
    /// for a relay serving TLS); the next sync uses it.
    pub fn set_relay(&self, url: &str) -> Result<SyncStatus, ApiError> {
        let url = url.trim().trim_end_matches('/');
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .unwrap_or_default();
        if rest.is_empty() || rest.contains(char::is_whitespace) {
            return Err(ApiError::invalid(
                "url",
                "the relay's address looks like http://HOST:PORT, or https://HOST:PORT#sha256=PIN \
                 for a relay serving TLS (the line linli-relay prints)",
            ));
        }
        if let Err(e) = RelayClient::new(url) {
            return Err(ApiError::invalid("url", e.to_string()));
        }
        self.store().set_relay(url)?;
        self.sync_status()
    }

    /// One sync with the relay, now. Failures are recorded in the status (and returned as
    /// its `last_error`), not raised: the caller retries.
    pub fn sync_once(&self) -> SyncStatus {
        let relay = match self.sync_status() {
            Ok(s) => s.relay,
            Err(e) => return self.record_failure(&e),
        };
        let Some(relay) = relay else {
            return self.current_status();
        };
        self.sync_lock().phase = SyncPhase::Syncing;
        let result = (|| -> Result<_, ApiError> {
            // Its own handle: the screens keep reading and writing meanwhile.
            let mut store = Store::open(&self.dir, &self.key)?;
            crate::rt::on_own_runtime(|rt| {
                Ok(rt.block_on(linli_sync::relay_client::sync(&mut store, &relay))?)
            })
        })();
        match result {
            Ok(report) => {
                tracing::info!(sent = report.sent, received = report.created + report.changed,
                    ms = %report.ms, "synced with the relay");
                {
                    let mut s = self.sync_lock();
                    s.phase = SyncPhase::Synced;
                    s.failures = 0;
                    s.last_error = None;
                    s.last_synced_ms = Some(self.now().0);
                    s.last_received = report.created + report.changed;
                    s.last_sent = report.sent;
                }
                self.current_status()
            }
            Err(e) => self.record_failure(&e),
        }
    }

    /// Compacts the relay if this is a staff device (it may write every scope) and the last
    /// compaction is older than `every`. A failure is logged, not raised: the relay works
    /// without it, and the next period tries again.
    pub fn compact_relay_if_due(&self, every: Duration) {
        let Ok(Some(relay)) = self.sync_status().map(|s| s.relay) else {
            return;
        };
        let relay = relay.as_str();
        let due = (|| -> Result<bool, ApiError> {
            let store = self.store();
            if !self.role(&store)?.may_manage {
                return Ok(false);
            }
            // The clock starts at the device's first sync: a new device does not upload
            // everything it has just downloaded.
            let Some(last) = store.compacted_ms()? else {
                store.set_compacted_ms(self.now().0)?;
                return Ok(false);
            };
            let every = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
            Ok(self.now().0.saturating_sub(last) >= every)
        })();
        if !due.unwrap_or(false) {
            return;
        }
        let result = (|| -> Result<_, ApiError> {
            let mut store = Store::open(&self.dir, &self.key)?;
            let r = crate::rt::on_own_runtime(|rt| {
                Ok(rt.block_on(linli_sync::relay_client::compact(&mut store, relay))?)
            })?;
            store.set_compacted_ms(self.now().0)?;
            Ok(r)
        })();
        match result {
            Ok(r) => tracing::info!(docs = r.docs, blobs = r.blobs, covers = r.covers, ms = %r.ms,
                "compacted the relay"),
            Err(e) => tracing::warn!(error = %e, "compacting the relay failed"),
        }
    }

    /// What this device received and could not read (set aside so that sync goes on),
    /// newest first.
    pub fn set_aside(&self) -> Result<Vec<crate::SetAside>, ApiError> {
        Ok(self
            .store()
            .set_aside()?
            .into_iter()
            .map(crate::SetAside::from)
            .collect())
    }

    /// Committee staff only: has the relay drop the blobs this device set aside (nobody can
    /// read them, and they cost every new device a download), then forgets them here.
    /// Returns how many the relay dropped.
    pub fn drop_set_aside(&self) -> Result<usize, ApiError> {
        {
            let store = self.store();
            if !self.role(&store)?.may_manage {
                return Err(ApiError::Forbidden(
                    "only committee staff may have the relay drop data".into(),
                ));
            }
        }
        let relay = self.sync_status()?.relay.ok_or_else(|| {
            ApiError::invalid("relay", "no relay is set: set the relay in Settings first")
        })?;
        let mut store = Store::open(&self.dir, &self.key)?;
        let dropped = crate::rt::on_own_runtime(|rt| {
            Ok(rt.block_on(linli_sync::relay_client::drop_set_aside(&mut store, &relay))?)
        })?;
        tracing::info!(dropped, "the relay dropped blobs set aside here");
        Ok(dropped)
    }

    fn record_failure(&self, e: &ApiError) -> SyncStatus {
        tracing::warn!(error = %e, "sync failed");
        let mut s = self.sync_lock();
        s.phase = if e.code() == crate::ErrorCode::Offline {
            SyncPhase::Offline
        } else {
            SyncPhase::Failed
        };
        s.failures = s.failures.saturating_add(1);
        s.last_error = Some(e.to_string());
        s.last_received = 0;
        s.last_sent = 0;
        s.live = false;
        SyncStatus {
            rev: self.next_rev(),
            ..s.clone()
        }
    }
}

/// What the background loop reports.
#[derive(Debug, Clone)]
pub enum SyncEvent {
    /// The status changed.
    Status(SyncStatus),
    /// Documents arrived: screens showing them should reload.
    Changed {
        /// How many.
        received: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    Now,
    Stop,
}

/// Why the live wait ended.
enum Live {
    /// Time for a full sync (the period passed, a change here).
    Sync,
    /// "Sync now": a full sync, known peers included.
    Now,
    /// The loop should stop.
    Stop,
    /// The relay failed: back to retrying with backoff.
    Failed,
}

impl Api {
    /// Stays connected to the relay until the next full sync is due (a live session, see
    /// `linli_sync::live`): merges what arrives and sends what is written here as it is
    /// written, reporting both; returns early for a wake.
    fn live(
        &self,
        relay: &str,
        period: Duration,
        rx: &mpsc::Receiver<Wake>,
        nudge: &tokio::sync::Notify,
        notify: &impl Fn(SyncEvent),
    ) -> Live {
        use linli_sync::live::{LiveEnd, LiveEvent};
        let until = std::time::Instant::now() + period;
        let woken = Cell::new(None);
        let result = (|| -> Result<Live, ApiError> {
            let mut store = Store::open(&self.dir, &self.key)?;
            // This is the loop's own thread, outside any runtime.
            let rt = crate::rt::runtime()?;
            // Ends the session when a wake arrives ("sync now", a new relay, stop).
            let stop = async {
                loop {
                    match rx.try_recv() {
                        Ok(w) => return woken.set(Some(w)),
                        Err(TryRecvError::Disconnected) => return woken.set(Some(Wake::Stop)),
                        Err(TryRecvError::Empty) => nudge.notified().await,
                    }
                }
            };
            let ended = rt.block_on(linli_sync::live::stay(
                &mut store,
                relay,
                Some(until),
                stop,
                |event| {
                    let (received, sent) = match event {
                        LiveEvent::Received(r) => (r.created + r.changed, 0),
                        LiveEvent::Sent(r) => (0, r.sent),
                    };
                    tracing::info!(received, sent, "live sync with the relay");
                    {
                        let mut s = self.sync_lock();
                        s.last_synced_ms = Some(self.now().0);
                        s.last_received = received;
                        s.last_sent = sent;
                    }
                    if received > 0 {
                        notify(SyncEvent::Changed { received });
                    }
                    if let Ok(status) = self.sync_status() {
                        notify(SyncEvent::Status(status));
                    }
                },
            ))?;
            Ok(match (ended, woken.get()) {
                (LiveEnd::Over, _) | (LiveEnd::Stopped, None) => Live::Sync,
                (LiveEnd::Stopped, Some(Wake::Stop)) => Live::Stop,
                (LiveEnd::Stopped, Some(Wake::Now)) => Live::Now,
            })
        })();
        match result {
            Ok(live) => live,
            Err(e) => {
                let status = self.record_failure(&e);
                notify(SyncEvent::Status(status));
                Live::Failed
            }
        }
    }
}

/// Wakes the background loop: a message, and a nudge for a live session, which waits on the
/// network and its timers, not on the channel.
#[derive(Debug, Clone)]
pub(crate) struct Waker {
    tx: mpsc::Sender<Wake>,
    nudge: Arc<tokio::sync::Notify>,
}

impl Waker {
    /// Sends `wake` to the loop.
    pub(crate) fn send(&self, wake: Wake) -> Result<(), mpsc::SendError<Wake>> {
        let sent = self.tx.send(wake);
        self.nudge.notify_one();
        sent
    }
}

/// The background sync loop (a thread); dropping the handle stops it.
#[derive(Debug)]
pub struct SyncHandle {
    tx: Waker,
    thread: Option<JoinHandle<()>>,
}

impl SyncHandle {
    /// Starts the loop: a sync at once, then after each attempt the wait `backoff` gives,
    /// or sooner on [`SyncHandle::sync_now`].
    pub fn spawn(
        api: Arc<Api>,
        backoff: Backoff,
        notify: impl Fn(SyncEvent) + Send + 'static,
    ) -> SyncHandle {
        let (tx, rx) = mpsc::channel();
        let waker = Waker {
            tx,
            nudge: Arc::new(tokio::sync::Notify::new()),
        };
        *api.waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(waker.clone());
        let tx = waker.clone();
        let thread = std::thread::Builder::new()
            .name("linli-sync".into())
            .spawn(move || {
                // Known peers are tried once a period, and at once on "sync now".
                let mut peers_due = true;
                let mut peers_tried = std::time::Instant::now();
                loop {
                    let mut status = api.current_status();
                    if status.relay.is_some() {
                        api.sync_lock().phase = SyncPhase::Syncing;
                        notify(SyncEvent::Status(api.current_status()));
                        status = api.sync_once();
                        if status.last_received > 0 {
                            notify(SyncEvent::Changed {
                                received: status.last_received,
                            });
                        }
                    }
                    // Then the devices synced with directly before, if they answer (after the
                    // relay: a peer that is elsewhere takes a few seconds to give up on).
                    if peers_due || peers_tried.elapsed() >= backoff.period {
                        peers_due = false;
                        peers_tried = std::time::Instant::now();
                        match api.sync_known_peers() {
                            Ok(0) => {}
                            Ok(received) => notify(SyncEvent::Changed { received }),
                            Err(e) => tracing::warn!(error = %e, "syncing with known peers failed"),
                        }
                    }
                    // Connected: now and then compact the relay, then stay connected until
                    // the next full sync is due.
                    if let (Some(relay), 0) = (&status.relay, status.failures) {
                        api.compact_relay_if_due(backoff.compact_every);
                        let next = api.now().0 + backoff.period.as_millis() as i64;
                        {
                            let mut s = api.sync_lock();
                            s.next_attempt_ms = Some(next);
                            s.live = true;
                        }
                        notify(SyncEvent::Status(api.current_status()));
                        let ended = api.live(relay, backoff.period, &rx, &waker.nudge, &notify);
                        api.sync_lock().live = false;
                        match ended {
                            Live::Sync => continue,
                            Live::Now => {
                                peers_due = true;
                                continue;
                            }
                            Live::Stop => break,
                            Live::Failed => status = api.current_status(),
                        }
                    }
                    // Without a relay, wait for "sync now" (a relay may have been set), or the
                    // next round of known peers.
                    let wait = if status.relay.is_none() {
                        if api.known_peers().is_ok_and(|p| !p.is_empty())
                            || !api.nearby_peers().is_empty()
                        {
                            backoff.period
                        } else {
                            Duration::from_secs(3600)
                        }
                    } else {
                        backoff.delay(status.failures)
                    };
                    let next = api.now().0 + wait.as_millis() as i64;
                    api.sync_lock().next_attempt_ms = status.relay.is_some().then_some(next);
                    notify(SyncEvent::Status(api.current_status()));
                    match rx.recv_timeout(wait) {
                        Ok(Wake::Now) => peers_due = true,
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                *api.waker.lock().unwrap_or_else(|p| p.into_inner()) = None;
            });
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the sync thread");
                None
            }
        };
        SyncHandle { tx, thread }
    }

    /// Syncs now instead of waiting.
    pub fn sync_now(&self) {
        let _ = self.tx.send(Wake::Now);
    }
}

impl Drop for SyncHandle {
    fn drop(&mut self) {
        let _ = self.tx.send(Wake::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_maximum() {
        let b = Backoff::default();
        assert_eq!(b.delay(0), Duration::from_secs(60));
        assert_eq!(b.delay(1), Duration::from_secs(5));
        assert_eq!(b.delay(2), Duration::from_secs(10));
        assert_eq!(b.delay(4), Duration::from_secs(40));
        assert_eq!(b.delay(7), Duration::from_secs(300));
        assert_eq!(b.delay(64), Duration::from_secs(300));
    }
}
