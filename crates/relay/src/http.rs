//! Serving the relay over HTTP/1.1, plain or TLS, with every connection bounded: a cap on
//! connections (in all and per address), a time limit on a TLS handshake and on a request's
//! head (also closing idle connections), on each piece of a body and its average rate, on a
//! stream's length, and on a connection where nothing moves; request bodies are read into
//! memory only within the relay's byte budget, and a stranger's membership is checked from a
//! request's first bytes, before its body is read.
//!
//! Routes: `POST /v2` (one request, one answer), `POST /v2/stream` (see
//! [`linli_wire::relay::STREAM_PATH`]), `GET /health`, and `GET /traffic` only when
//! [`crate::Config::traffic`] is on.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use linli_wire::relay::{
    Frames, KEEPALIVE_MS, MAX_REQUEST, PATH, Reply, Response, STREAM_PATH, frame, peek_membership,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::limits::Held;
use crate::traffic::{Activity, CountingStream, Traffic};
use crate::{Admission, LastStored, Relay, RelayError, Waiting, clean};

/// The address a request came from.
#[derive(Debug, Clone, Copy)]
struct Origin(IpAddr);

/// Bytes after which a request must have shown a whole membership.
const MEMBERSHIP_WITHIN: usize = 64 * 1024;

impl Relay {
    /// The routes.
    fn router(&self, traffic: Arc<Traffic>) -> Router {
        let mut router = Router::new()
            .route(PATH, post(handle))
            .route(STREAM_PATH, post(handle_stream))
            .route("/health", get(|| async { "linli-relay ok\n" }));
        for old in linli_wire::relay::OLD_PATHS {
            router = router.route(
                old,
                post(|| async {
                    (
                        StatusCode::UPGRADE_REQUIRED,
                        "this relay speaks version 2 of Linli's protocol: update Linli on this \
                         device (更新本设备上的邻里)\n",
                    )
                }),
            );
        }
        if self.config.traffic {
            router = router.route(
                "/traffic",
                get(move || async move {
                    let (i, o) = traffic.totals();
                    format!("{i} {o}\n")
                }),
            );
        }
        router.with_state(self.clone())
    }

