"""The column-at-a-time response builders (to_dict, to_arrow, Feast's JSON) against a
straightforward per-cell reference, on random responses: every dtype with None, NaN, inf,
integers beyond 2**53, timestamps and dates over the whole range, every status, views that
share their status and event-time columns as reads build them, and repeated event times."""

from __future__ import annotations

import json
import math
import time
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbt_features.serving import timestamp_text
from dbt_features.serving.feast_protocol import Plan, encode, encode_response, feast_response
from dbt_features.serving.micros import MAX_US, MIN_US, from_micros
from dbt_features.serving.response import OnlineResponse, Status

FEAST_EPOCH = "1970-01-01T00:00:00Z"
UTC = timezone.utc
DTYPES = ("int64", "double", "bool", "string", "timestamp", "date")
ARROW = {"int64": pa.int64(), "double": pa.float64(), "bool": pa.bool_(), "string": pa.string(),
         "timestamp": pa.timestamp("us", tz="UTC"), "date": pa.date32()}


# -- the reference: one cell at a time, the obvious way ---------------------------------------


def ref_iso(us: int | None) -> str | None:
    return None if us is None else (datetime(1970, 1, 1, tzinfo=UTC)
                                    + timedelta(microseconds=us)).isoformat()


def ref_feast_ts(us: int | None) -> str:
    if us is None:
        return FEAST_EPOCH
    seconds, fraction = divmod(us, 1_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if fraction == 0:
        return base + "Z"
    if fraction % 1000 == 0:
        return f"{base}.{fraction // 1000:03d}Z"
    return f"{base}.{fraction:06d}Z"


def ref_json(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def ref_to_dict(r: OnlineResponse, feast: bool) -> dict[str, Any]:
    return {"metadata": {"feature_names": list(r.features)}, "results": [
        {"values": [ref_json(v) for v in r.values[j]],
         "statuses": [s.feast if feast else s.value for s in r.statuses[j]],
         "event_timestamps": [ref_iso(us) for us in r.event_us[j]]}
        for j in range(len(r.features))]}


def ref_to_arrow(r: OnlineResponse) -> pa.Table:
    columns: dict[str, pa.Array] = {}
    for name in dict.fromkeys(k for row in r.entity_rows for k in row):
        columns[name] = pa.array([row.get(name) for row in r.entity_rows])
    for j, ref in enumerate(r.features):
        columns[ref] = pa.array(list(r.values[j]), type=ARROW[r.dtypes[j]])
        # string even with no rows (inferred from no values it would be null)
        columns[f"{ref}__status"] = pa.array([s.value for s in r.statuses[j]], pa.string())
        columns[f"{ref}__event_timestamp"] = pa.array(
            [None if us is None else from_micros(us) for us in r.event_us[j]],
            type=pa.timestamp("us", tz="UTC"))
    return pa.table(columns)


def ref_feast(plan: Plan, shown: list[str], entities: dict[str, list[Any]], n: int,
              r: OnlineResponse) -> dict[str, Any]:
    results = [{"values": entities[k], "statuses": ["PRESENT"] * n,
                "event_timestamps": [FEAST_EPOCH] * n} for k in shown]
    for j in range(len(plan.refs)):
        values = list(r.values[j])
        if r.dtypes[j] in ("timestamp", "date"):
            values = [None if v is None else v.isoformat() for v in values]
        elif r.dtypes[j] == "double":
            values = [{"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}.get(repr(v), v)
                      for v in values]
        results.append({"values": values, "statuses": [s.feast for s in r.statuses[j]],
                        "event_timestamps": [ref_feast_ts(us) for us in r.event_us[j]]})
    return {"metadata": {"feature_names": [*shown, *plan.names]}, "results": results}


# -- random responses --------------------------------------------------------------------------

_micros = st.integers(MIN_US, MAX_US)
_round_micros = st.one_of(
    _micros, _micros.map(lambda us: us - us % 1_000_000), _micros.map(lambda us: us - us % 1000),
    st.integers(-10**12, 10**12),  # around the epoch, both sides
)
_VALUES = {
    "int64": st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from([2**53 + 1, -(2**63)])),
    "double": st.one_of(st.floats(), st.sampled_from([math.nan, math.inf, -math.inf, -0.0])),
    "bool": st.booleans(),
    "string": st.text(max_size=8),
    "timestamp": _round_micros.map(from_micros),
    "date": st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)),
}


