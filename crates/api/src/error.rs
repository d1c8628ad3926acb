//! [`ApiError`]: what went wrong, as a stable machine code and a message for people. The app
//! shows the message; its logic branches on the code only.

use linli_domain::request::StepError;
use linli_store::StoreError;
use linli_sync::relay_client::SyncError;
use serde::ser::SerializeStruct;

/// An error of an API call. Serialized as `{ "code": "...", "message": "..." }`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The store failed or refused (validation errors name the record and field).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Syncing failed (the relay or peer is unreachable, refused, or sent something wrong).
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// A service request cannot take this step.
    #[error(transparent)]
    Step(#[from] StepError),
    /// Input from the user does not fit: names the field.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// This device's role does not allow it.
    #[error("{0}")]
    Forbidden(String),
    /// No record with this id, or of the wrong kind.
    #[error("no {kind} with id {id}")]
    NotFound {
        /// What was looked for.
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// The device has not created or joined a community yet.
    #[error("this device has no community yet: create one or join with an invitation")]
    NoCommunity,
    /// There is no store in this data directory yet.
    #[error("no store in {}: run `linli init --community NAME` or `linli demo` first", .0.display())]
    NoStore(std::path::PathBuf),
    /// A file given by the user could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The app itself failed (a call's thread stopped).
    #[error("{0}")]
    Internal(String),
    /// An invitation code could not be read.
    #[error("the invitation code cannot be read: {0}")]
    Invite(#[from] linli_wire::WireError),
}

impl ApiError {
    /// The stable code the front end branches on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Store(StoreError::NotFound(_)) | ApiError::NotFound { .. } => "not_found",
            ApiError::Store(
                StoreError::Invalid { .. }
                | StoreError::Field { .. }
                | StoreError::Import { .. }
                | StoreError::Duplicate { .. },
            ) => "invalid",
            ApiError::Store(StoreError::NoCommunity)
            | ApiError::NoCommunity
            | ApiError::NoStore(_) => "no_community",
            ApiError::Store(StoreError::HasCommunity(_)) => "has_community",
            ApiError::Store(StoreError::Identity(_)) | ApiError::Forbidden(_) => "forbidden",
            ApiError::Store(e) if e.is_storage_full() => "storage_full",
            ApiError::Store(_) => "store",
            ApiError::Sync(SyncError::Unreachable { .. } | SyncError::PeerLink { .. }) => "offline",
            ApiError::Sync(SyncError::Refused { .. } | SyncError::NotAllowed(_)) => "refused",
            ApiError::Sync(_) => "sync",
            ApiError::Step(StepError::Conflict(_)) => "conflict",
            ApiError::Step(_) => "step",
            ApiError::Invalid { .. } => "invalid",
            ApiError::Invite(_) => "invite",
            ApiError::Read { .. } => "io",
            ApiError::Internal(_) => "internal",
        }
    }

    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::Invalid {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

impl serde::Serialize for ApiError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("ApiError", 2)?;
        st.serialize_field("code", self.code())?;
        st.serialize_field("message", &self.to_string())?;
        st.end()
    }
}
