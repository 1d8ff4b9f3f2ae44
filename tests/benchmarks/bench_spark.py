"""Spark benchmarks: training sets and sync on Spark local mode against raw Spark baselines.

    .venv-spark/bin/python tests/benchmarks/bench_spark.py               # 10M rows, 1M spine
    .venv-spark/bin/python tests/benchmarks/bench_spark.py --rows 1000000 --entities 10000 --spine 100000

Builds (once per size, with the real ``dbt run`` on dbt-spark's ``session`` method, cached in
--workdir) a feature view ``events`` (ROWS rows, ENTITIES entities, 5 double features, ttl 30d,
(entity, time) unique, its data ending now) and a SPINE-row spine model. Then, in this process
(one Spark session, the profile's: local[*], the driver's memory raised), WARMUP uncounted
rounds then REPEAT rounds, the order of the sides alternating:

* training set: ``get_training_set("spine", ["events:*"])`` (the Spark SQL our Python path
  runs for a model spine, read as Arrow from dbt's session cursor) against the best raw Spark
  SQL for the same rows: one pass over spine and features unioned, sorted once per entity,
  ``last(..., ignorenulls)`` carrying the latest feature row to each spine row, the ttl checked
  after (no range join, no ordering of the result), read with ``toArrow()``. Both results are
  checked equal (sorted, the same feature values).
* sync: ``sync_view(..., full_refresh=True)`` into the local Redis (127.0.0.1:6379, a private
  key prefix, deleted afterwards) against the same latest-per-entity query (the library's SQL)
  read raw, by ``toLocalIterator()`` in batches, by Spark's local iterator over Arrow batches
  (a partition at a time, as the sync streams) and by ``toArrow()``, plus the same Redis writes
  (the same buckets, fields and blobs, hiredis-packed ``HSET`` + ``PEXPIREAT`` on one
  connection, built outside the timing).

For where the time goes: the SQL that ``sql`` prints (``training_sql``: sorted in the query,
where our Python path sorts in Arrow) is also read with ``toArrow()``, and the digest's own
pass (with the entity estimate: ``digest.digest_query``, which a full refresh on a Spark session
observes in its read instead, ``digest.observed_rows``) is timed on its own with ``toArrow()``.

Prints times (median over rounds) and ratios; asserts no time. Spark's own start is paid once,
before any timing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from statistics import median
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REDIS_URL = "redis://127.0.0.1:6379/0"
NOW = int(time.time()) // 86400 * 86400  # midnight today (UTC): a build is reused all day

EVENTS = """{{{{ config(meta={{'feature_store': {{'entity': 'entity_id', 'timestamp': 'ts',
    'ttl': '30d', 'online': true}}}}) }}}}
-- Row i: entity i % E at the (i div E)-th 100,000-second bucket before now, plus an offset:
-- (entity, ts) is unique; rows span {span_days} days.
select cast(pmod(id, {entities}) as bigint) as entity_id,
       timestamp_seconds({now} - (id div {entities}) * 100000 - pmod(hash(id), 100000)) as ts,
       {features}
from range(0, {rows}) as t(id)
"""

SPINE = """-- Spine rows spread over the features' span and a little before it (misses).
select cast(pmod(id * 7919, {entities}) as bigint) as entity_id,
       timestamp_seconds({now} - pmod(hash(id, 1), {span_s})) as at
