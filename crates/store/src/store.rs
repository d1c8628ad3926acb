//! [`Store`]: every record as an Automerge document in one SQLite file.
//!
//! - `docs`: one row per document: collection, scope, its compacted snapshot (`save()`), its
//!   current heads, its record as JSON, `seq`, the position of its latest write in the change
//!   feed, and `tail`, the positions of the chunks stored after its snapshot.
//! - `log`, the change feed: one row appended by each write of a document, at the next
//!   position (`seq`); a write that appends changes (`save_after(heads)`) keeps them there as
//!   a chunk (`data`, with those heads as `base`), listed in the document's `tail`; when a
//!   document has [`COMPACT_AFTER`] chunks they are folded into a new snapshot. A row is the
//!   feed's entry for its document while it is that document's latest write
//!   (`docs.seq = log.seq`), so `changes_since(n)` lists every document changed after point
//!   `n` once; rows neither latest nor in a tail are dead, deleted by [`Store::prune_log`].
//!   Every write appends at the end of one table: an edit writes about four pages, not eight.
//! - `q_*`: derived query tables (see [`crate::index`]).
//!
//! Architecture invariant: every write is one `BEGIN IMMEDIATE` transaction that loads the
//! documents it changes, writes their changes, appends to the feed and updates the derived
//! rows. A process killed at any point leaves each record before or after the write. The feed
//! only grows: its head is the largest `log.seq`, always some document's latest write, so
//! pruning never lowers it and a position is never given twice.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use automerge::transaction::CommitOptions;
use automerge::{ActorId, AutoCommit, ChangeHash};
use linli_domain::{AnyRecord, Collection, Community, Household, Scope, Sensitive, Timestamp};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::codec::{self, Dicts, Kind, Packer};
pub(crate) use crate::feed::{append_log, feed_head, read_chunks};
use crate::recent::Recent;
use crate::{DbKey, StoreError, index};

/// The file name of the database inside the data directory.
pub const DB_FILE: &str = "linli.sqlite";
/// How long a write waits for another connection's write to finish.
pub(crate) const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Incremental chunks a document may accumulate before it is compacted into a snapshot.
pub const COMPACT_AFTER: i64 = 16;

/// Schema migrations; `PRAGMA user_version` is the number applied.
const MIGRATIONS: &[&str] = &[
    // 1: documents, change chunks, metadata, derived query tables.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
     CREATE TABLE actors (actor TEXT PRIMARY KEY, device TEXT NOT NULL) WITHOUT ROWID;
     CREATE TABLE docs (
        id TEXT PRIMARY KEY,
        collection TEXT NOT NULL,
        community TEXT NOT NULL,
        grid TEXT,
        seq INTEGER NOT NULL,
        heads BLOB NOT NULL,
        snapshot BLOB NOT NULL,
        chunks INTEGER NOT NULL DEFAULT 0
     );
     CREATE UNIQUE INDEX docs_seq ON docs (seq);
     CREATE TABLE chunks (
        doc TEXT NOT NULL,
        n INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (doc, n)
     ) WITHOUT ROWID;
     CREATE TABLE q_households (
        id TEXT PRIMARY KEY, grid TEXT, compound TEXT NOT NULL, building TEXT NOT NULL,
        unit TEXT NOT NULL, room TEXT NOT NULL, tenure TEXT NOT NULL, members INTEGER NOT NULL,
        head TEXT, sort TEXT NOT NULL
     ) WITHOUT ROWID;
     CREATE INDEX q_households_sort ON q_households (sort);
     CREATE INDEX q_households_building ON q_households (building, compound);
     CREATE TABLE q_people (
        id TEXT NOT NULL, household TEXT NOT NULL, grid TEXT, name TEXT NOT NULL,
        initials TEXT NOT NULL, relation TEXT NOT NULL, present INTEGER NOT NULL, ord INTEGER NOT NULL,
        PRIMARY KEY (id, household)
     ) WITHOUT ROWID;
     CREATE INDEX q_people_household ON q_people (household);
     CREATE INDEX q_people_name ON q_people (name);
     CREATE INDEX q_people_initials ON q_people (initials);
     CREATE TABLE q_pii (
        person TEXT NOT NULL, doc TEXT NOT NULL, id4 TEXT NOT NULL, phone4 TEXT,
        PRIMARY KEY (person, doc)
     ) WITHOUT ROWID;
     CREATE INDEX q_pii_doc ON q_pii (doc);
     CREATE INDEX q_pii_id4 ON q_pii (id4);
     CREATE INDEX q_pii_phone4 ON q_pii (phone4);
     CREATE TABLE q_tags (
        tag TEXT NOT NULL, person TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (tag, person, doc)
     ) WITHOUT ROWID;
     CREATE INDEX q_tags_doc ON q_tags (doc);
     CREATE TABLE q_records (
        id TEXT PRIMARY KEY, collection TEXT NOT NULL, grid TEXT, compound TEXT NOT NULL,
        building TEXT NOT NULL, title TEXT NOT NULL, status TEXT NOT NULL, sort TEXT NOT NULL
     ) WITHOUT ROWID;
     CREATE INDEX q_records_collection ON q_records (collection, sort);",
    // 2: compressed snapshots (see `codec`); derived rows keyed by their document first, so
    // deleting a document's rows needs no index of its own.
    "CREATE TABLE dicts (id INTEGER PRIMARY KEY, collection TEXT NOT NULL, data BLOB NOT NULL);
     ALTER TABLE docs ADD COLUMN dict INTEGER REFERENCES dicts (id);
     CREATE TABLE q_pii2 (
        doc TEXT NOT NULL, person TEXT NOT NULL, id4 TEXT NOT NULL, phone4 TEXT,
        PRIMARY KEY (doc, person)
     ) WITHOUT ROWID;
     INSERT INTO q_pii2 (doc, person, id4, phone4) SELECT doc, person, id4, phone4 FROM q_pii;
     DROP TABLE q_pii;
     ALTER TABLE q_pii2 RENAME TO q_pii;
     CREATE INDEX q_pii_id4 ON q_pii (id4);
     CREATE INDEX q_pii_phone4 ON q_pii (phone4);
     CREATE TABLE q_tags2 (
        doc TEXT NOT NULL, person TEXT NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (doc, person, tag)
     ) WITHOUT ROWID;
     INSERT INTO q_tags2 (doc, person, tag) SELECT doc, person, tag FROM q_tags;
     DROP TABLE q_tags;
     ALTER TABLE q_tags2 RENAME TO q_tags;
     CREATE INDEX q_tags_tag ON q_tags (tag);",
    // 3: identity and sync state. `secrets` holds the device key and, on staff devices, the
    // community master secret (encryption at rest comes with the privacy work).
    "CREATE TABLE secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
     CREATE TABLE scope_keys (scope TEXT PRIMARY KEY, key BLOB NOT NULL) WITHOUT ROWID;
     CREATE TABLE peers (
        peer TEXT PRIMARY KEY, cursor INTEGER NOT NULL DEFAULT 0, synced_ms INTEGER
     ) WITHOUT ROWID;
     CREATE TABLE peer_heads (
        peer TEXT NOT NULL, doc TEXT NOT NULL, heads BLOB NOT NULL, PRIMARY KEY (peer, doc)
     ) WITHOUT ROWID;",
    // 4: what the app's screens need: a record's deadline (`due`, ms; open requests and
    // tasks) and the household it concerns (`ref`); the local audit log (reveals of ID
    // numbers and phones). The derived tables are rebuilt on open.
    "ALTER TABLE q_records ADD COLUMN due INTEGER;
     ALTER TABLE q_records ADD COLUMN ref TEXT;
     CREATE INDEX q_records_ref ON q_records (ref);
     CREATE TABLE audit (
        seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, user TEXT NOT NULL,
        action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL
     );
     INSERT OR REPLACE INTO meta (key, value) VALUES ('reindex', '1');",
    // 5: a task's checklist progress (`checked/all`) for task lists.
    "ALTER TABLE q_records ADD COLUMN progress TEXT;
     INSERT OR REPLACE INTO meta (key, value) VALUES ('reindex', '1');",
    // 6: documents by collection, for the "not yet synced" marks of one list.
    "CREATE INDEX docs_collection ON docs (collection);",
    // 7: how far in the change feed everything was sent to each peer (the outbox looks after it).
    "ALTER TABLE peers ADD COLUMN sent_seq INTEGER NOT NULL DEFAULT 0;",
    // 8: what people typed and did not save yet (see `drafts`): local, never synced.
    "CREATE TABLE drafts (
        form TEXT NOT NULL,
        subject TEXT NOT NULL,
        value TEXT NOT NULL,
        saved_ms INTEGER NOT NULL,
        PRIMARY KEY (form, subject)
     ) WITHOUT ROWID;",
    // 9: each document's record as JSON, kept with it (see `stored_record`): filled by the
    // rebuild this asks for.
    "ALTER TABLE docs ADD COLUMN record BLOB;
     INSERT OR REPLACE INTO meta (key, value) VALUES ('reindex', '1');",
    // 10: the heads each chunk's changes follow (see `Store::outbox_after`: a peer known to
    // have them is sent the stored chunks as they are, without decoding the document).
    // Chunks stored before have none: their documents are decoded, as before.
    "ALTER TABLE chunks ADD COLUMN base BLOB;",
    // 11: the change feed becomes an append-only log that also holds each write's changes
    // (see the module's description): a write appends one row at the end of one table
    // instead of updating a feed index, a chunk table and a counter (7.9 -> 4.1 pages
    // written an edit). The stored chunks move into it after the head, in order; their
    // documents take the last one's position (their latest write), so peers look at them
    // again (and find what they already hold).
    "CREATE TABLE log (
        seq INTEGER PRIMARY KEY,
        doc TEXT NOT NULL,
        data BLOB,
        base BLOB
     );
     ALTER TABLE docs ADD COLUMN tail TEXT;
     INSERT INTO log (seq, doc)
        SELECT seq, id FROM docs WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.doc = docs.id);
     INSERT INTO log (seq, doc, data, base)
        SELECT (SELECT coalesce(max(seq), 0) FROM docs) + row_number() OVER (ORDER BY d.seq, c.n),
               c.doc, c.data, c.base
        FROM chunks c JOIN docs d ON d.id = c.doc;
     CREATE INDEX log_doc_migrating ON log (doc);
     UPDATE docs SET
        seq = (SELECT max(seq) FROM log WHERE log.doc = docs.id),
        chunks = (SELECT count(*) FROM log WHERE log.doc = docs.id AND data IS NOT NULL),
        tail = (SELECT group_concat(seq, ' ' ORDER BY seq) FROM log
                WHERE log.doc = docs.id AND data IS NOT NULL)
        WHERE EXISTS (SELECT 1 FROM chunks c WHERE c.doc = docs.id);
     UPDATE docs SET chunks = 0 WHERE tail IS NULL;
     DROP INDEX log_doc_migrating;
     DROP INDEX docs_seq;
     DROP TABLE chunks;
     DELETE FROM meta WHERE key = 'seq';",
    // 12: records compressed with a dictionary of their own per collection (`docs.rdict`, as
    // snapshots are: `codec`); the stores' records written before are compressed when it is
    // opened (`pack_records`). A household's record: 853 -> about 120 bytes.
    "ALTER TABLE docs ADD COLUMN rdict INTEGER REFERENCES dicts (id);
     INSERT OR REPLACE INTO meta (key, value) VALUES ('pack_records', '1');",
    // 13: blobs received and set aside because they could not be used (see `aside`).
    "CREATE TABLE set_aside (
        peer TEXT NOT NULL,
        seq INTEGER NOT NULL,
        scope TEXT NOT NULL,
        sender TEXT NOT NULL,
        received_ms INTEGER NOT NULL,
        reason TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        PRIMARY KEY (peer, seq)
     ) WITHOUT ROWID;",
    // 14: whether nothing of a blob set aside could be read, or only some of its documents.
    "ALTER TABLE set_aside ADD COLUMN whole INTEGER NOT NULL DEFAULT 1;",
    // 15: why a sensitive value was shown (个人信息保护法: a purpose for each use).
    "ALTER TABLE audit ADD COLUMN reason TEXT NOT NULL DEFAULT '';",
    // 16: the audit log as a hash chain (each entry's hash covers the one before it), and the
    // device that wrote each entry; entries made before are chained when the store opens.
    "ALTER TABLE audit ADD COLUMN device TEXT NOT NULL DEFAULT '';
     ALTER TABLE audit ADD COLUMN hash BLOB;
     INSERT OR REPLACE INTO meta (key, value) VALUES ('audit_chain', '1');",
];

