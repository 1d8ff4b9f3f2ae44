"""When the Python path reads a view on PostgreSQL by a ``LATERAL`` top-1 (``pit_lateral.pays``):
only where an index on the join keys then the event time serves it, in a PostgreSQL schema of
our own. That both forms give the same rows is checked by the property tests of test_pit.py
(each PostgreSQL case runs both)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import psycopg2
import pyarrow as pa
import pytest
from psycopg2 import sql

from dbt_features import pit, pit_lateral
from dbt_features.training import get_training_set
from dbt_features.warehouse import Relation
from helpers import PG_DSN
from training_support import make_registry, make_view, postgres_warehouse, write_postgres

pytestmark = pytest.mark.postgres

SCHEMA = pa.schema([("k", pa.int64()), ("k2", pa.string()), ("ts", pa.timestamp("us")),
                    ("f", pa.float64())])


def _view(schema: str, keys=(("k", "int64", "bigint"),), data_type: str = "timestamp"):
    return make_view("events", schema, keys=list(keys), timestamp=("ts", data_type),
                     created=None, ttl=None, features=[("f", "double", "double precision")])


def _pays(schema: str, index: str | None, view=None) -> bool:
    """``pays`` for the view over a fresh ``events`` table with ``index`` (an index's column
    list, e.g. ``(k, ts)``, or a whole ``CREATE INDEX`` tail)."""
    write_postgres(PG_DSN, schema, {"events": pa.Table.from_pylist([], schema=SCHEMA)})
    if index is not None:
        _index(schema, index)
    wh = postgres_warehouse()
    try:
        chosen = view or _view(schema)
        return pit_lateral.pays(wh, pit.ViewJoin(chosen, (("f", "f"),)))
    finally:
        wh.close()


def _index(schema: str, index: str) -> None:
    con = psycopg2.connect(PG_DSN)
    try:
        with con, con.cursor() as cur:
            cur.execute(sql.SQL("create index on {} ").format(sql.Identifier(schema, "events"))
                        + sql.SQL(index))
    finally:
        con.close()


def test_an_index_on_the_keys_then_the_time_serves_it(pg_schema: str) -> None:
    assert _pays(pg_schema, "(k, ts)")
    assert _pays(pg_schema, "(k, ts, f)")  # more columns after the prefix: still walked


def test_no_index_or_one_that_cannot_serve_it(pg_schema: str) -> None:
    assert not _pays(pg_schema, None)
    assert not _pays(pg_schema, "(ts, k)")  # the time first
    assert not _pays(pg_schema, "(k)")  # no time
    assert not _pays(pg_schema, "(k, ts) where f > 0")  # partial: not every row


def test_composite_keys_in_any_order(pg_schema: str) -> None:
    keys = (("k", "int64", "bigint"), ("k2", "string", "text"))
    assert _pays(pg_schema, "(k2, k, ts)", _view(pg_schema, keys))
    assert not _pays(pg_schema, "(k, ts)", _view(pg_schema, keys))


def test_a_time_converted_in_the_query_is_not_served(pg_schema: str) -> None:
    """A time-zone-aware event time is compared in UTC (``timestamps.utc``): the expression is
    not the column an index holds."""
    assert not _pays(pg_schema, "(k, ts)", _view(pg_schema, data_type="timestamp with time zone"))


def test_a_missing_relation_leaves_the_error_to_the_training_query(pg_schema: str) -> None:
    view = _view(pg_schema)
    missing = replace(view, relation=replace(view.relation, identifier="not_built"))
    assert not _pays(pg_schema, "(k, ts)", missing)


def test_a_spine_in_the_warehouse_reads_an_indexed_view_by_lateral(pg_schema: str) -> None:
    """A spine model's training set (the single statement) reads a view by ``LATERAL`` where
    an index serves it, as the Python path does: the same rows as without the index."""
    base = datetime(2026, 1, 1)
    events = pa.Table.from_pylist(
        [{"k": i % 5, "k2": "x", "ts": base + timedelta(hours=i), "f": float(i)} for i in range(60)],
        schema=SCHEMA)
    spine = pa.Table.from_pylist([{"k": i % 7, "at": base + timedelta(hours=3 * i)} for i in range(25)])
    write_postgres(PG_DSN, pg_schema, {"events": events, "labels": spine})
    registry = make_registry([_view(pg_schema)], "postgres")

    def training_set() -> tuple[list[dict], list[str]]:
        wh, statements = postgres_warehouse(), []
        arrow = wh.arrow
        wh.arrow = lambda query, *args: statements.append(query) or arrow(query, *args)
        got = get_training_set(registry, lambda: wh, Relation(None, pg_schema, "labels"),
                               ["events:f"], spine_timestamp="at")
        return got.to_pylist(), statements

    plain, before = training_set()
    _index(pg_schema, "(k, ts)")
    indexed, after = training_set()
    assert indexed == plain and sum(r["f"] is not None for r in plain) > 10
    assert not any("LEFT JOIN LATERAL" in s for s in before)
    assert any("LEFT JOIN LATERAL" in s for s in after)


def test_our_session_runs_in_utc_without_jit() -> None:
    """PostgreSQL's JIT compiles a training statement for longer than it saves (``PG_SESSION``)."""
    wh = postgres_warehouse()
    try:
        settings = wh.arrow("select current_setting('TimeZone') as tz, current_setting('jit') as jit")
    finally:
        wh.close()
    assert settings.to_pylist() == [{"tz": "UTC", "jit": "off"}]
