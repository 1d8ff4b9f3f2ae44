"""dbt selectors (``--select``/``--exclude``) evaluated in this process, on the loaded manifest.

dbt's own selection engine (``NodeSelector`` over the manifest's graph) runs on the manifest the
registry was built from: nothing is parsed, compiled or written (``dbt ls`` would rewrite
``target/manifest.json`` without compiled SQL). ``state:`` selectors compare with the manifest
in ``--state`` (default ``DBT_STATE``), as in dbt.
"""

from __future__ import annotations

import os
from argparse import Namespace
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .definition import closest
from .errors import UsageError
from .manifest import Manifest
from .registry import FeatureView, Registry


def select_views(registry: Registry, manifest: Manifest, select: str | None,
                 exclude: str | None = None, *, project_root: Path,
                 target_path: Path | None = None,
                 state: str | Path | None = None) -> list[FeatureView]:
    """The registry's views among the nodes ``select`` (default: all) minus ``exclude`` picks.

    A selector that picks no feature view is a ``UsageError`` suggesting the closest names;
    one that picks only broken definitions is their ``DefinitionError``."""
    views = list(registry.views)
    if not select and not exclude:
        return views
    chosen = selected_ids(manifest, select, exclude, project_root=project_root,
                          target_path=target_path, state=state,
                          feature_tags={v.unique_id: v.tags for v in views if v.tags})
    found = [v for v in views if v.unique_id in chosen]
    if found:
        return found
    flag = " ".join(f for f in (select and f"--select {select!r}",
                                exclude and f"--exclude {exclude!r}") if f)
    broken = [node["name"] for uid, node in manifest.data["nodes"].items()
              if uid in chosen and node.get("name") in registry.broken]
    if broken:
        raise registry.definition_error(*dict.fromkeys(broken))
    others = sorted(manifest.data["nodes"][uid]["name"] for uid in chosen
                    if uid in manifest.data["nodes"])
    names = [v.name for v in views]
    given = select or exclude or ""
    candidates = [*names, *(f"tag:{t}" for v in views for t in v.tags)]
    raise UsageError(
        f"{flag} matches no feature view"
        + (f" (it selects {', '.join(others[:5])}{', ...' if len(others) > 5 else ''}, which "
           "are not feature views)" if others else closest(given, [c for c in candidates if c != given]))
        + f"; the feature views are: {', '.join(names) or '(none)'}."
    )


def selected_ids(manifest: Manifest, select: str | None, exclude: str | None, *,
                 project_root: Path, target_path: Path | None = None,
                 state: str | Path | None = None,
                 feature_tags: dict[str, tuple[str, ...]] | None = None) -> set[str]:
    """Unique ids of the nodes a dbt selector picks, as ``dbt ls --select/--exclude`` run in
    ``project_root`` would (dbt reads ``path:`` selectors from the current directory).
    ``feature_tags`` (unique id: the ``feature_store.tags`` of its view) count as the node's
    tags for ``tag:`` selectors, as ``list`` shows them beside dbt's own."""
    from dbt.contracts.graph.manifest import Manifest as DbtManifest
    from dbt.contracts.graph.manifest import WritableManifest
    from dbt.graph.cli import parse_difference
    from dbt.graph.selector import NodeSelector
    from dbt_common.exceptions import DbtBaseException

    _ensure_flags()
    try:
        spec = parse_difference(select.split() if select else None,
                                exclude.split() if exclude else None)
        with _quiet_dbt(), _inside(project_root):
            dbt_manifest = DbtManifest.from_writable_manifest(
                WritableManifest.from_dict(_with_tags(manifest.data, feature_tags or {})))
            selector = NodeSelector(_graph(dbt_manifest), dbt_manifest,
                                    previous_state=_previous_state(select, exclude, target_path,
                                                                  state))
            return set(selector.get_selected(spec))
    except DbtBaseException as exc:
        given = " ".join(f"{flag} {value!r}" for flag, value in
                         (("--select", select), ("--exclude", exclude)) if value)
        reason = " ".join(str(getattr(exc, "msg", None) or exc).split())
        raise UsageError(f"{given} is not a valid dbt selector: {reason}.") from exc


def _with_tags(data: dict[str, Any], tags: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """The manifest's data with ``tags`` added to its nodes' (a copy: the loaded one is kept)."""
    if not tags:
        return data
    nodes = dict(data["nodes"])
    for unique_id, extra in tags.items():
        if unique_id in nodes:
            node = nodes[unique_id]
            nodes[unique_id] = {**node, "tags": list(dict.fromkeys([*node.get("tags", []), *extra]))}
    return {**data, "nodes": nodes}


def _graph(manifest: Any) -> Any:
    from dbt.compilation import Linker
    from dbt.graph import Graph

    linker = Linker()
    linker.link_graph(manifest)
    return Graph(linker.graph)


def _previous_state(select: str | None, exclude: str | None, target_path: Path | None,
                    state: str | Path | None) -> Any:
    """dbt's comparison state for ``state:`` selectors: the artifacts in ``state``, else in
    ``DBT_STATE``."""
    if "state:" not in f"{select or ''} {exclude or ''}":
        return None
    folder = str(state) if state else os.environ.get("DBT_STATE")
    if not folder:
        raise UsageError(
            "a state: selector compares with another environment's artifacts: set DBT_STATE "
            "to the folder holding its manifest.json (as for dbt)."
        )
    from dbt.contracts.state import PreviousState

    path = Path(folder).expanduser().resolve()
    if not (path / "manifest.json").is_file():
        given = f"--state {folder}" if state else f"DBT_STATE={folder}"
        raise UsageError(f"{given}: no manifest.json there to compare with.")
    return PreviousState(state_path=path, target_path=target_path or path, project_root=path)


def _ensure_flags() -> None:
    """dbt's selection reads process-wide flags that a dbt command would have set."""
    from dbt.flags import get_flags, set_from_args

    if not hasattr(get_flags(), "INDIRECT_SELECTION"):
        set_from_args(Namespace(), None)


@contextmanager
def _inside(folder: Path) -> Iterator[None]:
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


@contextmanager
def _quiet_dbt() -> Iterator[None]:
    """dbt's events (warnings printed to stdout) are not ours to show: silence them."""
    from dbt_common.events.event_manager import EventManager
    from dbt_common.events.event_manager_client import ctx_set_event_manager, get_event_manager

    previous = get_event_manager()
    ctx_set_event_manager(EventManager())
    try:
        yield
    finally:
        ctx_set_event_manager(previous)
