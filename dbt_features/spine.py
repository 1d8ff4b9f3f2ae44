"""The spine of a training set: what it can be, and the checks it must pass before a join.

A spine comes from Python (pandas, polars, Arrow), a parquet or csv file, or is a dbt model or
source already in the warehouse (``ModelSpine``). A Python spine is checked here against the
joins (timestamp column, entity keys and their types) and narrowed to what the join needs: a
row number, the entity keys, the timestamp.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from . import pit, timestamps
from .definition import closest
from .errors import UsageError
from .manifest import Manifest
from .types import arrow_logical
from .warehouse import Relation

SPINE_SUFFIXES = (".parquet", ".pq", ".csv")
DEFAULT_TIMESTAMPS = ("event_timestamp", "timestamp")
ARROW_TYPES: dict[str, pa.DataType] = {
    "int64": pa.int64(),
    "double": pa.float64(),
    "bool": pa.bool_(),
    "string": pa.string(),
    "timestamp": pa.timestamp("us"),
    "date": pa.date32(),
}

SpineRelations = Callable[[str], "Relation | None"]


@dataclass(frozen=True)
class ModelSpine:
    """A spine that is a relation in the warehouse (a dbt model or source)."""

    name: str
    relation: Relation


class ManifestRelations:
    """Model and source names of the manifest -> where they live (for a spine given by name)."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest

    def _all(self) -> dict[str, Relation]:
        found: dict[str, Relation] = {}
        for node in self.manifest.models():
            found.setdefault(node["name"], Relation(
                node.get("database"), node.get("schema"), node.get("alias") or node["name"]))
        for source in self.manifest.data.get("sources", {}).values():
            found.setdefault(f"{source['source_name']}.{source['name']}", Relation(
                source.get("database"), source.get("schema"),
                source.get("identifier") or source["name"]))
        return found

    def names(self) -> list[str]:
        return list(self._all())

    def __call__(self, name: str) -> Relation | None:
        return self._all().get(name)




def resolve_spine(spine: Any, relations: SpineRelations) -> pa.Table | ModelSpine:
    """Arrow for anything held in Python or in a file; a ``ModelSpine`` for a dbt model/source."""
    if isinstance(spine, pa.Table):
        return spine
    if isinstance(spine, pa.RecordBatch):
        return pa.Table.from_batches([spine])
    if isinstance(spine, Relation):
        return ModelSpine(str(spine), spine)
    if isinstance(spine, (str, os.PathLike)):
        return _named_spine(spine, relations)
    module = type(spine).__module__.split(".")[0]
    if module == "pandas":
        return pa.Table.from_pandas(spine, preserve_index=False)
    if module == "polars":
        return spine.to_arrow()
    if hasattr(spine, "__arrow_c_stream__"):
        return pa.table(spine)
    raise UsageError(
        f"the spine is a {type(spine).__name__}; pass a pandas or polars DataFrame, a pyarrow "
        "Table, a parquet or csv path, or the name of a dbt model or source."
    )


def _named_spine(spine: str | os.PathLike, relations: SpineRelations) -> pa.Table | ModelSpine:
    text = os.fspath(spine)
    path = Path(text).expanduser()
    looks_like_file = isinstance(spine, os.PathLike) or path.suffix.lower() in SPINE_SUFFIXES \
        or os.sep in text
    if path.is_file():
        return read_spine_file(path)
    if looks_like_file:
        if path.suffix.lower() not in SPINE_SUFFIXES and path.exists():
            raise UsageError(f"spine {text}: not a file; give a .parquet or .csv file.")
        raise UsageError(f"spine file {text} does not exist (looked in {path.resolve().parent}).")
    relation = relations(text)
    if relation is None:
        raise UsageError(
            f"spine {text!r} is neither a file nor a dbt model or source of this project"
            f"{_closest_hint(text, relations)}; pass a .parquet/.csv path, a model name, or "
            "source_name.table_name."
        )
    return ModelSpine(text, relation)


def _closest_hint(name: str, relations: SpineRelations) -> str:
    names = getattr(relations, "names", None)
    return closest(name, list(names())) if callable(names) else ""


