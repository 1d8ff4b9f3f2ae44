"""Definition diffs: this project's feature registry against another environment's (``--state``).

Training-serving skew often starts as a feature that keeps its name while its logic changes
(training computed a 30-day mean, serving a 7-day mean). A diff compares two registries view by view and feature by
feature: additions, removals, type changes, entity/timestamp/ttl/online changes, and features
whose definition fingerprint changed under the same name, each explained by the change in the
feature's own (pruned) SQL and the upstream models whose SQL changed. Breaking changes make
``dbt-features diff`` exit 1 unless the view's ``config.meta.feature_store.version`` was raised,
which is how a team says "consumers know; retrain them".
"""

from __future__ import annotations

import difflib
from typing import Any

from .build import UNKNOWN_TYPE
from .manifest import Manifest
from .registry import REGISTRY_FILE, Column, FeatureView, Registry, format_ttl
from .diff_report import Change, RegistryDiff, ViewDiff
from .state import Side

__all__ = ["Change", "RegistryDiff", "ViewDiff", "compare", "diff_against_state"]

def diff_against_state(
    registry: Registry, manifest: Manifest, state: Side, state_notes: list[str] | None = None
) -> RegistryDiff:
    """Compare a project's registry (and the manifest it was built from) with another
    environment's, as ``dbt_features.state.load_state`` reads a ``--state`` folder."""
    current = Side.of(registry, manifest, REGISTRY_FILE, str(manifest.path.parent))
    other, notes = state, list(state_notes or ())
    if other.registry.adapter_type != registry.adapter_type:
        notes.append(
            f"the state was built for {other.registry.adapter_type} and this project for "
            f"{registry.adapter_type}: SQL compiled for different warehouses (macros dispatched "
            "per adapter) rarely fingerprints alike; compare environments of one kind."
        )
    if other.registry.project and other.registry.project != registry.project:
        notes.append(
            f"the state is of dbt project {other.registry.project!r}, this is "
            f"{registry.project!r}: feature views are matched by name."
        )
    return compare(other, current, notes)


def compare(state: Side, current: Side, notes: list[str] | None = None) -> RegistryDiff:
    """What changed from ``state`` to ``current``, view by view (matched by name)."""
    before = {v.name: v for v in state.registry.views}
    after = {v.name: v for v in current.registry.views}
    diffs: list[ViewDiff] = []
    unchanged: list[str] = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        consumers = tuple(dict.fromkeys(c for v in (new, old) if v for c in v.consumers))
        if old is None or new is None:
            diffs.append(_added_or_removed(old, new, consumers))
            continue
        comparable = name not in state.uncompiled and name not in current.uncompiled
        changes = _view_changes(state, current, old, new, comparable)
        if changes:
            diffs.append(ViewDiff(name, "changed", old.version, new.version, consumers, changes))
        else:
            unchanged.append(name)
    return RegistryDiff(current, state, tuple(diffs), tuple(unchanged), tuple(notes or ()))


def _added_or_removed(
    old: FeatureView | None, new: FeatureView | None, consumers: tuple[str, ...]
) -> ViewDiff:
    view = new or old
    assert view is not None
    names = [f.name for f in view.features]
    added = old is None
    message = (
        f"view {'added' if added else 'removed'}, {len(names)} feature"
        f"{'s' if len(names) != 1 else ''}: {', '.join(names)}"
    )
    change = Change(
        "view_added" if added else "view_removed", view.name, None,
        None if added else names, names if added else None, not added, message,
    )
    return ViewDiff(
        view.name, "added" if added else "removed", old.version if old else None,
        new.version if new else None, consumers, (change,),
    )


