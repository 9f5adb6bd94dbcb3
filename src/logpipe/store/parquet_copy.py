"""Stream the rows of a query into one Parquet file, in bounded memory, durably.

The rows come out of PostgreSQL with `COPY (SELECT ...) TO STDOUT (FORMAT csv)` and are
parsed by pyarrow's CSV reader a chunk of about CHUNK_BYTES at a time, each chunk a row
group of the file: memory stays the same whatever the number of rows, and no Python
object is made per value. The column types come from the catalog (columns_of), so the
file keeps them: timestamptz as UTC timestamps, integers by size, booleans, bytea as
binary; jsonb, json and every other type as their text.

The file is written beside its final name, fsync'ed, renamed into place and its
directory fsync'ed: after a crash there is either the whole file or none (a hidden
`.NAME.tmp` at most, which the caller may remove).

pyarrow is the `archive` extra: require_pyarrow() says how to install it.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import psycopg2.extensions
from psycopg2 import sql

from logpipe.durable import fsync_directory, fsync_file
from logpipe.messages import UsageError

# CSV per parse and row group: peak RSS is about 10 times this beyond pyarrow's own ~60 MB
# (the row group's pages are held until it is complete), and row groups of ~35,000 rows
# still read fast (bench/archive_bench.py).
CHUNK_BYTES = 8 << 20
COMPRESSION = "zstd"
INSTALL_HINT = ("pyarrow is not installed: install logpipe's archive extra "
                "(python3 -m pip install 'apache-logpipe[archive]', or "
                "'.[archive]' in a checkout), then run this again")


def require_pyarrow() -> None:
    """Refuse at once, before anything is changed, where pyarrow is missing."""
    try:
        import pyarrow
        import pyarrow.csv
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise UsageError(INSTALL_HINT) from None


@dataclass(frozen=True)
class Column:
    name: str
    pg_type: str  # pg_type.typname: timestamptz, int8, text, jsonb, bytea ...


def columns_of(cur: psycopg2.extensions.cursor, table: str) -> list[Column]:
    """A table's columns in their order (newer ones, such as access_log.country, last)."""
    cur.execute("SELECT a.attname, t.typname FROM pg_attribute a"
                " JOIN pg_type t ON t.oid = a.atttypid"
                " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped"
                " ORDER BY a.attnum", (table,))
    return [Column(name, pg_type) for name, pg_type in cur.fetchall()]


def _arrow_type(pg_type: str) -> Any:
    import pyarrow as pa

    known = {
        "timestamptz": pa.timestamp("us", tz="UTC"),  # the session's TimeZone is UTC
        "timestamp": pa.timestamp("us"),
        "date": pa.date32(),
        "int2": pa.int16(), "int4": pa.int32(), "int8": pa.int64(),
        "float4": pa.float32(), "float8": pa.float64(),
        "bool": pa.bool_(),
    }
    return known.get(pg_type, pa.string())  # text, jsonb (JSON text), inet, numeric...


def arrow_schema(columns: list[Column]) -> Any:
    import pyarrow as pa

    return pa.schema([pa.field(c.name, pa.binary() if c.pg_type == "bytea"
                               else _arrow_type(c.pg_type)) for c in columns])


def select_list(columns: list[Column]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)


class _CsvChunks(io.RawIOBase):
    """Where COPY writes: gathers CSV data in one buffer and hands `emit` whole records
    only, about CHUNK_BYTES at a time, as a view of the buffer (no copy). A quoted value
    may hold a newline, so a record ends at a newline after an even number of quotes."""

    def __init__(self, emit: Callable[[memoryview], None], chunk_bytes: int) -> None:
        super().__init__()
        self.emit = emit
        self.chunk_bytes = chunk_bytes
        self.buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.buffer += data
        if len(self.buffer) >= self.chunk_bytes:
            self._hand_over(final=False)
        return len(data)

    def finish(self) -> None:
        self._hand_over(final=True)

    def _hand_over(self, final: bool) -> None:
        cut = len(self.buffer) if final else record_end(self.buffer)
        if cut:
            with memoryview(self.buffer) as view, view[:cut] as chunk:
                self.emit(chunk)
            del self.buffer[:cut]  # what is left is part of one record: small


def record_end(data: bytes | bytearray) -> int:
    """Where the last whole CSV record of `data` ends (0: none does); `data` starts at
    the start of a record."""
    end = len(data)
    while True:
        newline = data.rfind(b"\n", 0, end)
        if newline < 0:
            return 0
        if data.count(b'"', 0, newline) % 2 == 0:
            return newline + 1
        end = newline  # that newline is inside a quoted value


def copy_to_parquet(cur: psycopg2.extensions.cursor, query: sql.Composable, params: tuple,
                    columns: list[Column], path: Path) -> int:
    """Write the rows of `query` (selecting `columns`) to the Parquet file `path`, made
    durable and renamed into place; returns how many. No rows: no file is made, and one
    already at `path` is left as it is. The session's TimeZone must be UTC."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    schema = arrow_schema(columns)
    names = [c.name for c in columns]
    binary = [c.name for c in columns if c.pg_type == "bytea"]
    read = pacsv.ReadOptions(column_names=names, block_size=CHUNK_BYTES + (1 << 20),
                             use_threads=False)  # one block at a time: threads add memory
    parse = pacsv.ParseOptions(newlines_in_values=True)
    convert = pacsv.ConvertOptions(
        column_types={c.name: (pa.string() if c.pg_type == "bytea" else _arrow_type(c.pg_type))
                      for c in columns},
        true_values=["t"], false_values=["f"],
        strings_can_be_null=True, quoted_strings_can_be_null=False,  # NULL vs ''
    )
    tmp = path.with_name(f".{path.name}.tmp")
    writer: Any = None
    rows = 0

    def emit(chunk: memoryview) -> None:
        nonlocal writer, rows
        table = pacsv.read_csv(pa.py_buffer(chunk), read_options=read,
                               parse_options=parse, convert_options=convert)
        for name in binary:
            table = table.set_column(table.schema.get_field_index(name), name,
                                     _unhex(table.column(name)))
        if writer is None:
            writer = pq.ParquetWriter(str(tmp), schema, compression=COMPRESSION)
        writer.write_table(table)
        rows += table.num_rows

    sink = _CsvChunks(emit, CHUNK_BYTES)
    statement = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv)").format(query)
    try:
        cur.copy_expert(cur.mogrify(statement, params).decode(), sink)
        sink.finish()
        if writer is None:
            return 0
        writer.close()
        writer = None
        fsync_file(tmp)
        os.replace(tmp, path)
        fsync_directory(path.parent)
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    return rows


def _unhex(column: Any) -> Any:
    """bytea in COPY's text (\\x6a75...) back to bytes; a few rows (rejects) use it."""
    import pyarrow as pa

    return pa.array([None if v is None else bytes.fromhex(v[2:])
                     for v in column.to_pylist()], pa.binary())


def make_dirs(path: Path) -> None:
    """mkdir -p, each new directory fsync'ed into its parent, so a renamed file's
    directory entry survives a crash too."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir(exist_ok=True)
        fsync_directory(directory.parent)
