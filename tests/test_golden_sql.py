"""Golden files of the SQL dbt-features generates: the training-set query (by default and as
known at) and the sync's queries, per dialect. A change to the generated SQL shows here as a diff of a file under
tests/golden/; when it is intended, rewrite the files with

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_golden_sql.py

and review the diff like code."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from sqlglot import exp

from dbt_features import pit, timestamps
from dbt_features.registry import Column, Entity, Feature, FeatureView
from dbt_features.serving.digest import digest_query
from dbt_features.serving.query import Boundary, latest_query
from dbt_features.warehouse import Relation

GOLDEN = Path(__file__).parent / "golden"
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)

SPEND = FeatureView(
    name="customer_spend", unique_id="model.p.customer_spend", package="p",
    file="models/customer_spend.sql", yaml_file=None,
    relation=Relation("db", "analytics", "customer_spend"), relation_name=None,
    materialized="table", entity=Entity("customer", (Column("customer_id", "int64", "bigint"),)),
    timestamp=Column("feature_at", "timestamp", "timestamp"),
    created_timestamp=Column("computed_at", "timestamp", "timestamp with time zone"),
    ttl_seconds=30 * 86400, online=True,
    features=(Feature("avg_amount_30d", "double", "double", None, "f1"),
              Feature("segment", "string", "varchar", None, "f2")),
    owner=None, tags=(), description=None, version=1, fingerprint="x", compiled_sql=None,
)
RISK = replace(
    SPEND, name="merchant_risk", unique_id="model.p.merchant_risk",
    relation=Relation("db", "analytics", "merchant_risk"), created_timestamp=None, ttl_seconds=None,
    entity=Entity("merchant", (Column("merchant_id", "int64", "bigint"),)),
    features=(Feature("fraud_rate", "double", "double", None, "f3"),),
)


def _training(dialect: str, *, views: tuple[FeatureView, ...] = (SPEND, RISK),
              **options: Any) -> str:
    spine = pit.Spine(table=exp.to_table('"db"."analytics"."labels"', dialect="duckdb"),
                      columns=("customer_id", "merchant_id", "scored_at", "label"),
                      timestamp="scored_at", timestamp_kind=timestamps.NAIVE)
    joins = [pit.ViewJoin(v, tuple((f.name, f.name) for f in v.features)) for v in views]
    return pit.to_sql(pit.point_in_time_query(spine, joins, dialect, **options), dialect, pretty=True)


def _training_as_known_at(dialect: str) -> str:
    """customer_spend has a created_timestamp (time-zone aware), merchant_risk none."""
    return _training(dialect, as_known_at=True)


def _training_hash_match(dialect: str) -> str:
    """DuckDB, each view's times matched by a hash join (``pit_hash``), as chosen for a spine
    with few candidate rows."""
    return _training(dialect, matching="hash")


def _training_lateral(dialect: str) -> str:
    """PostgreSQL, each view's row by a ``LATERAL`` top-1 (``pit_lateral``), as chosen where an
    index on the keys and event time serves it."""
    return _training(dialect, matching="lateral")


def _sync(dialect: str) -> str:
    since = Boundary(NOW.replace(hour=6), datetime(2026, 5, 1, 5, 30, tzinfo=timezone.utc),
                     NOW.replace(hour=6) - timedelta(days=30))
    parts = [
        ("full refresh", latest_query(SPEND, dialect, NOW)),
        ("incremental", latest_query(SPEND, dialect, NOW, since=since)),
        ("change check", digest_query(SPEND, dialect, NOW, since)),
    ]
    return "\n\n".join(f"-- {name}\n{sqlglot.transpile(sql, read=dialect, write=dialect, pretty=True)[0]};"
                       for name, sql in parts) + "\n"


CASES = [(f"training_set.{d}.sql", _training, d) for d in pit.DIALECTS] + [
    (f"training_set.as_known_at.{d}.sql", _training_as_known_at, d) for d in pit.DIALECTS] + [
    ("training_set.hash_match.duckdb.sql", _training_hash_match, "duckdb"),
    ("training_set.lateral.postgres.sql", _training_lateral, "postgres")] + [
    (f"sync.{d}.sql", _sync, d) for d in ("duckdb", "postgres")]


@pytest.mark.parametrize(("name", "render", "dialect"), CASES, ids=[c[0] for c in CASES])
def test_generated_sql_matches_its_golden_file(name: str, render, dialect: str) -> None:
    sql = render(dialect).rstrip() + "\n"
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(sql)
    assert path.is_file(), f"no golden file {path}: run with UPDATE_GOLDEN=1 and review it"
    assert sql == path.read_text(), f"{name} changed: review `git diff`, rerun with UPDATE_GOLDEN=1"

