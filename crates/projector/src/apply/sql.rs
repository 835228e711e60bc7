//! The statements of a batch. Each writes many rows at once from arrays (`UNNEST`), so a batch
//! costs a fixed number of round trips whatever its size.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{PgConnection, Row};

use super::fold::{Acc, Cell, CellKey, Overflow, SalesDeltas, TicketRow};
use super::{ApplyError, Incoming, Outcome, SWAP_LOCK, Waiting};
use crate::plan::{Invoice, customer_id};

/// Starts a batch: takes the swap lock shared, and the stream's checkpoint row, so batches of
/// one stream never overlap.
///
/// The commit is asynchronous: a crash of PostgreSQL may lose the last batches, but never half
/// of one (the checkpoint commits with them), and a new leader always restarts the stream
/// from the checkpoint, so what was lost is projected again from JetStream.
pub async fn begin_batch(tx: &mut PgConnection, stream: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT pg_advisory_xact_lock_shared($1)")
        .bind(SWAP_LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO checkpoints (stream, last_seq) VALUES ($1, 0) ON CONFLICT DO NOTHING")
        .bind(stream)
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT last_seq FROM checkpoints WHERE stream = $1 FOR UPDATE")
        .bind(stream)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Moves the checkpoint, in the batch's transaction.
pub async fn end_batch(tx: &mut PgConnection, stream: &str, last: u64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE checkpoints SET last_seq = GREATEST(last_seq, $2) WHERE stream = $1")
        .bind(stream)
        .bind(last as i64)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// What the ledger holds of an applied key.
#[derive(Debug, Clone)]
pub struct Processed {
    pub body_sha256: String,
    /// The stream sequence of the message that applied it.
    pub seq: i64,
    pub delivery_id: Option<uuid::Uuid>,
}

/// The ledger's entries of the keys already applied.
pub async fn processed(
    tx: &mut PgConnection,
    keys: &[String],
) -> Result<HashMap<String, Processed>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query(
        "SELECT idempotency_key, body_sha256, stream_seq, delivery_id FROM invoices
         WHERE idempotency_key = ANY($1)",
    )
    .bind(keys)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let p = Processed {
                body_sha256: r.get(1),
                seq: r.get(2),
                delivery_id: r.get(3),
            };
            (r.get(0), p)
        })
        .collect())
}

/// Which of these (sequence, delivery) pairs of `stream` the delivery log already records:
/// the ledger of the events that change no read model (tests, unknown types, failures). A
/// row at that sequence for another delivery (a stream renumbered since) does not count.
pub async fn logged_seqs(
    tx: &mut PgConnection,
    stream: &str,
    seqs: &[(i64, uuid::Uuid)],
) -> Result<HashSet<i64>, sqlx::Error> {
    if seqs.is_empty() {
        return Ok(HashSet::new());
    }
    let (seq, id): (Vec<i64>, Vec<uuid::Uuid>) = seqs.iter().copied().unzip();
    sqlx::query_scalar(
        "SELECT d.stream_seq FROM deliveries d
         WHERE d.stream = $1
           AND (d.stream_seq, d.id) IN (SELECT * FROM UNNEST($2::int8[], $3::uuid[]))",
    )
    .bind(stream)
    .bind(seq)
    .bind(id)
    .fetch_all(&mut *tx)
    .await
    .map(|v| v.into_iter().collect())
}

/// The currency of each order's first purchase or transfer (in stream order), for the orders
/// that have one.
pub async fn order_currencies(
    tx: &mut PgConnection,
    orders: &[(String, String)],
) -> Result<HashMap<(String, String), String>, sqlx::Error> {
    if orders.is_empty() {
        return Ok(HashMap::new());
    }
    let (orgs, txns): (Vec<&str>, Vec<&str>) =
        orders.iter().map(|(o, t)| (o.as_str(), t.as_str())).unzip();
    let rows = sqlx::query(
        "SELECT DISTINCT ON (i.org_id, i.transaction_id) i.org_id, i.transaction_id, i.currency
         FROM invoices i
         WHERE (i.org_id, i.transaction_id) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))
           AND i.event_type IN ('invoice.purchase', 'invoice.transfer')
         ORDER BY i.org_id, i.transaction_id, i.stream_seq",
    )
    .bind(orgs)
    .bind(txns)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect())
}

/// The money of the refunds and voids of these orders still waiting for their order's
/// currency, summed per sales cell as the fold would (refunds subtract the absolute value of
/// each line, or of the invoice when it has none), so however many wait, a few rows come back.
pub async fn waiting_sales(
    tx: &mut PgConnection,
    orders: &[(String, String)],
) -> Result<Waiting, sqlx::Error> {
    if orders.is_empty() {
        return Ok(Waiting::new());
    }
    let (orgs, txns): (Vec<&str>, Vec<&str>) =
        orders.iter().map(|(o, t)| (o.as_str(), t.as_str())).unzip();
    let rows = sqlx::query(
        "SELECT i.org_id, i.transaction_id, COALESCE(l.event_id, ''), COALESCE(l.ticket_type_id, ''),
             date_bin('15 minutes', i.received_at, TIMESTAMPTZ '1970-01-01 00:00:00+00'),
             COALESCE(i.payment_type, ''),
             SUM(-ABS(COALESCE(l.gross_revenue, i.gross_revenue))),
             SUM(-ABS(COALESCE(l.net_sales, i.net_sales))),
             SUM(-ABS(COALESCE(l.service_fees, i.service_fees))),
             SUM(-ABS(COALESCE(l.total_tax, i.total_tax))),
             SUM(-ABS(COALESCE(l.discounts, i.discounts))),
             SUM(ABS(COALESCE(l.net_sales, i.net_sales)))
         FROM invoices i
         LEFT JOIN invoice_items l ON l.idempotency_key = i.idempotency_key
         WHERE (i.org_id, i.transaction_id) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))
           AND i.booked_currency IS NULL
           AND i.event_type IN ('invoice.refund', 'invoice.void')
         GROUP BY 1, 2, 3, 4, 5, 6",
    )
    .bind(orgs)
    .bind(txns)
    .fetch_all(&mut *tx)
    .await?;
    let mut out = Waiting::new();
    for r in rows {
        let cell = CellKey {
            event_id: r.get(2),
            ticket_type_id: r.get(3),
            bucket: r.get(4),
            payment_type: r.get(5),
        };
        let acc = Acc {
            gross_revenue: r.get(6),
            net_sales: r.get(7),
            service_fees: r.get(8),
            total_tax: r.get(9),
            discounts: r.get(10),
            refunds: r.get(11),
            ..Acc::default()
        };
        out.entry((r.get(0), r.get(1)))
            .or_default()
            .push((cell, acc));
    }
    Ok(out)
}

