"""Sync into the real Redis from real DuckDB and PostgreSQL builds of the sample project."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import dataclasses
from datetime import timedelta, timezone
from pathlib import Path

import duckdb
import pytest
import redis

from dbt_features.errors import OnlineStoreError, UsageError
from dbt_features.serving.codec import Codec, Schema
from dbt_features.serving.encoder import BlobEncoder
from dbt_features.serving.layout import Keys
from dbt_features.serving.lock import SyncLock
from dbt_features.serving.scripts import WRITE_IF_NEWER
from dbt_features.store import FeatureStore
from helpers import DBT_FEATURES, REDIS_URL
from stored import fields as stored_fields, stored


def _latest_in_duckdb(project: Path, view: str, key: str, ts: str, ttl_days: int) -> dict:
    """What the online store must hold, computed independently with DuckDB's arg_max."""
    con = duckdb.connect(str(project / "target" / "sample.duckdb"), read_only=True)
    try:
        rows = con.sql(
            f"select {key}, arg_max(columns(* exclude ({key})), {ts}) from main.{view} "
            f"where {ts} <= now()::timestamp and {ts} > now()::timestamp - interval {ttl_days} day "
            f"group by {key}"
        ).fetchall()
        names = [d[0] for d in con.sql(f"select * exclude ({key}) from main.{view} limit 0").description]
    finally:
        con.close()
    return {r[0]: dict(zip(names, r[1:])) for r in rows}


def test_full_sync_serves_the_latest_row_per_entity_within_ttl(duck_project: Path) -> None:
    store = FeatureStore(project_dir=str(duck_project))
    results = {r.view: r for r in store.sync()}
    assert {r.mode for r in results.values()} == {"full"}
    expected = _latest_in_duckdb(duck_project, "customer_spend", "customer_id", "feature_at", 30)
    assert results["customer_spend"].entities == len(expected) > 100
    ids = sorted(expected)[:50] + [10**9]
    response = store.get_online_features(["customer_spend:*"], [{"customer_id": i} for i in ids])
    for row, i in zip(response.rows(), ids):
        if i == 10**9:
            assert row["customer_spend:avg_amount_30d"] is None
            continue
        want = expected[i]
        assert row["customer_spend:avg_amount_30d"] == pytest.approx(want["avg_amount_30d"])
        assert row["customer_spend:txn_count_7d"] == want["txn_count_7d"]
    assert response.statuses[0][-1].value == "not_found"
    stamp = response.event_timestamps[0][0]
    assert stamp == expected[ids[0]]["feature_at"].replace(tzinfo=timezone.utc)

    status = {s.view: s for s in store.online_status()}
    assert status["customer_spend"].keys == len(expected)
    assert status["customer_spend"].up_to_date and status["customer_spend"].fingerprint
    assert status["merchant_risk"].watermark is not None


def test_buckets_expire_at_their_latest_event_time_plus_ttl(duck_project: Path,
                                                            redis_prefix: str) -> None:
    store = FeatureStore(project_dir=str(duck_project))
    store.sync("merchant_risk")
    client = redis.Redis.from_url(REDIS_URL)
    gen = client.hget(Keys(redis_prefix).meta("merchant_risk"), "gen").decode()
    assert client.get(Keys(redis_prefix).current("merchant_risk")).decode().startswith(gen + ".")
    place = stored(client, redis_prefix, "merchant_risk", 1)
    events = [place.codec.decode(blob)[0] for blob in client.hvals(place.key)]
    response = store.get_online_features(["merchant_risk:merchant_category"], [{"merchant_id": 1}])
    assert response.event_us[0][0] in events
    assert client.pexpiretime(place.key) == max(events) // 1000 + 2 * 86400 * 1000