/// Who writes: the device's Automerge actor and the person using it.
#[derive(Debug, Clone)]
pub struct Author {
    /// The device's actor id (one per store).
    pub actor: ActorId,
    /// The device's name.
    pub device: String,
    /// The person at the device (recorded in each change's message).
    pub user: String,
}

/// What a write did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// Documents created.
    pub created: usize,
    /// Documents that received a change.
    pub changed: usize,
    /// Documents already equal to what was written.
    pub unchanged: usize,
    /// Compression dictionaries trained by this write (see the `codec` module).
    pub dictionaries: usize,
}

/// One entry of the change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    /// Feed position.
    pub seq: i64,
    /// Document id.
    pub id: String,
    /// Collection.
    pub collection: Collection,
    /// Scope.
    pub scope: Scope,
}

/// What a store holds ([`Store::stats`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStats {
    /// Documents per collection.
    pub documents: Vec<(Collection, i64)>,
    /// People living here (not moved out or deceased).
    pub people: i64,
    /// People with attention tags.
    pub people_with_tags: i64,
    /// The change feed's head.
    pub feed_head: i64,
    /// The database file and its write-ahead log, in bytes.
    pub bytes: u64,
}

/// The local store: one SQLite file of Automerge documents.
pub struct Store {
    conn: Connection,
    author: Author,
    path: PathBuf,
    /// The key its commits are announced under (see [`crate::changes`]).
    pub(crate) key: PathBuf,
    /// Pages of write-ahead log past which a commit checkpoints (shared by this process's
    /// handles of the file).
    pub(crate) checkpoint_pages: std::sync::Arc<std::sync::atomic::AtomicI64>,
    /// The key the file is encrypted with (for the connections a store opens besides its
    /// own: its checkpoint thread's).
    pub(crate) cipher: DbKey,
    /// Why sensitive values are about to be shown (required by [`Store::check_reveal`]).
    pub(crate) reveal_reason: Option<String>,
    dicts: Dicts,
    recent: Recent,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

pub(crate) fn encode_heads(heads: &[ChangeHash]) -> Vec<u8> {
    heads.iter().flat_map(|h| h.0).collect()
}

impl Store {
    /// Opens (creating if needed) the store in directory `dir`, encrypted with `key` (see
    /// [`crate::keys`] for where the key comes from). A plain store of an older Linli is
    /// encrypted with it first, in place, nothing lost.
    pub fn open(dir: &Path, key: &DbKey) -> Result<Store, StoreError> {
        let io = |source: std::io::Error| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        };
        linli_sqlite::private_dir(dir, DB_FILE).map_err(io)?;
        let path = dir.join(DB_FILE);
        if linli_sqlite::is_plain(&path).map_err(io)? {
            tracing::info!(path = %path.display(), "encrypting a plain store in place");
            linli_sqlite::encrypt_in_place(&path, key)?;
        }
        // Made readable by its owner only before SQLite opens it: its write-ahead log and
        // shared-memory files take the same mode.
        linli_sqlite::private_db_file(&path).map_err(io)?;
        let mut conn = match linli_sqlite::open(&path, BUSY_TIMEOUT, Some(key)) {
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) => {
                return Err(StoreError::WrongKey(path));
            }
            other => other?,
        };
        // The write path alone uses some 30 statements (docs, chunks, meta, every q_* table);
        // rusqlite's default cache of 16 made each edit re-parse half of them.
        conn.set_prepared_statement_cache_capacity(128);
        let key_for_handles = key.clone();
        let key = crate::changes::key(&path);
        let checkpoint_pages = crate::changes::threshold(&key);
        crate::changes::install(&mut conn, key.clone(), checkpoint_pages.clone())?;
        migrate(&mut conn)?;
        let actor = match get_meta(&conn, "actor")? {
            Some(hex) => hex_to_actor(&hex).ok_or_else(|| StoreError::Field {
                id: "meta".into(),
                field: "actor".into(),
                message: "is not hex".into(),
            })?,
            None => {
                let actor = ActorId::random();
                set_meta(&conn, "actor", &actor.to_hex_string())?;
                actor
            }
        };
        let device = match get_meta(&conn, "device")? {
            Some(d) => d,
            None => {
                let d = format!("device-{}", &actor.to_hex_string()[..8]);
                set_meta(&conn, "device", &d)?;
                d
            }
        };
        conn.execute(
            "INSERT OR IGNORE INTO actors (actor, device) VALUES (?1, ?2)",
            params![actor.to_hex_string(), device],
        )?;
        let user = get_meta(&conn, "user")?.unwrap_or_else(|| device.clone());
        let dicts = Dicts::load(&conn)?;
        let mut store = Store {
            dicts,
            recent: Recent::default(),
            conn,
            author: Author {
                actor,
                device,
                user,
            },
            path,
            key,
            cipher: key_for_handles,
            reveal_reason: None,
            checkpoint_pages,
        };
        // A migration that added derived columns asks for a rebuild from the documents.
        if get_meta(&store.conn, "reindex")?.is_some() {
            store.rebuild_index()?;
            store
                .conn
                .execute("DELETE FROM meta WHERE key = 'reindex'", [])?;
        }
        // Migration 16 asks for the audit entries made before it to be chained.
        if get_meta(&store.conn, "audit_chain")?.is_some() {
            crate::audit::chain_unchained(&mut store.conn)?;
        }
        // Migration 12 asks for the records stored before it to be compressed.
        if get_meta(&store.conn, "pack_records")?.is_some() {
            let tx = store
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Another process may have done it while this one waited for the lock.
            if get_meta(&tx, "pack_records")?.is_some() {
                codec::pack_stored_records(&tx, &Dicts::load(&tx)?)?;
                tx.execute("DELETE FROM meta WHERE key = 'pack_records'", [])?;
            }
            tx.commit()?;
            store.reload_dicts()?;
        }
        Ok(store)
    }

    /// The key the store is encrypted with (to open another handle of it).
    pub fn db_key(&self) -> &DbKey {
        &self.cipher
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Who writes.
    pub fn author(&self) -> &Author {
        &self.author
    }

    /// Sets the person recorded in this process's changes (not saved).
    pub fn set_user(&mut self, user: &str) {
        self.author.user = user.to_string();
    }

    /// Saves the default user and device name of this store.
    pub fn set_identity(&mut self, user: &str, device: Option<&str>) -> Result<(), StoreError> {
        set_meta(&self.conn, "user", user)?;
        self.author.user = user.to_string();
        if let Some(device) = device {
            set_meta(&self.conn, "device", device)?;
            self.conn.execute(
                "INSERT OR REPLACE INTO actors (actor, device) VALUES (?1, ?2)",
                params![self.author.actor.to_hex_string(), device],
            )?;
            self.author.device = device.to_string();
        }
        Ok(())
    }

    /// The raw connection, for read-only queries elsewhere in this crate.
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The connection, for writes elsewhere in this crate (each in its own transaction).
    pub(crate) fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// An immediate transaction and the compression dictionaries, read again first if another
    /// handle stored one since (a merge writes with both).
    pub(crate) fn immediate_with_dicts(&mut self) -> Result<(Transaction<'_>, &Dicts), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        self.dicts.refresh(&tx)?;
        Ok((tx, &self.dicts))
    }

    /// Reads the dictionaries again after a write trained new ones.
    pub(crate) fn reload_dicts(&mut self) -> Result<(), StoreError> {
        self.dicts = Dicts::load(&self.conn)?;
        Ok(())
    }

    /// The community id of this store, if it has one.
    pub fn community_id(&self) -> Result<Option<String>, StoreError> {
        get_meta(&self.conn, "community")
    }

    /// The community record.
    pub fn community(&self) -> Result<Community, StoreError> {
        let id = self.community_id()?.ok_or(StoreError::NoCommunity)?;
        match self.get(&id)? {
            Some(AnyRecord::Community(c)) => Ok(c),
            _ => Err(StoreError::NotFound(id)),
        }
    }

    /// Creates the store's community. Fails if it already has one.
    pub fn init_community(&mut self, community: Community) -> Result<(), StoreError> {
        if let Some(existing) = self.community_id()? {
            return Err(StoreError::HasCommunity(existing));
        }
        let id = community.id.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        set_meta(&tx, "community", &id)?;
        write_in(
            &tx,
            &self.dicts,
            &self.recent,
            &self.author,
            vec![AnyRecord::Community(community)],
            "create community",
        )?;
        tx.commit()?;
        // The device that creates a community is its root.
        self.identity()?;
        Ok(())
    }

    /// Writes records in one transaction: new ids become new documents; existing documents
    /// get a change holding only the difference; equal ones are left alone.
    pub fn put(
        &mut self,
        records: Vec<AnyRecord>,
        message: &str,
    ) -> Result<WriteReport, StoreError> {
        self.writing(|store, tx| store.write(tx, records, message))
    }

    /// Runs `f` in one immediate transaction: everything it reads and writes through the
    /// store is one atomic step (no other process writes in between) and takes the database's
    /// locks once, not once per statement. Committed if `f` succeeds, rolled back otherwise.
    pub(crate) fn writing(
        &mut self,
        f: impl FnOnce(&Store, &Transaction<'_>) -> Result<WriteReport, StoreError>,
    ) -> Result<WriteReport, StoreError> {
        let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
        // Another handle may have trained a dictionary since this one read them.
        self.dicts.refresh(&tx)?;
        let report = f(self, &tx)?;
        tx.commit()?;
        if report.dictionaries > 0 {
            self.reload_dicts()?;
        }
        Ok(report)
    }

    /// [`Store::put`] inside a transaction [`Store::writing`] opened.
    pub(crate) fn write(
        &self,
        tx: &Transaction<'_>,
        records: Vec<AnyRecord>,
        message: &str,
    ) -> Result<WriteReport, StoreError> {
        write_in(
            tx,
            &self.dicts,
            &self.recent,
            &self.author,
            records,
            message,
        )
    }

    /// Loads a document with all its changes.
    pub fn load_doc(&self, id: &str) -> Result<Option<(Collection, AutoCommit)>, StoreError> {
        load_doc(&self.conn, &self.dicts, id)
    }

    /// Runs `f` on the document whose stored heads are `heads`: the one in the cache of
    /// recent documents when it holds it (lent, not copied, and kept there after), else one
    /// loaded from the database.
    pub(crate) fn with_doc_at<T>(
        &self,
        id: &str,
        heads: &[u8],
        f: impl FnOnce(Collection, &mut AutoCommit) -> T,
    ) -> Result<Option<T>, StoreError> {
        let (collection, mut doc, record) = match self.recent.take(id, heads) {
            Some((collection, Some(doc), record)) => (collection, doc, record),
            cached => match self.load_doc(id)? {
                Some((collection, doc)) => (collection, doc, cached.and_then(|c| c.2)),
                None => return Ok(None),
            },
        };
        let out = f(collection, &mut doc);
        self.recent
            .keep(id, heads.to_vec(), collection, Some(doc), record);
        Ok(Some(out))
    }

    /// Reads a record (from the cache of recent documents when it holds the stored heads).
    pub fn get(&self, id: &str) -> Result<Option<AnyRecord>, StoreError> {
        let Some(heads) = stored_heads(&self.conn, id)? else {
            return Ok(None);
        };
        if let Some(rec) = self.recent.record(id, &heads) {
            return Ok(Some(rec));
        }
        if let Some(rec) = stored_record(&self.conn, &self.dicts, id)? {
            self.recent
                .keep(id, heads, rec.collection(), None, Some(rec.clone()));
            return Ok(Some(rec));
        }
        let Some((collection, mut doc)) = self.load_doc(id)? else {
            return Ok(None);
        };
        let rec = hydrate(id, collection, &doc)?;
        let heads = encode_heads(&doc.get_heads());
        self.recent
            .keep(id, heads, collection, Some(doc), Some(rec.clone()));
        Ok(Some(rec))
    }

    /// A household and its sensitive document.
    pub fn household(&self, id: &str) -> Result<Option<(Household, Sensitive)>, StoreError> {
        let Some(AnyRecord::Household(h)) = self.get(id)? else {
            return Ok(None);
        };
        let s = match self.get(&Sensitive::doc_id(id))? {
            Some(AnyRecord::Sensitive(s)) => s,
            _ => Sensitive::for_household(&h),
        };
        Ok(Some((h, s)))
    }

    /// The encoded heads stored for document `id` (to compare replicas), if it exists.
    pub fn heads_of(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        stored_heads(&self.conn, id)
    }

    /// [`Store::heads_of`] for each of `ids`, read in one transaction (one consistent state,
    /// and the database's read lock taken once).
    pub fn heads_of_each(&self, ids: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        let heads = ids
            .iter()
            .map(|id| stored_heads(&tx, id))
            .collect::<Result<_, _>>()?;
        tx.commit()?;
        Ok(heads)
    }

    /// Every household a person is on (they keep a row where they moved out from), with
    /// whether they live there now.
    pub fn households_of(&self, person: &str) -> Result<Vec<(String, bool)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT household, present FROM q_people WHERE id = ?1")?;
        let rows = stmt.query_map([person], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The household a person belongs to.
    pub fn household_of(&self, person: &str) -> Result<Option<String>, StoreError> {
        // Present first, then the first household by id, chosen here among the person's few
        // rows (this once worked around SQLite planning the statement again for every id,
        // 4 % of an edit; `linli_sqlite::open` has since removed the cause for every statement).
        let mut best: Option<(bool, String)> = None;
        for (household, present) in self.households_of(person)? {
            let better = match &best {
                None => true,
                Some((p, h)) => {
                    (present, std::cmp::Reverse(&household)) > (*p, std::cmp::Reverse(h))
                }
            };
            if better {
                best = Some((present, household));
            }
        }
        Ok(best.map(|(_, h)| h))
    }

    /// The collection of a document, if it exists.
    pub fn collection_of(&self, id: &str) -> Result<Option<Collection>, StoreError> {
        let c: Option<String> = self
            .conn
            .prepare_cached("SELECT collection FROM docs WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        Ok(c.and_then(|c| Collection::parse(&c)))
    }

    /// The compacted Automerge bytes of a document (what `export-doc` writes).
    pub fn export_doc(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        let (_, mut doc) = self
            .load_doc(id)?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        Ok(doc.save())
    }

    /// The change feed: documents changed after position `since`, oldest first.
    pub fn changes_since(&self, since: i64, limit: usize) -> Result<Vec<FeedEntry>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT l.seq, d.id, d.collection, d.community, d.grid
             FROM log l JOIN docs d ON d.id = l.doc AND d.seq = l.seq
             WHERE l.seq > ?1 ORDER BY l.seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![since, limit as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get(3)?,
                r.get(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, id, collection, community, grid) = row?;
            let Some(collection) = Collection::parse(&collection) else {
                continue;
            };
            out.push(FeedEntry {
                seq,
                id,
                collection,
                scope: Scope { community, grid },
            });
        }
        Ok(out)
    }

    /// The latest position of the change feed.
    pub fn feed_head(&self) -> Result<i64, StoreError> {
        feed_head(&self.conn)
    }

    /// Drops and recomputes every derived query table, and each document's stored record,
    /// from the documents.
    pub fn rebuild_index(&mut self) -> Result<usize, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for t in index::TABLES {
            tx.execute(&format!("DELETE FROM {t}"), [])?;
        }
        let ids: Vec<(String, String)> = {
            let mut stmt = tx.prepare("SELECT id, collection FROM docs ORDER BY id")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut packers = Packers::new(&self.dicts);
        for (id, _) in &ids {
            if let Some((collection, doc)) = load_doc(&tx, &self.dicts, id)? {
                let rec = hydrate(id, collection, &doc)?;
                index::index(&tx, &rec)?;
                let (record, rdict) = packers.pack_record(collection, &record_json(&rec)?)?;
                tx.prepare_cached("UPDATE docs SET record = ?2, rdict = ?3 WHERE id = ?1")?
                    .execute(params![id, record, rdict])?;
            }
        }
        tx.commit()?;
        // Records kept in memory were read from the stored ones, which this may have repaired.
        self.recent = Recent::default();
        Ok(ids.len())
    }

    /// Every row of the derived tables and every stored record, as text, in a stable order
    /// (for checking that what is kept write by write equals a rebuild from the documents).
    pub fn dump_index(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for t in index::TABLES {
            let mut stmt = self
                .conn
                .prepare(&format!("SELECT * FROM {t} ORDER BY 1, 2"))?;
            let n = stmt.column_count();
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let mut line = format!("{t}:");
                for i in 0..n {
                    let v: rusqlite::types::Value = row.get(i)?;
                    line.push_str(&format!(" {v:?}"));
                }
                out.push(line);
            }
        }
        let mut stmt = self
            .conn
            .prepare("SELECT id, record, rdict FROM docs ORDER BY id")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let (id, record, rdict): (String, Option<Vec<u8>>, Option<i64>) =
                (row.get(0)?, row.get(1)?, row.get(2)?);
            let record = record.map(|r| {
                match self
                    .dicts
                    .unpack(Some(&self.conn), &id, Kind::Record, rdict, r)
                {
                    Ok(json) => String::from_utf8_lossy(&json).into_owned(),
                    Err(e) => format!("unreadable: {e}"),
                }
            });
            out.push(format!("record: {id} {record:?}"));
        }
        Ok(out)
    }

    /// Counts of documents per collection.
    pub fn counts(&self) -> Result<Vec<(Collection, i64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT collection, COUNT(*) FROM docs GROUP BY collection")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (c, n) = row?;
            if let Some(c) = Collection::parse(&c) {
                out.push((c, n));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Runs a read-only query that returns one integer: a probe for tests. Nothing above the
    /// store passes SQL; it asks the typed questions ([`Store::stats`],
    /// [`Store::household_count`]).
    pub fn count(&self, sql: &str) -> Result<i64, StoreError> {
        Ok(self.conn.query_row(sql, [], |r| r.get(0))?)
    }

    /// Households on this device.
    pub fn household_count(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM q_households", [], |r| r.get(0))?)
    }

    /// What the store holds: documents per collection, people living here, people with
    /// attention tags, the change feed's head and the file's size.
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let count = |sql: &str| -> Result<i64, StoreError> {
            Ok(self.conn.query_row(sql, [], |r| r.get(0))?)
        };
        let bytes = ["", "-wal"]
            .iter()
            .filter_map(|s| {
                let mut name = self.path.as_os_str().to_owned();
                name.push(s);
                std::fs::metadata(PathBuf::from(name)).ok()
            })
            .map(|m| m.len())
            .sum();
        Ok(StoreStats {
            documents: self.counts()?,
            people: count("SELECT COUNT(*) FROM q_people WHERE present = 1")?,
            people_with_tags: count("SELECT COUNT(DISTINCT person) FROM q_tags")?,
            feed_head: self.feed_head()?,
            bytes,
        })
    }

    /// Writes the WAL back into the database file (e.g. before measuring its size).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// SQLite's own consistency check; `ok` when the file is sound.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }

    /// Hex ids of known actors → device names.
    pub fn actors(&self) -> Result<HashMap<String, String>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT actor, device FROM actors")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let supported = MIGRATIONS.len() as i64;
    if version > supported {
        return Err(StoreError::TooNew {
            found: version,
            supported,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Another process may have migrated while we waited for the lock.
        let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if now > i as i64 {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

pub(crate) fn get_meta(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

pub(crate) fn set_meta(conn: &Connection, key: &str, value: &str) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
        .execute(params![key, value])?;
    Ok(())
}

fn hex_to_actor(hex: &str) -> Option<ActorId> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    bytes.map(ActorId::from)
}

/// The heads stored for document `id`, if it exists.
fn stored_heads(conn: &Connection, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT heads FROM docs WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?)
}

/// A record as stored beside its document: JSON.
pub(crate) fn record_json(rec: &AnyRecord) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(rec).map_err(|e| StoreError::Field {
        id: rec.id().to_string(),
        field: "record".into(),
        message: e.to_string(),
    })
}

/// The record of document `id` as stored beside it (`None` if the document or its stored
/// record is missing: a store upgraded and not yet rebuilt).
///
/// Every write and merge stores the record it wrote (the hydration of the document it
/// stored) in the same transaction, so reading one never decodes an Automerge document:
/// a household and its sensitive document read this way take 8 µs instead of 140 µs, and
/// an edit decodes only the document it changes. `doctor` checks them against the documents.
pub(crate) fn stored_record(
    conn: &Connection,
    dicts: &Dicts,
    id: &str,
) -> Result<Option<AnyRecord>, StoreError> {
    let row: Option<(String, Option<Vec<u8>>, Option<i64>)> = conn
        .prepare_cached("SELECT collection, record, rdict FROM docs WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((collection, Some(packed), rdict)) = row else {
        return Ok(None);
    };
    let json = dicts.unpack(Some(conn), id, Kind::Record, rdict, packed);
    let parsed = Collection::parse(&collection)
        .and_then(|collection| AnyRecord::from_json_slice(collection, json.as_deref().ok()?).ok());
    if parsed.is_none() {
        // Derived, so never the only copy: the caller reads the document instead, the next
        // write of it stores a good one, and `doctor` finds and rebuilds it. (The parser's
        // message is not logged: it may quote a field's value.)
        tracing::warn!(
            doc = id,
            "stored record does not parse; reading the document instead"
        );
    }
    Ok(parsed)
}

/// A stored document as read from SQLite, not yet decoded.
pub(crate) struct StoredDoc {
    collection: String,
    /// Its grid (`None`: community-wide).
    pub(crate) grid: Option<String>,
    snapshot: Vec<u8>,
    dict: Option<i64>,
    chunks: Vec<Vec<u8>>,
}

impl StoredDoc {
    /// How many chunks are stored after its snapshot.
    pub(crate) fn chunk_count(&self) -> i64 {
        self.chunks.len() as i64
    }
}

/// Reads a stored document's bytes (the SQLite part of [`load_doc`]).
pub(crate) fn read_doc(conn: &Connection, id: &str) -> Result<Option<StoredDoc>, StoreError> {
    let row = conn
        .prepare_cached("SELECT collection, snapshot, dict, tail, grid FROM docs WHERE id = ?1")?
        .query_row([id], |r| {
            let stored = StoredDoc {
                collection: r.get(0)?,
                grid: r.get(4)?,
                snapshot: r.get(1)?,
                dict: r.get(2)?,
                chunks: Vec::new(),
            };
            Ok((stored, r.get::<_, Option<String>>(3)?))
        })
        .optional()?;
    let Some((mut stored, tail)) = row else {
        return Ok(None);
    };
    stored.chunks = read_chunks(conn, id, tail.as_deref())?
        .into_iter()
        .map(|(data, _)| data)
        .collect();
    Ok(Some(stored))
}

/// Decodes a stored document (the CPU part of [`load_doc`]: decompression and Automerge).
/// `conn`, when given, lets it read a dictionary stored after `dicts` were loaded.
pub(crate) fn decode_doc(
    conn: Option<&Connection>,
    dicts: &Dicts,
    id: &str,
    stored: StoredDoc,
) -> Result<(Collection, AutoCommit), StoreError> {
    let snapshot = dicts.unpack(conn, id, Kind::Snapshot, stored.dict, stored.snapshot)?;
    let damaged = |source| StoreError::Automerge {
        id: id.to_string(),
        source: Box::new(source),
    };
    let mut doc = AutoCommit::load(&snapshot).map_err(damaged)?;
    for data in &stored.chunks {
        doc.load_incremental(data).map_err(damaged)?;
    }
    let collection = Collection::parse(&stored.collection).ok_or_else(|| StoreError::Field {
        id: id.to_string(),
        field: "collection".into(),
        message: format!("unknown stored collection {}", stored.collection),
    })?;
    Ok((collection, doc))
}

pub(crate) fn load_doc(
    conn: &Connection,
    dicts: &Dicts,
    id: &str,
) -> Result<Option<(Collection, AutoCommit)>, StoreError> {
    read_doc(conn, id)?
        .map(|stored| decode_doc(Some(conn), dicts, id, stored))
        .transpose()
}

/// Reads a document's bytes as they arrive from another device or sit in a store (an
/// Automerge save, possibly followed by incremental changes) as a record of `collection`: an
/// error for bytes that are not a document of that kind, never a panic.
pub fn record_from_bytes(
    id: &str,
    collection: Collection,
    bytes: &[u8],
) -> Result<AnyRecord, StoreError> {
    let doc = AutoCommit::load(bytes).map_err(|source| StoreError::Automerge {
        id: id.to_string(),
        source: Box::new(source),
    })?;
    hydrate(id, collection, &doc)
}

pub(crate) fn hydrate(
    id: &str,
    collection: Collection,
    doc: &AutoCommit,
) -> Result<AnyRecord, StoreError> {
    AnyRecord::hydrate_from(collection, doc).map_err(|source| StoreError::Hydrate {
        id: id.to_string(),
        collection: collection.code().to_string(),
        source: Box::new(source),
    })
}

fn commit_options(author: &Author, message: &str) -> CommitOptions {
    let msg = serde_json::json!({ "by": author.user, "what": message }).to_string();
    CommitOptions::default()
        .with_message(msg)
        .with_time(Timestamp::now().0 / 1000)
}

/// A new document: its snapshot (plain Automerge bytes) and heads.
pub(crate) struct Built {
    pub(crate) snapshot: Vec<u8>,
    pub(crate) heads: Vec<u8>,
}

/// A snapshot or record as stored: bytes and the dictionary they are compressed with.
pub(crate) type Packed = (Vec<u8>, Option<i64>);

/// The dictionaries to compress with, by collection and kind, looked up on first use.
pub(crate) struct Packers<'a> {
    dicts: &'a Dicts,
    by_collection: HashMap<(Collection, Kind), Packer<'a>>,
}

impl<'a> Packers<'a> {
    pub(crate) fn new(dicts: &'a Dicts) -> Self {
        Packers {
            dicts,
            by_collection: HashMap::new(),
        }
    }

    /// A snapshot of a document of `collection`, as stored.
    pub(crate) fn pack(
        &mut self,
        collection: Collection,
        raw: &[u8],
    ) -> Result<Packed, StoreError> {
        self.pack_as(collection, Kind::Snapshot, raw)
    }

    /// A record's JSON ([`record_json`]), as stored.
    pub(crate) fn pack_record(
        &mut self,
        collection: Collection,
        json: &[u8],
    ) -> Result<Packed, StoreError> {
        self.pack_as(collection, Kind::Record, json)
    }

    fn pack_as(
        &mut self,
        collection: Collection,
        kind: Kind,
        raw: &[u8],
    ) -> Result<Packed, StoreError> {
        let packer = match self.by_collection.entry((collection, kind)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(self.dicts.packer(collection.code(), kind)?)
            }
        };
        packer.pack(raw)
    }
}

/// A new document for a record.
fn new_doc(author: &Author, rec: &AnyRecord, message: &str) -> Result<Built, StoreError> {
    let mut doc = AutoCommit::new().with_actor(author.actor.clone());
    rec.reconcile_into(&mut doc)
        .map_err(|source| StoreError::Reconcile {
            id: rec.id().to_string(),
            source: Box::new(source),
        })?;
    doc.commit_with(commit_options(author, message));
    Ok(Built {
        heads: encode_heads(&doc.get_heads()),
        snapshot: save(&mut doc),
    })
}

/// The Automerge bytes of a snapshot. Automerge's own column compression (deflate) is left
/// off: the store compresses whole snapshots with a trained dictionary, which does better on
/// plain bytes.
pub(crate) fn save(doc: &mut AutoCommit) -> Vec<u8> {
    doc.save_nocompress()
}

/// The threads [`par_map`] and [`par_pipeline`] use: the machine's parallelism, up to 8
/// (asked once: the answer reads cgroup files).
fn threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(8)
    })
}

