//! Linli's sync drivers and transports: they run the protocol's sessions against the
//! [`linli_store::Store`] over real connections.
//!
//! - [`relay_client`]: a one-off sync with the street office's relay over HTTP (push, then pull),
//!   compaction, drops;
//! - [`live`]: a live session with the relay (a held stream in, uploads out);
//! - [`replica`]: a [`Replica`] that runs the peer-to-peer session (`linli_proto::peer`) against
//!   a store; [`p2p`]: over iroh; [`lan`]: finding peers on the local network.
//!
//! See `ARCHITECTURE.md` for how it fits with the rest.

pub mod lan;
pub mod live;
pub mod p2p;
pub mod relay_client;
pub mod replica;
mod wake;

pub use replica::{PeerReport, Replica};
