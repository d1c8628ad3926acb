//! The peer protocol over an in-memory network, with real stores (SQLite files): convergence of
//! 3–5 replicas under random edits and sync orders (seeded), scopes, and faults — a cut
//! connection, damaged and out-of-scope messages, replayed messages, silence.

use linli_testkit::namespaces;
use linli_testkit::roster as common;

use std::collections::{BTreeMap, VecDeque};

use common::{households, new_store};
use linli_proto::peer::{PeerError, Side};
use linli_store::Store;
use linli_sync::relay_client::SyncError;
use linli_sync::{PeerReport, Replica};
use linli_wire::Role;
use linli_wire::peer::PeerMsg;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

/// Rewrites a frame in transit.
type Tamper = Box<dyn FnMut(Vec<u8>) -> Vec<u8>>;

/// What the network does to frames on their way.
#[derive(Default)]
struct Faults {
    /// Deliver this many frames in all, then cut the connection.
    cut_after: Option<usize>,
    /// Rewrites frames from the initiator to the responder.
    tamper: Option<Tamper>,
    /// Frames from the initiator that were delivered (for replays).
    record: Option<Vec<Vec<u8>>>,
}

/// Why a simulated sync ended early.
#[derive(Debug)]
enum NetError {
    /// A side failed (its error), after telling the other why.
    Failed {
        side: &'static str,
        error: SyncError,
    },
    /// The network cut the connection.
    Cut,
}

/// Syncs `a` (initiator) with `b` (responder) over an in-memory network with a virtual clock.
fn sync_with(
    a: &mut Store,
    b: &mut Store,
    faults: &mut Faults,
) -> Result<(PeerReport, PeerReport), NetError> {
    let ka = a.identity().unwrap_or_else(|e| panic!("{e}")).key.public();
    let kb = b.identity().unwrap_or_else(|e| panic!("{e}")).key.public();
    let mut now = 1_000;
    let failed = |side, error| NetError::Failed { side, error };
    let mut ra = Replica::new(a, Side::Initiator, kb, now).map_err(|e| failed("initiator", e))?;
    let mut rb = Replica::new(b, Side::Responder, ka, now).map_err(|e| failed("responder", e))?;
    let mut to_b: VecDeque<Vec<u8>> = VecDeque::new();
    let mut to_a: VecDeque<Vec<u8>> = VecDeque::new();
    let mut delivered = 0;
    for _ in 0..1_000_000 {
        now += 1;
        match ra.poll(now) {
            Ok(frames) => to_b.extend(frames),
            Err(error) => {
                if let Some(f) = Replica::refusal(&error) {
                    rb.receive(f);
                    let _ = rb.poll(now);
                }
                return Err(failed("initiator", error));
            }
        }
        match rb.poll(now) {
            Ok(frames) => to_a.extend(frames),
            Err(error) => {
                if let Some(f) = Replica::refusal(&error) {
                    ra.receive(f);
                    let _ = ra.poll(now);
                }
                return Err(failed("responder", error));
            }
        }
        if ra.is_finished() && rb.is_finished() && to_a.is_empty() && to_b.is_empty() {
            let (Some(x), Some(y)) = (ra.report(), rb.report()) else {
                panic!("finished without a report");
            };
            return Ok((x, y));
        }
        if to_a.is_empty() && to_b.is_empty() {
            panic!("stalled: {ra:?} / {rb:?}");
        }
        if let Some(f) = to_b.pop_front() {
            if faults.cut_after.is_some_and(|n| delivered >= n) {
                return Err(NetError::Cut);
            }
            delivered += 1;
            let f = match faults.tamper.as_mut() {
                Some(t) => t(f),
                None => f,
            };
            if let Some(r) = faults.record.as_mut() {
                r.push(f.clone());
            }
            rb.receive(f);
        }
        if let Some(f) = to_a.pop_front() {
            if faults.cut_after.is_some_and(|n| delivered >= n) {
                return Err(NetError::Cut);
            }
            delivered += 1;
            ra.receive(f);
        }
    }
    panic!("the session did not end in 1,000,000 steps");
}

fn sync(a: &mut Store, b: &mut Store) -> (PeerReport, PeerReport) {
    sync_with(a, b, &mut Faults::default()).unwrap_or_else(|e| panic!("{e:?}"))
}

