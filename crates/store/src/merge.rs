//! Merging documents received from another device (the relay or a peer) into the store: in
//! slices, the reads first, then decoding, applying and reading the records on every core, then
//! the writes in order, all inside the caller's transaction.

use std::collections::HashMap;

use automerge::{AutoCommit, ChangeHash};
use linli_domain::Timestamp;
use linli_domain::{AnyRecord, Collection, Scope};
use rusqlite::{OptionalExtension, Transaction, params};

use crate::codec::{self, Dicts};
use crate::store::{
    Built, Packers, Saved, StoredDoc, append_log, decode_doc, encode_heads, encode_update, hydrate,
    next_seq, par_pipeline, read_doc, record_json, save, write_update,
};
use crate::{Store, StoreError, index};

/// A document received from another device: its scope as the sealed bundle said, and its
/// Automerge bytes.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The scope of the bundle it came in (a grid id or `*`).
    pub scope: String,
    /// Document id.
    pub id: String,
    /// Collection code.
    pub collection: String,
    /// Automerge bytes (a document or changes).
    pub bytes: Vec<u8>,
}

/// What a merge did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Documents that were new here.
    pub created: usize,
    /// Documents that gained changes.
    pub changed: usize,
    /// Documents that already had everything.
    pub unchanged: usize,
    /// Compression dictionaries trained by this merge (see the `codec` module).
    pub dictionaries: usize,
}

impl Store {
    /// Merges documents received from `peer` in one transaction, and records what the peer
    /// is now known to have: the merged heads of each document that had nothing unsent to
    /// it, and the peer's new `cursor` if given.
    pub fn merge(
        &mut self,
        peer: &str,
        incoming: Vec<Incoming>,
        cursor: Option<u64>,
    ) -> Result<MergeReport, StoreError> {
        let community = self.community_id()?.ok_or(StoreError::NoCommunity)?;
        let (tx, dicts) = self.immediate_with_dicts()?;
        let (report, _) = merge_in(&tx, dicts, &community, peer, incoming, false)?;
        if let Some(cursor) = cursor {
            set_cursor(&tx, peer, cursor)?;
        }
        tx.commit()?;
        if report.dictionaries > 0 {
            self.reload_dicts()?;
        }
        Ok(report)
    }
}

impl Store {
    /// Merges the documents of blobs received from `peer` (each tagged with its blob's
    /// sequence number) with the peer's new `cursor`, in one transaction, leniently: a document
    /// the merge refuses is left out and its blob is set aside (`set_aside(blob, reason)` makes
    /// the record) while every other document is merged. When a refused document came in
    /// several blobs, each blob's part is tried on its own, so that only the part at fault
    /// is left out. `aside` (blobs that did not even open) is recorded in the same transaction.
    /// Returns the merge and every blob set aside.
    pub fn merge_received(
        &mut self,
        peer: &str,
        incoming: Vec<(u64, Incoming)>,
        cursor: u64,
        mut aside: Vec<crate::SetAside>,
        reopen: impl Fn(u64, &str) -> Option<Incoming>,
        set_aside: impl Fn(u64, &str, bool) -> Option<crate::SetAside>,
    ) -> Result<(MergeReport, Vec<crate::SetAside>), StoreError> {
        let community = self.community_id()?.ok_or(StoreError::NoCommunity)?;
        // Which blobs carried each document (a refused one that came in several is tried
        // blob by blob, its parts read again from them by `reopen`), and how many documents
        // each blob holds.
        let mut blobs_of: HashMap<String, Vec<u64>> = HashMap::new();
        let mut docs_in: HashMap<u64, usize> = HashMap::new();
        for (blob, inc) in &incoming {
            let blobs = blobs_of.entry(inc.id.clone()).or_default();
            if !blobs.contains(blob) {
                blobs.push(*blob);
            }
            *docs_in.entry(*blob).or_default() += 1;
        }
        let (tx, dicts) = self.immediate_with_dicts()?;
        let (mut report, refused) = merge_in(
            &tx,
            dicts,
            &community,
            peer,
            incoming.into_iter().map(|(_, inc)| inc).collect(),
            true,
        )?;
        // A merge that trained dictionaries compressed stored documents with them: the
        // retries below must know them.
        let mut reloaded: Option<Dicts> = None;
        if report.dictionaries > 0 {
            reloaded = Some(Dicts::load(&tx)?);
        }
        let mut partly: Vec<(u64, String)> = Vec::new();
        for (id, reason) in refused {
            let blobs = blobs_of.get(&id).cloned().unwrap_or_default();
            if blobs.len() < 2 {
                partly.extend(
                    blobs
                        .into_iter()
                        .map(|b| (b, format!("document {id}: {reason}"))),
                );
                continue;
            }
            let mut got = MergeReport::default();
            for blob in blobs {
                let Some(part) = reopen(blob, &id) else {
                    continue;
                };
                let current = reloaded.as_ref().unwrap_or(dicts);
                let (one, refused) = merge_in(&tx, current, &community, peer, vec![part], true)?;
                if one.dictionaries > 0 {
                    reloaded = Some(Dicts::load(&tx)?);
                }
                got.created += one.created;
                got.changed += one.changed;
                got.unchanged += one.unchanged;
                report.dictionaries += one.dictionaries;
                if let Some((_, reason)) = refused.first() {
                    partly.push((blob, format!("document {id}: {reason}")));
                }
            }
            // One document, counted once.
            if got.created > 0 {
                report.created += 1;
            } else if got.changed > 0 {
                report.changed += 1;
            } else if got.unchanged > 0 {
                report.unchanged += 1;
            }
        }
        let mut refused_in: HashMap<u64, usize> = HashMap::new();
        for (blob, _) in &partly {
            *refused_in.entry(*blob).or_default() += 1;
        }
        for (blob, reason) in partly {
            match aside.iter_mut().find(|a| a.seq == blob) {
                Some(a) => {
                    if a.reason.len() < 1000 {
                        a.reason.push_str("; ");
                        a.reason.push_str(&reason);
                    }
                }
                None => {
                    // Every document of it refused: nothing of it could be used.
                    let whole = refused_in.get(&blob) >= docs_in.get(&blob);
                    aside.extend(set_aside(blob, &reason, whole));
                }
            }
        }
        crate::aside::record(&tx, &aside)?;
        set_cursor(&tx, peer, cursor)?;
        tx.commit()?;
        if report.dictionaries > 0 {
            self.reload_dicts()?;
        }
        Ok((report, aside))
    }
}

