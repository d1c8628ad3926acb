//! Acceptance tests of the `linli` command line: each runs the real binary on a real SQLite
//! store in a temporary directory.
// Helpers here panic on purpose: a failed step fails the test.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{err, json, ok};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/community-60.jsonl")
}

/// A store with a community and the 60-household fixture imported.
fn imported() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ok(
        dir.path(),
        &["--user", "王芳", "init", "--community", "幸福社区"],
    );
    ok(dir.path(), &["import", fixture().to_str().unwrap()]);
    dir
}

/// What a store holds, as its command line shows it: stats, every list, and the feed head.
fn snapshot(dir: &Path) -> Vec<Value> {
    let mut stats = json(dir, &["stats"]);
    // The file's size grows with the audit entries the reveals below write.
    stats.as_object_mut().unwrap().remove("store_bytes");
    let mut all = vec![stats];
    for c in ["households", "people", "tasks", "notices"] {
        all.push(json(dir, &["--reveal", "--reason", "测试核对", "list", c]));
    }
    all
}

#[test]
fn init_import_list_show_search() {
    let dir = imported();
    let d = dir.path();
    let stats = json(d, &["stats"]);
    assert_eq!(stats["documents"]["households"], 60);
    assert_eq!(stats["documents"]["sensitive"], 60);
    assert_eq!(stats["documents"]["tasks"], 6);

    let hh: Vec<Value> = serde_json::from_value(json(d, &["list", "households"])).unwrap();
    assert_eq!(hh.len(), 60);
    let first = &hh[0];
    let building = format!(
        "{}/{}",
        first["address"]["compound"].as_str().unwrap(),
        first["address"]["building"].as_str().unwrap()
    );
    let in_building = json(d, &["list", "households", "--building", &building]);
    assert!(
        in_building
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["address"]["building"] == first["address"]["building"])
    );
    let grid = first["scope"]["grid"].as_str().unwrap();
    let in_grid = json(d, &["list", "people", "--grid", grid]);
    assert!(!in_grid.as_array().unwrap().is_empty());
    assert!(
        in_grid
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["scope"]["grid"] == grid)
    );

    // A person: masked by default, in full with --reveal.
    let person = &first["members"][0];
    let pid = person["id"].as_str().unwrap();
    let masked = json(d, &["show", pid]);
    let revealed = json(d, &["--reveal", "--reason", "测试核对", "show", pid]);
    let full = revealed["id_number"].as_str().unwrap();
    assert_eq!(full.len(), 18);
    assert_eq!(
        masked["id_number"].as_str().unwrap(),
        format!("{}**********{}", &full[..4], &full[14..])
    );
    assert!(masked["phone"].as_str().unwrap().contains("****"));
    let human = ok(d, &["show", first["id"].as_str().unwrap()]);
    assert!(
        !human.contains(full),
        "human output never shows a full ID number without --reveal"
    );
    assert!(ok(d, &["--reveal", "--reason", "测试核对", "show", pid]).contains(full));

    // Search by name, initials, last four of phone.
    let name = revealed["name"].as_str().unwrap();
    let by_name: Vec<Value> = serde_json::from_value(json(d, &["search", name])).unwrap();
    assert!(
        by_name.iter().any(|h| h["id"] == pid),
        "{name} not found by name"
    );
    let phone = revealed["phone"].as_str().unwrap();
    let by_phone: Vec<Value> = serde_json::from_value(json(d, &["search", &phone[7..]])).unwrap();
    assert!(
        by_phone
            .iter()
            .any(|h| h["id"] == pid && h["matched"] == "phone")
    );
    let by_id: Vec<Value> = serde_json::from_value(json(d, &["search", &full[14..]])).unwrap();
    assert!(by_id.iter().any(|h| h["id"] == pid));
    let initials: String = linli_store::index::initials(name);
    let by_initials: Vec<Value> = serde_json::from_value(json(d, &["search", &initials])).unwrap();
    assert!(by_initials.iter().any(|h| h["id"] == pid));
}

