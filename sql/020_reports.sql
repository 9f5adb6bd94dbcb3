-- Reports: views for psql, helper functions, and the rollups behind pages, status and
-- traffic. Idempotent like every file here: `logpipe initdb` may run it any number of
-- times.
--
-- The views aggregate over all time, e.g.
--     SELECT * FROM report_referers WHERE path = '/about' LIMIT 20;
--     SELECT * FROM report_pages LIMIT 20;
-- `logpipe report NAME --since 30d --path /x --humans ...` runs filtered versions
-- of the same queries (src/logpipe/report.py).
--
-- Bots: a row counts as a bot when is_bot is true, or when is_bot is NULL (not
-- classified) and the request had no User-Agent at all; every other row is human.

-- -- Host names --------------------------------------------------------------------

-- Host names that belong to this site besides each row's own vhost (%v): aliases
-- such as www.example.com, and the site's names for logs without %v (the combined
-- format), where nothing else tells an internal referer from an external one.
-- Fill it from psql:  INSERT INTO logpipe_site_hosts VALUES ('www.example.com');
CREATE TABLE IF NOT EXISTS logpipe_site_hosts (
    host text PRIMARY KEY CHECK (host = lower(host))
);

-- The host of "host", "host:port" or "[v6]:port": lower case, no port, no trailing
-- dot; NULL if empty. Builtin string functions only, so PostgreSQL inlines it into
-- the query (no function call, no regex: ~1 us, against ~5 us for a regex).
CREATE OR REPLACE FUNCTION logpipe_host(hostport text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT nullif(rtrim(lower(left(hostport, strpos(hostport, ']'))
                  || split_part(substr(hostport, strpos(hostport, ']') + 1), ':', 1)), '.'), '')
$$;

-- The host of a URL: 'https://WWW.Example.com:8443/a?b' -> 'www.example.com'; NULL
-- when there is none ('-', 'junk'). Referer headers are serialized URLs without user
-- info ("scheme://host[:port]/path..."), so the host is what follows the second '/'.
CREATE OR REPLACE FUNCTION logpipe_url_host(url text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT logpipe_host(split_part(url, '/', 3))
$$;

-- Is the referer a page of the row's own site: is its host the vhost's host or one
-- of logpipe_site_hosts? False when the vhost is unknown and no site host matches.
-- For psql; the report views and `logpipe report` spell the same test out so that it
-- runs once per distinct (vhost, referer), after grouping (see report_referers).
CREATE OR REPLACE FUNCTION logpipe_same_site(referer text, vhost text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(logpipe_url_host(referer) = logpipe_host(vhost)
                    OR logpipe_url_host(referer) IN (SELECT host FROM logpipe_site_hosts), false)
$$;

-- Is the referer's host the vhost's own? Unlike logpipe_same_site, it never changes
-- for a (referer, vhost): logpipe_path_referers keeps it (its column `own`).
CREATE OR REPLACE FUNCTION logpipe_own_referer(referer text, vhost text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(logpipe_url_host(referer) = logpipe_host(vhost), false)
$$;

-- A value as a rollup key: itself, or, when longer than `max_bytes` (a hostile client's
-- 8 KB path or referer), its first max_bytes / 4 characters, so that every key fits a
-- btree entry (2,704 bytes at most) whatever the bytes; one such value in a fold would
-- otherwise fail every fold after it.
CREATE OR REPLACE FUNCTION logpipe_key(value text, max_bytes integer) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN octet_length(value) <= max_bytes THEN value
                ELSE left(value, max_bytes / 4) END
$$;

-- A row's keys and bytes as every rollup counts them: the pending counts here, and
-- `logpipe report pages` for the partial days it reads from access_log (their pages
-- must meet the rollup's). Keys within 200 + 2,000 + 1,200 bytes: a hot path's referer
-- entry fits a btree entry. A row's bytes are capped at 10^15 (no response is a
-- petabyte), so that a corrupt value cannot overflow the sums.
CREATE OR REPLACE FUNCTION logpipe_rollup_vhost(vhost text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT logpipe_key(coalesce(vhost, ''), 200)
$$;

CREATE OR REPLACE FUNCTION logpipe_rollup_path(path text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT logpipe_key(coalesce(path, ''), 2000)
$$;

CREATE OR REPLACE FUNCTION logpipe_rollup_referer(referer text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT logpipe_key(referer, 1200)
$$;

CREATE OR REPLACE FUNCTION logpipe_rollup_bytes(bytes bigint, bytes_out bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT least(coalesce(bytes, bytes_out, 0), 1000000000000000)
$$;

-- -- Pages and assets --------------------------------------------------------------
--
-- `logpipe report pages` and report_pages count page views: requests served (status
-- below 400) whose method fetches a page, GET or POST, for paths that are not static
-- assets. HEAD (link checkers, monitors), OPTIONS (CORS preflights) and WebDAV's
-- PROPFIND fetch no page. A row without a method (a LogFormat with neither %r nor %m)
-- counts as a view: nothing says otherwise.
CREATE OR REPLACE FUNCTION logpipe_is_view(method text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT method IS NULL OR method IN ('GET', 'POST')
$$;

-- A path as the page reports name it: a run of '/' is one ('//about' is '/about'), as
-- browsers and Apache treat it. strpos first: most paths have no '//' and skip the regex.
CREATE OR REPLACE FUNCTION logpipe_page_path(path text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN strpos(path, '//') > 0 THEN regexp_replace(path, '/{2,}', '/', 'g')
                ELSE path END
$$;

-- Static assets: a path is one when its lower-case form is LIKE one of these patterns.
-- Each page's verdict is kept in logpipe_pages.asset, which a change here updates in
-- the same transaction (below), so a pattern added here counts at the next report, for
-- past requests too; nothing else is rebuilt. Seeded with the defaults
-- when the table is created, never again: a default an operator deletes stays deleted.
--   INSERT INTO logpipe_asset_patterns VALUES ('%.pdf', 'documents');
--   INSERT INTO logpipe_asset_patterns VALUES ('/static/%', 'everything under /static/');
--   DELETE FROM logpipe_asset_patterns WHERE pattern = '%.xml';  -- feeds count as pages
DO $$
BEGIN
    IF to_regclass('logpipe_asset_patterns') IS NULL THEN
        CREATE TABLE logpipe_asset_patterns (
            pattern text PRIMARY KEY CHECK (pattern = lower(pattern)),  -- LIKE, on lower(path)
            kind    text                                                -- what it matches
        );
        INSERT INTO logpipe_asset_patterns (pattern, kind) VALUES
            ('%.css', 'stylesheet'),
            ('%.js', 'script'), ('%.mjs', 'script'),
            ('%.map', 'source map'),
            ('%.png', 'image'), ('%.jpg', 'image'), ('%.jpeg', 'image'), ('%.gif', 'image'),
            ('%.webp', 'image'), ('%.avif', 'image'), ('%.svg', 'image'), ('%.bmp', 'image'),
            ('%.tif', 'image'), ('%.tiff', 'image'),
            ('%.ico', 'favicon'),
            ('%.woff', 'font'), ('%.woff2', 'font'), ('%.ttf', 'font'), ('%.otf', 'font'),
            ('%.eot', 'font'),
            ('%.xml', 'feed or sitemap'), ('%.rss', 'feed'), ('%.atom', 'feed'),
            ('%.webmanifest', 'web app manifest'),
            ('/robots.txt', 'robots.txt');
    END IF;
END
$$;

-- -- Rollups ---------------------------------------------------------------------------
--
-- For `pages`, `static` and `tree`: requests served (status < 400) per path (and of
-- them the page views, see logpipe_is_view), all-time totals in
-- logpipe_pages and per UTC day in logpipe_rollup_daily. `logpipe report pages
-- --since 30d` adds up whole days of the rollup (or subtracts the days outside the
-- window from the totals, when that is less work) and reads access_log only for the
-- partial days at either end. Pages are numbered so that the daily rollup is narrow
-- and groups on an integer.
--
-- For `status` and `traffic`: requests per quarter of an hour, vhost, status and bot
-- flag in logpipe_rollup_quarter (a few dozen rows per quarter: cheap to keep, and
-- days and hours of any time zone are whole quarters).
--
-- How they are kept current, in two steps:
-- 1. Statement-level triggers on access_log (COPY fires them once per batch, with the
--    batch's rows in a transition table) add the batch's counts per day and page,
--    and per quarter, vhost, status and bot flag, to logpipe_pending_pages and
--    logpipe_pending_quarters (and per referer of a hot path, see below, to
--    logpipe_pending_referers): plain INSERTs, in the same transaction as the rows.
-- 2. logpipe_rollup_fold() moves the pending counts into the rollups. Updating a
--    page's counters costs the same for one request as for a thousand, so folding
--    many batches at once is much cheaper than folding each. The writer folds when
--    it has caught up, and every 10 s under sustained load; `logpipe load` and
--    `logpipe report` fold too. The report_* views add what is pending, so they are
--    exact at any moment.

CREATE TABLE IF NOT EXISTS logpipe_pages (
    id        integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vhost     text    NOT NULL,       -- '' when access_log.vhost is NULL
    path      text    NOT NULL,       -- '' when access_log.path is NULL
    hits      bigint  NOT NULL DEFAULT 0,
    bot_hits  bigint  NOT NULL DEFAULT 0,   -- of which bots (see the top of this file)
    bytes     bigint  NOT NULL DEFAULT 0,   -- sum of bytes (%b), else bytes_out (%O)
    bot_bytes bigint  NOT NULL DEFAULT 0,
    UNIQUE (vhost, path),
    -- of which views (logpipe_is_view: GET or POST), and their bytes; a database
    -- older than these columns gets them at the end (below)
    views          bigint NOT NULL DEFAULT 0,
    bot_views      bigint NOT NULL DEFAULT 0,
    view_bytes     bigint NOT NULL DEFAULT 0,
    bot_view_bytes bigint NOT NULL DEFAULT 0
) WITH (fillfactor = 80);  -- room for HOT updates of the counters

CREATE TABLE IF NOT EXISTS logpipe_rollup_daily (
    day       date    NOT NULL,       -- UTC day of the request
    page_id   integer NOT NULL,       -- logpipe_pages.id
    hits      bigint  NOT NULL,
    bot_hits  bigint  NOT NULL,
    bytes     bigint  NOT NULL,
    bot_bytes bigint  NOT NULL,
    PRIMARY KEY (day, page_id),
    -- views as in logpipe_pages; NULL on days counted before logpipe counted views
    -- (kept only here once pruned): the reports read hits there
    views          bigint,
    bot_views      bigint,
    view_bytes     bigint,
    bot_view_bytes bigint
) WITH (fillfactor = 80);

CREATE TABLE IF NOT EXISTS logpipe_rollup_quarter (
    quarter timestamptz NOT NULL,     -- start of the quarter of an hour
    vhost   text        NOT NULL,     -- '' when access_log.vhost is NULL
    status  smallint    NOT NULL,     -- 0 when access_log.status is NULL
    bot     boolean     NOT NULL,
    hits    bigint      NOT NULL,
    bytes   bigint      NOT NULL,
    PRIMARY KEY (quarter, vhost, status, bot)
) WITH (fillfactor = 80);

-- The quarter of an hour a time falls in, the same in every time zone. (date_part,
-- a float8, rather than extract, a numeric since PostgreSQL 14: 10 times faster.)
CREATE OR REPLACE FUNCTION logpipe_quarter(t timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_timestamp(floor(date_part('epoch', t) / 900) * 900)
$$;

-- Counts not yet folded into the rollups, in the rollups' own grain: per UTC day and
-- page (requests served only), and per quarter, vhost, status and bot flag. Counts
-- are negative for rows deleted from access_log.
CREATE TABLE IF NOT EXISTS logpipe_pending_pages (
    day       date   NOT NULL,
    vhost     text   NOT NULL,        -- '' when access_log.vhost is NULL
    path      text   NOT NULL,        -- '' when access_log.path is NULL
    hits      bigint NOT NULL,
    bot_hits  bigint NOT NULL,
    bytes     bigint NOT NULL,
    bot_bytes bigint NOT NULL,
    views          bigint NOT NULL DEFAULT 0,
    bot_views      bigint NOT NULL DEFAULT 0,
    view_bytes     bigint NOT NULL DEFAULT 0,
    bot_view_bytes bigint NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS logpipe_pending_quarters (
    quarter timestamptz NOT NULL,
    vhost   text        NOT NULL,
    status  smallint    NOT NULL,     -- 0 when access_log.status is NULL
    bot     boolean     NOT NULL,
    hits    bigint      NOT NULL,
    bytes   bigint      NOT NULL
);

-- The views columns, added to the page rollups of a database made before them: at the
-- end, only when missing. access_log is locked first, as the rebuild below does, so
-- that a logger's trigger waiting on a table altered here cannot deadlock with us. The
-- daily rollup's days get NULL views (unknown), until the rebuild below counts every
-- day access_log still holds.
DO $$
DECLARE
    t record;
    c text;
BEGIN
    FOR t IN SELECT * FROM (VALUES ('logpipe_pages', ' NOT NULL DEFAULT 0'),
                                   ('logpipe_rollup_daily', ''),
                                   ('logpipe_pending_pages', ' NOT NULL DEFAULT 0')) AS v (name, how)
    LOOP
        FOREACH c IN ARRAY ARRAY['views', 'bot_views', 'view_bytes', 'bot_view_bytes'] LOOP
            IF NOT EXISTS (SELECT FROM pg_attribute
                            WHERE attrelid = t.name::regclass AND attname = c
                              AND NOT attisdropped) THEN
                LOCK TABLE access_log IN SHARE ROW EXCLUSIVE MODE;
                EXECUTE format('ALTER TABLE %I ADD COLUMN %I bigint%s', t.name, c, t.how);
            END IF;
        END LOOP;
    END LOOP;
END
$$;


-- Whether each page is a static asset (logpipe_asset_patterns), kept in
-- logpipe_pages.asset so that the page reports read a flag instead of matching every
-- path against every pattern at each run. The fold classifies the pages it adds; a
-- change to the patterns reclassifies every page in its own transaction (the trigger
-- below), so a pattern counts at once, for past requests too. NULL: not classified
-- yet (never seen committed; the reports classify such a page themselves).
-- logpipe_is_asset takes the patterns as an array: inlined, one array per statement.
CREATE OR REPLACE FUNCTION logpipe_is_asset(path text, patterns text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT lower(logpipe_page_path(path)) LIKE ANY (patterns)
$$;

-- The column and its two partial indexes (the pages left to classify; the few paths
-- with '//', which `pages` adds up with the page they name), when missing. The fold's
-- lock first, the order the fold takes its locks in.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'logpipe_pages'::regclass
                      AND attname = 'asset' AND NOT attisdropped) THEN
        PERFORM pg_advisory_xact_lock(hashtext('logpipe_rollup_fold'));
        ALTER TABLE logpipe_pages ADD COLUMN asset boolean;
    END IF;
    IF to_regclass('logpipe_pages_unclassified') IS NULL THEN
        PERFORM pg_advisory_xact_lock(hashtext('logpipe_rollup_fold'));
        CREATE INDEX logpipe_pages_unclassified ON logpipe_pages (id) WHERE asset IS NULL;
    END IF;
    IF to_regclass('logpipe_pages_slashed') IS NULL THEN
        PERFORM pg_advisory_xact_lock(hashtext('logpipe_rollup_fold'));
        CREATE INDEX logpipe_pages_slashed ON logpipe_pages (id) WHERE path LIKE '%//%';
    END IF;
END
$$;

-- Classify the pages not classified yet, or (every_page) all of them again; returns
-- how many changed. Under the fold's lock: a fold adding pages and a change to the
-- patterns run one after the other, so no page is classified by patterns replaced
-- in between.
CREATE OR REPLACE FUNCTION logpipe_classify_pages(every_page boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    patterns text[];
    changed bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('logpipe_rollup_fold'));
    patterns := ARRAY(SELECT pattern FROM logpipe_asset_patterns);
    IF every_page THEN
        UPDATE logpipe_pages SET asset = logpipe_is_asset(path, patterns)
         WHERE asset IS DISTINCT FROM logpipe_is_asset(path, patterns);
    ELSE
        UPDATE logpipe_pages SET asset = logpipe_is_asset(path, patterns) WHERE asset IS NULL;
    END IF;
    GET DIAGNOSTICS changed = ROW_COUNT;
    RETURN changed;
END
$$;
REVOKE ALL ON FUNCTION logpipe_classify_pages(boolean) FROM PUBLIC;

-- In the patterns' owner's name, whoever changes them.
CREATE OR REPLACE FUNCTION logpipe_asset_patterns_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    PERFORM logpipe_classify_pages(true);
    RETURN NULL;
END
$$;
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION logpipe_asset_patterns_changed()'
                   ' SET search_path = pg_catalog, %I, pg_temp', current_schema());
    IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = 'logpipe_asset_patterns'::regclass
                      AND tgname = 'logpipe_asset_patterns_classify') THEN
        CREATE TRIGGER logpipe_asset_patterns_classify
            AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON logpipe_asset_patterns
            FOR EACH STATEMENT EXECUTE FUNCTION logpipe_asset_patterns_changed();
    ELSIF EXISTS (SELECT FROM pg_trigger WHERE tgrelid = 'logpipe_asset_patterns'::regclass
                     AND tgname = 'logpipe_asset_patterns_classify' AND tgenabled = 'D') THEN
        ALTER TABLE logpipe_asset_patterns ENABLE TRIGGER logpipe_asset_patterns_classify;
    END IF;
END
$$;

-- Every page again at each initdb: cheap (~0.2 s per 100,000 pages, rows changed only
-- where a flag differs), and right even after the patterns changed with the trigger
-- disabled, or were restored from a dump.
SELECT logpipe_classify_pages(true);


-- For `referers --path P` on the most requested paths. The report index answers it by
-- reading every entry of the path: ~100 ms for 600,000 of them. So a path that has
-- served at least 100,000 requests on some vhost becomes "hot" (logpipe_hot_paths,
-- at the fold that sees it cross the line), and from then on its requests are also
-- counted per vhost and referer, like the other rollups: pending per batch, then
-- folded. `logpipe report referers --path P` reads those counts for a hot path.
CREATE TABLE IF NOT EXISTS logpipe_hot_paths (
    path  text PRIMARY KEY,
    since timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS logpipe_path_referers (
    path     text   NOT NULL,
    vhost    text   NOT NULL,         -- '' when access_log.vhost is NULL
    referer  text   NOT NULL,
    hits     bigint NOT NULL,         -- requests of any status with this referer
    bot_hits bigint NOT NULL,
    -- the referer's host (logpipe_url_host) and whether it is the vhost's own: found
    -- once, as the key is added, rather than at every report (~2 us a key, 25,000 keys
    -- for the most requested page); NULL (rows from before these columns): not yet
    host     text,
    own      boolean,
    PRIMARY KEY (path, vhost, referer)
) WITH (fillfactor = 80);

-- The same per hour (logpipe_hour), for windows: `referers --path P --since 30d` adds
-- up the whole hours of the window, or takes the hours outside it from the all-time
-- counts when those are fewer, and reads access_log only for the partial hour at
-- either end.
CREATE TABLE IF NOT EXISTS logpipe_path_referers_hourly (
    path     text        NOT NULL,
    hour     timestamptz NOT NULL,
    vhost    text        NOT NULL,
    referer  text        NOT NULL,
    hits     bigint      NOT NULL,
    bot_hits bigint      NOT NULL,
    PRIMARY KEY (path, hour, vhost, referer)
) WITH (fillfactor = 80);

CREATE TABLE IF NOT EXISTS logpipe_pending_referers (
    path     text   NOT NULL,
    vhost    text   NOT NULL,
    referer  text   NOT NULL,
    hits     bigint NOT NULL,
    bot_hits bigint NOT NULL,
    hour     timestamptz NOT NULL
);

-- Pending counts per hour since rollup v5 (the hourly table). Older ones have no hour:
-- they go, with the hot paths, whose counts the rebuild below recounts from access_log
-- (the next fold promotes them again).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_attribute
                    WHERE attrelid = 'logpipe_pending_referers'::regclass
                      AND attname = 'hour' AND NOT attisdropped) THEN
        TRUNCATE logpipe_hot_paths, logpipe_path_referers, logpipe_pending_referers;
        ALTER TABLE logpipe_pending_referers ADD COLUMN hour timestamptz NOT NULL;
    END IF;
END
$$;

-- The referer's host and own flag of the keys counted before those columns: found once.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_attribute
                    WHERE attrelid = 'logpipe_path_referers'::regclass
                      AND attname = 'own' AND NOT attisdropped) THEN
        ALTER TABLE logpipe_path_referers ADD COLUMN host text, ADD COLUMN own boolean;
        UPDATE logpipe_path_referers
           SET host = logpipe_url_host(referer),
               own = logpipe_own_referer(referer, vhost);
    END IF;
END
$$;

-- Hot paths of 500 characters or more, promoted before the fold left them out (see
-- logpipe_rollup_fold): not hot any more; their requests are read from the index.
DO $$
BEGIN
    IF EXISTS (SELECT FROM logpipe_hot_paths WHERE char_length(path) >= 500) THEN
        DELETE FROM logpipe_hot_paths WHERE char_length(path) >= 500;
        DELETE FROM logpipe_path_referers WHERE char_length(path) >= 500;
        DELETE FROM logpipe_path_referers_hourly WHERE char_length(path) >= 500;
        DELETE FROM logpipe_pending_referers WHERE char_length(path) >= 500;
    END IF;
END
$$;

-- The hour a time falls in, the same in every time zone (date_trunc would use the
-- session's).
CREATE OR REPLACE FUNCTION logpipe_hour(t timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN date_bin('1 hour', t, timestamptz 'epoch');

-- The statement that adds the rows of `source` (access_log rows plus a `sign`
-- column: 1 to add, -1 to take away) to the pending counts. The triggers EXECUTE it
-- with their transition tables as the source, which only the trigger function itself
-- can read. `materialize`: compute each row's keys once and keep them, for a source
-- that costs to read (access_log itself); a transition table is in memory, and
-- reading it once per count costs less than keeping the rows (the statement 12%
-- faster, 28 -> 25 ms for 20,000 rows).
CREATE OR REPLACE FUNCTION logpipe_pending_statement(source text, materialize boolean)
RETURNS text
LANGUAGE sql IMMUTABLE AS $fn$
    SELECT format($sql$
    WITH t AS %s (
        SELECT s.time, logpipe_rollup_vhost(s.vhost) AS vhost,
               logpipe_rollup_path(s.path) AS path,
               coalesce(s.status, 0) AS status,
               coalesce(s.is_bot, s.user_agent IS NULL) AS bot, s.sign,
               s.sign * logpipe_rollup_bytes(s.bytes, s.bytes_out) AS bytes,
               logpipe_rollup_referer(s.referer) AS referer,
               logpipe_is_view(s.method) AS view,
               -- served, as a flag: the planner guesses a flag half true and groups by
               -- hashing; a range test on a CTE it guesses rare, and sorts (1.5x slower)
               coalesce(s.status BETWEEN 1 AND 399, false) AS served
          FROM (%s) s
    ), referers AS (
        INSERT INTO logpipe_pending_referers (path, vhost, referer, hits, bot_hits, hour)
        SELECT t.path, t.vhost, t.referer, sum(t.sign),
               coalesce(sum(t.sign) FILTER (WHERE t.bot), 0), logpipe_hour(t.time)
          FROM t JOIN logpipe_hot_paths h ON h.path = t.path
         WHERE t.referer <> ''
         GROUP BY 1, 2, 3, 6
    ), pages AS (
        -- two sums per group, split by the bot and view flags, then spread over the
        -- eight counts: up to four pending rows per page, which the fold and the views
        -- add up, for ~0.2 us a row less than eight filtered sums per page
        INSERT INTO logpipe_pending_pages (day, vhost, path, hits, bot_hits, bytes, bot_bytes,
                                           views, bot_views, view_bytes, bot_view_bytes)
        SELECT day, vhost, path, hits, CASE WHEN bot THEN hits ELSE 0 END,
               bytes, CASE WHEN bot THEN bytes ELSE 0 END,
               CASE WHEN view THEN hits ELSE 0 END,
               CASE WHEN view AND bot THEN hits ELSE 0 END,
               CASE WHEN view THEN bytes ELSE 0 END,
               CASE WHEN view AND bot THEN bytes ELSE 0 END
          FROM (SELECT (time AT TIME ZONE 'UTC')::date AS day, vhost, path, bot, view,
                       sum(sign) AS hits, sum(bytes) AS bytes
                  FROM t
                 WHERE served
                 GROUP BY 1, 2, 3, 4, 5) g
    )
    INSERT INTO logpipe_pending_quarters (quarter, vhost, status, bot, hits, bytes)
    SELECT date_bin('15 minutes', time, timestamptz 'epoch'), vhost, status, bot,
           sum(sign), sum(bytes)
      FROM t
     GROUP BY 1, 2, 3, 4
    $sql$, CASE WHEN materialize THEN 'MATERIALIZED' ELSE 'NOT MATERIALIZED' END, source)
$fn$;

CREATE OR REPLACE FUNCTION logpipe_pending_statement(source text) RETURNS text
LANGUAGE sql IMMUTABLE
RETURN logpipe_pending_statement(source, true);

-- Move every pending count into the rollups, in one transaction; returns how many
-- pending rows it folded. Folds run one at a time (an advisory lock); rollup rows
-- are locked in key order. New pages are numbered on the way (RETURNING gives every
-- page's id, also one a concurrent fold just numbered).
--
-- SECURITY DEFINER (search_path pinned below), so that a writer role that may only
-- add rows (`logpipe initdb --writer-role`) keeps the rollups exact without any right
-- on them: granted EXECUTE, it can fold the pending counts, nothing else.
--
-- No merge joins: the pending rows' groups are CTEs the planner guesses at a tenth of
-- their size, and it joined a burst of new pages to their ids by sorting both sides
-- (900,000 new pages: 18.0 -> 16.0 s with a hash join).
CREATE OR REPLACE FUNCTION logpipe_rollup_fold(hot_hits bigint DEFAULT 100000)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET enable_mergejoin = off AS $$
DECLARE
    folded bigint;
    subtracted boolean;
    hot text[];
    -- read under the lock, which a change of the patterns takes to classify every page
    patterns text[];
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('logpipe_rollup_fold'));
    patterns := ARRAY(SELECT pattern FROM logpipe_asset_patterns);
    WITH pq AS MATERIALIZED (
        DELETE FROM logpipe_pending_quarters RETURNING *
    ), pp AS MATERIALIZED (
        DELETE FROM logpipe_pending_pages RETURNING *
    ), d AS (
        SELECT day, vhost, path, sum(hits) AS hits, sum(bot_hits) AS bot_hits,
               sum(bytes) AS bytes, sum(bot_bytes) AS bot_bytes, sum(views) AS views,
               sum(bot_views) AS bot_views, sum(view_bytes) AS view_bytes,
               sum(bot_view_bytes) AS bot_view_bytes
          FROM pp GROUP BY 1, 2, 3
    ), quarters AS (
        INSERT INTO logpipe_rollup_quarter AS q (quarter, vhost, status, bot, hits, bytes)
        SELECT quarter, vhost, status, bot, sum(hits), sum(bytes)
          FROM pq GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (quarter, vhost, status, bot) DO UPDATE
           SET hits = q.hits + excluded.hits, bytes = q.bytes + excluded.bytes
    ), pages AS (
        -- a new page is classified as it is added (asset), not updated afterwards: an
        -- UPDATE of each new page cost as much as the rest of its fold
        INSERT INTO logpipe_pages AS p (vhost, path, hits, bot_hits, bytes, bot_bytes,
                                        views, bot_views, view_bytes, bot_view_bytes, asset)
        SELECT vhost, path, sum(hits), sum(bot_hits), sum(bytes), sum(bot_bytes),
               sum(views), sum(bot_views), sum(view_bytes), sum(bot_view_bytes),
               logpipe_is_asset(path, patterns)
          FROM d GROUP BY vhost, path ORDER BY vhost, path
        ON CONFLICT (vhost, path) DO UPDATE
           SET hits = p.hits + excluded.hits, bot_hits = p.bot_hits + excluded.bot_hits,
               bytes = p.bytes + excluded.bytes, bot_bytes = p.bot_bytes + excluded.bot_bytes,
               views = p.views + excluded.views, bot_views = p.bot_views + excluded.bot_views,
               view_bytes = p.view_bytes + excluded.view_bytes,
               bot_view_bytes = p.bot_view_bytes + excluded.bot_view_bytes
        RETURNING p.id, p.vhost, p.path, p.hits
    ), daily AS (
        INSERT INTO logpipe_rollup_daily AS r (day, page_id, hits, bot_hits, bytes, bot_bytes,
                                               views, bot_views, view_bytes, bot_view_bytes)
        SELECT d.day, pages.id, d.hits, d.bot_hits, d.bytes, d.bot_bytes,
               d.views, d.bot_views, d.view_bytes, d.bot_view_bytes
          FROM d JOIN pages ON pages.vhost = d.vhost AND pages.path = d.path
         ORDER BY 1, 2
        ON CONFLICT (day, page_id) DO UPDATE  -- unknown views (NULL) read as hits
           SET hits = r.hits + excluded.hits, bot_hits = r.bot_hits + excluded.bot_hits,
               bytes = r.bytes + excluded.bytes, bot_bytes = r.bot_bytes + excluded.bot_bytes,
               views = coalesce(r.views, r.hits) + excluded.views,
               bot_views = coalesce(r.bot_views, r.bot_hits) + excluded.bot_views,
               view_bytes = coalesce(r.view_bytes, r.bytes) + excluded.view_bytes,
               bot_view_bytes = coalesce(r.bot_view_bytes, r.bot_bytes) + excluded.bot_view_bytes
    )
    SELECT (SELECT count(*) FROM pq) + (SELECT count(*) FROM pp),
           coalesce((SELECT bool_or(hits < 0) FROM pq), false),
           ARRAY(SELECT DISTINCT path FROM pages
                  WHERE hits >= hot_hits AND octet_length(path) <= 1000
                    -- a key of 500 characters may be a longer path cut
                    -- (logpipe_rollup_path): it would gather other paths' referers
                    AND char_length(path) < 500)
      INTO folded, subtracted, hot;
    -- pages from before the asset column (an upgraded schema): the fold classifies its
    -- own as it adds them
    PERFORM logpipe_classify_pages();
    WITH pr AS MATERIALIZED (
        DELETE FROM logpipe_pending_referers RETURNING *
    )
    , hourly AS (
        INSERT INTO logpipe_path_referers_hourly AS r (path, hour, vhost, referer, hits,
                                                       bot_hits)
        SELECT path, hour, vhost, referer, sum(hits), sum(bot_hits)
          FROM pr GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (path, hour, vhost, referer) DO UPDATE
           SET hits = r.hits + excluded.hits, bot_hits = r.bot_hits + excluded.bot_hits
    )
    INSERT INTO logpipe_path_referers AS r (path, vhost, referer, hits, bot_hits, host, own)
    SELECT path, vhost, referer, sum(hits), sum(bot_hits), logpipe_url_host(referer),
           logpipe_own_referer(referer, vhost)
      FROM pr GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (path, vhost, referer) DO UPDATE
       SET hits = r.hits + excluded.hits, bot_hits = r.bot_hits + excluded.bot_hits;
    IF subtracted THEN  -- rows deleted: drop what went down to nothing
        DELETE FROM logpipe_rollup_daily WHERE hits <= 0;
        DELETE FROM logpipe_rollup_quarter WHERE hits <= 0;
        DELETE FROM logpipe_path_referers WHERE hits <= 0;
        DELETE FROM logpipe_path_referers_hourly WHERE hits <= 0;
    END IF;
    IF EXISTS (SELECT FROM unnest(hot) AS n(path)
                WHERE n.path NOT IN (SELECT path FROM logpipe_hot_paths)) THEN
        PERFORM logpipe_promote_hot_paths(hot);
    END IF;
    RETURN folded;
END
$$;

-- Paths become hot with their referers counted from access_log. The SHARE lock waits
-- for the transactions loading rows right now and holds new ones back until this one
-- commits: rows committed before it are counted here, rows loaded after it find the
-- path hot and go through the pending table. A long `logpipe load` holding the table
-- puts the promotion off to a later fold rather than stall every logger behind it.
-- SECURITY DEFINER like the fold, which calls it: that lock needs rights to change
-- access_log, which a writer role does not have. Nobody is granted it directly.
CREATE OR REPLACE FUNCTION logpipe_promote_hot_paths(paths text[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    lock_timeout_was text := current_setting('lock_timeout');
BEGIN
    BEGIN
        PERFORM set_config('lock_timeout', '2s', true);
        LOCK TABLE access_log IN SHARE MODE;
        PERFORM set_config('lock_timeout', lock_timeout_was, true);
    EXCEPTION WHEN lock_not_available THEN
        PERFORM set_config('lock_timeout', lock_timeout_was, true);
        RETURN;
    END;
    WITH new_hot AS (
        INSERT INTO logpipe_hot_paths (path)
        SELECT DISTINCT n.path FROM unnest(paths) AS n(path)
        ON CONFLICT (path) DO NOTHING
        RETURNING path
    ), hourly AS (
    INSERT INTO logpipe_path_referers_hourly (path, vhost, referer, hits, bot_hits, hour)
    SELECT a.path, logpipe_rollup_vhost(a.vhost), logpipe_rollup_referer(a.referer),
           count(*),
           count(*) FILTER (WHERE coalesce(a.is_bot, a.user_agent IS NULL)),
           logpipe_hour(a.time)
      FROM new_hot n
     CROSS JOIN LATERAL (  -- through both report indexes (010_indexes.sql)
        SELECT n.path, r.vhost, r.referer, r.is_bot, r.user_agent, r.time FROM access_log r
         WHERE r.path = n.path AND r.referer IS NOT NULL AND r.referer <> ''
           AND octet_length(coalesce(r.path, '')) + octet_length(coalesce(r.vhost, ''))
               + octet_length(r.referer) <= 2400
        UNION ALL
        SELECT n.path, r.vhost, r.referer, r.is_bot, r.user_agent, r.time FROM access_log r
         WHERE r.path = n.path AND left(r.path, 500) = left(n.path, 500)
           AND r.referer IS NOT NULL AND r.referer <> ''
           AND octet_length(coalesce(r.path, '')) + octet_length(coalesce(r.vhost, ''))
               + octet_length(r.referer) > 2400) a
     GROUP BY 1, 2, 3, 6
    RETURNING path, vhost, referer, hits, bot_hits
    )
    INSERT INTO logpipe_path_referers (path, vhost, referer, hits, bot_hits, host, own)
    SELECT path, vhost, referer, sum(hits), sum(bot_hits), logpipe_url_host(referer),
           logpipe_own_referer(referer, vhost)
      FROM hourly GROUP BY 1, 2, 3;
END
$$;

-- Both run with their owner's rights: pinned to the schema logpipe lives in (pg_temp
-- last), so that nobody's objects elsewhere on a caller's search_path run with those
-- rights, and callable by no one but the owner and the roles granted EXECUTE (CREATE
-- FUNCTION grants it to PUBLIC; CREATE OR REPLACE keeps the grants there are).
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION logpipe_rollup_fold(bigint)'
                   ' SET search_path = pg_catalog, %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION logpipe_promote_hot_paths(text[])'
                   ' SET search_path = pg_catalog, %I, pg_temp', current_schema());
END
$$;
REVOKE ALL ON FUNCTION logpipe_rollup_fold(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION logpipe_promote_hot_paths(text[]) FROM PUBLIC;

CREATE OR REPLACE FUNCTION logpipe_rollup_add() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    EXECUTE logpipe_pending_statement('SELECT n.*, 1 AS sign FROM new_rows n', false);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION logpipe_rollup_subtract() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    EXECUTE logpipe_pending_statement('SELECT o.*, -1 AS sign FROM old_rows o', false);
    RETURN NULL;
END
$$;

-- Rare (e.g. re-classifying is_bot): the old rows out, the new ones in.
CREATE OR REPLACE FUNCTION logpipe_rollup_update() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    EXECUTE logpipe_pending_statement('SELECT o.*, -1 AS sign FROM old_rows o'
                                      ' UNION ALL SELECT n.*, 1 AS sign FROM new_rows n',
                                      false);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION logpipe_rollup_truncate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    TRUNCATE logpipe_rollup_daily, logpipe_rollup_quarter, logpipe_pending_pages,
             logpipe_pending_quarters, logpipe_path_referers, logpipe_pending_referers,
             logpipe_path_referers_hourly;
    UPDATE logpipe_pages SET hits = 0, bot_hits = 0, bytes = 0, bot_bytes = 0, views = 0,
                             bot_views = 0, view_bytes = 0, bot_view_bytes = 0
     WHERE hits <> 0 OR views <> 0;
    RETURN NULL;
END
$$;

-- The triggers run as the functions' owner too: a writer role adds rows to access_log
-- and nothing else; it cannot write made-up counts into the pending tables. Pinned
-- search_path for the same reason as the fold's.
DO $$
DECLARE
    fn text;
BEGIN
    FOREACH fn IN ARRAY ARRAY['logpipe_rollup_add()', 'logpipe_rollup_subtract()',
                              'logpipe_rollup_update()', 'logpipe_rollup_truncate()'] LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, %I, pg_temp',
                       fn, current_schema());
    END LOOP;
END
$$;

-- Versions before the pending table kept the rollups with another function.
DROP FUNCTION IF EXISTS logpipe_rollup_statement(text);
DROP FUNCTION IF EXISTS logpipe_rollup_prune();

-- (Re)build the rollups from access_log when they are new, were built by another
-- definition, or their triggers were dropped or disabled (e.g. for a bulk load);
-- otherwise leave them alone (cheap). The lock keeps writers out until the triggers
-- exist again, so no row is missed or counted twice. Days `logpipe prune` removed from
-- access_log (before the latest logpipe_pruned.range_to, a UTC midnight) are counted
-- only in the rollups: those are kept as they are, and the rest is rebuilt.
DO $$
DECLARE
    kept_before timestamptz := (SELECT max(range_to) FROM logpipe_pruned);
BEGIN
    IF obj_description('logpipe_rollup_daily'::regclass, 'pg_class')
           IS DISTINCT FROM 'logpipe rollup v6'
       OR (SELECT count(*) FROM pg_trigger
            WHERE tgrelid = 'access_log'::regclass AND tgenabled <> 'D'
              AND tgname LIKE 'access_log_rollup_%') < 4
    THEN
        LOCK TABLE access_log IN SHARE ROW EXCLUSIVE MODE;
        IF kept_before IS NULL THEN
            TRUNCATE logpipe_rollup_daily, logpipe_rollup_quarter, logpipe_pending_pages,
                     logpipe_pending_quarters, logpipe_hot_paths, logpipe_path_referers,
                     logpipe_pending_referers, logpipe_path_referers_hourly;
            UPDATE logpipe_pages SET hits = 0, bot_hits = 0, bytes = 0, bot_bytes = 0,
                                     views = 0, bot_views = 0, view_bytes = 0,
                                     bot_view_bytes = 0
             WHERE hits <> 0 OR views <> 0;
            EXECUTE logpipe_pending_statement('SELECT a.*, 1 AS sign FROM access_log a');
        ELSE
            PERFORM logpipe_rollup_fold();
            DELETE FROM logpipe_rollup_daily
             WHERE day >= (kept_before AT TIME ZONE 'UTC')::date;
            DELETE FROM logpipe_rollup_quarter WHERE quarter >= kept_before;
            TRUNCATE logpipe_hot_paths, logpipe_path_referers, logpipe_pending_referers,
                     logpipe_path_referers_hourly;
            UPDATE logpipe_pages p
               SET hits = coalesce(d.hits, 0), bot_hits = coalesce(d.bot_hits, 0),
                   bytes = coalesce(d.bytes, 0), bot_bytes = coalesce(d.bot_bytes, 0),
                   views = coalesce(d.views, 0), bot_views = coalesce(d.bot_views, 0),
                   view_bytes = coalesce(d.view_bytes, 0),
                   bot_view_bytes = coalesce(d.bot_view_bytes, 0)
              FROM logpipe_pages q
              LEFT JOIN (SELECT page_id, sum(hits) AS hits, sum(bot_hits) AS bot_hits,
                                sum(bytes) AS bytes, sum(bot_bytes) AS bot_bytes,
                                sum(coalesce(views, hits)) AS views,  -- unknown: hits
                                sum(coalesce(bot_views, bot_hits)) AS bot_views,
                                sum(coalesce(view_bytes, bytes)) AS view_bytes,
                                sum(coalesce(bot_view_bytes, bot_bytes)) AS bot_view_bytes
                           FROM logpipe_rollup_daily GROUP BY page_id) d ON d.page_id = q.id
             WHERE p.id = q.id;
            EXECUTE logpipe_pending_statement(format(
                'SELECT a.*, 1 AS sign FROM access_log a WHERE a.time >= %L', kept_before));
        END IF;
        PERFORM logpipe_rollup_fold();
        COMMENT ON TABLE logpipe_rollup_daily IS 'logpipe rollup v6';
    END IF;
END
$$;

-- Created when missing, enabled when disabled; left alone otherwise (DROP and CREATE
-- TRIGGER would lock access_log against writers at every initdb).
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT * FROM (VALUES
        ('access_log_rollup_insert', 'AFTER INSERT ON access_log'
         ' REFERENCING NEW TABLE AS new_rows'
         ' FOR EACH STATEMENT EXECUTE FUNCTION logpipe_rollup_add()'),
        ('access_log_rollup_delete', 'AFTER DELETE ON access_log'
         ' REFERENCING OLD TABLE AS old_rows'
         ' FOR EACH STATEMENT EXECUTE FUNCTION logpipe_rollup_subtract()'),
        ('access_log_rollup_update', 'AFTER UPDATE ON access_log'
         ' REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows'
         ' FOR EACH STATEMENT EXECUTE FUNCTION logpipe_rollup_update()'),
        ('access_log_rollup_truncate', 'AFTER TRUNCATE ON access_log'
         ' FOR EACH STATEMENT EXECUTE FUNCTION logpipe_rollup_truncate()')
    ) AS v (name, definition)
    LOOP
        IF NOT EXISTS (SELECT FROM pg_trigger
                        WHERE tgrelid = 'access_log'::regclass AND tgname = t.name) THEN
            EXECUTE format('CREATE TRIGGER %I %s', t.name, t.definition);
        ELSIF EXISTS (SELECT FROM pg_trigger WHERE tgrelid = 'access_log'::regclass
                         AND tgname = t.name AND tgenabled = 'D') THEN
            EXECUTE format('ALTER TABLE access_log ENABLE TRIGGER %I', t.name);
        END IF;
    END LOOP;
END
$$;

-- -- Views ----------------------------------------------------------------------------
-- CREATE OR REPLACE VIEW, never dropped: an operator's views on them and grants on them
-- stay. A new definition may add columns at the end only; anything else is an
-- upgrade_NNN_*.sql of its own.
--
-- report_referers and report_broken_links group first, then test the referer's host
-- once per group in a LATERAL subquery: `OFFSET 0` keeps PostgreSQL from pushing the
-- test down to every row, while `WHERE path = '/x'` on the view still reaches the
-- path index (010_indexes.sql). They read access_log in two branches, one per report
-- index, each with its index's condition word for word (so that the planner can use it).

-- Requests per quarter of an hour, vhost, status and bot flag: the rollup plus what is
-- pending (rows of one quarter may appear more than once: sum them).
CREATE OR REPLACE VIEW logpipe_quarters AS
SELECT quarter, vhost, status, bot, hits, bytes FROM logpipe_rollup_quarter
UNION ALL
SELECT quarter, vhost, status, bot, hits, bytes FROM logpipe_pending_quarters;

-- External referers per page: referers whose host is not the site's own (see
-- logpipe_same_site).
CREATE OR REPLACE VIEW report_referers AS
SELECT g.vhost, g.path, g.referer, g.hits
  FROM (SELECT vhost, path, referer, count(*) AS hits
          FROM (SELECT vhost, path, referer FROM access_log
                 WHERE referer IS NOT NULL AND referer <> ''
                   AND octet_length(coalesce(path, '')) + octet_length(coalesce(vhost, ''))
                       + octet_length(referer) <= 2400
                UNION ALL
                SELECT vhost, path, referer FROM access_log
                 WHERE referer IS NOT NULL AND referer <> ''
                   AND octet_length(coalesce(path, '')) + octet_length(coalesce(vhost, ''))
                       + octet_length(referer) > 2400) e
         GROUP BY vhost, path, referer) g
 CROSS JOIN LATERAL (SELECT logpipe_url_host(g.referer) AS host OFFSET 0) r
 WHERE NOT coalesce(r.host = logpipe_host(g.vhost)
                    OR r.host = ANY (ARRAY(SELECT host FROM logpipe_site_hosts)), false)
 ORDER BY g.hits DESC, g.vhost, g.path, g.referer;

-- Page views (GET or POST requests served, see logpipe_is_view) per vhost and path,
-- '//' read as '/', from the totals and what is pending, and whether the path is a
-- static asset (logpipe_asset_patterns): what report_pages and report_static show.
-- hits are views, bytes their bytes.
CREATE OR REPLACE VIEW logpipe_page_views AS
SELECT nullif(c.vhost, '') AS vhost, nullif(c.path, '') AS path, sum(c.views)::bigint AS hits,
       sum(c.views - c.bot_views)::bigint AS human_hits, sum(c.bot_views)::bigint AS bot_hits,
       sum(c.view_bytes)::bigint AS bytes,
       lower(c.path) LIKE ANY (ARRAY(SELECT pattern FROM logpipe_asset_patterns)) AS asset
  FROM (SELECT vhost, logpipe_page_path(path) AS path, views, bot_views, view_bytes
          FROM logpipe_pages WHERE views <> 0
        UNION ALL
        SELECT vhost, logpipe_page_path(path), views, bot_views, view_bytes
          FROM logpipe_pending_pages) c
 GROUP BY c.vhost, c.path
HAVING sum(c.views) > 0;

-- Most viewed pages: paths that are not static assets.
CREATE OR REPLACE VIEW report_pages AS
SELECT vhost, path, hits, human_hits, bot_hits, bytes
  FROM logpipe_page_views WHERE NOT asset
 ORDER BY hits DESC, vhost, path;

-- The static assets' share, with the columns of report_pages.
CREATE OR REPLACE VIEW report_static AS
SELECT vhost, path, hits, human_hits, bot_hits, bytes
  FROM logpipe_page_views WHERE asset
 ORDER BY hits DESC, vhost, path;

-- Requests per day and status code (days in the session's TimeZone), from the rollup.
CREATE OR REPLACE VIEW report_status_daily AS
SELECT date_trunc('day', quarter)::date AS day, nullif(vhost, '') AS vhost,
       nullif(status, 0) AS status, sum(hits)::bigint AS hits
  FROM logpipe_quarters
 GROUP BY 1, 2, 3
HAVING sum(hits) > 0
 ORDER BY 1, 2, 3;

-- Broken links: 4xx answers to requests whose referer is a page of the same site,
-- per referring page and broken path.
CREATE OR REPLACE VIEW report_broken_links AS
SELECT g.vhost, g.referer, g.path, g.statuses, g.hits, g.last_seen
  FROM (SELECT vhost, referer, path,
               string_agg(DISTINCT status::text, ',' ORDER BY status::text) AS statuses,
               count(*) AS hits, max(time) AS last_seen
          FROM (SELECT vhost, referer, path, status, time FROM access_log
                 WHERE status BETWEEN 400 AND 499 AND referer IS NOT NULL AND referer <> ''
                   AND octet_length(coalesce(path, '')) + octet_length(coalesce(vhost, ''))
                       + octet_length(referer) <= 2400
                UNION ALL
                SELECT vhost, referer, path, status, time FROM access_log
                 WHERE status BETWEEN 400 AND 499 AND referer IS NOT NULL AND referer <> ''
                   AND octet_length(coalesce(path, '')) + octet_length(coalesce(vhost, ''))
                       + octet_length(referer) > 2400) e
         GROUP BY vhost, referer, path) g
 CROSS JOIN LATERAL (SELECT logpipe_url_host(g.referer) AS host OFFSET 0) r
 WHERE coalesce(r.host = logpipe_host(g.vhost)
                OR r.host = ANY (ARRAY(SELECT host FROM logpipe_site_hosts)), false)
 ORDER BY g.hits DESC, g.vhost, g.referer, g.path;

-- Remote hosts with the most error answers (4xx and 5xx).
CREATE OR REPLACE VIEW report_offenders AS
SELECT remote_host,
       count(*) FILTER (WHERE status >= 400) AS errors,
       count(*) FILTER (WHERE status BETWEEN 400 AND 499) AS client_errors,
       count(*) FILTER (WHERE status >= 500) AS server_errors,
       count(*) AS requests,
       max(time) AS last_seen
  FROM access_log
 GROUP BY remote_host
HAVING count(*) FILTER (WHERE status >= 400) > 0
 ORDER BY errors DESC, remote_host;

-- User agents, with the classification stored at load time.
CREATE OR REPLACE VIEW report_agents AS
SELECT user_agent, is_bot, count(*) AS hits, max(time) AS last_seen
  FROM access_log
 GROUP BY user_agent, is_bot
 ORDER BY hits DESC, user_agent, is_bot;

-- Traffic per hour and per day (session TimeZone), per vhost, from the rollup.
CREATE OR REPLACE VIEW report_traffic_hourly AS
SELECT date_trunc('hour', quarter) AS hour, nullif(vhost, '') AS vhost,
       sum(hits)::bigint AS hits,
       coalesce(sum(hits) FILTER (WHERE NOT bot), 0)::bigint AS human_hits,
       coalesce(sum(hits) FILTER (WHERE bot), 0)::bigint AS bot_hits,
       sum(bytes)::bigint AS bytes
  FROM logpipe_quarters
 GROUP BY 1, 2
HAVING sum(hits) > 0
 ORDER BY 1, 2;

CREATE OR REPLACE VIEW report_traffic_daily AS
SELECT hour::date AS day, vhost, sum(hits)::bigint AS hits,
       sum(human_hits)::bigint AS human_hits, sum(bot_hits)::bigint AS bot_hits,
       sum(bytes)::bigint AS bytes
  FROM report_traffic_hourly
 GROUP BY 1, 2
 ORDER BY 1, 2;
