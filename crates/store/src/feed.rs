//! The change feed (`log`): one row appended by each write of a document, holding the changes
//! it appended as a chunk when it did; see the `store` module's description.
//!
//! Appending is the whole cost of a write here: the row goes at the end of the table, on the
//! page the write before it used. What would make it cost more is left to [`prune`]: rows a
//! later write superseded (neither their document's latest write nor one of its chunks) stay
//! until a prune deletes them together, run by the background checkpoint thread once
//! [`PRUNE_EVERY`] writes have passed.

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::store::{get_meta, set_meta};
use crate::{Store, StoreError};

/// Writes between two prunes of the feed.
pub const PRUNE_EVERY: i64 = 10_000;

/// The feed's head: its last position given (0 for an empty store).
pub(crate) fn feed_head(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT coalesce(max(seq), 0) FROM log")?
        .query_row([], |r| r.get(0))?)
}

/// Appends the feed's entry for a write of document `id` at position `seq`: with the
/// changes it appended as a chunk (and the heads they follow), or without (it stored a new
/// document or snapshot).
pub(crate) fn append_log(
    tx: &Transaction<'_>,
    seq: i64,
    id: &str,
    chunk: Option<(&[u8], &[u8])>,
) -> Result<(), StoreError> {
    let (data, base) = chunk.unzip();
    tx.prepare_cached("INSERT INTO log (seq, doc, data, base) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![seq, id, data, base])?;
    Ok(())
}

/// The feed positions listed in a document's `tail` (its chunks, oldest first).
pub(crate) fn parse_tail(id: &str, tail: Option<&str>) -> Result<Vec<i64>, StoreError> {
    tail.unwrap_or("")
        .split_ascii_whitespace()
        .map(|n| {
            n.parse().map_err(|_| StoreError::Field {
                id: id.to_string(),
                field: "tail".into(),
                message: format!("`{n}` is not a feed position"),
            })
        })
        .collect()
}

/// A stored chunk: changes, and the heads they follow (unknown for chunks stored before
/// schema 10).
pub(crate) type Chunk = (Vec<u8>, Option<Vec<u8>>);

/// The chunks a document's `tail` lists, oldest first.
pub(crate) fn read_chunks(
    conn: &Connection,
    id: &str,
    tail: Option<&str>,
) -> Result<Vec<Chunk>, StoreError> {
    let seqs = parse_tail(id, tail)?;
    let mut out = Vec::with_capacity(seqs.len());
    if seqs.is_empty() {
        return Ok(out);
    }
    let mut stmt = conn.prepare_cached("SELECT doc, data, base FROM log WHERE seq = ?1")?;
    for seq in seqs {
        // The document it belongs to, its changes (none: not a chunk), their base.
        type Row = (String, Option<Vec<u8>>, Option<Vec<u8>>);
        let row: Option<Row> = stmt
            .query_row([seq], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        match row {
            Some((doc, Some(data), base)) if doc == id => out.push((data, base)),
            _ => {
                return Err(StoreError::Field {
                    id: id.to_string(),
                    field: "tail".into(),
                    message: format!("feed position {seq} holds none of its changes"),
                });
            }
        }
    }
    Ok(out)
}

/// Deletes the feed's dead rows (superseded writes: not their document's latest, not in its
/// tail) in one transaction, and notes the head it pruned at. Returns how many went.
pub(crate) fn prune(tx: &Transaction<'_>) -> Result<usize, StoreError> {
    let head = feed_head(tx)?;
    let mut dead = Vec::new();
    {
        let mut stmt = tx.prepare(
            "SELECT l.seq, l.doc, d.tail FROM log l LEFT JOIN docs d ON d.id = l.doc
             WHERE d.id IS NULL OR l.seq < d.seq",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let doc: String = row.get(1)?;
            let tail: Option<String> = row.get(2)?;
            if !parse_tail(&doc, tail.as_deref())?.contains(&seq) {
                dead.push(seq);
            }
        }
    }
    let mut delete = tx.prepare_cached("DELETE FROM log WHERE seq = ?1")?;
    for seq in &dead {
        delete.execute([seq])?;
    }
    set_meta(tx, "pruned", &head.to_string())?;
    Ok(dead.len())
}

/// Whether [`PRUNE_EVERY`] writes passed since the last prune.
pub(crate) fn prune_due(conn: &Connection) -> Result<bool, StoreError> {
    let pruned: i64 = get_meta(conn, "pruned")?
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(feed_head(conn)? - pruned >= PRUNE_EVERY)
}

/// [`prune`] if it is due, on `conn` (the checkpoint thread's): never waits for another
/// writer (tried again next time). Returns how many rows went, if it ran.
pub(crate) fn prune_if_due(conn: &Connection) -> Result<Option<usize>, StoreError> {
    if !prune_due(conn)? {
        return Ok(None);
    }
    let tx = match Transaction::new_unchecked(conn, TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::DatabaseBusy =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let n = prune(&tx)?;
    tx.commit()?;
    Ok(Some(n))
}

impl Store {
    /// Deletes the change feed's dead rows now (see [`prune`]); returns how many went.
    pub fn prune_log(&mut self) -> Result<usize, StoreError> {
        let tx = Transaction::new_unchecked(self.conn(), TransactionBehavior::Immediate)?;
        let n = prune(&tx)?;
        tx.commit()?;
        Ok(n)
    }

    /// Rows in the change feed (live and dead).
    pub fn log_rows(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT count(*) FROM log")?
            .query_row([], |r| r.get(0))?)
    }
}