#[test]
fn reimport_changes_nothing() {
    let dir = imported();
    let before = snapshot(dir.path());
    let report = json(dir.path(), &["import", fixture().to_str().unwrap()]);
    assert_eq!(report["created"], 0);
    assert_eq!(report["changed"], 0);
    assert_eq!(
        report["unchanged"], 127,
        "60 households, their 60 sensitive documents, 6 tasks, the community"
    );
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn a_bad_line_fails_the_whole_import_and_leaves_the_store_as_it_was() {
    let dir = imported();
    let d = dir.path();
    let before = snapshot(d);
    let text = std::fs::read_to_string(fixture()).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    // Line 1 changes a household (would be written), line 41 carries a wrong check digit.
    lines[0] = lines[0]
        .replace("\"tenure\":\"自住\"", "\"tenure\":\"出租\"")
        .replace("\"tenure\":\"空置\"", "\"tenure\":\"出租\"");
    let idn = lines[40].split("\"id_number\":\"").nth(1).unwrap()[..18].to_string();
    let last = idn.chars().last().unwrap();
    let wrong = if last == '0' { '1' } else { '0' };
    lines[40] = lines[40].replacen(&idn, &format!("{}{}", &idn[..17], wrong), 1);
    let bad = d.join("bad.jsonl");
    std::fs::write(&bad, lines.join("\n")).unwrap();
    let e = err(d, &["import", bad.to_str().unwrap()]);
    assert!(e.contains("bad.jsonl:41:"), "names the line: {e}");
    assert!(
        e.contains("members[0].id_number") && e.contains("check digit"),
        "names the field and reason: {e}"
    );
    assert!(!e.contains(&idn[..17]), "never echoes the ID number: {e}");
    assert_eq!(snapshot(d), before, "nothing was written");

    // Malformed JSON, a wrong type, a duplicate id: each named, each leaves nothing.
    std::fs::write(&bad, format!("{}\n{{\"kind\":\"household\",", lines[0])).unwrap();
    assert!(err(d, &["import", bad.to_str().unwrap()]).contains("bad.jsonl:2: invalid JSON"));
    std::fs::write(
        &bad,
        lines[0].replace("\"area_m2\":", "\"area_m2\":\"big\",\"x\":"),
    )
    .unwrap();
    assert!(err(d, &["import", bad.to_str().unwrap()]).contains("bad.jsonl:1: field `area_m2`"));
    std::fs::write(&bad, format!("{}\n{}", lines[1], lines[1])).unwrap();
    assert!(err(d, &["import", bad.to_str().unwrap()]).contains("already appeared on line 1"));
    assert_eq!(snapshot(d), before);
}

#[test]
fn edits_are_validated_and_recorded_in_history() {
    let dir = imported();
    let d = dir.path();
    let hh = json(
        d,
        &["--reveal", "--reason", "测试核对", "list", "households"],
    );
    let p = &hh[0]["members"][0];
    let pid = p["id"].as_str().unwrap();
    let feed = json(d, &["stats"])["feed_head"].as_i64().unwrap();

    let e = err(d, &["edit", pid, "phone", "12345"]);
    assert!(e.contains("phone") && e.contains("mobile"), "{e}");
    let e = err(d, &["edit", pid, "birth", "1990-02-30"]);
    assert!(e.contains("birth"), "{e}");
    let e = err(d, &["edit", pid, "nickname", "x"]);
    assert!(e.contains("no field `nickname`"), "{e}");
    assert_eq!(
        json(d, &["stats"])["feed_head"].as_i64().unwrap(),
        feed,
        "failed edits write nothing"
    );

    ok(d, &["--user", "李娜", "edit", pid, "phone", "13900001111"]);
    ok(d, &["--user", "李娜", "edit", pid, "tags", "独居老人,低保"]);
    let shown = json(d, &["--reveal", "--reason", "测试核对", "show", pid]);
    assert_eq!(shown["phone"], "13900001111");
    assert_eq!(shown["tags"], serde_json::json!(["独居老人", "低保"]));
    assert!(json(d, &["stats"])["feed_head"].as_i64().unwrap() > feed);

    let history = ok(d, &["history", pid]);
    assert!(
        history.contains("李娜") && history.contains("edit phone"),
        "{history}"
    );
    assert!(
        history.contains("139****1111") && !history.contains("13900001111"),
        "masked: {history}"
    );
    assert!(ok(d, &["--reveal", "--reason", "测试核对", "history", pid]).contains("13900001111"));
    let entries = json(d, &["history", pid]);
    assert!(
        entries
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["by"] == "王芳" && e["what"].as_str().unwrap().starts_with("import"))
    );

    // Task checklist item by path, and the loop rules of a task.
    ok(d, &["edit", "task-0001", "checklist[0].ok", "true"]);
    assert_eq!(json(d, &["show", "task-0001"])["checklist"][0]["ok"], true);
    let e = err(d, &["edit", "task-0001", "id", "x"]);
    assert!(e.contains("cannot be edited"), "{e}");
}

