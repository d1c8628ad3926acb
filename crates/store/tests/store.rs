//! The store on real SQLite files: compression dictionaries, compaction, reopening.

use linli_testkit::roster as common;

use common::{households, new_store};
use linli_domain::AnyRecord;
use std::time::{Duration, Instant};

use linli_store::{Store, TRAIN_AFTER};

fn compressed(store: &Store, collection: &str) -> i64 {
    store
        .count(&format!(
            "SELECT COUNT(*) FROM docs WHERE collection = '{collection}' AND dict IS NOT NULL"
        ))
        .unwrap_or(-1)
}

/// The sum of `size` over the household records of `households(0..n)`.
fn household_bytes(n: usize, size: impl Fn(&AnyRecord) -> usize) -> usize {
    households(0..n)
        .iter()
        .filter(|r| matches!(r, AnyRecord::Household(_)))
        .map(size)
        .sum()
}

#[test]
fn a_large_collection_is_compressed_and_reads_back_the_same() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut store = new_store(dir.path());
    let first = (TRAIN_AFTER as usize) / 2 + 100;
    let r = store
        .put(households(0..first), "import 1")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.dictionaries, 0);
    assert_eq!(compressed(&store, "households"), 0);

    let second = households(first..TRAIN_AFTER as usize + 50);
    let r = store
        .put(second, "import 2")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.dictionaries, 4,
        "households and sensitive documents, snapshots and records"
    );
    let n = TRAIN_AFTER + 50;
    assert_eq!(compressed(&store, "households"), n);
    assert_eq!(compressed(&store, "sensitive"), n);
    assert_eq!(store.count("SELECT COUNT(*) FROM dicts").unwrap_or(0), 4);
    // Records too, to under a third of their JSON.
    for collection in ["households", "sensitive"] {
        assert_eq!(
            store
                .count(&format!(
                    "SELECT COUNT(*) FROM docs WHERE collection = '{collection}' AND rdict IS NOT NULL"
                ))
                .unwrap_or(-1),
            n
        );
    }
    let stored_records = store
        .count("SELECT SUM(LENGTH(record)) FROM docs WHERE collection = 'households'")
        .unwrap_or(0);
    let json = household_bytes(n as usize, |r| {
        serde_json::to_vec(r).map(|v| v.len()).unwrap_or(0)
    });
    assert!(
        (stored_records as usize) * 3 < json,
        "records stored in {stored_records} bytes, {json} as JSON"
    );

    // Snapshots are smaller than the plain Automerge bytes they hold.
    let stored = store
        .count("SELECT SUM(LENGTH(snapshot)) FROM docs WHERE collection = 'households'")
        .unwrap_or(0);
    let plain = household_bytes(n as usize, |r| {
        store
            .export_doc(r.id())
            .unwrap_or_else(|e| panic!("{e}"))
            .len()
    });
    assert!(
        (stored as usize) * 2 < plain,
        "stored {stored} bytes, plain {plain}"
    );

    // Every record reads back equal to what was written, before and after reopening.
    let all = households(0..n as usize);
    for rec in &all {
        assert_eq!(store.get(rec.id()).ok().flatten().as_ref(), Some(rec));
    }
    drop(store);
    let mut store =
        Store::open(dir.path(), &linli_testkit::key()).unwrap_or_else(|e| panic!("{e}"));
    for rec in all.iter().step_by(97) {
        assert_eq!(store.get(rec.id()).ok().flatten().as_ref(), Some(rec));
    }

    // Editing one household past the compaction point stores a compressed snapshot again.
    for k in 0..20 {
        store
            .edit("hh-000007", "notes", &format!("第{k}次回访"))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let dict: Option<i64> = store
        .count("SELECT dict FROM docs WHERE id = 'hh-000007'")
        .ok();
    assert!(dict.is_some_and(|d| d > 0));
    match store.get("hh-000007") {
        Ok(Some(AnyRecord::Household(h))) => assert_eq!(h.notes, "第19次回访"),
        other => panic!("{other:?}"),
    }
    let incremental = store.dump_index().unwrap_or_default();
    store.rebuild_index().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(incremental, store.dump_index().unwrap_or_default());
    assert_eq!(store.integrity_check().unwrap_or_default(), "ok");
}

