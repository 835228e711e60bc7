-- Side by side: the word-start statement on search_doc (before: two LIKEs) and on words_doc
-- (after: one), on the same sampled 2-letter queries, in turn, in one session.
-- psql -d showpass_bench_api -v n=200 -v per_org=true -f crates/bench/sql/word-starts-side-by-side.sql
CREATE OR REPLACE FUNCTION pg_temp.ws(col text, w text, org text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; n int;
BEGIN
  t0 := clock_timestamp();
  EXECUTE format(
    'SELECT count(*) FROM (SELECT * FROM (SELECT c.id, c.email, c.name, c.phone, c.org_id,
        (1 + COALESCE(1.0::float8 / NULLIF(strpos(c.search_doc, %L), 0), 0))::float8 AS score
      FROM customers c WHERE %s %s) c
      ORDER BY c.score DESC, c.id LIMIT 51) x',
    w,
    CASE WHEN col = 'search_doc'
      THEN format('(c.search_doc LIKE %L OR c.search_doc LIKE %L)', w || '%', '% ' || w || '%')
      ELSE format('c.words_doc LIKE %L', '% ' || w || '%') END,
    CASE WHEN org IS NULL THEN '' ELSE format('AND c.org_id = %L', org) END) INTO n;
  RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$;
SELECT set_config('bench.per_org', :'per_org', false);
CREATE TEMP TABLE samples AS
  SELECT row_number() OVER () AS i, lower(left(split_part(name, ' ', 2), 2)) AS w, org_id
  FROM (SELECT name, org_id FROM customers TABLESAMPLE SYSTEM (1) LIMIT :n) s;
-- warm-up: one pass of each
SELECT count(pg_temp.ws('search_doc', w, CASE WHEN :per_org THEN org_id END)) FROM samples WHERE i <= 20;
SELECT count(pg_temp.ws('words_doc', w, CASE WHEN :per_org THEN org_id END)) FROM samples WHERE i <= 20;
-- Alternating which goes first, so neither always finds the other's pages in the cache.
CREATE TEMP TABLE times (i bigint, w text, before float8, after float8);
DO $$
DECLARE s record; b float8; a float8; per_org boolean := current_setting('bench.per_org')::boolean;
BEGIN
  FOR s IN SELECT * FROM samples ORDER BY i LOOP
    IF s.i % 2 = 0 THEN
      b := pg_temp.ws('search_doc', s.w, CASE WHEN per_org THEN s.org_id END);
      a := pg_temp.ws('words_doc', s.w, CASE WHEN per_org THEN s.org_id END);
    ELSE
      a := pg_temp.ws('words_doc', s.w, CASE WHEN per_org THEN s.org_id END);
      b := pg_temp.ws('search_doc', s.w, CASE WHEN per_org THEN s.org_id END);
    END IF;
    INSERT INTO times VALUES (s.i, s.w, b, a);
  END LOOP;
END $$;
SELECT count(*) AS queries,
  round(percentile_cont(0.5) WITHIN GROUP (ORDER BY before)::numeric, 2) AS before_p50,
  round(percentile_cont(0.99) WITHIN GROUP (ORDER BY before)::numeric, 2) AS before_p99,
  round(max(before)::numeric, 2) AS before_max,
  round(percentile_cont(0.5) WITHIN GROUP (ORDER BY after)::numeric, 2) AS after_p50,
  round(percentile_cont(0.99) WITHIN GROUP (ORDER BY after)::numeric, 2) AS after_p99,
  round(max(after)::numeric, 2) AS after_max
FROM times;
SELECT w, round(before::numeric,2) before, round(after::numeric,2) after FROM times ORDER BY after DESC LIMIT 5;
