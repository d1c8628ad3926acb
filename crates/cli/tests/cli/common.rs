//! Helpers shared by the command-line test binaries.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

use linli_testkit::relay;
#[allow(unused_imports)]
pub use relay::{Relay, first_line, hostile_push, relay_bin};

/// The `linli` binary, opening stores with the tests' key (`LINLI_STORE_KEY`: no passphrase to
/// derive a key from at every command; the passphrase path has tests of its own).
pub fn linli_command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_linli"));
    c.env("LINLI_STORE_KEY", key_hex())
        .env_remove("LINLI_PASSPHRASE");
    c
}

/// The tests' store key, as `LINLI_STORE_KEY` takes it.
pub fn key_hex() -> String {
    linli_testkit::key().to_hex().to_string()
}

pub fn linli(dir: &Path, args: &[&str]) -> Output {
    crate::common::linli_command()
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

/// `linli p2p serve --bind 127.0.0.1:0`, killed when dropped.
pub struct Serve {
    child: Child,
    pub ticket: String,
}

impl Serve {
    /// Starts serving the store in `dir` and waits for its ticket.
    pub fn start(dir: &Path) -> Serve {
        Serve::start_with(dir, &[])
    }

    /// The same with more arguments to `p2p serve`.
    pub fn start_with(dir: &Path, extra: &[&str]) -> Serve {
        let mut child = crate::common::linli_command()
            .arg("--data")
            .arg(dir)
            .args(["p2p", "serve", "--bind", "127.0.0.1:0"])
            .args(extra)
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