/// Two distinct stores of `stores`, mutably.
fn pair(stores: &mut [Store], i: usize, j: usize) -> (&mut Store, &mut Store) {
    assert_ne!(i, j);
    if i < j {
        let (x, y) = stores.split_at_mut(j);
        (&mut x[i], &mut y[0])
    } else {
        let (x, y) = stores.split_at_mut(i);
        (&mut y[0], &mut x[j])
    }
}

/// A store that joined the community of `inviter` with `role`.
fn member(dir: &std::path::Path, inviter: &Store, role: Role, grids: &[&str]) -> Store {
    let grids: Vec<String> = grids.iter().map(|g| g.to_string()).collect();
    let invite = inviter
        .invite(role, &grids, None)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut store = Store::open(dir, &linli_testkit::key()).unwrap_or_else(|e| panic!("{e}"));
    store.join(&invite).unwrap_or_else(|e| panic!("{e}"));
    store
}

/// Every document: id → (scope, heads).
fn state(store: &Store) -> BTreeMap<String, (String, Vec<u8>)> {
    store
        .summary()
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|i| (i.id, (i.scope, i.heads)))
        .collect()
}

fn heads_of(store: &Store, id: &str) -> Vec<u8> {
    state(store)
        .remove(id)
        .map(|(_, h)| h)
        .unwrap_or_else(|| panic!("{id} missing"))
}

/// Records that `peer` holds every document of `store` as it is now.
fn mark_all_sent(store: &mut Store, peer: &str) {
    let known: Vec<(String, Vec<u8>)> = state(store)
        .into_iter()
        .map(|(id, (_, heads))| (id, heads))
        .collect();
    store
        .mark_sent(peer, &known)
        .unwrap_or_else(|e| panic!("{e}"));
}

fn root_with(dir: &std::path::Path, n: usize) -> Store {
    let mut root = new_store(dir);
    root.put(households(0..n), "import")
        .unwrap_or_else(|e| panic!("{e}"));
    root
}

#[test]
fn a_grid_worker_gets_its_grid_and_edits_meet_both_ways() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut staff = root_with(&tmp.path().join("staff"), 60);
    let mut worker = member(&tmp.path().join("worker"), &staff, Role::Grid, &["G01"]);

    // A fresh device asks for everything it may see, without reconciliation.
    let (w, s) = sync(&mut worker, &mut staff);
    assert_eq!(w.rounds, 0);
    assert_eq!(w.counts.round_trips, 3, "{w:?}");
    let got = state(&worker);
    let all = state(&staff);
    let expected: Vec<&String> = all
        .iter()
        .filter(|(_, (scope, _))| scope == "G01" || scope == "*")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(got.keys().collect::<Vec<_>>(), expected);
    assert!(
        got.values()
            .all(|(scope, _)| scope != "G02" && scope != "G03")
    );
    assert_eq!(w.counts.created, expected.len());
    assert_eq!(s.counts.sent, expected.len());
    assert_eq!(
        got,
        all.iter()
            .filter(|(id, _)| got.contains_key(*id))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    );

    // Concurrent edits to the same household on both devices, and one each alone.
    worker
        .edit("hh-000000", "notes", "独居, 每周探访")
        .unwrap_or_else(|e| panic!("{e}"));
    staff
        .edit("p-0000000", "phone", "13800001111")
        .unwrap_or_else(|e| panic!("{e}"));
    worker
        .edit("hh-000003", "notes", "楼道堆物")
        .unwrap_or_else(|e| panic!("{e}"));
    staff
        .edit("hh-000006", "notes", "已整改")
        .unwrap_or_else(|e| panic!("{e}"));
    staff
        .edit("hh-000001", "notes", "G02, not for the worker")
        .unwrap_or_else(|e| panic!("{e}"));

    let before_w = state(&worker);
    let before_s = state(&staff);
    let differ: Vec<&String> = before_w
        .iter()
        .filter(|(k, v)| before_s.get(*k) != Some(v))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        differ,
        ["hh-000000", "hh-000000.pii", "hh-000003", "hh-000006"]
    );
    let (w, s) = sync(&mut worker, &mut staff);
    assert!(w.rounds >= 1, "{w:?}");
    assert_eq!(w.counts.sent, 2, "{w:?}");
    assert_eq!(s.counts.sent, 2, "{s:?}");
    // Exactly what each side lacked: nothing arrived that was already there.
    assert_eq!(
        (w.counts.unchanged, s.counts.unchanged),
        (0, 0),
        "{w:?} {s:?}"
    );
    assert!(w.counts.bytes_up + w.counts.bytes_down < 40_000, "{w:?}");
    for id in ["hh-000000", "hh-000000.pii", "hh-000003", "hh-000006"] {
        if state(&worker).contains_key(id) {
            assert_eq!(heads_of(&worker, id), heads_of(&staff, id), "{id}");
        }
    }
    let (h, s) = worker
        .household("hh-000000")
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("gone"));
    assert_eq!(h.notes, "独居, 每周探访");
    assert_eq!(
        s.people.get("p-0000000").map(|p| p.phone.as_str()),
        Some("13800001111")
    );
    assert!(!state(&worker).contains_key("hh-000001"));

    // In step now: one round, nothing sent.
    let (w, s) = sync(&mut worker, &mut staff);
    assert_eq!(
        (w.counts.sent, s.counts.sent, w.counts.round_trips),
        (0, 0, 2),
        "{w:?}"
    );
}

