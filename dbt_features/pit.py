"""Point-in-time joins, built once as sqlglot expression trees and rendered for each dialect.

For every spine row and every requested feature view, the query picks the view's row with the
same entity key and the latest event timestamp ``<=`` the spine timestamp (and ``>=`` the spine
timestamp minus the view's ttl). Ties on the event timestamp go to the greatest
``created_timestamp`` (NULL counts as the lowest), then to the greatest feature values, compared
one by one in the view's declared feature order (NULL lowest, strings by code point): two rows
that still tie are identical in every returned column, so the pick can never be arbitrary.
With ``as_known_at`` a row must also have been created by the spine time (``pit_known``).

Each view is joined to the spine on its own, in a CTE of that view's features per spine row;
the final select joins those CTEs to the spine and returns its rows in its order. Per view, as
measured on DuckDB (see tests/benchmarks and docs/design.md):

* DuckDB (``pit_asof``): an ``ASOF LEFT JOIN`` on the keys and timestamps alone finds the
  matched timestamp (among the view rows within the spine's times, less the ttl:
  ``spine_span``; or, for the Python path where few view rows share a key, a hash join:
  ``pit_hash``), an equi-join fetches the view's rows at that timestamp, and ``QUALIFY
  ROW_NUMBER()`` breaks ties, only when some matched timestamp held several rows (more rows
  fetched than spine rows).
* Every other dialect: ``LEFT JOIN`` on the keys and the time window, then ``ROW_NUMBER()`` in
  a subquery (portable to PostgreSQL, Snowflake, BigQuery, Spark and Trino alike).
* Spark (``Quirks.carry_forward``, measured on Spark) unless ``as_known_at``: one sort of spine
  and view rows per entity carries each view's latest row forward, views chained (``pit_carry``).

The spine is numbered (``ROW_NUMBER() OVER ()``) in a CTE that every view reads. Where the
dialect computes a ``MATERIALIZED`` CTE once (DuckDB, PostgreSQL) the views are keyed by that
number. Elsewhere a CTE may be evaluated once per reader, numbering the rows differently each
time: there each view is keyed by its join keys and the spine time (all its features depend
on), and only the final select's numbers count. Timestamps are compared as naive UTC:
time-zone-aware columns are converted to UTC, dates become midnight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from sqlglot import exp

from .errors import UsageError
from .registry import FeatureView
from .relation import Relation
from .pit_known import known_at
from .timestamps import utc, view_timestamp_kind

PREFIX = "__dbt_features_"
ROW = PREFIX + "row"
TS = PREFIX + "ts"
MATCH = PREFIX + "match"
RN = PREFIX + "rn"

@dataclass(frozen=True)
class Quirks:
    """What differs between dialects, and nothing else."""

    asof: bool = False  # has ASOF LEFT JOIN (DuckDB only: sqlglot passes it through elsewhere)
    string_collation: str | None = None  # collation making string order byte order
    ordered_row_number: bool = False  # ROW_NUMBER() needs an ORDER BY in its window
    numeric_interval: bool = False  # INTERVAL 60 SECOND (BigQuery), not INTERVAL '60' SECOND
    materialized_cte: bool = False  # WITH x AS MATERIALIZED: computed once, however often read
    carry_forward: bool = False  # a sort per entity beats a range join (``pit_carry``)


QUIRKS: dict[str, Quirks] = {
    "duckdb": Quirks(asof=True, materialized_cte=True),
    "postgres": Quirks(string_collation="C", materialized_cte=True),
    "snowflake": Quirks(ordered_row_number=True),
    "bigquery": Quirks(numeric_interval=True),
    "spark": Quirks(ordered_row_number=True, carry_forward=True),
    "trino": Quirks(),
}
DIALECTS = tuple(QUIRKS)


@dataclass(frozen=True)
class Spine:
    """The rows to label with features, as a relation in the warehouse.

    ``columns`` are returned in front of the features, in order. ``row_id`` names a column
    already numbering the rows (an uploaded spine); without it rows are numbered in the query.
    """

    table: exp.Expression
    columns: tuple[str, ...]
    timestamp: str
    timestamp_kind: str
    row_id: str | None = None


@dataclass(frozen=True)
class ViewJoin:
    """One feature view and the features wanted from it, as (feature, output column) pairs."""

    view: FeatureView
    outputs: tuple[tuple[str, str], ...]


def point_in_time_query(spine: Spine, joins: Sequence[ViewJoin], dialect: str, *,
                        tie_break: bool = True, ordered: bool = True,
                        as_known_at: bool = False,
                        matching: str | Sequence[str] = "range") -> exp.Select:
    """The whole training-set query: spine columns, then each requested feature, in spine order.

    ``as_known_at``: a row of a view with a ``created_timestamp`` is a candidate only if it was
    created at or before the spine time (NULL: known since its event time; see ``pit_known``).

    For the Python path on DuckDB (measured faster; same result): ``tie_break=False`` leaves
    out the ``QUALIFY`` of the ASOF shape, so a spine row whose matched time holds several rows
    comes back several times (the caller sees more rows than spine rows and runs the query
    again with it). ``ordered=False`` returns the rows unsorted, their sort key first: the row
    number (or, in the carry-forward form, maybe the spine time: ``pit_carry``).
    ``matching``: ``"range"``, each dialect's form above; ``"hash"`` on DuckDB, each view's
    times matched by a hash join, not ASOF (``pit_hash``); ``"lateral"`` on PostgreSQL, each
    view's row by a ``LATERAL`` top-1 (``pit_lateral``); or one of these per join. The same
    result either way."""
    quirks = quirks_for(dialect)
    known_any = as_known_at and any(j.view.created_timestamp is not None for j in joins)
    if quirks.carry_forward and not known_any:  # as known at: a condition on each row pair
        from .pit_carry import carry_forward_query  # built of this module's pieces

        return carry_forward_query(spine, joins, dialect, ordered=ordered)
    keys = [k.name for j in joins for k in j.view.entity.join_keys]
    carried = list(dict.fromkeys([*spine.columns, *keys]))
    numbered_here = spine.row_id is None
    # Keyed by row number only where every reader of the spine CTE sees the same numbers (see
    # the module docstring); otherwise by what a view's features depend on: keys and time.
    by_row = not numbered_here or quirks.materialized_cte
    spine_cte = exp.CTE(this=_spine_select(spine, carried, quirks, dialect), alias=_alias("spine"),
                        materialized=True if numbered_here and quirks.materialized_cte else None)
    ctes = [spine_cte]
    bys = []
    forms = [matching] * len(joins) if isinstance(matching, str) else list(matching)
    for index, (join, form) in enumerate(zip(joins, forms, strict=True), start=1):
        by = [ROW] if by_row else [*(k.name for k in join.view.entity.join_keys), TS]
        known = as_known_at and join.view.created_timestamp is not None
        if quirks.asof:
            from .pit_asof import asof_ctes  # built of this module's pieces

            ctes += asof_ctes(index, by, join, dialect, quirks, tie_break, known,
                              form == "hash" and not known)
        elif form == "lateral":
            from .pit_lateral import lateral_step  # built of this module's pieces

            ctes.append(exp.CTE(this=lateral_step(by, join, dialect, quirks, known),
                                alias=_alias(f"view_{index}")))
        else:
            ctes.append(exp.CTE(this=_window_step(by, join, dialect, quirks, known),
                                alias=_alias(f"view_{index}")))
        bys.append(by)
    query = _collect(spine, joins, bys, ordered)
    query.set("with_", exp.With(expressions=ctes))
    return query


def _collect(spine: Spine, joins: Sequence[ViewJoin], bys: list[list[str]],
             ordered: bool) -> exp.Select:
    """The spine's columns and every view's features side by side, joined on each view's key.

    With no spine column to return and one view keyed by row number (the Python path), that
    view's CTE already holds every spine row: it is read alone, saving a join."""
    outputs = [(out, f"view_{i}") for i, j in enumerate(joins, start=1) for _, out in j.outputs]
    row_source = "view_1" if not spine.columns and bys == [[ROW]] else "spine"
    columns = [] if ordered else [(ROW, row_source)]
    columns += [(c, "spine") for c in spine.columns] + outputs
    query = exp.select(*(_col(name, table) for name, table in columns)).from_(_table(row_source))
    if row_source == "spine":
        for index, by in enumerate(bys, start=1):
            on = [exp.EQ(this=_col(c, "spine"), expression=_col(c, f"view_{index}")) for c in by]
            query = query.join(_table(f"view_{index}"), on=exp.and_(*on), join_type="LEFT")
    return query.order_by(_col(ROW, row_source)) if ordered else query


