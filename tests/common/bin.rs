//! The `showpass` binary of this checkout, shared by the end-to-end test targets.

use std::process::Command;

/// Built (or found up to date) by cargo, with the same profile as these tests, then run as a
/// user runs it.
pub static BIN: std::sync::LazyLock<std::path::PathBuf> = std::sync::LazyLock::new(|| {
    let mut build = Command::new(env!("CARGO"));
    build.args(["build", "--quiet", "-p", "showpass", "--bin", "showpass"]);
    if !cfg!(debug_assertions) {
        build.arg("--release");
    }
    let status = build.status().expect("running cargo build");
    assert!(status.success(), "cargo build -p showpass failed");
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    dir.join(format!("showpass{}", std::env::consts::EXE_SUFFIX))
});

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
