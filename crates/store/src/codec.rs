//! Snapshot and record compression: zstd with a dictionary per collection and kind, trained
//! from the store's own documents.
//!
//! Records (`docs.record`, each document's hydration as JSON, see `store`) are compressed the
//! same way with dictionaries of their own (`dicts.collection` = `households/record`;
//! `docs.rdict`): a household's 853 bytes of JSON store in ~110.
//!
//! A household's Automerge snapshot is about 700 bytes, and most of it is the same from one
//! household to the next: column headers, field names, the actor id. Compressing one small
//! document on its own gains almost nothing; with a dictionary trained on a few thousand of its
//! neighbours it shrinks about 3.5×. So when a collection first reaches [`TRAIN_AFTER`]
//! documents, the write that got it there trains a dictionary from their snapshots, stores it in
//! the `dicts` table and recompresses the collection, all in the same transaction.
//!
//! `docs.dict` names the dictionary a snapshot is compressed with (`NULL`: plain Automerge
//! bytes). A dictionary is never changed or deleted once stored, so every snapshot stays
//! readable. Another handle on the file (the app's screens and its sync loop each have one;
//! another process) may store one after this handle read them: each write and merge reads
//! them again first if so, inside its transaction, and a read that meets an unknown one
//! borrows a fresh set for itself. Incremental chunks stay plain: they are small, and folded into the snapshot after
//! [`crate::store::COMPACT_AFTER`] of them.

use std::collections::HashMap;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use zstd::dict::{DecoderDictionary, EncoderDictionary};

use crate::StoreError;

/// Documents a collection needs before it gets a dictionary.
pub const TRAIN_AFTER: i64 = 1000;
/// Snapshots sampled to train a dictionary.
const TRAIN_SAMPLES: usize = 4000;
/// The size of a trained dictionary.
const DICT_BYTES: usize = 32 * 1024;
/// zstd level: 3 is zstd's default; higher levels gain under 5% here and cost import time.
const LEVEL: i32 = 3;
/// The largest snapshot we agree to decompress (a damaged frame must not allocate without bound).
const MAX_SNAPSHOT: usize = 256 * 1024 * 1024;

thread_local! {
    static DCTX: std::cell::RefCell<zstd::zstd_safe::DCtx<'static>> =
        std::cell::RefCell::new(zstd::zstd_safe::DCtx::create());
    /// One compression context per thread, reused: an edit compresses its record, and making
    /// a context (and its first tables) for each cost more than the compression (~50 µs).
    static CCTX: std::cell::RefCell<zstd::zstd_safe::CCtx<'static>> =
        std::cell::RefCell::new(zstd::zstd_safe::CCtx::create());
}

/// The store's dictionaries, prepared for use.
#[derive(Default)]
pub(crate) struct Dicts {
    enc: HashMap<i64, EncoderDictionary<'static>>,
    dec: HashMap<i64, DecoderDictionary<'static>>,
    /// The dictionary new snapshots of a collection are compressed with.
    current: HashMap<String, i64>,
    /// The largest id loaded (dictionaries are only ever added, with growing ids).
    newest: i64,
    /// Dictionaries a read met that were stored after these were loaded (see [`Dicts::unpack`]).
    late: Mutex<HashMap<i64, DecoderDictionary<'static>>>,
}

/// What a dictionary of `collection` compresses: its documents' snapshots, or their records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// Automerge snapshots (`docs.snapshot`, `docs.dict`).
    Snapshot,
    /// Records as JSON (`docs.record`, `docs.rdict`).
    Record,
}

impl Kind {
    /// The name a dictionary of this kind is stored under in `dicts.collection`.
    pub(crate) fn dict_name(self, collection: &str) -> String {
        match self {
            Kind::Snapshot => collection.to_string(),
            Kind::Record => format!("{collection}/record"),
        }
    }

    fn field(self) -> &'static str {
        match self {
            Kind::Snapshot => "snapshot",
            Kind::Record => "record",
        }
    }
}

