//! The invoice ledger: each applied invoice and its lines, and the refunds that wait for
//! their order's currency.

use std::collections::HashMap;

use rust_decimal::Decimal;
use sqlx::{PgConnection, Row};

use super::words;
use crate::apply::fold::{Acc, CellKey};
use crate::apply::{Incoming, Waiting};
use crate::plan::{Invoice, customer_id};

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
    let rows = sqlx::query(&ORDER_CURRENCIES)
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
    let rows = sqlx::query(&WAITING_SALES)
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
    sqlx::query(&BOOK_WAITING)
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
        et.push(i.kind.event_type().as_str().to_owned());
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

/// The currency of each order's first purchase or transfer.
pub(super) static ORDER_CURRENCIES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    words(
        "SELECT DISTINCT ON (i.org_id, i.transaction_id) i.org_id, i.transaction_id, i.currency
         FROM invoices i
         WHERE (i.org_id, i.transaction_id) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))
           AND i.event_type IN ({OPENS})
         ORDER BY i.org_id, i.transaction_id, i.stream_seq",
    )
});

/// The waiting refunds of orders, summed per sales cell.
pub(super) static WAITING_SALES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    words(
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
           AND i.event_type IN ({TAKES_BACK})
         GROUP BY 1, 2, 3, 4, 5, 6",
    )
});

/// Marks waiting refunds booked in a currency.
pub(super) static BOOK_WAITING: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    words(
        "UPDATE invoices i SET booked_currency = b.currency
         FROM UNNEST($1::text[], $2::text[], $3::text[]) AS b(org_id, transaction_id, currency)
         WHERE i.org_id = b.org_id AND i.transaction_id = b.transaction_id
           AND i.booked_currency IS NULL
           AND i.event_type IN ({TAKES_BACK})",
    )
});
