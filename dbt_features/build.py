"""Building the registry from a manifest, and every check of the feature definitions.

All problems are collected before raising, so ``dbt-features validate`` reports every broken
definition at once, each message naming the model, its file(s) and the offending key or column.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .definition import (
    FeatureSpec,
    META_PATH,
    closest,
    parse_spec,
    reference_problem,
    safe_name,
    where,
)
from .fingerprint import Fingerprinter
from .manifest import Manifest, feature_meta
from .registry import (
    FINGERPRINT_VERSION,
    Column,
    ColumnsOf,
    Entity,
    Feature,
    FeatureService,
    FeatureView,
    Problem,
    Registry,
    now_iso,
)
from .types import cast_hint, is_temporal, logical_type
from .warehouse import Relation, dialect_for

KEY_TYPES = ("int64", "string")
UNKNOWN_TYPE = "unknown"
"""The dtype of a column whose type nobody told, in a lenient build only (``unknown_types``)."""


def build_registry(
    manifest: Manifest,
    *,
    project: str,
    target: str,
    columns_of: ColumnsOf,
    unknown_types: bool = False,
    strict: bool = True,
    project_fingerprint: str = "",
) -> Registry:
    """Build and validate the registry. ``columns_of`` describes a built relation (or None).

    ``strict``: raise ``DefinitionError`` listing every problem; otherwise the broken
    definitions are left out and listed in ``Registry.problems`` (the valid views stay usable).

    ``unknown_types`` is for a manifest whose warehouse cannot be asked (another environment's,
    as ``dbt-features diff --state`` reads): a column whose type neither YAML nor ``columns_of``
    tells (``columns_of`` may map a name to None) gets dtype ``unknown`` instead of being a
    problem, so that the registry says it does not know rather than guessing.
    """
    adapter_type = manifest.adapter_type
    dialect = dialect_for(adapter_type)
    fingerprints = Fingerprinter(manifest, dialect)
    problems: list[Problem] = []
    views: list[FeatureView] = []
    for model in manifest.feature_models():
        spec, found = parse_spec(model, feature_meta(model))
        view = None
        if spec is not None:
            view = _build_view(model, spec, dialect, columns_of, fingerprints, found, unknown_types)
        problems.extend(Problem(model["name"], message) for message in found)
        if view is not None and not found:
            views.append(view)
    crossed = _cross_view_problems(manifest, views)
    problems.extend(Problem(view.name, message) for view, message in crossed)
    dropped = {view.unique_id for view, _ in crossed}
    views = [v for v in views if v.unique_id not in dropped]
    registry = _registry(manifest, views, problems, project=project, target=target,
                         project_fingerprint=project_fingerprint)
    if strict and problems:
        raise registry.definition_error()
    return registry


def _registry(manifest: Manifest, views: list[FeatureView], problems: list[Problem], *,
              project: str, target: str, project_fingerprint: str) -> Registry:
    services = _services(manifest, views)
    consumers: dict[str, list[str]] = {}
    for service in services:
        for name in service.views:
            consumers.setdefault(name, []).append(service.name)
    return Registry(
        project=project,
        adapter_type=manifest.adapter_type,
        dialect=dialect_for(manifest.adapter_type),
        target=target,
        dbt_version=manifest.dbt_version,
        manifest_invocation_id=manifest.invocation_id,
        generated_at=now_iso(),
        views=tuple(replace(v, consumers=tuple(consumers.get(v.name, ()))) for v in views),
        services=tuple(services),
        fingerprint_version=FINGERPRINT_VERSION,
        problems=tuple(problems),
        project_fingerprint=project_fingerprint,
    )


@dataclass
class _Columns:
    """One model's columns, typed as the registry needs them; problems are collected."""

    model: dict[str, Any]
    dialect: str
    declared: dict[str, str | None]
    """Column -> YAML data_type (None when not declared)."""
    live: dict[str, str] | None
    """Column -> warehouse type of the built relation (None when not built)."""
    problems: list[str]
    unknown_types: bool = False

    @property
    def names(self) -> dict[str, str]:
        """Lower-case name -> the column's own spelling."""
        return {n.lower(): n for n in (self.live if self.live is not None else self.declared)}

    def typed(self, name: str, role: str, setting: str) -> Column | None:
        at, names = where(self.model), self.names
        actual = names.get(name.lower())
        if actual is None:
            self.problems.append(
                f"{at}: {META_PATH}.{setting} names column {name!r}, which the model does not "
                f"have{closest(name, list(names.values()))}; its columns are: "
                f"{', '.join(names.values())}."
            )
            return None
        wanted = self.declared.get(actual) or next(
            (v for k, v in self.declared.items() if k.lower() == name.lower() and v), None)
        warehouse_type = (self.live or {}).get(actual)
        data_type = wanted or warehouse_type
        if data_type is None and self.unknown_types:
            return Column(actual, UNKNOWN_TYPE, "")
        if data_type is None:
            self.problems.append(
                f"{at}: the type of {role} column {actual!r} is not known: declare its "
                f"data_type in YAML or build the model (`dbt run --select {self.model['name']}`).")
            return None
        dtype = logical_type(data_type, self.dialect)
        if dtype is None:
            self.problems.append(
                f"{at}: {role} column {actual!r} has type {data_type!r}, which dbt-features "
                f"cannot serve; {cast_hint(data_type)}.")
            return None
        if wanted and warehouse_type and logical_type(warehouse_type, self.dialect) != dtype:
            self.problems.append(
                f"{at}: column {actual!r} is declared data_type {wanted!r} in YAML but is "
                f"{warehouse_type!r} in the warehouse; fix the declaration or rebuild the model.")
        return Column(actual, dtype, data_type)


