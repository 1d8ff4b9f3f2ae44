"""dbt's --state, given as a flag (as to dbt) rather than only as DBT_STATE, reaches the
selection of every command that takes --select."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from dbt_features.cli import main


@pytest.fixture
def prod_state(built_sample: Path, tmp_path: Path) -> Path:
    """Another environment's artifacts: here, the same project's manifest (nothing modified)."""
    state = tmp_path / "prod_state"
    state.mkdir()
    shutil.copy2(built_sample / "target" / "manifest.json", state / "manifest.json")
    return state


@pytest.mark.parametrize("command", ["list", "status", "sync", "verify"])
def test_state_flag_reaches_the_selection(built_sample: Path, prod_state: Path,
                                          redis_prefix: str, monkeypatch: pytest.MonkeyPatch,
                                          command: str) -> None:
    monkeypatch.delenv("DBT_STATE", raising=False)
    result = CliRunner().invoke(main, [command, "--project-dir", str(built_sample), "--select",
                                       "state:modified", "--state", str(prod_state)])
    assert result.exit_code == 2, result.output
    assert "Error: --select 'state:modified' matches no feature view" in result.output


def test_state_flag_without_a_manifest(built_sample: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBT_STATE", raising=False)
    result = CliRunner().invoke(main, ["list", "--project-dir", str(built_sample), "--select",
                                       "state:modified", "--state", str(tmp_path)])
    assert result.exit_code == 2
    assert f"Error: --state {tmp_path}: no manifest.json there to compare with." in result.output
