"""Two targets of one project share a Redis but never its keys: the default key prefix is
``dbt_features:<project>:<target>``, so a full refresh on one target leaves what the other
serves untouched. Runs on a redis-server of the test's own (the shared one is never used)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
import redis

from helpers import DBT_FEATURES, online_env
from http_support import PrivateRedis

PROJECT = "dbt_features_sample"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    yield server
    server.stop()


def _cli(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([DBT_FEATURES, *args], cwd=project, capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    return result


def _snapshot(client: redis.Redis, prefix: str) -> dict[bytes, bytes]:
    """Every key under ``prefix`` with its serialized value."""
    return {key: client.dump(key) for key in client.scan_iter(match=f"{prefix}:*", count=1000)}


def test_targets_dev_and_postgres_do_not_touch_each_others_keys(
        recent_duckdb: Path, recent_postgres: Path, online_pg_schema: str,
        own_redis: PrivateRedis) -> None:
    base = {k: v for k, v in os.environ.items() if k != "DBT_FEATURES_REDIS_PREFIX"}
    base["DBT_FEATURES_REDIS_URL"] = own_redis.url
    dev_env = {**base, **online_env(recent_duckdb, online_pg_schema)}
    pg_env = {**base, **online_env(recent_postgres, online_pg_schema)}
    client = redis.Redis.from_url(own_redis.url)

    _cli(recent_duckdb, dev_env, "sync")
    dev = _snapshot(client, f"dbt_features:{PROJECT}:dev")
    assert dev, "the dev target wrote nothing under dbt_features:<project>:dev"

    _cli(recent_postgres, pg_env, "sync", "--target", "postgres")
    _cli(recent_postgres, pg_env, "sync", "--target", "postgres", "--full-refresh")
    assert _snapshot(client, f"dbt_features:{PROJECT}:postgres")
    assert _snapshot(client, f"dbt_features:{PROJECT}:dev") == dev
    assert all(key.startswith(f"dbt_features:{PROJECT}:".encode())
               for key in client.scan_iter(count=1000))

    # Each target still sees its own sync, and dev still serves.
    status = {t: json.loads(_cli(p, e, "status", "--json", *a).stdout)
              for t, p, e, a in (("dev", recent_duckdb, dev_env, ()),
                                 ("postgres", recent_postgres, pg_env, ("--target", "postgres")))}
    assert all(v["synced"] for s in status.values() for v in s["views"])
    result = _cli(recent_duckdb, dev_env, "get", "customer_spend:txn_count_7d",
                  "--entity", "customer_id=1", "--json")
    assert json.loads(result.stdout)["results"][0]["statuses"] == ["present"]
    client.close()
