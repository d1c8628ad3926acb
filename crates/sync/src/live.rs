//! A live session with the relay: what other devices send arrives the moment the relay stores
//! it, and this device's own changes leave as they are made, in a bounded number of round
//! trips however many documents a burst of work touches.
//!
//! One held stream ([`Body::Follow`] on [`STREAM_PATH`]) brings a frame each time blobs of
//! this device's scopes arrive; each is merged in one transaction with the cursor it moves
//! to, as a pull's answer is. Local changes, looked for every tick on the store's change feed,
//! are sealed and sent at once as frames of one upload stream, kept open while the work goes
//! on and closed once it has been idle for a moment: a burst of edits is one round trip, and
//! the relay stores (and forwards) each frame as it arrives instead of after the burst.
//! What an upload carries counts as sent only when the relay's answers to all of its frames
//! have come back; until then it is in flight, and a session that ends before sends it again
//! next time (the relay keeps both copies; merging one twice changes nothing).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::channel::{Channel, Sender};
use linli_wire::relay::{Body, Frames, KEEPALIVE_MS, Reply, Response, STREAM_PATH, frame};

use crate::relay_client::{
    Heads, PULL_BYTES, RelayClient, SyncError, SyncReport, push_batches, receive,
    seal_outbox_after, sign, sign_numbered,
};
use crate::{InFlight, Store};

/// How a live session runs.
#[derive(Debug, Clone, Copy)]
pub struct LiveOptions {
    /// How long the session lasts (the relay holds a follow at most ten minutes).
    pub wait: Duration,
    /// How often the store's change feed is looked at (and `stop` asked) while changes are
    /// being made here or wait to be acknowledged.
    pub tick: Duration,
    /// How often otherwise (the delay of a first change after a calm moment).
    pub calm_tick: Duration,
    /// How long an upload stays open after its last change.
    pub idle: Duration,
    /// The longest a change waits to be sent while more follow it without pause: changes
    /// made in a burst go together (a frame has a cost of its own at every hop), a lone
    /// change goes one tick after it was made.
    pub batch: Duration,
    /// How long the relay may say nothing (it sends an empty frame every 15 s when nothing
    /// arrives) before the connection counts as lost: a network that drops without closing
    /// the connection is noticed then, not when the session's time is over.
    pub silence: Duration,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            wait: Duration::from_secs(300),
            tick: Duration::from_millis(2),
            calm_tick: Duration::from_millis(10),
            idle: Duration::from_millis(200),
            batch: Duration::from_millis(5),
            silence: Duration::from_millis(2 * KEEPALIVE_MS + 5_000),
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

/// How a live session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveEnd {
    /// `stop` asked.
    Stopped,
    /// The session's time passed (or the relay is stopping): open the next.
    Over,
}

/// Request counters a session takes at once.
const COUNTERS: u64 = 1000;

/// The longest one upload stays open, however busy the device.
const MAX_UPLOAD: Duration = Duration::from_secs(60);

