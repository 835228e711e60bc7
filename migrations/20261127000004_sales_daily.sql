-- A daily tier beside each 15-minute sales aggregate: the same cells rolled up to whole UTC
-- days (`bucket` is the UTC midnight), maintained by the projector in the same transaction.
-- A summary reads whole UTC days here (96 times fewer rows at most) and only the edges of a
-- range that do not fall on UTC midnight, or days counted in another zone, from the 15-minute
-- tier. An order is in one bucket, so its count rolls up exactly.
CREATE TABLE sales_by_ticket_type_daily (LIKE sales_by_ticket_type INCLUDING DEFAULTS);
ALTER TABLE sales_by_ticket_type_daily ADD CONSTRAINT sales_by_ticket_type_daily_pkey
    PRIMARY KEY (org_id, event_id, ticket_type_id, bucket, payment_type, currency)
    INCLUDE (orders, tickets, gross_revenue, net_sales, service_fees, total_tax, discounts, refunds);

CREATE TABLE sales_by_event_daily (LIKE sales_by_event INCLUDING DEFAULTS);
ALTER TABLE sales_by_event_daily ADD CONSTRAINT sales_by_event_daily_pkey
    PRIMARY KEY (org_id, event_id, bucket, payment_type, currency)
    INCLUDE (orders, tickets, gross_revenue, net_sales, service_fees, total_tax, discounts, refunds);

CREATE TABLE sales_by_order_attrs_daily (LIKE sales_by_order_attrs INCLUDING DEFAULTS);
ALTER TABLE sales_by_order_attrs_daily ADD CONSTRAINT sales_by_order_attrs_daily_pkey
    PRIMARY KEY (org_id, bucket, payment_type, currency)
    INCLUDE (orders, tickets, gross_revenue, net_sales, service_fees, total_tax, discounts, refunds);

-- What was projected before this migration.
INSERT INTO sales_by_ticket_type_daily
SELECT org_id, event_id, ticket_type_id, date_trunc('day', bucket, 'UTC'), payment_type, currency,
       sum(orders), sum(tickets), sum(gross_revenue), sum(net_sales), sum(service_fees),
       sum(total_tax), sum(discounts), sum(refunds)
FROM sales_by_ticket_type GROUP BY 1, 2, 3, 4, 5, 6;

INSERT INTO sales_by_event_daily
SELECT org_id, event_id, date_trunc('day', bucket, 'UTC'), payment_type, currency,
       sum(orders), sum(tickets), sum(gross_revenue), sum(net_sales), sum(service_fees),
       sum(total_tax), sum(discounts), sum(refunds)
FROM sales_by_event GROUP BY 1, 2, 3, 4, 5;

INSERT INTO sales_by_order_attrs_daily
SELECT org_id, date_trunc('day', bucket, 'UTC'), payment_type, currency,
       sum(orders), sum(tickets), sum(gross_revenue), sum(net_sales), sum(service_fees),
       sum(total_tax), sum(discounts), sum(refunds)
FROM sales_by_order_attrs GROUP BY 1, 2, 3, 4;
