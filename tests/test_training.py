"""Training sets on the built sample project: the Python API, the CLI (in process and as a real
subprocess), DuckDB against PostgreSQL, and every bad input with its message and exit code 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlglot
from click.testing import CliRunner

from helpers import DBT_FEATURES, run_dbt
from dbt_features import FeatureStore, UsageError
from dbt_features.cli import main
from dbt_features.pit import DIALECTS

FEATURES = "customer_spend:avg_amount_30d,customer_spend:txn_count_7d,merchant_risk:*"
FEATURE_LIST = FEATURES.split(",")


@pytest.fixture(scope="module")
def store(built_sample: Path) -> FeatureStore:
    return FeatureStore(project_dir=str(built_sample))


@pytest.fixture(scope="module")
def labels(store: FeatureStore) -> pa.Table:
    with store.warehouse() as wh:
        return wh.arrow("select * from main.labels order by transaction_id")


@pytest.fixture(scope="module")
def labels_file(labels: pa.Table, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spine") / "labels.parquet"
    pq.write_table(labels, path)
    return path


def rows(table: pa.Table, key: str = "transaction_id") -> list[dict[str, Any]]:
    """Rows sorted by key, floats rounded (DuckDB and PostgreSQL sum in different orders)."""
    out = []
    for row in sorted(table.to_pylist(), key=lambda r: r[key]):
        out.append({k: round(v, 9) if isinstance(v, float) else v for k, v in row.items()})
    return out


def cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# -- the API -----------------------------------------------------------------------------------

def test_arrow_spine_keeps_order_columns_and_types(store: FeatureStore, labels: pa.Table) -> None:
    spine = labels.take(list(range(labels.num_rows - 1, -1, -1)))  # reversed: order must hold
    table = store.get_training_set(spine, FEATURE_LIST, spine_timestamp="scored_at")
    assert table.column_names == [*labels.column_names, "avg_amount_30d", "txn_count_7d",
                                  "merchant_txn_count_30d", "merchant_fraud_rate_30d",
                                  "merchant_category"]
    assert table.column("transaction_id").to_pylist() == spine.column("transaction_id").to_pylist()
    assert table.schema.field("txn_count_7d").type == pa.int64()
    assert table.schema.field("merchant_category").type == pa.string()
    assert table.column("avg_amount_30d").null_count < table.num_rows // 10


def test_model_spine_runs_in_the_warehouse_with_the_same_rows(store: FeatureStore,
                                                              labels: pa.Table) -> None:
    in_python = store.get_training_set(labels, FEATURE_LIST, spine_timestamp="scored_at")
    in_warehouse = store.get_training_set("labels", FEATURE_LIST, spine_timestamp="scored_at")
    assert rows(in_warehouse) == rows(in_python)


@pytest.mark.postgres
def test_postgres_gives_the_same_rows_as_duckdb(built_sample: Path, store: FeatureStore,
                                                 labels: pa.Table) -> None:
    pg = FeatureStore(project_dir=str(built_sample), target="postgres")
    duck = rows(store.get_training_set(labels, FEATURE_LIST, spine_timestamp="scored_at"))
    assert rows(pg.get_training_set(labels, FEATURE_LIST, spine_timestamp="scored_at")) == duck
    assert rows(pg.get_training_set("labels", FEATURE_LIST, spine_timestamp="scored_at")) == duck


def test_dataframe_spines_and_time_zones(store: FeatureStore, labels: pa.Table) -> None:
    import polars as pl

    expected = rows(store.get_training_set(labels, FEATURE_LIST, spine_timestamp="scored_at"))
    frame = labels.to_pandas()
    frame["scored_at"] = frame["scored_at"].dt.tz_localize("UTC").dt.tz_convert("Asia/Tokyo")
    got = store.get_training_set(frame, FEATURE_LIST, spine_timestamp="scored_at")
    assert isinstance(got, pa.Table) and got.num_rows == labels.num_rows
    assert got.schema.field("scored_at").type.tz == "Asia/Tokyo"  # the spine's column as given
    for a, b in zip(rows(got), expected):  # same instants, seen from Tokyo
        assert a["scored_at"] == b["scored_at"].replace(tzinfo=timezone.utc)
        assert {**a, "scored_at": 0} == {**b, "scored_at": 0}
    assert rows(store.get_training_set(pl.from_arrow(labels), FEATURE_LIST,
                                       spine_timestamp="scored_at")) == expected


def test_null_spine_timestamps_get_null_features(store: FeatureStore, labels: pa.Table) -> None:
    spine = labels.slice(0, 50).set_column(
        labels.column_names.index("scored_at"), "scored_at", pa.nulls(50, pa.timestamp("us")))
    table = store.get_training_set(spine, FEATURE_LIST, spine_timestamp="scored_at")
    assert table.num_rows == 50
    assert all(v is None for v in table.column("avg_amount_30d").to_pylist())


def test_full_feature_names_and_default_timestamp(store: FeatureStore, labels: pa.Table) -> None:
    spine = labels.rename_columns(["event_timestamp" if c == "scored_at" else c
                                   for c in labels.column_names])
    table = store.get_training_set(spine, ["merchant_risk:merchant_category"],
                                   full_feature_names=True)
    assert table.column_names[-1] == "merchant_risk__merchant_category"


def test_two_views_with_one_feature_name(store: FeatureStore, labels: pa.Table) -> None:
    """A name clash is found before any query; with full names both columns come back."""
    from dbt_features.training import plan

    registry = store.registry
    twin = registry.views[0].__class__(**{**registry.views[0].__dict__, "name": "twin"})
    clone = registry.__class__(**{**registry.__dict__, "views": (*registry.views, twin)})
    with pytest.raises(UsageError, match="both customer_spend and twin.*--full-feature-names"):
        plan(clone, ["customer_spend:avg_amount_30d", "twin:avg_amount_30d"])
    joins = plan(clone, ["customer_spend:avg_amount_30d", "twin:avg_amount_30d"],
                 full_feature_names=True)
    assert [o for j in joins for _, o in j.outputs] == ["customer_spend__avg_amount_30d",
                                                        "twin__avg_amount_30d"]


def test_empty_spine(store: FeatureStore, labels: pa.Table) -> None:
    table = store.get_training_set(labels.slice(0, 0), FEATURE_LIST, spine_timestamp="scored_at")
    assert table.num_rows == 0 and "merchant_category" in table.column_names


# -- the CLI -----------------------------------------------------------------------------------

def test_cli_training_set_parquet_and_csv(built_sample: Path, labels_file: Path, store: FeatureStore,
                                          labels: pa.Table, tmp_path: Path) -> None:
    out = tmp_path / "train.parquet"
    result = cli("training-set", "--project-dir", str(built_sample), "--spine", str(labels_file),
                 "--spine-timestamp", "scored_at", "--features", FEATURES, "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["rows"] == labels.num_rows
    expected = rows(store.get_training_set(labels, FEATURE_LIST, spine_timestamp="scored_at"))
    assert rows(pq.read_table(out)) == expected
    csv = tmp_path / "train.csv"
    result = cli("training-set", "--project-dir", str(built_sample), "--spine", "labels",
                 "--spine-timestamp", "scored_at", "-f", "merchant_risk:*", "-o", str(csv))
    assert result.exit_code == 0, result.output
    assert f"Wrote {labels.num_rows} rows" in result.output
    assert csv.read_text().splitlines()[0].endswith('"merchant_category"')


@pytest.mark.parametrize("dialect", DIALECTS)
def test_cli_sql_every_dialect(built_sample: Path, dialect: str) -> None:
    result = cli("sql", "--project-dir", str(built_sample), "--spine", "labels",
                 "--spine-timestamp", "scored_at", "--features", FEATURES, "--dialect", dialect)
    assert result.exit_code == 0, result.output
    sqlglot.parse_one(result.output, read=dialect)
    assert ("ASOF" in result.output.upper()) == (dialect == "duckdb")


def test_cli_sql_runs_on_duckdb(built_sample: Path, store: FeatureStore) -> None:
    sql = cli("sql", "--project-dir", str(built_sample), "--spine", "labels", "--spine-timestamp",
              "scored_at", "--features", FEATURES).output
    with store.warehouse() as wh:
        printed = wh.arrow(sql)
    assert rows(printed) == rows(store.get_training_set("labels", FEATURE_LIST,
                                                        spine_timestamp="scored_at"))


def test_real_subprocess_runs(built_sample: Path, labels_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "train.parquet"
    for spine, extra in ((str(labels_file), []), ("labels", ["--target", "postgres"])):
        done = subprocess.run(
            [DBT_FEATURES, "training-set", "--spine", spine, "--spine-timestamp", "scored_at",
             "--features", FEATURES, "-o", str(out), *extra],
            cwd=built_sample, capture_output=True, text=True, env=os.environ.copy())
        assert done.returncode == 0, done.stderr
        assert pq.read_table(out).num_rows > 0
    bad = subprocess.run(
        [DBT_FEATURES, "training-set", "--spine", "nope.parquet", "-f", FEATURES, "-o", str(out)],
        cwd=built_sample, capture_output=True, text=True, env=os.environ.copy())
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "spine file nope.parquet does not exist" in bad.stderr


# -- bad input: one message each, exit code 2 ---------------------------------------------------

@pytest.fixture(scope="module")
def odd_spines(labels: pa.Table, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("odd")
    files = {
        "garbage": labels.slice(0, 0),
        "no_merchant": labels.drop_columns(["merchant_id"]),
        "string_keys": labels.set_column(1, "customer_id",
                                         labels.column("customer_id").cast(pa.string())),
        "two_defaults": labels.append_column("event_timestamp", labels.column("scored_at"))
                              .append_column("timestamp", labels.column("scored_at")),
        "clash": labels.append_column("avg_amount_30d", labels.column("amount")),
        "text_time": labels.set_column(4, "scored_at", pa.array(["yesterday"] * labels.num_rows)),
    }
    paths = {}
    for name, table in files.items():
        paths[name] = folder / f"{name}.parquet"
        pq.write_table(table, paths[name])
    paths["garbage"].write_bytes(b"this is not parquet")
    return paths


@pytest.mark.parametrize(("spine", "args", "message"), [
    ("labels", ["-f", "customer_spnd:avg_amount_30d"],
     "no feature view named 'customer_spnd' (did you mean 'customer_spend'?)"),
    ("labels", ["-f", "customer_spend:avg_amount_31d"],
     "has no feature 'avg_amount_31d' (did you mean 'avg_amount_30d'?)"),
    ("labels", ["-f", "customer_spend"], "is not of the form view:feature"),
    ("missing.parquet", ["-f", FEATURES], "spine file missing.parquet does not exist"),
    ("{garbage}", ["-f", FEATURES], "cannot read spine file"),
    ("labels", ["-f", FEATURES], "no column is named event_timestamp or timestamp; name the "
                                 "spine timestamp with --spine-timestamp"),
    ("labels", ["-f", FEATURES, "--spine-timestamp", "scored"],
     "has no column 'scored' (--spine-timestamp) (did you mean 'scored_at'?)"),
    ("labels", ["-f", FEATURES, "--spine-timestamp", "amount"], "not a timestamp or date"),
    ("{two_defaults}", ["-f", FEATURES], "both 'event_timestamp' and 'timestamp' could be the"),
    ("{no_merchant}", ["-f", FEATURES, "--spine-timestamp", "scored_at"],
     "has no column 'merchant_id', the join key of entity 'merchant' needed by feature view "
     "'merchant_risk'"),
    ("{string_keys}", ["-f", FEATURES, "--spine-timestamp", "scored_at"],
     "column 'customer_id' is string but entity 'customer' of 'customer_spend' has int64 keys"),
    ("{clash}", ["-f", FEATURES, "--spine-timestamp", "scored_at"],
     "already has column(s) avg_amount_30d, also requested as features"),
    ("{text_time}", ["-f", FEATURES, "--spine-timestamp", "scored_at"],
     "holds text that is not an ISO timestamp"),
    ("lables", ["-f", FEATURES], "spine 'lables' is neither a file nor a dbt model or source of "
                                 "this project (did you mean 'labels'?)"),
])
def test_training_set_bad_input(built_sample: Path, odd_spines: dict[str, Path], tmp_path: Path,
                                spine: str, args: list[str], message: str) -> None:
    spine = spine.format(**{k: str(v) for k, v in odd_spines.items()})
    result = CliRunner().invoke(main, ["training-set", "--project-dir", str(built_sample),
                                       "--spine", spine, *args, "-o", str(tmp_path / "x.parquet")])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_bad_output_extension_fails_before_any_work(built_sample: Path) -> None:
    result = CliRunner().invoke(main, ["training-set", "--project-dir", str(built_sample),
                                       "--spine", "labels", "-f", FEATURES, "-o", "train.xlsx"])
    assert result.exit_code == 2
    assert "-o train.xlsx: the output must end in .parquet or .csv (not .xlsx)" in result.output


def test_unknown_dialect(built_sample: Path) -> None:
    result = CliRunner().invoke(main, ["sql", "--project-dir", str(built_sample), "--spine",
                                       "labels", "-f", FEATURES, "--dialect", "oracle", "--json"])
    assert result.exit_code == 2
    assert "--dialect 'oracle' is not supported; choose one of: duckdb, postgres, snowflake, " \
           "bigquery, spark, trino" in result.output
    assert json.loads(result.output.splitlines()[0])["error"].startswith("--dialect")


def test_sql_needs_a_spine_in_the_warehouse(built_sample: Path, labels_file: Path) -> None:
    result = CliRunner().invoke(main, ["sql", "--project-dir", str(built_sample), "--spine",
                                       str(labels_file), "-f", FEATURES])
    assert result.exit_code == 2
    assert "is not a dbt model or source of this project" in result.output


def test_pandas_integer_keys_with_missing_values(store: FeatureStore, labels: pa.Table) -> None:
    frame = labels.to_pandas()
    frame.loc[0, "customer_id"] = None  # pandas makes the column float64
    with pytest.raises(UsageError, match="pandas turns integers with missing values into floats"):
        store.get_training_set(frame, FEATURE_LIST, spine_timestamp="scored_at")


@pytest.fixture(scope="module")
def odd_project(built_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the built sample with a view without timestamp (built with dbt) and a model
    that is in the manifest but was never built."""
    root = tmp_path_factory.mktemp("odd_project")
    project = root / "sample_project"
    shutil.copytree(built_sample, project, symlinks=True)
    shutil.copytree(built_sample.parent / "dbt_package", root / "dbt_package")
    (project / "models" / "features" / "customer_profile.sql").write_text(
        "{{ config(meta={'feature_store': {'entity': 'customer_id'}}) }}\n"
        "select customer_id, segment from {{ ref('customers') }}\n")
    (project / "models" / "unbuilt_labels.sql").write_text("select * from {{ ref('labels') }}\n")
    env = {"DBT_FEATURES_SAMPLE_DUCKDB": str(project / "target" / "sample.duckdb")}
    run_dbt(project, "run", "--select", "customer_profile", env=env)  # not unbuilt_labels
    return project