def quirks_for(dialect: str) -> Quirks:
    if dialect not in QUIRKS:
        raise UsageError(
            f"--dialect {dialect!r} is not supported; choose one of: {', '.join(DIALECTS)}."
        )
    return QUIRKS[dialect]


def to_sql(query: exp.Expression, dialect: str, *, pretty: bool = False) -> str:
    """Render for ``dialect``; refuses a DuckDB-only ASOF join anywhere else."""
    quirks_for(dialect)
    if dialect != "duckdb" and any(
        str(j.args.get("method") or "").upper() == "ASOF" for j in query.find_all(exp.Join)
    ):
        raise AssertionError(f"an ASOF join cannot be rendered for {dialect}")  # a bug of ours
    return query.sql(dialect=dialect, pretty=pretty, identify=True, copy=False)


# -- the pieces --------------------------------------------------------------------------------


def _spine_select(spine: Spine, carried: list[str], quirks: Quirks, dialect: str) -> exp.Select:
    ts = exp.column(spine.timestamp, quoted=True)
    if spine.row_id is not None:
        row: exp.Expression = exp.column(spine.row_id, quoted=True)
    else:
        order = exp.Order(expressions=[exp.Ordered(this=ts.copy())]) if quirks.ordered_row_number else None
        row = exp.Window(this=exp.RowNumber(), order=order)
    return exp.select(
        *(exp.column(c, quoted=True) for c in carried),
        exp.alias_(row, ROW, quoted=True),
        exp.alias_(utc(ts.copy(), spine.timestamp_kind, dialect), TS, quoted=True),
    ).from_(spine.table.copy())


