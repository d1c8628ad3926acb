//! The street office's relay: a thin, blind store-and-forward server for Linli devices.
//!
//! [`Relay`] keeps, in one SQLite file, the sealed blobs devices upload, each with the scope
//! and the document ids it covers and a sequence number it assigns, and hands each member the
//! blobs of its scopes above a cursor. It checks every request's signature and the sender's
//! membership chain against the community's root key, which it learns on first contact from
//! the device that created the community (whose id is bound to that key, so no one else can
//! register it first).
//!
//! It holds against strangers and hostile members: every resource is bounded ([`limits`],
//! [`http`]): first contacts per address and hour, storage per community, a disk reserve,
//! request bytes in memory, connections, and the time a connection may take to send.
//!
//! Architecture invariant: the relay depends on `linli-wire` only. It never opens a sealed
//! bundle and holds no key that could: it cannot read a resident's name or ID number.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use linli_wire::relay::{
    BodyView, COUNTER_AHEAD, MAX_COUNTER_AHEAD_MS, MAX_FOLLOW_MS, MAX_WATCH_MS, Response,
    STREAM_PATH, SignedView,
};
use linli_wire::{Grant, Membership, PublicKey, short};
use rusqlite::{Connection, OptionalExtension, params};

mod blobs;
pub mod http;
mod limits;
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

/// Why the relay refused a request. The text goes back to the device as the reason; it names
/// ids and sizes, never what a request carried.
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
    /// Too many requests of a kind from one address (first contacts): try again later (429).
    #[error("{message}")]
    Limited {
        /// Why.
        message: String,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// The relay is busy (request bytes in memory, connections): try again shortly (503).
    #[error("{message}")]
    Busy {
        /// Why.
        message: String,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// A community's storage quota is used up, or the disk is nearly full (507).
    #[error("{message}")]
    Full {
        /// Why.
        message: String,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// The client took too long to send its request (408).
    #[error("{0}")]
    TooSlow(String),
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
    /// Another relay runs on the data directory.
    #[error(
        "another linli-relay is already using {0} (it holds {0}/lock): stop it first, or give this one another --data"
    )]
    Locked(PathBuf),
    /// The relay's certificate cannot be made or used.
    #[error("TLS: {0}")]
    Tls(String),
}

impl RelayError {
    /// The HTTP status of the refusal.
    pub fn status(&self) -> u16 {
        match self {
            RelayError::BadRequest(_) => 400,
            RelayError::Forbidden(_) => 403,
            RelayError::TooSlow(_) => 408,
            RelayError::Replayed(_) => 409,
            RelayError::Limited { .. } => 429,
            RelayError::Busy { .. } => 503,
            RelayError::Full { .. } => 507,
            RelayError::Storage(_)
            | RelayError::Io { .. }
            | RelayError::Internal(_)
            | RelayError::Locked(_)
            | RelayError::Tls(_) => 500,
        }
    }

