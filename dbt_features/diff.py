"""Definition diffs: this project's feature registry against another environment's (``--state``).

The seed's bug was a feature that kept its name while its logic changed (training computed a
30-day mean, serving a 7-day mean). A diff compares two registries view by view and feature by
feature: additions, removals, type changes, entity/timestamp/ttl/online changes, and features
whose definition fingerprint changed under the same name, each explained by the change in the
feature's own (pruned) SQL and the upstream models whose SQL changed. Breaking changes make
``dbt-features diff`` exit 1 unless the view's ``config.meta.feature_store.version`` was raised,
which is how a team says "consumers know; retrain them".
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace
from typing import Any

from .build import UNKNOWN_TYPE
from .manifest import Manifest
from .registry import REGISTRY_FILE, Column, FeatureService, FeatureView, Registry, format_ttl
from .state import Side

DIFF_VERSION = 1
_ADDED = ("view_added", "feature_added")
_REMOVED = ("view_removed", "feature_removed")
_SHOWN_SQL_LINES = 40


@dataclass(frozen=True)
class Change:
    """One difference. ``before``/``after`` are JSON values whose meaning depends on ``kind``
    (see the README); ``sql_diff`` and ``upstream_changed`` explain a changed definition."""

    kind: str
    view: str
    feature: str | None
    before: Any
    after: Any
    breaking: bool
    message: str
    sql_diff: tuple[str, ...] = ()
    upstream_changed: tuple[str, ...] = ()


@dataclass(frozen=True)
class ViewDiff:
    """Everything that differs in one feature view; ``status`` is added, removed or changed."""

    name: str
    status: str
    version_before: int | None
    version_after: int | None
    consumers: tuple[str, ...]
    changes: tuple[Change, ...]

    @property
    def version_raised(self) -> bool:
        before, after = self.version_before, self.version_after
        return before is not None and after is not None and after > before

    @property
    def breaking(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.breaking)

    @property
    def blocking(self) -> tuple[Change, ...]:
        """Breaking changes the view's version does not acknowledge."""
        return () if self.version_raised else self.breaking


