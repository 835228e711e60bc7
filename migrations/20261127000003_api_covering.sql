-- Summaries read the sales aggregates by index only: the figures ride in the primary keys,
-- so an organization's year of 15-minute buckets is a few hundred contiguous index pages
-- instead of thousands of heap pages scattered as the rows were written.
ALTER TABLE sales_by_ticket_type DROP CONSTRAINT sales_by_ticket_type_pkey,
    ADD CONSTRAINT sales_by_ticket_type_pkey
        PRIMARY KEY (org_id, event_id, ticket_type_id, bucket, payment_type, currency)
        INCLUDE (orders, tickets, gross_revenue, net_sales, service_fees, total_tax, discounts, refunds);
ALTER TABLE sales_by_event DROP CONSTRAINT sales_by_event_pkey,
    ADD CONSTRAINT sales_by_event_pkey
        PRIMARY KEY (org_id, event_id, bucket, payment_type, currency)
        INCLUDE (orders, tickets, gross_revenue, net_sales, service_fees, total_tax, discounts, refunds);
ALTER TABLE sales_by_order_attrs DROP CONSTRAINT sales_by_order_attrs_pkey,
    ADD CONSTRAINT sales_by_order_attrs_pkey
        PRIMARY KEY (org_id, bucket, payment_type, currency)
        INCLUDE (orders, tickets, gross_revenue, net_sales, service_fees, total_tax, discounts, refunds);

-- Phone search by trailing digits ("the last 4", or the whole number however written).
CREATE INDEX customers_phone_suffix ON customers
    (reverse(regexp_replace(phone, '[^0-9]', '', 'g')) text_pattern_ops);
