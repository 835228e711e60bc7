-- Issue 17: a search whose every word is under three letters (`jo`) lists the customers with
-- a word that starts with them, through the padded trigrams of a word's start (`"  j"`,
-- `" jo"`). In search_doc the e-mail's domain starts words too (pg_trgm splits `x@corp.com`
-- into `x`, `corp` and `com`), so for `co` the index returned every `.com` customer, to be
-- removed on recheck: within an organization, all of its customers. words_doc is search_doc
-- without each run of non-spaces from an `@` (the domain), after a space. Such a run never
-- begins after a space and always ends at one or at the end, so every word that starts
-- search_doc or follows a space in it does the same in words_doc, and nothing else does:
-- the customers listed are the same, only the index's answer is narrower. The leading space
-- makes `words_doc LIKE '% jo%'` one index condition, not `LIKE 'jo%' OR LIKE '% jo%'`, two
-- scans of the same trigrams.
--
-- Adding the column rewrites `customers` under an exclusive lock (37 s for 1M customers on
-- 2 cores): searches wait, and the projector pauses, while this migration runs.
CREATE OR REPLACE FUNCTION public.showpass_customer_words(email text, name text, phone text)
    RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ' ' || regexp_replace(public.showpass_customer_doc(email, name, phone), '@\S*', '', 'g');

ALTER TABLE customers ADD COLUMN words_doc text
    GENERATED ALWAYS AS (public.showpass_customer_words(email, name, phone)) STORED;
CREATE INDEX customers_words_by_org ON customers
    USING gin (org_id, words_doc public.gin_trgm_ops);
