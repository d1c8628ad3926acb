//! The peer-to-peer sync protocol as a state machine without I/O.
//!
//! A [`Session`] is driven by [`Input`]s (a frame from the peer, documents it asked to load, a
//! clock tick) and answers with [`Output`]s (send a frame, load documents, persist received
//! documents, finished). It never touches a socket, a file or a clock: `linli_sync::replica` runs
//! it against the store, the in-memory network of the tests shuttles its frames, and
//! `linli_sync::p2p` carries them over iroh.
//!
//! One session between an initiator (the device that connected) and a responder:
//!
//! 1. `Hello` each way: membership chains, checked against the community's root key and against
//!    the key the transport authenticated. Both sides then sync exactly the scopes both may use.
//! 2. `Reconcile` rounds (negentropy, range-based set reconciliation) over items
//!    `sha256(document id, heads)`: the initiator learns which items each side lacks, in a few
//!    round trips and a few kilobytes whatever the number of documents. A device with nothing
//!    yet skips this and asks for everything.
//! 3. `Want`: the responder's items the initiator lacks, and the initiator's heads of its own
//!    differing documents.
//! 4. `Docs` batches from the responder: whole documents the initiator lacks, and the changes
//!    after the initiator's heads where it knows them all (it is ahead). The first batch carries
//!    its heads of the initiator's differing documents; where the initiator has changes the
//!    responder does not know (it is ahead, or both changed the document), the responder sends
//!    the hashes of the changes it has instead, and defers its own changes.
//! 5. `Docs` batches from the initiator: for each of its differing documents, exactly the
//!    changes the responder lacks (after its heads, or outside its hashes).
//! 6. The responder persists them, sends the deferred changes (now after heads it knows), then
//!    `Done`.
//!
//! Every document thus travels as the changes the receiver lacks, never whole unless new to it.
//!
//! Every received batch is persisted whole (one transaction) before the next is read, so a cut
//! connection leaves whole batches behind and the next session reconciles what is left.

use std::collections::{HashMap, HashSet, VecDeque};

use linli_wire::peer::{PeerDoc, PeerMsg, VERSION};
use linli_wire::{Grant, Membership, PublicKey, WireError, short};
use negentropy::{Id, Negentropy, NegentropyStorageVector};
use sha2::{Digest, Sha256};

/// Documents per `Docs` batch.
pub const BATCH_DOCS: usize = 256;
/// Silence after which a session gives up.
pub const TIMEOUT_MS: u64 = 30_000;
/// Reconciliation rounds a session allows (negentropy needs about log16 of the set size).
const MAX_ROUNDS: u32 = 64;

/// One document as the reconciliation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Document id.
    pub id: String,
    /// Its scope.
    pub scope: String,
    /// Its heads, encoded (32 bytes each, sorted).
    pub heads: Vec<u8>,
}

impl Item {
    /// The item's reconciliation id: `sha256(id, 0, heads)`.
    pub fn hash(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.id.as_bytes());
        h.update([0u8]);
        h.update(&self.heads);
        h.finalize().into()
    }
}

/// A document to load for the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadRequest {
    /// Document id.
    pub id: String,
    /// Heads the peer has (encoded). Empty: the whole document. If this device does not know
    /// them all, answer [`Loaded::Unknown`].
    pub since: Vec<u8>,
    /// Instead of `since`: the hashes of every change the peer has; send the others.
    pub except: Option<Vec<[u8; 32]>>,
}

/// The answer to one [`LoadRequest`] (none if there is nothing to send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// The document, or the changes the peer lacks.
    Doc(PeerDoc),
    /// The peer's heads include changes this device does not have: here are the hashes of
    /// every change it does have.
    Unknown {
        /// Document id.
        id: String,
        /// Hashes of its changes.
        hashes: Vec<[u8; 32]>,
    },
}

/// Who this device is in the session.
#[derive(Debug, Clone)]
pub struct Me {
    /// Its membership chain.
    pub membership: Membership,
    /// Its verified grant.
    pub grant: Grant,
}

