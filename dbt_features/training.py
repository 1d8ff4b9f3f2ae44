"""Training sets: a spine of labelled events joined point in time with feature views.

A Python spine (checked and narrowed by ``spine``) is registered (DuckDB) or uploaded to a
temporary table (PostgreSQL); the features come back in spine order and are put next to the
spine's own columns, untouched. A spine in the warehouse is read the same way where that is
cheap (``READ_HERE``), else joined in the warehouse with all its columns by the single statement
that ``sql`` prints (on PostgreSQL, each view read there by ``LATERAL`` where an index serves
it, as the Python path reads it: ``pit_lateral``). Either way the SQL is the one of
``pit.point_in_time_query``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable

import pyarrow as pa
import pyarrow.compute as pc
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from . import pit, pit_hash, pit_lateral, timestamps
from .definition import closest
from .errors import DefinitionError, UsageError, WarehouseValueError
from .registry import Feature, FeatureView, Registry
from .warehouse import Relation
from .types import arrow_logical, logical_type
from .spine import (
    ARROW_TYPES,
    ManifestRelations,
    ModelSpine,
    SpineRelations,
    arrow_kind,
    check_spine,
    choose_timestamp,
    narrow_spine,
    resolve_spine,
)
from .warehouse import Warehouse

log = logging.getLogger(__name__)
INLINED = "__dbt_features_model_"
"""Prefix of the CTE that stands for an ephemeral feature view (it has no relation)."""
READ_HERE = {"duckdb"}
"""Dialects where a spine model is read into Arrow and joined view by view, as a Python spine
is, rather than in the single statement that ``sql`` prints: each view's query then takes the
form that pays for it (``_matching``), and the single statement holds every view's join state
until it ends (measured on DuckDB, 1M spine rows x 10M rows per view, 3 views: 5.8 GB peak RSS
against 3.0 GB view by view; 1.35-1.53x the raw joins' time against 1.25x). Reading the spine
costs a scan of it, local here."""
SORTED_HERE = {"spark"}
"""Dialects whose training queries this path runs unordered and sorts in Arrow, by the sort key
the query returns first (``pit.point_in_time_query``; Arrow's sort is stable, NULL last, as
the SQL's ``ORDER BY``): there the SQL sorts the whole result in one task (``pit_carry.
SORT_HINTS``), here it takes milliseconds. On Spark local mode (2 cores) the one task was
within the noise of the whole query (1M spine rows x 10M view rows: 8-16 s either way); on
a cluster it is one executor sorting while the others wait."""


def plan(registry: Registry, features: Iterable[str] | str, *,
         full_feature_names: bool = False) -> list[pit.ViewJoin]:
    """Resolve feature references into one join per view, with the output column names.

    Raises on unknown names (with the closest name), views without a timestamp, and the same
    feature name from two views unless ``full_feature_names`` (then ``view__feature``)."""
    refs = parse_features(features)
    by_view: dict[str, list[Feature]] = {}
    views: dict[str, FeatureView] = {}
    for view, feature in registry.resolve(refs):
        timestamps.view_timestamp_kind(view, registry.dialect)
        views[view.name] = view
        by_view.setdefault(view.name, []).append(feature)
    seen: dict[str, str] = {}
    joins = []
    for name, chosen in by_view.items():
        outputs = []
        for feature in chosen:
            out = f"{name}__{feature.name}" if full_feature_names else feature.name
            if out in seen and full_feature_names:
                raise UsageError(
                    f"features {seen[out]} and {name}:{feature.name} would both be column "
                    f"{out!r} with --full-feature-names (full_feature_names=True); request only "
                    "one of them, or rename one of the columns in its model."
                )
            if out in seen:
                raise UsageError(
                    f"feature {feature.name!r} is requested from both "
                    f"{seen[out].partition(':')[0]} and {name}; pass --full-feature-names "
                    "(full_feature_names=True) to name the columns view__feature, or request "
                    "only one of them."
                )
            seen[out] = f"{name}:{feature.name}"
            outputs.append((feature.name, out))
        joins.append(pit.ViewJoin(views[name], tuple(outputs)))
    return joins


def training_query(spine: pit.Spine, joins: list[pit.ViewJoin], dialect: str, *,
                   source_dialect: str, **options: Any) -> exp.Select:
    """``pit.point_in_time_query``, with each ephemeral view's compiled SQL (written in
    ``source_dialect``, the target's) inlined as a CTE in place of the relation it lacks."""
    inlined: list[exp.CTE] = []
    planned = []
    for join in joins:
        view = join.view
        if view.materialized == "ephemeral":
            name = INLINED + view.name
            compiled = compiled_query(view, source_dialect, "materialize it as a table or view")
            inlined.append(exp.CTE(this=compiled,
                                   alias=exp.TableAlias(this=exp.to_identifier(name, quoted=True))))
            view = replace(view, relation=Relation(None, None, name))
        planned.append(replace(join, view=view))
    query = pit.point_in_time_query(spine, planned, dialect, **options)
    if inlined:
        existing = query.args.get("with_")
        query.set("with_", exp.With(expressions=[*inlined, *(existing.expressions if existing else [])]))
    return query


def compiled_query(view: FeatureView, dialect: str, remedy: str) -> exp.Query:
    """The model's compiled SQL (what `dbt run` executes) as a query tree, to inline where the
    model has no relation (ephemeral) or its SQL is wanted (`sync --from-sql`); ``remedy``
    says what else the user can do."""
    where = f"model {view.name} ({view.file})"
    if not view.compiled_sql:
        raise DefinitionError(
            f"{where} has no compiled SQL in the manifest: run `dbt compile --select "
            f"{view.name}`, or {remedy}."
        )
    try:
        parsed = sqlglot.parse_one(view.compiled_sql, read=dialect)
    except ParseError as exc:
        raise DefinitionError(
            f"{where}: its compiled SQL cannot be parsed as {dialect} to inline it "
            f"({str(exc).splitlines()[0]}); {remedy}."
        ) from exc
    if not isinstance(parsed, exp.Query):
        raise DefinitionError(f"{where}: its compiled SQL is not a query.")
    return parsed


def parse_features(features: Iterable[str] | str) -> list[str]:
    """``a:b,c:d`` and/or a list of references (each may itself hold commas)."""
    items = [features] if isinstance(features, str) else list(features)
    refs = [part.strip() for item in items for part in str(item).split(",") if part.strip()]
    if not refs:
        raise UsageError("no features requested: pass --features view:feature[,view:*...].")
    return refs


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
    as_known_at: bool = False,
) -> pa.Table:
    """Point-in-time training set as an Arrow table: spine columns, then the features.
    ``as_known_at``: only rows created by the spine time count (``pit.point_in_time_query``)."""
    joins = plan(registry, features, full_feature_names=full_feature_names)
    source = resolve_spine(spine, relations)
    with warehouse() as wh:
        if isinstance(source, ModelSpine) and wh.dialect not in READ_HERE:
            return _model_spine_set(wh, source, joins, spine_timestamp, as_known_at)
        if isinstance(source, ModelSpine):
            where = f"spine model {source.name} ({source.relation})"
            source = _read_model_spine(wh, source, where)
        elif isinstance(spine, (str, os.PathLike)):
            where = f"spine {os.fspath(spine)}"
        else:
            where = "the spine"
        return _arrow_spine_set(wh, source, joins, where, spine_timestamp, as_known_at)


