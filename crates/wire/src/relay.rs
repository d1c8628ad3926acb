//! The relay's protocol: one HTTP endpoint, `POST /v1`, taking a [`Signed`] [`Request`] and
//! answering a [`Response`] (postcard), or an error status with a plain-text reason.

use serde::{Deserialize, Serialize};

use crate::WireError;
use crate::cert::Membership;
use crate::crypto::{DeviceKey, SignatureBytes, verify};

/// The path of the relay's endpoint.
pub const PATH: &str = "/v1";
/// The largest request the relay accepts.
pub const MAX_REQUEST: usize = 64 * 1024 * 1024;

/// What a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlobKind {
    /// Changes to the documents it lists.
    Changes,
    /// Whole documents: supersedes older blobs of the same documents up to `covers`.
    Snapshot,
}

/// A blob a device uploads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewBlob {
    /// Its scope (a grid id, or [`crate::COMMUNITY_WIDE`]).
    pub scope: String,
    /// What it holds.
    pub kind: BlobKind,
    /// The document ids it covers (ids only: never a resident's data).
    pub docs: Vec<String>,
    /// For snapshots: the relay sequence number up to which the sender had pulled this scope;
    /// older blobs of these documents are then superseded.
    pub covers: u64,
    /// The sealed bundle.
    pub sealed: Vec<u8>,
}

/// A blob the relay hands out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blob {
    /// The relay's sequence number.
    pub seq: u64,
    /// Its scope.
    pub scope: String,
    /// What it holds.
    pub kind: BlobKind,
    /// The sealed bundle.
    pub sealed: Vec<u8>,
}

/// What a device asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// Store these blobs.
    Push {
        /// The blobs.
        blobs: Vec<NewBlob>,
    },
    /// Hand out blobs of my scopes with a sequence number above `since`, at most about
    /// `max_bytes` of them.
    Pull {
        /// The cursor.
        since: u64,
        /// A soft limit on the response size.
        max_bytes: u64,
    },
    /// As [`Body::Pull`], but when nothing is waiting, hold the answer until blobs of my
    /// scopes arrive or `wait_ms` has passed (a long poll: a connected device hears of a
    /// change as soon as the relay stores it, without asking again and again).
    Watch {
        /// The cursor.
        since: u64,
        /// A soft limit on the response size.
        max_bytes: u64,
        /// How long to hold an empty answer (the relay caps it at [`MAX_WATCH_MS`]).
        wait_ms: u64,
    },
}

/// The longest a relay holds a [`Body::Watch`] open.
pub const MAX_WATCH_MS: u64 = 30_000;

/// A request, before signing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The sender's membership (its last key signs the request).
    pub membership: Membership,
    /// Strictly increasing per device: the relay refuses a request not newer than the last it
    /// accepted from that device, so a replayed request does nothing.
    pub counter: u64,
    /// What is asked.
    pub body: Body,
}

const REQUEST_CONTEXT: &[u8] = b"linli relay request v1";

/// A request and the sender's signature over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    /// The encoded [`Request`].
    pub request: Vec<u8>,
    /// The device's signature over `request`.
    pub signature: SignatureBytes,
}

impl Signed {
    /// Encodes and signs.
    pub fn sign(key: &DeviceKey, request: &Request) -> Signed {
        let request = crate::encode(request);
        let signature = key.sign(REQUEST_CONTEXT, &request);
        Signed { request, signature }
    }

    /// Decodes the request and checks that its membership's device signed it. (The membership
    /// itself is checked against the community's root by the caller.)
    pub fn open(&self) -> Result<Request, WireError> {
        let request: Request = crate::decode("request", &self.request)?;
        verify(
            &request.membership.device(),
            REQUEST_CONTEXT,
            &self.request,
            &self.signature,
            "request",
        )?;
        Ok(request)
    }
}

/// The relay's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The pushed blobs' sequence numbers, in order.
    Pushed {
        /// One per blob.
        seqs: Vec<u64>,
    },
    /// Blobs, oldest first.
    Pulled {
        /// The blobs.
        blobs: Vec<Blob>,
        /// The cursor to ask from next time.
        next: u64,
        /// Whether more blobs are waiting.
        more: bool,
    },
}
