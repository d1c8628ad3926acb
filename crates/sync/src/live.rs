//! A live session with the relay, driven over HTTP: what other devices send arrives the moment
//! the relay stores it, and this device's own changes leave as they are made, in a bounded
//! number of round trips however many documents a burst of work touches.
//!
//! The protocol's rules (when to seal, what is in flight, what counts as sent, when an upload
//! closes, when the connection counts as lost) are [`linli_proto::relay::Live`], a state
//! machine without I/O; this module carries its outputs out with the store and reqwest and
//! feeds back what happened:
//!
//! - one held stream ([`Body::Follow`] on [`STREAM_PATH`]) brings a frame each time blobs of
//!   this device's scopes arrive; each is merged in one transaction with the cursor it moves to;
//! - each commit on the store announces itself ([`Store::on_commit`]): the session wakes then,
//!   not on a timer. Writes by another process on the same store wake it through a watch on
//!   the store's directory (inotify; elsewhere a look at the feed every
//!   [`LiveOptions::foreign_writes`]). Between events an idle session sleeps: the relay's
//!   keepalive every 15 s is all that wakes it;
//! - local changes are sealed, signed and sent as frames of one upload stream, kept open while
//!   the work goes on and closed once it has been idle for a moment.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::channel::{Channel, Sender};
use linli_proto::relay::{Input, Live, LiveConfig, LiveError, Output, PushFrame};
use linli_wire::relay::{Body, KEEPALIVE_MS, STREAM_PATH, frame};

pub use linli_proto::relay::LiveEnd;

use crate::relay_client::{
    PULL_BYTES, RelayClient, SyncError, SyncReport, push_batches, receive, seal_outbox_after, sign,
    sign_numbered, with_causes,
};
use linli_store::Store;

/// How a live session runs.
#[derive(Debug, Clone, Copy)]
pub struct LiveOptions {
    /// How long the session lasts (the relay holds a follow at most ten minutes).
    pub wait: Duration,
    /// The protocol's timings (batching, idle close, silence).
    pub config: LiveConfig,
    /// How often the change feed is looked at for writes made by another process on the same
    /// store where they cannot be watched (on Linux and Android a watch on the store's
    /// directory reports them; writes of this process announce themselves at once).
    pub foreign_writes: Duration,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            wait: Duration::from_secs(300),
            config: LiveConfig::default(),
            foreign_writes: Duration::from_secs(2),
        }
    }
}

