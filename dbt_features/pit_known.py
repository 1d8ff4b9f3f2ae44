""""As known at" (bitemporal) training sets: the condition that a view's row had been created by
the spine time.

By default a training set picks, per spine row, the view's latest row by event time, however
late that row was written: a value computed at 15:00 for 13:00 is used for a spine row at
14:03, though nobody could have read it then. With ``as_known_at`` a row of a view with a
``created_timestamp`` is a candidate only if its created time is ``<=`` the spine time, so the
next-older row that was known wins instead (within the ttl, as always). A NULL created time
counts as known since the event time (already ``<=`` the spine time): the row is kept. A view
without ``created_timestamp`` has nothing to filter and is joined as by default.

The window form adds the condition to its join. DuckDB's ASOF join finds the greatest time
``<=`` the spine time, and the greatest event time may belong to a row not created yet; there
the ASOF join runs on each row's known time instead (``known_times``), and the rows at the
event time it finds are fetched with the condition and ranked as by default.
"""

from __future__ import annotations

from sqlglot import exp

from .errors import UsageError
from .registry import FeatureView
from .timestamps import timestamp_kind, utc, view_timestamp_kind


def known_at(view: FeatureView, dialect: str, table: str,
             spine_time: exp.Expression) -> exp.Expression | None:
    """``table.created IS NULL OR utc(table.created) <= spine_time``, or None for a view
    without ``created_timestamp``; ``spine_time`` is the spine's naive UTC time."""
    created = view.created_timestamp
    if created is None:
        return None
    kind = timestamp_kind(created.data_type, dialect)
    if kind is None:
        raise UsageError(
            f"feature view {view.name!r}: created_timestamp column {created.name!r} has type "
            f"{created.data_type!r}, not a timestamp or date, so it cannot be compared with "
            f"the spine time (as_known_at); cast it in {view.file}."
        )
    column = exp.column(created.name, table=table, quoted=True)
    null = exp.Is(this=column, expression=exp.Null())
    return exp.or_(null, exp.LTE(this=utc(column.copy(), kind, dialect), expression=spine_time))


KNOWN = "__dbt_features_known"
"""The column of ``known_times`` holding a row's known time."""
EVENT = "__dbt_features_event"


def known_times(view: FeatureView, dialect: str, table: exp.Table, ts: str) -> exp.Select:
    """For an ASOF match on known time (DuckDB): per view row with an event time, its keys, its
    known time (``KNOWN``: the later of event and created time; the event time when created is
    NULL) and, as ``ts``, the latest event time among the key's rows known by then (a running
    max over known time, whose RANGE frame gives rows of equal known time the same value). The
    ASOF match of a spine time T then finds the latest event time of the rows known at T."""
    assert view.created_timestamp is not None  # without one, rows are matched on event time
    keys = [k.name for k in view.entity.join_keys]
    event = utc(exp.column(view.timestamp.name, quoted=True),
                view_timestamp_kind(view, dialect), dialect)
    created = known_at(view, dialect, None, event.copy())
    assert isinstance(created, exp.Or)
    created_utc = created.expression.this  # the created time as naive UTC, from known_at
    known = exp.Case(ifs=[exp.If(this=exp.GT(this=created_utc.copy(), expression=event.copy()),
                                 true=created_utc.copy())], default=event.copy())
    rows = (
        exp.select(*(exp.column(k, quoted=True) for k in keys),
                   exp.alias_(event.copy(), EVENT, quoted=True),
                   exp.alias_(known, KNOWN, quoted=True))
        .from_(table)
        .where(exp.Not(this=exp.Is(this=event.copy(), expression=exp.Null())))
    )
    frame = exp.WindowSpec(kind="RANGE", start="UNBOUNDED", start_side="PRECEDING",
                           end="CURRENT ROW")
    latest = exp.Window(this=exp.Max(this=exp.column(EVENT, quoted=True)),
                        partition_by=[exp.column(k, quoted=True) for k in keys],
                        order=exp.Order(expressions=[exp.Ordered(this=exp.column(KNOWN, quoted=True))]),
                        spec=frame)
    return exp.select(*(exp.column(k, quoted=True) for k in keys),
                      exp.column(KNOWN, quoted=True),
                      exp.alias_(latest, ts, quoted=True)).from_(
        exp.alias_(rows.subquery(), "k", quoted=True))
