//! The erasure benchmark: one customer erased among the api benchmark's 1,000,000 customers
//! and 5,000,000 tickets (its database, loaded if missing), with their events in the stream,
//! while a real projector runs; and, in the same run on the same database, the projector's
//! catch-up rate, to set the erasure's time beside.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use showpass_core::nats::{self, NatsConfig};
use showpass_payload::signature;
use showpass_projector::erase::{EraseOptions, EraseRequest, erase};
use showpass_simulate::{SimConfig, Simulator};
use sqlx::{Connection, PgConnection, Row};

use crate::projector::{send_all, wait_for_checkpoint};
use crate::services;

#[derive(clap::Args)]
pub struct Args {
    /// Simulated deliveries for the catch-up measured beside the erasure.
    #[arg(long, default_value_t = 20_000)]
    count: usize,
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// The api benchmark's database (loaded if missing: about 12 minutes).
    #[arg(
        long,
        default_value = "postgres://postgres@127.0.0.1:5432/showpass_bench_api"
    )]
    database_url: String,
    #[arg(long)]
    showpass_bin: Option<PathBuf>,
}

/// The simulator's organizations (`1` to `3`): removed from the database afterwards, so the
/// api benchmark's data stays as loaded.
const SIM_ORGS: [&str; 3] = ["1", "2", "3"];

