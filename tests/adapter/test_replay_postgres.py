"""`verify --served` end to end on PostgreSQL: the sample project built with recent data in a
schema of this module's own, served with logging on, exported, replayed clean; then skew made
three ways, one after the other on the same project, each replayed from its own log: a row
arriving late (late_arrival, not skew --as-known-at), a value served past a shortened ttl
(served_after_ttl), a model rebuilt with another window and not synced (definition_changed,
counted as a brute-force equi-join says)."""

from __future__ import annotations

import os
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Iterator

import pytest
import redis

from dbt_features.store import FeatureStore
from helpers import DBT, PG_DSN, REDIS_URL, online_env, own_pg_schema, recent_copy, run_dbt
from replay_support import export, exported

MERCHANTS = [{"merchant_id": i} for i in range(1, 21)]
CUSTOMERS = [{"customer_id": i} for i in range(1, 41)]

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg_replay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A recent sample project built on PostgreSQL in a schema of its own (changed by the test:
    not shared), and a Redis prefix of its own (both removed afterwards), with the settings that
    point at them."""
    project = recent_copy(tmp_path_factory.mktemp("replay_pg") / "sample_project")
    prefix = f"dbtf_test_{uuid.uuid4().hex[:10]}"
    with own_pg_schema("dbt_features_replay") as schema:
        env = {**online_env(project, schema), "DBT_FEATURES_REDIS_URL": REDIS_URL,
               "DBT_FEATURES_REDIS_PREFIX": prefix}
        run_dbt(project, "run", "--target", "postgres", env=env)
        try:
            yield project, env
        finally:  # where `dbt build --store-failures` kept the failures
            _execute(f'drop schema if exists "{schema}_dbt_test__audit" cascade', [])
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=10_000))
        if keys:
            client.unlink(*keys)
        client.close()


def _store(project: Path, **options: object) -> FeatureStore:
    return FeatureStore(project_dir=str(project), target="postgres", **options)


def _execute(sql: str, params: list) -> list[tuple]:
    import psycopg2

    con = psycopg2.connect(PG_DSN)
    con.autocommit = True
    try:
        with con.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
    finally:
        con.close()


def _features(report) -> dict[str, object]:
    return {f"{f.view}:{f.feature}": f for f in report.features}


def test_served_values_replay_on_postgres(pg_replay: tuple[Path, dict[str, str]], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    project, env = pg_replay
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    schema = env["DBT_FEATURES_PG_SCHEMA"]
    store = _store(project, served_log=True)
    store.sync()
    store.get_online_features(["customer_spend:*", "merchant_risk:*"],
                              [{"customer_id": i, "merchant_id": i % 20 + 1} for i in range(1, 41)])
    clean_log = export(store, tmp_path / "clean")
    clean = store.verify_served(str(clean_log))
    assert clean.exit_code == 0 and len(clean.features) == 6, clean.format()
    assert {f.compared for f in clean.features} == {40}
    _load(schema, "served_clean_log", exported(clean_log, "customer_spend"))
    assert _dbt_test(project, schema, "served_clean") == {}

    # A row lands late: event time before the request, created an hour after it.
    store.get_online_features(["merchant_risk:*"], MERCHANTS)
    late = export(store, tmp_path / "late")
    at = exported(late, "merchant_risk").column("request_time")[0].as_py().replace(tzinfo=None)
    _execute(f'insert into "{schema}".merchant_risk (merchant_id, feature_at, computed_at, '
             "merchant_txn_count_30d, merchant_fraud_rate_30d, merchant_category) "
             "values (3, %s, %s, 999999, 0.5, 'late')",
             [at - timedelta(milliseconds=1), at + timedelta(hours=1)])
    report = store.verify_served(str(late))
    assert {(k, f.mismatched, tuple(f.causes.items())) for k, f in _features(report).items()} == {
        (f"merchant_risk:{n}", 1, (("late_arrival", 1),))
        for n in ("merchant_txn_count_30d", "merchant_fraud_rate_30d", "merchant_category")}
    assert store.verify_served(str(late), as_known_at=True).mismatched == 0

    # The definition's ttl shortened below the served values' age; the store still serves them.
    store.get_online_features(["merchant_risk:merchant_fraud_rate_30d"], MERCHANTS[3:])
    stale = export(store, tmp_path / "stale")
    table = exported(stale, "merchant_risk")
    ages = [(r - e).total_seconds() for r, e, s in zip(*(table.column(c).to_pylist() for c in (
        "request_time", "event_timestamp", "status"))) if s == "present"]
    schema_yml = project / "models" / "schema.yml"
    original = schema_yml.read_text()
    schema_yml.write_text(original.replace("ttl: 2d", f"ttl: {max(1, int(min(ages)) // 2)}s"))
    (check,) = _store(project).verify_served(str(stale)).features
    assert (check.compared, check.mismatched, check.causes) == (
        17, len(ages), {"served_after_ttl": len(ages)})
    schema_yml.write_text(original)

    # customer_spend rebuilt with another window, not synced.
    store.get_online_features(["customer_spend:txn_count_7d"], CUSTOMERS)
    changed = export(store, tmp_path / "changed")
    model = project / "models" / "features" / "customer_spend.sql"
    model.write_text(model.read_text().replace("count(*) over last_7d as txn_count_7d",
                                               "count(*) over last_30d as txn_count_7d"))
    run_dbt(project, "run", "--target", "postgres", "--select", "customer_spend")
    expected = _changed(schema, exported(changed, "customer_spend"))
    (check,) = _store(project).verify_served(str(changed)).features
    assert expected > 10
    assert (check.compared, check.mismatched, check.causes) == (
        40, expected, {"definition_changed": expected})

    # The dbt generic test on the log loaded as a table fails with the same count.
    _load(schema, "served_changed_log", exported(changed, "customer_spend"))
    assert _dbt_test(project, schema, "served_changed") == {"txn_count_7d": (40, expected)}


SERVED_MODEL = "select * from {{{{ target.schema }}}}.{table}"
SERVED_TESTS = """
version: 2
models:
  - name: served_clean
    data_tests:
      - dbt_features.served_values_match:
          arguments:
            view: customer_spend
  - name: served_changed
    data_tests:
      - dbt_features.served_values_match:
          arguments:
            view: customer_spend
