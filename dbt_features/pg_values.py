"""PostgreSQL rows to Arrow, with the values Python cannot hold caught by name.

psycopg2 reads ``'infinity'`` dates and timestamps as year 9999 or year 1 (wrong values that
would be served as real ones) and fails with a bare ValueError on years past 9999. On our
connections such a value is read as an ``Unreadable`` marker instead, and turning the rows into
Arrow names the column that holds it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pyarrow as pa

from .errors import WarehouseValueError

# PostgreSQL type OIDs of timestamp, timestamptz and date, and psycopg2's readers of them.
_DATETIME_OIDS = {1114: "PYDATETIME", 1184: "PYDATETIMETZ", 1082: "PYDATE"}


class Unreadable:
    """A date or timestamp value as PostgreSQL spelt it, which Python has no value for."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def register_strict_datetimes(con: Any) -> None:
    """Read dates and timestamps on ``con`` as psycopg2 does, but the ones it cannot (or reads
    wrongly) as ``Unreadable``."""
    import psycopg2.extensions as ext
    from psycopg2 import _psycopg

    def strict(oid: int, base: Any) -> Any:
        def cast(value: str | None, cur: Any) -> Any:
            if value is not None and value.lstrip("-").lower() == "infinity":
                return Unreadable(value)
            try:
                return base(value, cur)
            except (ValueError, OverflowError):
                return Unreadable(value or "")

        return ext.new_type((oid,), f"DBT_FEATURES_{oid}", cast)

    for oid, reader in _DATETIME_OIDS.items():
        ext.register_type(strict(oid, getattr(_psycopg, reader)), con)


def rows_to_arrow(names: list[str], rows: list[tuple[Any, ...]]) -> pa.Table:
    """Rows from a DB-API cursor to Arrow; NUMERIC (Decimal) becomes float64, as in the registry.
    Raises ``WarehouseValueError`` naming the column of an ``Unreadable`` value."""
    columns = list(zip(*rows)) if rows else [() for _ in names]
    arrays = []
    for name, values in zip(names, columns):
        bad = next((v for v in values if isinstance(v, Unreadable)), None)
        if bad is not None:
            raise WarehouseValueError(
                f"PostgreSQL returned {bad.text!r} in column {name!r}: Python has no date or "
                "timestamp for it (infinite, or outside years 1-9999). Replace it in the model, "
                f"e.g. `case when isfinite({name}) then {name} end`, and rebuild it.",
                columns=[name],
            )
        if any(isinstance(v, Decimal) for v in values):
            values = tuple(None if v is None else float(v) for v in values)
        arrays.append(pa.array(values))
    return pa.Table.from_arrays(arrays, names=names)
