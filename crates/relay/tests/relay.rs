//! The relay binary on 127.0.0.1, spoken to on the wire: who may push and pull what, replays,
//! damaged requests. Nothing refused is ever stored.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use linli_wire::relay::{BlobKind, Body, NewBlob, Request, Response, Signed};
use linli_wire::{Cert, DeviceKey, Grant, Membership, Role};

struct Relay {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(extra: &[&str]) -> Relay {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_linli-relay"))
        .arg("--data")
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_string();
    Relay { child, url, dir }
}

struct Device {
    key: DeviceKey,
    membership: Membership,
    counter: u64,
}

impl Device {
    fn root(community: &str) -> Device {
        let key = DeviceKey::generate().unwrap();
        let membership = Membership {
            community: community.into(),
            root: key.public(),
            certs: vec![],
        };
        Device {
            key,
            membership,
            counter: 0,
        }
    }

    fn member(&self, role: Role, grids: &[&str]) -> Device {
        let key = DeviceKey::generate().unwrap();
        let grant = Grant {
            community: self.membership.community.clone(),
            subject: key.public(),
            role,
            grids: grids.iter().map(|g| g.to_string()).collect(),
            label: "test".into(),
            issued_ms: 1,
        };
        let mut membership = self.membership.clone();
        membership.certs.push(Cert::issue(&self.key, grant));
        Device {
            key,
            membership,
            counter: 0,
        }
    }

    fn signed(&mut self, body: Body) -> Vec<u8> {
        self.counter += 1;
        let request = Request {
            membership: self.membership.clone(),
            counter: self.counter,
            body,
        };
        linli_wire::encode(&Signed::sign(&self.key, &request))
    }
}

fn blob(scope: &str, doc: &str) -> NewBlob {
    NewBlob {
        scope: scope.into(),
        kind: BlobKind::Changes,
        docs: vec![doc.into()],
        covers: 0,
        sealed: format!("opaque bytes of {doc}").into_bytes(),
    }
}

async fn post(relay: &Relay, bytes: Vec<u8>) -> (u16, Vec<u8>) {
    // The workspace's reqwest has rustls without a provider (iroh asks for it): name ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let r = reqwest::Client::new()
        .post(format!("{}/v1", relay.url))
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.bytes().await.unwrap().to_vec())
}

