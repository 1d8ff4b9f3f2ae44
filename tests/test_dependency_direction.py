"""One dependency direction: the CLI and ``FeatureStore`` over the serving side, the serving side
over the core, checked by import-linter (the contracts in pyproject.toml, run as ``make test``
runs them); and a public API that says what it exports."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import pytest

import dbt_features
from helpers import REPO


def _lint_script() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("lint_imports", REPO / ".ci" / "lint_imports.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _lint(tree: Path) -> subprocess.CompletedProcess:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(lint_imports), str(REPO / "pyproject.toml"), "--no-cache",
                           "--no-logo"], cwd=tree, capture_output=True, text=True)


@pytest.fixture
def laid_out(tmp_path: Path) -> Path:
    """The package as the wheel installs it (adapter/ as dbt_features/serving/)."""
    _lint_script().lay_out(tmp_path)
    assert (tmp_path / "dbt_features" / "serving" / "online.py").is_file()
    return tmp_path


def test_contracts_are_kept(laid_out: Path) -> None:
    result = _lint(laid_out)
    assert result.returncode == 0, result.stdout
    assert "0 broken" in result.stdout


def test_a_lazy_core_import_of_serving_breaks_them(laid_out: Path) -> None:
    manifest = laid_out / "dbt_features" / "manifest.py"
    manifest.write_text(manifest.read_text()
                        + "\n\ndef _online():\n    from dbt_features.serving import online\n")
    result = _lint(laid_out)
    assert result.returncode == 1
    assert "the core never imports the serving side, not even lazily BROKEN" in result.stdout
    assert "dbt_features.manifest -> dbt_features.serving.online" in result.stdout


def test_a_top_level_adapter_import_breaks_them(laid_out: Path) -> None:
    cli = laid_out / "dbt_features" / "cli" / "main.py"
    cli.write_text(cli.read_text() + "\nimport adapter.online  # noqa\n")
    result = _lint(laid_out)
    assert result.returncode == 1
    assert "dbt_features.cli.main -> adapter" in result.stdout


def test_the_core_is_named_alike_in_both_contracts() -> None:
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"]
    layers = next(c for c in contracts if c["type"] == "layers")
    core_layer = {f"dbt_features.{m.strip()}" for m in layers["layers"][-1].split(":")}
    forbidden = next(c for c in contracts
                     if c.get("forbidden_modules") == ["dbt_features.serving"])
    assert set(forbidden["source_modules"]) == core_layer


def test_all_is_honest() -> None:
    """``__all__`` lists exactly the public names the package defines (submodules aside):
    each exists, none is private, none is missing."""
    public = {name for name, value in vars(dbt_features).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    assert sorted(dbt_features.__all__) == dbt_features.__all__
    assert set(dbt_features.__all__) == public
    for name in dbt_features.__all__:
        assert getattr(dbt_features, name).__module__.startswith("dbt_features.")
