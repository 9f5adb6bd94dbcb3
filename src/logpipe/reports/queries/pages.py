"""SQL of the page reports, `pages` and `static` (and the counts `tree` groups): whole UTC
days from the daily rollup, or the all-time totals minus the days outside the window,
corrected for partial days by their whole hours (logpipe_daily_page_hours, where its
summary of that day is up to date) and from access_log for the rest, at most an hour
either side (else for the whole part of the day); from access_log alone for --source (the
rollups have no sources). Paths are named with '//' as '/'; whether one is a static asset
is the flag logpipe_pages.asset, which the database keeps in step with
logpipe_asset_patterns (sql/020_reports.sql)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from logpipe.reports.filters import Filters, all_of, conditions, limit_clause
from logpipe.reports.queries.daily import read_summaries

# What RollupRange is read from (run.rollup_range runs it).
ROLLUP_RANGE_SQL = "SELECT min(day), max(day) FROM logpipe_rollup_daily"
# Whether a day's hours are in logpipe_daily_page_hours, up to date, and up to when
# (sql/050_daily_summaries.sql): asked for the days a window takes part of.
PAGE_HOURS_SQL = ("SELECT s.day, s.upto FROM logpipe_daily_state(%(day)s, %(day)s + 1) s"
                  " JOIN logpipe_daily_days d ON d.day = s.day WHERE s.fresh AND d.page_hours")

# Counted from access_log alone (--source), a path has no logpipe_pages row to read its
# flag from: it is matched as the report runs, once per distinct path. Most patterns are
# '%.ext': those are matched as one hash lookup of the path's extension (what follows
# its last '.', which a match needs), not as one LIKE per pattern and path (~10 times
# slower); the others ('/robots.txt') by LIKE. ARRAY() of an uncorrelated subquery runs
# once per query.
_BY_EXTENSION = r"pattern ~ '^%%\.[^.%%_\\]+$'"
ASSET_EXTENSIONS = ("SELECT substr(pattern, 3) AS ext FROM logpipe_asset_patterns"
                    f" WHERE {_BY_EXTENSION}")
ASSET_OTHERS = f"ARRAY(SELECT pattern FROM logpipe_asset_patterns WHERE NOT {_BY_EXTENSION})"


def page_asset(alias: str, asset: bool = True) -> str:
    """Whether the logpipe_pages row AS `alias` is a static asset (or, not `asset`, a
    page): its flag, kept by the fold and by a trigger on the patterns; a page not
    classified yet (NULL: none is, once committed) is classified here, and the ARRAY()
    runs only if one is met. Written so that the planner reads the flag's statistics."""
    test = f"logpipe_is_asset({alias}.path, ARRAY(SELECT pattern FROM logpipe_asset_patterns))"
    if asset:  # never NULL: the report counts what is not an asset with NOT
        return f"({alias}.asset IS TRUE OR {alias}.asset IS NULL AND {test})"
    return f"({alias}.asset IS FALSE OR {alias}.asset IS NULL AND NOT {test})"


def classified(table: str, path: str) -> str:
    """FROM items: `table`, its collapsed `path` as n.path, and n.asset."""
    return (
        f"{table} CROSS JOIN LATERAL (SELECT logpipe_page_path({path}) AS path) q"
        " CROSS JOIN LATERAL (SELECT lower(q.path) AS path) l"
        f" LEFT JOIN ({ASSET_EXTENSIONS}) x"
        " ON x.ext = reverse(split_part(reverse(l.path), '.', 1))"
        f" CROSS JOIN LATERAL (SELECT q.path, x.ext IS NOT NULL OR l.path LIKE ANY ({ASSET_OTHERS})"
        " AS asset) n"
    )


# The columns query_counts yields: vhost ('' for none), the collapsed path ('' for none;
# two rows may name the same one), whether it is an asset, page views (GET or POST
# served) and their bytes, all requests served and their bytes.
COUNTS = "(vhost, path, asset, views, view_bytes, hits, bytes)"


