"""When the Python path matches a view by hash join instead of ASOF (``pit_hash.pays``), on real
DuckDB files; the two forms giving the same rows is checked by the property tests of test_pit.py
(each DuckDB case runs both)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from dbt_features import pit, pit_hash, timestamps
from dbt_features.training import get_training_set
from training_support import BASE, duckdb_warehouse, make_registry, make_view, write_duckdb

VIEW = make_view("events", "main", keys=[("k", "int64", "bigint")], timestamp=("ts", "timestamp"),
                 created=None, ttl=None, features=[("f", "double", "double")])
SCHEMA = pa.schema([("k", pa.int64()), ("ts", pa.timestamp("us")), ("f", pa.float64())])


def _rows(keys: list[int]) -> pa.Table:
    """One view row per item of ``keys``, an hour apart."""
    return pa.Table.from_pylist(
        [{"k": k, "ts": BASE + timedelta(hours=i), "f": float(i)} for i, k in enumerate(keys)],
        schema=SCHEMA)


def _spine(keys: list[int]) -> pa.Table:
    """The uploaded spine of the Python path: keys, time, row number."""
    at = BASE + timedelta(days=365)
    return pa.Table.from_pylist([{"k": k, pit.TS: at, pit.ROW: i} for i, k in enumerate(keys)])


def _pays(path: Path, rows: list[int], spine: list[int], view=VIEW) -> bool:
    write_duckdb(path, {"events": _rows(rows)})
    wh = duckdb_warehouse(path)
    try:
        with wh.spine(_spine(spine)) as table:
            uploaded = pit.Spine(table=table, columns=(), timestamp=pit.TS,
                                 timestamp_kind=timestamps.NAIVE, row_id=pit.ROW)
            join = pit.ViewJoin(view, (("f", "f"),))
            return pit_hash.pays(wh, uploaded, join, len(spine))
    finally:
        wh.close()


@pytest.mark.parametrize(("text", "expected"), [
    ("{'approx_unique': 230859, 'has_no_null': true, 'has_null': false, 'max': 9, 'min': 0}", 230859),
    ("[Min: 0, Max: 9][Has Null: false, Has No Null: true][Approx Unique: 11]", 11),
    ("{'has_no_null': true, 'has_null': false, 'max': 10, 'min': 1}", None),
    (None, None),
])
def test_reads_the_distinct_estimate_of_duckdb_1_and_2(text: str | None, expected: int | None) -> None:
    assert pit_hash.approx_unique(text) == expected


def test_a_small_spine_over_few_rows_per_key_is_hashed(tmp_path: Path) -> None:
    """4,000 keys of 2 rows each; a spine of 500 rows: 1,000 candidate pairs for 8,500 rows."""
    assert _pays(tmp_path / "a.duckdb", [i % 4000 for i in range(8000)], list(range(500)))


def test_a_spine_meeting_many_rows_of_its_key_is_not(tmp_path: Path) -> None:
    """Each of 100 keys has 80 rows: every spine row would meet 80 of them."""
    assert not _pays(tmp_path / "b.duckdb", [i % 100 for i in range(8000)], list(range(500)))


def test_one_heavy_key_is_counted_not_averaged(tmp_path: Path) -> None:
    """6,000 keys of one row and key 0 of 6,000 rows: 2 rows per key on average, which the
    statistics alone would take; but the 500 spine rows are all of key 0 (3M candidate pairs),
    and the exact count says no."""
    rows = list(range(1, 6001)) + [0] * 6000
    assert not _pays(tmp_path / "c.duckdb", rows, [0] * 500)
    assert _pays(tmp_path / "d.duckdb", rows, list(range(1, 501)))


def test_a_big_spine_and_a_dbt_view_keep_asof(tmp_path: Path) -> None:
    rows = [i % 4000 for i in range(8000)]
    assert not _pays(tmp_path / "e.duckdb", rows, list(range(4000)))  # half the view's rows
    assert not _pays(tmp_path / "f.duckdb", rows, list(range(500)), replace(VIEW, materialized="view"))


def test_a_failing_check_leaves_the_error_to_the_training_query(tmp_path: Path) -> None:
    """The choice is only a choice: a relation that is not there keeps ASOF, whose query then
    says what is wrong."""
    missing = replace(VIEW, relation=replace(VIEW.relation, identifier="not_built"))
    assert not _pays(tmp_path / "h.duckdb", [1, 2, 3], [1], missing)


def test_both_forms_give_the_same_training_set(tmp_path: Path) -> None:
    """A view chosen for the hash join, and the same view by ASOF: equal, and equal to what the
    rows say (the latest row at or before the spine time)."""
    path = tmp_path / "g.duckdb"
    write_duckdb(path, {"events": _rows([i % 4000 for i in range(8000)])})
    spine = pa.table({"k": list(range(500)), "at": [BASE + timedelta(hours=5000)] * 500})
    registry = make_registry([VIEW], "duckdb")
    saved, chosen = pit_hash.pays, []
    pit_hash.pays = lambda *args: chosen.append(saved(*args)) or chosen[-1]
    try:
        got = get_training_set(registry, lambda: duckdb_warehouse(path), spine, ["events:f"],
                               spine_timestamp="at")
    finally:
        pit_hash.pays = saved
    assert chosen == [True]
    pit_hash.pays = lambda *args: False
    try:
        by_asof = get_training_set(registry, lambda: duckdb_warehouse(path), spine, ["events:f"],
                                   spine_timestamp="at")
    finally:
        pit_hash.pays = saved
    assert got.equals(by_asof)
    # key k's rows are i = k and i = k + 4000, both before the spine time: the later one wins.
    assert got.column("f").to_pylist() == [float(k + 4000) for k in range(500)]
