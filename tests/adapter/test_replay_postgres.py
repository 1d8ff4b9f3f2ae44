"""`verify --served` end to end on PostgreSQL: the sample project built with recent data in a
schema of this module's own, served with logging on, exported, replayed clean; then skew made
three ways, one after the other on the same project, each replayed from its own log: a row
arriving late (late_arrival, not skew --as-known-at), a value served past a shortened ttl
(served_after_ttl), a model rebuilt with another window and not synced (definition_changed,
counted as a brute-force equi-join says)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Iterator

import pytest
import redis

from dbt_features.store import FeatureStore
from helpers import PG_DSN, REDIS_URL, online_env, own_pg_schema, recent_copy, run_dbt
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
        yield project, env
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
    clean = store.verify_served(str(export(store, tmp_path / "clean")))
    assert clean.exit_code == 0 and len(clean.features) == 6, clean.format()
    assert {f.compared for f in clean.features} == {40}

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
