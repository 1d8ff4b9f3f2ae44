"""`verify --served` end to end on the sample project (DuckDB), from real served logs: reads
served with logging on (over HTTP or from Python), exported with `served export`, replayed.
A clean log replays clean (and shows on /metrics); skew made three ways is reported with its
feature, count and cause: a row arriving late (late_arrival; not skew --as-known-at), a value
served past a shortened ttl from a stale sync (served_after_ttl), a model rebuilt with another
window and not synced (definition_changed, counted by a brute-force equi-join, and by the dbt
test, which agrees); a newer row not yet synced is sync_lag. Each test works on its own copy of
the recent sample (a file copy and a sync), so none depends on another's changes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner, Result

from dbt_features.serving.replay_report import REPLAY_FILE
from dbt_features.cli import main
from dbt_features.store import FeatureStore
from helpers import DBT
from replay_support import asgi, export, exported

CUSTOMERS = [{"customer_id": i} for i in range(1, 61)]
MERCHANTS = [{"merchant_id": i} for i in range(1, 21)]


@pytest.fixture
def copy(recent_duckdb: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
         redis_prefix: str) -> Iterator[Path]:
    """A private copy of the recent DuckDB sample, synced into a Redis prefix of its own."""
    project = tmp_path / "sample_project"
    shutil.copytree(recent_duckdb, project, ignore=shutil.ignore_patterns(".dbt_features", "logs"))
    monkeypatch.setenv("DBT_FEATURES_SAMPLE_DUCKDB", str(project / "target" / "sample.duckdb"))
    FeatureStore(project_dir=str(project)).sync()
    yield project


def _logged(project: Path) -> FeatureStore:
    """The project's store, logging every read it serves."""
    return FeatureStore(project_dir=str(project), served_log=True)


def _cli(project: Path, *args: str) -> Result:
    """``dbt-features verify`` through click, in this process (the environment is the copy's)."""
    return CliRunner().invoke(main, ["verify", *args, "--project-dir", str(project)])


def _by_feature(report) -> dict[str, object]:
    return {f"{f.view}:{f.feature}": f for f in report.features}


def test_a_clean_log_replays_clean(copy: Path, tmp_path: Path) -> None:
    """Served over HTTP with logging on, exported, replayed: nothing differs; the server's
    /metrics shows the replay's consistency."""
    store = FeatureStore(project_dir=str(copy))
    app = store.app(served_log=True)
    ids = list(range(1, 61)) + [10**9]
    requests = [
        {"features": ["customer_spend:*", "merchant_risk:*"],
         "entities": {"customer_id": ids, "merchant_id": [i % 20 + 1 for i in ids]}},
        {"features": ["merchant_risk:merchant_category"], "entities": {"merchant_id": list(range(1, 21))}},
        {"features": ["customer_spend:txn_count_7d"], "entities": {"customer_id": [1, 2, 3, 4, 5]}},
    ]
    for body in requests:
        assert asgi(app, "POST", "/get-online-features", body)[0] == 200
    assert app.online.served_log.flush()
    live = store.verify_served("stream")  # the live log, read without deleting it
    folder = export(store, tmp_path / "served")
    report = store.verify_served(str(folder))
    assert [(f.feature, f.compared) for f in live.features] == \
        [(f.feature, f.compared) for f in report.features]
    assert report.exit_code == 0, report.format()
    found = _by_feature(report)
    assert found["customer_spend:txn_count_7d"].compared == 61 + 5
    assert found["customer_spend:avg_amount_30d"].compared == 61
    assert found["merchant_risk:merchant_category"].compared == 61 + 20
    assert found["merchant_risk:merchant_txn_count_30d"].compared == 61
    assert all(f.mismatched == 0 for f in report.features)
    saved = json.loads((copy / "target" / REPLAY_FILE).read_text())
    assert saved["ok"] and saved["rows"] == 61 + 5 + 61 + 20

    one = _cli(copy, "--served", str(folder / "merchant_risk"))
    assert one.exit_code == 0, one.output
    assert "merchant_risk:merchant_category" in one.stdout and "customer_spend" not in one.stdout
    assert "served values match the training set" in one.stdout, one.stdout

    metrics = asgi(app, "GET", "/metrics")[1].decode()  # the last replay: merchant_risk only
    assert 'dbt_features_served_consistency_ratio{view="merchant_risk",feature="merchant_category"} 1.0' in metrics
    assert 'consistency_ratio{view="customer_spend"' not in metrics
    app.online.close()


