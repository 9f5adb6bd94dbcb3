-- Daily summaries for the reports that read access_log row by row: broken-links,
-- offenders, agents and referers. Idempotent like every file here.
--
-- Each UTC day is counted once into small tables, per the keys the reports group by
-- plus what their filters need (vhost, the bot flag); `logpipe report` reads them for
-- the days of its window whose summary is up to date, and counts the rest (the
-- partial days at either end, the current day's last hour or so, days loaded late or
-- not summarized yet) from access_log as it runs (src/logpipe/reports/queries/daily.py).
-- --source, and --path for offenders and agents, read access_log alone: the summaries
-- keep neither.
--
-- A day's summary is up to date while the day's totals in the quarter-hour rollup
-- (logpipe_quarters: requests, bytes, bot requests and the sum of the statuses), up
-- to where the summary goes, are those it was made from: a row loaded late, deleted
-- or reclassified changes them, and the day is counted from access_log again until
-- logpipe_daily_refresh() redoes it. (A change that leaves all four sums as they were,
-- e.g. an UPDATE of a row's address, goes unnoticed: rows are not changed in place.)
-- The writer refreshes yesterday, the day before and today when idle (hourly);
-- `logpipe report` the days of its window (where its role may: the owner). Days
-- `logpipe prune` removed from access_log are never read from here (the reports count
-- the rows kept) and their summaries go at the next refresh.
--
-- No btree index on a logged value (a hostile 8 KB referer would not fit an entry):
-- the tables are read by day; the clients table by a hash of the address, the path
-- referers by a hash of the path.

CREATE TABLE IF NOT EXISTS logpipe_daily_days (
    day          date        PRIMARY KEY,
    upto         timestamptz NOT NULL,     -- summarized from the day's start to this:
                                           -- its end, or an hour of the current day
    hits         bigint      NOT NULL,     -- the totals of access_log it was made from,
    bytes        bigint      NOT NULL,     -- as logpipe_quarters counts them
    bot_hits     bigint      NOT NULL,
    status_sum   bigint      NOT NULL,     -- sum of coalesce(status, 0)
    refreshed_at timestamptz NOT NULL DEFAULT now()
);

-- Remote hosts with at least one 4xx or 5xx answer that day (per vhost and bot flag).
CREATE TABLE IF NOT EXISTS logpipe_daily_offenders (
    day           date        NOT NULL,
    vhost         text,
    bot           boolean     NOT NULL,
    remote_host   text,
    errors        bigint      NOT NULL,
    client_errors bigint      NOT NULL,
    server_errors bigint      NOT NULL,
    requests      bigint      NOT NULL,
    last_seen     timestamptz NOT NULL
);

-- The other remote hosts of the day: their requests, for offenders that erred on
-- other days of a window.
CREATE TABLE IF NOT EXISTS logpipe_daily_clients (
    day         date        NOT NULL,
    vhost       text,
    bot         boolean     NOT NULL,
    remote_host text,
    requests    bigint      NOT NULL,
    last_seen   timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS logpipe_daily_agents (
    day        date        NOT NULL,
    vhost      text,
    user_agent text,
    is_bot     boolean,
    hits       bigint      NOT NULL,
    last_seen  timestamptz NOT NULL
);

-- Requests per referer, except those from the row's own vhost (never external), with
-- the referer's host (logpipe_url_host): logpipe_site_hosts is applied when
-- reporting, so a change to it counts at once.
CREATE TABLE IF NOT EXISTS logpipe_daily_referers (
    day     date    NOT NULL,
    vhost   text,
    bot     boolean NOT NULL,
    referer text    NOT NULL,
    host    text,
    hits    bigint  NOT NULL
);

-- The same per path too, for `referers --path P` of a path without counts of its own
-- (logpipe_hot_paths, 020_reports.sql): the report index (010_indexes.sql) keys rows on
-- their path alone, so their referers are read from the rows themselves; here a path's
-- days are a few rows each, and only the rest of the window is read row by row. Read
-- by a hash of the path (no btree entry holds a hostile path), for days whose
-- path_referers (in logpipe_daily_days) says they were made with it.
CREATE TABLE IF NOT EXISTS logpipe_daily_path_referers (
    day     date    NOT NULL,
    vhost   text,
    bot     boolean NOT NULL,
    path    text,
    referer text    NOT NULL,
    host    text,
    hits    bigint  NOT NULL
);

-- 4xx answers to requests with a referer, per referer and path: the statuses as bits
-- (bit 0 for 400 ... bit 99 for 499), whether the referer's host is the vhost's own
-- (else the report tests `host` against logpipe_site_hosts).
CREATE TABLE IF NOT EXISTS logpipe_daily_broken (
    day       date        NOT NULL,
    vhost     text,
    bot       boolean     NOT NULL,
    referer   text        NOT NULL,
    path      text,
    own       boolean     NOT NULL,
    host      text,
    statuses  bit(100)    NOT NULL,
    hits      bigint      NOT NULL,
    last_seen timestamptz NOT NULL
);

-- Requests served (status below 400) per hour and page (logpipe_pages.id), as
-- logpipe_rollup_daily counts them per day: `pages`, `static` and `tree` read the whole
-- hours of a window's partial first or last day here, and only the partial hour from
-- access_log (src/logpipe/reports/queries/pages.py), where they read up to 12 hours of
-- rows. A day's hours are read while its summary is up to date and page_hours (in
-- logpipe_daily_days) says they were made with it: not for a summary from before this
-- table, nor for a day with rows of a page not yet in logpipe_pages when it was made.
CREATE TABLE IF NOT EXISTS logpipe_daily_page_hours (
    day            date        NOT NULL,
    hour           timestamptz NOT NULL,
    page_id        integer     NOT NULL,
    hits           bigint      NOT NULL,
    bot_hits       bigint      NOT NULL,
    bytes          bigint      NOT NULL,
    bot_bytes      bigint      NOT NULL,
    views          bigint      NOT NULL,
    bot_views      bigint      NOT NULL,
    view_bytes     bigint      NOT NULL,
    bot_view_bytes bigint      NOT NULL
);

DO $$
DECLARE
    made_with text;
BEGIN  -- false: a summary from before the table (page_hours, 2026-12-04; path_referers)
    FOREACH made_with IN ARRAY ARRAY['page_hours', 'path_referers'] LOOP
        IF NOT EXISTS (SELECT FROM pg_attribute
                        WHERE attrelid = 'logpipe_daily_days'::regclass
                          AND attname = made_with AND NOT attisdropped) THEN
            EXECUTE format('ALTER TABLE logpipe_daily_days'
                           ' ADD COLUMN %I boolean NOT NULL DEFAULT false', made_with);
        END IF;
    END LOOP;
END
$$;

-- A 4xx status as its bit in logpipe_daily_broken.statuses, and the bits as
-- `report broken-links` lists them ('404,410').
CREATE OR REPLACE FUNCTION logpipe_status_bit(status smallint) RETURNS bit(100)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT B'1'::bit(100) >> (status - 400)
$$;

CREATE OR REPLACE FUNCTION logpipe_status_list(statuses bit(100)) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT string_agg(s::text, ',' ORDER BY s::text)
      FROM generate_series(400, 499) s WHERE get_bit(statuses, s - 400) = 1
$$;

DO $$
BEGIN
    IF to_regclass('logpipe_daily_offenders_day') IS NULL THEN
        CREATE INDEX logpipe_daily_offenders_day ON logpipe_daily_offenders (day);
    END IF;
    IF to_regclass('logpipe_daily_clients_host') IS NULL THEN
        CREATE INDEX logpipe_daily_clients_host
            ON logpipe_daily_clients (hashtextextended(coalesce(remote_host, ''), 0));
    END IF;
    IF to_regclass('logpipe_daily_clients_day') IS NULL THEN
        CREATE INDEX logpipe_daily_clients_day ON logpipe_daily_clients (day);
    END IF;
    IF to_regclass('logpipe_daily_agents_day') IS NULL THEN
        CREATE INDEX logpipe_daily_agents_day ON logpipe_daily_agents (day);
    END IF;
    IF to_regclass('logpipe_daily_referers_day') IS NULL THEN
        CREATE INDEX logpipe_daily_referers_day ON logpipe_daily_referers (day);
    END IF;
    IF to_regclass('logpipe_daily_path_referers_path') IS NULL THEN
        CREATE INDEX logpipe_daily_path_referers_path
            ON logpipe_daily_path_referers (hashtextextended(coalesce(path, ''), 0), day);
    END IF;
    IF to_regclass('logpipe_daily_broken_day') IS NULL THEN
        CREATE INDEX logpipe_daily_broken_day ON logpipe_daily_broken (day);
    END IF;
    IF to_regclass('logpipe_daily_page_hours_day_page') IS NULL THEN  -- a few pages' hours
        CREATE INDEX logpipe_daily_page_hours_day_page
            ON logpipe_daily_page_hours (day, page_id);
    END IF;
END
$$;

-- The UTC days from `lo` to `hi` (dates, NULL: no bound) that access_log has rows of
-- according to the rollup; for each, how far its summary goes (upto, NULL for none)
-- and whether it is up to date that far. A day `logpipe prune` removed never is: the
-- rollup still counts it, access_log no more.
CREATE OR REPLACE FUNCTION logpipe_daily_state(lo date, hi date)
RETURNS TABLE (day date, upto timestamptz, fresh boolean)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT q.day, d.upto,
           coalesce(d.hits = coalesce(sum(q.hits) FILTER (WHERE q.quarter < d.upto), 0)
                    AND d.bytes = coalesce(sum(q.bytes) FILTER (WHERE q.quarter < d.upto), 0)
                    AND d.bot_hits = coalesce(sum(q.hits) FILTER (WHERE q.quarter < d.upto
                                                                    AND q.bot), 0)
                    AND d.status_sum = coalesce(sum(q.hits * q.status)
                                                    FILTER (WHERE q.quarter < d.upto), 0)
                    AND q.day >= coalesce(logpipe_pruned_day(), '-infinity'),
                    false)
      FROM (SELECT (quarter AT TIME ZONE 'UTC')::date AS day, quarter, hits, bytes, bot, status
              FROM logpipe_quarters
             WHERE (lo IS NULL OR quarter >= lo::timestamp AT TIME ZONE 'UTC')
               AND (hi IS NULL OR quarter < hi::timestamp AT TIME ZONE 'UTC')) q
      LEFT JOIN logpipe_daily_days d ON d.day = q.day
     GROUP BY q.day, d.day
    HAVING sum(q.hits) > 0
$$;

-- The days logpipe_daily_refresh(lo, hi) summarizes (see below), each with the end
-- of what its summary is to count: one definition for the refresh and for the report
-- that says how many days it waits for (src/logpipe/reports/queries/daily.py).
CREATE OR REPLACE FUNCTION logpipe_daily_due(lo date, hi date)
RETURNS TABLE (day date, upto timestamptz)
LANGUAGE sql STABLE AS $$
    WITH c AS (
        SELECT date_bin('1 hour', now() - interval '5 minutes', timestamptz 'epoch')
                   AS settled,
               logpipe_pruned_day() AS pruned
    )
    SELECT s.day, e.upto
      FROM c
     CROSS JOIN logpipe_daily_state(lo, hi) s
     CROSS JOIN LATERAL (  -- the day's end, or the settled hour for today
         SELECT least((s.day + 1)::timestamp AT TIME ZONE 'UTC', c.settled) AS upto) e
      LEFT JOIN logpipe_daily_days dd ON dd.day = s.day
     WHERE (NOT s.fresh OR s.upto < e.upto
            -- made before the page hours, or before a page had its id, or before the
            -- path referers
            OR NOT coalesce(dd.page_hours AND dd.path_referers, false))
       AND s.day::timestamp AT TIME ZONE 'UTC' < c.settled
       AND (c.pruned IS NULL OR s.day >= c.pruned)
     ORDER BY s.day
$$;

-- Summarize the days from `lo` to `hi` (dates; NULL: no bound) whose summary is
-- missing, out of date, short of the day's end, or without its page hours or path
-- referers (made before them, or while a page of the day had no id yet: page hours),
-- except days `logpipe prune` emptied
-- (whose summaries it deletes). The current UTC day is summarized up to the last
-- whole hour that ended 5 minutes ago or more (rows of a later time may still be on
-- their way), so that reports read only its last hour or so from access_log; again
-- at the next call an hour later. Returns how many days it
-- summarized, or NULL when another session is at it (the reports count those days
-- from access_log meanwhile). SECURITY DEFINER like the fold, so that a role granted
-- EXECUTE keeps the summaries without any right on them. Each day is one statement:
-- its parts and its totals see the same rows.
CREATE OR REPLACE FUNCTION logpipe_daily_refresh(lo date DEFAULT NULL, hi date DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    pruned date := logpipe_pruned_day();
    d date;
    t0 timestamptz;
    t1 timestamptz;
    done integer := 0;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('logpipe_daily_refresh')) THEN
        RETURN NULL;
    END IF;
    IF pruned IS NOT NULL THEN
        DELETE FROM logpipe_daily_days s WHERE s.day < pruned;
        DELETE FROM logpipe_daily_offenders s WHERE s.day < pruned;
        DELETE FROM logpipe_daily_clients s WHERE s.day < pruned;
        DELETE FROM logpipe_daily_agents s WHERE s.day < pruned;
        DELETE FROM logpipe_daily_referers s WHERE s.day < pruned;
        DELETE FROM logpipe_daily_path_referers s WHERE s.day < pruned;
        DELETE FROM logpipe_daily_broken s WHERE s.day < pruned;
        DELETE FROM logpipe_daily_page_hours s WHERE s.day < pruned;
    END IF;
    FOR d, t1 IN SELECT due.day, due.upto FROM logpipe_daily_due(lo, hi) due LOOP
        t0 := d::timestamp AT TIME ZONE 'UTC';
        DELETE FROM logpipe_daily_offenders s WHERE s.day = d;
        DELETE FROM logpipe_daily_clients s WHERE s.day = d;
        DELETE FROM logpipe_daily_agents s WHERE s.day = d;
        DELETE FROM logpipe_daily_referers s WHERE s.day = d;
        DELETE FROM logpipe_daily_path_referers s WHERE s.day = d;
        DELETE FROM logpipe_daily_broken s WHERE s.day = d;
        DELETE FROM logpipe_daily_page_hours s WHERE s.day = d;
        WITH hosts AS MATERIALIZED (
            SELECT a.vhost, coalesce(a.is_bot, a.user_agent IS NULL) AS bot, a.remote_host,
                   count(*) FILTER (WHERE a.status >= 400) AS errors,
                   count(*) FILTER (WHERE a.status BETWEEN 400 AND 499) AS client_errors,
                   count(*) FILTER (WHERE a.status >= 500) AS server_errors,
                   count(*) AS requests, max(a.time) AS last_seen,
                   sum(logpipe_rollup_bytes(a.bytes, a.bytes_out)) AS bytes,
                   sum(coalesce(a.status, 0)) AS status_sum
              FROM access_log a WHERE a.time >= t0 AND a.time < t1
             GROUP BY 1, 2, 3
        ), offenders AS (
            INSERT INTO logpipe_daily_offenders
            SELECT d, h.vhost, h.bot, h.remote_host, h.errors, h.client_errors,
                   h.server_errors, h.requests, h.last_seen
              FROM hosts h WHERE h.errors > 0
        ), clients AS (
            INSERT INTO logpipe_daily_clients
            SELECT d, h.vhost, h.bot, h.remote_host, h.requests, h.last_seen
              FROM hosts h WHERE h.errors = 0
        ), agents AS (
            INSERT INTO logpipe_daily_agents
            SELECT d, a.vhost, a.user_agent, a.is_bot, count(*), max(a.time)
              FROM access_log a WHERE a.time >= t0 AND a.time < t1
             GROUP BY 2, 3, 4
        ), path_referers AS MATERIALIZED (
            SELECT g.vhost, g.bot, g.path, g.referer, r.host, g.hits
              FROM (SELECT a.vhost, coalesce(a.is_bot, a.user_agent IS NULL) AS bot,
                           a.path, a.referer, count(*) AS hits
                      FROM access_log a
                     WHERE a.time >= t0 AND a.time < t1
                       AND a.referer IS NOT NULL AND a.referer <> ''
                     GROUP BY 1, 2, 3, 4) g
             CROSS JOIN LATERAL (SELECT logpipe_url_host(g.referer) AS host OFFSET 0) r
             WHERE NOT coalesce(r.host = logpipe_host(g.vhost), false)
        ), path_rows AS (
            INSERT INTO logpipe_daily_path_referers
            SELECT d, p.vhost, p.bot, p.path, p.referer, p.host, p.hits FROM path_referers p
        ), referers AS (  -- the path's rows added up
            INSERT INTO logpipe_daily_referers
            SELECT d, p.vhost, p.bot, p.referer, p.host, sum(p.hits)
              FROM path_referers p GROUP BY p.vhost, p.bot, p.referer, p.host
        ), broken AS (
            INSERT INTO logpipe_daily_broken
            SELECT d, g.vhost, g.bot, g.referer, g.path,
                   coalesce(r.host = logpipe_host(g.vhost), false), r.host, g.statuses,
                   g.hits, g.last_seen
              FROM (SELECT a.vhost, coalesce(a.is_bot, a.user_agent IS NULL) AS bot,
                           a.referer, a.path, bit_or(logpipe_status_bit(a.status)) AS statuses,
                           count(*) AS hits, max(a.time) AS last_seen
                      FROM access_log a
                     WHERE a.time >= t0 AND a.time < t1
                       AND a.status BETWEEN 400 AND 499 AND a.referer IS NOT NULL
                       AND a.referer <> ''
                     GROUP BY 1, 2, 3, 4) g
             CROSS JOIN LATERAL (SELECT logpipe_url_host(g.referer) AS host OFFSET 0) r
        ), served AS MATERIALIZED (
            -- as pages reads access_log for part of a day (pages.py, _raw_part), keyed
            -- as the rollups key pages; a page the fold has not numbered yet has no id
            SELECT g.*, p.id AS page_id
              FROM (SELECT logpipe_hour(a.time) AS hour, a.vhost, a.path,
                           count(*) AS hits, count(*) FILTER (WHERE a.bot) AS bot_hits,
                           coalesce(sum(a.bytes), 0) AS bytes,
                           coalesce(sum(a.bytes) FILTER (WHERE a.bot), 0) AS bot_bytes,
                           count(*) FILTER (WHERE a.view) AS views,
                           count(*) FILTER (WHERE a.view AND a.bot) AS bot_views,
                           coalesce(sum(a.bytes) FILTER (WHERE a.view), 0) AS view_bytes,
                           coalesce(sum(a.bytes) FILTER (WHERE a.view AND a.bot), 0)
                               AS bot_view_bytes
                      FROM (SELECT r.time, logpipe_rollup_vhost(r.vhost) AS vhost,
                                   logpipe_rollup_path(r.path) AS path,
                                   coalesce(r.is_bot, r.user_agent IS NULL) AS bot,
                                   logpipe_rollup_bytes(r.bytes, r.bytes_out) AS bytes,
                                   logpipe_is_view(r.method) AS view
                              FROM access_log r
                             WHERE r.time >= t0 AND r.time < t1 AND r.status < 400) a
                     GROUP BY 1, 2, 3) g
              LEFT JOIN logpipe_pages p ON p.vhost = g.vhost AND p.path = g.path
        ), page_hours AS (
            INSERT INTO logpipe_daily_page_hours
            SELECT d, s.hour, s.page_id, s.hits, s.bot_hits, s.bytes, s.bot_bytes, s.views,
                   s.bot_views, s.view_bytes, s.bot_view_bytes
              FROM served s WHERE s.page_id IS NOT NULL
        )
        INSERT INTO logpipe_daily_days AS s (day, upto, hits, bytes, bot_hits, status_sum,
                                            page_hours, path_referers)
        SELECT d, t1, coalesce(sum(h.requests), 0), coalesce(sum(h.bytes), 0),
               coalesce(sum(h.requests) FILTER (WHERE h.bot), 0),
               coalesce(sum(h.status_sum), 0),
               NOT EXISTS (SELECT FROM served WHERE page_id IS NULL), true
          FROM hosts h
        ON CONFLICT (day) DO UPDATE
           SET upto = excluded.upto, hits = excluded.hits, bytes = excluded.bytes,
               bot_hits = excluded.bot_hits, status_sum = excluded.status_sum,
               page_hours = excluded.page_hours, path_referers = excluded.path_referers,
               refreshed_at = now();
        done := done + 1;
    END LOOP;
    RETURN done;
END
$$;
DO $$
BEGIN  -- pinned to the schema logpipe lives in, like the fold (020_reports.sql)
    EXECUTE format('ALTER FUNCTION logpipe_daily_refresh(date, date)'
                   ' SET search_path = pg_catalog, %I, pg_temp', current_schema());
END
$$;
-- JIT compiling a day's statement costs more than running it
ALTER FUNCTION logpipe_daily_refresh(date, date) SET jit = off;
ALTER FUNCTION logpipe_daily_refresh(date, date) SET work_mem = '64MB';
REVOKE EXECUTE ON FUNCTION logpipe_daily_refresh(date, date) FROM PUBLIC;
