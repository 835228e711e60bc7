//! Orders, each derived again from all its invoices and tickets.

use sqlx::{PgConnection, Row};

use super::words;

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
    sqlx::query(&RECOMPUTE_ORDERS)
        .bind(orgs)
        .bind(txns)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

// Per touched order, two index lookups (LATERAL): linear in the batch, whatever the table size.
pub(super) static RECOMPUTE_ORDERS: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| words(RECOMPUTE_ORDERS_SQL));

const RECOMPUTE_ORDERS_SQL: &str = "
WITH t AS (SELECT DISTINCT * FROM UNNEST($1::text[], $2::text[]) AS t(org_id, transaction_id))
INSERT INTO orders (org_id, transaction_id, kind, status, customer_id, customer_key,
    customer_email, customer_name, currency, payment_type, net_sales, gross_revenue,
    service_fees, total_tax, discounts, refunded, other_currency_refunds, tickets_total,
    tickets_valid, created_at, updated_at)
SELECT t.org_id, t.transaction_id,
    CASE WHEN inv.has_purchase THEN {K_PURCHASE} WHEN inv.has_transfer THEN {K_TRANSFER} ELSE {K_OTHER} END,
    CASE
        WHEN inv.voided OR (tk.n > 0 AND tk.n_voided = tk.n) THEN {S_VOIDED}
        WHEN tk.n > 0 AND tk.n_refunded + tk.n_voided = tk.n THEN {S_REFUNDED}
        WHEN tk.n_refunded > 0 THEN {S_PARTIALLY_REFUNDED}
        WHEN tk.n > 0 AND tk.n_transferred = tk.n THEN {S_TRANSFERRED}
        WHEN tk.n = 0 AND rf.refunded > 0 AND rf.refunded >= ABS(inv.net_sales) THEN {S_REFUNDED}
        WHEN tk.n = 0 AND rf.refunded > 0 THEN {S_PARTIALLY_REFUNDED}
        ELSE {S_PURCHASED}
    END,
    inv.customer_id, inv.customer_key, inv.customer_key, inv.customer_name,
    COALESCE(inv.currency, ''), inv.payment_type, inv.net_sales, inv.gross_revenue,
    inv.service_fees, inv.total_tax, inv.discounts, rf.refunded, rf.other, tk.n, tk.n_valid,
    inv.created_at, GREATEST(inv.updated_at, tk.updated_at)
FROM t
CROSS JOIN LATERAL (
    SELECT
        bool_or(i.event_type = {PURCHASE}) AS has_purchase,
        bool_or(i.event_type = {TRANSFER}) AS has_transfer,
        bool_or(i.event_type = {VOID}) AS voided,
        COALESCE(SUM(i.net_sales) FILTER (WHERE i.event_type = {PURCHASE}), 0) AS net_sales,
        COALESCE(SUM(i.gross_revenue) FILTER (WHERE i.event_type = {PURCHASE}), 0) AS gross_revenue,
        COALESCE(SUM(i.service_fees) FILTER (WHERE i.event_type = {PURCHASE}), 0) AS service_fees,
        COALESCE(SUM(i.total_tax) FILTER (WHERE i.event_type = {PURCHASE}), 0) AS total_tax,
        COALESCE(SUM(i.discounts) FILTER (WHERE i.event_type = {PURCHASE}), 0) AS discounts,
        (array_agg(i.customer_id ORDER BY i.event_type IN ({OPENS}) DESC, i.received_at, i.stream_seq)
            FILTER (WHERE i.customer_key IS NOT NULL))[1] AS customer_id,
        (array_agg(i.customer_key ORDER BY i.event_type IN ({OPENS}) DESC, i.received_at, i.stream_seq)
            FILTER (WHERE i.customer_key IS NOT NULL))[1] AS customer_key,
        (array_agg(i.customer_name ORDER BY i.event_type IN ({OPENS}) DESC, i.received_at, i.stream_seq)
            FILTER (WHERE i.customer_name IS NOT NULL))[1] AS customer_name,
        (array_agg(i.currency ORDER BY i.event_type IN ({OPENS}) DESC, i.received_at, i.stream_seq)
            FILTER (WHERE i.currency <> ''))[1] AS currency,
        (array_agg(i.payment_type ORDER BY i.event_type IN ({OPENS}) DESC, i.received_at, i.stream_seq)
            FILTER (WHERE i.payment_type IS NOT NULL))[1] AS payment_type,
        COALESCE(SUM(ABS(i.net_sales)) FILTER (WHERE i.event_type IN ({TAKES_BACK})), 0) AS refunded_all,
        MIN(i.currency) FILTER (WHERE i.event_type IN ({TAKES_BACK}) AND i.currency <> '') AS refund_cmin,
        MAX(i.currency) FILTER (WHERE i.event_type IN ({TAKES_BACK}) AND i.currency <> '') AS refund_cmax,
        array_agg(i.currency) FILTER (WHERE i.event_type IN ({TAKES_BACK})) AS refund_currencies,
        array_agg(ABS(i.net_sales)) FILTER (WHERE i.event_type IN ({TAKES_BACK})) AS refund_amounts,
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
        count(*) FILTER (WHERE k.status = {T_REFUNDED}) AS n_refunded,
        count(*) FILTER (WHERE k.status = {T_VOIDED}) AS n_voided,
        count(*) FILTER (WHERE k.status IN ({T_TRANSFERRED}, {T_RESOLD})) AS n_transferred,
        count(*) FILTER (WHERE k.status NOT IN ({T_REFUNDED}, {T_VOIDED}, {T_TRANSFERRED}, {T_RESOLD})) AS n_valid,
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
