//! End-to-end sync through a real `linli-relay` process on 127.0.0.1, driven through the
//! `linli` command line exactly as the acceptance checks use it.

use std::path::Path;

use serde_json::Value;

use crate::common::{Relay, Serve, err, hostile_push, json, ok};
use linli_testkit::namespaces;

fn households(dir: &Path) -> Vec<Value> {
    serde_json::from_value(json(
        dir,
        &["--reveal", "--reason", "测试核对", "list", "households"],
    ))
    .unwrap()
}

fn invite(dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["invite"];
    all.extend_from_slice(args);
    let out = ok(dir, &all);
    out.lines().last().unwrap().trim().to_string()
}

/// Store directories named `names` inside `tmp`.
fn dirs<const N: usize>(tmp: &Path, names: [&str; N]) -> [std::path::PathBuf; N] {
    names.map(|n| tmp.join(n))
}

/// Everything a store shows of one record (for comparing replicas).
fn show(dir: &Path, id: &str) -> Value {
    json(dir, &["--reveal", "--reason", "测试核对", "show", id])
}

#[test]
fn staff_and_grid_worker_sync_through_the_relay() {
    let tmp = tempfile::tempdir().unwrap();
    let [a, b, c] = dirs(tmp.path(), ["a", "b", "c"]);
    let relay = Relay::start(&tmp.path().join("relay"), 0);

    ok(&a, &["demo", "--households", "150", "--seed", "5"]);
    let synced = json(&a, &["sync", "--relay", &relay.url]);
    assert!(synced["sent"].as_u64().unwrap() > 300, "{synced}");

    // A grid worker for G01 and a second staff device join with invitations.
    let code = invite(&a, &["--role", "grid", "--grid", "G01"]);
    assert!(code.starts_with("LINLI2"), "{code}");
    ok(&b, &["join", &code]);
    let staff = invite(&a, &["--role", "staff"]);
    ok(&c, &["join", &staff]);
    ok(&b, &["sync"]);
    ok(&c, &["sync", "--relay", &relay.url]);

    // The grid worker holds exactly G01's households; staff hold all of them.
    let all = households(&a);
    let g01: Vec<&Value> = all.iter().filter(|h| h["scope"]["grid"] == "G01").collect();
    assert!(!g01.is_empty() && g01.len() < all.len());
    let at_b = households(&b);
    assert_eq!(at_b.len(), g01.len());
    assert!(at_b.iter().all(|h| h["scope"]["grid"] == "G01"));
    assert_eq!(households(&c), all);
    let b_stats = json(&b, &["stats"]);
    assert_eq!(
        b_stats["documents"]["notices"],
        json(&a, &["stats"])["documents"]["notices"]
    );

    // Offline edits on three devices, two of them to the same household, then sync in turn.
    let id = g01[0]["id"].as_str().unwrap();
    ok(&b, &["edit", id, "notes", "入户走访：已宣传反诈知识"]);
    ok(&a, &["edit", id, "area", "91.5"]);
    ok(&c, &["edit", id, "tenure", "出租"]);
    for dir in [&b, &a, &c, &b, &a] {
        ok(dir, &["sync"]);
    }
    let at_a = show(&a, id);
    assert_eq!(at_a["notes"], "入户走访：已宣传反诈知识");
    assert_eq!(at_a["tenure"], "rented");
    assert_eq!(show(&b, id), at_a);
    assert_eq!(show(&c, id), at_a);

    // A second sync with nothing new sends nothing.
    let again = json(&a, &["sync"]);
    assert_eq!(again["sent"], 0);
    assert_eq!(
        again["created"].as_u64().unwrap() + again["changed"].as_u64().unwrap(),
        0
    );

    // The relay's database holds no resident's name, phone or ID number in plaintext.
    let relay_db = std::fs::read(relay.dir.join("relay.sqlite")).unwrap();
    let wal = std::fs::read(relay.dir.join("relay.sqlite-wal")).unwrap_or_default();
    let person = &json(&a, &["--reveal", "--reason", "测试核对", "list", "people"])[0];
    for field in ["name", "id_number", "phone"] {
        let needle = person[field].as_str().unwrap();
        assert!(!needle.is_empty());
        for bytes in [&relay_db, &wal] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "the relay's files contain a resident's {field}"
            );
        }
    }
}