/// Records how far `peer`'s feed (the relay's sequence numbers) was merged, and when.
fn set_cursor(tx: &Transaction<'_>, peer: &str, cursor: u64) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO peers (peer, cursor, synced_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (peer) DO UPDATE SET cursor = ?2, synced_ms = ?3",
        params![peer, cursor as i64, Timestamp::now().0],
    )?;
    Ok(())
}

/// The scope name of a record (`*` for community-wide ones).
pub fn scope_name(scope: &Scope) -> &str {
    scope.grid.as_deref().unwrap_or(linli_wire::COMMUNITY_WIDE)
}

/// Merges documents received from `peer`; runs inside the caller's transaction. Each must
/// load as Automerge, read as its collection, and belong to the scope it came in; one that
/// does not fails the whole merge. A document the peer was in step with before (new here, or
/// nothing unsent to it) is recorded as held by the peer at its merged heads.
/// How many received documents are merged at a time.
const MERGE_SLICE: usize = 512;

/// A received document with what is stored of it.
struct MergeJob<'a> {
    inc: &'a Incoming,
    parts: &'a [Vec<u8>],
    /// Taken by the worker that decodes it.
    stored: std::sync::Mutex<Option<StoredDoc>>,
    /// The heads the peer was last known to have of it.
    known: Option<Vec<u8>>,
}

/// A received document merged into what was stored and encoded for storing (not yet
/// written).
struct Merged {
    /// The peer had exactly what was stored before: record what it has now.
    in_step: bool,
    /// The merged heads, encoded.
    after: Vec<u8>,
    /// What to write, unless nothing changed.
    outcome: Option<Outcome>,
}

/// What a merge writes of one document.
enum Outcome {
    /// A stored document gained changes.
    Changed {
        rec: AnyRecord,
        /// The record as stored (its JSON, compressed once the collection has a record
        /// dictionary).
        record: crate::store::Packed,
        saved: Saved,
    },
    /// A document new here (written after the others: see `merge_in`).
    New { rec: AnyRecord, built: Built },
}

