//! Peer-to-peer sync over iroh: the [`crate::peer`] protocol's frames on one QUIC stream.
//!
//! A device's iroh key is its device key, so the connection itself proves which device is on
//! the other end; the session then checks that device's membership chain. The endpoint is
//! built from iroh's minimal preset: no relay servers, no address lookup (discovery), no port
//! mapping (iroh's default features are off); peers meet by the addresses in a [`Ticket`].
//!
//! Frames are length-prefixed (4 bytes, big-endian). Each side persists every received batch
//! before reading the next, so a connection cut at any point loses nothing.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use iroh::endpoint::{Connection, RecvStream, SendStream, presets};
use iroh::protocol::{AcceptError, ProtocolHandler, Router};
use iroh::{Endpoint, EndpointAddr, RelayMode, SecretKey};
use linli_wire::peer::{ALPN, MAX_WIRE_FRAME, Ticket};
use tokio::sync::mpsc;

use crate::relay_client::SyncError;
use crate::{PeerReport, Replica};
use linli_proto::peer::{Side, TIMEOUT_MS};
use linli_store::Store;

/// How long to wait to connect to a peer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the responder waits for the initiator to close after `Done`.
const LINGER: Duration = Duration::from_secs(5);

fn unreachable(reason: impl std::fmt::Display) -> SyncError {
    SyncError::PeerLink {
        peer: "device".into(),
        reason: reason.to_string(),
    }
}

/// An endpoint with this store's device key, bound to `bind`.
async fn endpoint(store: &Store, bind: SocketAddr, accept: bool) -> Result<Endpoint, SyncError> {
    let key = store.device_key()?;
    let mut builder = Endpoint::builder(presets::Minimal)
        .secret_key(SecretKey::from_bytes(&key.to_bytes()))
        .relay_mode(RelayMode::Disabled)
        .clear_address_lookup()
        .clear_ip_transports()
        .bind_addr(bind)
        .map_err(unreachable)?;
    if accept {
        builder = builder.alpns(vec![ALPN.to_vec()]);
    }
    builder.bind().await.map_err(unreachable)
}

async fn write_frame(send: &mut SendStream, frame: &[u8]) -> Result<(), SyncError> {
    let len = u32::try_from(frame.len())
        .map_err(|_| SyncError::Protocol(format!("frame of {} bytes", frame.len())))?;
    send.write_all(&len.to_be_bytes())
        .await
        .map_err(unreachable)?;
    send.write_all(frame).await.map_err(unreachable)
}

async fn read_frame(recv: &mut RecvStream) -> Result<Vec<u8>, SyncError> {
    let mut len = [0u8; 4];
    recv.read_exact(&mut len).await.map_err(unreachable)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_WIRE_FRAME {
        return Err(SyncError::Protocol(format!(
            "the peer announced a frame of {len} bytes (at most {MAX_WIRE_FRAME})"
        )));
    }
    let mut frame = vec![0u8; len];
    recv.read_exact(&mut frame).await.map_err(unreachable)?;
    Ok(frame)
}

/// Drives one session over a stream until it finishes or fails; a failure is told to the peer.
async fn run(
    replica: &mut Replica<'_>,
    send: &mut SendStream,
    recv: &mut RecvStream,
) -> Result<(), SyncError> {
    let started = Instant::now();
    let now = || started.elapsed().as_millis() as u64;
    loop {
        let frames = match replica.poll(now()) {
            Ok(f) => f,
            Err(e) => {
                if let Some(f) = Replica::refusal(&e) {
                    let _ = write_frame(send, &f).await;
                    let _ = send.finish();
                }
                return Err(e);
            }
        };
        for f in &frames {
            write_frame(send, f).await?;
        }
        if replica.is_finished() {
            let _ = send.finish();
            return Ok(());
        }
        if frames.is_empty() {
            let wait = Duration::from_millis(TIMEOUT_MS);
            match tokio::time::timeout(wait, read_frame(recv)).await {
                Ok(frame) => replica.receive(frame?),
                Err(_) => replica.tick(),
            }
        }
    }
}

/// Counts the UDP bytes of a connection into a report.
fn count_socket(report: &mut PeerReport, conn: &Connection) {
    let stats = conn.stats();
    report.counts.bytes_up = stats.udp_tx.bytes;
    report.counts.bytes_down = stats.udp_rx.bytes;
}

fn where_(ticket: &Ticket) -> String {
    let addrs: Vec<String> = ticket.addrs.iter().map(|a| a.to_string()).collect();
    format!("{} at {}", linli_wire::short(&ticket.key), addrs.join(", "))
}