#[test]
fn a_grid_worker_cannot_send_another_grids_household() {
    let tmp = tempfile::tempdir().unwrap();
    let [a, b] = dirs(tmp.path(), ["a", "b"]);
    let relay = Relay::start(&tmp.path().join("relay"), 0);
    ok(&a, &["demo", "--households", "80", "--seed", "2"]);
    ok(&a, &["sync", "--relay", &relay.url]);
    let code = invite(&a, &["--role", "grid", "--grid", "G01"]);
    ok(&b, &["join", &code]);
    ok(&b, &["sync"]);
    // The worker imports a household of grid G02 on the tablet…
    let line = r#"{"kind":"household","id":"hh-900001","grid":"G02","compound":"幸福里小区","building":"9","unit":"1","room":"101","area_m2":60.0,"tenure":"自住","members":[{"id":"p-9000001","name":"钱多多","gender":"男","birth":"1980-01-01","id_number":"320106198001010011","phone":"13812345678","relation":"户主","tags":[],"notes":""}]}"#;
    let file = tmp.path().join("g02.jsonl");
    std::fs::write(&file, format!("{line}\n")).unwrap();
    ok(&b, &["import", file.to_str().unwrap()]);
    // …and the sync refuses to send it, naming the scope, and sends nothing.
    let msg = err(&b, &["sync"]);
    assert!(
        msg.contains("G02") && msg.contains("grid worker for G01"),
        "{msg}"
    );
    ok(&a, &["sync"]);
    assert!(households(&a).iter().all(|h| h["id"] != "hh-900001"));
    // Inviting for a grid that does not exist, or by a grid worker, is refused.
    assert!(err(&a, &["invite", "--role", "grid", "--grid", "G99"]).contains("G99"));
    assert!(
        err(&b, &["invite", "--role", "grid", "--grid", "G01"]).contains("only committee staff")
    );
}

#[test]
fn the_relay_killed_mid_upload_loses_nothing_after_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let [a, b] = dirs(tmp.path(), ["a", "b"]);
    ok(&a, &["demo", "--households", "600", "--seed", "9"]);
    let code = invite(&a, &["--role", "staff"]);
    ok(&b, &["join", &code]);
    let relay_dir = tmp.path().join("relay");
    let port = Relay::start(&relay_dir, 0).port();
    let url = format!("http://127.0.0.1:{port}");
    // Kill the relay at several moments of `a`'s upload (building, sending, storing).
    for delay_ms in [40, 150, 300, 600] {
        let mut relay = Relay::start(&relay_dir, port);
        let mut sync = crate::common::linli_command()
            .args(["--data", a.to_str().unwrap(), "sync", "--relay", &url])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        relay.kill();
        let _ = sync.wait();
    }
    // With the relay down, a sync fails with a clear message.
    assert!(err(&a, &["sync", "--relay", &url]).contains("cannot reach the relay"));
    // Restarted on the same data, both devices sync and hold the same documents.
    let relay = Relay::start(&relay_dir, port);
    ok(&a, &["sync", "--relay", &relay.url]);
    ok(&b, &["sync", "--relay", &relay.url]);
    assert_eq!(households(&b), households(&a));
    assert_eq!(
        json(&b, &["stats"])["documents"],
        json(&a, &["stats"])["documents"]
    );
}

#[test]
fn three_stores_converge_over_the_relay_and_over_iroh() {
    let tmp = tempfile::tempdir().unwrap();
    let [a, b, c] = dirs(tmp.path(), ["a", "b", "c"]);
    let relay = Relay::start(&tmp.path().join("relay"), 0);
    ok(&a, &["demo", "--households", "120", "--seed", "9"]);
    let code = invite(&a, &["--role", "grid", "--grid", "G01"]);
    ok(&b, &["join", &code]);
    let staff = invite(&a, &["--role", "staff"]);
    ok(&c, &["join", &staff]);

    // The worker's tablet meets the office PC directly; the second staff device uses the relay.
    let serve = Serve::start(&a);
    let first = json(&b, &["p2p", "sync", &serve.ticket, "--bind", "127.0.0.1:0"]);
    assert!(first["created"].as_u64().unwrap() > 10, "{first}");
    assert_eq!(first["peer"], "committee staff");
    ok(&a, &["sync", "--relay", &relay.url]);
    ok(&c, &["sync", "--relay", &relay.url]);
    let g01: Vec<Value> = households(&a)
        .into_iter()
        .filter(|h| h["scope"]["grid"] == "G01")
        .collect();
    assert_eq!(households(&b), g01);
    let id = g01[0]["id"].as_str().unwrap().to_string();
    let person = g01[0]["members"][0]["id"].as_str().unwrap().to_string();

    // Offline edits on all three, two of them to the same household.
    ok(&b, &["edit", &id, "notes", "入户走访：独居，需每周探访"]);
    ok(&c, &["edit", &person, "phone", "13900001234"]);
    ok(&a, &["edit", &id, "tenure", "rented"]);

    // b ↔ a over iroh, c ↔ relay, a ↔ relay, then b ↔ a again.
    let again = json(&b, &["p2p", "sync", &serve.ticket, "--bind", "127.0.0.1:0"]);
    assert_eq!(again["sent"], 1, "{again}");
    ok(&c, &["sync"]);
    ok(&a, &["sync"]);
    ok(&c, &["sync"]);
    let last = json(&b, &["p2p", "sync", &serve.ticket, "--bind", "127.0.0.1:0"]);
    assert!(last["round_trips"].as_u64().unwrap() <= 4, "{last}");
    drop(serve);

    let at_a = show(&a, &id);
    assert_eq!(at_a["notes"], "入户走访：独居，需每周探访");
    assert_eq!(at_a["tenure"], "rented");
    assert_eq!(show(&b, &id), at_a);
    assert_eq!(show(&c, &id), at_a);
    assert_eq!(show(&b, &person)["phone"], "13900001234");
    assert_eq!(households(&c), households(&a));
}

