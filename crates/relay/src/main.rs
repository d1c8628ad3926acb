//! `linli-relay`: the street office's relay. Parses the command line and serves; the work is in
//! the library.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use linli_relay::{Config, Relay, RelayError, Timeouts};

/// Linli relay: stores and forwards sealed blobs for the members of each community.
#[derive(Parser, Debug)]
#[command(name = "linli-relay", version)]
struct Args {
    /// Directory of the relay's database (created if missing).
    #[arg(long)]
    data: PathBuf,
    /// Address to listen on, e.g. 127.0.0.1:8080; repeat to listen on several (say the
    /// office LAN and localhost). Each prints a line `linli-relay listening on http://ADDR`.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: Vec<String>,
    /// Serve HTTPS with the relay's own certificate (made on first start in DATA/tls); each
    /// address line then ends with `#sha256=PIN`, which devices need in the relay's address.
    #[arg(long)]
    tls: bool,
    /// Refuse communities not registered yet (by default a community is registered on first
    /// contact from the device that created it).
    #[arg(long)]
    no_first_contact: bool,
    /// New communities registered per hour from one address (the relay registers ten times
    /// as many in all); more are refused with 429 and `Retry-After`.
    #[arg(long, default_value_t = 5)]
    first_contacts_per_hour: u32,
    /// The most megabytes of sealed data one community keeps on the relay.
    #[arg(long, default_value_t = 2048)]
    quota_mb: u64,
    /// Free disk space (MB) kept for established communities: below it, new and young
    /// communities are refused, established ones may still write down to a quarter of it.
    #[arg(long, default_value_t = 1024)]
    reserve_mb: u64,
    /// Hours a community counts as young after it registered (see --reserve-mb).
    #[arg(long, default_value_t = 24)]
    young_hours: u64,
    /// The most connections open at once (also capped by the open-file limit).
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// The most connections open at once from one address.
    #[arg(long, default_value_t = 256)]
    max_connections_per_address: usize,
    /// The most megabytes of request bodies held in memory at once.
    #[arg(long, default_value_t = 160)]
    inflight_mb: usize,
    /// Answer `GET /traffic` (bytes in and out since the start), for benchmarks: it tells
    /// anyone who can reach the relay when and how much devices sync.
    #[arg(long)]
    traffic: bool,
    /// Seconds a client may take to send a request's head; an idle connection is closed
    /// after as long.
    #[arg(long, default_value_t = 10)]
    header_timeout: u64,
    /// Seconds a request body may pause.
    #[arg(long, default_value_t = 20)]
    body_timeout: u64,
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LINLI_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only: not into a log file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let defaults = Config::default();
    let config = Config {
        first_contact: !args.no_first_contact,
        first_contacts_per_hour: args.first_contacts_per_hour,
        quota_bytes: args.quota_mb.saturating_mul(1 << 20),
        reserve_bytes: args.reserve_mb.saturating_mul(1 << 20),
        young: Duration::from_secs(args.young_hours.saturating_mul(3600)),
        max_connections: args.max_connections,
        max_connections_per_address: args.max_connections_per_address,
        inflight_bytes: args.inflight_mb.saturating_mul(1 << 20),
        traffic: args.traffic,
        timeouts: Timeouts {
            header: Duration::from_secs(args.header_timeout.max(1)),
            body_idle: Duration::from_secs(args.body_timeout.max(1)),
            ..defaults.timeouts
        },
    };
    let relay = match Relay::open(&args.data, config) {
        Ok(relay) => relay,
        // Said as it is: the path and what to do.
        Err(e @ RelayError::Locked(_)) => anyhow::bail!("{e}"),
        Err(e) => {
            return Err(e).with_context(|| {
                format!("cannot open the relay's data in {}", args.data.display())
            });
        }
    };
    tracing::info!(
        max_connections = relay.max_connections(),
        "linli-relay {} started",
        env!("CARGO_PKG_VERSION")
    );
    let _checkpoints = relay
        .checkpoint_in_background(Duration::from_secs(2))
        .context("cannot start the checkpoint thread")?;
    let tls = if args.tls {
        Some(
            linli_relay::tls::load_or_create(&args.data)
                .with_context(|| format!("cannot set up TLS in {}", args.data.display()))?,
        )
    } else {
        None
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut listeners = Vec::new();
        for listen in &args.listen {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            let addr = listener.local_addr()?;
            // IPv6 addresses go in brackets in a URL.
            match &tls {
                Some(tls) => println!("linli-relay listening on https://{addr}#sha256={}", tls.pin),
                None => println!("linli-relay listening on http://{addr}"),
            }
            listeners.push(listener);
        }
        let (stop, _) = tokio::sync::watch::channel(false);
        let mut served = tokio::task::JoinSet::new();
        for listener in listeners {
            let mut stopped = stop.subscribe();
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            match &tls {
                Some(tls) => served.spawn(relay.clone().serve_tls(listener, tls.clone(), shutdown)),
                None => served.spawn(relay.clone().serve(listener, shutdown)),
            };
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            Some(ended) = served.join_next() => {
                ended.context("a listener's task failed")??;
            }
        }
        stop.send_replace(true);
        while let Some(ended) = served.join_next().await {
            ended.context("a listener's task failed")??;
        }
        Ok(())
    })
}
