"""Any dbt adapter through dbt's own connection (``DBT_FEATURES_WAREHOUSE=dbt``), checked
against the native connections on the engines here: the same relation types, training sets
(a spine uploaded from Arrow and a spine model), sync and online values, and verify."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from dbt_features import FeatureStore
from dbt_features.errors import WarehouseError
from helpers import DBT_FEATURES

FEATURES = ["customer_spend:avg_amount_30d", "customer_spend:txn_count_7d", "merchant_risk:*"]
ENTITIES = [{"customer_id": i, "merchant_id": i % 40 + 1} for i in range(1, 80)]


def _everything(project: Path, target: str | None, mode: str,
                monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("DBT_FEATURES_WAREHOUSE", mode)
    store = FeatureStore(project_dir=str(project), target=target)
    views = [store.registry.view(name) for name in ("customer_spend", "merchant_risk")]
    with store.warehouse() as wh:
        kind = type(wh).__name__
        types = {v.name: wh.describe(v.relation) for v in views}
    from_model = store.get_training_set("labels", FEATURES, spine_timestamp="scored_at")
    spine = from_model.select(["transaction_id", "customer_id", "merchant_id", "scored_at"])
    from_arrow = store.get_training_set(spine, FEATURES, spine_timestamp="scored_at")
    synced = {r.view: r.entities for r in store.sync(full_refresh=True)}
    online = store.get_online_features(FEATURES, ENTITIES)
    verified = store.verify(sample=100)
    return {"kind": kind, "types": types, "from_model": from_model, "from_arrow": from_arrow,
            "synced": synced, "values": online.values, "statuses": online.statuses,
            "mismatched": [v.mismatched for v in verified.views]}


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_dbt_connection_gives_what_the_native_connection_gives(
        engine: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    project = request.getfixturevalue("duck_project" if engine == "duckdb" else "pg_project")
    target = None if engine == "duckdb" else "postgres"
    native = _everything(project, target, "native", monkeypatch)
    through_dbt = _everything(project, target, "dbt", monkeypatch)
    assert native["kind"] != "DbtConnectionWarehouse" and through_dbt["kind"] == "DbtConnectionWarehouse"
    assert through_dbt["types"] == native["types"] and all(native["types"].values())
    for name in ("from_model", "from_arrow"):
        got, want = through_dbt[name], native[name]
        assert got.num_rows == want.num_rows > 100
        assert got.to_pylist() == want.to_pylist(), name
    assert through_dbt["synced"] == native["synced"] and native["synced"]["customer_spend"] > 50
    assert through_dbt["values"] == native["values"]
    assert through_dbt["statuses"] == native["statuses"]
    assert through_dbt["mismatched"] == native["mismatched"] == [0, 0]


def test_an_unknown_warehouse_choice_is_one_clear_error(duck_project: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBT_FEATURES_WAREHOUSE", "jdbc")
    with pytest.raises(WarehouseError, match="DBT_FEATURES_WAREHOUSE='jdbc': use `native`"):
        FeatureStore(project_dir=str(duck_project)).warehouse()
    result = subprocess.run([DBT_FEATURES, "training-set", "--spine", "labels", "--spine-timestamp",
                             "scored_at", "--features", ",".join(FEATURES), "-o", "out.parquet"],
                            cwd=duck_project, env=dict(os.environ), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "DBT_FEATURES_WAREHOUSE='jdbc'" in result.stderr
    assert not (duck_project / "out.parquet").exists()


def test_spine_literals_keep_types() -> None:
    """A spine uploaded through a generic connection is inlined as literals of its columns'
    types (NULLs too, so that Spark's VALUES has a type for every column; a naive time stays
    naive: TIMESTAMP_NTZ on Spark, whose TIMESTAMP is an instant)."""
    import datetime as dt

    from sqlglot import exp

    from dbt_features.dbt_connection import _insert_spine, _spine_view
    from dbt_features.warehouse import create_temporary_table

    table = pa.table({"id": [1, None], "at": [dt.datetime(2024, 1, 2, 3, 4, 5, 6), None],
                      "name": ["o'neil", None], "flag": [True, False]})
    target = exp.table_(exp.to_identifier("s", quoted=True))
    assert create_temporary_table(target, table.schema).sql("postgres") == (
        'CREATE TEMPORARY TABLE "s" ("id" BIGINT, "at" TIMESTAMP, "name" TEXT, "flag" BOOLEAN)')
    assert _insert_spine(target, table.to_batches()[0]).sql("postgres") == (
        "INSERT INTO \"s\" VALUES (1, CAST('2024-01-02T03:04:05.000006' AS TIMESTAMP), "
        "'o''neil', TRUE), (CAST(NULL AS BIGINT), CAST(NULL AS TIMESTAMP), CAST(NULL AS TEXT), "
        "FALSE)")
    assert _spine_view(target, table).sql("spark") == (
        "CREATE TEMPORARY VIEW `s` AS SELECT * FROM VALUES (1, CAST('2024-01-02T03:04:05.000006' "
        "AS TIMESTAMP_NTZ), 'o\\'neil', TRUE), (CAST(NULL AS BIGINT), CAST(NULL AS TIMESTAMP_NTZ), "
        "CAST(NULL AS STRING), FALSE) AS spine(`id`, `at`, `name`, `flag`)")
    assert _spine_view(target, table.slice(0, 0)).sql("spark") == (
        "CREATE TEMPORARY VIEW `s` AS SELECT CAST(NULL AS BIGINT) AS `id`, CAST(NULL AS "
        "TIMESTAMP_NTZ) AS `at`, CAST(NULL AS STRING) AS `name`, CAST(NULL AS BOOLEAN) AS `flag` "
        "WHERE FALSE")
