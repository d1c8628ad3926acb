//! `linli bench idle`: how often a connected device that does nothing wakes up, and what that
//! costs. A device that looks at its store every few milliseconds keeps a tablet's processor
//! from sleeping all day; an idle live session should wake only for the relay's keepalive and
//! a look for other processes' writes.
//!
//! Without `--pid`: starts a relay on 127.0.0.1, fills a store with a demo community, starts
//! `linli sync --watch` on it, lets it settle, then counts for `--seconds` the context
//! switches of every thread of that process (`/proc/PID/task/*/status`: each voluntary one is
//! a wake-up after a sleep) and its CPU time. The measuring process itself wakes 4 times a
//! second to look (threads come and go); it is not counted. With `--pid`: measures that process instead (the
//! app, say). Prints one JSON object.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde_json::json;

use crate::rss::{tenths, threads_cpu_ms_of};

/// Context switches of every live thread of `pid`, by thread id: (voluntary, involuntary).
fn switches(pid: u32) -> Result<HashMap<String, (u64, u64)>> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .with_context(|| format!("process {pid} is not running (or /proc is missing)"))?;
    let mut all = HashMap::new();
    for task in tasks.filter_map(Result::ok) {
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        let value = |l: &str| {
            l.split_whitespace()
                .nth(1)
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let mut counts = (0, 0);
        for line in status.lines() {
            if line.starts_with("voluntary_ctxt_switches:") {
                counts.0 = value(line);
            } else if line.starts_with("nonvoluntary_ctxt_switches:") {
                counts.1 = value(line);
            }
        }
        all.insert(task.file_name().to_string_lossy().into_owned(), counts);
    }
    Ok(all)
}

/// Measures process `pid` for `seconds`, looking at its threads every 250 ms: a thread's
/// switches count from when it was first seen (or started) to when it was last seen, so a
/// thread that ends during the window keeps what it did (all but its last quarter second).
fn measure(pid: u32, seconds: u64) -> Result<serde_json::Value> {
    let mut first = switches(pid)?;
    let mut last = first.clone();
    let cpu0 = threads_cpu_ms_of(pid);
    let mut cpu_ended = 0.0;
    let mut cpu_last = cpu0;
    let t = Instant::now();
    let end = t + Duration::from_secs(seconds);
    let mut threads = last.len();
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(250).min(end - Instant::now()));
        let now = switches(pid)?;
        let cpu = threads_cpu_ms_of(pid);
        if now.len() < last.len() || cpu < cpu_last {
            // A thread ended: what it used up to the last look stays counted.
            cpu_ended += (cpu_last - cpu).max(0.0);
        }
        cpu_last = cpu;
        for (tid, counts) in &now {
            // A thread started since the last look counts from zero.
            first.entry(tid.clone()).or_insert((0, 0));
            last.insert(tid.clone(), *counts);
        }
        threads = threads.max(now.len());
    }
    let secs = t.elapsed().as_secs_f64();
    let (wakeups, involuntary) = last.iter().fold((0, 0), |(v, n), (tid, (v1, n1))| {
        let (v0, n0) = first.get(tid).copied().unwrap_or((0, 0));
        (v + v1.saturating_sub(v0), n + n1.saturating_sub(n0))
    });
    let cpu_ms = cpu_last - cpu0 + cpu_ended;
    Ok(json!({
        "pid": pid,
        "seconds": tenths(secs),
        "threads": threads,
        "wakeups": wakeups,
        "wakeups_per_s": tenths(wakeups as f64 / secs),
        "involuntary_switches": involuntary,
        "cpu_ms": tenths(cpu_ms),
        "cpu_percent_of_one_core": (cpu_ms / (secs * 1000.0) * 1000.0).round() / 10.0,
    }))
}

/// Runs the benchmark: measures `pid`, or a `linli sync --watch` of its own.
pub fn run(seconds: u64, pid: Option<u32>, households: usize) -> Result<()> {
    ensure!(seconds > 0 && seconds <= 3600, "--seconds: 1 to 3600");
    if let Some(pid) = pid {
        println!("{}", measure(pid, seconds)?);
        return Ok(());
    }
    let tmp = tempfile_dir()?;
    let result = run_in(&tmp, seconds, households);
    let _ = std::fs::remove_dir_all(&tmp);
    println!("{}", result?);
    Ok(())
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("linli-bench-idle-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn run_in(tmp: &Path, seconds: u64, households: usize) -> Result<serde_json::Value> {
    let relay = crate::bench_sync::start_relay(&tmp.join("relay"))?;
    let store = tmp.join("device");
    let exe = std::env::current_exe()?;
    // Encrypted as every store is, with a key of this run (synthetic data: no key file).
    let key = linli_store::DbKey::random()?;
    let out = std::process::Command::new(&exe)
        .env("LINLI_STORE_KEY", crate::bench_sync::key_hex(&key))
        .arg("--data")
        .arg(&store)
        .args(["demo", "--households", &households.to_string()])
        .output()?;
    ensure!(
        out.status.success(),
        "linli demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let watcher = crate::bench_sync::Watcher::start("idle", &store, &relay.url, &key)?;
    // Let the first sync's aftermath (checkpoints, the upload's close) pass.
    std::thread::sleep(Duration::from_secs(3));
    let mut v = measure(watcher.pid(), seconds)?;
    v["households"] = json!(households);
    v["what"] = json!("linli sync --watch, connected to a relay on 127.0.0.1, nothing happening");
    Ok(v)
}
