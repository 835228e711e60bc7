-- Read models: every table here is a projection of the JetStream streams and can be rebuilt.
-- Names are unqualified on purpose: `showpass rebuild` runs these same statements with another
-- schema first on the search_path, projects into it, then swaps the tables in atomically.

-- Where the projection stands in each stream; committed with the changes it covers.
CREATE TABLE checkpoints (
    stream   text PRIMARY KEY,
    last_seq bigint NOT NULL
);

-- The delivery log: accepted deliveries (events stream) and duplicates and rejections
-- (deliveries stream), each with what the projector made of it.
CREATE TABLE deliveries (
    id                 uuid PRIMARY KEY,
    received_at        timestamptz NOT NULL,
    endpoint           text NOT NULL,
    outcome            text NOT NULL CHECK (outcome IN ('accepted', 'duplicate', 'rejected')),
    reason             text,
    detail             text,
    http_status        integer NOT NULL,
    event_type         text,
    webhook_event_uuid text,
    transaction_id     text,
    org_id             text,
    idempotency_key    text,
    remote_addr        text,
    stream             text NOT NULL,
    stream_seq         bigint NOT NULL,
    body_sha256        text,
    body_length        integer,
    body_truncated     boolean NOT NULL DEFAULT false,
    processing         text NOT NULL CHECK (processing IN ('pending', 'applied', 'duplicate', 'skipped', 'failed')),
    error              text,
    UNIQUE (stream, stream_seq)
);
CREATE INDEX deliveries_newest ON deliveries (received_at DESC, id DESC);
CREATE INDEX deliveries_by_key ON deliveries (idempotency_key);
-- Duplicates are few: the projector checks them for conflicting bodies on every batch.
CREATE INDEX deliveries_duplicates ON deliveries (idempotency_key) WHERE outcome = 'duplicate';
CREATE INDEX deliveries_by_transaction ON deliveries (transaction_id);
CREATE INDEX deliveries_by_uuid ON deliveries (webhook_event_uuid);

-- The invoice ledger: one row per applied invoice event, amounts as Showpass sent them. Its
-- key is the exactly-once marker: an event whose idempotency key is here was applied, and
-- `body_sha256` tells a redelivery from a conflicting body.
CREATE TABLE invoices (
    idempotency_key        text PRIMARY KEY,
    body_sha256            text NOT NULL,
    org_id                 text NOT NULL,
    transaction_id         text NOT NULL,
    event_type             text NOT NULL,
    invoice_type           text,
    received_at            timestamptz NOT NULL,
    stream_seq             bigint NOT NULL,
    delivery_id            uuid,
    customer_id            uuid,
    customer_key           text,
    customer_name          text,
    customer_phone         text,
    subscribe_to_venue     boolean,
    payment_type           text,
    currency               text NOT NULL,
    discounts              numeric NOT NULL DEFAULT 0,
    net_sales              numeric NOT NULL DEFAULT 0,
    service_fees           numeric NOT NULL DEFAULT 0,
    account_credit_applied numeric NOT NULL DEFAULT 0,
    gross_revenue          numeric NOT NULL DEFAULT 0,
    organizer_fees         numeric NOT NULL DEFAULT 0,
    total_tax              numeric NOT NULL DEFAULT 0
);
CREATE INDEX invoices_by_order ON invoices (org_id, transaction_id);
CREATE INDEX invoices_by_customer ON invoices (org_id, customer_key);

-- Invoice lines.
CREATE TABLE invoice_items (
    idempotency_key   text NOT NULL,
    line_no           integer NOT NULL,
    org_id            text NOT NULL,
    transaction_id    text NOT NULL,
    item_id           text,
    invoice_item_type text,
    quantity          numeric,
    event_id          text,
    event_name        text,
    ticket_type_id    text,
    ticket_type_name  text,
    product_id        text,
    product_name      text,
    discounts         numeric NOT NULL DEFAULT 0,
    net_sales         numeric NOT NULL DEFAULT 0,
    service_fees      numeric NOT NULL DEFAULT 0,
    gross_revenue     numeric NOT NULL DEFAULT 0,
    total_tax         numeric NOT NULL DEFAULT 0,
    PRIMARY KEY (idempotency_key, line_no)
);
CREATE INDEX invoice_items_by_order ON invoice_items (org_id, transaction_id);

