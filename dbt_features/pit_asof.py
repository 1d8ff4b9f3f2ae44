"""DuckDB's point-in-time form (``Quirks.asof``): per view, each spine row's matched event time
(an ``ASOF LEFT JOIN`` on the keys and times alone, or a hash join where few view rows share a
key: ``pit_hash``), an equi-join fetching the view's rows at that time, and ``QUALIFY
ROW_NUMBER()`` breaking ties only when a matched time held several rows (see ``pit``'s module
docstring and docs/design.md)."""

from __future__ import annotations

from sqlglot import exp

from .pit import (MATCH, PREFIX, QUIRKS, ROW, TS, Quirks, ViewJoin, _alias, _col, _keys_equal,
                  _table, _tie_break, _within_ttl, span_rows, view_table)
from .pit_hash import hash_match
from .pit_known import KNOWN, known_at, known_times
from .timestamps import utc, view_timestamp_kind


def asof_ctes(index: int, by: list[str], join: ViewJoin, dialect: str, quirks: Quirks,
              tie_break: bool, known: bool = False, hashed: bool = False) -> list[exp.CTE]:
    """DuckDB: match_N (the matched time of each spine row: by ASOF, or ``hashed`` by
    ``pit_hash``), fetch_N (the view's rows at that time; materialized, as it is read three
    times) and view_N (one row per spine row)."""
    match, fetch, view = (f"{name}_{index}" for name in ("match", "fetch", "view"))
    if hashed:
        matched = hash_match(by, join, dialect)
    else:
        matched = _asof_match(by, join, dialect, known)
    ctes = [exp.CTE(this=matched, alias=_alias(match))]
    if not tie_break:
        return [*ctes, exp.CTE(this=_asof_fetch(match, by, join, dialect, known=known),
                               alias=_alias(view))]
    ties = _tie_columns(join)
    return [*ctes,
            exp.CTE(this=_asof_fetch(match, by, join, dialect, ties, known), alias=_alias(fetch),
                    materialized=True),
            exp.CTE(this=_asof_rank(fetch, by, join, quirks, ties), alias=_alias(view))]


def _asof_fetch(match: str, by: list[str], join: ViewJoin, dialect: str,
                ties: dict[str, str] | None = None, known: bool = False) -> exp.Select:
    """DuckDB: the view's rows at the matched time (``known``: those known at the spine time),
    with the tie-break columns (``ties``: view column -> name here) not asked for."""
    view = join.view
    kind = view_timestamp_kind(view, dialect)
    f_ts = utc(_col(view.timestamp.name, "f"), kind, dialect)
    on = _keys_equal(view, "m", "f") + [exp.EQ(this=_col(MATCH, "m"), expression=f_ts)]
    if known:
        on.append(known_at(view, dialect, "f", _col(TS, "m")))
    outputs = dict(join.outputs)
    extra = [(column, name) for column, name in (ties or {}).items() if outputs.get(column) != name]
    return (
        exp.select(
            *(_col(c, "m") for c in by),
            *(exp.alias_(_col(column, "f"), name, quoted=True)
              for column, name in [*join.outputs, *extra]),
        )
        .from_(exp.alias_(_table(match), "m", quoted=True))
        .join(exp.alias_(view_table(view), "f", quoted=True), on=exp.and_(*on), join_type="LEFT")
    )


def _asof_rank(fetch: str, by: list[str], join: ViewJoin, quirks: Quirks,
               ties: dict[str, str]) -> exp.Query:
    """DuckDB: one row per spine row. A matched time holding several rows shows as more fetched
    rows than spine rows; without such ties the fetched rows are the result and the ranking (a
    window over every row: a third of the query's cost above the raw joins) is skipped. Keyed
    by join keys and time, the spine's duplicates share a key, so there it always ranks."""
    rank = exp.Window(this=exp.RowNumber(), partition_by=[_col(c, None) for c in by],
                      order=exp.Order(expressions=_tie_break(join.view, quirks, None, ties)))
    names = [*by, *(out for _, out in join.outputs)]
    kept = exp.select(*(_col(c, None) for c in names)).from_(_table(fetch))
    ranked = kept.qualify(exp.EQ(this=rank, expression=exp.Literal.number(1)))
    if by != [ROW]:
        return ranked
    fetched, spine = (exp.select(exp.Count(this=exp.Star())).from_(_table(cte)).subquery()
                      for cte in (fetch, "spine"))
    return exp.union(kept.where(exp.LTE(this=fetched, expression=spine)),
                     ranked.where(exp.GT(this=fetched.copy(), expression=spine.copy())),
                     distinct=False)


def _tie_columns(join: ViewJoin) -> dict[str, str]:
    """The tie-break's columns (created time, every feature) and their names once fetched: a
    requested feature's output name, otherwise an internal name."""
    view = join.view
    columns = [c.name for c in (view.created_timestamp,) if c is not None]
    columns += [f.name for f in view.features]
    outputs = dict(join.outputs)
    return {c: outputs.get(c, f"{PREFIX}tie_{i}") for i, c in enumerate(columns)}


def _asof_match(by: list[str], join: ViewJoin, dialect: str, known: bool) -> exp.Select:
    """DuckDB: the matched event time of each spine row (NULL when none, or older than ttl);
    ``known``: matched on rows' known times, carrying the spine time (see ``pit_known``)."""
    view = join.view
    keys = [k.name for k in view.entity.join_keys]
    narrow = (known_times(view, dialect, view_table(view), TS) if known
              else span_rows(view, dialect))
    on = _keys_equal(view, "p", "f") + [
        exp.GTE(this=_col(TS, "p"), expression=_col(KNOWN if known else TS, "f"))]
    matched: exp.Expression = _col(TS, "f")
    carried = [TS] if known else []  # the fetch checks created times against it
    if view.ttl_seconds:
        matched = exp.Case(
            ifs=[exp.If(this=_within_ttl(_col(TS, "f"), view, QUIRKS["duckdb"]),
                        true=_col(TS, "f"))]
        )
    return (
        exp.select(*(_col(c, "p") for c in dict.fromkeys([*by, *keys, *carried])),
                   exp.alias_(matched, MATCH, quoted=True))
        .from_(exp.alias_(_table("spine"), "p", quoted=True))
        .join(
            exp.alias_(narrow.subquery(), "f", quoted=True),
            on=exp.and_(*on),
            join_type="ASOF LEFT",
        )
    )