def read_spine_file(path: Path) -> pa.Table:
    """Read a parquet or csv spine; csv columns holding ISO timestamps become timestamps."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return pq.read_table(path)
        if suffix == ".csv":
            import pyarrow.csv as pcsv

            return pcsv.read_csv(path)
    except (pa.ArrowException, OSError) as exc:
        raise UsageError(f"cannot read spine file {path}: {exc}") from exc
    raise UsageError(f"spine file {path} is neither .parquet nor .csv; convert it to one of them.")


def choose_timestamp(columns: dict[str, str | None], given: str | None, where: str) -> str:
    """The spine's timestamp column: the one given, else ``event_timestamp``/``timestamp``.

    ``columns`` maps every column to its timestamp kind (None when not a point in time)."""
    if given:
        if given not in columns:
            raise UsageError(
                f"{where} has no column {given!r} (--spine-timestamp){closest(given, list(columns))}; "
                f"its columns are: {', '.join(columns)}."
            )
        return given
    found = [c for c in DEFAULT_TIMESTAMPS if c in columns]
    if len(found) == 1:
        return found[0]
    temporal = [c for c, kind in columns.items() if kind is not None]
    if found:
        reason = f"both {found[0]!r} and {found[1]!r} could be the timestamp"
    else:
        reason = "no column is named event_timestamp or timestamp"
    raise UsageError(
        f"{where}: {reason}; name the spine timestamp with --spine-timestamp "
        f"(spine_timestamp=...). Timestamp columns: {', '.join(temporal) or '(none)'}."
    )


def check_spine(joins: Sequence[pit.ViewJoin], types: dict[str, str | None], where: str,
                returned: Iterable[str]) -> None:
    """Entity keys present and of the registry's type; no clash with reserved or feature names.

    ``types`` maps each spine column to its logical type (None when it has none)."""
    for name in types:
        if name.startswith(pit.PREFIX):
            raise UsageError(f"{where}: column {name!r} uses the prefix {pit.PREFIX!r}, which "
                             "dbt-features reserves; rename it.")
    for join in joins:
        view = join.view
        for key in view.entity.join_keys:
            if key.name not in types:
                raise UsageError(
                    f"{where} has no column {key.name!r}, the join key of entity "
                    f"{view.entity.name!r} needed by feature view {view.name!r}"
                    f"{closest(key.name, list(types))}; add it to the spine or drop "
                    f"{view.name} from --features."
                )
            have = types[key.name]
            if have != key.dtype:
                hint = (" (pandas turns integers with missing values into floats: use the "
                        "Int64 dtype)" if have == "double" and key.dtype == "int64" else "")
                raise UsageError(
                    f"{where}: column {key.name!r} is {have or 'of an unsupported type'} but "
                    f"entity {view.entity.name!r} of {view.name!r} has {key.dtype} keys "
                    f"({key.data_type}); cast it to {key.dtype}{hint}."
                )
    clash = set(returned) & {out for j in joins for _, out in j.outputs}
    if clash:
        raise UsageError(
            f"{where} already has column(s) {', '.join(sorted(clash))}, also requested as "
            "features; rename them in the spine or pass --full-feature-names."
        )


def arrow_kind(dtype: pa.DataType) -> str | None:
    return timestamps.NAIVE if arrow_logical(dtype) in ("timestamp", "date") else None


def narrow_spine(table: pa.Table, joins: Sequence[pit.ViewJoin], timestamp: str,
                 where: str) -> pa.Table:
    """Row number, entity keys (in the registry's types) and the timestamp as naive UTC."""
    column = table.column(timestamp)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        try:
            column = pc.cast(column, pa.timestamp("us"))
        except pa.ArrowInvalid:
            try:
                column = pc.cast(column, pa.timestamp("us", tz="UTC"))
            except pa.ArrowInvalid as exc:
                raise UsageError(
                    f"{where}: spine timestamp column {timestamp!r} holds text that is not an "
                    f"ISO timestamp ({exc}); write it as 2026-01-31 12:00:00[+00:00]."
                ) from exc
    if arrow_logical(column.type) not in ("timestamp", "date"):
        raise UsageError(
            f"{where}: spine timestamp column {timestamp!r} is {column.type}, not a timestamp "
            "or date; convert it, or name another column with --spine-timestamp."
        )
    if pa.types.is_timestamp(column.type) and column.type.tz is not None:
        column = pc.cast(column, pa.timestamp("us", tz="UTC"))  # same instants, now UTC
    column = pc.cast(column, pa.timestamp("us"), safe=False)  # naive UTC (tz dropped)
    keys = {k.name: k.dtype for j in joins for k in j.view.entity.join_keys}
    arrays = [_row_numbers(table.num_rows), column]
    names = [pit.ROW, timestamp]
    for key, dtype in keys.items():
        if key == timestamp:
            continue
        arrays.append(pc.cast(table.column(key), ARROW_TYPES[dtype]))
        names.append(key)
    return pa.Table.from_arrays(arrays, names=names)


def _row_numbers(n: int) -> pa.Array:
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy comes with pandas, polars, duckdb's extras
        return pa.array(range(n), pa.int64())
    return pa.array(np.arange(n, dtype=np.int64))
