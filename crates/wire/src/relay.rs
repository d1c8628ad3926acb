//! The relay's protocol: `POST /v1` takes a [`Signed`] [`Request`] and answers a [`Response`]
//! (postcard), or an error status with a plain-text reason.
//!
//! `POST /v1/stream` ([`STREAM_PATH`]) holds one exchange open for many requests, so that a
//! connected device pays one round trip for a whole session, not one per batch: its body is a
//! sequence of [frames](frame) each holding a [`Signed`] request, handled in order as each
//! arrives, and its answer a sequence of frames each holding a [`Reply`], one per request (a
//! [`Body::Follow`] instead answers, for as long as it is held, with a frame each time blobs
//! for the device arrive). The first refused request ends the exchange: later ones are not
//! handled.

use serde::{Deserialize, Serialize};

use crate::WireError;
use crate::cert::Membership;
use crate::crypto::{DeviceKey, SignatureBytes, verify};

/// The path of the relay's endpoint.
pub const PATH: &str = "/v1";
/// The largest request the relay accepts.
pub const MAX_REQUEST: usize = 64 * 1024 * 1024;
/// The path of the relay's streaming endpoint.
pub const STREAM_PATH: &str = "/v1/stream";
/// The longest a relay holds a [`Body::Follow`] open.
pub const MAX_FOLLOW_MS: u64 = 10 * 60 * 1000;
/// How often a held [`Body::Follow`] sends an empty frame when nothing arrives (so that each
/// side learns soon that the other is gone).
pub const KEEPALIVE_MS: u64 = 15_000;

/// One frame of a stream: `bytes` after their length (4 bytes, big-endian). An empty frame is
/// a keepalive.
pub fn frame(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 4);
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
    out
}

/// Splits the bytes of a stream, as they arrive, into [frames](frame).
#[derive(Debug, Default)]
pub struct Frames {
    buf: Vec<u8>,
    /// Where the unread bytes of `buf` start.
    at: usize,
}

impl Frames {
    /// Adds bytes that arrived.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.at > 0 && self.at == self.buf.len() {
            self.buf.clear();
            self.at = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, if one has arrived; an error for a frame longer than
    /// [`MAX_REQUEST`] (the stream cannot be read further).
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, WireError> {
        let rest = &self.buf[self.at..];
        let Some(len) = rest.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if len > MAX_REQUEST {
            return Err(WireError::Malformed {
                what: "stream frame",
                reason: format!("a frame of {len} bytes is longer than the limit {MAX_REQUEST}"),
            });
        }
        let Some(bytes) = rest.get(4..4 + len) else {
            return Ok(None);
        };
        let bytes = bytes.to_vec();
        self.at += 4 + len;
        if self.at == self.buf.len() {
            self.buf.clear();
            self.at = 0;
        }
        Ok(Some(bytes))
    }

    /// Bytes of an incomplete frame still waiting (at the end of a stream: it was cut).
    pub fn pending(&self) -> usize {
        self.buf.len() - self.at
    }
}

/// The answer to one request of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// The request was handled.
    Answer(Response),
    /// The request was refused, as `POST /v1` would with this status and reason; the stream
    /// ends here.
    Refused {
        /// The HTTP status `POST /v1` would have answered.
        status: u16,
        /// Why.
        message: String,
    },
}

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
    /// Only on [`STREAM_PATH`]: as [`Body::Watch`], but held open: a frame with the blobs of
    /// my scopes above the cursor at once if any wait, then one each time more are stored,
    /// until `wait_ms` has passed (capped at [`MAX_FOLLOW_MS`]) or I close the stream.
    Follow {
        /// The cursor.
        since: u64,
        /// A soft limit on each frame's size.
        max_bytes: u64,
        /// How long to hold the stream open.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_out_whole_however_the_bytes_are_cut() {
        let sent: Vec<Vec<u8>> = vec![b"first".to_vec(), Vec::new(), vec![7; 3000], b"x".to_vec()];
        let stream: Vec<u8> = sent.iter().flat_map(|f| frame(f)).collect();
        for cut in [1, 2, 3, 5, 7, 64, 4096, stream.len()] {
            let mut frames = Frames::default();
            let mut got = Vec::new();
            for piece in stream.chunks(cut) {
                frames.extend(piece);
                while let Some(f) = frames.next_frame().expect("frames within the limit") {
                    got.push(f);
                }
            }
            assert_eq!(got, sent, "pieces of {cut} bytes");
            assert_eq!(frames.pending(), 0);
        }
        // A stream cut inside a frame leaves its bytes pending, not a frame.
        let mut frames = Frames::default();
        frames.extend(&stream[..stream.len() - 1]);
        let mut whole = 0;
        while frames.next_frame().expect("within the limit").is_some() {
            whole += 1;
        }
        assert_eq!(whole, 3);
        assert_eq!(frames.pending(), 4);
    }

    #[test]
    fn a_frame_over_the_limit_is_an_error() {
        let mut frames = Frames::default();
        frames.extend(&u32::MAX.to_be_bytes());
        let err = frames.next_frame().expect_err("over the limit");
        assert!(err.to_string().contains("longer than the limit"), "{err}");
    }
}