impl Dicts {
    /// Reads every stored dictionary.
    pub(crate) fn load(conn: &Connection) -> Result<Dicts, StoreError> {
        let mut dicts = Dicts::default();
        let mut stmt = conn.prepare("SELECT id, collection, data FROM dicts ORDER BY id")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let (id, collection, data): (i64, String, Vec<u8>) =
                (row.get(0)?, row.get(1)?, row.get(2)?);
            dicts.add(id, collection, &data)?;
        }
        Ok(dicts)
    }

    fn add(&mut self, id: i64, collection: String, data: &[u8]) -> Result<(), StoreError> {
        let damaged = |e: std::io::Error| StoreError::Field {
            id: format!("dicts/{id}"),
            field: "data".into(),
            message: e.to_string(),
        };
        self.enc.insert(
            id,
            EncoderDictionary::try_copy(data, LEVEL).map_err(damaged)?,
        );
        self.dec
            .insert(id, DecoderDictionary::try_copy(data).map_err(damaged)?);
        self.current.insert(collection, id);
        self.newest = self.newest.max(id);
        Ok(())
    }

    /// Reads the dictionaries again if another connection stored one since these were read (a
    /// store handle opened before another handle, or process, trained one would otherwise
    /// neither compress with it nor know the collection has one). Call it inside a write
    /// transaction: no other writer can add one until it ends.
    pub(crate) fn refresh(&mut self, conn: &Connection) -> Result<(), StoreError> {
        let newest: i64 = conn
            .prepare_cached("SELECT coalesce(max(id), 0) FROM dicts")?
            .query_row([], |r| r.get(0))?;
        if newest > self.newest {
            *self = Dicts::load(conn)?;
        }
        Ok(())
    }

    /// The dictionary new snapshots or records (`kind`) of `collection` use, if it has one.
    pub(crate) fn current(&self, collection: &str, kind: Kind) -> Option<i64> {
        self.current.get(&kind.dict_name(collection)).copied()
    }

    /// A compressor for `collection`'s new snapshots or records (plain when it has no
    /// dictionary of that kind yet).
    pub(crate) fn packer(&self, collection: &str, kind: Kind) -> Result<Packer<'_>, StoreError> {
        let Some(id) = self.current(collection, kind) else {
            return Ok(Packer { inner: None });
        };
        let Some(dict) = self.enc.get(&id) else {
            return Ok(Packer { inner: None });
        };
        Ok(Packer {
            inner: Some((id, dict)),
        })
    }

    /// The plain bytes of a stored snapshot or record (`kind`) of document `doc`, compressed
    /// with dictionary `dict` (`None`: stored plain). A dictionary stored after these were
    /// loaded (by another handle or process) is read from `conn`, if given, and kept for the
    /// next time.
    pub(crate) fn unpack(
        &self,
        conn: Option<&Connection>,
        doc: &str,
        kind: Kind,
        dict: Option<i64>,
        packed: Vec<u8>,
    ) -> Result<Vec<u8>, StoreError> {
        let Some(id) = dict else {
            return Ok(packed);
        };
        if let Some(d) = self.dec.get(&id) {
            return decompress(doc, kind, d, &packed);
        }
        let mut late = self.late.lock().unwrap_or_else(|e| e.into_inner());
        let d = match late.entry(id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let data: Option<Vec<u8>> = match conn {
                    Some(conn) => conn
                        .prepare_cached("SELECT data FROM dicts WHERE id = ?1")?
                        .query_row([id], |r| r.get(0))
                        .optional()?,
                    None => None,
                };
                let data = data.ok_or_else(|| StoreError::Field {
                    id: doc.to_string(),
                    field: kind.field().into(),
                    message: format!("compressed with dictionary {id}, which is missing"),
                })?;
                e.insert(
                    DecoderDictionary::try_copy(&data).map_err(|e| StoreError::Field {
                        id: format!("dicts/{id}"),
                        field: "data".into(),
                        message: e.to_string(),
                    })?,
                )
            }
        };
        decompress(doc, kind, d, &packed)
    }
}

/// Decompresses one stored frame with its dictionary.
fn decompress(
    doc: &str,
    kind: Kind,
    d: &DecoderDictionary<'static>,
    packed: &[u8],
) -> Result<Vec<u8>, StoreError> {
    let damaged = |message: String| StoreError::Field {
        id: doc.to_string(),
        field: kind.field().into(),
        message,
    };
    let size = match zstd::zstd_safe::get_frame_content_size(packed) {
        Ok(Some(n)) if n <= MAX_SNAPSHOT as u64 => n as usize,
        Ok(Some(n)) => return Err(damaged(format!("claims {n} bytes, over the limit"))),
        Ok(None) | Err(_) => return Err(damaged("is not a zstd frame with its size".into())),
    };
    let mut out = Vec::with_capacity(size);
    // One decompression context per thread, reused: making one costs more than
    // decompressing a household's snapshot.
    DCTX.with(|dctx| {
        dctx.borrow_mut()
            .decompress_using_ddict(&mut out, packed, d.as_ddict())
    })
    .map_err(|code| {
        damaged(format!(
            "cannot be decompressed: {}",
            zstd::zstd_safe::get_error_name(code)
        ))
    })?;
    Ok(out)
}

/// Compresses the snapshots or the records of one collection.
pub(crate) struct Packer<'a> {
    inner: Option<(i64, &'a EncoderDictionary<'static>)>,
}

impl Packer<'_> {
    /// (stored bytes, dictionary id or `None` for plain).
    pub(crate) fn pack(&self, raw: &[u8]) -> Result<(Vec<u8>, Option<i64>), StoreError> {
        let Some((id, dict)) = self.inner else {
            return Ok((raw.to_vec(), None));
        };
        let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(raw.len()));
        CCTX.with(|cctx| {
            cctx.borrow_mut()
                .compress_using_cdict(&mut out, raw, dict.as_cdict())
        })
        .map_err(|code| StoreError::Codec(zstd::zstd_safe::get_error_name(code).to_string()))?;
        Ok((out, Some(id)))
    }
}