#[test]
fn a_write_that_fails_leaves_no_dictionary_behind() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut store = new_store(dir.path());
    let mut recs = households(0..TRAIN_AFTER as usize);
    // The same id in another collection: the write is refused after building documents.
    store
        .put(households(5000..5001), "one")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut wrong = households(5000..5001).remove(0);
    if let AnyRecord::Household(h) = &mut wrong {
        h.id = "hh-005000.pii".into();
    }
    recs.push(wrong);
    assert!(store.put(recs, "bad").is_err());
    assert_eq!(store.count("SELECT COUNT(*) FROM dicts").unwrap_or(-1), 0);
    assert_eq!(
        store
            .count("SELECT COUNT(*) FROM docs WHERE collection = 'households'")
            .unwrap_or(-1),
        1
    );
    // The store still works and trains on the next good write.
    let r = store
        .put(households(0..TRAIN_AFTER as usize), "good")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.dictionaries, 4);
}

/// Reads are served from a cache of recent documents; it must never return a state the file
/// no longer holds, even when another handle (another process of the app) writes.
#[test]
fn recent_documents_are_never_read_stale() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut a = new_store(dir.path());
    a.put(households(0..20), "import")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut b = Store::open(dir.path(), &linli_testkit::key()).unwrap_or_else(|e| panic!("{e}"));
    let notes = |s: &Store| match s.get("hh-000003") {
        Ok(Some(AnyRecord::Household(h))) => h.notes,
        other => panic!("{other:?}"),
    };
    // Both handles now hold hh-000003 in their caches.
    assert_eq!(notes(&a), notes(&b));
    for k in 0..5 {
        a.edit("hh-000003", "notes", &format!("A{k}"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(notes(&b), format!("A{k}"), "b sees a's write");
        b.edit(
            "hh-000003",
            "tenure",
            if k % 2 == 0 { "出租" } else { "自住" },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(notes(&a), format!("A{k}"));
    }
    // A refused edit leaves nothing behind in the cache either.
    assert!(a.edit("hh-000003", "area", "-5").is_err());
    // What both handles read equals what a fresh handle reads.
    let fresh = Store::open(dir.path(), &linli_testkit::key()).unwrap_or_else(|e| panic!("{e}"));
    for rec in households(0..20) {
        let want = fresh.get(rec.id()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.get(rec.id()).unwrap_or_else(|e| panic!("{e}")), want);
        assert_eq!(b.get(rec.id()).unwrap_or_else(|e| panic!("{e}")), want);
    }
}

/// With checkpoints in the background, written pages reach the database file within a period,
/// though no write crossed the (raised) automatic threshold; with a period longer than the
/// test they stay in the log until the checkpointer stops (a last checkpoint).
#[test]
fn the_log_is_written_back_by_the_background_checkpoint() {
    // `every`: the period; `look`: how long to wait for the file to grow.
    let file_after = |every: Duration, look: Duration| -> (u64, u64, u64) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut store = new_store(dir.path());
        let size = |store: &Store| {
            std::fs::metadata(store.path())
                .unwrap_or_else(|e| panic!("{e}"))
                .len()
        };
        let checkpoints = store
            .checkpoint_in_background(every)
            .unwrap_or_else(|e| panic!("{e}"));
        let before = size(&store);
        store
            .put(households(0..300), "import")
            .unwrap_or_else(|e| panic!("{e}"));
        let deadline = Instant::now() + look;
        while size(&store) == before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let after = size(&store);
        drop(checkpoints);
        (before, after, size(&store))
    };
    let (before, after, _) = file_after(Duration::from_millis(50), Duration::from_secs(5));
    assert!(after > before + 100_000, "{before} -> {after}");
    let (before, after, stopped) =
        file_after(Duration::from_secs(3600), Duration::from_millis(500));
    assert_eq!(after, before, "no checkpoint yet: the pages are in the log");
    assert!(
        stopped > before + 100_000,
        "the last checkpoint: {before} -> {stopped}"
    );
}

/// The derived tables are brought up to date row by row (a member added, one field of one
/// member changed, a tag added and one removed, a member gone): after each write they equal a
/// rebuild from the documents, and searches find the new values.
#[test]
fn derived_rows_follow_each_kind_of_change_exactly() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut store = new_store(dir.path());
    store
        .put(households(0..5), "import")
        .unwrap_or_else(|e| panic!("{e}"));
    let matches_rebuild = |store: &mut Store, step: &str| {
        let kept = store.dump_index().unwrap_or_else(|e| panic!("{e}"));
        store.rebuild_index().unwrap_or_else(|e| panic!("{e}"));
        let rebuilt = store.dump_index().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(kept, rebuilt, "after {step}");
    };
    let count = |store: &Store, sql: &str| store.count(sql).unwrap_or_else(|e| panic!("{e}"));

    // A second member joins hh-000001.
    let (mut h, mut s) = store
        .household("hh-000001")
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no household"));
    let mut lei = h.members[0].clone();
    lei.id = "p-lei".into();
    lei.name = "李雷".into();
    h.members.push(lei);
    let mut fields = s
        .people
        .values()
        .next()
        .cloned()
        .unwrap_or_else(|| panic!("no pii"));
    fields.phone = "13700001234".into();
    fields.tags = vec!["残疾人".into()];
    s.people.insert("p-lei".into(), fields);
    store
        .put(
            vec![AnyRecord::Household(h), AnyRecord::Sensitive(s)],
            "add member",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    matches_rebuild(&mut store, "a member added");
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM q_people WHERE household = 'hh-000001'"
        ),
        2
    );

    // One field of one member: the other member's rows stay as they were.
    store
        .edit("p-lei", "phone", "13700005678")
        .unwrap_or_else(|e| panic!("{e}"));
    matches_rebuild(&mut store, "a phone changed");
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM q_pii WHERE phone4 = '5678'"),
        1
    );
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM q_pii WHERE phone4 = '1234'"),
        0
    );
    store
        .edit("p-lei", "name", "韩梅梅")
        .unwrap_or_else(|e| panic!("{e}"));
    matches_rebuild(&mut store, "a name changed");
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM q_people WHERE initials = 'hmm'"
        ),
        1
    );

    // Tags: one added, one removed.
    store
        .edit("p-lei", "tags", "低保，重点关注")
        .unwrap_or_else(|e| panic!("{e}"));
    matches_rebuild(&mut store, "tags changed");
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM q_tags WHERE person = 'p-lei'"),
        2
    );
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM q_tags WHERE tag = '残疾人'"),
        0
    );

    // The member leaves the household's documents: their rows go.
    let (mut h, mut s) = store
        .household("hh-000001")
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no household"));
    h.members.retain(|m| m.id != "p-lei");
    s.people.remove("p-lei");
    store
        .put(
            vec![AnyRecord::Household(h), AnyRecord::Sensitive(s)],
            "remove member",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    matches_rebuild(&mut store, "a member removed");
    for table in [
        "q_people WHERE id",
        "q_pii WHERE person",
        "q_tags WHERE person",
    ] {
        assert_eq!(
            count(&store, &format!("SELECT COUNT(*) FROM {table} = 'p-lei'")),
            0
        );
    }
}

