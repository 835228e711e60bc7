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

/// Runs a command to its end within a limit. A command that hangs (a server that never
/// answers, a lock that never comes) fails its test with what it printed, where a plain
/// `output()` would hang the whole suite.
pub trait Within {
    fn output_within(&mut self, limit: std::time::Duration) -> std::process::Output;
}

impl Within for Command {
    fn output_within(&mut self, limit: std::time::Duration) -> std::process::Output {
        use std::io::Read;
        use std::process::Stdio;
        fn drain(mut from: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
            std::thread::spawn(move || {
                let mut all = Vec::new();
                let _ = from.read_to_end(&mut all);
                all
            })
        }
        let mut child = self
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{self:?}: {e}"));
        let stdout = drain(child.stdout.take().expect("piped"));
        let stderr = drain(child.stderr.take().expect("piped"));
        let deadline = std::time::Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting for a child") {
                break status;
            }
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                let printed = stderr.join().unwrap_or_default();
                panic!(
                    "{self:?} did not finish within {limit:?}; it printed:\n{}",
                    String::from_utf8_lossy(&printed)
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        std::process::Output {
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        }
    }
}