from range(0, {spine}) as t(id)
"""

RAW_TRAINING = """
with u as (
    select entity_id, at as t, 1 as side, at, null as hit from {spine}
    union all
    select entity_id, ts as t, 0 as side, null as at, named_struct('ts', ts, {fields}) as hit
    from {events}
),
carried as (
    select entity_id, at, side,
           last(hit, true) over (partition by entity_id order by t, side
                                 rows between unbounded preceding and current row) as hit
    from u
)
select entity_id, at, {picked}
from carried
where side = 1
"""


def features_sql() -> str:
    return ", ".join(f"cast(pmod(hash(id, {k}), 100000) as double) / 1000 as f{k}" for k in range(1, 6))


def build_project(workdir: Path, rows: int, entities: int, spine: int) -> Path:
    """The benchmark's dbt project, built by ``dbt run`` unless this size was built today."""
    project = workdir / f"spark_{rows}_{entities}_{spine}_{NOW}"
    if (project / "built").exists():
        return project
    (project / "models").mkdir(parents=True, exist_ok=True)
    home = project / "spark"
    (project / "dbt_project.yml").write_text(
        "name: sparkbench\nprofile: sparkbench\nmodels:\n  sparkbench:\n"
        "    +materialized: table\n    +file_format: parquet\n")
    (project / "profiles.yml").write_text(
        "sparkbench:\n  target: spark\n  outputs:\n    spark:\n      type: spark\n"
        "      method: session\n      host: NA\n      schema: bench\n      threads: 1\n"
        "      server_side_parameters:\n"
        "        spark.master: 'local[*]'\n        spark.driver.memory: 8g\n"
        "        spark.sql.shuffle.partitions: '16'\n        spark.sql.session.timeZone: UTC\n"
        "        spark.log.level: ERROR\n        spark.ui.showConsoleProgress: 'false'\n"
        f"        spark.sql.warehouse.dir: '{home}/warehouse'\n"
        f"        spark.driver.extraJavaOptions: '-Dderby.system.home={home}'\n")
    (project / "packages.yml").write_text(f"packages:\n  - local: {REPO / 'dbt_package'}\n")
    span_days = rows // entities * 100000 // 86400 + 1
    (project / "models" / "events.sql").write_text(EVENTS.format(
        entities=entities, rows=rows, now=NOW, span_days=span_days, features=features_sql()))
    (project / "models" / "spine.sql").write_text(SPINE.format(
        entities=entities, spine=spine, now=NOW, span_s=span_days * 86400 + 5 * 86400))
    print(f"building {rows:,} feature rows ({entities:,} entities) and a {spine:,}-row spine "
          f"with dbt run (Spark) in {project} ...", flush=True)
    for args in (["deps"], ["run"]):
        subprocess.run([str(BIN / "dbt"), *args, "--profiles-dir", str(project), "--quiet"],
                       cwd=project, check=True)
    (project / "built").write_text("ok\n")
    return project


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def rounds(sides: dict[str, Callable[[], Any]], repeat: int) -> tuple[dict[str, list[float]], dict]:
    """Each side once per round, the order reversed every other round; times and last results.
    The first WARMUP rounds are printed, not counted: the first run of a query shape in the JVM
    (code generation, JIT) took up to 3x longer, whichever side ran first."""
    times: dict[str, list[float]] = {name: [] for name in sides}
    results: dict[str, Any] = {}
    for r in range(-WARMUP, repeat):
        names = list(sides) if r % 2 == 0 else list(reversed(sides))
        for name in names:
            seconds, results[name] = timed(sides[name])
            if r >= 0:
                times[name].append(seconds)
            label = f"round {r + 1}" if r >= 0 else "warm-up"
            print(f"  {label}: {name:<28} {seconds:7.2f} s", flush=True)
    return times, results


def ratio_line(what: str, ours: list[float], raw: list[float], target: str) -> str:
    paired = median(o / b for o, b in zip(ours, raw))
    return (f"{what}: ours {median(ours):.2f} s, raw {median(raw):.2f} s, "
            f"ratio {paired:.2f}x paired (target {target})")


def bench_training(store: Any, spark: Any, repeat: int) -> None:
    import pyarrow.compute as pc

    names = [f"f{k}" for k in range(1, 6)]
    raw_sql = RAW_TRAINING.format(
        spine="bench.spine", events="bench.events",
        fields=", ".join(f"'{n}', {n}" for n in names),
        picked=", ".join(f"case when hit.ts >= at - interval 30 days then hit.{n} end as {n}"
                         for n in names))
    ours_sql = store.training_sql("spine", ["events:*"], spine_timestamp="at", pretty=False)
    sides = {"get_training_set": lambda: store.get_training_set("spine", ["events:*"], spine_timestamp="at"),
             "raw Spark SQL, toArrow()": lambda: spark.sql(raw_sql).toArrow(),
             "printed SQL, toArrow()": lambda: spark.sql(ours_sql).toArrow()}
    times, results = rounds(sides, repeat)
    ours, raw = (results[n].select(["entity_id", "at", *names]) for n in list(sides)[:2])
    ours = ours.cast(raw.schema) if ours.schema != raw.schema else ours
    keys = [("entity_id", "ascending"), ("at", "ascending"), ("f1", "ascending")]
    same = ours.num_rows == raw.num_rows and ours.sort_by(keys).equals(raw.sort_by(keys))
    found = ours.num_rows - ours.column("f1").null_count
    at = ours.column("at").combine_chunks()
    in_order = ours.num_rows < 2 or pc.all(pc.less_equal(at[:-1], at[1:])).as_py()
    print(f"  rows: ours {ours.num_rows:,}, raw {raw.num_rows:,}, with features {found:,}; "
          f"equal: {same}; ours in spine time order: {in_order}")
    if not same or not in_order:
        raise SystemExit("the training sets differ")
    mine, raw_times, sql_only = times.values()
    print(ratio_line("training set " + SIZE, mine, raw_times, "<= 1.3x"))
    print(ratio_line("  the SQL `sql` prints (sorted in Spark) read by toArrow()", sql_only,
                     raw_times, "-"))


def raw_payload(store: Any, view: Any, table: Any) -> tuple[list, list, list]:
    """What the sync writes for ``table``: per bucket key, its fields, blobs and expiry."""
    import numpy as np

    from dbt_features.serving.codec import Schema
    from dbt_features.serving.encoder import BlobEncoder, locate_batch
    from dbt_features.serving.layout import bucket_count

    batch = table.combine_chunks().to_batches()[0]
    schema = Schema.of(view, bucket_count(batch.num_rows))
    blobs, ets = BlobEncoder(schema).encode(batch, "ts", None)
    buckets, fields = locate_batch(batch, ["entity_id"], schema.key_dtypes, schema.buckets)
    order = np.argsort(buckets, kind="stable")
    buckets, fields, blobs = buckets[order], fields.take(order).to_pylist(), blobs.take(order).to_pylist()
    pxat = ets[order] // 1000 + 30 * 86400 * 1000
    starts = np.flatnonzero(np.concatenate(([True], buckets[1:] != buckets[:-1])))
    ends = np.append(starts[1:], len(buckets))
    base = f"{PREFIX}:raw:"
    return [(f"{base}{buckets[a]}", a, b, int(pxat[a:b].max())) for a, b in zip(starts, ends)], fields, blobs


