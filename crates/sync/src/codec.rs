//! Snapshot compression: zstd with a dictionary per collection, trained from the store's own
//! documents.
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

use rusqlite::{Connection, params};
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

    /// Whether another connection stored a dictionary since these were read (a store handle
    /// opened before another handle, or process, trained one cannot read what it compressed).
    pub(crate) fn stale(&self, conn: &Connection) -> Result<bool, StoreError> {
        let newest: i64 = conn
            .prepare_cached("SELECT coalesce(max(id), 0) FROM dicts")?
            .query_row([], |r| r.get(0))?;
        Ok(newest > self.newest)
    }

    /// Whether dictionary `id` is loaded.
    pub(crate) fn has(&self, id: i64) -> bool {
        self.dec.contains_key(&id)
    }

    /// The dictionary new snapshots of `collection` use, if it has one.
    pub(crate) fn current(&self, collection: &str) -> Option<i64> {
        self.current.get(collection).copied()
    }

    /// A compressor for `collection`'s new snapshots (plain when it has no dictionary yet).
    pub(crate) fn packer(&self, collection: &str) -> Result<Packer<'_>, StoreError> {
        let Some(id) = self.current(collection) else {
            return Ok(Packer { inner: None });
        };
        let Some(dict) = self.enc.get(&id) else {
            return Ok(Packer { inner: None });
        };
        let c = zstd::bulk::Compressor::with_prepared_dictionary(dict).map_err(codec_error)?;
        Ok(Packer {
            inner: Some((id, c)),
        })
    }

    /// The Automerge bytes of a stored snapshot.
    pub(crate) fn unpack(
        &self,
        doc: &str,
        dict: Option<i64>,
        snapshot: Vec<u8>,
    ) -> Result<Vec<u8>, StoreError> {
        let Some(id) = dict else {
            return Ok(snapshot);
        };
        let damaged = |message: String| StoreError::Field {
            id: doc.to_string(),
            field: "snapshot".into(),
            message,
        };
        let d = self
            .dec
            .get(&id)
            .ok_or_else(|| damaged(format!("compressed with dictionary {id}, which is missing")))?;
        let size = match zstd::zstd_safe::get_frame_content_size(&snapshot) {
            Ok(Some(n)) if n <= MAX_SNAPSHOT as u64 => n as usize,
            Ok(Some(n)) => return Err(damaged(format!("claims {n} bytes, over the limit"))),
            Ok(None) | Err(_) => return Err(damaged("is not a zstd frame with its size".into())),
        };
        let mut out = Vec::with_capacity(size);
        // One decompression context per thread, reused: making one costs more than
        // decompressing a household's snapshot.
        DCTX.with(|dctx| {
            dctx.borrow_mut()
                .decompress_using_ddict(&mut out, &snapshot, d.as_ddict())
        })
        .map_err(|code| {
            damaged(format!(
                "cannot be decompressed: {}",
                zstd::zstd_safe::get_error_name(code)
            ))
        })?;
        Ok(out)
    }
}

/// Compresses snapshots of one collection.
pub(crate) struct Packer<'a> {
    inner: Option<(i64, zstd::bulk::Compressor<'a>)>,
}

impl Packer<'_> {
    /// (stored bytes, dictionary id or `None` for plain).
    pub(crate) fn pack(&mut self, raw: &[u8]) -> Result<(Vec<u8>, Option<i64>), StoreError> {
        match &mut self.inner {
            None => Ok((raw.to_vec(), None)),
            Some((id, c)) => Ok((c.compress(raw).map_err(codec_error)?, Some(*id))),
        }
    }
}

fn codec_error(e: std::io::Error) -> StoreError {
    StoreError::Codec(e.to_string())
}

/// Trains dictionaries for the collections in `touched` that reach [`TRAIN_AFTER`] documents
/// with this write (`fresh`: the new snapshots it is about to store, by collection) and have
/// none yet; stores them, and compresses the collection's snapshots already stored with them.
/// Runs inside the write's transaction; returns how many dictionaries it made. A collection
/// whose snapshots are too alike or too few for zstd to train on simply stays plain.
pub(crate) fn train_where_due(
    conn: &Connection,
    dicts: &Dicts,
    touched: &[&str],
    fresh: &[(&str, &[u8])],
) -> Result<usize, StoreError> {
    let mut made = 0;
    for &collection in touched {
        if dicts.current(collection).is_some() {
            continue;
        }
        let new: Vec<&[u8]> = fresh
            .iter()
            .filter(|(c, _)| *c == collection)
            .map(|(_, s)| *s)
            .collect();
        // Only a write that adds documents can bring a collection to the threshold (a
        // collection at it already, whose training failed, is not retried on every edit).
        if new.is_empty() {
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
        let plain: Vec<(String, Vec<u8>)> = {
            let mut stmt = conn
                .prepare("SELECT id, snapshot FROM docs WHERE collection = ?1 AND dict IS NULL")?;
            let rows = stmt.query_map([collection], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        let samples: Vec<&[u8]> = plain
            .iter()
            .map(|(_, s)| s.as_slice())
            .chain(new)
            .take(TRAIN_SAMPLES)
            .collect();
        let data = match zstd::dict::from_samples(&samples, DICT_BYTES) {
            Ok(d) => d,
            Err(e) => {
                tracing::info!(collection, error = %e, "no compression dictionary trained");
                continue;
            }
        };
        conn.execute(
            "INSERT INTO dicts (collection, data) VALUES (?1, ?2)",
            params![collection, data],
        )?;
        let id = conn.last_insert_rowid();
        let mut local = Dicts::default();
        local.add(id, collection.to_string(), &data)?;
        let mut packer = local.packer(collection)?;
        let mut update = conn.prepare("UPDATE docs SET snapshot = ?2, dict = ?3 WHERE id = ?1")?;
        for (doc, raw) in &plain {
            let (packed, dict) = packer.pack(raw)?;
            update.execute(params![doc, packed, dict])?;
        }
        tracing::debug!(
            collection,
            bytes = data.len(),
            "compression dictionary trained"
        );
        made += 1;
    }
    Ok(made)
}