@dataclass(frozen=True)
class RegistryDiff:
    """What changed from the ``state`` (e.g. production) to ``current`` (this project)."""

    current: Side
    state: Side
    views: tuple[ViewDiff, ...]
    unchanged: tuple[str, ...]
    notes: tuple[str, ...] = ()

    @property
    def blocking(self) -> tuple[Change, ...]:
        return tuple(c for v in self.views for c in v.blocking)

    @property
    def exit_code(self) -> int:
        """1 when a breaking change is not acknowledged by a raised version, else 0."""
        return 1 if self.blocking else 0

    def affected_services(self) -> list[FeatureService]:
        """Feature services (exposures of type ml, on either side) reading a view with a breaking
        change, each with only those views."""
        hit = {v.name for v in self.views if v.breaking}
        services: dict[str, FeatureService] = {}
        # The current definition of a service wins, but it read what it read in the state too
        # (a removed view is in the state's list only).
        for s in (*self.state.registry.services, *self.current.registry.services):
            views = (*services[s.name].views, *s.views) if s.name in services else s.views
            services[s.name] = replace(s, views=tuple(dict.fromkeys(views)))
        return [
            replace(s, views=tuple(v for v in s.views if v in hit))
            for _, s in sorted(services.items())
            if hit.intersection(s.views)
        ]

    @property
    def not_compared(self) -> tuple[str, ...]:
        """Views on both sides whose definitions could not be compared (no compiled SQL)."""
        names = {v.name for v in self.state.registry.views}
        names &= {v.name for v in self.current.registry.views}
        return tuple(sorted(names & (self.state.uncompiled | self.current.uncompiled)))

    def counts(self) -> dict[str, int]:
        status = [v.status for v in self.views]
        return {
            "views_added": status.count("added"),
            "views_removed": status.count("removed"),
            "views_changed": status.count("changed"),
            "views_unchanged": len(self.unchanged),
            "changes": sum(len(v.changes) for v in self.views),
            "breaking": sum(len(v.breaking) for v in self.views),
            "blocking": len(self.blocking),
        }

    def summary(self) -> str:
        """The one-line verdict."""
        n = self.counts()
        shape = (
            f"{n['views_changed']} changed, {n['views_added']} added, {n['views_removed']} "
            f"removed, {n['views_unchanged']} unchanged"
        )
        if n["blocking"]:
            names = ", ".join(v.name for v in self.views if v.blocking)
            s = "s" if n["blocking"] > 1 else ""
            return (
                f"BREAKING: {n['blocking']} change{s} not acknowledged by a version raise in "
                f"{names} (views: {shape})."
            )
        if n["breaking"]:
            return f"OK: every breaking change is acknowledged by a raised version (views: {shape})."
        if self.not_compared:
            unsure = f" (definitions of {', '.join(self.not_compared)} not compared: see the notes)"
        else:
            unsure = ""
        if not self.views:
            return f"No differences: {n['views_unchanged']} feature views compared{unsure}."
        return f"OK: no breaking changes (views: {shape}){unsure}."

    def to_dict(self) -> dict[str, Any]:
        """The documented ``--json`` structure (``diff_version`` 1)."""
        return {
            "diff_version": DIFF_VERSION,
            "ok": not self.blocking,
            "summary": self.summary(),
            "current": _side_dict(self.current),
            "state": _side_dict(self.state),
            "counts": self.counts(),
            "views": [
                {
                    "name": v.name, "status": v.status,
                    "version_before": v.version_before, "version_after": v.version_after,
                    "version_raised": v.version_raised, "blocking": bool(v.blocking),
                    "consumers": list(v.consumers),
                    "changes": [
                        {
                            "kind": c.kind, "feature": c.feature, "before": c.before,
                            "after": c.after, "breaking": c.breaking,
                            "blocking": c.breaking and not v.version_raised,
                            "message": c.message, "sql_diff": list(c.sql_diff),
                            "upstream_changed": list(c.upstream_changed),
                        }
                        for c in v.changes
                    ],
                }
                for v in self.views
            ],
            "unchanged_views": list(self.unchanged),
            "definitions_not_compared": list(self.not_compared),
            "affected_services": [
                {"name": s.name, "label": s.label, "owner": s.owner, "file": s.file,
                 "views": list(s.views)}
                for s in self.affected_services()
            ],
            "notes": list(self.notes),
        }

    def format(self) -> str:
        """Text for people: a header, one block per view that differs (breaking changes marked,
        consumers named), the consumers affected, and the one-line verdict."""
        lines = [f"Comparing {_side_text(self.current)}", f"     with {_side_text(self.state)}"]
        lines += [f"Note: {n}" for n in self.notes]
        for v in self.views:
            consumers = f"; consumers: {', '.join(v.consumers)}" if v.consumers else ""
            lines += ["", f"{v.name}  [{v.status}{consumers}]"]
            for c in v.changes:
                mark = "+" if c.kind in _ADDED else "-" if c.kind in _REMOVED else "~"
                tag = "" if not c.breaking else "  BREAKING" if v.blocking else (
                    "  (breaking, acknowledged by the version)"
                )
                lines.append(f"  {mark} {c.message}{tag}")
                lines += [f"      {line}" for line in c.sql_diff[:_SHOWN_SQL_LINES]]
                if len(c.sql_diff) > _SHOWN_SQL_LINES:
                    lines.append(f"      ... {len(c.sql_diff) - _SHOWN_SQL_LINES} more lines (--json)")
                if c.upstream_changed:
                    lines.append(f"      upstream SQL changed: {', '.join(c.upstream_changed)}")
            if v.blocking and v.status == "changed":
                lines.append(
                    f"  -> if intended, raise config.meta.feature_store.version of {v.name} to "
                    f"{(v.version_before or 0) + 1} and retrain its consumers."
                )
        services = self.affected_services()
        if services:
            lines += ["", "Consumers affected:"]
            for s in services:
                who = "; ".join(x for x in (s.label, s.owner and f"owner {s.owner}") if x)
                lines.append(f"  {s.name}{f' ({who})' if who else ''} reads {', '.join(s.views)}")
        lines += ["", self.summary()]
        return "\n".join(lines)


def _side_dict(side: Side) -> dict[str, Any]:
    r = side.registry
    return {
        "path": side.path, "source": side.source, "project": r.project, "target": side.target,
        "adapter_type": r.adapter_type, "manifest_invocation_id": r.manifest_invocation_id,
    }


def _side_text(side: Side) -> str:
    target = f"target {side.target}, " if side.target else ""
    return f"{side.path} ({target}{side.registry.adapter_type}; from {side.source})"


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