fn edit_random(store: &mut Store, pick: usize, value: u32) {
    let ids: Vec<String> = state(store)
        .into_iter()
        .filter(|(id, _)| id.starts_with("hh-") && !id.contains('.'))
        .map(|(id, _)| id)
        .collect();
    if ids.is_empty() {
        return;
    }
    let id = &ids[pick % ids.len()];
    // Notes change no derived row; a phone, tags and a name do (q_pii, q_tags, q_people).
    let person = id.replace("hh-", "p-0");
    let r = match value % 4 {
        0 => store.edit(id, "notes", &format!("note {value}")),
        1 => store.edit(&person, "phone", &format!("139{:08}", value % 100_000_000)),
        2 => store.edit(
            &person,
            "tags",
            ["独居老人", "低保", "独居老人,低保", "[]"][(value / 4 % 4) as usize],
        ),
        _ => store.edit(
            &person,
            "name",
            ["张伟", "李娜", "王芳"][(value / 4 % 3) as usize],
        ),
    };
    r.unwrap_or_else(|e| panic!("edit {id}: {e}"));
}

#[derive(Debug, Clone)]
enum Op {
    Edit {
        replica: usize,
        pick: usize,
        value: u32,
    },
    Sync {
        a: usize,
        b: usize,
        cut: Option<usize>,
    },
}

fn op(n: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..n, any::<usize>(), any::<u32>()).prop_map(|(replica, pick, value)| Op::Edit {
            replica,
            pick,
            value
        }),
        (0..n, 0..n, prop::option::weighted(0.25, 0..12usize)).prop_map(|(a, b, cut)| Op::Sync {
            a,
            b,
            cut
        }),
    ]
}

fn scenario() -> impl Strategy<Value = (Vec<usize>, Vec<Op>)> {
    (3..=5usize).prop_flat_map(|n| {
        (
            // The role of each replica after the root: 0 staff, 1 worker G01, 2 worker G02, 3 owners.
            prop::collection::vec(0..4usize, n - 1),
            prop::collection::vec(op(n), 1..40),
        )
    })
}

proptest! {
    #![proptest_config(Config {
        cases: 12,
        rng_seed: RngSeed::Fixed(0x11c1_2026),
        failure_persistence: None,
        ..Config::default()
    })]

    /// 3–5 replicas with different roles make random edits offline (often to the same
    /// households), sync in random pairs and orders with some connections cut halfway; after
    /// everyone has synced with the staff root twice, every replica holds exactly the documents
    /// of its scopes, each identical to the root's.
    #[test]
    fn replicas_converge((roles, ops) in scenario()) {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut stores = vec![root_with(&tmp.path().join("r0"), 24)];
        let mut grants = vec![None];
        for (i, role) in roles.iter().enumerate() {
            let (r, g): (Role, &[&str]) = match role {
                0 => (Role::Staff, &[]),
                1 => (Role::Grid, &["G01"]),
                2 => (Role::Grid, &["G02"]),
                _ => (Role::Owners, &[]),
            };
            stores.push(member(&tmp.path().join(format!("r{}", i + 1)), &stores[0], r, g));
            grants.push(Some(g.first().map(|s| s.to_string())));
        }
        let n = stores.len();
        for op in ops {
            match op {
                Op::Edit { replica, pick, value } => edit_random(&mut stores[replica % n], pick, value),
                Op::Sync { a, b, cut } if a % n != b % n => {
                    let (x, y) = pair(&mut stores, a % n, b % n);
                    let mut faults = Faults { cut_after: cut, ..Faults::default() };
                    match sync_with(x, y, &mut faults) {
                        Ok(_) | Err(NetError::Cut) => {}
                        Err(e) => panic!("sync {a}-{b}: {e:?}"),
                    }
                }
                Op::Sync { .. } => {}
            }
        }
        for _ in 0..2 {
            for i in 1..n {
                let (x, y) = pair(&mut stores, i, 0);
                sync(x, y);
            }
        }
        let root = state(&stores[0]);
        for (i, store) in stores.iter().enumerate().skip(1) {
            let me = store.identity().unwrap_or_else(|e| panic!("{e}"));
            let expected: BTreeMap<String, (String, Vec<u8>)> = root
                .iter()
                .filter(|(_, (scope, _))| me.grant.may_use(scope))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            prop_assert_eq!(&state(store), &expected, "replica {} ({})", i, me.grant.describe());
        }
        // The derived tables, kept up to date write by write and merge by merge, equal a
        // rebuild from the documents.
        for store in &mut stores {
            let kept = store.dump_index().unwrap_or_else(|e| panic!("{e}"));
            store.rebuild_index().unwrap_or_else(|e| panic!("{e}"));
            prop_assert_eq!(kept, store.dump_index().unwrap_or_else(|e| panic!("{e}")));
        }
    }
}

