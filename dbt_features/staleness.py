"""A fingerprint of everything a dbt parse depends on, computed without dbt.

dbt's manifest (and our registry built from it) is current while the project's files, the
profile, the target and the vars are those it was made with. File modification times alone miss
a deleted file and a changed ``--vars``; this fingerprint covers them: the set of project files
with their modification time and size, ``profiles.yml``'s, the target and the vars. It only
stats files (no reading, no dbt import), so it is cheap enough to check on every command.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_FILE_SUFFIXES = frozenset({".sql", ".yml", ".yaml", ".csv", ".py", ".md", ".jinja"})
SKIPPED_DIRS = frozenset({"target", "logs", ".venv", "venv", "node_modules", ".git", "__pycache__"})


@dataclass(frozen=True)
class ProjectState:
    """``fingerprint``: changes whenever a parse could; ``newest_mtime``: of the newest file."""

    fingerprint: str
    newest_mtime: float


def project_state(
    root: Path,
    *,
    profiles_file: Path | None,
    target: str | None,
    vars: dict[str, Any],
    skip: tuple[Path, ...] = (),
) -> ProjectState:
    """The state of the dbt project at ``root`` (its ``target/`` and other output folders in
    ``skip``), read with ``profiles_file``, for ``target`` (None: the profile's default) and
    ``vars``."""
    digest = hashlib.sha256()
    files: list[Path] = []
    folders: list[Path] = []
    _walk(root, {p.resolve() for p in skip}, set(), files, folders)
    entries = [(p.relative_to(root).as_posix(), p.stat()) for p in files]
    if profiles_file is not None and profiles_file.is_file():
        entries.append(("<profiles>" + str(profiles_file.resolve()), profiles_file.stat()))
    newest = 0.0
    for name, stat in sorted(entries, key=lambda e: e[0]):
        digest.update(f"{name}\0{stat.st_mtime_ns}\0{stat.st_size}\n".encode())
        newest = max(newest, stat.st_mtime)
    # A deleted file leaves no file behind, but its folder's time changes (the project's root
    # is left out: a DuckDB file there changes it whenever it is written).
    for folder in folders[1:]:
        newest = max(newest, folder.stat().st_mtime)
    digest.update(f"target\0{target or ''}\n".encode())
    digest.update(b"vars\0" + json.dumps(vars, sort_keys=True, default=str).encode())
    return ProjectState(fingerprint=digest.hexdigest()[:16], newest_mtime=newest)


def _walk(folder: Path, skipped: set[Path], seen: set[Path], files: list[Path],
          folders: list[Path]) -> None:
    """Collect the project files and folders under ``folder``, following links (installed
    local packages are links) once each."""
    real = folder.resolve()
    if real in seen or real in skipped:
        return
    seen.add(real)
    folders.append(folder)
    try:
        children = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return
    for entry in children:
        if entry.name in SKIPPED_DIRS or entry.name.startswith("."):
            continue
        path = Path(entry.path)
        if entry.is_dir():
            _walk(path, skipped, seen, files, folders)
        elif entry.is_file() and path.suffix in PROJECT_FILE_SUFFIXES:
            files.append(path)
