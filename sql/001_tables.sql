-- Core tables. Every file NNN_*.sql here is idempotent and non-destructive: `logpipe
-- initdb` runs them all, in name order, in one transaction, after the upgrades
-- (upgrade_NNN_*.sql) that the database has not had yet according to
-- logpipe_schema_version. So it creates a new schema or completes an old one, can be
-- re-run at any time, drops nothing an operator may have built on (views, grants), and
-- takes no lock that would stop a logger when there is nothing to change: an index or
-- trigger is created only when missing (CREATE INDEX IF NOT EXISTS alone would lock
-- the table against writes even when the index exists).

-- The schema versions this database has had; logpipe.store.database.SCHEMA_VERSION is
-- the one this logpipe makes.
CREATE TABLE IF NOT EXISTS logpipe_schema_version (
    version         integer PRIMARY KEY,
    applied_at      timestamptz,              -- NULL: unknown (version 1, found in place)
    logpipe_version text,                     -- of the logpipe that applied it
    how             text NOT NULL             -- created, upgraded from version N, ...
);

-- Partitioned by time (see 005_partitions.sql): old months go with a DROP of their
-- partition (`logpipe prune`) instead of a DELETE of their rows.
CREATE TABLE IF NOT EXISTS access_log (
    time        timestamptz NOT NULL,         -- %t: when the request was received
    vhost       text,                         -- %v (or %V when %v is absent)
    remote_host text,                         -- %h (or %a when %h is absent)
    remote_user text,                         -- %u, NULL for "-"
    method      text,                         -- from %r or %m; NULL for a "-" request
    path        text,                         -- URI before "?"
    query       text,                         -- after "?", NULL if none
    protocol    text,                         -- HTTP/1.1, HTTP/2.0 ...; NULL if absent
    status      smallint,                     -- %>s (final status)
    bytes       bigint,                       -- %b or %B; "-" is 0
    referer     text,                         -- %{Referer}i, NULL for "-"
    user_agent  text,                         -- %{User-agent}i, NULL for "-"
    duration_us bigint,                       -- %D, or %T scaled to microseconds
    bytes_in    bigint,                       -- %I (mod_logio)
    bytes_out   bigint,                       -- %O (mod_logio)
    is_bot      boolean,                      -- user agent classified as a crawler
    request     text,                         -- the request line, kept only when it is
                                              -- not "METHOD URI [PROTOCOL]" (e.g. TLS junk)
    extra       jsonb,                        -- every other directive of the LogFormat
    source      text,                         -- which server or logger wrote the row
    loaded_at   timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (time);

-- Rows no partition covers, so that no time ever stops a COPY: absurd ones (a clock in
-- 1970 or 2100), and old dates of a backfill until logpipe_prepare_partitions() moves
-- them into partitions of their own.
CREATE TABLE IF NOT EXISTS access_log_default PARTITION OF access_log DEFAULT;

-- Columns added after the first release come last, in fresh and upgraded databases
-- alike (ALTER TABLE only when missing: it takes ACCESS EXCLUSIVE even with IF NOT EXISTS).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_attribute
                   WHERE attrelid = 'access_log'::regclass AND attname = 'country'
                     AND NOT attisdropped) THEN
        -- ISO 3166-1 alpha-2 of remote_host, looked up offline at load time; NULL for
        -- private, loopback and unknown addresses.
        ALTER TABLE access_log ADD COLUMN country text;
    END IF;
END
$$;

-- Rows arrive roughly in time order, so a BRIN index is tiny and cheap to keep.
DO $$
BEGIN
    IF to_regclass('access_log_time_brin') IS NULL THEN
        CREATE INDEX access_log_time_brin ON access_log USING brin (time);
    END IF;
END
$$;

CREATE TABLE IF NOT EXISTS access_log_rejects (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    source      text,
    reason      text NOT NULL,
    line        bytea NOT NULL                -- the raw line exactly as received, without its LF
);

-- `logpipe prune` deletes rejects by received_at; they arrive in that order.
DO $$
BEGIN
    IF to_regclass('access_log_rejects_received_brin') IS NULL THEN
        CREATE INDEX access_log_rejects_received_brin ON access_log_rejects
            USING brin (received_at);
    END IF;
END
$$;

-- How far the writer has loaded each spool segment. Updated in the same
-- transaction as the rows it covers: this is what makes loading exactly-once.
CREATE TABLE IF NOT EXISTS logpipe_progress (
    segment     text PRIMARY KEY,             -- spool segment file name (globally unique)
    byte_offset bigint NOT NULL DEFAULT 0,    -- bytes of the segment already loaded
    lines       bigint NOT NULL DEFAULT 0,    -- lines loaded from it (rows + rejects)
    finished    boolean NOT NULL DEFAULT false, -- segment closed and fully loaded
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Files loaded by `logpipe load`, so loading the same file twice is refused.
CREATE TABLE IF NOT EXISTS logpipe_loaded_files (
    fingerprint text PRIMARY KEY,             -- sha256 of the file's content
    path        text NOT NULL,
    lines       bigint NOT NULL,
    loaded_at   timestamptz NOT NULL DEFAULT now()
);