"""
_PG_TYPES = {"int64": "bigint", "double": "double precision", "string": "text", "bool": "boolean",
             "date32[day]": "date", "timestamp[us, tz=UTC]": "timestamptz",
             "timestamp[us]": "timestamp", "list<element: string>": "text[]"}


def _load(schema: str, name: str, table) -> None:
    """The exported log as a table of PostgreSQL's (what a user loads the Parquet files into)."""
    import psycopg2

    columns = ", ".join(f'"{f.name}" {_PG_TYPES[str(f.type)]}' for f in table.schema)
    marks = ", ".join(["%s"] * table.num_columns)
    con = psycopg2.connect(PG_DSN)
    con.autocommit = True
    try:
        with con.cursor() as cur:
            cur.execute(f'create table "{schema}"."{name}" ({columns})')
            cur.executemany(f'insert into "{schema}"."{name}" values ({marks})',
                            [tuple(row.values()) for row in table.to_pylist()])
    finally:
        con.close()


def _dbt_test(project: Path, schema: str, model: str) -> dict[str, tuple[int, int]]:
    """`dbt build` of the log's model and its generic test (failures stored): per failing
    feature, (compared, mismatched)."""
    served = project / "models" / "served"
    served.mkdir(exist_ok=True)
    for name in ("served_clean", "served_changed"):  # both known to dbt from the start
        (served / f"{name}.sql").write_text(SERVED_MODEL.format(table=f"{name}_log"))
    (served / "served.yml").write_text(SERVED_TESTS)
    done = subprocess.run(
        [DBT, "build", "--target", "postgres", "--select", model, "--store-failures",
         "--project-dir", str(project), "--profiles-dir", str(project)],
        cwd=project, capture_output=True, text=True, env=dict(os.environ), timeout=300)
    audit = f"{schema}_dbt_test__audit"
    failed: dict[str, tuple[int, int]] = {}
    for (table,) in _execute("select table_name from information_schema.tables "
                             "where table_schema = %s", [audit]):
        for feature, compared, mismatched in _execute(
                f'select "feature", "compared", "mismatched" from "{audit}"."{table}"', []):
            failed[feature] = (int(compared), int(mismatched))
    assert done.returncode == (1 if failed else 0), done.stdout + done.stderr
    return failed


def _changed(schema: str, served) -> int:
    """Brute force: served rows whose txn_count_7d is not the rebuilt table's at the served
    row's own event time (an equi-join in Python, not the point-in-time engine)."""
    rows = _execute(f'select customer_id, feature_at, txn_count_7d from "{schema}".customer_spend '
                    "where customer_id <= 40", [])
    now = {(c, t): n for c, t, n in rows}
    count = 0
    for row in served.to_pylist():
        if row["status"] == "present":
            at = row["event_timestamp"].replace(tzinfo=None)
            count += now[(row["customer_id"], at)] != row["txn_count_7d"]
    return count
