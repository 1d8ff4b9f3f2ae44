"""The sample project on Spark, end to end through the command line: ``dbt run --target spark``
(dbt-spark's ``session`` method, from the sample's own profile), then ``dbt-features
training-set``, ``sync``, ``get`` and ``verify`` on that target, each in its own process as a
user runs them. The Spark training set must equal the DuckDB one of a copy built from the same
vars (same generator, same spine), and the commands' stderr must carry no Spark logging.

Runs under ``make test-spark`` (``.venv-spark``); every Spark command starts a JVM, so the
module keeps to the fewest: one ``dbt run`` and four ``dbt-features`` commands."""

from __future__ import annotations

import json
import math
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from helpers import DBT_FEATURES, recent_copy, run_dbt

pytestmark = pytest.mark.spark

N_TRANSACTIONS = 4000
FEATURES = "customer_spend:avg_amount_30d,customer_spend:txn_count_7d,merchant_risk:*"
JVM_NOTICE = "WARNING: Using incubator modules: jdk.incubator.vector"
"""Printed by the JVM itself when Spark 4 starts it (no logging setting reaches it)."""


def cli(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``dbt-features`` in the project's folder (where the Spark profile keeps its metastore);
    fails the test with its output unless it exits 0."""
    result = subprocess.run([DBT_FEATURES, *args], cwd=project, env={**os.environ, **(env or {})},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"dbt-features {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def assert_quiet(result: subprocess.CompletedProcess) -> None:
    noise = [line for line in result.stderr.splitlines() if line.strip() and line != JVM_NOTICE]
    assert noise == [], "\n".join(noise[:20])


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, str]]]:
    """Two sample copies whose data ends today (the online views' ttl keeps it servable), from
    the same vars: one built on Spark, one on DuckDB. Each keeps the manifest of its own target,
    so no command has to recompile the project for another."""
    root = tmp_path_factory.mktemp("sample_spark")
    spark = recent_copy(root / "spark" / "sample_project", N_TRANSACTIONS)
    duck = recent_copy(root / "duckdb" / "sample_project", N_TRANSACTIONS)
    duck_env = {"DBT_FEATURES_SAMPLE_DUCKDB": str(duck / "target" / "sample.duckdb")}
    run_dbt(spark, "run", "--target", "spark")
    run_dbt(duck, "run", "--target", "dev", env=duck_env)
    return {"spark": (spark, {}), "dev": (duck, duck_env)}


def training_set(project: Path, target: str, env: dict[str, str]) -> list[dict[str, Any]]:
    out = project / "target" / f"set_{target}.parquet"
    result = cli(project, "training-set", "--target", target, "--spine", "labels",
                 "--spine-timestamp", "scored_at", "--features", FEATURES, "-o", str(out), env=env)
    if target == "spark":
        assert_quiet(result)
    return sorted(pq.read_table(out).to_pylist(), key=lambda row: row["transaction_id"])


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, datetime) and isinstance(b, datetime):
        return _utc(a) == _utc(b)
    return a == b


def _utc(moment: datetime) -> datetime:
    """A naive time (DuckDB's TIMESTAMP) is UTC; an aware one (Spark's) is compared in UTC."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def test_the_spark_training_set_equals_duckdbs(samples: dict) -> None:
    spark, duck = (training_set(samples[t][0], t, samples[t][1]) for t in ("spark", "dev"))
    assert len(spark) == len(duck) == N_TRANSACTIONS // 10
    assert list(spark[0]) == list(duck[0])
    found = sum(row["avg_amount_30d"] is not None for row in duck)
    assert found > 300 and sum(row["merchant_fraud_rate_30d"] is not None for row in duck) > 300
    diffs = [(s["transaction_id"], name, s[name], d[name])
             for s, d in zip(spark, duck) for name in d if not same(s[name], d[name])]
    assert diffs == [], diffs[:10]


def latest_customer(duck: Path) -> int:
    """The customer of the last payment: inside customer_spend's ttl, so served."""
    import duckdb

    con = duckdb.connect(str(duck / "target" / "sample.duckdb"), read_only=True)
    try:
        return con.execute("select customer_id from transactions order by transaction_at desc limit 1").fetchone()[0]
    finally:
        con.close()


def test_sync_get_and_verify_on_spark(samples: dict, redis_prefix: str) -> None:
    sample = samples["spark"][0]
    customer = latest_customer(samples["dev"][0])
    synced = cli(sample, "sync", "--target", "spark", "--json")
    assert_quiet(synced)
    views = {v["view"]: v for v in json.loads(synced.stdout)["views"]}
    assert set(views) == {"customer_spend", "merchant_risk"}
    assert all(v["entities"] > 0 for v in views.values())
    got = cli(sample, "get", "customer_spend", "merchant_risk:merchant_fraud_rate_30d",
              "--entity", f"customer_id={customer},merchant_id=7", "--target", "spark", "--json")
    results = json.loads(got.stdout)["results"]
    assert [r["statuses"] for r in results] == [["present"]] * 4
    verified = cli(sample, "verify", "--sample", "100", "--target", "spark")
    assert_quiet(verified)