def _arrow_spine_set(wh: Warehouse, source: pa.Table, joins: list[pit.ViewJoin], where: str,
                     spine_timestamp: str | None, as_known_at: bool) -> pa.Table:
    kinds = {f.name: arrow_kind(f.type) for f in source.schema}
    ts = choose_timestamp(kinds, spine_timestamp, where)
    check_spine(joins, {f.name: arrow_logical(f.type) for f in source.schema}, where,
                source.column_names)
    narrow = narrow_spine(source, joins, ts, where)
    result = source
    with wh.spine(narrow) as table:
        spine_sql = pit.Spine(table=table, columns=(), timestamp=ts,
                              timestamp_kind=timestamps.NAIVE, row_id=pit.ROW)
        # One query per view (measured: chaining views in one query costs more, as each
        # step carries the previous features through its joins); each returns its
        # features in spine order, put next to the spine's own columns.
        for join in joins:
            log.info("Joining %s spine rows with %s ...", f"{source.num_rows:,}", join.view.name)
            found = _features_of(wh, spine_sql, join, source.num_rows, as_known_at)
            for feature, out in join.outputs:
                result = result.append_column(out, _typed(found.column(out), join.view, feature))
            del found
    return result


def _read_model_spine(wh: Warehouse, spine: ModelSpine, where: str) -> pa.Table:
    """A spine model's rows, in the order the single statement would number them (a scan)."""
    if wh.describe(spine.relation) is None:
        raise UsageError(
            f"{where} is not in the warehouse: build it with `dbt run --select {spine.name}`."
        )
    try:
        return wh.arrow(exp.select(exp.Star()).from_(pit.relation_table(spine.relation))
                        .sql(wh.dialect))
    except WarehouseValueError as exc:
        raise WarehouseValueError(f"{where}: {exc.message}", columns=exc.columns) from exc


