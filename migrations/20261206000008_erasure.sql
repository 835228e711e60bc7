-- Issue 14: erasure of a customer. These tables record what was asked and done, and are
-- not projections: `showpass rebuild` keeps them as they are (rebuild::KEPT).

-- One row per person erased: the projector blanks anything of theirs it applies from now on.
-- Never the e-mail itself: its SHA-256 (of the folded address, as customers.email holds it).
CREATE TABLE erasures (
    org_id       text NOT NULL,
    email_sha256 text NOT NULL,
    customer_id  uuid NOT NULL,
    erased_at    timestamptz NOT NULL,
    PRIMARY KEY (org_id, email_sha256)
);
CREATE INDEX erasures_by_customer ON erasures (customer_id);

-- The audit: every request, who made it (a key's name or hash, or `cli`), when, and what it
-- changed.
CREATE TABLE erasure_audit (
    id            uuid PRIMARY KEY,
    org_id        text NOT NULL,
    email_sha256  text NOT NULL,
    customer_id   uuid NOT NULL,
    requested_by  text NOT NULL,
    requested_at  timestamptz NOT NULL,
    finished_at   timestamptz,
    report        jsonb
);
CREATE INDEX erasure_audit_newest ON erasure_audit (requested_at DESC);

-- The idempotency keys of the events that carried an erased person's data: a later
-- duplicate of one (Showpass resending it) is redacted too.
CREATE TABLE erased_keys (
    idempotency_key text PRIMARY KEY,
    org_id          text NOT NULL,
    email_sha256    text NOT NULL
);

-- Stream messages still to be replaced by a redacted copy.
-- `delivery_id`: the delivery the message must carry (its `Showpass-Delivery-Id`), so a
-- sequence that came to mean another message (a renumbered stream) is never touched.
CREATE TABLE erasure_pending (
    stream      text NOT NULL,
    stream_seq  bigint NOT NULL,
    delivery_id uuid,
    PRIMARY KEY (stream, stream_seq)
);

-- Each message replaced: the original is deleted once its copy is stored; `orig_deleted`
-- false means a crash came in between, and the next run deletes it.
CREATE TABLE erased_messages (
    stream       text NOT NULL,
    orig_seq     bigint NOT NULL,
    copy_seq     bigint NOT NULL,
    orig_deleted boolean NOT NULL DEFAULT false,
    PRIMARY KEY (stream, orig_seq)
);
CREATE INDEX erased_messages_undeleted ON erased_messages (stream, orig_seq) WHERE NOT orig_deleted;

-- The delivery log says when a delivery's data was erased.
ALTER TABLE deliveries ADD COLUMN erased_at timestamptz;
