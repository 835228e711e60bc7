//! Gaps (business events that should have arrived and did not) and anomalies (what deserves a
//! person's look). Both are derived from the ledger and the delivery log in the batch's
//! transaction, so `rebuild` derives them again; neither ever changes the money.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use showpass_payload::vocab::AnomalyKind;
use sqlx::PgConnection;

use super::{lock_entities, words};
use crate::apply::Incoming;
use crate::plan::{Invoice, Kind};

/// How long Showpass keeps a delivery's attempts, so how long a missing event can be resent.
const RESEND_WINDOW: &str = "15 days";

/// How long one side of a transfer may wait for the other before it is a gap.
const TRANSFER_PAIRING: &str = "1 hour";

/// At most this many events are listed in a gap's `events_seen` (the oldest first).
const MAX_EVENTS_SEEN: i64 = 100;

/// What the two sides of one transfer share: the tickets' (event, ticket type) multiset, as a
/// SHA-256 (so its size is bounded whatever the invoice carries). The ticket ids differ (the
/// recipient's are new), and so do the transactions.
pub fn transfer_signature(inv: &Invoice) -> String {
    let mut counts: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for t in &inv.tickets {
        let k = (
            t.event_id.as_deref().unwrap_or(""),
            t.ticket_type_id.as_deref().unwrap_or(""),
        );
        *counts.entry(k).or_default() += 1;
    }
    let canonical: Vec<String> = counts
        .iter()
        .map(|((e, t), n)| format!("{}/{}*{n}", e.len(), [*e, *t].concat()))
        .collect();
    showpass_payload::sha256_hex(canonical.join(",").as_bytes())
}

