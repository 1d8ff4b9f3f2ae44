"""HTTP feature server load benchmark, on loopback only, bounded in time and count.

    .venv/bin/python tests/benchmarks/bench_http.py                  # 30 s per phase
    .venv/bin/python tests/benchmarks/bench_http.py --seconds 10

Builds the sample project with recent data (real `dbt run`, DuckDB), syncs it to the real Redis
at 127.0.0.1:6379 under a unique prefix (deleted at the end), starts the feature server on a
free 127.0.0.1 port, and for each request size (1 and 100 entities, both views, 6 features)
runs CLIENTS concurrent keep-alive clients (in 2 processes) for SECONDS: requests/s, p50/p99
latency, errors (must be 0), server RSS at start and end. The raw baseline is the same read as
an in-process ``OnlineStore.get_online_features`` call (no HTTP, no JSON); the ratio is
HTTP p50 / in-process p50.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
BIN = Path(sys.executable).parent
REDIS_URL = "redis://127.0.0.1:6379/0"
FEATURES = ["customer_spend:avg_amount_30d", "customer_spend:avg_amount_7d",
            "customer_spend:txn_count_7d", "merchant_risk:merchant_txn_count_30d",
            "merchant_risk:merchant_fraud_rate_30d", "merchant_risk:merchant_category"]
MAX_REQUESTS_PER_CLIENT = 2_000_000

SERVER = """
import sys
from dbt_features.store import FeatureStore
from dbt_features.serving.config import resolve_config
from dbt_features.serving.server import bind, open_server, run
store = FeatureStore(sys.argv[1])
app = open_server(store.registry, resolve_config(store.project))
run(app, bind("127.0.0.1", int(sys.argv[2])))
"""


def body(n: int, offset: int) -> bytes:
    customers = [(offset + i) % 500 + 1 for i in range(n)]
    merchants = [(offset + i) % 40 + 1 for i in range(n)]
    return json.dumps({"features": FEATURES,
                       "entities": {"customer_id": customers, "merchant_id": merchants}}).encode()


def client_process(port: int, threads: int, n: int, seconds: float, out: "multiprocessing.Queue") -> None:
    deadline = time.monotonic() + seconds
    results: list[tuple[list[float], int, int]] = []

    def worker(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        payloads = [body(n, k * 97 + i) for i in range(50)]
        latencies: list[float] = []
        errors = done = 0
        while time.monotonic() < deadline and done < MAX_REQUESTS_PER_CLIENT:
            payload = payloads[done % len(payloads)]
            started = time.perf_counter()
            try:
                conn.request("POST", "/get-online-features", payload,
                             {"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    errors += 1
            except (OSError, http.client.HTTPException):
                errors += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            latencies.append(time.perf_counter() - started)
            done += 1
        conn.close()
        results.append((latencies, errors, done))

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.put((sum((r[0] for r in results), []), sum(r[1] for r in results)))


def load(port: int, n: int, seconds: float, clients: int) -> dict[str, float]:
    queue: multiprocessing.Queue = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=client_process,
                                     args=(port, clients // 2, n, seconds, queue))
             for _ in range(2)]
    started = time.monotonic()
    for p in procs:
        p.start()
    latencies: list[float] = []
    errors = 0
    for _ in procs:
        lat, err = queue.get(timeout=seconds + 120)
        latencies += lat
        errors += err
    for p in procs:
        p.join(30)
    elapsed = time.monotonic() - started
    latencies.sort()
    return {"requests": len(latencies), "rps": len(latencies) / elapsed, "errors": errors,
            "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)]}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def baseline(project: Path, n: int, reads: int = 2000) -> float:
    """p50 (ms) of the same read in-process: OnlineStore.get_online_features."""
    from dbt_features.store import FeatureStore

    store = FeatureStore(str(project))
    rows = [{"customer_id": i % 500 + 1, "merchant_id": i % 40 + 1} for i in range(n)]
    store.get_online_features(FEATURES, rows)
    times = []
    for _ in range(reads):
        started = time.perf_counter()
        store.get_online_features(FEATURES, rows)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0, help="per phase (max 120)")
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    seconds = min(args.seconds, 120.0)
    from helpers import recent_copy, run_dbt  # the tests' project builder

    prefix = f"dbtf_bench_http_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        project = recent_copy(Path(tmp) / "sample_project")
        os.environ.update({"DBT_FEATURES_SAMPLE_DUCKDB": str(project / "target" / "sample.duckdb"),
                           "DBT_FEATURES_REDIS_URL": REDIS_URL, "DBT_FEATURES_REDIS_PREFIX": prefix})
        try:
            run_dbt(project, "run")
            subprocess.run([str(BIN / "dbt-features"), "sync"], cwd=project, check=True,
                           capture_output=True)
            base = {n: baseline(project, n) for n in (1, 100)}
            port = free_port()
            server = subprocess.Popen([sys.executable, "-c", SERVER, str(project), str(port)],
                                      cwd=REPO)
            try:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        socket.create_connection(("127.0.0.1", port), 0.5).close()
                        break
                    except OSError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.1)
                load(port, 1, 2, 4)  # warm-up
                start_rss = rss_mb(server.pid)
                for n in (1, 100):
                    r = load(port, n, seconds, args.clients)
                    print(f"{n:>3} entities, {args.clients} clients, {seconds:.0f} s: "
                          f"{r['rps']:,.0f} req/s, p50 {r['p50_ms']:.2f} ms, p99 "
                          f"{r['p99_ms']:.2f} ms, errors {r['errors']} of {r['requests']:,}; "
                          f"in-process p50 {base[n]:.3f} ms (HTTP/in-process p50 "
                          f"{r['p50_ms'] / base[n]:.1f}x)", flush=True)
                    assert r["errors"] == 0, "errors under load"
                for n in (1, 100):  # unloaded latency: one client per process
                    r = load(port, n, min(seconds, 10.0), 2)
                    print(f"{n:>3} entities, 2 clients: {r['rps']:,.0f} req/s, p50 "
                          f"{r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, errors "
                          f"{r['errors']} (HTTP/in-process p50 {r['p50_ms'] / base[n]:.1f}x)",
                          flush=True)
                    assert r["errors"] == 0, "errors under load"
                end_rss = rss_mb(server.pid)
                print(f"server RSS: {start_rss:.1f} MB at start, {end_rss:.1f} MB at end",
                      flush=True)
            finally:
                server.terminate()
                server.wait(10)
        finally:
            import redis

            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(match=f"{prefix}:*", count=10_000))
            for i in range(0, len(keys), 5000):
                client.unlink(*keys[i:i + 5000])


if __name__ == "__main__":
    main()
