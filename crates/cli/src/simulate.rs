//! `showpass simulate`: Showpass-like traffic, signed, at a chosen rate.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use showpass_core::nats::parse_duration;
use showpass_payload::signature;
use showpass_simulate::{SimConfig, Simulator};
use tokio::sync::Mutex;

use crate::http;
use crate::send::Target;

#[derive(Args, Debug)]
pub struct SimulateArgs {
    #[command(flatten)]
    pub target: Target,
    /// Deliveries per second (0: as fast as the connections allow).
    #[arg(long, default_value_t = 50)]
    pub rate: u64,
    /// Stop after this long.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Stop after this many deliveries (whichever comes first).
    #[arg(long)]
    pub count: Option<u64>,
    /// Connections sending at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// The same seed sends the same traffic.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value_t = 3)]
    pub organizations: usize,
    #[arg(long, default_value_t = 2_000)]
    pub customers: usize,
}

pub async fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let secret = args.target.secret()?;
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be positive");
    let sim = Arc::new(Mutex::new(Simulator::new(SimConfig {
        seed: args.seed,
        organizations: args.organizations.max(1),
        customers: args.customers.max(1),
        ..SimConfig::default()
    })));
    let limit = args.count.unwrap_or(u64::MAX);
    let started = Instant::now();
    let deadline = started + args.duration;
    let interval = (args.rate > 0)
        .then(|| Duration::from_secs_f64(args.concurrency as f64 / args.rate as f64));
    let statuses = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let bar = match args.count {
        Some(n) => crate::progress::bar("deliveries", n),
        None => crate::progress::counter("deliveries"),
    };
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..args.concurrency {
        let (sim, statuses, url, secret, bar) = (
            sim.clone(),
            statuses.clone(),
            args.target.url.clone(),
            secret.clone(),
            bar.clone(),
        );
        workers.spawn(async move {
            // Each worker paces itself: together they send `rate` per second.
            let mut next = Instant::now()
                + interval.map_or(Duration::ZERO, |i| {
                    i.mul_f64(w as f64 / args.concurrency as f64)
                });
            loop {
                let delivery = {
                    let mut sim = sim.lock().await;
                    if sim.ledger.deliveries >= limit || Instant::now() >= deadline {
                        break;
                    }
                    sim.next().expect("the simulator never ends")
                };
                if let Some(i) = interval {
                    tokio::time::sleep_until(next.into()).await;
                    next += i;
                }
                let sig = signature::sign(secret.as_bytes(), &delivery.id);
                let headers = [
                    ("content-type", "application/json"),
                    ("x-showpass-signature", sig.as_str()),
                ];
                let status =
                    match http::request("POST", &url, &headers, Bytes::from(delivery.body)).await {
                        Ok((s, _)) => s.as_u16().to_string(),
                        Err(e) => format!("error: {e:#}"),
                    };
                *statuses.lock().await.entry(status).or_default() += 1;
                bar.inc(1);
            }
        });
    }
    while workers.join_next().await.is_some() {}
    bar.finish();
    let elapsed = started.elapsed();
    let ledger = sim.lock().await.ledger.clone();
    let statuses = statuses.lock().await.clone();
    let report = serde_json::json!({
        "elapsed_seconds": elapsed.as_secs_f64(),
        "deliveries": ledger.deliveries,
        "answers": statuses,
        "resends": ledger.resends,
        "by_event_type": ledger.by_type,
        "expected": {
            "orders": ledger.orders,
            "tickets_sold_not_refunded": ledger.tickets,
            "net_sales": ledger.net_sales.iter().map(|(c, v)| (c.clone(), v.round_dp(2).to_string())).collect::<BTreeMap<_, _>>(),
            "refunds": ledger.refunds.iter().map(|(c, v)| (c.clone(), v.round_dp(2).to_string())).collect::<BTreeMap<_, _>>(),
        },
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