/// Syncs `store` once with the peer of `ticket`; binds to `bind` (port 0: any).
pub async fn sync(
    store: &mut Store,
    ticket: &Ticket,
    bind: SocketAddr,
) -> Result<PeerReport, SyncError> {
    let started = Instant::now();
    let ep = endpoint(store, bind, false).await?;
    let peer_id = iroh::PublicKey::from_bytes(&ticket.key)
        .map_err(|e| unreachable(format!("the ticket's key is not valid: {e}")))?;
    let addr = ticket
        .addrs
        .iter()
        .fold(EndpointAddr::new(peer_id), |a, s| a.with_ip_addr(*s));
    let conn = match tokio::time::timeout(CONNECT_TIMEOUT, ep.connect(addr, ALPN)).await {
        Ok(Ok(conn)) => conn,
        failed => {
            ep.close().await;
            let reason = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => format!("no answer in {} s", CONNECT_TIMEOUT.as_secs()),
            };
            return Err(SyncError::PeerLink {
                peer: where_(ticket),
                reason,
            });
        }
    };
    let result = async {
        let (mut send, mut recv) = conn.open_bi().await.map_err(unreachable)?;
        let mut replica = Replica::new(store, Side::Initiator, ticket.key, 0)?;
        run(&mut replica, &mut send, &mut recv).await?;
        // Close only once the responder has read everything and ended its side.
        let _ = tokio::time::timeout(LINGER, recv.read_to_end(1024)).await;
        replica
            .report()
            .ok_or_else(|| SyncError::Protocol("finished without a report".into()))
    }
    .await;
    let mut report = match result {
        Ok(r) => r,
        Err(e) => {
            conn.close(1u32.into(), b"error");
            ep.close().await;
            return Err(e);
        }
    };
    count_socket(&mut report, &conn);
    conn.close(0u32.into(), b"done");
    ep.close().await;
    report.counts.ms = started.elapsed().as_millis();
    Ok(report)
}

/// What a serving device reports after each session.
pub type SessionResult = Result<PeerReport, String>;

#[derive(Debug, Clone)]
struct Handler {
    /// The store's directory: each session opens a handle of its own, so that sessions with
    /// several devices run at once (SQLite in WAL mode serializes their writes).
    dir: std::path::PathBuf,
    key: linli_store::DbKey,
    events: mpsc::UnboundedSender<SessionResult>,
}

impl Handler {
    async fn session(&self, conn: &Connection) -> Result<PeerReport, SyncError> {
        let peer = *conn.remote_id().as_bytes();
        let (mut send, mut recv) = tokio::time::timeout(CONNECT_TIMEOUT, conn.accept_bi())
            .await
            .map_err(|_| unreachable("the peer opened no stream"))?
            .map_err(unreachable)?;
        let result = {
            let mut store = Store::open(&self.dir, &self.key)?;
            match Replica::new(&mut store, Side::Responder, peer, 0) {
                Ok(mut replica) => run(&mut replica, &mut send, &mut recv)
                    .await
                    .and_then(|()| {
                        replica
                            .report()
                            .ok_or_else(|| SyncError::Protocol("finished without a report".into()))
                    }),
                Err(e) => Err(e),
            }
        };
        // Let the initiator read the last frame (`Done`, or why this side refused) and close.
        let _ = tokio::time::timeout(LINGER, conn.closed()).await;
        let mut report = result?;
        count_socket(&mut report, conn);
        Ok(report)
    }
}

impl ProtocolHandler for Handler {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        let result = self.session(&conn).await;
        let _ = self.events.send(result.map_err(|e| e.to_string()));
        Ok(())
    }
}

/// A device serving peer sync until shut down.
#[derive(Debug)]
pub struct Server {
    router: Router,
    ticket: Ticket,
}

impl Server {
    /// Serves `store` on `bind` (port 0: any). Each finished session is reported on the
    /// returned channel.
    pub async fn start(
        store: Store,
        bind: SocketAddr,
    ) -> Result<(Server, mpsc::UnboundedReceiver<SessionResult>), SyncError> {
        let key = store.identity()?.key.public();
        let ep = endpoint(&store, bind, true).await?;
        let mut addrs: Vec<SocketAddr> = ep
            .bound_sockets()
            .into_iter()
            .filter(|a| !a.ip().is_unspecified())
            .collect();
        // Bound to every interface: offer the addresses iroh finds on this machine (it lists
        // them shortly after binding).
        for _ in 0..30 {
            if !addrs.is_empty() {
                break;
            }
            addrs = ep.addr().ip_addrs().copied().collect();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if addrs.is_empty() {
            return Err(unreachable(format!(
                "no address to offer in a ticket (bound to {bind}); pass a specific --bind address"
            )));
        }
        let (events, rx) = mpsc::unbounded_channel();
        let dir = store
            .path()
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        let handler = Handler {
            dir,
            key: store.db_key().clone(),
            events,
        };
        let router = Router::builder(ep).accept(ALPN, handler).spawn();
        Ok((
            Server {
                router,
                ticket: Ticket { key, addrs },
            },
            rx,
        ))
    }

    /// The ticket peers connect with.
    pub fn ticket(&self) -> &Ticket {
        &self.ticket
    }

    /// Stops serving.
    pub async fn shutdown(self) {
        let _ = self.router.shutdown().await;
    }
}
