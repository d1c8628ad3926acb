//! A live session with the relay as a state machine without I/O: [`Live`].
//!
//! While connected, a device holds one stream open on the relay (a follow) that brings a frame
//! each time blobs of its scopes arrive, and sends its own changes as frames of an upload
//! stream that stays open while the work goes on. The rules that make this correct and cheap
//! live here, apart from HTTP, SQLite and the clock:
//!
//! - **When to seal.** The store announces each write ([`Input::Changed`] with the change
//!   feed's head). Changes made in a burst go together: they are sealed once the feed has been
//!   quiet for [`LiveConfig::quiet`], or [`LiveConfig::batch`] after the first of them, whichever
//!   comes first (a frame costs something at every hop; a lone change still leaves at once).
//!   A head that moved only by merging what the relay sent is not sealed at all.
//! - **What is in flight.** Documents sealed into the open upload are in flight with their
//!   heads: a later seal leaves them out unless they changed again ([`Output::Seal`] carries
//!   them).
//! - **What counts as sent.** An upload counts as sent only when the relay has answered every
//!   frame it carried ([`Output::MarkSent`]); a cut, a refusal or a short answer ends the session
//!   and everything since the last acknowledged position is sealed again next time (the relay
//!   keeps both copies; merging one twice changes nothing).
//! - **When an upload closes.** After [`LiveConfig::idle`] without a new frame, or
//!   [`LiveConfig::max_upload`] after it opened; one upload at a time: changes made while one is
//!   closing wait for its answer.
//! - **When the connection counts as lost.** The relay sends an empty frame every 15 s when
//!   nothing arrives; [`LiveConfig::silence`] without a byte ends the session.
//!
//! - **When the first push may go.** Only once the relay has answered the follow: its request
//!   counter comes before the pushes', and the relay takes a device's requests only in the order
//!   of their counters.
//!
//! The driver (`linli_sync::live`) carries [`Output`]s out — seals and signs with the store,
//! opens HTTP requests, merges — and feeds what happened back as [`Input`]s, with the time.
//! It sleeps until [`Live::next_wake`] or the next input: an idle device does nothing at all.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use linli_wire::relay::{Frames, KEEPALIVE_MS, Reply, Response, frame};

use crate::{Heads, SyncReport};

/// Document ids and the heads sealed into the open upload.
pub type InFlight = HashMap<String, Vec<u8>>;

/// The timings of a live session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveConfig {
    /// How long the feed must be quiet before changes are sealed.
    pub quiet: Duration,
    /// The longest a change waits to be sealed while more follow it without pause.
    pub batch: Duration,
    /// How long an upload stays open after its last frame.
    pub idle: Duration,
    /// The longest one upload stays open, however busy the device.
    pub max_upload: Duration,
    /// How long the relay may say nothing before the connection counts as lost.
    pub silence: Duration,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            quiet: Duration::from_millis(2),
            batch: Duration::from_millis(5),
            idle: Duration::from_millis(200),
            max_upload: Duration::from_secs(60),
            silence: Duration::from_millis(2 * KEEPALIVE_MS + 5_000),
        }
    }
}

/// A signed push request, ready to be framed into the upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushFrame {
    /// Blobs it carries (the relay answers with one sequence number each).
    pub blobs: usize,
    /// Documents it carries.
    pub docs: usize,
    /// The encoded, signed request.
    pub request: Vec<u8>,
}

