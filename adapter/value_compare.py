"""Whether a served value equals the offline one, with its type: one value at a time (``verify``
checks a sample) or a whole Arrow column at once (a replay of a million served rows).

Both forms share one meaning, which a property test keeps equal: doubles exactly (NaN equals
NaN: sync writes the warehouse's float64 bit for bit), no int/float/bool confusion, timestamps
as UTC instants (naive ones are UTC), NULL equal only to NULL.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dbt_features.types import arrow_logical

from .micros import moment_micros


def difference(off: Any, on: Any, dtype: str) -> str | None:
    """None when the values are the same, with the same logical type; else ``value`` or
    ``type``."""
    if off is None or on is None:
        return None if off is None and on is None else "value"
    if dtype == "double":
        if type(on) is not float:
            return "type"
        off = float(off)
        return None if off == on or (math.isnan(off) and math.isnan(on)) else "value"
    if dtype == "int64":
        return ("type" if type(on) is not int else None if on == off else "value")
    if dtype == "bool":
        return ("type" if type(on) is not bool else None if on == off else "value")
    if dtype == "string":
        return ("type" if type(on) is not str else None if on == off else "value")
    if dtype == "timestamp":
        if not isinstance(on, datetime):
            return "type"
        return None if moment_micros(on) == moment_micros(off) else "value"
    if dtype == "date":
        if type(on) is not date:
            return "type"
        return None if on == off else "value"
    return None if on == off else "value"


def same_values(off: pa.Array | pa.ChunkedArray, on: pa.Array | pa.ChunkedArray,
                dtype: str) -> np.ndarray:
    """Per row, whether the served value ``on`` equals ``off`` (``difference`` is None), as a
    numpy bool array; a served column of another logical type differs wherever it holds a
    value."""
    n = len(off)
    off_null = _nulls(off)
    on_null = _nulls(on)
    both_null = off_null & on_null
    if not pa.types.is_null(on.type) and arrow_logical(on.type) != dtype:
        return both_null
    if pa.types.is_null(on.type) or pa.types.is_null(off.type):
        return both_null
    off, on = _comparable(off, dtype), _comparable(on, dtype)
    equal = _bools(pc.equal(off, on), n)
    if dtype == "double":
        equal |= _bools(pc.is_nan(off), n) & _bools(pc.is_nan(on), n)
    return equal | both_null


def micros(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Microseconds since the epoch (UTC; naive timestamps are UTC, dates at midnight) as
    float64, NaN where NULL (exact: every representable instant is below 2**53 µs)."""
    if pa.types.is_null(column.type):
        return np.full(len(column), np.nan)
    ints = _comparable(column, "timestamp" if pa.types.is_timestamp(column.type) else "date")
    if pa.types.is_date(column.type):
        ints = pc.multiply(pc.cast(ints, pa.int64()), 86_400_000_000)
    return _floats(ints)


def _comparable(column: Any, dtype: str) -> Any:
    """Timestamps as int64 microseconds of the UTC instant; the rest as they are."""
    if dtype == "timestamp" and pa.types.is_timestamp(column.type):
        if column.type.tz is not None:
            column = pc.cast(column, pa.timestamp("us", tz="UTC"))
        column = pc.cast(column, pa.timestamp("us"), safe=False)
        return pc.cast(column, pa.int64())
    if dtype == "double":
        return pc.cast(column, pa.float64())
    return column


def _nulls(column: Any) -> np.ndarray:
    return _bools(pc.is_null(column), len(column))


def _bools(column: Any, n: int) -> np.ndarray:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], pa.bool_())
    if len(column) != n:  # pragma: no cover - a bug of ours
        raise AssertionError(f"{len(column)} values for {n} rows")
    return np.asarray(pc.fill_null(column, False).to_numpy(zero_copy_only=False), dtype=bool)


def _floats(column: Any) -> np.ndarray:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], pa.int64())
    return np.asarray(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False),
                      dtype=np.float64)


def plain(value: Any) -> Any:
    """A value as JSON carries it: ISO 8601 for times, ``NaN`` as text."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return value


def show(value: Any) -> str:
    return "NULL" if value is None else repr(plain(value))
