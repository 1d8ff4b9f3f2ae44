"""Training sets: a spine of labelled events joined point in time with feature views.

The spine comes from Python (pandas, polars, Arrow), a parquet or csv file, or is a dbt model or
source already in the warehouse. A Python spine is checked here, reduced to the columns the join
needs (a row number, the entity keys, the timestamp as naive UTC) and registered (DuckDB) or
uploaded to a temporary table (PostgreSQL); the features come back in spine order and are put
next to the spine's own columns, untouched. A spine in the warehouse is joined in the warehouse
with all its columns. Either way the SQL is the one of ``pit.point_in_time_query``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from . import pit
from .definition import closest
from .errors import UsageError
from .registry import Feature, FeatureView, Registry
from .types import arrow_logical, logical_type
from .warehouse import Relation, Warehouse

log = logging.getLogger(__name__)

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
ColumnsOf = Callable[[Relation], "dict[str, str] | None"]


@dataclass(frozen=True)
class ModelSpine:
    """A spine that is a relation in the warehouse (a dbt model or source)."""

    name: str
    relation: Relation


def plan(registry: Registry, features: Iterable[str] | str, *,
         full_feature_names: bool = False) -> list[pit.ViewJoin]:
    """Resolve feature references into one join per view, with the output column names.

    Raises on unknown names (with the closest name), views without a timestamp, and the same
    feature name from two views unless ``full_feature_names`` (then ``view__feature``)."""
    refs = parse_features(features)
    by_view: dict[str, list[Feature]] = {}
    views: dict[str, FeatureView] = {}
    for view, feature in registry.resolve(refs):
        pit.view_timestamp_kind(view, registry.dialect)
        views[view.name] = view
        by_view.setdefault(view.name, []).append(feature)
    seen: dict[str, str] = {}
    joins = []
    for name, chosen in by_view.items():
        outputs = []
        for feature in chosen:
            out = f"{name}__{feature.name}" if full_feature_names else feature.name
            if out in seen:
                raise UsageError(
                    f"feature {feature.name!r} is requested from both {seen[out]} and {name}; "
                    "pass --full-feature-names (full_feature_names=True) to name the columns "
                    "view__feature, or request only one of them."
                )
            seen[out] = name
            outputs.append((feature.name, out))
        joins.append(pit.ViewJoin(views[name], tuple(outputs)))
    return joins


def parse_features(features: Iterable[str] | str) -> list[str]:
    """``a:b,c:d`` and/or a list of references (each may itself hold commas)."""
    items = [features] if isinstance(features, str) else list(features)
    refs = [part.strip() for item in items for part in str(item).split(",") if part.strip()]
    if not refs:
        raise UsageError("no features requested: pass --features view:feature[,view:*...].")
    return refs


# -- the spine ---------------------------------------------------------------------------------


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


def _arrow_kind(dtype: pa.DataType) -> str | None:
    return pit.NAIVE if arrow_logical(dtype) in ("timestamp", "date") else None


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


# -- running -----------------------------------------------------------------------------------


def get_training_set(
    registry: Registry,
    warehouse: Callable[[], Warehouse],
    spine: Any,
    features: Iterable[str] | str,
    *,
    spine_timestamp: str | None = None,
    full_feature_names: bool = False,
    relations: SpineRelations = lambda name: None,
) -> pa.Table:
    """Point-in-time training set as an Arrow table: spine columns, then the features."""
    joins = plan(registry, features, full_feature_names=full_feature_names)
    source = resolve_spine(spine, relations)
    with warehouse() as wh:
        if isinstance(source, ModelSpine):
            return _model_spine_set(wh, source, joins, spine_timestamp)
        where = "the spine" if not isinstance(spine, (str, os.PathLike)) else f"spine {os.fspath(spine)}"
        kinds = {f.name: _arrow_kind(f.type) for f in source.schema}
        ts = choose_timestamp(kinds, spine_timestamp, where)
        check_spine(joins, {f.name: arrow_logical(f.type) for f in source.schema}, where,
                    source.column_names)
        narrow = narrow_spine(source, joins, ts, where)
        result = source
        with wh.spine(narrow) as table:
            spine_sql = pit.Spine(table=table, columns=(), timestamp=ts,
                                  timestamp_kind=pit.NAIVE, row_id=pit.ROW)
            # One query per view (measured: chaining views in one query costs more, as each
            # step carries the previous features through its joins); each returns its
            # features in spine order, put next to the spine's own columns.
            for join in joins:
                log.info("Joining %s spine rows with %s ...", f"{source.num_rows:,}", join.view.name)
                found = _features_of(wh, spine_sql, join, source.num_rows)
                for feature, out in join.outputs:
                    result = result.append_column(out, _typed(found.column(out), join.view, feature))
                del found
    return result


def _features_of(wh: Warehouse, spine: pit.Spine, join: pit.ViewJoin, n: int) -> pa.Table:
    """One view's features for an uploaded spine, in spine order.

    Measured on DuckDB: the query without its tie-break is faster, and exact whenever it
    returns one row per spine row (no matched time holds two rows); otherwise it is run again
    with the tie-break."""
    query = pit.point_in_time_query(spine, [join], wh.dialect, tie_break=False)
    found = wh.arrow(pit.to_sql(query, wh.dialect))
    if found.num_rows != n:
        found = wh.arrow(pit.to_sql(pit.point_in_time_query(spine, [join], wh.dialect), wh.dialect))
    if found.num_rows != n:  # pragma: no cover - would be a bug of ours
        raise AssertionError(f"{found.num_rows} feature rows for {n} spine rows")
    return found


def _model_spine_set(wh: Warehouse, spine: ModelSpine, joins: list[pit.ViewJoin],
                     spine_timestamp: str | None) -> pa.Table:
    columns = wh.describe(spine.relation)
    sql = training_query_sql(spine, columns, joins, wh.dialect, spine_timestamp)
    found = wh.arrow(sql)
    for join in joins:
        for feature, out in join.outputs:
            index = found.column_names.index(out)
            found = found.set_column(index, out, _typed(found.column(out), join.view, feature))
    return found


def training_query_sql(spine: ModelSpine, columns: dict[str, str] | None,
                       joins: list[pit.ViewJoin], dialect: str,
                       spine_timestamp: str | None, *, pretty: bool = False) -> str:
    """The SQL of a training set whose spine is a relation (what ``dbt-features sql`` prints)."""
    where = f"spine model {spine.name} ({spine.relation})"
    if columns is None:
        raise UsageError(
            f"{where} is not in the warehouse: build it with `dbt run --select {spine.name}`."
        )
    kinds = {name: pit.timestamp_kind(data_type, dialect) for name, data_type in columns.items()}
    ts = choose_timestamp(kinds, spine_timestamp, where)
    if kinds[ts] is None:
        raise UsageError(
            f"{where}: spine timestamp column {ts!r} is {columns[ts]}, not a timestamp or "
            "date; cast it in the model, or name another column with --spine-timestamp."
        )
    check_spine(joins, {n: logical_type(t, dialect) for n, t in columns.items()}, where, columns)
    parts = spine.relation.parts()
    table = pit.exp.table_(
        pit.exp.to_identifier(parts[-1], quoted=True),
        db=pit.exp.to_identifier(parts[-2], quoted=True) if len(parts) > 1 else None,
        catalog=pit.exp.to_identifier(parts[-3], quoted=True) if len(parts) > 2 else None,
    )
    query = pit.point_in_time_query(
        pit.Spine(table=table, columns=tuple(columns), timestamp=ts, timestamp_kind=kinds[ts]),
        joins, dialect,
    )
    return pit.to_sql(query, dialect, pretty=pretty)


def _typed(column: pa.ChunkedArray, view: FeatureView, feature_name: str) -> pa.ChunkedArray:
    """Every warehouse returns a feature in the Arrow type of its logical type."""
    feature = view.feature(feature_name)
    target = ARROW_TYPES[feature.dtype]
    if feature.dtype == "timestamp" and pit.timestamp_kind(feature.data_type, "duckdb") == pit.TZ:
        target = pa.timestamp("us", tz="UTC")
    if column.type == target:
        return column
    try:
        return pc.cast(column, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise UsageError(
            f"feature {view.name}:{feature_name} came back as {column.type}, not {target}: "
            f"{exc}; check its data_type in {view.yaml_file or view.file}."
        ) from exc


# -- output ------------------------------------------------------------------------------------

OUTPUT_SUFFIXES = (".parquet", ".csv")


def check_output(path: str | os.PathLike) -> Path:
    """Refuse an output path we cannot write before doing any work."""
    out = Path(path)
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise UsageError(
            f"-o {os.fspath(path)}: the output must end in .parquet or .csv "
            f"(not {out.suffix or 'no extension'})."
        )
    if not out.parent.expanduser().resolve().is_dir():
        raise UsageError(f"-o {os.fspath(path)}: folder {out.parent} does not exist.")
    return out


def write_output(table: pa.Table, path: str | os.PathLike) -> None:
    """Write a training set to .parquet or .csv (atomically: no half-written file)."""
    out = check_output(path)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        if out.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, tmp)
        else:
            import pyarrow.csv as pcsv

            pcsv.write_csv(table, tmp)
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot write -o {os.fspath(path)}: {exc}") from exc
