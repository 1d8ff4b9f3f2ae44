"""Benchmark: replaying 1M served rows (``verify --served``) against the raw point-in-time join.

    .venv/bin/python tests/benchmarks/bench_replay.py [--rows 1000000] [--repeat 3] [--workdir DIR]

Builds (once, cached in --workdir) a dbt project on DuckDB with one feature view of 2M rows
(100k entities, 3 double features and a string, a 30-day ttl) and a served log of --rows rows
in the exported format (``<dir>/v1/part.parquet``): entities and request times drawn at random,
each served value the view's value at that time (from a raw ASOF join), 1% of the doubles
changed, a few rows not found. Then times, on the same data in the same run:

* raw:    the served log's keys and times registered in DuckDB as Arrow and ``ASOF LEFT JOIN``ed
          with the view (no ttl, no tie-break, no ordering), fetched to Arrow: the bare
          point-in-time join a replay cannot do without;
* replay: ``FeatureStore.verify_served(dir)``: reading the Parquet files, the training-set
          engine on that spine (ttl, exact tie-break, the event time as one more column), the
          comparison of every served value in Arrow/numpy, the causes and the report.

Each kind runs --repeat times, alternating; prints the medians, the ratio replay / raw, the
machine's load average, and checks the replay found exactly the mismatches planted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from statistics import median

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))
from bench_training_set import dbt  # noqa: E402
N_VIEW = 2_000_000
N_ENTITIES = 100_000

VIEW_SQL = """
{{ config(meta={'feature_store': {'entity': 'e', 'timestamp': 'ts', 'ttl': '30d', 'online': true}}) }}
-- Each entity has one row per 100000-second bucket: (entity, ts) is unique.
select
    cast(i % 100000 as bigint) as e,
    timestamp '2026-01-01' + to_seconds(cast((i // 100000) * 100000 + hash(i) % 100000 as bigint)) as ts,
    random() as f1, random() as f2, random() as f3,
    'c' || cast(hash(i) % 17 as varchar) as f4
from range(2000000) as t(i)
"""

# The served log: request times over the view's span, values from a raw ASOF join (what an
# up-to-date online store would have served), 1% of f1 changed, entities past the last id not
# found.
LOG_SQL = """
with requests as (
    select
        cast(hash(j * 7) % {entities_plus} as bigint) as e,
        timestamp '2026-01-01' + to_seconds(cast(hash(j * 3) % 1900000 as bigint) + 100000) as request_time,
        j
    from range({rows}) as t(j)
),
served as (
    select r.*, v.ts, v.f1, v.f2, v.f3, v.f4
    from requests r asof left join v1 v on r.e = v.e and r.request_time >= v.ts
)
select
    timezone('UTC', request_time) as request_time,
    'r' || cast(j as varchar) as request_id,
    e,
    '1.bench' as generation,
    cast(null as varchar) as fingerprint,
    case when ts is null then 'not_found' else 'present' end as status,
    timezone('UTC', ts) as event_timestamp,
    ['f1', 'f2', 'f3', 'f4'] as served_features,
    case when j % 100 = 0 then f1 + 1 else f1 end as f1,
    f2, f3, f4
from served
order by j
"""


def build(workdir: Path, rows: int) -> tuple[Path, Path]:
    """The project and the served log folder (built only when missing)."""
    project = workdir / "replay_project"
    log = workdir / f"served_{rows}"
    (project / "models").mkdir(parents=True, exist_ok=True)
    (project / "dbt_project.yml").write_text(
        "name: bench\nversion: '1.0'\nconfig-version: 2\nprofile: bench\n"
        "models:\n  bench:\n    +materialized: table\n")
    (project / "profiles.yml").write_text(
        "bench:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        f"      path: '{project / 'bench.duckdb'}'\n      keep_open: false\n      threads: 2\n")
    (project / "models" / "v1.sql").write_text(VIEW_SQL)
    if not (project / "bench.duckdb").is_file():
        print(f"building a view of {N_VIEW:,} rows with dbt ...", flush=True)
        dbt(project, "run")
    if not (log / "v1" / "part.parquet").is_file():
        import duckdb

        print(f"writing a served log of {rows:,} rows ...", flush=True)
        (log / "v1").mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(project / "bench.duckdb"), read_only=True)
        con.execute("set TimeZone = 'UTC'")
        sql = LOG_SQL.format(rows=rows, entities_plus=N_ENTITIES + N_ENTITIES // 50)
        con.sql(sql).write_parquet(str(log / "v1" / "part.parquet"))
        con.close()
    return project, log


def raw(project: Path, log: Path) -> tuple[float, int]:
    """The bare ASOF join of the log's keys and times with the view, into Arrow."""
    import duckdb
    import pyarrow.parquet as pq

    started = time.perf_counter()
    spine = pq.read_table(log / "v1" / "part.parquet", columns=["e", "request_time"])
    con = duckdb.connect(str(project / "bench.duckdb"), read_only=True)
    con.register("spine", spine)
    out = con.sql("select s.e, s.request_time, v.ts, v.f1, v.f2, v.f3, v.f4 from spine s "
                  "asof left join v1 v on s.e = v.e "
                  "and cast(s.request_time at time zone 'UTC' as timestamp) >= v.ts").to_arrow_table()
    con.close()
    return time.perf_counter() - started, out.num_rows


def replay(project: Path, log: Path) -> tuple[float, int]:
    from dbt_features import FeatureStore

    store = FeatureStore(project_dir=str(project))
    store.registry  # loaded before timing: the registry is not the replay's work
    started = time.perf_counter()
    report = store.verify_served(str(log))
    seconds = time.perf_counter() - started
    return seconds, report.mismatched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/dbt_features_bench_replay"))
    args = parser.parse_args()
    project, log = build(args.workdir, args.rows)
    planted = (args.rows + 99) // 100
    times: dict[str, list[float]] = {"raw": [], "replay": []}
    for round_ in range(args.repeat):
        for kind in (("raw", "replay") if round_ % 2 == 0 else ("replay", "raw")):
            seconds, count = (raw if kind == "raw" else replay)(project, log)
            times[kind].append(seconds)
            if kind == "replay" and count > planted:
                sys.exit(f"the replay found {count:,} mismatches, at most {planted:,} were planted")
            print(f"  round {round_ + 1}: {kind:6} {seconds:6.2f} s"
                  + (f" ({count:,} mismatches)" if kind == "replay" else ""), flush=True)
    raw_s, replay_s = median(times["raw"]), median(times["replay"])
    print(f"{args.rows:,} served rows against a {N_VIEW:,}-row view on DuckDB "
          f"(median of {args.repeat}):")
    print(f"  raw ASOF join   {raw_s:6.2f} s")
    print(f"  verify --served {replay_s:6.2f} s   ({replay_s / raw_s:.2f}x raw)")
    print(f"  load average    {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
