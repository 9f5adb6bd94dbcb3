"""How long a log line may be before it is set aside as a reject: sized from Apache's limits.

Apache refuses a request whose request line is longer than LimitRequestLine (8190
bytes by default) or that has a header field longer than LimitRequestFieldSize
(8190). Everything a request puts in the log comes from those: %r, %U, %q, %m, %H
from the request line, %{Name}i from a header, %u from Authorization, %V from Host.
Logged, each byte can become four (a non-ASCII or control byte is written \\xhh),
so one value is at most 4 x 8190 = 32,760 bytes. The default cap therefore allows
that much for every text field of the LogFormat (a value that can hold any text:
addresses, names, the request, headers, notes; numbers and times are short), and
never less than 256 KiB: combined, whose text fields are %h %l %u %r Referer and
User-Agent, gets 256 KiB, where its largest real line is about 130 KB (%r, %u,
Referer, User-Agent at their limits). A server with raised limits needs
--max-line-bytes. The cap bounds what one line can cost the writer, never what it
keeps: a longer line is still stored, byte for byte, in access_log_rejects.
"""

from __future__ import annotations

from logpipe.config import APACHE_LIMIT_REQUEST, MIN_MAX_LINE_BYTES
from logpipe.parse.fields import Plan, Shape

ESCAPED_BYTES_PER_BYTE = 4  # a byte logged as \xhh
MAX_LOGGED_VALUE = APACHE_LIMIT_REQUEST * ESCAPED_BYTES_PER_BYTE
SHORT_VALUE = 64  # a number or a time, with room to spare
_TEXT_SHAPES = (Shape.TOKEN, Shape.STRING)


def default_max_line_bytes(plan: Plan) -> int:
    """The longest line Apache can write in this format within its default request
    limits (see above), and at least MIN_MAX_LINE_BYTES."""
    longest = sum(MAX_LOGGED_VALUE if f.shape in _TEXT_SHAPES else SHORT_VALUE
                  for f in plan.fields)
    longest += sum(len(item) for item in plan.items if isinstance(item, str))
    return max(MIN_MAX_LINE_BYTES, longest)
