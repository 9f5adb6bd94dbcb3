-- Visitors, visits, countries and channels: helper functions, daily summaries and the
-- report_* views. Idempotent like every file here.
--
-- A visitor is one client address and User-Agent on one UTC day (GoAccess's
-- definition), on one vhost. A visit is a visitor's requests with no gap longer than
-- `gap` seconds between two of them (30 minutes by default: `logpipe report visitors
-- --visit-gap`). A visit's channel comes from the referer of its first request:
-- direct (none), internal (the site's own host, as report_referers decides: the
-- row's vhost or a host of logpipe_site_hosts), search, social, webmail (the hosts of
-- logpipe_referer_sources) or website (any other host, which is the source).
--
--     SELECT * FROM report_visitors_daily WHERE day >= current_date - 7;
--     SELECT * FROM report_countries LIMIT 20;
--     SELECT * FROM report_channels LIMIT 20;
--     SELECT * FROM report_keyphrases LIMIT 20;
--
-- Counting visits means sorting each visitor's requests by time: seconds per million
-- rows (bench/reports_bench.py). So whole UTC days are counted once and kept
-- (logpipe_visit_days and the logpipe_visit_* summaries, per gap), and used as long as the day's totals in the
-- quarter-hour rollup (logpipe_quarters) are those the summary was made from: a row
-- loaded late, or deleted, makes its day count again from access_log. Reports and
-- views are exact at any moment: a day without a summary that is up to date (today, a
-- day just backfilled) is counted from access_log as the report runs, and
-- logpipe_visits_refresh() (run by `logpipe report` where the role may: the owner)
-- stores it for the next time. The current day is summarized hour by hour
-- (logpipe_visits_refresh_hours(), by the writer when idle): its reports count only the
-- hours since from access_log, joined to the summary by logpipe_visit_state.

-- -- Referer -> channel ----------------------------------------------------------------

-- Search engines, social networks and webmail, by host. `host` is a host name, which
-- also matches its subdomains (t.co, news.ycombinator.com), or a name followed by
-- '.*', which matches it under any top-level domain of one or two short labels
-- (google.* matches google.com, www.google.co.uk, google.de; not google.evil.com).
-- The most specific match wins: mail.google.com is webmail, www.google.com search.
-- keyphrase: the query parameters that carry the search words, when the engine still
-- sends them. Add your own rows; initdb adds missing ones and changes none.
CREATE TABLE IF NOT EXISTS logpipe_referer_sources (
    host      text PRIMARY KEY CHECK (host = lower(host)),
    channel   text NOT NULL CHECK (channel IN ('search', 'social', 'webmail', 'website')),
    source    text NOT NULL,
    keyphrase text[] NOT NULL DEFAULT '{}'
);

INSERT INTO logpipe_referer_sources (host, channel, source, keyphrase) VALUES
    ('google.*', 'search', 'Google', '{q}'),
    ('com.google.android.googlequicksearchbox', 'search', 'Google', '{}'),
    ('bing.com', 'search', 'Bing', '{q}'),
    ('cn.bing.com', 'search', 'Bing', '{q}'),
    ('duckduckgo.com', 'search', 'DuckDuckGo', '{q}'),
    ('yandex.*', 'search', 'Yandex', '{text}'),
    ('ya.ru', 'search', 'Yandex', '{text}'),
    ('baidu.com', 'search', 'Baidu', '{wd,word}'),
    ('ecosia.org', 'search', 'Ecosia', '{q}'),
    ('search.yahoo.*', 'search', 'Yahoo', '{p}'),
    ('yahoo.*', 'search', 'Yahoo', '{p}'),
    ('qwant.com', 'search', 'Qwant', '{q}'),
    ('startpage.com', 'search', 'Startpage', '{query,q}'),
    ('search.brave.com', 'search', 'Brave', '{q}'),
    ('kagi.com', 'search', 'Kagi', '{q}'),
    ('naver.com', 'search', 'Naver', '{query}'),
    ('seznam.cz', 'search', 'Seznam', '{q}'),
    ('sogou.com', 'search', 'Sogou', '{query}'),
    ('so.com', 'search', '360 Search', '{q}'),
    ('ask.com', 'search', 'Ask', '{q}'),
    ('search.aol.com', 'search', 'AOL', '{q}'),
    ('mojeek.com', 'search', 'Mojeek', '{q}'),
    ('facebook.com', 'social', 'Facebook', '{}'),
    ('fb.me', 'social', 'Facebook', '{}'),
    ('com.facebook.katana', 'social', 'Facebook', '{}'),
    ('t.co', 'social', 'X/Twitter', '{}'),
    ('twitter.com', 'social', 'X/Twitter', '{}'),
    ('x.com', 'social', 'X/Twitter', '{}'),
    ('com.twitter.android', 'social', 'X/Twitter', '{}'),
    ('linkedin.com', 'social', 'LinkedIn', '{}'),
    ('lnkd.in', 'social', 'LinkedIn', '{}'),
    ('com.linkedin.android', 'social', 'LinkedIn', '{}'),
    ('reddit.com', 'social', 'Reddit', '{}'),
    ('com.reddit.frontpage', 'social', 'Reddit', '{}'),
    ('instagram.com', 'social', 'Instagram', '{}'),
    ('youtube.com', 'social', 'YouTube', '{}'),
    ('pinterest.*', 'social', 'Pinterest', '{}'),
    ('news.ycombinator.com', 'social', 'Hacker News', '{}'),
    ('mastodon.social', 'social', 'Mastodon', '{}'),
    ('bsky.app', 'social', 'Bluesky', '{}'),
    ('threads.net', 'social', 'Threads', '{}'),
    ('tiktok.com', 'social', 'TikTok', '{}'),
    ('vk.com', 'social', 'VK', '{}'),
    ('tumblr.com', 'social', 'Tumblr', '{}'),
    ('quora.com', 'social', 'Quora', '{}'),
    ('org.telegram.messenger', 'social', 'Telegram', '{}'),
    ('web.telegram.org', 'social', 'Telegram', '{}'),
    ('web.whatsapp.com', 'social', 'WhatsApp', '{}'),
    ('mail.google.com', 'webmail', 'Gmail', '{}'),
    ('com.google.android.gm', 'webmail', 'Gmail', '{}'),
    ('outlook.live.com', 'webmail', 'Outlook', '{}'),
    ('outlook.office.com', 'webmail', 'Outlook', '{}'),
    ('outlook.office365.com', 'webmail', 'Outlook', '{}'),
    ('mail.yahoo.*', 'webmail', 'Yahoo Mail', '{}'),
    ('mail.yandex.*', 'webmail', 'Yandex Mail', '{}'),
    ('e.mail.ru', 'webmail', 'Mail.ru', '{}'),
    ('mail.proton.me', 'webmail', 'Proton Mail', '{}'),
    ('mail.aol.com', 'webmail', 'AOL Mail', '{}'),
    ('gmx.*', 'webmail', 'GMX', '{}'),
    ('web.de', 'webmail', 'WEB.DE', '{}'),
    ('mail.zoho.*', 'webmail', 'Zoho Mail', '{}'),
    ('app.fastmail.com', 'webmail', 'Fastmail', '{}')
