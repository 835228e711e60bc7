//! What a run must end in: every acknowledged delivery in the stream, every event applied
//! exactly once, and read models equal to those of a fault-free run of the same traffic.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt as _;
use sqlx::PgPool;

use crate::traffic::{Delivery, Expect, Ledger};

/// Waits until the projector has applied everything in both streams.
pub async fn caught_up(js: &jetstream::Context, pool: &PgPool, streams: [&str; 2]) -> Duration {
    let started = Instant::now();
    loop {
        let mut behind = false;
        for stream in streams {
            let last = last_seq(js, stream).await;
            let applied = checkpoint(pool, stream).await;
            behind |= last.is_none_or(|l| applied.is_none_or(|a| a < l));
        }
        if !behind {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the projector did not catch up in 3 minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The stream's last sequence, or `None` while NATS cannot say.
pub async fn last_seq(js: &jetstream::Context, stream: &str) -> Option<u64> {
    let mut s = js.get_stream(stream).await.ok()?;
    Some(s.info().await.ok()?.state.last_sequence)
}

/// The projector's checkpoint, or `None` while PostgreSQL cannot say.
pub async fn checkpoint(pool: &PgPool, stream: &str) -> Option<u64> {
    sqlx::query_scalar::<_, i64>(
        "SELECT COALESCE((SELECT last_seq FROM checkpoints WHERE stream = $1), 0)",
    )
    .bind(stream)
    .fetch_one(pool)
    .await
    .ok()
    .map(|s| s as u64)
}

/// How each stored event's key appears in the stream: key → messages.
pub async fn stream_keys(js: &jetstream::Context, stream: &str) -> HashMap<String, u64> {
    let s = js.get_stream(stream).await.unwrap();
    let consumer = s
        .create_consumer(pull::Config {
            ack_policy: jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .unwrap();
    let total = last_seq(js, stream).await.unwrap();
    let mut messages = consumer.messages().await.unwrap().take(total as usize);
    let mut keys = HashMap::new();
    while let Some(m) = messages.next().await {
        let m = m.unwrap();
        let key = m
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map(|v| v.as_str().to_owned())
            .expect("every event has a Nats-Msg-Id");
        *keys.entry(key).or_default() += 1;
    }
    keys
}

/// The exactly-once accounting of a run.
#[derive(Debug, Default)]
pub struct Accounting {
    /// Acknowledged deliveries whose event is not in the stream.
    pub lost_from_stream: u64,
    /// Good events in the stream the projector did not apply (no record, or pending or
    /// failed).
    pub not_applied: u64,
    /// Keys stored more than once in the stream, or applied more than once.
    pub applied_twice: u64,
    /// Signed poison: accepted and recorded `failed` or `skipped` with its error, or refused
    /// at the door and stored nowhere.
    pub poison_handled: u64,
    /// Signed poison not handled so: applied, unrecorded, or stored when it was refused.
    pub poison_mishandled: u64,
    /// Processing outcomes of the stream's events.
    pub processing: BTreeMap<String, u64>,
}

pub async fn account(
    js: &jetstream::Context,
    pool: &PgPool,
    events: &str,
    deliveries: &[Delivery],
    ledger: &Ledger,
) -> Accounting {
    let keys = stream_keys(js, events).await;
    let mut a = Accounting::default();
    let poison: std::collections::HashSet<&str> = deliveries
        .iter()
        .filter(|d| d.expect == Expect::Poison)
        .map(|d| d.key.as_str())
        .collect();
    for (i, d) in deliveries.iter().enumerate() {
        match d.expect {
            Expect::Refused(_) => {
                if !ledger.is_acknowledged(i) || keys.contains_key(&d.key) {
                    a.poison_mishandled += 1;
                } else {
                    a.poison_handled += 1;
                }
            }
            _ if ledger.is_acknowledged(i) && !keys.contains_key(&d.key) => {
                a.lost_from_stream += 1;
            }
            _ => {}
        }
    }
    a.applied_twice += keys.values().filter(|n| **n > 1).count() as u64;
    let total = last_seq(js, events).await.unwrap() as i64;
    let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT processing, idempotency_key, error FROM deliveries WHERE stream = $1",
    )
    .bind(events)
    .fetch_all(pool)
    .await
    .unwrap();
    let mut recorded = 0u64;
    for (processing, key, error) in &rows {
        recorded += 1;
        *a.processing.entry(processing.clone()).or_default() += 1;
        let is_poison = key.as_deref().is_some_and(|k| poison.contains(k));
        match (processing.as_str(), is_poison) {
            ("failed" | "skipped", true) if error.is_some() => a.poison_handled += 1,
            (_, true) => a.poison_mishandled += 1,
            ("applied" | "skipped", false) => {}
            _ => a.not_applied += 1,
        }
    }
    a.not_applied += (total as u64).saturating_sub(recorded);
    // A key applied twice would be recorded `applied` on two sequences.
    let twice: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT idempotency_key FROM deliveries
          WHERE stream = $1 AND processing = 'applied'
          GROUP BY 1 HAVING count(*) > 1) k",
    )
    .bind(events)
    .fetch_one(pool)
    .await
    .unwrap();
    a.applied_twice += twice as u64;
    a
}

/// Columns that depend on when things arrived, not on what arrived.
const WHEN: &[&str] = &[
    "received_at",
    "stream_seq",
    "delivery_id",
    "created_at",
    "updated_at",
    "first_seen_at",
    "last_seen_at",
    "first_seen",
    // Issue 17: when a ticket type's name was last received.
    "name_seen_at",
    "cancel_bucket",
    "bucket",
    "search_doc",
    // Issue 14: the flags and the health carry the deliveries (and times) that showed them,
    // and which of two like transfer sides is paired first depends on arrival order.
    "detected_at",
    "events_seen",
    "resend_before",
    "open_from",
    "last_accepted_at",
    "last_delivery_id",
    "matched",
];

/// Every read model, as sorted JSON rows without arrival times; the sales aggregates summed
/// over their time buckets. The delivery log and checkpoints record the run itself and are
/// left out.
pub async fn read_models(pool: &PgPool) -> BTreeMap<String, Vec<String>> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'
         AND tablename NOT IN ('_sqlx_migrations', 'deliveries', 'checkpoints') ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let drop = WHEN
        .iter()
        .map(|c| format!("'{c}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = BTreeMap::new();
    for table in tables {
        let sql = if table.starts_with("sales_") {
            let keys: Vec<String> = sqlx::query_scalar(
                "SELECT column_name::text FROM information_schema.columns
                 WHERE table_schema = 'public' AND table_name = $1
                   AND data_type = 'text' ORDER BY ordinal_position",
            )
            .bind(&table)
            .fetch_all(pool)
            .await
            .unwrap();
            let keys = keys.join(", ");
            format!(
                "SELECT to_jsonb(x)::text FROM (SELECT {keys}, sum(orders) AS orders,
                   sum(tickets) AS tickets, sum(gross_revenue) AS gross_revenue,
                   sum(net_sales) AS net_sales, sum(service_fees) AS service_fees,
                   sum(total_tax) AS total_tax, sum(discounts) AS discounts,
                   sum(refunds) AS refunds FROM {table} GROUP BY {keys}) x ORDER BY 1"
            )
        } else {
            format!("SELECT (to_jsonb(x) - ARRAY[{drop}])::text FROM {table} x ORDER BY 1")
        };
        let rows: Vec<String> = sqlx::query_scalar(&sql).fetch_all(pool).await.unwrap();
        out.insert(table, rows);
    }
    out
}

/// The tables that differ, each with a row of each side that the other lacks.
pub fn differences(
    faulty: &BTreeMap<String, Vec<String>>,
    reference: &BTreeMap<String, Vec<String>>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (table, rows) in reference {
        let theirs = faulty.get(table).cloned().unwrap_or_default();
        if &theirs == rows {
            continue;
        }
        let only_ref = rows.iter().find(|r| !theirs.contains(r));
        let only_faulty = theirs.iter().find(|r| !rows.contains(r));
        out.push(format!(
            "{table}: {} rows vs {} in the fault-free run; only fault-free: {only_ref:?}; only faulty: {only_faulty:?}",
            theirs.len(),
            rows.len()
        ));
    }
    out
}
