"""The sync query: "the latest row per entity, still inside ttl, as of now", as a sqlglot tree.

Built once, emitted in the dbt target's dialect. The source is the view's relation, or, for an
ephemeral model (or ``--from-sql``), the model's compiled SQL (what ``dbt run`` executes)
parsed and inlined as a subquery. "Now" is a literal chosen by the caller, so the warehouse's
clock and time zone never enter, and the Redis expiries agree with the query.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from dbt_features.errors import DefinitionError
from dbt_features.registry import Column, FeatureView
from dbt_features.types import logical_type

RANK = "_dbt_features_rank"
SOURCE = "_dbt_features_source"
LATEST = "_dbt_features_latest"


def latest_query(
    view: FeatureView,
    dialect: str,
    now: datetime,
    *,
    since_event: datetime | None = None,
    since_created: datetime | None = None,
    from_sql: bool = False,
    shard: tuple[int, int] | None = None,
) -> str:
    """SQL selecting, per entity, its latest row with ``event time <= now`` and (with a ttl)
    ``event time > now - ttl``; for an incremental sync only rows with event (or created)
    time at or after the watermark (``since_*``) are considered. ``shard=(k, n)`` keeps the
    entities whose key hash is k modulo n (DuckDB only: see ``SHARDED_DIALECTS``)."""
    assert view.timestamp is not None
    keys = [_col(k.name) for k in view.entity.join_keys]
    ts = view.timestamp
    order = [exp.Ordered(this=_col(ts.name), desc=True)]
    if view.created_timestamp is not None:
        order.append(exp.Ordered(this=_col(view.created_timestamp.name), desc=True))
    rank = exp.Window(
        this=exp.RowNumber(), partition_by=keys, order=exp.Order(expressions=order)
    )
    wanted = [
        k.name for k in view.entity.join_keys
    ] + [ts.name] + ([view.created_timestamp.name] if view.created_timestamp else []) + [
        f.name for f in view.features
    ]
    conditions: list[exp.Expression] = [
        *(exp.Not(this=exp.Is(this=k, expression=exp.Null())) for k in keys),
        exp.Not(this=exp.Is(this=_col(ts.name), expression=exp.Null())),
        exp.LTE(this=_col(ts.name), expression=_moment(now, ts, dialect)),
    ]
    if view.ttl_seconds:
        floor = now - timedelta(seconds=view.ttl_seconds)
        conditions.append(exp.GT(this=_col(ts.name), expression=_moment(floor, ts, dialect)))
    if since_event is not None:
        conditions.append(exp.GTE(this=_col(ts.name), expression=_moment(since_event, ts, dialect)))
    if since_created is not None and view.created_timestamp is not None:
        created = view.created_timestamp
        conditions.append(
            exp.GTE(this=_col(created.name), expression=_moment(since_created, created, dialect))
        )
    if shard is not None:
        conditions.append(_shard_condition(keys, dialect, *shard))
    inner = (
        exp.select(*(_col(n) for n in wanted), exp.alias_(rank, RANK, quoted=True))
        .from_(_source(view, dialect, from_sql))
        .where(exp.and_(*conditions))
    )
    outer = (
        exp.select(*(_col(n) for n in wanted))
        .from_(inner.subquery(exp.to_identifier(LATEST, quoted=True)))
        .where(exp.EQ(this=_col(RANK), expression=exp.Literal.number(1)))
    )
    return outer.sql(dialect=dialect)


SHARDED_DIALECTS = {"duckdb": "HASH"}
"""In-process engines, whose query memory is ours: a big view is synced in several passes, each
over the entities of one hash shard, so memory does not grow with the table. Value: the
engine's hash function of any number of columns (non-negative)."""


def _shard_condition(keys: list[exp.Column], dialect: str, k: int, n: int) -> exp.Expression:
    hashed = exp.Anonymous(this=SHARDED_DIALECTS[dialect], expressions=list(keys))
    return exp.EQ(this=exp.Mod(this=hashed, expression=exp.Literal.number(n)),
                  expression=exp.Literal.number(k))


def count_query(view: FeatureView, dialect: str) -> str:
    """Rows in the view's relation (to choose the number of shards)."""
    return exp.select(exp.Count(this=exp.Star())).from_(_source(view, dialect, False)).sql(dialect=dialect)


def _col(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


def _source(view: FeatureView, dialect: str, from_sql: bool) -> exp.Expression:
    if view.materialized != "ephemeral" and not from_sql:
        rel = view.relation
        return exp.Table(
            this=exp.to_identifier(rel.identifier, quoted=True),
            db=exp.to_identifier(rel.schema, quoted=True) if rel.schema else None,
            catalog=exp.to_identifier(rel.database, quoted=True) if rel.database else None,
        )
    if not view.compiled_sql:
        raise DefinitionError(
            f"model {view.name} ({view.file}) has no compiled SQL in the manifest: run "
            f"`dbt compile --select {view.name}` (needed to serve an ephemeral model or "
            "with --from-sql)."
        )
    try:
        parsed = sqlglot.parse_one(view.compiled_sql, read=dialect)
    except ParseError as exc:
        raise DefinitionError(
            f"model {view.name} ({view.file}): its compiled SQL cannot be parsed as {dialect} "
            f"to inline it ({str(exc).splitlines()[0]}); materialize it as a table or view "
            "instead of ephemeral, and sync without --from-sql."
        ) from exc
    if not isinstance(parsed, exp.Query):
        raise DefinitionError(f"model {view.name} ({view.file}): its compiled SQL is not a query.")
    return parsed.subquery(exp.to_identifier(SOURCE, quoted=True))


def _moment(moment: datetime, column: Column, dialect: str) -> exp.Expression:
    """A timestamp literal comparable with ``column``: UTC, typed as the column's kind."""
    utc = moment.astimezone(timezone.utc) if moment.tzinfo else moment
    text = utc.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    if _is_tz_aware(column, dialect):
        return exp.cast(exp.Literal.string(text + "+00:00"), exp.DataType.Type.TIMESTAMPTZ)
    return exp.cast(exp.Literal.string(text), exp.DataType.Type.TIMESTAMP)


def _is_tz_aware(column: Column, dialect: str) -> bool:
    text = " ".join(column.data_type.lower().split())
    if "with time zone" in text and "without" not in text:
        return True
    if logical_type(text, dialect) != "timestamp":
        return False
    try:
        parsed = exp.DataType.build(text, dialect=dialect)
    except (ParseError, ValueError):
        return False
    return parsed.this in (exp.DataType.Type.TIMESTAMPTZ, exp.DataType.Type.TIMESTAMPLTZ)