ON CONFLICT (host) DO NOTHING;

-- The rule of logpipe_referer_sources for a host (see there), NULL for none.
CREATE OR REPLACE FUNCTION logpipe_referer_source(host text)
RETURNS logpipe_referer_sources
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    labels text[] := string_to_array(host, '.');
    n integer := coalesce(array_length(labels, 1), 0);
    names text[] := '{}';
    weights integer[] := '{}';
    found logpipe_referer_sources;
BEGIN
    IF n > 8 THEN  -- no rule has more labels: a hostile 8 KB host costs no more
        labels := labels[n - 7 : n];
        n := 8;
    END IF;
    -- candidates with their weight: labels matched, times 2, plus 1 for an exact name
    FOR i IN 1 .. n LOOP
        names := names || array_to_string(labels[i:n], '.');
        weights := weights || (2 * (n - i + 1) + 1);
        FOR k IN 1 .. 2 LOOP  -- 'name.*': the last k labels are a short top-level domain
            EXIT WHEN n - k < i OR length(labels[n - k + 1]) > 3;
            names := names || (array_to_string(labels[i:n - k], '.') || '.*');
            weights := weights || 2 * (n - i + 1);
        END LOOP;
    END LOOP;
    SELECT s.* INTO found
      FROM unnest(names, weights) AS c(name, weight)
      JOIN logpipe_referer_sources s ON s.host = c.name
     ORDER BY c.weight DESC LIMIT 1;
    RETURN found;
END
$$;

-- A percent-encoded query value as text: '+' is a space, %xx a byte of UTF-8; the
-- value as it is when those bytes are not UTF-8.
CREATE OR REPLACE FUNCTION logpipe_url_decode(value text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN convert_from(string_agg(
        CASE WHEN m[1] IS NOT NULL THEN decode(substr(m[1], 2), 'hex')
             ELSE convert_to(m[2], 'UTF8') END, ''::bytea ORDER BY o), 'UTF8')
      FROM regexp_matches(replace(value, '+', ' '), '(%[0-9A-Fa-f]{2})|([^%]+|%)', 'g')
           WITH ORDINALITY AS r(m, o);
EXCEPTION WHEN character_not_in_repertoire OR untranslatable_character THEN
    RETURN value;
END
$$;

-- The search words a referer carries in one of `params` ('{q}'), trimmed and in lower
-- case; NULL when there are none (most engines no longer send them).
CREATE OR REPLACE FUNCTION logpipe_referer_keyphrase(referer text, params text[])
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT nullif(lower(btrim(logpipe_url_decode(
               (regexp_match(referer, '[?&#]' || p.name || '=([^&#]*)'))[1]))), '')
      FROM unnest(params) WITH ORDINALITY AS p(name, o)
     WHERE referer ~ ('[?&#]' || p.name || '=[^&#]')
     ORDER BY p.o LIMIT 1
$$;

-- The channel and source of a visit whose first request's referer has host `host`
-- (logpipe_url_host) and was made to `vhost`, and the query parameters that carry
-- the search words of that source. Reports classify each distinct host once.
CREATE OR REPLACE FUNCTION logpipe_host_channel(host text, vhost text,
                                                OUT channel text, OUT source text,
                                                OUT params text[])
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    rule logpipe_referer_sources;
BEGIN
    IF host IS NULL THEN  -- no referer, or one without a host ('-', junk)
        channel := 'direct';
        RETURN;
    END IF;
    IF host = logpipe_host(vhost) OR host IN (SELECT h.host FROM logpipe_site_hosts h) THEN
        channel := 'internal';
        source := host;
        RETURN;
    END IF;
    rule := logpipe_referer_source(host);
    IF rule.host IS NULL THEN
        channel := 'website';
        source := host;
        RETURN;
    END IF;
    channel := rule.channel;
    source := rule.source;
    params := rule.keyphrase;
END
$$;

-- The channel, source and search words (NULL when none) of a visit whose first
-- request had `referer` and was made to `vhost`.
CREATE OR REPLACE FUNCTION logpipe_referer_channel(referer text, vhost text,
                                                   OUT channel text, OUT source text,
                                                   OUT keyphrase text)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT c.channel, c.source,
           CASE WHEN c.params <> '{}'
                THEN left(logpipe_referer_keyphrase(referer, c.params), 200) END
      FROM logpipe_host_channel(logpipe_url_host(referer), vhost) c
$$;

-- -- Visits from access_log -------------------------------------------------------------

-- access_log's rows in [lo, hi), each with what the reports count it as (filters, NULL
-- for all: vhost, sources (source = ANY), path):
--   visit_start: the first request of a visit (the first of its visitor, or the first
--     after more than `gap` seconds without one);
--   first_of_day: its visitor's first request of the day;
--   first_of_hour: its visitor's first request of that UTC hour;
--   rn, n: its place among its visitor's requests, and how many there are;
--   visitor, time: what the rows are sorted by, with the vhost, address, agent and
--     referer (a window over them in that order needs no sort of its own).
-- One sort of the rows, by visitor and time, and one pass over them. Requests of one
-- second are ordered by referer, so that the result never varies.
CREATE OR REPLACE FUNCTION logpipe_visit_rows(lo timestamptz, hi timestamptz,
                                              gap integer DEFAULT 1800,
                                              vhost text DEFAULT NULL,
                                              sources text[] DEFAULT NULL,
                                              path text DEFAULT NULL)