/// Decodes what is stored of a received document, applies the received changes, reads the
/// record if anything changed and encodes what is to be stored: the CPU part of a merge, run
/// on any thread.
fn merge_one(
    packers: &mut Packers<'_>,
    dicts: &Dicts,
    community: &str,
    job: &MergeJob<'_>,
) -> Result<Merged, StoreError> {
    let inc = job.inc;
    let id = inc.id.as_str();
    let refuse = |reason: String| StoreError::Received {
        id: id.to_string(),
        reason,
    };
    let collection = Collection::parse(&inc.collection)
        .ok_or_else(|| refuse(format!("unknown collection {}", inc.collection)))?;
    let stored = job.stored.lock().unwrap_or_else(|p| p.into_inner()).take();
    // A document stays in the scope it is stored in: received sealed for another, it is
    // refused (a member of one grid could otherwise rewrite another grid's household).
    if let Some(s) = &stored
        && s.grid.as_deref().unwrap_or(linli_wire::COMMUNITY_WIDE) != inc.scope
    {
        return Err(refuse(format!(
            "it is kept in scope {} here, and came sealed for scope {}",
            s.grid.as_deref().unwrap_or(linli_wire::COMMUNITY_WIDE),
            inc.scope
        )));
    }
    let stored = stored
        .map(|s| {
            let chunks = s.chunk_count();
            decode_doc(None, dicts, id, s).map(|(c, doc)| (c, doc, chunks))
        })
        .transpose()?;
    let (mut doc, stored_chunks) = match stored {
        Some((c, _, _)) if c != collection => {
            return Err(refuse(format!(
                "arrived as {}, stored as {}",
                collection.code(),
                c.code()
            )));
        }
        Some((_, doc, chunks)) => (doc, Some(chunks)),
        None => (AutoCommit::new(), None),
    };
    let before = doc.get_heads();
    let in_step = stored_chunks.is_none() || job.known == Some(encode_heads(&before));
    for bytes in job.parts {
        doc.load_incremental(bytes)
            .map_err(|e| refuse(format!("the received changes do not load: {e}")))?;
    }
    let after = doc.get_heads();
    let outcome = if after == before {
        None
    } else {
        // Why a record does not read is not told: the message could quote a value.
        let rec = hydrate(id, collection, &doc).map_err(|_| {
            refuse(format!(
                "it does not read as a record of {}",
                collection.code()
            ))
        })?;
        if rec.id() != id {
            return Err(refuse("it holds another record's id".into()));
        }
        if let Err(e) = rec.scope().check(collection) {
            return Err(refuse(format!("its scope is not allowed: {e}")));
        }
        if rec.scope().community != community || scope_name(rec.scope()) != inc.scope {
            return Err(refuse(format!(
                "belongs to scope {}/{}, but came sealed for scope {}",
                rec.scope().community,
                scope_name(rec.scope()),
                inc.scope
            )));
        }
        Some(match stored_chunks {
            Some(chunks) => Outcome::Changed {
                saved: {
                    let changes = received_as_is(job.parts, &mut doc, &before);
                    encode_update(packers, collection, &mut doc, &before, chunks, changes)?
                },
                record: packers.pack_record(collection, &record_json(&rec)?)?,
                rec,
            },
            None => Outcome::New {
                built: Built {
                    snapshot: save(&mut doc),
                    heads: encode_heads(&after),
                },
                rec,
            },
        })
    };
    Ok(Merged {
        in_step,
        after: encode_heads(&after),
        outcome,
    })
}

/// The received bytes themselves when they are exactly the changes a merge added to `doc`
/// (which had heads `before`): one change chunk, and one change new here (every new change
/// came from what was received, so that chunk is it). Stored as they came, they need not be
/// encoded again (`save_after`); anything else (several changes, some already here, a
/// whole document) is encoded from the document.
fn received_as_is(
    parts: &[Vec<u8>],
    doc: &mut AutoCommit,
    before: &[ChangeHash],
) -> Option<Vec<u8>> {
    let [bytes] = parts else {
        return None;
    };
    (is_one_change_chunk(bytes) && doc.get_changes_meta(before).len() == 1).then(|| bytes.clone())
}

/// Whether `bytes` are exactly one Automerge change chunk. The binary format: the magic bytes
/// `85 6f 4a 83`, a 4-byte checksum, the chunk type (1: change, 2: compressed change; 0 is a
/// whole document), the length of the rest as unsigned LEB128, then the rest.
fn is_one_change_chunk(bytes: &[u8]) -> bool {
    const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
    if bytes.len() < 10 || bytes[..4] != MAGIC || !matches!(bytes[8], 1 | 2) {
        return false;
    }
    let mut len: u64 = 0;
    for (i, b) in bytes[9..].iter().take(10).enumerate() {
        len |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let header = 9 + i + 1;
            return usize::try_from(len)
                .is_ok_and(|len| header.checked_add(len) == Some(bytes.len()));
        }
    }
    false
}