/// Trains dictionaries for the collections in `touched` that reach [`TRAIN_AFTER`] documents
/// with this write (`fresh`: the new documents it is about to store, as (collection, snapshot,
/// record JSON)) and lack one, for their snapshots and for their records; stores them, and
/// compresses what the collection has stored plain with them. Runs inside the write's
/// transaction; returns how many dictionaries it made. A kind whose samples are too alike or
/// too few for zstd to train on simply stays plain.
pub(crate) fn train_where_due(
    conn: &Connection,
    dicts: &Dicts,
    touched: &[&str],
    fresh: &[(&str, &[u8], &[u8])],
) -> Result<usize, StoreError> {
    let mut made = 0;
    for &collection in touched {
        let kinds: Vec<Kind> = [Kind::Snapshot, Kind::Record]
            .into_iter()
            .filter(|k| dicts.current(collection, *k).is_none())
            .collect();
        let new: Vec<&(&str, &[u8], &[u8])> =
            fresh.iter().filter(|(c, _, _)| *c == collection).collect();
        // Only a write that adds documents can bring a collection to the threshold (a
        // collection at it already, whose training failed, is not retried on every edit).
        if kinds.is_empty() || new.is_empty() {
            continue;
        }
        let stored: i64 = conn.query_row(
            "SELECT COUNT(*) FROM docs WHERE collection = ?1",
            [collection],
            |r| r.get(0),
        )?;
        if stored + (new.len() as i64) < TRAIN_AFTER {
            continue;
        }
        for kind in kinds {
            let samples: Vec<&[u8]> = new
                .iter()
                .map(|(_, snapshot, record)| match kind {
                    Kind::Snapshot => *snapshot,
                    Kind::Record => *record,
                })
                .collect();
            made += usize::from(train(conn, collection, kind, &samples)?);
        }
    }
    Ok(made)
}

/// Trains a record dictionary for every collection of [`TRAIN_AFTER`] documents or more that
/// has none, and compresses its stored records with it (a store whose records were stored
/// before records were compressed). Returns how many it made.
pub(crate) fn pack_stored_records(conn: &Connection, dicts: &Dicts) -> Result<usize, StoreError> {
    let due: Vec<String> = {
        let mut stmt =
            conn.prepare("SELECT collection FROM docs GROUP BY collection HAVING COUNT(*) >= ?1")?;
        let rows = stmt.query_map([TRAIN_AFTER], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut made = 0;
    for collection in due {
        if dicts.current(&collection, Kind::Record).is_none() {
            made += usize::from(train(conn, &collection, Kind::Record, &[])?);
        }
    }
    Ok(made)
}

/// Trains one dictionary of `kind` for `collection` from what it has stored plain and `new`
/// samples, stores it, and compresses the stored plain ones with it. False if zstd could not
/// train on them.
fn train(
    conn: &Connection,
    collection: &str,
    kind: Kind,
    new: &[&[u8]],
) -> Result<bool, StoreError> {
    let (column, dict_column) = match kind {
        Kind::Snapshot => ("snapshot", "dict"),
        Kind::Record => ("record", "rdict"),
    };
    let plain: Vec<(String, Vec<u8>)> = {
        let mut stmt = conn.prepare(&format!(
            "SELECT id, {column} FROM docs
             WHERE collection = ?1 AND {dict_column} IS NULL AND {column} IS NOT NULL"
        ))?;
        let rows = stmt.query_map([collection], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    let samples: Vec<&[u8]> = plain
        .iter()
        .map(|(_, s)| s.as_slice())
        .chain(new.iter().copied())
        .take(TRAIN_SAMPLES)
        .collect();
    let data = match zstd::dict::from_samples(&samples, DICT_BYTES) {
        Ok(d) => d,
        Err(e) => {
            tracing::info!(collection, ?kind, error = %e, "no compression dictionary trained");
            return Ok(false);
        }
    };
    let name = kind.dict_name(collection);
    conn.execute(
        "INSERT INTO dicts (collection, data) VALUES (?1, ?2)",
        params![name, data],
    )?;
    let id = conn.last_insert_rowid();
    let mut local = Dicts::default();
    local.add(id, name, &data)?;
    let packer = local.packer(collection, kind)?;
    let mut update = conn.prepare(&format!(
        "UPDATE docs SET {column} = ?2, {dict_column} = ?3 WHERE id = ?1"
    ))?;
    for (doc, raw) in &plain {
        let (packed, dict) = packer.pack(raw)?;
        update.execute(params![doc, packed, dict])?;
    }
    tracing::debug!(
        collection,
        ?kind,
        bytes = data.len(),
        "compression dictionary trained"
    );
    Ok(true)
}