RETURNS TABLE (day date, hour smallint, vhost text, remote_host text, user_agent text,
               bot boolean, country text, referer text, bytes bigint, visit_start boolean,
               first_of_day boolean, first_of_hour boolean, rn bigint, n bigint,
               visitor bigint, "time" timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT r.day, r.hour, r.vhost, r.remote_host, r.user_agent, r.bot, r.country, r.referer,
           r.bytes,
           coalesce(r.time - lag(r.time) OVER w > gap * interval '1 second', true),
           row_number() OVER w = 1,
           lag(r.hour) OVER w IS DISTINCT FROM r.hour,
           row_number() OVER w,
           count(*) OVER (PARTITION BY r.visitor, r.day, r.vhost COLLATE "C",
                                       r.remote_host COLLATE "C", r.user_agent COLLATE "C"),
           r.visitor, r.time
      FROM (SELECT a.time, (a.time AT TIME ZONE 'UTC')::date AS day,
                   hashtextextended(coalesce(a.vhost, '') || E'\n' || coalesce(a.remote_host, '')
                                    || E'\n' || coalesce(a.user_agent, ''), 0) AS visitor,
                   date_part('hour', a.time AT TIME ZONE 'UTC')::smallint AS hour,
                   a.vhost, a.remote_host, a.user_agent, a.referer, a.country,
                   coalesce(a.is_bot, a.user_agent IS NULL) AS bot,
                   logpipe_rollup_bytes(a.bytes, a.bytes_out) AS bytes
              FROM access_log a
             WHERE a.time >= lo AND a.time < hi
               AND ($4 IS NULL OR a.vhost = $4)
               AND ($5 IS NULL OR a.source = ANY ($5))
               AND ($6 IS NULL OR a.path = $6)) r
    -- Only equality matters here: a hash of the visitor first decides most comparisons
    -- of the sort (30% faster), the values themselves (in byte order, "C", the
    -- fastest) keep two visitors with one hash apart.
    WINDOW w AS (PARTITION BY r.visitor, r.day, r.vhost COLLATE "C", r.remote_host COLLATE "C",
                              r.user_agent COLLATE "C"
                 ORDER BY r.time, r.referer COLLATE "C")
$$;

-- The visits among logpipe_visit_rows(...): the first request's hour, vhost, bot flag,
-- country and referer, and how many requests the visit made.
CREATE OR REPLACE FUNCTION logpipe_visit_starts(lo timestamptz, hi timestamptz,
                                                gap integer DEFAULT 1800,
                                                vhost text DEFAULT NULL,
                                                sources text[] DEFAULT NULL,
                                                path text DEFAULT NULL)
RETURNS TABLE (day date, hour smallint, vhost text, bot boolean, country text,
               referer text, hits bigint)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT r.day, r.hour, r.vhost, r.bot, r.country, r.referer,
           coalesce(lead(r.rn) OVER (PARTITION BY r.visitor, r.day, r.vhost COLLATE "C",
                                                  r.remote_host COLLATE "C",
                                                  r.user_agent COLLATE "C"
                                     ORDER BY r.time, r.referer COLLATE "C"),
                    r.n + 1) - r.rn
      FROM logpipe_visit_rows($1, $2, $3, $4, $5, $6) r
     WHERE r.visit_start
$$;


-- -- Summaries of whole days -------------------------------------------------------

-- The days summarized, per visit gap, with the totals of access_log they were made
-- from (the same as logpipe_quarters counts: hits, and bytes as a checksum).
CREATE TABLE IF NOT EXISTS logpipe_visit_days (
    day          date        NOT NULL,
    gap          integer     NOT NULL,
    hits         bigint      NOT NULL,
    bytes        bigint      NOT NULL,
    refreshed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (day, gap)
);

CREATE TABLE IF NOT EXISTS logpipe_visit_daily (
    day      date    NOT NULL,
    gap      integer NOT NULL,
    vhost    text,
    bot      boolean NOT NULL,
    visitors bigint  NOT NULL,
    visits   bigint  NOT NULL,
    hits     bigint  NOT NULL
);
CREATE TABLE IF NOT EXISTS logpipe_visit_hourly (
    day      date     NOT NULL,
    gap      integer  NOT NULL,
    hour     smallint NOT NULL,            -- UTC hour of the day
    vhost    text,
    bot      boolean  NOT NULL,
    visitors bigint   NOT NULL,            -- visitors with a request in that hour
    visits   bigint   NOT NULL,            -- visits that began in it
    hits     bigint   NOT NULL
);
CREATE TABLE IF NOT EXISTS logpipe_visit_countries (
    day      date    NOT NULL,
    gap      integer NOT NULL,
    vhost    text,
    bot      boolean NOT NULL,
    country  text,
    visitors bigint  NOT NULL,
    hits     bigint  NOT NULL
);
CREATE TABLE IF NOT EXISTS logpipe_visit_channels (
    day     date    NOT NULL,
    gap     integer NOT NULL,
    vhost   text,
    bot     boolean NOT NULL,
    channel text    NOT NULL,
    source  text,
    visits  bigint  NOT NULL,
    hits    bigint  NOT NULL               -- requests of those visits
);
CREATE TABLE IF NOT EXISTS logpipe_visit_keyphrases (
    day       date    NOT NULL,
    gap       integer NOT NULL,
    vhost     text,
    bot       boolean NOT NULL,
    source    text    NOT NULL,
    keyphrase text    NOT NULL,
    visits    bigint  NOT NULL
);
DO $$
BEGIN
    IF to_regclass('logpipe_visit_daily_day') IS NULL THEN
        CREATE INDEX logpipe_visit_daily_day ON logpipe_visit_daily (gap, day);
        CREATE INDEX logpipe_visit_hourly_day ON logpipe_visit_hourly (gap, day);
        CREATE INDEX logpipe_visit_countries_day ON logpipe_visit_countries (gap, day);
        CREATE INDEX logpipe_visit_channels_day ON logpipe_visit_channels (gap, day);
        CREATE INDEX logpipe_visit_keyphrases_day ON logpipe_visit_keyphrases (gap, day);
    END IF;
END
$$;

-- The last request of each visitor of a summarized day (made with its summary): a
-- window that begins inside the day has the visitors whose last request is in it, so
-- `report countries` and `visitors` count them here instead of sorting the day's rows.
-- varies: the visitor's requests do not all have one country and bot flag, so those of
-- its first request in a window are not known here (the report counts that day from
-- access_log).
CREATE TABLE IF NOT EXISTS logpipe_visit_lasts (
    day       date        NOT NULL,
    gap       integer     NOT NULL,
    vhost     text,
    bot       boolean     NOT NULL,
    country   text,
    varies    boolean     NOT NULL,
    last_time timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS logpipe_visit_lasts_day ON logpipe_visit_lasts (gap, day, last_time);
CREATE INDEX IF NOT EXISTS logpipe_visit_lasts_varies ON logpipe_visit_lasts (gap, day, last_time)
 WHERE varies;

-- For a window that begins inside a summarized day, channels count that day from the
-- hour --since falls in (from access_log) and these two: the visits that began in each
-- whole hour after it, and each visit that continues across the start of an hour
-- (`hour`): its requests from then on (hits), and the bot flag, channel and source of
-- its first request in that hour, where a window beginning at the hour starts it. With
-- a gap of up to an hour a visit continuing across an hour's start has a request in
-- that hour: they are made, and read, only then.
CREATE TABLE IF NOT EXISTS logpipe_visit_channels_hourly (
    day     date     NOT NULL,
    gap     integer  NOT NULL,
    hour    smallint NOT NULL,             -- UTC hour the visits began in
    vhost   text,
    bot     boolean  NOT NULL,
    channel text     NOT NULL,
    source  text,
    visits  bigint   NOT NULL,
    hits    bigint   NOT NULL              -- all requests of those visits
);
CREATE TABLE IF NOT EXISTS logpipe_visit_crossings (
    day         date     NOT NULL,
    gap         integer  NOT NULL,
    hour        smallint NOT NULL,         -- the hour whose start the visit continues across
    visitor     bigint   NOT NULL,         -- logpipe_visit_rows' hash of the three below
    vhost       text,
    remote_host text,
    user_agent  text,
    bot         boolean  NOT NULL,
    channel     text     NOT NULL,
    source      text,
    hits        bigint   NOT NULL          -- the visit's requests from the hour's start
);
CREATE INDEX IF NOT EXISTS logpipe_visit_channels_hourly_day
    ON logpipe_visit_channels_hourly (gap, day, hour);
CREATE INDEX IF NOT EXISTS logpipe_visit_crossings_day ON logpipe_visit_crossings (gap, day, hour);

-- The current UTC day so far: its whole hours are summarized (the same summary tables,
-- under its day) up to `upto`, with the totals of access_log they were made from, as
-- for logpipe_visit_days; a report counts the rest, from `upto`, from access_log and
-- logpipe_visit_state. Each hour's rows are sorted once: logpipe_visits_refresh_hours()
-- adds the hours since `upto`.
CREATE TABLE IF NOT EXISTS logpipe_visit_prefix (
    day          date        NOT NULL,
    gap          integer     NOT NULL,
    upto         timestamptz NOT NULL,
    hits         bigint      NOT NULL,
    bytes        bigint      NOT NULL,
    refreshed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (day, gap)
);
-- Each visitor of a summarized prefix: its last request before `upto`, and the bot flag,
-- channel and source of its last visit, which its next request continues when it comes
-- within the gap.
CREATE TABLE IF NOT EXISTS logpipe_visit_state (
    day         date        NOT NULL,
    gap         integer     NOT NULL,
    vhost       text,
    remote_host text,
    user_agent  text,
    last_time   timestamptz NOT NULL,
    bot         boolean     NOT NULL,
    channel     text        NOT NULL,
    source      text
);

-- Per day from `lo` to `hi` (dates): the end of its summarized prefix for `gap`, where
-- the prefix is up to date (the rollup's totals before `upto` are those it was made of).
CREATE OR REPLACE FUNCTION logpipe_visit_prefix_state(lo date, hi date, gap integer)
RETURNS TABLE (day date, upto timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT p.day, p.upto
      FROM logpipe_visit_prefix p
     WHERE p.gap = $3 AND (lo IS NULL OR p.day >= lo) AND (hi IS NULL OR p.day < hi)
       AND (p.hits, p.bytes) = (
           SELECT coalesce(sum(q.hits), 0), coalesce(sum(q.bytes), 0) FROM logpipe_quarters q
            WHERE q.quarter >= p.day::timestamp AT TIME ZONE 'UTC' AND q.quarter < p.upto)
$$;

-- One visitor's vhost, address and agent as one value, for joins that hash: NULL and ''
-- stay apart (two visitors, as in logpipe_visit_rows), and so do values holding a comma.
CREATE OR REPLACE FUNCTION logpipe_visitor_key(vhost text, remote_host text, user_agent text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT quote_nullable(vhost) || ',' || quote_nullable(remote_host) || ','
           || quote_nullable(user_agent)
$$;

CREATE UNIQUE INDEX IF NOT EXISTS logpipe_visit_state_visitor
    ON logpipe_visit_state (gap, day, logpipe_visitor_key(vhost, remote_host, user_agent));

-- logpipe_visit_rows(lo, hi, ...) for rows after the summarized prefix of day `d`
-- (lo = its upto): a visitor of the prefix has no first request of the day here, and
-- its first request here begins a visit only after more than `gap` seconds; otherwise
-- it continues (continued) the visit of logpipe_visit_state's channel, source and bot.
CREATE OR REPLACE FUNCTION logpipe_visit_tail(d date, lo timestamptz, hi timestamptz,
                                              gap integer DEFAULT 1800,
                                              vhost text DEFAULT NULL)
RETURNS TABLE (day date, hour smallint, vhost text, remote_host text, user_agent text,
               bot boolean, country text, referer text, bytes bigint, visit_start boolean,
               first_of_day boolean, first_of_hour boolean, continued boolean,
               state_bot boolean, channel text, source text, rn bigint, n bigint,
               visitor bigint, "time" timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT r.day, r.hour, r.vhost, r.remote_host, r.user_agent, r.bot, r.country,
           r.referer, r.bytes, r.visit_start AND NOT coalesce(c.on, false),
           r.first_of_day AND s.last_time IS NULL, r.first_of_hour, coalesce(c.on, false),
           s.bot, s.channel, s.source, r.rn, r.n, r.visitor, r.time
      FROM logpipe_visit_rows(lo, hi, gap, $5) r
      -- looked up by index for each visitor's first row: the tail is an hour, the state
      -- the whole day's visitors
      LEFT JOIN LATERAL (
           SELECT s.* FROM logpipe_visit_state s
            WHERE r.rn = 1 AND s.gap = $4 AND s.day = d
              AND logpipe_visitor_key(s.vhost, s.remote_host, s.user_agent)
                  = logpipe_visitor_key(r.vhost, r.remote_host, r.user_agent)
            LIMIT 1) s ON true
     CROSS JOIN LATERAL (SELECT r.time - s.last_time <= gap * interval '1 second' AS on) c
$$;

-- The visits among logpipe_visit_tail(...), as logpipe_visit_starts, and the requests
-- that continue a visit of the prefix (continued: no visit of their own, their hits
-- count for the state's channel).
CREATE OR REPLACE FUNCTION logpipe_visit_tail_starts(d date, lo timestamptz, hi timestamptz,
                                                     gap integer DEFAULT 1800,
                                                     vhost text DEFAULT NULL)
RETURNS TABLE (day date, hour smallint, vhost text, remote_host text, user_agent text,
               bot boolean, country text, referer text, continued boolean, channel text,
               source text, hits bigint, "time" timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT t.day, t.hour, t.vhost, t.remote_host, t.user_agent,
           CASE WHEN t.continued THEN t.state_bot ELSE t.bot END, t.country, t.referer,
           t.continued, t.channel, t.source,
           coalesce(lead(t.rn) OVER (PARTITION BY t.visitor, t.vhost COLLATE "C",
                                                  t.remote_host COLLATE "C",
                                                  t.user_agent COLLATE "C"
                                     ORDER BY t.rn),
                    t.n + 1) - t.rn, t.time
      FROM logpipe_visit_tail($1, $2, $3, $4, $5) t
     WHERE t.visit_start OR t.continued
$$;

-- Per UTC day from `lo` to `hi` (dates): the day, whether its summary for `gap` is up
-- to date, and whether access_log has rows of it according to the rollup.
CREATE OR REPLACE FUNCTION logpipe_visit_day_state(lo date, hi date, gap integer)
RETURNS TABLE (day date, fresh boolean)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT q.day, coalesce(d.hits = q.hits AND d.bytes = q.bytes, false)
      FROM (SELECT (quarter AT TIME ZONE 'UTC')::date AS day, sum(hits) AS hits,
                   sum(bytes) AS bytes
              FROM logpipe_quarters
             WHERE (lo IS NULL OR quarter >= lo::timestamp AT TIME ZONE 'UTC')
               AND (hi IS NULL OR quarter < hi::timestamp AT TIME ZONE 'UTC')
             GROUP BY 1 HAVING sum(hits) > 0) q
      LEFT JOIN logpipe_visit_days d ON d.day = q.day AND d.gap = $3
$$;

-- Forget a day's summaries for `gap`: all of them before the day is summarized whole
-- (`whole_day`), or those the hourly refresh writes before it starts the day over.
-- Called only by the two refresh functions, with their owner's rights.
CREATE OR REPLACE FUNCTION logpipe_visit_forget(gap integer, d date, whole_day boolean)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM logpipe_visit_daily v WHERE v.gap = $1 AND v.day = d;
    DELETE FROM logpipe_visit_hourly v WHERE v.gap = $1 AND v.day = d;
    DELETE FROM logpipe_visit_countries v WHERE v.gap = $1 AND v.day = d;
    DELETE FROM logpipe_visit_channels v WHERE v.gap = $1 AND v.day = d;
    DELETE FROM logpipe_visit_keyphrases v WHERE v.gap = $1 AND v.day = d;
    DELETE FROM logpipe_visit_state v WHERE v.gap = $1 AND v.day = d;
    IF whole_day THEN
        DELETE FROM logpipe_visit_lasts v WHERE v.gap = $1 AND v.day = d;
        DELETE FROM logpipe_visit_channels_hourly v WHERE v.gap = $1 AND v.day = d;
        DELETE FROM logpipe_visit_crossings v WHERE v.gap = $1 AND v.day = d;
        DELETE FROM logpipe_visit_prefix v WHERE v.gap = $1 AND v.day = d;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION logpipe_visit_forget(integer, date, boolean) FROM PUBLIC;

-- Summarize the days from `lo` to `hi` (dates; NULL: no bound) whose summary for `gap`
-- is missing or out of date, except the current UTC day (still being written) and
-- days `logpipe prune` emptied. Returns how many days it summarized. One at a time
-- per gap (an advisory lock); SECURITY DEFINER like the fold, so that a role granted
-- EXECUTE keeps the summaries without any right on them. Each day is one statement:
-- one sort of its rows, whatever it stores.
CREATE OR REPLACE FUNCTION logpipe_visits_refresh(gap integer DEFAULT 1800,
                                                  lo date DEFAULT NULL, hi date DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    today date := (now() AT TIME ZONE 'UTC')::date;
    pruned date := logpipe_pruned_day();
    d date;
    done integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('logpipe_visits_refresh'), gap);
    FOR d IN SELECT s.day FROM logpipe_visit_day_state(lo, hi, gap) s
              WHERE NOT s.fresh AND s.day < today AND (pruned IS NULL OR s.day >= pruned)
              ORDER BY s.day LOOP
        PERFORM logpipe_visit_forget($1, d, true);
        WITH r AS MATERIALIZED (
            SELECT * FROM logpipe_visit_rows(d::timestamp AT TIME ZONE 'UTC',
                                             (d + 1)::timestamp AT TIME ZONE 'UTC', gap)
        ), v AS MATERIALIZED (
            -- the visits' first requests, with the visit's requests (hits), and each
            -- request that continues a visit across an hour's start, with the visit's
            -- requests from it on
            SELECT x.*, coalesce(x.next_start, x.n + 1) - x.rn AS hits
              FROM (SELECT r.*,
                           min(r.rn) FILTER (WHERE r.visit_start) OVER (
                               PARTITION BY r.visitor, r.vhost COLLATE "C",
                                            r.remote_host COLLATE "C", r.user_agent COLLATE "C"
                               ORDER BY r.rn ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING)
                           AS next_start
                      FROM r WHERE r.visit_start OR r.first_of_hour) x
        ), g AS MATERIALIZED (  -- visits per hour, vhost, bot flag and first referer
            SELECT v.hour, v.vhost, v.bot, v.referer, logpipe_url_host(v.referer) AS host,
                   count(*) AS visits, sum(v.hits) AS hits
              FROM v WHERE v.visit_start GROUP BY 1, 2, 3, 4
        ), h AS MATERIALIZED (  -- each (vhost, host) classified once
            SELECT coalesce(x.vhost, '') AS vhost, coalesce(x.host, '') AS host, ch.*
              FROM (SELECT g.vhost, g.host FROM g
                    UNION SELECT v.vhost, logpipe_url_host(v.referer) FROM v
                           WHERE NOT v.visit_start) x
             CROSS JOIN LATERAL logpipe_host_channel(x.host, x.vhost) ch
        ), c AS MATERIALIZED (
            SELECT g.hour, g.vhost, g.bot, h.channel, h.source,
                   CASE WHEN h.params <> '{}'
                        THEN left(logpipe_referer_keyphrase(g.referer, h.params), 200)
                   END AS keyphrase, g.visits, g.hits
              FROM g JOIN h ON h.vhost = coalesce(g.vhost, '') AND h.host = coalesce(g.host, '')
        ), channels_hourly AS (
            INSERT INTO logpipe_visit_channels_hourly
            SELECT d, gap, c.hour, c.vhost, c.bot, c.channel, c.source, sum(c.visits),
                   sum(c.hits)
              FROM c WHERE gap <= 3600 GROUP BY 3, 4, 5, 6, 7
        ), crossings AS (
            INSERT INTO logpipe_visit_crossings
            SELECT d, gap, v.hour, v.visitor, v.vhost, v.remote_host, v.user_agent, v.bot,
                   h.channel, h.source, v.hits
              FROM v JOIN h ON h.vhost = coalesce(v.vhost, '')
                           AND h.host = coalesce(logpipe_url_host(v.referer), '')
             WHERE NOT v.visit_start AND gap <= 3600
        ), daily AS (
            INSERT INTO logpipe_visit_daily
            SELECT d, gap, r.vhost, r.bot, count(*) FILTER (WHERE r.first_of_day),
                   count(*) FILTER (WHERE r.visit_start), count(*)
              FROM r GROUP BY r.vhost, r.bot
        ), hourly AS (
            INSERT INTO logpipe_visit_hourly
            SELECT d, gap, r.hour, r.vhost, r.bot, count(*) FILTER (WHERE r.first_of_hour),
                   count(*) FILTER (WHERE r.visit_start), count(*)
              FROM r GROUP BY r.hour, r.vhost, r.bot
        ), countries AS (
            INSERT INTO logpipe_visit_countries
            SELECT d, gap, r.vhost, r.bot, r.country, count(*) FILTER (WHERE r.first_of_day),
                   count(*)
              FROM r GROUP BY r.vhost, r.bot, r.country
        ), channels AS (
            INSERT INTO logpipe_visit_channels
            SELECT d, gap, c.vhost, c.bot, c.channel, c.source, sum(c.visits), sum(c.hits)
              FROM c GROUP BY 3, 4, 5, 6
        ), keyphrases AS (
            INSERT INTO logpipe_visit_keyphrases
            SELECT d, gap, c.vhost, c.bot, c.source, c.keyphrase, sum(c.visits)
              FROM c WHERE c.keyphrase IS NOT NULL GROUP BY 3, 4, 5, 6
        ), varies AS (  -- by hash: two visitors with one hash at worst count from access_log
            SELECT r.visitor FROM r GROUP BY r.visitor
            HAVING min(r.country) IS DISTINCT FROM max(r.country)
                OR count(r.country) NOT IN (0, count(*)) OR bool_and(r.bot) <> bool_or(r.bot)
        ), lasts AS (
            INSERT INTO logpipe_visit_lasts
            SELECT d, gap, r.vhost, r.bot, r.country, x.visitor IS NOT NULL, r.time
              FROM r LEFT JOIN varies x ON x.visitor = r.visitor WHERE r.rn = r.n
        )
        INSERT INTO logpipe_visit_days AS v (day, gap, hits, bytes)
        SELECT d, gap, count(*), coalesce(sum(r.bytes), 0) FROM r
        ON CONFLICT ON CONSTRAINT logpipe_visit_days_pkey DO UPDATE
           SET hits = excluded.hits, bytes = excluded.bytes, refreshed_at = now();
        done := done + 1;
    END LOOP;
    RETURN done;
END
$$;
DO $$
BEGIN  -- pinned to the schema logpipe lives in, like the fold (020_reports.sql)
    EXECUTE format('ALTER FUNCTION logpipe_visits_refresh(integer, date, date)'
                   ' SET search_path = pg_catalog, %I, pg_temp', current_schema());
END
$$;
-- JIT compiling a day's statement costs more than running it
ALTER FUNCTION logpipe_visits_refresh(integer, date, date) SET jit = off;
REVOKE EXECUTE ON FUNCTION logpipe_visits_refresh(integer, date, date) FROM PUBLIC;

-- Summarize the whole hours before `upto` (by default now: the current UTC day so far)
-- of its UTC day that logpipe_visit_prefix lacks for `gap`: the hours since its upto,
-- counted with logpipe_visit_tail(); the whole day so far where it has no prefix that is
-- up to date (a row loaded late, or deleted). Nothing for a day whose whole summary is
-- up to date. Returns how many hours it summarized. The writer runs it when idle, with
-- logpipe_visits_refresh(); SECURITY DEFINER and one at a time per gap, like it.
CREATE OR REPLACE FUNCTION logpipe_visits_refresh_hours(gap integer DEFAULT 1800,
                                                        upto timestamptz DEFAULT now())
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    d date := (upto AT TIME ZONE 'UTC')::date;
    hi timestamptz := date_trunc('hour', upto AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    lo timestamptz;
    old logpipe_visit_prefix;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('logpipe_visits_refresh'), gap);
    IF EXISTS (SELECT FROM logpipe_visit_day_state(d, d + 1, gap) s WHERE s.fresh) THEN
        RETURN 0;
    END IF;
    SELECT p.* INTO old FROM logpipe_visit_prefix p
     WHERE p.day = d AND p.gap = $1
       AND p.upto IN (SELECT s.upto FROM logpipe_visit_prefix_state(d, d + 1, $1) s);
    IF old.day IS NULL THEN  -- none, or out of date: the day so far
        PERFORM logpipe_visit_forget($1, d, false);
        lo := d::timestamp AT TIME ZONE 'UTC';
        old.hits := 0;
        old.bytes := 0;
    ELSE
        lo := old.upto;
    END IF;
    IF lo >= hi THEN
        RETURN 0;
    END IF;
    CREATE TEMP TABLE logpipe_tail ON COMMIT DROP AS
        SELECT * FROM logpipe_visit_tail(d, lo, hi, gap);
    INSERT INTO logpipe_visit_daily
    SELECT d, gap, t.vhost, t.bot, count(*) FILTER (WHERE t.first_of_day),
           count(*) FILTER (WHERE t.visit_start), count(*)
      FROM pg_temp.logpipe_tail t GROUP BY t.vhost, t.bot;
    INSERT INTO logpipe_visit_hourly
    SELECT d, gap, t.hour, t.vhost, t.bot, count(*) FILTER (WHERE t.first_of_hour),
           count(*) FILTER (WHERE t.visit_start), count(*)
      FROM pg_temp.logpipe_tail t GROUP BY t.hour, t.vhost, t.bot;
    INSERT INTO logpipe_visit_countries
    SELECT d, gap, t.vhost, t.bot, t.country, count(*) FILTER (WHERE t.first_of_day), count(*)
      FROM pg_temp.logpipe_tail t GROUP BY t.vhost, t.bot, t.country;
    -- the visits, and the requests continuing one of the prefix, with their hits
    CREATE TEMP TABLE logpipe_tail_starts ON COMMIT DROP AS
    SELECT t.vhost, t.remote_host, t.user_agent, t.time, t.continued, t.referer,
           CASE WHEN t.continued THEN t.state_bot ELSE t.bot END AS bot,
           CASE WHEN NOT t.continued THEN logpipe_url_host(t.referer) END AS host,
           t.channel, t.source, NULL::text AS keyphrase,
           coalesce(lead(t.rn) OVER (PARTITION BY t.visitor, t.vhost COLLATE "C",
                                                  t.remote_host COLLATE "C",
                                                  t.user_agent COLLATE "C" ORDER BY t.rn),
                    t.n + 1) - t.rn AS hits
      FROM pg_temp.logpipe_tail t WHERE t.visit_start OR t.continued;
    -- each (vhost, host) classified once
    UPDATE pg_temp.logpipe_tail_starts s
       SET channel = h.channel, source = h.source,
           keyphrase = CASE WHEN h.params <> '{}'
                            THEN left(logpipe_referer_keyphrase(s.referer, h.params), 200) END
      FROM (SELECT x.vhost, x.host, ch.*
              FROM (SELECT DISTINCT u.vhost, u.host FROM pg_temp.logpipe_tail_starts u
                     WHERE NOT u.continued) x
             CROSS JOIN LATERAL logpipe_host_channel(x.host, x.vhost) ch) h
     WHERE NOT s.continued AND coalesce(h.vhost, '') = coalesce(s.vhost, '')
       AND coalesce(h.host, '') = coalesce(s.host, '');
    INSERT INTO logpipe_visit_channels
    SELECT d, gap, s.vhost, s.bot, s.channel, s.source, count(*) FILTER (WHERE NOT s.continued),
           sum(s.hits)
      FROM pg_temp.logpipe_tail_starts s GROUP BY 3, 4, 5, 6;
    INSERT INTO logpipe_visit_keyphrases
    SELECT d, gap, s.vhost, s.bot, s.source, s.keyphrase, count(*)
      FROM pg_temp.logpipe_tail_starts s WHERE s.keyphrase IS NOT NULL GROUP BY 3, 4, 5, 6;
    -- the state of each visitor seen: its last request, and its last visit (EXECUTE: the
    -- conflict target names the column gap, not the argument)
    EXECUTE $sql$
    INSERT INTO logpipe_visit_state
    SELECT DISTINCT ON (s.vhost, s.remote_host, s.user_agent)
           $1, $2, s.vhost, s.remote_host, s.user_agent, l.time, s.bot, s.channel, s.source
      FROM pg_temp.logpipe_tail_starts s
      JOIN pg_temp.logpipe_tail l ON l.rn = l.n
       AND logpipe_visitor_key(l.vhost, l.remote_host, l.user_agent)
           = logpipe_visitor_key(s.vhost, s.remote_host, s.user_agent)
     ORDER BY s.vhost, s.remote_host, s.user_agent, s.time DESC
    ON CONFLICT (gap, day, logpipe_visitor_key(vhost, remote_host, user_agent)) DO UPDATE
       SET last_time = excluded.last_time, bot = excluded.bot, channel = excluded.channel,
           source = excluded.source
    $sql$ USING d, gap;
    INSERT INTO logpipe_visit_prefix AS p (day, gap, upto, hits, bytes)
    SELECT d, gap, hi, old.hits + count(*), old.bytes + coalesce(sum(t.bytes), 0)
      FROM pg_temp.logpipe_tail t
    ON CONFLICT ON CONSTRAINT logpipe_visit_prefix_pkey DO UPDATE
       SET upto = excluded.upto, hits = excluded.hits, bytes = excluded.bytes,
           refreshed_at = now();
    DROP TABLE pg_temp.logpipe_tail, pg_temp.logpipe_tail_starts;
    RETURN extract(epoch FROM hi - lo)::integer / 3600;
END
$$;
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION logpipe_visits_refresh_hours(integer, timestamptz)'
                   ' SET search_path = pg_catalog, %I, pg_temp', current_schema());
END
$$;
ALTER FUNCTION logpipe_visits_refresh_hours(integer, timestamptz) SET jit = off;
REVOKE EXECUTE ON FUNCTION logpipe_visits_refresh_hours(integer, timestamptz) FROM PUBLIC;

-- -- Views ----------------------------------------------------------------------------
-- Over all time with the default gap of 30 minutes: the summaries of the days that are
-- up to date, and access_log for the others. `logpipe report visitors|countries|channels`
-- runs filtered versions of the same.

CREATE OR REPLACE VIEW report_visitors_daily AS
SELECT u.day, u.vhost, sum(u.visitors)::bigint AS visitors, sum(u.visits)::bigint AS visits,
       sum(u.hits)::bigint AS hits
  FROM (SELECT v.day, v.vhost, v.visitors, v.visits, v.hits
          FROM logpipe_visit_daily v
          JOIN logpipe_visit_day_state(NULL, NULL, 1800) s ON s.day = v.day AND s.fresh
         WHERE v.gap = 1800
        UNION ALL
        SELECT p.day, p.vhost, count(*) FILTER (WHERE p.first_of_day),
               count(*) FILTER (WHERE p.visit_start), count(*)
          FROM logpipe_visit_day_state(NULL, NULL, 1800) s
         CROSS JOIN LATERAL logpipe_visit_rows(s.day::timestamp AT TIME ZONE 'UTC',
                                               (s.day + 1)::timestamp AT TIME ZONE 'UTC') p
         WHERE NOT s.fresh
         GROUP BY 1, 2) u
 GROUP BY 1, 2
 ORDER BY 1, 2;

CREATE OR REPLACE VIEW report_countries AS
SELECT u.country, sum(u.visitors)::bigint AS visitors, sum(u.hits)::bigint AS hits
  FROM (SELECT v.country, v.visitors, v.hits
          FROM logpipe_visit_countries v
          JOIN logpipe_visit_day_state(NULL, NULL, 1800) s ON s.day = v.day AND s.fresh
         WHERE v.gap = 1800
        UNION ALL
        SELECT p.country, count(*) FILTER (WHERE p.first_of_day), count(*)
          FROM logpipe_visit_day_state(NULL, NULL, 1800) s
         CROSS JOIN LATERAL logpipe_visit_rows(s.day::timestamp AT TIME ZONE 'UTC',
                                               (s.day + 1)::timestamp AT TIME ZONE 'UTC') p
         WHERE NOT s.fresh
         GROUP BY 1) u
 GROUP BY 1
 ORDER BY visitors DESC, hits DESC, country;

CREATE OR REPLACE VIEW report_channels AS
SELECT u.channel, u.source, sum(u.visits)::bigint AS visits, sum(u.hits)::bigint AS hits
  FROM (SELECT v.channel, v.source, v.visits, v.hits
          FROM logpipe_visit_channels v
          JOIN logpipe_visit_day_state(NULL, NULL, 1800) s ON s.day = v.day AND s.fresh
         WHERE v.gap = 1800
        UNION ALL
        SELECT c.channel, c.source, g.visits, g.hits
          FROM (SELECT p.vhost, logpipe_url_host(p.referer) AS host, count(*) AS visits,
                       sum(p.hits) AS hits
                  FROM logpipe_visit_day_state(NULL, NULL, 1800) s
                 CROSS JOIN LATERAL logpipe_visit_starts(
                       s.day::timestamp AT TIME ZONE 'UTC',
                       (s.day + 1)::timestamp AT TIME ZONE 'UTC') p
                 WHERE NOT s.fresh
                 GROUP BY 1, 2) g
         CROSS JOIN LATERAL logpipe_host_channel(g.host, g.vhost) c) u
 GROUP BY 1, 2
 ORDER BY visits DESC, hits DESC, channel, source;

-- Search words of visits from search engines, where the referer still carries them.
CREATE OR REPLACE VIEW report_keyphrases AS
SELECT u.source, u.keyphrase, sum(u.visits)::bigint AS visits
  FROM (SELECT v.source, v.keyphrase, v.visits
          FROM logpipe_visit_keyphrases v
          JOIN logpipe_visit_day_state(NULL, NULL, 1800) s ON s.day = v.day AND s.fresh
         WHERE v.gap = 1800
        UNION ALL
        SELECT c.source, c.keyphrase, count(*)
          FROM logpipe_visit_day_state(NULL, NULL, 1800) s
         CROSS JOIN LATERAL logpipe_visit_starts(s.day::timestamp AT TIME ZONE 'UTC',
                                                 (s.day + 1)::timestamp AT TIME ZONE 'UTC') p
         CROSS JOIN LATERAL logpipe_referer_channel(p.referer, p.vhost) c
         WHERE NOT s.fresh AND c.keyphrase IS NOT NULL
         GROUP BY 1, 2) u
 GROUP BY 1, 2
 ORDER BY visits DESC, source, keyphrase;

-- -- Countries of rows loaded before access_log.country existed ---------------------

-- Done once per database by `logpipe initdb` (logpipe.store.countries): when, and how
-- many rows it filled.
CREATE TABLE IF NOT EXISTS logpipe_country_backfill (
    done_at timestamptz NOT NULL DEFAULT now(),
    rows    bigint      NOT NULL
);