/// Maps `items` on every core (up to 8 threads), keeping their order. `init` makes each
/// thread's scratch state. Building and compressing documents are the import's hot paths.
pub(crate) fn par_map<T: Sync, S, R: Send>(
    items: &[T],
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, &T) -> Result<R, StoreError> + Sync,
) -> Result<Vec<R>, StoreError> {
    // Small batches stay on this thread.
    let threads = if items.len() < 32 { 1 } else { threads() };
    if threads == 1 {
        let mut state = init();
        return items.iter().map(|t| f(&mut state, t)).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let (init, f) = (&init, &f);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    let mut state = init();
                    part.iter()
                        .map(|t| f(&mut state, t))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for h in handles {
            match h.join() {
                Ok(part) => out.extend(part?),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        Ok(out)
    })
}

/// Fewer items than this are mapped on the calling thread by [`par_pipeline`].
const PIPELINE_MIN: usize = 8;

/// Maps `items` on every core, as [`par_map`], and hands each result to `sink` on the calling
/// thread, in order, as soon as it and every one before it are done: the caller's part of
/// the work (writing to SQLite, which only its thread may do) goes on while the workers map
/// the items after, instead of waiting for all of them. Stops at the first error in the
/// items' order, of `f` or of `sink` (the workers then take no further item), and returns it:
/// `sink` has seen exactly the items before it, as on one thread.
pub(crate) fn par_pipeline<T: Sync, S, R: Send>(
    items: &[T],
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, &T) -> Result<R, StoreError> + Sync,
    mut sink: impl FnMut(usize, R) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let threads = if items.len() < PIPELINE_MIN {
        1
    } else {
        threads()
    };
    if threads == 1 {
        let mut state = init();
        for (i, t) in items.iter().enumerate() {
            sink(i, f(&mut state, t)?)?;
        }
        return Ok(());
    }
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (init, f, next_ref, stop_ref) = (&init, &f, &next, &stop);
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel::<(usize, Result<R, StoreError>)>();
        for _ in 0..threads {
            let tx = tx.clone();
            s.spawn(move || {
                let mut state = init();
                while !stop_ref.load(Ordering::Relaxed) {
                    let i = next_ref.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    if tx.send((i, f(&mut state, item))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Results that came before their turn, by index. Items are taken in order, so when one
        // fails every item before it is taken already: its result still comes, and the
        // error returned is that of the first item that failed, as on one thread.
        let mut early: HashMap<usize, Result<R, StoreError>> = HashMap::new();
        let mut done = 0;
        let mut run = || -> Result<(), StoreError> {
            for (i, result) in &rx {
                if result.is_err() {
                    // No further item is of use.
                    stop.store(true, Ordering::Relaxed);
                }
                early.insert(i, result);
                while let Some(r) = early.remove(&done) {
                    sink(done, r?)?;
                    done += 1;
                }
            }
            Ok(())
        };
        let result = run();
        if result.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        result?;
        // Every worker has stopped (the channel closed): each item was mapped, unless one
        // panicked, which the scope passes on.
        if done < items.len() {
            return Err(StoreError::Field {
                id: String::new(),
                field: "merge".into(),
                message: format!(
                    "{} of {} items were not mapped",
                    items.len() - done,
                    items.len()
                ),
            });
        }
        Ok(())
    })
}

pub(crate) fn next_seq(tx: &Transaction<'_>) -> Result<i64, StoreError> {
    Ok(feed_head(tx)? + 1)
}

/// The write path shared by every mutation; runs inside the caller's transaction.
pub(crate) fn write_in(
    tx: &Transaction<'_>,
    dicts: &Dicts,
    recent: &Recent,
    author: &Author,
    records: Vec<AnyRecord>,
    message: &str,
) -> Result<WriteReport, StoreError> {
    let mut report = WriteReport::default();
    let mut seq = next_seq(tx)?;
    let mut fresh = Vec::new();
    let mut existing = Vec::new();
    {
        let mut exists = tx.prepare_cached("SELECT 1 FROM docs WHERE id = ?1")?;
        for rec in &records {
            if exists.exists([rec.id()])? {
                existing.push(rec);
            } else {
                fresh.push(rec);
            }
        }
    }
    let mut touched: Vec<&str> = records.iter().map(|r| r.collection().code()).collect();
    touched.sort_unstable();
    touched.dedup();
    let built = par_map(
        &fresh,
        || (),
        |_, rec| Ok((new_doc(author, rec, message)?, record_json(rec)?)),
    )?;
    // A collection reaching its dictionary threshold trains them now, before anything is
    // written, so that no snapshot or record is stored twice.
    let samples: Vec<(&str, &[u8], &[u8])> = fresh
        .iter()
        .zip(&built)
        .map(|(rec, (b, json))| {
            (
                rec.collection().code(),
                b.snapshot.as_slice(),
                json.as_slice(),
            )
        })
        .collect();
    let trained = codec::train_where_due(tx, dicts, &touched, &samples)?;
    let reloaded;
    let dicts = if trained > 0 {
        reloaded = Dicts::load(tx)?;
        &reloaded
    } else {
        dicts
    };
    report.dictionaries = trained;
    let jobs: Vec<(Collection, (Built, Vec<u8>))> =
        fresh.iter().map(|r| r.collection()).zip(built).collect();
    let packed = par_map(
        &jobs,
        || Packers::new(dicts),
        |packers, (collection, (b, json))| {
            Ok((
                packers.pack(*collection, &b.snapshot)?,
                packers.pack_record(*collection, json)?,
            ))
        },
    )?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO docs (id, collection, community, grid, seq, heads, snapshot, dict, chunks, record, rdict)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, ?10)",
        )?;
        for ((rec, (_, (Built { heads, .. }, _))), ((snapshot, dict), (record, rdict))) in
            fresh.iter().zip(&jobs).zip(packed)
        {
            let scope = rec.scope();
            insert.execute(params![
                rec.id(),
                rec.collection().code(),
                scope.community,
                scope.grid,
                seq,
                heads,
                snapshot,
                dict,
                record,
                rdict
            ])?;
            append_log(tx, seq, rec.id(), None)?;
            seq += 1;
            index::index(tx, rec)?;
            report.created += 1;
        }
    }
    let mut packers = Packers::new(dicts);
    for rec in existing {
        let id = rec.id();
        let Some(heads) = stored_heads(tx, id)? else {
            continue;
        };
        // What is stored: from the cache (with its document), else the stored record, else
        // read from the document. A record left equal needs no document at all.
        let (stored, mut loaded) = match recent.take(id, &heads) {
            Some((collection, Some(doc), Some(r))) => (r, Some((collection, doc))),
            Some((collection, Some(doc), None)) => {
                (hydrate(id, collection, &doc)?, Some((collection, doc)))
            }
            Some((_, None, Some(r))) => (r, None),
            _ => match stored_record(tx, dicts, id)? {
                Some(r) => (r, None),
                None => match load_doc(tx, dicts, id)? {
                    Some((collection, doc)) => {
                        (hydrate(id, collection, &doc)?, Some((collection, doc)))
                    }
                    None => continue,
                },
            },
        };
        if stored.collection() != rec.collection() {
            return Err(StoreError::Field {
                id: id.to_string(),
                field: "collection".into(),
                message: format!(
                    "the stored record is in {}, not {}",
                    stored.collection().code(),
                    rec.collection().code()
                ),
            });
        }
        if stored == *rec {
            report.unchanged += 1;
            let (collection, doc) = match loaded.take() {
                Some((collection, doc)) => (collection, Some(doc)),
                None => (stored.collection(), None),
            };
            recent.keep(id, heads, collection, doc, Some(stored));
            continue;
        }
        let (collection, mut doc) = match loaded {
            Some(l) => l,
            None => load_doc(tx, dicts, id)?.ok_or_else(|| StoreError::NotFound(id.into()))?,
        };
        doc.set_actor(author.actor.clone());
        let before = doc.get_heads();
        rec.reconcile_changes(&stored, &mut doc)
            .map_err(|source| StoreError::Reconcile {
                id: id.to_string(),
                source: Box::new(source),
            })?;
        if doc.commit_with(commit_options(author, message)).is_none() {
            report.unchanged += 1;
            continue;
        }
        store_update(tx, &mut packers, &mut doc, rec, &before, seq)?;
        seq += 1;
        index::reindex_after(tx, &stored, rec)?;
        report.changed += 1;
        let heads = encode_heads(&doc.get_heads());
        recent.keep(id, heads, collection, Some(doc), Some((*rec).clone()));
    }
    Ok(report)
}