/// Records the currency the stored waiting refunds of these orders are now booked in.
pub async fn book_waiting(
    tx: &mut PgConnection,
    booked: &[((String, String), String)],
) -> Result<(), sqlx::Error> {
    if booked.is_empty() {
        return Ok(());
    }
    let orgs: Vec<&str> = booked.iter().map(|((o, _), _)| o.as_str()).collect();
    let txns: Vec<&str> = booked.iter().map(|((_, t), _)| t.as_str()).collect();
    let currencies: Vec<&str> = booked.iter().map(|(_, c)| c.as_str()).collect();
    sqlx::query(
        "UPDATE invoices i SET booked_currency = b.currency
         FROM UNNEST($1::text[], $2::text[], $3::text[]) AS b(org_id, transaction_id, currency)
         WHERE i.org_id = b.org_id AND i.transaction_id = b.transaction_id
           AND i.booked_currency IS NULL
           AND i.event_type IN ('invoice.refund', 'invoice.void')",
    )
    .bind(orgs)
    .bind(txns)
    .bind(currencies)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

pub async fn insert_invoices(
    tx: &mut PgConnection,
    applied: &[(&Incoming, &Invoice)],
    booked: &HashMap<String, Option<String>>,
) -> Result<(), sqlx::Error> {
    let n = applied.len();
    let (mut key, mut org, mut txn, mut et, mut it) = (vec![], vec![], vec![], vec![], vec![]);
    let (mut sha, mut bcur) = (vec![], vec![]);
    let (mut at, mut seq, mut did, mut cid, mut ckey) = (vec![], vec![], vec![], vec![], vec![]);
    let (mut cname, mut cphone, mut sub, mut pay, mut cur) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut money: [Vec<Decimal>; 7] = Default::default();
    for (m, i) in applied {
        key.push(i.key.as_str());
        sha.push(m.body_sha256.as_str());
        org.push(i.org_id.as_str());
        txn.push(i.transaction_id.as_str());
        et.push(i.kind.event_type());
        it.push(i.invoice_type.as_deref());
        at.push(m.meta.received_at);
        seq.push(i64::try_from(m.meta.seq).unwrap_or(i64::MAX));
        did.push(m.meta.delivery_id);
        cid.push(i.customer_key.as_deref().map(|k| customer_id(&i.org_id, k)));
        ckey.push(i.customer_key.as_deref());
        cname.push(i.customer_name.as_deref());
        cphone.push(i.customer_phone.as_deref());
        sub.push(i.subscribe_to_venue);
        pay.push(i.payment_type.as_deref());
        cur.push(i.currency.as_str());
        bcur.push(booked.get(&i.key).cloned().flatten());
        let m = &i.money;
        for (slot, v) in money.iter_mut().zip([
            m.discounts,
            m.net_sales,
            m.service_fees,
            m.account_credit_applied,
            m.gross_revenue,
            m.organizer_fees,
            m.total_tax,
        ]) {
            slot.push(v);
        }
    }
    debug_assert_eq!(key.len(), n);
    let [d, ns, sf, aca, gr, of, tt] = money;
    sqlx::query(
        "INSERT INTO invoices (idempotency_key, org_id, transaction_id, event_type, invoice_type,
             received_at, stream_seq, delivery_id, customer_id, customer_key, customer_name,
             customer_phone, subscribe_to_venue, payment_type, currency, discounts, net_sales,
             service_fees, account_credit_applied, gross_revenue, organizer_fees, total_tax,
             body_sha256, booked_currency)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
             $6::timestamptz[], $7::int8[], $8::uuid[], $9::uuid[], $10::text[], $11::text[],
             $12::text[], $13::bool[], $14::text[], $15::text[], $16::numeric[], $17::numeric[],
             $18::numeric[], $19::numeric[], $20::numeric[], $21::numeric[], $22::numeric[],
             $23::text[], $24::text[])",
    )
    .bind(key)
    .bind(org)
    .bind(txn)
    .bind(et)
    .bind(it)
    .bind(at)
    .bind(seq)
    .bind(did)
    .bind(cid)
    .bind(ckey)
    .bind(cname)
    .bind(cphone)
    .bind(sub)
    .bind(pay)
    .bind(cur)
    .bind(d)
    .bind(ns)
    .bind(sf)
    .bind(aca)
    .bind(gr)
    .bind(of)
    .bind(tt)
    .bind(sha)
    .bind(bcur)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

