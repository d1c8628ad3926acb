//! The relay's protocol (version 2): `POST /v2` takes a [`Signed`] [`Request`] and answers a [`Response`]
//! (postcard), or an error status with a plain-text reason.
//!
//! `POST /v2/stream` ([`STREAM_PATH`]) holds one exchange open for many requests, so that a
//! connected device pays one round trip for a whole session, not one per batch: its body is a
//! sequence of [frames](frame) each holding a [`Signed`] request, handled in order as each
//! arrives, and its answer a sequence of frames each holding a [`Reply`], one per request (a
//! [`Body::Follow`] instead answers, for as long as it is held, with a frame each time blobs
//! for the device arrive). The first refused request ends the exchange: later ones are not
//! handled.

use serde::{Deserialize, Serialize};

use crate::WireError;
use crate::cert::Membership;
use crate::crypto::{DeviceKey, PublicKey, SignatureBytes, verify};

/// The path of the relay's endpoint.
pub const PATH: &str = "/v2";
/// The largest request the relay accepts.
pub const MAX_REQUEST: usize = 64 * 1024 * 1024;
/// The path of the relay's streaming endpoint.
pub const STREAM_PATH: &str = "/v2/stream";

/// The paths of the protocol before blobs carried their sender and codes were signed whole
/// (version 1): a relay answers them with 426, naming the version it speaks.
pub const OLD_PATHS: &[&str] = &["/v1", "/v1/stream"];
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
            self.reset();
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
        if rest.len() < 4 + len {
            return Ok(None);
        }
        // A frame at the start of the buffer (a large push, usually) is handed over without a
        // copy: what follows it moves to a buffer of its own.
        if self.at == 0 {
            let rest = self.buf.split_off(4 + len);
            let mut bytes = std::mem::replace(&mut self.buf, rest);
            bytes.drain(..4);
            return Ok(Some(bytes));
        }
        let bytes = rest[4..4 + len].to_vec();
        self.at += 4 + len;
        if self.at == self.buf.len() {
            self.reset();
        } else if self.at >= 1 << 20 {
            // Read frames are not kept in memory behind a frame still arriving.
            self.buf.drain(..self.at);
            self.at = 0;
        }
        Ok(Some(bytes))
    }

    /// Empties the buffer, giving back a large one's memory.
    fn reset(&mut self) {
        if self.buf.capacity() > 1 << 20 {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
        self.at = 0;
    }

    /// The length of the frame being received, once its length has arrived.
    pub fn next_len(&self) -> Option<usize> {
        let len = self.buf.get(self.at..self.at + 4)?;
        Some(u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize)
    }

    /// What has arrived of the next frame after its length (empty until the length has).
    pub fn partial(&self) -> &[u8] {
        self.buf.get(self.at + 4..).unwrap_or(&[])
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
    /// The request was refused, as `POST /v2` would with this status and reason; the stream
    /// ends here.
    Refused {
        /// The HTTP status `POST /v2` would have answered.
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
    #[serde(with = "crate::bytes")]
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
    /// The device that pushed it (so that a blob that does not open can be traced to it).
    pub sender: PublicKey,
    /// The sealed bundle.
    #[serde(with = "crate::bytes")]
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
    /// Committee staff only: delete these blobs (ones no device can open, set aside by the
    /// devices that received them). Sequence numbers the relay does not hold are ignored.
    Drop {
        /// The blobs' sequence numbers.
        seqs: Vec<u64>,
    },
}

/// The longest a relay holds a [`Body::Watch`] open.
pub const MAX_WATCH_MS: u64 = 30_000;

/// How far ahead of the relay's clock a request's counter may be (the counter is the device's
/// clock in ms, or just past its last one): a counter far ahead, once accepted, would have
/// the relay refuse every later request of that device as a replay.
pub const MAX_COUNTER_AHEAD_MS: u64 = 60 * 60 * 1000;

/// The words a relay's refusal of a counter too far ahead holds: the device then numbers its
/// requests from its clock again (its stored counter came from a clock that was wrong).
pub const COUNTER_AHEAD: &str = "ahead of the relay's clock";

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
    #[serde(with = "crate::bytes")]
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
    /// The blobs a [`Body::Drop`] deleted (those that were there).
    Dropped {
        /// Their sequence numbers.
        seqs: Vec<u64>,
    },
}

/// A [`Signed`] request read in place: its parts borrow the received bytes (a relay checks
/// a request of many megabytes without copying it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct SignedView<'a> {
    /// The encoded [`Request`].
    pub request: &'a [u8],
    /// The device's signature over `request`.
    pub signature: &'a [u8],
}

impl<'a> SignedView<'a> {
    /// Reads the request in place and checks that its membership's device signed it (the
    /// membership itself is checked against the community's root by the caller).
    pub fn open(&self) -> Result<RequestView<'a>, WireError> {
        let request: RequestView<'a> = crate::decode("request", self.request)?;
        verify(
            &request.membership.device(),
            REQUEST_CONTEXT,
            self.request,
            self.signature,
            "request",
        )?;
        Ok(request)
    }
}

/// A [`Request`] read in place.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RequestView<'a> {
    /// The sender's membership.
    pub membership: Membership,
    /// See [`Request::counter`].
    pub counter: u64,
    /// What is asked.
    #[serde(borrow)]
    pub body: BodyView<'a>,
}

/// A [`Body`] read in place (the same encoding, variant for variant).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[allow(missing_docs)]
pub enum BodyView<'a> {
    /// [`Body::Push`].
    Push {
        #[serde(borrow)]
        blobs: Vec<NewBlobView<'a>>,
    },
    /// [`Body::Pull`].
    Pull { since: u64, max_bytes: u64 },
    /// [`Body::Watch`].
    Watch {
        since: u64,
        max_bytes: u64,
        wait_ms: u64,
    },
    /// [`Body::Follow`].
    Follow {
        since: u64,
        max_bytes: u64,
        wait_ms: u64,
    },
    /// [`Body::Drop`].
    Drop { seqs: Vec<u64> },
}