/// How a changed, already stored document is saved: its new changes as a chunk after the
/// heads they follow, or, when it has [`COMPACT_AFTER`] chunks, a new (packed) snapshot.
pub(crate) enum Saved {
    /// Changes appended after the stored ones.
    Chunk {
        /// The changes (`save_after(base)`).
        data: Vec<u8>,
        /// The heads they follow, encoded.
        base: Vec<u8>,
        /// The chunks stored before this one.
        stored: i64,
    },
    /// A new snapshot replacing the stored one and its chunks.
    Snapshot(Packed),
}

/// Encodes what [`write_update`] stores of a changed document that had `stored` chunks and
/// heads `before` (the CPU part: runs on any thread). `changes`, when given, are exactly the
/// changes made after `before`, already encoded (as received): stored as they are instead of
/// being encoded again.
pub(crate) fn encode_update(
    packers: &mut Packers<'_>,
    collection: Collection,
    doc: &mut AutoCommit,
    before: &[ChangeHash],
    stored: i64,
    changes: Option<Vec<u8>>,
) -> Result<Saved, StoreError> {
    Ok(if stored + 1 >= COMPACT_AFTER {
        Saved::Snapshot(packers.pack(collection, &save(doc))?)
    } else {
        Saved::Chunk {
            data: changes.unwrap_or_else(|| doc.save_after(before)),
            base: encode_heads(before),
            stored,
        }
    })
}