@dataclass(frozen=True)
class RollupRange:
    """What `pages` needs beyond the rollup: read with ROLLUP_RANGE_SQL."""

    first_day: dt.date | None  # first and last day in logpipe_rollup_daily, None if empty
    last_day: dt.date | None
    # the days the window takes part of whose hours can be read, and up to when
    page_hours: tuple[tuple[dt.date, dt.datetime], ...] = ()


def read_page_hours(cur: Any, f: Filters) -> tuple[tuple[dt.date, dt.datetime], ...]:
    """RollupRange.page_hours for the window of `f`: none where the summaries cannot be
    read (daily.read_summaries)."""
    if f.per_source:
        return ()
    found: list[tuple[dt.date, dt.datetime]] = []
    for day in sorted({_utc_day(t) for t in (f.since, f.until) if t is not None}):
        rows = read_summaries(cur, PAGE_HOURS_SQL, {"day": day})
        if rows is None:
            return ()
        found += rows
    return tuple(found)


def _utc_day(moment: dt.datetime) -> dt.date:
    return moment.astimezone(dt.timezone.utc).date()


def _utc_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.timezone.utc)


def _split(moment: dt.datetime, pruned: bool = False
           ) -> tuple[dt.date, tuple[dt.datetime, dt.datetime] | None, int]:
    """A window bound as whole UTC days plus a correction from access_log.

    Rows before `moment` = rollup days before the returned day + sign * access_log rows
    in the returned time range: either the start of moment's day up to moment (sign +1),
    or moment up to the end of its day, taking in the whole day (sign -1), whichever
    range is shorter. No correction where access_log was `pruned`: the start of the day.
    """
    utc = moment.astimezone(dt.timezone.utc)
    day = utc.date()
    start = _utc_midnight(day)
    if utc == start or pruned:
        return day, None, 0
    end = start + dt.timedelta(days=1)
    if utc - start <= end - utc:
        return day, (start, utc), 1
    return day + dt.timedelta(days=1), (utc, end), -1


def page_path(path: str) -> str:
    """A path as the page reports name it (logpipe_page_path): '//' is '/'."""
    return re.sub("/{2,}", "/", path)


def query_pages(f: Filters, days: RollupRange, everything: bool = False
                ) -> tuple[str, dict[str, Any]]:
    """Most viewed pages: GET and POST requests served for paths that are not static
    assets; with `everything` (--all), every request served, assets too."""
    if everything:
        return _ranked(f, days, None, "hits", "bytes")
    return _ranked(f, days, False, "views", "view_bytes")


def query_static(f: Filters, days: RollupRange) -> tuple[str, dict[str, Any]]:
    """Most requested static assets: GET and POST requests served for asset paths."""
    return _ranked(f, days, True, "views", "view_bytes")


# The pages that share their collapsed path with another page: those with '//' (few:
# found through the partial index logpipe_pages_slashed, whose condition LIKE also lets
# the planner count them from the column's statistics) and the pages their collapsed
# paths name; each with its vhost and collapsed path, which `pages` adds them up under.
MERGED = (
    "SELECT s.id, s.vhost, logpipe_page_path(s.path) AS path FROM logpipe_pages s"
    " WHERE s.path LIKE '%%//%%'"
    " UNION"
    " SELECT n.id, n.vhost, n.path FROM logpipe_pages s JOIN logpipe_pages n"
    " ON n.vhost = s.vhost AND n.path = logpipe_page_path(s.path)"
    " WHERE s.path LIKE '%%//%%'"
)


