"""Served-value log benchmark: read latency with every request logged against without.

    .venv/bin/python tests/benchmarks/bench_served_log.py                 # 9 rounds x 1000
    .venv/bin/python tests/benchmarks/bench_served_log.py --rounds 5 --requests 300   # quicker

Builds the throwaway project of ``bench_responses.py`` (two online views of 10 features over
5,000 entities, real `dbt run`, DuckDB), syncs it to the real Redis at 127.0.0.1:6379 under a
unique prefix (deleted at the end), and requests 10 features (5 of each view) for 1 and for
100 random entities:

1. in process: ``get_online_features`` of a store without the log against one whose reads are
   all logged (``served_log=ServedLogOptions()``, sample rate 1.0), each in its own
   ``OnlineStore``; rounds alternate which side goes first. On a single Redis each logged
   read's script writes its entry (the cost measured is the read's, and Redis's);
   ``flush`` after the logged side's rounds only matters on a Redis Cluster, where a writer
   thread drains a buffer.
2. over HTTP: two feature servers (``open_server``, one with the log), one keep-alive client
   sending the same requests to each, rounds alternating; the latency seen by the client.

Per round and side: p50 and p99 of the per-request wall time. Printed: the medians over rounds,
and the median of the per-round p99 (and p50) ratios logged / unlogged, with the target
(p99 <= 1.2x) met or missed; the load average before and after.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).parent))
from bench_http import start_server  # noqa: E402
from bench_responses import ENTITIES, FEATURES as NAMES, synced_project  # noqa: E402

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
FEATURES = [f"resp_a:{f}" for f in NAMES[::2]] + [f"resp_b:{f}" for f in NAMES[1::2]]
TARGET = 1.2
MAX_ENTRIES = 50_000
"""The benchmark's stream bound (100-entity entries are ~20 KB each)."""

SERVER = """
import sys
from dbt_features.store import FeatureStore
from dbt_features.serving.config import resolve_config
from dbt_features.serving.served_log import ServedLogOptions
from dbt_features.serving.server import open_server
from dbt_features.serving.serving_process import bind, run
store = FeatureStore(sys.argv[1])
app = open_server(store.registry, resolve_config(store.project))
if sys.argv[3] == "logged":
    app.online.enable_served_log(ServedLogOptions(max_entries=int(sys.argv[4])))
run(app, bind("127.0.0.1", int(sys.argv[2])))
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(calls: list[Callable[[], Any]]) -> tuple[float, float]:
    """p50 and p99 in ms of running each call once."""
    wall = []
    for call in calls:
        started = time.perf_counter()
        call()
        wall.append(time.perf_counter() - started)
    return percentile(wall, 0.5) * 1000, percentile(wall, 0.99) * 1000


def compare(sides: dict[str, Callable[[list[int]], Callable[[], Any]]],
            after: dict[str, Callable[[], None]], n: int, rounds: int,
            requests: int) -> dict[str, Any]:
    """Rounds alternating the order of the sides ``plain`` and ``logged``; ``after[side]()``
    runs after each of that side's rounds, before the next one starts (untimed)."""
    rng = random.Random(n)
    per_round: dict[str, list[tuple[float, float]]] = {"plain": [], "logged": []}
    for r in range(rounds):
        entity_lists = [rng.sample(range(1, ENTITIES + 1), n) for _ in range(requests)]
        for side in (("plain", "logged") if r % 2 == 0 else ("logged", "plain")):
            calls = [sides[side](entities) for entities in entity_lists]
            calls[0]()  # untimed: (re)opens a connection the server closed while idle
            per_round[side].append(timed(calls))
            after[side]()
    p50 = [lg[0] / pl[0] for pl, lg in zip(per_round["plain"], per_round["logged"])]
    p99 = [lg[1] / pl[1] for pl, lg in zip(per_round["plain"], per_round["logged"])]
    return {
        "plain": tuple(statistics.median(x[i] for x in per_round["plain"]) for i in (0, 1)),
        "logged": tuple(statistics.median(x[i] for x in per_round["logged"]) for i in (0, 1)),
        "p50_ratio": statistics.median(p50), "p99_ratio": statistics.median(p99),
        "p99_ratios": sorted(p99),
    }