/// Which end of the connection this session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The device that connected: it runs the reconciliation.
    Initiator,
    /// The device that accepted.
    Responder,
}

/// What drives a session.
#[derive(Debug, Clone)]
pub enum Input {
    /// Begin (the initiator sends its `Hello`).
    Start,
    /// A frame from the peer.
    Frame(Vec<u8>),
    /// The answers to the last [`Output::Load`] (fewer if some had nothing to send).
    Loaded(Vec<Loaded>),
    /// Time passes (the session fails after [`TIMEOUT_MS`] of silence).
    Tick,
}

/// What a session asks its driver to do, in order.
#[derive(Debug, Clone)]
pub enum Output {
    /// Send this frame to the peer.
    Send(Vec<u8>),
    /// Load these documents and answer with [`Input::Loaded`].
    Load(Vec<LoadRequest>),
    /// Store these documents from the peer, all or none, before anything else.
    Persist(Vec<PeerDoc>),
    /// The session is over.
    Finished(Outcome),
}

/// What a finished session did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Documents sent.
    pub sent: usize,
    /// Documents received.
    pub received: usize,
    /// Round trips this side waited for.
    pub round_trips: u32,
    /// Reconciliation rounds.
    pub rounds: u32,
    /// The peer's grant.
    pub peer: Option<Grant>,
}

/// Why a session stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// A frame did not decode, or a membership did not verify.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The peer is not a member of this community.
    #[error("the peer is not a member of this community: {0}")]
    NotMember(String),
    /// The peer sent a document of a scope it may not write or this device may not hold.
    #[error(
        "the peer ({peer}) sent document {doc} of scope {scope}, which {who} may not use; \
         nothing from that batch was stored"
    )]
    OutOfScope {
        /// The peer's grant, in words.
        peer: String,
        /// The document.
        doc: String,
        /// Its scope.
        scope: String,
        /// `it` or `this device`.
        who: &'static str,
    },
    /// The peer stopped the session.
    #[error("the peer refused: {0}")]
    Refused(String),
    /// A message that does not fit the protocol at this point.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The peer fell silent.
    #[error("the peer sent nothing for {0} ms")]
    Timeout(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    New,
    AwaitHello,
    Reconciling,
    AwaitWant,
    AwaitDocs,
    Sending,
    AwaitDone,
    Finished,
}

/// One sync session with one peer. See the module docs for the exchange.
pub struct Session {
    side: Side,
    me: Me,
    peer_key: PublicKey,
    items: Vec<Item>,
    /// Indexes of the items both sides may use.
    shared: Vec<usize>,
    by_hash: HashMap<[u8; 32], usize>,
    by_id: HashMap<String, usize>,
    neg: Option<Negentropy<'static, NegentropyStorageVector>>,
    have: Vec<Id>,
    need: Vec<Id>,
    their_heads: Vec<(String, Vec<u8>)>,
    /// The initiator's heads of its differing documents (responder).
    mine: HashMap<String, Vec<u8>>,
    /// Change hashes the responder has of documents where the initiator is ahead (initiator).
    their_hashes: HashMap<String, Vec<[u8; 32]>>,
    /// Documents whose changes the responder sends after the initiator's (responder).
    deferred: Vec<String>,
    /// Whether the responder is sending its deferred changes.
    closing: bool,
    queue: VecDeque<LoadRequest>,
    first_batch: bool,
    state: State,
    last_heard: u64,
    outcome: Outcome,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("side", &self.side)
            .field("state", &self.state)
            .field("items", &self.items.len())
            .field("outcome", &self.outcome)
            .finish()
    }
}

fn frame(msg: &PeerMsg) -> Result<Output, PeerError> {
    Ok(Output::Send(msg.to_frame()?))
}

fn neg_err(e: negentropy::Error) -> PeerError {
    PeerError::Protocol(format!("reconciliation: {e}"))
}

