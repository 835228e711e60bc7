//! `showpass`: one binary whose subcommands run each part of the platform.
#![forbid(unsafe_code)]

mod config;
mod http;
mod migrate;
mod progress;
mod send;
mod simulate;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use showpass_core::supervise::supervise;
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
    Ingest(Box<config::IngestArgs>),
    /// Run the consumer that maintains the read models in PostgreSQL.
    Projector(config::ProjectorArgs),
    /// Run the query API (HTTP, default 0.0.0.0:8081).
    Api(config::ApiArgs),
    /// Run ingest, the projector and the api in one process: the local default.
    All(Box<config::AllArgs>),
    /// Create the database if missing, apply migrations, provision the streams (idempotent).
    Migrate(migrate::MigrateArgs),
    /// Rebuild every read model from the streams, then swap it in atomically.
    Rebuild(config::ProjectorArgs),
    /// Erase one customer from the read models, the delivery log and the streams (idempotent;
    /// run it again to finish an interrupted one). Prints the report as JSON.
    Erase(config::EraseArgs),
    /// Send Showpass-like traffic (purchases, refunds, voids, transfers, duplicates...).
    Simulate(simulate::SimulateArgs),
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

/// With `METRICS_ADDR`, every service of this process reports to one hub served there, and
/// not on the public listeners.
async fn metrics_at(
    addr: Option<std::net::SocketAddr>,
    shutdown: &showpass_core::CancellationToken,
) -> anyhow::Result<showpass_core::http::MetricsAt> {
    let Some(addr) = addr else {
        return Ok(showpass_core::http::MetricsAt::Public);
    };
    let hub = showpass_core::http::MetricsHub::default();
    let listener = bind(addr, "METRICS_ADDR").await?;
    tokio::spawn(showpass_core::http::serve(
        listener,
        hub.router(),
        showpass_core::http::Limits::default(),
        shutdown.clone(),
    ));
    tracing::info!(%addr, "metrics listening");
    Ok(showpass_core::http::MetricsAt::Private(hub))
}

async fn bind(addr: std::net::SocketAddr, name: &str) -> anyhow::Result<TcpListener> {
    showpass_core::http::bind(addr)
        .await
        .with_context(|| format!("binding {name} {addr}"))
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Ingest(args) => {
            let shutdown = showpass_core::shutdown::on_signal();
            let metrics_addr = args.http.metrics_addr;
            let (mut config, addr) = args.load()?;
            let listener = bind(addr, "INGEST_ADDR").await?;
            config.metrics = metrics_at(metrics_addr, &shutdown).await?;
            showpass_ingest::run(config, listener, shutdown).await
        }
        Command::Projector(args) => {
            let config = args.config()?;
            showpass_store::migrate(&config.database_url).await?;
            showpass_projector::run(config, showpass_core::shutdown::on_signal()).await
        }
        Command::Api(args) => {
            let shutdown = showpass_core::shutdown::on_signal();
            let mut config = args
                .api
                .config(&args.database, args.nats.config()?, &args.http)?;
            let listener = bind(args.api.api_addr, "API_ADDR").await?;
            config.metrics = metrics_at(args.http.metrics_addr, &shutdown).await?;
            showpass_api::run_with(config, listener, shutdown, showpass_console::mount).await
        }
        Command::All(args) => {
            let nats = args.ingest.nats.config()?;
            let projector = args.projector.config(nats.clone())?;
            // Without a key the api refuses to start; ingest and the projector still run, so
            // a local run that only receives webhooks needs no key.
            let api = match args
                .api
                .config(&args.projector.database, nats, &args.ingest.http)
            {
                Ok(api) => Some(api),
                Err(e)
                    if e.downcast_ref::<showpass_api::ConfigError>()
                        == Some(&showpass_api::ConfigError::NoKeys) =>
                {
                    tracing::error!("api not started: {e}");
                    None
                }
                Err(e) => return Err(e),
            };
            let metrics_addr = args.ingest.http.metrics_addr;
            let (mut ingest, addr) = args.ingest.load()?;
            showpass_store::migrate(&projector.database_url).await?;
            let api_addr = args.api.api_addr;
            // Bound now, so a port in use fails the start; a restarted component binds again.
            let mut ingest_listener = Some(bind(addr, "INGEST_ADDR").await?);
            let mut api_listener = match &api {
                Some(_) => Some(bind(api_addr, "API_ADDR").await?),
                None => None,
            };
            let shutdown = showpass_core::shutdown::on_signal();
            // One metrics listener for every part, when METRICS_ADDR asks for it.
            ingest.metrics = metrics_at(metrics_addr, &shutdown).await?;
            let api = api.map(|mut a| {
                a.metrics = ingest.metrics.clone();
                a
            });
            // A panic in one part restarts that part with back-off while the others keep
            // running (ingest keeps answering); an error stops all of them, so the process
            // exits non-zero and its own supervisor sees it.
            let stop_all = |r: anyhow::Result<()>| {
                shutdown.cancel();
                r
            };
            let (i, p, a) = tokio::join!(
                async {
                    stop_all(
                        supervise("ingest", shutdown.clone(), None, || {
                            let (config, token) = (ingest.clone(), shutdown.clone());
                            let listener = ingest_listener.take();
                            async move {
                                let listener = match listener {
                                    Some(l) => l,
                                    None => bind(addr, "INGEST_ADDR").await?,
                                };
                                showpass_ingest::run(config, listener, token).await
                            }
                        })
                        .await,
                    )
                },
                async {
                    stop_all(
                        supervise("projector", shutdown.clone(), None, || {
                            showpass_projector::run(projector.clone(), shutdown.clone())
                        })
                        .await,
                    )
                },
                async {
                    let Some(api) = api else { return Ok(()) };
                    stop_all(
                        supervise("api", shutdown.clone(), None, || {
                            let (config, token) = (api.clone(), shutdown.clone());
                            let listener = api_listener.take();
                            async move {
                                let listener = match listener {
                                    Some(l) => l,
                                    None => bind(api_addr, "API_ADDR").await?,
                                };
                                showpass_api::run_with(
                                    config,
                                    listener,
                                    token,
                                    showpass_console::mount,
                                )
                                .await
                            }
                        })
                        .await,
                    )
                },
            );
            i.context("ingest")
                .and(p.context("projector"))
                .and(a.context("api"))
        }
        Command::Migrate(args) => args.run().await,
        Command::Rebuild(args) => {
            let config = args.config()?;
            showpass_store::migrate(&config.database_url).await?;
            let mut bars = progress::PerStream::default();
            let report = showpass_projector::rebuild(&config, &mut |stream, done, total| {
                bars.update(stream, done, total)
            })
            .await;
            bars.finish();
            let report = report?;
            println!(
                "rebuilt {} tables from {} events and {} delivery records in {:.1}s",
                report.tables.len(),
                report.events,
                report.records,
                report.elapsed.as_secs_f64()
            );
            Ok(())
        }
        Command::Erase(args) => {
            let config = args.projector.config()?;
            showpass_store::migrate(&config.database_url).await?;
            let request = showpass_projector::erase::EraseRequest {
                org_id: Some(args.org.clone()),
                email: Some(args.email.clone()),
                customer_id: None,
                requested_by: "cli".into(),
            };
            let report = showpass_projector::erase::erase_with(&config, &request).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Command::Simulate(args) => simulate::run(args).await,
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
