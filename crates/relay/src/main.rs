//! `linli-relay`: the street office's relay. Parses the command line and serves; the work is in
//! the library.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use linli_relay::{Config, Relay};

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
    let relay = Relay::open(
        &args.data,
        Config {
            first_contact: !args.no_first_contact,
        },
    )
    .with_context(|| format!("cannot open the relay's data in {}", args.data.display()))?;
    let _checkpoints = relay
        .checkpoint_in_background(std::time::Duration::from_secs(2))
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