impl Session {
    /// A session for `me`, whose documents are `items`, with the peer whose key the transport
    /// authenticated; `now` is the driver's clock in ms.
    pub fn new(side: Side, me: Me, peer_key: PublicKey, items: Vec<Item>, now: u64) -> Session {
        Session {
            side,
            me,
            peer_key,
            items,
            shared: Vec::new(),
            by_hash: HashMap::new(),
            by_id: HashMap::new(),
            neg: None,
            have: Vec::new(),
            need: Vec::new(),
            their_heads: Vec::new(),
            mine: HashMap::new(),
            their_hashes: HashMap::new(),
            deferred: Vec::new(),
            closing: false,
            queue: VecDeque::new(),
            first_batch: true,
            state: State::New,
            last_heard: now,
            outcome: Outcome::default(),
        }
    }

    /// Whether the session has finished.
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// The frame that tells the peer why this side stops.
    pub fn refusal(error: &PeerError) -> Option<Vec<u8>> {
        match error {
            PeerError::Refused(_) => None,
            e => PeerMsg::Refused(e.to_string()).to_frame().ok(),
        }
    }

    /// Feeds one input at time `now` (ms) and returns what to do, in order.
    pub fn handle(&mut self, now: u64, input: Input) -> Result<Vec<Output>, PeerError> {
        let mut out = Vec::new();
        match input {
            Input::Start => {
                if self.side != Side::Initiator || self.state != State::New {
                    return Err(PeerError::Protocol("Start is for a new initiator".into()));
                }
                self.last_heard = now;
                out.push(self.hello()?);
                self.outcome.round_trips += 1;
                self.state = State::AwaitHello;
            }
            Input::Tick => {
                let silent = now.saturating_sub(self.last_heard);
                if self.state != State::Finished && silent > TIMEOUT_MS {
                    return Err(PeerError::Timeout(silent));
                }
            }
            Input::Loaded(docs) => {
                if self.state != State::Sending {
                    return Err(PeerError::Protocol("Loaded while not sending".into()));
                }
                self.send_batch(docs, &mut out)?;
            }
            Input::Frame(bytes) => {
                self.last_heard = now;
                let msg = PeerMsg::from_frame(&bytes)?;
                self.receive(msg, &mut out)?;
            }
        }
        Ok(out)
    }

    fn hello(&self) -> Result<Output, PeerError> {
        frame(&PeerMsg::Hello {
            version: VERSION,
            membership: self.me.membership.clone(),
        })
    }

    fn unexpected(&self, msg: &PeerMsg) -> PeerError {
        PeerError::Protocol(format!(
            "unexpected {} while {:?} ({:?})",
            msg.name(),
            self.state,
            self.side
        ))
    }

