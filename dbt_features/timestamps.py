"""How a warehouse stores a point in time, and the expression that compares it in UTC.

Spine and view timestamps may be aware, naive, dates or timestamps of another precision: each
is classified once from its type spelling (in the dialect's terms, by sqlglot) and converted to
a naive UTC timestamp before any comparison, so training sets and the online store compare
times alike in every dialect.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.errors import ParseError

from .errors import UsageError
from .registry import FeatureView

# How a timestamp column is stored: kinds that need converting before comparing.
TZ, NAIVE, DATE, CAST = "tz", "naive", "date", "cast"



def timestamp_kind(data_type: str, dialect: str) -> str | None:
    """Classify a warehouse type spelling: aware timestamp, naive timestamp, date, another
    timestamp type to cast, or None when it is not a point in time at all."""
    text = " ".join(data_type.lower().split())
    if text in ("timestamp_ns", "timestamp_ms", "timestamp_s"):
        return CAST
    if "with time zone" in text and "without" not in text:
        return TZ
    if "without time zone" in text:
        return NAIVE
    try:
        kind = exp.DataType.build(text, dialect=dialect).this
    except (ParseError, ValueError):
        return None
    T = exp.DataType.Type
    if kind in (T.TIMESTAMPTZ, T.TIMESTAMPLTZ):
        return TZ
    if kind in (T.TIMESTAMP, T.TIMESTAMPNTZ, T.DATETIME):
        return NAIVE
    if kind in (T.TIMESTAMP_S, T.TIMESTAMP_MS, T.TIMESTAMP_NS):
        return CAST
    if kind in (T.DATE, T.DATE32):
        return DATE
    return None


ZONED_INSTANTS = {"spark", "databricks"}
"""Dialects whose zoned timestamp (Spark's ``TIMESTAMP``) is an instant, compared and shifted
as one: converting it to UTC (``FROM_UTC_TIMESTAMP(ts, 'UTC')``) changes no value and no type,
and cost about 0.5 s per 10M rows in Spark's training query."""


def utc(expression: exp.Expression, kind: str, dialect: str) -> exp.Expression:
    """The expression as a naive UTC timestamp, comparable across spine and views (in
    ``ZONED_INSTANTS``, a zoned timestamp as it is)."""
    if kind == TZ and dialect in ZONED_INSTANTS:
        return expression
    if kind == TZ:
        return exp.cast(
            exp.AtTimeZone(this=expression, zone=exp.Literal.string("UTC")),
            exp.DataType.build("timestamp"),
        )
    if kind == NAIVE:
        return expression
    return exp.cast(expression, exp.DataType.build("timestamp"))


def view_timestamp_kind(view: FeatureView, dialect: str) -> str:
    if view.timestamp is None:
        raise UsageError(
            f"feature view {view.name!r} has no timestamp, so it cannot be joined point in "
            f"time; set config.meta.feature_store.timestamp in {view.file}."
        )
    kind = timestamp_kind(view.timestamp.data_type, dialect)
    if kind is None:
        raise UsageError(
            f"feature view {view.name!r}: timestamp column {view.timestamp.name!r} has type "
            f"{view.timestamp.data_type!r}, not a timestamp or date; cast it in {view.file}."
        )
    return kind
