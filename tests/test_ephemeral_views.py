"""An ephemeral feature view has no relation: training sets inline its compiled SQL, as sync
does, and give the same values as the same model materialized as a table."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from helpers import make_project
from dbt_features import FeatureStore
from dbt_features.cli import main

EVENTS = """select * from (values
    (1::bigint, timestamp '2026-01-01 00:00:00', 1.0::double),
    (1::bigint, timestamp '2026-01-05 00:00:00', 5.0::double),
    (2::bigint, timestamp '2026-01-03 00:00:00', 3.0::double)
) as t(customer_id, ts, val)
"""
FEATURE = """{{{{ config(materialized='{kind}', meta={{'feature_store': {{'entity': 'customer_id',
    'timestamp': 'ts', 'online': true}}}}) }}}}
select customer_id, ts, val * 2 as doubled from {{{{ ref('events') }}}}
"""
LABELS = """select * from (values
    (1::bigint, timestamp '2026-01-02 00:00:00'),
    (1::bigint, timestamp '2026-01-09 00:00:00'),
    (2::bigint, timestamp '2026-01-02 00:00:00')
) as t(customer_id, scored_at)
"""
SCHEMA = """version: 2
models:
  - name: {name}
    columns:
      - name: customer_id
        data_type: bigint
      - name: ts
        data_type: timestamp
      - name: doubled
        data_type: double
"""
EXPECTED = [2.0, 10.0, None]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("ephemeral") / "proj", {
        "models/events.sql": EVENTS,
        "models/labels.sql": LABELS,
        "models/spend.sql": FEATURE.format(kind="ephemeral"),
        "models/spend_table.sql": FEATURE.format(kind="table"),
        "models/schema.yml": SCHEMA.format(name="spend"),
    })


def spine() -> pa.Table:
    return pa.table({"customer_id": [1, 1, 2],
                     "event_timestamp": [datetime(2026, 1, 2), datetime(2026, 1, 9),
                                         datetime(2026, 1, 2)]})


def test_ephemeral_view_validates(project):
    result = CliRunner().invoke(main, ["validate", "--project-dir", str(project)])
    assert result.exit_code == 0, result.output
    assert FeatureStore(str(project)).registry.view("spend").materialized == "ephemeral"


def test_training_set_with_a_python_spine(project):
    store = FeatureStore(str(project))
    table = store.get_training_set(spine(), ["spend:doubled"])
    assert table.column("doubled").to_pylist() == [2.0, 10.0, None]
    same = store.get_training_set(spine(), ["spend_table:doubled"])
    assert same.column("doubled").to_pylist() == table.column("doubled").to_pylist()


def test_training_set_with_a_model_spine_and_the_cli(project, tmp_path):
    out = tmp_path / "train.csv"
    result = CliRunner().invoke(main, [
        "training-set", "--project-dir", str(project), "--spine", "labels", "--spine-timestamp",
        "scored_at", "-f", "spend:doubled,spend_table:doubled", "--full-feature-names",
        "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == 3
    import pyarrow.csv as pcsv

    table = pcsv.read_csv(out).sort_by([("customer_id", "ascending"),
                                        ("scored_at", "ascending")])
    assert table.column("spend__doubled").to_pylist() == EXPECTED
    assert table.column("spend_table__doubled").to_pylist() == EXPECTED


def test_printed_sql_inlines_the_model_and_runs(project):
    store = FeatureStore(str(project))
    sql = store.training_sql("labels", ["spend:doubled"], spine_timestamp="scored_at")
    assert "__dbt_features_model_spend" in sql and '"spend"' not in sql
    with store.warehouse() as wh:
        table = wh.arrow(sql).sort_by([("customer_id", "ascending"), ("scored_at", "ascending")])
    assert table.column("doubled").to_pylist() == EXPECTED
    for dialect in ("postgres", "snowflake"):
        assert "__dbt_features_model_spend" in store.training_sql(
            "labels", ["spend:doubled"], spine_timestamp="scored_at", dialect=dialect)