    fn receive(&mut self, msg: PeerMsg, out: &mut Vec<Output>) -> Result<(), PeerError> {
        if let PeerMsg::Refused(reason) = msg {
            return Err(PeerError::Refused(reason));
        }
        match (self.side, self.state, msg) {
            (
                Side::Responder,
                State::New,
                PeerMsg::Hello {
                    version,
                    membership,
                },
            ) => {
                self.admit(version, &membership)?;
                out.push(self.hello()?);
                self.state = State::AwaitWant;
                // The initiator may go straight to `Want` (it holds nothing yet).
                let storage = self.storage()?;
                self.neg = Some(Negentropy::owned(storage, 0).map_err(neg_err)?);
            }
            (
                Side::Initiator,
                State::AwaitHello,
                PeerMsg::Hello {
                    version,
                    membership,
                },
            ) => {
                self.admit(version, &membership)?;
                if self.shared.is_empty() {
                    // Nothing here yet: ask for everything, skip reconciliation.
                    out.push(frame(&PeerMsg::Want {
                        need: Vec::new(),
                        mine: Vec::new(),
                    })?);
                    self.outcome.round_trips += 1;
                    self.state = State::AwaitDocs;
                } else {
                    let storage = self.storage()?;
                    let mut neg = Negentropy::owned(storage, 0).map_err(neg_err)?;
                    let first = neg.initiate().map_err(neg_err)?;
                    self.neg = Some(neg);
                    out.push(frame(&PeerMsg::Reconcile(first))?);
                    self.outcome.round_trips += 1;
                    self.outcome.rounds += 1;
                    self.state = State::Reconciling;
                }
            }
            (Side::Responder, State::AwaitWant, PeerMsg::Reconcile(query)) => {
                let neg = self
                    .neg
                    .as_mut()
                    .ok_or_else(|| PeerError::Protocol("no reconciliation state".into()))?;
                self.outcome.rounds += 1;
                if self.outcome.rounds > MAX_ROUNDS {
                    return Err(PeerError::Protocol(format!(
                        "more than {MAX_ROUNDS} reconciliation rounds"
                    )));
                }
                let reply = neg.reconcile(&query).map_err(neg_err)?;
                out.push(frame(&PeerMsg::Reconcile(reply))?);
            }
            (Side::Initiator, State::Reconciling, PeerMsg::Reconcile(reply)) => {
                let neg = self
                    .neg
                    .as_mut()
                    .ok_or_else(|| PeerError::Protocol("no reconciliation state".into()))?;
                match neg
                    .reconcile_with_ids(&reply, &mut self.have, &mut self.need)
                    .map_err(neg_err)?
                {
                    Some(next) => {
                        self.outcome.rounds += 1;
                        if self.outcome.rounds > MAX_ROUNDS {
                            return Err(PeerError::Protocol(format!(
                                "more than {MAX_ROUNDS} reconciliation rounds"
                            )));
                        }
                        out.push(frame(&PeerMsg::Reconcile(next))?);
                        self.outcome.round_trips += 1;
                    }
                    None => self.reconciled(out)?,
                }
            }
            (Side::Responder, State::AwaitWant, PeerMsg::Want { need, mine }) => {
                self.neg = None;
                self.answer_want(need, mine, out)?;
            }
            (Side::Responder, State::AwaitWant, PeerMsg::Done) => {
                // Both sides already had the same documents.
                self.finish(out);
            }
            (
                Side::Initiator,
                State::AwaitDocs,
                PeerMsg::Docs {
                    docs,
                    heads,
                    hashes,
                    last,
                },
            ) => {
                if self.first_batch {
                    self.their_heads = heads;
                    self.first_batch = false;
                }
                self.their_hashes.extend(hashes);
                self.accept_docs(docs, out)?;
                if last {
                    self.send_have(out)?;
                }
            }
            (Side::Responder, State::AwaitDocs, PeerMsg::Docs { docs, last, .. }) => {
                self.accept_docs(docs, out)?;
                if last {
                    self.send_deferred(out)?;
                }
            }
            (Side::Initiator, State::AwaitDone, PeerMsg::Docs { docs, .. }) => {
                self.accept_docs(docs, out)?;
            }
            (Side::Initiator, State::AwaitDone, PeerMsg::Done) => self.finish(out),
            (_, _, msg) => return Err(self.unexpected(&msg)),
        }
        Ok(())
    }

    /// Checks the peer's `Hello` and settles the shared scopes.
    fn admit(&mut self, version: u32, membership: &Membership) -> Result<(), PeerError> {
        if version != VERSION {
            return Err(PeerError::Protocol(format!(
                "the peer speaks version {version}, this device {VERSION}"
            )));
        }
        let mine = &self.me.membership;
        if membership.community != mine.community {
            return Err(PeerError::NotMember(format!(
                "it belongs to community {}",
                membership.community
            )));
        }
        let grant = membership
            .verify(&mine.root)
            .map_err(|e| PeerError::NotMember(e.to_string()))?;
        if membership.device() != self.peer_key {
            return Err(PeerError::NotMember(format!(
                "its membership is for device {}, but the connection is from device {}",
                short(&membership.device()),
                short(&self.peer_key)
            )));
        }
        self.shared = (0..self.items.len())
            .filter(|&i| {
                let s = &self.items[i].scope;
                grant.may_use(s) && self.me.grant.may_use(s)
            })
            .collect();
        for &i in &self.shared {
            self.by_hash.insert(self.items[i].hash(), i);
            self.by_id.insert(self.items[i].id.clone(), i);
        }
        self.outcome.peer = Some(grant);
        Ok(())
    }