-- Tickets with their current status. `status_rank` only grows, so a ticket never moves back
-- from a later state; `sold` and `cancelled` record what the sales aggregates already counted.
CREATE TABLE tickets (
    org_id              text NOT NULL,
    id                  text NOT NULL,
    transaction_id      text NOT NULL,
    event_id            text,
    event_name          text,
    ticket_type_id      text,
    ticket_type_name    text,
    barcode             text,
    status              text NOT NULL,
    status_rank         integer NOT NULL,
    name_on_ticket      text,
    email_on_ticket     text,
    created_by_transfer boolean NOT NULL DEFAULT false,
    sold                boolean NOT NULL DEFAULT false,
    cancelled           boolean NOT NULL DEFAULT false,
    -- Where the cancellation is counted in the sales aggregates, once the sale has been seen.
    cancel_bucket       timestamptz,
    cancel_payment_type text,
    cancel_currency     text,
    updated_at          timestamptz NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX tickets_by_order ON tickets (org_id, transaction_id);
CREATE INDEX tickets_by_barcode ON tickets (barcode);
CREATE INDEX tickets_by_event ON tickets (event_id);

-- Orders (one per transaction), derived from their invoices and tickets.
CREATE TABLE orders (
    org_id         text NOT NULL,
    transaction_id text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('purchase', 'transfer', 'other')),
    status         text NOT NULL CHECK (status IN ('purchased', 'partially_refunded', 'refunded', 'voided', 'transferred')),
    customer_id    uuid,
    customer_key   text,
    customer_email text,
    customer_name  text,
    currency       text NOT NULL,
    payment_type   text,
    net_sales      numeric NOT NULL,
    gross_revenue  numeric NOT NULL,
    service_fees   numeric NOT NULL,
    total_tax      numeric NOT NULL,
    discounts      numeric NOT NULL,
    refunded       numeric NOT NULL,
    tickets_total  integer NOT NULL,
    tickets_valid  integer NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (org_id, transaction_id)
);
CREATE INDEX orders_by_transaction ON orders (transaction_id);
CREATE INDEX orders_by_customer ON orders (customer_id);
CREATE INDEX orders_by_customer_key ON orders (org_id, customer_key);
CREATE INDEX orders_newest ON orders (created_at DESC, transaction_id DESC);

-- Customers: one per (organization, trimmed lower-cased e-mail).
CREATE TABLE customers (
    id                  uuid PRIMARY KEY,
    org_id              text NOT NULL,
    email               text NOT NULL,
    name                text,
    phone               text,
    subscribed_to_venue boolean NOT NULL DEFAULT false,
    orders_count        integer NOT NULL,
    tickets_count       integer NOT NULL,
    total_spent         numeric NOT NULL,
    first_seen_at       timestamptz NOT NULL,
    last_seen_at        timestamptz NOT NULL,
    UNIQUE (org_id, email)
);

-- The Showpass events (shows) seen.
CREATE TABLE shows (
    org_id     text NOT NULL,
    event_id   text NOT NULL,
    name       text,
    starts_on  text,
    ends_on    text,
    first_seen timestamptz NOT NULL,
    PRIMARY KEY (org_id, event_id)
);

-- Sales aggregates, maintained incrementally, per 15-minute bucket of the delivery's arrival
-- (so any time zone's days can be summed exactly). Each table counts an order once per row it
-- touches; three grains keep `orders` exact for every group_by:
--   sales_by_ticket_type: group_by=ticket_type;
--   sales_by_event: group_by=event, and day/payment_type when filtered to one event;
--   sales_by_order_attrs: day/payment_type across events.
-- `''` stands for "none" in key columns (an invoice without lines has no event).
CREATE TABLE sales_by_ticket_type (
    org_id         text NOT NULL,
    event_id       text NOT NULL,
    ticket_type_id text NOT NULL,
    bucket         timestamptz NOT NULL,
    payment_type   text NOT NULL,
    currency       text NOT NULL,
    orders         bigint NOT NULL DEFAULT 0,
    tickets        bigint NOT NULL DEFAULT 0,
    gross_revenue  numeric NOT NULL DEFAULT 0,
    net_sales      numeric NOT NULL DEFAULT 0,
    service_fees   numeric NOT NULL DEFAULT 0,
    total_tax      numeric NOT NULL DEFAULT 0,
    discounts      numeric NOT NULL DEFAULT 0,
    refunds        numeric NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, event_id, ticket_type_id, bucket, payment_type, currency)
);

CREATE TABLE sales_by_event (
    org_id        text NOT NULL,
    event_id      text NOT NULL,
    bucket        timestamptz NOT NULL,
    payment_type  text NOT NULL,
    currency      text NOT NULL,
    orders        bigint NOT NULL DEFAULT 0,
    tickets       bigint NOT NULL DEFAULT 0,
    gross_revenue numeric NOT NULL DEFAULT 0,
    net_sales     numeric NOT NULL DEFAULT 0,
    service_fees  numeric NOT NULL DEFAULT 0,
    total_tax     numeric NOT NULL DEFAULT 0,
    discounts     numeric NOT NULL DEFAULT 0,
    refunds       numeric NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, event_id, bucket, payment_type, currency)
);

CREATE TABLE sales_by_order_attrs (
    org_id        text NOT NULL,
    bucket        timestamptz NOT NULL,
    payment_type  text NOT NULL,
    currency      text NOT NULL,
    orders        bigint NOT NULL DEFAULT 0,
    tickets       bigint NOT NULL DEFAULT 0,
    gross_revenue numeric NOT NULL DEFAULT 0,
    net_sales     numeric NOT NULL DEFAULT 0,
    service_fees  numeric NOT NULL DEFAULT 0,
    total_tax     numeric NOT NULL DEFAULT 0,
    discounts     numeric NOT NULL DEFAULT 0,
    refunds       numeric NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, bucket, payment_type, currency)
);
