//! The relay's store of sealed blobs: storing a push (all or nothing), handing out a pull,
//! snapshots superseding older blobs of their own scope, and staff dropping blobs.
//!
//! Every function runs inside the caller's transaction.

use linli_wire::relay::{Blob, BlobKind, NewBlobView, Response};
use linli_wire::{Grant, PublicKey, Role, short};
use rusqlite::{Connection, OptionalExtension, params};

use crate::RelayError;

/// The most document ids one blob may list.
const MAX_DOCS: usize = 100_000;
/// The most blobs one drop may name.
const MAX_DROPS: usize = 10_000;

fn kind_code(kind: BlobKind) -> i64 {
    match kind {
        BlobKind::Changes => 0,
        BlobKind::Snapshot => 1,
    }
}

/// Checks a push's blobs before anything is stored: scope names and document ids of the
/// allowed form, scopes the sender may write. The messages name ids, never blob contents.
fn check_push(
    grant: &Grant,
    device: &PublicKey,
    blobs: &[NewBlobView<'_>],
) -> Result<(), RelayError> {
    for (i, b) in blobs.iter().enumerate() {
        linli_wire::check_scope(b.scope)
            .map_err(|e| RelayError::BadRequest(format!("blob {i}: {e}; nothing was stored")))?;
        if b.docs.len() > MAX_DOCS {
            return Err(RelayError::BadRequest(format!(
                "blob {i} lists {} documents, more than {MAX_DOCS}; nothing was stored",
                b.docs.len()
            )));
        }
        let mut seen = std::collections::HashSet::with_capacity(b.docs.len());
        if let Some(d) = b.docs.iter().find(|d| !seen.insert(**d)) {
            return Err(RelayError::BadRequest(format!(
                "blob {i} lists document {d} twice; nothing was stored"
            )));
        }
        if let Some(e) = b
            .docs
            .iter()
            .find_map(|d| linli_wire::check_doc_id(d).err())
        {
            return Err(RelayError::BadRequest(format!(
                "blob {i}: {e}; nothing was stored"
            )));
        }
        if !grant.may_use(b.scope) {
            return Err(RelayError::Forbidden(format!(
                "device {} is {}: it may not write scope {} (documents {}); nothing was stored",
                short(device),
                grant.describe(),
                b.scope,
                b.docs
                    .iter()
                    .take(3)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(())
}

/// What one document claim of a blob costs against its community's quota, besides the id
/// (its rows in `blob_docs` and its index).
const CLAIM_BYTES: u64 = 48;

/// The bytes a push adds: the sealed bytes, and the document ids it lists (a push of ids
/// alone would otherwise fill the disk within its quota).
pub(crate) fn push_bytes(blobs: &[NewBlobView<'_>]) -> u64 {
    blobs
        .iter()
        .map(|b| {
            b.sealed.len() as u64
                + b.docs
                    .iter()
                    .map(|d| d.len() as u64 + CLAIM_BYTES)
                    .sum::<u64>()
        })
        .sum()
}

/// Refuses a blob listing a document the relay holds in another scope: a document belongs
/// to the scope it was first stored in (scopes never change), so no member can claim, or
/// have devices merge, another scope's document under its own scope. Committee staff are told
/// which blob keeps it there (a member may have listed ids it does not hold, to block them),
/// and may have the relay drop it (`linli drop-blob`); others are not told which scope.
fn other_scope(
    tx: &Connection,
    community: &str,
    grant: &Grant,
    b: &NewBlobView<'_>,
) -> Result<(), RelayError> {
    let mut elsewhere = tx.prepare_cached(
        "SELECT b.scope, b.seq, b.sender FROM blob_docs d JOIN blobs b ON b.seq = d.seq
         WHERE d.community = ?1 AND d.doc = ?2 AND b.scope != ?3 LIMIT 1",
    )?;
    for d in &b.docs {
        let Some((scope, seq, sender)) = elsewhere
            .query_row(params![community, d, b.scope], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })
            .optional()?
        else {
            continue;
        };
        return Err(RelayError::Forbidden(if grant.role == Role::Staff {
            let sender: PublicKey = sender.try_into().unwrap_or([0; 32]);
            format!(
                "document {d} is kept in scope {scope} on this relay (blob #{seq} of device {}), \
                 not in scope {}; nothing was stored. If that device should not have listed it, \
                 have the relay drop that blob: linli drop-blob {seq}",
                short(&sender),
                b.scope
            )
        } else {
            format!(
                "document {d} is kept in another scope on this relay, not in scope {}; nothing \
                 was stored",
                b.scope
            )
        }));
    }
    Ok(())
}

/// Stores a push whole, or nothing.
pub(crate) fn push(
    tx: &Connection,
    community: &str,
    grant: &Grant,
    device: &PublicKey,
    blobs: &[NewBlobView<'_>],
) -> Result<Response, RelayError> {
    check_push(grant, device, blobs)?;
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
        other_scope(tx, community, grant, b)?;
        if b.kind == BlobKind::Snapshot {
            unknown_in_scope(tx, community, b)?;
        }
        tx.prepare_cached(
            "INSERT INTO blobs (community, scope, kind, sender, sealed) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![community, b.scope, kind_code(b.kind), &device[..], b.sealed])?;
        let seq = tx.last_insert_rowid();
        let mut doc_row = tx.prepare_cached(
            "INSERT OR IGNORE INTO blob_docs (community, doc, seq) VALUES (?1, ?2, ?3)",
        )?;
        for d in &b.docs {
            doc_row.execute(params![community, d, seq])?;
        }
        if b.kind == BlobKind::Snapshot && b.covers > 0 {
            supersede(tx, community, b.scope, &b.docs, b.covers, seq)?;
        }
        seqs.push(seq as u64);
    }
    add_bytes(tx, community, push_bytes(blobs) as i64)?;
    Ok(Response::Pushed { seqs })
}

fn add_bytes(tx: &Connection, community: &str, bytes: i64) -> Result<(), RelayError> {
    tx.prepare_cached("UPDATE communities SET bytes = MAX(0, bytes + ?2) WHERE id = ?1")?
        .execute(params![community, bytes])?;
    Ok(())
}

/// Refuses a snapshot listing a document the relay has not stored in the snapshot's scope: a
/// snapshot replaces what its scope holds, nothing of any other scope and nothing unknown.
fn unknown_in_scope(
    tx: &Connection,
    community: &str,
    b: &NewBlobView<'_>,
) -> Result<(), RelayError> {
    let mut seen = tx.prepare_cached(
        "SELECT 1 FROM blob_docs d JOIN blobs b ON b.seq = d.seq
         WHERE d.community = ?1 AND d.doc = ?2 AND b.scope = ?3 LIMIT 1",
    )?;
    let mut unknown = Vec::new();
    for d in &b.docs {
        if !seen.exists(params![community, d, b.scope])? {
            unknown.push(*d);
        }
    }
    if unknown.is_empty() {
        return Ok(());
    }
    Err(RelayError::Forbidden(format!(
        "a snapshot of scope {} lists {} document(s) this relay has not stored in that scope ({}{}); nothing was stored",
        b.scope,
        unknown.len(),
        unknown
            .iter()
            .take(3)
            .copied()
            .collect::<Vec<_>>()
            .join(", "),
        if unknown.len() > 3 { ", …" } else { "" }
    )))
}

/// Forgets older blobs' claims on documents a snapshot of `scope` now holds whole (claims
/// made by blobs of the same scope only), and deletes blobs no document needs any more.
fn supersede(
    tx: &Connection,
    community: &str,
    scope: &str,
    docs: &[&str],
    covers: u64,
    snapshot: i64,
) -> Result<(), RelayError> {
    let covers = i64::try_from(covers).unwrap_or(i64::MAX);
    let mut older = tx.prepare_cached(
        "SELECT d.seq FROM blob_docs d JOIN blobs b ON b.seq = d.seq
         WHERE d.community = ?1 AND d.doc = ?2 AND d.seq <= ?3 AND d.seq != ?4 AND b.scope = ?5",
    )?;
    let mut forget =
        tx.prepare_cached("DELETE FROM blob_docs WHERE community = ?1 AND doc = ?2 AND seq = ?3")?;
    let mut touched = std::collections::BTreeSet::new();
    let mut freed = 0u64;
    for d in docs {
        let seqs: Vec<i64> = older
            .query_map(params![community, d, covers, snapshot, scope], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for s in seqs {
            forget.execute(params![community, d, s])?;
            freed += d.len() as u64 + CLAIM_BYTES;
            touched.insert(s);
        }
    }
    add_bytes(tx, community, -(freed as i64))?;
    let mut still = tx.prepare_cached("SELECT 1 FROM blob_docs WHERE seq = ?1 LIMIT 1")?;
    let mut gone = Vec::new();
    for s in touched {
        if !still.exists([s])? {
            gone.push(s);
        }
    }
    delete_blobs(tx, community, &gone)?;
    Ok(())
}

/// Deletes blobs by sequence number, with their claims, and takes their bytes off the
/// community's total; returns those that were there.
fn delete_blobs(tx: &Connection, community: &str, seqs: &[i64]) -> Result<Vec<u64>, RelayError> {
    let mut size = tx.prepare_cached(
        "SELECT length(sealed) + (SELECT COALESCE(SUM(length(doc) + ?3), 0) FROM blob_docs
            WHERE blob_docs.seq = blobs.seq)
         FROM blobs WHERE seq = ?1 AND community = ?2",
    )?;
    let mut delete = tx.prepare_cached("DELETE FROM blobs WHERE seq = ?1")?;
    let mut claims = tx.prepare_cached("DELETE FROM blob_docs WHERE seq = ?1")?;
    let mut freed = 0i64;
    let mut deleted = Vec::new();
    for &s in seqs {
        let Some(bytes) = size
            .query_row(params![s, community, CLAIM_BYTES as i64], |r| {
                r.get::<_, i64>(0)
            })
            .optional()?
        else {
            continue;
        };
        delete.execute([s])?;
        claims.execute([s])?;
        freed += bytes;
        deleted.push(s as u64);
    }
    add_bytes(tx, community, -freed)?;
    Ok(deleted)
}

/// Staff drop blobs that no device can open (see `Body::Drop`).
pub(crate) fn drop_blobs(
    tx: &Connection,
    community: &str,
    grant: &Grant,
    device: &PublicKey,
    seqs: &[u64],
) -> Result<Response, RelayError> {
    if grant.role != Role::Staff {
        return Err(RelayError::Forbidden(format!(
            "device {} is {}: only committee staff may have blobs dropped",
            short(device),
            grant.describe()
        )));
    }
    if seqs.len() > MAX_DROPS {
        return Err(RelayError::BadRequest(format!(
            "a drop may name at most {MAX_DROPS} blobs, not {}",
            seqs.len()
        )));
    }
    let seqs: Vec<i64> = seqs.iter().filter_map(|s| i64::try_from(*s).ok()).collect();
    let deleted = delete_blobs(tx, community, &seqs)?;
    if !deleted.is_empty() {
        tracing::info!(
            device = %short(device),
            blobs = deleted.len(),
            "blobs dropped by staff"
        );
    }
    Ok(Response::Dropped { seqs: deleted })
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

/// Hands out the blobs of the device's scopes above `since` (not its own), at most about
/// `max_bytes` of them, and records how far it has pulled.
pub(crate) fn pull(
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
            sender: sender.try_into().unwrap_or([0; 32]),
            sealed,
        });
        next = seq as u64;
    }
    // How far the device has pulled moves only when this pull started where it had got to (or
    // before): a device asking from a later cursor skipped blobs, and must not claim them (a
    // snapshot it sends may cover only what it has seen, see `unseen_below`).
    tx.prepare_cached(
        "UPDATE devices SET pulled = MAX(COALESCE(pulled, 0), ?2)
         WHERE key = ?1 AND (pulled IS NULL OR pulled >= ?3)",
    )?
    .execute(params![
        &device[..],
        i64::try_from(next).unwrap_or(i64::MAX),
        i64::try_from(since).unwrap_or(i64::MAX)
    ])?;
    Ok(Response::Pulled { blobs, next, more })
}

/// Bytes a community's blobs take, and when it was registered (ms).
pub(crate) fn usage(tx: &Connection, community: &str) -> Result<(u64, i64), RelayError> {
    Ok(tx
        .prepare_cached("SELECT bytes, created_ms FROM communities WHERE id = ?1")?
        .query_row([community], |r| {
            Ok((r.get::<_, i64>(0)?.max(0) as u64, r.get::<_, i64>(1)?))
        })
        .optional()?
        .unwrap_or((0, 0)))
}
