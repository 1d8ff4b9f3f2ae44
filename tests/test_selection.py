"""--select / --exclude with dbt's selection engine in process: the same answers as dbt, no side
effects on target/, and a selector matching no feature view is exit 2 with the closest names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import REDIS_URL
from dbt_features import FeatureStore
from dbt_features.cli import main


def invoke(project: Path, *args: str):
    return CliRunner().invoke(main, [*args, "--project-dir", str(project)])


def names(project: Path, *args: str) -> list[str]:
    result = invoke(project, "list", "--json", *args)
    assert result.exit_code == 0, result.output
    return [v["name"] for v in json.loads(result.stdout)["views"]]


@pytest.fixture
def own_built(built_sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the built sample (its DuckDB file and target/ too) that this test may change."""
    project = tmp_path / "sample_project"
    shutil.copytree(built_sample, project, symlinks=True)
    monkeypatch.setenv("DBT_FEATURES_SAMPLE_DUCKDB", str(project / "target" / "sample.duckdb"))
    return project


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and "online_store" not in p.parts}


@pytest.mark.parametrize(("args", "expected"), [
    (("--select", "tag:risk"), ["merchant_risk"]),
    # a feature_store tag (not a dbt tag of the model) selects like one
    (("--select", "tag:payments"), ["customer_spend"]),
    (("--select", "tag:payments tag:risk"), ["customer_spend", "merchant_risk"]),
    (("--select", "transactions+", "--exclude", "tag:payments"), ["merchant_risk"]),
    (("--select", "customer_spend"), ["customer_spend"]),
    (("--select", "+customer_spend"), ["customer_spend"]),
    (("--select", "transactions+"), ["customer_spend", "merchant_risk"]),
    (("--select", "+fraud_training_set"), ["customer_spend", "merchant_risk"]),
    (("--select", "path:models/features"), ["customer_spend", "merchant_risk"]),
    (("--select", "models/features/merchant_risk.sql"), ["merchant_risk"]),
    (("--select", "customer_spend merchant_risk"), ["customer_spend", "merchant_risk"]),
    (("--exclude", "tag:risk"), ["customer_spend"]),
    (("--select", "path:models", "--exclude", "customer_spend"), ["merchant_risk"]),
])
def test_dbt_selectors(built_sample, args, expected):
    assert names(built_sample, *args) == expected


def test_selection_has_no_side_effects_on_target(own_built, redis_prefix):
    assert invoke(own_built, "list").exit_code == 0  # the registry is current from here on
    manifest = own_built / "target" / "manifest.json"
    before_manifest = (manifest.read_bytes(), manifest.stat().st_mtime_ns)
    before = snapshot(own_built / "target")
    assert names(own_built, "--select", "tag:risk") == ["merchant_risk"]
    assert names(own_built, "--select", "+customer_spend", "--exclude", "tag:risk") == [
        "customer_spend"]
    store = FeatureStore(str(own_built))
    assert [v.name for v in store.select("customer_spend+")] == ["customer_spend"]
    result = invoke(own_built, "sync", "--select", "customer_spend")
    assert result.exit_code == 0, result.output
    assert (manifest.read_bytes(), manifest.stat().st_mtime_ns) == before_manifest
    assert snapshot(own_built / "target") == before


@pytest.mark.parametrize(("command", "selector", "message"), [
    ("list", "typo", "Error: --select 'typo' matches no feature view; the feature views are: "
     "customer_spend, merchant_risk.\n"),
    ("list", "custmer_spend", "Error: --select 'custmer_spend' matches no feature view (did you "
     "mean 'customer_spend'?); the feature views are: customer_spend, merchant_risk.\n"),
    ("list", "tag:rsk", "Error: --select 'tag:rsk' matches no feature view (did you mean "
     "'tag:risk'?); the feature views are: customer_spend, merchant_risk.\n"),
    ("list", "labels", "Error: --select 'labels' matches no feature view (it selects labels, "
     "which are not feature views); the feature views are: customer_spend, merchant_risk.\n"),
    ("sync", "typo", "Error: --select 'typo' matches no feature view; the feature views are: "
     "customer_spend, merchant_risk.\n"),
    ("list", "foo:bar", "Error: --select 'foo:bar' is not a valid dbt selector: 'foo' is not a "
     "valid method name.\n"),
    ("list", "@x+", "Error: --select '@x+' is not a valid dbt selector: Invalid node spec @x+ - "
     "\"@\" prefix and \"+\" suffix are incompatible.\n"),
])
def test_selector_matching_no_feature_view(built_sample, redis_prefix, command, selector,
                                           message):
    result = invoke(built_sample, command, "--select", selector)
    assert result.exit_code == 2
    assert result.stderr == message


def test_no_suggestion_repeats_the_selector(built_sample):
    result = invoke(built_sample, "list", "--select", "tag:risk", "--exclude", "tag:risk")
    assert result.exit_code == 2
    assert "did you mean" not in result.stderr


def test_exclude_everything(built_sample):
    result = invoke(built_sample, "list", "--exclude", "path:models")
    assert result.exit_code == 2
    assert result.stderr == ("Error: --exclude 'path:models' matches no feature view; the "
                             "feature views are: customer_spend, merchant_risk.\n")


def test_state_selector_compares_with_dbt_state(own_built, tmp_path, monkeypatch):
    state = tmp_path / "prod_state"
    shutil.copytree(own_built / "target", state, ignore=shutil.ignore_patterns("*.duckdb*"))
    model = own_built / "models" / "features" / "merchant_risk.sql"
    model.write_text(model.read_text() + "\n-- reviewed\n")
    result = invoke(own_built, "list", "--select", "state:modified")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: a state: selector compares with another environment's artifacts: set DBT_STATE "
        "to the folder holding its manifest.json (as for dbt).\n")
    monkeypatch.setenv("DBT_STATE", str(state))
    assert names(own_built, "--select", "state:modified") == ["merchant_risk"]