def _features_of(wh: Warehouse, spine: pit.Spine, join: pit.ViewJoin, n: int,
                 as_known_at: bool) -> pa.Table:
    """One view's features for an uploaded spine, in spine order.

    Measured on DuckDB: the query without its tie-break is faster, and exact whenever it
    returns one row per spine row (no matched time holds two rows); otherwise it is run again
    with the tie-break."""
    here = wh.dialect in SORTED_HERE
    matching = _matching(wh, spine, join, n, as_known_at)
    query = training_query(spine, [join], wh.dialect, source_dialect=wh.dialect, tie_break=False,
                           as_known_at=as_known_at, ordered=not here, matching=matching)
    found = _fetch(wh, pit.to_sql(query, wh.dialect), [join], here)
    if found.num_rows != n:
        query = training_query(spine, [join], wh.dialect, source_dialect=wh.dialect,
                               as_known_at=as_known_at, ordered=not here, matching=matching)
        found = _fetch(wh, pit.to_sql(query, wh.dialect), [join], here)
    if found.num_rows != n:  # pragma: no cover - would be a bug of ours
        raise AssertionError(f"{found.num_rows} feature rows for {n} spine rows")
    return found


def _matching(wh: Warehouse, spine: pit.Spine, join: pit.ViewJoin, n: int,
              as_known_at: bool) -> str:
    """The form of one view's query (``pit.point_in_time_query``): a hash join on DuckDB where
    the candidate pairs are few (``pit_hash``), a ``LATERAL`` top-1 on PostgreSQL where an
    index serves it (``pit_lateral``), else the dialect's own."""
    known = as_known_at and join.view.created_timestamp is not None
    if not known and pit_hash.pays(wh, spine, join, n):
        return "hash"
    return "lateral" if pit_lateral.pays(wh, join) else "range"


def _fetch(wh: Warehouse, sql: str, joins: list[pit.ViewJoin], unordered: bool = False) -> pa.Table:
    """Run a training query (``unordered``: sorted here, see ``SORTED_HERE``); a value the
    warehouse cannot hand over names its feature view."""
    try:
        found = wh.arrow(sql)
    except WarehouseValueError as exc:
        views = [j.view for j in joins if any(out in exc.columns for _, out in j.outputs)]
        if not views:
            raise
        where = ", ".join(f"feature view {v.name} ({v.file})" for v in views)
        raise WarehouseValueError(f"{where}: {exc.message}", columns=exc.columns) from exc
    if not unordered:
        return found
    return found.remove_column(0).take(pc.sort_indices(found.column(0)))


