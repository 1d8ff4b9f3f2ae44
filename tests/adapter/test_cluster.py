"""The online store on a Redis Cluster of the test's own (three masters, one replica each, on
loopback): sync, reads, status and verify work there as on a single Redis and serve the same
values; keys spread over every master, a view's meta, gen and lock share one slot."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator

import duckdb
import pytest
import redis

from dbt_features.errors import OnlineStoreError
from dbt_features.serving.layout import Keys
from dbt_features.serving.served_log import ServedLogOptions
from dbt_features.store import FeatureStore
from helpers import DBT_FEATURES, REDIS_URL
from http_support import Server, call
from redis_cluster import RedisCluster
from served_support import REQUESTS, check_log_equals

VIEWS = ("customer_spend", "merchant_risk")


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    with RedisCluster() as running:
        yield running


@pytest.fixture
def on_cluster(duck_project: Path, cluster: RedisCluster, redis_prefix: str,
               monkeypatch: pytest.MonkeyPatch) -> Path:
    """The recent DuckDB project, its online store on the cluster (under this test's prefix)."""
    monkeypatch.setenv("DBT_FEATURES_REDIS_URL", cluster.url)
    return duck_project


def _cli(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([DBT_FEATURES, *args], cwd=project, capture_output=True, text=True,
                          timeout=300)


def test_cluster_serves_what_a_single_redis_serves(on_cluster: Path, cluster: RedisCluster,
                                                   redis_prefix: str, monkeypatch) -> None:
    on = FeatureStore(project_dir=str(on_cluster))
    results = {r.view: r for r in on.sync()}
    assert {r.mode for r in results.values()} == {"full"}
    monkeypatch.setenv("DBT_FEATURES_REDIS_URL", REDIS_URL)
    single = FeatureStore(project_dir=str(on_cluster))
    single.sync()
    rows = [{"customer_id": i, "merchant_id": i % 50} for i in range(0, 400)]
    features = ["customer_spend:*", "merchant_risk:*"]
    want = single.get_online_features(features, rows)
    got = on.get_online_features(features, rows)
    assert got.to_dict() == want.to_dict()
    assert sum(s.value == "present" for s in got.statuses[0]) > 100

    client = cluster.client()
    keys = Keys(redis_prefix, tagged=True)
    for view in VIEWS:  # the publish step's keys share one slot
        slots = {client.keyslot(k) for k in (keys.meta(view), keys.current(view), keys.lock(view))}
        assert len(slots) == 1
    per_master = {port: redis.Redis(port=port).dbsize() for port in cluster.masters()}
    assert all(n > 0 for n in per_master.values()), per_master

    for args in (["status", "--json"], ["verify", "--sample", "300"], ["sync"]):
        done = _cli(on_cluster, *args)
        assert done.returncode == 0, done.stderr
    status = json.loads(_cli(on_cluster, "status", "--json").stdout)
    assert all(v["synced"] for v in status["views"]), status

    server = Server(on_cluster)
    try:  # the HTTP server reads the cluster too
        ids = [r["customer_id"] for r in rows[:100]]
        code, data, _ = call(f"{server.url}/get-online-features", {
            "features": ["customer_spend:avg_amount_30d"], "entities": {"customer_id": ids}})
        assert code == 200, data
        expected = single.get_online_features(["customer_spend:avg_amount_30d"],
                                              [{"customer_id": i} for i in ids])
        assert data["results"][1]["values"] == list(expected.values[0])
        code, health, _ = call(f"{server.url}/health")
        assert code == 200, health
    finally:
        server.stop()


FEATURES = ["customer_spend:avg_amount_30d", "customer_spend:txn_count_7d"]


def _snapshot(db: Path, bump: float) -> None:
    """Make the view's table the base snapshot with ``bump`` added to every amount."""
    con = duckdb.connect(str(db))
    try:
        con.execute("create or replace table main.customer_spend as select customer_id, "
                    f"feature_at, avg_amount_30d + {bump} as avg_amount_30d, * exclude "
                    "(customer_id, feature_at, avg_amount_30d) from main.snapshot_base")
    finally:
        con.close()


def _unlike(mixed: list, old: tuple, new: tuple) -> list:
    """Where the first mixed reads differ from each snapshot: (column, row, got, wanted)."""
    def unlike(values: tuple, snapshot: tuple) -> list:
        return [(c, i, got, want) for c in range(len(snapshot))
                for i, (got, want) in enumerate(zip(values[c], snapshot[c])) if got != want][:4]
    return [(unlike(m, old), unlike(m, new)) for m in mixed[:3]]


def _wait_for_writes(client: redis.RedisCluster, keys: Keys, sync: subprocess.Popen) -> None:
    """Until the sync has written some buckets of its new generation."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert sync.poll() is None, sync.stderr.read() if sync.stderr else ""
        pending = client.hget(keys.meta("customer_spend"), "pending")
        pattern = keys.generation_pattern("customer_spend", pending.decode()) if pending else None
        if pattern and next(client.scan_iter(match=pattern, count=50_000), None):
            return
        time.sleep(0.005)
    raise AssertionError("the sync wrote nothing within 60 s")


@pytest.mark.slow
def test_failover_during_reads_and_syncs_never_serves_a_mix(duck_project: Path, tmp_path: Path,
                                                           redis_prefix: str, monkeypatch) -> None:
    """Full refreshes published while a reader reads, then the master of the view's slot killed
    during a sync: every read is the whole of one snapshot; reads fail only until the replica
    takes over; the interrupted sync fails loudly; the next one recovers and verify is clean."""
    project = tmp_path / "p"
    shutil.copytree(duck_project, project)
    db = project / "target" / "sample.duckdb"
    monkeypatch.setenv("DBT_FEATURES_SAMPLE_DUCKDB", str(db))
    con = duckdb.connect(str(db))  # many more entities, so that a sync takes a while
    con.execute("create table main.snapshot_base as select * from main.customer_spend union all "
                "select 10000000 + i, now()::timestamp - interval 1 hour, 1.0, 1.0, 1 "
                "from range(300000) t(i)")
    con.close()
    with RedisCluster() as cluster:
        monkeypatch.setenv("DBT_FEATURES_REDIS_URL", cluster.url)
        _snapshot(db, 0)
        store = FeatureStore(project_dir=str(project))
        store.sync("customer_spend")
        rows = [{"customer_id": i} for i in range(1, 201)]
        old = store.get_online_features(FEATURES, rows).values
        new = (tuple(None if v is None else v + 1000 for v in old[0]), old[1])
        assert any(v is not None for v in old[0])

        seen = {"old": 0, "new": 0, "failed": 0, "after_failover": 0}
        mixed: list[object] = []
        errors: list[str] = []
        stop, failed_over = threading.Event(), threading.Event()

        def read() -> None:
            reader = FeatureStore(project_dir=str(project))
            while not stop.is_set():
                try:
                    values = reader.get_online_features(FEATURES, rows).values
                except OnlineStoreError as exc:
                    seen["failed"] += 1
                    errors.append(str(exc))
                    time.sleep(0.01)
                    continue
                seen["after_failover"] += failed_over.is_set()
                if values in (old, new):
                    seen["old" if values == old else "new"] += 1
                else:
                    mixed.append(values)

        thread = threading.Thread(target=read)
        thread.start()
        try:
            for bump in (1000, 0, 1000):
                _snapshot(db, bump)
                store.sync("customer_spend", full_refresh=True)
            assert not mixed, f"{len(mixed)} reads mixed two snapshots: {_unlike(mixed, old, new)}"
            assert seen["old"] and seen["new"] and not seen["failed"], (seen, errors[:3])

            killed = cluster.master_of(Keys(redis_prefix, tagged=True).meta("customer_spend"))
            _snapshot(db, 0)
            sync = subprocess.Popen([DBT_FEATURES, "sync", "--select", "customer_spend",
                                     "--full-refresh", "--batch-size", "500"], cwd=project,
                                    env=dict(os.environ), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            _wait_for_writes(cluster.client(), Keys(redis_prefix, tagged=True), sync)
            cluster.kill(killed)
            out, err = sync.communicate(timeout=120)
            if sync.returncode:  # failed loudly: one line, no traceback
                assert sync.returncode == 1 and "Traceback" not in err and err.strip(), err
            cluster.wait_failover(killed)
            failed_over.set()
            done = _cli(project, "sync", "--select", "customer_spend", "--full-refresh")
            assert done.returncode == 0, done.stderr
            deadline = time.monotonic() + 30
            while seen["after_failover"] < 20 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop.set()
            thread.join()
        assert not mixed, f"{len(mixed)} reads mixed two snapshots: {_unlike(mixed, old, new)}"
        assert seen["after_failover"] >= 20, (seen, errors[-3:], thread.is_alive())
        assert FeatureStore(project_dir=str(project)).get_online_features(FEATURES, rows).values == old
        done = _cli(project, "verify", "--select", "customer_spend", "--sample", "500")
        assert done.returncode == 0, done.stdout + done.stderr


def test_cluster_settings_that_cannot_work_are_one_message(on_cluster: Path, cluster: RedisCluster,
                                                           monkeypatch) -> None:
    nodes = cluster.url.rpartition("/")[0]
    cases = [
        (REDIS_URL.replace("6379", "6379,127.0.0.1:6379"), 2, "they are not a Redis Cluster"),
        (nodes + "/3", 2, "a Redis Cluster has only database 0"),
    ]
    for url, code, message in cases:
        monkeypatch.setenv("DBT_FEATURES_REDIS_URL", url)
        done = _cli(on_cluster, "status")
        assert (done.returncode, "Traceback" in done.stderr) == (code, False), done.stderr
        assert message in done.stderr
    monkeypatch.setenv("DBT_FEATURES_REDIS_URL", cluster.url)
    done = _cli(on_cluster, "get", "customer_spend", "--entity", "customer_id=1")
    assert done.returncode == 1 and "never been synced" in done.stderr, done.stderr

    master = redis.Redis(port=cluster.masters()[-1])
    master.config_set("maxmemory", "1gb")
    master.config_set("maxmemory-policy", "allkeys-lru")
    try:  # one master that may evict is enough to refuse
        done = _cli(on_cluster, "sync")
        assert done.returncode == 1 and "evicts keys when its memory is full" in done.stderr
    finally:
        master.config_set("maxmemory-policy", "noeviction")
        master.config_set("maxmemory", "0")


def test_the_served_log_on_a_cluster(on_cluster: Path, cluster: RedisCluster,
                                     redis_prefix: str) -> None:
    """Reads spread over every master are logged by the writer thread (the stream lives on one
    master) and export as served; a full buffer drops entries and counts them."""
    FeatureStore(project_dir=str(on_cluster)).sync()
    store = FeatureStore(project_dir=str(on_cluster), served_log=True)
    responses = [store.get_online_features(f, rows) for f, rows in REQUESTS * 2]
    wide = [{"customer_id": i} for i in range(200)]  # values on every master
    responses.append(store.get_online_features(["customer_spend:*"], wide))
    log = store.online.served_log
    assert log.flush()
    assert (log.counts().written, log.counts().dropped) == (len(responses), 0)
    check_log_equals(store.read_served(), responses)
    store.online.close()

    small = FeatureStore(project_dir=str(on_cluster), served_log=ServedLogOptions(buffer=1))
    for _ in range(300):
        small.get_online_features(["customer_spend:txn_count_7d"], [{"customer_id": 1}])
    log = small.online.served_log
    assert log.flush()
    counts = log.counts()
    assert counts.dropped_buffer_full > 0 and counts.dropped_redis == 0
    assert counts.written + counts.dropped == 300
    stream = Keys(redis_prefix, tagged=True).served_log()
    assert cluster.client().xlen(stream) == len(responses) + counts.written
    small.online.close()
