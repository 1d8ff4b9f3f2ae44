"""Where a replay's served rows come from: an exported served log (Parquet), a dbt model or
source holding the same columns, or the online store's live log (``stream``), as one Arrow
table per feature view.

The exported layout (written by ``dbt-features served export``): ``<dir>/<view>/*.parquet``,
each file written under a temporary name (a leading dot) and renamed, so files starting with a
dot are skipped. A source may be ``<dir>``, ``<dir>/<view>`` or one ``.parquet`` file; the view
of a file is its folder's name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from dbt_features import pit
from dbt_features.definition import closest
from dbt_features.errors import UsageError
from dbt_features.project import Project
from dbt_features.registry import FeatureView, Registry
from dbt_features.spine import ManifestRelations
from dbt_features.warehouse import Warehouse

STREAM = "stream"
REQUIRED = ("request_time", "request_id", "generation", "fingerprint", "status",
            "event_timestamp", "served_features")
"""Columns every served log has, besides the view's join keys and features."""
FORMAT_HELP = "docs/verify.md#the-served-log-format"


@dataclass(frozen=True)
class ServedRows:
    """The served rows of one feature view, and where they were read from."""

    view: FeatureView
    table: pa.Table
    origin: str


@dataclass(frozen=True)
class SourceContext:
    """What reading a source may need: the registry, the views chosen (None: all), the
    project's models and sources, a warehouse connection and the live stream's reader."""

    registry: Registry
    chosen: frozenset[str] | None
    relations: Callable[[], ManifestRelations]
    """The project's models and sources by name (loads the manifest: only for a model log)."""
    warehouse: Callable[[], Warehouse]
    stream: Callable[[], dict[str, pa.Table]]


def load_served(source: str, ctx: SourceContext) -> list[ServedRows]:
    """The served rows of ``source``, one ``ServedRows`` per feature view chosen."""
    text = os.fspath(source).strip()
    if text == STREAM:
        return _some(_checked(ctx.stream(), ctx, "the live served log (stream)"), text)
    path = Path(text).expanduser()
    if path.exists():
        keys = {v.name: list(v.entity.key_names) for v in ctx.registry.views}
        return _some(_checked(read_parquet_log(path, lambda view: keys.get(view, [])), ctx, None),
                     text)
    if path.suffix.lower() == ".parquet" or os.sep in text:
        raise UsageError(f"--served {text}: no such file or folder (looked in "
                         f"{path.resolve().parent}); give an exported served log (a folder or a "
                         ".parquet file), a dbt model or source, or `stream`.")
    return [_model_log(text, ctx)]


def _some(logs: list[ServedRows], text: str) -> list[ServedRows]:
    if not logs:
        raise UsageError(f"--served {text}: no served rows of the chosen feature views; check "
                         "--select/--exclude, or that the server logged (serve --log-served).")
    return logs


def read_stream(project: Project, read: Callable[[], dict[str, pa.Table]]) -> dict[str, pa.Table]:
    """The online store's live served log per view (``read``: ``FeatureStore.read_served``,
    which deletes nothing), once an online store is configured."""
    from .config import resolve_config

    config = resolve_config(project)
    if config.embedded and not config.embedded_dir.exists():  # the embedded one, once it exists
        raise UsageError(
            "--served stream reads the live served log of the online store, but no online store "
            "is configured (no DBT_FEATURES_REDIS_URL, no vars.dbt_features.online_store.url, no "
            f"embedded store in {config.embedded_dir}); configure it, or replay an exported log "
            "(`dbt-features served export --output DIR`, then --served DIR).")
    return read()


def read_parquet_log(path: Path, keys_of: Callable[[str], list[str]] = lambda view: [],
                     ) -> dict[str, tuple[pa.Table, str]]:
    """Per view name, its rows and where they came from: ``path`` is a log folder (a subfolder
    per view), one view's folder, or one file; ``keys_of``: a view's join keys, which each of
    its files must hold too."""
    if path.is_file():
        if path.suffix.lower() != ".parquet":
            raise UsageError(f"--served {path}: not a .parquet file; give an exported served "
                             "log folder or one of its .parquet files.")
        return {path.parent.name: (_read_files([path], keys_of(path.parent.name)), str(path))}
    files = _parquet_files(path)
    if files:
        return {path.name: (_read_files(files, keys_of(path.name)), str(path))}
    found = {sub.name: (_read_files(_parquet_files(sub), keys_of(sub.name)), str(sub))
             for sub in sorted(path.iterdir()) if sub.is_dir() and _parquet_files(sub)}
    if not found:
        raise UsageError(f"--served {path}: no served log here (no <view>/*.parquet files); "
                         "export one with `dbt-features served export --output DIR`.")
    return found


def _parquet_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.parquet") if not p.name.startswith(".") and p.is_file())


