"""Online reads on a Redis Cluster against the same reads on a single Redis, in the same run.

    .venv/bin/python tests/benchmarks/bench_cluster.py                      # 200k entities
    .venv/bin/python tests/benchmarks/bench_cluster.py --entities 20000 --reads 300   # quicker

Builds (real `dbt run`, DuckDB) the online benchmark's project (``bench_online.build_project``:
``bench_big`` and ``bench_small``, 10 features each plus a label), starts a private single
redis-server and a private Redis Cluster (three masters with one replica each, the same
redis-server binary and settings but cluster mode; ``tests/adapter/redis_cluster.py``), syncs
the views into both (``sync --full-refresh``, timed: the cluster's includes ``WAIT`` for its
replicas), then times ``get_online_features`` of 1 and 100 entities over both views on each,
after 200 warm-up requests, in ROUNDS rounds of READS requests where each request runs on both
stores back to back in alternating order. Reported: the median over rounds of each store's p50
and p99, and the median of the per-round p99 ratios (cluster / single; target at 100 entities:
1.5x). Both servers are stopped by their pids at the end.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE), str(HERE.parent), str(HERE.parent / "adapter")]

from bench_online import _percentile, build_project, summary  # noqa: E402
from redis_cluster import RedisCluster  # noqa: E402
from redis_process import RedisProcess  # noqa: E402

FEATURES = ["bench_big:*", "bench_small:*"]
TARGET = 1.5


def open_store(project: Path, url: str):
    """A FeatureStore on ``url`` (the environment is read when the store opens)."""
    from dbt_features.store import FeatureStore

    os.environ["DBT_FEATURES_REDIS_URL"] = url
    store = FeatureStore(project_dir=str(project))
    store.online  # noqa: B018 - connect now, with this URL
    return store


def timed_sync(store) -> float:
    started = time.perf_counter()
    store.sync(full_refresh=True)
    return time.perf_counter() - started


def bench_reads(stores: dict, entities: int, iterations: int, rounds: int) -> list[dict]:
    small = max(entities // 10, 1)
    out = []
    for batch in (1, 100):
        rng = random.Random(batch)
        for _ in range(200):
            ids = [{"entity_id": rng.randint(1, small)} for _ in range(batch)]
            for store in stores.values():
                store.get_online_features(FEATURES, ids)
        per_round: dict[str, list[tuple[float, float]]] = {name: [] for name in stores}
        ratios = []
        for _round in range(rounds):
            requests = [[{"entity_id": rng.randint(1, small)} for _ in range(batch)]
                        for _ in range(iterations)]
            timings: dict[str, list[float]] = {name: [] for name in stores}
            gc.collect()
            for k, rows in enumerate(requests):
                order = list(stores) if k % 2 == 0 else list(stores)[::-1]
                for name in order:
                    started = time.perf_counter()
                    stores[name].get_online_features(FEATURES, rows)
                    timings[name].append(time.perf_counter() - started)
            for name, values in timings.items():
                per_round[name].append((statistics.median(values), _percentile(values, 0.99)))
            ratios.append(per_round["cluster"][-1][1] / per_round["single"][-1][1])
        out.append(summary(per_round, ratios, entities=batch))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, default=200_000)
    parser.add_argument("--rows-per-entity", type=int, default=2)
    parser.add_argument("--reads", type=int, default=1000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    os.environ["DBT_FEATURES_REDIS_PREFIX"] = "bench_cluster"
    with tempfile.TemporaryDirectory(prefix="dbtf-bench-cluster-") as tmp:
        project = build_project(Path(tmp), args.entities, args.rows_per_entity)
        with RedisProcess() as single, RedisCluster() as cluster:
            stores = {"single": open_store(project, single.url),
                      "cluster": open_store(project, cluster.url)}
            syncs = {name: timed_sync(store) for name, store in stores.items()}
            reads = bench_reads(stores, args.entities, args.reads, args.rounds)
            for store in stores.values():
                store.online.close()
    result = {"entities": args.entities, "sync_seconds": syncs, "reads": reads}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.entities:,} entities (bench_big) and {args.entities // 10:,} (bench_small); "
          f"{args.rounds} rounds of {args.reads} requests")
    print(f"  sync --full-refresh of both views: single {syncs['single']:.2f} s, cluster "
          f"{syncs['cluster']:.2f} s (ratio {syncs['cluster'] / syncs['single']:.2f})")
    for row in reads:
        verdict = "" if row["entities"] == 1 else (
            f" (target <= {TARGET}: {'met' if row['p99_ratio'] <= TARGET else 'MISSED'})")
        print(f"  {row['entities']:>3} entities x 2 views: single p50 {row['single_p50_ms']:.3f} ms, "
              f"p99 {row['single_p99_ms']:.3f} ms | cluster p50 {row['cluster_p50_ms']:.3f} ms, "
              f"p99 {row['cluster_p99_ms']:.3f} ms | p99 ratio {row['p99_ratio']:.2f}{verdict}; "
              f"rounds {', '.join(f'{r:.2f}' for r in row['p99_ratios'])}")


if __name__ == "__main__":
    main()
