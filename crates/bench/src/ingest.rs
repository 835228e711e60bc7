//! The ingest benchmark: HTTP deliveries through `showpass ingest`, beside bare publishes.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::HeaderMap;
use showpass_core::nats::{self, NatsConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::payloads::Payloads;
use crate::services;
use crate::stats::Run;

#[derive(clap::Args)]
pub struct Args {
    /// Deliveries per phase and round.
    #[arg(long, default_value_t = 50_000)]
    count: u64,
    /// Rounds of (bare publish, ingest), interleaved so machine noise hits both; the median
    /// round is reported.
    #[arg(long, default_value_t = 5)]
    rounds: u64,
    /// Requests (and acks) in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: u64,
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Slow clients (slowloris) held open for the last phase, which measures real deliveries
    /// beside them; 0 skips the phase.
    #[arg(long, default_value_t = 500)]
    slow_clients: u64,
    /// The showpass binary to run (default: the one beside this benchmark).
    #[arg(long)]
    showpass_bin: Option<PathBuf>,
    /// Organizations the endpoint is bound to (SHOWPASS_WEBHOOK_ORGS), as production should
    /// run it; empty for an unbound endpoint. Either way every new `id` is bound to its
    /// organization in JetStream (one more write per delivery).
    #[arg(long, default_value = "20")]
    endpoint_orgs: String,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let secret = format!("bench-{run_id}");
    let payloads = Arc::new(Payloads::new(&secret));
    println!(
        "ingest benchmark: {} deliveries of {} bytes per phase, concurrency {}",
        args.count,
        payloads.size(),
        args.concurrency
    );

    let mut bare_config = NatsConfig::local(format!("benchbare{run_id}"));
    bare_config.url = args.nats_url.parse()?;
    let client = nats::connect(&bare_config, "showpass-bench").await?;
    let js = nats::jetstream(client.clone(), Duration::from_secs(10));
    nats::ensure_streams(&js, &bare_config).await?;

    let ingest_prefix = format!("bench{run_id}");
    let (mut child, addr) = services::spawn_ingest(
        args.showpass_bin.as_deref(),
        &ingest_prefix,
        &secret,
        &args.nats_url,
        &args.endpoint_orgs,
    )
    .await?;
    let pid = child.id().context("ingest pid")?;

    let result = async {
        // Warm up both paths, then measure the bare loop and ingest back to back, in rounds.
        publish_loop(&js, &bare_config.prefix, &payloads, 1_000_000_000, 5_000, args.concurrency).await?;
        http_loop(addr, &payloads, 1_000_000_000, 5_000, args.concurrency).await?;
        println!();
        println!("| round | bare publish/s | bare p50 ms | bare p99 ms | ingest deliveries/s | ingest p50 ms | ingest p99 ms | ingest/bare |");
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
        let mut rounds = Vec::new();
        for round in 0..args.rounds {
            let first = round * args.count;
            let mut bare = publish_loop(&js, &bare_config.prefix, &payloads, first, args.count, args.concurrency).await?;
            let mut http = http_loop(addr, &payloads, first, args.count, args.concurrency).await?;
            let r = Round {
                bare_rate: bare.rate(),
                bare_p50: bare.percentile_ms(50.0),
                bare_p99: bare.percentile_ms(99.0),
                rate: http.rate(),
                p50: http.percentile_ms(50.0),
                p99: http.percentile_ms(99.0),
            };
            println!(
                "| {} | {:.0} | {:.2} | {:.2} | {:.0} | {:.2} | {:.2} | {:.1}% |",
                round + 1, r.bare_rate, r.bare_p50, r.bare_p99, r.rate, r.p50, r.p99, r.ratio()
            );
            rounds.push(r);
        }
        if args.slow_clients > 0 {
            slow_phase(addr, &payloads, args.rounds * args.count, args.slow_clients).await?;
        }
        let (hwm, rss) = services::memory(pid)?;
        rounds.sort_by(|a, b| a.rate.total_cmp(&b.rate));
        let m = &rounds[rounds.len() / 2];
        let mut ratios: Vec<f64> = rounds.iter().map(Round::ratio).collect();
        ratios.sort_by(f64::total_cmp);
        println!();
        println!(
            "median round: ingest {:.0} deliveries/s (p50 {:.2} ms, p99 {:.2} ms), bare {:.0}/s; \
             median ingest/bare {:.1}%; ingest peak RSS {:.1} MB (now {:.1} MB)",
            m.rate, m.p50, m.p99, m.bare_rate, ratios[ratios.len() / 2], hwm as f64 / 1e6, rss as f64 / 1e6
        );
        anyhow::Ok(())
    }
    .await;

    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    let mut ingest_config = NatsConfig::local(ingest_prefix);
    ingest_config.url = args.nats_url.parse()?;
    for config in [&bare_config, &ingest_config] {
        for s in config.all_streams() {
            let _ = js.delete_stream(s).await;
        }
    }
    result
}

struct Round {
    bare_rate: f64,
    bare_p50: f64,
    bare_p99: f64,
    rate: f64,
    p50: f64,
    p99: f64,
}

impl Round {
    fn ratio(&self) -> f64 {
        self.rate / self.bare_rate * 100.0
    }
}

/// Real deliveries at concurrency 16, first alone, then with `n` slow clients connected: half
/// trickle their headers a byte at a time, half their bodies.
async fn slow_phase(
    addr: SocketAddr,
    payloads: &Arc<Payloads>,
    first: u64,
    n: u64,
) -> anyhow::Result<()> {
    const COUNT: u64 = 20_000;
    let mut alone = http_loop(addr, payloads, first, COUNT, 16).await?;
    let mut slow = tokio::task::JoinSet::new();
    for i in 0..n {
        slow.spawn(async move {
            let mut stream = TcpStream::connect(addr).await?;
            let request: &[u8] = if i % 2 == 0 {
                b"POST /webhooks/showpass HTTP/1.1\r\nHost: bench\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            } else {
                b"POST /webhooks/showpass HTTP/1.1\r\nHost: bench\r\nContent-Length: 100000\r\nX-SHOWPASS-SIGNATURE: 00\r\n\r\n{\"id\":\"slowloris\",\"pad\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            };
            let start = if i % 2 == 0 { 20 } else { request.len() - 40 };
            stream.write_all(&request[..start]).await?;
            for b in &request[start..] {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if stream.write_all(&[*b]).await.is_err() {
                    break; // cut off by the server
                }
            }
            anyhow::Ok(())
        });
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut beside = http_loop(addr, payloads, first + COUNT, COUNT, 16).await?;
    slow.abort_all();
    println!();
    println!("| {COUNT} deliveries at concurrency 16 | deliveries/s | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|");
    for (what, run) in [
        ("alone", &mut alone),
        (&*format!("beside {n} slow clients"), &mut beside),
    ] {
        println!(
            "| {what} | {:.0} | {:.2} | {:.2} |",
            run.rate(),
            run.percentile_ms(50.0),
            run.percentile_ms(99.0)
        );
    }
    Ok(())
}

/// `concurrency` publishers, each awaiting its ack before the next: that many acks in flight.
async fn publish_loop(
    js: &async_nats::jetstream::Context,
    prefix: &str,
    payloads: &Arc<Payloads>,
    first: u64,
    count: u64,
    concurrency: u64,
) -> anyhow::Result<Run> {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let (js, payloads, subject) = (
            js.clone(),
            payloads.clone(),
            showpass_payload::subject::stored_event_subject(
                prefix,
                Some("20"),
                Some("invoice.purchase"),
            ),
        );
        tasks.spawn(async move {
            let mut lat = Vec::with_capacity((count / concurrency + 1) as usize);
            let mut i = first + w;
            while i < first + count {
                let (body, _) = payloads.get(i);
                let mut headers = HeaderMap::new();
                headers.insert("Nats-Msg-Id", format!("bare-{i}").as_str());
                let t = Instant::now();
                js.publish_with_headers(subject.clone(), headers, body.into())
                    .await?
                    .await?;
                lat.push(t.elapsed().as_micros() as u32);
                i += concurrency;
            }
            anyhow::Ok(lat)
        });
    }
    collect(tasks, started).await
}

/// `concurrency` keep-alive HTTP/1.1 connections, each sending its next delivery when the last
/// is answered. Requests are written and answers read by hand to keep the client cheap.
async fn http_loop(
    addr: SocketAddr,
    payloads: &Arc<Payloads>,
    first: u64,
    count: u64,
    concurrency: u64,
) -> anyhow::Result<Run> {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let payloads = payloads.clone();
        tasks.spawn(async move {
            let mut stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let mut lat = Vec::with_capacity((count / concurrency + 1) as usize);
            let (mut req, mut buf) = (Vec::with_capacity(4096), Vec::with_capacity(4096));
            let mut i = first + w;
            while i < first + count {
                let (body, sig) = payloads.get(i);
                req.clear();
                write!(
                    req,
                    "POST /webhooks/showpass HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nX-SHOWPASS-SIGNATURE: {sig}\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )?;
                req.extend_from_slice(body.as_bytes());
                let t = Instant::now();
                stream.write_all(&req).await?;
                let status = read_response(&mut stream, &mut buf).await?;
                lat.push(t.elapsed().as_micros() as u32);
                anyhow::ensure!(status == 202, "delivery {i} answered {status}");
                i += concurrency;
            }
            anyhow::Ok(lat)
        });
    }
    collect(tasks, started).await
}

pub(crate) async fn collect(
    mut tasks: tokio::task::JoinSet<anyhow::Result<Vec<u32>>>,
    started: Instant,
) -> anyhow::Result<Run> {
    let mut latencies_us = Vec::new();
    while let Some(r) = tasks.join_next().await {
        latencies_us.extend(r??);
    }
    Ok(Run {
        latencies_us,
        elapsed: started.elapsed(),
    })
}

/// Reads one HTTP/1.1 answer (with Content-Length) and returns its status code.
pub async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<u16> {
    Ok(read_answer(stream, buf).await?.0)
}

/// Reads one HTTP/1.1 answer (with Content-Length): its status code and body.
pub async fn read_answer(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> anyhow::Result<(u16, Vec<u8>)> {
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end])?;
            let status: u16 = head.get(9..12).context("status line")?.parse()?;
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            let total = end + 4 + length;
            while buf.len() < total {
                read_more(stream, buf).await?;
            }
            let body = buf[end + 4..total].to_vec();
            buf.drain(..total);
            return Ok((status, body));
        }
        read_more(stream, buf).await?;
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<()> {
    let mut chunk = [0u8; 4096];
    let n = stream.read(&mut chunk).await?;
    anyhow::ensure!(n > 0, "connection closed");
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