@dataclass(frozen=True)
class _Roles:
    keys: list[Column | None]
    timestamp: Column | None
    created: Column | None

    def present(self) -> list[Column]:
        return [c for c in (*self.keys, self.timestamp, self.created) if c is not None]


def _build_view(
    model: dict[str, Any],
    spec: FeatureSpec,
    dialect: str,
    columns_of: ColumnsOf,
    fingerprints: Fingerprinter,
    problems: list[str],
    unknown_types: bool = False,
) -> FeatureView | None:
    relation = Relation(model.get("database"), model.get("schema"), model.get("alias") or model["name"])
    materialized = (model.get("config") or {}).get("materialized", "view")
    yaml_columns = (model.get("columns") or {}).items()
    declared = {name: (col.get("data_type") or None) for name, col in yaml_columns}
    live = None if materialized == "ephemeral" else columns_of(relation)
    if live is None and not declared:
        problems.append(
            f"{where(model)}: cannot tell its columns: it is not built in the warehouse "
            f"({relation}) and its YAML declares no columns. Run `dbt run --select "
            f"{model['name']}` or declare its columns with data_type.")
        return None
    before = len(problems)
    columns = _Columns(model, dialect, declared, live, problems, unknown_types)
    roles = _roles(columns, spec)
    features = [c for c in _features(columns, spec, roles) if c is not None]
    problems.extend(_reference_problems(model, [c.name for c in features]))
    if len(problems) > before:
        return None
    docs = {name: col.get("description") or None for name, col in yaml_columns}
    prints = fingerprints.features(model["unique_id"], [c.name for c in roles.present()],
                                   [c.name for c in features])
    return FeatureView(
        name=model["name"], unique_id=model["unique_id"], package=model["package_name"],
        file=model.get("original_file_path") or "",
        yaml_file=(model.get("patch_path") or "").split("://", 1)[-1] or None,
        relation=relation, relation_name=model.get("relation_name"), materialized=materialized,
        entity=Entity(spec.entity_name, tuple(k for k in roles.keys if k is not None)),
        timestamp=roles.timestamp, created_timestamp=roles.created,
        ttl_seconds=spec.ttl_seconds, online=spec.online,
        features=tuple(Feature(c.name, c.dtype, c.data_type, docs.get(c.name), prints[c.name])
                       for c in features),
        owner=spec.owner, tags=spec.tags, description=spec.description, version=spec.version,
        fingerprint=fingerprints.model(model["unique_id"]), compiled_sql=model.get("compiled_code"),
    )


def _roles(columns: _Columns, spec: FeatureSpec) -> _Roles:
    """The key and timestamp columns, typed and checked."""
    at, problems = where(columns.model), columns.problems
    roles = _Roles(
        keys=[columns.typed(k, "entity", "entity") for k in spec.entity],
        timestamp=columns.typed(spec.timestamp, "timestamp", "timestamp") if spec.timestamp else None,
        created=(columns.typed(spec.created_timestamp, "created_timestamp", "created_timestamp")
                 if spec.created_timestamp else None),
    )
    for col, setting in ((roles.timestamp, "timestamp"), (roles.created, "created_timestamp")):
        if col is not None and col.dtype != UNKNOWN_TYPE and not is_temporal(col.dtype):
            problems.append(
                f"{at}: {META_PATH}.{setting} column {col.name!r} has type {col.data_type!r}, "
                "not a timestamp or date; name an event-time column or cast it to timestamp.")
    for col in roles.keys:
        if col is not None and col.dtype not in (*KEY_TYPES, UNKNOWN_TYPE):
            problems.append(
                f"{at}: entity column {col.name!r} has type {col.data_type!r}; join keys must "
                "be integers or strings (cast it in the model).")
    return roles


def _features(columns: _Columns, spec: FeatureSpec, roles: _Roles) -> list[Column | None]:
    """The feature columns: listed in the spec, else every column but keys and timestamps."""
    at, problems = where(columns.model), columns.problems
    reserved = {c.name.lower() for c in roles.present()}
    if spec.features is not None:
        names = list(spec.features)
        for name in names:
            if name.lower() in reserved:
                problems.append(
                    f"{at}: {META_PATH}.features lists {name!r}, which is a key or timestamp "
                    "column; remove it from features.")
    else:
        names = [c for c in columns.names.values() if c.lower() not in reserved]
        if not names:
            problems.append(f"{at}: the model has no columns besides its keys and timestamps.")
    return [columns.typed(n, "feature", "features") for n in names if n.lower() not in reserved]