#[test]
fn p2p_refuses_a_device_outside_its_scope_and_a_stranger() {
    let tmp = tempfile::tempdir().unwrap();
    let [a, b, x] = dirs(tmp.path(), ["a", "b", "x"]);
    ok(&a, &["demo", "--households", "30", "--seed", "3"]);
    let code = invite(&a, &["--role", "grid", "--grid", "G01"]);
    ok(&b, &["join", &code]);
    let serve = Serve::start(&a);
    ok(&b, &["p2p", "sync", &serve.ticket, "--bind", "127.0.0.1:0"]);

    // A device of another community is refused by the serving device.
    ok(&x, &["demo", "--households", "5", "--seed", "4"]);
    let msg = err(&x, &["p2p", "sync", &serve.ticket, "--bind", "127.0.0.1:0"]);
    assert!(msg.contains("not a member"), "{msg}");

    // A G02 household on the G01 tablet: refused before anything is sent.
    let line = r#"{"kind":"household","id":"hh-900002","grid":"G02","compound":"幸福里小区","building":"9","unit":"1","room":"102","area_m2":60.0,"tenure":"自住","members":[{"id":"p-9000002","name":"孙小美","gender":"女","birth":"1985-02-03","id_number":"320106198502030029","phone":"13812345670","relation":"户主","tags":[],"notes":""}]}"#;
    let file = tmp.path().join("g02.jsonl");
    std::fs::write(&file, format!("{line}\n")).unwrap();
    ok(&b, &["import", file.to_str().unwrap()]);
    let msg = err(&b, &["p2p", "sync", &serve.ticket, "--bind", "127.0.0.1:0"]);
    assert!(
        msg.contains("G02") && msg.contains("grid worker for G01"),
        "{msg}"
    );
    drop(serve);
    let hh = json(
        &a,
        &["--reveal", "--reason", "测试核对", "list", "households"],
    );
    assert!(!hh.to_string().contains("hh-900002"));
}

#[test]
fn the_sync_benchmark_runs_its_three_phases_and_ends_in_step() {
    let tmp = tempfile::tempdir().unwrap();
    let _ = crate::common::relay_bin(); // `bench sync` starts the relay that sits next to `linli`
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let out = json(
        &tmp.path().join("unused"),
        &[
            "bench",
            "sync",
            fixtures.join("community-60.jsonl").to_str().unwrap(),
            fixtures.join("edits-60.jsonl").to_str().unwrap(),
            "--keep",
            tmp.path().join("run").to_str().unwrap(),
        ],
    );
    assert_eq!(out["behind_a"], 0, "{out}");
    let docs = out["docs"].as_u64().unwrap();
    assert_eq!(docs, 60 * 2 + 6 + 1, "{out}");
    assert_eq!(out["initial"]["docs_received"], docs, "{out}");
    // A task cannot be done with items unchecked: that edit is refused, the other four go.
    assert_eq!(
        out["edits_refused_by_domain_rules"],
        serde_json::json!(["task-0001"])
    );
    // Incremental: A's one upload and B's one held stream.
    assert_eq!(out["incremental"]["a_round_trips"], 1, "{out}");
    assert_eq!(out["incremental"]["b_round_trips"], 1, "{out}");
    for (phase, round_trips) in [("initial", 1), ("incremental", 2), ("reconnect", 1)] {
        assert_eq!(out[phase]["round_trips"], round_trips, "{phase}: {out}");
        assert!(
            out[phase]["bytes_down"].as_u64().unwrap() > 0,
            "{phase}: {out}"
        );
        assert!(
            out[phase]["device_peak_rss_mb"].as_f64().unwrap() > 0.0,
            "{phase}: {out}"
        );
        // CPU time by process: B's own (its whole `linli sync`, or its live session's) is
        // never nothing, and the total is the sum of the parts.
        let cpu = out[phase]["cpu_ms"].as_object().unwrap();
        assert!(cpu["b"].as_f64().unwrap() > 0.0, "{phase}: {out}");
        let parts: f64 = cpu
            .iter()
            .filter(|(k, _)| *k != "total")
            .map(|(_, v)| v.as_f64().unwrap())
            .sum();
        assert!(
            (cpu["total"].as_f64().unwrap() - parts).abs() <= 2.0,
            "{phase}: {out}"
        );
    }
    // In the incremental phase, A's edits (the benchmark's own process) and A's session too.
    let cpu = &out["incremental"]["cpu_ms"];
    assert!(cpu["a"].as_f64().unwrap() > 0.0, "{out}");
    assert!(cpu["a_session"].as_f64().unwrap() > 0.0, "{out}");
    // hh-000001 (.pii, twice), hh-000002 and task-0001 changed: 3 documents, or 4 when the
    // .pii's two edits left in two bursts (a burst leaves 5 ms after its first change, and a
    // loaded machine may take longer over the five edits) and B merged it twice.
    let received = out["incremental"]["docs_received"].as_u64().unwrap();
    assert!(
        received == 3 || received == 4 && out["incremental"]["b_receipts"].as_u64().unwrap() > 1,
        "{out}"
    );
    assert_eq!(out["reconnect"]["docs_received"], 3, "{out}");
    assert!(out["relay_peak_rss_mb"].as_f64().unwrap() > 0.0);
}