pub async fn run(args: Args) -> anyhow::Result<()> {
    let database = showpass_store::DatabaseUrl::parse(&args.database_url)?;
    showpass_store::migrate(&database).await?;
    let pool = showpass_store::connect(&database, 2).await?;
    crate::api::load(&pool, false).await?;

    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let prefix = format!("bencherase{run_id}");
    let secret = format!("bench-{run_id}");
    let bin = args.showpass_bin.as_deref();
    let mut nats_config = NatsConfig::local(prefix.clone());
    nats_config.url = args.nats_url.parse()?;
    let (mut ingest, addr) =
        services::spawn_ingest(bin, &prefix, &secret, &args.nats_url, "").await?;
    let mut projector =
        services::spawn_projector(bin, &prefix, &args.database_url, &args.nats_url, &[])?;
    let client = nats::connect(&nats_config, "bench").await?;
    let js = nats::jetstream(client, Duration::from_secs(10));

    let result = async {
        let mut conn = PgConnection::connect(&args.database_url).await?;
        let counts = sqlx::query("SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM tickets)")
            .fetch_one(&mut conn)
            .await?;
        println!(
            "data: {} customers, {} tickets",
            counts.get::<i64, _>(0),
            counts.get::<i64, _>(1)
        );

        // 1. Catch-up, on this database.
        print!("catch-up: {} simulated deliveries through ingest... ", args.count);
        std::io::stdout().flush()?;
        let sim = Simulator::new(SimConfig { seed: 11, ..SimConfig::default() });
        let deliveries: Vec<(String, Vec<u8>)> = sim
            .take(args.count)
            .map(|d| (signature::sign(secret.as_bytes(), &d.id), d.body))
            .collect();
        let started = Instant::now();
        send_all(addr, Arc::new(deliveries), 64).await?;
        let events = js
            .get_stream(nats_config.events_stream())
            .await?
            .info()
            .await?
            .state
            .last_sequence;
        wait_for_checkpoint(&mut conn, &nats_config.events_stream(), events, Duration::from_secs(900)).await?;
        let catch_up = started.elapsed();
        let rate = events as f64 / catch_up.as_secs_f64();
        println!("{events} events applied in {:.2}s: {rate:.0} events/s", catch_up.as_secs_f64());

        // 2. A customer of the loaded data with three orders, their events in the stream
        //    (Showpass resending their purchases: the stored messages carry their data).
        let customer = sqlx::query(
            "SELECT c.org_id, c.email, c.name FROM customers c
             WHERE c.org_id = '1000' AND c.orders_count = 3
               AND NOT EXISTS (SELECT 1 FROM erasures e WHERE e.org_id = c.org_id
                   AND e.email_sha256 = encode(sha256(convert_to(c.email, 'UTF8')), 'hex'))
             ORDER BY c.id LIMIT 1",
        )
        .fetch_one(&mut conn)
        .await?;
        let (org, email, name): (String, String, Option<String>) =
            (customer.get(0), customer.get(1), customer.get(2));
        let invoices: Vec<(String, String)> = sqlx::query_as(
            "SELECT idempotency_key, transaction_id FROM invoices WHERE org_id = $1 AND customer_key = $2",
        )
        .bind(&org)
        .bind(&email)
        .fetch_all(&mut conn)
        .await?;
        let theirs: Vec<(String, Vec<u8>)> = invoices
            .iter()
            .map(|(key, txn)| {
                let ids = showpass_payload::samples::SampleIds {
                    webhook_event_uuid: key,
                    transaction_id: txn,
                    organization_id: &org,
                };
                let mut v = showpass_payload::samples::sample(
                    showpass_payload::samples::SampleKind::Purchase,
                    &ids,
                );
                v["data"]["customer_email"] = json!(email);
                v["data"]["customer_name"] = json!(name);
                let body = serde_json::to_vec(&v).expect("JSON");
                (signature::sign(secret.as_bytes(), txn), body)
            })
            .collect();
        send_all(addr, Arc::new(theirs), 1).await?;
        let events = js.get_stream(nats_config.events_stream()).await?.info().await?.state.last_sequence;
        wait_for_checkpoint(&mut conn, &nats_config.events_stream(), events, Duration::from_secs(60)).await?;

        // 3. The erasure, timed, with the projector running.
        let request = EraseRequest {
            org_id: Some(org.clone()),
            email: Some(email.clone()),
            customer_id: None,
            requested_by: "bench".into(),
        };
        let started = Instant::now();
        let report = erase(&js, &mut conn, &nats_config, &request, EraseOptions::default()).await?;
        let took = started.elapsed();
        println!();
        println!("| figure | value |");
        println!("|---|---:|");
        println!("| erasure of one customer ({} orders, {} invoices) | {:.1} ms |", report.rows.orders, report.rows.invoices, took.as_secs_f64() * 1000.0);
        println!("| rows changed | {} customers, {} orders, {} invoices, {} tickets, {} search words, {} deliveries |",
            report.rows.customers, report.rows.orders, report.rows.invoices, report.rows.tickets, report.rows.search_words, report.rows.deliveries);
        println!("| messages replaced | {} events, {} delivery records ({} originals deleted) |", report.messages.events, report.messages.deliveries, report.messages.deleted);
        println!("| projector catch-up on the same database | {rate:.0} events/s |");
        println!("| the erasure, in catch-up time | {:.0} events |", took.as_secs_f64() * rate);
        let again = Instant::now();
        let second = erase(&js, &mut conn, &nats_config, &request, EraseOptions::default()).await?;
        println!("| the same erasure again (nothing to change: {}) | {:.1} ms |", second.rows == Default::default() && second.messages == Default::default(), again.elapsed().as_secs_f64() * 1000.0);
        anyhow::Ok(())
    }
    .await;

    services::stop(&mut projector).await;
    services::stop(&mut ingest).await;
    for s in nats_config.all_streams() {
        let _ = js.delete_stream(s).await;
    }
    let mut conn = PgConnection::connect(&args.database_url).await?;
    for table in [
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
        "sales_by_ticket_type_daily",
        "sales_by_event_daily",
        "sales_by_order_attrs_daily",
        "sales_by_ticket_type_monthly",
        "sales_by_event_monthly",
        "sales_by_order_attrs_monthly",
        "deliveries",
        "transfer_sides",
        "gaps",
        "anomalies",
    ] {
        sqlx::query(&format!("DELETE FROM {table} WHERE org_id = ANY($1)"))
            .bind(&SIM_ORGS[..])
            .execute(&mut conn)
            .await?;
    }
    sqlx::query("DELETE FROM deliveries WHERE stream LIKE $1")
        .bind(format!(
            "{}%",
            nats_config.events_stream().trim_end_matches("_EVENTS")
        ))
        .execute(&mut conn)
        .await?;
    sqlx::query("DELETE FROM checkpoints WHERE stream LIKE $1")
        .bind(format!(
            "{}%",
            nats_config.events_stream().trim_end_matches("_EVENTS")
        ))
        .execute(&mut conn)
        .await?;
    result
}
