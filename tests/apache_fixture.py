"""A private Apache httpd for end-to-end tests, with logpipe as its piped logger.

`ApacheServer` writes a self-contained configuration (no /etc/apache2, no
Debian envvars) into its own directory under /tmp, loads the few modules it
needs from /usr/lib/apache2/modules and runs Debian's /usr/sbin/apache2 in
the foreground as a child of the test, as root, with `User www-data` for the
worker processes. Every request is logged twice:

- `CustomLog "|<this interpreter> -m logpipe --dsn ... --spool-dir <dir>/spool ..." combined`
  (the `|` form, no shell in between), and
- `CustomLog <dir>/logs/ground_truth.log combined`, a plain file: the truth
  that access_log must equal line for line.

`graceful()`, `restart()` and `stop()` go through `apache2 -f CONF -k ...` as an
operator (or logrotate) would. `close()` tears everything down, even after a
failed test: it kills whatever process still names the private directory on
its command line (httpd children, loggers, writers), then removes the directory.

`load()` runs a `LoadGenerator`, a small keep-alive HTTP client in threads:
every request carries a unique `id=N` query string, so each ground-truth line
is unique, and `compare_rows()` matches access_log against the ground truth
as multisets of (host, user, time, method, path, query, protocol, status,
bytes, referer, user agent).
"""

from __future__ import annotations

import contextlib
import grp
import http.client
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import logpipe

APACHE_BIN = Path("/usr/sbin/apache2")
MODULES_DIR = Path("/usr/lib/apache2/modules")
WORKER_USER = "www-data"
COMBINED = r'"%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\""'
DEBIAN_COMBINED = COMBINED.replace("%b", "%O")  # Debian's apache2.conf logs %O as "combined"
VHOST_COMBINED = r'"%v:%p %h %l %u %t \"%r\" %>s %O \"%{Referer}i\" \"%{User-Agent}i\""'
SIGTERM_MASK = 1 << (signal.SIGTERM - 1)

# The paths LoadGenerator asks for, in turn: pages, a directory index, a 404 (ErrorDocument).
PATHS: Sequence[str] = ("/index.html", "/", "/big.txt", "/missing/page", "/style.css")


def check_prerequisites() -> None:
    """Fail clearly (never skip) when the machine lacks Apache or root."""
    missing = [str(p) for p in (APACHE_BIN, MODULES_DIR / "mod_mpm_event.so") if not p.exists()]
    assert not missing, (
        f"{', '.join(missing)} missing: run `apt-get install -y apache2 apache2-utils` "
        "(.ci/run does this)"
    )
    assert os.geteuid() == 0, "the Apache tests start httpd as root, as production does"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- processes, seen through /proc ---------------------------------------------


def cmdline(pid: int) -> list[str]:
    """argv of a live process; [] for a zombie or a process that is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def pids_matching(*needles: str) -> list[int]:
    """Live processes whose argv, joined by spaces, contains every needle."""
    found = []
    for pid in all_pids():
        if pid == os.getpid():
            continue
        line = " ".join(cmdline(pid))
        if line and all(n in line for n in needles):
            found.append(pid)
    return sorted(found)


def is_alive(pid: int) -> bool:
    """Running, not a zombie (PID 1 here may never reap what it inherits)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat_line.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def parent_of(pid: int) -> int | None:
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(stat_line.rsplit(")", 1)[1].split()[1])


