"""The blob that holds one entity's feature values in the online store, and its schema.

The blob: a big-endian fixed part ``event_us:int64, created_us:int64 (NULL: the lowest int64,
as NULL is the lowest created time in the recency order), one null flag byte per feature, the
non-string features`` (int64/timestamp microseconds as int64, double as float64,
bool as one byte, date as int32 days), then each string feature as ``uint32 length + UTF-8``.
The first 16 bytes let the conditional-write script compare event/created times on the server.

Reading needs only ``struct``: a command that reads the online store does not import numpy or
pyarrow. Writing, vectorized over Arrow batches, is ``encoder.BlobEncoder``.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from dbt_features.registry import FeatureView

from .micros import from_days, from_micros

FORMAT_VERSION = 2
NULL_CREATED = -(2**63)
STRUCT_CODES = {"int64": "q", "double": "d", "bool": "?", "timestamp": "q", "date": "i"}
"""The ``struct`` code of each fixed-size logical type in the blob (strings come after)."""


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
    """Decodes blobs of one schema to Python values (``encoder.BlobEncoder`` writes them)."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.names = tuple(n for n, _ in schema.features)
        self.dtypes = tuple(t for _, t in schema.features)
        self.fixed = [(n, t) for n, t in schema.features if t != "string"]
        self.strings = [n for n, t in schema.features if t == "string"]
        n = len(schema.features)
        self.struct = struct.Struct(">qq" + "B" * n + "".join(STRUCT_CODES[t] for _, t in self.fixed))
        self._unpack = self.struct.unpack_from
        self._n = n
        self._converters = [
            (i, from_micros if t == "timestamp" else from_days)
            for i, (_, t) in enumerate(self.fixed) if t in ("timestamp", "date")
        ]

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
