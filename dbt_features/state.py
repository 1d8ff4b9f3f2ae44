"""Another environment's artifacts (dbt's ``--state`` folder), read as a feature registry.

The folder holds that environment's ``manifest.json`` and, usually, the ``feature_registry.json``
dbt-features exported next to it. The exported registry is used when it was made from that very
manifest (it holds the warehouse's column types); otherwise a registry is built from the manifest
alone: column names from the compiled SQL and YAML, types from YAML ``data_type`` or ``unknown``
(reported, never guessed). Either way every fingerprint is recomputed from the manifest by this
dbt-features, so both sides of a diff are fingerprinted by the same code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import SqlglotError

from .build import UNKNOWN_TYPE, build_registry
from .errors import DefinitionError, ProjectError, UsageError
from .fingerprint import Fingerprinter
from .manifest import SUPPORTED_SCHEMA_VERSIONS, Manifest, feature_meta, schema_version
from .registry import REGISTRY_FILE, ColumnsOf, Registry
from .warehouse import Relation, dialect_for

MANIFEST_FILE = "manifest.json"
STATE_TARGET = "(state)"
"""The ``target`` of a registry built from a state manifest, which does not name its target."""


@dataclass(frozen=True)
class Side:
    """One side of a diff: its registry (fingerprints recomputed from ``manifest``), where it came
    from, and the views whose SQL the manifest lacks compiled (definitions not comparable)."""

    registry: Registry
    manifest: Manifest
    source: str
    path: str
    uncompiled: frozenset[str] = frozenset()
    fingerprints: Fingerprinter | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(
        cls, registry: Registry, manifest: Manifest, source: str, path: str, *, fresh: bool = False
    ) -> "Side":
        """``fresh``: the registry was just built from ``manifest`` by this code, so its
        fingerprints are not recomputed."""
        prints = Fingerprinter(manifest, dialect_for(manifest.adapter_type))
        uncompiled = frozenset(
            v.name for v in registry.views if manifest.missing_compiled_code([v.unique_id])
        )
        if not fresh:
            registry = refingerprint(registry, prints)
        return cls(registry, manifest, source, path, uncompiled, prints)

    @property
    def target(self) -> str | None:
        return None if self.registry.target == STATE_TARGET else self.registry.target


def load_state(state: str | Path) -> tuple[Side, list[str]]:
    """Read a ``--state`` folder (or a manifest.json in one) as one side of a diff, with notes
    on what was used. Bad input raises UsageError/ProjectError naming the path and the fix."""
    folder, manifest_path = _locate(state)
    manifest = _read_state_manifest(manifest_path, state)
    if not manifest.adapter_type or Dialect.get(dialect_for(manifest.adapter_type)) is None:
        raise ProjectError(
            f"--state {state}: {manifest_path} names adapter type "
            f"{manifest.adapter_type or '(none)'!r}, whose SQL dbt-features cannot read; pass "
            "the manifest of a dbt run on a supported warehouse."
        )
    notes: list[str] = []
    registry_path = folder / REGISTRY_FILE
    exported = _exported_registry(registry_path, state)
    if exported is not None and exported.manifest_invocation_id == manifest.invocation_id:
        registry, source = exported, REGISTRY_FILE
    else:
        if exported is not None:
            notes.append(
                f"{registry_path} was made from another manifest (dbt invocation "
                f"{exported.manifest_invocation_id}, not {manifest.invocation_id}): ignored; "
                "the state's types come from its YAML."
            )
        registry, source = _registry_from_manifest(manifest, state), MANIFEST_FILE
    fresh = source == MANIFEST_FILE
    side = Side.of(registry, manifest, source, str(folder.resolve()), fresh=fresh)
    if side.uncompiled:
        notes.append(
            f"{manifest_path} holds no compiled SQL for {', '.join(sorted(side.uncompiled))} "
            "(made by `dbt parse`?): their definitions are not compared; keep the manifest of "
            "`dbt compile`, `dbt run` or `dbt build`."
        )
    unknown = _unknown_types(side.registry)
    if unknown:
        notes.append(
            f"the state's types of columns without a YAML data_type are unknown and not "
            f"compared ({unknown}); export {REGISTRY_FILE} with its manifest (`dbt-features "
            "list` in that environment) to compare them."
        )
    return side, notes


def _locate(state: str | Path) -> tuple[Path, Path]:
    """The ``--state`` folder and its manifest.json (``state`` names either)."""
    given = Path(state).expanduser()
    if given.is_file():
        return given.parent, given
    if not given.is_dir():
        raise UsageError(
            f"--state {state}: no such folder; point --state at the other environment's dbt "
            "artifacts (a folder holding manifest.json, e.g. a copy of production's target/)."
        )
    if not (given / MANIFEST_FILE).is_file():
        raise UsageError(
            f"--state {state}: the folder holds no {MANIFEST_FILE}; point --state at the "
            "other environment's dbt artifacts (e.g. a copy of production's target/ folder)."
        )
    return given, given / MANIFEST_FILE


def _unknown_types(registry: Registry) -> str:
    """``view: col, col; view: col`` for the columns whose type the state does not know."""
    unknown = {
        v.name: [
            c.name
            for c in (*v.entity.join_keys, v.timestamp, v.created_timestamp, *v.features)
            if c is not None and c.dtype == UNKNOWN_TYPE
        ]
        for v in registry.views
    }
    return "; ".join(f"{view}: {', '.join(cols)}" for view, cols in unknown.items() if cols)


def _read_state_manifest(path: Path, state: str | Path) -> Manifest:
    """Like ``read_manifest``, with advice for a manifest that comes from elsewhere."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProjectError(
            f"--state {state}: {path} is not a readable dbt manifest ({exc}); copy the other "
            "environment's target/manifest.json there again."
        ) from exc
    version = schema_version(data) if isinstance(data, dict) else None
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        found = data.get("metadata", {}).get("dbt_schema_version") if isinstance(data, dict) else None
        supported = ", ".join(f"v{v}" for v in SUPPORTED_SCHEMA_VERSIONS)
        raise ProjectError(
            f"--state {state}: {path} has manifest schema {found or 'unknown'}, which "
            f"dbt-features does not read (it reads {supported}, written by dbt-core 1.8 to "
            "1.11); produce the state with a dbt-core of those versions."
        )
    return Manifest(path=path, data=data)


