"""What an online read returns: per requested feature, a value, a status and an event time
for each entity row (the shape Feast's /get-online-features answers with).

The conversions work a column at a time, never a cell at a time where it can be helped: the
features of one view share one tuple of event times and one of statuses (the read builds them
once per view), so those are converted once per response (``per_column``) and each distinct
event time is formatted once (``timestamp_text``); Arrow columns come from one conversion per
dtype, sliced per feature. Datetimes are built only when ``event_timestamps`` is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from functools import cache, cached_property, lru_cache
from itertools import chain
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence, TypeVar

from .micros import from_micros
from .timestamp_text import iso_text, texts

if TYPE_CHECKING:
    import pyarrow as pa


class Status(str, Enum):
    PRESENT = "present"
    NOT_FOUND = "not_found"
    EXPIRED = "expired"
    """Stored, but older than the view's ttl as of now: its value is not served."""

    @property
    def feast(self) -> str:
        """Feast's name of the status (``PRESENT``, ``NOT_FOUND``, ``OUTSIDE_MAX_AGE``)."""
        return FEAST_NAMES[self.value]


FEAST_NAMES = {"present": "PRESENT", "not_found": "NOT_FOUND", "expired": "OUTSIDE_MAX_AGE"}
_OURS = {s.value: s.value for s in Status}
_VALUE = attrgetter("_value_")
"""A status's value without ``Enum``'s Python-level ``value`` property or ``__hash__``."""
_TEMPORAL = ("timestamp", "date")
T = TypeVar("T")


@cache
def _arrow_type(dtype: str) -> pa.DataType:
    """The Arrow type of a logical type (pyarrow is imported when a table is asked for:
    reading the online store does not need it)."""
    import pyarrow as pa

    return {"int64": pa.int64, "double": pa.float64, "bool": pa.bool_, "string": pa.string,
            "timestamp": lambda: pa.timestamp("us", tz="UTC"), "date": pa.date32}[dtype]()


def per_column(convert: Callable[[Any], T]) -> Callable[[Any], T]:
    """``convert``, run once per distinct column object (features of one view share their
    statuses and event times); for the length of one conversion, while the columns live."""
    done: dict[int, T] = {}

    def get(column: Any) -> T:
        key = id(column)
        found = done.get(key)
        if found is None:
            found = done[key] = convert(column)
        return found
    return get


def status_names(column: Sequence[Status], names: Mapping[str, str]) -> list[str]:
    """``names[status.value]`` for each status of ``column``."""
    if column.count(Status.PRESENT) == len(column):
        return [names["present"]] * len(column)
    return list(map(names.__getitem__, map(_VALUE, column)))


def json_values(column: Sequence[Any], dtype: str) -> list[Any]:
    """Values as JSON can carry them: timestamps and dates in ISO 8601, the rest as they are."""
    if dtype in _TEMPORAL:
        return [None if v is None else v.isoformat() for v in column]
    return list(column)


