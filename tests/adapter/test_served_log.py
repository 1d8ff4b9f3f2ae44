"""The served-value log: what reads served, logged to a Redis stream and exported to Parquet,
equals what the responses said, value by value (Python API and the real HTTP server)."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections import Counter
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbt_features.errors import UsageError
from dbt_features.serving import served_export
from dbt_features.serving.online import OnlineStore
from dbt_features.serving.served_export import (
    ExportTally, ExportedRanges, delete_entries, export_served, write_chunk)
from dbt_features.serving.served_decode import Decoder, entries
from dbt_features.serving.served_log import ServedLogOptions
from dbt_features.serving.served_stats import trimmed, trimmed_metrics
from dbt_features.store import FeatureStore
from helpers import DBT_FEATURES, REDIS_URL
from http_support import Server, call
from served_support import REQUESTS, check_log_equals
from stored import stored

@pytest.fixture
def logged(duck_project: Path, redis_prefix: str) -> Iterator[FeatureStore]:
    """The recent sample synced, one merchant's value made older than its ttl, and a store
    whose reads are logged."""
    FeatureStore(project_dir=str(duck_project)).sync()
    client = redis.Redis.from_url(REDIS_URL)
    place = stored(client, redis_prefix, "merchant_risk", 3)
    blob = bytearray(place.get(client))
    old = int.from_bytes(blob[:8], "big", signed=True) - 3 * 86400 * 1_000_000
    blob[:8] = old.to_bytes(8, "big", signed=True)
    place.put(client, bytes(blob))
    client.close()
    store = FeatureStore(project_dir=str(duck_project), served_log=True)
    yield store
    store.online.close()


def test_python_reads_are_logged_and_exported_as_served(logged: FeatureStore, redis_prefix: str,
                                                         tmp_path: Path) -> None:
    responses = [logged.get_online_features(f, rows) for f, rows in REQUESTS * 2]
    statuses = {s.value for r in responses for column in r.statuses for s in column}
    assert statuses == {"present", "not_found", "expired"}
    assert logged.online.served_log.flush()
    in_memory = logged.read_served()
    check_log_equals(in_memory, responses)
    assert set(in_memory) == {"customer_spend", "merchant_risk"}
    spend = in_memory["customer_spend"]
    assert spend.schema.names[:9] == [
        "request_time", "request_id", "customer_id", "generation", "fingerprint", "status",
        "event_timestamp", "served_features", "avg_amount_30d"]
    assert spend.schema.field("request_time").type == pa.timestamp("us", tz="UTC")
    assert spend.schema.field("customer_id").type == pa.int64()
    assert spend.schema.field("txn_count_7d").type == pa.int64()
    assert in_memory["merchant_risk"].schema.field("merchant_category").type == pa.string()
    fingerprint = logged.registry.view("customer_spend").fingerprint
    assert set(spend.column("fingerprint").to_pylist()) == {fingerprint}

    result = logged.export_served(tmp_path / "log")
    assert result.entries == len(responses) and result.already_exported == 0
    exported = {view: pq.read_table(tmp_path / "log" / view) for view in result.rows}
    assert {v: t.num_rows for v, t in exported.items()} == result.rows
    assert all(exported[v].equals(in_memory[v]) for v in exported)
    client = redis.Redis.from_url(REDIS_URL)
    assert client.xlen(f"{redis_prefix}:@served_log") == 0
    assert logged.read_served() == {}

    # The next export adds files, never rewrites the first ones.
    more = [logged.get_online_features(*REQUESTS[0])]
    assert logged.online.served_log.flush()
    again = logged.export_served(tmp_path / "log")
    assert again.entries == 1 and set(again.files).isdisjoint(result.files)
    check_log_equals({view: pq.read_table(tmp_path / "log" / view) for view in result.rows},
                      responses + more)


def test_an_export_stopped_before_deleting_writes_nothing_twice(logged: FeatureStore,
                                                                 tmp_path: Path) -> None:
    responses = [logged.get_online_features(f, rows) for f, rows in REQUESTS * 3]
    assert logged.online.served_log.flush()
    online, output = logged.online, tmp_path / "log"
    # The first export's steps, stopped after the files were renamed into place.
    chunk = entries(online, "-", "+", 5)
    done = ExportTally()
    first = write_chunk(Decoder(online), ExportedRanges(output), output, chunk, done)
    assert first and done.entries == 5
    result = logged.export_served(output)
    assert result.already_exported == 5 and result.entries == len(responses) - 5
    tables = {view: pq.read_table(output / view) for view in ("customer_spend", "merchant_risk")}
    check_log_equals(tables, responses)
    assert not list(output.glob("*/.*.tmp"))


def test_sampling_and_the_length_bound(duck_project: Path, redis_prefix: str,
                                       tmp_path: Path) -> None:
    FeatureStore(project_dir=str(duck_project)).sync()
    sampled = FeatureStore(project_dir=str(duck_project),
                           served_log=ServedLogOptions(sample_rate=0.25))
    for _ in range(800):
        sampled.get_online_features(["customer_spend:txn_count_7d"], [{"customer_id": 1}])
    assert sampled.online.served_log.flush()
    logged = sampled.online.served_log.counts().written
    assert 120 <= logged <= 280  # binomial(800, 0.25): mean 200, sd 12
    sampled.online.close()
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(f"{redis_prefix}:@served_log")
    bounded = FeatureStore(project_dir=str(duck_project),
                           served_log=ServedLogOptions(max_entries=50))
    for _ in range(1000):
        bounded.get_online_features(["customer_spend:txn_count_7d"], [{"customer_id": 1}])
    assert bounded.online.served_log.flush()
    assert bounded.online.served_log.counts().written == 1000
    kept = client.xlen(f"{redis_prefix}:@served_log")
    assert 50 <= kept <= 250  # MAXLEN ~: whole nodes
    # What the bound dropped is counted, and what an export deletes is not counted with it.
    assert trimmed(bounded.online) == 1000 - kept
    assert f"dbt_features_served_log_trimmed_total {1000 - kept}\n" in trimmed_metrics(
        bounded.online)
    exported = bounded.export_served(tmp_path / "bounded")
    assert (exported.entries, exported.trimmed) == (kept, 1000 - kept)
    assert f"dropped {1000 - kept:,} entries before an export read them" in exported.summary()
    assert trimmed(bounded.online) == 1000 - kept
    bounded.online.close()


def test_options_are_checked() -> None:
    with pytest.raises(UsageError, match="sample_rate 1.5 is not a share"):
        ServedLogOptions(sample_rate=1.5)
    with pytest.raises(UsageError, match="max_entries 0 must be a positive"):
        ServedLogOptions(max_entries=0)


# -- the HTTP server ----------------------------------------------------------------------------


def test_the_server_logs_what_it_answered(duck_project: Path, redis_prefix: str,
                                          tmp_path: Path) -> None:
    store = FeatureStore(project_dir=str(duck_project))
    store.sync()
    server = Server(duck_project, "--log-served")
    answers = []
    try:
        for features, rows in REQUESTS:
            entities: dict[str, list[Any]] = {}
            for row in rows:
                for key, value in row.items():
                    entities.setdefault(key, []).append(value)
            status, data, _ = call(f"{server.url}/get-online-features",
                                   {"features": features, "entities": entities})
            assert status == 200, data
            answers.append((features, rows, data))
        deadline = 50
        while deadline and "dbt_features_served_log_written_total 3" not in call(
                f"{server.url}/metrics")[1]:
            deadline -= 1
            time.sleep(0.1)
        assert deadline, call(f"{server.url}/metrics")[1]
        assert f"logging 100% of requests to {redis_prefix}:@served_log" in server.log.read_text()
    finally:
        server.stop()
    out = subprocess.run([DBT_FEATURES, "served", "export", "--output", str(tmp_path / "log"),
                          "--json"], cwd=duck_project, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["entries"] == 3
    tables = {view: pq.read_table(tmp_path / "log" / view) for view in result["rows"]}
    requests: dict[str, list[dict[str, Any]]] = {}
    for view, table in tables.items():
        for row in table.to_pylist():
            requests.setdefault(row["request_id"], []).append(row | {"view": view})
    logged = sorted(requests.values(), key=lambda rows: rows[0]["request_time"])
    assert len(logged) == len(answers)
    for rows, (features, entity_rows, data) in zip(logged, answers):
        columns = dict(zip(data["metadata"]["feature_names"], data["results"]))
        for ref in features:
            view, feature = ref.split(":")
            mine = [r for r in rows if r["view"] == view]
            assert len(mine) == len(entity_rows)
            names = [feature] if feature != "*" else mine[0]["served_features"]
            for name in names:
                assert [r[name] for r in mine] == columns[name]["values"], name
                assert [FEAST_STATUS[r["status"]] for r in mine] == columns[name]["statuses"]
                assert [EPOCH if r["event_timestamp"] is None else _feast_time(
                    r["event_timestamp"]) for r in mine] == columns[name]["event_timestamps"]


FEAST_STATUS = {"present": "PRESENT", "not_found": "NOT_FOUND", "expired": "OUTSIDE_MAX_AGE"}
EPOCH = "1970-01-01T00:00:00Z"


def _feast_time(moment: datetime) -> str:
    return (moment.strftime("%Y-%m-%dT%H:%M:%S")
            + (f".{moment.microsecond:06d}" if moment.microsecond else "") + "Z")


def test_a_log_redis_refuses_drops_entries_and_never_fails_a_request(
        duck_project: Path, redis_prefix: str) -> None:
    FeatureStore(project_dir=str(duck_project)).sync()
    client = redis.Redis.from_url(REDIS_URL)
    client.set(f"{redis_prefix}:@served_log", "not a stream")  # XADD: WRONGTYPE
    server = Server(duck_project, "--log-served")
    try:
        for _ in range(20):
            status, data, _ = call(f"{server.url}/get-online-features", {
                "features": ["customer_spend:*"], "entities": {"customer_id": [1, 2]}})
            assert status == 200, data
        time.sleep(0.3)
        _, text, _ = call(f"{server.url}/metrics")
        assert 'dbt_features_served_log_dropped_total{reason="redis"} 20' in text, text
        assert "dbt_features_served_log_written_total 0" in text
    finally:
        server.stop()


# -- the command line ---------------------------------------------------------------------------


def _cli(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([DBT_FEATURES, *args], cwd=project, capture_output=True, text=True)


def test_bad_inputs_say_what_to_do(duck_project: Path, redis_prefix: str,
                                   tmp_path: Path) -> None:
    cases = [
        (["serve", "--log-served", "--log-sample-rate", "1.5"],
         "--log-sample-rate 1.5 is not a share of requests from 0 to 1"),
        (["serve", "--log-served", "--log-max-entries", "0"],
         "--log-max-entries 0 must be a positive number"),
        (["serve", "--log-sample-rate", "0.5"], "add --log-served to log"),
    ]
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    cases.append((["served", "export", "--output", str(blocker / "log")],
                  f"cannot write the served log to --output {blocker / 'log'}"))
    for args, message in cases:
        out = _cli(duck_project, *args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert message in out.stderr and "Traceback" not in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    empty = _cli(duck_project, "served", "export", "--output", str(tmp_path / "log"))
    assert empty.returncode == 0, empty.stderr
    assert "The served log is empty: nothing exported (0 rows)" in empty.stdout


def test_redis_refusing_or_gone_drops_log_entries_counted_reads_unharmed(
        duck_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from redis_process import RedisProcess

    with RedisProcess() as private:
        monkeypatch.setenv("DBT_FEATURES_REDIS_URL", private.url)
        FeatureStore(project_dir=str(duck_project)).sync()
        store = FeatureStore(project_dir=str(duck_project), served_log=True)
        log = store.online.served_log
        read = ["customer_spend:*"], [{"customer_id": 1}, {"customer_id": 2}]
        client = private.client()
        client.config_set("min-replicas-to-write", 1)  # writes refused, reads answered
        for _ in range(20):
            assert store.get_online_features(*read).statuses[0][0].value == "present"
        assert log.flush()
        assert (log.counts().written, log.counts().dropped_redis) == (0, 20)
        client.config_set("min-replicas-to-write", 0)
        time.sleep(1.2)  # the writer's pause after a failure
        for _ in range(5):
            store.get_online_features(*read)
        assert log.flush()
        assert log.counts().written == 5 and client.xlen(store.online.keys.served_log()) == 5
        for _ in range(30):
            store.get_online_features(*read)
        private.kill()  # gone: what was recorded is written or counted as dropped, never lost
        assert log.flush()
        counts = log.counts()
        assert counts.written + counts.dropped == 55 and counts.dropped_buffer_full == 0
        store.online.close()


# -- exports interrupted anywhere: a property ---------------------------------------------------


class SourceLog(tuple):
    """(store, entries, generations hash, row counts); shown short in hypothesis reports."""

    def __repr__(self) -> str:
        return f"<served log of {len(self[1])} entries>"


@pytest.fixture
def source_log(logged: FeatureStore) -> SourceLog:
    """A served log of 12 requests: its entries, its generations hash and its rows."""
    for features, rows in REQUESTS * 4:
        logged.get_online_features(features, rows)
    tables = logged.read_served()
    client = logged.online.client
    entries_ = client.xrange(logged.online.keys.served_log())
    generations = client.hgetall(logged.online.keys.served_generations())
    return SourceLog((logged, entries_, generations, _row_counts(tables)))


def _row_counts(tables: dict[str, pa.Table]) -> Counter:
    return Counter((view, *(tuple(v) if isinstance(v, list) else v for v in row.values()))
                   for view, table in tables.items() for row in table.to_pylist())


@settings(max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_exports_stopped_anywhere_lose_nothing_and_write_nothing_twice(
        source_log: SourceLog, tmp_path: Path, data: st.DataObject) -> None:
    store, source_entries, generations, expected = source_log
    online = store.online
    copy = OnlineStore(online.registry, replace(online.config,
                                                key_prefix=f"{online.config.key_prefix}:"
                                                           f"{uuid.uuid4().hex[:8]}"),
                       online.client)
    for entry_id, fields in source_entries:
        online.client.xadd(copy.keys.served_log(), fields, id=entry_id)
    online.client.hset(copy.keys.served_generations(), mapping=generations)
    output = tmp_path / uuid.uuid4().hex[:8]
    chunk_size = data.draw(st.integers(1, 7), label="chunk")
    decoder = Decoder(copy)
    for step in data.draw(st.lists(st.sampled_from(["no delete", "lost rename", "done"]),
                                   max_size=4), label="interrupted exports"):
        chunk = entries(copy, "-", "+", chunk_size)
        if not chunk:
            break
        tally = ExportTally()
        written = write_chunk(decoder, ExportedRanges(output), output, chunk, tally)
        if step == "lost rename" and written:  # stopped between two renames
            lost = data.draw(st.sampled_from(written), label="lost file")
            lost.rename(lost.with_name(f".{lost.name}.dead.tmp"))
        if step == "done":
            delete_entries(copy, [entry_id for entry_id, _ in chunk])
    saved = served_export.CHUNK, served_export.FILE_ENTRIES
    served_export.CHUNK = data.draw(st.integers(1, 5), label="page")
    served_export.FILE_ENTRIES = data.draw(st.integers(1, 9), label="file entries")
    try:
        export_served(copy, output)
    finally:
        served_export.CHUNK, served_export.FILE_ENTRIES = saved
    assert online.client.xlen(copy.keys.served_log()) == 0
    tables = {view.name: pq.read_table(view) for view in output.iterdir() if view.is_dir()}
    assert _row_counts(tables) == expected


# -- other key and value types ------------------------------------------------------------------

PAIRS = """{{ config(meta={'feature_store': {'entity': ['store_id', 'sku'], 'timestamp': 'ts',
                                              'created_timestamp': 'created', 'online': true}}) }}