def _ranked(f: Filters, days: RollupRange, asset: bool | None, hits: str,
            bytes_: str) -> tuple[str, dict[str, Any]]:
    """Rows (vhost, path, hits, bytes) per collapsed path, most first, cut at --limit:
    assets only (`asset` True), pages only (False) or both (None)."""
    if f.per_source:  # few rows per path: grouped on the names
        keep = {None: "", True: " WHERE c.asset", False: " WHERE NOT c.asset"}[asset]
        source, params = _counts_from_access_log(f)
        sql = (
            "SELECT nullif(c.vhost, '') AS vhost, nullif(c.path, '') AS path,"
            f" sum(c.{hits})::bigint AS hits, sum(c.{bytes_})::bigint AS bytes"
            f" FROM ({source}) c{keep} GROUP BY c.vhost, c.path HAVING sum(c.{hits}) > 0"
            " ORDER BY hits DESC, c.vhost, c.path" + limit_clause(f, params)
        )
        return sql, params
    everyone = _every_page_ranked(f, days, asset, hits, bytes_)
    if not f.limit or f.path is not None or not _window_is_long(f, days):
        return everyone
    return _first_pages_ranked(f, days, asset, hits, bytes_, everyone)


def _window_is_long(f: Filters, days: RollupRange) -> bool:
    """Whether the window holds at least a fifth of the rollup's days: then a page's
    requests of all time are a bound close enough for _first_pages_ranked to settle the
    top pages (a shorter window holds too few of them: every page is counted)."""
    lo = None if f.since is None else _split(f.since)[0]
    hi = None if f.until is None else _split(f.until)[0]
    inside, outside = _days_inside_outside(days, lo, hi)
    return inside * 4 >= outside


def _asset_filter(asset: bool | None) -> list[str]:
    """The condition on logpipe_pages AS p: assets only (True), pages only (False)."""
    return [] if asset is None else [page_asset("p", asset)]


def _ranked_from(f: Filters, w: _Window, asset: bool | None, hits: str, bytes_: str,
                 params: dict[str, Any], ahead: str = "") -> tuple[str, str]:
    """The ranking of _ranked over the pages of the window `w`, as its CTEs (m, `ahead`,
    which may read m, and c) and the query that reads them."""
    kept = _asset_filter(asset)
    c = (f"SELECT p.id, p.vhost, p.path, {w.measure(f, hits)} AS hits,"
         f" {w.measure(f, bytes_)} AS bytes FROM {w.pages()}"
         f" WHERE {all_of([*w.conditions(), *kept])}")
    # Most pages are a row of their own, as they are: not grouped, and a bounded sort
    # picks the top --limit (hits, then names: the cut is exact, the order stable). Only
    # the few that share a collapsed path (MERGED) are added up. The counts per page are
    # read twice: kept once (the sums are costly) unless they are the totals alone, which
    # the second reading looks up by id.
    materialized = "MATERIALIZED" if w.sums else "NOT MATERIALIZED"
    return (
        f"m AS MATERIALIZED ({MERGED}), {ahead}c AS {materialized} ({c})",
        "SELECT nullif(r.vhost, '') AS vhost, nullif(r.path, '') AS path,"
        " r.hits::bigint AS hits, r.bytes::bigint AS bytes"
        " FROM (SELECT c.vhost, logpipe_page_path(c.path) AS path, c.hits, c.bytes FROM c"
        " WHERE NOT EXISTS (SELECT FROM m WHERE m.id = c.id)"
        " UNION ALL SELECT m.vhost, m.path, sum(c.hits)::bigint, sum(c.bytes)::bigint"
        " FROM m JOIN c ON c.id = m.id GROUP BY m.vhost, m.path) r WHERE r.hits > 0"
        " ORDER BY r.hits DESC, r.vhost, r.path" + limit_clause(f, params)
    )


def _every_page_ranked(f: Filters, days: RollupRange, asset: bool | None, hits: str,
                       bytes_: str) -> tuple[str, dict[str, Any]]:
    """_ranked's query counting every page in the window."""
    w, params = _window(f, days, (hits, bytes_))
    ctes, ranking = _ranked_from(f, w, asset, hits, bytes_, params)
    return f"WITH {ctes} {ranking}", params


