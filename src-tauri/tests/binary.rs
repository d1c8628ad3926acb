//! The `linli-app` binary itself. (Building this test also builds the binary with the test
//! build's features, which the end-to-end tests then drive: one build of the workspace.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn a_store_that_cannot_be_opened_is_reported_before_any_window() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-directory");
    std::fs::write(&blocker, b"x").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_linli-app"))
        .env("LINLI_DATA", blocker.join("store"))
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .expect("run linli-app");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot open Linli's store"), "{stderr}");
    assert!(
        stderr.contains("not-a-directory"),
        "names the path: {stderr}"
    );
}
