"""Reading dbt's ``manifest.json``: the documented artifact, read as plain JSON.

The manifest is rebuilt with ``dbt parse`` (and the feature models' SQL with ``dbt compile``)
only when it is missing, older than the project's files, made for another kind of warehouse, or
when the project's state (``staleness``: its files, profile, target, vars) is not the one it
was accepted with, which ``target/feature_manifest_state.json`` records.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .errors import ProjectError
from .project import PROFILES_FILE, Project, run_dbt, target_name, vars_for_dbt
from .staleness import ProjectState, project_state

# Manifest schema versions this reader understands (dbt 1.8 writes v12; 1.10/1.11 too).
SUPPORTED_SCHEMA_VERSIONS = range(12, 13)
META_KEY = "feature_store"
STATE_FILE = "feature_manifest_state.json"
_METADATA_START = re.compile(r'\s*\{\s*"metadata"\s*:\s*')
_METADATA_BYTES = 1 << 16


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


def read_metadata(path: Path) -> dict[str, Any] | None:
    """The ``metadata`` block of the manifest at ``path`` (None if there is none to read),
    decoded from the head of the file, where dbt writes it: a current registry is recognised by
    the manifest's ``invocation_id`` without parsing the whole manifest."""
    try:
        with path.open("rb") as file:
            head = file.read(_METADATA_BYTES).decode("utf-8", "replace")
    except OSError:
        return None
    start = _METADATA_START.match(head)
    if start is not None:
        try:
            metadata, _end = json.JSONDecoder().raw_decode(head, start.end())
            return metadata if isinstance(metadata, dict) else None
        except ValueError:
            pass  # not within the head: read it all
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    metadata = data.get("metadata") if isinstance(data, dict) else None
    return metadata if isinstance(metadata, dict) else None


def current_state(project: Project) -> ProjectState:
    """The project's state as dbt would parse it now (see ``staleness``)."""
    return project_state(
        project.root,
        profiles_file=project.profiles_dir / PROFILES_FILE,
        target=target_name(project),
        vars=vars_for_dbt(project.options.vars),
        skip=(project.target_path,),
    )


def load_manifest(project: Project, adapter_type: str, *, refresh: bool = False,
                  state: ProjectState | None = None) -> Manifest:
    """The project's manifest, rebuilt first when it is missing, stale or for another adapter.

    Feature models need their compiled SQL (for fingerprints and for serving ephemeral models):
    ``dbt parse`` does not write it, so those models and their ancestors are then compiled.
    """
    state = state or current_state(project)
    path = project.manifest_path
    manifest = None
    if not refresh and path.is_file() and path.stat().st_mtime >= state.newest_mtime:
        manifest = read_manifest(path)
        if _accepted_state(project, manifest) not in (None, state.fingerprint):
            manifest = None  # made for other files, vars, target or profile
    if manifest is None or manifest.adapter_type != adapter_type:
        run_dbt(project, ["parse"])
        manifest = read_manifest(path)
    ids = [m["unique_id"] for m in manifest.feature_models()]
    if ids and manifest.missing_compiled_code(ids):
        # Not the tests on these models: a test may need what is not built yet (a generic test
        # of a served log over a feature view), and only the models' SQL is needed.
        run_dbt(project, ["compile", "--select", *(f"+{_selector(manifest, i)}" for i in ids),
                          "--indirect-selection", "empty"])
        manifest = read_manifest(path)
    if _accepted_state(project, manifest) != state.fingerprint:
        _accept_state(project, manifest, state)
    return manifest


def _accepted_state(project: Project, manifest: Manifest) -> str | None:
    """The project fingerprint this manifest was accepted with; None for a manifest we have
    not seen (a `dbt run` of the user's since: trusted, as it is newer than every file)."""
    try:
        data = json.loads((project.target_path / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("manifest_invocation_id") != manifest.invocation_id:
        return None
    return str(data.get("project_fingerprint"))


def _accept_state(project: Project, manifest: Manifest, state: ProjectState) -> None:
    path = project.target_path / STATE_FILE
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data = {"manifest_invocation_id": manifest.invocation_id,
            "project_fingerprint": state.fingerprint}
    try:
        tmp.write_text(json.dumps(data) + "\n")
        tmp.replace(path)
    except OSError:
        tmp.unlink(missing_ok=True)  # only a cache: the next command parses again


def _selector(manifest: Manifest, unique_id: str) -> str:
    return "fqn:" + ".".join(manifest.data["nodes"][unique_id]["fqn"])
