-- Core tables. Every file in sql/ is idempotent: `logpipe initdb` runs them all,
-- in name order, in one transaction, so it creates a new schema or upgrades an
-- old one and can be re-run at any time.

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
);

-- Rows arrive roughly in time order, so a BRIN index is tiny and cheap to keep.
CREATE INDEX IF NOT EXISTS access_log_time_brin ON access_log USING brin (time);

CREATE TABLE IF NOT EXISTS access_log_rejects (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    source      text,
    reason      text NOT NULL,
    line        bytea NOT NULL                -- the raw line exactly as received, without its LF
);

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
