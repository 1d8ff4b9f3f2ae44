"""Microseconds since the epoch as text, a column at a time: ``datetime.isoformat`` of the UTC
moment (what ``OnlineResponse.to_dict`` sends) and protobuf's JSON Timestamp (what Feast sends).

A response carries one event time per entity and view, shared by every feature of the view, so
a column is formatted once per response and each distinct value once per column; no datetime
is built. The hour (``YYYY-MM-DDTHH:``) comes from a bounded cache filled by the reference
formatter itself (``datetime.isoformat``, ``time.strftime``), so every text is exactly what the
reference gives; minutes and seconds are a table lookup, the fraction integer arithmetic.
Building a datetime and calling ``isoformat`` per value costs about four times as much.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

from .micros import from_micros

EPOCH_FEAST = "1970-01-01T00:00:00Z"
"""The event time Feast sends for join keys and for values not found."""
_HOUR_US = 3_600_000_000
_MIN_SEC = tuple(f"{s // 60:02d}:{s % 60:02d}" for s in range(3600))
_MAX_HOURS = 1 << 16
"""Hours kept per format (about 7 years of distinct hours; a few MB at most)."""


class _Hours(dict):
    """Hour number since the epoch -> the text of its first microsecond up to ``HH:``."""

    def __init__(self, render: Callable[[int], str]) -> None:
        super().__init__()
        self.render = render

    def __missing__(self, hour: int) -> str:
        if len(self) >= _MAX_HOURS:
            self.clear()
        text = self[hour] = self.render(hour)
        return text


_ISO_HOURS = _Hours(lambda hour: from_micros(hour * _HOUR_US).isoformat()[:14])
_FEAST_HOURS = _Hours(lambda hour: time.strftime("%Y-%m-%dT%H:", time.gmtime(hour * 3600)))


def iso_text(us: int) -> str:
    """``from_micros(us).isoformat()``: ``YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00``."""
    seconds, fraction = divmod(us, 1_000_000)
    hour, seconds = divmod(seconds, 3600)
    if fraction:
        return "%s%s.%06d+00:00" % (_ISO_HOURS[hour], _MIN_SEC[seconds], fraction)
    return _ISO_HOURS[hour] + _MIN_SEC[seconds] + "+00:00"


def feast_text(us: int) -> str:
    """Protobuf's JSON Timestamp (what Feast sends): UTC, ``Z``, 0, 3 or 6 fraction digits."""
    seconds, fraction = divmod(us, 1_000_000)
    hour, seconds = divmod(seconds, 3600)
    if not fraction:
        return _FEAST_HOURS[hour] + _MIN_SEC[seconds] + "Z"
    if fraction % 1000:
        return "%s%s.%06dZ" % (_FEAST_HOURS[hour], _MIN_SEC[seconds], fraction)
    return "%s%s.%03dZ" % (_FEAST_HOURS[hour], _MIN_SEC[seconds], fraction // 1000)


def texts(column: Sequence[int | None], render: Callable[[int], str],
          missing: str | None) -> list[str | None]:
    """Each value of ``column`` rendered, ``missing`` for None; a value repeated in the column
    (a daily batch: one event time for all) is rendered once."""
    if len(set(column[:_SAMPLE])) < _SAMPLE:  # some values repeat (or a short column)
        distinct = set(column)
        if 2 * len(distinct) <= len(column):
            rendered = {us: missing if us is None else render(us) for us in distinct}
            return list(map(rendered.__getitem__, column))
    if None in column:
        return [missing if us is None else render(us) for us in column]
    return list(map(render, column))


_SAMPLE = 16
"""Values looked at first: when they are all distinct, the column is rendered value by value
without building the set of all its values."""