/// Writes a changed, already stored document `id`: what [`encode_update`] made of it, its new
/// heads, its record (as stored: [`Packers::pack_record`]) and its feed position `seq`.
pub(crate) fn write_update(
    tx: &Transaction<'_>,
    id: &str,
    saved: Saved,
    heads: &[u8],
    record: &Packed,
    seq: i64,
) -> Result<(), StoreError> {
    let (record, rdict) = record;
    match saved {
        Saved::Snapshot((snapshot, dict)) => {
            append_log(tx, seq, id, None)?;
            tx.prepare_cached(
                "UPDATE docs SET snapshot = ?2, dict = ?3, heads = ?4, seq = ?5, chunks = 0,
                 tail = NULL, record = ?6, rdict = ?7 WHERE id = ?1",
            )?
            .execute(params![id, snapshot, dict, heads, seq, record, rdict])?;
        }
        Saved::Chunk { data, base, stored } => {
            append_log(tx, seq, id, Some((&data, &base)))?;
            tx.prepare_cached(
                "UPDATE docs SET heads = ?2, seq = ?3, chunks = ?4, record = ?5, rdict = ?6,
                 tail = CASE WHEN tail IS NULL THEN ?7 ELSE tail || ' ' || ?7 END
                 WHERE id = ?1",
            )?
            .execute(params![
                id,
                heads,
                seq,
                stored + 1,
                record,
                rdict,
                seq.to_string()
            ])?;
        }
    }
    Ok(())
}

