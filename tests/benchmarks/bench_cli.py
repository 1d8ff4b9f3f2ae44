"""Cold start of the CLI: `dbt-features get` against `python -c "import dbt.cli.main"`.

    .venv/bin/python tests/benchmarks/bench_cli.py            # 9 runs of each
    .venv/bin/python tests/benchmarks/bench_cli.py --runs 5

Builds a copy of the sample project with data ending today (the real `dbt run`, DuckDB), syncs
it into the real Redis at 127.0.0.1:6379 under a key prefix of its own (deleted at the end) and
runs `dbt-features list` once, so that target/feature_registry.json is current. Then it times
RUNS runs of each command, every run a fresh process, the two commands alternating (the machine
is shared: both see the same load), after one untimed run of each. Prints the median wall time
of each, and their ratio; the target is `get` <= 25 % of the dbt import (exit 1 if missed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
BIN = Path(sys.executable).parent
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
TARGET = 0.25

GET = [str(BIN / "dbt-features"), "get", "customer_spend", "--entity", "customer_id=42"]
DBT_IMPORT = [sys.executable, "-c", "import dbt.cli.main"]


def wall_time(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def build(root: Path) -> tuple[Path, dict[str, str]]:
    """The built sample copy and the environment pointing at it and at our Redis prefix."""
    from helpers import recent_copy, run_dbt

    project = recent_copy(root / "sample_project")
    env = {**os.environ, "DBT_FEATURES_SAMPLE_DUCKDB": str(project / "target" / "sample.duckdb"),
           "DBT_FEATURES_REDIS_URL": REDIS_URL,
           "DBT_FEATURES_REDIS_PREFIX": f"dbtf_bench_cli_{uuid.uuid4().hex[:8]}"}
    run_dbt(project, "run", env=env)
    for command in (["sync"], ["list"]):
        subprocess.run([str(BIN / "dbt-features"), *command], cwd=project, env=env, check=True,
                       stdout=subprocess.DEVNULL)
    return project, env


def drop_keys(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=10_000))
    for i in range(0, len(keys), 5000):
        client.unlink(*keys[i:i + 5000])
    client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="timed runs of each command")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_cli_") as tmp:
        project, env = build(Path(tmp))
        try:
            times: dict[str, list[float]] = {"get": [], "dbt": []}
            for run in range(args.runs + 1):
                got = wall_time(GET, project, env)
                dbt = wall_time(DBT_IMPORT, project, env)
                if run:  # the first of each is a warm-up (file cache, bytecode)
                    times["get"].append(got)
                    times["dbt"].append(dbt)
        finally:
            drop_keys(env["DBT_FEATURES_REDIS_PREFIX"])
    get_s, dbt_s = statistics.median(times["get"]), statistics.median(times["dbt"])
    ratio = get_s / dbt_s
    print(f"cold wall time, median of {args.runs} fresh processes each:")
    print(f"  dbt-features get customer_spend --entity customer_id=42   {get_s:6.3f} s"
          f"   (min {min(times['get']):.3f} s)")
    print(f"  python -c 'import dbt.cli.main'                          {dbt_s:6.3f} s"
          f"   (min {min(times['dbt']):.3f} s)")
    print(f"  get / dbt import = {ratio:.0%} (target <= {TARGET:.0%}: "
          f"{'met' if ratio <= TARGET else 'MISSED'})")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