#[test]
fn a_cut_connection_resumes_without_loss_or_duplicates() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut staff = root_with(&tmp.path().join("staff"), 600);
    let mut other = member(&tmp.path().join("other"), &staff, Role::Staff, &[]);
    // 1,200+ documents: several batches. Cut after the first batch arrived.
    let mut faults = Faults {
        cut_after: Some(5),
        ..Faults::default()
    };
    assert!(matches!(
        sync_with(&mut other, &mut staff, &mut faults),
        Err(NetError::Cut)
    ));
    let partial = state(&other).len();
    assert!(partial > 0 && partial < state(&staff).len(), "{partial}");
    let feed_before = other.feed_head().unwrap_or_else(|e| panic!("{e}"));

    let (o, _) = sync(&mut other, &mut staff);
    assert_eq!(o.counts.created + partial, state(&staff).len(), "{o:?}");
    assert_eq!(o.counts.changed, 0, "nothing received twice: {o:?}");
    assert_eq!(state(&other), state(&staff));
    assert_eq!(
        other.feed_head().unwrap_or_else(|e| panic!("{e}")) - feed_before,
        o.counts.created as i64
    );
}

/// The receiving device's disk fills during a sync: the batch that did not fit is refused
/// whole (the session fails with the full-disk error), every batch before it stays, and the
/// next sync with room brings exactly the rest.
#[test]
fn a_full_disk_stops_a_sync_without_loss_and_the_next_sync_completes() {
    // The receiving device's store on a small tmpfs that really fills up.
    let Some(disk) = namespaces::on_small_disk(
        "a_full_disk_stops_a_sync_without_loss_and_the_next_sync_completes",
        6144,
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut staff = root_with(&tmp.path().join("staff"), 600);
    let mut other = member(&disk.join("other"), &staff, Role::Staff, &[]);
    // Room for a few batches (of 600 households and their sensitive documents), not all:
    // the rest is held by a file given back afterwards.
    let ballast = disk.join("ballast");
    std::fs::write(&ballast, vec![1u8; 4 * 1024 * 1024]).unwrap_or_else(|e| panic!("{e}"));
    let err = match sync_with(&mut other, &mut staff, &mut Faults::default()) {
        Err(NetError::Failed { error, .. }) => error,
        other => panic!("the sync should fail: {other:?}"),
    };
    assert!(
        matches!(&err, SyncError::Store(e) if e.is_storage_full()),
        "{err}"
    );
    let partial = state(&other).len();
    assert!(partial > 0 && partial < state(&staff).len(), "{partial}");
    std::fs::remove_file(&ballast).unwrap_or_else(|e| panic!("{e}"));
    let (o, _) = sync(&mut other, &mut staff);
    assert_eq!(o.counts.created + partial, state(&staff).len(), "{o:?}");
    assert_eq!(o.counts.changed, 0, "nothing received twice: {o:?}");
    assert_eq!(state(&other), state(&staff));
}

#[test]
fn damaged_and_out_of_scope_messages_are_refused_and_nothing_is_stored() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut staff = root_with(&tmp.path().join("staff"), 30);
    let mut worker = member(&tmp.path().join("worker"), &staff, Role::Grid, &["G01"]);
    sync(&mut worker, &mut staff);
    worker
        .edit("hh-000000", "notes", "有变化")
        .unwrap_or_else(|e| panic!("{e}"));
    let before = state(&staff);

    // A bit flipped in transit: the frame's checksum catches it.
    let mut faults = Faults {
        tamper: Some(Box::new(|mut f: Vec<u8>| {
            if matches!(PeerMsg::from_frame(&f), Ok(PeerMsg::Docs { .. })) {
                let mid = f.len() / 2;
                f[mid] ^= 0x10;
            }
            f
        })),
        ..Faults::default()
    };
    let err = sync_with(&mut worker, &mut staff, &mut faults).unwrap_err();
    assert!(
        matches!(
            &err,
            NetError::Failed {
                side: "responder",
                error: SyncError::Peer(PeerError::Wire(_))
            }
        ),
        "{err:?}"
    );
    assert_eq!(state(&staff), before);

    // A grid worker's device relabels its G01 household as G02: refused as out of scope.
    let relabel = |to: &'static str| {
        move |f: Vec<u8>| match PeerMsg::from_frame(&f) {
            Ok(PeerMsg::Docs {
                mut docs,
                heads,
                hashes,
                last,
            }) => {
                for d in &mut docs {
                    d.scope = to.to_string();
                }
                PeerMsg::Docs {
                    docs,
                    heads,
                    hashes,
                    last,
                }
                .to_frame()
                .unwrap_or(f)
            }
            _ => f,
        }
    };
    let mut faults = Faults {
        tamper: Some(Box::new(relabel("G02"))),
        ..Faults::default()
    };
    let err = sync_with(&mut worker, &mut staff, &mut faults).unwrap_err();
    let NetError::Failed {
        side: "responder",
        error: SyncError::Peer(PeerError::OutOfScope { doc, scope, .. }),
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!((doc.as_str(), scope.as_str()), ("hh-000000", "G02"));
    assert_eq!(state(&staff), before);

    // Relabelled as community-wide (a scope it may use): the record itself says G01, so the
    // store refuses the batch.
    let mut faults = Faults {
        tamper: Some(Box::new(relabel("*"))),
        ..Faults::default()
    };
    let err = sync_with(&mut worker, &mut staff, &mut faults).unwrap_err();
    let NetError::Failed {
        side: "responder",
        error,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert!(error.to_string().contains("hh-000000"), "{error}");
    assert_eq!(state(&staff), before);

    // Untouched, it goes through.
    sync(&mut worker, &mut staff);
    assert_eq!(
        heads_of(&staff, "hh-000000"),
        heads_of(&worker, "hh-000000")
    );
}

#[test]
fn a_replayed_session_is_harmless() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut staff = root_with(&tmp.path().join("staff"), 30);
    let mut worker = member(&tmp.path().join("worker"), &staff, Role::Grid, &["G01"]);
    sync(&mut worker, &mut staff);
    worker
        .edit("hh-000000", "notes", "第一次")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut faults = Faults {
        record: Some(Vec::new()),
        ..Faults::default()
    };
    sync_with(&mut worker, &mut staff, &mut faults).unwrap_or_else(|e| panic!("{e:?}"));
    let recorded = faults.record.unwrap_or_default();
    assert!(recorded.len() >= 3);
    staff
        .edit("hh-000000", "notes", "后来的修改")
        .unwrap_or_else(|e| panic!("{e}"));
    let before = state(&staff);
    let feed = staff.feed_head().unwrap_or_else(|e| panic!("{e}"));

    // The worker's old frames, replayed into a new session of the staff device.
    let kw = worker
        .identity()
        .unwrap_or_else(|e| panic!("{e}"))
        .key
        .public();
    let mut r = Replica::new(&mut staff, Side::Responder, kw, 0).unwrap_or_else(|e| panic!("{e}"));
    for f in recorded {
        r.receive(f);
        if r.poll(1).is_err() {
            break;
        }
        while let Ok(frames) = r.poll(1) {
            if frames.is_empty() {
                break;
            }
        }
    }
    drop(r);
    assert_eq!(state(&staff), before, "nothing changed");
    assert_eq!(staff.feed_head().unwrap_or_else(|e| panic!("{e}")), feed);
    let (h, _) = staff
        .household("hh-000000")
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("gone"));
    assert_eq!(h.notes, "后来的修改");
}

