"""Benchmark: training sets on PostgreSQL, a spine of recent labels, with and without an index.

    .venv/bin/python tests/benchmarks/bench_postgres.py [--rows 1000000] [--repeat 3]

Builds with the real ``dbt run`` (dbt-postgres, the PostgreSQL at 127.0.0.1:5432, database
``test``, a schema of its own dropped at the end) a feature view ``events`` of ROWS rows
(ENTITIES entities, 5 double features, ttl 30 days, one row per entity every ~2.3 days over
about 230 days) and a spine of SPINE rows over the same span, then times
``get_training_set`` with the Arrow spine (the Python path on PostgreSQL: the portable window
form, reading only the view rows some spine row can match, ``pit.spine_span``; where an index
serves it, ``LATERAL`` probes, ``pit_lateral``):

* the whole spine, and its latest tenth by time (the labels of the last weeks);
* each without an index on the view, and with one on (entity, event time), which lets
  PostgreSQL find a key's rows within the span without reading the others.

Against, in the same rounds, the raw queries a PostgreSQL user would write for the same rows
over the spine copied into a temporary table (no tie-break, fetched by psycopg2 as rows): the
join on key and time window with ``DISTINCT ON`` per spine row and, with the index only (without
it each spine row scans the table), ``LEFT JOIN LATERAL (... ORDER BY ts DESC LIMIT 1)``.

Then the same for a spine that is a dbt model (``labels``, SPINE rows over the same span, and
``labels_recent``, its latest tenth): ``get_training_set("labels", ...)`` runs the single
statement in PostgreSQL (each view by ``LATERAL`` where the index serves it), against the same
raw queries reading the model's table in place. Prints medians and ratios; asserts no time.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"

EVENTS = """{{{{ config(meta={{'feature_store': {{'entity': 'entity_id', 'timestamp': 'ts',
    'ttl': '30d'}}}}) }}}}
select (i % {entities})::bigint as entity_id,
       timestamp '2026-01-01' - make_interval(secs => (i / {entities}) * 200000 + (i * 7919) % 200000) as ts,
       random() as f1, random() as f2, random() as f3, random() as f4, random() as f5
from generate_series(0::bigint, {rows} - 1) as t(i)
"""

LABELS = """select ((i * 7919) % {entities})::bigint as entity_id,
       timestamp '2026-01-01' - make_interval(secs => ((i * 104729) % {span})::double precision) as at
from generate_series(0::bigint, {spine} - 1) as t(i)
"""
LABELS_RECENT = """select * from {{ ref('labels') }}
where at >= (select max(at) - (max(at) - min(at)) * 0.1 from {{ ref('labels') }})
"""


def build(root: Path, schema: str, rows: int, entities: int, spine: int) -> Path:
    project = root / "pg_bench"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(
        "name: pgbench\nversion: '1.0'\nconfig-version: 2\nprofile: pgbench\n"
        "models:\n  pgbench:\n    +materialized: table\n")
    (project / "profiles.yml").write_text(
        "pgbench:\n  target: dev\n  outputs:\n    dev:\n      type: postgres\n"
        "      host: 127.0.0.1\n      port: 5432\n      user: postgres\n      password: ''\n"
        f"      dbname: test\n      schema: {schema}\n      threads: 1\n")
    (project / "models" / "events.sql").write_text(EVENTS.format(rows=rows, entities=entities))
    span = rows // entities * 200000
    (project / "models" / "labels.sql").write_text(LABELS.format(spine=spine, entities=entities, span=span))
    (project / "models" / "labels_recent.sql").write_text(LABELS_RECENT)
    done = subprocess.run([str(BIN / "dbt"), "run", "--project-dir", str(project),
                           "--profiles-dir", str(project), "--quiet"], cwd=project,
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"dbt run failed:\n{done.stdout}\n{done.stderr}")
    return project


def spine_table(rows: int, entities: int, span_days: int):
    """Random entities at random times over the view's span (naive UTC)."""
    import random
    from datetime import datetime, timedelta

    import pyarrow as pa

    rng = random.Random(7)
    end = datetime(2026, 1, 1)
    return pa.table({
        "entity_id": [rng.randrange(entities) for _ in range(rows)],
        "at": [end - timedelta(seconds=rng.randrange(span_days * 86400)) for _ in range(rows)],
    })


def latest_share(spine, share: float):
    import pyarrow.compute as pc

    if share >= 1:
        return spine
    low, high = (v.value for v in pc.min_max(spine["at"]).values())
    return spine.filter(pc.greater_equal(spine["at"].cast("int64"), int(high - (high - low) * share)))


