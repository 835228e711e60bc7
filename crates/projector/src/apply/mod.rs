//! Applying a batch of stream messages to the read models: one transaction holding the
//! read-model changes, the exactly-once markers (the invoice ledger's keys) and the checkpoint.

pub mod fold;
mod sql;

use std::collections::{HashMap, HashSet};

use sqlx::{Connection, PgConnection};

use crate::meta::Meta;
use crate::plan::{Decision, Invoice, customer_id};
use fold::{SalesDeltas, TicketRow};

/// Every batch transaction holds this advisory lock shared; `rebuild` takes it exclusively to
/// swap the rebuilt tables in, so no batch straddles the swap.
pub const SWAP_LOCK: i64 = 0x5348_4f57_5041_5353;

/// One message of the events stream, decided.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub meta: Meta,
    pub decision: Decision,
    pub body_sha256: String,
}

/// What became of a batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub applied: usize,
    pub duplicate: usize,
    pub skipped: usize,
    pub failed: usize,
    /// At or below the checkpoint: applied by an earlier batch, changed nothing.
    pub already: usize,
}

/// The processing result logged for one message.
#[derive(Debug)]
pub(crate) struct Outcome<'a> {
    pub meta: &'a Meta,
    pub outcome: &'static str,
    pub processing: &'static str,
    pub error: Option<String>,
    pub body_sha256: Option<&'a str>,
}

/// Applies a batch of the events stream, in stream order, exactly once.
pub async fn apply_events(
    conn: &mut PgConnection,
    stream: &str,
    batch: &[Incoming],
) -> Result<Tally, sqlx::Error> {
    let mut tx = conn.begin().await?;
    let checkpoint = sql::begin_batch(&mut tx, stream).await?;
    let mut tally = Tally::default();
    let fresh: Vec<&Incoming> = batch
        .iter()
        .filter(|m| {
            let new = m.meta.seq as i64 > checkpoint;
            tally.already += usize::from(!new);
            new
        })
        .collect();
    let Some(last) = fresh.iter().map(|m| m.meta.seq).max() else {
        tx.commit().await?;
        return Ok(tally);
    };

    let keys: Vec<String> = fresh
        .iter()
        .filter_map(|m| match &m.decision {
            Decision::Apply(inv) => Some(inv.key.clone()),
            _ => None,
        })
        .collect();
    let mut known = sql::processed(&mut tx, &keys).await?;

    let mut outcomes = Vec::with_capacity(fresh.len());
    let mut applied: Vec<(&Incoming, &Invoice)> = Vec::new();
    for m in &fresh {
        let (processing, error) = match &m.decision {
            Decision::Apply(inv) => match known.get(&inv.key) {
                // A replay of an applied event leaves its delivery logged as applied.
                Some(hash) if hash == &m.body_sha256 && m.meta.replay_of.is_some() => {
                    tally.duplicate += 1;
                    ("applied", None)
                }
                Some(hash) => {
                    tally.duplicate += 1;
                    (
                        "duplicate",
                        (hash != &m.body_sha256).then(|| conflict(hash)),
                    )
                }
                None => {
                    known.insert(inv.key.clone(), m.body_sha256.clone());
                    applied.push((m, inv));
                    tally.applied += 1;
                    ("applied", None)
                }
            },
            Decision::Test => {
                tally.applied += 1;
                ("applied", None)
            }
            Decision::Skip(why) => {
                tally.skipped += 1;
                ("skipped", Some(why.clone()))
            }
            Decision::Fail(why) => {
                tally.failed += 1;
                ("failed", Some(why.clone()))
            }
        };
        outcomes.push(Outcome {
            meta: &m.meta,
            outcome: "accepted",
            processing,
            error,
            body_sha256: Some(&m.body_sha256),
        });
    }

    if !applied.is_empty() {
        apply_invoices(&mut tx, &applied).await?;
    }
    sql::log_deliveries(&mut tx, &outcomes).await?;
    sql::end_batch(&mut tx, stream, last).await?;
    tx.commit().await?;
    Ok(tally)
}

fn conflict(applied_hash: &str) -> String {
    format!(
        "conflict: same idempotency key as an applied event with a different body (applied body sha256 {applied_hash})"
    )
}