def spine_span(view: FeatureView, event: exp.Expression, quirks: Quirks) -> list[exp.Expression]:
    """The view rows any spine row can match: event time at most the latest spine time and,
    with a ttl, at least the earliest spine time minus the ttl. Every form reads only those (a
    spine of last month against years of history sorts, joins or carries last month's rows); a
    row outside would be matched by no spine row, or be too old for every one (the result is
    NULL alike)."""
    spine_ts = _col(TS, "spine")
    latest = exp.select(exp.Max(this=spine_ts)).from_(_table("spine")).subquery()
    span = [exp.LTE(this=event, expression=latest)]
    if view.ttl_seconds:
        earliest = exp.select(exp.Min(this=spine_ts.copy())).from_(_table("spine")).subquery()
        span.append(exp.GTE(this=event.copy(), expression=exp.Sub(
            this=earliest, expression=_ttl_interval(view, quirks))))
    return span


def span_rows(view: FeatureView, dialect: str) -> exp.Select:
    """The view's keys and event time (as ``TS``, naive UTC) of the rows within the spine's
    span (``spine_span``): what a form matching on keys and time alone reads."""
    event = utc(exp.column(view.timestamp.name, quoted=True), view_timestamp_kind(view, dialect),
                dialect)
    return exp.select(
        *(exp.column(k.name, quoted=True) for k in view.entity.join_keys),
        exp.alias_(event, TS, quoted=True),
    ).from_(view_table(view)).where(exp.and_(*spine_span(view, event.copy(), quirks_for(dialect))))


def in_window(view: FeatureView, dialect: str, quirks: Quirks, table: str, known: bool,
              event: exp.Expression | None = None) -> tuple[exp.Expression, list[exp.Expression]]:
    """A view row (``table``) in spine row ``p``'s window: its event time (UTC; ``event`` where
    the row already carries it, as ``span_rows`` does) and the conditions: the keys equal, the
    event time at most the spine time and, with a ttl, at least the spine time less the ttl;
    ``known``: created by the spine time (``pit_known``)."""
    if event is None:
        event = utc(_col(view.timestamp.name, table), view_timestamp_kind(view, dialect), dialect)
    conditions = _keys_equal(view, "p", table) + [exp.LTE(this=event, expression=_col(TS, "p"))]
    if view.ttl_seconds:
        conditions.append(_within_ttl(event.copy(), view, quirks))
    if known:
        conditions.append(known_at(view, dialect, table, _col(TS, "p")))
    return event, conditions


