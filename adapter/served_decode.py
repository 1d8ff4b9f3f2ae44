"""The served-value log (``served_log``) decoded: its entries to Arrow tables, one per view.

Each entry is one logged request; each of its views becomes one row per entity row, with the
columns of the contract the replay reads (``served_export``'s docstring): the blobs decoded
with the schema of the generation they were read from (kept in the generations hash, so a
replaced generation still decodes), values null unless the row was served ``present``.
``read_served`` reads the whole stream and leaves it as it is.
"""

from __future__ import annotations

import json
import marshal
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dbt_features.errors import OnlineStoreError

from .cluster import REDIS_FAILURES
from .codec import Codec, Schema
from .layout import parse_entity_suffix
from .response import Status
from .served_log import generation_field

if TYPE_CHECKING:
    from .online import OnlineStore

CHUNK = 5_000
"""Stream entries read per call (and exported per file)."""
_ARROW = {"int64": pa.int64(), "double": pa.float64(), "bool": pa.bool_(), "string": pa.string(),
          "timestamp": pa.timestamp("us"), "date": pa.date32(),
          "timestamp_tz": pa.timestamp("us", tz="UTC")}
"""Arrow types as training sets return them (``training._typed``): a timestamp feature is
``timestamp_tz`` when the warehouse types it with a time zone."""
_TIME = pa.timestamp("us", tz="UTC")
PRESENT, NOT_FOUND, EXPIRED = (s.value for s in (Status.PRESENT, Status.NOT_FOUND, Status.EXPIRED))


@dataclass(frozen=True)
class _Generation:
    """What decoding one generation of a view needs (kept in the generations hash)."""

    codec: Codec
    fingerprint: str | None
    aware: frozenset[str]
    """Timestamp features with a time zone in the warehouse."""
    keys: tuple[tuple[str, str], ...]
    features: tuple[str, ...]
    """Every feature of the view in this generation: declared order, then any other."""
    ttl_us: int
    """The ttl the reads judged expiry by (0: none)."""


@dataclass
class ViewRows:
    """One view's rows of a chunk, column by column."""

    keys: tuple[tuple[str, str], ...]
    columns: dict[str, list[Any]] = field(default_factory=dict)
    dtypes: dict[str, str] = field(default_factory=dict)
    n: int = 0

    def add(self, name: str, values: list[Any], dtype: str | None = None) -> None:
        column = self.columns.get(name)
        if column is None:
            column = self.columns[name] = [None] * self.n
            if dtype is not None:
                self.dtypes[name] = dtype
        column.extend(values)

    def close_rows(self, count: int) -> None:
        self.n += count
        for column in self.columns.values():
            if len(column) < self.n:
                column.extend([None] * (self.n - len(column)))

    def table(self) -> pa.Table:
        fixed = [("request_time", _TIME), ("request_id", pa.string()),
                 *((name, _ARROW[dtype]) for name, dtype in self.keys),
                 ("generation", pa.string()), ("fingerprint", pa.string()),
                 ("status", pa.string()), ("event_timestamp", _TIME),
                 ("served_features", pa.list_(pa.string()))]
        fields = [pa.field(n, t) for n, t in fixed]
        fields += [pa.field(n, _ARROW[self.dtypes[n]]) for n in self.columns
                   if n in self.dtypes]
        arrays = [pa.array(self.columns[f.name], f.type) for f in fields]
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