    /// Serves plain HTTP on `listener` until `shutdown` completes.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.serve_on(listener, None, shutdown).await
    }

    /// Serves HTTPS on `listener` with the relay's certificate (see [`crate::tls`]) until
    /// `shutdown`.
    pub async fn serve_tls(
        self,
        listener: TcpListener,
        tls: crate::tls::Tls,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.serve_on(listener, Some(TlsAcceptor::from(tls.config)), shutdown)
            .await
    }

    async fn serve_on(
        self,
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let traffic = Arc::new(Traffic::default());
        let router = self.router(traffic.clone());
        let mut connections = tokio::task::JoinSet::new();
        let mut refused_at: Option<tokio::time::Instant> = None;
        tokio::pin!(shutdown);
        loop {
            let (tcp, addr) = tokio::select! {
                _ = &mut shutdown => break,
                // Finished connections' tasks are collected as they end.
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
                accepted = listener.accept() => match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors, say: wait a moment rather than spin.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let Some(slot) = self.limits.connections.open(addr.ip()) else {
                // At the cap: closed at once (a device retries later); said once a minute.
                if refused_at.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    tracing::warn!(%addr, cap = self.limits.connections.max(), "too many connections: refusing new ones");
                    refused_at = Some(tokio::time::Instant::now());
                }
                drop(tcp);
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let activity = Activity::new();
            let io = CountingStream::new(tcp, traffic.clone(), activity.clone());
            let (relay, router, tls) = (self.clone(), router.clone(), tls.clone());
            connections.spawn(async move {
                let _slot = slot;
                let timeouts = relay.config.timeouts;
                match tls {
                    None => relay.connection(io, addr, router, activity).await,
                    Some(acceptor) => {
                        match tokio::time::timeout(timeouts.handshake, acceptor.accept(io)).await {
                            Ok(Ok(session)) => {
                                relay.connection(session, addr, router, activity).await;
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(%addr, error = %e, "a TLS handshake failed")
                            }
                            Err(_) => tracing::debug!(%addr, "a TLS handshake timed out"),
                        }
                    }
                }
            });
        }
        self.closing.send_replace(true);
        // Connections finish what they answer (held answers end at once), for a moment.
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        connections.shutdown().await;
        Ok(())
    }

    /// Serves one connection until it closes, goes silent for too long, or the relay stops.
    async fn connection<I>(&self, io: I, addr: SocketAddr, router: Router, activity: Arc<Activity>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(Origin(addr.ip()));
                let mut router = router.clone();
                async move {
                    tower_service::Service::call(&mut router, req.map(axum::body::Body::new)).await
                }
            });
        let timeouts = self.config.timeouts;
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(timeouts.header)
            .keep_alive(true);
        let conn = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        let mut closing = self.closing.subscribe();
        let mut stopping = false;
        let mut look = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                ended = conn.as_mut() => {
                    if let Err(e) = ended {
                        tracing::debug!(%addr, error = %e, "a connection ended");
                    }
                    return;
                }
                _ = closing.changed(), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ = look.tick() => {
                    if activity.silent_for() > timeouts.silent {
                        tracing::debug!(%addr, "closing a connection where nothing moved");
                        return;
                    }
                }
            }
        }
    }

    /// Answers a request, holding an empty watch until blobs of its scopes are stored or its
    /// wait is over.
    async fn answer(&self, body: Bytes, origin: IpAddr) -> Result<Response, RelayError> {
        let relay = self.clone();
        let (response, waiting) =
            blocking(move || relay.handle_request(&body, false, Some(origin))).await?;
        match waiting {
            Some(w) if !w.follow => self.hold(response, w).await,
            _ => Ok(response),
        }
    }

    /// Reads a request body within the byte budgets and the time limits, checking the
    /// membership it starts with as soon as it has arrived. The bytes are held in `room`.
    async fn read_body<'a>(
        &'a self,
        mut body: axum::body::Body,
        length: Option<usize>,
        room: &mut Room<'a>,
        origin: IpAddr,
    ) -> Result<Bytes, RelayError> {
        use http_body_util::BodyExt;
        let t = self.config.timeouts;
        if let Some(len) = length
            && len > MAX_REQUEST
        {
            return Err(RelayError::BadRequest(format!(
                "a request of {len} bytes is longer than the limit of {MAX_REQUEST}"
            )));
        }
        // Room for the membership first; the whole body once it is checked (one allocation,
        // no copies as it grows).
        let mut buf = bytes::BytesMut::with_capacity(length.unwrap_or(0).min(MEMBERSHIP_WITHIN));
        let started = tokio::time::Instant::now();
        let mut checked = false;
        loop {
            let next = tokio::time::timeout(t.body_idle, body.frame())
                .await
                .map_err(|_| too_slow(t.body_idle))?;
            let Some(next) = next else { break };
            let data = match next {
                Ok(f) => match f.into_data() {
                    Ok(d) => d,
                    Err(_) => continue,
                },
                Err(e) => {
                    return Err(RelayError::BadRequest(format!("the request was cut: {e}")));
                }
            };
            let size = buf.len() + data.len();
            if size > MAX_REQUEST {
                return Err(RelayError::BadRequest(format!(
                    "the request is longer than the limit of {MAX_REQUEST} bytes"
                )));
            }
            room.cover(size, t.budget_wait).await?;
            buf.extend_from_slice(&data);
            slow_body(started, buf.len(), &t)?;
            if !checked && let Some(admission) = self.peek(&buf, origin).await? {
                checked = true;
                // Room for all of it at once, or a wait for it (a share of each of several
                // large requests could leave all of them waiting for the others' room).
                let whole = length.unwrap_or(0).max(buf.len());
                room.admit(admission, whole, t.budget_wait).await?;
                buf.reserve(whole.saturating_sub(buf.len()));
            }
        }
        Ok(buf.freeze())
    }

    /// Checks the membership at the start of `prefix` once it is there.
    async fn peek(&self, prefix: &[u8], origin: IpAddr) -> Result<Option<Admission>, RelayError> {
        match peek_membership(prefix) {
            Ok(Some(m)) => {
                let relay = self.clone();
                Ok(Some(
                    blocking(move || relay.precheck(&m, Some(origin))).await?,
                ))
            }
            Ok(None) if prefix.len() >= MEMBERSHIP_WITHIN => Err(RelayError::BadRequest(format!(
                "the request's first {MEMBERSHIP_WITHIN} bytes hold no membership"
            ))),
            Ok(None) => Ok(None),
            Err(e) => Err(RelayError::BadRequest(e.to_string())),
        }
    }

    /// Holds an empty watch's answer until blobs of its scopes are stored or its wait is over.
    async fn hold(&self, response: Response, mut w: Waiting) -> Result<Response, RelayError> {
        let mut news = self.listen(&w);
        // The answer so far: empty, with the cursor past blobs this device does not get.
        let mut last = response;
        let deadline = tokio::time::Instant::now() + w.wait;
        loop {
            let (again, w2) = self.next_news(w, &mut news, deadline).await?;
            w = w2;
            match again {
                None => return Ok(last),
                Some(Response::Pulled { blobs, next, more }) if blobs.is_empty() => {
                    w.since = next;
                    last = Response::Pulled { blobs, next, more };
                }
                Some(again) => return Ok(again),
            }
        }
    }

    /// Holds a follow open on a stream: a frame each time blobs of its scopes are stored (an
    /// empty one every [`KEEPALIVE_MS`] otherwise), until its wait is over, the relay stops or
    /// the device goes (a frame cannot be sent).
    async fn follow(&self, mut w: Waiting, more: bool, tx: &mut Sender<Bytes>) {
        let mut news = self.listen(&w);
        news.missed |= more;
        let deadline = tokio::time::Instant::now() + w.wait;
        loop {
            let until =
                deadline.min(tokio::time::Instant::now() + Duration::from_millis(KEEPALIVE_MS));
            let (again, w2) = match self.next_news(w, &mut news, until).await {
                Ok(next) => next,
                Err(e) => {
                    let _ = send_reply(tx, refusal(&e)).await;
                    return;
                }
            };
            w = w2;
            match again {
                None if *news.closing.borrow() || tokio::time::Instant::now() >= deadline => return,
                None => {
                    if tx.send_data(Bytes::from(frame(&[]))).await.is_err() {
                        return;
                    }
                }
                Some(Response::Pulled { blobs, next, more }) => {
                    w.since = next;
                    news.missed |= more;
                    if !blobs.is_empty() {
                        let answer = Reply::Answer(Response::Pulled { blobs, next, more });
                        if send_reply(tx, answer).await.is_err() {
                            return;
                        }
                    }
                }
                Some(other) => {
                    let _ = send_reply(tx, Reply::Answer(other)).await;
                    return;
                }
            }
        }
    }

    /// What a held watch or follow listens to.
    fn listen(&self, w: &Waiting) -> News {
        let mut stored = self.stored_channel(&w.community).subscribe();
        // A push stored between the first look and subscribing has a sequence number past it.
        let missed = News::any_for(&stored.borrow_and_update(), w);
        News {
            closing: self.closing.subscribe(),
            stored,
            missed,
        }
    }

    /// Waits until blobs of `w`'s scopes are stored past its cursor, then pulls them; `None`
    /// when `until` passes first or the relay is stopping.
    async fn next_news(
        &self,
        w: Waiting,
        news: &mut News,
        until: tokio::time::Instant,
    ) -> Result<(Option<Response>, Waiting), RelayError> {
        loop {
            if *news.closing.borrow() {
                return Ok((None, w));
            }
            if !std::mem::take(&mut news.missed) {
                tokio::select! {
                    changed = tokio::time::timeout_at(until, news.stored.changed()) => match changed {
                        Ok(Ok(())) => {}
                        // The wait is over.
                        Ok(Err(_)) | Err(_) => return Ok((None, w)),
                    },
                    // The relay is stopping.
                    _ = news.closing.changed() => return Ok((None, w)),
                }
                // Blobs of other scopes only: nothing to look for.
                if !News::any_for(&news.stored.borrow_and_update(), &w) {
                    continue;
                }
            }
            let relay = self.clone();
            let (again, w) = blocking(move || relay.pull_again(&w).map(|r| (r, w))).await?;
            return Ok((Some(again), w));
        }
    }

    /// Reads a stream's requests as they arrive and answers each in order (see
    /// [`STREAM_PATH`]); stops at the first refused, or holds a follow. The frame being
    /// received counts against the budgets: the strangers' until its membership is checked,
    /// then all of it against its admission's.
    async fn stream(self, mut body: axum::body::Body, origin: IpAddr, tx: &mut Sender<Bytes>) {
        use http_body_util::BodyExt;
        let t = self.config.timeouts;
        let mut frames = Frames::default();
        let mut room = Room::new(&self.limits);
        let started = tokio::time::Instant::now();
        // Whether the membership of the frame being received was checked.
        let mut checked = false;
        loop {
            let next = match frames.next_frame() {
                Err(e) => Err(RelayError::BadRequest(e.to_string())),
                Ok(Some(bytes)) => {
                    // The frame keeps its room until it is handled; what is left of the buffer
                    // belongs to the next frame, not checked yet.
                    let frame_room = std::mem::replace(&mut room, Room::new(&self.limits));
                    checked = false;
                    if let Err(e) = room.cover(frames.pending(), t.budget_wait).await {
                        let _ = send_reply(tx, refusal(&e)).await;
                        return;
                    }
                    if bytes.is_empty() {
                        continue;
                    }
                    Ok((Bytes::from(bytes), frame_room))
                }
                Ok(None) => {
                    let deadline =
                        (started + t.stream).min(tokio::time::Instant::now() + t.body_idle);
                    let arrived = match tokio::time::timeout_at(deadline, body.frame()).await {
                        Ok(arrived) => arrived,
                        Err(_) => {
                            let _ = send_reply(tx, refusal(&too_slow(t.body_idle))).await;
                            return;
                        }
                    };
                    match arrived {
                        Some(Ok(f)) => {
                            let Ok(data) = f.into_data() else { continue };
                            frames.extend(&data);
                            let received = async {
                                room.cover(frames.pending(), t.budget_wait).await?;
                                if !checked
                                    && let Some(admission) =
                                        self.peek(frames.partial(), origin).await?
                                {
                                    checked = true;
                                    let whole = frames
                                        .next_len()
                                        .map_or(0, |l| l + 4)
                                        .max(frames.pending());
                                    room.admit(admission, whole, t.budget_wait).await?;
                                }
                                Ok::<(), RelayError>(())
                            };
                            if let Err(e) = received.await {
                                let _ = send_reply(tx, refusal(&e)).await;
                                return;
                            }
                            continue;
                        }
                        Some(Err(e)) => {
                            tracing::info!(error = %e, "a stream was cut");
                            return;
                        }
                        None if frames.pending() == 0 => return,
                        None => Err(RelayError::BadRequest(format!(
                            "the stream ended inside a request ({} bytes of it arrived): it was not \
                             handled",
                            frames.pending()
                        ))),
                    }
                }
            };
            let handled = match next {
                Ok((bytes, frame_room)) => {
                    tracing::debug!(bytes = bytes.len(), "stream frame arrived");
                    let relay = self.clone();
                    let handled =
                        blocking(move || relay.handle_request(&bytes, true, Some(origin))).await;
                    // Stored (or refused): its bytes are gone.
                    drop(frame_room);
                    match handled {
                        Ok((response, Some(w))) if !w.follow => {
                            self.hold(response, w).await.map(|r| (r, None))
                        }
                        other => other,
                    }
                }
                Err(e) => Err(e),
            };
            match handled {
                Ok((response, follow)) => {
                    let more = matches!(response, Response::Pulled { more: true, .. });
                    if send_reply(tx, Reply::Answer(response)).await.is_err() {
                        return;
                    }
                    if let Some(w) = follow {
                        // Nothing of the stream is kept while the follow is held.
                        drop(frames);
                        drop(room);
                        self.follow(w, more, tx).await;
                        return;
                    }
                }
                Err(e) => {
                    tracing::info!(error = %clean(&e.to_string()), "request in a stream refused");
                    let _ = send_reply(tx, refusal(&e)).await;
                    return;
                }
            }
        }
    }
}

