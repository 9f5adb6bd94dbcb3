"""Parsing: raw access-log bytes in any Apache LogFormat -> COPY rows and rejects (pure).

    parser = compile_format("combined", source="web1")
    batch = parser.parse(data)     # batch.copy_data, batch.row_count, batch.rejects

Modules, in the order a LogFormat goes through them: directives (the LogFormat string
read into directives), fields (where each directive goes), regexes (what matches each
value and each line), parser (LineParser: the chunk loop), fastloop (the loop generated
per format), rows (the reference path for one line), values (field values to COPY text),
agents (is the User-Agent a bot?), columns (the COPY column order), limits (how long a
line may be), proxies (the real client behind trusted proxies).
"""

from __future__ import annotations

from collections.abc import Sequence

from logpipe.parse.directives import FormatError
from logpipe.parse.parser import NAMED_FORMATS, Batch, LineParser, compile_format

__all__ = ["NAMED_FORMATS", "Batch", "FormatError", "LineParser", "compile_format",
           "parser_marking_bots"]


def parser_marking_bots(log_format: str, source: str | None,
                        max_line_bytes: int | None = None,
                        trusted_proxies: Sequence[str] = (),
                        anonymize_ip: bool = False) -> LineParser:
    """A parser that also fills is_bot, classifying each distinct User-Agent once."""
    from logpipe.parse.agents import classify_agent

    return compile_format(log_format, source=source, classify_agent=classify_agent,
                          max_line_bytes=max_line_bytes, trusted_proxies=trusted_proxies,
                          anonymize_ip=anonymize_ip)
