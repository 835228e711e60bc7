-- The API benchmark's data set: 1,000,000 customers in 200 organizations, 2,500,000 orders
-- of two tickets each (5,000,000 tickets) over a year, their invoices and lines, and the sales
-- aggregates, shaped as the projector writes them. A bulk load equivalent to projecting
-- 2.5 million purchases, so the benchmark does not wait an hour for its data.
SET synchronous_commit = off;
SET work_mem = '256MB';
SET maintenance_work_mem = '1GB';

CREATE TEMP TABLE names AS
SELECT (ARRAY['José','Ana','Liam','Olivia','Noah','Emma','Chloé','Lucas','Mia','Ethan','Zoë',
              'Mateo','Ava','Benoît','Sofia','Jack','Amélie','Leo','Isla','Owen','Priya','Wei',
              'Fatima','Omar','Hana','Kai','Léa','Raj','Ines','Mohammed'])[1 + n % 30] AS first,
       n
FROM generate_series(0, 29) n;

-- Surnames: 60 real ones and 1,600 made of syllables, so a name matches hundreds, not
-- tens of thousands, of customers.
CREATE TEMP TABLE surnames AS
SELECT row_number() OVER () - 1 AS n, x.name AS last FROM (
    SELECT unnest(ARRAY['Müller','Smith','Tremblay','Nguyen','García','Brown','Côté','Wilson',
        'Martin','Lee','Roy','Gagnon','Taylor','Anderson','Thompson','Singh','Chen','Bouchard',
        'Kowalski','O''Brien','Gauthier','Morin','Lavoie','Fortin','Pelletier','Bélanger',
        'Lévesque','Bergeron','Leblanc','Paquette','Girard','Simard','Boucher','Caron',
        'Beaulieu','Cloutier','Dubé','Poirier','Fournier','Lapointe','Johnson','Williams',
        'Jones','Miller','Davis','Rodríguez','Martínez','Hernández','López','González','Patel',
        'Kim','Park','Sato','Suzuki','Rossi','Russo','Schmidt','Schneider','Fischer']) AS name
    UNION ALL
    SELECT initcap(a.s || b.s) FROM unnest(ARRAY['bar','cor','del','fen','gar','hol','jan','kel',
        'lor','mar','nor','pel','quin','ros','sal','tor','val','wes','yar','zan','ash','bri',
        'cam','dor','el','fal','gil','har','ing','kro','lin','mor','nes','ost','pra','ran',
        'ste','tam','ulf','vin']) AS a(s),
        unnest(ARRAY['son','berg','ton','ley','wood','field','man','ford','well','stein','ski',
        'ova','ez','ini','ard','elle','ow','by','ham','ridge','worth','dale','croft','more',
        'mont','ville','ier','eau','ens','holm','quist','lund','strom','gaard','sen','rud',
        'vik','dal','nes','hus']) AS b(s)
) x;

