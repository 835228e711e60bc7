//! The real services a benchmark drives, as child processes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Child;

/// The `showpass` binary: `explicit`, or the one beside this benchmark.
pub fn showpass_bin(explicit: Option<&Path>) -> PathBuf {
    explicit.map(Path::to_path_buf).unwrap_or_else(|| {
        std::env::current_exe()
            .expect("own path")
            .with_file_name("showpass")
    })
}

/// Starts `showpass api` on a free port over `database_url` with the key `key`, and a pool of
/// `pool` connections (the api's default when `None`); answers once it is ready.
pub async fn spawn_api(
    bin: &Path,
    database_url: &str,
    key: &str,
    pool: Option<usize>,
) -> anyhow::Result<(Child, SocketAddr)> {
    let addr: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let mut command = tokio::process::Command::new(bin);
    command
        .arg("api")
        .env("API_ADDR", addr.to_string())
        .env("API_KEYS", key)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    if let Some(pool) = pool {
        command.env("API_DB_POOL", pool.to_string());
    }
    let child = command.spawn().with_context(|| {
        format!(
            "starting {} (cargo build --release --workspace --bins)",
            bin.display()
        )
    })?;
    wait_ready(addr).await?;
    Ok((child, addr))
}

/// Starts `showpass ingest` on a free port and waits until it is ready.
pub async fn spawn_ingest(
    bin: Option<&Path>,
    prefix: &str,
    secret: &str,
    nats_url: &str,
    orgs: &str,
) -> anyhow::Result<(Child, SocketAddr)> {
    let addr: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let bin = showpass_bin(bin);
    let child = tokio::process::Command::new(&bin)
        .arg("ingest")
        .env("INGEST_ADDR", addr.to_string())
        .env("SHOWPASS_WEBHOOK_SECRET", secret)
        .env("SHOWPASS_WEBHOOK_ORGS", orgs)
        .env("NATS_URL", nats_url)
        .env("NATS_SUBJECT_PREFIX", prefix)
        .env("RUST_LOG", "error")
        .kill_on_drop(true)
        .spawn()
        .with_context(|| {
            format!(
                "starting {} (build it: cargo build --release --workspace --bins)",
                bin.display()
            )
        })?;
    wait_ready(addr).await?;
    Ok((child, addr))
}

/// Starts `showpass projector` against a database.
pub fn spawn_projector(
    bin: Option<&Path>,
    prefix: &str,
    database_url: &str,
    nats_url: &str,
    env: &[(&str, String)],
) -> anyhow::Result<Child> {
    let bin = showpass_bin(bin);
    tokio::process::Command::new(&bin)
        .arg("projector")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("DATABASE_URL", database_url)
        .env("NATS_URL", nats_url)
        .env("NATS_SUBJECT_PREFIX", prefix)
        .env(
            "RUST_LOG",
            std::env::var("BENCH_PROJECTOR_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}

/// SIGTERM, then wait (at most 10 s).
pub async fn stop(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
}

pub async fn wait_ready(addr: SocketAddr) -> anyhow::Result<()> {
    for _ in 0..200 {
        if let Ok(mut s) = TcpStream::connect(addr).await {
            s.write_all(b"GET /readyz HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
                .await?;
            let mut out = String::new();
            s.read_to_string(&mut out).await?;
            if out.starts_with("HTTP/1.1 200") {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the service did not become ready at {addr}")
}

/// Peak and current resident set size of a process, in bytes.
pub fn memory(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    Ok((field("VmHWM:"), field("VmRSS:")))
}
