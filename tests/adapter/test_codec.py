"""The blob: Arrow batches encoded (vectorized) and decoded back to the same Python values."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from dbt_features.serving.codec import Codec, Schema
from dbt_features.serving.encoder import BlobEncoder
from dbt_features.serving.micros import to_micros

SCHEMA = Schema(
    features=(("n", "int64"), ("x", "double"), ("b", "bool"), ("t", "timestamp"), ("d", "date"),
              ("s", "string"), ("s2", "string")),
    key_dtypes=("int64",),
    has_created=True,
)

_ts = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1))
_row = st.fixed_dictionaries({
    "n": st.none() | st.integers(-(2**63), 2**63 - 1),
    "x": st.none() | st.floats(allow_nan=False),
    "b": st.none() | st.booleans(),
    "t": st.none() | _ts,
    "d": st.none() | st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 1, 1)),
    "s": st.none() | st.text(max_size=20),
    "s2": st.none() | st.text(max_size=5),
    "event": _ts,
    "created": _ts,
})


@settings(max_examples=50, deadline=None)
@given(st.lists(_row, min_size=1, max_size=20))
def test_every_type_and_null_round_trips(rows: list[dict]) -> None:
    types = {"n": pa.int64(), "x": pa.float64(), "b": pa.bool_(), "t": pa.timestamp("us"),
             "d": pa.date32(), "s": pa.string(), "s2": pa.string(),
             "event": pa.timestamp("us"), "created": pa.timestamp("us")}
    batch = pa.RecordBatch.from_pylist(rows, schema=pa.schema(types))
    codec = Codec(SCHEMA)
    blobs, events = BlobEncoder(SCHEMA).encode(batch, "event", "created")
    for row, blob, event in zip(rows, blobs.to_pylist(), events):
        ets, cts, values = codec.decode(blob)
        assert ets == event == to_micros(row["event"])
        assert cts == to_micros(row["created"])
        expected = [row[n] for n, _ in SCHEMA.features]
        expected[3] = expected[3].replace(tzinfo=timezone.utc) if expected[3] else None
        assert values == expected
    # Concatenated (as the served log keeps them), the blobs split back where each ends.
    data, offset, split = b"".join(blobs.to_pylist()), 0, []
    for _ in rows:
        end = codec.end_of(data, offset)
        split.append(data[offset:end])
        offset = end
    assert split == blobs.to_pylist() and offset == len(data)


def test_timezone_aware_and_nanosecond_timestamps_are_utc_microseconds() -> None:
    moment = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=timezone.utc)
    batch = pa.RecordBatch.from_pydict({
        "event": pa.array([moment], pa.timestamp("ns", tz="Europe/Paris")),
        "t": pa.array([moment], pa.timestamp("us", tz="UTC")),
    })
    schema = Schema((("t", "timestamp"),), ("string",), False)
    blobs, _ = BlobEncoder(schema).encode(batch, "event", None)
    codec = Codec(schema)
    ets, cts, values = codec.decode(blobs[0].as_py())
    assert ets == to_micros(moment) and cts is None and values == [moment]


def test_schema_text_round_trips() -> None:
    assert Schema.parse(SCHEMA.text()) == SCHEMA
