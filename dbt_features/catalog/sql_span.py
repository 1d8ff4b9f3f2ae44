"""Where a feature is computed in its model's compiled SQL: the character spans of its
projection in the outermost ``select``, and of the named windows that projection uses.

Token positions come from sqlglot's tokenizer, so the spans point into the SQL exactly as dbt
compiled it (comments, formatting and case kept) and no parse of the whole query is needed:
a model sqlglot cannot parse still shows, with nothing marked.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
from sqlglot.errors import SqlglotError
from sqlglot.tokens import Token, TokenType

_NAMES = (TokenType.VAR, TokenType.IDENTIFIER)
_CLAUSE_END = {TokenType.FROM, TokenType.WHERE, TokenType.GROUP_BY, TokenType.ORDER_BY,
               TokenType.LIMIT, TokenType.WINDOW, TokenType.UNION, TokenType.HAVING,
               TokenType.QUALIFY, TokenType.SEMICOLON}


@dataclass(frozen=True)
class Span:
    """Characters ``start`` to ``end`` (exclusive) of the SQL text."""

    start: int
    end: int


@dataclass(frozen=True)
class Projection:
    """One column of the outermost ``select``: its output name and where it is computed."""

    name: str
    spans: tuple[Span, ...]


def locate_projections(sql: str, dialect: str | None) -> dict[str, Projection]:
    """Each output column of the query's outermost ``select`` by lower-cased name, with the
    spans computing it (its projection, and the ``window`` definitions it names). Empty when
    the SQL does not tokenize or has no outermost ``select`` (e.g. ``select *``)."""
    try:
        tokens = sqlglot.Dialect.get_or_raise(dialect).tokenize(sql)
    except (SqlglotError, ValueError):
        return {}
    depths = _depths(tokens)
    selects = [i for i, t in enumerate(tokens)
               if t.token_type == TokenType.SELECT and depths[i] == 0]
    if not selects:
        return {}
    start = selects[-1] + 1
    end = next((i for i in range(start, len(tokens))
                if depths[i] == 0 and tokens[i].token_type in _CLAUSE_END), len(tokens))
    windows = _windows(tokens, depths, end)
    found: dict[str, Projection] = {}
    for part in _split(tokens, depths, start, end):
        name = _output_name(part)
        if name is None:
            continue
        spans = [Span(part[0].start, part[-1].end + 1)]
        spans += [windows[w] for w in _windows_used(part) if w in windows]
        found.setdefault(name.lower(), Projection(name, tuple(spans)))
    return found


def _depths(tokens: list[Token]) -> list[int]:
    depths, depth = [], 0
    for token in tokens:
        if token.token_type == TokenType.R_PAREN:
            depth -= 1
        depths.append(depth)
        if token.token_type == TokenType.L_PAREN:
            depth += 1
    return depths


def _split(tokens: list[Token], depths: list[int], start: int, end: int) -> list[list[Token]]:
    parts: list[list[Token]] = [[]]
    for i in range(start, end):
        if depths[i] == 0 and tokens[i].token_type == TokenType.COMMA:
            parts.append([])
        else:
            parts[-1].append(tokens[i])
    return [p for p in parts if p]


def _output_name(part: list[Token]) -> str | None:
    last = part[-1]
    if last.token_type not in _NAMES and not last.text.isidentifier():
        return None
    if len(part) == 1 or part[-2].token_type in (TokenType.ALIAS, TokenType.DOT):
        return last.text
    # An alias without AS (``expr name``) follows an expression's last token.
    previous = part[-2]
    if previous.token_type in (*_NAMES, TokenType.R_PAREN, TokenType.NUMBER, TokenType.STRING):
        return last.text
    return None


def _windows_used(part: list[Token]) -> list[str]:
    return [part[i + 1].text.lower() for i in range(len(part) - 1)
            if part[i].token_type == TokenType.OVER and part[i + 1].token_type in _NAMES]


def _windows(tokens: list[Token], depths: list[int], end: int) -> dict[str, Span]:
    """The ``window name as (...)`` definitions of the outermost select, by lower-cased name."""
    if end >= len(tokens) or tokens[end].token_type != TokenType.WINDOW:
        window_at = next((i for i in range(end, len(tokens)) if depths[i] == 0
                          and tokens[i].token_type == TokenType.WINDOW), None)
        if window_at is None:
            return {}
        end = window_at
    found: dict[str, Span] = {}
    i = end + 1
    while i + 2 < len(tokens) and tokens[i].token_type in _NAMES \
            and tokens[i + 1].token_type == TokenType.ALIAS \
            and tokens[i + 2].token_type == TokenType.L_PAREN:
        close = next((j for j in range(i + 3, len(tokens))
                      if depths[j] == depths[i] and tokens[j].token_type == TokenType.R_PAREN),
                     None)
        if close is None:
            break
        found[tokens[i].text.lower()] = Span(tokens[i].start, tokens[close].end + 1)
        i = close + 1
        if i < len(tokens) and tokens[i].token_type == TokenType.COMMA:
            i += 1
    return found
