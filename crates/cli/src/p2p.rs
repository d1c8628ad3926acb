//! `linli p2p serve` and `linli p2p sync [TICKET]`: sync directly with another device over
//! iroh, by its ticket or found on the local network.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Subcommand;
use linli_api::{Api, PeerServer};
use linli_sync::PeerReport;
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

/// Runs a p2p command through the device's API.
pub fn run(api: Api, cmd: &P2p, out: &Out) -> Result<()> {
    match cmd {
        P2p::Serve { bind, lan } => {
            let lan = match lan {
                LanMode::Auto => !bind.ip().is_loopback(),
                LanMode::On => true,
                LanMode::Off => false,
            };
            serve(api, *bind, lan, out)
        }
        P2p::Sync {
            ticket: Some(ticket),
            bind,
            ..
        } => {
            Ticket::decode(ticket).context("cannot read the ticket")?;
            let r = api.sync_ticket_report(ticket, Some(*bind))?;
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
            let wait = Duration::try_from_secs_f64(*wait).context("--wait: seconds")?;
            for r in api.sync_nearby(*bind, wait)? {
                out.emit(&report_json(&r), || {
                    say_report("已同步 Synced with", &r);
                });
            }
            Ok(())
        }
    }
}

/// Serves other devices until Ctrl-C or SIGTERM, a line per session (the app's own server,
/// `PeerServer`, without keeping its port).
fn serve(api: Api, bind: SocketAddr, lan: bool, out: &Out) -> Result<()> {
    // Runs until stopped: its checkpoints run in the background, as the app's.
    api.checkpoint_in_background()?;
    let api = Arc::new(api);
    let out_copy = *out;
    let server = PeerServer::serve(&api, bind, lan, false, move |session| match session {
        Ok(r) => out_copy.emit(&report_json(r), || say_report("已同步 Synced with", r)),
        Err(e) => {
            eprintln!("同步失败 a peer session failed: {e}");
            out_copy.emit(&json!({"error": e}), || {});
        }
    })?;
    say!("{}", server.ticket());
    crate::output::SERVING.store(true, std::sync::atomic::Ordering::Relaxed);
    let addrs: Vec<String> = Ticket::decode(server.ticket())
        .map(|t| t.addrs.iter().map(|a| a.to_string()).collect())
        .unwrap_or_default();
    eprintln!(
        "等待直连 Serving peers on {} until stopped (Ctrl-C)",
        addrs.join(", ")
    );
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(linli_api::stop_signal());
    drop(server);
    Ok(())
}
