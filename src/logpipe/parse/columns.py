"""The column order of the COPY data the parser produces.

The parser writes one COPY text-format line per access-log line with exactly
these columns, in this order; the writer passes the same list to COPY.
"""

ACCESS_LOG_COLUMNS: tuple[str, ...] = (
    "time",
    "vhost",
    "remote_host",
    "remote_user",
    "method",
    "path",
    "query",
    "protocol",
    "status",
    "bytes",
    "referer",
    "user_agent",
    "duration_us",
    "bytes_in",
    "bytes_out",
    "is_bot",
    "request",
    "extra",
    "source",
    "country",  # of remote_host, looked up at load time (geo)
)