def test_incremental_sync_places_new_rows_and_falls_back_to_a_full_refresh_when_it_cannot(
        duck_project: Path, tmp_path: Path, monkeypatch) -> None:
    project = tmp_path / "p"
    shutil.copytree(duck_project, project)
    db = project / "target" / "sample.duckdb"
    monkeypatch.setenv("DBT_FEATURES_SAMPLE_DUCKDB", str(db))
    store = FeatureStore(project_dir=str(project))
    store.sync()
    refs, rows = ["merchant_risk:merchant_category"], [{"merchant_id": 1}, {"merchant_id": 2}]
    before = store.get_online_features(refs, rows)
    latest_1, latest_2 = (t.replace(tzinfo=None) for t in before.event_timestamps[0])
    con = duckdb.connect(str(db))
    # merchant 2: a late row with an older event time than the one served but a newer created
    # time: it is new since the watermark, and loses to the newer row Redis holds.
    con.execute("insert into main.merchant_risk select merchant_id, feature_at - interval 1 millisecond, "
                "(select max(computed_at) from main.merchant_risk) + interval 1 hour, 1, 0.5, 'late' "
                "from main.merchant_risk where merchant_id = 2 and feature_at = ?", [latest_2])
    con.close()
    result = {r.view: r for r in store.sync()}["merchant_risk"]
    assert (result.mode, result.entities) == ("incremental", 1)
    assert store.get_online_features(refs, rows).values == before.values
    # merchant 1: its latest row corrected in place (same event and created time): rows the
    # last sync had seen changed, so the sync is a full refresh, and says why.
    con = duckdb.connect(str(db))
    con.execute("update main.merchant_risk set merchant_category = 'corrected' "
                "where merchant_id = 1 and feature_at = ?", [latest_1])
    con.close()
    result = {r.view: r for r in store.sync()}["merchant_risk"]
    assert result.mode == "full" and "updated, deleted or arrived late" in result.reason
    after = store.get_online_features(refs, rows)
    assert after.values[0] == ("corrected", before.values[0][1])
    assert {r.view: r.mode for r in store.sync()} == {"customer_spend": "incremental",
                                                       "merchant_risk": "incremental"}


def test_the_digest_covers_the_rows_a_sync_can_still_serve(duck_project: Path, tmp_path: Path,
                                                            monkeypatch, redis_prefix: str) -> None:
    """merchant_risk has a 2-day ttl over a longer history. A change to a row older than that
    window can never be served again, so the next sync stays incremental; the digest a sync
    records says where it starts. A state recorded without that floor (by a version that
    digested every row) is still compared exactly, and a clock behind the last sync's makes a
    full refresh."""
    from dbt_features.serving.digest import digest_query
    from dbt_features.serving.sync import SyncOptions, sync_view
    from dbt_features.serving.sync_plan import SyncState

    project = tmp_path / "p"
    shutil.copytree(duck_project, project)
    db = project / "target" / "sample.duckdb"
    monkeypatch.setenv("DBT_FEATURES_SAMPLE_DUCKDB", str(db))
    store = FeatureStore(project_dir=str(project))
    view = store.registry.view("merchant_risk")
    refs, rows = ["merchant_risk:merchant_category"], [{"merchant_id": m} for m in (1, 2, 3)]
    first = store.sync("merchant_risk")[0]
    client = redis.Redis.from_url(REDIS_URL)
    meta_key = Keys(redis_prefix).meta("merchant_risk")
    state = SyncState.from_meta({k.decode(): v.decode() for k, v in client.hgetall(meta_key).items()})
    assert state.floor_us == state.now_us - 2 * 86_400_000_000
    before = store.get_online_features(refs, rows)
    con = duckdb.connect(str(db))
    old = con.execute("select count(*) from main.merchant_risk where feature_at < "
                      "now()::timestamp - interval 3 day").fetchall()[0][0]
    con.execute("update main.merchant_risk set merchant_category = 'rewritten history' "
                "where feature_at < now()::timestamp - interval 3 day")
    con.close()
    assert old > 0
    second = store.sync("merchant_risk")[0]
    assert (second.mode, second.generation) == ("incremental", first.generation)
    assert store.get_online_features(refs, rows).values == before.values
    assert store.verify("merchant_risk", sample=1000).mismatched == 0

    # As an older version recorded it: every row with event time <= now, no floor.
    fields = {k.decode(): v.decode() for k, v in client.hgetall(meta_key).items()}
    boundary = SyncState.from_meta(fields).boundary
    no_ttl = dataclasses.replace(view, ttl_seconds=None)
    with store.warehouse() as warehouse:
        row = warehouse.arrow(digest_query(no_ttl, "duckdb", boundary.now, None)).to_pylist()[0]
    client.hset(meta_key, mapping={"settled_rows": row["rows"], "settled_digest": str(row["digest"])})
    client.hdel(meta_key, "digest_floor_us")
    assert store.sync("merchant_risk")[0].mode == "incremental"
    client.hset(meta_key, mapping={"settled_rows": row["rows"], "settled_digest": str(row["digest"])})
    client.hdel(meta_key, "digest_floor_us")
    con = duckdb.connect(str(db))
    con.execute("update main.merchant_risk set merchant_category = 'again' "
                "where feature_at < now()::timestamp - interval 3 day")
    con.close()
    third = store.sync("merchant_risk")[0]
    assert third.mode == "full" and "updated, deleted or arrived late" in third.reason

    with store.warehouse() as warehouse:
        behind = sync_view(store.online, view, warehouse, SyncOptions(),
                           now=boundary.now.replace(tzinfo=timezone.utc) - timedelta(hours=1))
    assert (behind.mode, behind.reason) == ("full", "the clock is behind the last sync's")


