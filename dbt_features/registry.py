"""The feature registry: typed, frozen records of every feature view, built and validated here.

Built from the manifest (plus the warehouse's column types where YAML does not declare them) and
exported as ``target/feature_registry.json`` so that serving can load it without dbt.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from .definition import closest
from .errors import DefinitionError, ProjectError, UsageError
from .relation import Relation

REGISTRY_VERSION = 1
FINGERPRINT_VERSION = "2"
"""Of ``dbt_features.fingerprint``: 2, identifier case and CTE names do not count. A registry
saved with another version is rebuilt."""
REGISTRY_FILE = "feature_registry.json"


@dataclass(frozen=True)
class Column:
    """A typed column: ``dtype`` is the logical type, ``data_type`` the warehouse's spelling."""

    name: str
    dtype: str
    data_type: str


@dataclass(frozen=True)
class Entity:
    """What features describe (a customer, a merchant), and the columns that identify one."""

    name: str
    join_keys: tuple[Column, ...]

    @property
    def key_names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.join_keys)


def is_unicode(text: str) -> bool:
    """False for a string holding a lone surrogate (JSON's ``"\\ud800"``, or bytes that were
    not UTF-8 on a command line): it has no UTF-8 form, so it cannot be a join-key value."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class Feature:
    name: str
    dtype: str
    data_type: str
    description: str | None
    fingerprint: str


@dataclass(frozen=True)
class FeatureRef:
    """``view:feature`` (Feast's form) or ``view:*`` for every feature of the view."""

    view: str
    feature: str

    @classmethod
    def parse(cls, text: str) -> "FeatureRef":
        view, sep, feature = text.strip().partition(":")
        if not sep or not view or not feature or ":" in feature:
            raise UsageError(
                f"feature reference {text!r} is not of the form view:feature or view:* "
                "(e.g. customer_spend:avg_amount_30d)."
            )
        return cls(view.strip(), feature.strip())

    def __str__(self) -> str:
        return f"{self.view}:{self.feature}"


@dataclass(frozen=True)
class FeatureView:
    """One dbt model marked with ``config.meta.feature_store``."""

    name: str
    unique_id: str
    package: str
    file: str
    yaml_file: str | None
    relation: Relation
    relation_name: str | None
    materialized: str
    entity: Entity
    timestamp: Column | None
    created_timestamp: Column | None
    ttl_seconds: int | None
    online: bool
    features: tuple[Feature, ...]
    owner: str | None
    tags: tuple[str, ...]
    description: str | None
    version: int
    fingerprint: str
    compiled_sql: str | None
    consumers: tuple[str, ...] = ()

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        names = [f.name for f in self.features]
        raise UsageError(
            f"feature view {self.name!r} has no feature {name!r}"
            f"{closest(name, names)}; it has: {', '.join(names)}."
        )

    @property
    def ttl(self) -> str | None:
        return format_ttl(self.ttl_seconds)


@dataclass(frozen=True)
class FeatureService:
    """An ML model consuming features: a dbt exposure of type ``ml`` (Feast's feature service)."""

    name: str
    unique_id: str
    label: str | None
    owner: str | None
    description: str | None
    file: str
    views: tuple[str, ...]


@dataclass(frozen=True)
class Problem:
    """A broken feature definition: the model it is about (left out of the registry) and the
    complete message, naming the model, its file(s) and what to change."""

    model: str
    message: str


@dataclass(frozen=True)
class Registry:
    """Every valid feature view of a project; the broken definitions are left out and listed in
    ``problems`` (``dbt-features validate`` fails on any)."""

    project: str
    adapter_type: str
    dialect: str
    target: str
    dbt_version: str
    manifest_invocation_id: str
    generated_at: str
    views: tuple[FeatureView, ...]
    services: tuple[FeatureService, ...] = ()
    fingerprint_version: str = ""
    registry_version: int = field(default=REGISTRY_VERSION)
    problems: tuple[Problem, ...] = ()
    project_fingerprint: str = ""
    """``staleness.project_state`` of the project this registry was built from."""

    @property
    def entities(self) -> tuple[Entity, ...]:
        return tuple({v.entity.name: v.entity for v in self.views}.values())

    @property
    def broken(self) -> tuple[str, ...]:
        """Names of the models whose feature definitions are broken (left out of ``views``)."""
        return tuple(dict.fromkeys(p.model for p in self.problems))

    def view(self, name: str) -> FeatureView:
        if name in self.broken and name not in {v.name for v in self.views}:
            raise self.definition_error(name)
        return _named(self.views, name, "feature view", "the feature views are")

    def definition_error(self, *models: str) -> DefinitionError:
        """The problems of ``models`` (default: all, as ``validate`` raises them) as an error."""
        found = [p.message for p in self.problems if not models or p.model in models]
        if models:
            which = (f"feature view {models[0]!r} cannot be used until its definition is"
                     if len(models) == 1 else
                     f"feature views {', '.join(models)} cannot be used until their definitions "
                     "are")
            return DefinitionError(f"{which} fixed:", problems=found)
        return DefinitionError(
            f"{len(found)} problem{'s' if len(found) > 1 else ''} in the feature definitions:",
            problems=found,
        )

    def service(self, name: str) -> FeatureService:
        return _named(self.services, name, "feature service (exposure of type ml)", "they are")

    def resolve(self, refs: Iterable[str | FeatureRef]) -> list[tuple[FeatureView, Feature]]:
        """Expand ``view:*`` and check every reference, in the order given, without repeats."""
        out: list[tuple[FeatureView, Feature]] = []
        for ref in refs:
            ref = ref if isinstance(ref, FeatureRef) else FeatureRef.parse(ref)
            view = self.view(ref.view)
            chosen = view.features if ref.feature == "*" else (view.feature(ref.feature),)
            out.extend((view, f) for f in chosen if (view, f) not in out)
        if not out:
            raise UsageError("no features requested: name at least one view:feature.")
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: Path) -> None:
        """Write atomically: a reader never sees a half-written registry."""
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")
        tmp.replace(path)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Registry":
        if data.get("registry_version") != REGISTRY_VERSION:
            raise ProjectError(
                f"feature registry version {data.get('registry_version')!r} is not "
                f"{REGISTRY_VERSION}; rebuild it with this dbt-features (`dbt-features list`)."
            )
        views = tuple(_view_from_dict(v) for v in data["views"])
        services = tuple(
            FeatureService(**{**s, "views": tuple(s["views"])}) for s in data.get("services", [])
        )
        problems = tuple(Problem(**p) for p in data.get("problems", []))
        plain = {k: v for k, v in data.items() if k not in ("views", "services", "problems")}
        return cls(**plain, views=views, services=services, problems=problems)

    @classmethod
    def load(cls, path: Path) -> "Registry":
        """Load an exported registry (no dbt needed: this is what serving uses)."""
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except FileNotFoundError as exc:
            raise ProjectError(
                f"no feature registry at {path}: run `dbt-features list` in the project to "
                "build it."
            ) from exc
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ProjectError(f"{path} is not a feature registry: {exc}") from exc


def _named(items: tuple[Any, ...], name: str, what: str, listing: str) -> Any:
    """The item called ``name``, or a UsageError suggesting the closest name."""
    for item in items:
        if item.name == name:
            return item
    names = [item.name for item in items]
    raise UsageError(
        f"no {what} named {name!r}{closest(name, names)}; {listing}: {', '.join(names) or '(none)'}."
    )


def _column(data: dict[str, Any] | None) -> Column | None:
    return Column(**data) if data else None


def _view_from_dict(v: dict[str, Any]) -> FeatureView:
    return FeatureView(
        **{
            **v,
            "relation": Relation(**v["relation"]),
            "entity": Entity(
                name=v["entity"]["name"],
                join_keys=tuple(Column(**k) for k in v["entity"]["join_keys"]),
            ),
            "timestamp": _column(v["timestamp"]),
            "created_timestamp": _column(v["created_timestamp"]),
            "features": tuple(Feature(**f) for f in v["features"]),
            "tags": tuple(v["tags"]),
            "consumers": tuple(v.get("consumers", ())),
        }
    )


def format_ttl(seconds: int | None) -> str | None:
    if not seconds:
        return None
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


ColumnsOf = Callable[[Relation], "dict[str, str] | None"]