def candidates(limit: int) -> int:
    """How many pages, those with the most requests of all time, _first_pages_ranked
    counts in the window: enough that their counts usually settle the top --limit."""
    return 5 * limit + 50


def _first_pages_ranked(f: Filters, days: RollupRange, asset: bool | None, hits: str,
                        bytes_: str, everyone: tuple[str, dict[str, Any]]
                        ) -> tuple[str, dict[str, Any]]:
    """_ranked's query reading candidates(--limit) pages (150 for 20) instead of all of
    them (~100,000 rows: ~100 ms), when that gives the same rows, else `everyone`: the
    one is a one-time filter.

    A page has no more requests in any window than of all time (in its logpipe_pages
    totals, with the same --humans/--bots). So the candidates, the pages with the most
    of all time (plus the few sharing a collapsed path, MERGED, counted whole), are
    counted in the window; if the --limit-th of them has more requests in the window
    than the next page has of all time (the bound), no other page can be in the top
    --limit, which is then exact. Otherwise (a page that was popular long ago), every
    page is counted. One scan of logpipe_pages picks the candidates: no index on the
    counts, which the fold updates at every pass.

    The window's counts add rows read from access_log for part of a day; rows not
    folded yet (a report that cannot fold, rows loaded meanwhile) are there and not in
    the totals, and could take a page past its bound: so pending counts of such a day
    have every page counted too.
    """
    w, params = _window(f, days, (hits, bytes_), pages_in="SELECT pick.id FROM pick")
    params["candidates"] = candidates(f.limit or 0)
    # read only when the window adds such a day. The quarter-hour counts pending stand
    # for the pages': a batch that adds pending counts to a page's day adds some to a
    # quarter of that UTC day too (the same rows, all of them there), and one fold
    # takes both. They are ~50 rows a batch where the pages' are one a page: between
    # vacuums logpipe_pending_pages (no index) may hold a million dead rows, 120 ms to
    # scan after initdb's rebuild of the rollups, at every `pages --since`.
    params["added_days"] = list(w.added_days)
    settled = ("NOT EXISTS (SELECT FROM logpipe_pending_quarters WHERE"
               " (quarter AT TIME ZONE 'UTC')::date = ANY (%(added_days)s::date[])) AND "
               if w.added_days else "")
    kept = _asset_filter(asset)
    bound = _measures(f, "p")[MEASURES.index(hits)]
    page_filter = _page_conditions(f, params, "p")
    ahead = (
        f"cand AS MATERIALIZED (SELECT p.id, {bound} AS bound FROM logpipe_pages p"
        f" WHERE {all_of([*page_filter, *kept, 'NOT EXISTS (SELECT FROM m WHERE m.id = p.id)'])}"
        " ORDER BY bound DESC LIMIT %(candidates)s + 1),"
        " pick AS (SELECT id FROM (SELECT id FROM cand ORDER BY bound DESC"
        " LIMIT %(candidates)s) n UNION ALL SELECT id FROM m),"
    )
    ctes, first = _ranked_from(f, w, asset, hits, bytes_, params, ahead)
    outside = ("coalesce((SELECT bound FROM cand ORDER BY bound DESC"
               " OFFSET %(candidates)s LIMIT 1), 0)")
    sql = (
        f"WITH {ctes}, t AS MATERIALIZED ({first}), verdict AS MATERIALIZED (SELECT"
        f" {settled}({outside} <= 0 OR (SELECT count(*) = %(limit)s AND min(t.hits) > {outside} FROM t))"
        " AS exact)"
        " SELECT * FROM (SELECT * FROM t WHERE (SELECT exact FROM verdict)"
        f" UNION ALL SELECT * FROM ({everyone[0]}) e WHERE NOT (SELECT exact FROM verdict)) r"
        # as _ranked_from orders them: its '' are NULL here
        " ORDER BY r.hits DESC, coalesce(r.vhost, ''), coalesce(r.path, '')"
    )
    return sql, {**everyone[1], **params}


