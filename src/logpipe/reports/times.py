"""--since and --until: a time that long ago (`30d`) or an ISO date or time, as given
on the command line; filters.resolve_times() has PostgreSQL turn it into a moment."""

from __future__ import annotations

import argparse
import datetime as dt
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class TimeSpec:
    """--since/--until: relative (`30d` = that long before now) or an ISO date/time."""

    text: str
    ago: dt.timedelta | None = None  # relative
    iso: str | None = None  # absolute, as PostgreSQL should read it (session time zone)
    date_only: bool = False


_RELATIVE = re.compile(r"(\d+)\s*([smhdw])", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(text: str) -> TimeSpec:
    value = text.strip()
    match = _RELATIVE.fullmatch(value)
    if match:
        amount, unit = int(match.group(1)), match.group(2).lower()
        try:
            return TimeSpec(text, ago=dt.timedelta(**{_UNITS[unit]: amount}))
        except OverflowError:
            raise argparse.ArgumentTypeError(f"too long ago: {text!r}") from None
    try:
        return TimeSpec(text, iso=dt.date.fromisoformat(value).isoformat(), date_only=True)
    except ValueError:
        pass
    try:
        # Python 3.9's fromisoformat knows neither "Z" nor a space before the offset
        moment = dt.datetime.fromisoformat(re.sub(r"[zZ]$", "+00:00", value))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (use e.g. 30d, 12h, 15m, 2024-10-01 or "
            "2024-10-01T13:00:00+02:00)"
        ) from None
    return TimeSpec(text, iso=moment.isoformat())