/// Stays connected to the relay at `url` for `options.wait`: merges what arrives, sends what is
/// made here, and reports both through `on_event`. `stop` is asked every tick. An upload still
/// open at the end is closed and acknowledged first.
pub async fn live(
    store: &mut Store,
    url: &str,
    options: LiveOptions,
    mut stop: impl FnMut(&Store) -> bool,
    mut on_event: impl FnMut(LiveEvent<'_>),
) -> Result<LiveEnd, SyncError> {
    let client = RelayClient::new(url)?;
    let peer = client.peer();
    let unreachable = |e: reqwest::Error| SyncError::Unreachable {
        url: client.url.clone(),
        reason: crate::relay_client::with_causes(&e),
    };
    let mut received = SyncReport::default();
    let since = store.peer_cursor(&peer)?;
    let request = frame(&sign(
        store,
        Body::Follow {
            since,
            max_bytes: PULL_BYTES,
            wait_ms: u64::try_from(options.wait.as_millis()).unwrap_or(u64::MAX),
        },
    )?);
    received.bytes_up += request.len() as u64;
    received.round_trips += 1;
    let mut follow = client
        .http
        .post(format!("{}{STREAM_PATH}", client.url))
        .header("content-type", "application/octet-stream")
        .timeout(options.wait + Duration::from_millis(3 * KEEPALIVE_MS))
        .body(request)
        .send()
        .await
        .map_err(unreachable)?;
    if !follow.status().is_success() {
        let status = follow.status().as_u16();
        let message = follow.text().await.unwrap_or_default();
        return Err(SyncError::Refused { status, message });
    }
    let mut frames = Frames::default();
    let mut uploads = Uploads::new(store, &peer)?;
    let mut next_tick = tokio::time::Instant::now();
    let mut heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            chunk = follow.chunk() => {
                let Some(bytes) = chunk.map_err(unreachable)? else {
                    uploads.finish(store, &client, &mut on_event).await?;
                    return Ok(LiveEnd::Over);
                };
                heard = tokio::time::Instant::now();
                received.bytes_down += bytes.len() as u64;
                frames.extend(&bytes);
                while let Some(f) = frames.next_frame()? {
                    if f.is_empty() {
                        continue;
                    }
                    match linli_wire::decode::<Reply>("relay reply", &f)? {
                        Reply::Answer(response) => {
                            let merging = Instant::now();
                            tracing::debug!(bytes = f.len(), "a frame arrived");
                            let since = store.peer_cursor(&peer)?;
                            receive(store, &peer, since, response, &mut received)?;
                            // The time spent receiving what the report counts.
                            received.ms += merging.elapsed().as_millis();
                            tracing::debug!(changed = received.changed, "merged a frame");
                            if received.created + received.changed + received.unchanged > 0 {
                                on_event(LiveEvent::Received(&received));
                                received = SyncReport::default();
                            }
                        }
                        Reply::Refused { status, message } => {
                            return Err(SyncError::Refused { status, message });
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(heard + options.silence) => {
                return Err(SyncError::Unreachable {
                    url: client.url.clone(),
                    reason: format!(
                        "no word from the relay for {} s: the connection counts as lost",
                        options.silence.as_secs_f32()
                    ),
                });
            }
            _ = tokio::time::sleep_until(next_tick) => {
                if stop(store) {
                    uploads.finish(store, &client, &mut on_event).await?;
                    return Ok(LiveEnd::Stopped);
                }
                uploads.tick(store, &client, &options, &mut on_event).await?;
                // Quick looks while changes are being made here, calm ones otherwise.
                let pause = if uploads.busy() { options.tick } else { options.calm_tick };
                next_tick = tokio::time::Instant::now() + pause;
            }
        }
    }
}

/// This device's side of a live session: what was sealed, what waits for the relay's answer.
struct Uploads {
    peer: String,
    /// The feed position up to which every document is sent or in flight.
    sealed_seq: i64,
    /// The feed head last sealed at.
    last_head: Option<i64>,
    /// The feed head seen at the last tick.
    seen_head: Option<i64>,
    /// Since when changes wait to be sealed.
    waiting_since: Option<Instant>,
    /// A feed position up to which everything is sent, not yet recorded.
    unsaved_sent: Option<i64>,
    /// Heads sent in the open upload.
    in_flight: InFlight,
    open: Option<Upload>,
    /// Request counters taken for this session and not used yet.
    counters: std::ops::RangeInclusive<u64>,
}

/// An upload stream, open.
struct Upload {
    tx: Sender<Bytes>,
    answer: tokio::task::JoinHandle<Result<reqwest::Response, reqwest::Error>>,
    /// Blobs in each request sent.
    expected: Vec<usize>,
    heads: Heads,
    sealed_seq: i64,
    opened: Instant,
    last: Instant,
    report: SyncReport,
}

impl Uploads {
    fn new(store: &Store, peer: &str) -> Result<Uploads, SyncError> {
        Ok(Uploads {
            peer: peer.to_string(),
            sealed_seq: store.sent_seq(peer)?,
            last_head: None,
            seen_head: None,
            waiting_since: None,
            unsaved_sent: None,
            in_flight: InFlight::new(),
            open: None,
            counters: store.reserve_counters(COUNTERS)?,
        })
    }

    /// The next request counter, taking more when the session's are used up.
    fn counter(&mut self, store: &Store) -> Result<u64, SyncError> {
        if let Some(c) = self.counters.next() {
            return Ok(c);
        }
        self.counters = store.reserve_counters(COUNTERS)?;
        self.counters
            .next()
            .ok_or_else(|| SyncError::Protocol("no request counter left".into()))
    }

    /// Whether changes are being made or wait for the relay.
    fn busy(&self) -> bool {
        self.waiting_since.is_some() || self.open.is_some() || self.unsaved_sent.is_some()
    }

    /// Sends what changed since the last look; closes an upload idle for `idle`.
    async fn tick(
        &mut self,
        store: &mut Store,
        client: &RelayClient,
        options: &LiveOptions,
        on_event: &mut impl FnMut(LiveEvent<'_>),
    ) -> Result<(), SyncError> {
        let idle = options.idle;
        // The head first: a write after this moment is looked at next time.
        let head = store.feed_head()?;
        tracing::trace!(head, "looked at the feed");
        if self.last_head != Some(head) {
            // Writes go on: wait for a pause, or until the first waited long enough.
            let quiet = self.seen_head == Some(head);
            self.seen_head = Some(head);
            let since = *self.waiting_since.get_or_insert_with(Instant::now);
            if !quiet && since.elapsed() < options.batch {
                return Ok(());
            }
            self.waiting_since = None;
            self.last_head = Some(head);
            // Only merges from the relay since (each records that the relay has what it
            // wrote): nothing to look for.
            if self.open.is_none() && store.sent_seq(&self.peer)? >= head {
                self.sealed_seq = head;
                self.unsaved_sent = None;
                return Ok(());
            }
            let t0 = Instant::now();
            let (blobs, heads) =
                seal_outbox_after(store, &self.peer, self.sealed_seq, &self.in_flight)?;
            tracing::debug!(us = t0.elapsed().as_micros() as u64, head, "sealed");
            if blobs.is_empty() {
                if self.open.is_none() {
                    // Written once the feed is quiet: a write now would wait behind the
                    // writes going on (SQLite's wait for a lock backs off to 100 ms sleeps).
                    self.unsaved_sent = Some(head);
                }
                self.sealed_seq = head;
                return Ok(());
            }
            self.unsaved_sent = None;
            let mut requests = Vec::new();
            for batch in push_batches(blobs) {
                let counts = (
                    batch.len(),
                    batch.iter().map(|b| b.docs.len()).sum::<usize>(),
                );
                let counter = self.counter(store)?;
                requests.push((
                    counts,
                    frame(&sign_numbered(store, Body::Push { blobs: batch }, counter)?),
                ));
            }
            let up = self.open.get_or_insert_with(|| Upload::open(client));
            for ((blobs, docs), bytes) in requests {
                up.report.sent += docs;
                up.report.bytes_up += bytes.len() as u64;
                up.expected.push(blobs);
                if up.tx.send_data(Bytes::from(bytes)).await.is_err() {
                    // The request ended: its error says why.
                    return self.finish(store, client, on_event).await;
                }
            }
            tracing::debug!(docs = heads.len(), head, "sent in the open upload");
            for (id, h) in &heads {
                self.in_flight.insert(id.clone(), h.clone());
            }
            up.heads.extend(heads);
            up.sealed_seq = head;
            up.last = Instant::now();
            self.sealed_seq = head;
        } else if let Some(sent) = self.unsaved_sent {
            // Never waiting for another writer: tried again at the next quiet look.
            if store.try_set_sent_seq(&self.peer, sent)? {
                self.unsaved_sent = None;
            }
        } else if self
            .open
            .as_ref()
            .is_some_and(|up| up.last.elapsed() >= idle || up.opened.elapsed() >= MAX_UPLOAD)
        {
            self.finish(store, client, on_event).await?;
        }
        Ok(())
    }

    /// Closes the open upload, if any, and records what the relay acknowledged as sent.
    async fn finish(
        &mut self,
        store: &mut Store,
        client: &RelayClient,
        on_event: &mut impl FnMut(LiveEvent<'_>),
    ) -> Result<(), SyncError> {
        let Some(mut up) = self.open.take() else {
            if let Some(sent) = self.unsaved_sent.take() {
                store.set_sent_seq(&self.peer, sent)?;
            }
            return Ok(());
        };
        // Whatever happens next, what was in flight is not known to have arrived.
        self.in_flight.clear();
        self.sealed_seq = store.sent_seq(&self.peer)?;
        self.last_head = None;
        drop(up.tx);
        let unreachable = |reason: String| SyncError::Unreachable {
            url: client.url.clone(),
            reason,
        };
        let response = up
            .answer
            .await
            .map_err(|e| SyncError::Protocol(format!("the upload's task failed: {e}")))?
            .map_err(|e| unreachable(crate::relay_client::with_causes(&e)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| unreachable(crate::relay_client::with_causes(&e)))?;
        up.report.bytes_down += body.len() as u64;
        if !status.is_success() {
            return Err(SyncError::Refused {
                status: status.as_u16(),
                message: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        let mut frames = Frames::default();
        frames.extend(&body);
        let mut answered = 0;
        while let Some(f) = frames.next_frame()? {
            if f.is_empty() {
                continue;
            }
            match linli_wire::decode::<Reply>("relay reply", &f)? {
                Reply::Answer(Response::Pushed { seqs })
                    if up.expected.get(answered) == Some(&seqs.len()) =>
                {
                    answered += 1;
                }
                Reply::Refused { status, message } => {
                    return Err(SyncError::Refused { status, message });
                }
                other => {
                    return Err(SyncError::Protocol(format!(
                        "the relay answered a push with {other:?}"
                    )));
                }
            }
        }
        if answered != up.expected.len() {
            return Err(SyncError::Protocol(format!(
                "the relay answered {answered} of {} pushes in the stream ({} bytes cut off); \
                 what they carried is sent again next time",
                up.expected.len(),
                frames.pending()
            )));
        }
        store.mark_sent(&self.peer, &up.heads)?;
        store.set_sent_seq(&self.peer, up.sealed_seq)?;
        self.sealed_seq = up.sealed_seq;
        up.report.round_trips = 1;
        up.report.ms = up.opened.elapsed().as_millis();
        on_event(LiveEvent::Sent(&up.report));
        Ok(())
    }
}

impl Upload {
    /// Opens an upload stream: the request runs on its own task while frames are fed to it.
    fn open(client: &RelayClient) -> Upload {
        let (tx, body) = Channel::<Bytes>::new(64);
        let request = client
            .http
            .post(format!("{}{STREAM_PATH}", client.url))
            .header("content-type", "application/octet-stream")
            .timeout(MAX_UPLOAD + Duration::from_secs(60))
            .body(reqwest::Body::wrap(body))
            .send();
        let now = Instant::now();
        Upload {
            tx,
            answer: tokio::spawn(request),
            expected: Vec::new(),
            heads: Heads::new(),
            sealed_seq: 0,
            opened: now,
            last: now,
            report: SyncReport::default(),
        }
    }
}
