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

httpd writes a request's logs one after the other, in the order of the CustomLog
directives, and a restart kills prefork children wherever they are: a child killed
after the ground-truth line and before its write to logpipe's pipe leaves a line
that logpipe never received. So, with the default directives, a third log
`<dir>/logs/handed_over.log` comes after the pipe: each of its lines was written
into the pipe before it. handed_over <= access_log <= ground truth then holds
whatever httpd kills, and without kills all three are equal.

`graceful()`, `restart()` and `stop()` go through `apache2 -f CONF -k ...` as an
operator (or logrotate) would. `close()` tears everything down, even after a
failed test: it kills whatever process still names the private directory on
its command line (httpd children, loggers, writers), then removes the directory.

Traffic and the comparison of access_log with the ground truth are in
apache_traffic.py; bench/run.py uses this module too (ApacheServer, with wrk).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from apache_user import WORKER_USER
from conftest import (
    cmdline,
    handles_sigterm,
    is_alive,
    kill_all,
    parent_of,
    pids_matching,
    wait_for,
)

APACHE_BIN = Path("/usr/sbin/apache2")
MODULES_DIR = Path("/usr/lib/apache2/modules")
COMBINED = r'"%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\""'
DEBIAN_COMBINED = COMBINED.replace("%b", "%O")  # Debian's apache2.conf logs %O as "combined"
VHOST_COMBINED = r'"%v:%p %h %l %u %t \"%r\" %>s %O \"%{Referer}i\" \"%{User-Agent}i\""'
# httpd -k stop or a failed start: how long httpd and apache2 -k get before the test fails.
CONTROL_TIMEOUT = 30.0

# A request's unique ?id=N (LoadGenerator's, or a test's own) in a ground-truth line.
GROUND_TRUTH_ID = re.compile(rb"[?&]id=(\d+)[ &]")
# The paths the site serves and LoadGenerator asks for, in turn: pages, a directory
# index, a 404 (ErrorDocument).
PATHS: Sequence[str] = ("/index.html", "/", "/big.txt", "/missing/page", "/style.css")


def check_prerequisites() -> None:
    """Fail clearly (never skip) when the machine lacks Apache or root."""
    missing = [str(p) for p in (APACHE_BIN, MODULES_DIR / "mod_mpm_event.so") if not p.exists()]
    assert not missing, (
        f"{', '.join(missing)} missing: run `apt-get install -y apache2 apache2-utils` "
        "(.ci/run does this)"
    )
    assert os.geteuid() == 0, "the Apache tests start httpd as root, as production does"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])



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
        host: str = "127.0.0.1",  # any address of 127/8: Linux routes all of it to lo
        ground_truth: bool = True,  # False: no ground-truth log (bench/run.py's only-log runs)
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
        self.ground_truth_directive = (
            f'CustomLog "{self.ground_truth_path}" combined' if ground_truth else "")
        self.handed_over_path: Path | None = None
        self.host = host
        self.port = free_port(host)
        self.logger_argv = [
            sys.executable, "-m", "logpipe", "--dsn", dsn, "--spool-dir", str(self.spool_dir),
            "--flush-interval", "0.2", *logger_args,
        ]  # fmt: skip
        if log_directives is None:
            self.handed_over_path = self.logs / "handed_over.log"
            log_directives = (
                f'CustomLog "|{argv_to_piped_command(self.logger_argv)}" combined\n'
                f'CustomLog "{self.handed_over_path}" combined'
            )
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
ServerName {self.host}
Listen {self.host}:{self.port}
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
{self.ground_truth_directive}
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
            wait_for(self._answers, timeout, "httpd to answer", interval=0.05)
        except AssertionError:
            err = b""
            if self.proc.poll() is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):  # a child may hold it open
                    err = self.proc.communicate(timeout=5)[1] or b""
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
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return self.pid_file.exists()
        except OSError:
            return False

    def control(self, action: str) -> None:
        """`apache2 -f CONF -k ACTION`, as an operator or logrotate runs it."""
        done = subprocess.run(
            [str(APACHE_BIN), "-f", str(self.conf), "-k", action],
            check=False, capture_output=True, env=self.env, timeout=CONTROL_TIMEOUT,
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
        """`-k stop`, wait for httpd to exit, then for every logger and writer to exit.

        Once httpd has exited the ground truth is complete: nothing writes to it any more.
        """
        if self.proc is None:
            return
        self.record_readers()
        self.control("stop")
        try:
            self.proc.wait(timeout=CONTROL_TIMEOUT)
        finally:
            self.proc = None
        wait_for(lambda: not self.logger_pids(), logger_timeout,
                 lambda: f"logpipe processes to exit after httpd stopped: {self.logger_pids()}")

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
                    self.proc.wait(timeout=10)

            def none_left() -> bool:
                """SIGKILL everything that still names our directory; true once none is."""
                leftovers = pids_matching(str(self.base))
                kill_all(leftovers)
                return not leftovers

            # Teardown: a process that survives SIGKILL this long is not ours to fix here.
            with contextlib.suppress(AssertionError):
                wait_for(none_left, timeout=5, what="leftover processes to die")
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

        pid = wait_for(ready, timeout, "a logpipe reader to be ready", interval=0.05)
        self.record_readers()
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

    def handed_over(self) -> list[bytes] | None:
        """Lines httpd finished writing into logpipe's pipe (see the module's docstring),
        or None when this server's directives do not track them."""
        if self.handed_over_path is None:
            return None
        try:
            return self.handed_over_path.read_bytes().splitlines()
        except FileNotFoundError:
            return []

    def ground_truth_ids(self) -> set[int]:
        """The `id=N` of every request in the ground truth (LoadGenerator numbers them)."""
        return {int(n) for n in GROUND_TRUTH_ID.findall(self.ground_truth_path.read_bytes())}

    def wait_logged(self, ids: set[int], timeout: float = 30.0) -> None:
        """Wait until the ground truth holds the requests `ids`: httpd logs a request
        just after sending its response, so the client can be a moment ahead."""
        wait_for(lambda: ids <= self.ground_truth_ids(), timeout,
                 lambda: f"{len(ids - self.ground_truth_ids())} answered requests to be logged")