#[test]
fn a_non_member_and_a_key_mismatch_are_refused() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut staff = root_with(&tmp.path().join("staff"), 6);
    let mut stranger = root_with(&tmp.path().join("stranger"), 6);
    let err = sync_with(&mut stranger, &mut staff, &mut Faults::default()).unwrap_err();
    let NetError::Failed {
        side: "responder",
        error,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert!(error.to_string().contains("not a member"), "{error}");

    // A member's chain presented over a connection from another key.
    let mut worker = member(&tmp.path().join("worker"), &staff, Role::Grid, &["G01"]);
    let ks = staff
        .identity()
        .unwrap_or_else(|e| panic!("{e}"))
        .key
        .public();
    let mut r =
        Replica::new(&mut staff, Side::Initiator, [7; 32], 0).unwrap_or_else(|e| panic!("{e}"));
    let hello = r.poll(0).unwrap_or_else(|e| panic!("{e}"));
    let mut w = Replica::new(&mut worker, Side::Responder, ks, 0).unwrap_or_else(|e| panic!("{e}"));
    for f in hello {
        w.receive(f);
    }
    // The worker sees the staff device's real chain: fine. The staff side expected key [7; 32].
    let answer = w.poll(0).unwrap_or_else(|e| panic!("{e}"));
    for f in answer {
        r.receive(f);
    }
    let err = r.poll(0).unwrap_err();
    assert!(
        err.to_string().contains("connection is from device"),
        "{err}"
    );
}