def test_conditional_write_keeps_the_newer_row(redis_prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    schema = Schema((("x", "int64"),), ("int64",), True)
    codec, encoder = Codec(schema), BlobEncoder(schema)
    import pyarrow as pa

    def blob(event: int, created: int, x: int) -> bytes:
        batch = pa.RecordBatch.from_pydict({
            "e": pa.array([event], pa.timestamp("us")), "c": pa.array([created], pa.timestamp("us")),
            "x": [x]})
        return encoder.encode(batch, "e", "c")[0][0].as_py()

    key = f"{redis_prefix}:v:1:7"
    script = client.register_script(WRITE_IF_NEWER)

    def write(event: int, created: int, x: int, expiry: int = 0) -> list[int]:
        return script(keys=[key], args=[16, b"3", blob(event, created, x), expiry])

    assert write(100, 5, 1) == [1, 1]
    assert write(99, 9, 2) == [0, 0]    # older event: skipped
    assert write(100, 4, 3) == [0, 0]   # same event, older created
    assert write(100, 5, 4) == [0, 1]   # same times: a correction
    assert write(101, 0, 5) == [0, 1]   # newer event
    assert codec.decode(client.hget(key, b"3"))[2] == [5]
    # The bucket's expiry only rises: set by the first write with one, kept by an earlier one.
    later = int(time.time() * 1000) + 3_600_000
    assert write(102, 0, 6, later) == [0, 1] and client.pexpiretime(key) == later
    assert write(103, 0, 7, later - 60_000) == [0, 1] and client.pexpiretime(key) == later
    assert write(104, 0, 8, later + 60_000) == [0, 1] and client.pexpiretime(key) == later + 60_000


def test_changed_definition_and_full_refresh_rebuild_atomically(duck_project: Path,
                                                                redis_prefix: str) -> None:
    store = FeatureStore(project_dir=str(duck_project))
    first = store.sync("customer_spend")[0]
    client = redis.Redis.from_url(REDIS_URL)
    meta = Keys(redis_prefix).meta("customer_spend")
    client.hset(meta, "signature", "from-an-older-definition")
    second = store.sync("customer_spend")[0]
    assert (second.mode, second.reason) == ("full", "definition changed since the last sync")
    third = store.sync("customer_spend", full_refresh=True)[0]
    assert third.generation == second.generation + 1 == first.generation + 2
    # Only the live generation's keys remain.
    pattern = Keys(redis_prefix).generation_pattern("customer_spend", first.generation)
    assert not list(client.scan_iter(match=pattern, count=10_000))
    assert stored_fields(client, redis_prefix, "customer_spend") == third.keys
    live = Keys(redis_prefix).generation_pattern("customer_spend", third.generation)
    assert len(list(client.scan_iter(match=f"{redis_prefix}:customer_spend:*", count=10_000))) == (
        len(list(client.scan_iter(match=live, count=10_000))) + 2  # + meta, current generation
    )


def test_second_sync_of_a_view_fails_clearly_while_one_runs(duck_project: Path,
                                                            redis_prefix: str) -> None:
    store = FeatureStore(project_dir=str(duck_project))
    client = redis.Redis.from_url(REDIS_URL)
    with SyncLock(client, Keys(redis_prefix).lock("customer_spend"), "customer_spend"):
        with pytest.raises(OnlineStoreError, match=r"another sync of feature view 'customer_spend' "
                                                    rf"is running \(pid {os.getpid()}"):
            store.sync("customer_spend")
        status = store.online_status("customer_spend")[0]
        assert status.running and str(os.getpid()) in status.running
    assert store.sync("customer_spend")[0].mode == "full"


def test_select_from_sql_and_json_output(duck_project: Path) -> None:
    result = subprocess.run([DBT_FEATURES, "sync", "--select", "merchant_risk", "--from-sql",
                             "--json"], cwd=duck_project, capture_output=True, text=True,
                            env=dict(os.environ), timeout=120)
    assert result.returncode == 0, result.stderr
    views = json.loads(result.stdout)["views"]
    assert [v["view"] for v in views] == ["merchant_risk"] and views[0]["entities"] == 40
    store = FeatureStore(project_dir=str(duck_project))
    from_sql = store.get_online_features(["merchant_risk:*"], [{"merchant_id": i} for i in range(1, 41)])
    store.sync("merchant_risk", full_refresh=True)
    from_table = store.get_online_features(["merchant_risk:*"], [{"merchant_id": i} for i in range(1, 41)])
    assert from_sql.values == from_table.values
    assert from_sql.event_timestamps == from_table.event_timestamps


def test_selecting_no_online_view_is_a_usage_error(duck_project: Path) -> None:
    store = FeatureStore(project_dir=str(duck_project))
    with pytest.raises(UsageError, match="--select 'labels' matches no feature view .*the feature views are: customer_spend, merchant_risk"):
        store.sync("labels")


@pytest.mark.postgres
def test_sync_and_get_on_postgres(pg_project: Path, duck_project: Path) -> None:
    store = FeatureStore(project_dir=str(pg_project), target="postgres")
    results = {r.view: r for r in store.sync()}
    assert results["customer_spend"].entities > 100 and results["merchant_risk"].entities == 40
    assert store.sync()[0].mode == "incremental"
    rows = [{"customer_id": i, "merchant_id": i} for i in range(1, 30)]
    refs = ["customer_spend:*", "merchant_risk:*"]
    got = store.get_online_features(refs, rows)
    # The same deterministic data built on DuckDB gives the same values.
    expected = _latest_in_duckdb(duck_project, "customer_spend", "customer_id", "feature_at", 30)
    for i, row in zip(range(1, 30), got.rows()):
        if i in expected:
            assert row["customer_spend:avg_amount_30d"] == pytest.approx(expected[i]["avg_amount_30d"])
            assert row["customer_spend:txn_count_7d"] == expected[i]["txn_count_7d"]
    assert all(s.value == "present" for s in got.statuses[-1])


def test_big_tables_of_in_process_engines_are_read_in_hash_shards(duck_project: Path,
                                                                  monkeypatch) -> None:
    """DuckDB runs in our process: a view bigger than SHARD_ROWS is read in several passes
    (bounded memory); the result is the same as one pass."""
    import dbt_features.serving.sync_plan

    store = FeatureStore(project_dir=str(duck_project))
    store.sync("customer_spend")
    rows = [{"customer_id": i} for i in range(1, 501)]
    one_pass = store.get_online_features(["customer_spend:*"], rows)
    monkeypatch.setattr(dbt_features.serving.sync_plan, "SHARD_ROWS", 1000)
    result = store.sync("customer_spend", full_refresh=True)[0]
    sharded = store.get_online_features(["customer_spend:*"], rows)
    assert result.entities == sum(s.value == "present" for s in one_pass.statuses[0])
    assert sharded.values == one_pass.values and sharded.event_us == one_pass.event_us


def test_a_shard_out_of_memory_is_read_again_as_its_two_halves() -> None:
    """A pass the engine cannot hold in its memory limit is split into the two shards that
    make it up (``query._shard_condition``), and those again, until each fits."""
    import pyarrow as pa

    from dbt_features.errors import WarehouseError
    from dbt_features.serving import warehouse_read

    class Read:
        shards, shardable, observed = 2, True, None

        def sql(self, shard: tuple[int, int]) -> tuple[int, int]:
            return shard

    class Warehouse:
        def batches(self, shard: tuple[int, int], batch_size: int):
            k, n = shard
            if n < 8:
                raise WarehouseError("DuckDB query failed: Out of Memory Error: could not allocate")
            yield pa.record_batch({"k": [k], "n": [n]})

    batches = warehouse_read._batches(Warehouse(), Read(), 10)  # type: ignore[arg-type]
    read = [b.to_pylist()[0] for b in batches]
    assert read == [{"k": k, "n": 8} for k in range(8)]
