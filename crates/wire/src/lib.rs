//! Linli's wire types: what devices and the street office's relay exchange, and nothing else.
//!
//! - [`Membership`]: a device's signed place in a community (a chain of [`Cert`]s from the
//!   community's root key down to the device's key), which peers and the relay check without
//!   trusting each other.
//! - [`Invite`]: the text code that enrols a new device with a role and the keys of its scopes.
//! - [`ScopeKey`], [`seal`] / [`open`]: every document travels inside a sealed [`Bundle`],
//!   encrypted on the device with the key of its scope (XChaCha20-Poly1305).
//! - [`relay`]: the relay's requests and responses.
//! - [`peer`]: the messages two devices exchange directly, and the ticket a serving device shows.
//!
//! Architecture invariant: this crate knows nothing of residents, households or Automerge. The
//! relay depends on it alone, so it can only ever see opaque sealed bytes.

mod bytes;
mod cert;
mod crypto;
mod invite;
mod names;
pub mod peer;
pub mod relay;

pub use cert::{Cert, Grant, Membership, Role, short};
pub use crypto::{
    Bundle, DeviceKey, DocPayload, PublicKey, ScopeKey, SignatureBytes, open, open_bundle,
    random_bytes, seal, seal_bundle, verify,
};
pub use invite::Invite;
pub use names::{
    MAX_COMMUNITY_ID, MAX_COMMUNITY_LABEL, MAX_DOC_ID, MAX_SCOPE, check_community_id, check_doc_id,
    check_scope, community_bound_to, community_id,
};

/// The scope name of community-wide documents (notices, the help board, ballots, the community
/// itself). Every other scope is a grid id such as `G01`.
pub const COMMUNITY_WIDE: &str = "*";

/// What can be wrong with bytes that came over the wire.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The bytes do not decode.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// The decoder's complaint.
        reason: String,
    },
    /// A signature does not verify.
    #[error("bad signature on {0}")]
    BadSignature(&'static str),
    /// A membership chain is not valid.
    #[error("membership not valid: {0}")]
    Chain(String),
    /// Sealed bytes do not open with this key (wrong key, or changed in transit).
    #[error("sealed data for scope {scope} does not open: wrong key, or damaged in transit")]
    Sealed {
        /// The scope.
        scope: String,
    },
    /// An invitation code is not valid.
    #[error("invitation code not valid: {0}")]
    Invite(String),
    /// A community id, scope name or document id is not of the allowed form.
    #[error("{what} {reason}")]
    Name {
        /// What the name is of.
        what: &'static str,
        /// What is wrong with it (never the name itself).
        reason: String,
    },
    /// The operating system's random source failed.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

pub(crate) fn malformed(what: &'static str) -> impl Fn(postcard::Error) -> WireError {
    move |e| WireError::Malformed {
        what,
        reason: e.to_string(),
    }
}

/// Encodes a wire value (postcard).
pub fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // postcard cannot fail on our types (no maps with non-string keys, no unsized sequences).
    postcard::to_stdvec(value).unwrap_or_default()
}

/// Decodes a wire value; `what` names it in the error. Bytes left over after the value are
/// refused: whatever was signed or sealed is exactly what is read.
pub fn decode<'a, T: serde::Deserialize<'a>>(
    what: &'static str,
    bytes: &'a [u8],
) -> Result<T, WireError> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(malformed(what))?;
    if !rest.is_empty() {
        return Err(WireError::Malformed {
            what,
            reason: format!("{} bytes follow its end", rest.len()),
        });
    }
    Ok(value)
}