/// Each document's record is stored beside it and read from there: a damaged one is an
/// error that names the document, and one that no longer matches its document is found by
/// the comparison with a rebuild (what `doctor` runs), which also repairs it.
#[test]
fn stored_records_are_read_checked_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut store = new_store(dir.path());
    store
        .put(households(0..4), "import")
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .edit("p-0000002", "phone", "13700002222")
        .unwrap_or_else(|e| panic!("{e}"));
    let kept = store.dump_index().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        kept.iter()
            .any(|l| l.starts_with("record: hh-000002.pii") && l.contains("13700002222"))
    );
    drop(store);

    let raw =
        linli_testkit::open_db(dir.path().join("linli.sqlite")).unwrap_or_else(|e| panic!("{e}"));
    raw.execute(
        "UPDATE docs SET record = x'7b22' WHERE id = 'hh-000001'",
        [],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    raw.execute(
        "UPDATE docs SET record = (SELECT record FROM docs WHERE id = 'hh-000003') WHERE id = 'hh-000002'",
        [],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    drop(raw);

    let mut store =
        Store::open(dir.path(), &linli_testkit::key()).unwrap_or_else(|e| panic!("{e}"));
    // A stored record that does not parse is read from the document instead.
    match store.get("hh-000001") {
        Ok(Some(AnyRecord::Household(h))) => assert_eq!(h.id, "hh-000001"),
        other => panic!("{other:?}"),
    }
    match store.get("hh-000002") {
        Ok(Some(AnyRecord::Household(h))) => {
            assert_eq!(h.id, "hh-000003", "read from the stored record")
        }
        other => panic!("{other:?}"),
    }
    let damaged = store.dump_index().unwrap_or_else(|e| panic!("{e}"));
    store.rebuild_index().unwrap_or_else(|e| panic!("{e}"));
    let rebuilt = store.dump_index().unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(damaged, rebuilt, "the mismatch is seen");
    assert_eq!(kept, rebuilt, "and repaired from the documents");
    match store.get("hh-000002") {
        Ok(Some(AnyRecord::Household(h))) => assert_eq!(h.id, "hh-000002"),
        other => panic!("{other:?}"),
    }

    // A write of a document whose stored record does not parse reads the document instead,
    // and stores a good record again.
    drop(store);
    let raw =
        linli_testkit::open_db(dir.path().join("linli.sqlite")).unwrap_or_else(|e| panic!("{e}"));
    raw.execute(
        "UPDATE docs SET record = x'00ff' WHERE id = 'hh-000003'",
        [],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    drop(raw);
    let mut store =
        Store::open(dir.path(), &linli_testkit::key()).unwrap_or_else(|e| panic!("{e}"));
    store
        .edit("hh-000003", "notes", "楼道灯已修")
        .unwrap_or_else(|e| panic!("{e}"));
    let after = store.dump_index().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        after
            .iter()
            .any(|l| l.starts_with("record: hh-000003 ") && l.contains("楼道灯已修"))
    );
    store.rebuild_index().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(after, store.dump_index().unwrap_or_else(|e| panic!("{e}")));
}

fn encode(heads: &[automerge::ChangeHash]) -> Vec<Vec<u8>> {
    heads.iter().map(|h| h.0.to_vec()).collect()
}

/// A second handle on the same file (the app keeps one for its screens and one for its sync
/// loop) reads and writes documents compressed with a dictionary the other handle trained
/// after it opened.
#[test]
fn a_handle_uses_dictionaries_another_handle_trained_after_it_opened() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut screens = new_store(dir.path());
    let mut sync = Store::open(dir.path(), &linli_testkit::key()).unwrap_or_else(|e| panic!("{e}"));
    let r = sync
        .put(households(0..TRAIN_AFTER as usize + 10), "first sync")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.dictionaries > 0, "no dictionary trained");
    assert_eq!(compressed(&screens, "households"), TRAIN_AFTER + 10);
    // Reads first (they borrow the new dictionaries), then a write (which takes them).
    assert_eq!(
        screens.get("hh-000009").unwrap_or_else(|e| panic!("{e}")),
        sync.get("hh-000009").unwrap_or_else(|e| panic!("{e}"))
    );
    assert!(
        screens
            .get("hh-000009")
            .unwrap_or_else(|e| panic!("{e}"))
            .is_some()
    );
    let (_, mut before) = screens
        .load_doc("hh-000008")
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("gone"));
    assert_eq!(
        encode(&before.get_heads()),
        encode(
            &sync
                .load_doc("hh-000008")
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|| panic!("gone"))
                .1
                .get_heads()
        )
    );
    screens
        .edit("hh-000007", "notes", "门口有台阶")
        .unwrap_or_else(|e| panic!("{e}"));
    let (_, mut doc) = sync
        .load_doc("hh-000007")
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("gone"));
    let (_, mut mine) = screens
        .load_doc("hh-000007")
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("gone"));
    assert_eq!(doc.save(), mine.save());
}

