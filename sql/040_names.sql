-- Client names and page owners: the reverse DNS cache that `logpipe resolve` fills and
-- `logpipe report domains` (report_domains) reads, and the owners of the site's pages
-- that `logpipe digest broken-links` mails. Idempotent like every file here.

-- -- Reverse DNS cache --------------------------------------------------------------

-- One row per client address (access_log.remote_host, as logged) that `logpipe
-- resolve` looked up. A failed lookup is kept too (name NULL), so it is not asked again
-- at every run: resolve retries it after a day (--retry-after), and looks a name up
-- again once it is six weeks old (--max-age). `domain` is the registrable domain of the
-- name under the public suffix list's ICANN section (crawl-66-249-66-1.googlebot.com ->
-- googlebot.com), worked out by resolve: the list lives in Python, the report in SQL.
-- A remote_host that is already a name (Apache's HostnameLookups On) is stored with
-- outcome 'logged' and no query.
CREATE TABLE IF NOT EXISTS logpipe_dns_names (
    address     text PRIMARY KEY,
    name        text,
    domain      text,
    outcome     text NOT NULL CHECK (outcome IN
                    ('name', 'logged', 'nxdomain', 'no name', 'servfail', 'timeout')),
    resolved_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((name IS NOT NULL) = (outcome IN ('name', 'logged')))
);

-- Requests and visitors per registrable domain of the client's name; clients without
-- a name under their country (access_log.country, upper case) or 'unresolved'. A
-- visitor is one client address and User-Agent on one UTC day, on one vhost, as in
-- 030_visitors.sql. `logpipe report domains` runs the same query with filters
-- (src/logpipe/reports/queries/domains.py).
CREATE OR REPLACE VIEW report_domains AS
SELECT coalesce(n.domain, n.name, upper(a.country), 'unresolved') AS domain,
       count(DISTINCT (a.vhost, a.remote_host, a.user_agent,
                       (a.time AT TIME ZONE 'UTC')::date)) AS visitors,
       count(*) AS hits
  FROM access_log a
  LEFT JOIN logpipe_dns_names n ON n.address = a.remote_host
 GROUP BY 1
 ORDER BY visitors DESC, hits DESC, domain;

-- -- Page owners ----------------------------------------------------------------------

-- Who hears about broken links on which pages: `logpipe digest broken-links` mails each
-- address the broken links found on pages whose path starts with `prefix` (on `vhost`,
-- or on any vhost when vhost is ''). The longest matching prefix wins (a vhost's own
-- entry over an any-vhost one of the same length); every address of the winning entry
-- gets the link. Links no entry claims go to the digest's --to. From psql:
--   INSERT INTO logpipe_page_owners (prefix, address) VALUES ('/blog/', 'blog@example.com');
CREATE TABLE IF NOT EXISTS logpipe_page_owners (
    prefix  text NOT NULL CHECK (prefix LIKE '/%'),
    vhost   text NOT NULL DEFAULT '' CHECK (vhost = lower(vhost)),
    address text NOT NULL CHECK (address LIKE '%_@_%' AND address !~ '[[:cntrl:][:space:],<>]'),
    PRIMARY KEY (vhost, prefix, address)
);