select i as store_id, 'sku:' || cast(i % 2 as varchar) as sku,
       cast(now() as timestamp) - interval 1 hour as ts, cast(now() as timestamp) as created,
       i % 2 = 0 as on_sale, date '2026-01-01' + cast(i as integer) as since,
       timestamp '2026-02-03 04:05:06.789' as seen_at,
       timestamptz '2026-02-03 04:05:06.789+02' as seen_tz, case when i = 1 then null else i end as n
from range(3) as t(i)
"""
DEVICES = """{{ config(meta={'feature_store': {'entity': 'device_id', 'timestamp': 'ts',
                                              'ttl': '1d', 'online': true}}) }}
select 'dev-' || cast(i as varchar) as device_id, cast(now() as timestamp) as ts,
       i * 1.5 as score
from range(3) as t(i)
"""


def test_composite_and_string_keys_and_every_value_type(tmp_path: Path,
                                                        redis_prefix: str) -> None:
    from helpers import REPO, make_project, run_dbt

    project = make_project(tmp_path / "p", {"models/pairs.sql": PAIRS,
                                            "models/devices.sql": DEVICES})
    FeatureStore(project_dir=str(project)).sync()
    store = FeatureStore(project_dir=str(project), served_log=True)
    rows = [{"store_id": 0, "sku": "sku:0", "device_id": "dev-1"},
            {"store_id": 1, "sku": "sku:1", "device_id": "nope"},
            {"store_id": 7, "sku": "a:b\\c", "device_id": "dev-2"}]
    responses = [store.get_online_features(["pairs:*", "devices:score"], rows),
                 store.get_online_features(["pairs:n"], rows[:2])]
    tables = store.read_served()
    check_log_equals(tables, responses)
    pairs = tables["pairs"]
    assert pairs.schema.names[2:4] == ["store_id", "sku"]
    assert [pairs.schema.field(n).type for n in ("store_id", "sku", "on_sale", "since",
                                                 "seen_at", "seen_tz", "n")] == [
        pa.int64(), pa.string(), pa.bool_(), pa.date32(), pa.timestamp("us"),
        pa.timestamp("us", tz="UTC"), pa.int64()]
    spine = pa.table({"store_id": [0], "sku": ["sku:0"],
                      "event_timestamp": pa.array([datetime.now()], pa.timestamp("us"))})
    trained = store.get_training_set(spine, ["pairs:*"])
    for name in ("on_sale", "since", "seen_at", "seen_tz", "n"):  # the types training sets have
        assert pairs.schema.field(name).type == trained.schema.field(name).type, name
    assert pairs.column("sku").to_pylist()[:3] == ["sku:0", "sku:1", "a:b\\c"]
    assert tables["devices"].column("device_id").to_pylist()[:3] == ["dev-1", "nope", "dev-2"]
    assert tables["devices"].column("status").to_pylist()[:3] == ["present", "not_found",
                                                                  "present"]
    store.online.close()

    # Replayed, from the stream and through the dbt test on the exported files, every type
    # matches what training computes (composite keys, dates, both kinds of timestamp, bools).
    for as_known_at in (False, True):
        report = store.verify_served("stream", as_known_at=as_known_at)
        assert report.mismatched == 0 and min(f.compared for f in report.features) > 0, \
            report.format()
    folder = store.export_served(tmp_path / "served").output
    (project / "packages.yml").write_text(f"packages:\n  - local: {REPO}/dbt_package\n")
    (project / "models" / "served_pairs.sql").write_text(
        f"select * from read_parquet('{folder}/pairs/*.parquet')")
    (project / "models" / "served.yml").write_text(
        "version: 2\nmodels:\n  - name: served_pairs\n    data_tests:\n"
        "      - dbt_features.served_values_match:\n          arguments:\n"
        "            view: pairs\n")
    run_dbt(project, "deps")
    built = run_dbt(project, "build", "--select", "served_pairs")
    assert "PASS=2" in built.stdout, built.stdout
    # Not vacuous: the log with each of these values changed fails, feature by feature.
    served = pq.read_table(f"{folder}/pairs")
    changed = {"since": pc.add(served.column("since"), pa.scalar(86_400_000, pa.duration("ms"))),
               "seen_at": pc.add(served.column("seen_at"), pa.scalar(1000, pa.duration("us"))),
               "seen_tz": pc.add(served.column("seen_tz"), pa.scalar(1, pa.duration("us"))),
               "on_sale": pc.invert(served.column("on_sale"))}
    for name, column in changed.items():
        served = served.set_column(served.schema.get_field_index(name), name, column)
    pq.write_table(served, tmp_path / "changed.parquet")
    (project / "models" / "served_pairs.sql").write_text(
        f"select * from read_parquet('{tmp_path / 'changed.parquet'}')")
    failed = subprocess.run([str(Path(DBT_FEATURES).parent / "dbt"), "build", "--select",
                             "served_pairs", "--store-failures", "--project-dir", str(project),
                             "--profiles-dir", str(project)],
                            cwd=project, capture_output=True, text=True)
    assert failed.returncode == 1 and "FAIL 4" in failed.stdout, failed.stdout


def test_what_a_script_served_is_logged_when_it_exits(duck_project: Path,
                                                      redis_prefix: str) -> None:
    FeatureStore(project_dir=str(duck_project)).sync()
    script = ("from dbt_features import FeatureStore\n"
              f"store = FeatureStore({str(duck_project)!r}, served_log=True)\n"
              "for _ in range(50):\n"
              "    store.get_online_features(['customer_spend:*'], [{'customer_id': 1}])\n")
    subprocess.run([str(Path(DBT_FEATURES).parent / "python"), "-c", script], check=True)
    client = redis.Redis.from_url(REDIS_URL)
    assert client.xlen(f"{redis_prefix}:@served_log") == 50


def test_a_forked_worker_logs_with_a_writer_of_its_own(duck_project: Path,
                                                       redis_prefix: str) -> None:
    import os

    FeatureStore(project_dir=str(duck_project)).sync()
    store = FeatureStore(project_dir=str(duck_project), served_log=True)
    store.get_online_features(["customer_spend:*"], [{"customer_id": 1}])  # opened, logging
    assert store.online.served_log.flush()
    pid = os.fork()
    if pid == 0:  # the child: 7 reads, then out without the parent's clean-up
        code = 1
        try:
            for _ in range(7):
                store.get_online_features(["customer_spend:*"], [{"customer_id": 2}])
            code = 0 if store.online.served_log.flush() else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.online.client.xlen(store.online.keys.served_log()) == 8
    ids = store.read_served()["customer_spend"].column("request_id").to_pylist()
    assert len(set(ids)) == 8
    store.online.close()