/// A store whose records were stored plain (before schema 12) has them compressed when it is
/// opened, and reads every record back the same.
#[test]
fn records_stored_plain_are_compressed_when_the_store_opens() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let n = TRAIN_AFTER as usize + 20;
    let ids: Vec<String> = households(0..n)
        .iter()
        .map(|r| r.id().to_string())
        .collect();
    let before: Vec<Option<AnyRecord>> = {
        let mut store = new_store(dir.path());
        store
            .put(households(0..n), "import")
            .unwrap_or_else(|e| panic!("{e}"));
        ids.iter()
            .map(|id| store.get(id).unwrap_or_else(|e| panic!("{e}")))
            .collect()
    };
    // As a store from before: no record dictionaries, records rebuilt plain from the
    // documents, then compressed, as migrations 9 and 12 ask.
    let conn = linli_testkit::open_db(dir.path().join(linli_store::store::DB_FILE))
        .unwrap_or_else(|e| panic!("{e}"));
    conn.execute_batch(
        "UPDATE docs SET record = NULL, rdict = NULL;
         DELETE FROM dicts WHERE collection LIKE '%/record';
         INSERT OR REPLACE INTO meta (key, value) VALUES ('reindex', '1'), ('pack_records', '1');",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    drop(conn);
    let store = Store::open(dir.path(), &linli_testkit::key()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        store
            .count("SELECT COUNT(*) FROM docs WHERE collection = 'households' AND rdict IS NULL")
            .unwrap_or(-1),
        0
    );
    assert_eq!(
        store
            .count("SELECT COUNT(*) FROM dicts WHERE collection LIKE '%/record'")
            .unwrap_or(-1),
        2
    );
    let after: Vec<Option<AnyRecord>> = ids
        .iter()
        .map(|id| store.get(id).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    assert_eq!(after, before);
    assert!(after.iter().all(Option::is_some));
}

/// A document whose stored references are damaged (its tail names no chunk of its own, or its
/// snapshot a dictionary that is not there) is an error naming it and the field; a record
/// compressed with a missing dictionary is read from its document instead.
#[test]
fn damaged_chunk_lists_and_missing_dictionaries_are_errors_naming_the_document() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut store = new_store(dir.path());
    store
        .put(households(0..2), "import")
        .unwrap_or_else(|e| panic!("{e}"));
    for note in ["一", "二"] {
        store
            .edit("hh-000000", "notes", note)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let record = store.get("hh-000000").unwrap_or_else(|e| panic!("{e}"));
    let conn = linli_testkit::open_db(dir.path().join(linli_store::store::DB_FILE))
        .unwrap_or_else(|e| panic!("{e}"));
    // Damage as a disk or a bug would: past the references SQLite checks.
    conn.execute_batch("PRAGMA foreign_keys = OFF")
        .unwrap_or_else(|e| panic!("{e}"));
    let other_seq: i64 = conn
        .query_row("SELECT seq FROM docs WHERE id = 'hh-000001'", [], |r| {
            r.get(0)
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let fails = |sql: &str, field: &str, says: &str| {
        conn.execute_batch(sql).unwrap_or_else(|e| panic!("{e}"));
        // A fresh handle: nothing of the document in memory.
        let fresh =
            Store::open(dir.path(), &linli_testkit::key()).unwrap_or_else(|e| panic!("{e}"));
        let err = match fresh.load_doc("hh-000000") {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{sql}: loaded"),
        };
        assert!(
            err.contains("hh-000000") && err.contains(field) && err.contains(says),
            "{sql}: {err}"
        );
    };
    let tail: String = conn
        .query_row("SELECT tail FROM docs WHERE id = 'hh-000000'", [], |r| {
            r.get(0)
        })
        .unwrap_or_else(|e| panic!("{e}"));
    fails(
        "UPDATE docs SET tail = tail || ' x' WHERE id = 'hh-000000'",
        "tail",
        "`x` is not a feed position",
    );
    fails(
        &format!("UPDATE docs SET tail = '{other_seq}' WHERE id = 'hh-000000'"),
        "tail",
        &format!("feed position {other_seq} holds none of its changes"),
    );
    fails(
        &format!("UPDATE docs SET tail = '{tail}', dict = 999 WHERE id = 'hh-000000'"),
        "snapshot",
        "compressed with dictionary 999, which is missing",
    );
    conn.execute_batch("UPDATE docs SET dict = NULL, rdict = 999 WHERE id = 'hh-000000'")
        .unwrap_or_else(|e| panic!("{e}"));
    let fresh = Store::open(dir.path(), &linli_testkit::key()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        fresh.get("hh-000000").unwrap_or_else(|e| panic!("{e}")),
        record
    );
}

/// Every commit on a store file, by any handle of this process, is announced to its
/// listeners (the live session wakes on it instead of polling); a dropped subscription hears
/// nothing more. The hook that announces commits also keeps the write-ahead log bounded, as
/// SQLite's own automatic checkpoint (which it replaces) did.
#[test]
fn commits_are_announced_and_the_log_stays_bounded() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut writer = new_store(dir.path());
    let listener = Store::open(dir.path(), &linli_testkit::key()).unwrap_or_else(|e| panic!("{e}"));
    let heard = Arc::new(AtomicUsize::new(0));
    let subscription = listener.on_commit({
        let heard = heard.clone();
        move || {
            heard.fetch_add(1, Ordering::SeqCst);
        }
    });
    writer
        .put(households(0..3), "three")
        .unwrap_or_else(|e| panic!("{e}"));
    let after_one = heard.load(Ordering::SeqCst);
    assert!(after_one >= 1, "a write by another handle is announced");
    // What the listener reads when told is the write itself.
    assert_eq!(
        listener.feed_head().unwrap_or(-1),
        writer.feed_head().unwrap_or(-2)
    );
    drop(subscription);
    writer
        .put(households(3..6), "three more")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(heard.load(Ordering::SeqCst), after_one, "unsubscribed");
    // Some 6,000 writes of a few pages each: without a checkpoint the log would pass 20 MB.
    for i in 0..60 {
        writer
            .put(households(100 + i * 100..200 + i * 100), "batch")
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let wal = std::fs::metadata(dir.path().join("linli.sqlite-wal"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(wal < 8 << 20, "the log grew to {wal} bytes");
}

/// Each audit entry's hash covers the one before it: an entry edited or deleted in the file
/// breaks the chain at the entry that follows from it, and `audit_verify` names it.
#[test]
fn the_audit_log_is_a_chain_that_shows_an_edit_or_a_deletion() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(dir.path(), &linli_testkit::key()).unwrap_or_else(|e| panic!("{e}"));
    for i in 0..5 {
        store
            .audit("reveal", &format!("p-{i}"), "phone")
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let check = store.audit_verify().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((check.entries, check.broken_at), (5, None));
    assert_eq!(check.head.len(), 64);
    let raw = linli_testkit::open_db(dir.path().join(linli_store::store::DB_FILE))
        .unwrap_or_else(|e| panic!("{e}"));
    let exec = |sql: &str| {
        raw.execute(sql, []).unwrap_or_else(|e| panic!("{e}"));
    };
    exec("UPDATE audit SET target = 'p-9' WHERE seq = 3");
    let broken = store.audit_verify().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(broken.broken_at, Some(3));
    exec("UPDATE audit SET target = 'p-2' WHERE seq = 3");
    assert_eq!(
        store
            .audit_verify()
            .unwrap_or_else(|e| panic!("{e}"))
            .broken_at,
        None,
        "put back as it was, it holds again"
    );
    exec("DELETE FROM audit WHERE seq = 2");
    assert_eq!(
        store
            .audit_verify()
            .unwrap_or_else(|e| panic!("{e}"))
            .broken_at,
        Some(3)
    );
}
