-- Issue 17: a monthly tier beside the daily one: the same cells rolled up to whole UTC
-- calendar months (`bucket` is the month's first UTC midnight), maintained by the projector in
-- the same transaction. A summary over all time, or any range, reads whole months here (about
-- 30 times fewer rows than the daily tier), whole days of the edges from the daily tier, and
-- the rest from the 15-minute one. Grouping by day never reads it.
CREATE TABLE sales_by_ticket_type_monthly (LIKE sales_by_ticket_type INCLUDING DEFAULTS);
ALTER TABLE sales_by_ticket_type_monthly ADD CONSTRAINT sales_by_ticket_type_monthly_pkey
    PRIMARY KEY (org_id, event_id, ticket_type_id, bucket, payment_type, currency)
    INCLUDE (orders, tickets, gross_revenue, net_sales, service_fees, total_tax, discounts, refunds);

CREATE TABLE sales_by_event_monthly (LIKE sales_by_event INCLUDING DEFAULTS);
ALTER TABLE sales_by_event_monthly ADD CONSTRAINT sales_by_event_monthly_pkey
    PRIMARY KEY (org_id, event_id, bucket, payment_type, currency)
    INCLUDE (orders, tickets, gross_revenue, net_sales, service_fees, total_tax, discounts, refunds);

CREATE TABLE sales_by_order_attrs_monthly (LIKE sales_by_order_attrs INCLUDING DEFAULTS);
ALTER TABLE sales_by_order_attrs_monthly ADD CONSTRAINT sales_by_order_attrs_monthly_pkey
    PRIMARY KEY (org_id, bucket, payment_type, currency)
    INCLUDE (orders, tickets, gross_revenue, net_sales, service_fees, total_tax, discounts, refunds);

-- What was projected before this migration.
INSERT INTO sales_by_ticket_type_monthly
SELECT org_id, event_id, ticket_type_id, date_trunc('month', bucket, 'UTC'), payment_type, currency,
       sum(orders), sum(tickets), sum(gross_revenue), sum(net_sales), sum(service_fees),
       sum(total_tax), sum(discounts), sum(refunds)
FROM sales_by_ticket_type_daily GROUP BY 1, 2, 3, 4, 5, 6;

INSERT INTO sales_by_event_monthly
SELECT org_id, event_id, date_trunc('month', bucket, 'UTC'), payment_type, currency,
       sum(orders), sum(tickets), sum(gross_revenue), sum(net_sales), sum(service_fees),
       sum(total_tax), sum(discounts), sum(refunds)
FROM sales_by_event_daily GROUP BY 1, 2, 3, 4, 5;

INSERT INTO sales_by_order_attrs_monthly
SELECT org_id, date_trunc('month', bucket, 'UTC'), payment_type, currency,
       sum(orders), sum(tickets), sum(gross_revenue), sum(net_sales), sum(service_fees),
       sum(total_tax), sum(discounts), sum(refunds)
FROM sales_by_order_attrs_daily GROUP BY 1, 2, 3, 4;