def query_counts(f: Filters, days: RollupRange) -> tuple[str, dict[str, Any]]:
    """Counts per page in the window, as COUNTS, for the rows of the filters but --limit."""
    if f.per_source:
        return _counts_from_access_log(f)
    w, params = _window(f, days)
    sql = (f"SELECT p.vhost, logpipe_page_path(p.path) AS path, {page_asset('p')} AS asset,"
           f" {', '.join(f'{w.measure(f, m)} AS {m}' for m in MEASURES)}"
           f" FROM {w.pages()} WHERE {all_of(w.conditions())}")
    return sql, params


MEASURES = ("views", "view_bytes", "hits", "bytes")


@dataclass(frozen=True)
class _Sums:
    """Signed counts per page, a query AS `name` joined to logpipe_pages AS p `on`; its
    column `key` is not NULL where it has the page."""

    name: str
    sql: str
    on: str
    key: str


@dataclass(frozen=True)
class _Window:
    """Where the counts per page of a window come from: each page of logpipe_pages AS p,
    with its all-time counts (`totals`, filtered by `where`), plus the sums: whole days of
    logpipe_rollup_daily (d), partial days counted in access_log (x, xlo, xhi)."""

    totals: bool
    sums: tuple[_Sums, ...]
    where: str = "true"
    pages_in: str | None = None  # a query of the ids of the only pages counted
    # the UTC days whose rows in access_log are added (not taken away) by a partial day
    added_days: tuple[dt.date, ...] = ()

    def pages(self) -> str:
        """FROM items p and the sums. Always from the pages, the sums joined to them: a
        hash of each sum (one row per page, which the planner knows of a GROUP BY
        subquery) and one scan of the pages."""
        where = ([self.where] if self.totals else []) + (
            [f"p.id IN ({self.pages_in})"] if self.pages_in else [])
        p = f"(SELECT * FROM logpipe_pages p WHERE {all_of(where)}) p" if where \
            else "logpipe_pages p"
        return p + "".join(f" LEFT JOIN ({s.sql}) {s.name} ON {s.on}" for s in self.sums)

    def conditions(self) -> list[str]:
        """Which rows of pages() count: every page with totals, else those with sums."""
        if self.totals:
            return []
        return [f"({' OR '.join(f'{s.name}.{s.key} IS NOT NULL' for s in self.sums)})"]

    def measure(self, f: Filters, name: str) -> str:
        """A measure of MEASURES, of a row of pages()."""
        terms = [_measures(f, "p")[MEASURES.index(name)]] if self.totals else []
        return " + ".join(terms + [f"coalesce({s.name}.{name}, 0)" for s in self.sums])


