"""Faults of the online store, each on a redis-server of the test's own (never the shared one):
an eviction policy that can drop feature keys, and Redis losing its data under a running
feature server while the view's columns change."""

from __future__ import annotations

import contextlib

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import redis

from helpers import DBT_FEATURES, online_env, run_dbt
from dbt_features.errors import OnlineStoreError
from dbt_features.store import FeatureStore
from http_support import PrivateRedis, Server, call


@pytest.fixture
def private_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    monkeypatch.setenv("DBT_FEATURES_REDIS_URL", server.url)
    monkeypatch.setenv("DBT_FEATURES_REDIS_PREFIX", f"faults_{uuid.uuid4().hex[:8]}")
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait()


def test_sync_refuses_a_redis_that_can_evict_its_keys(duck_project: Path, private_redis: PrivateRedis,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    client = redis.Redis.from_url(private_redis.url)
    client.config_set("maxmemory", "20mb")
    client.config_set("maxmemory-policy", "allkeys-lru")
    store = FeatureStore(project_dir=str(duck_project))
    with pytest.raises(OnlineStoreError, match=r"evicts keys when its memory is full \(maxmemory "
                                               r"20,971,520 bytes, maxmemory-policy allkeys-lru\).*"
                                               "--allow-eviction"):
        store.sync()
    assert client.dbsize() == 0  # refused before writing anything
    cli = subprocess.run([DBT_FEATURES, "sync"], cwd=duck_project, capture_output=True, text=True,
                         env=dict(os.environ), timeout=120)
    assert cli.returncode == 1 and "maxmemory-policy noeviction" in cli.stderr
    assert "Traceback" not in cli.stderr
    results = store.sync(allow_eviction=True)
    assert all(r.warnings and r.warnings[0].startswith("WARNING: Redis at") for r in results)
    cli = subprocess.run([DBT_FEATURES, "sync", "--allow-eviction"], cwd=duck_project,
                         capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert cli.returncode == 0 and cli.stderr.count("WARNING: Redis at") == 1
    # Evict by filling the server: status then says keys were evicted.
    filler = "x" * 10_000
    for i in range(4_000):
        client.set(f"filler:{i}", filler)
    warnings = [w for s in FeatureStore(project_dir=str(duck_project)).online_status() for w in s.warnings]
    assert warnings and "has evicted" in warnings[0] and "run `dbt-features verify`" in warnings[0]
    client.config_set("maxmemory-policy", "volatile-lru")
    with pytest.raises(OnlineStoreError, match="maxmemory-policy volatile-lru"):
        store.sync()
    client.config_set("maxmemory-policy", "noeviction")
    # Full to the last few kilobytes: the sync takes its lock, then its values do not fit.
    small = 0
    with contextlib.suppress(redis.exceptions.OutOfMemoryError):
        while True:
            client.set(f"filler:small:{small}", "x" * 1000)
            small += 1
    client.delete(*(f"filler:small:{i}" for i in range(small - 3, small)))
    with pytest.raises(OnlineStoreError, match="OOM .* Redis is full"):
        store.sync(full_refresh=True)
    client.delete(*(f"filler:{i}" for i in range(4_000)), *(f"filler:small:{i}" for i in range(small)))
    store.sync(full_refresh=True)  # evicted values come back only with a full refresh
    assert FeatureStore(project_dir=str(duck_project)).verify().exit_code == 0


@pytest.mark.slow
def test_a_running_server_never_decodes_with_a_lost_generations_schema(
        recent_duckdb: Path, online_pg_schema: str, tmp_path: Path, private_redis: PrivateRedis,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis restarts empty while `serve` runs, the view's columns change, and a new sync
    starts the view again: the server must read the new generation with its own schema."""
    project = tmp_path / "p"
    shutil.copytree(recent_duckdb, project)
    env = online_env(project, online_pg_schema)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    sync = [DBT_FEATURES, "sync", "--select", "merchant_risk"]
    assert subprocess.run(sync, cwd=project, env=dict(os.environ), capture_output=True).returncode == 0
    refs = ["merchant_risk:merchant_txn_count_30d", "merchant_risk:merchant_category"]
    body = {"features": refs, "entities": {"merchant_id": [1, 2, 3]}}
    server = Server(project)
    try:
        status, before, _ = call(f"{server.url}/get-online-features", body)
        assert status == 200 and before["results"][1]["statuses"] == ["PRESENT"] * 3
        private_redis.proc.kill()  # no save: the data is lost
        private_redis.proc.wait()
        for dump in tmp_path.glob("*.rdb"):
            dump.unlink()
        private_redis.start()
        model = project / "models" / "features" / "merchant_risk.sql"
        text = model.read_text()
        # int64 -> double: the old codec would read the new values' bits as integers.
        old = "cast(rolling.n_txn_30d as bigint) as merchant_txn_count_30d"
        assert old in text
        model.write_text(text.replace(old, "cast(rolling.n_txn_30d as double precision) + 0.5 "
                                           "as merchant_txn_count_30d"))
        run_dbt(project, "run", "--select", "merchant_risk", env=env)
        synced = subprocess.run(sync, cwd=project, env=dict(os.environ), capture_output=True, text=True)
        assert synced.returncode == 0, synced.stderr
        status, after, _ = call(f"{server.url}/get-online-features", body)
        fresh = subprocess.run([DBT_FEATURES, "get", *refs, "--json", "--entity", "merchant_id=1",
                                "--entity", "merchant_id=2", "--entity", "merchant_id=3"],
                               cwd=project, env=dict(os.environ), capture_output=True, text=True)
    finally:
        server.stop()
    assert status == 200, after
    assert fresh.returncode == 0, fresh.stderr
    expected = json.loads(fresh.stdout)
    for j in range(2):
        assert after["results"][j + 1]["values"] == expected["results"][j]["values"]
        assert after["results"][j + 1]["statuses"] == ["PRESENT"] * 3