    /// Seconds after which asking again may succeed (the `Retry-After` header).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            RelayError::Limited { retry_after, .. }
            | RelayError::Busy { retry_after, .. }
            | RelayError::Full { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// Settings of a relay. [`Config::default`] is what `linli-relay` runs with unless told
/// otherwise.
#[derive(Debug, Clone)]
pub struct Config {
    /// Accept a new community from the device that created it (its root key) on first contact.
    pub first_contact: bool,
    /// New communities registered per hour from one source address (the relay as a whole
    /// registers ten times as many).
    pub first_contacts_per_hour: u32,
    /// The most bytes of sealed blobs one community may keep on the relay.
    pub quota_bytes: u64,
    /// Free disk space kept for established communities: below it, new communities are
    /// refused and young ones (see [`Config::young`]) may not push; established ones may,
    /// down to a quarter of it.
    pub reserve_bytes: u64,
    /// How long a community counts as young after it registered.
    pub young: Duration,
    /// The most connections open at once (also capped by the process's open-file limit).
    pub max_connections: usize,
    /// The most connections open at once from one address (an IPv4 address or IPv6 /64).
    pub max_connections_per_address: usize,
    /// The most bytes of request bodies held in memory at once.
    pub inflight_bytes: usize,
    /// Answer `GET /traffic` (bytes in and out since the start: for benchmarks on a
    /// machine of their own; off by default, as it tells anyone when devices sync).
    pub traffic: bool,
    /// The time limits of connections.
    pub timeouts: Timeouts,
}

/// How long the relay waits on a client before closing its connection.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For a TLS handshake.
    pub handshake: Duration,
    /// For a request's head (the request line and headers), counted from the end of the
    /// previous request on the connection: an idle connection is closed after it.
    pub header: Duration,
    /// For the next piece of a request body.
    pub body_idle: Duration,
    /// The lowest average rate a request body must arrive at, in bytes per second, after a
    /// first `body_idle`.
    pub body_rate: u64,
    /// The longest a stream's body stays open (an upload stream is closed by its device
    /// within a minute).
    pub stream: Duration,
    /// A connection on which nothing was read or written for this long is closed (held
    /// answers send a keepalive every 15 s, a watch answers within 30 s).
    pub silent: Duration,
    /// How long a request waits for room in the in-memory budget before it is refused.
    pub budget_wait: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            handshake: Duration::from_secs(10),
            header: Duration::from_secs(10),
            body_idle: Duration::from_secs(20),
            body_rate: 16 * 1024,
            stream: Duration::from_secs(180),
            silent: Duration::from_secs(45),
            budget_wait: Duration::from_secs(20),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            first_contact: true,
            first_contacts_per_hour: 5,
            quota_bytes: 2 << 30,
            reserve_bytes: 1 << 30,
            young: Duration::from_secs(24 * 3600),
            max_connections: 1024,
            max_connections_per_address: 256,
            inflight_bytes: 160 << 20,
            traffic: false,
            timeouts: Timeouts::default(),
        }
    }
}

/// The relay's state: its database, its limits.
#[derive(Clone)]
pub struct Relay {
    db: Arc<Mutex<Connection>>,
    /// The data directory.
    dir: PathBuf,
    /// The database file.
    path: PathBuf,
    config: Config,
    limits: Arc<Limits>,
    /// Per community, the sequence number of the last blob stored in each of its scopes: a
    /// held watch pulls again only when a scope it may read moved (a push to one community
    /// or grid makes no other's watches touch the database). Only members' requests make an
    /// entry, and entries nobody listens to are forgotten after a minute.
    stored: Arc<Mutex<std::collections::HashMap<String, Channel>>>,
    /// Set when the relay stops: held watches answer at once.
    closing: Arc<tokio::sync::watch::Sender<bool>>,
    /// The lock on the data directory, held while any handle of the relay lives.
    _lock: Arc<limits::DirLock>,
}

/// What the membership at the start of a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// A registered community's member.
    Member,
    /// The root of a community not registered yet.
    FirstContact,
}

/// The limits shared by every connection.
pub(crate) struct Limits {
    pub(crate) first_contacts: limits::FirstContacts,
    /// Request bytes of members.
    pub(crate) budget: limits::Budget,
    /// Request bytes before their membership is known to be a registered member's (and
    /// first contacts'): strangers cannot take the members' room.
    pub(crate) strangers: limits::Budget,
    pub(crate) connections: Arc<limits::Connections>,
}

/// A community's channel of last stored blobs, and when it was last used.
struct Channel {
    sender: tokio::sync::watch::Sender<LastStored>,
    used: std::time::Instant,
}

/// Channels kept at most before unused ones are looked for.
const CHANNELS_SWEEP: usize = 256;

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

/// A follow admitted by [`Relay::open_follow`], held by its caller.
#[derive(Debug)]
pub struct Follow(Waiting);

/// A watch that found nothing yet: what to pull again when blobs arrive.
#[derive(Debug)]
struct Waiting {
    community: String,
    grant: Grant,
    device: PublicKey,
    since: u64,
    max_bytes: u64,
    wait: Duration,
    /// A [`linli_wire::relay::Body::Follow`]: held open, answering each time blobs arrive.
    follow: bool,
}

pub use linli_sqlite::Checkpointer;

/// A community id, scope or other text from a request, made safe for a log line: control
/// characters escaped.
pub(crate) fn clean(text: &str) -> String {
    if text.chars().any(char::is_control) {
        text.escape_debug().to_string()
    } else {
        text.to_string()
    }
}