def _window(f: Filters, days: RollupRange, needed: tuple[str, ...] = MEASURES,
            pages_in: str | None = None) -> tuple[_Window, dict[str, Any]]:
    """Where the counts per page in [since, until) come from, for the filters but --limit
    and --source; whole days are added up for the `needed` MEASURES only, and the
    pages whose ids the query `pages_in` yields are the only ones counted, if given.

    Rows in [since, until) = rows before until - rows before since, each counted as
    whole rollup days plus part of a day from access_log (see _split). The whole days
    come from logpipe_rollup_daily, or, when fewer days lie outside the window than
    inside (e.g. --since 30d on 30 days of logs), from the all-time totals in
    logpipe_pages minus the days outside. Only the days and the partial days are
    grouped (per page), not the totals: those are one row per page already.
    """
    params: dict[str, Any] = {}
    if (f.since is not None and f.until is not None and not f.pruned(f.since)
            and f.until - f.since <= dt.timedelta(days=1)):
        days_read = tuple({_utc_day(f.since), _utc_day(f.until)})
        return _Window(False, (_raw_part(f, params),),
                       pages_in=pages_in, added_days=days_read), params
    page_filter = _page_conditions(f, params, "p")  # on logpipe_pages AS p
    sums = []
    added: list[dt.date] = []
    lo = hi = None
    if f.since is not None:
        lo, span, sign = _split(f.since, f.pruned(f.since))
        if span:
            part, adds = _partial_day(f, params, span, -sign, "lo", days, page_filter,
                                      pages_in)
            sums += part
            added += [_utc_day(span[0])] if adds else []
    if f.until is not None:
        hi, span, sign = _split(f.until, f.pruned(f.until))
        if span:
            part, adds = _partial_day(f, params, span, sign, "hi", days, page_filter,
                                      pages_in)
            sums += part
            added += [_utc_day(span[0])] if adds else []
    params["lo_day"], params["hi_day"] = lo, hi

    def rollup(day_conditions: list[str], sign: int) -> _Sums:
        """Whole days meeting one of `day_conditions` (on {day}) added up per page."""
        where = [f"({' OR '.join(day_conditions)})".format(day="r.day")] if day_conditions \
            else []
        if page_filter:
            where.append("r.page_id IN (SELECT p.id FROM logpipe_pages p"
                         f" WHERE {all_of(page_filter)})")
        sums = ", ".join(f"sum({sign} * ({m}))::bigint AS {name}"
                         for m, name in zip(_measures(f, "r"), MEASURES) if name in needed)
        rows = "logpipe_rollup_daily r"
        if pages_in:  # a few pages: each of their days looked up by the key (day, page)
            chosen = [f"({' OR '.join(day_conditions)})".format(day="s.day")] \
                if day_conditions else []
            rows = (f"({pages_in}) k CROSS JOIN (SELECT s.day FROM {ROLLUP_DAYS} s"
                    f" WHERE {all_of(chosen)}) s JOIN logpipe_rollup_daily r"
                    " ON r.day = s.day AND r.page_id = k.id")
        # grouped on the rollup's own column: the planner knows how many pages it holds
        return _Sums("d", f"SELECT r.page_id, {sums} FROM {rows}"
                          f" WHERE {all_of(where)} GROUP BY r.page_id", "d.page_id = p.id",
                     "page_id")

    inside, outside = _days_inside_outside(days, lo, hi)
    if outside < inside:  # the totals minus the whole days outside the window
        outer = ((["{day} < %(lo_day)s"] if lo is not None else [])
                 + (["{day} >= %(hi_day)s"] if hi is not None else []))
        if outer:
            sums.insert(0, rollup(outer, -1))
        return _Window(True, tuple(sums), all_of(page_filter), pages_in,
                       tuple(added)), params
    inner = (["{day} >= %(lo_day)s"] if lo else []) + (["{day} < %(hi_day)s"] if hi else [])
    sums.insert(0, rollup([all_of(inner)], 1))
    return _Window(False, tuple(sums), pages_in=pages_in, added_days=tuple(added)), params


# Every day from the daily rollup's first to its last, read at the ends of its key.
ROLLUP_DAYS = ("(SELECT d::date AS day FROM generate_series((SELECT min(day) FROM"
               " logpipe_rollup_daily), (SELECT max(day) FROM logpipe_rollup_daily),"
               " interval '1 day') d)")


def _measures(f: Filters, alias: str) -> list[str]:
    """The MEASURES of a rollup row AS `alias` (logpipe_pages, logpipe_rollup_daily), for
    --humans/--bots.

    The daily rollup's views are NULL on days counted before logpipe counted views (kept
    only there once pruned): those days' requests served stand in for their views.
    """
    def column(name: str, fallback: str) -> str:
        if alias == "r":
            return f"coalesce(r.{name}, r.{fallback})"
        return f"{alias}.{name}"

    pairs = [(column("views", "hits"), column("bot_views", "bot_hits")),
             (column("view_bytes", "bytes"), column("bot_view_bytes", "bot_bytes")),
             (f"{alias}.hits", f"{alias}.bot_hits"), (f"{alias}.bytes", f"{alias}.bot_bytes")]
    return [{None: total, True: bot, False: f"({total} - {bot})"}[f.bots]
            for total, bot in pairs]