@st.composite
def responses(draw: st.DrawFn) -> OnlineResponse:
    n = draw(st.integers(0, 12))
    n_views = draw(st.integers(1, 3))
    pool = draw(st.lists(st.one_of(st.none(), _round_micros), min_size=1, max_size=4))
    repeated = draw(st.booleans())  # a batch's one event time for many entities
    features, dtypes, values, statuses, events = [], [], [], [], []
    for v in range(n_views):
        width = draw(st.integers(1, 4))
        stamp = st.sampled_from(pool) if repeated else st.one_of(st.none(), _round_micros)
        shared_events = tuple(draw(st.lists(stamp, min_size=n, max_size=n)))
        shared_status = tuple(draw(st.lists(st.sampled_from(list(Status)), min_size=n,
                                            max_size=n)))
        if draw(st.booleans()):
            shared_status = (Status.PRESENT,) * n
        for k in range(width):
            dtype = draw(st.sampled_from(DTYPES))
            features.append(f"view_{v}:f{k}")
            dtypes.append(dtype)
            cell = st.none() | _VALUES[dtype] if draw(st.booleans()) else _VALUES[dtype]
            values.append(tuple(draw(st.lists(cell, min_size=n, max_size=n))))
            own = draw(st.booleans())  # most columns share their view's tuples, some do not
            statuses.append(tuple(shared_status) if own else shared_status)
            events.append(tuple(list(shared_events)) if own else shared_events)
    keys = draw(st.sampled_from([("customer_id",), ("code",), ("customer_id", "code")]))
    rows = tuple({k: draw(st.integers(-(2**63), 2**63 - 1) if k == "customer_id"
                          else st.text(max_size=4)) for k in keys} for _ in range(n))
    return OnlineResponse(tuple(features), tuple(dtypes), rows, tuple(values),
                          tuple(statuses), tuple(events))


def _canon(value: Any) -> Any:
    """Equal values compare equal, NaN included, and -0.0 differs from 0.0."""
    return repr(value) if isinstance(value, float) else value


@settings(max_examples=100, deadline=None)
@given(responses(), st.booleans())
def test_to_dict_is_the_per_cell_reference(response: OnlineResponse, feast: bool) -> None:
    got = response.to_dict(feast=feast)
    want = ref_to_dict(response, feast)
    assert json.dumps(got) == json.dumps(want)  # order, types and NaN/inf spelled alike
    assert [[_canon(v) for v in r["values"]] for r in got["results"]] == [
        [_canon(v) for v in r["values"]] for r in want["results"]]
    assert all(type(r[k]) is list for r in got["results"] for k in r)


@settings(max_examples=80, deadline=None)
@given(responses())
def test_to_arrow_is_the_per_cell_reference(response: OnlineResponse) -> None:
    got = response.to_arrow()
    want = ref_to_arrow(response)
    assert got.schema == want.schema
    for name in want.column_names:
        assert [_canon(v) for v in got.column(name).to_pylist()] == [
            _canon(v) for v in want.column(name).to_pylist()], name


@settings(max_examples=100, deadline=None)
@given(responses(), st.data())
def test_feast_json_is_the_per_cell_reference(response: OnlineResponse, data: st.DataObject) -> None:
    n = len(response.entity_rows)
    keys = list(dict.fromkeys(k for row in response.entity_rows for k in row))
    entities = {k: [row[k] for row in response.entity_rows] for k in keys}
    shown = data.draw(st.sampled_from([keys, keys[::-1], []]))
    plan = Plan(response.features, tuple(f.replace(":", "__") for f in response.features), ())
    want = ref_feast(plan, shown, entities, n, response)
    assert json.dumps(feast_response(plan, shown, entities, n, response)) == json.dumps(want)
    body = encode_response(plan, shown, entities, n, response)
    assert json.loads(body) == json.loads(json.dumps(want))  # valid JSON, the same values
    assert b"NaN" not in body.replace(b'"NaN"', b"")  # non-finite doubles only as strings


def test_to_dict_lists_are_not_shared_between_features() -> None:
    events, status = (1, 2), (Status.PRESENT, Status.EXPIRED)
    response = OnlineResponse(("v:a", "v:b"), ("int64", "int64"), ({"k": 1}, {"k": 2}),
                              ((1, None), (2, None)), (status, status), (events, events))
    results = response.to_dict()["results"]
    results[0]["statuses"].append("x")
    results[0]["event_timestamps"].clear()
    assert results[1]["statuses"] == ["present", "expired"]
    assert len(results[1]["event_timestamps"]) == 2


def test_event_timestamps_are_shared_datetimes_built_on_demand() -> None:
    events = (1_767_225_600_000_000, None)
    response = OnlineResponse(("v:a", "v:b"), ("double", "string"), ({"k": 1}, {"k": 2}),
                              ((1.5, None), ("x", None)), ((Status.PRESENT, Status.NOT_FOUND),) * 2,
                              (events, events))
    assert "event_timestamps" not in response.__dict__
    first, second = response.event_timestamps
    assert first == second == (datetime(2026, 1, 1, tzinfo=UTC), None)


def test_integers_beyond_64_bits_in_an_echoed_key_still_encode() -> None:
    """orjson refuses them; the json module takes over."""
    assert json.loads(encode({"values": [2**70, 1.5]})) == {"values": [2**70, 1.5]}


def test_the_hour_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timestamp_text, "_MAX_HOURS", 3)
    hours = timestamp_text._Hours(lambda hour: f"h{hour}:")
    assert [hours[h] for h in range(10)] == [f"h{h}:" for h in range(10)]
    assert len(hours) <= 3
    stamps = [k * 3_600_000_000 + 1 for k in range(-5, 5)]
    assert timestamp_text.texts(stamps, timestamp_text.iso_text, None) == [
        ref_iso(us) for us in stamps]