#[test]
fn export_doc_writes_plain_automerge() {
    let dir = imported();
    let d = dir.path();
    ok(d, &["edit", "hh-000001", "notes", "门口有台阶"]);
    let file = d.join("hh.automerge");
    ok(d, &["export-doc", "hh-000001", file.to_str().unwrap()]);
    let bytes = std::fs::read(&file).unwrap();
    let doc = automerge::AutoCommit::load(&bytes).expect("any Automerge implementation loads it");
    let h: linli_domain::Household = autosurgeon::hydrate(&doc).unwrap();
    assert_eq!(h.id, "hh-000001");
    assert_eq!(h.notes, "门口有台阶");
    assert!(
        err(d, &["export-doc", "nope", file.to_str().unwrap()]).contains("no record with id nope")
    );
}

#[test]
fn the_query_tables_equal_a_rebuild_after_imports_and_edits() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["demo", "--households", "80", "--seed", "3"]);
    assert!(
        err(d, &["demo", "--households", "80", "--seed", "3"]).contains("already has households")
    );
    ok(d, &["import", fixture().to_str().unwrap()]);
    let people = json(d, &["--reveal", "--reason", "测试核对", "list", "people"]);
    for p in people.as_array().unwrap().iter().step_by(7).take(10) {
        let id = p["id"].as_str().unwrap();
        ok(d, &["edit", id, "name", "欧阳娜娜"]);
        ok(d, &["edit", id, "tags", "重点关注"]);
    }
    ok(d, &["edit", "hh-000002", "tenure", "空置"]);
    let report = json(d, &["doctor"]);
    assert_eq!(report["integrity"], "ok");
    assert!(report["index_rows"].as_u64().unwrap() > 500);
    assert_eq!(report["index_matches"], true);
    let hits: Vec<Value> = serde_json::from_value(json(d, &["search", "oynn"])).unwrap();
    assert_eq!(hits.len(), 10, "initials of the new name are indexed");
}

