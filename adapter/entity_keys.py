"""Entity rows to entity keys: the join-key values of each row checked against the registry's
key types (a fast path for the common single integer or string key); a single key stays its
value, composite keys become their ``ENTITY`` text (``layout``). Where each lives (bucket and
field) depends on the generation read: ``read_plan.locator``."""

from __future__ import annotations

from operator import itemgetter
from typing import Any, Mapping

from dbt_features.errors import UsageError
from dbt_features.registry import FeatureView, is_unicode

from .layout import entity_suffix

KeySpec = tuple[tuple[str, str], ...]
"""A view's join keys as (name, logical type): views with the same spec share key suffixes."""


def fast_key(spec: KeySpec) -> tuple[Any, type] | None:
    """For a single key: ``itemgetter(name)`` and the Python type its values must have
    exactly (the fast path; anything else is checked one by one)."""
    if len(spec) != 1:
        return None
    name, dtype = spec[0]
    return itemgetter(name), int if dtype == "int64" else str


def key_values(spec: KeySpec, views: tuple[FeatureView, ...], fast: tuple[Any, type] | None,
               rows: tuple[Mapping[str, Any], ...]) -> list[Any]:
    """The entity key of every entity row for views joined on ``spec``, checking key types:
    the value of a single key (an ``int`` or a ``str``), the ``ENTITY`` text of composite
    keys."""
    if fast is not None:
        get, want = fast
        try:
            keys = list(map(get, rows))
        except (KeyError, TypeError, IndexError):
            keys = None
        if keys is not None and (not keys or set(map(type, keys)) == {want}):
            return keys
    if len(spec) == 1:
        name, dtype = spec[0]
        want = int if dtype == "int64" else str
        out = []
        for i, row in enumerate(rows):
            value = row.get(name, _MISSING)
            if type(value) is want:
                out.append(value)
            else:
                out.append(want(checked_key(views[0], name, dtype, row, i)))
        return out
    return [
        entity_suffix([checked_key(views[0], name, dtype, row, i) for name, dtype in spec])
        for i, row in enumerate(rows)
    ]


_MISSING = object()


def not_utf8(rows: tuple[Mapping[str, Any], ...]) -> UsageError:
    """The first entity key that is no Unicode text (a lone surrogate), said plainly."""
    for index, row in enumerate(rows):
        for name, value in row.items():
            if isinstance(value, str) and not is_unicode(value):
                return UsageError(f"entity_rows[{index}][{name!r}] is {value!r}: not valid "
                                  "Unicode text (a lone surrogate); pass the key as real text.")
    return UsageError("an entity key is not valid Unicode text; pass keys as real text.")


def checked_key(view: FeatureView, name: str, dtype: str, row: Mapping[str, Any], index: int) -> Any:
    if name not in row:
        raise UsageError(
            f"entity_rows[{index}] has no {name!r}, the join key of feature view "
            f"{view.name!r} (entity {view.entity.name}); it has: {', '.join(row) or 'nothing'}."
        )
    value = row[name]
    if dtype == "int64":
        ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok and hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in ("i", "u"):
            value, ok = int(value), True
    else:
        ok = isinstance(value, str)
    if not ok:
        expected = "an integer" if dtype == "int64" else "a string"
        raise UsageError(
            f"entity_rows[{index}][{name!r}] is {value!r} ({type(value).__name__}); "
            f"{name} of entity {view.entity.name} is {dtype}: pass {expected}."
        )
    return value
