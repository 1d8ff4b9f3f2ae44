"""Arrow batches to online-store blobs (the format is in ``codec``), vectorized with numpy and
pyarrow: what a sync writes. Only the sync imports this module."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .codec import NULL_CREATED, Codec, Schema
from .micros import MAX_DAYS, MAX_US, MIN_DAYS, MIN_US

_NUMPY = {"int64": ">i8", "double": ">f8", "bool": "u1", "timestamp": ">i8", "date": ">i4"}
"""The numpy dtype of each fixed-size logical type in the blob (``codec.STRUCT_CODES``)."""
_ARROW = {"int64": pa.int64(), "double": pa.float64(), "bool": pa.bool_(),
          "timestamp": pa.timestamp("us"), "date": pa.date32()}
"""The Arrow type a column is cast to before its values are laid out."""


class ValueOutOfRange(ValueError):
    """A value the blob cannot hold or a reader could not decode (int64 overflow, a timestamp
    beyond year 9999 such as DuckDB's or PostgreSQL's ``infinity``)."""

    def __init__(self, column: str, value: Any, limit: str) -> None:
        super().__init__(f"{column}: {value} ({limit})")
        self.column, self.value, self.limit = column, value, limit


class BlobEncoder:
    """Encodes Arrow batches to the blobs of one schema: the fixed part of every row laid out
    as one numpy record array, the strings appended column by column."""

    def __init__(self, schema: Schema) -> None:
        self.codec = Codec(schema)
        n = len(schema.features)
        self.record = np.dtype(
            [("ets", ">i8"), ("cts", ">i8")]
            + [(f"n{i}", "u1") for i in range(n)]
            + [(f"f{i}", _NUMPY[t]) for i, (_, t) in enumerate(self.codec.fixed)]
        )
        assert self.record.itemsize == self.codec.struct.size

    def encode(
        self, batch: pa.RecordBatch, event: str, created: str | None
    ) -> tuple[pa.Array, np.ndarray]:
        """Blobs (a binary array) for every row of ``batch`` (columns named as the features),
        and the event times in microseconds (for expiries and watermarks)."""
        rows = batch.num_rows
        rec = np.zeros(rows, dtype=self.record)
        ets = _in_range(event, micros(batch.column(event)), MIN_US, MAX_US)
        rec["ets"] = ets
        if created is not None:
            column = batch.column(created)
            cts = _in_range(created, micros(column), MIN_US, MAX_US)
            rec["cts"] = (np.where(np.asarray(column.is_null()), NULL_CREATED, cts)
                if column.null_count else cts)
        index = {name: i for i, name in enumerate(self.codec.names)}
        for name in self.codec.names:
            column = batch.column(name)
            if column.null_count:
                rec[f"n{index[name]}"] = np.asarray(column.is_null(), dtype="u1")
        for i, (name, dtype) in enumerate(self.codec.fixed):
            rec[f"f{i}"] = _fixed_values(name, batch.column(name), dtype)
        width = self.record.itemsize
        fixed = pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(width), rows, [None, pa.py_buffer(rec.tobytes())]
        )
        if not self.codec.strings:
            return fixed.cast(pa.binary()), ets
        parts: list[Any] = [fixed.cast(pa.binary())]
        for name in self.codec.strings:
            column = batch.column(name)
            if pa.types.is_null(column.type):
                column = pa.nulls(rows, pa.string())
            data = pc.fill_null(column.cast(pa.string()), "").cast(pa.binary())
            lengths = np.asarray(pc.binary_length(data), dtype=">u4")
            parts.append(
                pa.FixedSizeBinaryArray.from_buffers(
                    pa.binary(4), rows, [None, pa.py_buffer(lengths.tobytes())]
                ).cast(pa.binary())
            )
            parts.append(data)
        return pc.binary_join_element_wise(*parts, b""), ets


def _fixed_values(name: str, column: pa.Array, dtype: str) -> np.ndarray:
    if dtype in ("timestamp",):
        return _in_range(name, micros(column), MIN_US, MAX_US)
    if pa.types.is_null(column.type):
        return np.zeros(len(column), dtype=_NUMPY[dtype])
    target = _ARROW[dtype]
    try:
        if dtype == "date" and pa.types.is_timestamp(column.type):
            column = column.cast(pa.timestamp("us")).cast(pa.date32())
        column = column if column.type == target else column.cast(target)
    except (pa.ArrowInvalid, OverflowError) as exc:
        raise ValueOutOfRange(name, _extreme(column), f"beyond {dtype}") from exc
    if dtype == "date":
        return _in_range(name, np.asarray(pc.fill_null(column.view(pa.int32()), 0)), MIN_DAYS, MAX_DAYS)
    if dtype == "bool":
        column = column.cast(pa.uint8())
    return np.asarray(pc.fill_null(column, 0).to_numpy(zero_copy_only=False))


def _in_range(name: str, values: np.ndarray, low: int, high: int) -> np.ndarray:
    if len(values) and (values.min() < low or values.max() > high):
        bad = values[(values < low) | (values > high)][0]
        raise ValueOutOfRange(name, int(bad), "beyond the years 1 to 9999, e.g. infinity")
    return values


def _extreme(column: pa.Array) -> Any:
    try:
        bounds = pc.min_max(column).as_py()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return "a value"
    low, high = bounds["min"], bounds["max"]
    return high if high is not None and (low is None or abs(high) >= abs(low)) else low


def micros(column: pa.Array) -> np.ndarray:
    """Microseconds since the epoch (UTC; naive timestamps are read as UTC) of a timestamp or
    date column, nulls as 0."""
    if pa.types.is_null(column.type):
        return np.zeros(len(column), dtype="i8")
    if pa.types.is_date(column.type):
        column = column.cast(pa.timestamp("us"))
    if pa.types.is_timestamp(column.type) and column.type.unit != "us":
        column = column.cast(pa.timestamp("us", column.type.tz), safe=False)
    return np.asarray(pc.fill_null(column.view(pa.int64()), 0).to_numpy(zero_copy_only=False))


def entity_suffixes(batch: pa.RecordBatch, key_names: Sequence[str]) -> pa.Array:
    """``entity_suffix`` for every row of a batch, vectorized (a binary array)."""
    parts = []
    for name in key_names:
        column = batch.column(name)
        if pa.types.is_integer(column.type):
            column = column.cast(pa.int64()).cast(pa.string())
        else:
            column = column.cast(pa.string())
            if len(key_names) > 1:
                column = pc.replace_substring(column, "\\", "\\\\")
                column = pc.replace_substring(column, ":", "\\:")
        parts.append(column)
    if len(parts) == 1:
        return parts[0].cast(pa.binary())
    return pc.binary_join_element_wise(*parts, ":").cast(pa.binary())


def full_keys(generation_prefix: str, suffixes: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(generation_prefix.encode(), suffixes, b"")
