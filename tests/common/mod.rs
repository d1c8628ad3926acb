//! Helpers shared by the command-line test binaries.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

pub fn linli(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_linli"))
        .arg("--data")
        .arg(dir)
        .args(args)
        .env_remove("LINLI_DATA")
        .env_remove("LINLI_USER")
        .output()
        .expect("run linli")
}

pub fn ok(dir: &Path, args: &[&str]) -> String {
    let out = linli(dir, args);
    assert!(
        out.status.success(),
        "linli {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn json(dir: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let text = ok(dir, &all);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("linli {args:?}: not JSON ({e}): {text}"))
}

pub fn err(dir: &Path, args: &[&str]) -> String {
    let out = linli(dir, args);
    assert!(!out.status.success(), "linli {args:?} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The `linli-relay` binary. `cargo test --workspace` builds it (the relay crate has tests of
/// its own); a narrower `cargo test` builds it here.
pub fn relay_bin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let linli = PathBuf::from(env!("CARGO_BIN_EXE_linli"));
            let relay =
                linli.with_file_name(format!("linli-relay{}", std::env::consts::EXE_SUFFIX));
            if !relay.exists() {
                let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
                let status = Command::new(cargo)
                    .args(["build", "-p", "linli-relay", "--bin", "linli-relay"])
                    .status()
                    .expect("run cargo build");
                assert!(status.success(), "cannot build linli-relay");
            }
            relay
        })
        .clone()
}

/// A relay process on 127.0.0.1, killed when dropped.
pub struct Relay {
    pub child: Child,
    pub url: String,
    pub dir: PathBuf,
}

impl Relay {
    /// Starts `linli-relay --data DIR --listen 127.0.0.1:PORT` (0: any free port) and waits for
    /// its address.
    pub fn start(dir: &Path, port: u16) -> Relay {
        let mut child = Command::new(relay_bin())
            .arg("--data")
            .arg(dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("LINLI_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start linli-relay");
        let line = first_line(&mut child, "the relay did not print its address");
        let url = line.trim().rsplit(' ').next().expect("address").to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "{line}");
        Relay {
            child,
            url,
            dir: dir.to_path_buf(),
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Kills it (SIGKILL) and waits.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The first line a child prints (waiting at most 20 s). Its standard output is drained to the
/// end in the background: a server that writes to a closed pipe would stop.
fn first_line(child: &mut Child, missing: &str) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx.recv_timeout(Duration::from_secs(20)).expect(missing)
}

/// `linli p2p serve --bind 127.0.0.1:0`, killed when dropped.
pub struct Serve {
    child: Child,
    pub ticket: String,
}

impl Serve {
    /// Starts serving the store in `dir` and waits for its ticket.
    pub fn start(dir: &Path) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_linli"))
            .arg("--data")
            .arg(dir)
            .args(["p2p", "serve", "--bind", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start linli p2p serve");
        let ticket = first_line(&mut child, "p2p serve printed no ticket");
        assert!(ticket.starts_with("LINLIP1"), "{ticket}");
        Serve { child, ticket }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
