"""The carry-forward form of the point-in-time join (``pit_carry``, Spark's) against the
brute-force reference, run on a real DuckDB file (the form's SQL renders there too), so its
semantics are checked on every run of the fast tier, sorted in the SQL (what ``sql`` prints)
and, as the Python path on Spark does, in Arrow; Spark runs the same property cases in
``test_dbt_connection_spark.py``. And which dialects take the form."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import pytest
import sqlglot
from hypothesis import given
from hypothesis import strategies as st

from dbt_features import pit, training
from dbt_features.training import get_training_set, training_query_sql
from dbt_features.warehouse import Relation
from test_pit import EXAMPLES, _sample_query, build, check, scenario
from dbt_features.spine import ModelSpine
from training_support import duckdb_warehouse, make_registry, write_duckdb


@contextmanager
def carried_on_duckdb(sorted_here: bool = True) -> Iterator[None]:
    """DuckDB's SQL in the carry-forward form, a model spine numbered by time and joined by the
    single statement, as on Spark; ``sorted_here``: the Python path sorts the unordered rows in
    Arrow, as on Spark."""
    saved = pit.QUIRKS["duckdb"], set(training.SORTED_HERE), set(training.READ_HERE)
    pit.QUIRKS["duckdb"] = replace(saved[0], asof=False, carry_forward=True, ordered_row_number=True)
    training.READ_HERE.discard("duckdb")
    if sorted_here:
        training.SORTED_HERE.add("duckdb")
    try:
        yield
    finally:
        pit.QUIRKS["duckdb"] = saved[0]
        for kept, was in ((training.SORTED_HERE, saved[1]), (training.READ_HERE, saved[2])):
            kept.clear()
            kept.update(was)


@pytest.fixture(scope="module")
def duck_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pit_carry") / "pit.duckdb"


@EXAMPLES
@given(s=scenario(), sorted_here=st.booleans())
def test_carry_forward_matches_reference(duck_file: Path, s: dict[str, Any],
                                         sorted_here: bool) -> None:
    views, tables, spine = build(s, "main")
    write_duckdb(duck_file, tables)
    with carried_on_duckdb(sorted_here):
        check(s, views, spine, "duckdb", lambda: duckdb_warehouse(duck_file),
              Relation(None, "main", "spine"))


def _training_set(duck_file: Path, s: dict[str, Any]) -> list[dict[str, Any]]:
    views, tables, spine = build(s, "main")
    write_duckdb(duck_file, tables)
    with carried_on_duckdb():
        got = get_training_set(make_registry([v.view for v in views], "duckdb"),
                               lambda: duckdb_warehouse(duck_file), spine, s["request"])
    return got.to_pylist()


def test_a_newer_row_of_nulls_is_carried_whole(duck_file: Path) -> None:
    """The latest row's NULL features win over an older row's values (the whole row is
    carried, not each column's last non-NULL value)."""
    s = {"a": [{"a_id": 1, "a_ts": 0, "a_created": None, "fa_int": 7, "fa_dbl": 1.5},
               {"a_id": 1, "a_ts": 1, "a_created": None, "fa_int": None, "fa_dbl": None}],
         "b": [], "spine": [{"a_id": 1, "b_key": None, "half_hours": h} for h in (1, 2, 3)],
         "ttl_a": None, "ttl_b": None, "zone": None, "request": ["fa:*"]}
    got = [(r["fa_int"], r["fa_dbl"]) for r in _training_set(duck_file, s)]
    assert got == [(7, 1.5), (None, None), (None, None)]


def test_a_row_at_the_spine_time_counts_and_ties_go_to_the_greatest(duck_file: Path) -> None:
    """A view row at exactly the spine time is taken (spine rows sort after it); among rows of
    one time the greatest created time wins, NULL lowest; duplicates of the spine are kept."""
    s = {"a": [{"a_id": 1, "a_ts": 1, "a_created": c, "fa_int": v, "fa_dbl": None}
               for c, v in ((2, 5), (None, 9), (1, 8))],
         "b": [], "spine": [{"a_id": 1, "b_key": None, "half_hours": 2}] * 2
         + [{"a_id": 1, "b_key": None, "half_hours": 1}],
         "ttl_a": 3600, "ttl_b": None, "zone": None, "request": ["fa:fa_int"]}
    assert [r["fa_int"] for r in _training_set(duck_file, s)] == [5, 5, None]


@pytest.mark.parametrize("dialect", pit.DIALECTS)
def test_only_spark_takes_the_carry_forward_form(dialect: str) -> None:
    sql = pit.to_sql(_sample_query(dialect), dialect)
    assert ("IGNORE NULLS" in sql) == (dialect == "spark")


def test_as_known_at_falls_back_to_the_window_form_on_spark() -> None:
    sql = pit.to_sql(_sample_query("spark", as_known_at=True), "spark")
    assert "IGNORE NULLS" not in sql and "ROW_NUMBER() OVER (PARTITION BY" in sql


def test_a_model_spine_sorted_in_arrow_comes_in_spine_time_order(duck_file: Path) -> None:
    """Sorted in Arrow (the query unordered, its sort key the spine time), a model spine's rows
    come by spine time, NULL last, as the SQL's ORDER BY gives them, and the sort key is not
    returned; the SQL that ``sql`` prints still sorts."""
    s = {"a": [{"a_id": 1, "a_ts": t, "a_created": None, "fa_int": t, "fa_dbl": None}
               for t in range(4)],
         "b": [], "spine": [{"a_id": 1, "b_key": None, "half_hours": h} for h in (5, None, 0, 3, 7, 1)],
         "ttl_a": None, "ttl_b": None, "zone": None, "request": ["fa:fa_int"]}
    views, tables, _ = build(s, "main")
    write_duckdb(duck_file, tables)
    registry = make_registry([v.view for v in views], "duckdb")
    relation = Relation(None, "main", "spine")
    with carried_on_duckdb():
        got = get_training_set(registry, lambda: duckdb_warehouse(duck_file), relation,
                               ["fa:fa_int"])
        with duckdb_warehouse(duck_file) as wh:
            columns = wh.describe(relation)
        joins = training.plan(registry, ["fa:fa_int"])
        printed = training_query_sql(ModelSpine("spine", relation), columns, joins, "duckdb", None)
        unordered = training_query_sql(ModelSpine("spine", relation), columns, joins, "duckdb",
                                       None, ordered=False)
    assert got.column_names == ["a_id", "b_key", "event_timestamp", "fa_int"]
    times = got.column("event_timestamp").to_pylist()
    assert times[:-1] == sorted(times[:-1]) and times[-1] is None
    assert got.column("fa_int").to_pylist() == [0, 0, 1, 2, 3, None]
    top = [sqlglot.parse_one(sql, read="duckdb") for sql in (printed, unordered)]
    assert top[0].args.get("order") is not None and top[1].args.get("order") is None
    assert top[1].expressions[0].name == pit.TS
