"""Headless Chromium for the tests, driven over the DevTools protocol: open a page, read
its rendered DOM, and collect what went wrong (console errors, uncaught exceptions,
CSP violations, requests to anywhere but the page's own origin).

The network is cut off: every host name resolves to nothing and every request goes to
a proxy on the discard port, except loopback addresses (for `logpipe serve`).
Needs Debian's `chromium` (.ci/run installs it) and websocket-client.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import websocket
from conftest import wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "chromium"
FLAGS = [
    "--headless=new", "--disable-gpu", "--no-sandbox", "--no-first-run",
    "--no-default-browser-check", "--disable-extensions", "--disable-sync",
    "--disable-background-networking", "--disable-component-update",
    "--disable-default-apps", "--disable-features=Translate,MediaRouter,OptimizationHints",
    "--mute-audio", "--remote-debugging-port=0", "--remote-allow-origins=*",
    # no network: names resolve to nothing, and requests not to loopback go to a dead proxy
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--proxy-server=127.0.0.1:9",
]
# Only the local debugging port: never an environment's proxy.
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Browser:
    """One headless Chromium with one page (a tab)."""

    def __init__(self, profile: Path, width: int = 1200, height: int = 900) -> None:
        self.profile = profile
        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        wait_for(lambda: port_file.exists() and port_file.read_text().count("\n") >= 1,
                 timeout=30, what="Chromium's DevToolsActivePort file")
        port = int(port_file.read_text().split("\n")[0])
        targets = wait_for(lambda: [t for t in self._targets(port) if t["type"] == "page"],
                           timeout=30, what="Chromium's first page")
        self.ws = websocket.create_connection(targets[0]["webSocketDebuggerUrl"],
                                              timeout=30, suppress_origin=True)
        self.events: list[dict[str, Any]] = []
        self._next_id = 0
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")

    @staticmethod
    def _targets(port: int) -> list[dict[str, Any]]:
        try:
            with _LOCAL.open(f"http://127.0.0.1:{port}/json/list", timeout=5) as answer:
                return json.loads(answer.read())
        except OSError:
            return []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send a command, keep the events that arrive meanwhile, return its result."""
        self._next_id += 1
        self.ws.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str, ready: str = "document.documentElement.dataset.rendered === 'yes'"
             ) -> None:
        """Load `url` and wait until the page says it is drawn (`ready`, a JS expression)."""
        self.call("Page.navigate", url=url)
        wait_for(lambda: self.evaluate(f"document.readyState === 'complete' && ({ready})"),
                 timeout=30, what=lambda: f"{url} to render; events: {self.problems()}")

    def requested(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events
                if e.get("method") == "Network.requestWillBeSent"]

    def problems(self, origin: str | None = None) -> list[str]:
        """Console errors and warnings, exceptions, log entries (CSP violations, failed
        loads) and requests outside `origin` (a file: URL or scheme://host:port)."""
        found = []
        for e in self.events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails']}")
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "warning",
                                                                             "assert"):
                found.append(f"console.{params['type']}: {params['args']}")
            elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
                found.append(f"log: {params['entry']}")
        if origin is not None:
            for url in self.requested():
                if not same_origin(url, origin):
                    found.append(f"request outside the page: {url}")
        return found

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@contextlib.contextmanager
def browser(profile: Path, width: int = 1200, height: int = 900) -> Iterator[Browser]:
    """A Browser, closed (Chromium ended) afterwards."""
    b = Browser(profile, width, height)
    try:
        yield b
    finally:
        b.close()


def same_origin(url: str, origin: str) -> bool:
    """`url` is the page itself (a file: origin is that one file) or on its server."""
    if origin.startswith("file:"):
        return url.split("#")[0] == origin
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" == origin


# The DOM as the tests read it: totals, tables (a dict per row, by column name), links.
READ_PAGE = """(() => {
  const tables = {};
  for (const t of document.querySelectorAll('table[id^="table-"]')) {
    const cols = t.dataset.columns.split(',');
    tables[t.id.slice(6)] = [...t.tBodies[0].rows].map(
      tr => Object.fromEntries([...tr.cells].map((td, i) => [cols[i], td.textContent])));
  }
  const totals = {};
  for (const c of document.querySelectorAll('[data-total]')) {
    const v = c.querySelector('.value');
    totals[c.dataset.total] = {text: v.textContent, title: v.getAttribute('title')};
  }
  return {
    tables, totals,
    links: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href')),
    elements: [...document.querySelectorAll('img, iframe, object, embed, svg script')].length,
    scripts: document.scripts.length,
    charts: document.querySelectorAll('.uplot canvas').length,
    title: document.title,
    subtitle: document.getElementById('subtitle').textContent,
    error: document.getElementById('error').textContent,
    pwned: window.pwned === undefined ? null : String(window.pwned),
  };
})()"""


def read_page(browser: Browser) -> dict[str, Any]:
    return browser.evaluate(READ_PAGE)
