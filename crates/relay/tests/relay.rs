//! The relay binary on 127.0.0.1, spoken to on the wire: who may push and pull what, replays,
//! damaged requests. Nothing refused is ever stored.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use linli_wire::relay::{BlobKind, Body, Frames, NewBlob, Reply, Request, Response, Signed, frame};
use linli_wire::{Cert, DeviceKey, Grant, Membership, Role};

struct Relay {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
    /// The rest of its standard output (one line per further listener).
    out: BufReader<ChildStdout>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(extra: &[&str]) -> Relay {
    start_in(tempfile::tempdir().unwrap(), extra)
}

/// Starts the relay on a data directory prepared beforehand.
fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Relay {
    let mut child = Command::new(env!("CARGO_BIN_EXE_linli-relay"))
        .arg("--data")
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_string();
    Relay {
        child,
        url,
        dir,
        out,
    }
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
    post_to(&relay.url, bytes).await
}

async fn post_to(url: &str, bytes: Vec<u8>) -> (u16, Vec<u8>) {
    // The workspace's reqwest has rustls without a provider (iroh asks for it): name ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let r = reqwest::Client::new()
        .post(format!("{url}/v1"))
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

/// How far the relay recorded that `device` pulled (it moves when the device's pull looks at
/// the blobs stored after its cursor).
fn pulled_by(relay: &Relay, device: &Device) -> Option<i64> {
    let db = rusqlite::Connection::open(relay.dir.path().join("relay.sqlite")).unwrap();
    db.query_row(
        "SELECT pulled FROM devices WHERE key = ?1",
        [&device.key.public()[..]],
        |r| r.get(0),
    )
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

#[test]
fn a_snapshot_may_cover_only_what_its_sender_has_pulled_or_sent() {
    runtime().block_on(async {
        let relay = start(&[]);
        let mut root = Device::root("c1");
        let mut staff = root.member(Role::Staff, &[]);
        let mut g2 = root.member(Role::Grid, &["G02"]);
        let push = |blobs| Body::Push { blobs };
        assert_eq!(
            post(&relay, root.signed(push(vec![blob("G01", "hh-1")])))
                .await
                .0,
            200
        );
        let snapshot = |covers| NewBlob {
            kind: BlobKind::Snapshot,
            covers,
            ..blob("G01", "hh-1")
        };
        // Staff has not pulled blob 1: its snapshot may not claim to cover it.
        let (status, body) = post(&relay, staff.signed(push(vec![snapshot(1)]))).await;
        assert_eq!(status, 403);
        let reason = String::from_utf8_lossy(&body);
        assert!(
            reason.contains("pull first") && reason.contains("#1"),
            "{reason}"
        );
        assert_eq!(stored_blobs(&relay), 1);
        // Asking from a later cursor skips blob 1: it does not count as pulled.
        let (status, body) = post(
            &relay,
            staff.signed(Body::Pull {
                since: 5,
                max_bytes: 1 << 20,
            }),
        )
        .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let (status, body) = post(&relay, staff.signed(push(vec![snapshot(1)]))).await;
        assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
        assert_eq!(stored_blobs(&relay), 1);
        // A grid worker of G02 never gets G01's blob, so it does not stand in its way.
        assert!(pull(&relay, &mut g2).await.is_empty());
        let g2_snapshot = NewBlob {
            kind: BlobKind::Snapshot,
            covers: 1,
            ..blob("G02", "hh-2")
        };
        assert_eq!(
            post(&relay, g2.signed(push(vec![g2_snapshot]))).await.0,
            200
        );
        // After a pull, staff may.
        assert_eq!(pull(&relay, &mut staff).await.len(), 2);
        assert_eq!(
            post(&relay, staff.signed(push(vec![snapshot(1)]))).await.0,
            200
        );
        assert_eq!(stored_blobs(&relay), 2, "blob 1 superseded");
    });
}

fn watch(since: u64, wait_ms: u64) -> Body {
    Body::Watch {
        since,
        max_bytes: 1 << 20,
        wait_ms,
    }
}

fn pulled(status: u16, body: &[u8]) -> (Vec<(String, Vec<u8>)>, u64) {
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(body));
    match linli_wire::decode::<Response>("response", body).unwrap() {
        Response::Pulled { blobs, next, .. } => (
            blobs.into_iter().map(|b| (b.scope, b.sealed)).collect(),
            next,
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_watch_is_answered_when_a_blob_of_its_scopes_arrives() {
    runtime().block_on(async {
        let relay = Arc::new(start(&[]));
        let mut root = Device::root("c1");
        let mut g1 = root.member(Role::Grid, &["G01"]);
        let push = |blobs| Body::Push { blobs };
        let (status, _) = post(&relay, root.signed(push(vec![blob("G01", "hh-1")]))).await;
        assert_eq!(status, 200);

        // What is already there comes at once, however long the wait asked for.
        let (status, body) = post(&relay, g1.signed(watch(0, 20_000))).await;
        let (blobs, next) = pulled(status, &body);
        assert_eq!(blobs.len(), 1);

        // Nothing new: an empty answer after the wait.
        let (status, body) = post(&relay, g1.signed(watch(next, 300))).await;
        assert_eq!(pulled(status, &body), (vec![], next));

        // Held open: another grid's blob does not answer it; its own grid's does.
        let request = g1.signed(watch(next, 20_000));
        let held = tokio::spawn({
            let relay = relay.clone();
            async move { post(&relay, request).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let looked = pulled_by(&relay, &g1);
        let (status, _) = post(&relay, root.signed(push(vec![blob("G02", "hh-2")]))).await;
        assert_eq!(status, 200);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!held.is_finished(), "answered by another grid's blob");
        assert_eq!(
            pulled_by(&relay, &g1),
            looked,
            "the held watch did not even look: the blob is of a scope it does not read"
        );
        let (status, _) = post(&relay, root.signed(push(vec![blob("G01", "hh-3")]))).await;
        assert_eq!(status, 200);
        let (status, body) = tokio::time::timeout(Duration::from_secs(10), held)
            .await
            .expect("the watch was not answered")
            .unwrap();
        let (blobs, _) = pulled(status, &body);
        assert_eq!(
            blobs,
            [("G01".to_string(), b"opaque bytes of hh-3".to_vec())]
        );
    });
}

#[test]
fn each_listener_counts_its_own_traffic() {
    runtime().block_on(async {
        let mut relay = start(&["--listen", "[::1]:0"]);
        let mut line = String::new();
        relay.out.read_line(&mut line).unwrap();
        let v6 = line.trim().rsplit(' ').next().unwrap().to_string();
        assert!(v6.starts_with("http://[::1]:"), "{line}");
        let traffic = |url: String| async move {
            let text = reqwest::get(format!("{url}/traffic"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let n: Vec<u64> = text
                .split_whitespace()
                .map(|x| x.parse().unwrap())
                .collect();
            (n[0], n[1])
        };
        let _ = rustls::crypto::ring::default_provider().install_default();
        let before = traffic(v6.clone()).await;
        let mut root = Device::root("c1");
        let (status, _) = post(
            &relay,
            root.signed(Body::Push {
                blobs: vec![blob("G01", "hh-1")],
            }),
        )
        .await;
        assert_eq!(status, 200);
        let after = traffic(v6.clone()).await;
        // Only the two /traffic requests themselves passed on [::1].
        let probe = traffic(v6.clone()).await;
        assert_eq!(after.0 - before.0, probe.0 - after.0);
        let v4 = traffic(relay.url.clone()).await;
        assert!(v4.0 > 200, "the push went to 127.0.0.1: {v4:?}");
        // Both addresses serve the relay.
        let mut g1 = root.member(Role::Grid, &["G01"]);
        let (status, body) = post_to(&v6, g1.signed(watch(0, 0))).await;
        assert_eq!(pulled(status, &body).0.len(), 1);
    });
}

#[test]
fn stopping_the_relay_answers_held_watches_at_once() {
    runtime().block_on(async {
        let mut relay = start(&[]);
        let mut root = Device::root("c1");
        let push = Body::Push {
            blobs: vec![blob("G01", "hh-1")],
        };
        assert_eq!(post(&relay, root.signed(push)).await.0, 200);
        let mut g1 = root.member(Role::Grid, &["G01"]);
        let (_, next) = {
            let (status, body) = post(&relay, g1.signed(watch(0, 0))).await;
            pulled(status, &body)
        };
        let request = g1.signed(watch(next, 30_000));
        let url = relay.url.clone();
        let held = tokio::spawn(async move { post_to(&url, request).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!held.is_finished());
        // Ctrl-C.
        let t = std::time::Instant::now();
        let killed = Command::new("kill")
            .args(["-INT", &relay.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let (status, body) = tokio::time::timeout(Duration::from_secs(10), held)
            .await
            .expect("the held watch was answered")
            .unwrap();
        assert_eq!(pulled(status, &body), (vec![], next));
        let code = relay.child.wait().unwrap();
        assert!(code.success(), "{code:?}");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    });
}

/// A relay database made before the relay tracked how far each device pulled (its `devices`
/// table has no `pulled` column) is upgraded in place when the relay starts: the community and
/// its device are kept, and pushes, pulls and the pull tracking work.
#[test]
fn a_relay_database_from_before_pulls_were_tracked_is_upgraded_in_place() {
    let mut root = Device::root("c-old");
    let mut staff = root.member(Role::Staff, &[]);
    let dir = tempfile::tempdir().unwrap();
    {
        let db = rusqlite::Connection::open(dir.path().join("relay.sqlite")).unwrap();
        db.execute_batch(
            "CREATE TABLE communities (id TEXT PRIMARY KEY, root BLOB NOT NULL, created_ms INTEGER NOT NULL);
             CREATE TABLE devices (key BLOB PRIMARY KEY, community TEXT NOT NULL, role TEXT NOT NULL,
                 grids TEXT NOT NULL, label TEXT NOT NULL, counter INTEGER NOT NULL, seen_ms INTEGER NOT NULL);",
        )
        .unwrap();
        db.execute(
            "INSERT INTO communities VALUES ('c-old', ?1, 1)",
            [root.key.public().to_vec()],
        )
        .unwrap();
        db.execute(
            "INSERT INTO devices VALUES (?1, 'c-old', 'staff', '', 'root', 0, 1)",
            [root.key.public().to_vec()],
        )
        .unwrap();
    }
    // First contact off: the community must be the one already stored.
    let relay = start_in(dir, &["--no-first-contact"]);
    runtime().block_on(async {
        let (status, body) = post(
            &relay,
            root.signed(Body::Push {
                blobs: vec![blob(linli_wire::COMMUNITY_WIDE, "doc-1")],
            }),
        )
        .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(pull(&relay, &mut staff).await.len(), 1);
    });
    let db = rusqlite::Connection::open(relay.dir.path().join("relay.sqlite")).unwrap();
    let rows: Vec<(String, Option<i64>)> = db
        .prepare("SELECT label, pulled FROM devices ORDER BY label")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        [("root".to_string(), None), ("test".to_string(), Some(1))],
        "the old device kept (how far it pulled unknown); the new one's pull recorded"
    );
}

/// The relay writes its log back into the database file on a thread of its own, within a
/// couple of seconds of a push, although the push is far below SQLite's automatic threshold
/// (1,000 pages): no device's push waits for a checkpoint, and what was stored reaches the
/// database file while the relay keeps running.
#[test]
fn pushes_reach_the_database_file_by_the_background_checkpoint() {
    let mut root = Device::root("c-ckpt");
    let relay = start(&[]);
    let file = relay.dir.path().join("relay.sqlite");
    let size = || std::fs::metadata(&file).unwrap().len();
    runtime().block_on(async {
        // First contact registers the community.
        let (status, body) = post(
            &relay,
            root.signed(Body::Pull {
                since: 0,
                max_bytes: 1,
            }),
        )
        .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let before = size();
        let mut big = blob(linli_wire::COMMUNITY_WIDE, "doc-big");
        big.sealed = (0..400_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let (status, body) = post(&relay, root.signed(Body::Push { blobs: vec![big] })).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while size() < before + 400_000 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            size() >= before + 400_000,
            "the pushed blob is still only in the log: {before} -> {}",
            size()
        );
    });
}

/// Opens `POST /v1/stream` with `body` (frames) and returns the answer as it starts.
async fn open_stream(relay: &Relay, body: Vec<u8>) -> reqwest::Response {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let r = reqwest::Client::new()
        .post(format!("{}/v1/stream", relay.url))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r
}

/// Every reply of a stream's whole answer.
async fn all_replies(answer: reqwest::Response) -> Vec<Reply> {
    let mut frames = Frames::default();
    frames.extend(&answer.bytes().await.unwrap());
    let mut out = Vec::new();
    while let Some(f) = frames.next_frame().unwrap() {
        if !f.is_empty() {
            out.push(linli_wire::decode("reply", &f).unwrap());
        }
    }
    assert_eq!(frames.pending(), 0, "the answer ended inside a frame");
    out
}

/// The next reply of a held stream (keepalives skipped), or `None` if none comes in `wait`.
async fn next_reply(
    answer: &mut reqwest::Response,
    frames: &mut Frames,
    wait: Duration,
) -> Option<Reply> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        while let Some(f) = frames.next_frame().unwrap() {
            if !f.is_empty() {
                return Some(linli_wire::decode("reply", &f).unwrap());
            }
        }
        match tokio::time::timeout_at(deadline, answer.chunk()).await {
            Ok(Ok(Some(bytes))) => frames.extend(&bytes),
            Ok(Ok(None)) | Err(_) => return None,
            Ok(Err(e)) => panic!("{e}"),
        }
    }
}

fn docs_stored(relay: &Relay) -> Vec<String> {
    let db = rusqlite::Connection::open(relay.dir.path().join("relay.sqlite")).unwrap();
    let mut stmt = db
        .prepare("SELECT doc FROM blob_docs ORDER BY seq")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn a_stream_answers_each_request_in_order_and_stops_at_the_first_refused() {
    runtime().block_on(async {
        let relay = start(&[]);
        let mut root = Device::root("c1");
        let mut g1 = root.member(Role::Grid, &["G01"]);
        let push = |scope: &str, doc: &str| Body::Push {
            blobs: vec![blob(scope, doc)],
        };
        let mut body = frame(&root.signed(push("G01", "hh-1")));
        body.extend(frame(&[])); // a keepalive: skipped
        body.extend(frame(&root.signed(push("G02", "hh-2"))));
        let replies = all_replies(open_stream(&relay, body).await).await;
        assert!(
            matches!(&replies[..], [Reply::Answer(Response::Pushed { seqs: a }), Reply::Answer(Response::Pushed { seqs: b })] if a.len() == 1 && b.len() == 1),
            "{replies:?}"
        );
        assert_eq!(docs_stored(&relay), ["hh-1", "hh-2"]);

        // A grid worker's second request pushes into another grid: refused, and the third
        // is not handled at all; the first was stored.
        let mut body = frame(&g1.signed(push("G01", "hh-a")));
        body.extend(frame(&g1.signed(push("G02", "hh-b"))));
        body.extend(frame(&g1.signed(push("G01", "hh-c"))));
        let replies = all_replies(open_stream(&relay, body).await).await;
        assert_eq!(replies.len(), 2, "{replies:?}");
        match &replies[1] {
            Reply::Refused { status, message } => {
                assert_eq!(*status, 403);
                assert!(message.contains("may not write scope G02"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(docs_stored(&relay), ["hh-1", "hh-2", "hh-a"]);

        // A request older than one already accepted (a replay) is refused.
        let fresh = g1.signed(push("G01", "hh-d"));
        g1.counter -= 2;
        let stale = g1.signed(push("G01", "hh-e"));
        let mut body = frame(&fresh);
        body.extend(frame(&stale));
        let replies = all_replies(open_stream(&relay, body).await).await;
        assert!(
            matches!(&replies[..], [Reply::Answer(_), Reply::Refused { status: 409, .. }]),
            "{replies:?}"
        );
        g1.counter += 10;

        // A stream cut inside a request: the whole requests before it are handled, the cut
        // one is refused and stores nothing.
        let whole = frame(&g1.signed(push("G01", "hh-x")));
        let cut = frame(&g1.signed(push("G01", "hh-y")));
        let mut body = whole;
        body.extend(&cut[..cut.len() / 2]);
        let replies = all_replies(open_stream(&relay, body).await).await;
        match &replies[..] {
            [Reply::Answer(Response::Pushed { .. }), Reply::Refused { status: 400, message }] => {
                assert!(message.contains("ended inside a request"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        // A damaged request (not a signed request at all) is refused the same way.
        let replies = all_replies(open_stream(&relay, frame(b"not a request")).await).await;
        assert!(
            matches!(&replies[..], [Reply::Refused { status: 400, .. }]),
            "{replies:?}"
        );
        assert_eq!(docs_stored(&relay), ["hh-1", "hh-2", "hh-a", "hh-d", "hh-x"]);

        // A follow is only answered on a stream.
        let (status, body) = post(
            &relay,
            g1.signed(Body::Follow {
                since: 0,
                max_bytes: 1 << 20,
                wait_ms: 1000,
            }),
        )
        .await;
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    });
}

#[test]
fn a_follow_brings_each_arrival_of_its_scopes_without_being_asked_again() {
    runtime().block_on(async {
        let relay = start(&[]);
        let mut root = Device::root("c1");
        let mut g1 = root.member(Role::Grid, &["G01"]);
        let push = |scope: &str, doc: &str| Body::Push {
            blobs: vec![blob(scope, doc)],
        };
        let (status, _) = post(&relay, root.signed(push("G01", "hh-1"))).await;
        assert_eq!(status, 200);
        let follow = g1.signed(Body::Follow {
            since: 0,
            max_bytes: 1 << 20,
            wait_ms: 60_000,
        });
        let mut answer = open_stream(&relay, frame(&follow)).await;
        let mut frames = Frames::default();
        let wait = Duration::from_secs(10);
        let sealed = |reply: Option<Reply>| match reply {
            Some(Reply::Answer(Response::Pulled { blobs, .. })) => blobs
                .into_iter()
                .map(|b| String::from_utf8(b.sealed).unwrap())
                .collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        // What is there comes at once.
        assert_eq!(
            sealed(next_reply(&mut answer, &mut frames, wait).await),
            ["opaque bytes of hh-1"]
        );
        // Its own push brings nothing back, and does not even make the follow look.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let looked = pulled_by(&relay, &g1);
        let (status, _) = post(&relay, g1.signed(push("G01", "hh-own"))).await;
        assert_eq!(status, 200);
        assert!(
            next_reply(&mut answer, &mut frames, Duration::from_millis(300))
                .await
                .is_none()
        );
        assert_eq!(pulled_by(&relay, &g1), looked);
        // Another grid's blob brings nothing; each of its own grid's comes on the same answer.
        let (status, _) = post(&relay, root.signed(push("G02", "hh-2"))).await;
        assert_eq!(status, 200);
        assert!(
            next_reply(&mut answer, &mut frames, Duration::from_millis(300))
                .await
                .is_none()
        );
        for doc in ["hh-3", "hh-4"] {
            let (status, _) = post(&relay, root.signed(push("G01", doc))).await;
            assert_eq!(status, 200);
            assert_eq!(
                sealed(next_reply(&mut answer, &mut frames, wait).await),
                [format!("opaque bytes of {doc}")]
            );
        }
    });
}
