-- Indexes for the reports. Every index on access_log slows down COPY, so there is
-- exactly one: `logpipe report referers --path P` (and report_referers WHERE path =)
-- reads only this index, in (vhost, referer) order, without touching the table.
-- The other reports read the daily rollup (pages) or scan by time with the BRIN
-- index of 001_tables.sql.
CREATE INDEX IF NOT EXISTS access_log_path_vhost_referer
    ON access_log (path, vhost, referer) WHERE referer IS NOT NULL;