#[test]
fn demo_is_deterministic_for_a_seed_and_an_instant() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    for (dir, as_of) in [
        (&a, "2026-11-20 09:00"),
        (&b, "2026-11-20 09:00"),
        (&c, "2026-10-20 09:00"),
    ] {
        let export = dir.path().join("x.jsonl");
        ok(
            dir.path(),
            &[
                "demo",
                "--households",
                "120",
                "--seed",
                "11",
                "--as-of",
                as_of,
                "--export",
                export.to_str().unwrap(),
            ],
        );
    }
    // The same records but for the community id, which ends with a tag of each device's
    // own key (see `linli_wire::community_id`).
    let export = |dir: &tempfile::TempDir| {
        let text = std::fs::read_to_string(dir.path().join("x.jsonl")).unwrap();
        let id = json(dir.path(), &["stats"])["community_id"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(id.starts_with("demo11-"), "{id}");
        text.replace(&id, "COMMUNITY")
    };
    assert_eq!(export(&a), export(&b));
    // Another instant: the same records, their dates moved with it (a request's steps lie in
    // the two months before the instant, never after it).
    let lines = |dir: &tempfile::TempDir| -> Vec<Value> {
        std::fs::read_to_string(dir.path().join("x.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let (nov, oct) = (lines(&a), lines(&c));
    assert_ne!(nov, oct);
    let ids = |v: &[Value]| v.iter().map(|r| r["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&nov), ids(&oct));
    for (r, from, to) in [
        (&nov, "2026-09-20", "2026-11-20T09:00:00+08:00"),
        (&oct, "2026-08-20", "2026-10-20T09:00:00+08:00"),
    ] {
        let steps: Vec<&str> = r
            .iter()
            .filter(|r| r["collection"] == "requests")
            .flat_map(|r| r["steps"].as_array().unwrap())
            .map(|s| s["at"].as_str().unwrap())
            .collect();
        assert!(!steps.is_empty());
        assert!(
            steps.iter().all(|at| (from..=to).contains(at)),
            "{from}..{to}: {steps:?}"
        );
        // The latest step lies in the instant's own month.
        let latest = steps.iter().max().unwrap();
        assert!(*latest > &to[..7], "{latest} {to}");
    }
    // Nothing recorded can lie in the future.
    assert!(err(c.path(), &["demo", "--as-of", "2999-01-01 09:00"]).contains("in the future"));
    let stats = json(a.path(), &["stats"]);
    for c in [
        "households",
        "tasks",
        "requests",
        "visits",
        "posts",
        "notices",
        "ballots",
        "organisations",
    ] {
        assert!(
            stats["documents"][c].as_i64().unwrap_or(0) > 0,
            "demo has {c}"
        );
    }
    let people = |dir: &tempfile::TempDir| {
        let mut v = json(
            dir.path(),
            &["--reveal", "--reason", "测试核对", "list", "people"],
        );
        for p in v.as_array_mut().unwrap() {
            p["scope"]["community"] = Value::Null;
        }
        v
    };
    assert_eq!(people(&a), people(&b));
}

#[test]
fn commands_on_a_missing_store_or_bad_input_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(err(d, &["stats"]).contains("no store in"));
    ok(d, &["init", "--community", "幸福社区"]);
    assert!(err(d, &["init", "--community", "别的社区"]).contains("already belongs to community"));
    assert!(err(d, &["list", "cats"]).contains("unknown collection `cats`"));
    assert!(err(d, &["show", "hh-999"]).contains("no record with id hh-999"));
    assert!(err(d, &["import", "/nonexistent.jsonl"]).contains("cannot read /nonexistent.jsonl"));
}

/// A child process killed at random points of an import leaves a readable store holding all
/// of the import or none of it.
#[test]
fn a_killed_import_leaves_a_readable_store() {
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("big.jsonl");
    ok(
        src.path(),
        &[
            "demo",
            "--households",
            "3000",
            "--seed",
            "5",
            "--export",
            file.to_str().unwrap(),
        ],
    );
    let mut outcomes = (0, 0);
    for delay_ms in [5u64, 40, 80, 120, 160, 250, 400, 700] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        ok(d, &["init", "--community", "幸福社区"]);
        let mut child = crate::common::linli_command()
            .arg("--data")
            .arg(d)
            .args(["import", file.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(delay_ms) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = child.kill(); // SIGKILL: no chance to clean up
        let _ = child.wait();
        let report = json(d, &["doctor"]);
        assert_eq!(report["integrity"], "ok");
        assert_eq!(report["index_matches"], true);
        let households = json(d, &["stats"])["documents"]["households"]
            .as_i64()
            .unwrap_or(0);
        assert!(
            households == 0 || households == 3000,
            "after {delay_ms} ms: {households} households"
        );
        if households == 0 {
            outcomes.0 += 1
        } else {
            outcomes.1 += 1
        }
        // The store still works: a second import completes.
        if households == 0 && delay_ms == 5 {
            ok(d, &["import", file.to_str().unwrap()]);
            assert_eq!(json(d, &["stats"])["documents"]["households"], 3000);
        }
    }
    assert!(
        outcomes.0 > 0,
        "some kill landed before the commit: {outcomes:?}"
    );
}

// ---------------------------------------------------------------------------------------
// What spreadsheets and careless typing produce (the hardening issue): committed regression
// cases, each of which crashed, leaked a value or was accepted before.
// ---------------------------------------------------------------------------------------

const HOUSEHOLD: &str = r#"{"kind":"household","id":"hh-900001","grid":"G01","compound":"幸福里小区","building":"9","unit":"1","room":"101","area_m2":60.0,"tenure":"自住","members":[{"id":"p-9000001","name":"钱多多","gender":"男","birth":"1980-01-01","id_number":"320106198001010011","phone":"13812345678","relation":"户主","tags":[],"notes":""}]}"#;

fn import_line(dir: &Path, line: &str) -> std::process::Output {
    let file = dir.join("one.jsonl");
    std::fs::write(&file, format!("{line}\n")).unwrap();
    crate::common::linli(dir, &["import", file.to_str().unwrap()])
}

/// A wide character at positions 14-16 of an ID number made `import` and `edit` panic (exit
/// 101) and print the number; now each is refused with the field named and nothing echoed.
#[test]
fn id_numbers_with_wide_characters_are_refused_cleanly() {
    let dir = imported();
    let d = dir.path();
    for bad in [
        "3201061980010中011",
        "32010619800101０11",
        "3201061980010😀11",
        "3201061980010é11",
    ] {
        let out = import_line(d, &HOUSEHOLD.replace("320106198001010011", bad));
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(
            e.contains("one.jsonl:1:") && e.contains("members[0].id_number"),
            "{e}"
        );
        assert!(!e.contains("32010619800") && !e.contains("panicked"), "{e}");
        let out = crate::common::linli(d, &["edit", "p-0000001", "id_number", bad]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(e.contains("id_number") && !e.contains("32010619800"), "{e}");
    }
}

/// A phone or ID number as a JSON number (as spreadsheets export them), or in the wrong field,
/// is never repeated by the error.
#[test]
fn errors_never_repeat_a_phone_or_id_number_in_the_wrong_place() {
    let dir = imported();
    let d = dir.path();
    let cases = [
        HOUSEHOLD.replace(r#""13812345678""#, "16958092444"),
        HOUSEHOLD.replace(r#""320106198001010011""#, "320106198001010011"),
        HOUSEHOLD.replace(r#""gender":"男""#, r#""gender":"13812345678""#),
        HOUSEHOLD.replace(r#""tenure":"自住""#, r#""tenure":"320106198001010011""#),
    ];
    for line in cases {
        let out = import_line(d, &line);
        assert!(!out.status.success());
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(e.contains("one.jsonl:1:"), "{e}");
        for secret in ["16958092444", "13812345678", "320106198001010011"] {
            assert!(!e.contains(secret), "{e}");
        }
    }
    for (field, value) in [
        ("gender", "13812345678"),
        ("birth", "320106198001010011"),
        ("13812345678", "x"),
    ] {
        let e = err(d, &["edit", "p-0000001", field, value]);
        assert!(
            !e.contains("13812345678") && !e.contains("320106198001010011"),
            "{e}"
        );
    }
}

/// A household in the community-wide scope would reach owners' committee devices with its ID
/// numbers: refused, naming the field.
#[test]
fn a_household_is_always_in_a_grid() {
    let dir = imported();
    let d = dir.path();
    let out = import_line(d, &HOUSEHOLD.replace(r#""grid":"G01""#, r#""grid":"*""#));
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("scope.grid") && e.contains("not a grid"), "{e}");
    assert_eq!(json(d, &["stats"])["documents"]["households"], 60);
}

/// Names are one line of text: control characters (terminal escapes, line breaks) are refused
/// where records are written; every text has a length limit; tags are limited in number and
/// length, and a list of 16,000 is refused as a whole (it took 31 s before).
#[test]
fn texts_are_limited_and_hold_no_control_characters() {
    let dir = imported();
    let d = dir.path();
    for (from, to, field) in [
        (
            r#""name":"钱多多""#,
            r#""name":"钱\u001b[2J多多""#,
            "members[0].name",
        ),
        (r#""room":"101""#, r#""room":"101\n102""#, "address.room"),
        (
            r#""compound":"幸福里小区""#,
            r#""compound":"幸福里\u202e区小""#,
            "address.compound",
        ),
    ] {
        let out = import_line(d, &HOUSEHOLD.replace(from, to));
        assert!(!out.status.success());
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(e.contains(field) && e.contains("control character"), "{e}");
        assert!(!e.contains('\u{1b}'), "{e}");
    }
    let long = "长".repeat(300);
    let out = import_line(
        d,
        &HOUSEHOLD.replace(r#""building":"9""#, &format!(r#""building":"{long}""#)),
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("longer than 200"));
    let tags: Vec<String> = (0..16_000).map(|i| format!("\"t{i}\"")).collect();
    let out = import_line(
        d,
        &HOUSEHOLD.replace(r#""tags":[]"#, &format!("\"tags\":[{}]", tags.join(","))),
    );
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("members[0].tags") && e.contains("at most 20"),
        "{e}"
    );
    let e = err(d, &["edit", "p-0000001", "tags", "低保,低保"]);
    assert!(e.contains("listed twice"), "{e}");
    // Notes may span lines.
    ok(d, &["edit", "hh-000001", "notes", "第一行\n第二行"]);
}

/// The role check for a reveal lives in the core: an owners' committee device's `--reveal` is
/// refused; a staff device's is written to its audit log.
#[test]
fn reveals_are_checked_and_audited_whatever_the_door() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, o) = (tmp.path().join("a"), tmp.path().join("o"));
    ok(&a, &["init", "--community", "幸福社区"]);
    ok(&a, &["import", fixture().to_str().unwrap()]);
    let code = ok(&a, &["invite", "--role", "owners"]);
    ok(&o, &["join", code.lines().last().unwrap()]);
    let e = err(
        &o,
        &[
            "--json",
            "--reveal",
            "--reason",
            "测试核对",
            "list",
            "notices",
        ],
    );
    assert!(
        e.contains("may not see ID numbers or phones in full"),
        "{e}"
    );
    let audit = |dir: &Path| -> i64 {
        let db = linli_testkit::open_db(dir.join("linli.sqlite")).unwrap();
        db.query_row("SELECT COUNT(*) FROM audit", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(audit(&a), 0);
    // A reveal says why: without a reason it is refused, and nothing is written.
    let e = err(&a, &["--reveal", "show", "p-0000001"]);
    assert!(e.contains("reason"), "{e}");
    assert_eq!(audit(&a), 0);
    let shown = json(
        &a,
        &["--reveal", "--reason", "测试核对", "show", "p-0000001"],
    );
    assert!(shown["phone"].as_str().unwrap().len() == 11);
    assert_eq!(audit(&a), 1);
    ok(&a, &["show", "p-0000001"]);
    assert_eq!(audit(&a), 1, "a masked view is not a reveal");
    // `linli audit` lists it: who, what, whose record; never the value seen.
    let phone = shown["phone"].as_str().unwrap().to_string();
    let entries = json(&a, &["audit"]);
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["action"], "reveal");
    assert_eq!(entries[0]["target"], "p-0000001");
    assert_eq!(entries[0]["reason"], "测试核对");
    let text = ok(&a, &["audit"]);
    assert!(
        text.contains("p-0000001") && text.contains("1 entries"),
        "{text}"
    );
    assert!(!text.contains(&phone) && !entries[0].to_string().contains(&phone));
    // The chain holds; an auditor gets a CSV; a day after today lists nothing.
    assert!(ok(&a, &["audit", "verify"]).contains("1 entries"));
    let csv = tmp.path().join("audit.csv");
    ok(&a, &["audit", "--csv", csv.to_str().unwrap()]);
    let csv = std::fs::read_to_string(&csv).unwrap();
    assert!(
        csv.starts_with('\u{feff}') && csv.contains("p-0000001") && csv.contains("测试核对"),
        "{csv}"
    );
    assert!(!csv.contains(&phone));
    assert_eq!(
        json(&a, &["audit", "--since", "2099-01-01"]),
        serde_json::json!([])
    );
    // An entry changed in the file is found.
    {
        let db = linli_testkit::open_db(a.join("linli.sqlite")).unwrap();
        db.execute("UPDATE audit SET user = '别人'", []).unwrap();
    }
    let e = err(&a, &["audit", "verify"]);
    assert!(e.contains("#1"), "{e}");
    // The audit log names residents' records: an owners' committee device may not read it.
    let e = err(&o, &["audit"]);
    assert!(e.contains("may not"), "{e}");
    // The command line checks roles as the app does (one door, `linli-api`): an owners'
    // device may not export a raw document (every field of it, unmasked).
    let file = tmp.path().join("doc.automerge");
    let e = err(&o, &["export-doc", "p-0000001", file.to_str().unwrap()]);
    assert!(e.contains("only committee staff"), "{e}");
    assert!(!file.exists());
}

/// Every field of an invitation code is signed: a code altered to name another relay (or to
/// carry bytes after its end) is refused by `join`, and the new store stays empty.
#[test]
fn an_altered_invitation_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    ok(&a, &["init", "--community", "幸福社区"]);
    let code = ok(
        &a,
        &["invite", "--role", "staff", "--relay", "http://127.0.0.1:9"],
    );
    let code = code.lines().last().unwrap();
    let mut invite = linli_wire::Invite::decode(code).unwrap();
    invite.relay = Some("http://203.0.113.7:80".into());
    let e = err(&b, &["join", &invite.encode()]);
    assert!(e.contains("signature"), "{e}");
    // The refused join left no community behind.
    assert!(!b.join("linli.sqlite").exists() || json(&b, &["stats"])["community"].is_null());
    ok(&b, &["join", code]);
}

/// A store is readable by its owner only: the directory 0700, the database and its log 0600.
#[test]
fn store_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = imported();
    let d = dir.path().join("fresh");
    ok(&d, &["init", "--community", "幸福社区"]);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&d), 0o700);
    assert_eq!(mode(&d.join("linli.sqlite")), 0o600);
    for f in ["linli.sqlite-wal", "linli.sqlite-shm"] {
        if d.join(f).exists() {
            assert_eq!(mode(&d.join(f)), 0o600, "{f}");
        }
    }
}
