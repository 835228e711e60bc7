-- Amounts in different currencies are never added together (issue 11).
--
-- A refund or void without a currency is booked in its order's currency: that of the order's
-- first purchase or transfer. Until one is seen, such a refund waits (`booked_currency` NULL)
-- and is booked when it arrives. Earlier versions booked it under '' at once, and so does
-- the default here: what a projector of an earlier version still inserts while this one is
-- rolled out counts as booked, never booked twice.
ALTER TABLE invoices ADD COLUMN booked_currency text DEFAULT '';
UPDATE invoices SET booked_currency = currency;
CREATE INDEX invoices_waiting ON invoices (org_id, transaction_id)
    WHERE booked_currency IS NULL AND event_type IN ('invoice.refund', 'invoice.void');

-- An order's `refunded` adds only refunds in its own currency (or none); refunds in another
-- currency are listed here, per currency, instead.
ALTER TABLE orders ADD COLUMN other_currency_refunds jsonb NOT NULL DEFAULT '[]';

-- A customer's `total_spent` is in their `currency` (that of their first order with one);
-- `spent_by_currency` holds every currency they spent in.
ALTER TABLE customers ADD COLUMN currency text NOT NULL DEFAULT '',
    ADD COLUMN spent_by_currency jsonb NOT NULL DEFAULT '[]';

-- What was projected before this migration (`showpass rebuild` derives all of it again).
WITH per AS (
    SELECT org_id, customer_key, currency, SUM(net_sales - refunded) AS spent,
        MIN(created_at) AS first_at
    FROM orders WHERE customer_key IS NOT NULL
    GROUP BY 1, 2, 3
), agg AS (
    SELECT org_id, customer_key,
        COALESCE((array_agg(currency ORDER BY first_at) FILTER (WHERE currency <> ''))[1], '') AS currency,
        jsonb_agg(jsonb_build_object('currency', currency, 'amount', spent::text)
            ORDER BY currency) AS spent
    FROM per GROUP BY 1, 2
)
UPDATE customers c SET currency = agg.currency, spent_by_currency = agg.spent,
    total_spent = COALESCE((SELECT per.spent FROM per WHERE per.org_id = c.org_id
        AND per.customer_key = c.email AND per.currency = agg.currency), 0)
FROM agg
WHERE agg.org_id = c.org_id AND agg.customer_key = c.email;
