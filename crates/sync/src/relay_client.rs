//! Syncing with the street office's relay over HTTP: push what the relay lacks, then pull what
//! arrived since the last cursor. Each pulled response is merged in one transaction together
//! with the new cursor, so an interrupted sync resumes where it stopped and loses nothing.

use std::sync::Arc;
use std::time::Instant;

use linli_wire::relay::{Blob, BlobKind, Body, NewBlob, PATH, Request, Response, Signed};
use linli_wire::{Bundle, open_bundle, seal_bundle};

use linli_store::{Incoming, Store, StoreError};

/// Plaintext bytes per sealed bundle (a bundle is compressed and encrypted whole).
const BUNDLE_BYTES: usize = 4 * 1024 * 1024;
/// Sealed bytes per push request.
pub(crate) const PUSH_BYTES: usize = 16 * 1024 * 1024;
/// A soft limit on each pull response.
pub const PULL_BYTES: u64 = 16 * 1024 * 1024;
/// Pull requests per sync (a bound on the loop; a sync that hits it says so).
const MAX_PULLS: usize = 10_000;

/// An error with its causes (reqwest's own message hides them: "error sending request"
/// says nothing of a refused certificate or a reset connection).
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// A certificate pin: 64 hex digits.
fn parse_pin(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut pin = [0u8; 32];
    for (i, b) in pin.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(pin)
}

/// TLS without trusted roots (never used to connect: for plain-http clients).
fn no_roots_tls() -> rustls::ClientConfig {
    static CONFIG: std::sync::OnceLock<rustls::ClientConfig> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            match rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
            {
                Ok(b) => b
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
                Err(_) => rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            }
        })
        .clone()
}

/// TLS that accepts exactly the server certificate whose SHA-256 is `pin` (and checks the
/// handshake's signatures with it, as any TLS client does).
fn pinned_tls(pin: [u8; 32]) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedCert {
        pin,
        provider: provider.clone(),
    });
    // The ring provider supports the safe default versions: the error cannot happen, but a
    // client without TLS then fails to connect, which names the problem.
    match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(b) => b
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
        Err(_) => rustls::ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
    }
}

