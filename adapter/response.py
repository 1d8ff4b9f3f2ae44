"""What an online read returns: per requested feature, a value, a status and an event time
for each entity row (the shape Feast's /get-online-features answers with)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from functools import cached_property
from typing import TYPE_CHECKING, Any, Mapping

from .micros import from_micros

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
        return _FEAST[self.value]


_FEAST = {"present": "PRESENT", "not_found": "NOT_FOUND", "expired": "OUTSIDE_MAX_AGE"}


def _arrow_type(dtype: str) -> pa.DataType:
    """The Arrow type of a logical type (pyarrow is imported when a table is asked for:
    reading the online store does not need it)."""
    import pyarrow as pa

    return {"int64": pa.int64, "double": pa.float64, "bool": pa.bool_, "string": pa.string,
            "timestamp": lambda: pa.timestamp("us", tz="UTC"), "date": pa.date32}[dtype]()


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
        cache: dict[int, datetime] = {}
        return tuple(
            tuple(None if us is None else cache.get(us) or cache.setdefault(us, from_micros(us))
                  for us in column)
            for column in self.event_us
        )

    def rows(self) -> list[dict[str, Any]]:
        """One dict per entity row: its keys, then each feature's value."""
        return [
            dict(entity) | {f: self.values[j][i] for j, f in enumerate(self.features)}
            for i, entity in enumerate(self.entity_rows)
        ]

    def to_dict(self, *, feast: bool = False) -> dict[str, Any]:
        """Feast's response shape: ``metadata.feature_names`` and per feature ``values``,
        ``statuses`` and ISO ``event_timestamps``."""
        def iso(ts: datetime | None) -> str | None:
            return ts.isoformat() if ts is not None else None

        return {
            "metadata": {"feature_names": list(self.features)},
            "results": [
                {
                    "values": [_jsonable(v) for v in self.values[j]],
                    "statuses": [s.feast if feast else s.value for s in self.statuses[j]],
                    "event_timestamps": [iso(t) for t in self.event_timestamps[j]],
                }
                for j in range(len(self.features))
            ],
        }

    def to_arrow(self) -> pa.Table:
        """Entity keys, then per feature its typed value, ``<feature>__status`` and
        ``<feature>__event_timestamp`` columns."""
        import pyarrow as pa

        columns: dict[str, pa.Array] = {}
        for name in dict.fromkeys(k for row in self.entity_rows for k in row):
            columns[name] = pa.array([row.get(name) for row in self.entity_rows])
        for j, ref in enumerate(self.features):
            columns[ref] = pa.array(list(self.values[j]), type=_arrow_type(self.dtypes[j]))
            columns[f"{ref}__status"] = pa.array([s.value for s in self.statuses[j]])
            columns[f"{ref}__event_timestamp"] = pa.array(
                list(self.event_timestamps[j]), type=pa.timestamp("us", tz="UTC")
            )
        return pa.table(columns)

    def to_pandas(self) -> Any:
        """``to_arrow()`` as a pandas DataFrame (needs pandas): integer features with missing
        values become nullable ``Int64``, not float, so a key or count is never rounded."""
        import pandas as pd

        return self.to_arrow().to_pandas(types_mapper={_arrow_type("int64"): pd.Int64Dtype()}.get)

    def to_polars(self) -> Any:
        """``to_arrow()`` as a polars DataFrame (needs polars)."""
        import polars as pl

        return pl.from_arrow(self.to_arrow())


def _jsonable(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value
