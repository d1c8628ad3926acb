//! Round trips of every wire format, as properties over generated values: what a device or the
//! relay encodes, the other side decodes to the same value — invitation codes, tickets, peer
//! frames, relay requests (signed, read owned and in place), responses and replies, stream
//! frames however the bytes are cut, sealed bundles and memberships. A failure proptest finds
//! is kept in `proptest-regressions/` (committed) and replayed first by every run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use linli_wire::peer::{PeerDoc, PeerMsg, Ticket};
use linli_wire::relay::{
    Blob, BlobKind, Body, Frames, NewBlob, Reply, Request, Response, Signed, SignedView, frame,
};
use linli_wire::{
    Bundle, Cert, DeviceKey, DocPayload, Grant, Membership, Role, ScopeKey, open_bundle,
    seal_bundle,
};
use proptest::prelude::*;

fn key(seed: u8) -> DeviceKey {
    DeviceKey::from_bytes(&[seed; 32])
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_.-]{1,24}"
}

fn heads() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    proptest::collection::vec((name(), bytes(64)), 0..4)
}

/// A membership root → staff device → grid device, with generated names and grids.
fn membership() -> impl Strategy<Value = Membership> {
    (
        name(),
        proptest::collection::vec("G[0-9]{2}", 0..3),
        any::<u8>(),
    )
        .prop_map(|(label, grids, seed)| {
            let root = key(seed);
            let community = linli_wire::community_id(&label, &root.public());
            let staff = key(seed.wrapping_add(1));
            let grid = key(seed.wrapping_add(2));
            let first = Cert::issue(
                &root,
                Grant {
                    community: community.clone(),
                    subject: staff.public(),
                    role: Role::Staff,
                    grids: Vec::new(),
                    label: "staff".into(),
                    issued_ms: 1_765_000_000_000,
                },
            );
            let second = Cert::issue(
                &staff,
                Grant {
                    community: community.clone(),
                    subject: grid.public(),
                    role: Role::Grid,
                    grids,
                    label: "grid".into(),
                    issued_ms: 1_765_000_000_000,
                },
            );
            Membership {
                community,
                root: root.public(),
                certs: vec![first, second],
            }
        })
}

fn new_blob() -> impl Strategy<Value = NewBlob> {
    (
        name(),
        any::<bool>(),
        proptest::collection::vec(name(), 0..4),
        any::<u64>(),
        bytes(128),
    )
        .prop_map(|(scope, snapshot, docs, covers, sealed)| NewBlob {
            scope,
            kind: if snapshot {
                BlobKind::Snapshot
            } else {
                BlobKind::Changes
            },
            docs,
            covers,
            sealed,
        })
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        proptest::collection::vec(new_blob(), 0..3).prop_map(|blobs| Body::Push { blobs }),
        (any::<u64>(), any::<u64>()).prop_map(|(since, max_bytes)| Body::Pull { since, max_bytes }),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(since, max_bytes, wait_ms)| {
            Body::Watch {
                since,
                max_bytes,
                wait_ms,
            }
        }),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(since, max_bytes, wait_ms)| {
            Body::Follow {
                since,
                max_bytes,
                wait_ms,
            }
        }),
        proptest::collection::vec(any::<u64>(), 0..5).prop_map(|seqs| Body::Drop { seqs }),
    ]
}

fn response() -> impl Strategy<Value = Response> {
    let blob = (any::<u64>(), name(), any::<bool>(), any::<u8>(), bytes(128)).prop_map(
        |(seq, scope, snapshot, sender, sealed)| Blob {
            seq,
            scope,
            kind: if snapshot {
                BlobKind::Snapshot
            } else {
                BlobKind::Changes
            },
            sender: key(sender).public(),
            sealed,
        },
    );
    prop_oneof![
        proptest::collection::vec(any::<u64>(), 0..5).prop_map(|seqs| Response::Pushed { seqs }),
        (
            proptest::collection::vec(blob, 0..3),
            any::<u64>(),
            any::<bool>()
        )
            .prop_map(|(blobs, next, more)| Response::Pulled { blobs, next, more }),
        proptest::collection::vec(any::<u64>(), 0..5).prop_map(|seqs| Response::Dropped { seqs }),
    ]
}

