//! The local audit log: who saw what sensitive value, and when (个人信息保护法). It stays on
//! this device; it never holds the value itself.

use linli_domain::Timestamp;
use rusqlite::params;
use serde::Serialize;

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
}

impl Store {
    /// Appends to the audit log, as the current user.
    pub fn audit(&self, action: &str, target: &str, detail: &str) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(
                "INSERT INTO audit (at, user, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                Timestamp::now().0,
                self.author().user,
                action,
                target,
                detail
            ])?;
        Ok(())
    }

    /// The latest `limit` audit entries, newest first.
    pub fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.audit_where(None, limit)
    }

    /// The latest `limit` audit entries about `target` (a person id), newest first.
    pub fn audit_of(&self, target: &str, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.audit_where(Some(target), limit)
    }

    fn audit_where(
        &self,
        target: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT seq, at, user, action, target, detail FROM audit
             WHERE ?1 IS NULL OR target = ?1 ORDER BY seq DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![target, limit as i64], |r| {
            Ok(AuditEntry {
                seq: r.get(0)?,
                at: Timestamp(r.get(1)?),
                user: r.get(2)?,
                action: r.get(3)?,
                target: r.get(4)?,
                detail: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
