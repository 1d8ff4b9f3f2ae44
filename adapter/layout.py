"""The key layout of the online store and the encoding of one entity's feature values.

Keys (``P`` is the configured key prefix, ``V`` a feature view, ``G`` a generation number)::

    P:V:gen         string: the current generation G (published atomically with the meta hash)
    P:V:meta        hash: current generation ``gen`` and its ``schema``, watermark, last sync,
                    key count, definition fingerprint, ``pending``/``retired`` generations
    P:V:lock        the sync lock (JSON of the holder), with an expiry
    P:V:G:ENTITY    one value per (view, entity): a compact blob, expiring at event time + ttl

A full refresh writes generation G+1 beside G and switches ``gen`` in one step, so readers
see one complete snapshot or the other: a read is one MGET of ``P:V:gen`` and the entity keys
of the generation it last saw; if ``P:V:gen`` moved, it reads again with the new one. ``ENTITY`` is the join-key value (decimal for
integers, the string itself for strings); composite keys join their parts with ``:`` after
escaping ``\\`` and ``:``.

The blob: a big-endian fixed part ``event_us:int64, created_us:int64 (NULL: the lowest int64,
as NULL is the lowest created time in the recency order), one null flag byte per feature, the
non-string features`` (int64/timestamp microseconds as int64, double as float64,
bool as one byte, date as int32 days), then each string feature as ``uint32 length + UTF-8``.
The first 16 bytes let the conditional-write script compare event/created times on the server.
"""

from __future__ import annotations

import json
import struct
from operator import itemgetter
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dbt_features.registry import FeatureView

FORMAT_VERSION = 2
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
EPOCH_DATE = date(1970, 1, 1)
NULL_CREATED = -(2**63)
MIN_US = -62_135_596_800_000_000
MAX_US = 253_402_300_799_999_999
"""Microseconds of 0001-01-01 and 9999-12-31T23:59:59.999999 UTC: what a reader can decode."""
MIN_DAYS, MAX_DAYS = -719_162, 2_932_896


class ValueOutOfRange(ValueError):
    """A value the blob cannot hold or a reader could not decode (int64 overflow, a timestamp
    beyond year 9999 such as DuckDB's or PostgreSQL's ``infinity``)."""

    def __init__(self, column: str, value: Any, limit: str) -> None:
        super().__init__(f"{column}: {value} ({limit})")
        self.column, self.value, self.limit = column, value, limit

# Logical type -> (struct code, numpy dtype, arrow type the column is cast to first).
_FIXED: dict[str, tuple[str, str, pa.DataType]] = {
    "int64": ("q", ">i8", pa.int64()),
    "double": ("d", ">f8", pa.float64()),
    "bool": ("?", "u1", pa.bool_()),
    "timestamp": ("q", ">i8", pa.timestamp("us")),
    "date": ("i", ">i4", pa.date32()),
}


@dataclass(frozen=True)
class Keys:
    """Key names of one key prefix."""

    prefix: str

    def view_base(self, view: str) -> str:
        return f"{self.prefix}:{view}:"

    def meta(self, view: str) -> str:
        return f"{self.prefix}:{view}:meta"

    def current(self, view: str) -> str:
        """A string key holding the current generation (read in the same MGET as values)."""
        return f"{self.prefix}:{view}:gen"

    def lock(self, view: str) -> str:
        return f"{self.prefix}:{view}:lock"

    def generation(self, view: str, gen: int | str) -> str:
        """The prefix of every entity key of one generation of a view."""
        return f"{self.prefix}:{view}:{gen}:"

    def generation_pattern(self, view: str, gen: int | str) -> str:
        """A SCAN MATCH pattern for one generation (glob characters of the prefix escaped)."""
        return _glob_escape(self.generation(view, gen)) + "*"


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


