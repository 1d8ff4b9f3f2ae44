"""Online store benchmark: `sync --full-refresh` and `get_online_features` against raw baselines.

    .venv/bin/python tests/benchmarks/bench_online.py            # 1M entities, 10M rows
    .venv/bin/python tests/benchmarks/bench_online.py --entities 200000 --reads 500   # quicker

Builds (with the real `dbt run`, DuckDB) a throwaway dbt project with two online feature views
of 10 features each: `bench_big` (ENTITIES entities x 10 rows) and `bench_small` (ENTITIES/10
entities x 10 rows). Then, each in its own process so peak RSS is its own:

* raw baseline: the latest-per-entity query in DuckDB (QUALIFY, materialized to Arrow), plus
  the fastest raw redis-py write of the same layout: the same bucket hashes, fields, values and
  bucket expiries (pipelined ``HSET`` + ``PEXPIREAT``, or hiredis-packed commands on a
  redis-py connection; grouped per bucket over the whole table, outside the timing); for
  reference, the same query is also timed under the DuckDB memory bound a sync keeps;
* ``sync --full-refresh`` of each view (the library call, as the CLI runs it);

then the memory per (view, entity): ``MEMORY USAGE key SAMPLES 0`` over up to 200 bucket keys
of each view, against the payload (event time + fixed-width values); the target (1.6x) is for
``bench_doubles``, 10 double features (synced too, not timed);

and reads of 1 and 100 entities over both views: ``get_online_features`` vs the bare read of
the same fields (a redis-py pipeline of ``HGET``, and a bare ``HGET`` script sent on a held
connection, packed by hiredis: ``raw_redis.raw_script``) with the same
decoding (``Codec.decode``), after 200 warm-up requests, in ROUNDS rounds of READS requests
where each request runs on every path back to back, in alternating order; reported: the median
over rounds of each path's p50 and p99, and the median of the per-round p99 ratios against the
faster raw path. Writes go to the real Redis at 127.0.0.1:6379 under a unique
prefix, deleted at the end.

    .venv/bin/python tests/benchmarks/bench_online.py --only reads --entities 100000  # reads
    .venv/bin/python tests/benchmarks/bench_online.py --only sync    # sync and memory only
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

MODEL = """{{{{ config(meta={{'feature_store': {{'entity': 'entity_id', 'timestamp': 'feature_at',
    'ttl': '30d', 'online': true}}}}) }}}}
