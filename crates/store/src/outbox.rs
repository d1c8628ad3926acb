//! What this device has that a peer (a relay, or another device) does not: per document, the
//! changes after the heads the peer is known to have.

use automerge::ChangeHash;
use linli_wire::DocPayload;
use rusqlite::{OptionalExtension, params};

use crate::{Store, StoreError};

/// Documents of one scope to send.
#[derive(Debug, Clone, Default)]
pub struct Outgoing {
    /// The scope (a grid id or `*`).
    pub scope: String,
    /// The documents, with the changes the peer lacks.
    pub docs: Vec<DocPayload>,
    /// Each document's heads once the peer has these changes.
    pub heads: Vec<(String, Vec<u8>)>,
}

/// Heads sent to a peer and not yet acknowledged, by document id.
pub use linli_proto::relay::InFlight;

pub(crate) fn decode_heads(bytes: &[u8]) -> Vec<ChangeHash> {
    bytes
        .chunks_exact(32)
        .filter_map(|c| ChangeHash::try_from(c).ok())
        .collect()
}

impl Store {
    /// Every document whose heads differ from what `peer` is known to have, grouped by scope.
    /// Only documents written after the feed position everything had been sent at
    /// ([`Store::set_sent_seq`]) are looked at, here and in the other questions of what waits:
    /// they cost what changed, not the store's size.
    pub fn outbox(&self, peer: &str) -> Result<Vec<Outgoing>, StoreError> {
        self.outbox_after(peer, self.sent_seq(peer)?, &InFlight::new())
    }

    /// As [`Store::outbox`], looking only at documents written after feed position `since`,
    /// and counting the heads `in_flight` (sent, not yet acknowledged) as what the peer has.
    pub fn outbox_after(
        &self,
        peer: &str,
        since: i64,
        in_flight: &InFlight,
    ) -> Result<Vec<Outgoing>, StoreError> {
        type Row = (
            String,
            Option<String>,
            Vec<u8>,
            Option<Vec<u8>>,
            String,
            Option<String>,
        );
        let rows: Vec<Row> = {
            let mut stmt = self.conn().prepare_cached(
                "SELECT d.id, d.grid, d.heads, p.heads, d.collection, d.tail
                 FROM log l JOIN docs d ON d.id = l.doc AND d.seq = l.seq
                 LEFT JOIN peer_heads p ON p.peer = ?1 AND p.doc = d.id
                 WHERE l.seq > ?2 AND (p.heads IS NULL OR p.heads != d.heads)
                 ORDER BY d.grid, d.id",
            )?;
            let rows = stmt.query_map(params![peer, since], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        let mut out: Vec<Outgoing> = Vec::new();
        for (id, grid, heads, known, collection, tail) in rows {
            let known = match in_flight.get(&id) {
                Some(sent) if *sent == heads => continue,
                Some(sent) => Some(sent.clone()),
                None => known,
            };
            let scope = grid.unwrap_or_else(|| linli_wire::COMMUNITY_WIDE.to_string());
            // The changes the peer lacks, as stored when they were made if the chunks since
            // its heads are all there; else from the document.
            let stored = match &known {
                Some(k) => self.chunks_after(&id, tail.as_deref(), k)?,
                None => None,
            };
            let (collection, bytes) = match stored {
                Some(bytes) => (collection, bytes),
                None => {
                    let Some((collection, bytes)) =
                        self.with_doc_at(&id, &heads, |collection, doc| {
                            let bytes = match &known {
                                Some(k) => doc.save_after(&decode_heads(k)),
                                None => crate::store::save(doc),
                            };
                            (collection.code().to_string(), bytes)
                        })?
                    else {
                        continue;
                    };
                    (collection, bytes)
                }
            };
            if out.last().is_none_or(|o| o.scope != scope) {
                out.push(Outgoing {
                    scope: scope.clone(),
                    ..Outgoing::default()
                });
            }
            if let Some(o) = out.last_mut() {
                o.docs.push(DocPayload {
                    id: id.clone(),
                    collection,
                    bytes,
                });
                o.heads.push((id, heads));
            }
        }
        Ok(out)
    }

    /// The changes of document `id` after heads `base`, as the chunks stored since those heads
    /// (each holds the changes made after the one before); `None` when no stored chunk
    /// follows exactly these heads (they were folded into a snapshot, or came from elsewhere).
    fn chunks_after(
        &self,
        id: &str,
        tail: Option<&str>,
        base: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let chunks = crate::store::read_chunks(self.conn(), id, tail)?;
        let Some(from) = chunks.iter().position(|(_, b)| b.as_deref() == Some(base)) else {
            return Ok(None);
        };
        Ok(Some(
            chunks[from..]
                .iter()
                .flat_map(|(data, _)| data.iter().copied())
                .collect(),
        ))
    }

    /// The feed position up to which every document was sent to `peer` (0: none known).
    pub fn sent_seq(&self, peer: &str) -> Result<i64, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT sent_seq FROM peers WHERE peer = ?1")?
            .query_row([peer], |r| r.get(0))
            .optional()?
            .unwrap_or(0))
    }