@dataclass(frozen=True)
class Schema:
    """What a generation's blobs hold: the features in blob order, with their logical types."""

    features: tuple[tuple[str, str], ...]
    key_dtypes: tuple[str, ...]
    has_created: bool
    version: int = FORMAT_VERSION

    @classmethod
    def of(cls, view: FeatureView) -> "Schema":
        fixed = [(f.name, f.dtype) for f in view.features if f.dtype != "string"]
        strings = [(f.name, f.dtype) for f in view.features if f.dtype == "string"]
        return cls(
            tuple(fixed + strings),
            tuple(k.dtype for k in view.entity.join_keys),
            view.created_timestamp is not None,
        )

    def text(self) -> str:
        return json.dumps(
            {"v": self.version, "features": self.features, "keys": self.key_dtypes,
             "created": self.has_created},
            separators=(",", ":"),
        )

    @classmethod
    def parse(cls, text: str | bytes) -> "Schema":
        data = json.loads(text)
        return cls(
            tuple((n, t) for n, t in data["features"]), tuple(data["keys"]), bool(data["created"]),
            int(data["v"]),
        )


class Codec:
    """Encodes Arrow batches to blobs (vectorized) and decodes one blob to Python values."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.names = tuple(n for n, _ in schema.features)
        self.dtypes = tuple(t for _, t in schema.features)
        self.fixed = [(n, t) for n, t in schema.features if t != "string"]
        self.strings = [n for n, t in schema.features if t == "string"]
        n = len(schema.features)
        self.struct = struct.Struct(">qq" + "B" * n + "".join(_FIXED[t][0] for _, t in self.fixed))
        self.record = np.dtype(
            [("ets", ">i8"), ("cts", ">i8")]
            + [(f"n{i}", "u1") for i in range(n)]
            + [(f"f{i}", _FIXED[t][1]) for i, (_, t) in enumerate(self.fixed)]
        )
        assert self.record.itemsize == self.struct.size
        self._unpack = self.struct.unpack_from
        self._n = n
        self._converters = [
            (i, from_micros if t == "timestamp" else _from_days)
            for i, (_, t) in enumerate(self.fixed) if t in ("timestamp", "date")
        ]

    # -- writing -------------------------------------------------------------------------------

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
            rec["cts"] = np.where(np.asarray(column.is_null()), NULL_CREATED, cts) if column.null_count else cts
        index = {name: i for i, name in enumerate(self.names)}
        for name in self.names:
            column = batch.column(name)
            if column.null_count:
                rec[f"n{index[name]}"] = np.asarray(column.is_null(), dtype="u1")
        for i, (name, dtype) in enumerate(self.fixed):
            rec[f"f{i}"] = _fixed_values(name, batch.column(name), dtype)
        width = self.record.itemsize
        fixed = pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(width), rows, [None, pa.py_buffer(rec.tobytes())]
        )
        if not self.strings:
            return fixed.cast(pa.binary()), ets
        parts: list[Any] = [fixed.cast(pa.binary())]
        for name in self.strings:
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

    # -- reading -------------------------------------------------------------------------------

    def decode(self, blob: bytes) -> tuple[int, int, list[Any]]:
        """``(event_us, created_us, values)`` with values in schema order."""
        head = self._unpack(blob)
        n = self._n
        values = list(head[2 + n :])
        for i, convert in self._converters:
            values[i] = convert(values[i])
        if self.strings:
            offset = self.struct.size
            for _ in self.strings:
                (length,) = _U32.unpack_from(blob, offset)
                offset += 4
                values.append(blob[offset : offset + length].decode())
                offset += length
        flags = head[2 : 2 + n]
        if 1 in flags:
            for i, flag in enumerate(flags):
                if flag:
                    values[i] = None
        return head[0], head[1], values


    def picker(self, wanted: list[int]) -> Any:
        """A function of one blob to ``(event_us, *values[wanted])`` (``wanted``: positions in
        schema order), for reads. Blobs without nulls of schemas without timestamp/date
        features (whose values need converting) are picked straight from the unpacked fixed
        part plus the strings; the rest go through ``decode``."""
        generic_pick = itemgetter(*wanted) if wanted else None
        n_wanted = len(wanted)

        def generic(blob: bytes) -> tuple[Any, ...]:
            ets, _cts, values = self.decode(blob)
            if n_wanted == 0:
                return (ets,)
            if n_wanted == 1:
                return (ets, generic_pick(values))  # type: ignore[misc]
            return (ets, *generic_pick(values))  # type: ignore[misc]

        if self._converters or not wanted:
            return generic
        n = self._n
        unpack, size = self._unpack, self.struct.size
        no_nulls = bytes(n)
        flags = slice(16, 16 + n)
        # In the unpacked fixed part, values start after event, created and the n null flags.
        fast_pick = itemgetter(0, *(2 + n + p for p in wanted))
        strings = len(self.strings)
        if not strings:
            def decode(blob: bytes) -> tuple[Any, ...]:
                if blob[flags] != no_nulls:
                    return generic(blob)
                return fast_pick(unpack(blob))
            return decode
        u32 = _U32.unpack_from
        if strings == 1:
            def decode(blob: bytes) -> tuple[Any, ...]:
                if blob[flags] != no_nulls:
                    return generic(blob)
                (length,) = u32(blob, size)
                return fast_pick(unpack(blob) + (blob[size + 4 : size + 4 + length].decode(),))
            return decode

        def decode(blob: bytes) -> tuple[Any, ...]:
            if blob[flags] != no_nulls:
                return generic(blob)
            texts = []
            offset = size
            for _ in range(strings):
                (length,) = u32(blob, offset)
                offset += 4
                texts.append(blob[offset : offset + length].decode())
                offset += length
            return fast_pick(unpack(blob) + tuple(texts))
        return decode


_U32 = struct.Struct(">I")


def _fixed_values(name: str, column: pa.Array, dtype: str) -> np.ndarray:
    if dtype in ("timestamp",):
        return _in_range(name, micros(column), MIN_US, MAX_US)
    if pa.types.is_null(column.type):
        return np.zeros(len(column), dtype=_FIXED[dtype][1])
    target = _FIXED[dtype][2]
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


def _from_days(days: int) -> date:
    return EPOCH_DATE + timedelta(days=days)


def from_micros(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def moment_micros(value: datetime | date | None) -> int | None:
    """Microseconds since the epoch of a timestamp (naive ones are UTC) or a date (midnight)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return to_micros(value)
    if isinstance(value, date):
        return to_micros(datetime(value.year, value.month, value.day))
    raise TypeError(f"not a point in time: {value!r}")


def iso_micros(us: int | str | None, timespec: str = "auto") -> str | None:
    """ISO 8601 (UTC) of microseconds since the epoch, as kept in the meta hash."""
    return None if us in (None, "") else from_micros(int(us)).isoformat(timespec=timespec)


def to_micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


# -- entity keys -------------------------------------------------------------------------------


def entity_suffix(values: Sequence[Any]) -> str:
    """The ``ENTITY`` part of a key for one entity's (already type-checked) join-key values."""
    if len(values) == 1:
        return str(values[0])
    return ":".join(_escape(str(v)) for v in values)


def parse_entity_suffix(suffix: str, dtypes: Sequence[str]) -> tuple[Any, ...]:
    """The join-key values of a key's ``ENTITY`` part (the inverse of ``entity_suffix``)."""
    parts = [suffix] if len(dtypes) == 1 else _split_escaped(suffix)
    return tuple(int(p) if t == "int64" else p for p, t in zip(parts, dtypes))


def _split_escaped(text: str) -> list[str]:
    parts, current, chars = [], [], iter(text)
    for char in chars:
        if char == "\\":
            current.append(next(chars, ""))
        elif char == ":":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    return [*parts, "".join(current)]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(":", "\\:")


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
