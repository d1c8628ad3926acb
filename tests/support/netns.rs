//! For tests of local-network discovery, shared by the crates' tests (`#[path]`-included):
//! a test that runs itself again in a network namespace of its own.

/// For tests: runs the calling test again inside a network namespace of its own, where the only
/// interface is loopback, and reports whether this is that inner run. Multicast DNS libraries
/// join their group on every interface when they start, which makes the kernel announce the
/// membership on the real network; inside the namespace there is none. The outer run returns
/// `false` once the inner one passed and panics if it failed or the namespace cannot be made
/// (it needs `unshare` from util-linux, `ip` from iproute2 and user namespaces).
#[allow(clippy::expect_used)] // a test's harness: failing loudly is its job
pub fn isolated(test: &str) -> bool {
    const INNER: &str = "LINLI_PRIVATE_NETWORK";
    if std::env::var_os(INNER).is_some() {
        return true;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let status = std::process::Command::new("unshare")
        .args([
            "--net",
            "--map-root-user",
            "sh",
            "-c",
            "ip link set lo up && exec \"$0\" \"$@\"",
        ])
        .arg(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(INNER, "1")
        .status()
        .expect("cannot run `unshare` (util-linux) to make a private network namespace");
    assert!(
        status.success(),
        "{test} failed inside its private network namespace ({status})"
    );
    false
}
