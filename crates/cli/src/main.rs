//! `showpass`: one binary whose subcommands run each part of the platform.
#![forbid(unsafe_code)]

mod config;
mod http;
mod send;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

// mimalloc: measurably faster than glibc's allocator for many small, short-lived allocations
// across threads (see docs/benchmarks.md), and it keeps the resident set small.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "showpass",
    version,
    about = "Showpass webhooks into data you can use"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the webhook receiver (HTTP, default 0.0.0.0:8080).
    Ingest(config::IngestArgs),
    /// Provision the JetStream streams (idempotent).
    Migrate(config::MigrateArgs),
    /// Sign a payload (a file or a built-in sample) and POST it, as Showpass would.
    Send(send::SendArgs),
    /// Exit 0 if a service answers 200 on its health URL (for container health checks).
    Healthcheck {
        /// The URL to check.
        #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
        url: String,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    showpass_core::telemetry::init();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .and_then(|rt| rt.block_on(run(cli.command)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Ingest(args) => {
            let (config, addr) = args.load()?;
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding INGEST_ADDR {addr}"))?;
            showpass_ingest::run(config, listener, showpass_core::shutdown::on_signal()).await
        }
        Command::Migrate(args) => args.run().await,
        Command::Send(args) => send::run(args).await,
        Command::Healthcheck { url } => {
            let (status, body) = http::request("GET", &url, &[], bytes::Bytes::new()).await?;
            anyhow::ensure!(
                status == hyper::StatusCode::OK,
                "{url} answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
            Ok(())
        }
    }
}