/// The memory a request (or a stream's frame) holds of the budgets: the strangers' until its
/// membership is known, then its admission's.
pub(crate) struct Room<'a> {
    limits: &'a crate::Limits,
    early: Held<'a>,
    admitted: Option<Held<'a>>,
}

impl<'a> Room<'a> {
    fn new(limits: &'a crate::Limits) -> Room<'a> {
        Room {
            limits,
            early: limits.strangers.none(),
            admitted: None,
        }
    }

    fn held(&self) -> usize {
        self.early.bytes() + self.admitted.as_ref().map_or(0, Held::bytes)
    }

    /// Holds at least `bytes` in all, waiting at most `wait` for room.
    async fn cover(&mut self, bytes: usize, wait: Duration) -> Result<(), RelayError> {
        let more = bytes.saturating_sub(self.held());
        if more == 0 {
            return Ok(());
        }
        match &mut self.admitted {
            Some(h) => {
                let budget = if std::ptr::eq(h.budget(), &self.limits.budget) {
                    &self.limits.budget
                } else {
                    &self.limits.strangers
                };
                budget.take(h, more, wait).await
            }
            None => {
                self.limits
                    .strangers
                    .take(&mut self.early, more, wait)
                    .await
            }
        }
    }

    /// The membership is known: holds `bytes` of its budget (members', or strangers' for a
    /// first contact) and gives back what was held before.
    async fn admit(
        &mut self,
        admission: Admission,
        bytes: usize,
        wait: Duration,
    ) -> Result<(), RelayError> {
        let budget = match admission {
            Admission::Member => &self.limits.budget,
            Admission::FirstContact => &self.limits.strangers,
        };
        let mut h = budget.none();
        // A first contact's early bytes are in the strangers' budget already: counted once.
        let already = if admission == Admission::FirstContact {
            self.early.bytes()
        } else {
            0
        };
        budget
            .take(&mut h, bytes.saturating_sub(already), wait)
            .await?;
        if admission == Admission::FirstContact {
            let early = std::mem::replace(&mut self.early, self.limits.strangers.none());
            h.absorb(early);
        } else {
            self.early = self.limits.strangers.none();
        }
        self.admitted = Some(h);
        Ok(())
    }
}

/// The refusal of a body that arrives too slowly.
fn too_slow(idle: Duration) -> RelayError {
    RelayError::TooSlow(format!(
        "the request did not arrive in time (nothing came for {} s, or it came too slowly): \
         the connection is closed",
        idle.as_secs()
    ))
}

/// Refuses a body whose average rate fell below the floor after a first grace period.
fn slow_body(
    started: tokio::time::Instant,
    arrived: usize,
    t: &crate::Timeouts,
) -> Result<(), RelayError> {
    let after_grace = started.elapsed().saturating_sub(t.body_idle);
    let needed = (after_grace.as_secs_f64() * t.body_rate as f64) as usize;
    if arrived < needed {
        return Err(too_slow(t.body_idle));
    }
    Ok(())
}

/// Runs blocking work (SQLite) off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RelayError> + Send + 'static,
) -> Result<T, RelayError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RelayError::Internal(format!("relay task failed: {e}")))?
}