#[test]
fn a_silent_peer_times_out() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut staff = root_with(&tmp.path().join("staff"), 3);
    let mut r =
        Replica::new(&mut staff, Side::Initiator, [7; 32], 0).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.poll(0).unwrap_or_else(|e| panic!("{e}")).len(), 1);
    r.tick();
    assert!(r.poll(10_000).is_ok());
    r.tick();
    let err = r.poll(linli_proto::peer::TIMEOUT_MS + 1).unwrap_err();
    assert!(
        matches!(err, SyncError::Peer(PeerError::Timeout(_))),
        "{err}"
    );
}

/// What arrives from a peer (the relay, say) and is stored exactly as the peer has it does not
/// wait to go back to it: its outbox's watermark moves past the merge, so the next look at what
/// waits costs nothing. A change made here before or after such a merge still goes.
#[test]
fn what_arrives_from_a_peer_does_not_wait_to_go_back() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut a = root_with(&tmp.path().join("a"), 12);
    let mut b = member(&tmp.path().join("b"), &a, Role::Staff, &[]);
    let from = |a: &Store, ids: &[&str]| -> Vec<linli_store::Incoming> {
        let all = state(a);
        ids.iter()
            .map(|id| {
                let (collection, mut doc) = a
                    .load_doc(id)
                    .unwrap_or_else(|e| panic!("{e}"))
                    .unwrap_or_else(|| panic!("{id} missing"));
                linli_store::Incoming {
                    scope: all[*id].0.clone(),
                    id: id.to_string(),
                    collection: collection.code().to_string(),
                    bytes: doc.save(),
                }
            })
            .collect()
    };
    let waiting = |b: &Store| -> Vec<String> {
        b.outbox("relay")
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .flat_map(|o| o.heads.into_iter().map(|(id, _)| id))
            .collect()
    };
    let everything: Vec<String> = state(&a).into_keys().collect();
    let ids: Vec<&str> = everything.iter().map(String::as_str).collect();
    let r = b
        .merge("relay", from(&a, &ids), Some(1))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.created >= 24, "{r:?}");
    let head = b.feed_head().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.sent_seq("relay").unwrap_or_else(|e| panic!("{e}")), head);
    assert!(waiting(&b).is_empty());

    // A change here, then another merge: the change still waits, the merged document does not.
    b.edit("hh-000002", "notes", "楼道灯坏了")
        .unwrap_or_else(|e| panic!("{e}"));
    a.edit("hh-000004", "notes", "已修好")
        .unwrap_or_else(|e| panic!("{e}"));
    b.merge("relay", from(&a, &["hh-000004"]), Some(2))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(waiting(&b), ["hh-000002"]);
    assert_eq!(
        b.sent_seq("relay").unwrap_or_else(|e| panic!("{e}")),
        head,
        "not past the change that waits"
    );
}

