-- Issue 17: a search whose every word is under three letters (`jo`) lists the customers with
-- a word that starts with them, through the padded trigrams of a word's start (`"  j"`,
-- `" jo"`). In search_doc the e-mail's domain starts words too (pg_trgm splits `x@corp.com`
-- into `x`, `corp` and `com`), so for `co` the index returned every `.com` customer, to be
-- removed on recheck: within an organization, all of its customers. words_doc is the same
-- text without the domain; the domain never starts a word after a space, so the customers
-- listed are the same and only the index's answer is narrower. It begins with a space, so
-- every word, the first one included, starts after one: `words_doc LIKE '% jo%'` is one index
-- condition, not `LIKE 'jo%' OR LIKE '% jo%'`, two scans of the same trigrams.
CREATE OR REPLACE FUNCTION public.showpass_customer_words(email text, name text, phone text)
    RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ' ' || public.showpass_fold(
        coalesce(split_part(email, '@', 1), '') || ' ' || coalesce(name, '') || ' '
        || coalesce(phone, '') || ' ' || coalesce(regexp_replace(phone, '[^0-9]', '', 'g'), ''));

ALTER TABLE customers ADD COLUMN words_doc text
    GENERATED ALWAYS AS (public.showpass_customer_words(email, name, phone)) STORED;
CREATE INDEX customers_words_by_org ON customers
    USING gin (org_id, words_doc public.gin_trgm_ops);
