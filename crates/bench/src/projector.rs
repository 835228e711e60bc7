//! The projector benchmark: catch-up from a pre-filled stream at several parallelisms, beside a
//! bulk COPY of the same rows, for one organization's traffic and for 200 organizations'; and
//! freshness (202 → visible in PostgreSQL) at a steady delivery rate.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::TryStreamExt;
use showpass_core::nats::{self, NatsConfig};
use showpass_payload::signature;
use showpass_simulate::{SimConfig, Simulator};
use sqlx::{Connection, PgConnection};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::ingest::{read_answer, read_response};
use crate::services;
use crate::stats::Run;

#[derive(clap::Args)]
pub struct Args {
    /// Simulated deliveries sent through ingest to pre-fill the stream.
    #[arg(long, default_value_t = 100_000)]
    count: usize,
    /// Delivery rate of the freshness phase.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// Length of the freshness phase.
    #[arg(long, default_value = "20s", value_parser = showpass_core::nats::parse_duration)]
    freshness_for: Duration,
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Server URL without a database; the benchmark creates and drops its own databases.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres: String,
    #[arg(long)]
    showpass_bin: Option<PathBuf>,
    /// The catch-up is measured at each of these `PROJECTOR_PARALLELISM`s, side by side; the
    /// ratios are to the first.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    parallelism: Vec<usize>,
    /// One workload per number of organizations in the simulated traffic.
    #[arg(long, value_delimiter = ',', default_value = "1,200")]
    organizations: Vec<usize>,
}

/// The tables the projector writes, in an order COPY can fill.
const TABLES: [&str; 12] = [
    "checkpoints",
    "deliveries",
    "invoices",
    "invoice_items",
    "tickets",
    "orders",
    "customers",
    "shows",
    "ticket_types",
    "sales_by_ticket_type",
    "sales_by_event",
    "sales_by_order_attrs",
];

pub async fn run(args: Args) -> anyhow::Result<()> {
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let secret = format!("bench-{run_id}");
    let server = args.postgres.trim_end_matches('/').to_owned();
    let mut prefixes = Vec::new();
    let mut databases = Vec::new();
    let result = async {
        for &organizations in &args.organizations {
            let prefix = format!("benchproj{run_id}o{organizations}");
            prefixes.push(prefix.clone());
            workload(
                &args,
                &run_id,
                &secret,
                &prefix,
                organizations,
                &mut databases,
            )
            .await?;
        }
        anyhow::Ok(())
    }
    .await;

    if let Ok(client) = async_nats::connect(args.nats_url.as_str()).await {
        let js = async_nats::jetstream::new(client);
        for prefix in &prefixes {
            for s in NatsConfig::local(prefix.clone()).all_streams() {
                let _ = js.delete_stream(s).await;
            }
        }
    }
    if let Ok(mut admin) = PgConnection::connect(&format!("{server}/postgres")).await {
        for name in &databases {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin)
                .await;
        }
    }
    result
}

