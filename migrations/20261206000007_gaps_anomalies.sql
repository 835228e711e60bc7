-- Issue 14: what is missing (gaps) and what deserves a person's look (anomalies). Both are
-- derived by the projector from the ledger and the delivery log, so `showpass rebuild`
-- derives them again (and derives them for the events applied before this migration).

-- Each transfer or transferred invoice, with what the two sides of one transfer share: the
-- organization and the tickets' (event, ticket type) multiset (`signature`).
CREATE TABLE transfer_sides (
    idempotency_key text PRIMARY KEY,
    org_id          text NOT NULL,
    transaction_id  text NOT NULL,
    event_type      text NOT NULL,
    signature       text NOT NULL,
    delivery_id     uuid,
    received_at     timestamptz NOT NULL,
    stream_seq      bigint NOT NULL,
    -- Paired with a side of the other kind (first unmatched with first unmatched).
    matched         boolean NOT NULL DEFAULT false
);
-- Only the unmatched sides are ever looked for: a handful, however many transfers there were.
CREATE INDEX transfer_sides_unmatched ON transfer_sides (org_id, signature) WHERE NOT matched;

CREATE TABLE gaps (
    kind           text NOT NULL CHECK (kind IN ('missing_purchase', 'unmatched_transfer')),
    org_id         text NOT NULL,
    transaction_id text NOT NULL,
    -- unmatched_transfer: the side's signature, to find its group again.
    signature      text,
    events_seen    jsonb NOT NULL,
    first_seen_at  timestamptz NOT NULL,
    resend_before  timestamptz NOT NULL,
    -- When it counts as open: at once for a missing purchase, an hour later for a transfer.
    open_from      timestamptz NOT NULL,
    PRIMARY KEY (kind, org_id, transaction_id)
);
-- `/v1/gaps` lists by `resend_before` (and the key), for all or one organization.
CREATE INDEX gaps_oldest ON gaps (resend_before, kind, org_id, transaction_id);
CREATE INDEX gaps_by_org ON gaps (org_id, resend_before, kind, transaction_id);
CREATE INDEX gaps_by_signature ON gaps (org_id, signature) WHERE signature IS NOT NULL;

CREATE TABLE anomalies (
    kind           text NOT NULL CHECK (kind IN ('totals_mismatch', 'refund_exceeds_purchase',
        'currency_mismatch', 'conflicting_redelivery', 'id_transaction_mismatch')),
    delivery_id    uuid NOT NULL,
    org_id         text,
    transaction_id text,
    detected_at    timestamptz NOT NULL,
    detail         text NOT NULL,
    PRIMARY KEY (kind, delivery_id)
);
-- `/v1/anomalies` lists newest first (these scanned backwards), for all or one organization.
CREATE INDEX anomalies_newest ON anomalies (detected_at, kind, delivery_id);
CREATE INDEX anomalies_by_org ON anomalies (org_id, detected_at, kind, delivery_id);
CREATE INDEX anomalies_by_order ON anomalies (org_id, transaction_id);

-- End-to-end health (`/v1/health`): the last accepted delivery of each endpoint, kept by the
-- projector (one row per endpoint, so the answer never scans the log) ...
CREATE TABLE endpoint_activity (
    endpoint         text PRIMARY KEY,
    last_accepted_at timestamptz NOT NULL,
    last_delivery_id uuid NOT NULL
);
-- ... and the failed events, few, counted from a small index.
CREATE INDEX deliveries_failed ON deliveries (received_at) WHERE processing = 'failed';
