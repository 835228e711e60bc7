-- Issue 17: customer search within one organization reads only that organization's entries.
-- The trigram index gains the organization as its first column (btree_gin), so `org_id = $1
-- AND search_doc LIKE ...` is one index condition: a common first name is its holders in the
-- organization, not its 33,000 holders in all of them, and a 2-letter search (no trigram) is
-- the organization's customers, not a scan of the table. Searches across organizations use
-- the second column alone, as before.
CREATE EXTENSION IF NOT EXISTS btree_gin WITH SCHEMA public;
CREATE INDEX customers_search_by_org ON customers
    USING gin (org_id, search_doc public.gin_trgm_ops);
DROP INDEX customers_search;