/// One workload: the stream pre-filled with simulated traffic of `organizations`
/// organizations, caught up from scratch at each parallelism in turn, beside a COPY of the
/// rows; then (the last workload) freshness at a steady rate.
async fn workload(
    args: &Args,
    run_id: &str,
    secret: &str,
    prefix: &str,
    organizations: usize,
    databases: &mut Vec<String>,
) -> anyhow::Result<()> {
    let server = args.postgres.trim_end_matches('/');
    let bin = args.showpass_bin.as_deref();
    let (mut ingest, addr) =
        services::spawn_ingest(bin, prefix, secret, &args.nats_url, "").await?;
    let mut nats_config = NatsConfig::local(prefix.to_owned());
    nats_config.url = args.nats_url.parse()?;
    let result = async {
        // 1. Pre-fill the stream through ingest.
        println!();
        println!("## {organizations} organization(s)");
        print!("pre-filling: {} simulated deliveries through ingest... ", args.count);
        std::io::stdout().flush()?;
        let sim = Simulator::new(SimConfig { seed: 7, organizations, ..SimConfig::default() });
        let deliveries: Vec<(String, Vec<u8>)> = sim.take(args.count).map(|d| {
            let sig = signature::sign(secret.as_bytes(), &d.id);
            (sig, d.body)
        }).collect();
        let started = Instant::now();
        send_all(addr, Arc::new(deliveries), 64).await?;
        let client = nats::connect(&nats_config, "bench").await?;
        let js = nats::jetstream(client, Duration::from_secs(10));
        let mut stream = js.get_stream(nats_config.events_stream()).await?;
        let events = stream.info().await?.state.last_sequence;
        println!("{events} events stored in {:.1}s", started.elapsed().as_secs_f64());

        // 2. Catch-up from scratch, once per parallelism, the same stream each time.
        let mut caught_up = Vec::new();
        for &parallelism in &args.parallelism {
            let name = format!("bench_{run_id}_o{organizations}_p{parallelism}");
            databases.push(name.clone());
            let db = format!("{server}/{name}");
            showpass_store::migrate(&showpass_store::DatabaseUrl::parse(&db)?).await?;
            let env = [("PROJECTOR_PARALLELISM", parallelism.to_string())];
            let mut projector = services::spawn_projector(bin, prefix, &db, &args.nats_url, &env)?;
            let started = Instant::now();
            let mut conn = PgConnection::connect(&db).await?;
            wait_for_checkpoint(&mut conn, &nats_config.events_stream(), events, Duration::from_secs(900)).await?;
            caught_up.push((parallelism, db, started.elapsed()));
            services::stop(&mut projector).await;
        }
        let name = format!("bench_{run_id}_o{organizations}_copy");
        databases.push(name.clone());
        let (first_p, first_db, first) = caught_up.first().context("no parallelism given")?.clone();
        let (rows, copy) = copy_rows(&first_db, &format!("{server}/{name}")).await?;
        let copy_rate = events as f64 / copy.as_secs_f64();
        println!();
        println!("| path ({events} events, {rows} rows) | time | events/s | ÷ parallelism {first_p} | ÷ COPY |");
        println!("|---|---:|---:|---:|---:|");
        for (parallelism, _, took) in &caught_up {
            let rate = events as f64 / took.as_secs_f64();
            println!(
                "| projector catch-up, PROJECTOR_PARALLELISM={parallelism} | {:.2}s | {rate:.0} | {:.2} | {:.1}% |",
                took.as_secs_f64(),
                first.as_secs_f64() / took.as_secs_f64(),
                rate / copy_rate * 100.0
            );
        }
        println!("| bulk COPY of the same rows into the same tables | {:.2}s | {copy_rate:.0} | | 100% |", copy.as_secs_f64());

        // 3. Freshness at a steady rate, the projector (at its default parallelism) caught up.
        if Some(&organizations) == args.organizations.last() && !args.freshness_for.is_zero() {
            let (_, db, _) = caught_up.last().context("no parallelism given")?;
            let mut projector = services::spawn_projector(bin, prefix, db, &args.nats_url, &[])?;
            let mut conn = PgConnection::connect(db).await?;
            wait_for_checkpoint(&mut conn, &nats_config.events_stream(), events, Duration::from_secs(60)).await?;
            let mut fresh = freshness(addr, secret, db, args.rate, args.freshness_for).await?;
            println!();
            println!(
                "freshness at {} deliveries/s for {:?} (PROJECTOR_PARALLELISM default, {}): {} deliveries, 202 → visible in PostgreSQL p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                args.rate,
                args.freshness_for,
                showpass_projector::DEFAULT_PARALLELISM,
                fresh.latencies_us.len(),
                fresh.percentile_ms(50.0),
                fresh.percentile_ms(99.0),
                fresh.percentile_ms(100.0)
            );
            services::stop(&mut projector).await;
        }
        anyhow::Ok(())
    }
    .await;
    services::stop(&mut ingest).await;
    result
}

