-- Indexes for the reports. Every index on access_log slows down COPY, so there is
-- one that matters: `logpipe report referers --path P` (and report_referers WHERE
-- path =) finds the rows of a path through it, except for the most requested paths,
-- which have counts of their own (logpipe_hot_paths in 020_reports.sql: a path with
-- 100,000 requests becomes hot at the next fold). Its key is the path alone: the
-- entries of a path share one posting list (btree deduplication), so the index stays
-- small (45 MB at 10 million rows, against 1.2 GB when it carried vhost and referer
-- for index-only scans) and its inserts stay in memory as the table grows: 0.7 us a
-- row less at 10 million rows. A path below the hot line has its rows read from the
-- table: ~13 ms for 10,000 rows at 10 million, ~280 ms for 85,000 (against 4 and 29
-- ms index-only). The
-- other reports read the rollups (pages, status, traffic) or scan by time with the
-- BRIN index of 001_tables.sql.
--
-- A btree entry holds at most 2,704 bytes, and a client controls its path and Referer
-- (8 KB each, logged 4 times longer as \xhh): an entry that big would make COPY refuse
-- the row. So the index holds the rows whose path, vhost and referer add up to at most
-- 2,400 bytes (ordinary traffic: all of it; the condition is the one the index had
-- when it carried vhost and referer, so that the queries' text still matches it), and
-- a second, small index holds the others, keyed on the path's first 500 characters
-- (2,000 bytes at most in UTF-8) and nothing else. A query reads both (UNION ALL),
-- each branch spelling out its index's condition word for word so that the planner
-- can use it, and compares the whole path (src/logpipe/reports/queries/referers.py,
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