fn peer_msg() -> impl Strategy<Value = PeerMsg> {
    let doc =
        (name(), name(), name(), bytes(256)).prop_map(|(scope, id, collection, bytes)| PeerDoc {
            scope,
            id,
            collection,
            bytes,
        });
    prop_oneof![
        (any::<u32>(), membership()).prop_map(|(version, membership)| PeerMsg::Hello {
            version,
            membership
        }),
        bytes(256).prop_map(PeerMsg::Reconcile),
        (proptest::collection::vec(any::<[u8; 32]>(), 0..4), heads())
            .prop_map(|(need, mine)| PeerMsg::Want { need, mine }),
        (
            proptest::collection::vec(doc, 0..3),
            heads(),
            proptest::collection::vec(
                (name(), proptest::collection::vec(any::<[u8; 32]>(), 0..3)),
                0..3
            ),
            any::<bool>()
        )
            .prop_map(|(docs, heads, hashes, last)| PeerMsg::Docs {
                docs,
                heads,
                hashes,
                last
            }),
        Just(PeerMsg::Done),
        "\\PC{0,40}".prop_map(PeerMsg::Refused),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        // Failures are kept beside this file (`regressions/round_trip.txt`), committed.
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
        )),
        ..ProptestConfig::default()
    })]

    /// A signed request decodes to the same request, read owned or in place, and its
    /// signature holds; one changed byte of its body does not.
    #[test]
    fn relay_requests_round_trip(m in membership(), counter in any::<u64>(), body in body(), seed in any::<u8>()) {
        // Signed by the membership's device: the last key of the chain.
        let device = key(seed);
        let mut m = m;
        let subject = device.public();
        if let Some(last) = m.certs.last_mut() {
            last.grant.subject = subject;
        }
        let request = Request { membership: m, counter, body };
        let signed = Signed::sign(&device, &request);
        let bytes = linli_wire::encode(&signed);
        let owned: Signed = linli_wire::decode("request", &bytes).unwrap();
        prop_assert_eq!(&owned.open().unwrap(), &request);
        let view: SignedView<'_> = linli_wire::decode("request", &bytes).unwrap();
        prop_assert!(view.open().is_ok());
        let mut bad = signed.clone();
        if let Some(b) = bad.request.last_mut() {
            *b ^= 1;
            prop_assert!(bad.open().is_err());
        }
    }

    /// Responses and replies decode to what was encoded.
    #[test]
    fn relay_responses_and_replies_round_trip(r in response(), status in any::<u16>(), message in "\\PC{0,40}") {
        let bytes = linli_wire::encode(&r);
        prop_assert_eq!(linli_wire::decode::<Response>("response", &bytes).unwrap(), r.clone());
        for reply in [Reply::Answer(r), Reply::Refused { status, message }] {
            let bytes = linli_wire::encode(&reply);
            prop_assert_eq!(linli_wire::decode::<Reply>("reply", &bytes).unwrap(), reply);
        }
    }

    /// Frames come out whole and in order however the stream's bytes are cut.
    #[test]
    fn stream_frames_survive_any_cut(payloads in proptest::collection::vec(bytes(300), 0..6), cuts in proptest::collection::vec(1usize..64, 1..20)) {
        let stream: Vec<u8> = payloads.iter().flat_map(|p| frame(p)).collect();
        let mut frames = Frames::default();
        let mut out = Vec::new();
        let mut at = 0;
        for cut in cuts.iter().cycle() {
            if at >= stream.len() {
                break;
            }
            let end = (at + cut).min(stream.len());
            frames.extend(&stream[at..end]);
            at = end;
            while let Some(f) = frames.next_frame().unwrap() {
                out.push(f);
            }
        }
        prop_assert_eq!(out, payloads);
    }

    /// Peer messages survive their frame (zstd and a check).
    #[test]
    fn peer_frames_round_trip(msg in peer_msg()) {
        let framed = msg.to_frame().unwrap();
        prop_assert_eq!(PeerMsg::from_frame(&framed).unwrap(), msg);
    }

    /// Tickets survive their text form, in either case. An IPv6 address travels without its
    /// flow label and interface index: both mean something on the serving device only (found
    /// by this property).
    #[test]
    fn tickets_round_trip(seed in any::<u8>(), addrs in proptest::collection::vec(any::<SocketAddr>(), 1..4)) {
        let addrs = addrs
            .into_iter()
            .map(|a| match a {
                SocketAddr::V6(v6) => SocketAddr::V6(std::net::SocketAddrV6::new(*v6.ip(), v6.port(), 0, 0)),
                v4 => v4,
            })
            .collect();
        let t = Ticket { key: key(seed).public(), addrs };
        prop_assert_eq!(Ticket::decode(&t.encode()).unwrap(), t.clone());
        prop_assert_eq!(Ticket::decode(&t.encode().to_lowercase()).unwrap(), t);
    }

    /// Sealed bundles open to the documents sealed, for their scope only.
    #[test]
    fn bundles_round_trip(docs in proptest::collection::vec((name(), name(), bytes(300)), 0..5), master in any::<[u8; 32]>()) {
        let bundle = Bundle {
            docs: docs
                .into_iter()
                .map(|(id, collection, bytes)| DocPayload { id, collection, bytes })
                .collect(),
        };
        let key = ScopeKey::derive(&master, "c-test", "G01");
        let sealed = seal_bundle(&key, "c-test", "G01", &bundle).unwrap();
        prop_assert_eq!(open_bundle(&key, "c-test", "G01", &sealed).unwrap(), bundle);
        prop_assert!(open_bundle(&key, "c-test", "G02", &sealed).is_err());
    }

    /// Memberships survive encoding and still verify against their root.
    #[test]
    fn memberships_round_trip(m in membership()) {
        let bytes = linli_wire::encode(&m);
        let back: Membership = linli_wire::decode("membership", &bytes).unwrap();
        prop_assert_eq!(&back, &m);
        prop_assert!(back.verify(&back.root).is_ok());
    }
}
