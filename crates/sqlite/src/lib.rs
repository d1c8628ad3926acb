//! How Linli opens a SQLite database, in one place for the device's store (`linli-store`) and
//! the street office's relay (`linli-relay`): a connection's settings ([`open`]), files and
//! directories readable by their owner only ([`private_dir`], [`private_db_file`],
//! [`private_file`]), and checkpoints on a thread of their own ([`Checkpointer`]).
//!
//! Encryption at rest: a database opened with a [`DbKey`] is a SQLCipher file (every page,
//! its write-ahead log's included, AES-256 encrypted and authenticated); the key is a raw 256-bit
//! key, so opening a connection costs no key derivation. [`encrypt_in_place`] turns a plain
//! database (a store of an older Linli) into an encrypted one.
//!
//! Architecture invariant: every connection to a Linli database is made by [`open`] (or by a
//! [`Checkpointer`], which uses it), so a setting every database needs (encryption at rest,
//! `secure_delete`) is added here once.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;
use zeroize::Zeroizing;

/// The 256-bit key a database is encrypted with (SQLCipher's raw key). Wiped from memory when
/// dropped; never printed.
#[derive(Clone)]
pub struct DbKey(Zeroizing<[u8; 32]>);

impl DbKey {
    /// A fresh random key.
    pub fn random() -> std::io::Result<DbKey> {
        let mut k = Zeroizing::new([0u8; 32]);
        getrandom::fill(k.as_mut()).map_err(std::io::Error::other)?;
        Ok(DbKey(k))
    }

    /// The key made of these bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> DbKey {
        DbKey(Zeroizing::new(bytes))
    }

    /// Its bytes (to wrap it for a person).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key as 64 lowercase hex digits (`LINLI_STORE_KEY`: for scripts, benchmarks and
    /// tests that pass a store's raw key to a process).
    pub fn to_hex(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(64));
        for b in self.0.iter() {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 15)]));
        }
        s
    }

    /// Reads [`DbKey::to_hex`] (surrounding spaces allowed); none unless exactly 64 hex
    /// digits. Never panics, whatever the text.
    pub fn from_hex(text: &str) -> Option<DbKey> {
        let text = text.trim().as_bytes();
        if text.len() != 64 {
            return None;
        }
        let digit = |c: u8| {
            char::from(c)
                .to_digit(16)
                .and_then(|d| u8::try_from(d).ok())
        };
        let mut key = Zeroizing::new([0u8; 32]);
        for (i, pair) in text.chunks_exact(2).enumerate() {
            key[i] = digit(pair[0])? << 4 | digit(pair[1])?;
        }
        Some(DbKey(key))
    }

    /// `PRAGMA key` (or `KEY` of an `ATTACH`) as SQLCipher reads a raw key: `"x'…'"`.
    fn literal(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("\"x'{}'\"", self.to_hex().as_str()))
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl std::fmt::Debug for DbKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbKey(…)")
    }
}

