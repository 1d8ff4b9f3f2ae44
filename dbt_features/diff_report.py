"""What a definition diff found, as records: one ``Change`` per difference, grouped per view
(``ViewDiff``) and for the whole registry (``RegistryDiff``), printable for people and as JSON.
``dbt_features.diff`` computes them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .registry import FeatureService
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
        unsure = ""
        if self.not_compared:
            unsure = f" (definitions of {', '.join(self.not_compared)} not compared: see the notes)"
        if not self.views and self.not_compared:
            return (f"No differences in columns and settings of {n['views_unchanged']} feature "
                    f"views{unsure}.")
        if not self.views:
            return f"No differences: {n['views_unchanged']} feature views compared."
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
