//! The street office's relay: a thin, blind store-and-forward server for Linli devices.
//!
//! [`Relay`] keeps, in one SQLite file, the sealed blobs devices upload, each with the scope
//! and the document ids it covers and a sequence number it assigns, and hands each member the
//! blobs of its scopes above a cursor. It checks every request's signature and the sender's
//! membership chain against the community's root key, which it learns on first contact from
//! the device that created the community.
//!
//! Architecture invariant: the relay depends on `linli-wire` only. It never opens a sealed
//! bundle and holds no key that could: it cannot read a resident's name or ID number.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use linli_wire::relay::{
    Blob, BlobKind, Body, Frames, KEEPALIVE_MS, MAX_FOLLOW_MS, MAX_WATCH_MS, NewBlob, PATH, Reply,
    Response, STREAM_PATH, Signed, frame,
};
use linli_wire::{Grant, Membership, PublicKey, short};
use rusqlite::{Connection, OptionalExtension, params};

use crate::traffic::{CountingListener, Traffic};

pub mod tls;
mod traffic;

/// The database file inside the relay's data directory.
pub const DB_FILE: &str = "relay.sqlite";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS communities (
    id TEXT PRIMARY KEY, root BLOB NOT NULL, created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    key BLOB PRIMARY KEY, community TEXT NOT NULL, role TEXT NOT NULL, grids TEXT NOT NULL,
    label TEXT NOT NULL, counter INTEGER NOT NULL, seen_ms INTEGER NOT NULL,
    pulled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS blobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, community TEXT NOT NULL, scope TEXT NOT NULL,
    kind INTEGER NOT NULL, sender BLOB NOT NULL, sealed BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS blobs_community ON blobs (community, seq);
CREATE TABLE IF NOT EXISTS blob_docs (
    community TEXT NOT NULL, doc TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (community, doc, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blob_docs_seq ON blob_docs (seq);
";

/// Why the relay refused a request. The text goes back to the device as the reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The request does not decode or its signature does not verify.
    #[error("{0}")]
    BadRequest(String),
    /// The sender is not a member, or asks for what its role does not allow.
    #[error("{0}")]
    Forbidden(String),
    /// The request is not newer than the last one from the device (a replay).
    #[error("{0}")]
    Replayed(String),
    /// The relay's own storage failed.
    #[error("relay storage: {0}")]
    Storage(#[from] rusqlite::Error),
    /// A task of the relay failed.
    #[error("{0}")]
    Internal(String),
    /// The data directory cannot be used.
    #[error("{path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The relay's certificate cannot be made or used.
    #[error("TLS: {0}")]
    Tls(String),
}

impl RelayError {
    fn status(&self) -> StatusCode {
        match self {
            RelayError::BadRequest(_) => StatusCode::BAD_REQUEST,
            RelayError::Forbidden(_) => StatusCode::FORBIDDEN,
            RelayError::Replayed(_) => StatusCode::CONFLICT,
            RelayError::Storage(_)
            | RelayError::Io { .. }
            | RelayError::Internal(_)
            | RelayError::Tls(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Settings of a relay.
#[derive(Debug, Clone)]
pub struct Config {
    /// Accept a new community from the device that created it (its root key) on first contact.
    pub first_contact: bool,
}

/// The relay's state: its database.
#[derive(Clone)]
pub struct Relay {
    db: Arc<Mutex<Connection>>,
    /// The database file.
    path: std::path::PathBuf,
    config: Config,
    /// Per community, the sequence number of the last blob stored in each of its scopes: a
    /// held watch pulls again only when a scope it may read moved (a push to one community
    /// or grid makes no other's watches touch the database).
    stored: Arc<Mutex<std::collections::HashMap<String, tokio::sync::watch::Sender<LastStored>>>>,
    /// Set when the relay stops: held watches answer at once.
    closing: Arc<tokio::sync::watch::Sender<bool>>,
}

/// Scope → the last blobs stored in it (see [`Latest`]).
type LastStored = Arc<std::collections::HashMap<String, Latest>>;

/// The last blob stored in a scope, and the last stored by any other sender than that one's:
/// between them, the last blob each device did not send itself (a device's own push does not
/// wake its own held watch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Latest {
    /// The last blob: its sender and sequence number.
    last: (PublicKey, u64),
    /// The last blob from another sender than `last`'s (0: none).
    other: u64,
}

impl Latest {
    /// Records a blob of `sender`.
    fn stored(&mut self, sender: PublicKey, seq: u64) {
        if seq > self.last.1 {
            if sender != self.last.0 {
                self.other = self.last.1;
            }
            self.last = (sender, seq);
        } else if sender != self.last.0 {
            // Two pushes told after their commits, the later one first.
            self.other = self.other.max(seq);
        }
    }

    /// The sequence number of the last blob `device` did not send.
    fn not_from(&self, device: &PublicKey) -> u64 {
        if self.last.0 == *device {
            self.other
        } else {
            self.last.1
        }
    }
}

/// A watch that found nothing yet: what to pull again when blobs arrive.
struct Waiting {
    community: String,
    grant: Grant,
    device: PublicKey,
    since: u64,
    max_bytes: u64,
    wait: std::time::Duration,
    /// A [`Body::Follow`]: held open, answering each time blobs arrive.
    follow: bool,
}

/// The automatic checkpoint left on the relay's connection once checkpoints run in the
/// background: 8,192 pages (32 MB of log), a bound should the thread fall behind.
const BACKSTOP_PAGES: i64 = 8192;

/// A thread that checkpoints the relay's log every period, until dropped (a last one then).
#[derive(Debug)]
pub struct Checkpointer {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Relay {
    /// Moves the relay's checkpoints (writing SQLite's log back into the database file) to a
    /// thread of their own, run every `every`: otherwise the push whose commit crosses
    /// SQLite's threshold (1,000 pages) pays for copying the log and an fsync before the
    /// relay answers it or wakes the devices watching (11 ms of a 12 ms push, measured on
    /// the sync benchmark). A passive checkpoint never waits for readers or writers.
    pub fn checkpoint_in_background(
        &self,
        every: std::time::Duration,
    ) -> Result<Checkpointer, RelayError> {
        let conn = Connection::open(&self.path)?;
        self.db
            .lock()
            .map_err(|_| RelayError::BadRequest("relay busy after an internal failure".into()))?
            .pragma_update(None, "wal_autocheckpoint", BACKSTOP_PAGES)?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("relay-checkpoint".into())
            .spawn(move || {
                loop {
                    let last = !matches!(
                        stopped.recv_timeout(every),
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                    );
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        // A checkpoint under way elsewhere: the next period tries again.
                        tracing::debug!(error = %e, "checkpoint skipped");
                    }
                    if last {
                        break;
                    }
                }
            })
            .map_err(|source| RelayError::Io {
                path: self.path.clone(),
                source,
            })?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Opens (creating if needed) the relay's database in `dir`.
    pub fn open(dir: &Path, config: Config) -> Result<Relay, RelayError> {
        std::fs::create_dir_all(dir).map_err(|source| RelayError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(DB_FILE);
        let conn = Connection::open(&path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // Plans that never depend on bound values: otherwise every cached statement with a
        // `column = ?` filter is parsed and planned again at each use (rusqlite clears a
        // statement's bindings when it takes it back, and SQLite then expires it).
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(SCHEMA)?;
        // Relays made before devices' pulls were tracked: add the column, unknown (NULL) for
        // the devices already there: each one's next pull is taken as its starting point.
        let has_pulled: bool = conn.query_row(
            "SELECT COUNT(*) FROM pragma_table_info('devices') WHERE name = 'pulled'",
            [],
            |r| r.get::<_, i64>(0).map(|n| n > 0),
        )?;
        if !has_pulled {
            conn.execute_batch("ALTER TABLE devices ADD COLUMN pulled INTEGER")?;
        }
        Ok(Relay {
            db: Arc::new(Mutex::new(conn)),
            path,
            config,
            stored: Arc::default(),
            closing: Arc::new(tokio::sync::watch::channel(false).0),
        })
    }

    /// The HTTP routes: `POST /v1`, `POST /v1/stream`, `GET /health` and `GET /traffic` (bytes in and out on
    /// the sockets of the listener asked, since it started: totals only).
    fn router(self, traffic: Arc<Traffic>) -> Router {
        Router::new()
            .route(PATH, post(handle))
            .route(STREAM_PATH, post(handle_stream))
            .route("/health", get(|| async { "linli-relay ok\n" }))
            .route(
                "/traffic",
                get(move || async move {
                    let (i, o) = traffic.totals();
                    format!("{i} {o}\n")
                }),
            )
            .layer(DefaultBodyLimit::max(linli_wire::relay::MAX_REQUEST))
            .with_state(self)
    }

    /// Serves until the listener fails or `shutdown` completes. Each listener counts its own
    /// traffic (so a benchmark can tell one device's bytes from another's by the address it
    /// gives each).
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let traffic = Arc::new(Traffic::default());
        let listener = CountingListener {
            inner: listener,
            traffic: traffic.clone(),
        };
        self.serve_on(listener, traffic, shutdown).await
    }

    /// Serves HTTPS on `listener` with the relay's certificate (see [`tls`]) until `shutdown`.
    pub async fn serve_tls(
        self,
        listener: tokio::net::TcpListener,
        tls: tls::Tls,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let traffic = Arc::new(Traffic::default());
        let listener = tls::TlsListener::new(listener, traffic.clone(), &tls)?;
        self.serve_on(listener, traffic, shutdown).await
    }

    async fn serve_on<L>(
        self,
        listener: L,
        traffic: Arc<Traffic>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()>
    where
        L: axum::serve::Listener,
        L::Addr: std::fmt::Debug,
    {
        let closing = self.closing.clone();
        axum::serve(listener, self.router(traffic))
            .with_graceful_shutdown(async move {
                shutdown.await;
                closing.send_replace(true);
            })
            .await
    }

    /// Handles one encoded, signed request (what `POST /v1` does), answering a
    /// [`Body::Watch`] at once, as a pull.
    pub fn handle_bytes(&self, body: &[u8]) -> Result<Response, RelayError> {
        self.handle_request(body, false)
            .map(|(response, _)| response)
    }

    /// Handles a request; an empty answer to a watch, and every answer to a follow (only
    /// accepted in a stream), comes with what to wait for.
    fn handle_request(
        &self,
        body: &[u8],
        streaming: bool,
    ) -> Result<(Response, Option<Waiting>), RelayError> {
        let signed: Signed = linli_wire::decode("request", body)
            .map_err(|e| RelayError::BadRequest(e.to_string()))?;
        let request = signed
            .open()
            .map_err(|e| RelayError::BadRequest(e.to_string()))?;
        let mut db = self
            .db
            .lock()
            .map_err(|_| RelayError::BadRequest("relay busy after an internal failure".into()))?;
        let follow = matches!(request.body, Body::Follow { .. });
        if follow && !streaming {
            return Err(RelayError::BadRequest(format!(
                "a follow is answered only on {STREAM_PATH}"
            )));
        }
        let tx = db.transaction()?;
        let grant = self.admit(&tx, &request.membership)?;
        let device = request.membership.device();
        let last: Option<i64> = tx
            .query_row(
                "SELECT counter FROM devices WHERE key = ?1",
                [&device[..]],
                |r| r.get(0),
            )
            .optional()?;
        let counter = i64::try_from(request.counter).unwrap_or(i64::MAX);
        if last.is_some_and(|last| counter <= last) {
            return Err(RelayError::Replayed(format!(
                "request {} from device {} is not newer than the last one accepted: refused as a replay",
                request.counter,
                short(&device)
            )));
        }
        tx.execute(
            "INSERT INTO devices (key, community, role, grids, label, counter, seen_ms, pulled)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0)
             ON CONFLICT (key) DO UPDATE SET community = excluded.community, role = excluded.role,
               grids = excluded.grids, label = excluded.label, counter = excluded.counter,
               seen_ms = excluded.seen_ms",
            params![
                &device[..],
                request.membership.community,
                grant.role.code(),
                grant.grids.join(","),
                grant.label,
                counter,
                now_ms()
            ],
        )?;
        let community = &request.membership.community;
        let mut waiting = None;
        let mut pushed_scopes = Vec::new();
        let response = match request.body {
            Body::Push { blobs } => {
                pushed_scopes = blobs.iter().map(|b| b.scope.clone()).collect();
                push(&tx, community, &grant, &device, blobs)?
            }
            Body::Pull { since, max_bytes } => {
                pull(&tx, community, &grant, &device, since, max_bytes)?
            }
            // A watch waits only when nothing is there; a follow always stays.
            Body::Watch {
                since,
                max_bytes,
                wait_ms,
            }
            | Body::Follow {
                since,
                max_bytes,
                wait_ms,
            } => {
                let response = pull(&tx, community, &grant, &device, since, max_bytes)?;
                if let Response::Pulled { blobs, next, .. } = &response
                    && (follow || (blobs.is_empty() && wait_ms > 0))
                {
                    let longest = if follow { MAX_FOLLOW_MS } else { MAX_WATCH_MS };
                    waiting = Some(Waiting {
                        community: community.clone(),
                        grant: grant.clone(),
                        device,
                        since: *next,
                        max_bytes,
                        wait: std::time::Duration::from_millis(wait_ms.min(longest)),
                        follow,
                    });
                }
                response
            }
        };
        tx.commit()?;
        if let Response::Pushed { seqs } = &response
            && !seqs.is_empty()
        {
            self.stored_channel(community).send_modify(|last| {
                let last = Arc::make_mut(last);
                for (scope, seq) in pushed_scopes.into_iter().zip(seqs) {
                    last.entry(scope).or_default().stored(device, *seq);
                }
            });
        }
        Ok((response, waiting))
    }

    /// The channel of a community's last stored sequence numbers, by scope (made on first use).
    fn stored_channel(&self, community: &str) -> tokio::sync::watch::Sender<LastStored> {
        let mut map = self.stored.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(community.to_string())
            .or_insert_with(|| tokio::sync::watch::channel(LastStored::default()).0)
            .clone()
    }

    /// Pulls again for a watch that was admitted moments ago (its request was checked then).
    fn pull_again(&self, w: &Waiting) -> Result<Response, RelayError> {
        let mut db = self
            .db
            .lock()
            .map_err(|_| RelayError::BadRequest("relay busy after an internal failure".into()))?;
        let tx = db.transaction()?;
        let response = pull(&tx, &w.community, &w.grant, &w.device, w.since, w.max_bytes)?;
        tx.commit()?;
        Ok(response)
    }

    /// Answers a request, holding an empty watch until blobs of its scopes are stored or its
    /// wait is over.
    async fn answer(self, body: Bytes, streaming: bool) -> Result<Response, RelayError> {
        let relay = self.clone();
        let (response, waiting) = blocking(move || relay.handle_request(&body, streaming)).await?;
        match waiting {
            Some(w) if !w.follow => self.hold(response, w).await,
            _ => Ok(response),
        }
    }

    /// Holds an empty watch's answer until blobs of its scopes are stored or its wait is over.
    async fn hold(&self, response: Response, mut w: Waiting) -> Result<Response, RelayError> {
        let mut news = self.listen(&w);
        // The answer so far: empty, with the cursor past blobs this device does not get.
        let mut last = response;
        let deadline = tokio::time::Instant::now() + w.wait;
        loop {
            let (again, w2) = self.next_news(w, &mut news, deadline).await?;
            w = w2;
            match again {
                None => return Ok(last),
                Some(Response::Pulled { blobs, next, more }) if blobs.is_empty() => {
                    w.since = next;
                    last = Response::Pulled { blobs, next, more };
                }
                Some(again) => return Ok(again),
            }
        }
    }

    /// Holds a follow open on a stream: a frame each time blobs of its scopes are stored (an
    /// empty one every [`KEEPALIVE_MS`] otherwise), until its wait is over, the relay stops or
    /// the device goes (a frame cannot be sent).
    async fn follow(&self, mut w: Waiting, more: bool, tx: &mut Sender<Bytes>) {
        let mut news = self.listen(&w);
        news.missed |= more;
        let deadline = tokio::time::Instant::now() + w.wait;
        loop {
            let until = deadline
                .min(tokio::time::Instant::now() + std::time::Duration::from_millis(KEEPALIVE_MS));
            let (again, w2) = match self.next_news(w, &mut news, until).await {
                Ok(next) => next,
                Err(e) => {
                    let _ = send_reply(tx, refusal(&e)).await;
                    return;
                }
            };
            w = w2;
            match again {
                None if *news.closing.borrow() || tokio::time::Instant::now() >= deadline => return,
                None => {
                    if tx.send_data(Bytes::from(frame(&[]))).await.is_err() {
                        return;
                    }
                }
                Some(Response::Pulled { blobs, next, more }) => {
                    w.since = next;
                    news.missed |= more;
                    if !blobs.is_empty() {
                        let answer = Reply::Answer(Response::Pulled { blobs, next, more });
                        if send_reply(tx, answer).await.is_err() {
                            return;
                        }
                    }
                }
                Some(other) => {
                    let _ = send_reply(tx, Reply::Answer(other)).await;
                    return;
                }
            }
        }
    }

    /// What a held watch or follow listens to.
    fn listen(&self, w: &Waiting) -> News {
        let mut stored = self.stored_channel(&w.community).subscribe();
        // A push stored between the first look and subscribing has a sequence number past it.
        let missed = News::any_for(&stored.borrow_and_update(), w);
        News {
            closing: self.closing.subscribe(),
            stored,
            missed,
        }
    }

    /// Waits until blobs of `w`'s scopes are stored past its cursor, then pulls them; `None`
    /// when `until` passes first or the relay is stopping.
    async fn next_news(
        &self,
        w: Waiting,
        news: &mut News,
        until: tokio::time::Instant,
    ) -> Result<(Option<Response>, Waiting), RelayError> {
        loop {
            if *news.closing.borrow() {
                return Ok((None, w));
            }
            if !std::mem::take(&mut news.missed) {
                tokio::select! {
                    changed = tokio::time::timeout_at(until, news.stored.changed()) => match changed {
                        Ok(Ok(())) => {}
                        // The wait is over.
                        Ok(Err(_)) | Err(_) => return Ok((None, w)),
                    },
                    // The relay is stopping.
                    _ = news.closing.changed() => return Ok((None, w)),
                }
                // Blobs of other scopes only: nothing to look for.
                if !News::any_for(&news.stored.borrow_and_update(), &w) {
                    continue;
                }
            }
            let relay = self.clone();
            let (again, w) = blocking(move || relay.pull_again(&w).map(|r| (r, w))).await?;
            return Ok((Some(again), w));
        }
    }

    /// Reads a stream's requests as they arrive and answers each in order (see
    /// [`STREAM_PATH`]); stops at the first refused, or holds a follow.
    async fn stream(self, mut body: axum::body::Body, tx: &mut Sender<Bytes>) {
        use http_body_util::BodyExt;
        let mut frames = Frames::default();
        loop {
            let next = match frames.next_frame() {
                Err(e) => Err(RelayError::BadRequest(e.to_string())),
                Ok(Some(bytes)) if bytes.is_empty() => continue,
                Ok(Some(bytes)) => Ok(Bytes::from(bytes)),
                Ok(None) => match body.frame().await {
                    Some(Ok(f)) => {
                        if let Ok(data) = f.into_data() {
                            frames.extend(&data);
                        }
                        continue;
                    }
                    Some(Err(e)) => {
                        tracing::info!(error = %e, "a stream was cut");
                        return;
                    }
                    None if frames.pending() == 0 => return,
                    None => Err(RelayError::BadRequest(format!(
                        "the stream ended inside a request ({} bytes of it arrived): it was not \
                         handled",
                        frames.pending()
                    ))),
                },
            };
            let handled = match next {
                Ok(bytes) => {
                    tracing::debug!(bytes = bytes.len(), "stream frame arrived");
                    let relay = self.clone();
                    match blocking(move || relay.handle_request(&bytes, true)).await {
                        Ok((response, Some(w))) if !w.follow => {
                            self.hold(response, w).await.map(|r| (r, None))
                        }
                        other => other,
                    }
                }
                Err(e) => Err(e),
            };
            match handled {
                Ok((response, follow)) => {
                    let more = matches!(response, Response::Pulled { more: true, .. });
                    if send_reply(tx, Reply::Answer(response)).await.is_err() {
                        return;
                    }
                    if let Some(w) = follow {
                        self.follow(w, more, tx).await;
                        return;
                    }
                }
                Err(e) => {
                    tracing::info!(error = %e, "request in a stream refused");
                    let _ = send_reply(tx, refusal(&e)).await;
                    return;
                }
            }
        }
    }

    /// Checks the sender's membership against the community's root, registering a new
    /// community on first contact from its root device when allowed.
    fn admit(&self, tx: &Connection, m: &Membership) -> Result<Grant, RelayError> {
        let root: Option<Vec<u8>> = tx
            .query_row(
                "SELECT root FROM communities WHERE id = ?1",
                [&m.community],
                |r| r.get(0),
            )
            .optional()?;
        let root: PublicKey = match root {
            Some(bytes) => bytes
                .try_into()
                .map_err(|_| RelayError::BadRequest("stored root key is damaged".into()))?,
            None if self.config.first_contact && m.certs.is_empty() => {
                tx.execute(
                    "INSERT INTO communities (id, root, created_ms) VALUES (?1, ?2, ?3)",
                    params![m.community, &m.root[..], now_ms()],
                )?;
                tracing::info!(community = %m.community, root = %short(&m.root), "new community");
                m.root
            }
            None if self.config.first_contact => {
                return Err(RelayError::Forbidden(format!(
                    "community {} is not known here yet: the device that created it must sync with this relay first",
                    m.community
                )));
            }
            None => {
                return Err(RelayError::Forbidden(format!(
                    "community {} is not registered on this relay (first contact is turned off)",
                    m.community
                )));
            }
        };
        m.verify(&root).map_err(|e| {
            RelayError::Forbidden(format!(
                "device {} is not a member of community {}: {e}",
                short(&m.device()),
                m.community
            ))
        })
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn kind_code(kind: BlobKind) -> i64 {
    match kind {
        BlobKind::Changes => 0,
        BlobKind::Snapshot => 1,
    }
}

fn push(
    tx: &Connection,
    community: &str,
    grant: &Grant,
    device: &PublicKey,
    blobs: Vec<NewBlob>,
) -> Result<Response, RelayError> {
    // All or nothing: check every blob before storing any.
    if let Some(b) = blobs.iter().find(|b| !grant.may_use(&b.scope)) {
        return Err(RelayError::Forbidden(format!(
            "device {} is {}: it may not write scope {} (documents {}); nothing was stored",
            short(device),
            grant.describe(),
            b.scope,
            b.docs
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    // A snapshot may only cover what its sender holds: every blob of its scopes up to `covers`
    // was handed to it by a pull, or sent by it.
    if let Some(covers) = blobs
        .iter()
        .filter(|b| b.kind == BlobKind::Snapshot)
        .map(|b| b.covers)
        .max()
    {
        unseen_below(tx, community, grant, device, covers)?;
    }
    let mut seqs = Vec::with_capacity(blobs.len());
    for b in blobs {
        tx.execute(
            "INSERT INTO blobs (community, scope, kind, sender, sealed) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![community, b.scope, kind_code(b.kind), &device[..], b.sealed],
        )?;
        let seq = tx.last_insert_rowid();
        let mut doc_row = tx.prepare_cached(
            "INSERT OR IGNORE INTO blob_docs (community, doc, seq) VALUES (?1, ?2, ?3)",
        )?;
        for d in &b.docs {
            doc_row.execute(params![community, d, seq])?;
        }
        if b.kind == BlobKind::Snapshot && b.covers > 0 {
            supersede(tx, community, &b.docs, b.covers as i64, seq)?;
        }
        seqs.push(seq as u64);
    }
    Ok(Response::Pushed { seqs })
}

/// Forgets older blobs' claims on documents a snapshot now holds whole, and deletes blobs no
/// document needs any more.
fn supersede(
    tx: &Connection,
    community: &str,
    docs: &[String],
    covers: i64,
    snapshot: i64,
) -> Result<(), RelayError> {
    let mut older = tx.prepare_cached(
        "SELECT seq FROM blob_docs WHERE community = ?1 AND doc = ?2 AND seq <= ?3 AND seq != ?4",
    )?;
    let mut forget =
        tx.prepare_cached("DELETE FROM blob_docs WHERE community = ?1 AND doc = ?2 AND seq = ?3")?;
    let mut touched = std::collections::BTreeSet::new();
    for d in docs {
        let seqs: Vec<i64> = older
            .query_map(params![community, d, covers, snapshot], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for s in seqs {
            forget.execute(params![community, d, s])?;
            touched.insert(s);
        }
    }
    let mut still = tx.prepare_cached("SELECT 1 FROM blob_docs WHERE seq = ?1 LIMIT 1")?;
    let mut delete = tx.prepare_cached("DELETE FROM blobs WHERE seq = ?1")?;
    for s in touched {
        if !still.exists([s])? {
            delete.execute([s])?;
        }
    }
    Ok(())
}

/// Refuses a snapshot covering a blob of the device's scopes that it has neither pulled nor sent.
fn unseen_below(
    tx: &Connection,
    community: &str,
    grant: &Grant,
    device: &PublicKey,
    covers: u64,
) -> Result<(), RelayError> {
    let pulled: i64 = tx
        .query_row(
            "SELECT pulled FROM devices WHERE key = ?1",
            [&device[..]],
            |r| r.get::<_, Option<i64>>(0),
        )
        .optional()?
        .flatten()
        .unwrap_or(0);
    let covers = i64::try_from(covers).unwrap_or(i64::MAX);
    let mut stmt = tx.prepare_cached(
        "SELECT seq, scope, sender FROM blobs WHERE community = ?1 AND seq > ?2 AND seq <= ?3
         ORDER BY seq",
    )?;
    let mut rows = stmt.query(params![community, pulled, covers])?;
    while let Some(row) = rows.next()? {
        let (seq, scope, sender): (i64, String, Vec<u8>) = (row.get(0)?, row.get(1)?, row.get(2)?);
        if sender.as_slice() != &device[..] && grant.may_use(&scope) {
            return Err(RelayError::Forbidden(format!(
                "device {} sent a snapshot covering blobs up to #{covers}, but it has pulled only up \
                 to #{pulled} and not blob #{seq}: pull first; nothing was stored",
                short(device)
            )));
        }
    }
    Ok(())
}

fn pull(
    tx: &Connection,
    community: &str,
    grant: &Grant,
    device: &PublicKey,
    since: u64,
    max_bytes: u64,
) -> Result<Response, RelayError> {
    let mut stmt = tx.prepare_cached(
        "SELECT seq, scope, kind, sender, sealed FROM blobs
         WHERE community = ?1 AND seq > ?2 ORDER BY seq",
    )?;
    let mut rows = stmt.query(params![community, i64::try_from(since).unwrap_or(i64::MAX)])?;
    let mut blobs = Vec::new();
    let mut next = since;
    let mut bytes = 0u64;
    let mut more = false;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let scope: String = row.get(1)?;
        let sender: Vec<u8> = row.get(3)?;
        if sender.as_slice() == &device[..] || !grant.may_use(&scope) {
            next = seq as u64;
            continue;
        }
        let sealed: Vec<u8> = row.get(4)?;
        if !blobs.is_empty() && bytes + sealed.len() as u64 > max_bytes {
            more = true;
            break;
        }
        bytes += sealed.len() as u64;
        let kind = if row.get::<_, i64>(2)? == 1 {
            BlobKind::Snapshot
        } else {
            BlobKind::Changes
        };
        blobs.push(Blob {
            seq: seq as u64,
            scope,
            kind,
            sealed,
        });
        next = seq as u64;
    }
    // How far the device has pulled moves only when this pull started where it had got to (or
    // before): a device asking from a later cursor skipped blobs, and must not claim them (a
    // snapshot it sends may cover only what it has seen, see `unseen_below`).
    tx.execute(
        "UPDATE devices SET pulled = MAX(COALESCE(pulled, 0), ?2)
         WHERE key = ?1 AND (pulled IS NULL OR pulled >= ?3)",
        params![
            &device[..],
            i64::try_from(next).unwrap_or(i64::MAX),
            i64::try_from(since).unwrap_or(i64::MAX)
        ],
    )?;
    Ok(Response::Pulled { blobs, next, more })
}

/// Runs blocking work (SQLite) off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RelayError> + Send + 'static,
) -> Result<T, RelayError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RelayError::Internal(format!("relay task failed: {e}")))?
}

async fn handle(State(relay): State<Relay>, body: Bytes) -> (StatusCode, Vec<u8>) {
    match relay.answer(body, false).await {
        Ok(response) => (StatusCode::OK, linli_wire::encode(&response)),
        Err(e) => {
            tracing::info!(error = %e, "request refused");
            (e.status(), e.to_string().into_bytes())
        }
    }
}

/// `POST /v1/stream`: answers as the requests arrive (see [`STREAM_PATH`]).
async fn handle_stream(
    State(relay): State<Relay>,
    body: axum::body::Body,
) -> axum::response::Response {
    let (mut tx, answers) = http_body_util::channel::Channel::<Bytes>::new(16);
    tokio::spawn(async move { relay.stream(body, &mut tx).await });
    axum::response::Response::new(axum::body::Body::new(answers))
}

type Sender<D> = http_body_util::channel::Sender<D>;

async fn send_reply(tx: &mut Sender<Bytes>, reply: Reply) -> Result<(), ()> {
    tx.send_data(Bytes::from(frame(&linli_wire::encode(&reply))))
        .await
        .map_err(|_| ())
}

fn refusal(e: &RelayError) -> Reply {
    Reply::Refused {
        status: e.status().as_u16(),
        message: e.to_string(),
    }
}

/// What a held watch or follow listens to: the relay stopping, and blobs stored.
struct News {
    closing: tokio::sync::watch::Receiver<bool>,
    stored: tokio::sync::watch::Receiver<LastStored>,
    /// Blobs arrived that were not pulled yet.
    missed: bool,
}

impl News {
    /// Whether a blob of a scope `w`'s device reads, sent by another device, was stored past
    /// where it looked.
    fn any_for(last: &LastStored, w: &Waiting) -> bool {
        last.iter()
            .any(|(scope, l)| l.not_from(&w.device) > w.since && w.grant.may_use(scope))
    }
}

#[cfg(test)]
mod tests {
    use super::{Config, Latest, Relay};

    /// The relay's statements keep their plans whatever is bound to them (no re-preparing
    /// of a cached statement at each use).
    #[test]
    fn plans_do_not_depend_on_bound_values() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let relay = Relay::open(
            dir.path(),
            Config {
                first_contact: true,
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let db = relay.db.lock().unwrap_or_else(|e| panic!("{e}"));
        assert!(
            db.db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG)
                .unwrap_or_else(|e| panic!("{e}"))
        );
    }

    #[test]
    fn each_device_learns_of_the_last_blob_it_did_not_send() {
        let (d1, d2, d3) = ([1; 32], [2; 32], [3; 32]);
        let mut l = Latest::default();
        l.stored(d1, 5);
        assert_eq!((l.not_from(&d1), l.not_from(&d2)), (0, 5));
        l.stored(d2, 6);
        assert_eq!((l.not_from(&d1), l.not_from(&d2)), (6, 5));
        l.stored(d2, 7);
        assert_eq!((l.not_from(&d1), l.not_from(&d2)), (7, 5));
        l.stored(d1, 8);
        assert_eq!((l.not_from(&d1), l.not_from(&d2)), (7, 8));
        l.stored(d3, 9);
        assert_eq!(
            (l.not_from(&d1), l.not_from(&d2), l.not_from(&d3)),
            (9, 9, 8)
        );
        // Pushes told out of order (each is told after its commit, outside the lock).
        l.stored(d2, 4);
        assert_eq!(l.not_from(&d3), 8);
        let mut l = Latest::default();
        l.stored(d2, 11);
        l.stored(d1, 10);
        l.stored(d2, 9);
        assert_eq!((l.not_from(&d1), l.not_from(&d2)), (11, 10));
    }
}
