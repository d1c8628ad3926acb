//! `linli bench sync COMMUNITY.jsonl EDITS.jsonl`: the peer benchmark's three phases through a
//! real relay process on 127.0.0.1 — initial sync of a fresh device, incremental sync of K edits
//! while connected, reconnect after K offline edits. Prints one JSON object.
//!
//! Device A (the writer, this process) imports the roster and uploads it; device B (the reader)
//! is a fresh staff device that syncs as a child process `linli sync`, so its peak memory is
//! its own. For the incremental phase both are connected before A's first edit by
//! `linli sync --watch` (live sessions), A's sending A's edits as this process makes them. Bytes are B's, counted by the relay at its sockets (TCP payload: HTTP headers and
//! bodies), as the peer benchmark counts its reader's connection at the server: the relay
//! listens on 127.0.0.1 for A and on `[::1]` for B, and counts each listener apart.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use linli_store::Store;
use serde_json::{Value, json};

use crate::rss::{cpu_ms, peak_rss_mb_of, tenths, threads_cpu_ms_of};

/// One edit line of `gen_community.py --edits`.
struct Edit {
    id: String,
    path: Vec<Value>,
    value: Value,
}

/// Every line of a JSON Lines file, with its 1-based number.
fn read_jsonl(file: &Path) -> Result<Vec<(usize, Value)>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not JSON", file.display(), i + 1))?;
        out.push((i + 1, v));
    }
    Ok(out)
}

fn read_edits(file: &Path) -> Result<Vec<Edit>> {
    read_jsonl(file)?
        .into_iter()
        .map(
            |(n, v)| match (v["id"].as_str(), v["path"].as_array(), v.get("value")) {
                (Some(id), Some(path), Some(value)) => Ok(Edit {
                    id: id.to_string(),
                    path: path.clone(),
                    value: value.clone(),
                }),
                _ => bail!("{}:{n}: expected id, path and value", file.display()),
            },
        )
        .collect()
}

/// The roster's records by id, as JSON (to find person ids and original values).
fn read_records(file: &Path) -> Result<HashMap<String, Value>> {
    Ok(read_jsonl(file)?
        .into_iter()
        .filter_map(|(_, v)| Some((v["id"].as_str()?.to_string(), v)))
        .collect())
}

