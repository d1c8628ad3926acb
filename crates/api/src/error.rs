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
    /// The store is locked: nobody has signed in yet.
    #[error("this device's data is locked: sign in with your passphrase")]
    Locked,
    /// The app itself failed (a call's thread stopped).
    #[error("{0}")]
    Internal(String),
    /// An invitation code could not be read.
    #[error("the invitation code cannot be read: {0}")]
    Invite(#[from] linli_wire::WireError),
}

/// The stable code of an [`ApiError`], the part the front end branches on (a union of
/// string literals in TypeScript).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, specta::Type)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No record with this id.
    NotFound,
    /// Input does not fit (the message names the field).
    Invalid,
    /// The device has no community (or no store) yet.
    NoCommunity,
    /// The device already has a community.
    HasCommunity,
    /// The device's role does not allow it.
    Forbidden,
    /// The disk is full.
    StorageFull,
    /// The store failed.
    Store,
    /// The relay or the peer cannot be reached.
    Offline,
    /// The relay or the peer refused.
    Refused,
    /// Syncing failed otherwise.
    Sync,
    /// Devices took different steps of a request at once: one must be kept.
    Conflict,
    /// The request cannot take this step.
    Step,
    /// An invitation code cannot be read.
    Invite,
    /// A file cannot be read.
    Io,
    /// The app itself failed.
    Internal,
    /// The passphrase does not unlock the store.
    WrongPassphrase,
    /// The store is locked: a person signs in first.
    Locked,
    /// The store's key file is damaged, missing, or not the store's.
    KeyFile,
}

impl ErrorCode {
    /// The code as sent to the front end (`not_found`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "not_found",
            ErrorCode::Invalid => "invalid",
            ErrorCode::NoCommunity => "no_community",
            ErrorCode::HasCommunity => "has_community",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::StorageFull => "storage_full",
            ErrorCode::Store => "store",
            ErrorCode::Offline => "offline",
            ErrorCode::Refused => "refused",
            ErrorCode::Sync => "sync",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Step => "step",
            ErrorCode::Invite => "invite",
            ErrorCode::Io => "io",
            ErrorCode::Internal => "internal",
            ErrorCode::WrongPassphrase => "wrong_passphrase",
            ErrorCode::Locked => "locked",
            ErrorCode::KeyFile => "key_file",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl ApiError {
    /// The stable code the front end branches on.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::Store(StoreError::NotFound(_)) | ApiError::NotFound { .. } => {
                ErrorCode::NotFound
            }
            ApiError::Store(
                StoreError::Invalid { .. }
                | StoreError::Field { .. }
                | StoreError::Import { .. }
                | StoreError::Duplicate { .. },
            ) => ErrorCode::Invalid,
            ApiError::Store(StoreError::NoCommunity)
            | ApiError::NoCommunity
            | ApiError::NoStore(_) => ErrorCode::NoCommunity,
            ApiError::Store(StoreError::HasCommunity(_)) => ErrorCode::HasCommunity,
            ApiError::Store(StoreError::Passphrase(_)) => ErrorCode::Invalid,
            ApiError::Store(StoreError::KeyFile(_) | StoreError::WrongKey(_)) => ErrorCode::KeyFile,
            ApiError::Store(StoreError::WrongPassphrase(_)) => ErrorCode::WrongPassphrase,
            ApiError::Locked => ErrorCode::Locked,
            ApiError::Store(StoreError::Identity(_)) | ApiError::Forbidden(_) => {
                ErrorCode::Forbidden
            }
            ApiError::Store(e) if e.is_storage_full() => ErrorCode::StorageFull,
            ApiError::Store(_) => ErrorCode::Store,
            ApiError::Sync(SyncError::Unreachable { .. } | SyncError::PeerLink { .. }) => {
                ErrorCode::Offline
            }
            ApiError::Sync(SyncError::Refused { .. } | SyncError::NotAllowed(_)) => {
                ErrorCode::Refused
            }
            ApiError::Sync(_) => ErrorCode::Sync,
            ApiError::Step(StepError::Conflict(_)) => ErrorCode::Conflict,
            ApiError::Step(_) => ErrorCode::Step,
            ApiError::Invalid { .. } => ErrorCode::Invalid,
            ApiError::Invite(_) => ErrorCode::Invite,
            ApiError::Read { .. } => ErrorCode::Io,
            ApiError::Internal(_) => ErrorCode::Internal,
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
        st.serialize_field("code", &self.code())?;
        st.serialize_field("message", &self.to_string())?;
        st.end()
    }
}

// The front end's type of an error, `{ code, message }`, described by a mirror of what
// `Serialize` above writes.
const _: () = {
    mod specta_shape {
        use super::ErrorCode;
        /// An error of a command: a stable code the UI branches on, and a message for people.
        #[derive(serde::Serialize, specta::Type)]
        #[specta(remote = super::ApiError)]
        #[allow(dead_code)]
        pub struct ApiError {
            /// What went wrong, as a stable code.
            code: ErrorCode,
            /// What went wrong, for people.
            message: String,
        }
    }
};
