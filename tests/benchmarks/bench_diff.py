"""Definition-diff benchmark: `diff --state` against dbt's own file checksums.

    .venv/bin/python tests/benchmarks/bench_diff.py                  # 200 views x 10 features
    .venv/bin/python tests/benchmarks/bench_diff.py --views 50       # quicker

Generates a throwaway dbt project of VIEWS feature views (10 windowed features each, types
declared in YAML), compiles it with the real `dbt compile` into two targets (DuckDB `prod` in
schema `analytics`, and `dev` with one feature's window changed from 30 to 7 days), then times,
in this process, on the two manifests:

* raw baseline: what dbt's ``state:modified`` does — read both manifest.json files and compare
  every node's file checksum (it sees that a *file* changed, not which feature or how);
* ``diff``: read both sides (registries built from the manifests), recompute every view's and
  feature's fingerprint (sqlglot parse, qualify, projection pushdown per feature), compare.

Prints the median of REPEAT runs of each and the ratio. Also checks the answer: exactly one
breaking change, on the feature whose window changed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
DBT = str(Path(sys.executable).parent / "dbt")

PROFILES = """bench:
  target: dev
  outputs:
    dev: {{type: duckdb, path: "{root}/dev.duckdb", threads: 2}}
    prod: {{type: duckdb, path: "{root}/prod.duckdb", schema: analytics, threads: 2}}
"""
PROJECT = "name: bench\nversion: '1.0'\nconfig-version: 2\nprofile: bench\n"
SOURCE = "select i as customer_id, i * 1.5 as amount, now() as transaction_at from range(10) as s(i)\n"


def view_sql(i: int, first_window: str) -> str:
    windows = [first_window] + [f"{d} days" for d in range(2, 11)]
    features = ",\n".join(
        f"    avg(amount) over w{k} as f{i}_{k}" for k in range(len(windows))
    )
    frames = ",\n".join(
        f"    w{k} as (partition by customer_id order by transaction_at\n"
        f"        range between interval '{w}' preceding and current row)"
        for k, w in enumerate(windows)
    )
    return (
        "{{ config(meta={'feature_store': {'entity': 'customer_id', 'timestamp': 'feature_at', "
        "'ttl': '30d'}}) }}\n"
        f"select\n    customer_id,\n    transaction_at as feature_at,\n{features}\n"
        "from {{ ref('transactions') }}\n"
        f"window\n{frames}\n"
    )


def schema_yml(views: int) -> str:
    lines = ["version: 2", "models:"]
    for i in range(views):
        lines += [f"  - name: view_{i}", "    columns:",
                  "      - {name: customer_id, data_type: bigint}",
                  "      - {name: feature_at, data_type: timestamp}"]
        lines += [f"      - {{name: f{i}_{k}, data_type: double}}" for k in range(10)]
    return "\n".join(lines) + "\n"


def make_project(root: Path, views: int) -> None:
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text(PROJECT)
    (root / "profiles.yml").write_text(PROFILES.format(root=root))
    (root / "models" / "transactions.sql").write_text(SOURCE)
    (root / "models" / "schema.yml").write_text(schema_yml(views))
    for i in range(views):
        (root / "models" / f"view_{i}.sql").write_text(view_sql(i, "30 days"))


def compile_into(root: Path, target: str, target_path: str) -> Path:
    subprocess.run(
        [DBT, "compile", "--project-dir", str(root), "--profiles-dir", str(root), "--target",
         target, "--target-path", target_path, "--quiet"],
        check=True, cwd=root,
    )
    return root / target_path


def baseline(prod: Path, dev: Path) -> int:
    a = json.loads((prod / "manifest.json").read_text())["nodes"]
    b = json.loads((dev / "manifest.json").read_text())["nodes"]
    return sum(
        1 for uid in a.keys() | b.keys()
        if (a.get(uid) or {}).get("checksum") != (b.get(uid) or {}).get("checksum")
    )


def ours(prod: Path, dev: Path):
    from dbt_features.diff import compare
    from dbt_features.state import load_state

    state, _ = load_state(prod)
    current, _ = load_state(dev)
    return compare(state, current)


def timed(func, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--views", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_diff_")) / "project"
    try:
        make_project(root, args.views)
        start = time.perf_counter()
        prod = compile_into(root, "prod", "target_prod")
        (root / "models" / "view_0.sql").write_text(view_sql(0, "7 days"))
        dev = compile_into(root, "dev", "target_dev")
        print(f"dbt compile x2 of {args.views} views: {time.perf_counter() - start:.1f}s")

        base_s, changed_files = timed(lambda: baseline(prod, dev), args.repeat)
        ours_s, result = timed(lambda: ours(prod, dev), args.repeat)
        blocking = [(c.view, c.feature) for c in result.blocking]
        assert blocking == [("view_0", "f0_0")], blocking
        assert changed_files == 1, changed_files
        features = args.views * 10
        print(f"raw baseline (manifest checksums): {base_s * 1000:8.1f} ms  "
              f"-> {changed_files} file changed")
        print(f"dbt-features diff:                 {ours_s * 1000:8.1f} ms  "
              f"-> {len(blocking)} breaking change: {blocking[0][0]}:{blocking[0][1]}")
        print(f"ratio diff/baseline: {ours_s / base_s:.1f}x  "
              f"({ours_s / (2 * features) * 1e6:.0f} us per feature fingerprint, "
              f"{args.views} views x 10 features per side)")
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
