"""Helpers of the training-set tests: hand-made feature views over tables we write ourselves
(a DuckDB file, a PostgreSQL schema of our own), and the brute-force reference of the
point-in-time semantics: a plain Python loop over rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Sequence

import pyarrow as pa
from sqlglot import exp

from dbt_features.registry import Column, Entity, Feature, FeatureView, Registry
from dbt_features.warehouse import DuckDBWarehouse, PostgresWarehouse, Relation

BASE = datetime(2026, 1, 1)


@dataclass(frozen=True)
class ViewData:
    """One random feature view: its definition and its rows (dicts of column -> value)."""

    view: FeatureView
    rows: list[dict[str, Any]]
    arrow_schema: pa.Schema


def make_view(name: str, schema: str | None, *, keys: Sequence[tuple[str, str, str]],
              timestamp: tuple[str, str], created: str | None, ttl: int | None,
              features: Sequence[tuple[str, str, str]], database: str | None = None,
              created_type: str = "timestamp") -> FeatureView:
    """A FeatureView over table ``name`` (keys/features as (name, dtype, data_type))."""
    return FeatureView(
        name=name, unique_id=f"model.test.{name}", package="test", file=f"models/{name}.sql",
        yaml_file=None, relation=Relation(database, schema, name), relation_name=None,
        materialized="table",
        entity=Entity(name + "_entity", tuple(Column(*k) for k in keys)),
        timestamp=Column(timestamp[0], "timestamp", timestamp[1]),
        created_timestamp=Column(created, "timestamp", created_type) if created else None,
        ttl_seconds=ttl, online=False,
        features=tuple(Feature(n, d, t, None, "x") for n, d, t in features),
        owner=None, tags=(), description=None, version=1, fingerprint="x", compiled_sql=None,
    )


def make_registry(views: Sequence[FeatureView], dialect: str) -> Registry:
    return Registry(project="test", adapter_type=dialect, dialect=dialect, target="test",
                    dbt_version="1.11", manifest_invocation_id="x", generated_at="x",
                    views=tuple(views))


def duckdb_warehouse(path: Path) -> DuckDBWarehouse:
    return DuckDBWarehouse("test", SimpleNamespace(path=str(path), database=path.stem))


def postgres_warehouse() -> PostgresWarehouse:
    return PostgresWarehouse("test", SimpleNamespace(
        database="test", user="postgres", host="127.0.0.1", password="", port=5432,
        connect_timeout=5, search_path=None, sslmode=None, sslcert=None, sslkey=None,
        sslrootcert=None, keepalives_idle=None, role=None))


# -- writing tables ----------------------------------------------------------------------------

_PG_TYPES = {
    pa.int64(): "bigint", pa.float64(): "double precision", pa.string(): "text",
    pa.bool_(): "boolean", pa.date32(): "date",
}


def write_duckdb(path: Path, tables: dict[str, pa.Table]) -> None:
    """(Re)create tables in a DuckDB file with a short read-write connection."""
    import duckdb

    con = duckdb.connect(str(path))
    try:
        con.sql("SET TimeZone = 'UTC'")
        for name, table in tables.items():
            drop = exp.Drop(tables=[exp.to_table(name)], kind="TABLE", exists=True)
            con.sql(drop.sql(dialect="duckdb"))
            con.from_arrow(table).create(name)
    finally:
        con.close()


def write_postgres(dsn: str, schema: str, tables: dict[str, pa.Table]) -> None:
    """(Re)create tables in our own PostgreSQL schema."""
    import psycopg2
    from psycopg2 import sql
    from psycopg2.extras import execute_values

    con = psycopg2.connect(dsn)
    try:
        with con, con.cursor() as cur:
            cur.execute("set time zone 'UTC'")
            cur.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
            for name, table in tables.items():
                cols = []
                for field in table.schema:
                    if pa.types.is_timestamp(field.type):
                        kind = "timestamptz" if field.type.tz else "timestamp"
                    else:
                        kind = _PG_TYPES[field.type]
                    cols.append(sql.SQL("{} {}").format(sql.Identifier(field.name), sql.SQL(kind)))
                target = sql.Identifier(schema, name)
                cur.execute(sql.SQL("drop table if exists {}").format(target))
                cur.execute(sql.SQL("create table {} ({})").format(target, sql.SQL(", ").join(cols)))
                rows = [tuple(r.values()) for r in table.to_pylist()]
                if rows:
                    execute_values(cur, sql.SQL("insert into {} values %s").format(target).as_string(con), rows)
    finally:
        con.close()


# -- the reference -----------------------------------------------------------------------------


def as_utc(value: Any) -> datetime | None:
    """Naive UTC datetime for comparing: aware -> UTC, naive -> as is, date -> midnight."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value
    return datetime(value.year, value.month, value.day)


def _low(value: Any) -> tuple[bool, Any]:
    """Sort key putting NULL below every value."""
    return (value is not None, value if value is not None else 0)


def reference(spine: list[dict[str, Any]], spine_timestamp: str, views: Sequence[ViewData],
              outputs: Sequence[Sequence[tuple[str, str]]], *,
              as_known_at: bool = False) -> list[dict[str, Any]]:
    """The documented semantics, row by row, with no cleverness at all. ``as_known_at``: a row
    whose created time is later than the spine time is not a candidate (NULL: it is)."""
    result = []
    for srow in spine:
        out = dict(srow)
        at = as_utc(srow[spine_timestamp])
        for data, wanted in zip(views, outputs):
            view = data.view
            keys = [k.name for k in view.entity.join_keys]
            best = None
            best_key = None
            for row in data.rows:
                ts = as_utc(row[view.timestamp.name])
                if at is None or ts is None or any(row[k] is None or row[k] != srow[k] for k in keys):
                    continue
                if ts > at or (view.ttl_seconds and ts < at - timedelta(seconds=view.ttl_seconds)):
                    continue
                created = as_utc(row[view.created_timestamp.name]) if view.created_timestamp else None
                if as_known_at and created is not None and created > at:
                    continue
                order = (ts, _low(created), *(_low(row[f.name]) for f in view.features))
                if best_key is None or order > best_key:
                    best, best_key = row, order
            for feature, name in wanted:
                out[name] = None if best is None else best[feature]
        result.append(out)
    return result
