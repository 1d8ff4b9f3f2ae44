"""A full refresh killed midway (SIGKILL) while a reader keeps reading: every read returns the
complete old snapshot or the complete new one, the old one keeps serving after the kill, and
the next sync recovers (taking over the dead sync's lock and deleting its keys)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import duckdb
import pytest
import redis

from dbt_features.serving.layout import Keys
from dbt_features.store import FeatureStore
from helpers import DBT_FEATURES, REDIS_URL

FEATURES = ["customer_spend:avg_amount_30d", "customer_spend:txn_count_7d"]


@pytest.mark.slow
def test_killed_full_refresh_never_shows_a_mix(duck_project: Path, tmp_path: Path,
                                               redis_prefix: str, monkeypatch) -> None:
    project = tmp_path / "p"
    shutil.copytree(duck_project, project)
    db = project / "target" / "sample.duckdb"
    monkeypatch.setenv("DBT_FEATURES_SAMPLE_DUCKDB", str(db))
    store = FeatureStore(project_dir=str(project))
    old_gen = store.sync("customer_spend")[0].generation
    rows = [{"customer_id": i} for i in range(1, 201)]
    old = store.get_online_features(FEATURES, rows).values
    new = (tuple(None if v is None else v + 1000 for v in old[0]), old[1])

    con = duckdb.connect(str(db))  # the new snapshot: every value changed, and many more rows
    con.execute("update main.customer_spend set avg_amount_30d = avg_amount_30d + 1000")
    con.execute("insert into main.customer_spend select 10000000 + i, now()::timestamp - "
                "interval 1 hour, 1.0, 1.0, 1 from range(300000) t(i)")
    con.close()

    seen: dict[str, int] = {"old": 0, "new": 0}
    mixed: list[object] = []
    stop = threading.Event()

    def read() -> None:
        reader = FeatureStore(project_dir=str(project))
        while not stop.is_set():
            values = reader.get_online_features(FEATURES, rows).values
            if values == old:
                seen["old"] += 1
            elif values == new:
                seen["new"] += 1
            else:
                mixed.append(values)

    client = redis.Redis.from_url(REDIS_URL)
    meta = Keys(redis_prefix).meta("customer_spend")
    command = [DBT_FEATURES, "sync", "--select", "customer_spend", "--full-refresh",
               "--batch-size", "500"]
    reader = threading.Thread(target=read)
    reader.start()
    try:
        sync = subprocess.Popen(command, cwd=project, env=dict(os.environ),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while client.hget(meta, "pending") is None:
            assert sync.poll() is None, sync.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.005)
        pending = client.hget(meta, "pending").decode()
        pattern = Keys(redis_prefix).generation_pattern("customer_spend", pending)
        while not next(client.scan_iter(match=pattern, count=50_000), None):
            time.sleep(0.005)
        time.sleep(0.05)
        os.kill(sync.pid, signal.SIGKILL)
        sync.wait()
        # Killed midway: the new generation is partly written and not published.
        assert client.hget(meta, "gen").decode() == str(old_gen)
        assert client.hget(meta, "pending").decode() == pending
        assert next(client.scan_iter(match=pattern, count=50_000), None) is not None
        time.sleep(0.3)
        assert seen["new"] == 0 and seen["old"] > 0

        # The next run takes over the dead sync's lock, drops its keys and publishes.
        done = subprocess.run(command, cwd=project, env=dict(os.environ), capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        time.sleep(0.2)
    finally:
        stop.set()
        reader.join()
    assert not mixed, f"a read mixed snapshots: {mixed[:1]}"
    assert seen["old"] > 0 and seen["new"] > 0
    assert not next(client.scan_iter(match=pattern, count=50_000), None)
    assert client.hget(meta, "pending") is None
    assert int(client.hget(meta, "keys")) >= 300000
