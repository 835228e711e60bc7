-- Issue 17: the ticket types seen, a dimension beside `shows`, so a sales summary by ticket
-- type names its rows from here and reads no `tickets`. A type's name is the one its latest
-- delivery carried (by the time ingest received it, then by the name), so a rename shows, and
-- live projection and `rebuild` agree whatever order the deliveries arrive in.
CREATE TABLE ticket_types (
    org_id         text NOT NULL,
    event_id       text NOT NULL,
    ticket_type_id text NOT NULL,
    name           text,
    name_seen_at   timestamptz,
    first_seen     timestamptz NOT NULL,
    PRIMARY KEY (org_id, event_id, ticket_type_id)
);

-- What was projected before this migration: the names tickets and invoice lines hold, the
-- most recently updated first (a rebuild replaces this with the rule above).
INSERT INTO ticket_types (org_id, event_id, ticket_type_id, name, name_seen_at, first_seen)
SELECT org_id, event_id, ticket_type_id,
       (array_agg(ticket_type_name ORDER BY at DESC) FILTER (WHERE ticket_type_name IS NOT NULL))[1],
       max(at) FILTER (WHERE ticket_type_name IS NOT NULL),
       min(at)
FROM (
    SELECT t.org_id, t.event_id, t.ticket_type_id, t.ticket_type_name, t.updated_at AS at
    FROM tickets t
    WHERE t.event_id IS NOT NULL AND t.ticket_type_id IS NOT NULL
    UNION ALL
    SELECT i.org_id, i.event_id, i.ticket_type_id, i.ticket_type_name, v.received_at
    FROM invoice_items i JOIN invoices v USING (idempotency_key)
    WHERE i.event_id IS NOT NULL AND i.ticket_type_id IS NOT NULL
) seen
GROUP BY org_id, event_id, ticket_type_id;
