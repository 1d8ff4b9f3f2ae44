"""Spark, for real: dbt-spark's ``session`` method (a local Spark in this process), queried
through dbt's own connection. Runs under ``make test-spark`` (its own virtualenv with
dbt-spark[session] and pyspark; Java 17); ``make test`` leaves it out.

One project, built once by ``dbt run``: a view with created timestamps, many exact ties of
event time, NULL values and a ttl, and a spine with entities the view lacks. Checked: the
training set against the brute-force reference (model spine, Arrow spine and the dbt macro's
model alike, by default and as known at), then sync, reads and verify; and the randomized
point-in-time cases of ``test_pit.py`` (ties, ttl, created timestamps, missing entities, time
zones), run on Spark against the same brute-force reference, by default and as known at."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbt_features.relation import Relation
from test_pit import build, check, scenario

pytestmark = pytest.mark.spark

REPO = Path(__file__).resolve().parents[1]
DBT = str(Path(sys.executable).parent / "dbt")
NOW = 1_796_000_000

EVENTS = """{{ config(meta={'feature_store': {'entity': 'entity_id', 'timestamp': 'event_at',
    'created_timestamp': 'created_at', 'ttl': '3d', 'online': true}}) }}
-- 40 distinct event times for 3,000 rows: many exact ties, broken by created time and values.
select cast(pmod(id * 7919, 120) as bigint) as entity_id,
       timestamp_seconds(%(now)d - pmod(id * 104729, 40) * 7200) as event_at,
       case when pmod(id, 5) = 0 then null
            else timestamp_seconds(%(now)d - pmod(id * 31, 40) * 7200 + 60) end as created_at,
       case when pmod(id, 11) = 0 then null else cast(pmod(id * 37, 1000) as double) / 10 end as amount,
       cast(pmod(id * 13, 5) as bigint) as n,
       case when pmod(id, 7) = 0 then null else concat('c', cast(pmod(id, 3) as string)) end as label
from range(0, 3000) as t(id)
""" % {"now": NOW}

SPINE = """-- Entities 120-139 are not in the view; times before, inside and past its ttl.
select cast(pmod(id * 17, 140) as bigint) as entity_id,
       timestamp_seconds(%(now)d - pmod(id * 7, 100) * 3600 + 1800) as at
from range(0, 600) as t(id)
""" % {"now": NOW}

MACRO = """select * from {{ dbt_features.training_set(ref('spine'), ['events:*'], spine_timestamp='at') }}
"""
MACRO_KNOWN = """select * from {{ dbt_features.training_set(ref('spine'), ['events:*'], spine_timestamp='at',
                                           as_known_at=true) }}
