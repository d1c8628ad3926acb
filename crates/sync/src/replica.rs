//! A peer [`Session`] run against a [`Store`]: the store answers the session's loads and
//! persists what it receives. Transports (the in-memory network of the tests, iroh) only carry
//! frames between two [`Replica`]s.

use std::collections::VecDeque;
use std::time::Instant;

use linli_wire::peer::PeerMsg;
use linli_wire::{Grant, PublicKey};

use crate::relay_client::SyncError;
use linli_proto::peer::{Input, Item, Me, Outcome, Output, Session, Side};
use linli_store::{Incoming, MergeReport, Store};

/// What a peer sync did, as the command line reports it: who the peer was, the reconciliation
/// rounds, and what went each way (counted as a relay sync counts it; bytes are frame bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerReport {
    /// The peer's role, in words.
    pub peer: String,
    /// The peer's role code (`staff`, `grid`, `owners`), once it showed its membership.
    pub role: Option<&'static str>,
    /// The grids of a grid worker's device.
    pub grids: Vec<String>,
    /// Reconciliation rounds.
    pub rounds: u32,
    /// Documents sent and received, bytes, round trips this side waited for, wall time.
    pub counts: crate::relay_client::SyncReport,
}

/// Refuses if `items` (this device's documents) include a scope `grant` may not use: they could
/// never be sent, so the user must hear about them before syncing.
pub(crate) fn check_scopes(items: &[Item], grant: &Grant) -> Result<(), SyncError> {
    let Some(scope) = items
        .iter()
        .map(|i| i.scope.as_str())
        .find(|s| !grant.may_use(s))
    else {
        return Ok(());
    };
    let ids: Vec<&str> = items
        .iter()
        .filter(|i| i.scope == scope)
        .map(|i| i.id.as_str())
        .collect();
    Err(crate::relay_client::not_allowed(
        grant,
        scope,
        &ids[..ids.len().min(3)],
        ids.len(),
    ))
}

/// The name a peer's sync state is kept under.
pub fn peer_name(key: &PublicKey) -> String {
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    format!("device {hex}")
}

/// One side of a peer sync over a store.
pub struct Replica<'a> {
    store: &'a mut Store,
    session: Session,
    peer: String,
    pending: VecDeque<Input>,
    merged: MergeReport,
    outcome: Option<Outcome>,
    bytes_up: u64,
    bytes_down: u64,
    started: Instant,
}

impl std::fmt::Debug for Replica<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("peer", &self.peer)
            .field("session", &self.session)
            .finish()
    }
}

impl<'a> Replica<'a> {
    /// A session of `store` with the device whose key the transport authenticated. Refuses
    /// if the store holds documents its role may not use. The initiator starts at once.
    pub fn new(
        store: &'a mut Store,
        side: Side,
        peer_key: PublicKey,
        now: u64,
    ) -> Result<Replica<'a>, SyncError> {
        let me = store.identity()?;
        let items = store.summary()?;
        check_scopes(&items, &me.grant)?;
        let session = Session::new(
            side,
            Me {
                membership: me.membership,
                grant: me.grant,
            },
            peer_key,
            items,
            now,
        );
        let mut pending = VecDeque::new();
        if side == Side::Initiator {
            pending.push_back(Input::Start);
        }
        Ok(Replica {
            store,
            session,
            peer: peer_name(&peer_key),
            pending,
            merged: MergeReport::default(),
            outcome: None,
            bytes_up: 0,
            bytes_down: 0,
            started: Instant::now(),
        })
    }

    /// Queues a frame from the peer.
    pub fn receive(&mut self, frame: Vec<u8>) {
        self.bytes_down += frame.len() as u64;
        self.pending.push_back(Input::Frame(frame));
    }

    /// Queues a clock tick.
    pub fn tick(&mut self) {
        self.pending.push_back(Input::Tick);
    }

    /// Runs queued work until there are frames to send (returned) or nothing is left (empty).
    /// Loads and merges happen here, against the store. A failure is returned once; the
    /// driver should send [`Session::refusal`] of it to the peer.
    pub fn poll(&mut self, now: u64) -> Result<Vec<Vec<u8>>, SyncError> {
        let mut frames = Vec::new();
        while frames.is_empty() {
            let Some(input) = self.pending.pop_front() else {
                break;
            };
            for output in self.session.handle(now, input)? {
                match output {
                    Output::Send(f) => {
                        self.bytes_up += f.len() as u64;
                        frames.push(f);
                    }
                    Output::Load(requests) => {
                        let docs = self.store.load_for_peer(&requests)?;
                        self.pending.push_back(Input::Loaded(docs));
                    }
                    Output::Persist(docs) => {
                        let incoming = docs
                            .into_iter()
                            .map(|d| Incoming {
                                scope: d.scope,
                                id: d.id,
                                collection: d.collection,
                                bytes: d.bytes,
                            })
                            .collect();
                        let r = self.store.merge(&self.peer, incoming, None)?;
                        self.merged.created += r.created;
                        self.merged.changed += r.changed;
                        self.merged.unchanged += r.unchanged;
                    }
                    Output::Finished(outcome) => self.outcome = Some(outcome),
                }
            }
        }
        Ok(frames)
    }

    /// Whether the session has finished.
    pub fn is_finished(&self) -> bool {
        self.outcome.is_some()
    }

    /// The report, once finished.
    pub fn report(&self) -> Option<PeerReport> {
        let o = self.outcome.as_ref()?;
        Some(PeerReport {
            peer: o
                .peer
                .as_ref()
                .map_or_else(|| "unknown".into(), Grant::describe),
            role: o.peer.as_ref().map(|g| g.role.code()),
            grids: o.peer.as_ref().map(|g| g.grids.clone()).unwrap_or_default(),
            rounds: o.rounds,
            counts: crate::relay_client::SyncReport {
                sent: o.sent,
                created: self.merged.created,
                changed: self.merged.changed,
                unchanged: self.merged.unchanged,
                bytes_up: self.bytes_up,
                bytes_down: self.bytes_down,
                round_trips: o.round_trips,
                ms: self.started.elapsed().as_millis(),
                set_aside: 0,
            },
        })
    }

    /// The frame telling the peer why this side stopped (for errors from [`Replica::poll`]).
    pub fn refusal(error: &SyncError) -> Option<Vec<u8>> {
        match error {
            SyncError::Peer(e) => Session::refusal(e),
            other => PeerMsg::Refused(other.to_string()).to_frame().ok(),
        }
    }
}