def _execute(project: Path, sql: str, params: list | None = None) -> None:
    import duckdb

    con = duckdb.connect(str(project / "target" / "sample.duckdb"))
    try:
        con.execute(sql, params or [])
    finally:
        con.close()


def test_a_row_served_before_its_created_time_is_named_as_known_at(copy: Path,
                                                                   tmp_path: Path) -> None:
    """merchant_risk has a created_timestamp: a row stamped as created an hour from now but
    already in the warehouse is synced and served; replayed as known at, no row known by the
    request is that new, and the replay says so instead of `unknown`."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    _execute(copy, "insert into main.merchant_risk (merchant_id, feature_at, computed_at, "
                   "merchant_txn_count_30d, merchant_fraud_rate_30d, merchant_category) "
                   "values (3, ?, ?, 999999, 0.5, 'early')",
             [now - timedelta(seconds=1), now + timedelta(hours=1)])
    FeatureStore(project_dir=str(copy)).sync()
    store = _logged(copy)
    store.get_online_features(["merchant_risk:*"], MERCHANTS)
    folder = export(store, tmp_path / "served")
    assert store.verify_served(str(folder)).exit_code == 0
    known = store.verify_served(str(folder), as_known_at=True)
    assert known.exit_code == 1
    for check in known.features:
        assert (check.compared, check.mismatched) == (20, 1)
        assert check.causes == {"served_before_created": 1}, known.format()
        assert check.examples[0].entity == {"merchant_id": 3}
    assert "served a row newer than any created by the request" in known.format()


def test_a_row_arriving_late_is_late_arrival_and_not_skew_as_known_at(copy: Path,
                                                                       tmp_path: Path) -> None:
    """merchant_risk has a created_timestamp: a row whose event time is before the request but
    which was created after it was not knowable when the model was served."""
    store = _logged(copy)
    store.get_online_features(["merchant_risk:*"], MERCHANTS)
    folder = export(store, tmp_path / "served")
    at = exported(folder, "merchant_risk").column("request_time")[0].as_py().replace(tzinfo=None)
    _execute(copy, "insert into main.merchant_risk (merchant_id, feature_at, computed_at, "
                   "merchant_txn_count_30d, merchant_fraud_rate_30d, merchant_category) "
                   "values (3, ?, ?, 999999, 0.5, 'late')",
             [at - timedelta(milliseconds=1), at + timedelta(hours=1)])
    report = store.verify_served(str(folder))
    assert report.exit_code == 1
    found = _by_feature(report)
    for name in ("merchant_txn_count_30d", "merchant_fraud_rate_30d", "merchant_category"):
        check = found[f"merchant_risk:{name}"]
        assert (check.compared, check.mismatched, check.causes) == (20, 1, {"late_arrival": 1})
        (example,) = check.examples
        assert example.entity == {"merchant_id": 3} and example.cause == "late_arrival"
    assert found["merchant_risk:merchant_category"].examples[0].offline == "late"

    known = store.verify_served(str(folder), as_known_at=True)
    assert known.exit_code == 0 and known.mismatched == 0, known.format()
    cli = _cli(copy, "--served", str(folder))
    assert cli.exit_code == 1
    assert "merchant_risk:merchant_category" in cli.stdout and "late_arrival 1" in cli.stdout
    assert "replay with --as-known-at" in cli.stdout
    rate = _cli(copy, "--served", str(folder), "--max-mismatch-rate", "0.05", "--json")
    assert rate.exit_code == 0 and json.loads(rate.stdout)["mismatched"] == 3
    assert _cli(copy, "--served", str(folder), "--as-known-at").exit_code == 0


def test_a_newer_row_not_yet_synced_is_sync_lag(copy: Path, tmp_path: Path) -> None:
    """customer_spend has no created_timestamp: a newer offline row the online store did not
    have at the request is sync lag, for each feature asked for."""
    store = _logged(copy)
    store.get_online_features(["customer_spend:avg_amount_7d", "customer_spend:txn_count_7d"],
                              CUSTOMERS)
    folder = export(store, tmp_path / "served")
    at = exported(folder, "customer_spend").column("request_time")[0].as_py().replace(tzinfo=None)
    _execute(copy, "insert into main.customer_spend values (7, ?, 1.5, 2.5, 99)",
             [at - timedelta(milliseconds=1)])
    report = store.verify_served(str(folder))
    found = _by_feature(report)
    assert "customer_spend:avg_amount_30d" not in found  # not asked for, not compared
    for name, offline in (("avg_amount_7d", 2.5), ("txn_count_7d", 99)):
        check = found[f"customer_spend:{name}"]
        assert (check.compared, check.mismatched, check.causes) == (60, 1, {"sync_lag": 1})
        assert check.examples[0].entity == {"customer_id": 7}
        assert check.examples[0].offline == offline


def test_a_value_served_past_the_definitions_ttl_is_served_after_ttl(copy: Path,
                                                                     tmp_path: Path) -> None:
    """The online store was synced under a 2-day ttl; the definition now says less: values the
    server still served (a stale sync of the old definition) are past the ttl training uses."""
    store = _logged(copy)
    store.get_online_features(["merchant_risk:merchant_txn_count_30d"], MERCHANTS)
    folder = export(store, tmp_path / "served")
    table = exported(folder, "merchant_risk")
    ages = [(r - e).total_seconds() for r, e, s in zip(
        table.column("request_time").to_pylist(), table.column("event_timestamp").to_pylist(),
        table.column("status").to_pylist()) if s == "present"]
    ttl = max(1, int(min(ages)) // 2)
    schema = copy / "models" / "schema.yml"
    schema.write_text(schema.read_text().replace("ttl: 2d", f"ttl: {ttl}s"))
    report = FeatureStore(project_dir=str(copy)).verify_served(str(folder))
    (check,) = report.features
    assert (check.compared, check.mismatched) == (20, len(ages)) and len(ages) > 10
    assert check.causes == {"served_after_ttl": len(ages)}
    assert {e.offline for e in check.examples} == {None}


SERVED_MODEL = """
select * from read_parquet('{{{{ var("served_log") }}}}/{view}/*.parquet')
"""
SERVED_TESTS = """
version: 2
models:
  - name: served_customer_spend
    data_tests:
      - dbt_features.served_values_match:
          arguments:
            view: customer_spend
      - dbt_features.served_values_match:
          arguments:
            view: customer_spend
            as_known_at: true
            max_mismatch_rate: 1
  - name: served_merchant_risk
    data_tests:
      - dbt_features.served_values_match:
          arguments:
            view: merchant_risk
      - dbt_features.served_values_match:
          arguments:
            view: merchant_risk
            as_known_at: true
