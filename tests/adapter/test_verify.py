"""`dbt-features verify`: offline values as of now against the online store, on the real
DuckDB, PostgreSQL and Redis; every injected skew is caught, clean syncs pass."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import redis

from dbt_features.serving.codec import Schema
from dbt_features.serving.layout import Keys, parse_field
from dbt_features.serving.verify import sample_online_keys, sample_sql
from dbt_features.store import FeatureStore
from helpers import DBT_FEATURES, REDIS_URL, run_dbt
from stored import stored


def test_a_clean_sync_verifies_on_duckdb(duck_project: Path) -> None:
    store = FeatureStore(project_dir=str(duck_project))
    store.sync()
    report = store.verify()
    assert report.exit_code == 0, report.format()
    checks = {c.view: c for c in report.views}
    assert set(checks) == {"customer_spend", "merchant_risk"}
    assert checks["customer_spend"].served > 100 and checks["merchant_risk"].served == 120
    cli = subprocess.run([DBT_FEATURES, "verify", "--json"], cwd=duck_project,
                         capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert cli.returncode == 0, cli.stderr
    data = json.loads(cli.stdout)
    assert data["ok"] and data["mismatched"] == 0 and len(data["views"]) == 2
    text = subprocess.run([DBT_FEATURES, "verify", "--select", "merchant_risk"], cwd=duck_project,
                          capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert text.returncode == 0
    lines = text.stdout.splitlines()
    assert lines[0].startswith("merchant_risk: OK: 40 entities, 120 values compared, 0 mismatched")
    assert "no skew" in lines[-1]


@pytest.mark.postgres
def test_a_clean_sync_verifies_on_postgres(pg_project: Path) -> None:
    store = FeatureStore(project_dir=str(pg_project), target="postgres")
    store.sync()
    report = store.verify(sample=200)
    assert report.exit_code == 0, report.format()
    assert all(c.sampled - c.online_only == min(200, {"customer_spend": 500, "merchant_risk": 40}[c.view])
               for c in report.views)
    assert sum(c.served for c in report.views) > 100


def _served_ids(client: redis.Redis, prefix: str, view: str) -> list[int]:
    """Every entity id the served generation holds, read from its bucket hashes."""
    keys = Keys(prefix)
    gen, text = client.hmget(keys.meta(view), "gen", "schema")
    schema = Schema.parse(text)
    ids = []
    for key in client.scan_iter(match=keys.generation_pattern(view, gen.decode()), count=1000):
        bucket = int(key.rsplit(b":", 1)[1])
        ids += [parse_field(f, bucket, schema.key_dtypes, schema.buckets)[0] for f in client.hkeys(key)]
    return sorted(ids)


def test_hand_edited_missing_and_expired_keys_are_caught(duck_project: Path, redis_prefix: str) -> None:
    store = FeatureStore(project_dir=str(duck_project))
    store.sync()
    client = redis.Redis.from_url(REDIS_URL)
    edited, missing, expired = (stored(client, redis_prefix, "customer_spend", i)
                                for i in _served_ids(client, redis_prefix, "customer_spend")[:3])
    codec = edited.codec

    blob = edited.get(client)
    head = list(codec.struct.unpack_from(blob))
    head[len(head) - len(codec.fixed) + codec.names.index("avg_amount_7d")] += 1e-9  # one ulp-ish
    edited.put(client, codec.struct.pack(*head) + blob[codec.struct.size:])
    missing.delete(client)
    blob = bytearray(expired.get(client))
    old = int.from_bytes(blob[:8], "big", signed=True) - 31 * 86400 * 1_000_000
    blob[:8] = old.to_bytes(8, "big", signed=True)
    expired.put(client, bytes(blob))
    edited, missing, expired = (parse_field(p.field, int(p.key.rsplit(":", 1)[1]),
                                            codec.schema.key_dtypes, codec.schema.buckets)[0]
                                for p in (edited, missing, expired))

    report = store.verify(select="customer_spend")
    assert report.exit_code == 1
    (check,) = report.views
    found = {(m.entity["customer_id"], m.feature): m for m in check.mismatches}
    assert check.mismatched == len(found) == 1 + 3 + 3
    assert found[(edited, "avg_amount_7d")].kind == "value"
    assert found[(edited, "avg_amount_7d")].online == found[(edited, "avg_amount_7d")].offline + 1e-9
    assert {found[(missing, f)].kind for f in codec.names} == {"missing_online"}
    assert {found[(expired, f)].kind for f in codec.names} == {"expired_online"}
    assert found[(expired, "txn_count_7d")].online_status == "OUTSIDE_MAX_AGE"

    cli = subprocess.run([DBT_FEATURES, "verify", "--select", "customer_spend"], cwd=duck_project,
                         capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert cli.returncode == 1, cli.stderr
    assert "customer_spend: MISMATCH" in cli.stdout
    assert f"[customer_id={missing}] avg_amount_30d: missing_online" in cli.stdout
    assert "7 mismatched values" in cli.stdout


def test_a_model_rebuilt_but_not_synced_is_caught(recent_duckdb: Path, tmp_path: Path,
                                                  redis_prefix: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "sample_project"
    shutil.copytree(recent_duckdb, project, ignore=shutil.ignore_patterns(".dbt_features", "logs"))
    duckdb_file = project / "target" / "sample.duckdb"
    monkeypatch.setenv("DBT_FEATURES_SAMPLE_DUCKDB", str(duckdb_file))
    store = FeatureStore(project_dir=str(project))
    store.sync()
    assert store.verify(select="customer_spend").exit_code == 0

    model = project / "models" / "features" / "customer_spend.sql"
    model.write_text(model.read_text().replace("count(*) over last_7d as txn_count_7d",
                                               "count(*) over last_7d + 1 as txn_count_7d"))
    run_dbt(project, "run", "--select", "customer_spend",
            env={"DBT_FEATURES_SAMPLE_DUCKDB": str(duckdb_file)})
    report = FeatureStore(project_dir=str(project)).verify(select="customer_spend")
    (check,) = report.views
    assert report.exit_code == 1 and check.mismatched > 50
    assert {m.feature for m in check.mismatches} == {"txn_count_7d"}
    assert {m.kind for m in check.mismatches} == {"value"}
    assert all(m.offline == m.online + 1 for m in check.mismatches)


def test_an_entity_deleted_upstream_but_still_served_is_caught(recent_duckdb: Path, tmp_path: Path,
                                                                redis_prefix: str, monkeypatch) -> None:
    """verify samples the online keys too: an entity served online but gone offline is skew,
    until the next sync (a full refresh: rows it had seen were deleted) removes it."""
    project = tmp_path / "p"
    shutil.copytree(recent_duckdb, project)
    db = project / "target" / "sample.duckdb"
    monkeypatch.setenv("DBT_FEATURES_SAMPLE_DUCKDB", str(db))
    store = FeatureStore(project_dir=str(project))
    store.sync("merchant_risk")
    import duckdb

    con = duckdb.connect(str(db))
    con.execute("delete from main.merchant_risk where merchant_id = 5")
    con.close()
    check = store.verify(select="merchant_risk").views[0]
    assert check.mismatched == 3 and check.online_only == 1
    assert {(m.entity["merchant_id"], m.kind) for m in check.mismatches} == {(5, "not_offline")}
    result = store.sync("merchant_risk")[0]
    assert result.mode == "full" and "deleted" in result.reason
    got = store.get_online_features(["merchant_risk:*"], [{"merchant_id": 5}])
    assert {s.value for s in got.statuses[0]} == {"not_found"}
    assert store.verify(select="merchant_risk").exit_code == 0


def test_sampling_is_deterministic_sqlglot_sql(duck_project: Path) -> None:
    store = FeatureStore(project_dir=str(duck_project))
    view = store.registry.view("customer_spend")
    first = sample_sql(view, "duckdb", 10, seed=1)
    assert first == sample_sql(view, "duckdb", 10, seed=1)
    assert "MD5(" in first and "LIMIT 10" in first and '"customer_id"' in first
    assert "MD5(" in sample_sql(view, "postgres", 10, seed=1)
    with store.warehouse() as wh:
        a = wh.arrow(first).column("customer_id").to_pylist()
        b = wh.arrow(sample_sql(view, "duckdb", 10, seed=1)).column("customer_id").to_pylist()
        c = wh.arrow(sample_sql(view, "duckdb", 10, seed=2)).column("customer_id").to_pylist()
    assert a == b and len(a) == 10 and a != c


def test_the_online_key_sample_follows_the_seed(duck_project: Path, redis_prefix: str) -> None:
    store = FeatureStore(project_dir=str(duck_project))
    store.sync("customer_spend")
    view = store.registry.view("customer_spend")
    served = set(_served_ids(redis.Redis.from_url(REDIS_URL), redis_prefix, "customer_spend"))
    samples = {seed: sample_online_keys(store.online, view, 10, seed) for seed in range(4)}
    assert all(s == sample_online_keys(store.online, view, 10, seed) for seed, s in samples.items())
    assert all(len(s) == 10 and {k for (k,) in s} <= served for s in samples.values())
    assert len({tuple(s) for s in samples.values()}) > 1
    everything = sample_online_keys(store.online, view, len(served) + 5, 0)
    assert sorted(k for (k,) in everything) == sorted(served)


def test_bad_options_are_clear_errors(duck_project: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([DBT_FEATURES, "verify", *args], cwd=duck_project,
                              capture_output=True, text=True, env=dict(os.environ), timeout=120)

    zero = cli("--sample", "0")
    assert zero.returncode == 2 and "--sample 0: sample at least 1 entity" in zero.stderr
    never = cli("--select", "merchant_risk")
    assert never.returncode == 1
    assert "'merchant_risk' has never been synced" in never.stderr
    assert "Traceback" not in never.stderr + zero.stderr


def test_values_are_compared_with_their_types() -> None:
    """Pure: exact doubles (NaN equals NaN), no int/float/bool confusion, UTC instants."""
    from datetime import date, datetime, timezone

    from dbt_features.serving.verify import _difference

    nan = float("nan")
    assert _difference(1.5, 1.5, "double") is None and _difference(nan, nan, "double") is None
    assert _difference(0.1 + 0.2, 0.3, "double") == "value"
    assert _difference(1.0, 1, "double") == "type"
    assert _difference(1, 1.0, "int64") == "type" and _difference(1, True, "int64") == "type"
    assert _difference(True, 1, "bool") == "type"
    assert _difference(None, None, "string") is None and _difference("a", None, "string") == "value"
    naive = datetime(2026, 1, 1, 12)
    assert _difference(naive, naive.replace(tzinfo=timezone.utc), "timestamp") is None
    assert _difference(date(2026, 1, 1), date(2026, 1, 2), "date") == "value"