/// Records the transfer sides of a batch; answers the (organization, signature) groups
/// they belong to.
pub async fn record_transfer_sides(
    tx: &mut PgConnection,
    applied: &[(&Incoming, &Invoice)],
) -> Result<Vec<(String, String)>, sqlx::Error> {
    let sides: Vec<(&Incoming, &Invoice, String)> = applied
        .iter()
        .filter(|(_, inv)| matches!(inv.kind, Kind::Transfer | Kind::Transferred))
        .map(|(m, inv)| (*m, *inv, transfer_signature(inv)))
        .collect();
    if sides.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query(
        "INSERT INTO transfer_sides (idempotency_key, org_id, transaction_id, event_type,
             signature, delivery_id, received_at, stream_seq)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
             $6::uuid[], $7::timestamptz[], $8::int8[])
         ON CONFLICT DO NOTHING",
    )
    .bind(sides.iter().map(|s| s.1.key.as_str()).collect::<Vec<_>>())
    .bind(
        sides
            .iter()
            .map(|s| s.1.org_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        sides
            .iter()
            .map(|s| s.1.transaction_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        sides
            .iter()
            .map(|s| s.1.kind.event_type().as_str().to_owned())
            .collect::<Vec<_>>(),
    )
    .bind(sides.iter().map(|s| s.2.as_str()).collect::<Vec<_>>())
    .bind(
        sides
            .iter()
            .map(|s| s.0.meta.delivery_id)
            .collect::<Vec<_>>(),
    )
    .bind(
        sides
            .iter()
            .map(|s| s.0.meta.received_at)
            .collect::<Vec<_>>(),
    )
    .bind(
        sides
            .iter()
            .map(|s| i64::try_from(s.0.meta.seq).unwrap_or(i64::MAX))
            .collect::<Vec<_>>(),
    )
    .execute(&mut *tx)
    .await?;
    let mut groups: Vec<(String, String)> = sides
        .into_iter()
        .map(|(_, inv, sig)| (inv.org_id.clone(), sig))
        .collect();
    groups.sort();
    groups.dedup();
    Ok(groups)
}

/// Pairs the unmatched sides of these groups (the first transfer with the first transferred,
/// and so on, by arrival), then derives the `unmatched_transfer` gaps of every transaction
/// whose sides changed or still wait. A lane (`hold`) first holds those transactions' orders:
/// their gaps read sides of other groups, which another lane may be changing.
pub async fn derive_transfer_gaps(
    tx: &mut PgConnection,
    groups: &[(String, String)],
    hold: bool,
) -> Result<(), sqlx::Error> {
    if groups.is_empty() {
        return Ok(());
    }
    let (orgs, sigs): (Vec<&str>, Vec<&str>) =
        groups.iter().map(|(o, s)| (o.as_str(), s.as_str())).unzip();
    let touched: Vec<(String, String)> = sqlx::query_as(&MATCH_TRANSFERS)
        .bind(&orgs)
        .bind(&sigs)
        .fetch_all(&mut *tx)
        .await?;
    if hold {
        let orders: Vec<String> = touched
            .iter()
            .map(|(o, t)| crate::apply::lanes::order_entity(o, t))
            .collect();
        lock_entities(tx, &orders).await?;
    }
    let (orgs, txns): (Vec<&str>, Vec<&str>) = touched
        .iter()
        .map(|(o, t)| (o.as_str(), t.as_str()))
        .unzip();
    sqlx::query(&DELETE_TRANSFER_GAPS)
        .bind(&orgs)
        .bind(&txns)
        .execute(&mut *tx)
        .await?;
    sqlx::query(&INSERT_TRANSFER_GAPS)
        .bind(&orgs)
        .bind(&txns)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Derives the `missing_purchase` gaps and the order-level anomalies (`currency_mismatch`,
/// `refund_exceeds_purchase`) of the touched orders from all their invoices, and the
/// `totals_mismatch` anomalies of the invoices just applied (compared in memory: no read).
pub async fn derive_order_flags(
    tx: &mut PgConnection,
    orders: &[(String, String)],
    applied: &[(&Incoming, &Invoice)],
) -> Result<(), sqlx::Error> {
    let mut orders: Vec<&(String, String)> = orders.iter().collect();
    orders.sort();
    let (orgs, txns): (Vec<&str>, Vec<&str>) =
        orders.iter().map(|(o, t)| (o.as_str(), t.as_str())).unzip();
    for sql in [
        &*DELETE_ORDER_FLAGS,
        &*INSERT_MISSING_PURCHASES,
        &*INSERT_ORDER_ANOMALIES,
    ] {
        sqlx::query(sql)
            .bind(&orgs)
            .bind(&txns)
            .execute(&mut *tx)
            .await?;
    }
    let found: Vec<(&Incoming, &Invoice, String)> = applied
        .iter()
        .filter_map(|(m, inv)| totals_mismatch(inv).map(|d| (*m, *inv, d)))
        .collect();
    if found.is_empty() {
        return Ok(());
    }
    sqlx::query(&format!(
        "INSERT INTO anomalies (kind, delivery_id, org_id, transaction_id, detected_at, detail)
         SELECT '{}', * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::timestamptz[],
             $5::text[])
         ON CONFLICT DO NOTHING",
        AnomalyKind::TotalsMismatch.as_str()
    ))
    .bind(
        found
            .iter()
            .map(|f| f.0.meta.delivery_id)
            .collect::<Vec<_>>(),
    )
    .bind(
        found
            .iter()
            .map(|f| f.1.org_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        found
            .iter()
            .map(|f| f.1.transaction_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        found
            .iter()
            .map(|f| f.0.meta.received_at)
            .collect::<Vec<_>>(),
    )
    .bind(found.iter().map(|f| f.2.as_str()).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// How an invoice's own totals differ from the sum of its lines by more than 0.01, if they
/// do (`net_sales 60.00, its lines 58.40; ...`). An invoice without lines has nothing to
/// compare; a sum beyond what a decimal holds compares nothing either.
pub fn totals_mismatch(inv: &Invoice) -> Option<String> {
    if inv.items.is_empty() {
        return None;
    }
    type Field = (&'static str, fn(&crate::plan::Money) -> Decimal);
    let fields: [Field; 5] = [
        ("net_sales", |m| m.net_sales),
        ("gross_revenue", |m| m.gross_revenue),
        ("service_fees", |m| m.service_fees),
        ("total_tax", |m| m.total_tax),
        ("discounts", |m| m.discounts),
    ];
    let cent = Decimal::new(1, 2);
    let parts: Vec<String> = fields
        .iter()
        .filter_map(|(name, get)| {
            let lines = inv
                .items
                .iter()
                .try_fold(Decimal::ZERO, |acc, i| acc.checked_add(get(&i.money)))?;
            let own = get(&inv.money);
            (own.checked_sub(lines)?.abs() > cent)
                .then(|| format!("{name} {own}, its lines {lines}"))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Flags the logged deliveries of a batch that came with a different body than the event
/// applied under their key (`conflicting_redelivery`), or whose signed `id` ingest first
/// accepted with another transaction (`id_transaction_mismatch`). `keys` are the invoices
/// applied now: their earlier conflicting duplicates are flagged too.
pub async fn flag_deliveries(
    tx: &mut PgConnection,
    ids: &[uuid::Uuid],
    keys: &[String],
) -> Result<(), sqlx::Error> {
    if ids.is_empty() && keys.is_empty() {
        return Ok(());
    }
    sqlx::query(&FLAG_DELIVERIES)
        .bind(ids)
        .bind(keys)
        .bind(format!("{}%", like_escape(crate::apply::CONFLICT)))
        .bind(showpass_payload::vocab::Outcome::Duplicate.as_str())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// A literal for `LIKE`.
fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

type Sql = std::sync::LazyLock<String>;

pub(super) static MATCH_TRANSFERS: Sql = Sql::new(|| {
    words(
        "
WITH g AS (SELECT DISTINCT * FROM UNNEST($1::text[], $2::text[]) AS g(org_id, signature)),
waiting AS (
    SELECT s.idempotency_key, s.org_id, s.transaction_id, s.signature, s.event_type,
        row_number() OVER (PARTITION BY s.org_id, s.signature, s.event_type
            ORDER BY s.received_at, s.stream_seq, s.idempotency_key) AS n
    FROM transfer_sides s JOIN g USING (org_id, signature)
    WHERE NOT s.matched
),
pairs AS (
    SELECT a.idempotency_key AS a, b.idempotency_key AS b
    FROM waiting a JOIN waiting b USING (org_id, signature, n)
    WHERE a.event_type = {TRANSFER} AND b.event_type = {TRANSFERRED}
),
matched AS (
    UPDATE transfer_sides s SET matched = true
    WHERE s.idempotency_key IN (SELECT a FROM pairs UNION ALL SELECT b FROM pairs)
    RETURNING s.org_id, s.transaction_id
)
SELECT org_id, transaction_id FROM matched
UNION
SELECT org_id, transaction_id FROM waiting",
    )
});

pub(super) static DELETE_TRANSFER_GAPS: Sql = Sql::new(|| {
    words(
        "
DELETE FROM gaps g
USING UNNEST($1::text[], $2::text[]) AS t(org_id, transaction_id)
WHERE g.kind = {G_UNMATCHED_TRANSFER} AND g.org_id = t.org_id
  AND g.transaction_id = t.transaction_id",
    )
});

pub(super) static INSERT_TRANSFER_GAPS: Sql = Sql::new(|| {
    words(&format!(
        "
WITH t AS (SELECT DISTINCT * FROM UNNEST($1::text[], $2::text[]) AS t(org_id, transaction_id))
INSERT INTO gaps (kind, org_id, transaction_id, signature, events_seen, first_seen_at,
    resend_before, open_from)
SELECT {{G_UNMATCHED_TRANSFER}}, t.org_id, t.transaction_id, w.signature, w.seen, w.first,
    w.first + interval '{RESEND_WINDOW}', w.first + interval '{TRANSFER_PAIRING}'
FROM t
CROSS JOIN LATERAL (
    SELECT min(s.signature) AS signature, min(s.received_at) AS first,
        jsonb_agg(jsonb_build_object('event_type', s.event_type, 'delivery_id', s.delivery_id,
            'received_at', s.received_at) ORDER BY s.received_at, s.stream_seq) AS seen
    FROM (
        SELECT * FROM transfer_sides s
        WHERE s.org_id = t.org_id AND s.transaction_id = t.transaction_id AND NOT s.matched
        ORDER BY s.received_at, s.stream_seq
        LIMIT {MAX_EVENTS_SEEN}
    ) s
) w
WHERE w.first IS NOT NULL
ORDER BY t.org_id, t.transaction_id
ON CONFLICT DO NOTHING"
    ))
});

pub(super) static DELETE_ORDER_FLAGS: Sql = Sql::new(|| {
    words(
        "
WITH t AS (SELECT * FROM UNNEST($1::text[], $2::text[]) AS t(org_id, transaction_id)),
gone AS (
    DELETE FROM gaps g USING t
    WHERE g.kind = {G_MISSING_PURCHASE} AND g.org_id = t.org_id
      AND g.transaction_id = t.transaction_id
)
DELETE FROM anomalies a USING t
WHERE a.kind IN ({A_CURRENCY_MISMATCH}, {A_REFUND_EXCEEDS_PURCHASE})
  AND a.org_id = t.org_id AND a.transaction_id = t.transaction_id",
    )
});

// A transfer opens a transaction of its own (the recipient's, new): what its counterpart
// lacks is an `unmatched_transfer`, not a purchase. So only refunds, voids and transferred
// invoices of a transaction with neither a purchase nor a transfer make a missing purchase.
pub(super) static INSERT_MISSING_PURCHASES: Sql = Sql::new(|| {
    words(&format!(
        "
WITH t AS (SELECT DISTINCT * FROM UNNEST($1::text[], $2::text[]) AS t(org_id, transaction_id))
INSERT INTO gaps (kind, org_id, transaction_id, signature, events_seen, first_seen_at,
    resend_before, open_from)
SELECT {{G_MISSING_PURCHASE}}, t.org_id, t.transaction_id, NULL, e.seen, e.first,
    e.first + interval '{RESEND_WINDOW}', e.first
FROM t
-- An order with a purchase or a transfer is of another kind: only the rest are read.
JOIN orders ord ON ord.org_id = t.org_id AND ord.transaction_id = t.transaction_id
    AND ord.kind = {{K_OTHER}}
CROSS JOIN LATERAL (
    SELECT bool_or(i.event_type IN ({{OPENS}})) AS opened, min(i.received_at) AS first
    FROM invoices i
    WHERE i.org_id = t.org_id AND i.transaction_id = t.transaction_id
) o
CROSS JOIN LATERAL (
    SELECT o.first,
        jsonb_agg(jsonb_build_object('event_type', i.event_type, 'delivery_id', i.delivery_id,
            'received_at', i.received_at) ORDER BY i.received_at, i.stream_seq) AS seen
    FROM (
        SELECT * FROM invoices i
        WHERE i.org_id = t.org_id AND i.transaction_id = t.transaction_id
        ORDER BY i.received_at, i.stream_seq
        LIMIT {MAX_EVENTS_SEEN}
    ) i
) e
WHERE o.first IS NOT NULL AND NOT o.opened
ORDER BY t.org_id, t.transaction_id
ON CONFLICT DO NOTHING"
    ))
});

// Each refund or void in another currency than its order's; and an order whose refunds (in
// its currency) exceed what it was sold for, flagged on its latest refund or void.
pub(super) static INSERT_ORDER_ANOMALIES: Sql = Sql::new(|| {
    words(
        "
WITH t AS (SELECT DISTINCT * FROM UNNEST($1::text[], $2::text[]) AS t(org_id, transaction_id))
INSERT INTO anomalies (kind, delivery_id, org_id, transaction_id, detected_at, detail)
SELECT {A_CURRENCY_MISMATCH}, i.delivery_id, i.org_id, i.transaction_id, i.received_at,
    format('%s of %s %s; the order is in %s', i.event_type, abs(i.net_sales),
        i.currency, o.currency)
FROM t
JOIN orders o ON o.org_id = t.org_id AND o.transaction_id = t.transaction_id
JOIN invoices i ON i.org_id = t.org_id AND i.transaction_id = t.transaction_id
-- A refund in another currency is listed apart on the order: only those orders are read.
WHERE o.other_currency_refunds <> '[]'::jsonb
  AND o.kind <> {K_OTHER} AND o.currency <> '' AND i.event_type IN ({TAKES_BACK}) AND i.currency <> ''
  AND i.currency <> o.currency AND i.delivery_id IS NOT NULL
UNION ALL
SELECT {A_REFUND_EXCEEDS_PURCHASE}, last.delivery_id, o.org_id, o.transaction_id,
    last.received_at,
    format('refunded %s %s of %s %s sold', o.refunded, o.currency,
        o.net_sales, o.currency)
FROM t
JOIN orders o ON o.org_id = t.org_id AND o.transaction_id = t.transaction_id
CROSS JOIN LATERAL (
    SELECT i.delivery_id, i.received_at FROM invoices i
    WHERE i.org_id = o.org_id AND i.transaction_id = o.transaction_id
      AND i.event_type IN ({TAKES_BACK}) AND i.delivery_id IS NOT NULL
    ORDER BY i.received_at DESC, i.stream_seq DESC
    LIMIT 1
) last
WHERE o.kind = {K_PURCHASE} AND o.refunded > o.net_sales + 0.01
ON CONFLICT DO NOTHING",
    )
});

pub(super) static FLAG_DELIVERIES: Sql = Sql::new(|| {
    words(
        "
WITH d AS (
    SELECT d.id, d.org_id, d.transaction_id, d.received_at, d.webhook_event_uuid,
        d.body_sha256, d.error, d.suspect
    FROM deliveries d WHERE d.id = ANY($1)
    UNION
    SELECT d.id, d.org_id, d.transaction_id, d.received_at, d.webhook_event_uuid,
        d.body_sha256, d.error, d.suspect
    FROM deliveries d WHERE d.idempotency_key = ANY($2) AND d.outcome = $4
)
INSERT INTO anomalies (kind, delivery_id, org_id, transaction_id, detected_at, detail)
SELECT {A_CONFLICTING_REDELIVERY}, d.id, d.org_id, d.transaction_id, d.received_at,
    format('webhook_event_uuid %s came again with another body (sha256 %s); %s',
        d.webhook_event_uuid, d.body_sha256, d.error)
FROM d WHERE d.error LIKE $3
UNION ALL
SELECT {A_ID_TRANSACTION_MISMATCH}, d.id, d.org_id, d.transaction_id, d.received_at, d.suspect
FROM d WHERE d.suspect IS NOT NULL
ON CONFLICT DO NOTHING",
    )
});