    fn storage(&self) -> Result<NegentropyStorageVector, PeerError> {
        let mut storage = NegentropyStorageVector::with_capacity(self.shared.len());
        for hash in self.by_hash.keys() {
            storage
                .insert(0, Id::from_byte_array(*hash))
                .map_err(neg_err)?;
        }
        storage.seal().map_err(neg_err)?;
        Ok(storage)
    }

    /// Reconciliation is over: say what this side lacks and what it has that differs.
    fn reconciled(&mut self, out: &mut Vec<Output>) -> Result<(), PeerError> {
        self.neg = None;
        if self.have.is_empty() && self.need.is_empty() {
            out.push(frame(&PeerMsg::Done)?);
            self.finish(out);
            return Ok(());
        }
        let need: Vec<[u8; 32]> = self.need.iter().map(|id| id.to_bytes()).collect();
        let mut mine = Vec::with_capacity(self.have.len());
        for id in &self.have {
            let i = *self.by_hash.get(id.as_bytes()).ok_or_else(|| {
                PeerError::Protocol("reconciliation named an item this side never had".into())
            })?;
            mine.push((self.items[i].id.clone(), self.items[i].heads.clone()));
        }
        out.push(frame(&PeerMsg::Want { need, mine })?);
        self.outcome.round_trips += 1;
        self.state = State::AwaitDocs;
        Ok(())
    }

    fn answer_want(
        &mut self,
        need: Vec<[u8; 32]>,
        mine: Vec<(String, Vec<u8>)>,
        out: &mut Vec<Output>,
    ) -> Result<(), PeerError> {
        let theirs: HashMap<&str, &Vec<u8>> = mine.iter().map(|(i, h)| (i.as_str(), h)).collect();
        let wanted: Vec<usize> = if need.is_empty() && mine.is_empty() {
            // A device with nothing yet: everything shared.
            self.shared.clone()
        } else {
            need.iter()
                .map(|h| {
                    self.by_hash.get(h).copied().ok_or_else(|| {
                        PeerError::Protocol("asked for an item this side does not have".into())
                    })
                })
                .collect::<Result<_, _>>()?
        };
        for i in wanted {
            let item = &self.items[i];
            let since = theirs.get(item.id.as_str()).map(|h| (*h).clone());
            self.queue.push_back(LoadRequest {
                id: item.id.clone(),
                since: since.unwrap_or_default(),
                except: None,
            });
        }
        // Our heads of their differing documents, so they send only what we lack.
        self.their_heads = mine
            .iter()
            .filter_map(|(id, _)| {
                self.by_id
                    .get(id)
                    .map(|&i| (id.clone(), self.items[i].heads.clone()))
            })
            .collect();
        self.first_batch = true;
        self.mine = mine.into_iter().collect();
        self.state = State::Sending;
        self.next_load(out)
    }

    /// The responder's last turn: its own changes to documents where the initiator was ahead
    /// or both changed, now after heads it knows; then `Done`.
    fn send_deferred(&mut self, out: &mut Vec<Output>) -> Result<(), PeerError> {
        self.closing = true;
        for id in std::mem::take(&mut self.deferred) {
            let since = self.mine.get(&id).cloned().unwrap_or_default();
            self.queue.push_back(LoadRequest {
                id,
                since,
                except: None,
            });
        }
        self.state = State::Sending;
        self.next_load(out)
    }