def test_view_without_timestamp(odd_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBT_FEATURES_SAMPLE_DUCKDB", str(odd_project / "target" / "sample.duckdb"))
    result = CliRunner().invoke(main, ["training-set", "--project-dir", str(odd_project),
                                       "--spine", "labels", "--spine-timestamp", "scored_at",
                                       "-f", "customer_profile:segment", "-o", "x.parquet"])
    assert result.exit_code == 2, result.output
    assert "feature view 'customer_profile' has no timestamp, so it cannot be joined point in " \
           "time" in result.output


@pytest.mark.parametrize("command", ["training-set", "sql"])
def test_spine_model_not_built(odd_project: Path, monkeypatch: pytest.MonkeyPatch,
                               command: str) -> None:
    monkeypatch.setenv("DBT_FEATURES_SAMPLE_DUCKDB", str(odd_project / "target" / "sample.duckdb"))
    extra = ["-o", str(odd_project / "x.parquet")] if command == "training-set" else []
    result = CliRunner().invoke(main, [command, "--project-dir", str(odd_project), "--spine",
                                       "unbuilt_labels", "-f", FEATURES, *extra])
    assert result.exit_code == 2, result.output
    assert "spine model unbuilt_labels (" in result.output
    assert "is not in the warehouse: build it with `dbt run --select unbuilt_labels`" \
        in result.output
    assert "Traceback" not in result.output and not (odd_project / "x.parquet").exists()


# The float features of FEATURE_LIST: their view and its join key.
FLOATS = {"avg_amount_30d": ("customer_spend", "customer_id"),
          "merchant_fraud_rate_30d": ("merchant_risk", "merchant_id")}


def test_floats_are_the_same_on_both_paths(store: FeatureStore, labels: pa.Table) -> None:
    """The Python path (an Arrow spine) and the warehouse path (the `labels` model as spine) give
    the same float features row by row, bit for bit, and each is a value stored in its feature
    view for that entity. No tolerance: the point-in-time join copies stored doubles and
    computes nothing, so any difference is a lossy conversion (text, decimal, float32) on one
    path: a model trained on other values than those stored and served."""
    in_python = store.get_training_set(labels, FEATURE_LIST, spine_timestamp="scored_at")
    in_warehouse = store.get_training_set("labels", FEATURE_LIST, spine_timestamp="scored_at")
    assert [f.name for f in in_python.schema if f.name not in labels.column_names
            and pa.types.is_floating(f.type)] == list(FLOATS)
    python_rows = {row["transaction_id"]: row for row in in_python.to_pylist()}
    warehouse_rows = {row["transaction_id"]: row for row in in_warehouse.to_pylist()}
    assert python_rows.keys() == warehouse_rows.keys() and len(python_rows) == labels.num_rows
    for feature, (view, key) in FLOATS.items():
        python = {tid: exact(row[feature]) for tid, row in python_rows.items()}
        assert python == {tid: exact(row[feature]) for tid, row in warehouse_rows.items()}, feature
        query = sqlglot.select(key, feature).from_(sqlglot.exp.table_(view, db="main"))
        with store.warehouse() as wh:
            stored = {(row[key], exact(row[feature]))
                      for row in wh.arrow(query.sql("duckdb")).to_pylist()}
        served = {(python_rows[tid][key], bits) for tid, bits in python.items() if bits}
        assert served and served <= stored, feature


def exact(value: float | None) -> str | None:
    """A double as its exact bits (``float.hex``): equal only when bit-identical."""
    return None if value is None else value.hex()
