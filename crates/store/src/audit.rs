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
    /// Why (for a reveal: the purpose the person gave).
    pub reason: String,
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

    fn audit_with(
        &self,
        action: &str,
        target: &str,
        detail: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(
                "INSERT INTO audit (at, user, action, target, detail, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                Timestamp::now().0,
                self.author().user,
                action,
                target,
                detail,
                reason
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
            "SELECT seq, at, user, action, target, detail, reason FROM audit
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
                reason: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
