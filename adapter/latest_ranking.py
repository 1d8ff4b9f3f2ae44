"""Which of an entity's rows at its latest event time a sync serves: the first by
``pit.recency_order``. One window ranks them all, or (``TIES_APART``) only the entities with
several such rows, the others' one row being theirs as it is."""

from __future__ import annotations

from sqlglot import exp

from dbt_features import pit
from dbt_features.registry import FeatureView

RANKED = "_dbt_features_latest"
AT_LATEST = "_dbt_features_at_latest"
TIED = "_dbt_features_tied"
TIED_FIRST = "_dbt_features_tied_first"

TIES_APART = {"duckdb"}
"""Dialects whose sync query ranks only the tied entities (``_ties_apart``): on DuckDB the rank
window over every entity cost about a fifth of the query (10M rows, 1M entities, 5 shards under
64 MB: 1.03-1.06 CPU-s against 1.22-1.26). Elsewhere one window ranks them all."""


def first_of_each(view: FeatureView, dialect: str, columns: list[str], source: exp.Expression,
                  condition: exp.Expression, rank_name: str) -> exp.Select:
    """``columns`` of the rows of ``source`` where ``condition``, the first of each entity's by
    the recency order. ``rank_name``: a column name none of the view's has."""
    if dialect in TIES_APART:
        return _ties_apart(view, dialect, columns, source, condition, rank_name)
    return _first_ranked(view, dialect, columns, source, condition, rank_name)


def _first_ranked(view: FeatureView, dialect: str, columns: list[str], source: exp.Expression,
                  condition: exp.Expression, rank_name: str) -> exp.Select:
    keys = [_col(k.name) for k in view.entity.join_keys]
    rank = exp.Window(this=exp.RowNumber(), partition_by=keys,
                      order=exp.Order(expressions=pit.recency_order(view, dialect)))
    inner = (exp.select(*map(_col, columns), exp.alias_(rank, rank_name, quoted=True))
             .from_(source).where(condition))
    return (
        exp.select(*map(_col, columns))
        .from_(inner.subquery(exp.to_identifier(RANKED, quoted=True)))
        .where(exp.EQ(this=_col(rank_name), expression=exp.Literal.number(1)))
    )


def _ties_apart(view: FeatureView, dialect: str, columns: list[str], source: exp.Expression,
                condition: exp.Expression, rank_name: str) -> exp.Select:
    """The rows of ``source`` where ``condition`` kept once (a materialized CTE), the entities
    with several of them (another), those entities' first rows (``_first_ranked``, a third);
    then the rows of the others as they are, and those. Every step that needs memory ends
    before the first row is returned: a pass that runs out of memory has returned nothing
    (``warehouse_read`` then reads its halves, and no row comes twice)."""
    names = list(view.entity.key_names)
    at_latest = exp.select(*map(_col, columns)).from_(source).where(condition)
    several = (exp.select(*(_col(k) for k in names)).from_(_table(AT_LATEST))
               .group_by(*(_col(k) for k in names))
               .having(exp.GT(this=exp.Count(this=exp.Star()), expression=exp.Literal.number(1))))
    same = [exp.EQ(this=exp.column(k, TIED, quoted=True), expression=exp.column(k, AT_LATEST, quoted=True))
            for k in names]
    tied = exp.Exists(this=exp.select(exp.Literal.number(1)).from_(_table(TIED)).where(exp.and_(*same)))
    alone = exp.select(*map(_col, columns)).from_(_table(AT_LATEST)).where(exp.Not(this=tied))
    ranked = _first_ranked(view, dialect, columns, _table(AT_LATEST), tied.copy(), rank_name)
    query = exp.union(alone, exp.select(*map(_col, columns)).from_(_table(TIED_FIRST)),
                      distinct=False)
    query.set("with_", exp.With(expressions=[
        exp.CTE(this=body, alias=exp.TableAlias(this=exp.to_identifier(name, quoted=True)),
                materialized=True)
        for name, body in ((AT_LATEST, at_latest), (TIED, several), (TIED_FIRST, ranked))]))
    return query


def _col(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


def _table(name: str) -> exp.Table:
    return exp.table_(exp.to_identifier(name, quoted=True))
