"""The catalog as a site: every page's path, each rendered on demand (the feature server serves
pages this way, so a project of thousands of features costs no memory up front), and writing
the whole site to a folder.

A site is written to a temporary sibling folder and then moved into place, so a reader never
sees half a catalog and a failed write leaves the previous one untouched."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable, Iterator

from ..errors import UsageError
from .layout import feature_path, node_path, view_path
from .model import Catalog, ViewEntry
from .pages import ViewParts, feature_page, index_page, node_page, view_page, view_parts
from .search_index import search_index
from .sql_span import locate_projections

ASSETS = ("catalog.css", "catalog.js")
CATALOG_DIR = "feature_catalog"
"""The catalog's folder in the project's target/."""
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".js": "text/javascript; charset=utf-8", ".json": "application/json"}

Progress = Callable[[int, int], None]
"""Called with (pages written, pages in all) as a site is written."""


@dataclass(frozen=True)
class SiteWritten:
    """What ``write_site`` wrote."""

    path: str
    views: int
    features: int
    files: int
    bytes: int
    seconds: float

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


class Site:
    """The pages of one catalog, by path relative to the site's root."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._views: dict[str, ViewEntry] = {}
        self._features: dict[str, tuple[ViewEntry, int]] = {}
        for entry in catalog.views:
            self._views[view_path(entry.view.name)] = entry
            for i, f in enumerate(entry.view.features):
                self._features[feature_path(entry.view.name, f.name)] = (entry, i)
        self._nodes = {node_path(uid): node for uid, node in catalog.nodes.items()}
        self._views_by_id = {e.view.unique_id: e.view.name for e in catalog.views}
        self._parts: dict[str, ViewParts] = {}
        self._reads: dict[str, list[str]] = {}
        self._read_by: dict[str, list[str]] = {}
        for entry in catalog.views:
            for uid in entry.lineage.downstream:
                self._reads.setdefault(uid, []).append(entry.view.name)
            for uid in entry.lineage.upstream:
                self._read_by.setdefault(uid, []).append(entry.view.name)

    def paths(self) -> Iterator[str]:
        yield "index.html"
        yield "search-index.js"
        yield from (f"assets/{name}" for name in ASSETS)
        yield from self._views
        yield from self._features
        yield from self._nodes

    def __contains__(self, path: object) -> bool:
        return (path in self._features or path in self._views or path in self._nodes
                or path in ("index.html", "search-index.js")
                or path in {f"assets/{name}" for name in ASSETS})

    def __len__(self) -> int:
        return 2 + len(ASSETS) + len(self._views) + len(self._features) + len(self._nodes)

    def render(self, path: str) -> bytes | None:
        """The page at ``path`` (``index.html``, ``views/NAME.html``...), or None."""
        c = self.catalog
        if path in self._features:
            entry, i = self._features[path]
            text = feature_page(c, entry, entry.view.features[i], self.parts(entry))
        elif path in self._views:
            text = view_page(c, self._views[path], self.parts(self._views[path]))
        elif path in self._nodes:
            uid = self._nodes[path].unique_id
            text = node_page(c, self._nodes[path], self._reads.get(uid, []),
                             self._read_by.get(uid, []))
        elif path == "index.html":
            text = index_page(c)
        elif path == "search-index.js":
            text = search_index(c)
        elif path.startswith("assets/") and path[len("assets/"):] in ASSETS:
            return asset(path[len("assets/"):])
        else:
            return None
        return text.encode()


    def parts(self, entry: ViewEntry) -> ViewParts:
        """What the pages of one view share, made when first asked for (locating features in
        the SQL is the costly part) and kept."""
        found = self._parts.get(entry.view.name)
        if found is None:
            projections = locate_projections(entry.view.compiled_sql or "", self.catalog.dialect)
            found = view_parts(self.catalog, entry, self._views_by_id, projections)
            self._parts[entry.view.name] = found
        return found


def asset(name: str) -> bytes:
    return resources.files(__package__).joinpath("assets", name).read_bytes()


def content_type(path: str) -> str:
    return CONTENT_TYPES.get(os.path.splitext(path)[1], "application/octet-stream")


def write_site(site: Site, out: Path, progress: Progress | None = None) -> SiteWritten:
    """Write every page under ``out`` (replacing a previous catalog there, whole)."""
    started = time.perf_counter()
    out = out.absolute()
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    total, written, size = len(site), 0, 0
    try:
        if out.exists() and not out.is_dir():
            raise FileExistsError(17, "it is a file, not a folder")
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        made: set[Path] = set()
        for path in site.paths():
            data = site.render(path)
            assert data is not None, path
            target = tmp / path
            if target.parent not in made:
                target.parent.mkdir(parents=True, exist_ok=True)
                made.add(target.parent)
            target.write_bytes(data)
            written, size = written + 1, size + len(data)
            if progress is not None and (written % 2000 == 0 or written == total):
                progress(written, total)
        _replace(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UsageError(
            f"cannot write the feature catalog to {out} ({exc.strerror or exc}): pass a "
            "folder you can write to with --output (or `output=` in Python)."
        ) from None
    c = site.catalog
    return SiteWritten(str(out), len(c.views), c.n_features, written, size,
                       round(time.perf_counter() - started, 3))


def _replace(tmp: Path, out: Path) -> None:
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