"""


@pytest.fixture(scope="module")
def spark_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("spark") / "project"
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text(
        "name: sparkfs\nprofile: sparkfs\nmodels:\n  sparkfs:\n    +materialized: table\n")
    (root / "packages.yml").write_text(f"packages:\n  - local: {REPO / 'dbt_package'}\n")
    (root / "profiles.yml").write_text(
        "sparkfs:\n  target: spark\n  outputs:\n    spark:\n      type: spark\n"
        "      method: session\n      schema: fs\n      host: NA\n      threads: 1\n")
    for name, sql in (("events", EVENTS), ("spine", SPINE), ("macro_set", MACRO),
                      ("macro_known_set", MACRO_KNOWN)):
        (root / "models" / f"{name}.sql").write_text(sql)
    for args in (["deps"], ["run"]):
        result = subprocess.run([DBT, *args, "--profiles-dir", str(root)], cwd=root,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # dbt-spark's session keeps its metastore and tables under the folder Spark starts in.
    cwd = os.getcwd()
    os.chdir(root)
    try:
        yield root
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def spark_store(spark_project: Path) -> Any:
    from dbt_features import FeatureStore

    return FeatureStore(project_dir=str(spark_project))


def _reference(store: Any, as_known_at: bool = False) -> list[tuple]:
    from training_support import ViewData, reference

    view = store.registry.view("events")
    with store.warehouse() as wh:
        rows = wh.arrow("SELECT * FROM fs.events").to_pylist()
        spine = wh.arrow("SELECT * FROM fs.spine").to_pylist()
    names = [f.name for f in view.features]
    expected = reference(spine, "at", [ViewData(view, rows, None)], [[(n, n) for n in names]],
                         as_known_at=as_known_at)
    return sorted(_row(r, names) for r in expected)


def _row(row: dict[str, Any], names: list[str]) -> tuple:
    return (row["entity_id"], row["at"], *(row[n] for n in names))


def test_training_sets_on_spark_match_the_reference(spark_store: Any) -> None:
    with spark_store.warehouse() as wh:
        assert type(wh).__name__ == "DbtConnectionWarehouse"
    names = [f.name for f in spark_store.registry.view("events").features]
    expected = _reference(spark_store)
    found = sum(r[2] is not None or r[3] is not None for r in expected)
    assert len(expected) == 600 and 100 < found < 600  # hits, misses and ttl misses all occur
    from_model = spark_store.get_training_set("spine", ["events:*"], spine_timestamp="at")
    assert sorted(_row(r, names) for r in from_model.to_pylist()) == expected
    spine = from_model.select(["entity_id", "at"])
    from_arrow = spark_store.get_training_set(spine, ["events:*"], spine_timestamp="at")
    assert sorted(_row(r, names) for r in from_arrow.to_pylist()) == expected
    with spark_store.warehouse() as wh:
        macro = wh.arrow("SELECT * FROM fs.macro_set").to_pylist()
    assert sorted(_row(r, names) for r in macro) == expected


def test_as_known_at_training_sets_on_spark_match_the_reference(spark_store: Any) -> None:
    """created_at is unrelated to event_at: many rows were created after the spine times that
    would pick them, and are skipped, as known at, alike by every path."""
    names = [f.name for f in spark_store.registry.view("events").features]
    expected = _reference(spark_store, as_known_at=True)
    assert expected != _reference(spark_store)
    from_model = spark_store.get_training_set("spine", ["events:*"], spine_timestamp="at",
                                              as_known_at=True)
    assert sorted(_row(r, names) for r in from_model.to_pylist()) == expected
    spine = from_model.select(["entity_id", "at"])
    from_arrow = spark_store.get_training_set(spine, ["events:*"], spine_timestamp="at",
                                              as_known_at=True)
    assert sorted(_row(r, names) for r in from_arrow.to_pylist()) == expected
    with spark_store.warehouse() as wh:
        macro = wh.arrow("SELECT * FROM fs.macro_known_set").to_pylist()
    assert sorted(_row(r, names) for r in macro) == expected


def test_sync_reads_and_verify_on_spark(spark_store: Any, redis_prefix: str) -> None:
    from dbt_features.serving.micros import from_micros
    from dbt_features.serving.digest import digest_query

    first = spark_store.sync()[0]
    assert first.mode == "full" and first.entities > 0
    # The full refresh observed its digest in its read (``digest.observed_rows``): what it
    # recorded is what the digest's own pass gives for the same moment.
    online, view = spark_store.online, spark_store.registry.view("events")
    meta = {k.decode(): v.decode() for k, v in online.client.hgetall(online.keys.meta("events")).items()}
    now = from_micros(int(meta["boundary_now_us"]))
    with spark_store.warehouse() as wh:
        passed = wh.arrow(digest_query(view, "spark", now, None)).to_pylist()[0]
    assert (int(meta["settled_rows"]), meta["settled_digest"]) == (passed["rows"], passed["digest"])
    assert from_micros(int(meta["watermark_us"])) == passed["watermark"] and passed["rows"] > 100
    again = spark_store.sync()[0]
    assert again.mode == "incremental" and again.keys == first.keys
    report = spark_store.verify(sample=200)
    assert report.mismatched == 0 and report.views[0].served > 0
    got = spark_store.get_online_features(["events:*"], [{"entity_id": i} for i in range(125)])
    assert {s.value for s in got.statuses[0][120:]} == {"not_found"}


@pytest.fixture(scope="module")
def spark_warehouse(spark_project: Path) -> Any:
    """Opens dbt's connection to the Spark target (the session outlives each connection)."""
    from dbt_features.dbt_connection import DbtConnectionWarehouse
    from dbt_features.project import DbtOptions, find_project, load_credentials

    adapter_type, credentials = load_credentials(find_project(DbtOptions(project_dir=str(spark_project))))
    return lambda: DbtConnectionWarehouse("spark", adapter_type, credentials)


def test_spark_results_are_read_as_arrow_a_partition_at_a_time(spark_warehouse: Any) -> None:
    """The session's results come as Arrow (DECIMAL as float64, TIMESTAMP as UTC, as the
    cursor's rows would), whole or in batches of at most the size asked; a failure while
    reading is a WarehouseError."""
    from dbt_features.errors import WarehouseError

    sql = ("SELECT id, CAST(id AS DECIMAL(10, 2)) / 4 AS d, timestamp_seconds(id) AS t "
           "FROM range(0, 2500, 1, 3)")
    with spark_warehouse() as wh:
        whole = wh.arrow(sql)
        batches = list(wh.batches(sql, batch_size=400))
        with pytest.raises(WarehouseError, match="spark query failed"):
            list(wh.batches("SELECT assert_true(id < 5) FROM range(0, 10)"))
        with pytest.raises(WarehouseError, match="spark query failed"):
            wh.arrow("SELECT assert_true(id < 5) FROM range(0, 10)")
    assert whole.schema == pa.schema([("id", pa.int64()), ("d", pa.float64()),
                                      ("t", pa.timestamp("us", tz="UTC"))])
    assert whole.column("id").to_pylist() == list(range(2500))
    assert whole.column("d").to_pylist()[:3] == [0.0, 0.25, 0.5]
    assert all(b.schema == whole.schema and b.num_rows <= 400 for b in batches)
    assert len(batches) >= 7 and pa.Table.from_batches(batches).equals(whole)


