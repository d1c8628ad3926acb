//! Direct sync with nearby devices (same office Wi-Fi or a phone's hotspot) over iroh, without
//! the relay: a device may serve (it shows a ticket, as text or a QR code) and another syncs
//! with it by that ticket. Serving is switched on by the user, never by default.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use linli_sync::Store;
use linli_sync::p2p::Server;
use linli_sync::relay_client::SyncError;
use linli_wire::peer::Ticket;
use serde::Serialize;

use crate::background::SyncEvent;
use crate::{Api, ApiError};

/// What a direct sync did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerSync {
    /// The other device, in words (its role).
    pub peer: String,
    /// Documents sent.
    pub sent: usize,
    /// Documents received that were new or changed here.
    pub received: usize,
    /// Wall time (ms).
    pub ms: u64,
}

/// Runs `f` with a runtime of its own on a thread of its own: the caller may be a task of an
/// async runtime (a Tauri command), inside which another runtime cannot block.
pub(crate) fn on_own_runtime<T: Send>(
    f: impl FnOnce(&tokio::runtime::Runtime) -> Result<T, ApiError> + Send,
) -> Result<T, ApiError> {
    std::thread::scope(|scope| {
        scope.spawn(|| f(&runtime()?)).join().unwrap_or_else(|_| {
            Err(ApiError::Sync(SyncError::Protocol(
                "a sync thread panicked".into(),
            )))
        })
    })
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, ApiError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ApiError::Sync(SyncError::Protocol(format!("cannot start a runtime: {e}"))))
}

impl Api {
    /// Syncs once, directly, with the device that shows `ticket`.
    pub fn sync_peer(&self, ticket: &str) -> Result<PeerSync, ApiError> {
        let ticket = Ticket::decode(ticket.trim())
            .map_err(|e| ApiError::invalid("ticket", format!("cannot be read: {e}")))?;
        // A ticket of this machine's loopback (tests, two stores on one PC) is reached from
        // loopback; any other from every interface.
        let bind = if ticket.addrs.iter().all(|a| a.ip().is_loopback()) {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
        } else {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
        };
        let mut store = Store::open(&self.dir)?;
        let r =
            on_own_runtime(
                |rt| Ok(rt.block_on(linli_sync::p2p::sync(&mut store, &ticket, bind))?),
            )?;
        Ok(PeerSync {
            peer: r.peer,
            sent: r.sent,
            received: r.created + r.changed,
            ms: r.ms as u64,
        })
    }
}

/// This device serving nearby devices, until dropped.
#[derive(Debug)]
pub struct PeerServer {
    ticket: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl PeerServer {
    /// Serves the store of `api` on `bind` (`0.0.0.0:0`: every interface, any port) on a thread
    /// of its own; each session that brought documents is reported as [`SyncEvent::Changed`].
    pub fn start(
        api: &Arc<Api>,
        bind: SocketAddr,
        notify: impl Fn(SyncEvent) + Send + 'static,
    ) -> Result<PeerServer, ApiError> {
        let store = Store::open(&api.dir)?;
        let (ready_tx, ready_rx) = mpsc::channel::<Result<String, ApiError>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("linli-peers".into())
            .spawn(move || {
                let rt = match runtime() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    let (server, mut sessions) = match Server::start(store, bind).await {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.into()));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(server.ticket().encode()));
                    tokio::pin!(stop_rx);
                    loop {
                        tokio::select! {
                            session = sessions.recv() => match session {
                                Some(Ok(r)) => {
                                    tracing::info!(peer = %r.peer, sent = r.sent,
                                        received = r.created + r.changed, "peer session");
                                    if r.created + r.changed > 0 {
                                        notify(SyncEvent::Changed { received: r.created + r.changed });
                                    }
                                }
                                Some(Err(e)) => tracing::warn!(error = %e, "a peer session failed"),
                                None => break,
                            },
                            _ = &mut stop_rx => break,
                        }
                    }
                    server.shutdown().await;
                });
            })
            .map_err(|e| ApiError::Sync(SyncError::Protocol(format!("cannot start a thread: {e}"))))?;
        let ticket = ready_rx
            .recv()
            .map_err(|_| ApiError::Sync(SyncError::Protocol("the peer server stopped".into())))??;
        Ok(PeerServer {
            ticket,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The ticket other devices sync with.
    pub fn ticket(&self) -> &str {
        &self.ticket
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
