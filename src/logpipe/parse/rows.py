"""Building one COPY row from the matched values of one line (the reference path).

RowBuilder.build() checks and converts every value and is what decides, for
any line the fast loop could not take, whether it loads and how. It also holds
the caches and helpers the generated fast loop (fastloop) calls into, so both
paths convert values the same way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Callable

from logpipe.parse import values as v
from logpipe.parse.columns import ACCESS_LOG_COLUMNS
from logpipe.parse.fields import Field, Plan, Target
from logpipe.parse.geo import ClientAddress
from logpipe.parse.proxies import RealClient, proxy_fields

NULL = v.NULL
CACHE_LIMIT = 50_000
# Characters held by the User-Agent or the extra cache (keys and values) before it is
# emptied: a client can send an 8 KB agent of its own with every request, and 50,000
# of those would hold gigabytes.
CACHE_CHARS = 8 * 1024 * 1024
# Times: lines arrive in time order, so only the last few seconds repeat; a small cache
# keeps the writer's memory flat whatever the log's span.
TIME_CACHE_LIMIT = 4_096


class BoundedCache(dict):  # type: ignore[type-arg]
    """A dict that empties itself rather than hold more than CACHE_LIMIT entries or
    CACHE_CHARS characters of keys and values. Still a dict: the fast loop looks values
    up with its own bound `get`."""

    def __init__(self) -> None:
        super().__init__()
        self.chars = 0

    def put(self, key: object, value: object, size: int) -> None:
        """Remember value under key; `size` is their length in characters."""
        if len(self) >= CACHE_LIMIT or self.chars + size > CACHE_CHARS:
            self.clear()
            self.chars = 0
        self[key] = value
        self.chars += size


class Reject(Exception):
    """This line cannot be loaded; str() is the reason."""


class Cut(Reject):
    """A quoted value the quick regex got wrong (see regexes.line_regexes)."""


def well_escaped(value: str) -> bool:
    """True if the value holds no unescaped quote and no dangling backslash.

    Without its escaped backslashes, each backslash escapes the character after it:
    str methods in C, where a regex stepping through the escapes cost ~140 us for an
    8 KB User-Agent of \\xhh."""
    rest = value.replace("\\\\", "")
    return not rest.endswith("\\") and rest.count('"') == rest.count('\\"')


def check_quoted(value: str) -> str:
    """The value of a quoted field if it holds no unescaped quote and no dangling backslash."""
    if not well_escaped(value):
        raise Cut("line does not match the LogFormat: a quote in a quoted value")
    return value


def fill_value(column: str, value: str) -> str:
    """A %m / %U / %q / %H value as COPY text (NULL when there is none)."""
    if value in ("-", ""):
        return NULL
    if column == "query" and value[0] == "?":
        value = value[1:]
    return v.copy_field(value)


class RowBuilder:
    """Per-format conversion state: caches, constant columns, and the generic row builder."""

    def __init__(self, plan: Plan, source: str | None,
                 classify_agent: Callable[[str], bool] | None,
                 real_client: RealClient | None = None, anonymize_ip: bool = False) -> None:
        self.fields = plan.fields
        # country of remote_host, then --anonymize-ip, after the real client is known
        self.client_address = ClientAddress(anonymize_ip)
        # --trusted-proxy: (remote_host field, X-Forwarded-For field) indexes, when both
        self.real_client = real_client
        self.proxy_fields = None if real_client is None else proxy_fields(plan)
        self.source = NULL if source is None else v.copy_text(source)
        self.classify_agent = classify_agent
        self.time_cache: dict[str, str] = {}
        self.agent_cache = BoundedCache()  # logged value -> (user_agent, is_bot)
        self.extra_cache = BoundedCache()  # raw values -> the extra column
        self.date_cache: dict[str, str] = {}  # "10/Oct/2000" -> "2000-10-10 " (valid dates)
        self.extra_fields = [f for f in plan.fields if f.target == Target.EXTRA]
        self.agent_quoted = any(f.target == Target.AGENT and f.quoted for f in plan.fields)
        self.request_quoted = any(f.target == Target.REQUEST and f.quoted for f in plan.fields)
        main = next(f for f in plan.fields if f.target == Target.TIME)
        self.main_time = main
        # literal text around the fields, to give back a fast-matched line exactly
        self.literals: list[str] = []
        text = ""
        for item in plan.items:
            if isinstance(item, str):
                text += item
            else:
                self.literals.append(text)
                text = ""
        self.literals.append(text)

    # -- helpers shared with the fast loop --------------------------------------------

    def time(self, value: str) -> str | None:
        """The main time value as COPY text (cached), None if it is not a valid time."""
        text = self.time_cache.get(value)
        if text is None:
            f = self.main_time
            if f.time_kind == "clf":
                text = v.clf_time(value)
                if text is not None:  # the fast loop converts other times of that day itself
                    if len(self.date_cache) >= CACHE_LIMIT:
                        self.date_cache.clear()
                    self.date_cache[value[1:12]] = text[:11]
            elif f.time_kind == "epoch":
                text = v.epoch_time(value, f.digits)
            else:
                text = v.strftime_time(value, f.pyfmt)
            if text is None:
                return None
            if len(self.time_cache) >= TIME_CACHE_LIMIT:
                self.time_cache.clear()
            self.time_cache[value] = text
        return text

    def agent(self, value: str) -> tuple[str, str]:
        """(user_agent, is_bot) as COPY text, cached per distinct logged value."""
        result = self.agent_cache.get(value)
        if result is None:
            if value == "-":
                result = (NULL, NULL)
            else:
                if self.agent_quoted and "\\" in value:
                    check_quoted(value)
                ua = v.unescape(value)
                bot = NULL
                if self.classify_agent is not None:
                    try:
                        bot = "t" if self.classify_agent(ua) else "f"
                    except Exception:  # noqa: BLE001 - a classifier bug must not lose the row
                        bot = NULL
                result = (v.copy_text(ua), bot)
            self.agent_cache.put(value, result, len(value) + len(result[0]))
        return result

    def request(self, value: str) -> tuple[str, str, str, str, str]:
        """(method, path, query, protocol, request) as COPY text."""
        if self.request_quoted and "\\" in value:
            check_quoted(value)
        return tuple(NULL if x is None else v.copy_text(x)  # type: ignore[return-value]
                     for x in v.split_request(value))

    @staticmethod
    def quoted(value: str) -> str:
        """A quoted value holding a backslash, as COPY text."""
        return v.copy_field(check_quoted(value))

    def extra(self, raw: tuple[str, ...]) -> str:
        """The extra column (COPY text) from the raw values of the extra fields, then the
        trailing text; cached, as these values repeat a lot (ports, "-", ...)."""
        text = self.extra_cache.get(raw)
        if text is not None:
            return text
        extra: dict[str, object] = {}
        for f, value in zip(self.extra_fields, raw):
            if f.quoted and "\\" in value:
                check_quoted(value)
            if value != "-":
                extra[f.key] = v.extra_number(value) if f.numeric else v.unescape(value)  # type: ignore
        trailing = raw[-1]
        if trailing[-1:] == "\r":
            trailing = trailing[:-1]
        trailing = trailing.lstrip(" ")
        if trailing:
            extra["trailing"] = trailing
        text = self._json(extra) if extra else NULL
        self.extra_cache.put(raw, text, sum(map(len, raw)) + len(text))
        return text

    @staticmethod
    def _json(extra: dict[str, object]) -> str:
        return v.copy_text(json.dumps(extra, ensure_ascii=False, separators=(",", ":")))

    def rebuild(self, groups: Sequence[str]) -> str:
        """The line a fast match came from (without its LF): literals and values interleaved."""
        lit = self.literals
        parts = [lit[0]]
        for i, g in enumerate(groups[:-1]):
            parts.append(g)
            parts.append(lit[i + 1])
        parts.append(groups[-1])
        return "".join(parts)

    # -- the reference conversion -------------------------------------------------------

    def build(self, groups: Sequence[str]) -> str:
        """One COPY row from a line's values (one per field, then the trailing text).

        The values are the lenient regex's groups: a quoted value there is always well
        escaped, so, unlike the fast loop's, it needs no check_quoted().
        """
        row = dict.fromkeys(ACCESS_LOG_COLUMNS, NULL)
        row["source"] = self.source
        extra: list[str] = []
        fills: list[tuple[Field, str]] = []
        frac = zone = None
        time_value = ""
        for f, value in zip(self.fields, groups):
            target = f.target
            if target == Target.TIME:
                time_value = value
            elif target == Target.FRAC:
                frac = value
            elif target == Target.ZONE:
                zone = value
            elif target == Target.COL:
                row[f.column] = NULL if value == "-" else v.copy_field(value)  # type: ignore
            elif target == Target.AGENT:
                row["user_agent"], row["is_bot"] = self.agent(value)
            elif target == Target.REQUEST:
                (row["method"], row["path"], row["query"], row["protocol"],
                 row["request"]) = self.request(value)
            elif target == Target.FILL:
                fills.append((f, value))
            elif target == Target.STATUS:
                row["status"] = _checked(v.status_value, value)
            elif target == Target.INT:
                row[f.column] = _checked(  # type: ignore[index]
                    v.bigint_value, value, f.column, f.dash, f.scale, f.column == "duration_us")
            elif target == Target.EXTRA:
                extra.append(value)
        if self.proxy_fields is not None:  # the real client behind a trusted proxy
            client = self.real_client.lookup(  # type: ignore[union-attr]
                groups[self.proxy_fields[0]], groups[self.proxy_fields[1]])
            if client:
                row["remote_host"] = client
        row["country"], row["remote_host"] = self.client_address(row["remote_host"])
        for f, value in fills:
            if row[f.column] == NULL:  # type: ignore[index]
                row[f.column] = fill_value(f.column, value)  # type: ignore
        if zone is not None:
            time_value = f"{time_value} {zone}"
        row["time"] = self.time(time_value)  # type: ignore[assignment]
        if row["time"] is None:
            raise Reject(f"bad time: {time_value}")
        if frac is not None:  # plan() leaves a FRAC field only where it completes the time
            row["time"] = f"{row['time'][:19]}.{frac}{row['time'][19:]}"
        extra.append(groups[-1])
        row["extra"] = self.extra(tuple(extra))
        return "\t".join(row.values()) + "\n"


def _checked(convert: Callable[..., str], *args: object) -> str:
    try:
        return convert(*args)
    except ValueError as exc:
        raise Reject(str(exc)) from None
