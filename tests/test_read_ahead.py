"""The writer reads and parses the start of its next batch while PostgreSQL finishes the
current one (ingest/read_ahead.py): the same COPY input as parsing inline, used only
where it was read from, and every line still exactly once when a batch is refused."""

from __future__ import annotations

from pathlib import Path

from conftest import Database, combined_line, execute, query, start_logger, wait_for
from pipe_support import StderrReader, feed, finish

from logpipe.ingest import spool
from logpipe.ingest.read_ahead import ReadAhead
from logpipe.ingest.segments import read_chunk
from logpipe.parse import compile_format
from logpipe.store.copy import ParsingStream, parse_head

JUNK = b"not a log line at all\n"


def lines_with_junk(n: int) -> list[bytes]:
    return [JUNK if i % 97 == 5 else combined_line(i) for i in range(n)]


def streamed(stream: ParsingStream) -> bytes:
    out = []
    while piece := stream.read():
        out.append(piece)
    return b"".join(out)


def test_a_head_parsed_ahead_gives_the_same_copy_input_as_parsing_inline() -> None:
    data = b"".join(lines_with_junk(6_000))
    for limit in (0, 1, 100_000, len(data), 10 * len(data)):
        inline = ParsingStream(compile_format("combined"), data)
        head = parse_head(compile_format("combined"), data, limit)
        ahead = ParsingStream(compile_format("combined"), data, head)
        assert streamed(ahead) == streamed(inline), limit
        assert (ahead.rows, ahead.rejects) == (inline.rows, inline.rejects), limit
        assert inline.rows == 6_000 - len(inline.rejects) and len(inline.rejects) == 62


def test_on_parsed_is_called_once_when_every_line_is_parsed() -> None:
    data = b"".join(lines_with_junk(3_000))
    calls = []
    stream = ParsingStream(compile_format("combined"), data, on_parsed=lambda: calls.append(1))
    assert stream.has_rows()
    while stream.read():
        assert not calls or stream.pos == len(data)
    assert calls == [1] and stream.pos == len(data)
    assert stream.read() == b"" and calls == [1]


def test_a_batch_parsed_ahead_is_sent_at_once_and_starts_the_next_read_ahead() -> None:
    """Parsed ahead whole, a batch goes to psycopg2 in one read, and the next batch's
    read-ahead starts right then, while this one streams to the server."""
    data = b"".join(lines_with_junk(3_000))
    calls = []
    head = parse_head(compile_format("combined"), data, len(data))
    stream = ParsingStream(compile_format("combined"), data, head,
                           on_parsed=lambda: calls.append(1))
    assert stream.has_rows() and calls == []
    first = stream.read()
    assert calls == [1]
    assert first == streamed(ParsingStream(compile_format("combined"), data))
    assert stream.read() == b"" and calls == [1]


def closed_segment(tmp_path: Path, lines: int) -> tuple[Path, int]:
    """A closed spool segment of `lines` combined lines; and where its lines start."""
    path = tmp_path / "seg"
    header = spool.make_header("combined", None, None)
    path.write_bytes(header + b"".join(combined_line(i) for i in range(lines)))
    path.chmod(0o600)
    return path, len(header)


def test_the_whole_next_batch_is_parsed_ahead(tmp_path: Path) -> None:
    path, start = closed_segment(tmp_path, 40_000)
    parser = compile_format("combined")
    ahead = ReadAhead(parser, path, start, True, 40_000, 16 << 20)
    ahead.start()
    chunk, at_end, head = ahead.take(start, parser)
    assert len(chunk) > 4 << 20 and at_end
    assert head.pos == len(chunk) and head.rows == 40_000


def test_read_ahead_is_the_next_chunk_and_only_for_its_offset_and_parser(
        tmp_path: Path) -> None:
    path, start = closed_segment(tmp_path, 5_000)
    parser = compile_format("combined")
    offset = start + sum(len(combined_line(i)) for i in range(1_000))
    ahead = ReadAhead(parser, path, offset, True, 1_000, 4 << 20)
    ahead.start()
    chunk, at_end, head = ahead.take(offset, parser)
    assert (chunk, at_end) == read_chunk(path, offset, True, 1_000, 4 << 20)
    assert chunk.count(b"\n") == 1_000 and not at_end
    assert head.rows == 1_000 and head.pos == len(chunk)
    assert ahead.take(offset + 1, parser) is None
    assert ahead.take(offset, compile_format("combined")) is None
    never_started = ReadAhead(parser, path, offset, True, 1_000, 4 << 20)
    assert never_started.take(offset, parser) is None  # read and parsed by the caller


def test_every_line_once_when_batches_read_ahead_are_refused(
        database: Database, tmp_path: Path) -> None:
    """Small batches, so that most are read ahead; a trigger refuses one User-Agent in
    several of them, so that the batch is narrowed down (parsed again) while the next is
    read ahead with the same parser."""
    execute(database.dsn, """
    CREATE FUNCTION test_refuse_agent() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT FROM new_rows WHERE user_agent = 'evil/1.0') THEN
            RAISE EXCEPTION 'agent evil/1.0 is not welcome';
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER test_refuse_agent AFTER INSERT ON access_log
        REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION test_refuse_agent();
    """)
    n = 20_000
    lines = lines_with_junk(n)
    bad = set(range(300, n, 2_500))
    for i in bad:
        lines[i] = lines[i].rsplit(b'"', 2)[0] + b'"evil/1.0"\n'
    junk = {i for i in range(n) if lines[i] == JUNK}
    proc = start_logger(database.dsn, tmp_path, "--batch-lines", "700")
    stderr = StderrReader(proc)
    feed(proc, lines)
    expected_rows = n - len(bad) - len(junk)
    wait_for(lambda: database.rows() + database.rejects() == n, timeout=60,
             what=lambda: f"{n} lines; {database.rows()} rows, {database.rejects()} rejects, "
                          f"stderr {stderr.text()[-600:]!r}")
    finish(proc, stderr=stderr)
    assert database.rows() == expected_rows and database.rejects() == len(bad) + len(junk)
    paths = [p for (p,) in query(database.dsn, "SELECT path FROM access_log")]
    assert len(paths) == len(set(paths)) == expected_rows
    assert set(paths) == {f"/page/{i}" for i in range(n) if i not in bad and i not in junk}