@dataclass(frozen=True)
class OnlineResponse:
    """Values, statuses and event timestamps: one column per requested feature, one entry per
    entity row, in the order requested."""

    features: tuple[str, ...]
    dtypes: tuple[str, ...]
    entity_rows: tuple[Mapping[str, Any], ...]
    values: tuple[tuple[Any, ...], ...]
    statuses: tuple[tuple[Status, ...], ...]
    event_us: tuple[tuple[int | None, ...], ...]
    """Event times in microseconds since the epoch (UTC), None where not found."""

    @classmethod
    def make(cls, features: tuple[str, ...], dtypes: tuple[str, ...],
             entity_rows: tuple[Mapping[str, Any], ...], values: tuple[tuple[Any, ...], ...],
             statuses: tuple[tuple[Status, ...], ...],
             event_us: tuple[tuple[int | None, ...], ...]) -> "OnlineResponse":
        """The same as the constructor, without the frozen dataclass's per-field
        ``object.__setattr__`` (it is on every read's path)."""
        response = object.__new__(cls)
        response.__dict__.update(features=features, dtypes=dtypes, entity_rows=entity_rows,
                                 values=values, statuses=statuses, event_us=event_us)
        return response

    @cached_property
    def event_timestamps(self) -> tuple[tuple[datetime | None, ...], ...]:
        """Event times as UTC datetimes (built on first use)."""
        built: dict[int, datetime] = {}

        def moments(column: tuple[int | None, ...]) -> tuple[datetime | None, ...]:
            return tuple(None if us is None else built.get(us) or
                         built.setdefault(us, from_micros(us)) for us in column)

        convert = per_column(moments)
        return tuple(convert(column) for column in self.event_us)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per entity row: its keys, then each feature's value."""
        return [
            dict(entity) | {f: self.values[j][i] for j, f in enumerate(self.features)}
            for i, entity in enumerate(self.entity_rows)
        ]

    def to_dict(self, *, feast: bool = False) -> dict[str, Any]:
        """Feast's response shape: ``metadata.feature_names`` and per feature ``values``,
        ``statuses`` and ISO ``event_timestamps``."""
        names = FEAST_NAMES if feast else _OURS
        statuses = per_column(lambda column: status_names(column, names))
        stamps = per_column(lambda column: texts(column, iso_text, None))
        return {
            "metadata": {"feature_names": list(self.features)},
            "results": [
                {"values": json_values(values, dtype),
                 "statuses": statuses(status).copy(),  # a list of its own per feature
                 "event_timestamps": stamps(events).copy()}
                for values, dtype, status, events in zip(self.values, self.dtypes, self.statuses,
                                                         self.event_us)
            ],
        }

    def to_arrow(self) -> pa.Table:
        """Entity keys, then per feature its typed value, ``<feature>__status`` and
        ``<feature>__event_timestamp`` columns."""
        import pyarrow as pa

        rows = self.entity_rows
        columns: dict[str, pa.Array] = {
            name: pa.array(_key_column(rows, name)) for name in dict.fromkeys(chain(*rows))}
        timestamp = _arrow_type("timestamp")
        # Features of one view share their status and event-time columns: converted once each
        # (keyed by the column object, alive as long as this response; one dict per kind, as
        # a status column and an event column may be the same object: the empty tuple).
        statuses: dict[int, pa.Array] = {}
        stamps: dict[int, pa.Array] = {}
        value_arrays = _value_arrays(self.values, self.dtypes, len(rows))
        for (ref, status_name, event_name), values, status, events in zip(
                _arrow_names(self.features), value_arrays, self.statuses, self.event_us):
            columns[ref] = values
            found = statuses.get(id(status))
            if found is None:
                found = statuses[id(status)] = _status_array(status)
            columns[status_name] = found
            found = stamps.get(id(events))
            if found is None:
                found = stamps[id(events)] = pa.array(events, timestamp)
            columns[event_name] = found
        return pa.Table.from_arrays(list(columns.values()), names=list(columns))

    def to_pandas(self) -> Any:
        """``to_arrow()`` as a pandas DataFrame (needs pandas): integer features with missing
        values become nullable ``Int64``, not float, so a key or count is never rounded."""
        import pandas as pd

        return self.to_arrow().to_pandas(types_mapper={_arrow_type("int64"): pd.Int64Dtype()}.get)

    def to_polars(self) -> Any:
        """``to_arrow()`` as a polars DataFrame (needs polars)."""
        import polars as pl

        return pl.from_arrow(self.to_arrow())


@lru_cache(maxsize=256)
def _arrow_names(features: tuple[str, ...]) -> tuple[tuple[str, str, str], ...]:
    """Per feature, its value, status and event-time column names in ``to_arrow``."""
    return tuple((ref, f"{ref}__status", f"{ref}__event_timestamp") for ref in features)


_PRESENT_ARRAYS: dict[int, Any] = {}
"""All-``present`` status arrays by length (immutable, so shared between tables)."""


def _status_array(column: tuple[Status, ...]) -> pa.Array:
    import pyarrow as pa

    n = len(column)
    if column.count(Status.PRESENT) != n:
        return pa.array(status_names(column, _OURS), pa.string())
    found = _PRESENT_ARRAYS.get(n)
    if found is None:
        if len(_PRESENT_ARRAYS) >= 64:
            _PRESENT_ARRAYS.clear()
        found = _PRESENT_ARRAYS[n] = pa.array(["present"] * n, pa.string())
    return found


def _key_column(rows: tuple[Mapping[str, Any], ...], name: str) -> list[Any]:
    """The values of join key ``name``, None for rows without it."""
    try:
        return list(map(itemgetter(name), rows))
    except KeyError:
        return [row.get(name) for row in rows]


def _value_arrays(values: tuple[tuple[Any, ...], ...], dtypes: tuple[str, ...],
                  n: int) -> list[pa.Array]:
    """One Arrow array per value column: the columns of one dtype converted in one call (each
    pyarrow call has a fixed cost), then sliced (no copy)."""
    import pyarrow as pa

    out: list[Any] = [None] * len(values)
    for arrow_type, positions in _by_dtype(dtypes):
        if len(positions) == 1 or n == 0:
            for j in positions:
                out[j] = pa.array(values[j], arrow_type)
            continue
        joined = pa.array(list(chain.from_iterable([values[j] for j in positions])), arrow_type)
        for k, j in enumerate(positions):
            out[j] = joined.slice(k * n, n)
    return out


@lru_cache(maxsize=256)
def _by_dtype(dtypes: tuple[str, ...]) -> tuple[tuple[pa.DataType, tuple[int, ...]], ...]:
    """The Arrow type of each dtype among ``dtypes`` and the positions holding it."""
    positions: dict[str, list[int]] = {}
    for j, dtype in enumerate(dtypes):
        positions.setdefault(dtype, []).append(j)
    return tuple((_arrow_type(dtype), tuple(at)) for dtype, at in positions.items())