def _reference_problems(model: dict[str, Any], features: list[str]) -> list[str]:
    """Names that could not be read back as ``view:feature``."""
    at = where(model)
    problems = []
    why = reference_problem(model["name"])
    if why:
        problems.append(
            f"{at}: the model name {model['name']!r} cannot be used as a feature view name "
            f"(view:feature) because it {why}; rename the model, e.g. to "
            f"{safe_name(model['name'])!r}."
        )
    for name in features:
        why = reference_problem(name)
        if why:
            problems.append(
                f"{at}: feature column {name!r} cannot be referenced as "
                f"{model['name']}:{name} because it {why}; rename it or alias it in the "
                f"model's SQL (e.g. `as {safe_name(name)}`)."
            )
    return problems


def _cross_view_problems(manifest: Manifest,
                         views: list[FeatureView]) -> list[tuple[FeatureView, str]]:
    """Checks across views: names must be unique, and shared entities and shared feature names
    must agree. Each problem is about the later view, which is left out."""
    problems: list[tuple[FeatureView, str]] = []
    first_by_name: dict[str, FeatureView] = {}
    first_entity: dict[str, FeatureView] = {}
    first_feature: dict[tuple[str, str], tuple[FeatureView, Feature]] = {}
    for view in views:
        at = where(manifest.data["nodes"][view.unique_id])
        found = _name_problem(view, first_by_name, at) or _entity_problem(view, first_entity, at)
        found = found or _feature_problem(view, first_feature, at)
        if found:
            problems.append((view, found))
            continue
        first_by_name.setdefault(view.name, view)
        first_entity.setdefault(view.entity.name, view)
        for feature in view.features:
            first_feature.setdefault((view.entity.name, feature.name), (view, feature))
    return problems


def _name_problem(view: FeatureView, first: dict[str, FeatureView], at: str) -> str | None:
    other = first.get(view.name)
    if other is None:
        return None
    return (f"{at}: another feature view has the same name ({other.unique_id}); "
            "feature views are referenced by model name, so rename one.")


def _entity_problem(view: FeatureView, first: dict[str, FeatureView], at: str) -> str | None:
    seen = first.get(view.entity.name)
    if seen is None:
        return None
    mine = [(k.name, k.dtype) for k in view.entity.join_keys]
    theirs = [(k.name, k.dtype) for k in seen.entity.join_keys]
    if [n for n, _ in mine] != [n for n, _ in theirs]:
        return (f"{at}: entity {view.entity.name!r} has join keys "
                f"{list(view.entity.key_names)} here but {list(seen.entity.key_names)} in "
                f"{seen.name}; use the same key columns or another entity_name.")
    if mine != theirs and UNKNOWN_TYPE not in [t for _, t in (*mine, *theirs)]:
        return (f"{at}: entity {view.entity.name!r} join keys have types "
                f"{[t for _, t in mine]} here but {[t for _, t in theirs]} in {seen.name} "
                f"({', '.join(view.entity.key_names)}); cast them to the same type.")
    return None


def _feature_problem(view: FeatureView, first: dict[tuple[str, str], tuple[FeatureView, Feature]],
                     at: str) -> str | None:
    for feature in view.features:
        prior = first.get((view.entity.name, feature.name))
        if (
            prior is not None
            and prior[1].dtype != feature.dtype
            and UNKNOWN_TYPE not in (prior[1].dtype, feature.dtype)
        ):
            return (f"{at}: feature {feature.name!r} of entity {view.entity.name!r} is "
                    f"{feature.dtype} here but {prior[1].dtype} in {prior[0].name}; one name "
                    "must mean one type: rename one or cast it.")
    return None


def _services(manifest: Manifest, views: list[FeatureView]) -> list[FeatureService]:
    """Exposures of type ml and the feature views they read, directly or through models
    (a training-set model built on feature views counts)."""
    by_id = {v.unique_id: v.name for v in views}
    nodes = manifest.data["nodes"]
    services = []
    for exposure in manifest.exposures():
        if exposure.get("type") != "ml":
            continue
        found: list[str] = []
        seen: set[str] = set()
        stack = list(exposure.get("depends_on", {}).get("nodes", []))
        while stack:
            uid = stack.pop(0)
            if uid in seen:
                continue
            seen.add(uid)
            if uid in by_id:
                found.append(by_id[uid])
            elif uid in nodes:
                stack.extend(nodes[uid].get("depends_on", {}).get("nodes", []))
        owner = exposure.get("owner") or {}
        services.append(
            FeatureService(
                name=exposure["name"],
                unique_id=exposure["unique_id"],
                label=exposure.get("label"),
                owner=owner.get("email") or owner.get("name"),
                description=exposure.get("description") or None,
                file=exposure.get("original_file_path") or "",
                views=tuple(sorted(set(found), key=found.index)),
            )
        )
    return services