pub async fn insert_items(
    tx: &mut PgConnection,
    applied: &[(&Incoming, &Invoice)],
) -> Result<(), sqlx::Error> {
    let (mut key, mut line, mut org, mut txn, mut iid, mut ity) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut qty, mut ev, mut evn, mut tt, mut ttn, mut pid, mut pn) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut money: [Vec<Decimal>; 5] = Default::default();
    for (_, inv) in applied {
        for (n, item) in inv.items.iter().enumerate() {
            key.push(inv.key.as_str());
            line.push(i32::try_from(n).unwrap_or(i32::MAX));
            org.push(inv.org_id.as_str());
            txn.push(inv.transaction_id.as_str());
            iid.push(item.item_id.as_deref());
            ity.push(item.item_type.as_deref());
            qty.push(item.quantity);
            ev.push(item.event_id.as_deref());
            evn.push(item.event_name.as_deref());
            tt.push(item.ticket_type_id.as_deref());
            ttn.push(item.ticket_type_name.as_deref());
            pid.push(item.product_id.as_deref());
            pn.push(item.product_name.as_deref());
            let m = &item.money;
            for (slot, v) in money.iter_mut().zip([
                m.discounts,
                m.net_sales,
                m.service_fees,
                m.gross_revenue,
                m.total_tax,
            ]) {
                slot.push(v);
            }
        }
    }
    if key.is_empty() {
        return Ok(());
    }
    let [d, ns, sf, gr, tax] = money;
    sqlx::query(
        "INSERT INTO invoice_items (idempotency_key, line_no, org_id, transaction_id, item_id,
             invoice_item_type, quantity, event_id, event_name, ticket_type_id, ticket_type_name,
             product_id, product_name, discounts, net_sales, service_fees, gross_revenue, total_tax)
         SELECT * FROM UNNEST($1::text[], $2::int4[], $3::text[], $4::text[], $5::text[],
             $6::text[], $7::numeric[], $8::text[], $9::text[], $10::text[], $11::text[],
             $12::text[], $13::text[], $14::numeric[], $15::numeric[], $16::numeric[],
             $17::numeric[], $18::numeric[])",
    )
    .bind(key)
    .bind(line)
    .bind(org)
    .bind(txn)
    .bind(iid)
    .bind(ity)
    .bind(qty)
    .bind(ev)
    .bind(evn)
    .bind(tt)
    .bind(ttn)
    .bind(pid)
    .bind(pn)
    .bind(d)
    .bind(ns)
    .bind(sf)
    .bind(gr)
    .bind(tax)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

const TICKET_COLUMNS: &str = "org_id, id, transaction_id, event_id, event_name, ticket_type_id,
    ticket_type_name, barcode, status, status_rank, name_on_ticket, email_on_ticket,
    created_by_transfer, sold, cancelled, cancel_bucket, cancel_payment_type, cancel_currency,
    updated_at";

/// Loads (and locks) the stored rows of the tickets a batch touches.
pub async fn lock_tickets(
    tx: &mut PgConnection,
    keys: &[(String, String)],
) -> Result<HashMap<(String, String), TicketRow>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let (orgs, ids): (Vec<&str>, Vec<&str>) =
        keys.iter().map(|(o, i)| (o.as_str(), i.as_str())).unzip();
    let rows = sqlx::query(&format!(
        "SELECT {TICKET_COLUMNS} FROM tickets
         WHERE (org_id, id) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))
         ORDER BY org_id, id FOR UPDATE"
    ))
    .bind(orgs)
    .bind(ids)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let cancel_cell = match (
                r.get::<Option<DateTime<Utc>>, _>(15),
                r.get::<Option<String>, _>(16),
                r.get::<Option<String>, _>(17),
            ) {
                (Some(b), Some(p), Some(c)) => Some((b, p, c)),
                _ => None,
            };
            let row = TicketRow {
                org_id: r.get(0),
                id: r.get(1),
                transaction_id: r.get(2),
                event_id: r.get(3),
                event_name: r.get(4),
                ticket_type_id: r.get(5),
                ticket_type_name: r.get(6),
                barcode: r.get(7),
                status: r.get(8),
                status_rank: r.get(9),
                name_on_ticket: r.get(10),
                email_on_ticket: r.get(11),
                created_by_transfer: r.get(12),
                sold: r.get(13),
                cancelled: r.get(14),
                cancel_cell,
                updated_at: r.get(18),
            };
            ((row.org_id.clone(), row.id.clone()), row)
        })
        .collect())
}

