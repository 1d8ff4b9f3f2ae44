"""The sync query is a sqlglot tree, emitted per dialect, with quoted identifiers."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pytest
import sqlglot

from dbt_features.errors import DefinitionError
from dbt_features.registry import Column, Entity, Feature, FeatureView
from dbt_features.serving.query import Boundary, digest_query, latest_query
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
    assert 'MAX(CASE WHEN "at" <= CAST(\'2026-05-01 12:00:00.000000\' AS TIMESTAMP) THEN "created" END)' in sql
    first = digest_query(VIEW, "duckdb", NOW, None)
    assert "CASE WHEN FALSE" in first and "HASH(" in first


def test_spark_digest_hashes_null_flags_and_sums_as_decimal() -> None:
    """Spark's hashes skip NULL inputs, so each column's null flag is hashed with it; a sum of
    BIGINT hashes overflows (an error under ANSI mode), so they are summed as DECIMAL."""
    sql = digest_query(VIEW, "spark", NOW, None)
    assert ("CAST(XXHASH64(`customer id`, `customer id` IS NULL, `at`, `at` IS NULL, `created`, "
            "`created` IS NULL, `select`, `select` IS NULL) AS DECIMAL(38, 0))") in sql
    with pytest.raises(DefinitionError, match="needs a row hash, which dbt-features has for "
                                              "duckdb, spark, databricks, postgres only, not trino"):
        digest_query(VIEW, "trino", NOW, None)


@pytest.mark.parametrize("buckets,shards", [(1, 3), (7, 2), (853, 5), (8923, 4)])
def test_bucket_aligned_shards_follow_the_online_layout(buckets: int, shards: int) -> None:
    """With ``shard_buckets``, shard k of n holds exactly the integer keys whose online-store
    bucket (``layout.locate``, Python's non-negative modulo) is k modulo n, negative keys and
    the int64 extremes included: every key in exactly one shard, each bucket in one shard."""
    import duckdb

    from dbt_features.serving.layout import locate

    keys = [*range(-3000, 3000, 7), -(2**63), 2**63 - 1, 0, -1, buckets, -buckets]
    view = replace(VIEW, ttl_seconds=None, created_timestamp=None)
    con = duckdb.connect()
    con.execute('create table spend ("customer id" bigint, "at" timestamp, "select" double)')
    con.executemany("insert into spend values (?, timestamp '2026-01-01', 1.0)", [[k] for k in keys])
    found: dict[int, int] = {}
    for k in range(shards):
        sql = latest_query(view, "duckdb", NOW, shard=(k, shards), shard_buckets=buckets)
        sql = sql.replace('"db"."main"."spend"', "spend")
        for (key,) in con.sql(f'select "customer id" from ({sql})').fetchall():
            assert key not in found
            found[key] = k
    assert set(found) == set(keys)
    for key, shard in found.items():
        assert locate([key], ["int64"], buckets)[0] % shards == shard
