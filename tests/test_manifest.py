"""Finding the project, reading and refreshing the manifest."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import make_project
from dbt_features.cli import main
from dbt_features.errors import ProjectError
from dbt_features.manifest import read_manifest, schema_version
from dbt_features.store import FeatureStore

SPEND = ("{{ config(meta={'feature_store': {'entity': 'customer_id', 'timestamp': 'ts'}}) }}\n"
         "select 1::bigint as customer_id, timestamp '2026-01-01' as ts, 1.5::double as f1\n")


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return make_project(tmp_path / "tiny", {"models/spend.sql": SPEND})


def test_no_dbt_project_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DBT_PROJECT_DIR", raising=False)
    result = CliRunner().invoke(main, ["list"])
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: no dbt project here: neither {tmp_path.resolve()} nor its parents hold "
        "dbt_project.yml. Run inside a dbt project or pass --project-dir.\n")


def test_project_dir_without_project(tmp_path):
    result = CliRunner().invoke(main, ["list", "--project-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: no dbt project at {tmp_path}: {tmp_path.resolve() / 'dbt_project.yml'} does not "
        "exist. Pass --project-dir pointing at the folder that holds dbt_project.yml.\n")


def test_unknown_target(tiny):
    result = CliRunner().invoke(main, ["list", "--project-dir", str(tiny), "--target", "prod"])
    assert result.exit_code == 2
    assert "Error: cannot use profile 'tiny' from" in result.stderr
    assert "does not have a target named 'prod'" in result.stderr
    assert "Traceback" not in result.output


def test_unsupported_manifest_schema(tiny):
    path = tiny / "target" / "manifest.json"
    data = json.loads(path.read_text())
    data["metadata"]["dbt_schema_version"] = "https://schemas.getdbt.com/dbt/manifest/v99.json"
    path.write_text(json.dumps(data))
    future = time.time() + 3600  # newer than every project file: not rebuilt
    os.utime(path, (future, future))
    result = CliRunner().invoke(main, ["list", "--project-dir", str(tiny)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {path} has manifest schema https://schemas.getdbt.com/dbt/manifest/v99.json, "
        "which dbt-features does not read (it reads v12, written by dbt-core 1.8 to 1.11). "
        "Re-create it with this project's dbt (`dbt parse`).\n")


def test_unreadable_manifest(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text("{not json")
    with pytest.raises(ProjectError, match="is not a readable dbt manifest"):
        read_manifest(path)


def test_schema_version_parsing():
    url = "https://schemas.getdbt.com/dbt/manifest/v12.json"
    assert schema_version({"metadata": {"dbt_schema_version": url}}) == 12
    assert schema_version({}) is None


def test_missing_manifest_is_parsed_and_compiled(tiny):
    (tiny / "target" / "manifest.json").unlink()
    store = FeatureStore(str(tiny))
    view = store.registry.view("spend")
    assert [f.name for f in view.features] == ["f1"]
    assert view.compiled_sql and "select" in view.compiled_sql.lower()


def test_stale_manifest_is_rebuilt(tiny):
    store = FeatureStore(str(tiny))
    assert store.registry.view("spend").ttl is None
    time.sleep(0.01)
    (tiny / "models" / "spend.sql").write_text(SPEND.replace("'ts'}", "'ts', 'ttl': '12h'}"))
    assert FeatureStore(str(tiny)).registry.view("spend").ttl == "12h"


def test_registry_is_reused_when_manifest_unchanged(tiny):
    first = FeatureStore(str(tiny)).registry
    path = tiny / "target" / "feature_registry.json"
    mtime = path.stat().st_mtime_ns
    second = FeatureStore(str(tiny)).registry
    assert path.stat().st_mtime_ns == mtime
    assert second == first
