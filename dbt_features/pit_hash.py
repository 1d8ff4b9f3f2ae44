"""DuckDB: each spine row's matched time by a hash join, where few view rows share its keys.

DuckDB's ASOF join (``pit_asof._asof_match``) sorts every view row within the spine's span,
however few the spine rows: a few thousand labels against a long history pay for sorting the
history. A hash join on the keys, keeping per spine row the latest view time within its window,
reads the view once and compares each of its rows with the spine rows of the same keys.
Measured (tests/benchmarks/bench_training_set.py ``--sample``; docs/benchmarks.md): much faster
while those candidate pairs are about as many as the rows read and the spine is small next to
the view, much slower when each spine row meets hundreds of rows of its key.

The result is the same either way: the latest event time at or before the spine time (and, with
a ttl, at or after the spine time minus the ttl), NULL when there is none; the fetch and the
tie-break that follow (``pit_asof.asof_ctes``) do not change. ``pays`` decides for one view of
one Python-path query: from DuckDB's statistics first (free, and enough to rule out most spines
that would lose), then by counting the candidate pairs exactly (the view's rows in the span
probing the spine's keys): a few keys holding most of the view's rows and of the spine's would
make the pairs quadratic, which no average shows.
"""

from __future__ import annotations

import re

from sqlglot import exp

from .pit import (MATCH, QUIRKS, TS, Spine, ViewJoin, _alias, _col, _spine_select, _table,
                  in_window, span_rows, view_table)
from .errors import WarehouseError
from .warehouse import Warehouse

PAIRS_PER_ROW = 1.0
"""At most this many candidate pairs per row read (view rows in the span plus spine rows)."""
SPINE_SHARE = 0.25
"""And a spine of at most this share of the view's rows: a bigger spine's aggregate (one group
per spine row) costs more than the sort it saves (measured: a 1M-row spine against 5M rows,
5 rows per key, 0.90x the ASOF's time; 10 rows per key 1.26x)."""
MATERIALIZED = {"table", "incremental", "snapshot"}
"""Materializations whose relation is a table (DuckDB keeps statistics for it)."""
N, PAIRS, ROWS = "n", "pairs", "view_rows"


def hash_match(by: list[str], join: ViewJoin, dialect: str) -> exp.Select:
    """The matched event time of each spine row, as ``pit_asof._asof_match`` gives it (``by``, the
    keys, ``MATCH``), by a hash join on the keys and a maximum per spine row."""
    view = join.view
    keys = [k.name for k in view.entity.join_keys]
    narrow = span_rows(view, dialect)
    _, on = in_window(view, dialect, QUIRKS["duckdb"], "f", False, event=_col(TS, "f"))
    grouped = [_col(c, "p") for c in dict.fromkeys([*by, *keys])]
    return (
        exp.select(*grouped, exp.alias_(exp.Max(this=_col(TS, "f")), MATCH, quoted=True))
        .from_(exp.alias_(_table("spine"), "p", quoted=True))
        .join(exp.alias_(narrow.subquery(), "f", quoted=True), on=exp.and_(*on), join_type="LEFT")
        .group_by(*(c.copy() for c in grouped))
    )


def pays(wh: Warehouse, spine: Spine, join: ViewJoin, spine_rows: int) -> bool:
    """Whether ``hash_match`` beats the ASOF join for this view and spine (module docstring)."""
    view = join.view
    if wh.dialect != "duckdb" or view.materialized not in MATERIALIZED or not spine_rows:
        return False
    try:
        estimate = wh.arrow(_statistics_query(join).sql("duckdb")).to_pylist()[0]
        rows, distinct = estimate[ROWS] or 0, approx_unique(estimate["stats"])
        if not distinct or spine_rows > SPINE_SHARE * rows:
            return False
        if spine_rows * rows / distinct > PAIRS_PER_ROW * (rows + spine_rows):
            return False
        counted = wh.arrow(_pairs_query(spine, join).sql("duckdb")).to_pylist()[0]
    except WarehouseError:  # only a choice: the training set's own query reports what is wrong
        return False
    pairs = int(counted[PAIRS] or 0)  # a SUM of counts: a decimal
    return pairs <= PAIRS_PER_ROW * (counted[ROWS] + spine_rows)


def approx_unique(stats: str | None) -> int | None:
    """The distinct-count estimate in DuckDB's ``stats()`` of a column, as text: ``{'approx_unique':
    N, ...}`` (DuckDB 2) or ``...[Approx Unique: N]`` (DuckDB 1); None when there is none (not
    a stored column)."""
    found = re.search(r"approx[_ ]unique'?:\s*(\d+)", stats or "", re.IGNORECASE)
    return int(found.group(1)) if found else None


def _statistics_query(join: ViewJoin) -> exp.Select:
    """The view's row count and the statistics DuckDB keeps of its first key column (both
    read from the table's metadata, not its rows)."""
    first = exp.column(join.view.entity.join_keys[0].name, quoted=True)
    text = exp.cast(exp.Anonymous(this="STATS", expressions=[first]), exp.DataType.Type.VARCHAR)
    stats = exp.select(text).from_(view_table(join.view)).limit(1).subquery()
    return exp.select(
        exp.alias_(exp.select(exp.Count(this=exp.Star())).from_(view_table(join.view)).subquery(),
                   ROWS, quoted=True),
        exp.alias_(stats, "stats", quoted=True),
    )


def _pairs_query(spine: Spine, join: ViewJoin) -> exp.Select:
    """The view's rows within the spine's span and the candidate pairs of ``hash_match``: the
    sum, over those rows, of the spine rows of their keys (measured: counting the spine's keys
    and probing them with the view's rows is twice as fast as counting the view's keys)."""
    view = join.view
    keys = [k.name for k in view.entity.join_keys]
    columns = [exp.column(k, quoted=True) for k in keys]
    counted = (exp.select(*columns, exp.alias_(exp.Count(this=exp.Star()), N, quoted=True))
               .from_(_table("spine")).group_by(*(c.copy() for c in columns)))
    rows = exp.select(exp.Count(this=exp.Star())).from_(span_rows(view, "duckdb").subquery())
    query = (
        exp.select(exp.alias_(exp.Sum(this=exp.column(N, "s", quoted=True)), PAIRS, quoted=True),
                   exp.alias_(rows.subquery(), ROWS, quoted=True))
        .from_(exp.alias_(span_rows(view, "duckdb").subquery(), "v", quoted=True))
        .join(exp.alias_(exp.to_table("s"), "s", quoted=True),
              using=[exp.to_identifier(k, quoted=True) for k in keys])
    )
    spine_cte = _spine_select(spine, keys, QUIRKS["duckdb"], "duckdb")
    query.set("with_", exp.With(expressions=[
        exp.CTE(this=spine_cte, alias=_alias("spine")),
        exp.CTE(this=counted, alias=exp.TableAlias(this=exp.to_identifier("s", quoted=True)))]))
    return query