def _page_conditions(f: Filters, params: dict[str, Any], alias: str) -> list[str]:
    """--path and --vhost on a table of rollup keys AS `alias`; --path names the
    collapsed path, so `--path /a` also counts requests for //a."""
    where = []
    if f.path is not None:
        where.append(f"logpipe_page_path({alias}.path) = %(page_path)s")
        params["page_path"] = page_path(f.path)
    if f.vhost is not None:
        where.append(f"{alias}.vhost = %(vhost)s")
        params["vhost"] = f.vhost
    return where


def _days_inside_outside(days: RollupRange, lo: dt.date | None,
                         hi: dt.date | None) -> tuple[int, int]:
    """Rollup days in [lo, hi) and outside it (None: unbounded)."""
    if days.first_day is None or days.last_day is None:  # an empty rollup
        return 0, 0
    first, end = days.first_day, days.last_day + dt.timedelta(days=1)
    start, stop = max(lo or first, first), min(hi or end, end)
    inside = max(0, (stop - start).days)
    return inside, (end - first).days - inside


# A row's page as the rollups key it (sql/020_reports.sql), so that the partial days
# read from access_log meet the rollup's whole days on the same page.
ROLLUP_VHOST = "logpipe_rollup_vhost(a.vhost)"
ROLLUP_PATH = "logpipe_rollup_path(a.path)"
ROLLUP_BYTES = "logpipe_rollup_bytes(a.bytes, a.bytes_out)"
VIEW = "logpipe_is_view(a.method)"


def _raw_conditions(f: Filters, params: dict[str, Any], time: bool = True) -> list[str]:
    """Served rows of access_log AS a within the filters; --path as _page_conditions."""
    where = ["a.status < 400", *conditions(dataclasses.replace(f, path=None), params, time)]
    if f.path is not None:
        where.append("logpipe_page_path(a.path) = %(page_path)s")
        params["page_path"] = page_path(f.path)
    return where


def _hour_of(moment: dt.datetime) -> dt.datetime:
    """The start of the UTC hour `moment` is in."""
    return moment.astimezone(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)


def _partial_day(f: Filters, params: dict[str, Any], span: tuple[dt.datetime, dt.datetime],
                 sign: int, name: str, days: RollupRange, page_filter: list[str],
                 pages_in: str | None) -> tuple[list[_Sums], bool]:
    """Pages counted in `span`, part of one UTC day (see _split), signed, and whether
    rows of access_log or of the day's summary are added (not only taken away): whole
    hours from logpipe_daily_page_hours where that day's are up to date that far, and
    at either end the part of an hour from access_log, or the whole hour from the
    summary less the rest of it from access_log, whichever is shorter (30 minutes at
    most); else all of it from access_log, up to 12 hours of rows (~110 ms at 10M rows
    over 30 days, against ~10 ms)."""
    start, end = span
    hour = dt.timedelta(hours=1)
    first, last = _hour_of(start), _hour_of(end)  # the summary's hours: [first, last)
    pieces: list[tuple[tuple[dt.datetime, dt.datetime], int]] = []  # of access_log
    if first < start:
        if start - first <= hour / 2:  # the hour, less its beginning
            pieces.append(((first, start), -sign))
        else:
            first += hour
            pieces.append(((start, first), sign))
    if last < end:
        if end - last > hour / 2:  # the hour, less its end
            pieces.append(((end, last + hour), -sign))
            last += hour
        else:
            pieces.append(((last, end), sign))
    upto = dict(days.page_hours).get(_utc_day(start))
    if upto is None or last > upto or first >= last or f.per_source:
        return [_raw_part(f, params, span, sign, name)], sign > 0
    sums = [_raw_part(f, params, piece, piece_sign, f"{name}{i}")
            for i, (piece, piece_sign) in enumerate(pieces)]
    params[f"{name}_hours_day"] = _utc_day(start)  # not {name}_day: _window's
    params[f"{name}_first_hour"], params[f"{name}_end_hour"] = first, last
    where = [f"h.day = %({name}_hours_day)s", f"h.hour >= %({name}_first_hour)s",
             f"h.hour < %({name}_end_hour)s"]
    if page_filter:
        where.append("h.page_id IN (SELECT p.id FROM logpipe_pages p"
                     f" WHERE {all_of(page_filter)})")
    rows = "logpipe_daily_page_hours h"
    if pages_in:  # a few pages: each one's hours looked up by the key (day, page)
        rows = (f"({pages_in}) k CROSS JOIN LATERAL (SELECT h.* FROM {rows}"
                f" WHERE {all_of([*where, 'h.page_id = k.id'])}) h")
        where = []
    counts = ", ".join(f"{sign} * sum({m})::bigint AS {measure}"
                       for m, measure in zip(_measures(f, "h"), MEASURES))
    sums.append(_Sums(f"h{name}", f"SELECT h.page_id, {counts} FROM {rows}"
                                  f" WHERE {all_of(where)} GROUP BY h.page_id",
                      f"h{name}.page_id = p.id", "page_id"))
    return sums, sign > 0 or any(piece_sign > 0 for _, piece_sign in pieces)


