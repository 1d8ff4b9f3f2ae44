"""Validation of feature definitions on real dbt projects: every bad input, its exact message."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import DBT_FEATURES, make_project
from dbt_features.cli import main


def model(meta: str, select: str = "1::bigint as customer_id, timestamp '2026-01-01' as ts, "
          "1.5::double as f1") -> str:
    return f"{{{{ config(meta={{'feature_store': {meta}}}) }}}}\nselect {select}\n"


BROKEN = {
    "models/good.sql": model("{'entity': 'customer_id', 'timestamp': 'ts'}"),
    "models/misspelt.sql": model("{'entity': 'customer_id', 'timestmp': 'ts'}"),
    "models/no_entity_col.sql": model("{'entity': 'cust_id', 'timestamp': 'ts'}"),
    "models/no_ts_col.sql": model("{'entity': 'customer_id', 'timestamp': 'event_ts'}"),
    "models/bad_ttl.sql": model("{'entity': 'customer_id', 'timestamp': 'ts', 'ttl': '30days'}"),
    "models/not_ts.sql": model("{'entity': 'customer_id', 'timestamp': 'f1'}"),
    "models/missing_feature.sql": model(
        "{'entity': 'customer_id', 'timestamp': 'ts', 'features': ['f1', 'f_1']}"),
    "models/type_a.sql": model(
        "{'entity': 'customer_id', 'entity_name': 'client', 'timestamp': 'ts'}",
        "1::bigint as customer_id, timestamp '2026-01-01' as ts, 0.5::double as score"),
    "models/type_b.sql": model(
        "{'entity': 'customer_id', 'entity_name': 'client', 'timestamp': 'ts'}",
        "1::bigint as customer_id, timestamp '2026-01-01' as ts, 'high' as score"),
    "models/key_a.sql": model(
        "{'entity': 'merchant_id', 'entity_name': 'merchant', 'timestamp': 'ts'}",
        "1::bigint as merchant_id, timestamp '2026-01-01' as ts, 1 as m1"),
    "models/key_b.sql": model(
        "{'entity': 'merchant_id', 'entity_name': 'merchant', 'timestamp': 'ts'}",
        "'1' as merchant_id, timestamp '2026-01-01' as ts, 2 as m2"),
    "models/in_yaml.sql": "select 1::bigint as customer_id, timestamp '2026-01-01' as ts, 1 as x\n",
    "models/schema.yml": """
version: 2
models:
  - name: in_yaml
    config:
      meta:
        feature_store:
          entity: customer_id
          timestamp: ts
          online: maybe
