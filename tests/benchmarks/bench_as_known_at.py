"""Benchmark: "as known at" training sets against the default ones and the raw DuckDB ASOF join.

    .venv/bin/python tests/benchmarks/bench_as_known_at.py [--repeat 3] [--workdir DIR]
        [--rows 10000000] [--spine 1000000] [--entities 100000]

Builds (once per size, cached in --workdir) a DuckDB file with one feature view of --rows rows
(--entities entities, 5 float features, a ttl of 30 days, and a ``created_timestamp`` 0 to 2.3
days after each row's event time: late rows, many created after the spine times that want them)
and a spine of --spine rows, then times on the same data in the same run, each in a fresh
subprocess:

* raw:     ``select s.*, f.f1..f5 from spine s asof left join view f on key and s.ts >= f.ts``,
           the spine registered as Arrow, fetched to Arrow (no ttl, no tie-break, no
           ordering, no created time): the baseline of bench_training_set.py;
* default: ``get_training_set(spine, ["v:*"])`` (ASOF form, ttl, tie-break, spine order);
* known:   the same with ``as_known_at=True`` (ASOF on the rows' known times, a running max of
           event time, then the fetch checks created times: ``pit_known``);
* window:  the same, forced into the portable window form (every row of the entity in the time
           window joined, then ranked), the alternative measured against it.

Prints the medians and, per round, the ratio to that round's raw run (its median: "paired").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))  # training_support: the hand-made views of the tests
KINDS = ("raw", "default", "known", "window")

VIEW_SQL = """
create or replace table v as
select
    cast(i % {entities} as bigint) as e,
    timestamp '2026-01-01' + to_seconds(cast((i // {entities}) * 100000 + hash(i) % 100000 as bigint)) as ts,
    timestamp '2026-01-01' + to_seconds(cast((i // {entities}) * 100000 + hash(i) % 100000
                                             + hash(i * 5) % 200000 as bigint)) as created_at,
    random() as f1, random() as f2, random() as f3, random() as f4, random() as f5
from range({rows}) as t(i)
"""

SPINE_SQL = """
select
    cast(hash(j * 7) % {entities} as bigint) as e,
    timestamp '2026-01-01' + to_seconds(cast(hash(j * 3) % {span} as bigint)) as label_ts,
    cast(hash(j) % 2 as bigint) as label
from range({n}) as t(j)
"""


def paths(args: argparse.Namespace) -> tuple[Path, Path]:
    stem = f"aka_{args.rows}_{args.spine}_{args.entities}"
    return args.workdir / f"{stem}.duckdb", args.workdir / f"{stem}.spine.parquet"


def build(args: argparse.Namespace) -> None:
    import duckdb

    db, spine = paths(args)
    if db.is_file() and spine.is_file():
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"building a view of {args.rows:,} rows and a {args.spine:,}-row spine ...", flush=True)
    con = duckdb.connect(str(db))
    con.sql(VIEW_SQL.format(entities=args.entities, rows=args.rows))
    span = (args.rows // args.entities) * 100000
    con.sql(SPINE_SQL.format(entities=args.entities, n=args.spine, span=span)).write_parquet(str(spine))
    con.close()


def registry():  # type: ignore[no-untyped-def]
    from training_support import make_registry, make_view

    view = make_view("v", "main", keys=[("e", "int64", "BIGINT")], timestamp=("ts", "TIMESTAMP"),
                     created="created_at", created_type="TIMESTAMP", ttl=30 * 86400,
                     features=[(f"f{i}", "double", "DOUBLE") for i in range(1, 6)])
    return make_registry([view], "duckdb")


def child(kind: str, args: argparse.Namespace) -> None:
    """One measurement, in this (fresh) process; prints JSON."""
    import pyarrow.parquet as pq

    db, spine_path = paths(args)
    spine = pq.read_table(spine_path)
    if kind == "raw":
        import duckdb

        t0 = time.perf_counter()
        con = duckdb.connect(str(db), read_only=True)
        con.register("spine_arrow", spine)
        table = con.sql("select s.*, f.f1, f.f2, f.f3, f.f4, f.f5 from spine_arrow as s "
                        "asof left join v as f on s.e = f.e and s.label_ts >= f.ts").to_arrow_table()
        con.close()
    else:
        from dbt_features.training import get_training_set
        from training_support import duckdb_warehouse

        reg = registry()
        if kind == "window":
            from dataclasses import replace

            from dbt_features import pit

            pit.QUIRKS["duckdb"] = replace(pit.QUIRKS["duckdb"], asof=False)
        t0 = time.perf_counter()
        table = get_training_set(reg, lambda: duckdb_warehouse(db), spine, ["v:*"],
                                 spine_timestamp="label_ts", as_known_at=kind != "default")
    seconds = time.perf_counter() - t0
    assert table.num_rows == spine.num_rows
    print(json.dumps({"seconds": seconds}))


def measure(kind: str, args: argparse.Namespace) -> float:
    out = subprocess.run([sys.executable, __file__, "--child", kind, "--workdir", str(args.workdir),
                          "--rows", str(args.rows), "--spine", str(args.spine),
                          "--entities", str(args.entities)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path,
                        default=Path(os.environ.get("TMPDIR", "/tmp")) / "dbt_features_bench")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--spine", type=int, default=1_000_000)
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--child", choices=KINDS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args)
        return
    build(args)
    runs: dict[str, list[float]] = {k: [] for k in KINDS}
    for round_ in range(args.repeat):
        start = round_ % len(KINDS)
        for kind in KINDS[start:] + KINDS[:start]:
            runs[kind].append(measure(kind, args))
            print(f"  {kind:8s} {runs[kind][-1]:.2f} s", flush=True)
    print(f"\n{args.spine:,} spine rows x {args.rows:,} feature rows ({args.entities:,} entities); "
          f"load average {os.getloadavg()[0]:.2f}; median of {args.repeat} rounds, and (paired) "
          "the median of each round's ratio to that round's raw run:")
    raw = runs["raw"]
    for kind in KINDS:
        paired = median(k / r for k, r in zip(runs[kind], raw))
        print(f"  {kind:8s} {median(runs[kind]):7.2f} s   {median(runs[kind]) / median(raw):6.2f}x"
              f"   paired {paired:6.2f}x")


if __name__ == "__main__":
    main()
