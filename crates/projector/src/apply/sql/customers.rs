//! Customers, each derived again from their invoices and orders, and the search words.

use sqlx::PgConnection;

use super::words;

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

/// The words customers' names and e-mails are made of (folded, letters only, 3 to 64), to
/// which a condition on the customers is added.
macro_rules! words_of_customers {
    ($and:literal) => {
        concat!(
            "INSERT INTO search_words (word)
SELECT DISTINCT w
FROM customers c,
    unnest(regexp_split_to_array(public.showpass_fold(coalesce(c.name, '') || ' ' || split_part(c.email, '@', 1)), '[^a-z]+')) AS w
WHERE length(w) BETWEEN 3 AND 64",
            $and,
            "
ORDER BY w
ON CONFLICT DO NOTHING"
        )
    };
}

/// The words of these customers' names and e-mails, for the api's typo correction.
const SEARCH_WORDS: &str = words_of_customers!(" AND c.id = ANY($1)");

/// The words of every customer's name and e-mail: for rows written by other means than the
/// projector (the benchmark's bulk load).
pub const ALL_SEARCH_WORDS: &str = words_of_customers!("");

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

pub(super) static RECOMPUTE_CUSTOMERS: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| {
        words(&RECOMPUTE_CUSTOMERS_SQL.replace("{SPENT}", SPENT_BY_CURRENCY))
    });

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
    SELECT count(*) FILTER (WHERE o.kind IN ({K_PURCHASE}, {K_TRANSFER})) AS orders_count,
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
