//! Direct sync with nearby devices (same office Wi-Fi or a phone's hotspot) over iroh, without
//! the relay: a device may serve (it shows a ticket, as text or a QR code) and another syncs
//! with it by that ticket. Serving is switched on by the user, never by default; it keeps its
//! port from one time to the next, so the ticket stays good. A device remembers the peers it
//! synced with, and the background loop syncs with them again whenever they answer.
//!
//! While it serves on a network (not on loopback), a device also announces itself on the local
//! network and looks for the community's other devices there ([`linli_sync::lan`]): devices
//! that both serve find each other and sync without a ticket, and a known device whose address
//! changed (a new hotspot) is found again.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use linli_store::{KnownPeer, Store};
use linli_sync::PeerReport;
use linli_sync::lan::{Lan, LanEvent, LanScope, LanTag, Nearby};
use linli_sync::p2p::Server;
use linli_sync::relay_client::SyncError;
use linli_wire::peer::Ticket;
use serde::Serialize;

use crate::background::SyncEvent;
use crate::rt::{on_own_runtime, runtime};
use crate::{Api, ApiError};

/// What a direct sync did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
pub struct PeerSync {
    /// The other device, in words (its role).
    pub peer: String,
    /// Its role.
    pub role: Option<crate::RoleCode>,
    /// A grid worker's grids.
    pub grids: Vec<String>,
    /// Documents sent.
    pub sent: usize,
    /// Documents received that were new or changed here.
    pub received: usize,
    /// Wall time (ms).
    pub ms: u64,
}

/// A device of this community announced on the local network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
pub struct NearbyPeer {
    /// Its device key (hex), as in [`crate::KnownPeer::key`].
    pub key: String,
    /// Where it serves.
    pub addrs: Vec<String>,
}

/// How long the background loop gives a known peer to answer.
const KNOWN_PEER_TIMEOUT: Duration = Duration::from_secs(5);

