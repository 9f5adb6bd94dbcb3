-- Indexes for the reports. Every index on access_log slows down COPY, so there is
-- exactly one: `logpipe report referers --path P` (and report_referers WHERE path =)
-- reads only this index, without touching the table (except for the most requested
-- paths, which have counts of their own: logpipe_hot_paths in 020_reports.sql). Its key is the path alone,
-- with vhost and referer carried along: each row's entry goes at the end of its
-- path's run (ties are broken by the row's position in the table), where an entry
-- keyed on the referer too would go anywhere in it. That halves what the index
-- costs at load time; the report groups the path's entries in a hash table instead.
-- The other reports read the rollups (pages, status, traffic) or scan by time with
-- the BRIN index of 001_tables.sql.
DROP INDEX IF EXISTS access_log_path_vhost_referer;  -- an earlier, costlier key
DO $$
BEGIN
    IF to_regclass('access_log_path_referers') IS NULL THEN  -- see 001_tables.sql
        CREATE INDEX access_log_path_referers
            ON access_log (path) INCLUDE (vhost, referer) WHERE referer IS NOT NULL;
    END IF;
END
$$;