def _exported_registry(path: Path, state: str | Path) -> Registry | None:
    if not path.exists():
        return None
    try:
        return Registry.load(path)
    except ProjectError as exc:
        raise ProjectError(
            f"--state {state}: {exc.message.rstrip('.')}; re-export it with `dbt-features list` "
            "in that environment, or remove it to compare with the manifest alone."
        ) from exc


def _registry_from_manifest(manifest: Manifest, state: str | Path) -> Registry:
    """A registry from a manifest alone: types as declared in YAML, else ``unknown``."""
    try:
        return build_registry(
            manifest,
            project=str(manifest.data["metadata"].get("project_name") or ""),
            target=STATE_TARGET,
            columns_of=_manifest_columns(manifest, dialect_for(manifest.adapter_type)),
            unknown_types=True,
        )
    except DefinitionError as exc:
        raise DefinitionError(
            f"--state {state}: the feature definitions of {manifest.path} cannot be read "
            f"without their warehouse; export {REGISTRY_FILE} next to it (`dbt-features list` "
            f"in that environment). {exc.message}",
            problems=exc.problems,
        ) from exc


def _manifest_columns(manifest: Manifest, dialect: str) -> ColumnsOf:
    """Column names as the manifest tells them, without a warehouse: the compiled query's output
    columns, those declared in YAML, and those the feature meta names. Types are None here
    (YAML's are applied by the build)."""
    models = {
        Relation(m.get("database"), m.get("schema"), m.get("alias") or m["name"]): m
        for m in manifest.models()
    }

    def columns_of(relation: Relation) -> dict[str, str | None] | None:
        model = models.get(relation)
        if model is None:
            return None
        names = output_columns(model.get("compiled_code"), dialect) or []
        names += list(model.get("columns") or {})
        if names:  # without any, the build says it cannot tell the columns
            names += _named_by_meta(feature_meta(model))
        unique: dict[str, str] = {}
        for name in names:
            unique.setdefault(name.lower(), name)
        return {n: None for n in unique.values()} or None

    return columns_of  # type: ignore[return-value]


def _named_by_meta(meta: Any) -> list[str]:
    """The columns a feature_store meta names (keys, timestamps, features), if well formed."""
    if not isinstance(meta, dict):
        return []
    named: list[Any] = []
    for key in ("entity", "timestamp", "created_timestamp", "features"):
        value = meta.get(key)
        named += [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return [n for n in named if isinstance(n, str) and n]


def output_columns(sql: str | None, dialect: str) -> list[str] | None:
    """The names of a query's output columns, or None when the SQL alone cannot tell (``*``)."""
    if not sql:
        return None
    try:
        tree = sqlglot.parse_one(sql, dialect=dialect)
    except SqlglotError:
        return None
    if not isinstance(tree, exp.Query):
        return None
    selects = tree.selects
    if any(isinstance(p, exp.Star) or isinstance(p.this, exp.Star) for p in selects):
        return None
    names = [p.alias_or_name for p in selects]
    return names if all(names) else None


def refingerprint(registry: Registry, prints: Fingerprinter) -> Registry:
    """The registry with every fingerprint recomputed by ``prints`` (this dbt-features), so a
    registry exported by another version compares on the same terms."""
    views = []
    for v in registry.views:
        if prints.manifest.node(v.unique_id) is None:
            views.append(v)
            continue
        keep = [c.name for c in (*v.entity.join_keys, v.timestamp, v.created_timestamp) if c]
        per_feature = prints.features(v.unique_id, keep, [f.name for f in v.features])
        features = tuple(replace(f, fingerprint=per_feature[f.name]) for f in v.features)
        views.append(replace(v, features=features, fingerprint=prints.model(v.unique_id)))
    return replace(registry, views=tuple(views))
