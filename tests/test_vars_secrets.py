"""The online store's settings given in --vars (a Redis URL with a password) never reach dbt:
no run artifact, log or output holds the password; the other vars still do reach dbt."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import DBT_FEATURES, make_project
from dbt_features.cli import main
from dbt_features.project import vars_for_dbt

SECRET = "S3cretPw9"
SPEND = ("{{ config(meta={'feature_store': {'entity': 'customer_id', 'timestamp': 'ts', "
         "'ttl': var('spend_ttl', '1d')}}) }}\n"
         "select 1::bigint as customer_id, timestamp '2026-01-01' as ts, 1.5::double as f1\n")


def given_vars(ttl: str) -> str:
    return ("{dbt_features: {online_store: {url: 'redis://:" + SECRET + "@127.0.0.1:1/0', "
            "key_prefix: x}}, spend_ttl: " + ttl + "}")


def test_vars_for_dbt_strips_only_the_online_store():
    given = {"n": 1, "dbt_features": {"online_store": {"url": "redis://:pw@h"}, "other": 2}}
    assert vars_for_dbt(given) == {"n": 1, "dbt_features": {"other": 2}}
    assert vars_for_dbt({"dbt_features": {"online_store": {}}}) == {}
    assert vars_for_dbt({"dbt_features": "odd"}) == {"dbt_features": "odd"}
    assert given["dbt_features"]["online_store"]  # the caller's dict is left as it was


def test_no_artifact_log_or_output_holds_the_password(tmp_path):
    project = make_project(tmp_path / "proj", {"models/spend.sql": SPEND})
    outputs = []
    for ttl, args in (("2d", ["validate"]), ("3d", ["list", "--json"]),
                      ("3d", ["describe", "spend"])):
        result = CliRunner().invoke(main, [*args, "--project-dir", str(project),
                                           "--vars", given_vars(ttl)])
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    # The other vars reached dbt: the model's ttl comes from one.
    assert json.loads(outputs[1])["views"][0]["ttl"] == "3d"
    done = subprocess.run([DBT_FEATURES, "list", "--vars", given_vars("4d")], cwd=project,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "ttl        4d" in done.stdout
    outputs += [done.stdout, done.stderr]
    assert not any(SECRET in text for text in outputs)
    written = [p for folder in ("target", "logs") for p in (project / folder).rglob("*")
               if p.is_file()]
    assert any(p.name == "run_results.json" for p in written)
    assert [str(p) for p in written if SECRET.encode() in p.read_bytes()] == []


@pytest.mark.parametrize("text", [
    "{dbt_features: {online_store: {url: 'redis://:" + SECRET + "@h:1/0'}",
    "redis://:" + SECRET + "@h:1/0",
])
def test_bad_vars_are_not_echoed(tmp_path, text):
    project = make_project(tmp_path / "proj", {"models/spend.sql": SPEND}, build=False)
    result = CliRunner().invoke(main, ["list", "--project-dir", str(project), "--vars", text])
    assert result.exit_code == 2
    assert SECRET not in result.output
    assert result.stderr.startswith("Error: --vars ")
