"""A store written in the previous key layout (format 2: one string key per entity, a null
byte per feature) is never misread: reads refuse it with a message saying to sync, `status`
warns, and the next `sync` is a full refresh that says why and deletes the old keys."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import time
from pathlib import Path

import pytest
import redis

from dbt_features.errors import OnlineStoreError
from dbt_features.serving.layout import Keys
from dbt_features.store import FeatureStore
from helpers import DBT_FEATURES, REDIS_URL

VIEW = "merchant_risk"


def _write_old_layout(client: redis.Redis, prefix: str) -> str:
    """The meta hash, generation key and one entity key as format 2 wrote them; returns the
    entity key."""
    keys = Keys(prefix)
    schema = {"v": 2, "features": [["merchant_txn_count_30d", "int64"]], "keys": ["int64"],
              "created": False}
    now_us = int(time.time() * 1_000_000)
    client.hset(keys.meta(VIEW), mapping={
        "gen": "5", "gen_id": "5.abc123", "schema": json.dumps(schema, separators=(",", ":")),
        "signature": "0123456789abcdef", "keys": 1, "last_mode": "full", "gen_seq": 5,
        "boundary_now_us": now_us, "watermark_us": now_us, "settled_rows": 1, "settled_digest": "1"})
    client.set(keys.current(VIEW), "5.abc123")
    entity = f"{keys.generation(VIEW, 5)}1"
    client.set(entity, struct.pack(">qqBq", now_us, -(2**63), 0, 42))
    return entity


def test_an_old_layout_is_refused_by_reads_and_rewritten_by_sync(duck_project: Path,
                                                                  redis_prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    old_key = _write_old_layout(client, redis_prefix)
    store = FeatureStore(project_dir=str(duck_project))
    refs = ["merchant_risk:merchant_txn_count_30d"]
    with pytest.raises(OnlineStoreError, match=r"feature view 'merchant_risk' was synced .* by an "
                                               r"older dbt-features.*format 2, now 3.*"
                                               r"`dbt-features sync --select merchant_risk`"):
        store.get_online_features(refs, [{"merchant_id": 1}])
    cli = subprocess.run([DBT_FEATURES, "get", *refs, "--entity", "merchant_id=1"],
                         cwd=duck_project, capture_output=True, text=True, env=dict(os.environ),
                         timeout=120)
    assert cli.returncode == 1 and "older dbt-features" in cli.stderr
    assert "Traceback" not in cli.stderr
    (status,) = store.online_status(VIEW)
    assert any("older dbt-features in another key layout (format 2" in w for w in status.warnings)

    result = store.sync(VIEW)[0]
    assert result.mode == "full"
    assert result.reason.startswith("the online store holds this view in an older layout (format 2")
    assert not client.exists(old_key)
    assert not list(client.scan_iter(match=Keys(redis_prefix).generation_pattern(VIEW, 5)))
    fresh = FeatureStore(project_dir=str(duck_project))
    got = fresh.get_online_features(refs, [{"merchant_id": 1}])
    assert got.statuses[0][0].value == "present" and got.values[0][0] != 42
    (status,) = fresh.online_status(VIEW)
    assert not status.warnings
