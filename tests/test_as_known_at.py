""""As known at" training sets on the built sample project, through the CLI (`training-set
--as-known-at`, `sql --as-known-at`, with `--json`) and the Python API; and the one bad input
the option adds. The semantics themselves are checked against the brute-force reference in
tests/test_pit.py and, for the dbt macro, in tests/test_dbt_package.py."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from sqlglot import exp

from dbt_features import FeatureStore, pit, timestamps
from dbt_features.cli import main
from dbt_features.errors import UsageError
from dbt_features.registry import Column
from training_support import make_view

RISK = ["merchant_risk:*"]  # merchant_risk has a created_timestamp: computed_at, an hour late


def cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def by_id(table: pa.Table) -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=lambda r: r["transaction_id"])


@pytest.fixture(scope="module")
def store(built_sample: Path) -> FeatureStore:
    return FeatureStore(project_dir=str(built_sample))


def test_cli_training_set_as_known_at(built_sample: Path, store: FeatureStore,
                                      tmp_path: Path) -> None:
    """A day's merchant_risk row (feature_at: the next midnight) is published an hour later
    (computed_at): as known at, a payment scored in that hour gets the day before's row."""
    out = tmp_path / "known.parquet"
    result = cli("training-set", "--project-dir", str(built_sample), "--spine", "labels",
                 "--spine-timestamp", "scored_at", "-f", *RISK, "--as-known-at", "-o", str(out),
                 "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    known = by_id(pq.read_table(out))
    assert data["rows"] == len(known) > 0 and data["as_known_at"] is True
    api = store.get_training_set("labels", RISK, spine_timestamp="scored_at", as_known_at=True)
    assert by_id(api) == known
    default = by_id(store.get_training_set("labels", RISK, spine_timestamp="scored_at"))
    differ = [k for k, d in zip(known, default) if k != d]
    assert differ, "the sample should score some payments between midnight and 1 am"
    assert all(r["scored_at"].hour == 0 for r in differ)


def test_cli_sql_as_known_at(built_sample: Path, store: FeatureStore) -> None:
    result = cli("sql", "--project-dir", str(built_sample), "--spine", "labels",
                 "--spine-timestamp", "scored_at", "-f", *RISK, "--as-known-at", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["dialect"] == "duckdb" and data["as_known_at"] is True
    sql = data["sql"]
    assert '"computed_at"' in sql and "__dbt_features_known" in sql  # ASOF on known times
    with store.warehouse() as wh:
        printed = wh.arrow(sql)
    assert by_id(printed) == by_id(store.get_training_set("labels", RISK, spine_timestamp="scored_at",
                                                          as_known_at=True))
    default = cli("sql", "--project-dir", str(built_sample), "--spine", "labels",
                  "--spine-timestamp", "scored_at", "-f", *RISK).output
    assert "__dbt_features_known" not in default and '"computed_at" is null' not in default.lower()


def test_created_timestamp_that_is_not_a_time_is_a_usage_error() -> None:
    """Only reachable with a registry whose created_timestamp type cannot be compared (the
    registry build refuses such a view): one message naming the view, column and fix."""
    view = make_view("odd", "main", keys=[("k", "int64", "bigint")], timestamp=("ts", "timestamp"),
                     created="made", ttl=None, features=[("x", "int64", "bigint")])
    view = replace(view, created_timestamp=Column("made", "string", "varchar"))
    spine = pit.Spine(table=exp.to_table("labels"), columns=("k", "at"), timestamp="at",
                      timestamp_kind=timestamps.NAIVE)
    join = pit.ViewJoin(view, (("x", "x"),))
    with pytest.raises(UsageError, match=r"feature view 'odd': created_timestamp column 'made' "
                                         r"has type 'varchar'.*cast it in models/odd.sql"):
        pit.point_in_time_query(spine, [join], "duckdb", as_known_at=True)
    pit.point_in_time_query(spine, [join], "duckdb")  # the default never reads it
