-- What the query API needs beyond the projector's own keys: accent- and case-folded trigram
-- search over customers, and lookups by ticket transaction and invoice time.

CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
CREATE EXTENSION IF NOT EXISTS unaccent WITH SCHEMA public;

-- unaccent() is only STABLE (its dictionary could change); pinning the dictionary makes the
-- fold safe to index. Qualified names, so it works whatever the search_path (rebuild).
CREATE OR REPLACE FUNCTION public.showpass_fold(text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    RETURN lower(public.unaccent('public.unaccent'::regdictionary, $1));

-- The text a customer search matches: e-mail, name, phone as written and its digits alone.
CREATE OR REPLACE FUNCTION public.showpass_customer_doc(email text, name text, phone text)
    RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN public.showpass_fold(
        coalesce(email, '') || ' ' || coalesce(name, '') || ' ' || coalesce(phone, '') || ' '
        || coalesce(regexp_replace(phone, '[^0-9]', '', 'g'), ''));

-- Stored, so a search never folds a row again: only the trigram index and this column are read.
ALTER TABLE customers ADD COLUMN search_doc text
    GENERATED ALWAYS AS (public.showpass_customer_doc(email, name, phone)) STORED;
CREATE INDEX customers_search ON customers USING gin (search_doc public.gin_trgm_ops);
CREATE INDEX orders_by_org_newest ON orders (org_id, created_at DESC, transaction_id DESC);
CREATE INDEX tickets_by_transaction ON tickets (transaction_id);
CREATE INDEX invoices_by_time ON invoices (received_at);
CREATE INDEX deliveries_by_event_type ON deliveries (event_type, received_at DESC);

-- The words customers' names and e-mails are made of (folded, letters only, 3 or more), so
-- a search with a typo is corrected against a few thousand words instead of compared with a
-- million customers. Maintained by the projector with the customers.
CREATE TABLE search_words (word text PRIMARY KEY);
CREATE INDEX search_words_trgm ON search_words USING gin (word public.gin_trgm_ops);
