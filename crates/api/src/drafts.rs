//! Drafts of the screens' forms, kept in the store as they are typed (see `linli_sync`'s
//! drafts): what a person typed survives closing the app until it is saved or discarded.

use serde_json::Value;

use crate::{Api, ApiError};

impl Api {
    /// The draft of `form` about `subject` (empty: about nothing yet), if one was kept.
    pub fn draft(&self, form: &str, subject: &str) -> Result<Option<Value>, ApiError> {
        Ok(self.store().draft(form, subject)?)
    }

    /// Keeps what was typed into `form` about `subject`.
    pub fn save_draft(&self, form: &str, subject: &str, value: &Value) -> Result<(), ApiError> {
        Ok(self.store().save_draft(form, subject, value)?)
    }

    /// Forgets a draft (its form was saved, or the person discarded it).
    pub fn clear_draft(&self, form: &str, subject: &str) -> Result<(), ApiError> {
        Ok(self.store().clear_draft(form, subject)?)
    }
}