/// The first 16 bytes of a plain (unencrypted) SQLite file.
const PLAIN_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Whether the file at `path` is a plain SQLite database (not encrypted). A missing or empty
/// file is not.
pub fn is_plain(path: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let mut header = [0u8; 16];
    match std::fs::File::open(path) {
        Ok(mut f) => match f.read_exact(&mut header) {
            Ok(()) => Ok(&header == PLAIN_HEADER),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(e),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Encrypts the plain database at `path` with `key`, in place: its log is checkpointed into
/// it, an encrypted copy is written next to it (`…-encrypting`) and renamed over it. A process
/// killed on the way leaves the plain file whole (the copy is written anew next time).
///
/// Processes of this program take turns (an exclusive lock on `…-encrypting.lock`; the one
/// that finds the file encrypted already does nothing); a connection still holding the plain
/// file's log makes it refuse (busy) rather than copy a partial file. A process of an older
/// Linli with the plain file open while it is replaced would go on writing to the replaced
/// file: upgrade with the app and the command line closed.
pub fn encrypt_in_place(path: &Path, key: &DbKey) -> rusqlite::Result<()> {
    let mut name = path.as_os_str().to_owned();
    name.push("-encrypting");
    let copy = PathBuf::from(&name);
    name.push(".lock");
    let lock = private_file(Path::new(&name)).map_err(io_error)?;
    lock.lock().map_err(io_error)?;
    if !is_plain(path).map_err(io_error)? {
        // Another process encrypted it while this one waited.
        return Ok(());
    }
    let _ = std::fs::remove_file(&copy);
    {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let (busy, _, _): (i64, i64, i64) =
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
        if busy != 0 {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                Some("another connection holds the database: close it and try again".into()),
            ));
        }
        private_db_file(&copy).map_err(io_error)?;
        let attach = Zeroizing::new(format!(
            "ATTACH DATABASE ?1 AS encrypted KEY {}",
            key.literal().as_str()
        ));
        conn.execute(&attach, [copy.to_string_lossy()])
            .map_err(|e| keyless(&e))?;
        conn.query_row("SELECT sqlcipher_export('encrypted')", [], |_| Ok(()))?;
        // The export copies schema and rows, not the header's numbers: the schema's version
        // goes along by hand.
        let version: i64 = conn.query_row("PRAGMA main.user_version", [], |r| r.get(0))?;
        conn.execute_batch(&format!("PRAGMA encrypted.user_version = {version};"))?;
        conn.execute("DETACH DATABASE encrypted", [])?;
        // Back to a rollback journal so that nothing of the plain file stays in a log.
        conn.pragma_update(None, "journal_mode", "DELETE")?;
    }
    std::fs::File::open(&copy)
        .and_then(|f| f.sync_all())
        .map_err(io_error)?;
    std::fs::rename(&copy, path).map_err(io_error)?;
    for log in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(log);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
    if let Some(dir) = path.parent() {
        // The rename is durable once the directory is.
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

/// An error of a statement that holds a key, without the statement: its code and a fixed text.
fn keyless(e: &rusqlite::Error) -> rusqlite::Error {
    let code = e
        .sqlite_error()
        .map_or(rusqlite::ffi::SQLITE_ERROR, |s| s.extended_code);
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(code),
        Some("setting the database's key failed".into()),
    )
}

fn io_error(e: std::io::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

/// The automatic checkpoint left on a connection whose checkpoints run in the background:
/// 8,192 pages (32 MB of log), a bound on the log should the thread fall behind.
pub const BACKSTOP_PAGES: i64 = 8192;

/// Opens the database at `path` with the settings every Linli database uses: write-ahead
/// logging, `synchronous = NORMAL` (a commit is durable at the next checkpoint), `busy` as
/// the longest wait for another connection's write, and plans that never depend on bound
/// values (SQLite's query planner stability guarantee). Without that last one, every cached
/// statement with a `column = ?` filter is parsed and planned again at each use: rusqlite
/// clears a statement's bindings when it takes it back, and SQLite then expires it (sealing
/// 293 edited documents for a push spent 62 % of its instructions re-preparing one query).
/// Neither the store nor the relay keeps planner statistics, so no plan is lost by it.
///
/// With `key`, the file is a SQLCipher database encrypted with it; a wrong key (or a plain
/// file) fails here with `SQLITE_NOTADB`, not at a later query. Deleted content is
/// overwritten (`secure_delete`), so it does not linger in free pages.
pub fn open(path: &Path, busy: Duration, key: Option<&DbKey>) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    if let Some(key) = key {
        // SQLCipher writes its own errors to stderr (a wrong key: "error decrypting page 1");
        // the caller reports them, in words.
        conn.execute_batch("PRAGMA cipher_log_level = NONE;")?;
        let pragma = Zeroizing::new(format!("PRAGMA key = {};", key.literal().as_str()));
        // An error here must not carry the statement (it holds the key).
        conn.execute_batch(&pragma).map_err(|e| keyless(&e))?;
        // SQLCipher reads the key at the first access: make that now.
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
        // Every page read from the file is decrypted and authenticated: a page cache of 16 MB
        // (SQLite's default is 2 MB) keeps a screen's or a merge's pages decrypted between
        // statements.
        conn.pragma_update(None, "cache_size", -16384)?;
    }
    conn.busy_timeout(busy)?;
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

/// Creates `dir` (and its parents) if missing, readable by its owner only (a store or a relay
/// holds residents' data, sealed or not). A directory that exists is narrowed to its owner
/// when it holds `db_file` (one this program made), and left as it is otherwise (a user's own
/// folder given as `--data`).
pub fn private_dir(dir: &Path, db_file: &str) -> std::io::Result<()> {
    let fresh = !dir.exists();
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    if fresh || dir.join(db_file).exists() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    #[cfg(not(unix))]
    let _ = (fresh, db_file);
    Ok(())
}

/// Makes the database file at `path`, and its write-ahead log and shared-memory files if they
/// exist, readable and writable by their owner only, creating the database file if missing
/// (SQLite then gives its log files the same mode). Never opens (and closes) an existing file:
/// closing any descriptor of a SQLite file drops the POSIX locks every connection of this
/// process holds on it (a second handle opened while the first writes would corrupt its
/// locking).
pub fn private_db_file(path: &Path) -> std::io::Result<()> {
    narrow_or_create(path)?;
    for log in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(log);
        let log = PathBuf::from(name);
        if log.exists() {
            narrow_or_create(&log)?;
        }
    }
    Ok(())
}

fn narrow_or_create(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if path.exists() {
            let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            }
            return Ok(());
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            // Nobody else had it open: it did not exist.
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

/// Creates `dir` (and its parents) if missing and makes it readable by its owner only, even if
/// it existed (a server's data directory, made by its operator).
pub fn private_dir_always(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Opens (creating if needed) a file that is not a database (a lock, a key), readable and
/// writable by its owner only.
pub fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// A thread that checkpoints a database's write-ahead log every period, until dropped (a last
/// one then).
///
/// With `synchronous = NORMAL` a commit reaches the log but is made durable against a power
/// cut only by the next checkpoint, and the write that triggers an automatic checkpoint pays
/// for it (copying the pages and an fsync: on a tablet's flash, a visible stall of an edit or
/// a merge; at the relay, 11 ms of a 12 ms push, measured on the sync benchmark). A
/// long-running process moves its checkpoints here: a passive checkpoint every period copies
/// what it can without waiting for readers or writers, so commits are on disk within a period
/// and no write waits for one ([`Checkpointer::on_commits`]: only after something was
/// committed, so an idle device sleeps). The writing connection keeps an automatic checkpoint far higher
/// ([`BACKSTOP_PAGES`], set by [`Checkpointer::start`]'s caller with [`backstop`]).
#[derive(Debug)]
pub struct Checkpointer {
    tx: mpsc::Sender<Tick>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the checkpoint thread is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tick {
    /// Something was committed.
    Commit,
    /// Stop, after a last checkpoint.
    Stop,
}

/// Tells a [`Checkpointer`] started with [`Checkpointer::on_commits`] that something was
/// committed. Cheap, and never blocks: call it from a commit hook.
#[derive(Debug, Clone)]
pub struct CommitNudge(mpsc::Sender<Tick>);

impl CommitNudge {
    /// Something was committed: a checkpoint follows within the period.
    pub fn committed(&self) {
        let _ = self.0.send(Tick::Commit);
    }
}

/// Leaves `conn`'s automatic checkpoint at [`BACKSTOP_PAGES`] (its checkpoints run on a
/// [`Checkpointer`]).
pub fn backstop(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "wal_autocheckpoint", BACKSTOP_PAGES)
}

impl Checkpointer {
    /// Starts a thread named `name` with a connection of its own to the database at `path`
    /// (one that never waits for a lock) that runs a passive checkpoint every `every`, then
    /// `after` with its connection. For a server, whose writes come from anywhere.
    pub fn start(
        path: &Path,
        key: Option<&DbKey>,
        name: &str,
        every: Duration,
        after: impl FnMut(&Connection) + Send + 'static,
    ) -> std::io::Result<Checkpointer> {
        Self::spawn(path, key, name, every, false, after)
    }

    /// As [`Checkpointer::start`], but the thread sleeps until told of a commit
    /// ([`CommitNudge::committed`]) and checkpoints `every` after it (commits meanwhile are
    /// folded in): a device that writes nothing does not wake for it.
    pub fn on_commits(
        path: &Path,
        key: Option<&DbKey>,
        name: &str,
        every: Duration,
        after: impl FnMut(&Connection) + Send + 'static,
    ) -> std::io::Result<(Checkpointer, CommitNudge)> {
        let c = Self::spawn(path, key, name, every, true, after)?;
        let nudge = CommitNudge(c.tx.clone());
        Ok((c, nudge))
    }

    fn spawn(
        path: &Path,
        key: Option<&DbKey>,
        name: &str,
        every: Duration,
        on_demand: bool,
        mut after: impl FnMut(&Connection) + Send + 'static,
    ) -> std::io::Result<Checkpointer> {
        let conn = open(path, Duration::ZERO, key).map_err(std::io::Error::other)?;
        let (tx, rx) = mpsc::channel::<Tick>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                loop {
                    // On demand, nothing happens until something is committed.
                    if on_demand && matches!(rx.recv(), Ok(Tick::Stop) | Err(_)) {
                        passive(&conn);
                        after(&conn);
                        return;
                    }
                    // Then wait out the period; commits meanwhile change nothing.
                    let due = std::time::Instant::now() + every;
                    let mut last = false;
                    loop {
                        let left = due.saturating_duration_since(std::time::Instant::now());
                        match rx.recv_timeout(left) {
                            Ok(Tick::Commit) => {}
                            Err(mpsc::RecvTimeoutError::Timeout) => break,
                            Ok(Tick::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                                last = true;
                                break;
                            }
                        }
                    }
                    passive(&conn);
                    after(&conn);
                    if last {
                        return;
                    }
                }
            })?;
        Ok(Checkpointer {
            tx,
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
        let _ = self.tx.send(Tick::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_is_private_and_checkpointed_in_the_background() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let data = dir.path().join("data");
        private_dir(&data, "db.sqlite").unwrap_or_else(|e| panic!("{e}"));
        let path = data.join("db.sqlite");
        private_db_file(&path).unwrap_or_else(|e| panic!("{e}"));
        let key = DbKey::random().unwrap_or_else(|e| panic!("{e}"));
        let conn =
            open(&path, Duration::from_secs(1), Some(&key)).unwrap_or_else(|e| panic!("{e}"));
        backstop(&conn).unwrap_or_else(|e| panic!("{e}"));
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mode, "wal");
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap_or_else(|e| panic!("{e}"));
        let (tx, rx) = mpsc::channel();
        let checkpoints = Checkpointer::start(
            &path,
            Some(&key),
            "test-checkpoint",
            Duration::from_millis(5),
            move |_| {
                let _ = tx.send(());
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        rx.recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("no checkpoint ran: {e}"));
        drop(checkpoints);
        // On demand: nothing until a commit is told, then one checkpoint a period after.
        let (tx, rx) = mpsc::channel();
        let (checkpoints, nudge) = Checkpointer::on_commits(
            &path,
            Some(&key),
            "test-on-commits",
            Duration::from_millis(5),
            move |_| {
                let _ = tx.send(());
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        nudge.committed();
        nudge.committed();
        rx.recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("no checkpoint after a commit: {e}"));
        assert!(
            rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "one for both"
        );
        drop(checkpoints);
        rx.recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("no last checkpoint: {e}"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| {
                std::fs::metadata(p)
                    .unwrap_or_else(|e| panic!("{e}"))
                    .permissions()
                    .mode()
                    & 0o777
            };
            assert_eq!(mode(&data), 0o700);
            assert_eq!(mode(&path), 0o600);
            let mut wal = path.as_os_str().to_owned();
            wal.push("-wal");
            assert_eq!(mode(Path::new(&wal)), 0o600);
        }
    }

    fn bytes_of(path: &Path) -> Vec<u8> {
        let mut all = std::fs::read(path).unwrap_or_else(|e| panic!("{e}"));
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        if let Ok(log) = std::fs::read(PathBuf::from(wal)) {
            all.extend(log);
        }
        all
    }

    fn contains(haystack: &[u8], needle: &str) -> bool {
        haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    }

    #[test]
    fn an_encrypted_database_shows_nothing_and_opens_only_with_its_key() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("db.sqlite");
        let key = DbKey::random().unwrap_or_else(|e| panic!("{e}"));
        let conn =
            open(&path, Duration::from_secs(1), Some(&key)).unwrap_or_else(|e| panic!("{e}"));
        conn.execute_batch(
            "CREATE TABLE people (name, id_number);
             INSERT INTO people VALUES ('张秀英', '11010519491231002X');",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let bytes = bytes_of(&path);
        assert!(!contains(&bytes, "张秀英") && !contains(&bytes, "11010519491231002X"));
        assert!(!is_plain(&path).unwrap_or_else(|e| panic!("{e}")));
        drop(conn);
        // Another key, or none: refused at open, not at some later query.
        let other = DbKey::random().unwrap_or_else(|e| panic!("{e}"));
        let err = open(&path, Duration::from_secs(1), Some(&other))
            .map(|_| ())
            .unwrap_err();
        assert_eq!(
            err.sqlite_error_code(),
            Some(rusqlite::ErrorCode::NotADatabase),
            "{err}"
        );
        assert!(open(&path, Duration::from_secs(1), None)
            .and_then(|c| c.query_row("SELECT count(*) FROM people", [], |r| r.get::<_, i64>(0)))
            .is_err());
        let conn =
            open(&path, Duration::from_secs(1), Some(&key)).unwrap_or_else(|e| panic!("{e}"));
        let name: String = conn
            .query_row("SELECT name FROM people", [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(name, "张秀英");
    }

    #[test]
    fn a_plain_database_is_encrypted_in_place_with_nothing_lost() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("db.sqlite");
        let conn = open(&path, Duration::from_secs(1), None).unwrap_or_else(|e| panic!("{e}"));
        conn.execute_batch(
            "CREATE TABLE people (name); INSERT INTO people VALUES ('张秀英');
             PRAGMA user_version = 13;",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for i in 0..500 {
            conn.execute("INSERT INTO people VALUES (?1)", [format!("居民{i}")])
                .unwrap_or_else(|e| panic!("{e}"));
        }
        drop(conn);
        assert!(is_plain(&path).unwrap_or_else(|e| panic!("{e}")));
        assert!(contains(&bytes_of(&path), "张秀英"));
        let key = DbKey::random().unwrap_or_else(|e| panic!("{e}"));
        encrypt_in_place(&path, &key).unwrap_or_else(|e| panic!("{e}"));
        assert!(!is_plain(&path).unwrap_or_else(|e| panic!("{e}")));
        assert!(!contains(&bytes_of(&path), "张秀英"));
        let conn =
            open(&path, Duration::from_secs(1), Some(&key)).unwrap_or_else(|e| panic!("{e}"));
        let n: i64 = conn
            .query_row("SELECT count(*) FROM people", [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n, 501);
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(version, 13, "the schema's version goes along");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("encrypting") && !n.ends_with(".lock"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    proptest::proptest! {
        /// Any text: a key or none, never a panic; a key's hex reads back as the same key.
        #[test]
        fn any_text_reads_as_a_key_or_none(text in ".{0,80}", bytes in proptest::array::uniform32(0u8..)) {
            if let Some(k) = DbKey::from_hex(&text) {
                let hex = k.to_hex();
                proptest::prop_assert_eq!(hex.as_str(), text.trim().to_ascii_lowercase());
            }
            let key = DbKey::from_bytes(bytes);
            let back = DbKey::from_hex(&key.to_hex());
            proptest::prop_assert_eq!(back.map(|k| *k.as_bytes()), Some(bytes));
        }
    }
}