RAW = {
    "raw DISTINCT ON": """select distinct on (s.row) s.entity_id, s.at, e.f1, e.f2, e.f3, e.f4, e.f5
        from s left join "{schema}".events e on e.entity_id = s.entity_id and e.ts <= s.at
          and e.ts >= s.at - interval '30 days'
        order by s.row, e.ts desc""",
    "raw LATERAL": """select s.entity_id, s.at, f.f1, f.f2, f.f3, f.f4, f.f5 from s
        left join lateral (select * from "{schema}".events e where e.entity_id = s.entity_id
          and e.ts <= s.at and e.ts >= s.at - interval '30 days' order by e.ts desc limit 1)
        f on true""",
}


def raw_over_model(con, schema: str, model: str, kind: str) -> int:
    """A raw query reading the spine model's table in place, its rows numbered in the query."""
    numbered = f'with s as (select row_number() over () as row, entity_id, at from "{schema}".{model}) '
    with con.cursor() as cur:
        cur.execute(numbered + RAW[kind].format(schema=schema))
        n = len(cur.fetchall())
    con.commit()
    return n


def raw(con, schema: str, spine, kind: str) -> int:
    """A raw query, the spine copied into a temporary table first (timed with it)."""
    import io

    with con.cursor() as cur:
        cur.execute("create temporary table s (row bigint, entity_id bigint, at timestamp)")
        buffer = io.StringIO("".join(f"{i}\t{e}\t{a}\n" for i, (e, a) in enumerate(zip(
            spine["entity_id"].to_pylist(), spine["at"].to_pylist()))))
        cur.copy_from(buffer, "s", columns=("row", "entity_id", "at"))
        cur.execute("analyze s")
        cur.execute(RAW[kind].format(schema=schema))
        n = len(cur.fetchall())
        cur.execute("drop table s")
    con.commit()
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--spine", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import psycopg2

    from dbt_features import FeatureStore

    schema = f"dbtf_bench_pg_{uuid.uuid4().hex[:8]}"
    span_days = args.rows // args.entities * 200000 // 86400
    con = psycopg2.connect(DSN)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            project = build(Path(tmp), schema, args.rows, args.entities, args.spine)
            print(f"built {args.rows:,} rows ({args.entities:,} entities, {span_days} days) with "
                  f"dbt run in {time.perf_counter() - started:.1f} s", flush=True)
            store = FeatureStore(project_dir=str(project))
            spine = spine_table(args.spine, args.entities, span_days)
            store.get_training_set(spine.slice(0, 10), ["events:*"], spine_timestamp="at")  # warm-up
            results: dict[tuple[str, str, str], list[float]] = {}
            for index in ("no index", "index on (entity_id, ts)"):
                if index != "no index":
                    with con.cursor() as cur:
                        cur.execute(f'create index on "{schema}".events (entity_id, ts)')
                        cur.execute(f'analyze "{schema}".events')
                    con.commit()
                kinds = list(RAW) if index != "no index" else ["raw DISTINCT ON"]
                for share, label, model in ((1.0, "whole spine", "labels"),
                                            (0.1, "latest tenth", "labels_recent")):
                    rows = latest_share(spine, share)
                    sides = {"ours": lambda: store.get_training_set(rows, ["events:*"],
                                                                     spine_timestamp="at").num_rows,
                             "ours, spine model": lambda model=model: store.get_training_set(
                                 model, ["events:*"], spine_timestamp="at").num_rows}
                    for kind in kinds:
                        sides[kind] = lambda kind=kind: raw(con, schema, rows, kind)
                        sides[f"{kind}, spine model"] = lambda kind=kind, model=model: raw_over_model(
                            con, schema, model, kind)
                    for r in range(args.repeat):
                        for side in (sides if r % 2 == 0 else dict(reversed(list(sides.items())))):
                            t0 = time.perf_counter()
                            n = sides[side]()
                            seconds = time.perf_counter() - t0
                            results.setdefault((index, label, side), []).append(seconds)
                            print(f"  {index}, {label}, {side}: {seconds:.2f} s ({n:,} rows)",
                                  flush=True)
            report(results)
    finally:
        with con.cursor() as cur:
            cur.execute(f'drop schema if exists "{schema}" cascade')
        con.commit()
        con.close()


def report(results: dict[tuple[str, str, str], list[float]]) -> None:
    print("\nmedian seconds, and ours against each raw query:")
    for index, label in dict.fromkeys((i, l) for i, l, _ in results):
        for spine in ("", ", spine model"):
            ours = statistics.median(results[(index, label, "ours" + spine)])
            line = f"  {index:26s} {label + spine:26s} ours {ours:6.2f} s"
            for kind in RAW:
                if (index, label, kind + spine) in results:
                    other = statistics.median(results[(index, label, kind + spine)])
                    line += f" | {kind} {other:6.2f} s: {ours / other:5.2f}x"
            print(line)


if __name__ == "__main__":
    main()