fn hex(key: &[u8]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

impl Api {
    /// Syncs once, directly, with the device that shows `ticket`, and remembers it.
    pub fn sync_peer(&self, ticket: &str) -> Result<PeerSync, ApiError> {
        let ticket = Ticket::decode(ticket.trim())
            .map_err(|e| ApiError::invalid("ticket", format!("cannot be read: {e}")))?;
        let r = self.sync_ticket(&ticket, None, None)?;
        Ok(PeerSync {
            peer: r.peer,
            role: r
                .role
                .and_then(linli_wire::Role::parse)
                .map(crate::RoleCode::from),
            grids: r.grids,
            sent: r.counts.sent,
            received: r.counts.created + r.counts.changed,
            ms: r.counts.ms as u64,
        })
    }

    /// Looks on the local network for at most `wait` for this community's devices that serve
    /// (bound to `bind`: a loopback address looks on loopback only), and syncs once with each
    /// found; what each sync did. None found is an error that says so.
    pub fn sync_nearby(
        &self,
        bind: SocketAddr,
        wait: Duration,
    ) -> Result<Vec<PeerReport>, ApiError> {
        let (tag, me) = {
            let store = self.store();
            if store.community_id()?.is_none() {
                return Err(ApiError::NoCommunity);
            }
            (LanTag::of(&store)?, store.identity()?.key.public())
        };
        let found = Lan::look(&tag, me, LanScope::of(bind), wait)?;
        if found.is_empty() {
            return Err(ApiError::invalid(
                "peers",
                format!(
                    "no device of this community announced itself on the local network within \
                     {:.1} s (is one serving? `linli p2p serve`); or give its ticket",
                    wait.as_secs_f64()
                ),
            ));
        }
        let mut reports = Vec::new();
        for n in found {
            reports.push(self.sync_ticket(&n.ticket(), None, Some(bind))?);
        }
        Ok(reports)
    }

    /// Syncs once with the device that shows `ticket`, from the local address `bind` (by
    /// default loopback for a ticket of this machine, every interface otherwise), and
    /// remembers it; what the sync did.
    pub fn sync_ticket_report(
        &self,
        ticket: &str,
        bind: Option<SocketAddr>,
    ) -> Result<PeerReport, ApiError> {
        let ticket = Ticket::decode(ticket.trim())
            .map_err(|e| ApiError::invalid("ticket", format!("cannot be read: {e}")))?;
        self.sync_ticket(&ticket, None, bind)
    }

    fn sync_ticket(
        &self,
        ticket: &Ticket,
        limit: Option<Duration>,
        bind: Option<SocketAddr>,
    ) -> Result<PeerReport, ApiError> {
        // A ticket of this machine's loopback (tests, two stores on one PC) is reached from
        // loopback; any other from every interface.
        let bind = bind.unwrap_or_else(|| {
            if ticket.addrs.iter().all(|a| a.ip().is_loopback()) {
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
            } else {
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
            }
        });
        let mut store = Store::open(&self.dir, &self.key)?;
        let key = hex(&ticket.key);
        let result = on_own_runtime(|rt| {
            let sync = linli_sync::p2p::sync(&mut store, ticket, bind);
            Ok(match limit {
                None => rt.block_on(sync)?,
                Some(limit) => rt
                    .block_on(async { tokio::time::timeout(limit, sync).await })
                    .map_err(|_| SyncError::PeerLink {
                        peer: key.clone(),
                        reason: format!("no answer within {} s", limit.as_secs()),
                    })??,
            })
        });
        match &result {
            Ok(r) => store.remember_peer(KnownPeer {
                key,
                ticket: ticket.encode(),
                label: r.peer.clone(),
                role: r.role.map(str::to_string),
                grids: r.grids.clone(),
                last_synced_ms: Some(self.now().0),
                last_error: None,
            })?,
            Err(e) => store.peer_failed(&key, &e.to_string())?,
        }
        result
    }

    /// The devices this one has synced with directly, most recent first.
    pub fn known_peers(&self) -> Result<Vec<crate::KnownPeer>, ApiError> {
        Ok(self
            .store()
            .known_peers()?
            .into_iter()
            .map(crate::KnownPeer::from)
            .collect())
    }

    /// Forgets a known peer (by its key); the background loop stops trying it.
    pub fn forget_peer(&self, key: &str) -> Result<bool, ApiError> {
        Ok(self.store().forget_peer(key)?)
    }

    /// Syncs with every known peer and every device of the community announced nearby that
    /// answers within a few seconds; returns how many documents arrived. A known peer announced
    /// nearby is dialled at its announced addresses first (they are the fresh ones). A peer that
    /// does not answer is normal (it is elsewhere): its error is recorded on it, not raised.
    pub fn sync_known_peers(&self) -> Result<usize, ApiError> {
        let mut nearby = self.nearby_lock().clone();
        let mut tickets = Vec::new();
        for peer in self.known_peers()? {
            let Ok(mut ticket) = Ticket::decode(&peer.ticket) else {
                continue;
            };
            if let Some(n) = nearby.remove(&peer.key) {
                let old = std::mem::replace(&mut ticket.addrs, n.addrs);
                for a in old {
                    if !ticket.addrs.contains(&a) {
                        ticket.addrs.push(a);
                    }
                }
            }
            tickets.push((peer.label, ticket));
        }
        tickets.extend(
            nearby
                .into_values()
                .map(|n| ("nearby device".to_string(), n.ticket())),
        );
        let mut received = 0;
        for (label, ticket) in tickets {
            match self.sync_ticket(&ticket, Some(KNOWN_PEER_TIMEOUT), None) {
                Ok(r) => received += r.counts.created + r.counts.changed,
                Err(e) => {
                    tracing::debug!(peer = %label, error = %e, "a peer did not answer")
                }
            }
        }
        Ok(received)
    }

    /// The community's devices announced on the local network (while this device serves).
    pub fn nearby_peers(&self) -> Vec<NearbyPeer> {
        self.nearby_lock()
            .iter()
            .map(|(key, n)| NearbyPeer {
                key: key.clone(),
                addrs: n.addrs.iter().map(SocketAddr::to_string).collect(),
            })
            .collect()
    }

    fn nearby_lock(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, Nearby>> {
        self.nearby.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the local network said: a device found (new, or at new addresses) wakes the
    /// background loop, which syncs with it at once.
    fn on_lan(&self, event: LanEvent) {
        match event {
            LanEvent::Found(n) => {
                let key = hex(&n.key);
                let new = self.nearby_lock().insert(key, n.clone()).as_ref() != Some(&n);
                if new {
                    tracing::info!("a device of this community is nearby");
                    if let Some(waker) = self
                        .waker
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .as_ref()
                    {
                        let _ = waker.send(crate::background::Wake::Now);
                    }
                }
            }
            LanEvent::Lost(key) => {
                self.nearby_lock().remove(&hex(&key));
            }
        }
    }

    /// Whether this device was left serving nearby devices (the app serves again at start).
    pub fn serving_wanted(&self) -> Result<bool, ApiError> {
        Ok(self.store().serving_wanted()?)
    }

    /// Records whether this device should serve nearby devices.
    pub fn set_serving_wanted(&self, on: bool) -> Result<(), ApiError> {
        Ok(self.store().set_serving_wanted(on)?)
    }

    /// Where to serve nearby devices: `default`'s address with the port used last time, so
    /// that the tickets other devices remember stay good.
    pub fn serving_bind(&self, default: SocketAddr) -> Result<SocketAddr, ApiError> {
        Ok(match self.store().serving_port()? {
            Some(port) if default.port() == 0 => SocketAddr::new(default.ip(), port),
            _ => default,
        })
    }
}

/// This device serving nearby devices, until dropped.
#[derive(Debug)]
pub struct PeerServer {
    ticket: String,
    /// Announcing and looking on the local network, while serving there.
    lan: Option<Lan>,
    api: std::sync::Weak<Api>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl PeerServer {
    /// Serves the store of `api` on `bind` (`0.0.0.0:0`: every interface, any port) on a thread
    /// of its own; each session that brought documents is reported as [`SyncEvent::Changed`].
    /// With `lan`, it also announces itself and looks for the community's devices on the local
    /// network (on loopback only when `bind` is a loopback address).
    pub fn start(
        api: &Arc<Api>,
        bind: SocketAddr,
        lan: bool,
        notify: impl Fn(SyncEvent) + Send + 'static,
    ) -> Result<PeerServer, ApiError> {
        PeerServer::serve(api, bind, lan, true, move |session| {
            if let Ok(r) = session {
                let received = r.counts.created + r.counts.changed;
                if received > 0 {
                    notify(SyncEvent::Changed { received });
                }
            }
        })
    }

    /// Serves as [`PeerServer::start`] does, reporting every session, done or failed, to
    /// `on_session` (the command line prints a line for each); `remember_port` keeps the port
    /// for the app's next start (the app's own serving), the command line's does not.
    pub fn serve(
        api: &Arc<Api>,
        bind: SocketAddr,
        lan: bool,
        remember_port: bool,
        on_session: impl Fn(Result<&PeerReport, &str>) + Send + 'static,
    ) -> Result<PeerServer, ApiError> {
        let store = Store::open(&api.dir, &api.key)?;
        let me = store.identity()?.key.public();
        // The community's tag on the local network (none before a community exists).
        let tag = match store.community_id()? {
            Some(_) => Some(LanTag::of(&store)?),
            None => None,
        };
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
                                    tracing::info!(peer = %r.peer, sent = r.counts.sent,
                                        received = r.counts.created + r.counts.changed, "peer session");
                                    on_session(Ok(&r));
                                }
                                Some(Err(e)) => {
                                    tracing::warn!(error = %e, "a peer session failed");
                                    on_session(Err(&e));
                                }
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
        if remember_port
            && let Some(port) = Ticket::decode(&ticket)
                .ok()
                .and_then(|t| t.addrs.first().map(SocketAddr::port))
        {
            api.store().set_serving_port(port)?;
        }
        let lan = match (lan, tag) {
            (true, Some(tag)) => {
                let parsed = Ticket::decode(&ticket)
                    .map_err(|e| ApiError::Sync(SyncError::Protocol(format!("own ticket: {e}"))))?;
                let weak = Arc::downgrade(api);
                let found = Lan::start(&tag, me, Some(&parsed), LanScope::of(bind), move |e| {
                    if let Some(api) = weak.upgrade() {
                        api.on_lan(e);
                    }
                });
                match found {
                    Ok(lan) => Some(lan),
                    // Serving by ticket still works without discovery.
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot look for devices on the local network");
                        None
                    }
                }
            }
            _ => None,
        };
        Ok(PeerServer {
            ticket,
            lan,
            api: Arc::downgrade(api),
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
        // Withdraw the announcement first: peers stop dialling a device that is going away.
        if self.lan.take().is_some()
            && let Some(api) = self.api.upgrade()
        {
            api.nearby_lock().clear();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