/// A document a peer lacks goes whole, without Automerge's own column compression: the bundle
/// it is sealed in is compressed as a whole, which does better on plain bytes (the benchmark's
/// first upload and initial sync: 2.55 -> 2.17 MB on the wire).
#[test]
fn a_document_sent_whole_goes_uncompressed_and_bundles_compress_better() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let a = root_with(dir.path(), 40);
    let outbox = a.outbox("relay").unwrap_or_else(|e| panic!("{e}"));
    let (mut plain, mut deflated) = (Vec::new(), Vec::new());
    for d in outbox.iter().flat_map(|o| &o.docs) {
        let (_, mut doc) = a
            .load_doc(&d.id)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("{} missing", d.id));
        let mut loaded = automerge::AutoCommit::load(&d.bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.get_heads(), doc.get_heads(), "{}", d.id);
        assert_eq!(d.bytes, doc.save_nocompress(), "{}", d.id);
        plain.extend_from_slice(&d.bytes);
        deflated.extend_from_slice(&doc.save());
    }
    // Bundles are compressed with zstd at level 9 (`linli_wire::seal_bundle`).
    let zstd = |b: &[u8]| {
        zstd::bulk::compress(b, 9)
            .unwrap_or_else(|e| panic!("{e}"))
            .len()
    };
    assert!(
        zstd(&plain) < zstd(&deflated),
        "{} >= {}",
        zstd(&plain),
        zstd(&deflated)
    );
}

#[test]
fn the_outbox_sends_stored_chunks_that_bring_the_peer_exactly_up_to_date() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut a = root_with(dir.path(), 4);
    let ids = ["hh-000001", "hh-000002"];
    // The peer holds both documents as they are now.
    let mut copies: Vec<automerge::AutoCommit> = ids
        .iter()
        .map(|id| {
            let (_, mut doc) = a
                .load_doc(id)
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|| panic!("{id} missing"));
            automerge::AutoCommit::load(&doc.save()).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    mark_all_sent(&mut a, "relay");
    // Two edits of one (two chunks after the peer's heads), and, for the other, more edits
    // than a document keeps as chunks (folded into a snapshot: its changes come from the
    // document instead).
    a.edit(ids[0], "notes", "楼道灯坏了")
        .unwrap_or_else(|e| panic!("{e}"));
    a.edit(ids[0], "notes", "楼道灯已修好")
        .unwrap_or_else(|e| panic!("{e}"));
    for i in 0..linli_store::store::COMPACT_AFTER + 2 {
        a.edit(ids[1], "notes", &format!("第{i}次回访"))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let outbox = a.outbox("relay").unwrap_or_else(|e| panic!("{e}"));
    let payloads: BTreeMap<&str, &[u8]> = outbox
        .iter()
        .flat_map(|o| o.docs.iter().map(|d| (d.id.as_str(), d.bytes.as_slice())))
        .collect();
    assert_eq!(payloads.keys().copied().collect::<Vec<_>>(), ids);
    for (id, copy) in ids.iter().zip(&mut copies) {
        copy.load_incremental(payloads[id])
            .unwrap_or_else(|e| panic!("{e}"));
        let (_, mut doc) = a
            .load_doc(id)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("{id} missing"));
        assert_eq!(copy.get_heads(), doc.get_heads(), "{id}");
        assert_eq!(copy.save(), doc.save(), "{id}");
    }
    // Only the changes: not the whole document again.
    let (_, mut whole) = a
        .load_doc(ids[0])
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("missing"));
    assert!(payloads[ids[0]].len() < whole.save().len() / 2);
}