class Decoder:
    """Entries of the stream to rows per view (generations looked up once each)."""

    def __init__(self, online: OnlineStore) -> None:
        self.online = online
        self.generations: dict[str, _Generation] = {}
        self.plans: dict[bytes, list[Any]] = {}

    def generation(self, view: str, gen: str) -> _Generation:
        name = generation_field(view, gen)
        found = self.generations.get(name)
        if found is None:
            text = self.online.client.hget(self.online.keys.served_generations(), name)
            if text is None:
                raise OnlineStoreError(
                    f"the served log names generation {gen} of {view!r}, whose schema is not in "
                    f"{self.online.keys.served_generations()} at {self.online.where} (deleted by "
                    "hand?): its entries cannot be decoded.")
            info = json.loads(text)
            codec = Codec(Schema.parse(info["schema"]))
            declared = [f for f in info["features"] if f in codec.names]
            found = self.generations[name] = _Generation(
                codec, info["fingerprint"], frozenset(info.get("aware", ())),
                tuple((k, t) for k, t in info["keys"]),
                tuple(declared + [f for f in codec.names if f not in declared]),
                int(info["ttl_seconds"] or 0) * 1_000_000)
        return found

    def add(self, entry_id: bytes, fields: dict[bytes, bytes],
            views: dict[str, ViewRows]) -> None:
        try:
            self._add(fields, views)
        except REDIS_FAILURES as exc:
            raise failed(self.online, "reading the served log's generations", exc) from exc
        except (ValueError, KeyError, TypeError, IndexError, EOFError) as exc:
            raise OnlineStoreError(
                f"entry {entry_id.decode()} of the served log {self.online.keys.served_log()} "
                f"is not one dbt-features wrote ({type(exc).__name__}: {exc}); delete it "
                "(XDEL) and export again.") from exc

    def _add(self, fields: dict[bytes, bytes], views: dict[str, ViewRows]) -> None:
        plan = self.plans.get(fields[b"v"])
        if plan is None:
            plan = self.plans[fields[b"v"]] = json.loads(fields[b"v"])
        now_us = int(fields[b"t"])
        request_id = fields[b"r"].decode()
        gens = fields[b"g"].decode().split(",")
        keys = marshal.loads(fields[b"k"])
        missing = {int(i) for i in fields[b"m"].split(b",")} if fields[b"m"] else set()
        data, offset, at = fields[b"b"], 0, 0
        for (view, group, served), gen in zip(plan, gens):
            info = self.generation(view, gen)
            rows = views.get(view)
            if rows is None:
                rows = views[view] = ViewRows(info.keys)
            blobs: list[bytes | None] = []
            for _ in keys[group]:
                if at in missing:
                    blobs.append(None)
                else:
                    end = info.codec.end_of(data, offset)
                    blobs.append(data[offset:end])
                    offset = end
                at += 1
            _add_view_rows(rows, info, now_us, request_id, gen, served, keys[group], blobs)
        if offset != len(data):
            raise ValueError(f"{len(data) - offset} bytes of blobs left over")


def _add_view_rows(rows: ViewRows, info: _Generation, now_us: int, request_id: str, gen: str,
                   served: list[str], keys: list[Any], blobs: list[bytes | None]) -> None:
    n = len(blobs)
    rows.add("request_time", [now_us] * n)
    rows.add("request_id", [request_id] * n)
    if len(info.keys) == 1:
        rows.add(info.keys[0][0], list(keys))
    else:
        parsed = [parse_entity_suffix(k, [t for _, t in info.keys]) for k in keys]
        for j, (name, _dtype) in enumerate(info.keys):
            rows.add(name, [p[j] for p in parsed])
    rows.add("generation", [gen] * n)
    rows.add("fingerprint", [info.fingerprint] * n)
    # The statuses the read served: it judged the ttl at the request time, as here.
    statuses: list[str] = []
    events: list[int | None] = []
    values: list[list[Any] | None] = []
    for blob in blobs:
        if blob is None:
            statuses.append(NOT_FOUND)
            events.append(None)
            values.append(None)
            continue
        event_us, _created, decoded = info.codec.decode(blob)
        events.append(event_us)
        if info.ttl_us and now_us > event_us + info.ttl_us:
            statuses.append(EXPIRED)
            values.append(None)
        else:
            statuses.append(PRESENT)
            values.append(decoded)
    rows.add("status", statuses)
    rows.add("event_timestamp", events)
    rows.add("served_features", [served] * n)
    codec = info.codec
    for name in info.features:
        position = codec.names.index(name)
        dtype = "timestamp_tz" if name in info.aware else codec.dtypes[position]
        rows.add(name, [None if v is None else v[position] for v in values], dtype)
    rows.close_rows(n)


def entries(online: OnlineStore, start: bytes | str, end: bytes | str,
             count: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
    try:
        return online.client.xrange(online.keys.served_log(), start, end, count=count)
    except REDIS_FAILURES as exc:
        raise failed(online, "reading the served log", exc) from exc


def failed(online: OnlineStore, doing: str, exc: BaseException) -> OnlineStoreError:
    return OnlineStoreError(f"{doing} at {online.where} failed: "
                            f"{online.config.scrub(str(exc))}")


def read_served(online: OnlineStore) -> dict[str, pa.Table]:
    """The whole served log as one table per view (the stream is left as it is)."""
    decoder = Decoder(online)
    views: dict[str, ViewRows] = {}
    start: bytes | str = "-"
    while True:
        chunk = entries(online, start, "+", CHUNK)
        for entry_id, fields in chunk:
            decoder.add(entry_id, fields, views)
        if len(chunk) < CHUNK:
            return {name: rows.table() for name, rows in sorted(views.items())}
        start = b"(" + chunk[-1][0]


def truncate(rows: ViewRows, n: int) -> None:
    """Drop ``rows``' rows from the ``n``-th on."""
    for column in rows.columns.values():
        del column[n:]
    rows.n = n
