"""Loading the registry: the copy a previous run exported, and the warehouse it may need."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ProjectError
from .registry import Registry

if TYPE_CHECKING:
    from .project import Project
    from .relation import Relation
    from .warehouse import Warehouse


def cached_registry(path: Path) -> Registry | None:
    """The exported registry if this version of dbt-features wrote it, else None (rebuild)."""
    if not path.is_file():
        return None
    try:
        saved = Registry.load(path)
    except ProjectError:
        return None
    from .registry import FINGERPRINT_VERSION

    return saved if saved.fingerprint_version == FINGERPRINT_VERSION else None


class LazyWarehouse:
    """Opens the warehouse connection on first use: a project without feature views needs none."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self._warehouse: Warehouse | None = None

    def __enter__(self) -> "LazyWarehouse":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._warehouse is not None:
            self._warehouse.close()

    def describe(self, relation: Relation) -> dict[str, str] | None:
        if self._warehouse is None:
            from .warehouse import open_warehouse

            self._warehouse = open_warehouse(self.project)
        return self._warehouse.describe(relation)