pub async fn upsert_tickets<'a>(
    tx: &mut PgConnection,
    rows: impl Iterator<Item = &'a TicketRow>,
) -> Result<(), sqlx::Error> {
    let mut rows: Vec<&TicketRow> = rows.collect();
    if rows.is_empty() {
        return Ok(());
    }
    // A stable order keeps concurrent writers from deadlocking.
    rows.sort_by(|a, b| (&a.org_id, &a.id).cmp(&(&b.org_id, &b.id)));
    let col = |f: fn(&TicketRow) -> Option<&str>| rows.iter().map(|r| f(r)).collect::<Vec<_>>();
    let cancel = |f: fn(&(DateTime<Utc>, String, String)) -> String| {
        rows.iter()
            .map(|r| r.cancel_cell.as_ref().map(f))
            .collect::<Vec<_>>()
    };
    sqlx::query(&format!(
        "INSERT INTO tickets ({TICKET_COLUMNS})
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
             $6::text[], $7::text[], $8::text[], $9::text[], $10::int4[], $11::text[], $12::text[],
             $13::bool[], $14::bool[], $15::bool[], $16::timestamptz[], $17::text[], $18::text[],
             $19::timestamptz[])
         ON CONFLICT (org_id, id) DO UPDATE SET
             transaction_id = EXCLUDED.transaction_id, event_id = EXCLUDED.event_id,
             event_name = EXCLUDED.event_name, ticket_type_id = EXCLUDED.ticket_type_id,
             ticket_type_name = EXCLUDED.ticket_type_name, barcode = EXCLUDED.barcode,
             status = EXCLUDED.status, status_rank = EXCLUDED.status_rank,
             name_on_ticket = EXCLUDED.name_on_ticket, email_on_ticket = EXCLUDED.email_on_ticket,
             created_by_transfer = EXCLUDED.created_by_transfer, sold = EXCLUDED.sold,
             cancelled = EXCLUDED.cancelled, cancel_bucket = EXCLUDED.cancel_bucket,
             cancel_payment_type = EXCLUDED.cancel_payment_type,
             cancel_currency = EXCLUDED.cancel_currency, updated_at = EXCLUDED.updated_at"
    ))
    .bind(col(|r| Some(&r.org_id)))
    .bind(col(|r| Some(&r.id)))
    .bind(col(|r| Some(&r.transaction_id)))
    .bind(col(|r| r.event_id.as_deref()))
    .bind(col(|r| r.event_name.as_deref()))
    .bind(col(|r| r.ticket_type_id.as_deref()))
    .bind(col(|r| r.ticket_type_name.as_deref()))
    .bind(col(|r| r.barcode.as_deref()))
    .bind(col(|r| Some(&r.status)))
    .bind(rows.iter().map(|r| r.status_rank).collect::<Vec<_>>())
    .bind(col(|r| r.name_on_ticket.as_deref()))
    .bind(col(|r| r.email_on_ticket.as_deref()))
    .bind(
        rows.iter()
            .map(|r| r.created_by_transfer)
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.sold).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.cancelled).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.cancel_cell.as_ref().map(|c| c.0))
            .collect::<Vec<_>>(),
    )
    .bind(cancel(|c| c.1.clone()))
    .bind(cancel(|c| c.2.clone()))
    .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A show's name, start, end and first sighting.
type Show<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    DateTime<Utc>,
);

fn see<'a>(
    shows: &mut HashMap<(&'a str, &'a str), Show<'a>>,
    org: &'a str,
    event: Option<&'a str>,
    name: Option<&'a str>,
    starts: Option<&'a str>,
    ends: Option<&'a str>,
    at: DateTime<Utc>,
) {
    if let Some(e) = event {
        let s = shows.entry((org, e)).or_insert((None, None, None, at));
        s.0 = s.0.or(name);
        s.1 = s.1.or(starts);
        s.2 = s.2.or(ends);
        s.3 = s.3.min(at);
    }
}