/// A [`NewBlob`] read in place.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NewBlobView<'a> {
    /// Its scope.
    pub scope: &'a str,
    /// What it holds.
    pub kind: BlobKind,
    /// The document ids it covers.
    #[serde(borrow)]
    pub docs: Vec<&'a str>,
    /// See [`NewBlob::covers`].
    pub covers: u64,
    /// The sealed bundle.
    pub sealed: &'a [u8],
}

/// The membership at the start of a [`Signed`] request whose first bytes are `prefix`:
/// `Ok(None)` while more bytes are needed to read it. A relay checks it before reading the
/// rest of a large request.
pub fn peek_membership(prefix: &[u8]) -> Result<Option<Membership>, WireError> {
    // A `Signed` starts with the length of its request (a varint), then the request, which
    // starts with the membership.
    let mut at = 0;
    loop {
        match prefix.get(at) {
            None => return Ok(None),
            Some(b) if b & 0x80 == 0 => break,
            Some(_) if at >= 9 => {
                return Err(WireError::Malformed {
                    what: "request",
                    reason: "its length does not decode".into(),
                });
            }
            Some(_) => at += 1,
        }
    }
    match postcard::take_from_bytes::<Membership>(&prefix[at + 1..]) {
        Ok((m, _)) => Ok(Some(m)),
        Err(postcard::Error::DeserializeUnexpectedEnd) => Ok(None),
        Err(e) => Err(crate::malformed("request")(e)),
    }
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

    fn member() -> (DeviceKey, Membership) {
        let root = DeviceKey::generate().unwrap();
        let m = Membership {
            community: crate::community_id("c1", &root.public()),
            root: root.public(),
            certs: vec![],
        };
        (root, m)
    }

    /// The in-place reading of a request gives what the owned one holds, for every body.
    #[test]
    fn views_read_what_was_encoded() {
        let (key, membership) = member();
        let bodies = vec![
            Body::Push {
                blobs: vec![NewBlob {
                    scope: "G01".into(),
                    kind: BlobKind::Snapshot,
                    docs: vec!["hh-1".into(), "hh-1.pii".into()],
                    covers: 7,
                    sealed: vec![1, 2, 3, 250],
                }],
            },
            Body::Pull {
                since: 3,
                max_bytes: 9,
            },
            Body::Watch {
                since: 1,
                max_bytes: 2,
                wait_ms: 3,
            },
            Body::Follow {
                since: 4,
                max_bytes: 5,
                wait_ms: 6,
            },
            Body::Drop { seqs: vec![5, 9] },
        ];
        for body in bodies {
            let request = Request {
                membership: membership.clone(),
                counter: 42,
                body: body.clone(),
            };
            let bytes = crate::encode(&Signed::sign(&key, &request));
            assert_eq!(peek_membership(&bytes).unwrap(), Some(membership.clone()));
            for cut in 0..8 {
                assert_eq!(peek_membership(&bytes[..cut]).unwrap(), None);
            }
            let view: SignedView<'_> = crate::decode("request", &bytes).unwrap();
            let r = view.open().unwrap();
            assert_eq!((r.counter, &r.membership), (42, &membership));
            let same = match (&r.body, &body) {
                (BodyView::Push { blobs: v }, Body::Push { blobs: o }) => {
                    v.len() == o.len()
                        && v.iter().zip(o).all(|(v, o)| {
                            v.scope == o.scope
                                && v.kind == o.kind
                                && v.docs == o.docs
                                && v.covers == o.covers
                                && v.sealed == o.sealed.as_slice()
                        })
                }
                (
                    BodyView::Pull { since, max_bytes },
                    Body::Pull {
                        since: s,
                        max_bytes: m,
                    },
                ) => (since, max_bytes) == (s, m),
                (
                    BodyView::Watch {
                        since,
                        max_bytes,
                        wait_ms,
                    },
                    Body::Watch {
                        since: s,
                        max_bytes: m,
                        wait_ms: w,
                    },
                )
                | (
                    BodyView::Follow {
                        since,
                        max_bytes,
                        wait_ms,
                    },
                    Body::Follow {
                        since: s,
                        max_bytes: m,
                        wait_ms: w,
                    },
                ) => (since, max_bytes, wait_ms) == (s, m, w),
                (BodyView::Drop { seqs }, Body::Drop { seqs: o }) => seqs == o,
                _ => false,
            };
            assert!(same, "{body:?} read as {:?}", r.body);
            // A changed byte in the request fails the signature or the decoding.
            let mut bad = bytes.clone();
            let last = bad.len() - 70;
            bad[last] ^= 1;
            let opened = crate::decode::<SignedView<'_>>("request", &bad).and_then(|v| v.open());
            assert!(opened.is_err());
        }
    }

    proptest::proptest! {
        /// Whatever bytes arrive, reading them as a request, a reply, a frame or a membership
        /// prefix returns an answer or an error, never a panic.
        #[test]
        fn reading_any_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = peek_membership(&bytes);
            if let Ok(v) = crate::decode::<SignedView<'_>>("request", &bytes) {
                let _ = v.open();
            }
            let _ = crate::decode::<Signed>("request", &bytes);
            let _ = crate::decode::<Reply>("reply", &bytes);
            let _ = crate::decode::<Response>("response", &bytes);
            let _ = crate::decode::<crate::Invite>("invitation", &bytes);
            let mut frames = Frames::default();
            frames.extend(&bytes);
            while let Ok(Some(_)) = frames.next_frame() {}
        }
    }
}