/// Saves a changed, already stored document ([`encode_update`] then [`write_update`]), with
/// its record `rec` and its feed position `seq`.
pub(crate) fn store_update(
    tx: &Transaction<'_>,
    packers: &mut Packers<'_>,
    doc: &mut AutoCommit,
    rec: &AnyRecord,
    before: &[ChangeHash],
    seq: i64,
) -> Result<(), StoreError> {
    let id = rec.id();
    let stored: i64 = tx
        .prepare_cached("SELECT chunks FROM docs WHERE id = ?1")?
        .query_row([id], |r| r.get(0))?;
    let saved = encode_update(packers, rec.collection(), doc, before, stored, None)?;
    let heads = encode_heads(&doc.get_heads());
    let record = packers.pack_record(rec.collection(), &record_json(rec)?)?;
    write_update(tx, id, saved, &heads, &record, seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Results reach the sink in order, each once, however the workers finish; the first
    /// error in the items' order (of a worker or of the sink) ends the run and is returned,
    /// the sink having seen exactly the items before it.
    #[test]
    fn a_pipeline_hands_results_over_in_order_and_stops_at_the_first_error() {
        let items: Vec<u64> = (0..200).collect();
        // Early items take longest, so that later ones are done first.
        let slow = |_: &mut (), &i: &u64| -> Result<u64, StoreError> {
            std::thread::sleep(std::time::Duration::from_micros(200u64.saturating_sub(i)));
            if i == 150 || i == 170 {
                return Err(StoreError::NotFound(format!("item {i}")));
            }
            Ok(i * 2)
        };
        let mut seen = Vec::new();
        let err = par_pipeline(
            &items,
            || (),
            slow,
            |at, v| {
                assert_eq!(v, at as u64 * 2);
                seen.push(at);
                Ok(())
            },
        );
        assert!(matches!(err, Err(StoreError::NotFound(m)) if m == "item 150"));
        assert_eq!(seen, (0..150).collect::<Vec<_>>());

        let mut seen = Vec::new();
        let err = par_pipeline(
            &items[..100],
            || (),
            slow,
            |at, _| {
                if at == 30 {
                    return Err(StoreError::NotFound("sink".into()));
                }
                seen.push(at);
                Ok(())
            },
        );
        assert!(matches!(err, Err(StoreError::NotFound(m)) if m == "sink"));
        assert_eq!(seen, (0..30).collect::<Vec<_>>());

        let mut seen = Vec::new();
        par_pipeline(
            &items[..120],
            || (),
            slow,
            |at, _| {
                seen.push(at);
                Ok(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(seen, (0..120).collect::<Vec<_>>());
    }

    /// A cached statement that filters on `column = ?` is planned once, not at every use
    /// (see `linli_sqlite::open`; without it each use below re-prepares the statement).
    #[test]
    fn cached_statements_are_not_prepared_again_at_each_use() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store =
            Store::open(dir.path(), &linli_testkit::key()).unwrap_or_else(|e| panic!("{e}"));
        let sql = "SELECT d.id FROM log l JOIN docs d ON d.id = l.doc AND d.seq = l.seq
                   LEFT JOIN peer_heads p ON p.peer = ?1 AND p.doc = d.id
                   WHERE l.seq > ?2 AND (p.heads IS NULL OR p.heads != d.heads)";
        for (doc, base) in [("a", 1), ("b", 2), ("c", 3)] {
            let mut stmt = store
                .conn
                .prepare_cached(sql)
                .unwrap_or_else(|e| panic!("{e}"));
            let mut rows = stmt
                .query(params![doc, base])
                .unwrap_or_else(|e| panic!("{e}"));
            while rows.next().unwrap_or_else(|e| panic!("{e}")).is_some() {}
        }
        let stmt = store
            .conn
            .prepare_cached(sql)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            stmt.get_status(rusqlite::StatementStatus::RePrepare),
            0,
            "the statement was planned again"
        );
    }

    /// The author of documents written by an older version, in a migration test.
    fn old_author() -> Author {
        Author {
            actor: ActorId::random(),
            device: "old".into(),
            user: "old".into(),
        }
    }

    /// A version 10 store: its chunks table becomes feed rows listed in their documents'
    /// tails, every document is in the feed once, and nothing read changes.
    #[test]
    fn a_version_10_store_moves_its_chunks_into_the_feed() {
        use automerge::{ROOT, transaction::Transactable};
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let community = Community::new("c1", "幸福社区", Timestamp(0));
        let author = old_author();
        let rec = AnyRecord::Community(community.clone());
        let built = new_doc(&author, &rec, "v10").unwrap_or_else(|e| panic!("{e}"));
        let mut doc = AutoCommit::load(&built.snapshot).unwrap_or_else(|e| panic!("{e}"));
        let mut chunks = Vec::new();
        for n in 0..2 {
            let before = doc.get_heads();
            doc.put(ROOT, "note", format!("edit {n}"))
                .unwrap_or_else(|e| panic!("{e}"));
            doc.commit();
            chunks.push((doc.save_after(&before), encode_heads(&before)));
        }
        let heads = encode_heads(&doc.get_heads());
        let other = new_doc(
            &author,
            &AnyRecord::Community(Community::new("c2", "和平社区", Timestamp(0))),
            "v10",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        {
            let conn = Connection::open(dir.path().join(DB_FILE)).unwrap_or_else(|e| panic!("{e}"));
            for sql in &MIGRATIONS[..10] {
                conn.execute_batch(sql).unwrap_or_else(|e| panic!("{e}"));
            }
            conn.pragma_update(None, "user_version", 10)
                .unwrap_or_else(|e| panic!("{e}"));
            // c1 written at 5 (its second chunk), c2 at 7, the feed's head.
            conn.execute(
                "INSERT INTO docs (id, collection, community, grid, seq, heads, snapshot, chunks, record)
                 VALUES ('c1', 'community', 'c1', NULL, 5, ?1, ?2, 2, ?3),
                        ('c2', 'community', 'c2', NULL, 7, ?4, ?5, 0, NULL)",
                params![
                    heads,
                    built.snapshot,
                    record_json(&rec).unwrap_or_else(|e| panic!("{e}")),
                    other.heads,
                    other.snapshot
                ],
            )
            .unwrap_or_else(|e| panic!("{e}"));
            for (n, (data, base)) in chunks.iter().enumerate() {
                conn.execute(
                    "INSERT INTO chunks (doc, n, data, base) VALUES ('c1', ?1, ?2, ?3)",
                    params![n as i64, data, base],
                )
                .unwrap_or_else(|e| panic!("{e}"));
            }
            conn.execute_batch(
                "INSERT INTO meta VALUES ('community', 'c1'); INSERT INTO meta VALUES ('seq', '7');",
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
        let store =
            Store::open(dir.path(), &linli_testkit::key()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            store.count("PRAGMA user_version").unwrap_or(0),
            MIGRATIONS.len() as i64
        );
        // The chunks follow the head, in order; c1's latest write is its last chunk.
        let feed = store.changes_since(0, 10).unwrap_or_else(|e| panic!("{e}"));
        let order: Vec<(i64, &str)> = feed.iter().map(|f| (f.seq, f.id.as_str())).collect();
        assert_eq!(order, [(7, "c2"), (9, "c1")]);
        assert_eq!(store.feed_head().unwrap_or(0), 9);
        assert_eq!(
            store
                .count("SELECT count(*) FROM sqlite_schema WHERE name IN ('chunks', 'docs_seq')")
                .unwrap_or(-1),
            0
        );
        let (_, mut loaded) = store
            .load_doc("c1")
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("c1 is gone"));
        assert_eq!(encode_heads(&loaded.get_heads()), heads);
        assert_eq!(loaded.save(), doc.save());
        assert_eq!(
            read_chunks(&store.conn, "c1", Some("8 9")).unwrap_or_else(|e| panic!("{e}")),
            chunks
                .iter()
                .map(|(d, b)| (d.clone(), Some(b.clone())))
                .collect::<Vec<_>>()
        );
        // The next write takes the next position.
        let tx = Transaction::new_unchecked(&store.conn, TransactionBehavior::Deferred)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(next_seq(&tx).unwrap_or(0), 10);
    }

    #[test]
    fn a_version_1_store_migrates_and_keeps_its_data() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let community = Community::new("c1", "幸福社区", Timestamp(0));
        {
            let conn = Connection::open(dir.path().join(DB_FILE)).unwrap_or_else(|e| panic!("{e}"));
            conn.execute_batch(MIGRATIONS[0])
                .unwrap_or_else(|e| panic!("{e}"));
            conn.pragma_update(None, "user_version", 1)
                .unwrap_or_else(|e| panic!("{e}"));
            let author = old_author();
            let rec = AnyRecord::Community(community.clone());
            let built = new_doc(&author, &rec, "v1").unwrap_or_else(|e| panic!("{e}"));
            conn.execute(
                "INSERT INTO docs (id, collection, community, grid, seq, heads, snapshot, chunks)
                 VALUES ('c1', 'community', 'c1', NULL, 1, ?1, ?2, 0)",
                params![built.heads, built.snapshot],
            )
            .unwrap_or_else(|e| panic!("{e}"));
            conn.execute_batch(
                "INSERT INTO meta VALUES ('community', 'c1');
                 INSERT INTO q_pii (person, doc, id4, phone4) VALUES ('p1', 'h1.pii', '002X', '5678');
                 INSERT INTO q_tags (tag, person, doc) VALUES ('低保', 'p1', 'h1.pii');",
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
        let path = dir.path().join(DB_FILE);
        assert!(linli_sqlite::is_plain(&path).unwrap_or_else(|e| panic!("{e}")));
        let store =
            Store::open(dir.path(), &linli_testkit::key()).unwrap_or_else(|e| panic!("{e}"));
        // An older Linli's store is plain: it is encrypted in place, then migrated.
        assert!(!linli_sqlite::is_plain(&path).unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(
            store.count("PRAGMA user_version").unwrap_or(0),
            MIGRATIONS.len() as i64
        );
        assert_eq!(store.community().ok(), Some(community));
        // Migration 4 rebuilds the derived tables from the documents: rows no document
        // derives (the hand-made q_pii and q_tags rows above) are gone, the new columns exist.
        assert_eq!(store.count("SELECT COUNT(*) FROM q_pii").unwrap_or(-1), 0);
        assert_eq!(store.count("SELECT COUNT(*) FROM q_tags").unwrap_or(-1), 0);
        assert_eq!(
            store
                .count("SELECT COUNT(*) FROM q_records WHERE due IS NULL AND ref IS NULL")
                .unwrap_or(-1),
            1
        );
        assert_eq!(store.count("SELECT COUNT(*) FROM audit").unwrap_or(-1), 0);
        assert_eq!(
            store
                .count("SELECT COUNT(*) FROM meta WHERE key = 'reindex'")
                .unwrap_or(-1),
            0
        );
        // Migration 9: every document's record is stored beside it, and read from there.
        assert_eq!(
            store
                .count("SELECT COUNT(*) FROM docs WHERE record IS NULL")
                .unwrap_or(-1),
            0
        );
        assert_eq!(
            stored_record(&store.conn, &store.dicts, "c1").unwrap_or_else(|e| panic!("{e}")),
            Some(AnyRecord::Community(
                store.community().unwrap_or_else(|e| panic!("{e}"))
            ))
        );
    }
}