/// Records the Showpass events (shows) a batch mentions.
pub async fn upsert_shows(
    tx: &mut PgConnection,
    applied: &[(&Incoming, &Invoice)],
) -> Result<(), sqlx::Error> {
    let mut shows: HashMap<(&str, &str), Show> = HashMap::new();
    for (m, inv) in applied {
        let at = m.meta.received_at;
        for t in &inv.tickets {
            see(
                &mut shows,
                &inv.org_id,
                t.event_id.as_deref(),
                t.event_name.as_deref(),
                t.event_starts_on.as_deref(),
                t.event_ends_on.as_deref(),
                at,
            );
        }
        for i in &inv.items {
            see(
                &mut shows,
                &inv.org_id,
                i.event_id.as_deref(),
                i.event_name.as_deref(),
                None,
                None,
                at,
            );
        }
    }
    if shows.is_empty() {
        return Ok(());
    }
    let mut shows: Vec<_> = shows.into_iter().collect();
    shows.sort_by(|a, b| a.0.cmp(&b.0));
    sqlx::query(
        "INSERT INTO shows (org_id, event_id, name, starts_on, ends_on, first_seen)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
         ON CONFLICT (org_id, event_id) DO UPDATE SET
             name = COALESCE(shows.name, EXCLUDED.name),
             starts_on = COALESCE(shows.starts_on, EXCLUDED.starts_on),
             ends_on = COALESCE(shows.ends_on, EXCLUDED.ends_on),
             first_seen = LEAST(shows.first_seen, EXCLUDED.first_seen)",
    )
    .bind(shows.iter().map(|s| s.0 .0).collect::<Vec<_>>())
    .bind(shows.iter().map(|s| s.0 .1).collect::<Vec<_>>())
    .bind(shows.iter().map(|s| s.1 .0).collect::<Vec<_>>())
    .bind(shows.iter().map(|s| s.1 .1).collect::<Vec<_>>())
    .bind(shows.iter().map(|s| s.1 .2).collect::<Vec<_>>())
    .bind(shows.iter().map(|s| s.1 .3).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Adds the batch's sales deltas to the three aggregate tables and their daily tiers.
pub async fn add_sales(tx: &mut PgConnection, deltas: &SalesDeltas) -> Result<(), ApplyError> {
    let tables: [(&str, &[&str], &HashMap<Cell, Acc>); 3] = [
        (
            "sales_by_ticket_type",
            &["org_id", "event_id", "ticket_type_id"],
            &deltas.by_ticket_type,
        ),
        ("sales_by_event", &["org_id", "event_id"], &deltas.by_event),
        ("sales_by_order_attrs", &["org_id"], &deltas.by_order_attrs),
    ];
    for (table, keys, cells) in tables {
        add_sales_table(tx, table, keys, cells).await?;
        add_sales_table(tx, &format!("{table}_daily"), keys, &daily(cells)?).await?;
    }
    Ok(())
}

/// The cells rolled up to whole UTC days.
fn daily(cells: &HashMap<Cell, Acc>) -> Result<HashMap<Cell, Acc>, Overflow> {
    let mut days: HashMap<Cell, Acc> = HashMap::with_capacity(cells.len());
    for (cell, acc) in cells {
        let day = Cell {
            bucket: super::fold::utc_day(cell.bucket),
            ..cell.clone()
        };
        days.entry(day).or_default().add(acc)?;
    }
    Ok(days)
}

async fn add_sales_table(
    tx: &mut PgConnection,
    table: &str,
    keys: &[&str],
    cells: &HashMap<Cell, Acc>,
) -> Result<(), sqlx::Error> {
    if cells.is_empty() {
        return Ok(());
    }
    let mut cells: Vec<(&Cell, &Acc)> = cells.iter().collect();
    cells.sort_by(|a, b| a.0.cmp(b.0));
    let key_cols = keys.join(", ");
    let key_params: Vec<String> = (1..=keys.len()).map(|i| format!("${i}::text[]")).collect();
    let n = keys.len();
    let p = |k: usize| n + k;
    let sql = format!(
        "INSERT INTO {table} ({key_cols}, bucket, payment_type, currency, orders, tickets,
             gross_revenue, net_sales, service_fees, total_tax, discounts, refunds)
         SELECT * FROM UNNEST({}, ${}::timestamptz[], ${}::text[], ${}::text[], ${}::int8[], ${}::int8[],
             ${}::numeric[], ${}::numeric[], ${}::numeric[], ${}::numeric[], ${}::numeric[], ${}::numeric[])
         ON CONFLICT ({key_cols}, bucket, payment_type, currency) DO UPDATE SET
             orders = {table}.orders + EXCLUDED.orders,
             tickets = {table}.tickets + EXCLUDED.tickets,
             gross_revenue = {table}.gross_revenue + EXCLUDED.gross_revenue,
             net_sales = {table}.net_sales + EXCLUDED.net_sales,
             service_fees = {table}.service_fees + EXCLUDED.service_fees,
             total_tax = {table}.total_tax + EXCLUDED.total_tax,
             discounts = {table}.discounts + EXCLUDED.discounts,
             refunds = {table}.refunds + EXCLUDED.refunds",
        key_params.join(", "),
        p(1), p(2), p(3), p(4), p(5), p(6), p(7), p(8), p(9), p(10), p(11),
    );
    let mut q = sqlx::query(&sql);
    let key_values = |c: &Cell, k: &str| -> String {
        match k {
            "org_id" => c.org_id.clone(),
            "event_id" => c.event_id.clone(),
            _ => c.ticket_type_id.clone(),
        }
    };
    for k in keys {
        q = q.bind(
            cells
                .iter()
                .map(|(c, _)| key_values(c, k))
                .collect::<Vec<_>>(),
        );
    }
    let acc = |f: fn(&Acc) -> Decimal| cells.iter().map(|(_, a)| f(a)).collect::<Vec<_>>();
    q.bind(cells.iter().map(|(c, _)| c.bucket).collect::<Vec<_>>())
        .bind(
            cells
                .iter()
                .map(|(c, _)| c.payment_type.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            cells
                .iter()
                .map(|(c, _)| c.currency.clone())
                .collect::<Vec<_>>(),
        )
        .bind(cells.iter().map(|(_, a)| a.orders).collect::<Vec<_>>())
        .bind(cells.iter().map(|(_, a)| a.tickets).collect::<Vec<_>>())
        .bind(acc(|a| a.gross_revenue))
        .bind(acc(|a| a.net_sales))
        .bind(acc(|a| a.service_fees))
        .bind(acc(|a| a.total_tax))
        .bind(acc(|a| a.discounts))
        .bind(acc(|a| a.refunds))
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The customers the given orders belong to now.
pub async fn order_customers(
    tx: &mut PgConnection,
    orders: &[(String, String)],
) -> Result<Vec<(String, String)>, sqlx::Error> {
    let (orgs, txns): (Vec<&str>, Vec<&str>) =
        orders.iter().map(|(o, t)| (o.as_str(), t.as_str())).unzip();
    let rows = sqlx::query(
        "SELECT org_id, customer_key FROM orders
         WHERE (org_id, transaction_id) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))
           AND customer_key IS NOT NULL",
    )
    .bind(orgs)
    .bind(txns)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Derives each touched order from all its invoices and tickets: a function of the set of
/// events, not their order.
pub async fn recompute_orders(
    tx: &mut PgConnection,
    orders: &[(String, String)],
) -> Result<(), sqlx::Error> {
    let mut orders: Vec<&(String, String)> = orders.iter().collect();
    orders.sort();
    let (orgs, txns): (Vec<&str>, Vec<&str>) =
        orders.iter().map(|(o, t)| (o.as_str(), t.as_str())).unzip();
    sqlx::query(RECOMPUTE_ORDERS)
        .bind(orgs)
        .bind(txns)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

// Per touched order, two index lookups (LATERAL): linear in the batch, whatever the table size.
const RECOMPUTE_ORDERS: &str = "
WITH t AS (SELECT DISTINCT * FROM UNNEST($1::text[], $2::text[]) AS t(org_id, transaction_id))
INSERT INTO orders (org_id, transaction_id, kind, status, customer_id, customer_key,
    customer_email, customer_name, currency, payment_type, net_sales, gross_revenue,
    service_fees, total_tax, discounts, refunded, other_currency_refunds, tickets_total,
    tickets_valid, created_at, updated_at)
SELECT t.org_id, t.transaction_id,
    CASE WHEN inv.has_purchase THEN 'purchase' WHEN inv.has_transfer THEN 'transfer' ELSE 'other' END,
    CASE
        WHEN inv.voided OR (tk.n > 0 AND tk.n_voided = tk.n) THEN 'voided'
        WHEN tk.n > 0 AND tk.n_refunded + tk.n_voided = tk.n THEN 'refunded'
        WHEN tk.n_refunded > 0 THEN 'partially_refunded'
        WHEN tk.n > 0 AND tk.n_transferred = tk.n THEN 'transferred'
        WHEN tk.n = 0 AND rf.refunded > 0 AND rf.refunded >= ABS(inv.net_sales) THEN 'refunded'
        WHEN tk.n = 0 AND rf.refunded > 0 THEN 'partially_refunded'
        ELSE 'purchased'
    END,
    inv.customer_id, inv.customer_key, inv.customer_key, inv.customer_name,
    COALESCE(inv.currency, ''), inv.payment_type, inv.net_sales, inv.gross_revenue,
    inv.service_fees, inv.total_tax, inv.discounts, rf.refunded, rf.other, tk.n, tk.n_valid,
    inv.created_at, GREATEST(inv.updated_at, tk.updated_at)
FROM t
CROSS JOIN LATERAL (
    SELECT
        bool_or(i.event_type = 'invoice.purchase') AS has_purchase,
        bool_or(i.event_type = 'invoice.transfer') AS has_transfer,
        bool_or(i.event_type = 'invoice.void') AS voided,
        COALESCE(SUM(i.net_sales) FILTER (WHERE i.event_type = 'invoice.purchase'), 0) AS net_sales,
        COALESCE(SUM(i.gross_revenue) FILTER (WHERE i.event_type = 'invoice.purchase'), 0) AS gross_revenue,
        COALESCE(SUM(i.service_fees) FILTER (WHERE i.event_type = 'invoice.purchase'), 0) AS service_fees,
        COALESCE(SUM(i.total_tax) FILTER (WHERE i.event_type = 'invoice.purchase'), 0) AS total_tax,
        COALESCE(SUM(i.discounts) FILTER (WHERE i.event_type = 'invoice.purchase'), 0) AS discounts,
        (array_agg(i.customer_id ORDER BY i.event_type IN ('invoice.purchase', 'invoice.transfer') DESC, i.received_at, i.stream_seq)
            FILTER (WHERE i.customer_key IS NOT NULL))[1] AS customer_id,
        (array_agg(i.customer_key ORDER BY i.event_type IN ('invoice.purchase', 'invoice.transfer') DESC, i.received_at, i.stream_seq)
            FILTER (WHERE i.customer_key IS NOT NULL))[1] AS customer_key,
        (array_agg(i.customer_name ORDER BY i.event_type IN ('invoice.purchase', 'invoice.transfer') DESC, i.received_at, i.stream_seq)
            FILTER (WHERE i.customer_name IS NOT NULL))[1] AS customer_name,
        (array_agg(i.currency ORDER BY i.event_type IN ('invoice.purchase', 'invoice.transfer') DESC, i.received_at, i.stream_seq)
            FILTER (WHERE i.currency <> ''))[1] AS currency,
        (array_agg(i.payment_type ORDER BY i.event_type IN ('invoice.purchase', 'invoice.transfer') DESC, i.received_at, i.stream_seq)
            FILTER (WHERE i.payment_type IS NOT NULL))[1] AS payment_type,
        COALESCE(SUM(ABS(i.net_sales)) FILTER (WHERE i.event_type IN ('invoice.refund', 'invoice.void')), 0) AS refunded_all,
        MIN(i.currency) FILTER (WHERE i.event_type IN ('invoice.refund', 'invoice.void') AND i.currency <> '') AS refund_cmin,
        MAX(i.currency) FILTER (WHERE i.event_type IN ('invoice.refund', 'invoice.void') AND i.currency <> '') AS refund_cmax,
        array_agg(i.currency) FILTER (WHERE i.event_type IN ('invoice.refund', 'invoice.void')) AS refund_currencies,
        array_agg(ABS(i.net_sales)) FILTER (WHERE i.event_type IN ('invoice.refund', 'invoice.void')) AS refund_amounts,
        MIN(i.received_at) AS created_at,
        MAX(i.received_at) AS updated_at
    FROM invoices i
    WHERE i.org_id = t.org_id AND i.transaction_id = t.transaction_id
) inv
-- Refunds add up in the order's currency (a refund without one is in it); any other
-- currency's are listed apart, never added. Nearly always every refund is in the order's
-- currency (or none): then the plain sum is the answer, and only otherwise are the refunds
-- `inv` gathered taken apart.
CROSS JOIN LATERAL (
    SELECT inv.refund_cmin IS NULL
        OR (inv.refund_cmin = inv.refund_cmax AND inv.refund_cmin = COALESCE(inv.currency, '')) AS simple
) one
CROSS JOIN LATERAL (
    SELECT
        CASE WHEN one.simple THEN inv.refunded_all ELSE (
            SELECT COALESCE(SUM(u.amount), 0)
            FROM unnest(inv.refund_currencies, inv.refund_amounts) AS u(currency, amount)
            WHERE u.currency IN ('', COALESCE(inv.currency, '')))
        END AS refunded,
        CASE WHEN one.simple THEN '[]'::jsonb ELSE (
            SELECT COALESCE(jsonb_agg(jsonb_build_object('currency', g.currency, 'amount', g.amount::text)
                ORDER BY g.currency), '[]')
            FROM (
                SELECT u.currency, SUM(u.amount) AS amount
                FROM unnest(inv.refund_currencies, inv.refund_amounts) AS u(currency, amount)
                WHERE u.currency NOT IN ('', COALESCE(inv.currency, ''))
                GROUP BY u.currency
            ) g)
        END AS other
) rf
CROSS JOIN LATERAL (
    SELECT
        count(*) AS n,
        count(*) FILTER (WHERE k.status = 'refunded') AS n_refunded,
        count(*) FILTER (WHERE k.status = 'voided') AS n_voided,
        count(*) FILTER (WHERE k.status IN ('transferred', 'resold')) AS n_transferred,
        count(*) FILTER (WHERE k.status NOT IN ('refunded', 'voided', 'transferred', 'resold')) AS n_valid,
        MAX(k.updated_at) AS updated_at
    FROM tickets k
    WHERE k.org_id = t.org_id AND k.transaction_id = t.transaction_id
) tk
WHERE inv.created_at IS NOT NULL
ORDER BY t.org_id, t.transaction_id
ON CONFLICT (org_id, transaction_id) DO UPDATE SET
    kind = EXCLUDED.kind, status = EXCLUDED.status, customer_id = EXCLUDED.customer_id,
    customer_key = EXCLUDED.customer_key, customer_email = EXCLUDED.customer_email,
    customer_name = EXCLUDED.customer_name, currency = EXCLUDED.currency,
    payment_type = EXCLUDED.payment_type, net_sales = EXCLUDED.net_sales,
    gross_revenue = EXCLUDED.gross_revenue, service_fees = EXCLUDED.service_fees,
    total_tax = EXCLUDED.total_tax, discounts = EXCLUDED.discounts, refunded = EXCLUDED.refunded,
    other_currency_refunds = EXCLUDED.other_currency_refunds, tickets_total = EXCLUDED.tickets_total, tickets_valid = EXCLUDED.tickets_valid,
    created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at";

/// Derives each touched customer from their invoices and orders.
pub async fn recompute_customers(
    tx: &mut PgConnection,
    customers: &[(String, String, uuid::Uuid)],
) -> Result<(), sqlx::Error> {
    if customers.is_empty() {
        return Ok(());
    }
    let mut customers: Vec<&(String, String, uuid::Uuid)> = customers.iter().collect();
    customers.sort();
    let ids: Vec<uuid::Uuid> = customers.iter().map(|c| c.2).collect();
    sqlx::query(&RECOMPUTE_CUSTOMERS)
        .bind(customers.iter().map(|c| c.0.as_str()).collect::<Vec<_>>())
        .bind(customers.iter().map(|c| c.1.as_str()).collect::<Vec<_>>())
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    sqlx::query(SEARCH_WORDS)
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The words of these customers' names and e-mails, for the api's typo correction.
const SEARCH_WORDS: &str = "
INSERT INTO search_words (word)
SELECT DISTINCT w
FROM customers c,
    unnest(regexp_split_to_array(public.showpass_fold(coalesce(c.name, '') || ' ' || split_part(c.email, '@', 1)), '[^a-z]+')) AS w
WHERE c.id = ANY($1) AND length(w) BETWEEN 3 AND 64
ORDER BY w
ON CONFLICT DO NOTHING";

/// One customer's orders' net less refunds, per currency, refunds in another currency than
/// their order's counted in their own: for the rare customer with several currencies.
const SPENT_BY_CURRENCY: &str =
    "(SELECT x.currency, SUM(x.amount) AS spent, MIN(x.first_at) AS first_at
    FROM (
        SELECT o.currency, o.net_sales - o.refunded AS amount, o.created_at AS first_at
        FROM orders o WHERE o.org_id = t.org_id AND o.customer_key = t.customer_key
        UNION ALL
        SELECT r->>'currency', -((r->>'amount')::numeric), NULL::timestamptz
        FROM orders o, jsonb_array_elements(o.other_currency_refunds) r
        WHERE o.org_id = t.org_id AND o.customer_key = t.customer_key
    ) x
    GROUP BY x.currency)";

static RECOMPUTE_CUSTOMERS: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| RECOMPUTE_CUSTOMERS_SQL.replace("{SPENT}", SPENT_BY_CURRENCY));

const RECOMPUTE_CUSTOMERS_SQL: &str = "
WITH t AS (SELECT DISTINCT * FROM UNNEST($1::text[], $2::text[], $3::uuid[]) AS t(org_id, customer_key, id))
INSERT INTO customers (id, org_id, email, name, phone, subscribed_to_venue, orders_count,
    tickets_count, currency, total_spent, spent_by_currency, first_seen_at, last_seen_at)
SELECT t.id, t.org_id, t.customer_key, inv.name, inv.phone, COALESCE(inv.subscribed, false),
    ord.orders_count, ord.tickets, COALESCE(sp.currency, ''), sp.spent, sp.by_currency,
    inv.first_seen, inv.last_seen
FROM t
CROSS JOIN LATERAL (
    SELECT MIN(i.received_at) AS first_seen, MAX(i.received_at) AS last_seen,
        (array_agg(i.customer_name ORDER BY i.received_at DESC, i.stream_seq DESC) FILTER (WHERE i.customer_name IS NOT NULL))[1] AS name,
        (array_agg(i.customer_phone ORDER BY i.received_at DESC, i.stream_seq DESC) FILTER (WHERE i.customer_phone IS NOT NULL))[1] AS phone,
        (array_agg(i.subscribe_to_venue ORDER BY i.received_at DESC, i.stream_seq DESC) FILTER (WHERE i.subscribe_to_venue IS NOT NULL))[1] AS subscribed
    FROM invoices i
    WHERE i.org_id = t.org_id AND i.customer_key = t.customer_key
) inv
-- What they spent, per currency, never added across currencies: `total_spent` is in their
-- currency, that of their first order with one. Nearly every customer has one currency: then
-- the plain sums are the answer, and only a customer with several is grouped (`sp`).
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE o.kind IN ('purchase', 'transfer')) AS orders_count,
        COALESCE(SUM(o.tickets_valid), 0) AS tickets,
        MIN(o.currency) AS cmin, MAX(o.currency) AS cmax,
        bool_or(o.other_currency_refunds <> '[]'::jsonb) AS other_refunds,
        COALESCE(SUM(o.net_sales - o.refunded), 0) AS spent
    FROM orders o
    WHERE o.org_id = t.org_id AND o.customer_key = t.customer_key
) ord
CROSS JOIN LATERAL (
    SELECT ord.cmin IS NOT DISTINCT FROM ord.cmax AND NOT COALESCE(ord.other_refunds, false) AS single
) one
CROSS JOIN LATERAL (
    SELECT
        CASE WHEN one.single THEN ord.cmin ELSE (
            SELECT g.currency FROM {SPENT} g
            ORDER BY g.currency = '', g.first_at, g.currency LIMIT 1)
        END AS currency,
        CASE WHEN one.single THEN ord.spent ELSE (
            SELECT g.spent FROM {SPENT} g
            ORDER BY g.currency = '', g.first_at, g.currency LIMIT 1)
        END AS spent,
        CASE
            WHEN ord.cmin IS NULL THEN '[]'::jsonb
            WHEN one.single THEN jsonb_build_array(
                jsonb_build_object('currency', ord.cmin, 'amount', ord.spent::text))
            ELSE (
                SELECT jsonb_agg(jsonb_build_object('currency', g.currency, 'amount', g.spent::text)
                    ORDER BY g.currency)
                FROM {SPENT} g)
        END AS by_currency
) sp
WHERE inv.first_seen IS NOT NULL
ORDER BY t.id
ON CONFLICT (id) DO UPDATE SET
    name = EXCLUDED.name, phone = EXCLUDED.phone,
    subscribed_to_venue = EXCLUDED.subscribed_to_venue, orders_count = EXCLUDED.orders_count,
    tickets_count = EXCLUDED.tickets_count, currency = EXCLUDED.currency,
    total_spent = EXCLUDED.total_spent, spent_by_currency = EXCLUDED.spent_by_currency,
    first_seen_at = EXCLUDED.first_seen_at, last_seen_at = EXCLUDED.last_seen_at";