def proc_status(pid: int) -> dict[str, str]:
    """/proc/PID/status as a dict (Uid, Gid, Groups, SigCgt ...)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def handles_sigterm(pid: int) -> bool:
    """The process has installed a SIGTERM handler (logpipe's reader does so in its loop)."""
    try:
        return bool(int(proc_status(pid)["SigCgt"], 16) & SIGTERM_MASK)
    except (FileNotFoundError, ProcessLookupError, KeyError):
        return False


def wait_until(condition, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def kill_all(pids: Sequence[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# -- reaching the interpreter as an unprivileged user ---------------------------


def blocked_ancestors(path: Path, user: str) -> list[Path]:
    """Directories above path that `user` cannot traverse (mode lacks the x bit for it)."""
    account = pwd.getpwnam(user)
    groups = {account.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    blocked = []
    for directory in reversed(path.parents):
        st = directory.stat()
        if st.st_uid == account.pw_uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid in groups:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            blocked.append(directory)
    return blocked


@contextlib.contextmanager
def interpreter_reachable_by(user: str) -> Iterator[None]:
    """Let `user` exec this interpreter while the block runs.

    A logger started with --user re-executes sys.executable as that user for
    its writer child. On a normal host the interpreter is /usr/bin/python3 and
    this does nothing; on a machine whose Python lives under /root (mode 0700,
    e.g. pyenv) it adds the search (x) bit for others to the directories in the
    way, and puts their modes back afterwards. Nothing becomes listable or
    readable that was not.
    """
    paths = {Path(sys.executable), Path(sys.executable).resolve(), Path(logpipe.__file__)}
    blocked = sorted({d for p in paths for d in blocked_ancestors(p, user)})
    modes = {d: stat.S_IMODE(d.stat().st_mode) for d in blocked}
    try:
        for d, mode in modes.items():
            os.chmod(d, mode | stat.S_IXOTH)
        probe = subprocess.run(
            ["runuser", "-u", user, "--", sys.executable, "-c", "import logpipe.cli, psycopg2"],
            check=False, capture_output=True, timeout=30,
        )
        assert probe.returncode == 0, (
            f"{user} cannot run {sys.executable} -m logpipe: {probe.stderr.decode()}"
        )
        yield
    finally:
        for d, mode in modes.items():
            os.chmod(d, mode)


# -- quoting --------------------------------------------------------------------


def argv_to_piped_command(argv: Sequence[str]) -> str:
    """argv as the program part of `CustomLog "|..."`.

    httpd splits it with apr_tokenize_to_argv (whitespace, '...' and "..."
    quoting) and execs argv[0] directly: no shell, no PATH search. Single
    quotes need no escaping inside the double-quoted directive argument.
    """
    out = []
    for arg in argv:
        assert "'" not in arg and '"' not in arg and "\\" not in arg, arg
        out.append(f"'{arg}'" if (not arg or re.search(r"\s", arg)) else arg)
    return " ".join(out)


def dsn_for_any_user(dsn: str) -> str:
    """The test DSN with an explicit role, for loggers that run as www-data (trust auth)."""
    if re.search(r"\buser=", dsn):
        return dsn
    import psycopg2

    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_user")
            role = cur.fetchone()[0]
    finally:
        conn.close()
    return f"{dsn} user={role}"


# -- the server -----------------------------------------------------------------


class ApacheServer:
    """One private httpd. start() it; close() always, even after a failure."""

    def __init__(
        self,
        dsn: str,
        logger_args: Sequence[str] = (),
        *,
        log_directives: str | Callable[[ApacheServer], str] | None = None,
        extra_config: str | Callable[[ApacheServer], str] = "",
        combined_format: str = COMBINED,
        mpm: str = "event",
    ) -> None:
        check_prerequisites()
        self.dsn = dsn
        self.base = Path(tempfile.mkdtemp(prefix="logpipe-apache-", dir="/tmp"))
        os.chmod(self.base, 0o755)  # www-data (workers, a --user logger) must traverse it
        self.htdocs = self.base / "htdocs"
        self.logs = self.base / "logs"
        self.spool_dir = self.base / "spool"  # created by logpipe itself
        self.conf = self.base / "httpd.conf"
        self.pid_file = self.base / "httpd.pid"
        self.error_log_path = self.logs / "error.log"
        self.ground_truth_path = self.logs / "ground_truth.log"
        self.port = free_port()
        self.logger_argv = [
            sys.executable, "-m", "logpipe", "--dsn", dsn, "--spool-dir", str(self.spool_dir),
            "--flush-interval", "0.2", *logger_args,
        ]  # fmt: skip
        if log_directives is None:
            log_directives = f'CustomLog "|{argv_to_piped_command(self.logger_argv)}" combined'
        self.log_directives = log_directives if isinstance(log_directives, str) else \
            log_directives(self)
        self.extra_config = extra_config if isinstance(extra_config, str) else extra_config(self)
        self.combined_format = combined_format
        self.mpm = mpm
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LOGPIPE_")}
        self.seen_readers: set[int] = set()
        self._write_site()
        self._write_config()

    # -- files ------------------------------------------------------------------

    def _write_site(self) -> None:
        self.htdocs.mkdir()
        self.logs.mkdir()
        links = "".join(f'<li><a href="{p}">{p}</a></li>' for p in PATHS)
        (self.htdocs / "index.html").write_text(
            f"<!doctype html><title>logpipe test</title><ul>{links}</ul>\n"
        )
        (self.htdocs / "404.html").write_text(
            "<!doctype html><title>Not found</title><p>No such page. Try one of these:"
            f"<ul>{links}</ul>\n"
        )
        (self.htdocs / "style.css").write_text("body { font-family: sans-serif }\n")
        (self.htdocs / "big.txt").write_text("logpipe " * 4096)
        for path in self.base.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)

    def _write_config(self) -> None:
        base = self.base
        modules = [("mpm_" + self.mpm, "mod_mpm_" + self.mpm), ("authz_core", "mod_authz_core"),
                   ("mime", "mod_mime"), ("dir", "mod_dir")]
        load_modules = "\n".join(
            f"LoadModule {name}_module {MODULES_DIR}/{so}.so" for name, so in modules
        )
        self.conf.write_text(f"""\
# Written by tests/apache_fixture.py: a private httpd for one test.
ServerRoot "{base}"
DefaultRuntimeDir "{base}"
PidFile "{self.pid_file}"
Mutex file:{base} default
ServerName 127.0.0.1
Listen 127.0.0.1:{self.port}
{load_modules}
# Compiled into Debian's apache2: core, so, http_core, log_config, logio, unixd.
User {WORKER_USER}
Group {WORKER_USER}
ErrorLog "{self.error_log_path}"
LogLevel notice
TypesConfig /etc/mime.types
DocumentRoot "{self.htdocs}"
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory "{self.htdocs}">
    Require all granted
</Directory>
DirectoryIndex index.html
ErrorDocument 404 /404.html
KeepAlive On
MaxKeepAliveRequests 1000
Timeout 30
LogFormat {self.combined_format} combined
LogFormat {VHOST_COMBINED} vhost_combined
CustomLog "{self.ground_truth_path}" combined
{self.log_directives}
{self.extra_config}
""")

    # -- control ----------------------------------------------------------------

    def start(self, timeout: float = 30.0, wait_logger: bool = True) -> None:
        self.proc = subprocess.Popen(
            [str(APACHE_BIN), "-f", str(self.conf), "-DFOREGROUND"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=self.env, start_new_session=True,
        )
        try:
            wait_until(self._answers, timeout, "httpd to answer", interval=0.05)
        except AssertionError:
            err = b""
            if self.proc.poll() is not None and self.proc.stderr is not None:
                err = self.proc.stderr.read()
            raise AssertionError(
                f"httpd did not start: {err.decode(errors='replace')}\n{self.error_log()}"
            ) from None
        if wait_logger:
            self.wait_logger_ready(timeout=timeout)

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"httpd exited with status {self.proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return self.pid_file.exists()
        except OSError:
            return False

    def control(self, action: str) -> None:
        """`apache2 -f CONF -k ACTION`, as an operator or logrotate runs it."""
        done = subprocess.run(
            [str(APACHE_BIN), "-f", str(self.conf), "-k", action],
            check=False, capture_output=True, env=self.env, timeout=30,
        )
        assert done.returncode == 0, f"apache2 -k {action}: {done.stderr.decode()}"

    def graceful(self, wait_ready: bool = True) -> None:
        before = set(self.reader_pids())
        self.control("graceful")
        if wait_ready:
            self.wait_logger_ready(exclude=before)

    def restart(self, wait_ready: bool = True) -> None:
        before = set(self.reader_pids())
        self.control("restart")
        if wait_ready:
            self.wait_logger_ready(exclude=before)

    def stop(self, logger_timeout: float = 30.0) -> None:
        """`-k stop`, wait for httpd to exit, then for every logger and writer to exit."""
        if self.proc is None:
            return
        self.record_readers()
        self.control("stop")
        try:
            self.proc.wait(timeout=30)
        finally:
            self.proc = None
        wait_until(lambda: not self.logger_pids(), logger_timeout,
                   f"logpipe processes to exit after httpd stopped: {self.logger_pids()}")

    def close(self) -> None:
        """Tear down whatever is left, whatever state the test ended in."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                with contextlib.suppress(Exception):
                    self.control("stop")
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait()
            for _ in range(50):  # SIGKILL everything that names our directory, until none is left
                leftovers = pids_matching(str(self.base))
                if not leftovers:
                    break
                kill_all(leftovers)
                time.sleep(0.1)
        finally:
            self.proc = None
            shutil.rmtree(self.base, ignore_errors=True)

    # -- what is running --------------------------------------------------------

    def main_pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def logger_pids(self) -> list[int]:
        """Readers and writers of this server's spool directory."""
        return [p for p in pids_matching(f"--spool-dir {self.spool_dir}") if is_alive(p)]

    def writer_pids(self) -> list[int]:
        return [p for p in self.logger_pids() if "_writer" in cmdline(p)]

    def reader_pids(self) -> list[int]:
        """Piped loggers: the logpipe processes httpd started (their parent is httpd).
        A writer child between its fork and its exec still has its reader's command
        line: its parent, a reader, tells it apart."""
        loggers = self.logger_pids()
        return [p for p in loggers
                if "_writer" not in cmdline(p) and parent_of(p) not in loggers]

    def current_readers(self) -> list[int]:
        """Readers whose parent is the running httpd (old ones after a graceful may linger)."""
        main = self.main_pid()
        return [p for p in self.reader_pids() if parent_of(p) == main]

    def record_readers(self) -> None:
        self.seen_readers.update(self.reader_pids())

    def wait_logger_ready(self, exclude: set[int] | None = None, timeout: float = 30.0) -> int:
        """Wait for a new reader, child of httpd, that has installed its SIGTERM handler."""
        exclude = exclude or set()

        def ready() -> int | None:
            for pid in self.current_readers():
                if pid not in exclude and handles_sigterm(pid):
                    return pid
            return None

        wait_until(lambda: ready() is not None, timeout, "a logpipe reader to be ready")
        self.record_readers()
        pid = ready()
        assert pid is not None
        return pid

    # -- what it wrote ----------------------------------------------------------

    def error_log(self) -> str:
        try:
            return self.error_log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def ground_truth(self) -> list[bytes]:
        """Lines of the plain-file log, without their newlines."""
        return self.ground_truth_path.read_bytes().splitlines()

    def wait_ground_truth_settled(self, quiet: float = 0.5, timeout: float = 10.0) -> None:
        """httpd logs a request after sending the response: let the last lines land."""
        last = -1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            size = self.ground_truth_path.stat().st_size
            if size == last:
                return
            last = size
            time.sleep(quiet)


# -- comparing access_log with the ground truth ---------------------------------

COMBINED_LINE = re.compile(
    r'^(?P<host>\S+) (?P<ident>\S+) (?P<user>\S+) \[(?P<time>[^\]]+)\] '
    r'"(?P<method>\S+) (?P<path>[^ ?"]*)(?:\?(?P<query>[^ "]*))? (?P<protocol>[^"]+)" '
    r'(?P<status>\d{3}) (?P<bytes>\S+) "(?P<referer>[^"]*)" "(?P<agent>[^"]*)"$'
)
# bytes: %b or %B; a format with only %O (vhost_combined) fills bytes_out instead.
ROW_SQL = """
SELECT remote_host, remote_user, extract(epoch FROM time)::bigint, method, path, query,
       protocol, status, coalesce(bytes, bytes_out), referer, user_agent
  FROM access_log
"""


def _dash(value: str | None) -> str | None:
    return None if value in ("-", None) else value


def ground_truth_record(line: bytes) -> tuple:
    """A combined line as the tuple ROW_SQL gives for its row."""
    m = COMBINED_LINE.match(line.decode())
    assert m, f"unexpected ground-truth line {line!r}"
    epoch = int(datetime.strptime(m["time"], "%d/%b/%Y:%H:%M:%S %z").timestamp())
    return (
        m["host"], _dash(m["user"]), epoch, m["method"], m["path"], m["query"] or None,
        m["protocol"], int(m["status"]), 0 if m["bytes"] == "-" else int(m["bytes"]),
        _dash(m["referer"]), _dash(m["agent"]),
    )


def row_record(row: tuple) -> tuple:
    host, user, epoch, method, path, query, protocol, status, size, referer, agent = row
    return (host, user, int(epoch), method, path, query or None, protocol, status, size or 0,
            referer, agent)


def compare_rows(rows: list[tuple], lines: list[bytes]) -> str:
    """'' when access_log holds exactly the ground truth (as a multiset), else a diff summary."""
    want = Counter(ground_truth_record(line) for line in lines)
    got = Counter(row_record(r) for r in rows)
    if want == got:
        return ""
    missing = want - got
    extra = got - want
    return (
        f"{len(rows)} rows for {len(lines)} ground-truth lines; "
        f"{sum(missing.values())} lines missing from access_log, "
        f"{sum(extra.values())} rows not in the ground truth (or duplicated).\n"
        f"missing (first 5): {list(missing.elements())[:5]}\n"
        f"extra (first 5): {list(extra.elements())[:5]}"
    )


# -- load -----------------------------------------------------------------------


@dataclass
class Sample:
    started: float
    took: float
    status: int | None  # None: the request failed (connection closed, refused, ...)


class LoadGenerator:
    """Keep-alive GET requests from several threads, each with a unique ?id=N."""

    def __init__(self, port: int, threads: int = 8, timeout: float = 10.0) -> None:
        self.port = port
        self.threads = threads
        self.timeout = timeout
        self.samples: list[Sample] = []
        self.errors: Counter[str] = Counter()
        self._ids = itertools.count(1)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        for n in range(self.threads):
            t = threading.Thread(target=self._run, args=(n,), daemon=True)
            t.start()
            self._workers.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(timeout=self.timeout + 5)

    def _run(self, n: int) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            i = next(self._ids)
            path = PATHS[i % len(PATHS)]
            headers = {"User-Agent": f"logpipe-loadgen/{n}"}
            if i % 3 == 0:
                headers["Referer"] = f"http://127.0.0.1:{self.port}/index.html"
            started = time.monotonic()
            status: int | None = None
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                conn.request("GET", f"{path}?id={i}", headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
                if response.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                # graceful/restart close idle keep-alive connections: reconnect and go on
                self.errors[type(exc).__name__] += 1
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.005)
            sample = Sample(started, time.monotonic() - started, status)
            with self._lock:
                self.samples.append(sample)
        if conn is not None:
            conn.close()

    # -- measurements -----------------------------------------------------------

    def ok(self) -> list[Sample]:
        with self._lock:
            return [s for s in self.samples if s.status is not None]

    def rate(self, start: float, end: float) -> float:
        """Successful requests per second that finished within [start, end) (monotonic)."""
        done = [s for s in self.ok() if start <= s.started + s.took < end]
        return len(done) / (end - start)

    def max_latency(self, start: float = 0.0, end: float = float("inf")) -> float:
        return max((s.took for s in self.ok() if start <= s.started < end), default=0.0)

    def wait_requests(self, count: int, timeout: float = 30.0) -> None:
        """Wait until at least `count` more requests have succeeded."""
        target = len(self.ok()) + count
        wait_until(lambda: len(self.ok()) >= target, timeout, f"{count} requests")


@contextlib.contextmanager
def load(port: int, threads: int = 8) -> Iterator[LoadGenerator]:
    """Run a LoadGenerator for the duration of the block."""
    generator = LoadGenerator(port, threads)
    generator.start()
    try:
        yield generator
    finally:
        generator.stop()