""",
}

EXPECTED = {
    "misspelt key": "model misspelt (models/misspelt.sql): unknown key "
    "config.meta.feature_store.timestmp (did you mean 'timestamp'?); the keys are: entity, "
    "entity_name, timestamp, created_timestamp, ttl, online, features, owner, tags, "
    "description, version.",
    "entity column absent": "model no_entity_col (models/no_entity_col.sql): "
    "config.meta.feature_store.entity names column 'cust_id', which the model does not have "
    "(did you mean 'customer_id'?); its columns are: customer_id, ts, f1.",
    "timestamp column absent": "model no_ts_col (models/no_ts_col.sql): "
    "config.meta.feature_store.timestamp names column 'event_ts', which the model does not "
    "have; its columns are: customer_id, ts, f1.",
    "ttl does not parse": "model bad_ttl (models/bad_ttl.sql): config.meta.feature_store.ttl "
    "'30days' is not a duration: write a whole number and a unit (s, m, h, d or w), e.g. "
    "'30d', '12h', '90m', or 0 for no ttl.",
    "timestamp not a timestamp": "model not_ts (models/not_ts.sql): "
    "config.meta.feature_store.timestamp column 'f1' has type 'DOUBLE', not a timestamp or "
    "date; name an event-time column or cast it to timestamp.",
    "feature not a column": "model missing_feature (models/missing_feature.sql): "
    "config.meta.feature_store.features names column 'f_1', which the model does not have "
    "(did you mean 'f1'?); its columns are: customer_id, ts, f1.",
    "feature type differs": "model type_b (models/type_b.sql): feature 'score' of entity "
    "'client' is string here but double in type_a; one name must mean one type: rename one "
    "or cast it.",
    "join key type differs": "model key_b (models/key_b.sql): entity 'merchant' join keys "
    "have types ['string'] here but ['int64'] in key_a (merchant_id); cast them to the same "
    "type.",
    "bad value in YAML": "model in_yaml (models/in_yaml.sql, models/schema.yml): "
    "config.meta.feature_store.online must be true or false, not 'maybe'.",
}


@pytest.fixture(scope="module")
def broken_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("broken") / "proj", BROKEN)


@pytest.fixture(scope="module")
def validate_result(broken_project: Path):
    return CliRunner().invoke(main, ["validate", "--project-dir", str(broken_project)])


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_each_bad_definition_has_its_message(validate_result, case):
    assert validate_result.exit_code == 2
    assert f"  - {EXPECTED[case]}\n" in validate_result.stderr
    assert "Traceback" not in validate_result.output


def test_all_problems_reported_at_once(validate_result):
    assert validate_result.stderr.startswith(f"Error: {len(EXPECTED)} problems in the feature definitions:\n")
    assert validate_result.stderr.count("\n  - ") == len(EXPECTED)


def test_validate_json_lists_problems(broken_project):
    import json

    result = CliRunner().invoke(main, ["validate", "--project-dir", str(broken_project), "--json"])
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert sorted(data["problems"]) == sorted(EXPECTED.values())


def test_validate_subprocess_exit_code_and_no_traceback(broken_project):
    result = subprocess.run([DBT_FEATURES, "validate"], cwd=broken_project, capture_output=True,
                            text=True)
    assert result.returncode == 2
    assert EXPECTED["ttl does not parse"] in result.stderr
    assert "Traceback" not in result.stderr


def test_unbuilt_model_without_declared_columns(tmp_path):
    project = make_project(tmp_path / "proj", {
        "models/base.sql": "select 1 as x\n",
        "models/spend.sql": model("{'entity': 'customer_id', 'timestamp': 'ts'}"),
    }, build=False)
    from helpers import run_dbt

    run_dbt(project, "run", "--select", "base")
    result = CliRunner().invoke(main, ["validate", "--project-dir", str(project)])
    assert result.exit_code == 2
    assert ("model spend (models/spend.sql): cannot tell its columns: it is not built in the "
            "warehouse (tiny.main.spend) and its YAML declares no columns. Run `dbt run "
            "--select spend` or declare its columns with data_type.") in result.stderr


def test_declared_type_disagreeing_with_warehouse(tmp_path):
    project = make_project(tmp_path / "proj", {
        "models/spend.sql": model("{'entity': 'customer_id', 'timestamp': 'ts'}"),
        "models/schema.yml": "version: 2\nmodels:\n  - name: spend\n    columns:\n"
                             "      - name: f1\n        data_type: bigint\n",
    })
    result = CliRunner().invoke(main, ["validate", "--project-dir", str(project)])
    assert result.exit_code == 2
    assert ("model spend (models/spend.sql, models/schema.yml): column 'f1' is declared "
            "data_type 'bigint' in YAML but is 'DOUBLE' in the warehouse; fix the declaration "
            "or rebuild the model.") in result.stderr


def test_unservable_type(tmp_path):
    project = make_project(tmp_path / "proj", {
        "models/spend.sql": model("{'entity': 'customer_id', 'timestamp': 'ts'}",
                                  "1::bigint as customer_id, timestamp '2026-01-01' as ts, "
                                  "[1, 2] as tags_list"),
    })
    result = CliRunner().invoke(main, ["validate", "--project-dir", str(project)])
    assert result.exit_code == 2
    assert ("model spend (models/spend.sql): feature column 'tags_list' has type "
            "'INTEGER[]', which dbt-features cannot serve; cast it to one of: int64, double, "
            "bool, string, timestamp, date.") in result.stderr
