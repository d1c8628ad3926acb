//! `linli`: the command line over a Linli store. Output is for people by default and JSON with
//! `--json`; ID numbers and phones are masked unless `--reveal` is given.

/// mimalloc instead of the system allocator: loading, changing and saving Automerge documents
/// allocates and frees many small blocks, and with glibc's malloc that was a fifth of an edit's
/// time (measured on the sync benchmark's 293 edits: 90 → 79 ms; merging them 31 → 28 ms).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[macro_use]
mod output;
mod bench;
mod bench_idle;
mod bench_sync;
mod p2p;
mod rss;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use linli_api::{Api, demo};
use linli_store::{ListFilter, WriteReport};
use linli_sync::live::LiveEvent;
use linli_sync::relay_client::SyncReport;
use serde_json::json;

use crate::output::{Out, print_history, print_record, print_rows};

/// Linli 邻里: offline-first community work. 社区工作离线优先。
#[derive(Parser, Debug)]
#[command(name = "linli", version, about)]
struct Cli {
    /// Data directory holding the store (default: the platform's data directory).
    #[arg(long, global = true, env = "LINLI_DATA")]
    data: Option<PathBuf>,
    /// Print JSON for scripts instead of text for people.
    #[arg(long, global = true)]
    json: bool,
    /// Show ID numbers and phones in full (otherwise masked); needs --reason.
    #[arg(long, global = true)]
    reveal: bool,
    /// Why ID numbers and phones are shown in full (written to the audit log with --reveal),
    /// e.g. 入户核实.
    #[arg(long, global = true)]
    reason: Option<String>,
    /// The person making changes (recorded in each document's history).
    #[arg(long, global = true, env = "LINLI_USER")]
    user: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// Checks of the audit log.
#[derive(Subcommand, Debug)]
enum AuditCheck {
    /// Checks the hash chain: every entry follows from the one before and its content.
    Verify,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a store with a community. 创建社区。
    Init {
        /// Community name, e.g. 幸福社区.
        #[arg(long)]
        community: String,
        /// Street (街道) the community belongs to.
        #[arg(long, default_value = "")]
        street: String,
        /// The start of the community id, e.g. its administrative code (default `c`); the id
        /// is this label, `-` and a tag of this device's key, so that nobody else can register
        /// it on a relay.
        #[arg(long)]
        id: Option<String>,
    },
    /// Fill the store with a realistic demo community, deterministic for a seed. 生成演示数据。
    Demo {
        /// Households to create.
        #[arg(long, default_value_t = 1000)]
        households: usize,
        /// Random seed.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Inspection tasks (default: one per 20 households).
        #[arg(long)]
        tasks: Option<usize>,
        /// Also write the generated records to this JSONL file.
        #[arg(long)]
        export: Option<PathBuf>,
        /// The instant the demo is made as of (`2026-11-20 09:00`, China time, not in the future;
        /// default: now): its dates are relative to it. The same seed and instant give the same
        /// demo.
        #[arg(long)]
        as_of: Option<String>,
    },
    /// Import records from a JSON Lines file; all or nothing. 导入。
    Import {
        /// The file (the roster format of gen_community.py, or records as printed by --json).
        file: PathBuf,
    },
    /// Counts of what the store holds. 统计。
    Stats,
    /// List a collection. 列表。
    List {
        /// households, people, organisations, visits, tasks, requests, posts, notices, ballots
        collection: String,
        /// Only this grid (网格), e.g. G01.
        #[arg(long)]
        grid: Option<String>,
        /// Only this building: `3` or `幸福里小区/3`.
        #[arg(long)]
        building: Option<String>,
    },
    /// Find people by name, pinyin initials, last four digits of ID or phone, or address. 搜索。
    Search {
        /// What to look for, e.g. 张伟, zw, 5678, "幸福里 3-2-501".
        text: String,
        /// At most this many results.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show one record. 查看。
    Show {
        /// Record id (a person id shows the person).
        id: String,
    },
    /// Change one field, validated. 修改。
    Edit {
        /// Record id.
        id: String,
        /// Field path, e.g. phone, tenure, checklist[1].ok.
        field: String,
        /// New value (lists: comma-separated; `none` clears an optional field).
        value: String,
    },
    /// Who changed what and when. 修改历史。
    History {
        /// Record id.
        id: String,
    },
    /// Who saw which resident's ID number or phone in full on this device, newest first
    /// (never the value). 查看记录（审计）。
    Audit {
        /// `verify`: check the log's hash chain (exit 1 and the first entry that fails).
        #[command(subcommand)]
        check: Option<AuditCheck>,
        /// At most this many entries.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Only entries from this day on (`YYYY-MM-DD`).
        #[arg(long)]
        since: Option<String>,
        /// Also write the entries to this CSV file (UTF-8, opens in Excel and WPS).
        #[arg(long)]
        csv: Option<PathBuf>,
    },
    /// Write a document's raw Automerge bytes to a file. 导出文档。
    ExportDoc {
        /// Document id.
        id: String,
        /// Output file.
        file: PathBuf,
    },
    /// Recompute the derived query tables and stored records from the documents.
    RebuildIndex,
    /// Check the store: SQLite integrity, every document loads, the query tables and stored records equal a rebuild.
    Doctor,
    /// Make an invitation for a new device; the code is printed alone on the last line.
    /// 邀请新设备。
    Invite {
        /// staff (社区工作人员), grid (网格员) or owners (业委会成员).
        #[arg(long)]
        role: String,
        /// For grid workers: a grid they serve (repeat for several).
        #[arg(long = "grid")]
        grids: Vec<String>,
        /// The relay the new device should use (default: this store's relay, if any).
        #[arg(long)]
        relay: Option<String>,
    },
    /// Join a community with an invitation code; the store must be new. 加入社区。
    Join {
        /// The invitation code.
        code: String,
    },
    /// Sync once with the street office's relay, then exit. 同步。
    Sync {
        /// The relay, e.g. http://127.0.0.1:8080 (default: the one from the invitation).
        #[arg(long)]
        relay: Option<String>,
        /// Stay connected after syncing: receive what others send as the relay stores it and
        /// send this store's changes as they are made, one line per exchange, until killed
        /// (or for --for seconds). 保持连接。
        #[arg(long)]
        watch: bool,
        /// With --watch: stop after this many seconds.
        #[arg(long = "for", value_name = "SECONDS", requires = "watch")]
        for_secs: Option<u64>,
    },
    /// Replace, on the relay, each document's changes by one sealed snapshot (after a sync),
    /// so that new devices download documents once, compact. Staff devices compact every
    /// scope; others the scopes they may write. 压缩中继数据。
    Compact {
        /// The relay (default: this store's).
        #[arg(long)]
        relay: Option<String>,
    },
    /// List what was received from the relay and could not be read (set aside, so that sync
    /// goes on); with --drop, have the relay delete those blobs (committee staff only).
    /// 无法解读的数据。
    SetAside {
        /// Have the relay drop the blobs listed, then forget them here.
        #[arg(long)]
        drop: bool,
        /// The relay (default: this store's).
        #[arg(long)]
        relay: Option<String>,
    },
    /// Have the relay drop blobs by number (committee staff only): a blob that lists
    /// documents of another scope it does not hold, as the relay names it when it refuses a
    /// push. 让中继删除数据。
    DropBlob {
        /// The blobs' numbers (`#123` in the relay's message).
        #[arg(required = true)]
        seqs: Vec<u64>,
        /// The relay (default: this store's).
        #[arg(long)]
        relay: Option<String>,
    },
    /// Sync directly with another device over iroh (same network or hotspot). 设备直连。
    P2p {
        #[command(subcommand)]
        which: p2p::P2p,
    },
    /// Benchmarks that print JSON. 性能测试。
    Bench {
        #[command(subcommand)]
        which: bench::Which,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LINLI_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only: not into a log file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn data_dir(cli: &Cli) -> Result<PathBuf> {
    match &cli.data {
        Some(d) => Ok(d.clone()),
        None => Ok(dirs::data_dir()
            .context("no data directory on this platform; pass --data DIR")?
            .join("linli")),
    }
}

/// The store's key. `LINLI_STORE_KEY` (64 hex digits: the raw key, for scripts and
/// benchmarks that open stores many times), or the key file unlocked with the passphrase:
/// `LINLI_PASSPHRASE`, or asked for on the terminal (twice, when it is chosen for a new store).
fn key(cli: &Cli, dir: &std::path::Path) -> Result<linli_api::DbKey> {
    if let Ok(hex) = std::env::var("LINLI_STORE_KEY") {
        return raw_key(&hex);
    }
    let state = linli_api::lock_state(dir);
    let passphrase = passphrase(state)?;
    let person = cli.user.clone().unwrap_or_else(|| "admin".to_string());
    linli_api::unlock(dir, &person, &passphrase)
        .map(|(key, _)| key)
        .map_err(|e| match e.code() {
            linli_api::ErrorCode::WrongPassphrase => anyhow::anyhow!(
                "口令不对 The passphrase does not unlock the store in {}: {e}",
                dir.display()
            ),
            _ => anyhow::Error::new(e)
                .context(format!("cannot unlock the store in {}", dir.display())),
        })
}

fn raw_key(hex: &str) -> Result<linli_api::DbKey> {
    // The value itself is not repeated: it is a secret.
    linli_api::DbKey::from_hex(hex)
        .ok_or_else(|| anyhow::anyhow!("LINLI_STORE_KEY is not 64 hex digits (a 256-bit key)"))
}

fn passphrase(state: linli_api::LockState) -> Result<zeroize::Zeroizing<String>> {
    if state == linli_api::LockState::KeyMissing {
        anyhow::bail!(
            "数据已加密，但钥匙文件 store.key 不见了 The store is encrypted and its key file \
             store.key is missing: restore it from where it was copied (a new passphrase cannot \
             open the store)"
        );
    }
    if let Ok(p) = std::env::var("LINLI_PASSPHRASE")
        && !p.is_empty()
    {
        return Ok(p.into());
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        anyhow::bail!(
            "数据已加密，需要口令 The store is encrypted: set LINLI_PASSPHRASE, or run linli in a \
             terminal to be asked for the passphrase"
        );
    }
    match state {
        linli_api::LockState::Locked | linli_api::LockState::KeyMissing => {
            Ok(rpassword::prompt_password("口令 Passphrase: ")?.into())
        }
        linli_api::LockState::New => {
            let first: zeroize::Zeroizing<String> = rpassword::prompt_password(
                "为本机数据设置口令（至少10个字符） Choose a passphrase for this device's data (at least 10 characters): ",
            )?
            .into();
            let again: zeroize::Zeroizing<String> =
                rpassword::prompt_password("再输入一次 Once more: ")?.into();
            anyhow::ensure!(
                *first == *again,
                "两次输入的口令不一致 The two passphrases differ"
            );
            Ok(first)
        }
    }
}

/// The device's API on the store in the data directory (created if missing).
fn api(cli: &Cli) -> Result<Api> {
    let dir = data_dir(cli)?;
    let key = key(cli, &dir)?;
    let api = Api::open_for_command(&dir, key)
        .with_context(|| format!("cannot open the store in {}", dir.display()))?;
    if let Some(user) = &cli.user {
        api.set_user(user);
    }
    if cli.reveal {
        api.set_reveal_reason(cli.reason.as_deref().or(Some("")))?;
    }
    Ok(api)
}

/// The device's API on an existing store: a missing store is an error, not a new empty one.
fn api_existing(cli: &Cli) -> Result<Api> {
    let dir = data_dir(cli)?;
    if !Api::has_store(&dir) {
        return Err(linli_api::ApiError::NoStore(dir).into());
    }
    let key = key(cli, &dir)?;
    let api = Api::open_existing(&dir, key)?;
    if let Some(user) = &cli.user {
        api.set_user(user);
    }
    if cli.reveal {
        api.set_reveal_reason(cli.reason.as_deref().or(Some("")))?;
    }
    Ok(api)
}

fn run(cli: Cli) -> Result<()> {
    let out = Out {
        json: cli.json,
        reveal: cli.reveal,
    };
    match &cli.command {
        Command::Init {
            community,
            street,
            id,
        } => {
            let api = api(&cli)?;
            let c = api.init_community(community, street, id.as_deref(), cli.user.as_deref())?;
            let path = api.data_dir().join(linli_store::store::DB_FILE);
            out.emit(
                &json!({"community": c.id, "name": c.name, "store": path}),
                || {
                    say!(
                        "已创建社区 Created community {} ({}) in {}",
                        c.name,
                        c.id,
                        path.display()
                    );
                },
            );
        }
        Command::Demo {
            households,
            seed,
            tasks,
            export,
            as_of,
        } => {
            let as_of = match as_of {
                Some(t) => linli_domain::Timestamp::parse(t)
                    .map_err(|e| anyhow::anyhow!("--as-of: {e}"))?,
                None => demo::as_of_now(),
            };
            let api = api(&cli)?;
            let started = std::time::Instant::now();
            let fill = api
                .fill_demo(
                    *households,
                    tasks.unwrap_or(households / 20),
                    *seed,
                    as_of,
                    cli.user.as_deref(),
                )
                .map_err(|e| match e {
                    linli_api::ApiError::Invalid { field, message } if field == "as_of" => {
                        anyhow::anyhow!("--as-of: {message}")
                    }
                    linli_api::ApiError::Invalid { field, .. } if field == "households" => {
                        anyhow::anyhow!(
                            "this store already has households; `linli demo` fills a new store (give another --data DIR)"
                        )
                    }
                    e => e.into(),
                })?;
            if let Some(path) = export {
                write_atomic(path, (fill.lines.join("\n") + "\n").as_bytes())?;
            }
            report_write(&out, "demo", &fill.report, started);
        }
        Command::Import { file } => {
            let api = api_existing(&cli)?;
            let started = std::time::Instant::now();
            let name = file
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let report = api.import_file(file, &format!("import {name}"))?;
            report_write(&out, "import", &report, started);
        }
        Command::Stats => stats(&api_existing(&cli)?, &out)?,
        Command::List {
            collection,
            grid,
            building,
        } => {
            let api = api_existing(&cli)?;
            let filter = ListFilter {
                grid: grid.clone(),
                building: building.clone(),
            };
            if out.json {
                let records = api.list_records(collection, &filter, out.reveal)?;
                say!("{}", serde_json::to_string_pretty(&records)?);
            } else {
                print_rows(&api.list_rows(collection, &filter)?);
            }
        }
        Command::Search { text, limit } => {
            let hits = api_existing(&cli)?.search(text, *limit)?;
            out.emit(&hits, || output::print_hits(&hits));
        }
        Command::Show { id } => {
            let v = api_existing(&cli)?.show(id, out.reveal)?;
            out.emit(&v, || print_record(&v));
        }
        Command::Edit { id, field, value } => {
            let changed = api_existing(&cli)?.edit_field(id, field, value)?;
            out.emit(
                &json!({"id": id, "field": field, "changed": usize::from(changed)}),
                || {
                    if changed {
                        say!("已修改 Updated {id}: {field}");
                    } else {
                        say!("未变化 Unchanged {id}: {field} already has that value");
                    }
                },
            );
        }
        Command::History { id } => {
            let entries = api_existing(&cli)?.history(id, out.reveal)?;
            out.emit(&entries, || print_history(&entries));
        }
        Command::Audit {
            check: Some(AuditCheck::Verify),
            ..
        } => {
            let check = api_existing(&cli)?.audit_verify()?;
            out.emit(&check, || match check.broken_at {
                None => say!(
                    "审计日志完整 The audit log's chain holds: {} entries, head {}",
                    check.entries,
                    check.head
                ),
                Some(seq) => say!(
                    "审计日志被改动 The audit log was altered: entry #{seq} does not follow from the one before"
                ),
            });
            if let Some(seq) = check.broken_at {
                anyhow::bail!("the audit log's chain breaks at entry #{seq}");
            }
        }
        Command::Audit {
            check: None,
            limit,
            since,
            csv,
        } => {
            let entries = api_existing(&cli)?.audit_since(since.as_deref(), *limit)?;
            if let Some(file) = csv {
                write_atomic(file, output::audit_csv(&entries).as_bytes())?;
            }
            out.emit(&entries, || output::print_audit(&entries));
        }
        Command::ExportDoc { id, file } => {
            let bytes = api_existing(&cli)?.export_doc(id)?;
            write_atomic(file, &bytes)?;
            out.emit(
                &json!({"id": id, "file": file, "bytes": bytes.len()}),
                || {
                    say!(
                        "已导出 Wrote {} ({} bytes of Automerge) to {}",
                        id,
                        bytes.len(),
                        file.display()
                    );
                },
            );
        }
        Command::RebuildIndex => {
            let n = api_existing(&cli)?.rebuild_index()?;
            out.emit(&json!({"documents": n}), || {
                say!("已重建索引 Rebuilt the query tables and stored records from {n} documents")
            });
        }
        Command::Doctor => {
            let d = api_existing(&cli)?.doctor()?;
            out.emit(&d, || {
                say!(
                    "SQLite: {} · {} documents load · {} index rows",
                    d.integrity,
                    d.documents,
                    d.index_rows
                );
                if d.index_matches {
                    say!("索引一致 The query tables and stored records equal a rebuild from the documents");
                } else {
                    say!(
                        "索引已修复 The query tables or stored records differed from the documents and were rebuilt"
                    );
                }
            });
            if d.integrity != "ok" || !d.index_matches {
                bail!("the store needed repair (see above)");
            }
        }
        Command::Bench { which } => bench::run(which)?,
        Command::P2p { which } => p2p::run(api_existing(&cli)?, which, &out)?,
        Command::Invite { role, grids, relay } => {
            let api = api_existing(&cli)?;
            let code = api.invite_for(role, grids, relay.as_deref())?;
            let invite = linli_wire::Invite::decode(&code)?;
            let role = invite.grant()?.role;
            out.emit(
                &json!({"code": code, "role": role.code(), "grids": grids, "relay": invite.relay}),
                || {
                    say!(
                        "邀请码 Invitation for {} ({}{}) — show it once, it carries keys:",
                        invite.name,
                        role.code(),
                        if grids.is_empty() {
                            String::new()
                        } else {
                            format!(" {}", grids.join(", "))
                        }
                    );
                    say!("{code}");
                },
            );
        }
        Command::Join { code } => {
            let api = api(&cli)?;
            let (invite, grant) = api.join_with(code, cli.user.as_deref())?;
            out.emit(
                &json!({"community": grant.community, "role": grant.role.code(), "grids": grant.grids, "relay": invite.relay}),
                || {
                    say!(
                        "已加入 Joined {} ({}) as {}; next: linli sync{}",
                        invite.name,
                        grant.community,
                        grant.describe(),
                        if invite.relay.is_some() { "" } else { " --relay URL" }
                    );
                },
            );
        }
        Command::Compact { relay } => {
            let api = api_existing(&cli)?;
            let url = api.relay_url(relay.as_deref())?;
            let r = api.compact_relay(&url)?;
            out.emit(
                &json!({"relay": url, "docs": r.docs, "blobs": r.blobs, "covers": r.covers,
                        "bytes_up": r.bytes_up, "ms": r.ms, "synced": sync_json(&url, "synced", &r.synced)}),
                || {
                    say!(
                        "已压缩 Compacted on {url}: {} documents in {} snapshot blobs ({} B), replacing their blobs up to #{} · {} ms",
                        r.docs,
                        r.blobs,
                        r.bytes_up,
                        r.covers,
                        r.ms
                    );
                },
            );
        }
        Command::DropBlob { seqs, relay } => {
            let api = api_existing(&cli)?;
            let url = api.relay_url(relay.as_deref())?;
            let dropped = api.drop_blobs(&url, seqs)?;
            out.emit(&json!({"relay": url, "dropped": dropped}), || {
                say!(
                    "中继已删除 The relay dropped {} blob(s): {:?}",
                    dropped.len(),
                    dropped
                );
            });
        }
        Command::SetAside { drop, relay } => {
            let api = api_existing(&cli)?;
            let dropped = if *drop {
                let url = api.relay_url(relay.as_deref())?;
                Some(api.drop_set_aside_at(&url)?)
            } else {
                None
            };
            let aside = api.set_aside()?;
            out.emit(&json!({"set_aside": aside, "dropped": dropped}), || {
                if let Some(n) = dropped {
                    say!("中继已删除 The relay dropped {n} blob(s)");
                }
                if aside.is_empty() {
                    say!("没有搁置的数据 Nothing set aside");
                }
                for a in &aside {
                    say!(
                        "#{} 网格 scope {} · 设备 device {} 发送了无法解读的数据 sent data that could not be read · {} · {} B · {}",
                        a.seq,
                        a.scope,
                        a.sender_short(),
                        linli_domain::Timestamp(a.received_ms).to_china().format("%Y-%m-%d %H:%M"),
                        a.bytes,
                        output::escape(&a.reason)
                    );
                }
            });
        }
        Command::Sync {
            relay,
            watch,
            for_secs,
        } => {
            let api = api_existing(&cli)?;
            let url = api.relay_url(relay.as_deref())?;
            let r = api.sync_relay(&url)?;
            if !*watch {
                out.emit(&sync_json(&url, "synced", &r), || say_synced(&url, &r));
                return Ok(());
            }
            // One JSON object per line, so that a script can follow along.
            let line = |event: &str, r: &SyncReport| {
                if out.json {
                    say!("{}", sync_json(&url, event, r));
                } else {
                    say_synced(&url, r);
                }
            };
            line("synced", &r);
            output::SERVING.store(true, std::sync::atomic::Ordering::Relaxed);
            // Until the time is up, or Ctrl-C / SIGTERM: then the store closes as usual (its
            // last checkpoint) instead of the process dying in the middle of a wait.
            let until = for_secs.map(|s| Instant::now() + Duration::from_secs(s));
            api.watch_relay(&url, until, |event| match event {
                LiveEvent::Received(r) => line("received", r),
                LiveEvent::Sent(r) => line("sent", r),
            })?;
        }
    }
    Ok(())
}

fn sync_json(url: &str, event: &str, r: &SyncReport) -> serde_json::Value {
    json!({"relay": url, "event": event, "sent": r.sent, "created": r.created, "changed": r.changed,
           "unchanged": r.unchanged, "set_aside": r.set_aside, "bytes_up": r.bytes_up, "bytes_down": r.bytes_down,
           "round_trips": r.round_trips, "ms": r.ms,
           "peak_rss_mb": rss::tenths(rss::peak_rss_mb()), "cpu_ms": rss::tenths(rss::cpu_ms())})
}

fn say_synced(url: &str, r: &SyncReport) {
    output::say_counts("已同步 Synced with", url, r, "");
}

fn report_write(out: &Out, what: &str, r: &WriteReport, started: std::time::Instant) {
    let ms = started.elapsed().as_millis();
    out.emit(&json!({"created": r.created, "changed": r.changed, "unchanged": r.unchanged, "ms": ms}), || {
        say!(
            "{what}: 新建 created {} · 更新 changed {} · 未变 unchanged {} documents in {ms} ms",
            r.created, r.changed, r.unchanged
        );
    });
}

fn stats(api: &Api, out: &Out) -> Result<()> {
    let (community, st) = api.stats()?;
    let v = json!({
        "community": community.as_ref().map(|c| &c.name),
        "community_id": community.as_ref().map(|c| &c.id),
        "documents": st.documents.iter().map(|(c, n)| (c.code().to_string(), json!(*n))).collect::<serde_json::Map<_, _>>(),
        "people": st.people,
        "people_with_attention_tags": st.people_with_tags,
        "feed_head": st.feed_head,
        "store_bytes": st.bytes,
    });
    out.emit(&v, || {
        if let Some(c) = &community {
            say!("社区 Community: {} ({})", c.name, c.id);
        }
        for (c, n) in &st.documents {
            say!("  {:<16} {:>8}  {}", c.code(), n, c.zh());
        }
        say!("  {:<16} {:>8}  实有人口(在住)", "people", st.people);
        say!(
            "  {:<16} {:>8}  重点人群",
            "attention tags",
            st.people_with_tags
        );
        say!(
            "变更序号 Change feed at {} · 存储 Store {:.1} MB",
            st.feed_head,
            st.bytes as f64 / 1e6
        );
    });
    Ok(())
}

/// Writes a file via a temporary file and a rename, so a crash never leaves half a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
