"""The blob that holds one entity's feature values in the online store, and its schema.

The blob (format 3): a big-endian fixed part ``event_us:int64``, then ``created_us:int64`` only
when the view has a ``created_timestamp`` (NULL: the lowest int64, as NULL is the lowest
created time in the recency order), then a null bitmap of ``ceil(features / 8)`` bytes (bit
``i % 8`` of byte ``i // 8`` set: feature ``i`` is NULL), then the non-string features
(int64/timestamp microseconds as int64, double as float64, bool as one byte, date as int32
days), then each string feature as ``uint32 length + UTF-8``. The leading 8 or 16 bytes let the
conditional-write script compare event/created times on the server.

Why so tight: a blob is a field value of a bucket hash (``layout``); Redis allocates it in
jemalloc size classes, so 10 doubles with event time (88 bytes of payload) take a 96-byte
allocation only if the header is at most 2 more bytes (a null flag byte per feature and an
always-present created time took 106 bytes, a 112-byte class).

The schema also records the generation's key layout: how many buckets its entities are
spread over (chosen at each full refresh, fixed for the generation).

Reading needs only ``struct``: a command that reads the online store does not import numpy or
pyarrow. Writing, vectorized over Arrow batches, is ``encoder.BlobEncoder``.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, replace
from operator import itemgetter
from typing import Any

from dbt_features.registry import FeatureView

from .micros import from_days, from_micros

FORMAT_VERSION = 3
"""Format 2 (before buckets): one string key per entity, a null flag byte per feature and an
always-present created time. A store written so is refused by reads and rewritten by the
next sync (a full refresh)."""
NULL_CREATED = -(2**63)
STRUCT_CODES = {"int64": "q", "double": "d", "bool": "?", "timestamp": "q", "date": "i"}
"""The ``struct`` code of each fixed-size logical type in the blob (strings come after)."""


@dataclass(frozen=True)
class Schema:
    """What a generation's blobs hold (the features in blob order, with their logical types)
    and how its keys are laid out (``buckets``)."""

    features: tuple[tuple[str, str], ...]
    key_dtypes: tuple[str, ...]
    has_created: bool
    version: int = FORMAT_VERSION
    buckets: int = 1

    @classmethod
    def of(cls, view: FeatureView, buckets: int = 1) -> "Schema":
        fixed = [(f.name, f.dtype) for f in view.features if f.dtype != "string"]
        strings = [(f.name, f.dtype) for f in view.features if f.dtype == "string"]
        return cls(
            tuple(fixed + strings),
            tuple(k.dtype for k in view.entity.join_keys),
            view.created_timestamp is not None,
            buckets=buckets,
        )

    def text(self) -> str:
        return json.dumps(
            {"v": self.version, "features": self.features, "keys": self.key_dtypes,
             "created": self.has_created, "buckets": self.buckets},
            separators=(",", ":"),
        )

    def blob_text(self) -> str:
        """``text`` without the key layout: what incremental syncs of a generation must share."""
        return replace(self, buckets=1).text()

    @classmethod
    def parse(cls, text: str | bytes) -> "Schema":
        data = json.loads(text)
        return cls(
            tuple((n, t) for n, t in data["features"]), tuple(data["keys"]), bool(data["created"]),
            int(data["v"]), int(data.get("buckets", 1)),
        )

    @property
    def head_size(self) -> int:
        """Bytes of the times that lead every blob (event, and created if any)."""
        return 16 if self.has_created else 8

    @property
    def bitmap_size(self) -> int:
        return (len(self.features) + 7) // 8


def schema_version(text: str | bytes | None) -> int | None:
    """The format version of a stored schema text (None when absent or unreadable)."""
    if text is None:
        return None
    try:
        return int(json.loads(text)["v"])
    except (ValueError, KeyError, TypeError):
        return None


class Codec:
    """Decodes blobs of one schema to Python values (``encoder.BlobEncoder`` writes them)."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.names = tuple(n for n, _ in schema.features)
        self.dtypes = tuple(t for _, t in schema.features)
        self.fixed = [(n, t) for n, t in schema.features if t != "string"]
        self.strings = [n for n, t in schema.features if t == "string"]
        n = len(schema.features)
        self._times = 2 if schema.has_created else 1
        self._bitmap = schema.bitmap_size
        self.struct = struct.Struct(
            ">" + "q" * self._times + f"{self._bitmap}s" + "".join(STRUCT_CODES[t] for _, t in self.fixed))
        self._unpack = self.struct.unpack_from
        self._n = n
        self._converters = [
            (i, from_micros if t == "timestamp" else from_days)
            for i, (_, t) in enumerate(self.fixed) if t in ("timestamp", "date")
        ]

    def decode(self, blob: bytes) -> tuple[int, int | None, list[Any]]:
        """``(event_us, created_us, values)`` with values in schema order (``created_us`` is
        None for a view without created time)."""
        head = self._unpack(blob)
        times = self._times
        values = list(head[times + 1 :])
        for i, convert in self._converters:
            values[i] = convert(values[i])
        if self.strings:
            offset = self.struct.size
            for _ in self.strings:
                (length,) = _U32.unpack_from(blob, offset)
                offset += 4
                values.append(blob[offset : offset + length].decode())
                offset += length
        bitmap = head[times]
        if any(bitmap):
            for i in range(self._n):
                if bitmap[i >> 3] >> (i & 7) & 1:
                    values[i] = None
        return head[0], head[1] if times == 2 else None, values

    def end_of(self, data: bytes, offset: int) -> int:
        """Where the blob that starts at ``offset`` of ``data`` ends (blobs concatenated, as the
        served log keeps them)."""
        end = offset + self.struct.size
        for _ in self.strings:
            end += 4 + _U32.unpack_from(data, end)[0]
        if end > len(data):
            raise ValueError(f"a blob runs past the end of its {len(data)} bytes")
        return end

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
        unpack, size = self._unpack, self.struct.size
        start = 8 * self._times
        no_nulls = bytes(self._bitmap)
        flags = slice(start, start + self._bitmap)
        # In the unpacked fixed part, values start after the times and the bitmap.
        fast_pick = itemgetter(0, *(self._times + 1 + p for p in wanted))
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