/// A document refused by a lenient merge: its id and why.
pub(crate) type Refused = (String, String);

fn merge_in(
    tx: &Transaction<'_>,
    dicts: &Dicts,
    community: &str,
    peer: &str,
    incoming: Vec<Incoming>,
    lenient: bool,
) -> Result<(MergeReport, Vec<Refused>), StoreError> {
    let mut refused: Vec<Refused> = Vec::new();
    let mut report = MergeReport::default();
    let mut seq = next_seq(tx)?;
    let first = seq;
    // Whether everything written before this merge had reached the peer: then, if it holds
    // every document this merge writes as written, it holds the whole feed after it too.
    let sent: i64 = tx
        .prepare_cached("SELECT sent_seq FROM peers WHERE peer = ?1")?
        .query_row([peer], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let mut peer_has_all = sent >= first - 1;
    let mut fresh: Vec<(AnyRecord, Built)> = Vec::new();
    // The same document may come in several bundles: merge all its parts at once.
    let mut grouped: Vec<(Incoming, Vec<Vec<u8>>)> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for mut inc in incoming {
        let bytes = std::mem::take(&mut inc.bytes);
        match at.get(&inc.id) {
            Some(&i) if grouped[i].0.scope == inc.scope => grouped[i].1.push(bytes),
            Some(_) => {
                let e = StoreError::Received {
                    id: inc.id,
                    reason: "it arrived sealed for two different scopes".into(),
                };
                if !lenient {
                    return Err(e);
                }
                if let StoreError::Received { id, reason } = e
                    && !refused.iter().any(|(r, _)| *r == id)
                {
                    refused.push((id, reason));
                }
            }
            None => {
                at.insert(inc.id.clone(), grouped.len());
                grouped.push((inc, vec![bytes]));
            }
        }
    }
    // A document that arrived for two scopes is not merged at all (lenient: refused above).
    if !refused.is_empty() {
        grouped.retain(|(inc, _)| !refused.iter().any(|(id, _)| *id == inc.id));
    }
    // In slices: the reads, then the CPU work (decoding, merging, reading the records) on
    // every core, then the writes in order. A slice bounds what is held in memory at once.
    for slice in grouped.chunks(MERGE_SLICE) {
        let jobs = slice
            .iter()
            .map(|(inc, parts)| {
                let known: Option<Vec<u8>> = tx
                    .prepare_cached("SELECT heads FROM peer_heads WHERE peer = ?1 AND doc = ?2")?
                    .query_row(params![peer, inc.id], |r| r.get(0))
                    .optional()?;
                Ok(MergeJob {
                    inc,
                    parts,
                    stored: std::sync::Mutex::new(read_doc(tx, &inc.id)?),
                    known,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // Each document is written as soon as it and those before it are merged, while the
        // workers merge the next ones.
        par_pipeline(
            &jobs,
            || Packers::new(dicts),
            |packers, job| match merge_one(packers, dicts, community, job) {
                Ok(merged) => Ok(Ok(merged)),
                // Lenient: a refused document is left out, and said.
                Err(StoreError::Received { reason, .. }) if lenient => Ok(Err(reason)),
                Err(e) => Err(e),
            },
            |i, merged| {
                let id = jobs[i].inc.id.as_str();
                let merged = match merged {
                    Ok(merged) => merged,
                    Err(reason) => {
                        peer_has_all = false;
                        refused.push((id.to_string(), reason));
                        return Ok(());
                    }
                };
                let Merged {
                    in_step,
                    after,
                    outcome,
                } = merged;
                if in_step {
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO peer_heads (peer, doc, heads) VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![peer, id, after])?;
                }
                let Some(outcome) = outcome else {
                    report.unchanged += 1;
                    return Ok(());
                };
                peer_has_all &= in_step;
                match outcome {
                    Outcome::Changed { rec, record, saved } => {
                        write_update(tx, id, saved, &after, &record, seq)?;
                        index::reindex(tx, &rec)?;
                        report.changed += 1;
                        seq += 1;
                    }
                    Outcome::New { rec, built } => fresh.push((rec, built)),
                }
                Ok(())
            },
        )?;
    }
    // New documents are written last, so that a collection reaching its dictionary threshold
    // trains one before they are stored (as `write_in` does).
    let mut touched: Vec<&str> = fresh.iter().map(|(r, _)| r.collection().code()).collect();
    touched.sort_unstable();
    touched.dedup();
    let jsons: Vec<Vec<u8>> = fresh
        .iter()
        .map(|(r, _)| record_json(r))
        .collect::<Result<_, _>>()?;
    let samples: Vec<(&str, &[u8], &[u8])> = fresh
        .iter()
        .zip(&jsons)
        .map(|((r, b), json)| {
            (
                r.collection().code(),
                b.snapshot.as_slice(),
                json.as_slice(),
            )
        })
        .collect();
    let reloaded;
    report.dictionaries = codec::train_where_due(tx, dicts, &touched, &samples)?;
    let dicts = if report.dictionaries > 0 {
        reloaded = Dicts::load(tx)?;
        &reloaded
    } else {
        dicts
    };
    let mut packers = Packers::new(dicts);
    for ((rec, built), json) in fresh.iter().zip(&jsons) {
        let (snapshot, dict) = packers.pack(rec.collection(), &built.snapshot)?;
        let (record, rdict) = packers.pack_record(rec.collection(), json)?;
        tx.prepare_cached(
            "INSERT INTO docs (id, collection, community, grid, seq, heads, snapshot, dict, chunks, record, rdict)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, ?10)",
        )?
        .execute(params![
            rec.id(),
            rec.collection().code(),
            rec.scope().community,
            rec.scope().grid,
            seq,
            built.heads,
            snapshot,
            dict,
            record,
            rdict
        ])?;
        append_log(tx, seq, rec.id(), None)?;
        index::index(tx, rec)?;
        report.created += 1;
        seq += 1;
    }
    // Nothing of this merge waits to go back to the peer: its outbox need not look at it
    // (documents new here are held by the peer as received).
    if peer_has_all && seq > first {
        tx.prepare_cached(
            "INSERT INTO peers (peer, sent_seq) VALUES (?1, ?2)
             ON CONFLICT (peer) DO UPDATE SET sent_seq = MAX(sent_seq, ?2)",
        )?
        .execute(params![peer, seq - 1])?;
    }
    Ok((report, refused))
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::{ROOT, transaction::Transactable};

    fn edited(doc: &mut AutoCommit, key: &str, value: &str) {
        doc.put(ROOT, key, value).unwrap_or_else(|e| panic!("{e}"));
        doc.commit();
    }

    /// Received changes are stored as they came only when they are exactly what the merge
    /// added; anything else is encoded from the document.
    #[test]
    fn received_changes_are_kept_as_they_came_only_when_exactly_the_new_ones() {
        let mut a = AutoCommit::new();
        edited(&mut a, "phone", "13800000000");
        let mut b = a.fork();
        let base = a.get_heads();
        edited(&mut a, "phone", "13900000000");
        let one = a.save_after(&base);
        let merge = |b: &mut AutoCommit, parts: &[Vec<u8>]| {
            let mut b = b.fork();
            let before = b.get_heads();
            for p in parts {
                b.load_incremental(p).unwrap_or_else(|e| panic!("{e}"));
            }
            received_as_is(parts, &mut b, &before)
        };
        // One change, new here: kept, and it is what encoding it again gives.
        assert_eq!(merge(&mut b, std::slice::from_ref(&one)), Some(one.clone()));
        let mut merged = b.fork();
        merged
            .load_incremental(&one)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(merged.save_after(&b.get_heads()), one);
        // Two changes in one part, the same change in two parts, a whole document, a
        // change already held, a cut or lengthened chunk: encoded again.
        let mid = a.get_heads();
        edited(&mut a, "phone", "13700000000");
        assert_eq!(merge(&mut b, &[a.save_after(&base)]), None);
        assert_eq!(merge(&mut b, &[one.clone(), one.clone()]), None);
        assert_eq!(merge(&mut b, &[a.save()]), None);
        b.load_incremental(&one).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.get_heads(), mid);
        assert_eq!(merge(&mut b, std::slice::from_ref(&one)), None);
        assert!(is_one_change_chunk(&one));
        assert!(!is_one_change_chunk(&one[..one.len() - 1]));
        let mut longer = one.clone();
        longer.push(0);
        assert!(!is_one_change_chunk(&longer));
        assert!(!is_one_change_chunk(&a.save()));
    }
}