/// Trusts one certificate, named by its SHA-256.
#[derive(Debug)]
struct PinnedCert {
    pin: [u8; 32],
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use sha2::Digest;
        if sha2::Sha256::digest(end_entity.as_ref()).as_slice() == self.pin {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the relay's certificate does not match the pin in its address".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What can stop a sync.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Sealed or signed data was not valid.
    #[error(transparent)]
    Wire(#[from] linli_wire::WireError),
    /// The relay could not be reached or the connection broke.
    #[error("cannot reach the relay at {url}: {reason}")]
    Unreachable {
        /// The relay.
        url: String,
        /// Why.
        reason: String,
    },
    /// A peer could not be reached, or the connection to it broke.
    #[error("cannot reach the peer {peer}: {reason}")]
    PeerLink {
        /// The peer (its addresses or key).
        peer: String,
        /// Why.
        reason: String,
    },
    /// The relay refused the request.
    #[error("the relay refused ({status}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The relay's reason.
        message: String,
    },
    /// This device may not send some of its documents.
    #[error("{0}")]
    NotAllowed(String),
    /// Something the protocol does not allow.
    #[error("protocol: {0}")]
    Protocol(String),
    /// A peer-to-peer session failed.
    #[error(transparent)]
    Peer(#[from] linli_proto::peer::PeerError),
}

/// The refusal of a device that holds documents of a scope it may not use.
pub(crate) fn not_allowed(
    grant: &linli_wire::Grant,
    scope: &str,
    shown: &[&str],
    count: usize,
) -> SyncError {
    SyncError::NotAllowed(format!(
        "this device is {}, but holds {count} document(s) of scope {scope} ({}{}); it may not send them, so nothing was sent",
        grant.describe(),
        shown.join(", "),
        if count > shown.len() { ", …" } else { "" }
    ))
}

pub use linli_proto::{Heads, SyncReport};

/// A connection to one relay.
#[derive(Debug, Clone)]
pub struct RelayClient {
    pub(crate) http: reqwest::Client,
    pub(crate) url: String,
}

impl RelayClient {
    /// A client for the relay at `url`: `http://host:port`, or `https://host:port#sha256=PIN`
    /// for a relay serving TLS with its own certificate (the pin `linli-relay --tls` prints;
    /// the connection is made only to the server holding that certificate).
    pub fn new(url: &str) -> Result<RelayClient, SyncError> {
        let url = url.trim();
        let refuse = |reason: &str| SyncError::Unreachable {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let (base, pin) = match url.split_once('#') {
            Some((base, fragment)) => {
                let pin = fragment
                    .strip_prefix("sha256=")
                    .and_then(parse_pin)
                    .ok_or_else(|| {
                        refuse("after # comes sha256= and the 64 hex digits linli-relay printed")
                    })?;
                (base, Some(pin))
            }
            None => (url, None),
        };
        let base = base.trim_end_matches('/').to_string();
        // iroh brings reqwest's TLS support without a crypto provider; reqwest insists on one
        // even for plain http. Use ring, the provider iroh already uses (an error only means
        // one is installed).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(300))
            // The relay closes a connection idle for 10 s: let go of it before, so that a
            // request never goes out on a connection the relay is closing.
            .pool_idle_timeout(std::time::Duration::from_secs(5));
        match (base.starts_with("https://"), pin) {
            (true, Some(pin)) => builder = builder.tls_backend_preconfigured(pinned_tls(pin)),
            (true, None) => {
                return Err(refuse(
                    "an https relay address ends with #sha256=PIN (the pin linli-relay --tls \
                     prints): this build trusts a relay by its certificate, not by an authority",
                ));
            }
            (false, Some(_)) if base.starts_with("http://") => {
                return Err(refuse("a pin goes with an https:// address"));
            }
            // Plain http needs no certificates; a preconfigured TLS setup spares reqwest loading
            // the platform's root certificates on every client (5 ms a sync, measured).
            (false, _) if base.starts_with("http://") => {
                builder = builder.tls_backend_preconfigured(no_roots_tls());
            }
            (false, _) => {
                return Err(refuse("the relay address starts with http:// or https://"));
            }
        }
        let http = builder.build().map_err(|e| SyncError::Unreachable {
            url: base.clone(),
            reason: e.to_string(),
        })?;
        Ok(RelayClient { http, url: base })
    }

    /// The peer name this relay's sync state is kept under.
    pub fn peer(&self) -> String {
        format!("relay {}", self.url)
    }

    async fn call(
        &self,
        store: &Store,
        body: Body,
        report: &mut SyncReport,
    ) -> Result<Response, SyncError> {
        let bytes = sign(store, body)?;
        let answer = self.send(bytes, report).await;
        if let Err(SyncError::Refused { message, .. }) = &answer
            && message.contains(linli_wire::relay::COUNTER_AHEAD)
        {
            // Numbered from a clock that was wrong: from the clock again next time.
            store.restart_counter()?;
        }
        answer
    }

    /// Sends a signed request. Holds no store, so that a long poll can wait beside other work.
    async fn send(&self, bytes: Vec<u8>, report: &mut SyncReport) -> Result<Response, SyncError> {
        report.bytes_up += bytes.len() as u64;
        report.round_trips += 1;
        let unreachable = |e: reqwest::Error| SyncError::Unreachable {
            url: self.url.clone(),
            reason: with_causes(&e),
        };
        let response = self
            .http
            .post(format!("{}{PATH}", self.url))
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unreachable)?;
        report.bytes_down += body.len() as u64;
        if !status.is_success() {
            return Err(SyncError::Refused {
                status: status.as_u16(),
                message: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        Ok(linli_wire::decode("relay response", &body)?)
    }
}

/// A request body signed by this device, with its next counter.
pub fn sign(store: &Store, body: Body) -> Result<Vec<u8>, SyncError> {
    sign_numbered(store, body, store.next_counter()?)
}

/// A request body signed by this device, with a counter taken before (see
/// [`Store::reserve_counters`]).
pub fn sign_numbered(store: &Store, body: Body, counter: u64) -> Result<Vec<u8>, SyncError> {
    let me = store.identity()?;
    let request = Request {
        membership: me.membership,
        counter,
        body,
    };
    Ok(linli_wire::encode(&Signed::sign(&me.key, &request)))
}

/// Syncs once with the relay at `url`: push, then pull.
pub async fn sync(store: &mut Store, url: &str) -> Result<SyncReport, SyncError> {
    let started = Instant::now();
    let client = RelayClient::new(url)?;
    let mut report = SyncReport::default();
    push(store, &client, &mut report).await?;
    pull(store, &client, &mut report).await?;
    store.remember_relay(url)?;
    report.ms = started.elapsed().as_millis();
    Ok(report)
}

/// Seals every scope's outgoing documents, refusing (before sending anything) documents of a
/// scope this device may not write.
pub fn seal_outbox(store: &Store, peer: &str) -> Result<(Vec<NewBlob>, Heads), SyncError> {
    seal_outbox_after(
        store,
        peer,
        store.sent_seq(peer)?,
        &linli_store::InFlight::new(),
    )
}

/// As [`seal_outbox`], for documents written after feed position `since`, beyond what is
/// `in_flight` (see [`Store::outbox_after`]).
pub fn seal_outbox_after(
    store: &Store,
    peer: &str,
    since: i64,
    in_flight: &linli_store::InFlight,
) -> Result<(Vec<NewBlob>, Heads), SyncError> {
    let me = store.identity()?;
    let outbox = store.outbox_after(peer, since, in_flight)?;
    if let Some(o) = outbox.iter().find(|o| !me.grant.may_use(&o.scope)) {
        let shown: Vec<&str> = o.docs.iter().take(3).map(|d| d.id.as_str()).collect();
        return Err(not_allowed(&me.grant, &o.scope, &shown, o.docs.len()));
    }
    // A household, its sensitive document, a visit or a task never travels community-wide
    // (every owners' committee device would receive it): refused before anything is sent.
    for o in outbox
        .iter()
        .filter(|o| o.scope == linli_wire::COMMUNITY_WIDE)
    {
        if let Some(d) = o.docs.iter().find(|d| {
            linli_domain::Collection::parse(&d.collection)
                .is_some_and(|c| c.placement() == linli_domain::Placement::Grid)
        }) {
            return Err(SyncError::NotAllowed(format!(
                "document {} ({}) belongs to a grid but is in the community-wide scope: nothing \
                 was sent (fix its grid first)",
                d.id, d.collection
            )));
        }
    }
    seal_groups(store, outbox, BlobKind::Changes, 0)
}

/// Seals documents grouped by scope into blobs of `kind` of at most [`BUNDLE_BYTES`] each.
fn seal_groups(
    store: &Store,
    outbox: Vec<linli_store::Outgoing>,
    kind: BlobKind,
    covers: u64,
) -> Result<(Vec<NewBlob>, Heads), SyncError> {
    let community = store.identity()?.membership.community;
    let mut blobs = Vec::new();
    let mut heads = Vec::new();
    for o in outbox {
        let key = store.scope_key(&o.scope)?.ok_or_else(|| {
            SyncError::NotAllowed(format!("this device has no key for scope {}", o.scope))
        })?;
        let mut bundle = Bundle::default();
        let mut size = 0;
        let mut flush = |bundle: &mut Bundle| -> Result<(), SyncError> {
            if bundle.docs.is_empty() {
                return Ok(());
            }
            let docs = bundle.docs.iter().map(|d| d.id.clone()).collect();
            let sealed = seal_bundle(&key, &community, &o.scope, bundle)?;
            blobs.push(NewBlob {
                scope: o.scope.clone(),
                kind,
                docs,
                covers,
                sealed,
            });
            bundle.docs.clear();
            Ok(())
        };
        for d in o.docs {
            size += d.bytes.len() + d.id.len() + 16;
            bundle.docs.push(d);
            if size >= BUNDLE_BYTES {
                flush(&mut bundle)?;
                size = 0;
            }
        }
        flush(&mut bundle)?;
        heads.extend(o.heads);
    }
    Ok((blobs, heads))
}

async fn push(
    store: &mut Store,
    client: &RelayClient,
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    let peer = client.peer();
    // Read before the outbox: a write made meanwhile stays after the mark.
    let head = store.feed_head()?;
    let (blobs, heads) = seal_outbox(store, &peer)?;
    if !blobs.is_empty() {
        let sent = send_blobs(store, client, blobs, report).await?;
        store.mark_sent(&peer, &heads)?;
        report.sent += sent;
    }
    store.set_sent_seq(&peer, head)?;
    Ok(())
}

/// Sends blobs in requests of at most [`PUSH_BYTES`]; returns how many documents they hold.
async fn send_blobs(
    store: &Store,
    client: &RelayClient,
    blobs: Vec<NewBlob>,
    report: &mut SyncReport,
) -> Result<usize, SyncError> {
    let sent: usize = blobs.iter().map(|b| b.docs.len()).sum();
    for blobs in push_batches(blobs) {
        let n = blobs.len();
        match client.call(store, Body::Push { blobs }, report).await? {
            Response::Pushed { seqs } if seqs.len() == n => {}
            other => {
                return Err(SyncError::Protocol(format!(
                    "the relay answered a push with {other:?}"
                )));
            }
        }
    }
    Ok(sent)
}

/// Blobs in groups of at most about [`PUSH_BYTES`] sealed bytes, one push request each.
pub(crate) fn push_batches(blobs: Vec<NewBlob>) -> Vec<Vec<NewBlob>> {
    let mut batch = Vec::new();
    let mut size = 0;
    let mut batches = Vec::new();
    for b in blobs {
        size += b.sealed.len();
        batch.push(b);
        if size >= PUSH_BYTES {
            batches.push(std::mem::take(&mut batch));
            size = 0;
        }
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    batches
}

/// What [`compact`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// The sync that came first.
    pub synced: SyncReport,
    /// Documents uploaded whole.
    pub docs: usize,
    /// Snapshot blobs uploaded.
    pub blobs: usize,
    /// The relay sequence number they cover: older blobs of these documents are dropped.
    pub covers: u64,
    /// Request bytes of the upload.
    pub bytes_up: u64,
    /// Wall time.
    pub ms: u128,
}

/// A peer name no sync uses: its outbox is every document, whole.
const WHOLE: &str = "snapshot (every document, whole)";

/// Replaces on the relay the change blobs of every document of the scopes this device may
/// write by one sealed snapshot of it, so that a new device downloads each document once,
/// compact, not every change since the beginning. Syncs first: the snapshots then hold every
/// change the relay had up to this device's cursor, which they declare they cover (blobs after
/// it stay). The relay still sees only sealed bytes.
pub async fn compact(store: &mut Store, url: &str) -> Result<CompactReport, SyncError> {
    let started = Instant::now();
    let synced = sync(store, url).await?;
    let client = RelayClient::new(url)?;
    let covers = store.peer_cursor(&client.peer())?;
    let grant = store.identity()?.grant;
    let groups: Vec<linli_store::Outgoing> = store
        .outbox(WHOLE)?
        .into_iter()
        .filter(|o| grant.may_use(&o.scope))
        .collect();
    let (blobs, _) = seal_groups(store, groups, BlobKind::Snapshot, covers)?;
    let mut report = SyncReport::default();
    let count = blobs.len();
    let docs = send_blobs(store, &client, blobs, &mut report).await?;
    Ok(CompactReport {
        synced,
        docs,
        blobs: count,
        covers,
        bytes_up: report.bytes_up,
        ms: started.elapsed().as_millis(),
    })
}

/// Has the relay at `url` drop the blobs this device set aside from it (committee staff
/// only: the relay refuses others), then forgets them here; compacts the relay first when
/// some were set aside only in part. Returns how many the relay dropped (a blob another staff
/// device had dropped already is forgotten too).
pub async fn drop_set_aside(store: &mut Store, url: &str) -> Result<usize, SyncError> {
    staff_only(store)?;
    let client = RelayClient::new(url)?;
    let peer = client.peer();
    let mine: Vec<linli_store::SetAside> = store
        .set_aside()?
        .into_iter()
        .filter(|a| a.peer == peer)
        .collect();
    let seqs: Vec<u64> = mine.iter().map(|a| a.seq).collect();
    if seqs.is_empty() {
        return Ok(0);
    }
    // A blob set aside in part also carried documents that were merged here: the relay's copy
    // is compacted first (every document of this device's scopes uploaded whole), so that
    // dropping the blob loses nothing readable for devices that join later.
    if mine.iter().any(|a| !a.whole) {
        compact(store, url).await?;
    }
    let mut report = SyncReport::default();
    let dropped = match client
        .call(store, Body::Drop { seqs: seqs.clone() }, &mut report)
        .await?
    {
        Response::Dropped { seqs } => seqs.len(),
        other => {
            return Err(SyncError::Protocol(format!(
                "the relay answered a drop with {other:?}"
            )));
        }
    };
    store.forget_set_aside(&peer, &seqs)?;
    Ok(dropped)
}

/// Documents of pulled blobs, each with its blob's sequence number, and the blobs that did not
/// open.
pub type Opened = (Vec<(u64, Incoming)>, Vec<linli_store::SetAside>);

/// Refuses unless this device is committee staff's (only staff have the relay drop data).
fn staff_only(store: &Store) -> Result<(), SyncError> {
    let me = store.identity()?;
    if me.grant.role != linli_wire::Role::Staff {
        return Err(SyncError::NotAllowed(format!(
            "only committee staff may have the relay drop data; this device is {}",
            me.grant.describe()
        )));
    }
    Ok(())
}

/// Has the relay at `url` drop the blobs with these sequence numbers (committee staff only):
/// for a blob that lists documents of another scope it does not hold (the relay names it when
/// it refuses a push). Returns the blobs dropped.
pub async fn drop_blobs(store: &mut Store, url: &str, seqs: &[u64]) -> Result<Vec<u64>, SyncError> {
    staff_only(store)?;
    let client = RelayClient::new(url)?;
    let mut report = SyncReport::default();
    match client
        .call(
            store,
            Body::Drop {
                seqs: seqs.to_vec(),
            },
            &mut report,
        )
        .await?
    {
        Response::Dropped { seqs } => Ok(seqs),
        other => Err(SyncError::Protocol(format!(
            "the relay answered a drop with {other:?}"
        ))),
    }
}

/// Opens pulled blobs into documents to merge, each tagged with its blob's sequence number.
/// A blob that does not open (a wrong key, damaged or made-up bytes, a bundle that does not
/// decode) is set aside, with why; the others are opened. A scope this device holds no key for
/// is an error of the relay's (it hands out only the scopes a device may read).
pub fn open_blobs(store: &Store, peer: &str, blobs: &[Blob]) -> Result<Opened, SyncError> {
    let community = store.community_id()?.ok_or(StoreError::NoCommunity)?;
    let mut incoming = Vec::new();
    let mut aside = Vec::new();
    for b in blobs {
        let key = store.scope_key(&b.scope)?.ok_or_else(|| {
            SyncError::Protocol(format!(
                "received scope {} without holding its key",
                linli_wire::check_scope(&b.scope).map_or("(not a scope name)", |_| &b.scope)
            ))
        })?;
        match open_bundle(&key, &community, &b.scope, &b.sealed) {
            Ok(bundle) => incoming.extend(bundle.docs.into_iter().map(|d| {
                (
                    b.seq,
                    Incoming {
                        scope: b.scope.clone(),
                        id: d.id,
                        collection: d.collection,
                        bytes: d.bytes,
                    },
                )
            })),
            Err(e) => aside.push(linli_store::SetAside::new(peer, b, &e.to_string())),
        }
    }
    Ok((incoming, aside))
}

/// Merges pulled blobs with the cursor `next` in one transaction. A blob that does not open
/// is set aside whole; a document the merge refuses (a household in the community-wide scope,
/// a record that does not load, one kept in another scope) is left out and its blob set aside
/// in part, while everything else is merged: one bad blob never stops a sync, and nothing
/// readable is lost. Returns the merge and how many blobs were set aside.
pub(crate) fn merge_blobs(
    store: &mut Store,
    peer: &str,
    blobs: &[Blob],
    next: u64,
) -> Result<(linli_store::MergeReport, usize), SyncError> {
    let (incoming, aside) = open_blobs(store, peer, blobs)?;
    let community = store.community_id()?.ok_or(StoreError::NoCommunity)?;
    let mut keys: std::collections::HashMap<&str, Option<linli_wire::ScopeKey>> =
        std::collections::HashMap::new();
    for b in blobs {
        if !keys.contains_key(b.scope.as_str()) {
            keys.insert(b.scope.as_str(), store.scope_key(&b.scope)?);
        }
    }
    // A document's part in one blob, read again (only for a document the merge refused that
    // came in several blobs: rare).
    let reopen = |seq: u64, id: &str| {
        let b = blobs.iter().find(|b| b.seq == seq)?;
        let key = keys.get(b.scope.as_str())?.as_ref()?;
        let bundle = open_bundle(key, &community, &b.scope, &b.sealed).ok()?;
        let d = bundle.docs.into_iter().find(|d| d.id == id)?;
        Some(Incoming {
            scope: b.scope.clone(),
            id: d.id,
            collection: d.collection,
            bytes: d.bytes,
        })
    };
    let set_aside = |seq: u64, reason: &str, whole: bool| {
        blobs.iter().find(|b| b.seq == seq).map(|b| {
            if whole {
                linli_store::SetAside::new(peer, b, reason)
            } else {
                linli_store::SetAside::partly(peer, b, reason)
            }
        })
    };
    let (merged, aside) = store.merge_received(peer, incoming, next, aside, reopen, set_aside)?;
    Ok((merged, aside.len()))
}

async fn pull(
    store: &mut Store,
    client: &RelayClient,
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    let peer = client.peer();
    for _ in 0..MAX_PULLS {
        let since = store.peer_cursor(&peer)?;
        let body = Body::Pull {
            since,
            max_bytes: PULL_BYTES,
        };
        let response = client.call(store, body, report).await?;
        if !receive(store, &peer, since, response, report)? {
            return Ok(());
        }
    }
    Err(SyncError::Protocol(format!(
        "still more to pull after {MAX_PULLS} requests; run sync again"
    )))
}

/// Merges a pull's answer with its new cursor in one transaction; true if the relay has more.
pub(crate) fn receive(
    store: &mut Store,
    peer: &str,
    since: u64,
    response: Response,
    report: &mut SyncReport,
) -> Result<bool, SyncError> {
    let (blobs, next, more) = match response {
        Response::Pulled { blobs, next, more } => (blobs, next, more),
        other => {
            return Err(SyncError::Protocol(format!(
                "the relay answered a pull with {other:?}"
            )));
        }
    };
    if next < since {
        return Err(SyncError::Protocol(format!(
            "the relay's cursor went back from {since} to {next}"
        )));
    }
    let (merged, aside) = merge_blobs(store, peer, &blobs, next)?;
    report.created += merged.created;
    report.changed += merged.changed;
    report.unchanged += merged.unchanged;
    report.set_aside += aside;
    Ok(more)
}