fn raw(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Applies one edit to A's store: a member's field edits that person, anything else the record.
/// Returns false if the domain rules refuse the new value (e.g. a task marked done with items
/// unchecked), which the benchmark reports.
fn apply(
    store: &mut Store,
    records: &HashMap<String, Value>,
    e: &Edit,
    value: &Value,
) -> Result<bool> {
    let segs: Vec<String> = e.path.iter().map(raw).collect();
    let (target, field) = match segs.first().map(String::as_str) {
        Some("members") if segs.len() == 3 => {
            let i: usize = segs[1].parse().context("member index")?;
            let person = records
                .get(&e.id)
                .and_then(|r| r["members"][i]["id"].as_str())
                .with_context(|| format!("{}: no member {i}", e.id))?;
            (person.to_string(), segs[2].clone())
        }
        _ => (e.id.clone(), segs.join(".")),
    };
    match store.edit(&target, &field, &raw(value)) {
        Ok(_) => Ok(true),
        Err(linli_store::StoreError::Invalid { .. }) => Ok(false),
        Err(err) => Err(err).with_context(|| format!("edit {} {field}", e.id)),
    }
}

/// The record's value at an edit's path in the roster file.
fn original(records: &HashMap<String, Value>, e: &Edit) -> Value {
    let mut v = records.get(&e.id).cloned().unwrap_or(Value::Null);
    for seg in &e.path {
        v = match seg {
            Value::Number(n) => v[n.as_u64().unwrap_or(0) as usize].take(),
            Value::String(s) => v[s.as_str()].take(),
            _ => Value::Null,
        };
    }
    v
}

pub(crate) struct RelayProc {
    child: Child,
    /// A's address (127.0.0.1).
    pub(crate) url: String,
    /// B's address (`[::1]`).
    url_b: String,
}

impl Drop for RelayProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start_relay(dir: &Path) -> Result<RelayProc> {
    let exe = std::env::current_exe()?;
    let bin = exe.with_file_name(format!("linli-relay{}", std::env::consts::EXE_SUFFIX));
    ensure!(
        bin.exists(),
        "{} not found: build it first (cargo build --release -p linli-relay)",
        bin.display()
    );
    let mut child = Command::new(&bin)
        .arg("--data")
        .arg(dir)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--listen",
            "[::1]:0",
            "--traffic",
        ])
        .env(
            "LINLI_LOG",
            std::env::var("LINLI_RELAY_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .stderr(if std::env::var_os("LINLI_RELAY_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let stdout = child.stdout.take().context("relay stdout")?;
    let mut lines = BufReader::new(stdout);
    let mut url = || -> Result<String> {
        let mut line = String::new();
        lines.read_line(&mut line)?;
        let url = line
            .trim()
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .to_string();
        ensure!(url.starts_with("http://"), "the relay said: {line}");
        Ok(url)
    };
    let (url, url_b) = (url()?, url()?);
    Ok(RelayProc { child, url, url_b })
}

/// The relay's socket totals (bytes in, bytes out), asked over a plain HTTP/1.0 request.
fn traffic(url: &str) -> Result<(u64, u64)> {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr)?;
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    write!(conn, "GET /traffic HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut text = String::new();
    conn.read_to_string(&mut text)?;
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    let mut it = body.split_whitespace().map(str::parse::<u64>);
    match (it.next(), it.next()) {
        (Some(Ok(i)), Some(Ok(o))) => Ok((i, o)),
        _ => bail!("the relay's traffic answer was {text:?}"),
    }
}

/// Device B syncs once, as its own process.
/// The key of a benchmark's stores as `LINLI_STORE_KEY` takes it (for its child processes).
pub(crate) fn key_hex(key: &linli_store::DbKey) -> String {
    key.to_hex().to_string()
}

fn b_sync(dir: &Path, url: &str, key: &linli_store::DbKey) -> Result<(Value, f64)> {
    let exe = std::env::current_exe()?;
    let t = Instant::now();
    let out = Command::new(exe)
        .env("LINLI_STORE_KEY", key_hex(key))
        .arg("--json")
        .arg("--data")
        .arg(dir)
        .args(["sync", "--relay", url])
        .output()?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    ensure!(
        out.status.success(),
        "device B's sync failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((serde_json::from_slice(&out.stdout)?, ms))
}

/// A device staying connected (`linli sync --watch`), its JSON lines read on a thread.
pub(crate) struct Watcher {
    child: Child,
    lines: std::sync::mpsc::Receiver<Value>,
    name: &'static str,
    /// Its first line (the first sync done).
    first: Value,
}

impl Watcher {
    /// Starts a device's live session and waits for its first sync to finish.
    pub(crate) fn start(
        name: &'static str,
        dir: &Path,
        url: &str,
        key: &linli_store::DbKey,
    ) -> Result<Watcher> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .env("LINLI_STORE_KEY", key_hex(key))
            .arg("--json")
            .arg("--data")
            .arg(dir)
            .args(["sync", "--watch", "--relay", url])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().context("the device's stdout")?;
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && tx.send(v).is_err()
                {
                    break;
                }
            }
        });
        let mut w = Watcher {
            child,
            lines,
            name,
            first: Value::Null,
        };
        let first = w.next()?;
        ensure!(first["event"] == "synced", "device {name} said {first}");
        w.first = first;
        Ok(w)
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    fn next(&mut self) -> Result<Value> {
        self.lines
            .recv_timeout(std::time::Duration::from_secs(120))
            .with_context(|| {
                format!(
                    "device {} said nothing for 2 minutes (or stopped)",
                    self.name
                )
            })
    }

    /// A line the device printed already, if any (never waits).
    fn try_next(&mut self) -> Option<Value> {
        self.lines.try_recv().ok()
    }
}

