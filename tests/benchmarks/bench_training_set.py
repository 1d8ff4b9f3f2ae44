"""Benchmark: ``FeatureStore.get_training_set`` against the raw DuckDB ASOF LEFT JOIN.

    .venv/bin/python tests/benchmarks/bench_training_set.py [--repeat 3] [--workdir DIR]

Builds (once, cached in --workdir) a dbt project on DuckDB with three feature views of 10M rows
each (100k entities, 5 float features, unique (entity, time)) and a 1M-row spine, then times,
on the same data in the same run:

* raw:  ``select s.*, f.f1..f5 from spine s asof left join view f on key and s.ts >= f.ts``,
        the spine registered as Arrow, fetched to Arrow (no ttl, no tie-break, no ordering),
        timed from opening the DuckDB file to closing it, as get_training_set does;
* ours: ``get_training_set(spine, ["v1:*"])`` (ttl, exact tie-break, spine order, types).

Each measurement runs in a fresh subprocess, so its peak RSS (``ru_maxrss``) is its own; both
kinds load the same Arrow spine first. Times and peaks are medians of --repeat runs,
alternating the paths (the machine is shared: expect noise). Prints the ratios to the targets:
one view <= 1.3x the raw time and peak memory, three views <= 1.3x the sum of three raw joins.
CPU time (all threads, ``time.process_time``) is printed too: on a shared machine it moves less
than wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

N_SPINE = 1_000_000
N_ROWS = 10_000_000
N_ENTITIES = 100_000
VIEWS = ("v1", "v2", "v3")

VIEW_SQL = """
{{{{ config(meta={{'feature_store': {{'entity': 'e{n}', 'timestamp': 'ts', 'ttl': '30d'}}}}) }}}}
-- Each entity has one row per 100000-second bucket: (entity, ts) is unique.
select
    cast((i * {mult}) % {entities} as bigint) as e{n},
    timestamp '2026-01-01' + to_seconds(cast((i // {entities}) * 100000 + hash(i) % 100000 as bigint)) as ts,
    random() as f1, random() as f2, random() as f3, random() as f4, random() as f5
from range({rows}) as t(i)
"""

SPINE_SQL = """
select
    cast(hash(j * 7) % {entities} as bigint) as e1,
    cast(hash(j * 11) % {entities} as bigint) as e2,
    cast(hash(j * 13) % {entities} as bigint) as e3,
    timestamp '2026-01-01' + to_seconds(cast(hash(j * 3) % 10000000 as bigint)) as label_ts,
    cast(hash(j) % 2 as bigint) as label
from range({n}) as t(j)
"""


def build(workdir: Path) -> Path:
    """The dbt project and its data (skipped when already built)."""
    project = workdir / "bench_project"
    spine = workdir / "spine.parquet"
    if spine.is_file() and (project / "bench.duckdb").is_file():
        return project
    (project / "models").mkdir(parents=True, exist_ok=True)
    (project / "dbt_project.yml").write_text(
        "name: bench\nversion: '1.0'\nconfig-version: 2\nprofile: bench\n"
        "models:\n  bench:\n    +materialized: table\n")
    (project / "profiles.yml").write_text(
        "bench:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        f"      path: '{project / 'bench.duckdb'}'\n      keep_open: false\n      threads: 1\n")
    for n, (name, mult) in enumerate(zip(VIEWS, (1, 7, 13)), start=1):
        (project / "models" / f"{name}.sql").write_text(
            VIEW_SQL.format(n=n, mult=mult, entities=N_ENTITIES, rows=N_ROWS))
    (project / "models" / "spine.sql").write_text(SPINE_SQL.format(n=N_SPINE, entities=N_ENTITIES))
    print(f"building {len(VIEWS)} views x {N_ROWS:,} rows and a {N_SPINE:,}-row spine with dbt ...",
          flush=True)
    dbt = str(Path(sys.executable).parent / "dbt")
    subprocess.run([dbt, "run", "--project-dir", str(project), "--profiles-dir", str(project),
                    "--quiet"], check=True)
    import duckdb

    con = duckdb.connect(str(project / "bench.duckdb"), read_only=True)
    con.sql("select * from spine").write_parquet(str(spine))
    con.close()
    return project


def child(kind: str, views: int, workdir: Path) -> None:
    """One measurement, in this (fresh) process; prints JSON."""
    import pyarrow.parquet as pq

    project = workdir / "bench_project"
    spine = pq.read_table(workdir / "spine.parquet")
    names = VIEWS[:views]
    if kind == "raw":
        import duckdb

        base = _rss_mb()
        # Like get_training_set: open the file read-only, register the spine, join, close.
        t0, cpu0 = time.perf_counter(), time.process_time()
        con = duckdb.connect(str(project / "bench.duckdb"), read_only=True)
        con.register("spine_arrow", spine)
        tables = [con.sql(raw_join(name, f"e{n}")).to_arrow_table()
                  for n, name in enumerate(names, start=1)]
        con.close()
        result = {"seconds": time.perf_counter() - t0, "cpu": time.process_time() - cpu0}
        assert all(t.num_rows == spine.num_rows for t in tables)
    else:
        from dbt_features import FeatureStore

        store = FeatureStore(project_dir=str(project))
        store.registry  # noqa: B018 - loaded once, as any session would
        base = _rss_mb()
        t0, cpu0 = time.perf_counter(), time.process_time()
        table = store.get_training_set(spine, [f"{name}:*" for name in names],
                                       spine_timestamp="label_ts", full_feature_names=True)
        result = {"seconds": time.perf_counter() - t0, "cpu": time.process_time() - cpu0}
        assert table.num_rows == spine.num_rows
    print(json.dumps({**result, "peak_mb": _rss_mb(), "base_mb": base}))


def raw_join(view: str, key: str) -> str:
    """The baseline: a bare ASOF LEFT JOIN (no ttl, no tie-break, no ordering)."""
    from sqlglot import exp

    on = exp.and_(
        exp.EQ(this=exp.column(key, "s"), expression=exp.column(key, "f")),
        exp.GTE(this=exp.column("label_ts", "s"), expression=exp.column("ts", "f")),
    )
    query = (
        exp.select(exp.Star(), *(exp.column(f"f{i}", "f") for i in range(1, 6)))
        .from_(exp.alias_(exp.to_table("spine_arrow"), "s"))
        .join(exp.alias_(exp.to_table(view), "f"), on=on, join_type="ASOF LEFT")
    )
    query.expressions[0].replace(exp.Column(this=exp.Star(), table=exp.to_identifier("s")))
    return query.sql(dialect="duckdb")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(kind: str, views: int, workdir: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", kind, "--views", str(views),
                          "--workdir", str(workdir)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path,
                        default=Path(os.environ.get("TMPDIR", "/tmp")) / "dbt_features_bench")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", choices=["raw", "ours"])
    parser.add_argument("--views", type=int, default=1)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.views, args.workdir)
        return
    build(args.workdir)
    runs: dict[tuple[str, int], list[dict[str, float]]] = {}
    for _ in range(args.repeat):
        for views in (1, 3):
            for kind in ("raw", "ours"):
                got = measure(kind, views, args.workdir)
                runs.setdefault((kind, views), []).append(got)
                print(f"  {kind:4s} {views} view(s): {got['seconds']:.2f} s "
                      f"(cpu {got['cpu']:.2f} s), peak RSS {got['peak_mb']:.0f} MB", flush=True)
    print(f"\n{N_SPINE:,} spine rows x {N_ROWS:,} feature rows per view "
          f"({N_ENTITIES:,} entities, 5 float features); median of {args.repeat} runs, and the "
          "median of the ratios of runs made one after the other:")
    print(f"{'':22s}{'raw ASOF':>10s}{'ours':>8s}{'ratio':>7s}{'paired':>8s}  target")
    for views in (1, 3):
        raw, ours = runs[("raw", views)], runs[("ours", views)]
        for key, label, target in (("seconds", "time (s)", "<= 1.30"),
                                   ("cpu", "CPU time (s)", "(all threads)"),
                                   ("peak_mb", "peak RSS (MB)", "<= 1.30" if views == 1 else "")):
            a, b = median(r[key] for r in raw), median(r[key] for r in ours)
            paired = median(o[key] / r[key] for r, o in zip(raw, ours))
            digits = 0 if key == "peak_mb" else 2
            print(f"{f'{views} view(s), {label}':22s}{a:10.{digits}f}{b:8.{digits}f}{b / a:7.2f}"
                  f"{paired:8.2f}  {target}")

if __name__ == "__main__":
    main()