    /// The initiator's turn: its differing documents, after the responder's heads.
    fn send_have(&mut self, out: &mut Vec<Output>) -> Result<(), PeerError> {
        let theirs: HashMap<String, Vec<u8>> =
            std::mem::take(&mut self.their_heads).into_iter().collect();
        for id in std::mem::take(&mut self.have) {
            let i = *self.by_hash.get(id.as_bytes()).ok_or_else(|| {
                PeerError::Protocol("reconciliation named an item this side never had".into())
            })?;
            let doc = &self.items[i].id;
            self.queue.push_back(LoadRequest {
                id: doc.clone(),
                since: theirs.get(doc).cloned().unwrap_or_default(),
                except: self.their_hashes.remove(doc),
            });
        }
        self.state = State::Sending;
        self.next_load(out)
    }

    fn next_load(&mut self, out: &mut Vec<Output>) -> Result<(), PeerError> {
        if self.queue.is_empty() {
            return self.send_batch(Vec::new(), out);
        }
        let n = self.queue.len().min(BATCH_DOCS);
        out.push(Output::Load(self.queue.drain(..n).collect()));
        Ok(())
    }

    fn send_batch(&mut self, loaded: Vec<Loaded>, out: &mut Vec<Output>) -> Result<(), PeerError> {
        let peer =
            self.outcome.peer.as_ref().ok_or_else(|| {
                PeerError::Protocol("sending before the peer said who it is".into())
            })?;
        let mut docs = Vec::with_capacity(loaded.len());
        let mut hashes = Vec::new();
        for l in loaded {
            match l {
                // A document's scope may have changed since the summary: never send one the
                // peer may not see.
                Loaded::Doc(d) if peer.may_use(&d.scope) && self.me.grant.may_use(&d.scope) => {
                    docs.push(d)
                }
                Loaded::Doc(_) => {}
                Loaded::Unknown { id, hashes: h } => {
                    if self.side != Side::Responder || self.closing {
                        return Err(PeerError::Protocol(format!(
                            "the peer's heads of {id} are unknown here at a point where they must be known"
                        )));
                    }
                    self.deferred.push(id.clone());
                    hashes.push((id, h));
                }
            }
        }
        let last = self.queue.is_empty();
        self.outcome.sent += docs.len();
        let heads = if self.side == Side::Responder && self.first_batch {
            self.first_batch = false;
            std::mem::take(&mut self.their_heads)
        } else {
            Vec::new()
        };
        if !(self.closing && docs.is_empty()) {
            out.push(frame(&PeerMsg::Docs {
                docs,
                heads,
                hashes,
                last,
            })?);
        }
        if !last {
            return self.next_load(out);
        }
        match (self.side, self.closing) {
            (Side::Responder, false) => self.state = State::AwaitDocs,
            (Side::Responder, true) => {
                out.push(frame(&PeerMsg::Done)?);
                self.finish(out);
            }
            (Side::Initiator, _) => {
                self.outcome.round_trips += 1;
                self.state = State::AwaitDone;
            }
        }
        Ok(())
    }

    fn accept_docs(&mut self, docs: Vec<PeerDoc>, out: &mut Vec<Output>) -> Result<(), PeerError> {
        let peer = self.outcome.peer.as_ref().ok_or_else(|| {
            PeerError::Protocol("documents before the peer said who it is".into())
        })?;
        let mut seen = HashSet::new();
        for d in &docs {
            let who = if !peer.may_use(&d.scope) {
                "it"
            } else if !self.me.grant.may_use(&d.scope) {
                "this device"
            } else {
                ""
            };
            if !who.is_empty() {
                return Err(PeerError::OutOfScope {
                    peer: peer.describe(),
                    doc: d.id.clone(),
                    scope: d.scope.clone(),
                    who,
                });
            }
            seen.insert(d.id.as_str());
        }
        self.outcome.received += seen.len();
        if !docs.is_empty() {
            out.push(Output::Persist(docs));
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Output>) {
        self.state = State::Finished;
        out.push(Output::Finished(self.outcome.clone()));
    }
}