/// What happened, fed to [`Live::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The store's change feed is at `head` (announced after a write, or read at the start).
    Changed {
        /// The feed's head.
        head: i64,
    },
    /// An [`Output::Merge`] was carried out: the relay has everything written here up to
    /// feed position `sent_seq` (a merge records what it wrote as the relay's).
    Merged {
        /// The feed position up to which the relay has everything.
        sent_seq: i64,
    },
    /// The answer to [`Output::Seal`]: the pushes to send (none if nothing needed sending)
    /// and the heads of the documents they carry.
    Sealed {
        /// Signed push requests.
        frames: Vec<PushFrame>,
        /// The documents' ids and heads.
        heads: Heads,
        /// The feed head the seal was made at.
        head: i64,
    },
    /// Bytes of the follow stream arrived.
    Follow(Vec<u8>),
    /// The follow stream ended (its time passed, or the relay is stopping).
    FollowEnded,
    /// The closed upload's whole answer arrived.
    Answer {
        /// The HTTP status.
        status: u16,
        /// The body: a frame per request, each holding a [`Reply`].
        body: Vec<u8>,
    },
    /// The open upload took no more frames (the relay refused one and stopped reading, or the
    /// connection broke): it counts as closed, and its answer, which says why, comes as
    /// [`Input::Answer`] (or [`Input::UploadBroken`]).
    UploadEnded,
    /// The upload request failed (the connection broke, a frame could not be sent).
    UploadBroken(String),
    /// The time of [`Live::next_wake`] came.
    Timer,
    /// The session should end: the open upload is closed and acknowledged first.
    Stop,
}

/// What to do, answered by [`Live::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Seal the documents written after feed position `after` (up to `head`), leaving out
    /// those `in_flight` with the same heads; answer with [`Input::Sealed`].
    Seal {
        /// Everything up to here is sent or in flight.
        after: i64,
        /// The feed head to seal at.
        head: i64,
        /// Documents already in the open upload.
        in_flight: InFlight,
    },
    /// Open an upload stream.
    OpenUpload,
    /// Send these bytes (one frame) in the open upload.
    Send(Vec<u8>),
    /// End the open upload's body; its answer comes back as [`Input::Answer`].
    CloseUpload,
    /// Merge a pull's answer that arrived on the follow, with its cursor, in one transaction;
    /// then feed [`Input::Merged`].
    Merge(Response),
    /// The relay acknowledged these documents' heads: record them as sent, and everything up
    /// to `sent_seq` with them.
    MarkSent {
        /// Documents and the heads the relay has.
        heads: Heads,
        /// The feed position up to which everything is sent.
        sent_seq: i64,
    },
    /// Nothing up to this feed position needs sending: record it if that needs no wait for
    /// another writer (it only spares a later seal some reading).
    SentUpTo(i64),
    /// An upload closed and the relay acknowledged everything it carried.
    Sent(SyncReport),
    /// The session is over.
    End(Result<LiveEnd, LiveError>),
}

/// How a live session ended well.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveEnd {
    /// [`Input::Stop`] asked.
    Stopped,
    /// The follow ended (its time passed, or the relay is stopping): open the next session.
    Over,
}

/// Why a live session failed. What was in flight is sent again by the next session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LiveError {
    /// The relay refused a request.
    #[error("the relay refused ({status}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The relay's reason.
        message: String,
    },
    /// The connection broke, or the relay fell silent.
    #[error("{0}")]
    Lost(String),
    /// The relay answered something the protocol does not allow.
    #[error("protocol: {0}")]
    Protocol(String),
}

/// An upload, open or closing.
#[derive(Debug)]
struct Upload {
    /// Blobs in each request sent.
    expected: Vec<usize>,
    heads: Heads,
    /// The feed head its last seal was made at.
    sealed_seq: i64,
    opened: Instant,
    last: Instant,
    report: SyncReport,
}

/// This device's side of a live session with the relay (see the module's documentation).
#[derive(Debug)]
pub struct Live {
    config: LiveConfig,
    /// The latest feed head announced.
    head: i64,
    /// The feed position up to which the relay has everything.
    sent_seq: i64,
    /// The feed position up to which every document is sent or in flight.
    sealed_seq: i64,
    /// When the first and the last changes not sealed yet were announced.
    first_change: Option<Instant>,
    last_change: Option<Instant>,
    /// An [`Output::Seal`] waits for its [`Input::Sealed`].
    sealing: bool,
    open: Option<Upload>,
    closing: Option<Upload>,
    in_flight: InFlight,
    follow: Frames,
    /// When the relay was last heard from.
    heard: Instant,
    /// The session ends once the open upload is acknowledged.
    ending: Option<LiveEnd>,
    ended: bool,
    /// The relay answered the follow: it has recorded the follow's request counter, so the
    /// session's pushes (numbered after it) may go. Until then nothing is sealed: a push that
    /// reached the relay first would make it refuse the follow as a replay.
    admitted: bool,
}