/// Pruning the change feed deletes exactly the writes later ones superseded (neither their
/// document's latest nor one of its stored chunks), and changes nothing any reader sees.
#[test]
fn pruning_the_feed_deletes_only_superseded_writes() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut a = root_with(dir.path(), 4);
    let ids = ["hh-000001", "hh-000002", "hh-000003"];
    mark_all_sent(&mut a, "relay");
    // The first: two chunks after its first write. The second: folded into a snapshot at
    // its 16th edit, then two chunks. The third: one chunk.
    for note in ["楼道灯坏了", "楼道灯已修好"] {
        a.edit(ids[0], "notes", note)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    for i in 0..linli_store::store::COMPACT_AFTER + 2 {
        a.edit(ids[1], "notes", &format!("第{i}次回访"))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    a.edit(ids[2], "notes", "独居")
        .unwrap_or_else(|e| panic!("{e}"));
    let seen = |a: &Store| {
        let docs: Vec<(String, Vec<u8>, Vec<u8>)> = state(a)
            .into_iter()
            .map(|(id, (_, heads))| {
                let (_, mut doc) = a
                    .load_doc(&id)
                    .unwrap_or_else(|e| panic!("{e}"))
                    .unwrap_or_else(|| panic!("{id} missing"));
                (id, heads, doc.save())
            })
            .collect();
        let outbox: Vec<(String, Vec<u8>)> = a
            .outbox("relay")
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .flat_map(|o| o.docs.into_iter().map(|d| (d.id, d.bytes)))
            .collect();
        (
            a.changes_since(0, 1000).unwrap_or_else(|e| panic!("{e}")),
            a.feed_head().unwrap_or_else(|e| panic!("{e}")),
            docs,
            outbox,
        )
    };
    let before = seen(&a);
    let rows = a.log_rows().unwrap_or_else(|e| panic!("{e}"));
    // Superseded: the first's import; the second's import, its 15 chunks and the snapshot
    // write that folded them; the third's import.
    let pruned = a.prune_log().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pruned, 1 + (1 + 15 + 1) + 1);
    assert_eq!(
        a.log_rows().unwrap_or_else(|e| panic!("{e}")),
        rows - pruned as i64
    );
    assert_eq!(seen(&a), before);
    assert_eq!(a.prune_log().unwrap_or_else(|e| panic!("{e}")), 0);
}

/// The background checkpoint thread prunes the feed once it is due, and never waits for a
/// write lock another connection holds (it tries again at its next period).
#[test]
fn the_checkpoint_thread_prunes_the_feed_when_due_without_waiting_for_writers() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut a = root_with(dir.path(), 2);
    for note in ["一", "二", "三"] {
        a.edit("hh-000001", "notes", note)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let rows = a.log_rows().unwrap_or_else(|e| panic!("{e}"));
    let other = linli_testkit::open_db(dir.path().join(linli_store::store::DB_FILE))
        .unwrap_or_else(|e| panic!("{e}"));
    // Due: the last prune was PRUNE_EVERY writes before the head.
    other
        .execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('pruned', ?1)",
            [(a.feed_head().unwrap_or(0) - linli_store::feed::PRUNE_EVERY).to_string()],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    };
    // Another process holds the write lock: the thread's tries give way and prune nothing.
    other
        .execute_batch("BEGIN IMMEDIATE")
        .unwrap_or_else(|e| panic!("{e}"));
    let checkpoints = a
        .checkpoint_in_background(std::time::Duration::from_millis(10))
        .unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(a.log_rows().unwrap_or_else(|e| panic!("{e}")), rows);
    // Stopping the thread does not wait behind the lock either (a thread stuck in SQLite's
    // busy wait would hold this drop for seconds).
    let t = std::time::Instant::now();
    drop(checkpoints);
    assert!(
        t.elapsed() < std::time::Duration::from_millis(500),
        "the thread waited {:?}",
        t.elapsed()
    );
    other
        .execute_batch("COMMIT")
        .unwrap_or_else(|e| panic!("{e}"));
    // Free again: the import's first write of the document is superseded, its chunks are not.
    let checkpoints = a
        .checkpoint_in_background(std::time::Duration::from_millis(10))
        .unwrap_or_else(|e| panic!("{e}"));
    wait_for("the feed was never pruned", &|| {
        a.log_rows().unwrap_or(rows) == rows - 1
    });
    drop(checkpoints);
    assert_eq!(a.prune_log().unwrap_or_else(|e| panic!("{e}")), 0);
}

#[test]
fn recording_what_was_sent_gives_way_to_another_writer_instead_of_waiting() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let a = root_with(dir.path(), 2);
    let head = a.feed_head().unwrap_or_else(|e| panic!("{e}"));
    // Another process holds the write lock.
    let mut other = linli_testkit::open_db(dir.path().join(linli_store::store::DB_FILE))
        .unwrap_or_else(|e| panic!("{e}"));
    let tx = other
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap_or_else(|e| panic!("{e}"));
    let t = std::time::Instant::now();
    assert!(
        !a.try_set_sent_seq("relay", head)
            .unwrap_or_else(|e| panic!("{e}"))
    );
    assert!(t.elapsed() < std::time::Duration::from_secs(1), "it waited");
    drop(tx);
    assert_eq!(a.sent_seq("relay").unwrap_or_else(|e| panic!("{e}")), 0);
    assert!(
        a.try_set_sent_seq("relay", head)
            .unwrap_or_else(|e| panic!("{e}"))
    );
    assert_eq!(a.sent_seq("relay").unwrap_or_else(|e| panic!("{e}")), head);
}
