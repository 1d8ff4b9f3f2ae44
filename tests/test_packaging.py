"""The wheel: one top-level package, ``dbt_features``, with the repository's ``adapter/`` folder
installed as ``dbt_features.serving``; nothing imports a top-level ``adapter``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers import REPO

SOURCES = ("pyproject.toml", "README.md", "dbt_features", "adapter")
ADAPTER_IMPORT = re.compile(r"^\s*(from\s+adapter(\.|\s)|import\s+adapter\b)", re.MULTILINE)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the sources (no build/ or egg-info left in the tree), with
    the environment's setuptools and no network."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(root / "dist"), str(source)],
                   check=True, capture_output=True)
    (found,) = (root / "dist").glob("dbt_features-*.whl")
    return found


def test_wheel_has_one_top_level_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert top - dist_info == {"dbt_features"}
    assert len(dist_info) == 1
    assert not any(name.startswith("adapter/") for name in names)


def test_wheel_holds_every_module_under_its_installed_name(wheel: Path) -> None:
    """The packages list in pyproject.toml is explicit: a new subpackage left out of it would
    be missing from the wheel."""
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"dbt_features/{p.relative_to(REPO / 'dbt_features').as_posix()}"
                for p in (REPO / "dbt_features").rglob("*.py")}
    expected |= {f"dbt_features/serving/{p.relative_to(REPO / 'adapter').as_posix()}"
                 for p in (REPO / "adapter").rglob("*.py")}
    assert expected - names == set()


def test_wheel_metadata(wheel: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    info = next(n.split("/")[0] for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
    entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert "dbt-features = dbt_features.cli.main:main" in entry_points
    metadata = archive.read(f"{info}/METADATA").decode()
    assert "Provides-Extra: online" in metadata
    assert re.search(r"^Requires-Dist: redis.*extra == \"online\"", metadata, re.MULTILINE)


def test_installed_wheel_imports_and_runs(wheel: Path, tmp_path: Path) -> None:
    """Installed on its own (not the editable tree), the serving side and the CLI import, and
    no ``adapter`` module exists."""
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-index", "--target", str(site), str(wheel)], check=True,
                   capture_output=True)
    code = (
        "import importlib.util, sys\n"
        "import dbt_features, dbt_features.serving.server, dbt_features.cli.main\n"
        f"assert dbt_features.__file__.startswith({str(site)!r}), dbt_features.__file__\n"
        "assert importlib.util.find_spec('adapter') is None\n"
        "sys.argv = ['dbt-features', '--help']\n"
        "dbt_features.cli.main.main()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "training-set" in result.stdout


def test_no_source_imports_a_top_level_adapter() -> None:
    """pytest's ``pythonpath = ["."]`` would let ``import adapter`` work in tests: nothing in
    the repository may rely on it (the installed name is ``dbt_features.serving``)."""
    offenders = [
        str(path.relative_to(REPO))
        for folder in ("dbt_features", "adapter", "tests", ".ci")
        for path in (REPO / folder).rglob("*.py")
        if ADAPTER_IMPORT.search(path.read_text())
    ]
    assert offenders == []


def test_importing_everything_never_loads_adapter() -> None:
    """Every module of the package imported, with the repository on ``sys.path`` as under
    pytest: no module named ``adapter`` gets loaded."""
    code = (
        "import pkgutil, sys\n"
        "import dbt_features\n"
        "for m in pkgutil.walk_packages(dbt_features.__path__, 'dbt_features.'):\n"
        "    __import__(m.name)\n"
        "import dbt_features.serving\n"
        "for m in pkgutil.walk_packages(dbt_features.serving.__path__, 'dbt_features.serving.'):\n"
        "    __import__(m.name)\n"
        "assert 'dbt_features.serving.server' in sys.modules\n"
        "print(sorted(m for m in sys.modules if m == 'adapter' or m.startswith('adapter.')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