def _raw_part(f: Filters, params: dict[str, Any],
              span: tuple[dt.datetime, dt.datetime] | None = None, sign: int = 1,
              name: str = "") -> _Sums:
    """Pages counted in access_log, signed: within `span`, else within [since, until).
    Keyed as the rollups key pages, and joined to logpipe_pages on that key by the query
    that reads the pages anyway (a few of them, for _first_pages_ranked: a filter on
    them here made the planner loop over them for each row, misled by --vhost)."""
    where = _raw_conditions(f, params, time=span is None)
    if span is not None:
        params[f"{name}_start"], params[f"{name}_end"] = span
        where.append(f"a.time >= %({name}_start)s AND a.time < %({name}_end)s")
    x = f"x{name}"
    return _Sums(x, (
        f"SELECT {ROLLUP_VHOST} AS vhost, {ROLLUP_PATH} AS path,"
        f" {sign} * count(*) FILTER (WHERE {VIEW}) AS views,"
        f" {sign} * coalesce(sum({ROLLUP_BYTES}) FILTER (WHERE {VIEW}), 0)::bigint AS view_bytes,"
        f" {sign} * count(*) AS hits, {sign} * coalesce(sum({ROLLUP_BYTES}), 0)::bigint AS bytes"
        f" FROM access_log a WHERE {all_of(where)} GROUP BY 1, 2"
    ), f"{x}.vhost = p.vhost AND {x}.path = p.path", "path")


def _counts_from_access_log(f: Filters) -> tuple[str, dict[str, Any]]:
    """Counts per page in access_log alone, named as the rollups name them ('' for none)."""
    params: dict[str, Any] = {}
    where = _raw_conditions(f, params)
    view_bytes = "coalesce(a.bytes, a.bytes_out)"
    counted = (
        "SELECT coalesce(a.vhost, '') AS vhost, coalesce(a.path, '') AS path,"
        f" count(*) FILTER (WHERE {VIEW}) AS views,"
        f" coalesce(sum({view_bytes}) FILTER (WHERE {VIEW}), 0)::bigint AS view_bytes,"
        f" count(*) AS hits, coalesce(sum({view_bytes}), 0)::bigint AS bytes"
        f" FROM access_log a WHERE {all_of(where)} GROUP BY 1, 2"
    )
    sql = ("SELECT k.vhost, n.path, n.asset, k.views, k.view_bytes, k.hits, k.bytes"
           f" FROM {classified(f'({counted}) k', 'k.path')}")
    return sql, params
