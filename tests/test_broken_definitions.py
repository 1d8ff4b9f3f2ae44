"""One broken definition does not block the others: every command but validate works on the
valid views with one warning line; the registry notices deleted files and changed vars."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from helpers import make_project
from dbt_features import FeatureStore, Registry
from dbt_features.cli import main
from dbt_features.staleness import project_state

GOOD = ("{{ config(meta={'feature_store': {'entity': 'customer_id', 'timestamp': 'ts', "
        "'online': true, 'ttl': var('good_ttl', '30d')}}) }}\n"
        "select 1::bigint as customer_id, now()::timestamp as ts, 1.5::double as f1\n")
BAD = ("{{ config(meta={'feature_store': {'entity': 'customer_id', 'timestamp': 'event_ts'}}) }}\n"
       "select 1::bigint as customer_id, timestamp '2026-01-01' as ts, 2.5::double as f2\n")
BAD_PROBLEM = ("model bad (models/broken/bad.sql): config.meta.feature_store.timestamp names "
               "column 'event_ts', which the model does not have; its columns are: customer_id, "
               "ts, f2.")
WARNING = ("Warning: 1 problem in the feature definitions; left out: bad. Run `dbt-features "
           "validate` for details.\n")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "proj", {"models/good.sql": GOOD,
                                            "models/broken/bad.sql": BAD})


def invoke(project: Path, *args: str):
    return CliRunner().invoke(main, [*args, "--project-dir", str(project)])


def test_validate_fails_on_the_broken_definition(project):
    result = invoke(project, "validate")
    assert result.exit_code == 2
    assert result.stderr == f"Error: 1 problem in the feature definitions:\n  - {BAD_PROBLEM}\n"


def test_reading_commands_use_the_valid_views_with_one_warning(project, tmp_path):
    result = invoke(project, "list", "--json")
    assert result.exit_code == 0, result.output
    assert [v["name"] for v in json.loads(result.stdout)["views"]] == ["good"]
    assert result.stderr == WARNING
    result = invoke(project, "describe", "good:f1")
    assert (result.exit_code, result.stderr) == (0, WARNING)
    spine = tmp_path / "spine.csv"
    spine.write_text("customer_id,event_timestamp\n1,2999-01-01 00:00:00\n")
    out = tmp_path / "train.parquet"
    result = invoke(project, "training-set", "--spine", str(spine), "-f", "good:f1", "-o", str(out))
    assert (result.exit_code, result.stderr) == (0, WARNING)
    result = invoke(project, "sql", "--spine", "good", "--spine-timestamp", "ts", "-f", "good:*",
                    "--full-feature-names")
    assert (result.exit_code, result.stderr.count("Warning:")) == (0, 1)


@pytest.mark.parametrize("args", [("describe", "bad"), ("describe", "bad:f2"),
                                  ("list", "--select", "bad")])
def test_naming_a_broken_view_says_what_is_wrong(project, args):
    result = invoke(project, *args)
    assert result.exit_code == 2
    assert result.stderr.endswith(
        "Error: feature view 'bad' cannot be used until its definition is fixed:\n"
        f"  - {BAD_PROBLEM}\n")
    assert result.stderr.count("Warning:") == 1


def test_training_set_naming_a_broken_view(project):
    store = FeatureStore(str(project))
    spine = pa.table({"customer_id": [1], "event_timestamp": pa.array([0], pa.timestamp("us"))})
    with pytest.raises(Exception) as caught:
        store.get_training_set(spine, ["good:f1", "bad:f2"])
    assert caught.value.exit_code == 2
    assert str(caught.value) == ("feature view 'bad' cannot be used until its definition is "
                                 f"fixed:\n  - {BAD_PROBLEM}")


def test_registry_file_lists_the_problems(project):
    registry = FeatureStore(str(project)).registry
    assert [v.name for v in registry.views] == ["good"]
    assert registry.broken == ("bad",)
    assert [p.message for p in registry.problems] == [BAD_PROBLEM]
    saved = Registry.load(project / "target" / "feature_registry.json")
    assert saved == registry and saved.problems[0].model == "bad"


def test_serving_the_valid_views(project, redis_prefix):
    result = invoke(project, "sync")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("Warning:") == 1 and "left out: bad" in result.stderr
    result = invoke(project, "get", "good:f1", "--entity", "customer_id=1", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["results"][0]["values"] == [1.5]
    assert result.stderr.count("Warning:") == 1


def test_deleted_files_are_noticed(project):
    assert invoke(project, "list").stderr == WARNING
    shutil.rmtree(project / "models" / "broken")
    result = invoke(project, "list")
    assert (result.exit_code, result.stderr) == (0, "")
    assert invoke(project, "validate").exit_code == 0
    assert FeatureStore(str(project)).registry.problems == ()


def test_changed_vars_are_noticed(project):
    assert FeatureStore(str(project)).registry.view("good").ttl == "30d"
    store = FeatureStore(str(project), vars={"good_ttl": "2d"})
    assert store.registry.view("good").ttl == "2d"
    result = invoke(project, "describe", "good", "--json")
    assert json.loads(result.stdout)["ttl"] == "30d"
    result = invoke(project, "describe", "good", "--json", "--vars", "{good_ttl: 12h}")
    assert json.loads(result.stdout)["ttl"] == "12h"


def test_unchanged_project_reuses_registry_and_manifest(project):
    assert invoke(project, "list").exit_code == 0
    registry = project / "target" / "feature_registry.json"
    manifest = project / "target" / "manifest.json"
    stamps = (registry.stat().st_mtime_ns, manifest.stat().st_mtime_ns)
    assert invoke(project, "list").exit_code == 0
    assert (registry.stat().st_mtime_ns, manifest.stat().st_mtime_ns) == stamps


# -- the fingerprint: a pure function of the project's files, profile, target and vars ---------

def state(root: Path, target: str | None = "dev", vars: dict | None = None) -> str:
    return project_state(root, profiles_file=root / "profiles.yml", target=target,
                         vars=vars or {}, skip=(root / "target",)).fingerprint


def test_fingerprint_follows_what_dbt_parses(tmp_path):
    root = make_project(tmp_path / "p", {"models/a.sql": "select 1 as x\n",
                                         "models/sub/b.sql": "select 2 as y\n"}, build=False)
    first = state(root)
    assert state(root) == first
    (root / "target").mkdir()
    (root / "target" / "manifest.json").write_text("{}")
    (root / "logs").mkdir()
    (root / "logs" / "dbt.log").write_text("x")
    (root / "notes.txt").write_text("not a dbt file")
    assert state(root) == first
    assert state(root, target="prod") != first
    assert state(root, vars={"n": 1}) != first
    assert state(root, vars={"n": 1}) == state(root, vars={"n": 1})
    shutil.rmtree(root / "models" / "sub")
    assert state(root) != first
    after_delete = state(root)
    time.sleep(0.01)
    (root / "profiles.yml").write_text((root / "profiles.yml").read_text() + "\n")
    assert state(root) != after_delete


def test_deleted_folder_is_newer_than_the_manifest(tmp_path):
    root = make_project(tmp_path / "p", {"models/a.sql": "select 1 as x\n",
                                         "models/sub/b.sql": "select 2 as y\n"}, build=False)
    before = project_state(root, profiles_file=None, target=None, vars={}).newest_mtime
    time.sleep(0.02)
    (root / "models" / "sub" / "b.sql").unlink()
    after = project_state(root, profiles_file=None, target=None, vars={}).newest_mtime
    assert after > before