def bench_sync(store: Any, spark: Any, repeat: int) -> None:
    import pyarrow as pa
    import redis

    from dbt_features.serving.digest import digest_query
    from dbt_features.serving.query import latest_query
    from dbt_features.serving.sync import SyncOptions, sync_view
    from raw_redis import packed_hset_pexpireat

    view = store.registry.view("events")
    now = datetime.now(timezone.utc)
    sql = latest_query(view, "spark", now)
    client = redis.Redis.from_url(REDIS_URL)
    frame = lambda: spark.sql(sql)  # noqa: E731 - the same query, a fresh plan each time

    def local_iterator() -> Any:
        rows = frame().toLocalIterator(prefetchPartitions=True)
        names = frame().columns
        batches, chunk = [], []
        for row in rows:
            chunk.append(row)
            if len(chunk) == 32_768:
                batches.append(pa.Table.from_pylist([r.asDict() for r in chunk]))
                chunk = []
        if chunk:
            batches.append(pa.Table.from_pylist([r.asDict() for r in chunk]))
        return pa.concat_tables(batches).select(names)

    def arrow_stream() -> Any:
        """Spark's local iterator over Arrow batches (a partition at a time), as the sync reads."""
        from dbt_features.spark_read import frame_batches

        return pa.Table.from_batches(list(frame_batches(frame(), 100_000)))

    payload = raw_payload(store, view, frame().toArrow())

    def with_writes(read: Callable[[], Any]) -> Callable[[], int]:
        def run() -> int:
            table = read()
            packed_hset_pexpireat(client, *payload)
            return table.num_rows
        return run

    def ours() -> int:
        with store.warehouse() as wh:
            return sync_view(store.online, view, wh, SyncOptions(full_refresh=True), now=now).entities

    checks = {"digest + entities, toArrow()": digest_query(view, "spark", now, None, entities=True)}
    sides = {"sync_view (full refresh)": ours,
             "raw toLocalIterator + HSET": with_writes(local_iterator),
             "raw Arrow local iterator + HSET": with_writes(arrow_stream),
             "raw toArrow + HSET": with_writes(lambda: frame().toArrow()),
             **{name: (lambda q=q: spark.sql(q).toArrow().num_rows) for name, q in checks.items()}}
    times, results = rounds(sides, repeat)
    for name in checks:
        del results[name]
        print(f"  {name} (the digest's own pass, observed in the read instead): "
              f"{median(times.pop(name)):.2f} s")
    print(f"  entities: {', '.join(f'{n} {v:,}' for n, v in results.items())}")
    rates = {n: results[n] / median(t) for n, t in times.items()}
    mine = times["sync_view (full refresh)"]
    for name in [n for n in sides if n.startswith("raw")]:
        print(f"sync {SIZE}: ours {rates['sync_view (full refresh)']:,.0f} entities/s, "
              f"{name} {rates[name]:,.0f}/s: throughput ratio "
              f"{median(b / o for o, b in zip(mine, times[name])):.2f}x paired (target >= 0.7x)")


def delete_prefix(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=10_000))
    for i in range(0, len(keys), 5000):
        client.unlink(*keys[i:i + 5000])


def main() -> None:
    global SIZE, PREFIX, WARMUP
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--spine", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1, help="uncounted rounds first")
    parser.add_argument("--only", choices=("training", "sync"))
    parser.add_argument("--workdir", type=Path,
                        default=Path(os.environ.get("TMPDIR", "/tmp")) / "dbt_features_bench")
    args = parser.parse_args()
    SIZE = f"({args.spine:,} spine x {args.rows:,} rows, {args.entities:,} entities)"
    WARMUP = args.warmup
    PREFIX = f"dbtf_bench_spark_{uuid.uuid4().hex[:8]}"
    os.environ.update(DBT_FEATURES_REDIS_URL=REDIS_URL, DBT_FEATURES_REDIS_PREFIX=PREFIX)
    project = build_project(args.workdir, args.rows, args.entities, args.spine)

    from pyspark.sql import SparkSession

    from dbt_features.store import FeatureStore

    store = FeatureStore(project_dir=str(project))
    with store.warehouse() as wh:  # starts Spark (the profile's session), before any timing
        wh.arrow("SELECT 1")
    spark = SparkSession.builder.getOrCreate()
    try:
        if args.only != "sync":
            bench_training(store, spark, args.repeat)
        if args.only != "training":
            bench_sync(store, spark, args.repeat)
    finally:
        delete_prefix(PREFIX)


SIZE = PREFIX = ""
WARMUP = 1

if __name__ == "__main__":
    main()
