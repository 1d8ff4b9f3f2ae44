"""Lineage of feature views from dbt's manifest: what a view reads (models, sources, seeds,
snapshots) and what reads it (exposures, models, and the models that build training sets with
the ``dbt_features.training_set`` macro)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..manifest import Manifest

TRAINING_SET_MACRO = "macro.dbt_features.training_set"
_KINDS = ("model", "source", "seed", "snapshot", "exposure")


@dataclass(frozen=True)
class Node:
    """A dbt node on a feature view's lineage."""

    unique_id: str
    name: str
    resource_type: str
    """model, source, seed, snapshot or exposure."""
    description: str
    file: str
    relation: str | None
    training_set: bool = False
    """A model that builds a training set with the ``dbt_features.training_set`` macro."""
    owner: str | None = None


@dataclass(frozen=True)
class Lineage:
    """The direct parents and children of one node, as unique ids, in name order."""

    upstream: tuple[str, ...]
    downstream: tuple[str, ...]


class LineageGraph:
    """Parents and children of the manifest's nodes; ``None`` manifest: no lineage known."""

    def __init__(self, manifest: Manifest | None) -> None:
        self.data: dict[str, Any] = manifest.data if manifest is not None else {}
        self._children = self.data.get("child_map") or {}
        self._nodes: dict[str, Node | None] = {}

    def node(self, unique_id: str) -> Node | None:
        if unique_id not in self._nodes:
            self._nodes[unique_id] = self._make(unique_id)
        return self._nodes[unique_id]

    def _make(self, unique_id: str) -> Node | None:
        kind = unique_id.split(".", 1)[0]
        if kind not in _KINDS:
            return None
        table = {"source": "sources", "exposure": "exposures"}.get(kind, "nodes")
        raw = (self.data.get(table) or {}).get(unique_id)
        if raw is None:
            return None
        name = raw.get("name") or unique_id
        if kind == "source":
            name = f"{raw.get('source_name')}.{name}"
        macros = (raw.get("depends_on") or {}).get("macros") or []
        owner = raw.get("owner") or {}
        return Node(
            unique_id=unique_id, name=str(name), resource_type=kind,
            description=str(raw.get("description") or ""),
            file=str(raw.get("original_file_path") or ""),
            relation=raw.get("relation_name"),
            training_set=TRAINING_SET_MACRO in macros,
            owner=(owner.get("email") or owner.get("name")) if isinstance(owner, dict) else None,
        )

    def lineage(self, unique_id: str) -> Lineage:
        raw = self._raw(unique_id)
        parents = (raw.get("depends_on") or {}).get("nodes") or []
        return Lineage(self._known(parents), self._known(self._children.get(unique_id) or []))

    def _raw(self, unique_id: str) -> dict[str, Any]:
        for table in ("nodes", "sources", "exposures"):
            found = (self.data.get(table) or {}).get(unique_id)
            if found is not None:
                return found
        return {}

    def _known(self, ids: list[str]) -> tuple[str, ...]:
        nodes = [n for n in (self.node(i) for i in dict.fromkeys(ids)) if n is not None]
        return tuple(n.unique_id for n in sorted(nodes, key=lambda n: (n.resource_type, n.name)))
