//! The local audit log: who saw what sensitive value, and when (个人信息保护法). It stays on
//! this device; it never holds the value itself.

use linli_domain::Timestamp;
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{Store, StoreError};

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Position in the log.
    pub seq: i64,
    /// When (ms since the epoch).
    pub at: Timestamp,
    /// The person at the device.
    pub user: String,
    /// What was done, e.g. `reveal`.
    pub action: String,
    /// The record (a person id).
    pub target: String,
    /// Which field, e.g. `id_number`.
    pub detail: String,
    /// Why (for a reveal: the purpose the person gave).
    pub reason: String,
    /// The device that wrote it.
    pub device: String,
    /// Its link in the chain: SHA-256 of the entry before's hash and this entry (hex).
    pub hash: String,
}

/// What `linli audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditCheck {
    /// Entries checked.
    pub entries: usize,
    /// The first entry whose hash does not follow from the one before and its content (an
    /// entry edited, or one deleted before it); none: the chain holds.
    pub broken_at: Option<i64>,
    /// The last entry's hash (hex), which a witness can compare with what it was sent.
    pub head: String,
}

/// The hash of an entry following `prev`: SHA-256 over the previous hash and each field,
/// length-prefixed.
fn link(prev: &[u8], e: &AuditEntry) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"linli audit v1");
    h.update((prev.len() as u32).to_le_bytes());
    h.update(prev);
    h.update(e.seq.to_le_bytes());
    h.update(e.at.0.to_le_bytes());
    for field in [
        &e.user, &e.device, &e.action, &e.target, &e.detail, &e.reason,
    ] {
        h.update((field.len() as u32).to_le_bytes());
        h.update(field.as_bytes());
    }
    h.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const COLUMNS: &str = "seq, at, user, action, target, detail, reason, device, hash";

fn entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        seq: r.get(0)?,
        at: Timestamp(r.get(1)?),
        user: r.get(2)?,
        action: r.get(3)?,
        target: r.get(4)?,
        detail: r.get(5)?,
        reason: r.get(6)?,
        device: r.get(7)?,
        hash: hex(&r.get::<_, Option<Vec<u8>>>(8)?.unwrap_or_default()),
    })
}