/// Flags earlier duplicate records whose body differs from the event now applied.
pub async fn mark_conflicting_duplicates(
    tx: &mut PgConnection,
    keys: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE deliveries d SET error = 'conflict: same idempotency key as an applied event with a different body (applied body sha256 ' || p.body_sha256 || ')'
         FROM invoices p
         WHERE d.outcome = 'duplicate' AND d.idempotency_key = ANY($1) AND d.error IS NULL
           AND p.idempotency_key = d.idempotency_key
           AND d.body_sha256 IS DISTINCT FROM p.body_sha256",
    )
    .bind(keys)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Writes the delivery log rows of a batch. A replayed event keeps its delivery id, so its row
/// is updated with the new processing result.
pub async fn log_deliveries(
    tx: &mut PgConnection,
    rows: &[Outcome<'_>],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    // The last result for a delivery id within one batch wins.
    let mut by_id: HashMap<uuid::Uuid, &Outcome> = HashMap::new();
    for r in rows {
        by_id.insert(r.meta.delivery_id, r);
    }
    let mut rows: Vec<&Outcome> = by_id.into_values().collect();
    rows.sort_by_key(|r| r.meta.delivery_id);
    let m = |f: fn(&crate::meta::Meta) -> Option<&str>| {
        rows.iter().map(|r| f(r.meta)).collect::<Vec<_>>()
    };
    sqlx::query(
        "INSERT INTO deliveries (id, received_at, endpoint, outcome, reason, detail, http_status,
             event_type, webhook_event_uuid, transaction_id, org_id, idempotency_key, remote_addr,
             stream, stream_seq, body_sha256, body_length, body_truncated, processing, error,
             suspect)
         SELECT * FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
             $6::text[], $7::int4[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
             $13::text[], $14::text[], $15::int8[], $16::text[], $17::int4[], $18::bool[],
             $19::text[], $20::text[], $21::text[])
         ON CONFLICT (id) DO UPDATE SET
             processing = EXCLUDED.processing, error = EXCLUDED.error,
             stream = EXCLUDED.stream, stream_seq = EXCLUDED.stream_seq",
    )
    .bind(rows.iter().map(|r| r.meta.delivery_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.meta.received_at).collect::<Vec<_>>())
    .bind(m(|m| Some(&m.endpoint)))
    .bind(rows.iter().map(|r| r.outcome).collect::<Vec<_>>())
    .bind(m(|m| m.reason.as_deref()))
    .bind(m(|m| m.detail.as_deref()))
    .bind(
        rows.iter()
            .map(|r| {
                r.meta
                    .http_status
                    .unwrap_or(if r.outcome == "accepted" { 202 } else { 0 })
            })
            .collect::<Vec<_>>(),
    )
    .bind(m(|m| m.event_type.as_deref()))
    .bind(m(|m| m.webhook_event_uuid.as_deref()))
    .bind(m(|m| m.transaction_id.as_deref()))
    .bind(m(|m| m.org_id.as_deref()))
    .bind(m(|m| m.idempotency_key.as_deref()))
    .bind(m(|m| m.remote_addr.as_deref()))
    .bind(m(|m| Some(&m.stream)))
    .bind(rows.iter().map(|r| r.meta.seq as i64).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.body_sha256).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.meta.body_length).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.meta.body_truncated)
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.processing).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.error.as_deref()).collect::<Vec<_>>())
    .bind(m(|m| m.suspect.as_deref()))
    .execute(&mut *tx)
    .await?;
    Ok(())
}
