-- Indexes for the reports. Every index on access_log slows down COPY, so there is
-- one that matters: `logpipe report referers --path P` (and report_referers WHERE
-- path =) finds the path's rows through it. Its key is the path alone, and it holds
-- nothing else: each row's entry goes at the end of its path's run (ties are broken
-- by the row's position in the table), and the entries of one path are kept as one
-- posting list (btree deduplication, which an index with INCLUDE columns does not
-- get). Loading a row costs the server ~0.5-0.9 us less than with the vhost and
-- referer carried along (bench/ingest_costs.py, 2026-12-04), ~10-15% of its work per
-- row; the report reads those from the rows, and from the daily summaries for whole
-- days (logpipe_daily_path_referers, 050_daily_summaries.sql), so only the last day or
-- so of a path's rows is read one by one. The most requested paths have counts of
-- their own (logpipe_hot_paths in 020_reports.sql). The other reports read the
-- rollups (pages, status, traffic) or scan by time with the BRIN index of
-- 001_tables.sql.
--
-- A btree entry holds at most 2,704 bytes, and a client controls its path and Referer
-- (8 KB each, logged 4 times longer as \xhh): an entry that big would make COPY refuse
-- the row. So the index holds the rows whose path, vhost and referer add up to at most
-- 2,400 bytes (ordinary traffic: all of it; the condition is that of the index that
-- carried all three, kept so that the queries stay the same), and a second, small
-- index holds the others, keyed on the path's first 500 characters (2,000 bytes at
-- most in UTF-8) and nothing else. A query reads both (UNION ALL), each branch
-- spelling out its index's condition word for word so that the planner can use it,
-- and compares the whole path (src/logpipe/reports/queries/referers.py, daily.py,
-- report_referers in 020_reports.sql).
DROP INDEX IF EXISTS access_log_path_vhost_referer;  -- an earlier, costlier key
DO $$
BEGIN
    IF to_regclass('access_log_path_referers') IS NULL THEN  -- see 001_tables.sql
        CREATE INDEX access_log_path_referers
            ON access_log (path)
         WHERE referer IS NOT NULL
           AND octet_length(coalesce(path, '')) + octet_length(coalesce(vhost, ''))
               + octet_length(referer) <= 2400;
    END IF;
    IF to_regclass('access_log_oversize_referers') IS NULL THEN
        CREATE INDEX access_log_oversize_referers
            ON access_log (left(path, 500))
         WHERE referer IS NOT NULL
           AND octet_length(coalesce(path, '')) + octet_length(coalesce(vhost, ''))
               + octet_length(referer) > 2400;
    END IF;
END
$$;