/// Chains the entries written before the log was a chain (migration 16), in order.
pub(crate) fn chain_unchained(conn: &mut rusqlite::Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut prev: Vec<u8> = Vec::new();
    let entries: Vec<(AuditEntry, Option<Vec<u8>>)> = {
        let mut stmt = tx.prepare(&format!("SELECT {COLUMNS} FROM audit ORDER BY seq"))?;
        let rows = stmt.query_map([], |r| Ok((entry(r)?, r.get::<_, Option<Vec<u8>>>(8)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (e, hash) in entries {
        let next = match hash {
            Some(h) => h,
            None => {
                let h = link(&prev, &e).to_vec();
                tx.execute(
                    "UPDATE audit SET hash = ?1 WHERE seq = ?2",
                    params![h, e.seq],
                )?;
                h
            }
        };
        prev = next;
    }
    tx.execute("DELETE FROM meta WHERE key = 'audit_chain'", [])?;
    tx.commit()?;
    Ok(())
}

impl Store {
    /// Whether this device's role may see ID numbers and phones in full: committee staff and
    /// grid workers may, owners' committee members may not (个人信息保护法: minimum necessary).
    pub fn may_reveal(&self) -> Result<bool, StoreError> {
        Ok(self.identity()?.grant.role != linli_wire::Role::Owners)
    }

    /// The one door to a sensitive value in full: refuses a role that may not see it, and
    /// writes the audit entry (who, when, whose record, which fields) before anything is shown.
    ///
    /// A reveal needs a reason ([`Store::set_reveal_reason`]), written with it.
    pub fn check_reveal(&self, target: &str, detail: &str) -> Result<(), StoreError> {
        if !self.may_reveal()? {
            return Err(StoreError::Identity(
                "this device's role (owners' committee) may not see ID numbers or phones in full; \
                 该设备的角色（业委会）不能查看完整的证件号码和电话"
                    .into(),
            ));
        }
        let Some(reason) = self.reveal_reason.as_deref() else {
            return Err(StoreError::Identity(
                "showing ID numbers or phones in full needs a reason (--reason); \
                 查看完整的证件号码和电话需要说明原因"
                    .into(),
            ));
        };
        self.audit_with("reveal", target, detail, reason)
    }

    /// Sets (or clears) why sensitive values are about to be shown: one line of at most 200
    /// characters, no control characters.
    pub fn set_reveal_reason(&mut self, reason: Option<&str>) -> Result<(), StoreError> {
        self.reveal_reason = match reason.map(str::trim) {
            None => None,
            Some("") => {
                return Err(StoreError::Field {
                    id: "reveal".into(),
                    field: "reason".into(),
                    message: "is required".into(),
                });
            }
            Some(r) if r.chars().count() > 200 || r.chars().any(char::is_control) => {
                return Err(StoreError::Field {
                    id: "reveal".into(),
                    field: "reason".into(),
                    message: "must be one line of at most 200 characters".into(),
                });
            }
            Some(r) => Some(r.to_string()),
        };
        Ok(())
    }

    /// Appends to the audit log, as the current user.
    pub fn audit(&self, action: &str, target: &str, detail: &str) -> Result<(), StoreError> {
        self.audit_with(action, target, detail, "")
    }

    /// Appends to the audit log unless the same person logged the same action on the same
    /// record within `window_ms` (a page looked at again, a search typed letter by letter).
    pub fn audit_once(
        &self,
        action: &str,
        target: &str,
        detail: &str,
        window_ms: i64,
    ) -> Result<(), StoreError> {
        let recent: Option<i64> = self
            .conn()
            .prepare_cached(
                "SELECT at FROM audit WHERE user = ?1 AND action = ?2 AND target = ?3
                 ORDER BY seq DESC LIMIT 1",
            )?
            .query_row(params![self.author().user, action, target], |r| r.get(0))
            .optional()?;
        if recent.is_some_and(|at| Timestamp::now().0 - at < window_ms) {
            return Ok(());
        }
        self.audit_with(action, target, detail, "")
    }

    fn audit_with(
        &self,
        action: &str,
        target: &str,
        detail: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        // The entry and its link in one transaction: two handles writing at once still chain.
        let conn = self.conn();
        let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
        let last: Option<(i64, Option<Vec<u8>>)> = tx
            .prepare_cached("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let (seq, prev) = match last {
            Some((seq, hash)) => (seq + 1, hash.unwrap_or_default()),
            None => (1, Vec::new()),
        };
        let mut e = AuditEntry {
            seq,
            at: Timestamp::now(),
            user: self.author().user.clone(),
            action: action.to_string(),
            target: target.to_string(),
            detail: detail.to_string(),
            reason: reason.to_string(),
            device: self.author().device.clone(),
            hash: String::new(),
        };
        let hash = link(&prev, &e);
        e.hash = hex(&hash);
        tx.prepare_cached(
            "INSERT INTO audit (seq, at, user, action, target, detail, reason, device, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            e.seq,
            e.at.0,
            e.user,
            e.action,
            e.target,
            e.detail,
            e.reason,
            e.device,
            hash.to_vec()
        ])?;
        tx.commit()?;
        Ok(())
    }

    /// The latest `limit` audit entries, newest first.
    pub fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.audit_where(None, limit)
    }

    /// The latest `limit` reveals of `target`'s (a person id) ID number or phone, newest first.
    pub fn audit_of(&self, target: &str, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {COLUMNS} FROM audit WHERE target = ?1 AND action = 'reveal'
             ORDER BY seq DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![target, limit as i64], entry)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn audit_where(
        &self,
        target: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.audit_where_since(target, limit, Timestamp(i64::MIN))
    }

    fn audit_where_since(
        &self,
        target: Option<&str>,
        limit: usize,
        since: Timestamp,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {COLUMNS} FROM audit
             WHERE (?1 IS NULL OR target = ?1) AND at >= ?3 ORDER BY seq DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![target, limit as i64, since.0], entry)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The audit entries since `since`, newest first (at most `limit`).
    pub fn audit_since(
        &self,
        since: Timestamp,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.audit_where_since(None, limit, since)
    }

    /// Checks the audit log's chain: every entry's hash follows from the entry before and its
    /// own content. (Entries cut off at the end leave a shorter chain that holds: a witness
    /// that was sent the head catches that.)
    pub fn audit_verify(&self) -> Result<AuditCheck, StoreError> {
        let mut stmt = self
            .conn()
            .prepare(&format!("SELECT {COLUMNS} FROM audit ORDER BY seq"))?;
        let rows = stmt.query_map([], |r| Ok((entry(r)?, r.get::<_, Option<Vec<u8>>>(8)?)))?;
        let mut prev: Vec<u8> = Vec::new();
        let mut check = AuditCheck {
            entries: 0,
            broken_at: None,
            head: String::new(),
        };
        for row in rows {
            let (e, stored) = row?;
            check.entries += 1;
            let expected = link(&prev, &e);
            if check.broken_at.is_none() && stored.as_deref() != Some(&expected[..]) {
                check.broken_at = Some(e.seq);
            }
            prev = stored.unwrap_or_default();
            check.head = hex(&prev);
        }
        Ok(check)
    }
}