select
    i % {n} + 1 as entity_id,
    cast(now() as timestamp) - to_seconds(cast(i // {n} as bigint) * 3600 + i % 997 + 60) as feature_at,
    (i * 7 % 1000) / 10.0 as f0, (i * 13 % 1000) / 100.0 as f1, (i % 977) * 1.5 as f2,
    (i * 31 % 10007) / 3.0 as f3, (i % 101) / 7.0 as f4, (i * 3 % 1009) * 0.25 as f5,
    i % 100 as c0, i % 10000 as c1, i // {n} as c2,
    'category_' || cast(i % 20 as varchar) as label
from range({rows}) as s(i)
"""


DOUBLES = """{{{{ config(meta={{'feature_store': {{'entity': 'entity_id', 'timestamp': 'feature_at',
    'ttl': '30d', 'online': true}}}}) }}}}
select
    i % {n} + 1 as entity_id,
    cast(now() as timestamp) - to_seconds(cast(i // {n} as bigint) * 3600 + i % 997 + 60) as feature_at,
    {columns}
from range({rows}) as s(i)
"""
"""The view of the memory target: 10 double features (88 bytes of payload with event time)."""


def build_project(root: Path, entities: int, rows_per_entity: int) -> Path:
    project = root / "bench_project"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(
        "name: bench\nprofile: bench\nmodels:\n  bench:\n    +materialized: table\n"
    )
    (project / "profiles.yml").write_text(
        f"bench:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        f"      path: {project / 'bench.duckdb'}\n      keep_open: false\n      threads: 1\n"
    )
    small = max(entities // 10, 1)
    for name, n in (("bench_big", entities), ("bench_small", small)):
        (project / "models" / f"{name}.sql").write_text(MODEL.format(n=n, rows=n * rows_per_entity))
    columns = ", ".join(f"(i * {7 + k} % 1000) / {k + 3}.0 as d{k}" for k in range(10))
    (project / "models" / "bench_doubles.sql").write_text(
        DOUBLES.format(n=small, rows=small * rows_per_entity, columns=columns))
    subprocess.run([str(BIN / "dbt"), "run", "--project-dir", str(project), "--profiles-dir",
                    str(project), "--quiet"], check=True, cwd=project)
    return project


# -- children (one process each, for their own peak RSS) -------------------------------------


def _warm_up() -> None:
    """pyarrow imports pandas (when installed) on its first conversion from Python objects,
    about 0.5 s once per process: paid before timing, in both children (steady state)."""
    import pyarrow as pa

    pa.array([0])


def child_sync(project: str, view_name: str) -> dict:
    from dbt_features.serving.sync import SyncOptions, sync_view
    from dbt_features.store import FeatureStore

    _warm_up()

    store = FeatureStore(project_dir=project)
    view = store.registry.view(view_name)
    online = store.online
    with store.warehouse() as warehouse:
        started = time.perf_counter()
        result = sync_view(online, view, warehouse, SyncOptions(full_refresh=True))
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "entities": result.entities}


def child_raw(project: str, view_name: str) -> dict:
    import duckdb
    import pyarrow as pa
    import redis

    import numpy as np

    from dbt_features.serving.codec import Schema
    from dbt_features.serving.encoder import BlobEncoder, locate_batch
    from dbt_features.serving.layout import bucket_count
    from dbt_features.serving.warehouse_read import IN_PROCESS_SETTINGS, engine_settings
    from dbt_features.store import FeatureStore
    from raw_redis import packed_hset_pexpireat

    view = FeatureStore(project_dir=project).registry.view(view_name)
    _warm_up()
    con = duckdb.connect(str(Path(project) / "bench.duckdb"), read_only=True)
    latest = (
        f"select * from main.{view_name} where feature_at <= now()::timestamp and feature_at > "
        "now()::timestamp - interval 30 day qualify row_number() over (partition by entity_id "
        "order by feature_at desc) = 1"
    )
    # The same query under the memory bound a sync keeps (for reference; first, so that the
    # timed run below finds the table's blocks cached, as a sync's digest pass leaves them).
    # Unsharded, it may run out of memory under that bound (the sync reads in shards): then
    # there is no reference (None).
    with engine_settings(con, IN_PROCESS_SETTINGS["duckdb"]):
        started = time.perf_counter()
        try:
            bounded_rows = sum(b.num_rows for b in con.sql(latest).to_arrow_reader(32_768))
            bounded_s: float | None = time.perf_counter() - started
        except duckdb.OutOfMemoryException:
            bounded_rows, bounded_s = None, None
    started = time.perf_counter()
    table = con.sql(latest).to_arrow_table()
    query_s = time.perf_counter() - started
    con.close()
    assert bounded_rows in (None, table.num_rows)
    # The same payload the sync writes: the same buckets, fields, values and expiries (built
    # outside the timed sections, grouped per bucket over the whole table).
    batch = table.combine_chunks().to_batches()[0]
    schema = Schema.of(view, bucket_count(batch.num_rows))
    blobs, ets = BlobEncoder(schema).encode(batch, "feature_at", None)
    buckets, fields = locate_batch(batch, ["entity_id"], schema.key_dtypes, schema.buckets)
    base = f"rawbench:{uuid.uuid4().hex[:6]}:"
    order = np.argsort(buckets, kind="stable")
    buckets, fields, blobs = buckets[order], fields.take(order).to_pylist(), blobs.take(order).to_pylist()
    pxat = ets[order] // 1000 + 30 * 86400 * 1000
    starts = np.flatnonzero(np.concatenate(([True], buckets[1:] != buckets[:-1])))
    ends = np.append(starts[1:], len(buckets))
    groups = [(f"{base}{buckets[a]}", a, b, int(pxat[a:b].max())) for a, b in zip(starts, ends)]
    client = redis.Redis.from_url(REDIS_URL)
    chunk = 100  # buckets per round trip (~11k fields)

    def pipeline_hset() -> None:
        for i in range(0, len(groups), chunk):
            pipe = client.pipeline(transaction=False)
            for key, a, b, at in groups[i : i + chunk]:
                pipe.hset(key, mapping=dict(zip(fields[a:b], blobs[a:b])))
                pipe.pexpireat(key, at)
            pipe.execute()

    def packed_hset() -> None:
        packed_hset_pexpireat(client, groups, fields, blobs, chunk)

    writes = {}
    for name, write in (("pipeline_hset_pexpireat", pipeline_hset), ("packed_hset_pexpireat", packed_hset)):
        started = time.perf_counter()
        write()
        writes[name] = time.perf_counter() - started
        for i in range(0, len(groups), 5000):
            client.unlink(*(g[0] for g in groups[i : i + 5000]))
    del pa
    return {"query_s": query_s, "bounded_query_s": bounded_s, "writes": writes,
            "entities": len(fields)}


def run_child(kind: str, project: Path, view: str, env: dict) -> dict:
    proc = subprocess.Popen([sys.executable, __file__, "--child", kind, str(project), view],
                            stdout=subprocess.PIPE, env=env, cwd=project)
    out = proc.stdout.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"child {kind} {view} failed")
    return json.loads(out) | {"peak_rss_mb": usage.ru_maxrss / 1024}


# -- memory --------------------------------------------------------------------------------

PAYLOAD_BYTES = {"int64": 8, "double": 8, "timestamp": 8, "date": 4, "bool": 1}


def memory_per_entity(client, prefix: str, view: str, sample: int = 200) -> dict:
    """``MEMORY USAGE key SAMPLES 0`` (every field counted) over up to ``sample`` bucket keys of
    the served generation, per entity (field), against the value payload: event time plus the
    features' fixed-width values."""
    from dbt_features.serving.codec import Schema

    gen, text = client.hmget(f"{prefix}:{view}:meta", "gen", "schema")
    schema = Schema.parse(text)
    keys = [f"{prefix}:{view}:{gen.decode()}:{b}" for b in range(min(sample, schema.buckets))]
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
        pipe.hlen(key)
    replies = pipe.execute()
    used, fields = sum(r or 0 for r in replies[0::2]), sum(replies[1::2])
    payload = 8 + sum(PAYLOAD_BYTES.get(t, 0) for _, t in schema.features)
    per_entity = used / max(fields, 1)
    return {"view": view, "buckets": schema.buckets, "sampled": len(keys), "fields": fields,
            "per_entity": per_entity, "payload": payload, "ratio": per_entity / payload}


def print_memory(client, prefix: str, views: tuple[str, ...]) -> None:
    print("\nmemory (MEMORY USAGE .. SAMPLES 0 over up to 200 buckets, per entity):")
    for view in views:
        m = memory_per_entity(client, prefix, view)
        print(f"  {view:<14} {m['per_entity']:6.1f} B per entity ({m['fields']:,} entities in "
              f"{m['sampled']} of {m['buckets']:,} buckets); payload {m['payload']} B; ratio "
              f"{m['ratio']:.2f}" + ("  (target <= 1.6)" if view == "bench_doubles" else "  (reference)"))


# -- reads ---------------------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def bench_reads(project: Path, prefix: str, n_entities: int, iterations: int,
                rounds: int) -> list[dict]:
    """Per batch size: ``rounds`` rounds of ``iterations`` requests; within a round every
    request is timed on both paths back to back, alternating which goes first (ABBA...), so
    noise (the other core, GC, Redis) hits both alike. Per round p50/p99 of each path; the
    result is the median over rounds (and the median of the per-round p99 ratios)."""
    import gc
    import random

    import redis

    from dbt_features.serving.codec import Codec, Schema
    from dbt_features.store import FeatureStore
    from raw_redis import raw_script

    store = FeatureStore(project_dir=str(project))
    features = ["bench_big:*", "bench_small:*"]
    client = redis.Redis.from_url(REDIS_URL)
    views = ("bench_big", "bench_small")
    gens = {v: client.hget(f"{prefix}:{v}:meta", "gen").decode() for v in views}
    schemas = {v: Schema.parse(client.hget(f"{prefix}:{v}:meta", "schema")) for v in views}
    codecs = {v: Codec(schemas[v]) for v in views}
    bare = raw_script(client)
    small = max(n_entities // 10, 1)
    out = []
    for batch in (1, 100):
        rng = random.Random(batch)

        def ours(ids: list[int]) -> None:
            store.get_online_features(features, [{"entity_id": i} for i in ids])

        def placed(ids: list[int]) -> tuple[list[str], list[int]]:
            keys, fields = [], []
            for v in views:
                base, buckets = f"{prefix}:{v}:{gens[v]}:", schemas[v].buckets
                for i in ids:
                    quotient, bucket = divmod(i, buckets)
                    keys.append(base + str(bucket))
                    fields.append(quotient)
            return keys, fields

        def decode(blobs: list, n: int) -> None:
            for j, blob in enumerate(blobs):
                if blob is not None:
                    codecs[views[j // n]].decode(blob)

        def raw_pipeline(ids: list[int]) -> None:
            pipe = client.pipeline(transaction=False)
            for key, field in zip(*placed(ids)):
                pipe.hget(key, field)
            decode(pipe.execute(), len(ids))

        def raw_script(ids: list[int]) -> None:
            keys, fields = placed(ids)
            decode(bare(keys, fields), len(ids))

        paths = {"ours": ours, "raw_pipeline": raw_pipeline, "raw_script": raw_script}
        per_round: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
        ratios = []
        warm = [[rng.randint(1, small) for _ in range(batch)] for _ in range(200)]
        for ids in warm:
            for fn in paths.values():
                fn(ids)
        for _round in range(rounds):
            requests = [[rng.randint(1, small) for _ in range(batch)] for _ in range(iterations)]
            timings: dict[str, list[float]] = {name: [] for name in paths}
            gc.collect()
            for k, ids in enumerate(requests):
                order = list(paths) if k % 2 == 0 else list(paths)[::-1]
                for name in order:
                    fn = paths[name]
                    started = time.perf_counter()
                    fn(ids)
                    timings[name].append(time.perf_counter() - started)
            for name, values in timings.items():
                per_round[name].append((statistics.median(values), _percentile(values, 0.99)))
            # The bare read of the layout: the faster raw path of this round.
            ratios.append(per_round["ours"][-1][1] / min(per_round["raw_pipeline"][-1][1],
                                                         per_round["raw_script"][-1][1]))
        out.append(summary(per_round, ratios, entities=batch, rounds=rounds,
                           iterations=iterations))
    return out


def summary(per_round: dict[str, list[tuple[float, float]]], ratios: list[float], **row: Any) -> dict:
    """``row`` with each path's median over rounds of its p50 and p99 (ms), and the median of
    the per-round p99 ratios."""
    for name, stats in per_round.items():
        row[f"{name}_p50_ms"] = statistics.median(p50 for p50, _ in stats) * 1000
        row[f"{name}_p99_ms"] = statistics.median(p99 for _, p99 in stats) * 1000
    return row | {"p99_ratio": statistics.median(ratios), "p99_ratios": sorted(ratios)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument("--rows-per-entity", type=int, default=10)
    parser.add_argument("--reads", type=int, default=2000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5, help="read rounds (median reported)")
    parser.add_argument("--only", choices=("all", "sync", "reads"), default="all")
    parser.add_argument("--project", type=Path, help="reuse a project built by an earlier run "
                        "(kept; it must have been built with the same --entities)")
    parser.add_argument("--keep", action="store_true", help="keep the built project (its path "
                        "is printed) for --project")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, project, view = args.child
        print(json.dumps((child_sync if kind == "sync" else child_raw)(project, view)))
        return

    import redis

    root = args.project.parent if args.project else Path(tempfile.mkdtemp(prefix="bench_online_"))
    prefix = f"bench_online_{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, DBT_FEATURES_REDIS_URL=REDIS_URL, DBT_FEATURES_REDIS_PREFIX=prefix,
               PYTHONPATH=str(REPO))
    os.environ.update(env)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        started = time.perf_counter()
        if args.project:
            project = args.project.resolve()
        else:
            project = build_project(root, args.entities, args.rows_per_entity)
            print(f"built {args.entities * args.rows_per_entity:,} + "
                  f"{args.entities // 10 * args.rows_per_entity:,} rows with dbt in "
                  f"{time.perf_counter() - started:.1f} s  ({project})")
        rows = []
        for view in ("bench_small", "bench_big") if args.only != "reads" else ():
            raw = run_child("raw", project, view, env)
            ours = run_child("sync", project, view, env)
            same = raw["writes"]
            best = min(same, key=same.get)
            raw_s = raw["query_s"] + same[best]
            rows.append((view, raw, ours, best, raw_s))
            n = ours["entities"]
            print(f"\n{view}: {n:,} entities")
            print(f"  raw query (DuckDB QUALIFY -> Arrow)   {raw['query_s']:7.2f} s")
            for name, seconds in raw["writes"].items():
                print(f"  raw write {name:<20}      {seconds:7.2f} s  ({n / seconds:,.0f}/s)")
            print(f"  raw baseline (query + {best})  {raw_s:7.2f} s  ({n / raw_s:,.0f} entities/s)"
                  f"  peak RSS {raw['peak_rss_mb']:.0f} MB")
            print(f"  sync --full-refresh                  {ours['seconds']:7.2f} s  "
                  f"({n / ours['seconds']:,.0f} entities/s)  peak RSS {ours['peak_rss_mb']:.0f} MB")
            print(f"  throughput ratio sync/raw            {raw_s / ours['seconds']:7.2f}  (target >= 0.85)")
            if raw["bounded_query_s"] is None:
                print("  reference: raw query under the sync's DuckDB memory bound, unsharded: "
                      "out of memory")
            else:
                bounded_s = raw["bounded_query_s"] + same[best]
                print(f"  reference: raw query under the sync's DuckDB memory bound "
                      f"{raw['bounded_query_s']:.2f} s; with the write {bounded_s:.2f} s; ratio "
                      f"sync/that {bounded_s / ours['seconds']:.2f}")
        if rows:
            rss_small, rss_big = rows[0][2]["peak_rss_mb"], rows[1][2]["peak_rss_mb"]
            print(f"\npeak RSS of sync: {rss_small:.0f} MB at {rows[0][2]['entities']:,} entities, "
                  f"{rss_big:.0f} MB at {rows[1][2]['entities']:,}: ratio {rss_big / rss_small:.2f} "
                  "(target <= 1.2)")
        if not rows:  # reads only: sync both views first (untimed)
            for view in ("bench_small", "bench_big"):
                run_child("sync", project, view, env)
        run_child("sync", project, "bench_doubles", env)
        print_memory(client, prefix, ("bench_doubles", "bench_small", "bench_big"))
        if args.only == "sync":
            return
        print(f"\nreads over 2 views (10 features each), get_online_features vs the bare read of "
              f"the same fields + decode: a raw HGET pipeline, or a bare HGET script ({args.rounds} "
              f"rounds x {args.reads} requests per path, interleaved; median over rounds):")
        for row in bench_reads(project, prefix, args.entities, args.reads, args.rounds):
            print(f"  {row['entities']:>3} entities: ours p50 {row['ours_p50_ms']:.3f} ms, p99 "
                  f"{row['ours_p99_ms']:.3f} ms | raw pipeline p50 {row['raw_pipeline_p50_ms']:.3f} "
                  f"ms, p99 {row['raw_pipeline_p99_ms']:.3f} ms | raw script p50 "
                  f"{row['raw_script_p50_ms']:.3f} ms, p99 {row['raw_script_p99_ms']:.3f} ms | "
                  f"p99 ratio vs the faster raw {row['p99_ratio']:.2f} (target <= 1.3; rounds "
                  f"{', '.join(f'{r:.2f}' for r in row['p99_ratios'])})")
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=50_000))
        for i in range(0, len(keys), 10_000):
            client.unlink(*keys[i : i + 10_000])
        if not (args.keep or args.project):
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