def show(label: str, n: int, c: dict[str, Any]) -> None:
    verdict = "met" if c["p99_ratio"] <= TARGET else "MISSED"
    print(f"{label} {n:>3} entities x 10 features: without log p50 {c['plain'][0]:.3f} ms, "
          f"p99 {c['plain'][1]:.3f} ms; logged p50 {c['logged'][0]:.3f} ms, p99 "
          f"{c['logged'][1]:.3f} ms; ratio p50 {c['p50_ratio']:.2f}, p99 {c['p99_ratio']:.2f} "
          f"(target <= {TARGET}: {verdict}; per-round p99 ratios "
          f"{', '.join(f'{r:.2f}' for r in c['p99_ratios'])})", flush=True)


def in_process(project: Path, rounds: int, requests: int) -> None:
    from dbt_features.serving.served_log import ServedLogOptions
    from dbt_features.store import FeatureStore

    plain = FeatureStore(str(project)).online
    logged_store = FeatureStore(str(project), served_log=ServedLogOptions(max_entries=MAX_ENTRIES))
    logged = logged_store.online
    log = logged.served_log
    assert log is not None

    def side(online: Any) -> Callable[[list[int]], Callable[[], Any]]:
        def prepare(entities: list[int]) -> Callable[[], Any]:
            rows = [{"entity_id": e} for e in entities]
            return lambda: online.get_online_features(FEATURES, rows)
        return prepare

    after = {"plain": lambda: None, "logged": lambda: log.flush(30)}
    for n in (1, 100):
        compare({"plain": side(plain), "logged": side(logged)}, after, n, 2, 100)  # warm-up
        show("in process", n, compare({"plain": side(plain), "logged": side(logged)}, after, n,
                                      rounds, requests))
    counts = log.counts()
    print(f"    log: {counts.written:,} entries written, {counts.dropped:,} dropped", flush=True)
    plain.close()
    logged.close()


def over_http(project: Path, rounds: int, requests: int) -> None:
    servers = {mode: start_server(project, mode, str(MAX_ENTRIES), script=SERVER)
               for mode in ("plain", "logged")}
    conns = {mode: http.client.HTTPConnection("127.0.0.1", port, timeout=10)
             for mode, (_, port) in servers.items()}
    try:
        def side(conn: http.client.HTTPConnection) -> Callable[[list[int]], Callable[[], Any]]:
            def prepare(entities: list[int]) -> Callable[[], Any]:
                body = json.dumps({"features": FEATURES, "entities": {"entity_id": entities}})

                def send() -> None:
                    for attempt in range(2):
                        try:
                            conn.request("POST", "/get-online-features", body.encode(),
                                         {"Content-Type": "application/json"})
                            response = conn.getresponse()
                            break
                        except (ConnectionError, http.client.HTTPException):
                            conn.close()  # keep-alive timed out while the other side ran
                            if attempt:
                                raise
                    response.read()
                    assert response.status == 200, response.status
                return send
            return prepare

        settle = {mode: (lambda: time.sleep(0.2)) for mode in conns}  # the writer catches up
        sides = {mode: side(conn) for mode, conn in conns.items()}
        for n in (1, 100):
            compare(sides, settle, n, 2, 100)  # warm-up
            show("HTTP      ", n, compare(sides, settle, n, rounds, requests))
        conns["logged"].request("GET", "/metrics")
        text = conns["logged"].getresponse().read().decode()
        lines = [line for line in text.splitlines() if line.startswith("dbt_features_served_log")]
        print("    server's log: " + "; ".join(lines), flush=True)
    finally:
        for conn in conns.values():
            conn.close()
        for server, _port in servers.values():
            server.terminate()
            server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--requests", type=int, default=1000, help="per round and side")
    parser.add_argument("--only", choices=("in-process", "http"), default=None)
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with synced_project("log") as project:
        print(f"{args.rounds} rounds x {args.requests} requests per side, alternating; medians "
              "over rounds", flush=True)
        if args.only in (None, "in-process"):
            in_process(project, args.rounds, args.requests)
        if args.only in (None, "http"):
            over_http(project, args.rounds, args.requests)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)


if __name__ == "__main__":
    main()
