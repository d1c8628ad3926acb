//! `linli p2p serve` and `linli p2p sync [TICKET]`: sync directly with another device over
//! iroh, by its ticket or found on the local network.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Subcommand;
use linli_store::Store;
use linli_sync::PeerReport;
use linli_sync::lan::{Lan, LanScope, LanTag};
use linli_sync::p2p::Server;
use linli_wire::peer::Ticket;
use serde_json::json;

use crate::output::Out;

/// Whether to announce on the local network.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LanMode {
    /// When bound to a network address (not loopback).
    Auto,
    /// Always (on loopback only when bound to loopback).
    On,
    /// Never.
    Off,
}

/// Peer-to-peer commands.
#[derive(Subcommand, Debug)]
pub enum P2p {
    /// Serve other devices until killed; prints the ticket alone on the first line.
    /// 等待其他设备直连同步。
    Serve {
        /// The address to listen on (port 0: any free port).
        #[arg(long, default_value = "0.0.0.0:0")]
        bind: SocketAddr,
        /// Announce this device to the community's devices on the local network (mDNS).
        /// 在局域网中公告本机。
        #[arg(long, value_enum, default_value = "auto")]
        lan: LanMode,
    },
    /// Sync once with the device that printed TICKET, or, without a ticket, with every device
    /// of this community announced on the local network, then exit. 与设备直连同步一次。
    Sync {
        /// The ticket `linli p2p serve` printed (none: look on the local network).
        ticket: Option<String>,
        /// The local address to use (port 0: any free port); a loopback address looks for
        /// devices on loopback only.
        #[arg(long, default_value = "0.0.0.0:0")]
        bind: SocketAddr,
        /// How long to look on the local network at most (seconds); the look ends sooner, once
        /// devices answered and no other answers for a moment.
        #[arg(long, default_value_t = 3.0)]
        wait: f64,
    },
}

fn report_json(r: &PeerReport) -> serde_json::Value {
    json!({"peer": r.peer, "sent": r.counts.sent, "created": r.counts.created, "changed": r.counts.changed,
           "unchanged": r.counts.unchanged, "bytes_up": r.counts.bytes_up, "bytes_down": r.counts.bytes_down,
           "round_trips": r.counts.round_trips, "rounds": r.rounds, "ms": r.counts.ms})
}

fn say_report(what: &str, r: &PeerReport) {
    crate::output::say_counts(what, &r.peer, &r.counts, " (UDP)");
}

/// Runs a p2p command on `store`.
pub fn run(store: Store, cmd: &P2p, out: &Out) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match cmd {
        P2p::Serve { bind, lan } => {
            let lan = match lan {
                LanMode::Auto => !bind.ip().is_loopback(),
                LanMode::On => true,
                LanMode::Off => false,
            };
            runtime.block_on(serve(store, *bind, lan, out))
        }
        P2p::Sync {
            ticket: Some(ticket),
            bind,
            ..
        } => {
            let ticket = Ticket::decode(ticket).context("cannot read the ticket")?;
            let mut store = store;
            let r = runtime.block_on(linli_sync::p2p::sync(&mut store, &ticket, *bind))?;
            out.emit(&report_json(&r), || {
                say_report("已同步 Synced with", &r);
            });
            Ok(())
        }
        P2p::Sync {
            ticket: None,
            bind,
            wait,
        } => {
            store
                .community_id()?
                .context("this store has no community yet (create one or join)")?;
            let tag = LanTag::of(&store)?;
            let me = store.identity()?.key.public();
            let wait = Duration::try_from_secs_f64(*wait).context("--wait: seconds")?;
            let found = Lan::look(&tag, me, LanScope::of(*bind), wait)?;
            anyhow::ensure!(
                !found.is_empty(),
                "no device of this community announced itself on the local network within {:.1} s \
                 (is one serving? `linli p2p serve`); or give its ticket",
                wait.as_secs_f64()
            );
            let mut store = store;
            for n in found {
                let r = runtime.block_on(linli_sync::p2p::sync(&mut store, &n.ticket(), *bind))?;
                out.emit(&report_json(&r), || {
                    say_report("已同步 Synced with", &r);
                });
            }
            Ok(())
        }
    }
}

async fn serve(store: Store, bind: SocketAddr, lan: bool, out: &Out) -> Result<()> {
    let tag = match store.community_id()? {
        Some(_) => Some(LanTag::of(&store)?),
        None => None,
    };
    let me = store.identity()?.key.public();
    // A long-running process: its checkpoints run in the background, as the app's.
    let _checkpoints = store.checkpoint_in_background(linli_api::CHECKPOINT_EVERY)?;
    let (server, mut sessions) = Server::start(store, bind).await?;
    say!("{}", server.ticket().encode());
    // Announced until this returns (dropping it withdraws the announcement).
    let _announced = match (lan, tag) {
        (true, Some(tag)) => Some(Lan::start(
            &tag,
            me,
            Some(server.ticket()),
            LanScope::of(bind),
            |_| {},
        )?),
        _ => None,
    };
    crate::output::SERVING.store(true, std::sync::atomic::Ordering::Relaxed);
    let addrs: Vec<String> = server
        .ticket()
        .addrs
        .iter()
        .map(|a| a.to_string())
        .collect();
    eprintln!(
        "等待直连 Serving peers on {} until stopped (Ctrl-C)",
        addrs.join(", ")
    );
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            session = sessions.recv() => match session {
                Some(Ok(r)) => out.emit(&report_json(&r), || say_report("已同步 Synced with", &r)),
                Some(Err(e)) => {
                    eprintln!("同步失败 a peer session failed: {e}");
                    out.emit(&json!({"error": e}), || {});
                }
                None => break,
            },
            _ = &mut stop => break,
        }
    }
    server.shutdown().await;
    Ok(())
}

/// Ctrl-C, or SIGTERM on Unix.
pub(crate) async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
