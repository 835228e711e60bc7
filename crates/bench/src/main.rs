//! `showpass-bench`: measured figures for docs/benchmarks.md.
//!
//! `showpass-bench ingest` drives a real `showpass ingest` (the release binary beside this one)
//! and NATS with unique ~3 KB signed deliveries at a fixed concurrency, and in the same run a
//! bare JetStream publish loop with the same payloads and the same number of acks in flight.
#![forbid(unsafe_code)]

mod api;
mod erase;
mod ingest;
mod payloads;
mod projector;
mod search;
mod services;
mod stats;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "showpass-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// ingest + NATS over HTTP, beside a bare JetStream publish loop.
    Ingest(ingest::Args),
    /// projector catch-up beside a bulk COPY, and freshness at a steady rate.
    Projector(projector::Args),
    /// api latency over 1M customers and 5M tickets, beside the same queries run directly.
    Api(api::Args),
    /// customer search class by class (e-mail, prefix, surname, common first names, two
    /// letters, a typo, a phone suffix) at concurrency 1 and 16, on the api benchmark's data.
    Search(search::Args),
    /// one customer erased among 1M customers and 5M tickets, beside the projector's catch-up.
    Erase(erase::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        match cli.command {
            Command::Ingest(args) => ingest::run(args).await,
            Command::Projector(args) => projector::run(args).await,
            Command::Api(args) => api::run(args).await,
            Command::Search(args) => search::run(args).await,
            Command::Erase(args) => erase::run(args).await,
        }
    })
}
