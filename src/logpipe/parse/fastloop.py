"""The fast path: a loop specialised to one LogFormat, generated as Python source.

One regex findall over a whole chunk gives a tuple per line. The generated loop
unpacks it into locals and builds each COPY row with a single f-string, using
only cheap checks that the regex makes sufficient (values without a backslash
need no escaping, numbers are in range, ...). Whatever it cannot settle cheaply
goes to RowBuilder helpers; a line the regex did not match, whose time is
invalid, or whose quoted value the quick regex got wrong (Cut) goes to
`slow(line)`, the reference path.

The source is kept on LineParser.fast_source for anyone who wants to read it.
"""

from __future__ import annotations

from typing import Any, Callable

from logpipe.parse import values
from logpipe.parse.columns import ACCESS_LOG_COLUMNS
from logpipe.parse.fields import Field, Plan, Target
from logpipe.parse.rows import TIME_CACHE_LIMIT, Cut, RowBuilder, check_quoted, fill_value

# Methods the loop takes without further checks; any other goes through split_request().
METHODS = frozenset((
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "REPORT", "SEARCH",
))

# run(matches, rows, slow): the findall tuples of whole lines, the list rows are appended to,
# and the reference path for one line
RunFunction = Callable[[list[tuple[str, ...]], list[str], Callable[[str], None]], None]

BACKSLASH = '"\\\\"'  # the Python source of a string holding one backslash


def generate(plan: Plan, proxies: tuple[int, int] | None = None,
             anonymize: bool = False) -> str:
    """Python source of `run(matches, rows, slow)` for this format: matches are the tuples
    of the fast or quick regex's findall over whole lines (see regexes.line_regexes).
    proxies: RowBuilder.proxy_fields, when --trusted-proxy applies to this format."""
    names = [f"g{i}" for i in range(len(plan.fields))]
    groups = f"({', '.join(names)}, tr)"
    body = _time(plan, names) + _row(plan, names, proxies, anonymize)  # inside the try
    return "\n".join([
        "def run(matches, rows, slow):",
        "    append = rows.append",
        "    tget = time_cache.get",
        "    dget = date_cache.get",
        "    aget = agent_cache.get",
        "    xget = extra_cache.get",
        f"    for {', '.join(names)}, tr, bad in matches:",
        "        if bad:  # the line did not match",
        "            slow(bad[:-1])",
        "            continue",
        "        try:",
        *("            " + line for line in body),
        "        except Cut:",
        f"            slow(b.rebuild({groups}))",
    ]) + "\n"


def _row(plan: Plan, names: list[str], proxies: tuple[int, int] | None = None,
         anonymize: bool = False) -> list[str]:
    """Code setting every column but the time from the values g0, g1 ... and tr (the
    trailing text), then appending the row."""
    body: list[str] = []
    produced = {"time", "source", "extra"}
    extra: list[str] = []
    fills: list[tuple[str, Field]] = []
    for g, f in zip(names, plan.fields):
        lines, columns = _field(g, f)
        body += lines
        produced.update(columns)
        if f.target == Target.EXTRA:
            extra.append(g)
        elif f.target == Target.FILL:
            fills.append((g, f))
    body += _real_client(names, proxies)
    body += _client_address(produced, anonymize)
    body += _fills(fills, produced)
    if extra:  # extra values repeat a lot: the JSON is cached on their raw text
        key = f"({', '.join(extra)}, tr)"
        body += [f"c_extra = xget({key})", "if c_extra is None:", f"    c_extra = b.extra({key})"]
    else:
        body.append("c_extra = b.extra((tr,)) if tr else N")
    row = "\\t".join("{SOURCE}" if c == "source" else f"{{c_{c}}}" if c in produced else "\\\\N"
                     for c in ACCESS_LOG_COLUMNS)
    body.append(f'append(f"{row}\\n")')
    return body


def _real_client(names: list[str], proxies: tuple[int, int] | None) -> list[str]:
    """Code replacing c_remote_host by the client behind a trusted proxy (see proxies)."""
    if proxies is None:
        return []
    key = f"({names[proxies[0]]}, {names[proxies[1]]})"
    return [f"rc = pget({key})",
            "if rc is None:",
            f"    rc = real_client{key}",
            "if rc:",
            "    c_remote_host = rc"]


def _client_address(produced: set[str], anonymize: bool) -> list[str]:
    """Code setting c_country and, with --anonymize-ip, cutting c_remote_host (geo);
    adds country to produced when the format has a client. The lookup itself (0.13 us)
    costs less than a dict of the addresses seen (0.3 us, measured in bench/geo_bench.py):
    only the cut, done with ipaddress, is cached."""
    if "remote_host" not in produced:
        return []
    produced.add("country")
    if not anonymize:
        return ["c_country = country_code(c_remote_host) or no_country(c_remote_host)"]
    return ["x = cget(c_remote_host)",
            "if x is None:",
            "    x = client_address(c_remote_host)",
            "c_country, c_remote_host = x"]


