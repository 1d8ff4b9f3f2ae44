"""What the feature catalog shows, as records: each feature view with its lineage, online status,
last ``verify`` result and, against a ``--state``, its definition changes; built from the
registry and dbt's manifest, with no HTML in sight (``pages`` renders these)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..diff_report import Change, RegistryDiff
from ..manifest import Manifest
from ..registry import FeatureView, Registry, now_iso
from .lineage import Lineage, LineageGraph, Node

VERIFY_FILE = "feature_verify.json"
"""Where ``FeatureStore.verify`` keeps its last report, in the project's target/."""


@dataclass(frozen=True)
class OnlineInfo:
    """What the online store held for a view when the catalog was made (``status``)."""

    synced: bool
    last_sync: str | None
    keys: int | None
    watermark: str | None
    up_to_date: bool
    """The synced definition fingerprint is the current one."""
    age_seconds: float | None
    """Seconds from the last sync to when the status was read: freshness."""
    watermark_age_seconds: float | None = None
    """Seconds from the newest synced row's time to when the status was read."""
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_status(cls, status: dict[str, Any], now: datetime | None = None) -> "OnlineInfo":
        """From a ``ViewStatus.to_dict()`` (what ``dbt-features status --json`` prints)."""
        now = now or datetime.now(timezone.utc)

        def age(when: str | None) -> float | None:
            return max(0.0, (now - datetime.fromisoformat(when)).total_seconds()) if when else None

        return cls(bool(status.get("synced")), status.get("last_sync"), status.get("keys"),
                   status.get("watermark"), bool(status.get("up_to_date")),
                   age(status.get("last_sync")), age(status.get("watermark")),
                   tuple(status.get("warnings") or ()))


@dataclass(frozen=True)
class VerifyInfo:
    """One view's part of the last stored ``verify`` report."""

    as_of: str
    sampled: int
    compared: int
    mismatched: int
    pending: int
    mismatched_features: tuple[str, ...]


@dataclass(frozen=True)
class ViewEntry:
    """A feature view and everything its pages show besides the registry's record."""

    view: FeatureView
    lineage: Lineage
    online: OnlineInfo | None
    verify: VerifyInfo | None
    changes: tuple[Change, ...]
    diff_status: str | None
    """added or changed against the ``--state``; None without a state or when unchanged."""


@dataclass(frozen=True)
class Catalog:
    """The whole catalog of one project."""

    project: str
    target: str
    generated_at: str
    dialect: str
    views: tuple[ViewEntry, ...]
    nodes: dict[str, Node]
    """Every dbt node on some view's lineage (each gets a page), by unique id."""
    state: str | None = None
    """The ``--state`` folder compared with, and what the diff said of it."""
    diff_summary: str | None = None
    removed_views: tuple[str, ...] = ()

    @property
    def n_features(self) -> int:
        return sum(len(e.view.features) for e in self.views)


def build_catalog(registry: Registry, manifest: Manifest | None, *,
                  diff: RegistryDiff | None = None, status: dict[str, OnlineInfo] | None = None,
                  verify: dict[str, VerifyInfo] | None = None) -> Catalog:
    """The catalog of ``registry``; lineage and SQL come from ``manifest`` (none without it)."""
    graph = LineageGraph(manifest)
    diffs = {v.name: v for v in diff.views} if diff is not None else {}
    entries = []
    for view in registry.views:
        found = diffs.get(view.name)
        entries.append(ViewEntry(
            view=view, lineage=graph.lineage(view.unique_id),
            online=(status or {}).get(view.name), verify=(verify or {}).get(view.name),
            changes=found.changes if found else (), diff_status=found.status if found else None,
        ))
    nodes: dict[str, Node] = {}
    for entry in entries:
        for uid in (*entry.lineage.upstream, *entry.lineage.downstream):
            node = graph.node(uid)
            if node is not None:
                nodes[uid] = node
    removed = tuple(v.name for v in (diff.views if diff else ()) if v.status == "removed")
    return Catalog(
        project=registry.project, target=registry.target, generated_at=now_iso(),
        dialect=registry.dialect, views=tuple(entries), nodes=nodes,
        state=diff.state.path if diff is not None else None,
        diff_summary=diff.summary() if diff is not None else None, removed_views=removed,
    )


def load_verify(path: Path) -> dict[str, VerifyInfo]:
    """The last stored ``verify`` report per view; empty when there is none or it is unreadable
    (a catalog without it is still a catalog)."""
    try:
        data = json.loads(path.read_text())
        out = {}
        for check in data["views"]:
            features = tuple(dict.fromkeys(m["feature"] for m in check.get("mismatches", ())))
            out[check["view"]] = VerifyInfo(
                as_of=str(data["as_of"]), sampled=int(check["sampled"]),
                compared=int(check["compared"]), mismatched=int(check["mismatched"]),
                pending=int(check.get("pending", 0)), mismatched_features=features)
        return out
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def save_verify(path: Path, report: dict[str, Any]) -> None:
    """Keep a ``verify`` report (``VerifyReport.to_dict()``) for the catalog; written whole or
    not at all, and never fatal: the verification itself already happened."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(report, default=str) + "\n")
        tmp.replace(path)
    except OSError:
        tmp.unlink(missing_ok=True)
