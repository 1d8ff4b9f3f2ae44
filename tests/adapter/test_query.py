"""The sync query is a sqlglot tree, emitted per dialect, with quoted identifiers."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
import sqlglot
from hypothesis import given, settings
from hypothesis import strategies as st

from dbt_features.errors import DefinitionError
from dbt_features.registry import Column, Entity, Feature, FeatureView
from dbt_features.serving.digest import digest_query
from dbt_features.serving.query import Boundary, latest_query
from dbt_features.warehouse import Relation

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)

VIEW = FeatureView(
    name="spend", unique_id="model.p.spend", package="p", file="models/spend.sql",
    yaml_file=None, relation=Relation("db", "main", "spend"), relation_name='"db"."main"."spend"',
    materialized="table",
    entity=Entity("customer", (Column("customer id", "int64", "bigint"),)),
    timestamp=Column("at", "timestamp", "timestamp"),
    created_timestamp=Column("created", "timestamp", "timestamp with time zone"),
    ttl_seconds=86400, online=True,
    features=(Feature("select", "double", "double", None, "f1"),),
    owner=None, tags=(), description=None, version=1, fingerprint="x",
    compiled_sql="select 1 as \"customer id\", now() as at, now() as created, 2.0 as \"select\"",
)


@pytest.mark.parametrize("dialect", ["duckdb", "postgres", "snowflake", "bigquery"])
def test_query_parses_back_in_its_dialect_with_quoted_identifiers(dialect: str) -> None:
    sql = latest_query(VIEW, dialect, NOW, since=Boundary(NOW, NOW))
    tree = sqlglot.parse_one(sql, read=dialect)
    assert tree.find(sqlglot.exp.Window) is not None
    quote = "`" if dialect == "bigquery" else '"'
    assert f"{quote}customer id{quote}" in sql and f"{quote}select{quote}" in sql


def test_ttl_window_watermark_and_now_are_literals() -> None:
    since = Boundary(datetime(2026, 4, 30, 6, tzinfo=timezone.utc), datetime(2026, 4, 30, tzinfo=timezone.utc))
    sql = latest_query(VIEW, "duckdb", NOW, since=since)
    assert "<= CAST('2026-05-01 12:00:00.000000' AS TIMESTAMP)" in sql
    assert ">= CAST('2026-04-30 12:00:00.000000' AS TIMESTAMP)" in sql  # now - ttl (1 day), inclusive
    # Rows new since the last sync: created after its watermark (timestamptz: a UTC-offset
    # literal), or an event time that was still in the future at its "now".
    assert ("(\"created\" > CAST('2026-04-30 00:00:00.000000+00:00' AS TIMESTAMPTZ) "
            "OR \"at\" > CAST('2026-04-30 06:00:00.000000' AS TIMESTAMP))") in sql
    # The one recency order of the training sets: event, created, then the features.
    assert 'ORDER BY "at" DESC, "created" DESC, "select" DESC' in sql
    no_ttl = latest_query(replace(VIEW, ttl_seconds=None), "duckdb", NOW)
    assert ">= CAST" not in no_ttl


def test_ephemeral_models_and_from_sql_inline_the_compiled_sql() -> None:
    table = latest_query(VIEW, "duckdb", NOW)
    assert 'FROM "db"."main"."spend"' in table
    inlined = latest_query(VIEW, "duckdb", NOW, from_sql=True)
    assert '"db"."main"."spend"' not in inlined and "NOW()" in inlined.upper()
    assert latest_query(replace(VIEW, materialized="ephemeral"), "duckdb", NOW) == inlined


def test_missing_or_unparseable_compiled_sql_is_a_clear_error() -> None:
    with pytest.raises(DefinitionError, match="has no compiled SQL.*dbt compile --select spend"):
        latest_query(replace(VIEW, compiled_sql=None), "duckdb", NOW, from_sql=True)
    with pytest.raises(DefinitionError, match="cannot be parsed as duckdb"):
        latest_query(replace(VIEW, compiled_sql="select from where ((("), "duckdb", NOW, from_sql=True)


def test_a_user_column_named_like_our_rank_column_does_not_collide() -> None:
    view = replace(VIEW, features=VIEW.features + (Feature("_dbt_features_rank", "int64", "bigint", None, "f2"),))
    sql = latest_query(view, "duckdb", NOW)
    assert '"_dbt_features_rank_2" = 1' in sql and 'AS "_dbt_features_rank_2"' in sql


def test_digest_compares_what_the_last_sync_settled_and_records_the_new_watermark() -> None:
    sql = digest_query(VIEW, "postgres", NOW, Boundary(NOW, datetime(2026, 4, 30, tzinfo=timezone.utc)))
    assert "HASHTEXTEXTENDED(CAST(ROW(" in sql
    assert ("(\"created\" IS NULL OR \"created\" <= CAST('2026-04-30 00:00:00.000000+00:00' AS "
            "TIMESTAMPTZ))") in sql
    assert ('MAX(CASE WHEN "at" <= CAST(\'2026-05-01 12:00:00.000000\' AS TIMESTAMP) AND "at" >= '
            'CAST(\'2026-04-30 12:00:00.000000\' AS TIMESTAMP) THEN "created" END)') in sql
    assert "WHERE NOT \"customer id\" IS NULL AND NOT \"at\" IS NULL FROM" not in sql
    first = digest_query(VIEW, "duckdb", NOW, None)  # a full refresh: only the new digest
    assert "CASE" not in first and 'SELECT 0 AS "settled_rows"' in first and "HASH(" in first
    assert first.endswith("""WHERE NOT "customer id" IS NULL AND NOT "at" IS NULL AND "at" <= """
                          """CAST('2026-05-01 12:00:00.000000' AS TIMESTAMP) AND "at" >= """
                          """CAST('2026-04-30 12:00:00.000000' AS TIMESTAMP)""")


def test_digest_reads_no_row_older_than_both_floors() -> None:
    """The new digest covers now - ttl onwards; the settled one, the last sync's floor onwards;
    the pass reads from the older of the two. A boundary recorded without a floor (every row)
    or a view without ttl: every row."""
    def where(sql: str) -> str:
        return sql.rsplit(" WHERE ", 1)[1]

    floored = Boundary(NOW - timedelta(hours=2), None, NOW - timedelta(days=1, hours=2))
    assert ">= CAST('2026-04-30 10:00:00.000000' AS TIMESTAMP)" in where(
        digest_query(VIEW, "duckdb", NOW, floored))
    assert ">= CAST('2026-04-30 12:00:00.000000' AS TIMESTAMP)" in where(
        digest_query(VIEW, "duckdb", NOW, None))
    assert ">=" not in where(digest_query(VIEW, "duckdb", NOW, replace(floored, floor=None)))
    assert ">=" not in where(digest_query(replace(VIEW, ttl_seconds=None), "duckdb", NOW, None))
    spark = digest_query(VIEW, "spark", NOW, floored)  # the floor filters before the hashing
    assert "`at` >= CAST('2026-04-30 10:00:00.000000" in where(spark)


def test_spark_digest_hashes_null_flags_once_and_sums_in_parts() -> None:
    """Spark's hashes skip NULL inputs, so each column's null flag is hashed with it; a sum of
    BIGINT hashes overflows (an error under ANSI mode), so each row's hash, computed once, is
    summed in BIGINT parts (exact: ``test_dbt_connection_spark.py``)."""
    sql = digest_query(VIEW, "spark", NOW, None)
    assert ("XXHASH64(`customer id`, `customer id` IS NULL, `at`, `at` IS NULL, `created`, "
            "`created` IS NULL, `select`, `select` IS NULL) AS `_dbt_features_row_hash`") in sql
    assert sql.count("XXHASH64(") == 1 and "SHIFTRIGHT(" in sql and "DECIMAL(38, 0)" in sql
    with pytest.raises(DefinitionError, match="needs a row hash, which dbt-features has for "
                                              "duckdb, spark, databricks, postgres only, not trino"):
        digest_query(VIEW, "trino", NOW, None)


@pytest.mark.parametrize(("dialect", "passes"), [("duckdb", 1), ("spark", 1), ("postgres", 2)])
def test_a_known_full_refresh_estimates_its_entities_in_the_digest_pass(dialect: str,
                                                                        passes: int) -> None:
    """Where the engine estimates (``ESTIMATED_COUNT``), the entities of a full refresh known
    before the digest are estimated in its pass (of the rows a full refresh serves); elsewhere
    they are counted in a pass of their own."""
    import pyarrow as pa

    from dbt_features.serving.layout import bucket_count
    from dbt_features.serving.sync_plan import plan_sync

    class Recording:
        observes = False  # the digest's own pass (a Spark session observes it in the read)

        def __init__(self) -> None:
            self.dialect, self.queries = dialect, []

        def arrow(self, sql: str) -> pa.Table:
            self.queries.append(sql)
            return pa.table({"settled_rows": [0], "settled_digest": [None], "rows": [9],
                             "digest": ["7"], "watermark": [None], "entities": [40_000]})

    warehouse = Recording()
    plan = plan_sync(VIEW, warehouse, {}, NOW, full_refresh=True, from_sql=False)
    assert plan.full and len(warehouse.queries) == passes
    assert plan.schema.buckets == bucket_count(40_000) and plan.state.settled_digest == "7"
    assert ("APPROX_COUNT_DISTINCT" in warehouse.queries[0]) == (passes == 1)


@pytest.mark.parametrize("buckets,shards", [(1, 3), (7, 2), (853, 5), (8923, 4), (8923, 8)])
def test_bucket_aligned_shards_follow_the_online_layout(buckets: int, shards: int) -> None:
    """With ``shard_buckets``, shard k of n holds exactly the integer keys whose online-store
    bucket (``layout.locate``, Python's non-negative modulo) is in the k-th of n consecutive
    ranges of bucket numbers, negative keys and the int64 extremes included: every key in
    exactly one shard, each bucket in one shard, and shard (k, n) is (2k, 2n) and (2k+1, 2n)."""
    import duckdb

    from dbt_features.serving.layout import locate

    keys = [*range(-3000, 3000, 7), -(2**63), 2**63 - 1, 0, -1, buckets, -buckets]
    view = replace(VIEW, ttl_seconds=None, created_timestamp=None)
    con = duckdb.connect()
    con.execute('create table spend ("customer id" bigint, "at" timestamp, "select" double)')
    con.executemany("insert into spend values (?, timestamp '2026-01-01', 1.0)", [[k] for k in keys])

    def shard_of(n: int, hashed: bool = False) -> dict[int, int]:
        found: dict[int, int] = {}
        for k in range(n):
            sql = latest_query(view, "duckdb", NOW, shard=(k, n),
                               shard_buckets=None if hashed else buckets)
            sql = sql.replace('"db"."main"."spend"', "spend")
            for (key,) in con.sql(f'select "customer id" from ({sql})').fetchall():
                assert key not in found
                found[key] = k
        assert set(found) == set(keys)
        return found

    found = shard_of(shards)
    for key, shard in found.items():
        bucket = locate([key], ["int64"], buckets)[0]
        assert shard * buckets // shards <= bucket < (shard + 1) * buckets // shards
    for hashed in (False, True):
        halves, whole = shard_of(2 * shards, hashed), shard_of(shards, hashed)
        assert all(halves[key] // 2 == whole[key] for key in keys)


_TIES = replace(
    VIEW, ttl_seconds=None,
    entity=Entity("pair", (Column("customer id", "int64", "bigint"),
                           Column("shop", "string", "varchar"))),
    features=(Feature("select", "double", "double", None, "f1"),
              Feature("label", "string", "varchar", None, "f2")),
)
_TIE_ROWS = st.lists(st.tuples(
    st.integers(0, 2), st.sampled_from(["a", "b", None]),
    st.sampled_from([datetime(2026, 1, 1), datetime(2026, 1, 2), None]),
    st.sampled_from([datetime(2026, 1, 1, tzinfo=timezone.utc), None]),
    st.sampled_from([1.0, 2.0, float("nan"), float("inf"), None]),
    st.sampled_from(["", "a", "b", "é", "Z", None]),
), max_size=40)


@settings(max_examples=80, deadline=None)
@given(rows=_TIE_ROWS, shards=st.sampled_from([1, 2]))
def test_ranking_only_the_tied_entities_returns_what_ranking_all_does(rows: list,
                                                                     shards: int) -> None:
    """DuckDB's sync query (``latest_ranking.TIES_APART``: the rank window over the tied
    entities only) returns exactly the rows of one window over all entities (the other
    dialects' form): exact ties on event time, NULL created times and features, NaN, infinity,
    empty and non-ASCII strings, a composite key, in shards."""
    import math

    import duckdb

    from dbt_features.serving import latest_ranking

    con = duckdb.connect()
    con.execute('create table spend ("customer id" bigint, shop varchar, "at" timestamp, '
                'created timestamptz, "select" double, label varchar)')
    if rows:
        con.executemany("insert into spend values (?, ?, ?, ?, ?, ?)", [list(r) for r in rows])

    def latest(ties_apart: set[str]) -> list[tuple]:
        found: list[tuple] = []
        for k in range(shards):
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(latest_ranking, "TIES_APART", ties_apart)
                sql = latest_query(_TIES, "duckdb", NOW, shard=(k, shards) if shards > 1 else None)
            found += con.sql(sql.replace('"db"."main"."spend"', "spend")).fetchall()
        return sorted(found, key=lambda row: repr([("nan" if isinstance(v, float) and math.isnan(v)
                                                     else v) for v in row]))

    assert latest_ranking.TIES_APART == {"duckdb"}
    assert repr(latest(latest_ranking.TIES_APART)) == repr(latest(set()))


@given(st.lists(st.integers(-2**63, 2**63 - 1), max_size=50))
def test_observed_digest_adds_up_the_parts_to_the_exact_sum(values: list[int]) -> None:
    """The parts a read observes (``observed_rows``: Spark's arithmetic shifts and masks of
    each 64-bit row hash, summed) add up to the sum ``digest_query`` records, as text; "0"
    over no rows, as the digest's own pass records it."""
    from dbt_features.serving.digest import LOW_BITS, observed_digest

    mask = 2 ** LOW_BITS - 1
    parts = {"rows": len(values), "digest_high": sum(v >> 2 * LOW_BITS for v in values) if values else None,
             "digest_middle": sum((v >> LOW_BITS) & mask for v in values) if values else None,
             "digest_low": sum(v & mask for v in values) if values else None}
    assert observed_digest(parts) == (str(sum(values)) if values else "0")