CREATE TEMP TABLE bench_customers AS
SELECT c AS n,
       md5('customer' || c)::uuid AS id,
       (1000 + c % 200)::text AS org_id,
       f.first || ' ' || s.last AS name,
       lower(public.unaccent(f.first) || '.' || replace(public.unaccent(s.last), '''', '')) || c
           || '@' || (ARRAY['gmail.com','outlook.com','yahoo.ca','shaw.ca','telus.net'])[1 + c % 5] AS email,
       '+1 ' || (ARRAY['403','587','780','604','416'])[1 + c % 5] || ' 555 ' || lpad((c % 10000)::text, 4, '0') AS phone
FROM generate_series(0, 999999) c
JOIN names f ON f.n = (c / 7) % 30
JOIN surnames s ON s.n = abs(hashint8(c::bigint)::bigint) % 1660;
CREATE INDEX ON bench_customers (n);
ANALYZE bench_customers;

-- Order i belongs to customer i % 1,000,000: customers below 500,000 have three orders.
CREATE TEMP TABLE bench_orders AS
SELECT i,
       c.org_id,
       'TX' || (10000000 + i) AS tx,
       c.id AS customer_id, c.email, c.name, c.phone,
       (100000 + (c.n % 200) * 10 + (i % 7 + i % 3) % 10)::text AS event_id,
       CASE WHEN (c.n % 200) % 10 = 0 THEN 'USD' ELSE 'CAD' END AS currency,
       (ARRAY['credit','cash','debit','interac','gift_card'])[1 + i % 5] AS payment_type,
       (i % 5)::int AS tt,
       timestamptz '2025-11-27 00:00:00+00' + (i * interval '12.6144 seconds') AS at,
       (i % 20 = 0) AS refunded
FROM generate_series(0, 2499999) i
JOIN bench_customers c ON c.n = i % 1000000;

INSERT INTO shows (org_id, event_id, name, starts_on, ends_on, first_seen)
SELECT DISTINCT ON (org_id, event_id) org_id, event_id, 'Show ' || event_id,
       '2026-06-01T02:00:00Z', '2026-06-01T06:00:00Z', at
FROM bench_orders ORDER BY org_id, event_id, at;

INSERT INTO invoices (idempotency_key, body_sha256, org_id, transaction_id, event_type,
    invoice_type, received_at, stream_seq, delivery_id, customer_id, customer_key,
    customer_name, customer_phone, subscribe_to_venue, payment_type, currency, discounts,
    net_sales, service_fees, account_credit_applied, gross_revenue, organizer_fees, total_tax)
SELECT 'bench-' || i, md5(tx), org_id, tx, 'invoice.purchase', 'sale', at, i + 1,
       md5('delivery' || i)::uuid, customer_id, email, name, phone, i % 2 = 0, payment_type,
       currency, 0, 2 * (20 + tt * 10), 5.90, 0, 2 * (20 + tt * 10) + 5.90, 0,
       round(2 * (20 + tt * 10) * 0.05, 2)
FROM bench_orders;

INSERT INTO invoice_items (idempotency_key, line_no, org_id, transaction_id, item_id,
    invoice_item_type, quantity, event_id, event_name, ticket_type_id, ticket_type_name,
    product_id, product_name, discounts, net_sales, service_fees, gross_revenue, total_tax)
SELECT 'bench-' || i, 0, org_id, tx, (30000000 + i)::text, 'ticket', 2, event_id,
       'Show ' || event_id, event_id || tt, 'Tier ' || tt, NULL, NULL, 0,
       2 * (20 + tt * 10), 5.90, 2 * (20 + tt * 10) + 5.90, round(2 * (20 + tt * 10) * 0.05, 2)
FROM bench_orders;

INSERT INTO tickets (org_id, id, transaction_id, event_id, event_name, ticket_type_id,
    ticket_type_name, barcode, status, status_rank, name_on_ticket, email_on_ticket,
    created_by_transfer, sold, cancelled, updated_at)
SELECT org_id, (2 * i + k)::text, tx, event_id, 'Show ' || event_id, event_id || tt,
       'Tier ' || tt, 'BC' || lpad(to_hex(2 * i + k), 10, '0'),
       CASE WHEN refunded THEN 'refunded' ELSE 'issued' END,
       CASE WHEN refunded THEN 4 ELSE 1 END, name, email, false, true, refunded, at
FROM bench_orders, generate_series(0, 1) k;

INSERT INTO ticket_types (org_id, event_id, ticket_type_id, name, name_seen_at, first_seen)
SELECT org_id, event_id, event_id || tt, 'Tier ' || tt, max(at), min(at)
FROM bench_orders GROUP BY org_id, event_id, tt;

INSERT INTO orders (org_id, transaction_id, kind, status, customer_id, customer_key,
    customer_email, customer_name, currency, payment_type, net_sales, gross_revenue,
    service_fees, total_tax, discounts, refunded, tickets_total, tickets_valid, created_at,
    updated_at)
SELECT org_id, tx, 'purchase', CASE WHEN refunded THEN 'refunded' ELSE 'purchased' END,
       customer_id, email, email, name, currency, payment_type, 2 * (20 + tt * 10),
       2 * (20 + tt * 10) + 5.90, 5.90, round(2 * (20 + tt * 10) * 0.05, 2), 0,
       CASE WHEN refunded THEN 2 * (20 + tt * 10) ELSE 0 END, 2,
       CASE WHEN refunded THEN 0 ELSE 2 END, at, at
FROM bench_orders;

INSERT INTO customers (id, org_id, email, name, phone, subscribed_to_venue, orders_count,
    tickets_count, total_spent, first_seen_at, last_seen_at)
SELECT id, org_id, email, name, phone, n % 2 = 0,
       CASE WHEN n < 500000 THEN 3 ELSE 2 END, CASE WHEN n < 500000 THEN 6 ELSE 4 END,
       0, timestamptz '2025-11-27 00:00:00+00' + (n * interval '12.6144 seconds'),
       timestamptz '2025-11-27 00:00:00+00' + ((n + 2000000) * interval '12.6144 seconds')
FROM bench_customers;

-- The aggregates, per 15-minute bucket, as the projector maintains them.
INSERT INTO sales_by_ticket_type
SELECT org_id, event_id, event_id || tt, date_bin('15 minutes', at, timestamptz 'epoch'),
       payment_type, currency, count(*), sum(CASE WHEN refunded THEN 0 ELSE 2 END),
       sum(2 * (20 + tt * 10) + 5.90), sum(CASE WHEN refunded THEN 0 ELSE 2 * (20 + tt * 10) END),
       sum(5.90), sum(round(2 * (20 + tt * 10) * 0.05, 2)), 0,
       sum(CASE WHEN refunded THEN 2 * (20 + tt * 10) ELSE 0 END)
FROM bench_orders GROUP BY 1, 2, 3, 4, 5, 6;

INSERT INTO sales_by_event
SELECT org_id, event_id, date_bin('15 minutes', at, timestamptz 'epoch'), payment_type,
       currency, count(*), sum(CASE WHEN refunded THEN 0 ELSE 2 END),
       sum(2 * (20 + tt * 10) + 5.90), sum(CASE WHEN refunded THEN 0 ELSE 2 * (20 + tt * 10) END),
       sum(5.90), sum(round(2 * (20 + tt * 10) * 0.05, 2)), 0,
       sum(CASE WHEN refunded THEN 2 * (20 + tt * 10) ELSE 0 END)
FROM bench_orders GROUP BY 1, 2, 3, 4, 5;

INSERT INTO sales_by_order_attrs
SELECT org_id, date_bin('15 minutes', at, timestamptz 'epoch'), payment_type, currency,
       count(*), sum(CASE WHEN refunded THEN 0 ELSE 2 END),
       sum(2 * (20 + tt * 10) + 5.90), sum(CASE WHEN refunded THEN 0 ELSE 2 * (20 + tt * 10) END),
       sum(5.90), sum(round(2 * (20 + tt * 10) * 0.05, 2)), 0,
       sum(CASE WHEN refunded THEN 2 * (20 + tt * 10) ELSE 0 END)
FROM bench_orders GROUP BY 1, 2, 3, 4;

-- Their daily tiers are rolled up here, by each grain's own statement (`Grain::daily_rollup_sql`).
CREATE TABLE bench_loaded (version text NOT NULL);
INSERT INTO bench_loaded VALUES ('v2');