impl Live {
    /// A session that starts at `now`, the relay having everything up to feed position
    /// `sent_seq`. Feed it the store's head ([`Input::Changed`]) to send what was written
    /// while offline.
    pub fn new(config: LiveConfig, now: Instant, sent_seq: i64) -> Live {
        Live {
            config,
            head: sent_seq,
            sent_seq,
            sealed_seq: sent_seq,
            first_change: None,
            last_change: None,
            sealing: false,
            open: None,
            closing: None,
            in_flight: InFlight::new(),
            follow: Frames::default(),
            heard: now,
            ending: None,
            ended: false,
            admitted: false,
        }
    }

    /// Whether the session is over (an [`Output::End`] was given).
    pub fn is_over(&self) -> bool {
        self.ended
    }

    /// Whether an upload is open or waits for its answer.
    pub fn uploading(&self) -> bool {
        self.open.is_some() || self.closing.is_some()
    }

    /// Handles one input at time `now`.
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        match input {
            Input::Changed { head } => {
                if head > self.head {
                    self.head = head;
                    self.first_change.get_or_insert(now);
                    self.last_change = Some(now);
                }
            }
            Input::Merged { sent_seq } => self.sent_seq = self.sent_seq.max(sent_seq),
            Input::Sealed {
                frames,
                heads,
                head,
            } => self.sealed(now, frames, heads, head, &mut out),
            Input::Follow(bytes) => {
                self.heard = now;
                self.follow.extend(&bytes);
                if let Err(e) = self.read_follow(&mut out) {
                    self.fail(e, &mut out);
                }
            }
            Input::FollowEnded => {
                self.ending.get_or_insert(LiveEnd::Over);
            }
            Input::Answer { status, body } => match self.answered(status, &body) {
                Ok(up) => {
                    for (id, h) in &up.heads {
                        if self.in_flight.get(id) == Some(h) {
                            self.in_flight.remove(id);
                        }
                    }
                    self.sent_seq = self.sent_seq.max(up.sealed_seq);
                    let mut report = up.report;
                    report.round_trips = 1;
                    report.ms = now.saturating_duration_since(up.opened).as_millis();
                    out.push(Output::MarkSent {
                        heads: up.heads,
                        sent_seq: up.sealed_seq,
                    });
                    out.push(Output::Sent(report));
                }
                Err(e) => self.fail(e, &mut out),
            },
            Input::UploadEnded => {
                if self.closing.is_none() {
                    self.closing = self.open.take();
                }
            }
            Input::UploadBroken(reason) => self.fail(LiveError::Lost(reason), &mut out),
            Input::Timer => {}
            Input::Stop => {
                self.ending = Some(LiveEnd::Stopped);
            }
        }
        self.step(now, &mut out);
        out
    }

    /// The next time [`Input::Timer`] is due (`None` once the session is over).
    pub fn next_wake(&self) -> Option<Instant> {
        if self.ended {
            return None;
        }
        let mut wake = self.heard + self.config.silence;
        if let Some(at) = self.seal_due() {
            wake = wake.min(at);
        }
        if !self.sealing
            && let Some(up) = &self.open
        {
            wake = wake
                .min(up.last + self.config.idle)
                .min(up.opened + self.config.max_upload);
        }
        Some(wake)
    }

    /// When changes not sealed yet are to be sealed, if any wait.
    fn seal_due(&self) -> Option<Instant> {
        if !self.admitted || self.sealing || self.closing.is_some() || self.ending.is_some() {
            return None;
        }
        let (first, last) = (self.first_change?, self.last_change?);
        Some((last + self.config.quiet).min(first + self.config.batch))
    }

    /// Does what the time and the state ask for.
    fn step(&mut self, now: Instant, out: &mut Vec<Output>) {
        if self.ended {
            return;
        }
        if now >= self.heard + self.config.silence {
            let secs = self.config.silence.as_secs_f32();
            self.fail(
                LiveError::Lost(format!(
                    "no word from the relay for {secs} s: the connection counts as lost"
                )),
                out,
            );
            return;
        }
        if self.seal_due().is_some_and(|at| now >= at) {
            self.first_change = None;
            self.last_change = None;
            if self.head <= self.sealed_seq {
                // Announced again without moving past what was sealed.
            } else if self.open.is_none() && self.sent_seq >= self.head {
                // Only merges from the relay since (each records that the relay has what it
                // wrote): nothing to look for.
                self.sealed_seq = self.head;
            } else {
                self.sealing = true;
                out.push(Output::Seal {
                    after: self.sealed_seq,
                    head: self.head,
                    in_flight: self.in_flight.clone(),
                });
                return;
            }
        }
        if !self.sealing
            && let Some(up) = &self.open
            && (self.ending.is_some()
                || now >= up.last + self.config.idle
                || now >= up.opened + self.config.max_upload)
        {
            self.closing = self.open.take();
            out.push(Output::CloseUpload);
        }
        if let Some(end) = self.ending
            && !self.sealing
            && !self.uploading()
        {
            self.ended = true;
            out.push(Output::End(Ok(end)));
        }
    }

    fn sealed(
        &mut self,
        now: Instant,
        frames: Vec<PushFrame>,
        heads: Heads,
        head: i64,
        out: &mut Vec<Output>,
    ) {
        if !self.sealing {
            self.fail(
                LiveError::Protocol("sealed without being asked to".into()),
                out,
            );
            return;
        }
        self.sealing = false;
        self.sealed_seq = self.sealed_seq.max(head);
        if frames.is_empty() {
            if !self.uploading() {
                self.sent_seq = self.sent_seq.max(head);
                out.push(Output::SentUpTo(head));
            }
            return;
        }
        let up = match &mut self.open {
            Some(up) => up,
            None => {
                out.push(Output::OpenUpload);
                self.open.insert(Upload {
                    expected: Vec::new(),
                    heads: Heads::new(),
                    sealed_seq: self.sent_seq,
                    opened: now,
                    last: now,
                    report: SyncReport::default(),
                })
            }
        };
        for f in frames {
            let bytes = frame(&f.request);
            up.report.sent += f.docs;
            up.report.bytes_up += bytes.len() as u64;
            up.expected.push(f.blobs);
            out.push(Output::Send(bytes));
        }
        for (id, h) in &heads {
            self.in_flight.insert(id.clone(), h.clone());
        }
        up.heads.extend(heads);
        up.sealed_seq = head;
        up.last = now;
    }

    /// Reads the follow's whole frames: a pull's answer to merge each.
    fn read_follow(&mut self, out: &mut Vec<Output>) -> Result<(), LiveError> {
        let protocol = |e: linli_wire::WireError| LiveError::Protocol(e.to_string());
        while let Some(f) = self.follow.next_frame().map_err(protocol)? {
            if f.is_empty() {
                continue;
            }
            match linli_wire::decode::<Reply>("relay reply", &f).map_err(protocol)? {
                Reply::Answer(response @ Response::Pulled { .. }) => {
                    self.admitted = true;
                    out.push(Output::Merge(response));
                }
                Reply::Answer(other) => {
                    return Err(LiveError::Protocol(format!(
                        "the relay answered a follow with {}",
                        response_name(&other)
                    )));
                }
                Reply::Refused { status, message } => {
                    return Err(LiveError::Refused { status, message });
                }
            }
        }
        Ok(())
    }

    /// Checks the closed upload's answer: one acknowledgement per frame, each for as many
    /// blobs as the frame carried.
    fn answered(&mut self, status: u16, body: &[u8]) -> Result<Upload, LiveError> {
        let mut up = self
            .closing
            .take()
            .ok_or_else(|| LiveError::Protocol("an answer to no upload".into()))?;
        up.report.bytes_down += body.len() as u64;
        if !(200..300).contains(&status) {
            return Err(LiveError::Refused {
                status,
                message: String::from_utf8_lossy(body).into_owned(),
            });
        }
        let protocol = |e: linli_wire::WireError| LiveError::Protocol(e.to_string());
        let mut frames = Frames::default();
        frames.extend(body);
        let mut answered = 0;
        while let Some(f) = frames.next_frame().map_err(protocol)? {
            if f.is_empty() {
                continue;
            }
            match linli_wire::decode::<Reply>("relay reply", &f).map_err(protocol)? {
                Reply::Answer(Response::Pushed { seqs })
                    if up.expected.get(answered) == Some(&seqs.len()) =>
                {
                    answered += 1;
                }
                Reply::Refused { status, message } => {
                    return Err(LiveError::Refused { status, message });
                }
                other => {
                    return Err(LiveError::Protocol(format!(
                        "the relay answered a push with {}",
                        match &other {
                            Reply::Answer(r) => response_name(r),
                            Reply::Refused { .. } => "a refusal",
                        }
                    )));
                }
            }
        }
        if answered != up.expected.len() {
            return Err(LiveError::Protocol(format!(
                "the relay answered {answered} of {} pushes in the stream ({} bytes cut off); \
                 what they carried is sent again next time",
                up.expected.len(),
                frames.pending()
            )));
        }
        Ok(up)
    }

    fn fail(&mut self, error: LiveError, out: &mut Vec<Output>) {
        // Whatever was in flight is not known to have arrived: the next session seals it
        // again from the last acknowledged position.
        self.open = None;
        self.closing = None;
        self.in_flight.clear();
        self.ended = true;
        out.push(Output::End(Err(error)));
    }
}