pub(crate) async fn wait_for_checkpoint(
    conn: &mut PgConnection,
    stream: &str,
    seq: u64,
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let at: Option<i64> =
            sqlx::query_scalar("SELECT last_seq FROM checkpoints WHERE stream = $1")
                .bind(stream)
                .fetch_optional(&mut *conn)
                .await?;
        if at.unwrap_or(0) as u64 >= seq {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the projector did not catch up within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Copies every projector table out of `from` and, timed, into a fresh `to`.
async fn copy_rows(from: &str, to: &str) -> anyhow::Result<(u64, Duration)> {
    let mut src = PgConnection::connect(from).await?;
    let mut dumps = Vec::new();
    let mut rows = 0u64;
    for t in TABLES {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {t}"))
            .fetch_one(&mut src)
            .await?;
        rows += n as u64;
        let chunks: Vec<bytes::Bytes> = src
            .copy_out_raw(&format!("COPY {t} TO STDOUT (FORMAT binary)"))
            .await?
            .try_collect()
            .await?;
        dumps.push((t, chunks));
    }
    showpass_store::migrate(&showpass_store::DatabaseUrl::parse(to)?).await?;
    let mut dst = PgConnection::connect(to).await?;
    let started = Instant::now();
    let mut tx = dst.begin().await?;
    for (t, chunks) in dumps {
        let mut copy = tx
            .copy_in_raw(&format!("COPY {t} FROM STDIN (FORMAT binary)"))
            .await?;
        for c in chunks {
            copy.send(c).await?;
        }
        copy.finish()
            .await
            .with_context(|| format!("COPY into {t}"))?;
    }
    tx.commit().await?;
    Ok((rows, started.elapsed()))
}

/// Sends every delivery over `concurrency` keep-alive connections.
pub(crate) async fn send_all(
    addr: SocketAddr,
    deliveries: Arc<Vec<(String, Vec<u8>)>>,
    concurrency: usize,
) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let deliveries = deliveries.clone();
        tasks.spawn(async move {
            let mut conn = TcpStream::connect(addr).await?;
            conn.set_nodelay(true)?;
            let mut buf = Vec::new();
            for (sig, body) in deliveries.iter().skip(w).step_by(concurrency) {
                let status = post(&mut conn, &mut buf, sig, body).await?;
                anyhow::ensure!(status == 202 || status == 200, "ingest answered {status}");
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

async fn post(
    conn: &mut TcpStream,
    buf: &mut Vec<u8>,
    sig: &str,
    body: &[u8],
) -> anyhow::Result<u16> {
    let mut req = Vec::with_capacity(body.len() + 200);
    write!(
        req,
        "POST /webhooks/showpass HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nX-SHOWPASS-SIGNATURE: {sig}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    req.extend_from_slice(body);
    conn.write_all(&req).await?;
    read_response(conn, buf).await
}

/// Sends `rate` deliveries a second for `duration`; a poller finds each accepted delivery in
/// PostgreSQL and records how long after its 202 it became visible.
async fn freshness(
    addr: SocketAddr,
    secret: &str,
    db: &str,
    rate: u64,
    duration: Duration,
) -> anyhow::Result<Run> {
    let acked: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen: Arc<Mutex<Vec<u32>>> = Arc::default();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (acked, seen, done) = (acked.clone(), seen.clone(), done.clone());
        let mut conn = PgConnection::connect(db).await?;
        tokio::spawn(async move {
            loop {
                let pending: Vec<uuid::Uuid> = acked
                    .lock()
                    .unwrap()
                    .keys()
                    .filter_map(|k| k.parse().ok())
                    .collect();
                if pending.is_empty() && done.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                if !pending.is_empty() {
                    let found: Vec<uuid::Uuid> =
                        sqlx::query_scalar("SELECT id FROM deliveries WHERE id = ANY($1)")
                            .bind(&pending)
                            .fetch_all(&mut conn)
                            .await?;
                    let now = Instant::now();
                    let mut acked = acked.lock().unwrap();
                    let mut seen = seen.lock().unwrap();
                    for id in found {
                        if let Some(at) = acked.remove(&id.to_string()) {
                            seen.push(now.duration_since(at).as_micros() as u32);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            anyhow::Ok(())
        })
    };
    let mut sim = Simulator::new(SimConfig {
        seed: 99,
        ..SimConfig::default()
    });
    let mut conn = TcpStream::connect(addr).await?;
    conn.set_nodelay(true)?;
    let mut buf = Vec::new();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let started = Instant::now();
    let mut next = started;
    while started.elapsed() < duration {
        tokio::time::sleep_until(next.into()).await;
        next += interval;
        let d = sim.next().expect("endless");
        let sig = signature::sign(secret.as_bytes(), &d.id);
        let mut req = Vec::new();
        write!(
            req,
            "POST /webhooks/showpass HTTP/1.1\r\nHost: bench\r\nX-SHOWPASS-SIGNATURE: {sig}\r\nContent-Length: {}\r\n\r\n",
            d.body.len()
        )?;
        req.extend_from_slice(&d.body);
        conn.write_all(&req).await?;
        let (status, body) = read_answer(&mut conn, &mut buf).await?;
        let at = Instant::now();
        if status == 202 {
            let v: serde_json::Value = serde_json::from_slice(&body)?;
            if let Some(id) = v["delivery_id"].as_str() {
                acked.lock().unwrap().insert(id.to_owned(), at);
            }
        }
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(30), poller)
        .await
        .context("deliveries never became visible")???;
    let latencies_us = std::mem::take(&mut *seen.lock().unwrap());
    Ok(Run {
        latencies_us,
        elapsed: started.elapsed(),
    })
}