/// The JSON lines a child prints, read on a thread (each wait bounded).
fn lines_of(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<Value> {
    use std::io::BufRead;
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(serde_json::from_str(&line).unwrap_or(Value::String(line)));
        }
    });
    rx
}

#[test]
fn a_watching_device_receives_changes_as_they_arrive_and_sends_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let [a, b] = dirs(tmp.path(), ["a", "b"]);
    let relay = Relay::start(&tmp.path().join("relay"), 0);
    ok(&a, &["demo", "--households", "20", "--seed", "3"]);
    ok(&a, &["sync", "--relay", &relay.url]);
    ok(&b, &["join", &invite(&a, &["--role", "staff"])]);
    let id = households(&a)[0]["id"].as_str().unwrap().to_string();

    let mut watcher = crate::common::linli_command()
        .arg("--json")
        .arg("--data")
        .arg(&b)
        .args(["sync", "--watch", "--for", "60"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut watcher);
    let next = || {
        lines
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap()
    };
    let first = next();
    assert_eq!(first["event"], "synced", "{first}");
    assert!(first["created"].as_u64().unwrap() > 40, "{first}");

    // A's change reaches B while B waits, without B asking again.
    ok(&a, &["edit", &id, "notes", "门禁已修好"]);
    ok(&a, &["sync"]);
    let got = next();
    assert_eq!(got["event"], "received", "{got}");
    assert_eq!(got["changed"], 1, "{got}");
    assert_eq!(got["round_trips"], 1, "{got}");
    assert_eq!(show(&b, &id)["notes"], "门禁已修好");

    // A change made in B's store (here by another process) is sent at once.
    ok(&b, &["edit", &id, "notes", "门禁已修好，已回访"]);
    let sent = next();
    assert_eq!(sent["event"], "sent", "{sent}");
    assert_eq!(sent["sent"], 1, "{sent}");
    let pulled = json(&a, &["sync"]);
    assert_eq!(pulled["changed"], 1, "{pulled}");
    assert_eq!(show(&a, &id)["notes"], "门禁已修好，已回访");

    // Stopped as a person would (SIGTERM, as Ctrl-C): it ends at once and closes its store,
    // which writes the log back and removes it.
    #[cfg(unix)]
    {
        use rustix::process::{Pid, Signal, kill_process};
        kill_process(Pid::from_child(&watcher), Signal::TERM).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let status = loop {
            if let Some(status) = watcher.try_wait().unwrap() {
                break status;
            }
            assert!(std::time::Instant::now() < deadline, "still watching");
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert!(status.success(), "{status}");
        assert!(
            !b.join("linli.sqlite-wal").exists(),
            "the store was closed: its log written back and removed"
        );
    }
    let _ = watcher.kill();
    let _ = watcher.wait();
}

/// Rows of the relay's tables (read while it runs: WAL mode allows it).
fn relay_rows(relay: &Relay, table: &str) -> i64 {
    let db = rusqlite::Connection::open(relay.dir.join("relay.sqlite")).unwrap();
    db.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn compacting_the_relay_keeps_every_change_and_new_devices_download_less() {
    let tmp = tempfile::tempdir().unwrap();
    let [a, b, c] = dirs(tmp.path(), ["a", "b", "c"]);
    let relay = Relay::start(&tmp.path().join("relay"), 0);
    ok(&a, &["demo", "--households", "40", "--seed", "9"]);
    ok(&a, &["sync", "--relay", &relay.url]);
    // B joins and syncs now; it will come back after the compaction with an old cursor.
    ok(
        &b,
        &["join", &invite(&a, &["--role", "grid", "--grid", "G01"])],
    );
    ok(&b, &["sync"]);
    let ids: Vec<String> = households(&a)
        .iter()
        .filter(|h| h["scope"]["grid"] == "G01")
        .map(|h| h["id"].as_str().unwrap().to_string())
        .collect();
    // Many small syncs: one change blob each.
    for (i, id) in ids.iter().take(6).enumerate() {
        ok(&a, &["edit", id, "notes", &format!("第{i}次走访")]);
        ok(&a, &["sync"]);
    }
    let before = relay_rows(&relay, "blobs");
    assert!(before >= 7, "{before}");

    let r = json(&a, &["compact"]);
    assert!(r["docs"].as_u64().unwrap() > 80, "{r}");
    let after = relay_rows(&relay, "blobs");
    assert_eq!(
        after,
        r["blobs"].as_i64().unwrap(),
        "only the snapshots remain: {r}"
    );
    assert!(after < before, "{after} < {before}");
    assert_eq!(
        relay_rows(&relay, "blob_docs"),
        r["docs"].as_i64().unwrap(),
        "one blob per document"
    );

    // A new staff device gets everything from the snapshots alone.
    ok(&c, &["join", &invite(&a, &["--role", "staff"])]);
    let got = json(&c, &["sync"]);
    assert_eq!(got["created"], r["docs"], "{got}");
    assert_eq!(households(&c), households(&a));
    for id in ids.iter().take(6) {
        assert_eq!(show(&c, id), show(&a, id));
    }
    // The grid worker, last synced before the edits, catches up from the snapshots too.
    ok(&b, &["sync"]);
    for id in ids.iter().take(6) {
        assert_eq!(show(&b, id)["notes"], show(&a, id)["notes"]);
    }
    // A change after the compaction travels as before.
    ok(&c, &["edit", &ids[0], "notes", "压缩之后"]);
    ok(&c, &["sync"]);
    ok(&b, &["sync"]);
    assert_eq!(show(&b, &ids[0])["notes"], "压缩之后");
    // A grid worker may compact only its own grid.
    let g = json(&b, &["compact"]);
    assert!(
        g["docs"].as_u64().unwrap() < r["docs"].as_u64().unwrap(),
        "{g}"
    );
}

#[test]
fn a_serving_device_keeps_serving_when_its_output_is_closed() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().unwrap();
    let [a, b] = dirs(tmp.path(), ["a", "b"]);
    ok(&a, &["demo", "--households", "10", "--seed", "4"]);
    ok(&b, &["join", &invite(&a, &["--role", "staff"])]);
    let mut child = crate::common::linli_command()
        .arg("--data")
        .arg(&a)
        .args(["p2p", "serve", "--bind", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut ticket = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ticket)
        .unwrap();
    // The reader is gone now: the next report line cannot be written.
    for _ in 0..2 {
        let r = json(&b, &["p2p", "sync", ticket.trim(), "--bind", "127.0.0.1:0"]);
        assert!(r["round_trips"].as_u64().unwrap() >= 1, "{r}");
    }
    assert!(child.try_wait().unwrap().is_none(), "still serving");
    let _ = child.kill();
    let _ = child.wait();
}

/// `linli p2p sync` without a ticket finds the community's serving device on the local network
/// (multicast DNS on the loopback of the test's own network namespace) and syncs with it; a
/// serving device of another community is not tried; with nobody serving it says so.
#[test]
fn p2p_sync_finds_a_serving_device_of_its_community_on_the_local_network() {
    if !namespaces::isolated(
        "sync::p2p_sync_finds_a_serving_device_of_its_community_on_the_local_network",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let [a, b, x] = dirs(tmp.path(), ["a", "b", "x"]);
    ok(&a, &["demo", "--households", "10", "--seed", "4"]);
    ok(&x, &["demo", "--households", "5", "--seed", "5"]);
    ok(&b, &["join", &invite(&a, &["--role", "staff"])]);
    let look = ["p2p", "sync", "--bind", "127.0.0.1:0", "--wait", "1.5"];
    let msg = err(&b, &look);
    assert!(msg.contains("no device of this community"), "{msg}");

    let _stranger = Serve::start_with(&x, &["--lan", "on"]);
    let _a = Serve::start_with(&a, &["--lan", "on"]);
    // A long wait: the look ends once the device answered (and nobody else for a moment).
    let started = std::time::Instant::now();
    let r = json(
        &b,
        &["p2p", "sync", "--bind", "127.0.0.1:0", "--wait", "60"],
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "the look waited out its whole --wait: {:?}",
        started.elapsed()
    );
    assert!(r["created"].as_u64().unwrap() > 10, "{r}");
    assert_eq!(r["peer"], "committee staff");
    assert_eq!(households(&b), households(&a));
}

/// A relay serving TLS with its own certificate: devices reach it by the address it prints
/// (`https://…#sha256=PIN`, carried by invitations), a wrong pin or plain http is refused with
/// a clear message, and the certificate (so the pin) survives a restart.
#[test]
fn a_relay_serving_tls_is_trusted_by_its_pin_only() {
    let tmp = tempfile::tempdir().unwrap();
    let [a, b] = dirs(tmp.path(), ["a", "b"]);
    let relay_dir = tmp.path().join("relay");
    let mut relay = Relay::start_with(&relay_dir, 0, &["--tls"]);
    let (addr, pin) = relay.url.split_once("#sha256=").unwrap();
    assert!(
        addr.starts_with("https://") && pin.len() == 64,
        "{}",
        relay.url
    );

    ok(&a, &["demo", "--households", "20", "--seed", "6"]);
    let sent = json(&a, &["sync", "--relay", &relay.url]);
    assert!(sent["sent"].as_u64().unwrap() > 40, "{sent}");
    ok(&b, &["join", &invite(&a, &["--role", "staff"])]);
    let got = json(&b, &["sync"]);
    assert!(got["created"].as_u64().unwrap() > 40, "{got}");
    assert_eq!(households(&b), households(&a));

    // Another pin: refused before anything is sent.
    let last = pin.chars().last().unwrap();
    let other = format!(
        "{addr}#sha256={}{}",
        &pin[..63],
        if last == '0' { '1' } else { '0' }
    );
    let msg = err(&b, &["sync", "--relay", &other]);
    assert!(msg.contains("pin"), "{msg}");
    let msg = err(&b, &["sync", "--relay", addr]);
    assert!(msg.contains("#sha256="), "{msg}");
    let plain = addr.replace("https://", "http://");
    let msg = err(&b, &["sync", "--relay", &plain]);
    assert!(msg.contains("cannot reach the relay"), "{msg}");

    // The key is the owner's alone, and a restart keeps the certificate.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(relay_dir.join("tls/key.der"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }
    let port = relay.port();
    let url = relay.url.clone();
    relay.kill();
    let relay = Relay::start_with(&relay_dir, port, &["--tls"]);
    assert_eq!(relay.url, url);
    ok(&b, &["sync"]);
}

/// Two devices sync with one serving device at the same moment: both sessions complete, and
/// the three end equal.
#[test]
fn a_serving_device_syncs_with_two_devices_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let [a, b, c] = dirs(tmp.path(), ["a", "b", "c"]);
    ok(&a, &["demo", "--households", "60", "--seed", "8"]);
    ok(&b, &["join", &invite(&a, &["--role", "staff"])]);
    ok(&c, &["join", &invite(&a, &["--role", "staff"])]);
    let serve = Serve::start(&a);
    let run = |dir: &Path| {
        crate::common::linli_command()
            .arg("--data")
            .arg(dir)
            .args([
                "--json",
                "p2p",
                "sync",
                &serve.ticket,
                "--bind",
                "127.0.0.1:0",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (pb, pc) = (run(&b), run(&c));
    for p in [pb, pc] {
        let out = p.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(r["created"].as_u64().unwrap() > 100, "{r}");
    }
    // Each changes a household and syncs again, at once; then once more to collect the other's.
    let hh = households(&a);
    let (hb, hc) = (hh[0]["id"].as_str().unwrap(), hh[1]["id"].as_str().unwrap());
    ok(&b, &["edit", hb, "notes", "乙到此一访"]);
    ok(&c, &["edit", hc, "notes", "丙到此一访"]);
    let (pb, pc) = (run(&b), run(&c));
    for p in [pb, pc] {
        assert!(p.wait_with_output().unwrap().status.success());
    }
    for dir in [&b, &c] {
        ok(
            dir,
            &["p2p", "sync", &serve.ticket, "--bind", "127.0.0.1:0"],
        );
    }
    assert_eq!(show(&a, hb)["notes"], "乙到此一访");
    assert_eq!(show(&a, hc)["notes"], "丙到此一访");
    assert_eq!(households(&b), households(&a));
    assert_eq!(households(&c), households(&a));
}

#[test]
fn a_live_upload_cut_before_the_relay_answers_is_sent_again() {
    let tmp = tempfile::tempdir().unwrap();
    let [a, b] = dirs(tmp.path(), ["a", "b"]);
    let relay_dir = tmp.path().join("relay");
    let mut relay = Relay::start(&relay_dir, 0);
    let port = relay.port();
    ok(&a, &["demo", "--households", "20", "--seed", "3"]);
    ok(&a, &["sync", "--relay", &relay.url]);
    ok(&b, &["join", &invite(&a, &["--role", "staff"])]);
    ok(&b, &["sync"]);
    let id = households(&a)[0]["id"].as_str().unwrap().to_string();
    let blobs_of = |relay: &Relay| -> i64 {
        let db = rusqlite::Connection::open(relay.dir.join("relay.sqlite")).unwrap();
        db.query_row(
            "SELECT COUNT(*) FROM blob_docs WHERE doc = ?1",
            [&id],
            |r| r.get(0),
        )
        .unwrap()
    };
    let before = blobs_of(&relay);

    let mut watcher = crate::common::linli_command()
        .arg("--json")
        .arg("--data")
        .arg(&a)
        .args(["sync", "--watch", "--for", "60"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut watcher);
    let first = lines
        .recv_timeout(std::time::Duration::from_secs(30))
        .unwrap();
    assert_eq!(first["event"], "synced", "{first}");

    // The edit leaves at once in an upload that stays open a moment for more; the relay is
    // killed as soon as it has stored it, before it could answer.
    ok(&a, &["edit", &id, "notes", "电梯停运，已报修"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while blobs_of(&relay) == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the edit never reached the relay"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    relay.kill();
    let status = loop {
        if let Some(status) = watcher.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still watching a dead relay"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut watcher.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("relay"), "{stderr}");

    // Unanswered, the upload did not count as sent: the next sync sends the change again
    // (the relay then holds it twice; merging it twice changes nothing), and B gets it.
    let relay = Relay::start(&relay_dir, port);
    let sent = json(&a, &["sync"]);
    assert!(sent["sent"].as_u64().unwrap() >= 1, "{sent}");
    assert_eq!(blobs_of(&relay), before + 2);
    let got = json(&b, &["sync"]);
    assert_eq!(got["changed"], 1, "{got}");
    assert_eq!(show(&b, &id)["notes"], "电梯停运，已报修");
    assert_eq!(show(&b, &id), show(&a, &id));
}

/// One unreadable blob stopped every device's sync for good ("sealed data for scope * does
/// not open"), and `linli compact` could not repair it. Now a blob a device cannot use (bytes
/// that do not open, or a household sealed for the community-wide scope) is set aside with who
/// sent it, the cursor moves on, nothing readable is lost, and staff have the relay drop it.
#[test]
fn a_blob_nobody_can_read_is_set_aside_and_staff_have_it_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let [a, o, g, n] = dirs(tmp.path(), ["a", "o", "g", "n"]);
    let relay = Relay::start(&tmp.path().join("relay"), 0);
    ok(&a, &["demo", "--households", "60", "--seed", "4"]);
    ok(&a, &["sync", "--relay", &relay.url]);
    ok(&o, &["join", &invite(&a, &["--role", "owners"])]);
    ok(
        &g,
        &["join", &invite(&a, &["--role", "grid", "--grid", "G01"])],
    );
    ok(&o, &["sync"]);
    ok(&g, &["sync"]);
    let households_before = households(&a).len();

    // The owners' committee device pushes 64 zero bytes as a community-wide blob, and a
    // validly sealed bundle holding a household with its ID numbers in the community-wide
    // scope (every owners' device would receive it).
    let garbage = linli_wire::relay::NewBlob {
        scope: "*".into(),
        kind: linli_wire::relay::BlobKind::Changes,
        docs: vec!["notice-x".into()],
        covers: 0,
        sealed: vec![0; 64],
    };
    assert_eq!(hostile_push(&o, &relay.url, vec![garbage]), 200);
    let line = r#"{"kind":"household","id":"hh-900001","grid":"G01","compound":"幸福里小区","building":"9","unit":"1","room":"101","area_m2":60.0,"tenure":"自住","members":[{"id":"p-9000001","name":"钱多多","gender":"男","birth":"1980-01-01","id_number":"320106198001010011","phone":"13812345678","relation":"户主","tags":[],"notes":""}]}"#;
    let community = json(&a, &["stats"])["community_id"]
        .as_str()
        .unwrap()
        .to_string();
    let records =
        linli_domain::interchange::parse_line(line, &community, linli_domain::today()).unwrap();
    // With them, a good notice: it is merged, the household is not.
    let mut notice = json(&a, &["list", "notices"])[0].clone();
    notice["id"] = "notice-good".into();
    notice["title"] = "停水通知".into();
    let notice =
        linli_domain::AnyRecord::from_json(linli_domain::Collection::Notice, notice).unwrap();
    let sealed_household = {
        let store = linli_store::Store::open(&o, &linli_testkit::key()).unwrap();
        let key = store.scope_key("*").unwrap().unwrap();
        let mut bundle = linli_wire::Bundle::default();
        for mut r in records.into_iter().chain([notice]) {
            if let linli_domain::AnyRecord::Household(h) = &mut r {
                h.scope.grid = None;
            }
            if let linli_domain::AnyRecord::Sensitive(s) = &mut r {
                s.scope.grid = None;
            }
            let mut doc = automerge::AutoCommit::new();
            r.reconcile_into(&mut doc).unwrap();
            bundle.docs.push(linli_wire::DocPayload {
                id: r.id().to_string(),
                collection: r.collection().code().to_string(),
                bytes: doc.save(),
            });
        }
        linli_wire::seal_bundle(&key, &community, "*", &bundle).unwrap()
    };
    let sneaked = linli_wire::relay::NewBlob {
        scope: "*".into(),
        kind: linli_wire::relay::BlobKind::Changes,
        docs: vec![
            "hh-900001".into(),
            "hh-900001.pii".into(),
            "notice-good".into(),
        ],
        covers: 0,
        sealed: sealed_household,
    };
    assert_eq!(hostile_push(&o, &relay.url, vec![sneaked]), 200);
    // Staff write after it: their change must still arrive everywhere.
    ok(&a, &["edit", "hh-000001", "notes", "有害数据之后的修改"]);
    ok(&a, &["sync"]);

    // The grid worker's sync goes on, and says what it set aside (the sender is not handed
    // back its own blobs).
    let r = json(&g, &["sync"]);
    assert_eq!(r["set_aside"], 2, "{r}");
    assert_eq!(json(&o, &["sync"])["set_aside"], 0);
    let second = json(&g, &["sync"]);
    assert_eq!(
        second["set_aside"], 0,
        "the cursor moved past them: {second}"
    );
    let listed = json(&g, &["set-aside"]);
    let aside = listed["set_aside"].as_array().unwrap();
    assert_eq!(aside.len(), 2, "{listed}");
    let owners_key = {
        let store = linli_store::Store::open(&o, &linli_testkit::key()).unwrap();
        data_hex(&store.identity().unwrap().key.public())
    };
    assert!(
        aside.iter().all(|x| x["sender"] == owners_key.as_str()),
        "{listed}"
    );
    assert!(
        aside
            .iter()
            .any(|x| x["whole"] == true && x["reason"].as_str().unwrap().contains("does not open"))
    );
    assert!(aside.iter().any(
        |x| x["whole"] == false && x["reason"].as_str().unwrap().contains("document hh-900001")
    ));
    // The good notice of the blob set aside in part was merged.
    assert!(ok(&g, &["--json", "list", "notices"]).contains("notice-good"));
    let text = ok(&g, &["set-aside"]);
    assert!(
        text.contains("发送了无法解读的数据") && text.contains(&owners_key[..8]),
        "{text}"
    );
    // Nothing of the hostile household was stored, and what came after it arrived.
    assert!(households(&g).iter().all(|h| h["id"] != "hh-900001"));
    assert!(!ok(&o, &["--json", "list", "households"]).contains("hh-900001"));
    // The grid worker may receive hh-000001 only if it is in G01; staff's other device does.
    ok(&n, &["join", &invite(&a, &["--role", "staff"])]);
    let first = json(&n, &["sync"]);
    assert_eq!(first["set_aside"], 2, "{first}");
    assert_eq!(show(&n, "hh-000001")["notes"], "有害数据之后的修改");
    assert_eq!(households(&n).len(), households_before);

    // Staff have the relay drop what they set aside (it compacts first, as one blob held a
    // good notice); the owners' device may not.
    let e = err(&o, &["set-aside", "--drop"]);
    assert!(e.contains("only committee staff"), "{e}");
    let dropped = json(&n, &["set-aside", "--drop"]);
    assert_eq!(dropped["dropped"], 2, "{dropped}");
    assert_eq!(dropped["set_aside"].as_array().unwrap().len(), 0);
    // A device joining now never sees them.
    let fresh = tmp.path().join("fresh");
    ok(
        &fresh,
        &["join", &invite(&a, &["--role", "grid", "--grid", "G01"])],
    );
    let r = json(&fresh, &["sync"]);
    assert_eq!(r["set_aside"], 0, "{r}");
    assert!(ok(&fresh, &["--json", "list", "notices"]).contains("notice-good"));
}

fn data_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A grid worker lists, in a blob of its own grid, the id of a household another grid will
/// import later: the relay keeps that id in its grid, so the import's push is refused. Staff
/// are told which blob keeps it, have the relay drop it, and sync again.
#[test]
fn staff_have_a_blob_that_claims_another_grids_id_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let [a, g] = dirs(tmp.path(), ["a", "g"]);
    let relay = Relay::start(&tmp.path().join("relay"), 0);
    ok(&a, &["demo", "--households", "200", "--seed", "6"]);
    ok(&a, &["sync", "--relay", &relay.url]);
    ok(
        &g,
        &["join", &invite(&a, &["--role", "grid", "--grid", "G02"])],
    );
    ok(&g, &["sync"]);
    let claim = linli_wire::relay::NewBlob {
        scope: "G02".into(),
        kind: linli_wire::relay::BlobKind::Changes,
        docs: vec!["hh-900001".into(), "hh-900001.pii".into()],
        covers: 0,
        sealed: vec![1; 64],
    };
    assert_eq!(hostile_push(&g, &relay.url, vec![claim]), 200);
    let line = r#"{"kind":"household","id":"hh-900001","grid":"G01","compound":"幸福里小区","building":"9","unit":"1","room":"101","area_m2":60.0,"tenure":"自住","members":[{"id":"p-9000001","name":"钱多多","gender":"男","birth":"1980-01-01","id_number":"320106198001010011","phone":"13812345678","relation":"户主","tags":[],"notes":""}]}"#;
    let file = tmp.path().join("one.jsonl");
    std::fs::write(&file, format!("{line}\n")).unwrap();
    ok(&a, &["import", file.to_str().unwrap()]);
    let e = err(&a, &["sync"]);
    assert!(
        e.contains("is kept in scope G02") && e.contains("linli drop-blob"),
        "{e}"
    );
    let seq = e
        .split("linli drop-blob ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .unwrap()
        .to_string();
    assert!(err(&g, &["drop-blob", &seq]).contains("only committee staff"));
    let dropped = json(&a, &["drop-blob", &seq]);
    assert_eq!(
        dropped["dropped"],
        serde_json::json!([seq.parse::<u64>().unwrap()])
    );
    ok(&a, &["sync"]);
}
