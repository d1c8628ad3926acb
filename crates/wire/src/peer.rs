//! The peer-to-peer protocol's messages (ALPN [`ALPN`]) and the ticket a serving device shows.
//!
//! Two devices of a community meet over an authenticated, encrypted connection (iroh: QUIC with
//! each device's key as its identity), so documents travel inside [`PeerMsg::Docs`] without a
//! second layer of sealing. Every message is one frame: postcard, then zstd.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::WireError;
use crate::cert::Membership;
use crate::crypto::PublicKey;

/// Our application protocol on iroh.
pub const ALPN: &[u8] = b"linli/sync/1";
/// The protocol's version, sent in [`PeerMsg::Hello`].
pub const VERSION: u32 = 1;
/// The largest frame either side accepts (decompressed).
pub const MAX_FRAME: usize = 64 * 1024 * 1024;
/// The largest frame either side accepts on the wire (compressed).
pub const MAX_WIRE_FRAME: usize = 32 * 1024 * 1024;

/// One document in flight between peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerDoc {
    /// Its scope (a grid id or [`crate::COMMUNITY_WIDE`]).
    pub scope: String,
    /// Document id.
    pub id: String,
    /// Collection code.
    pub collection: String,
    /// Automerge bytes: the whole document, or the changes after the heads the receiver has.
    pub bytes: Vec<u8>,
}

/// A message between two peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerMsg {
    /// The first message each way: who I am.
    Hello {
        /// Protocol version ([`VERSION`]).
        version: u32,
        /// The sender's membership chain; its device key must be the connection's key.
        membership: Membership,
    },
    /// A negentropy range-reconciliation message over (document id → heads) items.
    Reconcile(Vec<u8>),
    /// From the initiator once reconciliation is over: the items it lacks, and the heads of
    /// its own documents that differ (so the responder can send just the missing changes).
    Want {
        /// Item hashes (of the responder's items) the initiator does not have.
        need: Vec<[u8; 32]>,
        /// The initiator's differing documents and their encoded heads.
        mine: Vec<(String, Vec<u8>)>,
    },
    /// Documents, in batches; `last` ends the sender's turn.
    Docs {
        /// The documents.
        docs: Vec<PeerDoc>,
        /// In the responder's first batch: its heads for the initiator's differing documents.
        heads: Vec<(String, Vec<u8>)>,
        /// From the responder: documents where the initiator has changes it does not know,
        /// with the hashes of every change it has, so the initiator sends exactly the rest.
        hashes: Vec<(String, Vec<[u8; 32]>)>,
        /// Whether this is the sender's last batch.
        last: bool,
    },
    /// The sender has stored everything it received; the session is over.
    Done,
    /// The sender refuses to go on, and says why.
    Refused(String),
}

/// zstd level of frames: fast, since peers are usually on the same network.
const FRAME_LEVEL: i32 = 3;

impl PeerMsg {
    /// The message as one frame (postcard, then zstd with a content checksum, so damage in
    /// transit is caught even where the transport would not catch it).
    pub fn to_frame(&self) -> Result<Vec<u8>, WireError> {
        let plain = crate::encode(self);
        let fail = |e: std::io::Error| WireError::Malformed {
            what: "peer message",
            reason: e.to_string(),
        };
        let mut c = zstd::bulk::Compressor::new(FRAME_LEVEL).map_err(fail)?;
        c.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))
            .map_err(fail)?;
        c.compress(&plain).map_err(fail)
    }

    /// Reads a frame.
    pub fn from_frame(frame: &[u8]) -> Result<PeerMsg, WireError> {
        if frame.len() > MAX_WIRE_FRAME {
            return Err(WireError::Malformed {
                what: "peer message",
                reason: format!("{} bytes is more than {MAX_WIRE_FRAME}", frame.len()),
            });
        }
        let plain = zstd::bulk::decompress(frame, MAX_FRAME).map_err(|e| WireError::Malformed {
            what: "peer message",
            reason: e.to_string(),
        })?;
        crate::decode("peer message", &plain)
    }

    /// The message's name, for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            PeerMsg::Hello { .. } => "Hello",
            PeerMsg::Reconcile(_) => "Reconcile",
            PeerMsg::Want { .. } => "Want",
            PeerMsg::Docs { .. } => "Docs",
            PeerMsg::Done => "Done",
            PeerMsg::Refused(_) => "Refused",
        }
    }
}

const TICKET_PREFIX: &str = "LINLIP1";

/// What a device needs to reach a serving peer: its key and addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// The peer's device key (its iroh endpoint id).
    pub key: PublicKey,
    /// Where it listens.
    pub addrs: Vec<SocketAddr>,
}

impl Ticket {
    /// The text form: `LINLIP1` and base32.
    pub fn encode(&self) -> String {
        format!(
            "{TICKET_PREFIX}{}",
            data_encoding::BASE32_NOPAD.encode(&crate::encode(self))
        )
    }

    /// Reads the text form; spaces and lower case are forgiven.
    pub fn decode(text: &str) -> Result<Ticket, WireError> {
        let clean: String = text
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_uppercase();
        let bad = |reason: String| WireError::Malformed {
            what: "peer ticket",
            reason,
        };
        let body = clean
            .strip_prefix(TICKET_PREFIX)
            .ok_or_else(|| bad(format!("it does not start with {TICKET_PREFIX}")))?;
        let bytes = data_encoding::BASE32_NOPAD
            .decode(body.as_bytes())
            .map_err(|e| bad(format!("not base32 at character {}", e.position)))?;
        let ticket: Ticket = crate::decode("peer ticket", &bytes)?;
        if ticket.addrs.is_empty() {
            return Err(bad("it lists no address".into()));
        }
        Ok(ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_damage_is_an_error() {
        let msg = PeerMsg::Want {
            need: vec![[7; 32]],
            mine: vec![("hh-000001".into(), vec![1; 32])],
        };
        let frame = msg.to_frame().unwrap();
        assert_eq!(PeerMsg::from_frame(&frame).unwrap(), msg);
        let mut bad = frame.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert!(PeerMsg::from_frame(&bad).is_err());
        assert!(PeerMsg::from_frame(&frame[..frame.len() / 2]).is_err());
    }

    #[test]
    fn tickets_round_trip() {
        let t = Ticket {
            key: [9; 32],
            addrs: vec!["127.0.0.1:4433".parse().unwrap()],
        };
        let text = t.encode();
        assert_eq!(Ticket::decode(&text.to_lowercase()).unwrap(), t);
        assert!(Ticket::decode("LINLIP1AAAA").is_err());
        assert!(Ticket::decode("nonsense").is_err());
    }
}