/// A response's kind, for an error message (never its contents).
fn response_name(r: &Response) -> &'static str {
    match r {
        Response::Pushed { .. } => "a push's answer",
        Response::Pulled { .. } => "a pull's answer",
        Response::Dropped { .. } => "a drop's answer",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn push(docs: usize) -> PushFrame {
        PushFrame {
            blobs: 1,
            docs,
            request: vec![7; 10],
        }
    }

    fn reply(r: &Reply) -> Vec<u8> {
        frame(&linli_wire::encode(r))
    }

    fn pushed(n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                reply(&Reply::Answer(Response::Pushed {
                    seqs: vec![i as u64 + 1],
                }))
            })
            .collect()
    }

    /// A session whose first change (feed head 1) went out at 3 ms as an upload of one
    /// single-document push per id, still open.
    fn uploading(ids: &[&str]) -> Run {
        let mut r = Run::new(0);
        r.at(ms(0), Input::Changed { head: 1 });
        r.wake();
        r.at(
            ms(3),
            Input::Sealed {
                frames: ids.iter().map(|_| push(1)).collect(),
                heads: heads(ids, 1),
                head: 1,
            },
        );
        r
    }

    /// The relay's first answer to a follow: nothing yet.
    fn first_answer() -> Vec<u8> {
        reply(&Reply::Answer(Response::Pulled {
            blobs: Vec::new(),
            next: 0,
            more: false,
        }))
    }

    fn heads(ids: &[&str], h: u8) -> Heads {
        ids.iter().map(|id| (id.to_string(), vec![h])).collect()
    }

    /// A session at a virtual time.
    struct Run {
        live: Live,
        t0: Instant,
        now: Instant,
    }

    impl Run {
        /// A session the relay admitted at its start (its first answer to the follow).
        fn new(sent_seq: i64) -> Run {
            let mut run = Run::unadmitted(sent_seq);
            let out = run.at(Duration::ZERO, Input::Follow(first_answer()));
            assert!(matches!(&out[..], [Output::Merge(_)]), "{out:?}");
            run
        }
        fn unadmitted(sent_seq: i64) -> Run {
            let t0 = Instant::now();
            Run {
                live: Live::new(LiveConfig::default(), t0, sent_seq),
                t0,
                now: t0,
            }
        }
        fn at(&mut self, after_start: Duration, input: Input) -> Vec<Output> {
            self.now = self.t0 + after_start;
            self.live.handle(self.now, input)
        }
        /// Advances to the next wake and feeds the timer.
        fn wake(&mut self) -> Vec<Output> {
            let at = self.live.next_wake().unwrap_or(self.now);
            self.now = at;
            self.live.handle(at, Input::Timer)
        }
    }

    fn seals(out: &[Output]) -> Vec<(i64, i64, usize)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Seal {
                    after,
                    head,
                    in_flight,
                } => Some((*after, *head, in_flight.len())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_burst_is_sealed_once_sent_in_one_upload_and_counts_as_sent_when_answered() {
        let mut r = Run::new(10);
        // Three writes 1 ms apart: nothing sealed while they go on.
        for (i, head) in [11, 12, 13].into_iter().enumerate() {
            let out = r.at(ms(i as u64), Input::Changed { head });
            assert!(seals(&out).is_empty(), "{out:?}");
        }
        // Quiet for 2 ms: sealed once, from the last acknowledged position.
        let out = r.wake();
        assert_eq!(r.now, r.t0 + ms(4));
        assert_eq!(seals(&out), vec![(10, 13, 0)]);
        let out = r.at(
            ms(4),
            Input::Sealed {
                frames: vec![push(2), push(1)],
                heads: heads(&["a", "b", "c"], 1),
                head: 13,
            },
        );
        assert_eq!(out[0], Output::OpenUpload);
        assert_eq!(out.len(), 3, "{out:?}");
        assert!(matches!(&out[1], Output::Send(b) if b.len() == 14));
        // Nothing more until the upload has been idle for 200 ms: then it closes.
        let out = r.wake();
        assert_eq!(r.now, r.t0 + ms(204));
        assert_eq!(out, vec![Output::CloseUpload]);
        assert!(r.live.uploading());
        let out = r.at(
            ms(230),
            Input::Answer {
                status: 200,
                body: pushed(2),
            },
        );
        assert_eq!(
            out[0],
            Output::MarkSent {
                heads: heads(&["a", "b", "c"], 1),
                sent_seq: 13
            }
        );
        assert!(matches!(&out[1], Output::Sent(r) if r.sent == 3 && r.ms == 226));
        assert!(!r.live.uploading());
        assert!(r.live.in_flight.is_empty());
    }

    #[test]
    fn a_change_that_goes_on_is_sealed_after_the_batch_time() {
        let mut r = Run::new(0);
        let mut sealed_at = None;
        for i in 0..20u64 {
            let out = r.at(ms(i), Input::Changed { head: i as i64 + 1 });
            if !seals(&out).is_empty() {
                sealed_at = Some(i);
                break;
            }
        }
        // Writes every millisecond never leave the feed quiet for 2 ms: the batch bound (5 ms)
        // seals them.
        assert_eq!(sealed_at, Some(5));
    }

    #[test]
    fn a_burst_while_an_upload_is_open_goes_in_the_same_upload_without_what_is_in_flight() {
        let mut r = Run::new(0);
        r.at(ms(0), Input::Changed { head: 1 });
        r.wake();
        let out = r.at(
            ms(3),
            Input::Sealed {
                frames: vec![push(1)],
                heads: heads(&["a"], 1),
                head: 1,
            },
        );
        assert!(out.contains(&Output::OpenUpload));
        r.at(ms(50), Input::Changed { head: 2 });
        let out = r.wake();
        // Sealed after what is sent or in flight, with the open upload's documents.
        assert_eq!(seals(&out), vec![(1, 2, 1)]);
        let out = r.at(
            ms(53),
            Input::Sealed {
                frames: vec![push(1)],
                heads: heads(&["b"], 1),
                head: 2,
            },
        );
        assert!(!out.contains(&Output::OpenUpload), "{out:?}");
        assert!(matches!(&out[..], [Output::Send(_)]));
        // Idle 200 ms after its last frame.
        assert_eq!(r.wake(), vec![Output::CloseUpload]);
        assert_eq!(r.now, r.t0 + ms(253));
        // A write while the upload waits for its answer waits too.
        r.at(ms(260), Input::Changed { head: 3 });
        assert!(r.live.next_wake() > Some(r.t0 + ms(1000)));
        let out = r.at(
            ms(270),
            Input::Answer {
                status: 200,
                body: pushed(2),
            },
        );
        assert!(matches!(&out[0], Output::MarkSent { heads, sent_seq: 2 } if heads.len() == 2));
        // Then it is sealed at once.
        assert_eq!(seals(&out), vec![(2, 3, 0)]);
    }

    #[test]
    fn a_short_or_refused_answer_ends_the_session_and_nothing_counts_as_sent() {
        for (status, body) in [
            (200, pushed(1)),
            (
                200,
                [
                    pushed(1),
                    reply(&Reply::Refused {
                        status: 409,
                        message: "replay".into(),
                    }),
                ]
                .concat(),
            ),
            (507, b"full".to_vec()),
            (200, pushed(2)[..9].to_vec()),
        ] {
            let mut r = uploading(&["a", "b"]);
            r.wake();
            let out = r.at(ms(300), Input::Answer { status, body });
            assert!(
                matches!(&out[..], [Output::End(Err(_))]),
                "{status}: {out:?}"
            );
            assert!(r.live.is_over());
            assert_eq!(r.live.next_wake(), None);
        }
    }

    #[test]
    fn nothing_is_sealed_before_the_relay_answers_the_follow() {
        let mut r = Run::unadmitted(0);
        r.at(ms(0), Input::Changed { head: 3 });
        // Waiting: the only deadline is the relay's silence.
        assert_eq!(r.live.next_wake(), Some(r.t0 + ms(35_000)));
        assert!(r.at(ms(10), Input::Timer).is_empty());
        // Admitted: the change waiting since before is sealed at once, with the answer merged.
        let out = r.at(ms(50), Input::Follow(first_answer()));
        assert!(matches!(&out[0], Output::Merge(_)), "{out:?}");
        assert_eq!(seals(&out), vec![(0, 3, 0)]);
    }

    #[test]
    fn an_upload_the_relay_stops_reading_reports_the_relays_reason() {
        let mut r = uploading(&["a", "b"]);
        // The second frame could not be sent: the upload counts as closed, its answer says why.
        assert!(r.at(ms(4), Input::UploadEnded).is_empty());
        let out = r.at(
            ms(6),
            Input::Answer {
                status: 200,
                body: [
                    pushed(1),
                    reply(&Reply::Refused {
                        status: 403,
                        message: "this device was revoked".into(),
                    }),
                ]
                .concat(),
            },
        );
        assert!(
            matches!(
                &out[..],
                [Output::End(Err(LiveError::Refused { status: 403, .. }))]
            ),
            "{out:?}"
        );
    }

    #[test]
    fn a_cut_upload_ends_the_session() {
        let mut r = uploading(&["a"]);
        let out = r.at(ms(10), Input::UploadBroken("reset".into()));
        assert_eq!(out, vec![Output::End(Err(LiveError::Lost("reset".into())))]);
    }

    #[test]
    fn an_idle_session_wakes_only_when_the_relay_falls_silent() {
        let mut r = Run::new(5);
        assert!(r.at(ms(0), Input::Changed { head: 5 }).is_empty());
        // Nothing waits: the only deadline is the relay's silence (35 s).
        assert_eq!(r.live.next_wake(), Some(r.t0 + ms(35_000)));
        // A keepalive (an empty frame) moves it.
        assert!(r.at(ms(15_000), Input::Follow(frame(&[]))).is_empty());
        assert_eq!(r.live.next_wake(), Some(r.t0 + ms(50_000)));
        let out = r.wake();
        assert!(
            matches!(&out[..], [Output::End(Err(LiveError::Lost(m)))] if m.contains("35")),
            "{out:?}"
        );
    }

    #[test]
    fn merges_are_not_sealed_and_follow_frames_are_merged_whole() {
        let mut r = Run::new(3);
        let answer = reply(&Reply::Answer(Response::Pulled {
            blobs: Vec::new(),
            next: 9,
            more: false,
        }));
        // A frame in two pieces: merged once whole.
        assert!(r.at(ms(0), Input::Follow(answer[..3].to_vec())).is_empty());
        let out = r.at(ms(1), Input::Follow(answer[3..].to_vec()));
        assert!(matches!(
            &out[..],
            [Output::Merge(Response::Pulled { next: 9, .. })]
        ));
        // The merge wrote feed positions 4–6 and recorded the relay as having them.
        r.at(ms(2), Input::Merged { sent_seq: 6 });
        r.at(ms(2), Input::Changed { head: 6 });
        let out = r.wake();
        assert!(seals(&out).is_empty(), "{out:?}");
        assert_eq!(r.live.next_wake(), Some(r.t0 + ms(35_001)));
        // A refusal on the follow ends the session.
        let out = r.at(
            ms(10),
            Input::Follow(reply(&Reply::Refused {
                status: 403,
                message: "revoked".into(),
            })),
        );
        assert!(matches!(
            &out[..],
            [Output::End(Err(LiveError::Refused { status: 403, .. }))]
        ));
    }

    #[test]
    fn stop_closes_the_open_upload_and_ends_once_it_is_answered() {
        let mut r = uploading(&["a"]);
        assert_eq!(r.at(ms(5), Input::Stop), vec![Output::CloseUpload]);
        let out = r.at(
            ms(8),
            Input::Answer {
                status: 200,
                body: pushed(1),
            },
        );
        assert!(matches!(
            out.last(),
            Some(Output::End(Ok(LiveEnd::Stopped)))
        ));
        assert!(matches!(&out[0], Output::MarkSent { sent_seq: 1, .. }));
        // The follow's end, with nothing open, ends at once.
        let mut r = Run::new(0);
        assert_eq!(
            r.at(ms(1), Input::FollowEnded),
            vec![Output::End(Ok(LiveEnd::Over))]
        );
    }

    #[test]
    fn nothing_to_send_is_recorded_without_an_upload() {
        let mut r = Run::new(0);
        r.at(ms(0), Input::Changed { head: 4 });
        r.wake();
        let out = r.at(
            ms(3),
            Input::Sealed {
                frames: Vec::new(),
                heads: Vec::new(),
                head: 4,
            },
        );
        assert_eq!(out, vec![Output::SentUpTo(4)]);
        assert!(!r.live.uploading());
    }

    fn input() -> impl Strategy<Value = (u64, Input)> {
        let input = prop_oneof![
            (0i64..50).prop_map(|head| Input::Changed { head }),
            (0i64..50).prop_map(|sent_seq| Input::Merged { sent_seq }),
            (0usize..3, 0i64..50).prop_map(|(n, head)| Input::Sealed {
                frames: (0..n).map(|_| push(1)).collect(),
                heads: heads(&["a", "b"][..n.min(2)], head as u8),
                head,
            }),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Input::Follow),
            Just(Input::FollowEnded),
            (prop_oneof![Just(200u16), Just(409)], 0usize..4).prop_map(|(status, n)| {
                Input::Answer {
                    status,
                    body: pushed(n),
                }
            }),
            Just(Input::UploadBroken("cut".into())),
            Just(Input::UploadEnded),
            Just(Input::Timer),
            Just(Input::Stop),
        ];
        (0u64..400, input)
    }

    proptest! {
        /// Whatever arrives in whatever order (bytes of any kind on the follow, answers to
        /// nothing, seals not asked for), the session never panics, never counts anything as
        /// sent without a whole answer, never moves what is sent backwards, and ends once.
        #[test]
        fn any_sequence_of_inputs_keeps_the_session_sound(steps in proptest::collection::vec(input(), 0..60)) {
            let mut r = Run::new(0);
            let mut t = Duration::ZERO;
            let mut sent = 0i64;
            let mut ends = 0;
            let mut closes = 0;
            let mut answers = 0;
            for (dt, input) in steps {
                t += ms(dt);
                let is_answer = matches!(input, Input::Answer { .. });
                if matches!(input, Input::UploadEnded) && r.live.open.is_some() {
                    closes += 1;
                }
                let out = r.at(t, input);
                for o in &out {
                    match o {
                        Output::MarkSent { sent_seq, .. } => {
                            prop_assert!(is_answer);
                            prop_assert!(*sent_seq >= sent);
                            sent = *sent_seq;
                            answers += 1;
                        }
                        Output::CloseUpload => closes += 1,
                        Output::End(_) => ends += 1,
                        _ => {}
                    }
                }
                prop_assert!(answers <= closes);
                if r.live.is_over() {
                    prop_assert_eq!(r.live.next_wake(), None);
                }
            }
            prop_assert!(ends <= 1);
        }
    }
}
