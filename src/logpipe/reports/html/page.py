"""One self-contained HTML page from the dashboard's data: template.html with the style,
uPlot, app.js and the data inlined, and a Content-Security-Policy that lets the page run
its own two scripts and style (by hash) and nothing else.

The data goes into a <script type="application/json"> element, escaped so that no
logged value can end it ("</script>") or start markup: <, > and & as \\u escapes, and
every character outside ASCII (U+2028, U+2029 too) as well.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

# What the page may do beyond its own inline scripts and style: nothing at all for a
# report file; fetch its data from where it came from for `logpipe serve`.
BASE_POLICY = ("default-src 'none'", "base-uri 'none'", "form-action 'none'")
LIVE_POLICY = ("connect-src 'self'",)
_MARKER = re.compile(r"@@([A-Z]+)@@")


@dataclass(frozen=True)
class Page:
    html: str
    csp: str  # also in the page's <meta>; `serve` sends it as a header too


@cache
def asset(name: str) -> str:
    """A file of this package (template, style, script, vendor/...), as text."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def json_for_script(value: Any) -> str:
    """JSON that is safe inside <script type="application/json">: it cannot close the
    element nor open a comment, and has no line separators JavaScript would trip on."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def source_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def policy(scripts: list[str], styles: list[str], live: bool) -> str:
    parts = [*BASE_POLICY,
             "script-src " + " ".join(source_hash(s) for s in scripts),
             "style-src " + " ".join(source_hash(s) for s in styles)]
    if live:
        parts += LIVE_POLICY
    return "; ".join(parts)


def build_page(data: dict[str, Any], title: str, live: dict[str, Any] | None = None) -> Page:
    """The page for `data` (data.collect's); `live` is serve's settings (refresh
    seconds, the period and vhost chosen, the periods offered), None for a file."""
    style = asset("vendor/uPlot.min.css") + "\n" + asset("style.css")
    uplot, app = asset("vendor/uPlot.iife.min.js"), asset("app.js")
    csp = policy([uplot, app], [style], live is not None)
    values = {
        "CSP": html.escape(csp, quote=True),
        "TITLE": html.escape(title, quote=True),
        "SUBTITLE": html.escape(data.get("description", ""), quote=True),
        "STYLE": style,
        "DATA": json_for_script(data),
        "LIVE": json_for_script(live),
        "UPLOT": uplot,
        "APP": app,
    }
    # one pass: text put in is never searched for markers again
    page = _MARKER.sub(lambda m: values[m.group(1)], asset("template.html"))
    return Page(page, csp)