def _model_spine_set(wh: Warehouse, spine: ModelSpine, joins: list[pit.ViewJoin],
                     spine_timestamp: str | None, as_known_at: bool) -> pa.Table:
    columns = wh.describe(spine.relation)
    here = wh.dialect in SORTED_HERE
    # Each view by LATERAL where an index serves it, as the Python path reads it (pit_lateral).
    matching = tuple("lateral" if pit_lateral.pays(wh, join) else "range" for join in joins)
    sql = training_query_sql(spine, columns, joins, wh.dialect, spine_timestamp,
                             as_known_at=as_known_at, ordered=not here, matching=matching)
    found = _fetch(wh, sql, joins, here)
    for join in joins:
        for feature, out in join.outputs:
            index = found.column_names.index(out)
            found = found.set_column(index, out, _typed(found.column(out), join.view, feature))
    return found


def training_sql(
    registry: Registry,
    warehouse: Callable[[], Warehouse],
    relations: ManifestRelations,
    spine: str,
    features: Iterable[str] | str,
    *,
    dialect: str | None = None,
    spine_timestamp: str | None = None,
    full_feature_names: bool = False,
    pretty: bool = True,
    as_known_at: bool = False,
) -> str:
    """The single-statement training-set SQL for a spine that is a dbt model or source."""
    dialect = dialect or registry.dialect
    pit.quirks_for(dialect)
    joins = plan(registry, features, full_feature_names=full_feature_names)
    relation = relations(spine)
    if relation is None:
        raise UsageError(
            f"--spine {spine!r} is not a dbt model or source of this project"
            f"{closest(spine, relations.names())}; `sql` needs a spine in the warehouse "
            "(a model name or source_name.table)."
        )
    with warehouse() as wh:
        columns = wh.describe(relation)
    return training_query_sql(ModelSpine(spine, relation), columns, joins, dialect,
                              spine_timestamp, pretty=pretty, source_dialect=registry.dialect,
                              as_known_at=as_known_at)


def training_query_sql(spine: ModelSpine, columns: dict[str, str] | None,
                       joins: list[pit.ViewJoin], dialect: str,
                       spine_timestamp: str | None, *, pretty: bool = False,
                       source_dialect: str | None = None, as_known_at: bool = False,
                       ordered: bool = True, matching: str | tuple[str, ...] = "range") -> str:
    """The SQL of a training set whose spine is a relation (what ``dbt-features sql`` prints);
    ``source_dialect``: the target's, in which ephemeral views' compiled SQL is written;
    ``ordered=False``: unsorted, the sort key first; ``matching``: each view's form (both
    ``pit.point_in_time_query``)."""
    where = f"spine model {spine.name} ({spine.relation})"
    if columns is None:
        raise UsageError(
            f"{where} is not in the warehouse: build it with `dbt run --select {spine.name}`."
        )
    kinds = {name: timestamps.timestamp_kind(data_type, dialect) for name, data_type in columns.items()}
    ts = choose_timestamp(kinds, spine_timestamp, where)
    if kinds[ts] is None:
        raise UsageError(
            f"{where}: spine timestamp column {ts!r} is {columns[ts]}, not a timestamp or "
            "date; cast it in the model, or name another column with --spine-timestamp."
        )
    check_spine(joins, {n: logical_type(t, dialect) for n, t in columns.items()}, where, columns)
    query = training_query(
        pit.Spine(table=pit.relation_table(spine.relation), columns=tuple(columns), timestamp=ts,
                  timestamp_kind=kinds[ts]),
        joins, dialect, source_dialect=source_dialect or dialect, as_known_at=as_known_at,
        ordered=ordered, matching=matching,
    )
    return pit.to_sql(query, dialect, pretty=pretty)


def _typed(column: pa.ChunkedArray, view: FeatureView, feature_name: str) -> pa.ChunkedArray:
    """Every warehouse returns a feature in the Arrow type of its logical type."""
    feature = view.feature(feature_name)
    target = ARROW_TYPES[feature.dtype]
    if feature.dtype == "timestamp" and timestamps.timestamp_kind(feature.data_type, "duckdb") == timestamps.TZ:
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