"""
LOGS = ["served_customer_spend", "served_merchant_risk"]


def _dbt_build(project: Path, folder: Path, *select: str) -> subprocess.CompletedProcess:
    """`dbt build` of ``select`` (the log models and their tests; failures stored)."""
    return subprocess.run(
        [DBT, "build", "--select", *select, "--store-failures",
         "--vars", json.dumps({"served_log": str(folder)}), "--project-dir", str(project),
         "--profiles-dir", str(project)],
        cwd=project, capture_output=True, text=True, env=dict(os.environ), timeout=300)


def test_the_dbt_test_agrees_with_verify_served(copy: Path, tmp_path: Path) -> None:
    """A clean log passes the dbt test. Then the window of txn_count_7d changes and the model is
    rebuilt, not synced, and a merchant_risk row arrives late: the dbt test fails with the
    mismatches verify --served counts (from Parquet and from the log's model), the late row
    only without as_known_at; verify --served says why (definition_changed, late_arrival)."""
    store = _logged(copy)
    store.get_online_features(["customer_spend:*"], CUSTOMERS)
    store.get_online_features(["merchant_risk:*"], MERCHANTS)
    folder = export(store, tmp_path / "served")
    (copy / "models" / "served").mkdir()
    for view in ("customer_spend", "merchant_risk"):
        (copy / "models" / "served" / f"served_{view}.sql").write_text(SERVED_MODEL.format(view=view))
    (copy / "models" / "served" / "served.yml").write_text(SERVED_TESTS)
    clean = _dbt_build(copy, folder, *LOGS)
    assert clean.returncode == 0, clean.stdout

    model = copy / "models" / "features" / "customer_spend.sql"
    model.write_text(model.read_text().replace("count(*) over last_7d as txn_count_7d",
                                               "count(*) over last_30d as txn_count_7d"))
    at = exported(folder, "merchant_risk").column("request_time")[0].as_py().replace(tzinfo=None)
    _execute(copy, "insert into main.merchant_risk (merchant_id, feature_at, computed_at, "
                   "merchant_txn_count_30d, merchant_fraud_rate_30d, merchant_category) "
                   "values (3, ?, ?, 999999, 0.5, 'late')",
             [at - timedelta(milliseconds=1), at + timedelta(hours=1)])
    built = _dbt_build(copy, folder, "customer_spend", *LOGS)
    assert built.returncode == 1, built.stdout  # the strict tests fail
    expected = _changed_values(copy, folder)
    assert expected > 20

    report = FeatureStore(project_dir=str(copy)).verify_served(str(folder))
    found = _by_feature(report)
    check = found["customer_spend:txn_count_7d"]
    assert (check.compared, check.mismatched) == (60, expected)
    assert check.causes == {"definition_changed": expected}
    assert all(e.offline != e.served for e in check.examples)
    assert all(found[f"customer_spend:{n}"].mismatched == 0
               for n in ("avg_amount_30d", "avg_amount_7d"))
    assert {f.causes.get("late_arrival") for f in report.features if f.view == "merchant_risk"} == {1}

    as_model = FeatureStore(project_dir=str(copy)).verify_served("served_customer_spend")
    assert [(f.feature, f.mismatched) for f in as_model.features] == \
        [(f.feature, f.mismatched) for f in found.values() if f.view == "customer_spend"]
    assert sorted(_stored_failures(copy)) == sorted(
        (f.view, f.feature, f.compared, f.mismatched) for f in report.features if f.mismatched)


def _changed_values(project: Path, folder: Path) -> int:
    """Brute force: served present rows whose txn_count_7d is not the rebuilt model's at the
    served row's own event time (an equi-join, not the point-in-time engine)."""
    import duckdb

    con = duckdb.connect(str(project / "target" / "sample.duckdb"), read_only=True)
    try:
        return con.execute(
            "select count(*) from read_parquet(?) s join main.customer_spend c "
            "on c.customer_id = s.customer_id "
            "and c.feature_at = cast(s.event_timestamp at time zone 'UTC' as timestamp) "
            "where s.status = 'present' and c.txn_count_7d <> s.txn_count_7d",
            [str(folder / "customer_spend" / "*.parquet")]).fetchone()[0]
    finally:
        con.close()


def _stored_failures(project: Path) -> list[tuple]:
    import duckdb

    con = duckdb.connect(str(project / "target" / "sample.duckdb"), read_only=True)
    try:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema like '%dbt_test__audit' and table_name like 'dbt_features_served_values_%'"
        ).fetchall()
        assert len(tables) == 4  # every test stores its failures, none or some
        return [tuple(r) for schema, table in tables for r in con.execute(
            f'select "view", "feature", "compared", "mismatched" from "{schema}"."{table}"'
        ).fetchall()]
    finally:
        con.close()


