"""`logpipe status`: the spool's backlog and whether rows are arriving."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import psycopg2

from logpipe.commands.common import dsn_of
from logpipe.ingest import spool
from logpipe.messages import EXIT_FAILURE, EXIT_OK, first_line
from logpipe.options import spool_dir_of
from logpipe.store import database as db

DB_SQL = """
SELECT (SELECT count(*) FROM access_log WHERE loaded_at > now() - interval '5 minutes'),
       (SELECT max(loaded_at) FROM access_log WHERE loaded_at > now() - interval '1 day'),
       (SELECT count(*) FROM access_log_rejects WHERE received_at > now() - interval '1 day')
"""


def run(args: argparse.Namespace) -> int:
    return show_status(dsn_of(args), spool_dir_of(args), as_json=args.json)


def collect(dsn: str, spool_dir: Path) -> dict[str, Any]:
    segments = []
    for name in spool.list_segments(spool_dir):
        path = spool_dir / name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            continue
        header = spool.read_header(path)
        segments.append({
            "segment": name,
            "bytes": size,
            "live": not spool.is_closed(path),
            "format": header[0].get("format") if header else None,
            "loaded_bytes": header[1] if header else 0,
        })
    state: dict[str, Any] = {"spool_dir": str(spool_dir), "segments": segments,
                             "database": db.describe_dsn(dsn)}
    try:
        conn = db.connect(dsn, "logpipe status")
    except psycopg2.OperationalError as exc:
        state["database_error"] = first_line(exc)
        return state
    try:
        with conn.cursor() as cur:
            names = [s["segment"] for s in segments]
            if names:
                cur.execute(
                    "SELECT segment, byte_offset FROM logpipe_progress WHERE segment = ANY(%s)",
                    (names,),
                )
                offsets = dict(cur.fetchall())
                for s in segments:
                    s["loaded_bytes"] = max(s["loaded_bytes"], offsets.get(s["segment"], 0))
            cur.execute(DB_SQL)
            recent, last, rejects = cur.fetchone()
            state.update(rows_last_5_min=recent, last_loaded_at=last and last.isoformat(),
                         rejects_last_day=rejects)
    except psycopg2.Error as exc:
        state["database_error"] = f"{first_line(exc)} (run `logpipe initdb`?)"
    finally:
        conn.close()
    return state


def show_status(dsn: str, spool_dir: Path, as_json: bool = False) -> int:
    state = collect(dsn, spool_dir)
    pending = sum(s["bytes"] - s["loaded_bytes"] for s in state["segments"])
    state["pending_bytes"] = pending
    if as_json:
        print(json.dumps(state, indent=2))
    else:
        live = sum(1 for s in state["segments"] if s["live"])
        left = len(state["segments"]) - live
        print(f"spool       {spool_dir}: {live} live segments, {left} left by stopped "
              f"loggers, {pending} bytes not loaded yet")
        for s in state["segments"]:
            kind = "live" if s["live"] else "closed"
            print(f"  {s['segment']}  {kind:6}  {s['bytes'] - s['loaded_bytes']} bytes pending")
        if "database_error" in state:
            print(f"database    {state['database']}: NOT USABLE: {state['database_error']}")
        else:
            print(f"database    {state['database']}: reachable")
            print(f"rows        {state['rows_last_5_min']} loaded in the last 5 minutes; "
                  f"last at {state['last_loaded_at'] or 'never (today)'}")
            print(f"rejects     {state['rejects_last_day']} in the last day "
                  "(SELECT reason, line FROM access_log_rejects)")
        if left and "database_error" not in state:
            print("hint        closed segments load by themselves while a logger runs; "
                  "`logpipe replay` loads them now")
    return EXIT_FAILURE if "database_error" in state else EXIT_OK