/// What a live session reports as it goes.
#[derive(Debug)]
pub enum LiveEvent<'a> {
    /// Documents arrived and were merged (`ms`: the time spent receiving and merging them).
    Received(&'a SyncReport),
    /// An upload closed and the relay acknowledged everything it carried (`ms`: how long it
    /// was open).
    Sent(&'a SyncReport),
}

/// Request counters a session takes at once.
const COUNTERS: u64 = 1000;

/// An upload request under way: frames go in through `tx`; its answer comes from `answer`.
struct UploadIo {
    tx: Sender<Bytes>,
    answer: tokio::task::JoinHandle<Result<(u16, Bytes), String>>,
}

impl UploadIo {
    /// Opens an upload stream: the request runs on its own task while frames are fed to it.
    fn open(client: &RelayClient, longest: Duration) -> UploadIo {
        let (tx, body) = Channel::<Bytes>::new(64);
        let request = client
            .http
            .post(format!("{}{STREAM_PATH}", client.url))
            .header("content-type", "application/octet-stream")
            .timeout(longest + Duration::from_secs(60))
            .body(reqwest::Body::wrap(body))
            .send();
        let answer = tokio::spawn(async move {
            let response = request.await.map_err(|e| with_causes(&e))?;
            let status = response.status().as_u16();
            let body = response.bytes().await.map_err(|e| with_causes(&e))?;
            Ok((status, body))
        });
        UploadIo { tx, answer }
    }
}

/// Request counters taken for this session and not used yet.
struct Counters(std::ops::RangeInclusive<u64>);

impl Counters {
    /// The next request counter, taking more when the session's are used up.
    fn next(&mut self, store: &Store) -> Result<u64, SyncError> {
        if let Some(c) = self.0.next() {
            return Ok(c);
        }
        self.0 = store.reserve_counters(COUNTERS)?;
        self.0
            .next()
            .ok_or_else(|| SyncError::Protocol("no request counter left".into()))
    }
}

/// What carrying out an [`Output`] leaves to do.
#[derive(Debug)]
pub enum Carried {
    /// Feed this to the session.
    Input(Input),
    /// The transport's part: [`Output::OpenUpload`], [`Output::Send`] or
    /// [`Output::CloseUpload`].
    Transport(Output),
    /// Nothing.
    Done,
    /// The session ended well.
    End(LiveEnd),
}

/// The store's side of a live session with the relay at one address: carries out the outputs
/// of [`Live`] that read or write the store (seal and sign, merge, record what was sent) and
/// reports what arrived and left. The transport (HTTP here, the relay library in one process
/// in the tests) carries the rest.
pub struct StoreSide {
    url: String,
    peer: String,
    counters: Counters,
    received: SyncReport,
}

impl StoreSide {
    /// The store's side of a session with the relay at `url` (as [`RelayClient`] names it).
    /// It takes request counters for the session's pushes: sign the follow before (a relay
    /// takes a device's requests only in the order of their counters).
    pub fn new(store: &Store, url: &str) -> Result<StoreSide, SyncError> {
        Ok(StoreSide {
            url: url.to_string(),
            peer: format!("relay {url}"),
            counters: Counters(store.reserve_counters(COUNTERS)?),
            received: SyncReport::default(),
        })
    }

    /// A session starting at `now` from what the store recorded as sent, and its first input:
    /// the feed's head (what was written while offline is sent first).
    pub fn start(
        &self,
        store: &Store,
        config: LiveConfig,
        now: Instant,
    ) -> Result<(Live, Input), SyncError> {
        let session = Live::new(config, now, store.sent_seq(&self.peer)?);
        let head = store.feed_head()?;
        Ok((session, Input::Changed { head }))
    }

    /// Counts bytes received on the follow (reported with what they brought).
    pub fn count_down(&mut self, bytes: usize) {
        self.received.bytes_down += bytes as u64;
    }

    /// Counts the follow's request.
    fn count_follow(&mut self, bytes: usize) {
        self.received.bytes_up += bytes as u64;
        self.received.round_trips += 1;
    }

    /// Carries out `output` on `store`; reports what arrived or left through `on_event`.
    pub fn carry(
        &mut self,
        store: &mut Store,
        output: Output,
        on_event: &mut impl FnMut(LiveEvent<'_>),
    ) -> Result<Carried, SyncError> {
        let peer = self.peer.as_str();
        Ok(match output {
            Output::Seal {
                after,
                head,
                in_flight,
            } => {
                let t0 = Instant::now();
                let (blobs, heads) = seal_outbox_after(store, peer, after, &in_flight)?;
                let mut frames = Vec::new();
                for batch in push_batches(blobs) {
                    let blobs = batch.len();
                    let docs = batch.iter().map(|b| b.docs.len()).sum();
                    let counter = self.counters.next(store)?;
                    let request = sign_numbered(store, Body::Push { blobs: batch }, counter)?;
                    frames.push(PushFrame {
                        blobs,
                        docs,
                        request,
                    });
                }
                tracing::debug!(
                    us = t0.elapsed().as_micros() as u64,
                    head,
                    frames = frames.len(),
                    "sealed"
                );
                Carried::Input(Input::Sealed {
                    frames,
                    heads,
                    head,
                })
            }
            Output::Merge(response) => {
                let merging = Instant::now();
                let since = store.peer_cursor(peer)?;
                receive(store, peer, since, response, &mut self.received)?;
                self.received.ms += merging.elapsed().as_millis();
                tracing::debug!(changed = self.received.changed, "merged a frame");
                let r = &self.received;
                if r.created + r.changed + r.unchanged > 0 {
                    on_event(LiveEvent::Received(&self.received));
                    self.received = SyncReport::default();
                }
                Carried::Input(Input::Merged {
                    sent_seq: store.sent_seq(peer)?,
                })
            }
            Output::MarkSent { heads, sent_seq } => {
                store.mark_sent(peer, &heads)?;
                store.set_sent_seq(peer, sent_seq)?;
                Carried::Done
            }
            Output::SentUpTo(seq) => {
                // Never waits for another writer: a later seal finds nothing anyway.
                store.try_set_sent_seq(peer, seq)?;
                Carried::Done
            }
            Output::Sent(report) => {
                on_event(LiveEvent::Sent(&report));
                Carried::Done
            }
            Output::End(Ok(end)) => Carried::End(end),
            Output::End(Err(e)) => {
                return Err(match e {
                    LiveError::Refused { status, message } => {
                        SyncError::Refused { status, message }
                    }
                    LiveError::Lost(reason) => SyncError::Unreachable {
                        url: self.url.clone(),
                        reason,
                    },
                    LiveError::Protocol(message) => SyncError::Protocol(message),
                    other => SyncError::Protocol(other.to_string()),
                });
            }
            transport @ (Output::OpenUpload | Output::Send(_) | Output::CloseUpload) => {
                Carried::Transport(transport)
            }
        })
    }
}

/// Stays connected to the relay at `url` for `options.wait`: merges what arrives, sends what is
/// made here, and reports both through `on_event`. When `stop` completes, the open upload is
/// closed and acknowledged and the session ends with [`LiveEnd::Stopped`].
pub async fn live(
    store: &mut Store,
    url: &str,
    options: LiveOptions,
    stop: impl Future<Output = ()>,
    mut on_event: impl FnMut(LiveEvent<'_>),
) -> Result<LiveEnd, SyncError> {
    let client = RelayClient::new(url)?;
    let peer = client.peer();
    let unreachable = |reason: String| SyncError::Unreachable {
        url: client.url.clone(),
        reason,
    };
    // Announcements of this process's commits: registered before the feed is first read, so
    // that no write falls between.
    let changed = Arc::new(tokio::sync::Notify::new());
    let _subscription = store.on_commit({
        let changed = changed.clone();
        move || changed.notify_one()
    });
    let since = store.peer_cursor(&peer)?;
    let request = frame(&sign(
        store,
        Body::Follow {
            since,
            max_bytes: PULL_BYTES,
            wait_ms: u64::try_from(options.wait.as_millis()).unwrap_or(u64::MAX),
        },
    )?);
    // After the follow's counter: the session's pushes are numbered after it.
    let mut side = StoreSide::new(store, &client.url)?;
    side.count_follow(request.len());
    let mut stop = std::pin::pin!(stop);
    let connect = client
        .http
        .post(format!("{}{STREAM_PATH}", client.url))
        .header("content-type", "application/octet-stream")
        .timeout(options.wait + Duration::from_millis(3 * KEEPALIVE_MS))
        .body(request)
        .send();
    // A stop while connecting ends the session at once (nothing is open yet).
    let mut follow = tokio::select! {
        connected = connect => connected.map_err(|e| unreachable(with_causes(&e)))?,
        () = stop.as_mut() => return Ok(LiveEnd::Stopped),
    };
    if !follow.status().is_success() {
        let status = follow.status().as_u16();
        let message = follow.text().await.unwrap_or_default();
        return Err(SyncError::Refused { status, message });
    }
    // Watched before the feed is read: a write by another process after the read is seen.
    // At most a wake per half the quiet time: a burst of another process's writes is seen as
    // it goes (a wake per quiet time made the sync benchmark's incremental phase 8 % slower).
    let mut foreign = crate::wake::ForeignWrites::watch(
        store.path(),
        options.config.quiet / 2,
        options.foreign_writes,
    );
    let (mut session, first) = side.start(store, options.config, Instant::now())?;
    let mut seen_head = match first {
        Input::Changed { head } => head,
        _ => store.feed_head()?,
    };
    let mut upload: Option<UploadIo> = None;
    let mut answer: Option<tokio::task::JoinHandle<Result<(u16, Bytes), String>>> = None;
    let mut inputs = VecDeque::from([first]);
    let mut follow_open = true;
    let mut stopping = false;
    loop {
        while let Some(input) = inputs.pop_front() {
            for output in session.handle(Instant::now(), input) {
                match side.carry(store, output, &mut on_event)? {
                    Carried::Input(input) => inputs.push_back(input),
                    Carried::Done => {}
                    Carried::End(end) => return Ok(end),
                    Carried::Transport(Output::OpenUpload) => {
                        upload = Some(UploadIo::open(&client, options.config.max_upload));
                    }
                    Carried::Transport(Output::Send(bytes)) => {
                        let sent = match &mut upload {
                            Some(up) => up.tx.send_data(Bytes::from(bytes)).await.is_ok(),
                            None => false,
                        };
                        if !sent {
                            // The relay stopped reading (it refused a frame) or the connection
                            // broke: its answer says which.
                            match upload.take() {
                                Some(up) => {
                                    drop(up.tx);
                                    answer = Some(up.answer);
                                    inputs.push_back(Input::UploadEnded);
                                }
                                None => inputs.push_back(Input::UploadBroken(
                                    "a frame without an open upload".into(),
                                )),
                            }
                        }
                    }
                    Carried::Transport(_) => {
                        if let Some(up) = upload.take() {
                            drop(up.tx);
                            answer = Some(up.answer);
                        }
                    }
                }
            }
        }
        let Some(wake) = session.next_wake() else {
            return Err(SyncError::Protocol(
                "the session ended without saying how".into(),
            ));
        };
        let wake = tokio::time::Instant::from_std(wake);
        tokio::select! {
            chunk = follow.chunk(), if follow_open => match chunk {
                Ok(Some(bytes)) => {
                    side.count_down(bytes.len());
                    inputs.push_back(Input::Follow(bytes.to_vec()));
                }
                Ok(None) => {
                    follow_open = false;
                    inputs.push_back(Input::FollowEnded);
                }
                Err(e) => return Err(unreachable(with_causes(&e))),
            },
            () = changed.notified() => {
                seen_head = store.feed_head()?;
                inputs.push_back(Input::Changed { head: seen_head });
            }
            () = foreign.written() => {
                let head = store.feed_head()?;
                if head != seen_head {
                    seen_head = head;
                    inputs.push_back(Input::Changed { head });
                }
            }
            done = async {
                match answer.as_mut() {
                    Some(a) => a.await,
                    None => std::future::pending().await,
                }
            }, if answer.is_some() => {
                answer = None;
                inputs.push_back(match done {
                    Ok(Ok((status, body))) => Input::Answer { status, body: body.to_vec() },
                    Ok(Err(reason)) => Input::UploadBroken(reason),
                    Err(e) => Input::UploadBroken(format!("the upload's task failed: {e}")),
                });
            }
            () = tokio::time::sleep_until(wake) => inputs.push_back(Input::Timer),
            () = &mut stop, if !stopping => {
                stopping = true;
                inputs.push_back(Input::Stop);
            }
        }
    }
}

/// The longest one session asks the relay to hold its follow (a relay holds one at most ten
/// minutes).
const SESSION: Duration = Duration::from_secs(300);

/// Stays connected to the relay at `url` until `until` (for good without one): one live
/// session after another, each as long as the relay holds a follow. Ends with
/// [`LiveEnd::Stopped`] when `stop` completes, [`LiveEnd::Over`] at `until`; an error ends it
/// at once (the caller retries as it sees fit). The app's background loop and `linli sync
/// --watch` both stay connected through this.
pub async fn stay(
    store: &mut Store,
    url: &str,
    until: Option<Instant>,
    stop: impl Future<Output = ()>,
    mut on_event: impl FnMut(LiveEvent<'_>),
) -> Result<LiveEnd, SyncError> {
    let mut stop = std::pin::pin!(stop);
    loop {
        let left = until.map(|u| u.saturating_duration_since(Instant::now()));
        if left.is_some_and(|l| l.is_zero()) {
            return Ok(LiveEnd::Over);
        }
        let options = LiveOptions {
            wait: left.map_or(SESSION, |l| l.min(SESSION)),
            ..LiveOptions::default()
        };
        if live(store, url, options, stop.as_mut(), &mut on_event).await? == LiveEnd::Stopped {
            return Ok(LiveEnd::Stopped);
        }
    }
}