def test_bad_sources_and_options_are_one_clear_message(copy: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    store = _logged(copy)
    store.get_online_features(["merchant_risk:*"], MERCHANTS)
    folder = export(store, tmp_path / "served")
    stranger = tmp_path / "other" / "merchant_risks"
    stranger.mkdir(parents=True)
    shutil.copy(next((folder / "merchant_risk").glob("*.parquet")), stranger / "part.parquet")
    broken = tmp_path / "broken" / "merchant_risk"
    broken.mkdir(parents=True)
    import pyarrow.parquet as pq

    table = pq.read_table(next((folder / "merchant_risk").glob("*.parquet")))
    pq.write_table(table.drop_columns(["status", "merchant_id"]), broken / "part.parquet")

    cases = {
        (str(tmp_path / "nowhere"),): "no such file or folder",
        (str(broken / "part.parquet"),): "part.parquet lacks the column(s) status, merchant_id of a served log",
        (str(stranger.parent),): "served rows of view 'merchant_risks', which is not a feature "
                                 "view of this project (did you mean 'merchant_risk'?)",
        ("served_merchant_risk",): "is not a file, `stream`, or a dbt model or source of this "
                                   "project",
        (str(folder), "--max-mismatch-rate", "2"): "--max-mismatch-rate 2.0: give a rate from 0 to 1",
        ("stream",): "no online store is configured",
    }
    monkeypatch.delenv("DBT_FEATURES_REDIS_URL")  # for `stream`: none configured, none embedded
    for args, message in cases.items():
        result = _cli(copy, "--served", *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    plain = _cli(copy, "--as-known-at")
    assert plain.exit_code == 2 and "apply to a replay: add --served SOURCE" in plain.stderr