def _fills(fills: list[tuple[str, Field]], produced: set[str]) -> list[str]:
    """Code for %m %U %q %H: each fills in its column if %r did not (adds to produced)."""
    body: list[str] = []
    for g, f in fills:
        col = f"c_{f.column}"
        if f.quoted:
            body.append(f"if {BACKSLASH} in {g}: check_quoted({g})")
        if f.column in produced:
            body += [f"if {col} == N:", f"    {col} = fill_value({f.column!r}, {g})"]
        else:
            body.append(f"{col} = fill_value({f.column!r}, {g})")
            produced.add(f.column)  # type: ignore[arg-type]
    return body


def _time(plan: Plan, names: list[str]) -> list[str]:
    """Code setting c_time, from the cache when it can."""
    main = next(i for i, f in enumerate(plan.fields) if f.target == Target.TIME)
    t = names[main]
    lines = []
    zone = [g for g, f in zip(names, plan.fields) if f.target == Target.ZONE]
    if zone:  # "%{%d/%b/%Y %T}t %{%z}t": the time is both values together
        lines.append(f'tk = f"{{{t}}} {{{zone[0]}}}"')
        t = "tk"
    lines += [f"c_time = tget({t})", "if c_time is None:"]
    if plan.fields[main].time_kind == "clf" and not zone:
        # The fast regex checked all but the date: look the day up in its own cache
        # (b.time() checks everything, and fills that cache).
        lines += [
            f"    c_time = dget({t}[1:12])",
            "    if c_time is None:",
            f"        c_time = b.time({t})",
            "    else:",
            f'        c_time = f"{{c_time}}{{{t}[13:21]}}{{{t}[22:25]}}:{{{t}[25:27]}}"',
            "        if len(time_cache) >= TIME_CACHE_LIMIT:",
            "            time_cache.clear()",
            f"        time_cache[{t}] = c_time",
        ]
    else:
        lines.append(f"    c_time = b.time({t})")
    lines += ["    if c_time is None:",
              f"        slow(b.rebuild(({', '.join(names)}, tr)))",
              "        continue"]
    return lines


def _field(g: str, f: Field) -> tuple[list[str], tuple[str, ...]]:
    """Code for one field's value in variable g, and the columns it sets."""
    target = f.target
    col = f"c_{f.column}"
    if target == Target.COL:
        if f.quoted:
            value = f"(b.quoted({g}) if {BACKSLASH} in {g} else {g})"
        elif f.escaped:
            value = f"(copy_field({g}) if {BACKSLASH} in {g} else {g})"
        else:  # the fast regex let no backslash through
            value = g
        return [f'{col} = N if {g} == "-" else {value}'], (f.column,)  # type: ignore[return-value]
    if target == Target.AGENT:
        return [f"x = aget({g})",
                "if x is None:",
                f"    x = b.agent({g})",
                "c_user_agent, c_is_bot = x"], ("user_agent", "is_bot")
    if target == Target.REQUEST:
        return [
            f'sp = {g}.split(" ")',
            (f'if (len(sp) == 3 and sp[0] in METHODS and sp[2][:5] == "HTTP/" and sp[1]'
            f" and {BACKSLASH} not in {g}):"),
            "    c_method, c_path, c_protocol = sp",
            '    if "?" in c_path:',
            '        c_path, _, c_query = c_path.partition("?")',
            "    else:",
            "        c_query = N",
            "    c_request = N",
            "else:",
            f"    c_method, c_path, c_query, c_protocol, c_request = b.request({g})",
        ], ("method", "path", "query", "protocol", "request")
    if target == Target.STATUS:  # the fast regex let only 100..999 or "-" through
        return [f'c_status = N if {g} == "-" else {g}'], ("status",)
    if target == Target.INT:  # the fast regex let only up to 18 digits (12 if scaled) through
        value = g if f.scale == 1 else f"str(int({g}) * {f.scale})"
        return [f'{col} = {f.dash!r} if {g} == "-" else {value}'], (f.column,)  # type: ignore
    if target == Target.FRAC:  # plan() leaves a FRAC field only where it completes the time
        return [f'c_time = f"{{c_time[:19]}}.{{{g}}}{{c_time[19:]}}"'], ()
    return [], ()  # EXTRA and FILL: see _row(); TIME and ZONE: see _time()


def compile_run(plan: Plan, builder: RowBuilder) -> tuple[RunFunction, str]:
    """The generated loop as a function bound to this format's caches and helpers."""
    source = generate(plan, builder.proxy_fields, builder.client_address.anonymize)
    namespace: dict[str, Any] = {
        "time_cache": builder.time_cache,
        "date_cache": builder.date_cache,
        "agent_cache": builder.agent_cache,
        "extra_cache": builder.extra_cache,
        "TIME_CACHE_LIMIT": TIME_CACHE_LIMIT,
        "b": builder,
        "N": values.NULL,
        "SOURCE": builder.source,
        "METHODS": METHODS,
        "Cut": Cut,
        "check_quoted": check_quoted,
        "copy_field": values.copy_field,
        "fill_value": fill_value,
    }
    namespace["cget"] = builder.client_address.cache.get
    namespace["client_address"] = builder.client_address.miss
    namespace["country_code"] = builder.client_address.lookup_country
    namespace["no_country"] = builder.client_address.no_country
    if builder.real_client is not None:
        namespace["pget"] = builder.real_client.cache.get
        namespace["real_client"] = builder.real_client.lookup
    exec(compile(source, "<logpipe fast loop>", "exec"), namespace)  # noqa: S102
    return namespace["run"], source
