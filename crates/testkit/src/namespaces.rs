//! Test harnesses: a test that runs itself
//! again inside Linux namespaces of its own — a network where the only interface is loopback,
//! or a small disk that really fills up. They need `unshare` from util-linux, `ip` from
//! iproute2 and user namespaces; the outer run panics if the inner one failed or the namespace
//! cannot be made.

use std::path::PathBuf;

/// Runs the test binary again for `test` alone, under `unshare` with `args`, after the shell
/// command `setup`, with `env` set; panics unless it passed.
#[allow(clippy::expect_used)] // a test's harness: failing loudly is its job
fn rerun(test: &str, args: &[&str], setup: &str, env: (&str, &str)) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let status = std::process::Command::new("unshare")
        .args(args)
        .args(["--map-root-user", "sh", "-c"])
        .arg(format!("{setup} && exec \"$0\" \"$@\""))
        .arg(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(env.0, env.1)
        .status()
        .expect("cannot run `unshare` (util-linux) to make a namespace of the test's own");
    assert!(
        status.success(),
        "{test} failed inside its namespace ({status})"
    );
}

/// Runs the calling test again inside a network namespace of its own, where the only
/// interface is loopback, and reports whether this is that inner run. Multicast DNS libraries
/// join their group on every interface when they start, which makes the kernel announce the
/// membership on the real network; inside the namespace there is none. The outer run returns
/// `false` once the inner one passed.
pub fn isolated(test: &str) -> bool {
    const INNER: &str = "LINLI_PRIVATE_NETWORK";
    if std::env::var_os(INNER).is_some() {
        return true;
    }
    rerun(test, &["--net"], "ip link set lo up", (INNER, "1"));
    false
}

/// Runs the calling test again inside a mount namespace of its own where a fresh tmpfs of
/// `kib` KiB is mounted on a directory: a disk that really fills up (writes fail with ENOSPC)
/// and gets room again when a file on it is removed. The inner run gets the directory; the
/// outer run gets `None` once the inner one passed.
#[allow(clippy::expect_used)]
pub fn on_small_disk(test: &str, kib: u64) -> Option<PathBuf> {
    const INNER: &str = "LINLI_SMALL_DISK";
    if let Some(dir) = std::env::var_os(INNER) {
        return Some(PathBuf::from(dir));
    }
    let outer = tempfile::tempdir().expect("a directory to mount the small disk on");
    let dir = outer
        .path()
        .to_str()
        .expect("a UTF-8 temporary path")
        .to_string();
    rerun(
        test,
        &["--mount"],
        &format!("mount -t tmpfs -o size={kib}k linli-small-disk '{dir}'"),
        (INNER, &dir),
    );
    None
}
