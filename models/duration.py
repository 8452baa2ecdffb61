"""Durations as people write them in a policy file: `15m`, `1h30m`, `45s`, `2d`,
ISO 8601 (`PT15M`) or a number of seconds."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from math import ceil
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> Any:
    if isinstance(value, timedelta) or value is None:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _seconds(value, value)
    if not isinstance(value, str):
        return value
    text = value.strip().lower().replace(" ", "")
    if text.startswith("p"):
        return value  # ISO 8601: pydantic's own timedelta parser handles it
    if not text or _PART.sub("", text):
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 15m, 1h30m, 2d or PT15M)")
    return _seconds(sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(text)), value)


def _seconds(seconds: float, written: Any) -> timedelta:
    """A refusal pydantic reports as bad input (a 4xx), not an OverflowError
    that escapes validation (a 500): Python's timedelta stops at 999,999,999 days."""
    try:
        return timedelta(seconds=seconds)
    except (OverflowError, ValueError):
        raise ValueError(f"not a usable duration: {written!r} (too long, or no number)") from None


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds and seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds and seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{value.total_seconds():g}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(lambda d: d.total_seconds(), return_type=float, when_used="json"),
]


def age(at: datetime | None) -> str:
    """How long ago, as on-call reads it at a glance: 42s, 7m, 3h, 2d."""
    if at is None:
        return "-"
    return _glance(max(int((datetime.now(UTC) - at).total_seconds()), 0))


def relative(at: datetime | None, now: datetime | None = None) -> str:
    """A moment as seen from now, either side of it: "7m ago", "in 12s".
    Every relative time shown to people goes through here, so a page due
    later never reads as one sent already."""
    if at is None:
        return "-"
    seconds = ((now or datetime.now(UTC)) - at).total_seconds()
    return f"{_glance(int(seconds))} ago" if seconds >= 0 else f"in {_glance(ceil(-seconds))}"


def _glance(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def span(value: timedelta) -> str:
    """A measured interval to two units, as a response time reads: 4m 12s, 2h 05m."""
    seconds = max(int(value.total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"