def _read_files(files: list[Path], keys: list[str]) -> pa.Table:
    import pyarrow.parquet as pq

    tables = []
    for file in files:
        try:
            table = pq.read_table(file)
        except (OSError, pa.ArrowException) as exc:
            raise UsageError(f"--served {file}: cannot be read as Parquet ({exc}).") from exc
        check_columns(table.column_names, keys, str(file))
        tables.append(table)
    # Files of several generations may hold different features: columns are matched by name.
    return pa.concat_tables(tables, promote_options="permissive")


def check_columns(names: list[str], keys: list[str], where: str) -> None:
    missing = [c for c in (*REQUIRED, *keys) if c not in names]
    if missing:
        raise UsageError(
            f"{where} lacks the column(s) {', '.join(missing)} of a served log; it needs "
            f"{', '.join(REQUIRED)}, the view's join keys and its features (see {FORMAT_HELP}).")


def _checked(found: dict[str, tuple[pa.Table, str]] | dict[str, pa.Table], ctx: SourceContext,
             origin: str | None) -> list[ServedRows]:
    logs = []
    names = [v.name for v in ctx.registry.views]
    for name, item in found.items():
        table, where = item if isinstance(item, tuple) else (item, f"{origin} of {name}")
        view = next((v for v in ctx.registry.views if v.name == name), None)
        if view is None and name in ctx.registry.broken:
            raise ctx.registry.definition_error()
        if view is None:
            raise UsageError(
                f"--served {where}: served rows of view {name!r}, which is not a feature view "
                f"of this project{closest(name, names)}; replay a log of this project's views, "
                "or rebuild the project that served it.")
        if ctx.chosen is not None and name not in ctx.chosen:
            continue
        check_columns(table.column_names, list(view.entity.key_names), where)
        logs.append(ServedRows(view, normalized(table), where))
    return logs


def _model_log(name: str, ctx: SourceContext) -> ServedRows:
    """A dbt model or source holding served rows (``source:src.table`` or ``src.table`` for a
    source), read through the warehouse; its view is the one whose keys and features it has."""
    lookup = name.removeprefix("source:")
    relations = ctx.relations()
    relation = relations(lookup)
    if relation is None:
        raise UsageError(
            f"--served {name!r} is not a file, `stream`, or a dbt model or source of this project"
            f"{closest(lookup, relations.names())}; give an exported served log folder, a "
            "model name, or source:source_name.table.")
    with ctx.warehouse() as wh:
        columns = wh.describe(relation)
        if columns is None:
            raise UsageError(f"--served {name}: {relation} is not in the warehouse; build it "
                             f"with `dbt run --select {lookup}` (or load the source).")
        check_columns(list(columns), [], f"--served {name} ({relation})")
        view = _view_of(name, list(columns), ctx)
        table = wh.arrow(exp.select("*").from_(pit.relation_table(relation)).sql(wh.dialect))
    check_columns(table.column_names, list(view.entity.key_names), f"--served {name}")
    return ServedRows(view, normalized(table), f"{name} ({relation})")


def _view_of(name: str, columns: list[str], ctx: SourceContext) -> FeatureView:
    """The chosen online view whose join keys and features are all columns of the log."""
    fits = [v for v in ctx.registry.views
            if (ctx.chosen is None or v.name in ctx.chosen)
            and all(k in columns for k in v.entity.key_names)
            and all(f.name in columns for f in v.features)]
    if len(fits) == 1:
        return fits[0]
    if not fits:
        raise UsageError(f"--served {name}: its columns are not those of any chosen feature "
                         "view's served log (join keys and every feature); name its view with "
                         "--select, or check the model.")
    raise UsageError(f"--served {name}: its columns fit the views {', '.join(v.name for v in fits)}; "
                     "name its view with --select.")


def normalized(table: pa.Table) -> pa.Table:
    """The columns a replay relies on in one form: times as UTC instants (naive ones are UTC),
    ``served_features`` as a list of strings (a warehouse without lists may hold it as
    comma-separated text)."""
    for name in ("request_time", "event_timestamp"):
        column = table.column(name)
        if pa.types.is_timestamp(column.type) and column.type.tz is None:
            column = pc.assume_timezone(pc.cast(column, pa.timestamp("us")), "UTC")
        elif not pa.types.is_null(column.type):
            column = pc.cast(column, pa.timestamp("us", tz="UTC"))
        else:
            column = pa.nulls(len(column), pa.timestamp("us", tz="UTC"))
        table = table.set_column(table.column_names.index(name), name, column)
    served = table.column("served_features")
    if pa.types.is_string(served.type) or pa.types.is_large_string(served.type):
        served = pc.split_pattern(pc.cast(served, pa.string()), ",")
    if not (pa.types.is_list(served.type) or pa.types.is_large_list(served.type)):
        raise UsageError(f"served_features is {served.type}; it must be a list of feature "
                         f"names (see {FORMAT_HELP}).")
    return table.set_column(table.column_names.index("served_features"), "served_features",
                            served)
