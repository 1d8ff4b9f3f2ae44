"""Reading dbt's ``manifest.json``: the documented artifact, read as plain JSON.

The manifest is rebuilt with ``dbt parse`` (and the feature models' SQL with ``dbt compile``)
only when it is missing, older than the project's files, or made for another kind of warehouse.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .errors import ProjectError
from .project import Project, run_dbt

# Manifest schema versions this reader understands (dbt 1.8 writes v12; 1.10/1.11 too).
SUPPORTED_SCHEMA_VERSIONS = range(12, 13)
META_KEY = "feature_store"
_PROJECT_FILE_SUFFIXES = {".sql", ".yml", ".yaml", ".csv", ".py", ".md", ".jinja"}
_SKIPPED_DIRS = {"target", "dbt_packages", "logs", ".venv", "venv", "node_modules", ".git"}


@dataclass(frozen=True)
class Manifest:
    """A loaded manifest and the path it came from."""

    path: Path
    data: dict[str, Any]

    @property
    def adapter_type(self) -> str:
        return str(self.data["metadata"].get("adapter_type") or "")

    @property
    def dbt_version(self) -> str:
        return str(self.data["metadata"].get("dbt_version") or "")

    @property
    def invocation_id(self) -> str:
        return str(self.data["metadata"].get("invocation_id") or "")

    def node(self, unique_id: str) -> dict[str, Any] | None:
        return self.data["nodes"].get(unique_id) or self.data.get("sources", {}).get(unique_id)

    def models(self) -> Iterator[dict[str, Any]]:
        for node in self.data["nodes"].values():
            if node.get("resource_type") == "model":
                yield node

    def feature_models(self) -> list[dict[str, Any]]:
        """Enabled models whose ``config.meta`` holds a ``feature_store`` entry, by name."""
        found = [m for m in self.models() if META_KEY in (_config_meta(m) or {})]
        return sorted(found, key=lambda m: (m["name"], m["unique_id"]))

    def exposures(self) -> list[dict[str, Any]]:
        return sorted(self.data.get("exposures", {}).values(), key=lambda e: e["unique_id"])

    def missing_compiled_code(self, unique_ids: list[str]) -> list[str]:
        """Models among ``unique_ids`` and their model ancestors whose compiled SQL is absent."""
        seen: set[str] = set()
        missing: list[str] = []
        stack = list(unique_ids)
        while stack:
            uid = stack.pop()
            if uid in seen or not uid.startswith("model."):
                continue
            seen.add(uid)
            node = self.data["nodes"].get(uid)
            if node is None:
                continue
            if not node.get("compiled_code"):
                missing.append(uid)
            stack.extend(node.get("depends_on", {}).get("nodes", []))
        return missing


def feature_meta(model: dict[str, Any]) -> Any:
    return (_config_meta(model) or {}).get(META_KEY)


def _config_meta(model: dict[str, Any]) -> dict[str, Any] | None:
    # dbt 1.10+ keeps meta under config; older manifests mirror it at the top level.
    return (model.get("config") or {}).get("meta") or model.get("meta")


def schema_version(data: dict[str, Any]) -> int | None:
    url = str(data.get("metadata", {}).get("dbt_schema_version", ""))
    match = re.search(r"/manifest/v(\d+)\.json$", url)
    return int(match.group(1)) if match else None


def read_manifest(path: Path) -> Manifest:
    """Load and check one manifest file (any project's, e.g. production's for ``--state``)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ProjectError(f"no dbt manifest at {path}: run `dbt parse` or `dbt run`.") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ProjectError(
            f"{path} is not a readable dbt manifest ({exc}); delete it and run `dbt parse`."
        ) from exc
    version = schema_version(data) if isinstance(data, dict) else None
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        found = data.get("metadata", {}).get("dbt_schema_version") if isinstance(data, dict) else None
        raise ProjectError(
            f"{path} has manifest schema {found or 'unknown'}, which dbt-features does not read "
            f"(it reads v{SUPPORTED_SCHEMA_VERSIONS.start}"
            f"{'' if len(SUPPORTED_SCHEMA_VERSIONS) == 1 else f'-v{SUPPORTED_SCHEMA_VERSIONS[-1]}'}"
            ", written by dbt-core 1.8 to 1.11). Re-create it with this project's dbt "
            "(`dbt parse`)."
        )
    return Manifest(path=path, data=data)


def newest_project_file(project: Project) -> float:
    """The newest modification time among the files dbt reads to build the manifest."""
    newest = (project.root / "dbt_project.yml").stat().st_mtime
    for path in _project_files(project.root):
        newest = max(newest, path.stat().st_mtime)
    return newest


def _project_files(root: Path) -> Iterator[Path]:
    for path in root.iterdir():
        if path.name in _SKIPPED_DIRS or path.name.startswith("."):
            continue
        if path.is_dir():
            yield from _project_files(path)
        elif path.suffix in _PROJECT_FILE_SUFFIXES:
            yield path


def load_manifest(project: Project, adapter_type: str, *, refresh: bool = False) -> Manifest:
    """The project's manifest, rebuilt first when it is missing, stale or for another adapter.

    Feature models need their compiled SQL (for fingerprints and for serving ephemeral models):
    ``dbt parse`` does not write it, so those models and their ancestors are then compiled.
    """
    path = project.manifest_path
    stale = refresh or not path.is_file() or path.stat().st_mtime < newest_project_file(project)
    manifest = None if stale else read_manifest(path)
    if manifest is None or manifest.adapter_type != adapter_type:
        run_dbt(project, ["parse"])
        manifest = read_manifest(path)
    ids = [m["unique_id"] for m in manifest.feature_models()]
    if ids and manifest.missing_compiled_code(ids):
        run_dbt(project, ["compile", "--select", *(f"+{_selector(manifest, i)}" for i in ids)])
        manifest = read_manifest(path)
    return manifest


def _selector(manifest: Manifest, unique_id: str) -> str:
    return "fqn:" + ".".join(manifest.data["nodes"][unique_id]["fqn"])