def _view_changes(
    state: Side, current: Side, old: FeatureView, new: FeatureView, comparable: bool
) -> tuple[Change, ...]:
    changes: list[Change] = []

    def add(kind: str, feature: str | None, before: Any, after: Any, breaking: bool,
            message: str, **explained: tuple[str, ...]) -> None:
        changes.append(Change(kind, new.name, feature, before, after, breaking, message, **explained))

    if not _same_entity(old, new):
        add("entity", None, _entity_text(old), _entity_text(new), True,
            f"entity {_entity_text(old)} -> {_entity_text(new)}")
    for kind, a, b in (("timestamp", old.timestamp, new.timestamp),
                       ("created_timestamp", old.created_timestamp, new.created_timestamp)):
        if not _same_column(a, b):
            add(kind, None, _column_text(a), _column_text(b), True,
                f"{kind} {_column_text(a) or 'none'} -> {_column_text(b) or 'none'}")
    if old.ttl_seconds != new.ttl_seconds:
        add("ttl", None, old.ttl_seconds, new.ttl_seconds, True,
            f"ttl {format_ttl(old.ttl_seconds) or 'none'} -> {format_ttl(new.ttl_seconds) or 'none'}")
    if old.online != new.online:
        add("online", None, old.online, new.online, old.online,
            f"online {'yes' if old.online else 'no'} -> {'yes' if new.online else 'no'}")

    olds = {f.name.lower(): f for f in old.features}
    news = {f.name.lower(): f for f in new.features}
    for key, f in olds.items():
        if key not in news:
            add("feature_removed", f.name, f.dtype, None, True, f"{f.name}: feature removed")
    definitions = 0
    for key, f in news.items():
        was = olds.get(key)
        if was is None:
            add("feature_added", f.name, None, f.dtype, False, f"{f.name}: feature added ({f.dtype})")
            continue
        if was.dtype != f.dtype and UNKNOWN_TYPE not in (was.dtype, f.dtype):
            add("feature_type", f.name, was.dtype, f.dtype, True,
                f"{f.name}: type {was.dtype} ({was.data_type}) -> {f.dtype} ({f.data_type})")
        if comparable and was.fingerprint != f.fingerprint:
            definitions += 1
            sql_diff, upstream = _explain(state, current, old, new, was.name, f.name)
            add("feature_definition", f.name, was.fingerprint, f.fingerprint, True,
                f"{f.name}: definition changed under the same name "
                f"(fingerprint {was.fingerprint} -> {f.fingerprint})",
                sql_diff=sql_diff, upstream_changed=upstream)
    if comparable and not definitions and old.fingerprint != new.fingerprint:
        add("model_sql", None, old.fingerprint, new.fingerprint, False,
            "the model's SQL changed outside its features (no feature's definition changed)")
    if old.version != new.version:
        add("version", None, old.version, new.version, False,
            f"version {old.version} -> {new.version}"
            + ("" if new.version > old.version else " (lowered: acknowledges nothing)"))
    return tuple(changes)


def _explain(
    state: Side, current: Side, old: FeatureView, new: FeatureView, old_name: str, new_name: str
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Why a feature's fingerprint changed: the diff of its own pruned, normalised SQL (relation
    names as dbt identities), and the upstream models whose own SQL changed."""
    if state.fingerprints is None or current.fingerprints is None:
        return (), ()
    before = state.fingerprints.feature_sql(old.unique_id, _keep(old), old_name)
    after = current.fingerprints.feature_sql(new.unique_id, _keep(new), new_name)
    lines = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=1)
    sql_diff = tuple(line for line in lines if not line.startswith(("---", "+++")))
    changed: list[str] = []
    seen: set[str] = set()
    stack = [(old.unique_id, new.unique_id)]
    while stack:
        a, b = stack.pop()
        ups_a, ups_b = state.fingerprints.upstream(a), current.fingerprints.upstream(b)
        for uid in sorted(ups_a.keys() | ups_b.keys()):
            if uid in seen or ups_a.get(uid) == ups_b.get(uid):
                continue
            seen.add(uid)
            if uid not in ups_a or uid not in ups_b:
                continue  # a new or dropped input: the SQL diff above shows it
            if not uid.startswith(("model.", "snapshot.")):
                changed.append(uid)  # a seed whose contents changed
            elif state.fingerprints.sql(uid) != current.fingerprints.sql(uid):
                changed.append(uid)
            stack.append((uid, uid))
    return sql_diff, tuple(sorted(changed))


def _keep(view: FeatureView) -> list[str]:
    return [c.name for c in (*view.entity.join_keys, view.timestamp, view.created_timestamp) if c]


def _same_entity(a: FeatureView, b: FeatureView) -> bool:
    if a.entity.name != b.entity.name or len(a.entity.join_keys) != len(b.entity.join_keys):
        return False
    return all(_same_column(x, y) for x, y in zip(a.entity.join_keys, b.entity.join_keys, strict=True))


def _same_column(a: Column | None, b: Column | None) -> bool:
    """Same name (any case) and type; an unknown type matches any (it is not compared)."""
    if a is None or b is None:
        return a is b
    return a.name.lower() == b.name.lower() and (
        a.dtype == b.dtype or UNKNOWN_TYPE in (a.dtype, b.dtype)
    )


def _entity_text(view: FeatureView) -> str:
    return f"{view.entity.name}[{', '.join(f'{k.name} {k.dtype}' for k in view.entity.join_keys)}]"


def _column_text(col: Column | None) -> str | None:
    return None if col is None else f"{col.name} {col.dtype}"
