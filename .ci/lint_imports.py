"""Run ``lint-imports`` (the contracts in pyproject.toml) on the package laid out as installed.

setuptools installs the repository's ``adapter/`` folder as ``dbt_features.serving``
(``[tool.setuptools] package-dir``); import-linter finds a package's modules by walking its
folder, so it would not see that mapping in the work tree. This copies the Python files of every
package listed in ``[tool.setuptools] packages`` to where the wheel puts them, in a temporary
folder, and lints that copy.

    .venv/bin/python .ci/lint_imports.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def package_folders(root: Path = REPO) -> dict[str, Path]:
    """Each listed package and the folder its modules come from (setuptools' ``package-dir``
    rule: the longest mapped parent, then the package's own path below it)."""
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped: dict[str, str] = config.get("package-dir", {})
    folders = {}
    for package in config["packages"]:
        parts = package.split(".")
        for cut in range(len(parts), -1, -1):
            base = ".".join(parts[:cut])
            if base in mapped or cut == 0:
                folder = Path(mapped.get(base, ""), *parts[cut:])
                break
        folders[package] = root / folder
    return folders


def lay_out(dest: Path, root: Path = REPO) -> None:
    """Copy the packages' modules under ``dest`` with their installed names as paths."""
    for package, folder in package_folders(root).items():
        target = dest.joinpath(*package.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for module in folder.glob("*.py"):
            shutil.copy2(module, target / module.name)


def lint(tree: Path, config: Path = REPO / "pyproject.toml") -> int:
    """``lint-imports`` on the packages under ``tree``; its exit code (0: contracts kept)."""
    command = [str(Path(sys.executable).with_name("lint-imports")), str(config), "--no-cache",
               "--no-logo"]
    return subprocess.run(command, cwd=tree, check=False).returncode


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="dbt_features_lint_") as tmp:
        lay_out(Path(tmp))
        return lint(Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