def test_an_observed_read_has_its_aggregates_before_its_first_rows(spark_warehouse: Any) -> None:
    """``observed_batches``: the aggregates over the query's input are final once the first
    batch has come (the input is redistributed by the keys before the query reads it), and the
    same at the end; a query that fails is a WarehouseError."""
    from dbt_features.errors import WarehouseError
    from dbt_features.warehouse import Observed

    observed = Observed("SELECT id, id % 7 AS k FROM range(0, 50000, 1, 4)", "observed_t", ("k",),
                        (("n", "COUNT(*)"), ("total", "SUM(id)"), ("top", "MAX(id)")))
    exact = {"n": 50_000, "total": sum(range(50_000)), "top": 49_999}
    with spark_warehouse() as wh:
        batches = wh.observed_batches("SELECT k, MAX(id) AS m FROM observed_t GROUP BY k", observed, 2)
        first = next(batches)
        assert first.num_rows <= 2 and wh.observed_values(observed) == exact
        rows = first.num_rows + sum(b.num_rows for b in batches)
        assert rows == 7 and wh.observed_values(observed) == exact
        with pytest.raises(WarehouseError, match="spark query failed"):
            list(wh.observed_batches("SELECT nope FROM observed_t", observed))
        # No rows (every row out of the window): no batch, and the aggregates of none.
        empty = Observed("SELECT id, id % 7 AS k FROM range(0, 0)", "observed_e", ("k",),
                         observed.aggregates)
        assert list(wh.observed_batches("SELECT k FROM observed_e", empty)) == []
        assert wh.observed_values(empty) == {"n": 0, "total": None, "top": None}


def test_spark_sums_row_hashes_in_parts_exactly(spark_warehouse: Any) -> None:
    """The digest's sum of BIGINT row hashes (``digest._sum_in_parts``) is the exact sum, as
    text, where a BIGINT sum would overflow; NULL over no rows, as ``SUM``."""
    from sqlglot import exp

    from dbt_features.serving.digest import _sum_in_parts

    def summed(values: str) -> Any:
        total = exp.cast(_sum_in_parts(exp.column("v")), exp.DataType.Type.TEXT)
        query = exp.select(exp.alias_(total, "total")).from_(values)
        with spark_warehouse() as wh:
            return wh.arrow(query.sql(dialect="spark")).column("total")[0].as_py()

    edges = [-2**63, 2**63 - 1, -1, 0, 1, 2**40, -2**40 - 1, 2**20 - 1, -2**20, 123456789012345]
    rows = ", ".join(f"(CAST({v} AS BIGINT))" for v in edges)
    assert summed(f"(VALUES {rows}) AS t(v)") == str(sum(edges))
    top = f"(SELECT CAST({2**63 - 1} AS BIGINT) - id * 7919 AS v FROM range(0, 200000)) AS t"
    assert summed(top) == str(sum(2**63 - 1 - i * 7919 for i in range(200_000)))
    assert summed("(SELECT CAST(NULL AS BIGINT) AS v) AS t") is None


def _write_views(warehouse: Any, tables: dict[str, pa.Table]) -> None:
    """Each table as a temporary view of the Spark session, as an uploaded spine is held."""
    from sqlglot import exp

    from dbt_features.dbt_connection import _spine_view

    with warehouse() as wh:
        for name, table in tables.items():
            target = exp.table_(exp.to_identifier(name, quoted=True))
            wh._run([exp.Drop(tables=[target.copy()], kind="VIEW", exists=True),
                     _spine_view(target, table)])


@settings(max_examples=int(os.environ.get("SPARK_PIT_EXAMPLES", "12")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(s=scenario())
def test_spark_matches_the_reference(spark_warehouse: Any, s: dict[str, Any]) -> None:
    views, tables, spine = build(s, None)
    _write_views(spark_warehouse, tables)
    check(s, views, spine, "spark", spark_warehouse, Relation(None, None, "spine"))


@settings(max_examples=int(os.environ.get("SPARK_PIT_EXAMPLES", "12")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(s=scenario(as_known_at=st.just(True)))
def test_spark_as_known_at_matches_the_reference(spark_warehouse: Any, s: dict[str, Any]) -> None:
    views, tables, spine = build(s, None)
    _write_views(spark_warehouse, tables)
    check(s, views, spine, "spark", spark_warehouse, Relation(None, None, "spine"))
