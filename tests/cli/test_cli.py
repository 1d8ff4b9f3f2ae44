"""list / describe / validate on the built sample project, through click and as a subprocess."""

from __future__ import annotations

import json
import subprocess

import pytest
from click.testing import CliRunner

from helpers import DBT_FEATURES
from dbt_features import FeatureStore, Registry
from dbt_features.cli import main


def invoke(project, *args):
    return CliRunner().invoke(main, [*args, "--project-dir", str(project)])


def test_list_json_shows_both_views(built_sample):
    result = invoke(built_sample, "list", "--json")
    assert result.exit_code == 0, result.output
    views = {v["name"]: v for v in json.loads(result.stdout)["views"]}
    assert set(views) == {"customer_spend", "merchant_risk"}
    spend, risk = views["customer_spend"], views["merchant_risk"]
    assert spend["entity"] == "customer"
    assert spend["join_keys"] == [{"name": "customer_id", "dtype": "int64", "data_type": "bigint"}]
    assert (spend["timestamp"], spend["ttl"], spend["online"]) == ("feature_at", "30d", True)
    assert spend["owner"] == "risk-features@example.com"
    assert spend["consumers"] == ["fraud_model"]
    assert [(f["name"], f["dtype"]) for f in spend["features"]] == [
        ("avg_amount_30d", "double"), ("avg_amount_7d", "double"), ("txn_count_7d", "int64")]
    assert risk["entity"] == "merchant" and risk["created_timestamp"] == "computed_at"
    assert (risk["ttl"], risk["ttl_seconds"]) == ("2d", 172800)
    assert risk["owner"] == "merchant-risk@example.com"
    assert risk["consumers"] == ["fraud_model"]
    assert risk["tags"] == ["risk"]
    # Types of merchant_risk are not declared in YAML: they come from the built relation.
    assert [(f["name"], f["dtype"], f["data_type"]) for f in risk["features"]] == [
        ("merchant_txn_count_30d", "int64", "BIGINT"),
        ("merchant_fraud_rate_30d", "double", "DOUBLE"),
        ("merchant_category", "string", "VARCHAR"),
    ]


def test_list_text(built_sample):
    result = invoke(built_sample, "list")
    assert result.exit_code == 0
    assert "customer_spend  (models/features/customer_spend.sql)" in result.stdout
    assert "entity     merchant [merchant_id int64]" in result.stdout
    assert "consumers: fraud_model" in result.stdout


def test_list_select_uses_dbt_selectors(built_sample):
    result = invoke(built_sample, "list", "--json", "--select", "tag:risk")
    assert [v["name"] for v in json.loads(result.stdout)["views"]] == ["merchant_risk"]
    result = invoke(built_sample, "list", "--json", "--select", "customer_spend")
    assert [v["name"] for v in json.loads(result.stdout)["views"]] == ["customer_spend"]


def test_describe_feature_json(built_sample):
    result = invoke(built_sample, "describe", "customer_spend:avg_amount_30d", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["view"] == "customer_spend" and data["dtype"] == "double"
    assert data["description"].startswith("Mean payment amount over the 30 days")
    assert len(data["fingerprint"]) == 16 and data["consumers"] == ["fraud_model"]


def test_describe_view_json(built_sample):
    data = json.loads(invoke(built_sample, "describe", "merchant_risk", "--json").stdout)
    assert data["relation"].endswith("main.merchant_risk")
    assert data["file"] == "models/features/merchant_risk.sql"
    assert data["yaml_file"] == "models/schema.yml"


@pytest.mark.parametrize(("ref", "message"), [
    ("customer_spnd", "Error: no feature view named 'customer_spnd' (did you mean "
     "'customer_spend'?); the feature views are: customer_spend, merchant_risk.\n"),
    ("customer_spend:avg_amount_3d", "Error: feature view 'customer_spend' has no feature "
     "'avg_amount_3d' (did you mean 'avg_amount_30d'?); it has: avg_amount_30d, avg_amount_7d, "
     "txn_count_7d.\n"),
    ("customer_spend:*", "Error: describe takes one feature or a view; 'customer_spend:*' names "
     "several.\n"),
])
def test_describe_bad_reference(built_sample, ref, message):
    result = invoke(built_sample, "describe", ref)
    assert result.exit_code == 2
    assert result.stderr == message


def test_registry_json_loads_without_dbt(built_sample):
    store = FeatureStore(str(built_sample))
    registry = store.registry
    loaded = Registry.load(built_sample / "target" / "feature_registry.json")
    assert loaded == registry
    assert loaded.registry_version == 1 and loaded.adapter_type == "duckdb"
    assert [s.name for s in loaded.services] == ["fraud_model"]
    assert loaded.services[0].views == ("customer_spend", "merchant_risk")


def test_postgres_target_registry(built_sample):
    store = FeatureStore(str(built_sample), target="postgres")
    registry = store.registry
    assert registry.adapter_type == "postgres" and registry.target == "postgres"
    risk = registry.view("merchant_risk")
    assert [(f.name, f.dtype) for f in risk.features] == [
        ("merchant_txn_count_30d", "int64"), ("merchant_fraud_rate_30d", "double"),
        ("merchant_category", "string")]
    assert str(risk.relation).startswith("test.dbt_features_test_")


def test_subprocess_list_json(built_sample):
    result = subprocess.run([DBT_FEATURES, "list", "--json"], cwd=built_sample,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["views"]) == 2