def _window_step(by: list[str], join: ViewJoin, dialect: str, quirks: Quirks,
                 known: bool = False) -> exp.Select:
    """Portable: join every row in the time window (``known``: and known at the spine time),
    keep the first by the documented order."""
    view = join.view
    f_ts, on = in_window(view, dialect, quirks, "f", known)
    on += spine_span(view, f_ts.copy(), quirks)
    rank = exp.Window(this=exp.RowNumber(), partition_by=[_col(c, "p") for c in by],
                      order=exp.Order(expressions=recency_order(view, dialect, "f")))
    inner = (
        exp.select(
            *(_col(c, "p") for c in by),
            *(exp.alias_(_col(feature, "f"), out, quoted=True) for feature, out in join.outputs),
            exp.alias_(rank, RN, quoted=True),
        )
        .from_(exp.alias_(_table("spine"), "p", quoted=True))
        .join(exp.alias_(view_table(view), "f", quoted=True), on=exp.and_(*on), join_type="LEFT")
    )
    names = [*by, *(out for _, out in join.outputs)]
    return (
        exp.select(*(_col(c, "r") for c in names))
        .from_(exp.alias_(inner.subquery(), "r", quoted=True))
        .where(exp.EQ(this=_col(RN, "r"), expression=exp.Literal.number(1)))
    )


def recency_order(view: FeatureView, dialect: str, table: str | None = None) -> list[exp.Ordered]:
    """The one total order of a view's rows that decides which row is "the latest": greatest
    event time, then greatest created time (NULL lowest), then greatest feature values in
    declared order (NULL lowest, strings by code point). Training sets (every dialect, the dbt
    macro) and the online sync rank with it, so both sides pick the same row."""
    assert view.timestamp is not None
    event = utc(_col(view.timestamp.name, table), view_timestamp_kind(view, dialect), dialect)
    quirks = QUIRKS.get(dialect, Quirks())
    return [exp.Ordered(this=event, desc=True, nulls_first=False), *_tie_break(view, quirks, table)]


def _tie_break(view: FeatureView, quirks: Quirks, table: str | None = "f",
               names: dict[str, str] | None = None) -> list[exp.Ordered]:
    """Greatest created_timestamp, then greatest feature values (declared order); NULL lowest.
    ``names``: what the view's columns are called in ``table``, when renamed."""
    names = names or {}
    order: list[exp.Ordered] = []
    if view.created_timestamp is not None:
        created = view.created_timestamp.name
        order.append(exp.Ordered(this=_col(names.get(created, created), table), desc=True,
                                 nulls_first=False))
    for feature in view.features:
        value: exp.Expression = _col(names.get(feature.name, feature.name), table)
        if feature.dtype == "string" and quirks.string_collation:
            value = exp.Collate(this=value, expression=exp.Identifier(
                this=quirks.string_collation, quoted=True))
        order.append(exp.Ordered(this=value, desc=True, nulls_first=False))
    return order


def _within_ttl(feature_ts: exp.Expression, view: FeatureView, quirks: Quirks) -> exp.Expression:
    """feature time >= spine time - ttl (inclusive)."""
    return exp.GTE(this=feature_ts, expression=exp.Sub(this=_col(TS, "p"),
                                                       expression=_ttl_interval(view, quirks)))


def _ttl_interval(view: FeatureView, quirks: Quirks) -> exp.Interval:
    seconds = int(view.ttl_seconds or 0)
    amount = exp.Literal.number(seconds) if quirks.numeric_interval else exp.Literal.string(str(seconds))
    return exp.Interval(this=amount, unit=exp.Var(this="SECOND"))


def _keys_equal(view: FeatureView, left: str, right: str) -> list[exp.Expression]:
    return [exp.EQ(this=_col(k.name, left), expression=_col(k.name, right))
            for k in view.entity.join_keys]


def view_table(view: FeatureView) -> exp.Table:
    """The view's relation, as the manifest names it, every part quoted."""
    return relation_table(view.relation)


def relation_table(relation: Relation) -> exp.Table:
    """A relation as a table expression, every part quoted."""
    parts = relation.parts()
    return exp.table_(
        _ident(parts[-1]),
        db=_ident(parts[-2]) if len(parts) > 1 else None,
        catalog=_ident(parts[-3]) if len(parts) > 2 else None,
    )


def _ident(name: str) -> exp.Identifier:
    return exp.Identifier(this=name, quoted=True)


def _alias(name: str) -> exp.TableAlias:
    """The alias of one of our CTEs, by short name."""
    return exp.TableAlias(this=_ident(PREFIX + name))


def _table(name: str) -> exp.Table:
    return exp.table_(_ident(PREFIX + name if not name.startswith(PREFIX) else name))


def _col(name: str, table: str | None) -> exp.Column:
    """A quoted column of a one-letter alias (p, f, m, r), of one of our CTEs (by short name),
    or of no table at all."""
    if table is not None and len(table) > 1 and not table.startswith(PREFIX):
        table = PREFIX + table
    return exp.column(name, table=table, quoted=True)