async fn pull(relay: &Relay, device: &mut Device) -> Vec<(String, Vec<u8>)> {
    let (status, body) = post(
        relay,
        device.signed(Body::Pull {
            since: 0,
            max_bytes: 1 << 20,
        }),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    match linli_wire::decode::<Response>("response", &body).unwrap() {
        Response::Pulled { blobs, .. } => blobs.into_iter().map(|b| (b.scope, b.sealed)).collect(),
        other => panic!("{other:?}"),
    }
}

fn stored_blobs(relay: &Relay) -> i64 {
    let db = rusqlite::Connection::open(relay.dir.path().join("relay.sqlite")).unwrap();
    db.query_row("SELECT COUNT(*) FROM blobs", [], |r| r.get(0))
        .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn members_push_and_pull_only_their_scopes() {
    runtime().block_on(async {
        let relay = start(&[]);
        let mut root = Device::root("c1");
        let mut g1 = root.member(Role::Grid, &["G01"]);
        let mut g2 = root.member(Role::Grid, &["G02"]);
        let mut owners = root.member(Role::Owners, &[]);

        // A member before the community is known: refused.
        let (status, body) = post(
            &relay,
            g1.signed(Body::Push {
                blobs: vec![blob("G01", "x")],
            }),
        )
        .await;
        assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
        // First contact from the root registers the community.
        let push = Body::Push {
            blobs: vec![
                blob("G01", "hh-1"),
                blob("G02", "hh-2"),
                blob("*", "notice-1"),
            ],
        };
        let (status, _) = post(&relay, root.signed(push)).await;
        assert_eq!(status, 200);

        // Each member pulls its scopes only: checked on the wire.
        let scopes =
            |blobs: Vec<(String, Vec<u8>)>| blobs.into_iter().map(|b| b.0).collect::<Vec<_>>();
        assert_eq!(scopes(pull(&relay, &mut g1).await), ["G01", "*"]);
        assert_eq!(scopes(pull(&relay, &mut g2).await), ["G02", "*"]);
        assert_eq!(scopes(pull(&relay, &mut owners).await), ["*"]);

        // A grid worker pushing into another grid is refused whole, with the reason.
        let before = stored_blobs(&relay);
        let (status, body) = post(
            &relay,
            g1.signed(Body::Push {
                blobs: vec![blob("G01", "hh-3"), blob("G02", "hh-4")],
            }),
        )
        .await;
        assert_eq!(status, 403);
        let reason = String::from_utf8_lossy(&body);
        assert!(
            reason.contains("may not write scope G02") && reason.contains("G01"),
            "{reason}"
        );
        assert_eq!(stored_blobs(&relay), before);

        // A device not chained to the root (another community's root claiming c1): refused.
        let mut stranger = Device::root("c1");
        let (status, _) = post(
            &relay,
            stranger.signed(Body::Pull {
                since: 0,
                max_bytes: 100,
            }),
        )
        .await;
        assert_eq!(status, 403);
    });
}

#[test]
fn replays_and_damaged_requests_are_refused_and_store_nothing() {
    runtime().block_on(async {
        let relay = start(&[]);
        let mut root = Device::root("c1");
        let first = root.signed(Body::Push {
            blobs: vec![blob("G01", "hh-1")],
        });
        assert_eq!(post(&relay, first.clone()).await.0, 200);
        assert_eq!(stored_blobs(&relay), 1);
        // The same request again: refused as a replay, nothing stored.
        let (status, body) = post(&relay, first.clone()).await;
        assert_eq!(status, 409, "{}", String::from_utf8_lossy(&body));
        assert_eq!(stored_blobs(&relay), 1);
        // Truncated, and one flipped byte: refused.
        let next = root.signed(Body::Push {
            blobs: vec![blob("G01", "hh-2")],
        });
        assert_eq!(post(&relay, next[..next.len() / 2].to_vec()).await.0, 400);
        let mut flipped = next.clone();
        let i = flipped.len() - 80;
        flipped[i] ^= 0x55;
        assert_eq!(post(&relay, flipped).await.0, 400);
        assert_eq!(stored_blobs(&relay), 1);
        // The intact one still goes through.
        assert_eq!(post(&relay, next).await.0, 200);
        assert_eq!(stored_blobs(&relay), 2);
    });
}

#[test]
fn first_contact_can_be_turned_off() {
    runtime().block_on(async {
        let relay = start(&["--no-first-contact"]);
        let mut root = Device::root("c1");
        let (status, body) = post(
            &relay,
            root.signed(Body::Push {
                blobs: vec![blob("*", "n")],
            }),
        )
        .await;
        assert_eq!(status, 403);
        assert!(String::from_utf8_lossy(&body).contains("first contact is turned off"));
        assert_eq!(stored_blobs(&relay), 0);
    });
}

#[test]
fn a_snapshot_supersedes_the_older_blobs_it_covers() {
    runtime().block_on(async {
        let relay = start(&[]);
        let mut root = Device::root("c1");
        let mut staff = root.member(Role::Staff, &[]);
        let push = Body::Push {
            blobs: vec![blob("G01", "hh-1"), blob("G01", "hh-2")],
        };
        assert_eq!(post(&relay, root.signed(push)).await.0, 200);
        // A later change to hh-1 that the snapshot below does not cover.
        let later = Body::Push {
            blobs: vec![blob("G01", "hh-1")],
        };
        assert_eq!(post(&relay, root.signed(later)).await.0, 200);
        let snapshot = NewBlob {
            kind: BlobKind::Snapshot,
            covers: 2,
            ..blob("G01", "hh-1")
        };
        assert_eq!(
            post(
                &relay,
                root.signed(Body::Push {
                    blobs: vec![snapshot]
                })
            )
            .await
            .0,
            200
        );
        // Blob 1 (hh-1 only) is gone; hh-2's blob, the later change and the snapshot stay.
        let left: Vec<Vec<u8>> = pull(&relay, &mut staff)
            .await
            .into_iter()
            .map(|b| b.1)
            .collect();
        assert_eq!(left.len(), 3, "{left:?}");
        assert_eq!(stored_blobs(&relay), 3);
        assert_eq!(left[0], b"opaque bytes of hh-2");
    });
}
