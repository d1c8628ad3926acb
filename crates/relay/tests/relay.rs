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
    // A small disk reserve unless a test sets one: a machine's temporary directory may have
    // less than the default 1 GB free.
    let reserve: &[&str] = if extra.contains(&"--reserve-mb") {
        &[]
    } else {
        &["--reserve-mb", "16"]
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_linli-relay"))
        .arg("--data")
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .args(reserve)
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
    /// The root device of a new community: its id is `label` and a tag of its key.
    fn root(label: &str) -> Device {
        let key = DeviceKey::generate().unwrap();
        Device::claiming(&linli_wire::community_id(label, &key.public()), key)
    }

    /// A root device that claims community id `community`, whatever its key (a stranger, or
    /// a community registered before ids were bound to keys).
    fn claiming(community: &str, key: DeviceKey) -> Device {
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
        .post(format!("{url}/v2"))
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

        // A device not chained to the root (another key claiming the community): refused.
        let mut stranger =
            Device::claiming(&root.membership.community, DeviceKey::generate().unwrap());
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
        assert!(String::from_utf8_lossy(&body).contains("not a member"));
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
        // A grid worker of G02 never gets G01's blob, so it does not stand in its way: its
        // snapshot of what it sent itself covers past it.
        assert!(pull(&relay, &mut g2).await.is_empty());
        assert_eq!(
            post(&relay, g2.signed(push(vec![blob("G02", "hh-2")])))
                .await
                .0,
            200
        );
        let g2_snapshot = NewBlob {
            kind: BlobKind::Snapshot,
            covers: 2,
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
        let mut relay = start(&["--listen", "[::1]:0", "--traffic"]);
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
    // Registered before community ids were bound to root keys: it keeps working.
    let mut root = Device::claiming("c-old", DeviceKey::generate().unwrap());
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
        let (status, body) = post(&relay, root.signed(hello())).await;
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

/// Opens `POST /v2/stream` with `body` (frames) and returns the answer as it starts.
async fn open_stream(relay: &Relay, body: Vec<u8>) -> reqwest::Response {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let r = reqwest::Client::new()
        .post(format!("{}/v2/stream", relay.url))
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

// ---------------------------------------------------------------------------------------
// Hostile members and strangers (the hardening issue): each test below failed on the relay
// before it, and holds now.
// ---------------------------------------------------------------------------------------

fn snapshot_of(scope: &str, docs: &[&str], covers: u64) -> NewBlob {
    NewBlob {
        scope: scope.into(),
        kind: BlobKind::Snapshot,
        docs: docs.iter().map(|d| d.to_string()).collect(),
        covers,
        sealed: b"a hostile snapshot".to_vec(),
    }
}

fn scopes_pulled(blobs: &[(String, Vec<u8>)]) -> Vec<String> {
    blobs.iter().map(|b| b.0.clone()).collect()
}

/// A grid worker of G01, and an owners' committee device, push one snapshot in their own
/// scope listing the other grids' document ids (guessable: `hh-000123`, `hh-000123.pii`):
/// refused whole, and a G02 device that joins next still receives every household of G02.
/// Claims made first by change blobs in their own scope do not help: a snapshot replaces only
/// blobs of its own scope.
#[test]
fn a_member_cannot_delete_other_scopes_data_with_a_snapshot() {
    runtime().block_on(async {
        let relay = start(&[]);
        let mut root = Device::root("c1");
        let g2_docs = ["hh-000002", "hh-000002.pii", "hh-000003", "hh-000003.pii"];
        let mut blobs: Vec<NewBlob> = g2_docs.iter().map(|d| blob("G02", d)).collect();
        blobs.push(blob("G01", "hh-000001"));
        blobs.push(blob("*", "notice-1"));
        assert_eq!(post(&relay, root.signed(Body::Push { blobs })).await.0, 200);
        let mut g1 = root.member(Role::Grid, &["G01"]);
        let mut owners = root.member(Role::Owners, &[]);
        assert_eq!(pull(&relay, &mut g1).await.len(), 2);
        assert_eq!(pull(&relay, &mut owners).await.len(), 1);
        let before = stored_blobs(&relay);

        let mut hostile: Vec<&str> = g2_docs.to_vec();
        hostile.push("hh-000001");
        let (status, body) = post(
            &relay,
            g1.signed(Body::Push {
                blobs: vec![snapshot_of("G01", &hostile, 100)],
            }),
        )
        .await;
        assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
        let reason = String::from_utf8_lossy(&body);
        assert!(reason.contains("is kept in another scope"), "{reason}");
        assert!(
            !reason.contains("G02"),
            "a grid worker is not told other grids: {reason}"
        );
        // Nor may it list a document never stored in its scope.
        let (status, body) = post(
            &relay,
            g1.signed(Body::Push {
                blobs: vec![snapshot_of("G01", &["hh-000001", "hh-999999"], 100)],
            }),
        )
        .await;
        assert_eq!(status, 403);
        let reason = String::from_utf8_lossy(&body);
        assert!(reason.contains("has not stored in that scope"), "{reason}");
        let (status, _) = post(
            &relay,
            owners.signed(Body::Push {
                blobs: vec![snapshot_of(
                    "*",
                    &["hh-000001", "hh-000002.pii", "notice-1"],
                    100,
                )],
            }),
        )
        .await;
        assert_eq!(status, 403);
        assert_eq!(
            stored_blobs(&relay),
            before,
            "nothing stored, nothing deleted"
        );

        // Claiming the ids with change blobs in G01 first: a document belongs to the scope it
        // was stored in, so that is refused too (devices would otherwise merge a G01 worker's
        // version of a G02 household).
        let squat: Vec<NewBlob> = g2_docs.iter().map(|d| blob("G01", d)).collect();
        let (status, body) = post(&relay, g1.signed(Body::Push { blobs: squat })).await;
        assert_eq!(status, 403);
        let reason = String::from_utf8_lossy(&body);
        assert!(reason.contains("is kept in another scope"), "{reason}");
        // Its snapshot of its own documents is fine, and replaces only G01's blobs.
        assert_eq!(pull(&relay, &mut g1).await.len(), 2);
        let (status, body) = post(
            &relay,
            g1.signed(Body::Push {
                blobs: vec![snapshot_of("G01", &["hh-000001"], 100)],
            }),
        )
        .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(
            stored_blobs(&relay),
            before,
            "one blob superseded, one added"
        );

        // A G02 device joining now receives all of G02.
        let mut g2 = root.member(Role::Grid, &["G02"]);
        let got = pull(&relay, &mut g2).await;
        assert_eq!(
            scopes_pulled(&got).iter().filter(|s| *s == "G02").count(),
            g2_docs.len(),
            "{got:?}"
        );
        let mut g1_new = root.member(Role::Grid, &["G01"]);
        let got = pull(&relay, &mut g1_new).await;
        assert!(
            got.iter()
                .any(|(s, b)| s == "G01" && b == b"a hostile snapshot"),
            "the snapshot replaced G01's blob of hh-000001"
        );
        assert!(
            !got.iter()
                .any(|(s, b)| s == "G01" && b == b"opaque bytes of hh-000001")
        );
    });
}

/// Staff have the relay drop a blob nobody can read; nobody else may.
#[test]
fn staff_and_only_staff_have_blobs_dropped() {
    runtime().block_on(async {
        let relay = start(&[]);
        let mut root = Device::root("c1");
        let mut owners = root.member(Role::Owners, &[]);
        let mut staff = root.member(Role::Staff, &[]);
        assert_eq!(post(&relay, root.signed(hello())).await.0, 200);
        let mut garbage = blob("*", "notice-9");
        garbage.sealed = vec![0; 64];
        let (status, body) = post(
            &relay,
            owners.signed(Body::Push {
                blobs: vec![garbage],
            }),
        )
        .await;
        assert_eq!(status, 200);
        let seq = match linli_wire::decode::<Response>("response", &body).unwrap() {
            Response::Pushed { seqs } => seqs[0],
            other => panic!("{other:?}"),
        };
        let (status, _) = post(&relay, owners.signed(Body::Drop { seqs: vec![seq] })).await;
        assert_eq!(status, 403, "an owners' device may not drop");
        assert_eq!(stored_blobs(&relay), 1);
        let (status, body) = post(
            &relay,
            staff.signed(Body::Drop {
                seqs: vec![seq, 999],
            }),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            linli_wire::decode::<Response>("response", &body).unwrap(),
            Response::Dropped { seqs: vec![seq] }
        );
        assert_eq!(stored_blobs(&relay), 0);
        assert!(pull(&relay, &mut root).await.is_empty());
    });
}

/// A community id is bound to its root key: a stranger cannot register a real community's id
/// (`4401060010001`, a predictable `demo-7`) or another community's, and the refusal is the same
/// whether the id is registered here or not.
#[test]
fn a_stranger_cannot_take_a_community_id() {
    runtime().block_on(async {
        let relay = start(&[]);
        let pull_body = || Body::Pull {
            since: 0,
            max_bytes: 100,
        };
        let message = |body: &[u8]| {
            let text = String::from_utf8_lossy(body).to_string();
            // The device and community differ between cases; the rest must be the same.
            text.split_once("on this relay")
                .map(|(_, rest)| rest.to_string())
        };
        let mut squatter = Device::claiming("4401060010001", DeviceKey::generate().unwrap());
        let (status, unbound) = post(&relay, squatter.signed(pull_body())).await;
        assert_eq!(status, 403, "{}", String::from_utf8_lossy(&unbound));
        let mut demo = Device::claiming("demo-7", DeviceKey::generate().unwrap());
        assert_eq!(post(&relay, demo.signed(pull_body())).await.0, 403);

        // The real community registers; a stranger claiming its id gets the same refusal as
        // one claiming an id nobody registered.
        let mut root = Device::root("4401060010001");
        assert_eq!(post(&relay, root.signed(pull_body())).await.0, 200);
        let mut thief =
            Device::claiming(&root.membership.community, DeviceKey::generate().unwrap());
        let (status, taken) = post(&relay, thief.signed(pull_body())).await;
        assert_eq!(status, 403);
        assert_eq!(message(&taken), message(&unbound));
        let mut nobody = Device::claiming(
            &linli_wire::community_id("x", &DeviceKey::generate().unwrap().public()),
            DeviceKey::generate().unwrap(),
        );
        let (status, unknown) = post(&relay, nobody.signed(pull_body())).await;
        assert_eq!(status, 403);
        assert_eq!(message(&unknown), message(&unbound));
        // The real root still syncs.
        assert_eq!(post(&relay, root.signed(pull_body())).await.0, 200);
    });
}

/// First contacts are limited per source address (`--first-contacts-per-hour`), refused with
/// 429 and `Retry-After`; registered communities keep syncing meanwhile.
#[test]
fn first_contacts_are_rate_limited() {
    runtime().block_on(async {
        let relay = start(&["--first-contacts-per-hour", "2"]);
        let mut first = Device::root("a");
        assert_eq!(post(&relay, first.signed(hello())).await.0, 200);
        let mut second = Device::root("b");
        assert_eq!(post(&relay, second.signed(hello())).await.0, 200);
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut third = Device::root("c");
        let r = reqwest::Client::new()
            .post(format!("{}/v2", relay.url))
            .body(third.signed(hello()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 429);
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry > 3000 && retry <= 3600, "{retry}");
        assert_eq!(
            post(
                &relay,
                first.signed(Body::Push {
                    blobs: vec![blob("G01", "hh-1")]
                })
            )
            .await
            .0,
            200
        );
    });
}

/// A community's storage quota (`--quota-mb`): a push that does not fit is refused whole with
/// 507 and `Retry-After`; dropping blobs makes room again.
#[test]
fn each_community_has_a_storage_quota() {
    runtime().block_on(async {
        let relay = start(&["--quota-mb", "1"]);
        let mut root = Device::root("c1");
        let big = |doc: &str| {
            let mut b = blob("G01", doc);
            b.sealed = vec![7; 600 * 1024];
            b
        };
        let (status, body) = post(
            &relay,
            root.signed(Body::Push {
                blobs: vec![big("hh-1")],
            }),
        )
        .await;
        assert_eq!(status, 200);
        let seq = match linli_wire::decode::<Response>("response", &body).unwrap() {
            Response::Pushed { seqs } => seqs[0],
            other => panic!("{other:?}"),
        };
        let _ = rustls::crypto::ring::default_provider().install_default();
        let r = reqwest::Client::new()
            .post(format!("{}/v2", relay.url))
            .body(root.signed(Body::Push {
                blobs: vec![big("hh-2")],
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 507);
        assert!(r.headers().contains_key("retry-after"));
        let text = r.text().await.unwrap();
        assert!(text.contains("may keep 1 MB"), "{text}");
        assert_eq!(stored_blobs(&relay), 1);
        // Another community is not affected.
        let mut other = Device::root("c2");
        assert_eq!(
            post(
                &relay,
                other.signed(Body::Push {
                    blobs: vec![big("hh-1")]
                })
            )
            .await
            .0,
            200
        );
        // Room again once the first blob is dropped.
        assert_eq!(
            post(&relay, root.signed(Body::Drop { seqs: vec![seq] }))
                .await
                .0,
            200
        );
        assert_eq!(
            post(
                &relay,
                root.signed(Body::Push {
                    blobs: vec![big("hh-2")]
                })
            )
            .await
            .0,
            200
        );
    });
}

/// A relay process on the data directory `data` (kept after it is killed), and its address.
fn spawn_at(data: &std::path::Path, extra: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_linli-relay"))
        .arg("--data")
        .arg(data)
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    (child, line.trim().rsplit(' ').next().unwrap().to_string())
}

/// The smallest request: a pull of at most one byte (a first contact registers with it).
fn hello() -> Body {
    Body::Pull {
        since: 0,
        max_bytes: 1,
    }
}

/// Free space on the relay's file system, in MB.
fn free_mb(dir: &std::path::Path) -> u64 {
    let s = rustix::fs::statvfs(dir).unwrap();
    s.f_bavail * s.f_frsize / (1 << 20)
}

/// The disk reserve: when free space falls below it, no new community registers and young
/// ones may not push, while established communities keep syncing.
#[test]
fn the_disk_reserve_keeps_established_communities_syncing() {
    let dir = tempfile::tempdir().unwrap();
    let mut old = Device::root("old");
    let data = dir.path().join("relay");
    let (mut child, url) = spawn_at(&data, &["--young-hours", "0"]);
    runtime().block_on(async {
        let (status, _) = post_to(&url, old.signed(hello())).await;
        assert_eq!(status, 200);
    });
    let _ = child.kill();
    let _ = child.wait();
    // The reserve is now twice the free space: below it, but above a quarter of it.
    let reserve = (free_mb(dir.path()) * 2).to_string();
    let (mut child, url) = spawn_at(&data, &["--reserve-mb", &reserve, "--young-hours", "0"]);
    runtime().block_on(async {
        let mut newcomer = Device::root("new");
        let (status, body) = post_to(&url, newcomer.signed(hello())).await;
        assert_eq!(status, 507, "{}", String::from_utf8_lossy(&body));
        let (status, body) = post_to(
            &url,
            old.signed(Body::Push {
                blobs: vec![blob("G01", "hh-1")],
            }),
        )
        .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    });
    let _ = child.kill();
    let _ = child.wait();
}

/// A request counter far ahead of the relay's clock is refused (once accepted, it would refuse
/// every later request of that device as a replay); the device is not locked out.
#[test]
fn a_counter_far_ahead_of_the_clock_is_refused_and_locks_nobody_out() {
    runtime().block_on(async {
        let relay = start(&[]);
        let mut root = Device::root("c1");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        root.counter = now + 3 * 3600 * 1000;
        let (status, body) = post(&relay, root.signed(hello())).await;
        assert_eq!(status, 400);
        assert!(String::from_utf8_lossy(&body).contains("ahead of the relay's clock"));
        root.counter = now;
        assert_eq!(post(&relay, root.signed(hello())).await.0, 200);
        root.counter = u64::MAX - 5;
        assert_eq!(post(&relay, root.signed(hello())).await.0, 400);
        root.counter = now + 10;
        assert_eq!(post(&relay, root.signed(hello())).await.0, 200);
    });
}

/// Names that travel in clear are validated: a community id with a line break (a forged log
/// line), a scope or document id of another form.
#[test]
fn names_in_requests_are_validated() {
    runtime().block_on(async {
        let relay = start(&[]);
        let mut forger = Device::claiming(
            "c1\n2026-12-07T00:00:00Z INFO new community c-real",
            DeviceKey::generate().unwrap(),
        );
        let (status, body) = post(&relay, forger.signed(hello())).await;
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
        assert!(!String::from_utf8_lossy(&body).contains('\n'));
        let mut root = Device::root("c1");
        for (scope, doc) in [
            ("G 1", "hh-1"),
            ("G01", "hh/1"),
            ("G01", "张三"),
            ("\u{1b}[2J", "x"),
        ] {
            let (status, _) = post(
                &relay,
                root.signed(Body::Push {
                    blobs: vec![blob(scope, doc)],
                }),
            )
            .await;
            assert_eq!(status, 400, "{scope:?} {doc:?}");
        }
        assert_eq!(stored_blobs(&relay), 0);
    });
}

/// `GET /traffic` tells when and how much devices sync: answered only with `--traffic`.
#[test]
fn traffic_is_answered_only_when_asked_for() {
    runtime().block_on(async {
        let relay = start(&[]);
        let _ = rustls::crypto::ring::default_provider().install_default();
        let r = reqwest::get(format!("{}/traffic", relay.url))
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 404);
        let r = reqwest::get(format!("{}/health", relay.url)).await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        // A device of the protocol before this one is told to update.
        let r = reqwest::Client::new()
            .post(format!("{}/v1", relay.url))
            .body(vec![1, 2, 3])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 426);
        assert!(r.text().await.unwrap().contains("update Linli"));
    });
}

/// A relay locks its data directory: a second one on it exits at once, saying why; the data
/// directory and the database are readable by their owner only.
#[test]
fn a_second_relay_on_one_directory_exits_with_a_clear_message() {
    use std::os::unix::fs::PermissionsExt;
    let relay = start(&[]);
    let out = Command::new(env!("CARGO_BIN_EXE_linli-relay"))
        .arg("--data")
        .arg(relay.dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("already using"), "{text}");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(relay.dir.path()), 0o700);
    assert_eq!(mode(&relay.dir.path().join("relay.sqlite")), 0o600);
}

/// The relay's peak resident memory (`VmHWM`), in MB.
fn peak_rss_mb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .unwrap()
        / 1024
}

/// Eight strangers with forged chains, eight first contacts and eight members push requests of
/// the largest size at once: strangers are refused from their first bytes, first contacts as
/// larger than strangers may hold, members are stored or told to come back, and the relay stays
/// under 400 MB (it went to 2.48 GB for eight, some 300 MB a request).
#[test]
fn eight_maximal_requests_at_once_keep_the_relay_under_400_mb() {
    runtime().block_on(async {
        let relay = start(&[]);
        let mut root = Device::root("c1");
        assert_eq!(post(&relay, root.signed(hello())).await.0, 200);
        let size = linli_wire::relay::MAX_REQUEST - 4096;
        let signing = std::time::Instant::now();
        let mut requests = Vec::new();
        for i in 0..8 {
            // A first contact of the largest size: larger than strangers may hold.
            let mut newcomer = Device::root(&format!("n{i}"));
            let mut b = blob("G01", &format!("hh-{i}"));
            b.sealed = vec![i as u8; size];
            requests.push(newcomer.signed(Body::Push { blobs: vec![b] }));
            let mut stranger = Device::root(&format!("s{i}"));
            stranger.membership.certs.push(root.member(Role::Staff, &[]).membership.certs[0].clone());
            let mut b = blob("G01", &format!("hh-{i}"));
            b.sealed = vec![i as u8; size];
            requests.push(stranger.signed(Body::Push { blobs: vec![b.clone()] }));
            let mut member = root.member(Role::Staff, &[]);
            requests.push(member.signed(Body::Push { blobs: vec![b] }));
        }
        println!("24 requests signed in {:?}", signing.elapsed());
        let sending = std::time::Instant::now();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::new();
        let sent: Vec<_> = requests
            .into_iter()
            .map(|body| {
                let (client, url) = (client.clone(), relay.url.clone());
                tokio::spawn(async move {
                    match client.post(format!("{url}/v2")).body(body).send().await {
                        Ok(r) => Some(r.status().as_u16()),
                        // A refused stranger's connection is closed while it still sends.
                        Err(_) => None,
                    }
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for s in sent {
            statuses.push(tokio::time::timeout(Duration::from_secs(120), s).await.unwrap().unwrap());
        }
        let stored = statuses.iter().filter(|s| **s == Some(200)).count();
        assert!(stored >= 1, "{statuses:?}");
        assert!(
            statuses.iter().all(|s| matches!(s, None | Some(200 | 400 | 403 | 503))),
            "{statuses:?}"
        );
        let peak = peak_rss_mb(relay.child.id());
        println!(
            "relay peak RSS with 24 requests of 64 MiB at once: {peak} MB; statuses {statuses:?} in {:?}",
            sending.elapsed()
        );
        assert!(peak < 400, "the relay's peak RSS was {peak} MB");
        let r = client.get(format!("{}/health", relay.url)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
    });
}

/// 200 connections that never finish (silent, a header line every few seconds, a body that
/// never completes) are closed within 30 s, while a member syncs meanwhile.
#[test]
fn connections_that_never_finish_are_closed_while_members_sync() {
    use std::io::{Read, Write};
    runtime().block_on(async {
        let relay = start(&[]);
        let addr = relay.url.trim_start_matches("http://").to_string();
        let started = std::time::Instant::now();
        let mut conns = Vec::new();
        for i in 0..200 {
            let mut c = std::net::TcpStream::connect(&addr).unwrap();
            match i % 3 {
                0 => {}
                1 => c.write_all(b"POST /v2 HTTP/1.1\r\nHost: x\r\n").unwrap(),
                _ => c
                    .write_all(
                        b"POST /v2 HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n\x00\x01",
                    )
                    .unwrap(),
            }
            c.set_nonblocking(true).unwrap();
            conns.push((i, c));
        }
        // A member syncs while they hang.
        let mut root = Device::root("c1");
        let (status, _) = post(
            &relay,
            root.signed(Body::Push {
                blobs: vec![blob("G01", "hh-1")],
            }),
        )
        .await;
        assert_eq!(status, 200);
        assert!(started.elapsed() < Duration::from_secs(5));
        // Keep trickling header lines; count connections the relay closed.
        let mut open: Vec<(usize, std::net::TcpStream)> = conns;
        let deadline = started + Duration::from_secs(40);
        while !open.is_empty() && std::time::Instant::now() < deadline {
            let mut still = Vec::new();
            for (i, mut c) in open {
                if i % 3 == 1 {
                    let _ = c.write(b"X-Slow: 1\r\n");
                }
                let mut buf = [0u8; 512];
                match c.read(&mut buf) {
                    // Closed (after a refusal, or without a word).
                    Ok(0) => {}
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut =>
                    {
                        still.push((i, c))
                    }
                    Err(_) => {}
                    // An answer (408): read on until it closes.
                    Ok(_) => still.push((i, c)),
                }
            }
            open = still;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let took = started.elapsed();
        assert!(
            open.is_empty(),
            "{} connections still open after {took:?}",
            open.len()
        );
        assert!(took < Duration::from_secs(31), "closed after {took:?}");
        println!("200 unfinished connections closed within {took:?}");
        // And members still sync.
        let mut g1 = root.member(Role::Grid, &["G01"]);
        assert_eq!(pull(&relay, &mut g1).await.len(), 1);
    });
}

/// Under an open-file limit of 128, 150 silent connections do not stop the relay: it refuses
/// connections beyond its cap at once, and a member gets through once the silent ones are closed.
#[test]
fn an_open_file_limit_does_not_stop_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 128 && exec {} --data {} --listen 127.0.0.1:0",
            env!("CARGO_BIN_EXE_linli-relay"),
            dir.path().display()
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_string();
    let addr = url.trim_start_matches("http://").to_string();
    let silent: Vec<_> = (0..150)
        .filter_map(|_| std::net::TcpStream::connect(&addr).ok())
        .collect();
    let started = std::time::Instant::now();
    let mut root = Device::root("c1");
    let ok = runtime().block_on(async {
        while started.elapsed() < Duration::from_secs(30) {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let sent = reqwest::Client::new()
                .post(format!("{url}/v2"))
                .body(root.signed(hello()))
                .timeout(Duration::from_secs(5))
                .send()
                .await;
            if let Ok(r) = sent
                && r.status().as_u16() == 200
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        false
    });
    println!("a member got through after {:?}", started.elapsed());
    drop(silent);
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok, "no member request got through in 30 s");
}

/// Strangers registering new communities with large bodies they never finish hold memory of
/// the strangers' share only: a member's request goes through at once meanwhile.
#[test]
fn strangers_holding_requests_open_do_not_block_members() {
    use std::io::Write;
    runtime().block_on(async {
        // Strangers may hold 10 MB here (a quarter of 40).
        let relay = start(&["--inflight-mb", "40"]);
        let mut root = Device::root("c1");
        assert_eq!(post(&relay, root.signed(hello())).await.0, 200);
        let addr = relay.url.trim_start_matches("http://").to_string();
        // Four of them would hold 36 MB of the 40 if strangers shared the members' room.
        let mut held = Vec::new();
        for i in 0..4 {
            let mut stranger = Device::root(&format!("s{i}"));
            let mut b = blob("G01", "hh-1");
            b.sealed = vec![1; 9 << 20];
            let body = stranger.signed(Body::Push { blobs: vec![b] });
            let mut c = std::net::TcpStream::connect(&addr).unwrap();
            write!(
                c,
                "POST /v2 HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .unwrap();
            // Its membership and a little more, then nothing.
            c.write_all(&body[..100_000]).unwrap();
            held.push(c);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let started = std::time::Instant::now();
        let mut big = blob("G01", "hh-2");
        big.sealed = vec![2; 8 << 20];
        let (status, body) = post(&relay, root.signed(Body::Push { blobs: vec![big] })).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the member waited {:?}",
            started.elapsed()
        );
        drop(held);
    });
}