async fn apply_invoices(
    tx: &mut PgConnection,
    applied: &[(&Incoming, &Invoice)],
) -> Result<(), sqlx::Error> {
    let ticket_keys: Vec<(String, String)> = applied
        .iter()
        .flat_map(|(_, inv)| {
            inv.tickets
                .iter()
                .map(|t| (inv.org_id.clone(), t.id.clone()))
        })
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut tickets: HashMap<(String, String), TicketRow> =
        sql::lock_tickets(tx, &ticket_keys).await?;

    let mut deltas = SalesDeltas::default();
    let mut orders: HashSet<(String, String)> = HashSet::new();
    let mut customers: HashSet<(String, String)> = HashSet::new();
    for (m, inv) in applied {
        let at = m.meta.received_at;
        fold::add_invoice_money(&mut deltas, inv, at);
        for t in &inv.tickets {
            fold::fold_ticket(&mut tickets, &mut deltas, inv, t, at);
        }
        orders.insert((inv.org_id.clone(), inv.transaction_id.clone()));
        if let Some(k) = &inv.customer_key {
            customers.insert((inv.org_id.clone(), k.clone()));
        }
    }
    for row in tickets.values() {
        orders.insert((row.org_id.clone(), row.transaction_id.clone()));
    }

    sql::insert_invoices(tx, applied).await?;
    sql::insert_items(tx, applied).await?;
    sql::upsert_tickets(tx, tickets.values()).await?;
    sql::upsert_shows(tx, applied).await?;
    sql::add_sales(tx, &deltas).await?;

    let orders: Vec<(String, String)> = orders.into_iter().collect();
    // An order may change hands (its customer is recomputed); the old customer changes too.
    customers.extend(sql::order_customers(tx, &orders).await?);
    sql::recompute_orders(tx, &orders).await?;
    let customers: Vec<(String, String, uuid::Uuid)> = customers
        .into_iter()
        .map(|(org, key)| {
            let id = customer_id(&org, &key);
            (org, key, id)
        })
        .collect();
    sql::recompute_customers(tx, &customers).await?;
    let keys: Vec<String> = applied.iter().map(|(_, inv)| inv.key.clone()).collect();
    sql::mark_conflicting_duplicates(tx, &keys).await?;
    Ok(())
}

/// Applies a batch of the deliveries stream (duplicate and rejected deliveries) to the log.
pub async fn apply_records(
    conn: &mut PgConnection,
    stream: &str,
    batch: &[Meta],
) -> Result<Tally, sqlx::Error> {
    let mut tx = conn.begin().await?;
    let checkpoint = sql::begin_batch(&mut tx, stream).await?;
    let mut tally = Tally::default();
    let fresh: Vec<&Meta> = batch.iter().filter(|m| m.seq as i64 > checkpoint).collect();
    tally.already = batch.len() - fresh.len();
    let Some(last) = fresh.iter().map(|m| m.seq).max() else {
        tx.commit().await?;
        return Ok(tally);
    };
    let keys: Vec<String> = fresh
        .iter()
        .filter_map(|m| m.idempotency_key.clone())
        .collect();
    let known = sql::processed(&mut tx, &keys).await?;
    let outcomes: Vec<Outcome> = fresh
        .iter()
        .map(|m| {
            let duplicate = m.outcome.as_deref() == Some("duplicate");
            let error = if duplicate {
                tally.duplicate += 1;
                match (
                    m.idempotency_key.as_ref().and_then(|k| known.get(k)),
                    &m.body_sha256,
                ) {
                    (Some(applied), Some(mine)) if applied != mine => Some(conflict(applied)),
                    _ => None,
                }
            } else {
                tally.skipped += 1;
                None
            };
            Outcome {
                meta: m,
                outcome: if duplicate { "duplicate" } else { "rejected" },
                processing: if duplicate { "duplicate" } else { "skipped" },
                error,
                body_sha256: m.body_sha256.as_deref(),
            }
        })
        .collect();
    sql::log_deliveries(&mut tx, &outcomes).await?;
    sql::end_batch(&mut tx, stream, last).await?;
    tx.commit().await?;
    Ok(tally)
}