impl Drop for Watcher {
    /// Stops B as a person would (SIGTERM, as Ctrl-C): it closes its store, with the last
    /// checkpoint a running device makes in the background within seconds anyway. Killed if it
    /// has not stopped within 10 s.
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            use rustix::process::{Pid, Signal, kill_process};
            if kill_process(Pid::from_child(&self.child), Signal::TERM).is_ok() {
                let deadline = Instant::now() + std::time::Duration::from_secs(10);
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = self.child.try_wait() {
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the benchmark.
pub fn run(community: &Path, edits_file: &Path, keep: Option<&Path>) -> Result<()> {
    let tmp = match keep {
        Some(k) => k.to_path_buf(),
        None => std::env::temp_dir().join(format!("linli-bench-sync-{}", std::process::id())),
    };
    ensure!(
        !tmp.join("a").exists(),
        "{} already holds a benchmark; give an empty directory",
        tmp.display()
    );
    std::fs::create_dir_all(&tmp)?;
    let result = run_in(&tmp, community, edits_file);
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    let out = result?;
    say!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn run_in(tmp: &Path, community: &Path, edits_file: &Path) -> Result<Value> {
    // The stores are encrypted as every store is, with a key of this run (synthetic data: no
    // key file).
    let key = linli_store::DbKey::random()?;
    let records = read_records(community)?;
    let edits = read_edits(edits_file)?;
    let relay = start_relay(&tmp.join("relay"))?;
    let url = relay.url.clone();
    let url_b = relay.url_b.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let net = || traffic(&url_b);

    // Setup: A imports the roster and uploads it.
    let a_dir = tmp.join("a");
    let mut a = Store::open(&a_dir, &key)?;
    // Device A is a running app: its checkpoints run in the background, as the app's do.
    let _checkpoints = a.checkpoint_in_background(linli_api::CHECKPOINT_EVERY)?;
    linli_api::setup::init(
        &mut a,
        "基准社区",
        "",
        Some("bench"),
        None,
        linli_domain::Timestamp::now(),
    )?;
    let t = Instant::now();
    let imported =
        linli_api::setup::import_file(&mut a, community, "import", linli_domain::today())?;
    let import_ms = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    let up = runtime.block_on(linli_sync::relay_client::sync(&mut a, &url))?;
    let upload_ms = t.elapsed().as_secs_f64() * 1000.0;
    let b_dir = tmp.join("b");
    {
        let invite = a.invite(linli_wire::Role::Staff, &[], Some(&url))?;
        let mut b = Store::open(&b_dir, &key)?;
        b.join(&invite)?;
    }

    // The cost of asking the relay for its totals, to take off each phase.
    let t0 = net()?;
    let t1 = net()?;
    let probe = (t1.0 - t0.0, t1.1 - t0.1);
    let measure = |before: (u64, u64), after: (u64, u64)| {
        (
            after.0.saturating_sub(before.0 + probe.0),
            after.1.saturating_sub(before.1 + probe.1),
        )
    };

    // CPU time, per phase: each `linli` process reports its own (every thread's); the relay's
    // is read from /proc (its threads live as long as it does).
    let relay_cpu = || threads_cpu_ms_of(relay.child.id());
    let ms_of = |v: &Value| v["cpu_ms"].as_f64().unwrap_or(0.0);

    // Initial: a fresh B fetches everything.
    let before = net()?;
    let relay_before = relay_cpu();
    let (initial, initial_ms) = b_sync(&b_dir, &url_b, &key)?;
    let initial_cpu = cpu_split(&[
        ("b", ms_of(&initial)),
        ("relay", relay_cpu() - relay_before),
    ]);
    let initial_bytes = measure(before, net()?);

    // Incremental: both devices are connected by `linli sync --watch` (a live session, as the
    // app's background loop holds one: see `linli_sync::live`), B following the relay's log,
    // A's session sending A's changes as A makes them (A's edits are made here, in another
    // process on the same store, as the app's screens write beside its sync loop). The phase
    // ends when B holds every document A changed as A has it, checked after each of B's
    // receipts. Round trips: B's held stream and A's uploads.
    let mut a_watch = Watcher::start("A", &a_dir, &url, &key)?;
    let mut b_watch = Watcher::start("B", &b_dir, &url_b, &key)?;
    let b = Store::open(&b_dir, &key)?;
    let before = net()?;
    let relay_before = relay_cpu();
    let a_before = cpu_ms();
    let t = Instant::now();
    // The phase as a timeline: LINLI_LOG=linli::bench_sync=debug,linli_sync::live=debug
    // (and LINLI_RELAY_LOG=linli_relay=debug) print when each step happened, in each process.
    tracing::debug!("incremental phase: A's first edit");
    let mut applied = Vec::new();
    let mut refused = Vec::new();
    let mut touched = std::collections::BTreeSet::new();
    for e in &edits {
        if apply(&mut a, &records, e, &e.value)? {
            applied.push(e);
            touched.insert(e.id.clone());
            if e.path.first().and_then(Value::as_str) == Some("members") {
                touched.insert(linli_domain::Sensitive::doc_id(&e.id));
            }
        } else {
            refused.push(e.id.clone());
        }
    }
    let a_apply_ms = t.elapsed().as_secs_f64() * 1000.0;
    // A's part of the phase: its edits (the checks below are the benchmark's own).
    let a_cpu = cpu_ms() - a_before;
    tracing::debug!(ms = a_apply_ms, "incremental phase: A's edits done");
    // What B must hold: A's heads of every document A changed. A document B holds at those
    // heads stays so (nobody else writes), so each look asks only for those not yet there.
    let mut waiting: Vec<(String, Option<Vec<u8>>)> = touched
        .iter()
        .map(|id| Ok((id.clone(), a.heads_of(id)?)))
        .collect::<Result<_>>()?;
    let mut in_step = || -> Result<bool> {
        let ids: Vec<&str> = waiting.iter().map(|(id, _)| id.as_str()).collect();
        let now = b.heads_of_each(&ids)?;
        let mut have = now.into_iter();
        waiting.retain(|(_, want)| have.next().is_none_or(|h| h != *want));
        Ok(waiting.is_empty())
    };
    let (mut received, mut b_ms, mut b_round_trips, mut events) = (0, 0, 0, 0);
    let mut last = Value::Null;
    let mut count = |line: &Value| {
        received += line["created"].as_u64().unwrap_or(0) + line["changed"].as_u64().unwrap_or(0);
        b_ms += line["ms"].as_u64().unwrap_or(0);
        b_round_trips += line["round_trips"].as_u64().unwrap_or(0);
    };
    // B may have merged before the first look: the phase then ends at that look, and B's
    // report of it is read after. Reports that came in meanwhile (B merged the frames sent
    // while A was still editing) are read all at once before the next look.
    let mut done_ms = None;
    let mut relay_in_phase = 0.0;
    loop {
        if done_ms.is_none() && in_step()? {
            done_ms = Some(t.elapsed().as_secs_f64() * 1000.0);
            relay_in_phase = relay_cpu() - relay_before;
            tracing::debug!("incremental phase: B holds every document A changed");
        }
        if done_ms.is_some() && events > 0 {
            break;
        }
        last = b_watch.next()?;
        count(&last);
        events += 1;
        while let Some(line) = b_watch.try_next() {
            count(&line);
            events += 1;
            last = line;
        }
    }
    let incremental_ms = done_ms.unwrap_or_default();
    let incremental_bytes = measure(before, net()?);
    // A's upload closes once A's edits have been idle a moment: its report says what it sent.
    let a_sent = loop {
        let line = a_watch.next()?;
        if line["event"] == "sent" {
            break line;
        }
    };
    let a_round_trips = a_sent["round_trips"].as_u64().unwrap_or(0);
    // A's edits (this process), A's and B's live sessions from their first line to the report
    // that ended the phase (for A, its upload's closing a moment after), the relay.
    let incremental_cpu = cpu_split(&[
        ("a", a_cpu),
        ("a_session", ms_of(&a_sent) - ms_of(&a_watch.first)),
        ("b", ms_of(&last) - ms_of(&b_watch.first)),
        ("relay", relay_in_phase),
    ]);
    let incremental = json!({
        "round_trips": b_round_trips + a_round_trips,
        "peak_rss_mb": last["peak_rss_mb"],
        "created": 0,
        "changed": received,
        "ms": b_ms,
    });
    drop(b_watch);
    drop(a_watch);

    // Reconnect: B is away; A reverts every edit and syncs; then B comes back.
    // In reverse, so that two edits of one record end at its original value.
    for e in applied.iter().rev() {
        apply(&mut a, &records, e, &original(&records, e))?;
    }
    let a_back = runtime.block_on(linli_sync::relay_client::sync(&mut a, &url))?;
    let before = net()?;
    let relay_before = relay_cpu();
    let (reconnect, reconnect_ms) = b_sync(&b_dir, &url_b, &key)?;
    let reconnect_cpu = cpu_split(&[
        ("b", ms_of(&reconnect)),
        ("relay", relay_cpu() - relay_before),
    ]);
    let reconnect_bytes = measure(before, net()?);

    // B must now equal A, document for document.
    let b = Store::open(&b_dir, &key)?;
    let sa: HashMap<String, Vec<u8>> = a.summary()?.into_iter().map(|i| (i.id, i.heads)).collect();
    let sb = b.summary()?;
    let behind = sa.len().abs_diff(sb.len())
        + sb.iter()
            .filter(|i| sa.get(&i.id) != Some(&i.heads))
            .count();
    let relay_peak = peak_rss_mb_of(relay.child.id());

    let phase = |v: &Value, ms: f64, bytes: (u64, u64), cpu: Value| {
        json!({
            "cpu_ms": cpu,
            "ms": ms.round(),
            "bytes_up": bytes.0,
            "bytes_down": bytes.1,
            "round_trips": v["round_trips"],
            "device_peak_rss_mb": v["peak_rss_mb"],
            "docs_received": v["created"].as_u64().unwrap_or(0) + v["changed"].as_u64().unwrap_or(0),
            "device_ms": v["ms"],
        })
    };
    Ok(json!({
        "docs": sa.len(),
        "records": imported.created,
        "edits": edits.len(),
        "edits_refused_by_domain_rules": refused,
        "setup": {"import_ms": import_ms.round(), "upload_ms": upload_ms.round(),
                  "upload_bytes": up.bytes_up, "upload_round_trips": up.round_trips},
        "initial": phase(&initial, initial_ms, initial_bytes, initial_cpu),
        "incremental": with(phase(&incremental, incremental_ms, incremental_bytes, incremental_cpu), json!({
            "a_apply_ms": a_apply_ms.round(),
            "a_sent": a_sent["sent"],
            "a_upload_ms": a_sent["ms"],
            "a_push_bytes": a_sent["bytes_up"],
            "a_round_trips": a_round_trips,
            "b_round_trips": b_round_trips,
            "b_receipts": events,
        })),
        "reconnect": with(phase(&reconnect, reconnect_ms, reconnect_bytes, reconnect_cpu), json!({
            "a_push_bytes": a_back.bytes_up,
        })),
        "relay_peak_rss_mb": relay_peak.round(),
        "behind_a": behind,
        "bench_peak_rss_mb": peak_rss_mb_of(std::process::id()).round(),
    }))
}

/// CPU milliseconds by process, and their total.
fn cpu_split(parts: &[(&str, f64)]) -> Value {
    let mut out = serde_json::Map::new();
    for (name, ms) in parts {
        out.insert((*name).to_string(), json!(tenths(ms.max(0.0))));
    }
    let total: f64 = parts.iter().map(|(_, ms)| ms.max(0.0)).sum();
    out.insert("total".into(), json!(tenths(total)));
    Value::Object(out)
}

/// `base` with the fields of `extra` added.
fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}
