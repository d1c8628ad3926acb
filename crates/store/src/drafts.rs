//! Drafts: what a person typed into a form and has not saved yet (a visit being recorded, a
//! new request, a notice …), kept on every keystroke so that closing the app, a crash or a
//! flat battery loses nothing typed.
//!
//! Drafts live in the store's own SQLite file, beside the documents, not in the web view's
//! storage: they hold what residents' records hold (an ID number typed into a new household,
//! notes of a visit), so they get the store's protection, and one write is durable the moment
//! it returns (WAL). They are this device's alone: never part of a document, never synced.
//! A draft is keyed by its form (`visit`, `request.new` …) and its subject (the household
//! visited, the request commented on; empty for a form about nothing yet).

use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use crate::{Store, StoreError};

/// The longest draft kept (its JSON), 64 KiB: far more than any form holds.
pub const MAX_DRAFT_BYTES: usize = 64 * 1024;

fn bad(field: &str, message: String) -> StoreError {
    StoreError::Field {
        id: "draft".into(),
        field: field.into(),
        message,
    }
}

/// A form name: 1–64 of `a-z 0-9 . _ -`.
fn check_form(form: &str) -> Result<(), StoreError> {
    let ok = (1..=64).contains(&form.len())
        && form
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(bad(
            "form",
            format!("`{form}` is not a form name (1–64 of a-z, 0-9, `.`, `_`, `-`)"),
        ))
    }
}

fn check_subject(subject: &str) -> Result<(), StoreError> {
    if subject.len() <= 200 {
        Ok(())
    } else {
        Err(bad(
            "subject",
            format!("is {} bytes long (at most 200)", subject.len()),
        ))
    }
}

impl Store {
    /// The draft of `form` about `subject`, if one was kept.
    pub fn draft(&self, form: &str, subject: &str) -> Result<Option<Value>, StoreError> {
        check_form(form)?;
        check_subject(subject)?;
        let json: Option<String> = self
            .conn()
            .prepare_cached("SELECT value FROM drafts WHERE form = ?1 AND subject = ?2")?
            .query_row(params![form, subject], |r| r.get(0))
            .optional()?;
        json.map(|j| {
            serde_json::from_str(&j)
                .map_err(|e| bad("value", format!("stored draft of {form} is damaged: {e}")))
        })
        .transpose()
    }

    /// Keeps `value` as the draft of `form` about `subject` (replacing the one before).
    pub fn save_draft(&self, form: &str, subject: &str, value: &Value) -> Result<(), StoreError> {
        check_form(form)?;
        check_subject(subject)?;
        let json = value.to_string();
        if json.len() > MAX_DRAFT_BYTES {
            return Err(bad(
                "value",
                format!(
                    "draft of {form} is {} bytes (at most {MAX_DRAFT_BYTES})",
                    json.len()
                ),
            ));
        }
        self.conn()
            .prepare_cached(
                "INSERT OR REPLACE INTO drafts (form, subject, value, saved_ms) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![form, subject, json, linli_domain::Timestamp::now().0])?;
        Ok(())
    }

    /// Forgets the draft of `form` about `subject` (saved or discarded); no draft is no error.
    pub fn clear_draft(&self, form: &str, subject: &str) -> Result<(), StoreError> {
        check_form(form)?;
        check_subject(subject)?;
        self.conn()
            .prepare_cached("DELETE FROM drafts WHERE form = ?1 AND subject = ?2")?
            .execute(params![form, subject])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::Store;

    #[test]
    fn a_draft_outlives_the_store_handle_until_cleared() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path(), &linli_testkit::key()).unwrap();
            assert_eq!(s.draft("visit", "hh-1").unwrap(), None);
            s.save_draft("visit", "hh-1", &json!({"notes": "老人"}))
                .unwrap();
            s.save_draft("visit", "hh-1", &json!({"notes": "老人身体不错"}))
                .unwrap();
            s.save_draft("visit", "hh-2", &json!({"notes": "未遇"}))
                .unwrap();
        }
        let s = Store::open(dir.path(), &linli_testkit::key()).unwrap();
        assert_eq!(
            s.draft("visit", "hh-1").unwrap(),
            Some(json!({"notes": "老人身体不错"}))
        );
        s.clear_draft("visit", "hh-1").unwrap();
        assert_eq!(s.draft("visit", "hh-1").unwrap(), None);
        s.clear_draft("visit", "hh-1").unwrap();
        assert_eq!(
            s.draft("visit", "hh-2").unwrap(),
            Some(json!({"notes": "未遇"})),
            "another subject's draft is kept"
        );
        assert_eq!(s.draft("request.new", "hh-2").unwrap(), None);
    }

    #[test]
    fn bad_names_and_oversized_drafts_are_refused_and_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), &linli_testkit::key()).unwrap();
        s.save_draft("board.post", "", &json!({"title": "停水"}))
            .unwrap();
        for form in ["", "Visit", "visit form", "走访", &"x".repeat(65)] {
            let e = s.save_draft(form, "", &json!({})).unwrap_err().to_string();
            assert!(e.contains("field `form`"), "{form}: {e}");
        }
        let e = s
            .save_draft("visit", &"h".repeat(201), &json!({}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("field `subject`"), "{e}");
        let big = json!({"notes": "字".repeat(super::MAX_DRAFT_BYTES / 3)});
        let e = s
            .save_draft("board.post", "", &big)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("field `value`") && e.contains("at most 65536"),
            "{e}"
        );
        assert_eq!(
            s.draft("board.post", "").unwrap(),
            Some(json!({"title": "停水"})),
            "the refused draft did not replace the one kept"
        );
    }
}
