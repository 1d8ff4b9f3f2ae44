"""Online responses benchmark: a read plus ``to_dict()`` / ``to_arrow()`` against the bare read.

    .venv/bin/python tests/benchmarks/bench_responses.py                 # 7 rounds x 1000
    .venv/bin/python tests/benchmarks/bench_responses.py --rounds 3 --reads 300   # quicker

Builds (real `dbt run`, DuckDB) a throwaway project with two online views of 10 features each
(6 double, 3 bigint, 1 string) over the same 5,000 entities, syncs them to the Redis at
127.0.0.1:6379 under a unique prefix (deleted at the end), then for 100 entities x 10 features
over one view (``resp_a:*``) and over two views (5 features of each) times, per request and
back to back in rotating order:

* bare: the bare read of the same entities (``bare_reader``: one raw Lua call of HGETs on a
  held connection, packed by hiredis (``raw_redis.raw_script``), as
  the store lays them out, each blob decoded by ``Codec.decode``);
* dict: ``get_online_features(...)`` then ``.to_dict()`` (Feast's shape, event timestamps);
* arrow: ``get_online_features(...)`` then ``.to_arrow()``;
* read: ``get_online_features(...)`` alone (for reference).

After a warm-up, ROUNDS rounds of READS requests; per round each path's p50 and p99; printed:
the median over rounds of each, and per ratio (path / bare) the median of the per-round ratios
with its target (<= 1.5) and met/missed.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
ENTITIES = 5_000
BATCH = 100
TARGET = 1.5
FEATURES = ("f0", "f1", "f2", "f3", "f4", "f5", "c0", "c1", "c2", "label")

MODEL = """{{{{ config(meta={{'feature_store': {{'entity': 'entity_id', 'timestamp': 'feature_at',
    'ttl': '30d', 'online': true}}}}) }}}}
select
    i + 1 as entity_id,
    cast(now() as timestamp) - to_seconds(i % 86413 + {shift}) as feature_at,
    (i * 7 % 1000) / 10.0 as f0, (i * 13 % 1000) / 100.0 as f1, (i % 977) * 1.5 as f2,
    (i * 31 % 10007) / 3.0 as f3, (i % 101) / 7.0 as f4, (i * 3 % 1009) * 0.25 as f5,
    i % 100 as c0, i % 10000 as c1, i // 7 as c2,
    'category_' || cast(i % 20 as varchar) as label
