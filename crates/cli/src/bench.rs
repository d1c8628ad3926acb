//! `linli bench store`: import a roster, then measure size, open + list, search, and a whole
//! `linli search` process. Prints one JSON object.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Subcommand;
use linli_domain::Collection;
use linli_store::{ListFilter, Store};
use rand::{RngExt, SeedableRng};
use serde_json::json;

use crate::rss::peak_rss_mb;

/// Which benchmark.
#[derive(Subcommand, Debug)]
pub enum Which {
    /// The store: import, size, open + list, search (prints JSON).
    Store {
        /// A JSONL roster (gen_community.py output); default: the demo generator's output
        /// with the same number of households and tasks.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Households to generate when no input is given.
        #[arg(long, default_value_t = 10_000)]
        households: usize,
        /// Tasks to generate when no input is given.
        #[arg(long, default_value_t = 500)]
        tasks: usize,
        /// Search queries to time.
        #[arg(long, default_value_t = 100)]
        queries: usize,
        /// Keep the store in this directory instead of a temporary one.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
    /// Sync through a relay on 127.0.0.1: initial, incremental and reconnect (prints JSON).
    Sync {
        /// The roster (gen_community.py output).
        community: PathBuf,
        /// The edits (gen_community.py --edits output, same seed and sizes).
        edits: PathBuf,
        /// Keep the stores and the relay's data in this directory.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
    /// Wake-ups and CPU of an idle connected device: `linli sync --watch` of its own, or the
    /// process `--pid` (prints JSON).
    Idle {
        /// How long to measure.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Measure this process (the app, say) instead of starting a device.
        #[arg(long)]
        pid: Option<u32>,
        /// Households of the device's demo community.
        #[arg(long, default_value_t = 200)]
        households: usize,
    },
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Runs a benchmark.
pub fn run(which: &Which) -> Result<()> {
    let (input, households, tasks, queries, keep) = match which {
        Which::Store {
            input,
            households,
            tasks,
            queries,
            keep,
        } => (input, households, tasks, queries, keep),
        Which::Sync {
            community,
            edits,
            keep,
        } => return crate::bench_sync::run(community, edits, keep.as_deref()),
        Which::Idle {
            seconds,
            pid,
            households,
        } => return crate::bench_idle::run(*seconds, *pid, *households),
    };
    let tmp = std::env::temp_dir().join(format!("linli-bench-{}", std::process::id()));
    let dir = keep.clone().unwrap_or_else(|| tmp.join("store"));
    // Encrypted as every store is, with a key of this run (synthetic data: no key file).
    let key = linli_store::DbKey::random()?;
    if dir.join(linli_store::store::DB_FILE).exists() {
        anyhow::bail!(
            "{} already holds a store; give an empty directory",
            dir.display()
        );
    }
    std::fs::create_dir_all(&tmp)?;
    let input = match input {
        Some(p) => p.clone(),
        None => {
            let c = linli_domain::Community::new("bench", "bench", linli_domain::Timestamp::now());
            // A fixed instant: the benchmark's data is the same every day.
            let as_of = linli_domain::Timestamp::parse("2026-11-20 09:00")
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let lines = linli_api::demo::generate(&c, *households, *tasks, 7, as_of);
            let kept: Vec<String> = lines
                .into_iter()
                .filter(|l| {
                    l.starts_with("{\"kind\":\"household\"") || l.starts_with("{\"kind\":\"task\"")
                })
                .collect();
            let p = tmp.join("community.jsonl");
            std::fs::write(&p, kept.join("\n") + "\n")?;
            p
        }
    };
    let jsonl_bytes = file_size(&input);

    // Import.
    let started = Instant::now();
    let mut store = Store::open(&dir, &key)?;
    linli_api::setup::init(
        &mut store,
        "基准社区",
        "",
        Some("bench"),
        None,
        linli_domain::Timestamp::now(),
    )?;
    let report =
        linli_api::setup::import_file(&mut store, &input, "import", linli_domain::today())?;
    let import_ms = started.elapsed().as_secs_f64() * 1000.0;
    let docs = report.created;
    drop(store);
    let db = dir.join(linli_store::store::DB_FILE);
    let store_bytes = file_size(&db) + file_size(&db.with_extension("sqlite-wal"));

    // Open + list one building's households (median of 21 opens).
    let probe = Store::open(&dir, &key)?;
    let first = probe.list(Collection::Household, &ListFilter::default())?;
    let some = first
        .get(first.len() / 2)
        .context("the roster has no households")?;
    let building = {
        let v = probe.view(&some.id, false)?;
        format!(
            "{}/{}",
            v["address"]["compound"].as_str().unwrap_or(""),
            v["address"]["building"].as_str().unwrap_or("")
        )
    };
    drop(probe);
    let mut open_list = Vec::new();
    let mut listed = 0;
    for _ in 0..21 {
        let t = Instant::now();
        let s = Store::open(&dir, &key)?;
        listed = s
            .list(
                Collection::Household,
                &ListFilter {
                    grid: None,
                    building: Some(building.clone()),
                },
            )?
            .len();
        open_list.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    open_list.sort_by(f64::total_cmp);

    // Search: names, name prefixes, pinyin initials, last four digits of phones and IDs.
    let store = Store::open(&dir, &key)?;
    let people = store.list(Collection::Person, &ListFilter::default())?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut times = Vec::new();
    let mut found = 0usize;
    let mut sample_queries = Vec::new();
    for i in 0..*queries {
        let p = &people[rng.random_range(0..people.len())];
        let q = match i % 4 {
            0 => p.title.clone(),
            1 => p.title.chars().take(2).collect(),
            2 => linli_store::index::initials(&p.title),
            _ => {
                // The value itself, read by the benchmark (not shown: no reveal).
                let phone = store.person(&p.id)?.map(|p| p.sensitive.phone);
                linli_domain::mask::last4(phone.as_deref().unwrap_or("0000"))
            }
        };
        let t = Instant::now();
        let hits = store.search(&q, 50)?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        found += usize::from(!hits.is_empty());
        if sample_queries.len() < 4 {
            sample_queries.push(q);
        }
    }
    times.sort_by(f64::total_cmp);
    drop(store);

    // A whole `linli search` process, as a person runs it.
    let exe = std::env::current_exe()?;
    let mut proc_ms = Vec::new();
    for q in sample_queries.iter().cycle().take(20) {
        let t = Instant::now();
        let status = std::process::Command::new(&exe)
            .env("LINLI_STORE_KEY", crate::bench_sync::key_hex(&key))
            .args(["--data"])
            .arg(&dir)
            .args(["search", q])
            .stdout(std::process::Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "linli search failed");
        proc_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    proc_ms.sort_by(f64::total_cmp);

    let out = json!({
        "input": input.display().to_string(),
        "documents": docs,
        "import_ms": import_ms.round(),
        "jsonl_bytes": jsonl_bytes,
        "store_bytes": store_bytes,
        "store_to_jsonl": (store_bytes as f64 / jsonl_bytes.max(1) as f64 * 100.0).round() / 100.0,
        "open_list_ms_p50": (percentile(&open_list, 0.5) * 100.0).round() / 100.0,
        "open_list_ms_max": (percentile(&open_list, 1.0) * 100.0).round() / 100.0,
        "open_list_households": listed,
        "search_queries": times.len(),
        "search_found": found,
        "search_ms_p50": (percentile(&times, 0.5) * 1000.0).round() / 1000.0,
        "search_ms_p95": (percentile(&times, 0.95) * 1000.0).round() / 1000.0,
        "search_process_ms_p50": percentile(&proc_ms, 0.5).round(),
        "search_process_ms_p95": percentile(&proc_ms, 0.95).round(),
        "peak_rss_mb": peak_rss_mb().round(),
    });
    say!("{}", serde_json::to_string_pretty(&out)?);
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(())
}
