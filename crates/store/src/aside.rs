//! Blobs set aside: what a device received from the relay and could not use (sealed bytes
//! that do not open with the scope's key, a bundle that does not decode, a document that does
//! not load or claims another scope). Such a blob never stops a device's sync: it is recorded
//! here, with who sent it and when, in the same transaction as the cursor that moves past it
//! and the other blobs of its pull, which are merged as usual. Committee staff see the list
//! (设备 … 发送了无法解读的数据) and can have the relay drop the blobs nothing of which could
//! be read.
//!
//! The blob's bytes are not kept: only where it came from and why it was refused.

use linli_domain::Timestamp;
use linli_wire::relay::Blob;
use rusqlite::params;
use serde::Serialize;

use crate::{Store, StoreError};

/// A received blob this device could not use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetAside {
    /// Where it came from (`relay http://…`).
    pub peer: String,
    /// The relay's sequence number of the blob.
    pub seq: u64,
    /// The scope it was sealed for.
    pub scope: String,
    /// The sending device's key, in hex.
    pub sender: String,
    /// When it was received (ms).
    pub received_ms: i64,
    /// Why it was refused (never its contents).
    pub reason: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Nothing of it could be read (it does not open). Otherwise some of its documents were
    /// refused and the others merged.
    pub whole: bool,
}

impl SetAside {
    /// A blob of `peer` refused whole for `reason`.
    pub fn new(peer: &str, blob: &Blob, reason: &str) -> SetAside {
        SetAside {
            peer: peer.to_string(),
            seq: blob.seq,
            scope: blob.scope.clone(),
            sender: data_encoding::HEXLOWER.encode(&blob.sender),
            received_ms: Timestamp::now().0,
            reason: reason.to_string(),
            bytes: blob.sealed.len() as u64,
            whole: true,
        }
    }

    /// A blob of `peer` some documents of which were refused for `reason`.
    pub fn partly(peer: &str, blob: &Blob, reason: &str) -> SetAside {
        SetAside {
            whole: false,
            ..SetAside::new(peer, blob, reason)
        }
    }

    /// The sender as people see it: the first 8 hex digits of its key.
    pub fn sender_short(&self) -> &str {
        self.sender.get(..8).unwrap_or(&self.sender)
    }
}

/// Records set-aside blobs; runs inside the caller's transaction (a merge's).
pub(crate) fn record(tx: &rusqlite::Transaction<'_>, aside: &[SetAside]) -> Result<(), StoreError> {
    let mut insert = tx.prepare_cached(
        "INSERT OR REPLACE INTO set_aside (peer, seq, scope, sender, received_ms, reason, bytes, whole)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for a in aside {
        tracing::warn!(
            seq = a.seq,
            scope = %a.scope,
            sender = %a.sender_short(),
            reason = %a.reason,
            "a received blob was set aside"
        );
        insert.execute(params![
            a.peer,
            i64::try_from(a.seq).unwrap_or(i64::MAX),
            a.scope,
            a.sender,
            a.received_ms,
            a.reason,
            i64::try_from(a.bytes).unwrap_or(i64::MAX),
            a.whole
        ])?;
    }
    Ok(())
}

impl Store {
    /// The blobs set aside, newest first.
    pub fn set_aside(&self) -> Result<Vec<SetAside>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT peer, seq, scope, sender, received_ms, reason, bytes, whole FROM set_aside
             ORDER BY received_ms DESC, seq DESC",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(SetAside {
                peer: r.get(0)?,
                seq: r.get::<_, i64>(1)?.max(0) as u64,
                scope: r.get(2)?,
                sender: r.get(3)?,
                received_ms: r.get(4)?,
                reason: r.get(5)?,
                bytes: r.get::<_, i64>(6)?.max(0) as u64,
                whole: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many blobs are set aside.
    pub fn set_aside_count(&self) -> Result<usize, StoreError> {
        let n: i64 = self
            .conn()
            .prepare_cached("SELECT COUNT(*) FROM set_aside")?
            .query_row([], |r| r.get(0))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Forgets set-aside blobs of `peer` (the relay dropped them).
    pub fn forget_set_aside(&self, peer: &str, seqs: &[u64]) -> Result<usize, StoreError> {
        let mut delete = self
            .conn()
            .prepare_cached("DELETE FROM set_aside WHERE peer = ?1 AND seq = ?2")?;
        let mut n = 0;
        for s in seqs {
            n += delete.execute(params![peer, i64::try_from(*s).unwrap_or(i64::MAX)])?;
        }
        Ok(n)
    }
}