    /// Records that every document written up to feed position `seq` has reached `peer` (call
    /// it with the feed head read before the outbox that was sent whole).
    pub fn set_sent_seq(&self, peer: &str, seq: i64) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO peers (peer, sent_seq) VALUES (?1, ?2)
             ON CONFLICT (peer) DO UPDATE SET sent_seq = MAX(sent_seq, ?2)",
            params![peer, seq],
        )?;
        Ok(())
    }

    /// As [`Store::set_sent_seq`], but only if no other connection is writing: `false` (and
    /// nothing written) when one is, instead of waiting for it (a live session's bookkeeping
    /// must not stall behind a burst of edits in another process: SQLite's wait for a lock
    /// sleeps in steps growing to 100 ms).
    pub fn try_set_sent_seq(&self, peer: &str, seq: i64) -> Result<bool, StoreError> {
        self.conn().busy_timeout(std::time::Duration::ZERO)?;
        let result = self.set_sent_seq(peer, seq);
        self.conn().busy_timeout(crate::store::BUSY_TIMEOUT)?;
        match result {
            Ok(()) => Ok(true),
            Err(StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)))
                if e.code == rusqlite::ErrorCode::DatabaseBusy =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Records that `peer` now has these heads.
    pub fn mark_sent(&mut self, peer: &str, heads: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        let tx = self.conn_mut().transaction()?;
        {
            let mut put = tx.prepare_cached(
                "INSERT OR REPLACE INTO peer_heads (peer, doc, heads) VALUES (?1, ?2, ?3)",
            )?;
            for (doc, h) in heads {
                put.execute(params![peer, doc, h])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Ids of the documents whose latest changes `peer` is not known to have ("not yet
    /// synced"), at most `limit`, and how many there are in all.
    pub fn pending(&self, peer: &str, limit: usize) -> Result<(Vec<String>, usize), StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT d.id FROM log l JOIN docs d ON d.id = l.doc AND d.seq = l.seq
             LEFT JOIN peer_heads p ON p.peer = ?1 AND p.doc = d.id
             WHERE l.seq > ?2 AND (p.heads IS NULL OR p.heads != d.heads) ORDER BY l.seq DESC",
        )?;
        let mut ids = Vec::new();
        let mut total = 0;
        let mut rows = stmt.query(params![peer, self.sent_seq(peer)?])?;
        while let Some(r) = rows.next()? {
            if ids.len() < limit {
                ids.push(r.get(0)?);
            }
            total += 1;
        }
        Ok((ids, total))
    }

    /// Whether any document has changes `peer` is not known to have (stops at the first).
    pub fn any_pending(&self, peer: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM log l JOIN docs d ON d.id = l.doc AND d.seq = l.seq
             LEFT JOIN peer_heads p ON p.peer = ?1 AND p.doc = d.id
             WHERE l.seq > ?2 AND (p.heads IS NULL OR p.heads != d.heads))",
            )?
            .query_row(params![peer, self.sent_seq(peer)?], |r| r.get(0))?)
    }

    /// Ids of the documents of `collections` that `peer` is not known to have the latest of.
    pub fn pending_in(
        &self,
        peer: &str,
        collections: &[&str],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT d.id FROM log l JOIN docs d ON d.id = l.doc AND d.seq = l.seq
             LEFT JOIN peer_heads p ON p.peer = ?1 AND p.doc = d.id
             WHERE d.collection = ?2 AND l.seq > ?3 AND (p.heads IS NULL OR p.heads != d.heads)",
        )?;
        let since = self.sent_seq(peer)?;
        let mut out = std::collections::HashSet::new();
        for c in collections {
            for id in stmt.query_map(params![peer, c, since], |r| r.get::<_, String>(0))? {
                out.insert(id?);
            }
        }
        Ok(out)
    }

    /// Whether `peer` is not known to have the latest of any of the documents `ids`.
    pub fn is_pending(&self, peer: &str, ids: &[&str]) -> Result<bool, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM docs d LEFT JOIN peer_heads p ON p.peer = ?1 AND p.doc = d.id
             WHERE d.id = ?2 AND (p.heads IS NULL OR p.heads != d.heads))",
        )?;
        for id in ids {
            if stmt.query_row(params![peer, id], |r| r.get::<_, bool>(0))? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// When this device last completed a sync with `peer` (ms since the epoch).
    pub fn peer_synced_ms(&self, peer: &str) -> Result<Option<i64>, StoreError> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn()
            .query_row("SELECT synced_ms FROM peers WHERE peer = ?1", [peer], |r| {
                r.get(0)
            })
            .optional()?
            .flatten())
    }

    /// The cursor of `peer` (0 if never synced).
    pub fn peer_cursor(&self, peer: &str) -> Result<u64, StoreError> {
        use rusqlite::OptionalExtension;
        let c: Option<i64> = self
            .conn()
            .query_row("SELECT cursor FROM peers WHERE peer = ?1", [peer], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(c.unwrap_or(0).max(0) as u64)
    }
}