from range({n}) as s(i)
"""


@contextmanager
def synced_project(tag: str) -> Iterator[Path]:
    """``build_project`` in a temporary folder, synced (the real CLI) to the Redis at
    ``REDIS_URL`` under a unique key prefix (set in the environment, for the benchmark's
    processes); its keys and folder are deleted at the end."""
    import redis

    root = Path(tempfile.mkdtemp(prefix=f"bench_{tag}_"))
    prefix = f"dbtf_bench_{tag}_{uuid.uuid4().hex[:8]}"
    os.environ.update(DBT_FEATURES_REDIS_URL=REDIS_URL, DBT_FEATURES_REDIS_PREFIX=prefix,
                      PYTHONPATH=str(REPO))
    try:
        project = build_project(root)
        subprocess.run([str(BIN / "dbt-features"), "sync"], cwd=project, check=True,
                       capture_output=True)
        yield project
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=10_000))
        for i in range(0, len(keys), 5000):
            client.unlink(*keys[i:i + 5000])
        client.close()
        shutil.rmtree(root, ignore_errors=True)


def build_project(root: Path) -> Path:
    project = root / "resp_project"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(
        "name: resp\nprofile: resp\nmodels:\n  resp:\n    +materialized: table\n")
    (project / "profiles.yml").write_text(
        f"resp:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        f"      path: {project / 'resp.duckdb'}\n      keep_open: false\n      threads: 1\n")
    for name, shift in (("resp_a", 60), ("resp_b", 120)):
        (project / "models" / f"{name}.sql").write_text(MODEL.format(n=ENTITIES, shift=shift))
    subprocess.run([str(BIN / "dbt"), "run", "--project-dir", str(project), "--profiles-dir",
                    str(project), "--quiet"], check=True, cwd=project)
    return project


def bare_reader(online: Any, features: list[str]) -> Callable[[list[int]], list]:
    """The bare read of the entities ``features`` need, the one place that knows the key
    layout: each entity's bucket and field placed as the store places them, one raw Lua call
    (``raw_redis.raw_script``)
    of HGETs (one round trip, like the store's read), each blob decoded by ``Codec.decode``."""
    from dbt_features.serving.codec import Codec, Schema

    from raw_redis import raw_script

    client = online.client
    script = raw_script(client)
    views = list(dict.fromkeys(f.split(":")[0] for f in features))
    placed = []
    for view in views:
        gen, text = client.hmget(online.keys.meta(view), "gen", "schema")
        schema = Schema.parse(text)
        placed.append((online.keys.generation(view, gen.decode()), schema.buckets,
                       Codec(schema).decode))

    def read(ids: list[int]) -> list:
        keys, fields, decoders = [], [], []
        for base, buckets, decode in placed:
            for i in ids:
                quotient, bucket = divmod(i, buckets)
                keys.append(base + str(bucket))
                fields.append(quotient)
            decoders += [decode] * len(ids)
        blobs = script(keys, fields)
        return [None if blob is None else decode(blob) for decode, blob in zip(decoders, blobs)]

    return read


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def bench_case(online: Any, features: list[str], rounds: int, reads: int) -> dict[str, Any]:
    bare = bare_reader(online, features)
    get = online.get_online_features
    # The entity rows are built inside the timed calls of our paths (as a caller would).
    paths: dict[str, Callable[[list[int]], Any]] = {
        "bare": bare,
        "dict": lambda ids: get(features, [{"entity_id": i} for i in ids]).to_dict(),
        "arrow": lambda ids: get(features, [{"entity_id": i} for i in ids]).to_arrow(),
        "read": lambda ids: get(features, [{"entity_id": i} for i in ids]),
    }
    names = list(paths)
    rng = random.Random(len(features))
    for _ in range(200):
        ids = rng.sample(range(1, ENTITIES + 1), BATCH)
        for fn in paths.values():
            fn(ids)
    stats: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    ratios: dict[str, list[float]] = {}
    for _round in range(rounds):
        timings: dict[str, list[float]] = {n: [] for n in names}
        gc.collect()
        for k in range(reads):
            ids = rng.sample(range(1, ENTITIES + 1), BATCH)
            order = names[k % len(names):] + names[:k % len(names)]  # rotate who goes first
            for name in order:
                fn = paths[name]
                started = time.perf_counter()
                fn(ids)
                timings[name].append(time.perf_counter() - started)
        for name, values in timings.items():
            stats[name].append((statistics.median(values), _p99(values)))
        for name in names[1:]:
            for q, label in ((0, "p50"), (1, "p99")):
                ratios.setdefault(f"{name}_{label}", []).append(
                    stats[name][-1][q] / stats["bare"][-1][q])
    return {"ms": {n: tuple(statistics.median(s[q] for s in stats[n]) * 1000 for q in (0, 1))
                   for n in names},
            "ratios": {k: (statistics.median(v), sorted(v)) for k, v in ratios.items()}}


def report(title: str, result: dict[str, Any]) -> list[bool]:
    print(f"\n{title}")
    for name, (p50, p99) in result["ms"].items():
        print(f"  {name:<6} p50 {p50:.3f} ms  p99 {p99:.3f} ms")
    met = []
    for key, (ratio, per_round) in result["ratios"].items():
        path, stat = key.split("_")
        if path == "read":
            print(f"  read alone / bare {stat}: {ratio:.2f} (reference)")
            continue
        ok = ratio <= TARGET
        met.append(ok)
        rounds = ", ".join(f"{r:.2f}" for r in per_round)
        what = "to_dict" if path == "dict" else "to_arrow"
        print(f"  read + {what:<8} / bare {stat}: {ratio:.2f}  (target <= {TARGET}: "
              f"{'met' if ok else 'MISSED'}; rounds {rounds})")
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reads", type=int, default=1000, help="requests per round and path")
    args = parser.parse_args()

    from dbt_features.store import FeatureStore

    with synced_project("resp") as project:
        store = FeatureStore(project_dir=str(project))
        import pyarrow  # noqa: F401  - imported once, before timing (as in a warm server)

        online = store.online
        one = [f"resp_a:{f}" for f in FEATURES]
        two = [f"resp_a:{f}" for f in FEATURES[::2]] + [f"resp_b:{f}" for f in FEATURES[1::2]]
        print(f"{BATCH} entities x 10 features; {args.rounds} rounds x {args.reads} requests per "
              "path, rotating order; medians over rounds")
        met = report("one view (resp_a:*, 10 features)",
                     bench_case(online, one, args.rounds, args.reads))
        met += report("two views (5 features of each)",
                      bench_case(online, two, args.rounds, args.reads))
        print(f"\n{sum(met)} of {len(met)} targets met")
        online.close()


if __name__ == "__main__":
    main()