/// A refusal as an HTTP answer: its status, its reason as text, and `Retry-After` when asking
/// again later may succeed.
fn refused(e: &RelayError) -> axum::response::Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = axum::response::Response::new(axum::body::Body::from(e.to_string()));
    *response.status_mut() = status;
    if let Some(seconds) = e.retry_after() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    // A refused request's body may still be arriving: close rather than read it.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn content_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// `POST /v2`.
async fn handle(
    State(relay): State<Relay>,
    Extension(Origin(origin)): Extension<Origin>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> axum::response::Response {
    let answered = async {
        let mut room = Room::new(&relay.limits);
        let bytes = relay
            .read_body(body, content_length(&headers), &mut room, origin)
            .await?;
        let answer = relay.answer(bytes, origin).await;
        drop(room);
        answer
    }
    .await;
    match answered {
        Ok(response) => {
            axum::response::Response::new(axum::body::Body::from(linli_wire::encode(&response)))
        }
        Err(e) => {
            tracing::info!(%origin, status = e.status(), error = %clean(&e.to_string()), "request refused");
            refused(&e)
        }
    }
}

/// `POST /v2/stream`: answers as the requests arrive (see [`STREAM_PATH`]).
async fn handle_stream(
    State(relay): State<Relay>,
    Extension(Origin(origin)): Extension<Origin>,
    body: axum::body::Body,
) -> axum::response::Response {
    let (mut tx, answers) = http_body_util::channel::Channel::<Bytes>::new(16);
    tokio::spawn(async move { relay.stream(body, origin, &mut tx).await });
    axum::response::Response::new(axum::body::Body::new(answers))
}

type Sender<D> = http_body_util::channel::Sender<D>;

async fn send_reply(tx: &mut Sender<Bytes>, reply: Reply) -> Result<(), ()> {
    tx.send_data(Bytes::from(frame(&linli_wire::encode(&reply))))
        .await
        .map_err(|_| ())
}

fn refusal(e: &RelayError) -> Reply {
    Reply::Refused {
        status: e.status(),
        message: e.to_string(),
    }
}

/// What a held watch or follow listens to: the relay stopping, and blobs stored.
struct News {
    closing: tokio::sync::watch::Receiver<bool>,
    stored: tokio::sync::watch::Receiver<LastStored>,
    /// Blobs arrived that were not pulled yet.
    missed: bool,
}

impl News {
    /// Whether a blob of a scope `w`'s device reads, sent by another device, was stored past
    /// where it looked.
    fn any_for(last: &LastStored, w: &Waiting) -> bool {
        last.iter()
            .any(|(scope, l)| l.not_from(&w.device) > w.since && w.grant.may_use(scope))
    }
}