impl Relay {
    /// Moves the relay's checkpoints (writing SQLite's log back into the database file) to a
    /// thread of their own, run every `every`: otherwise the push whose commit crosses
    /// SQLite's threshold (1,000 pages) pays for copying the log and an fsync before the
    /// relay answers it or wakes the devices watching (11 ms of a 12 ms push, measured on
    /// the sync benchmark). A passive checkpoint never waits for readers or writers.
    pub fn checkpoint_in_background(&self, every: Duration) -> Result<Checkpointer, RelayError> {
        linli_sqlite::backstop(&*self.db()?)?;
        Checkpointer::start(&self.path, None, "relay-checkpoint", every, |_| {}).map_err(|source| {
            RelayError::Io {
                path: self.path.clone(),
                source,
            }
        })
    }

    fn db(&self) -> Result<std::sync::MutexGuard<'_, Connection>, RelayError> {
        self.db
            .lock()
            .map_err(|_| RelayError::Internal("relay busy after an internal failure".into()))
    }

    /// Opens (creating if needed) the relay's database in `dir`, which it locks: a second
    /// relay on the same directory is refused ([`RelayError::Locked`]). The directory and
    /// the files in it are readable by their owner only.
    pub fn open(dir: &Path, config: Config) -> Result<Relay, RelayError> {
        let io = |source: std::io::Error| RelayError::Io {
            path: dir.to_path_buf(),
            source,
        };
        linli_sqlite::private_dir_always(dir).map_err(io)?;
        let lock = limits::DirLock::take(dir)?;
        let path = dir.join(DB_FILE);
        // Made private before SQLite opens it; its log and index files take its mode.
        linli_sqlite::private_db_file(&path).map_err(io)?;
        let conn = linli_sqlite::open(&path, Duration::from_secs(10), None)?;
        conn.execute_batch(SCHEMA)?;
        let has_column = |table: &str, column: &str| -> Result<bool, rusqlite::Error> {
            conn.query_row(
                &format!("SELECT COUNT(*) FROM pragma_table_info('{table}') WHERE name = ?1"),
                [column],
                |r| r.get::<_, i64>(0).map(|n| n > 0),
            )
        };
        // Relays made before devices' pulls were tracked: add the column, unknown (NULL) for
        // the devices already there: each one's next pull is taken as its starting point.
        if !has_column("devices", "pulled")? {
            conn.execute_batch("ALTER TABLE devices ADD COLUMN pulled INTEGER")?;
        }
        // Relays made before quotas: a column for what each community keeps.
        if !has_column("communities", "bytes")? {
            conn.execute_batch(
                "ALTER TABLE communities ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;",
            )?;
        }
        // Counted again at each start (sealed bytes, and the documents' claims as
        // `blobs::push_bytes` counts them), so that no drift outlives a restart. `length` of
        // a blob reads its record's header only.
        conn.execute_batch(
            "UPDATE communities SET bytes =
                 (SELECT COALESCE(SUM(length(sealed)), 0) FROM blobs
                     WHERE blobs.community = communities.id)
               + (SELECT COALESCE(SUM(length(doc) + 48), 0) FROM blob_docs
                     WHERE blob_docs.community = communities.id);",
        )?;
        let limits = Limits {
            first_contacts: limits::FirstContacts::new(config.first_contacts_per_hour),
            budget: limits::Budget::new(config.inflight_bytes),
            strangers: limits::Budget::new((config.inflight_bytes / 4).clamp(1 << 20, 32 << 20)),
            connections: Arc::new(limits::Connections::new(
                limits::connection_cap(config.max_connections),
                config.max_connections_per_address,
            )),
        };
        Ok(Relay {
            db: Arc::new(Mutex::new(conn)),
            dir: dir.to_path_buf(),
            path,
            config,
            limits: Arc::new(limits),
            stored: Arc::default(),
            closing: Arc::new(tokio::sync::watch::channel(false).0),
            _lock: Arc::new(lock),
        })
    }

    /// The most connections this relay holds at once.
    pub fn max_connections(&self) -> usize {
        self.limits.connections.max()
    }

    /// Handles one encoded, signed request (what `POST /v2` does), answering a
    /// [`linli_wire::relay::Body::Watch`] at once, as a pull. `origin` is the sender's
    /// address (first contacts are counted by it).
    pub fn handle_bytes(
        &self,
        body: &[u8],
        origin: Option<IpAddr>,
    ) -> Result<Response, RelayError> {
        self.handle_request(body, false, origin)
            .map(|(response, _)| response)
    }

    /// Admits a [`linli_wire::relay::Body::Follow`] (what `POST /v2/stream` does with one):
    /// its first answer, and the [`Follow`] to ask [`Relay::follow_next`] with afterwards. For
    /// a caller that holds the follow itself: the relay's own HTTP server holds it on a
    /// stream; a test drives it in one process.
    pub fn open_follow(
        &self,
        body: &[u8],
        origin: Option<IpAddr>,
    ) -> Result<(Response, Follow), RelayError> {
        match self.handle_request(body, true, origin)? {
            (response, Some(w)) if w.follow => Ok((response, Follow(w))),
            _ => Err(RelayError::BadRequest("not a follow".into())),
        }
    }

    /// What a held follow gets now: the blobs of its scopes stored since its last answer
    /// (none if nothing arrived), and its cursor moved past them.
    pub fn follow_next(&self, follow: &mut Follow) -> Result<Response, RelayError> {
        let response = self.pull_again(&follow.0)?;
        if let Response::Pulled { next, .. } = &response {
            follow.0.since = *next;
        }
        Ok(response)
    }

    /// Checks the membership a request starts with, before its body is read: a stranger's
    /// large request is refused without reading (or holding) it. Says whether it is a
    /// registered member's or a first contact's.
    pub(crate) fn precheck(
        &self,
        m: &Membership,
        origin: Option<IpAddr>,
    ) -> Result<Admission, RelayError> {
        linli_wire::check_community_id(&m.community)
            .map_err(|e| RelayError::BadRequest(e.to_string()))?;
        let db = self.db()?;
        let root = self.root_of(&db, &m.community)?;
        drop(db);
        match root {
            Some(root) => m
                .verify(&root)
                .map(|_| Admission::Member)
                .map_err(|_| not_a_member(m)),
            None if self.may_register(m) => self
                .limits
                .first_contacts
                .check(origin, false)
                .map(|()| Admission::FirstContact),
            None => Err(not_a_member(m)),
        }
    }

    /// Whether a membership may register its community on first contact: the relay allows
    /// it, and it is the root's own, of a community id made from that root key.
    fn may_register(&self, m: &Membership) -> bool {
        self.config.first_contact
            && m.certs.is_empty()
            && linli_wire::community_bound_to(&m.community, &m.root)
    }

    fn root_of(&self, tx: &Connection, community: &str) -> Result<Option<PublicKey>, RelayError> {
        let root: Option<Vec<u8>> = tx
            .prepare_cached("SELECT root FROM communities WHERE id = ?1")?
            .query_row([community], |r| r.get(0))
            .optional()?;
        root.map(|bytes| {
            bytes
                .try_into()
                .map_err(|_| RelayError::Internal("stored root key is damaged".into()))
        })
        .transpose()
    }

    /// Handles a request; an empty answer to a watch, and every answer to a follow (only
    /// accepted in a stream), comes with what to wait for.
    fn handle_request(
        &self,
        body: &[u8],
        streaming: bool,
        origin: Option<IpAddr>,
    ) -> Result<(Response, Option<Waiting>), RelayError> {
        let bad = |e: linli_wire::WireError| RelayError::BadRequest(e.to_string());
        let signed: SignedView<'_> = linli_wire::decode("request", body).map_err(bad)?;
        let request = signed.open().map_err(bad)?;
        let community = request.membership.community.as_str();
        linli_wire::check_community_id(community).map_err(bad)?;
        let follow = matches!(request.body, BodyView::Follow { .. });
        if follow && !streaming {
            return Err(RelayError::BadRequest(format!(
                "a follow is answered only on {STREAM_PATH}"
            )));
        }
        let device = request.membership.device();
        let now = now_ms();
        let ahead = request
            .counter
            .saturating_sub(u64::try_from(now).unwrap_or(0));
        if ahead > MAX_COUNTER_AHEAD_MS {
            return Err(RelayError::BadRequest(format!(
                "request {} of device {} is numbered {} minutes {COUNTER_AHEAD}: set the \
                 device's date and time (the relay takes requests up to {} minutes ahead)",
                request.counter,
                short(&device),
                ahead / 60_000,
                MAX_COUNTER_AHEAD_MS / 60_000
            )));
        }
        let mut db = self.db()?;
        let tx = db.transaction()?;
        let grant = self.admit(&tx, &request.membership, origin)?;
        let last: Option<i64> = tx
            .prepare_cached("SELECT counter FROM devices WHERE key = ?1")?
            .query_row([&device[..]], |r| r.get(0))
            .optional()?;
        let counter = i64::try_from(request.counter).unwrap_or(i64::MAX);
        if last.is_some_and(|last| counter <= last) {
            return Err(RelayError::Replayed(format!(
                "request {} from device {} is not newer than the last one accepted: refused as a replay",
                request.counter,
                short(&device)
            )));
        }
        tx.prepare_cached(
            "INSERT INTO devices (key, community, role, grids, label, counter, seen_ms, pulled)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0)
             ON CONFLICT (key) DO UPDATE SET community = excluded.community, role = excluded.role,
               grids = excluded.grids, label = excluded.label, counter = excluded.counter,
               seen_ms = excluded.seen_ms",
        )?
        .execute(params![
            &device[..],
            community,
            grant.role.code(),
            grant.grids.join(","),
            grant.label,
            counter,
            now
        ])?;
        let mut waiting = None;
        let mut pushed_scopes = Vec::new();
        let response = match &request.body {
            BodyView::Push { blobs } => {
                let bytes = blobs::push_bytes(blobs);
                self.disk_room_for(&tx, community, bytes)?;
                pushed_scopes = blobs.iter().map(|b| b.scope.to_string()).collect();
                let (before, _) = blobs::usage(&tx, community)?;
                let pushed = blobs::push(&tx, community, &grant, &device, blobs)?;
                // The quota is checked after the push, in its transaction: a snapshot frees
                // what it supersedes (compacting a community at its quota makes room), and a
                // push that leaves the community smaller is never refused.
                self.within_quota(&tx, community, before, bytes)?;
                pushed
            }
            BodyView::Drop { seqs } => blobs::drop_blobs(&tx, community, &grant, &device, seqs)?,
            BodyView::Pull { since, max_bytes } => {
                blobs::pull(&tx, community, &grant, &device, *since, *max_bytes)?
            }
            // A watch waits only when nothing is there; a follow always stays.
            BodyView::Watch {
                since,
                max_bytes,
                wait_ms,
            }
            | BodyView::Follow {
                since,
                max_bytes,
                wait_ms,
            } => {
                let response = blobs::pull(&tx, community, &grant, &device, *since, *max_bytes)?;
                if let Response::Pulled { blobs, next, .. } = &response
                    && (follow || (blobs.is_empty() && *wait_ms > 0))
                {
                    let longest = if follow { MAX_FOLLOW_MS } else { MAX_WATCH_MS };
                    waiting = Some(Waiting {
                        community: community.to_string(),
                        grant: grant.clone(),
                        device,
                        since: *next,
                        max_bytes: *max_bytes,
                        wait: Duration::from_millis((*wait_ms).min(longest)),
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

    /// Refuses a push that took `community` past its quota (called after it was stored in
    /// the transaction, which is then rolled back).
    fn within_quota(
        &self,
        tx: &Connection,
        community: &str,
        before: u64,
        bytes: u64,
    ) -> Result<(), RelayError> {
        let (used, _) = blobs::usage(tx, community)?;
        let quota = self.config.quota_bytes;
        if used > quota && used > before {
            return Err(RelayError::Full {
                message: format!(
                    "community {community} would keep {} MB on this relay and may keep {} MB: \
                     this push of {} kB does not fit (committee staff can compact the relay's \
                     copy); nothing was stored",
                    used >> 20,
                    quota >> 20,
                    bytes >> 10
                ),
                retry_after: 3600,
            });
        }
        Ok(())
    }

    /// Refuses a push of `bytes` that would take the disk into its reserve (young
    /// communities) or below a quarter of it (established ones).
    fn disk_room_for(
        &self,
        tx: &Connection,
        community: &str,
        bytes: u64,
    ) -> Result<(), RelayError> {
        let (_, created_ms) = blobs::usage(tx, community)?;
        let young = now_ms().saturating_sub(created_ms)
            < i64::try_from(self.config.young.as_millis()).unwrap_or(i64::MAX);
        let keep = if young {
            self.config.reserve_bytes
        } else {
            self.config.reserve_bytes / 4
        };
        self.disk_keeps(keep.saturating_add(bytes))
    }

    /// Refuses when less than `bytes` are free on the relay's disk.
    fn disk_keeps(&self, bytes: u64) -> Result<(), RelayError> {
        let free = limits::free_bytes(&self.dir)?;
        if free < bytes {
            return Err(RelayError::Full {
                message: format!(
                    "the relay's disk is nearly full ({} MB free): nothing was stored",
                    free >> 20
                ),
                retry_after: 3600,
            });
        }
        Ok(())
    }

    /// The channel of a community's last stored sequence numbers, by scope (made on first use).
    fn stored_channel(&self, community: &str) -> tokio::sync::watch::Sender<LastStored> {
        let mut map = self.stored.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        if map.len() >= CHANNELS_SWEEP && !map.contains_key(community) {
            // Forget channels nobody listens to that were not used for a minute: a watch
            // subscribes within moments of its pull, and a push makes its entry anew.
            map.retain(|_, c| {
                c.sender.receiver_count() > 0
                    || now.duration_since(c.used) < Duration::from_secs(60)
            });
        }
        let c = map.entry(community.to_string()).or_insert_with(|| Channel {
            sender: tokio::sync::watch::channel(LastStored::default()).0,
            used: now,
        });
        c.used = now;
        c.sender.clone()
    }

    /// Communities with a channel in memory (for tests: it stays bounded).
    #[cfg(test)]
    fn channels(&self) -> usize {
        self.stored.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Pulls again for a watch that was admitted moments ago (its request was checked then).
    fn pull_again(&self, w: &Waiting) -> Result<Response, RelayError> {
        let mut db = self.db()?;
        let tx = db.transaction()?;
        let response = blobs::pull(&tx, &w.community, &w.grant, &w.device, w.since, w.max_bytes)?;
        tx.commit()?;
        Ok(response)
    }

    /// Checks the sender's membership against the community's root, registering a new
    /// community on first contact from its root device when allowed. A refusal says the
    /// same whether or not the community is registered here.
    fn admit(
        &self,
        tx: &Connection,
        m: &Membership,
        origin: Option<IpAddr>,
    ) -> Result<Grant, RelayError> {
        let root = match self.root_of(tx, &m.community)? {
            Some(root) => root,
            None if self.may_register(m) => {
                self.limits.first_contacts.check(origin, false)?;
                self.disk_keeps(self.config.reserve_bytes)?;
                self.limits.first_contacts.check(origin, true)?;
                tx.execute(
                    "INSERT INTO communities (id, root, created_ms, bytes) VALUES (?1, ?2, ?3, 0)",
                    params![m.community, &m.root[..], now_ms()],
                )?;
                tracing::info!(
                    community = %clean(&m.community),
                    root = %short(&m.root),
                    origin = ?origin,
                    "new community"
                );
                m.root
            }
            None => return Err(not_a_member(m)),
        };
        m.verify(&root).map_err(|_| not_a_member(m))
    }
}

/// The one refusal of a membership: the same whether the community is not registered here,
/// the chain does not verify, or its id is not its root key's.
fn not_a_member(m: &Membership) -> RelayError {
    RelayError::Forbidden(format!(
        "device {} is not a member of community {} on this relay (a community is known here \
         once the device that created it has synced with it)",
        short(&m.device()),
        clean(&m.community)
    ))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::{Config, Latest, Relay};

    /// The relay's statements keep their plans whatever is bound to them (no re-preparing
    /// of a cached statement at each use).
    #[test]
    fn plans_do_not_depend_on_bound_values() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let relay = Relay::open(dir.path(), Config::default()).unwrap_or_else(|e| panic!("{e}"));
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

    /// Memory does not grow with strangers' communities: a channel nobody listens to is
    /// forgotten a minute after its last use, once there are many.
    #[test]
    fn channels_of_idle_communities_are_forgotten() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let relay = Relay::open(dir.path(), Config::default()).unwrap_or_else(|e| panic!("{e}"));
        for i in 0..(super::CHANNELS_SWEEP + 50) {
            drop(relay.stored_channel(&format!("c{i}")));
        }
        assert_eq!(
            relay.channels(),
            super::CHANNELS_SWEEP + 50,
            "all used within the minute"
        );
        let listened = relay.stored_channel("c0").subscribe();
        let long_ago = std::time::Instant::now()
            .checked_sub(std::time::Duration::from_secs(61))
            .unwrap_or_else(std::time::Instant::now);
        for c in relay
            .stored
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values_mut()
        {
            c.used = long_ago;
        }
        drop(relay.stored_channel("a-new-one"));
        assert_eq!(relay.channels(), 2, "the one listened to, and the new one");
        drop(listened);
    }
}
