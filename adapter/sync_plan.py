"""Deciding how a view is synced: full refresh or incremental, and the queries that do it.

An incremental sync must leave Redis serving exactly what a full refresh would. Reading only the
rows past a watermark does that if, and only if, no row the previous sync had taken into account
was updated, deleted or joined late since. One aggregate pass (``digest.digest_query``) checks it:
a row count and an order-independent digest of those rows, compared with the ones the previous
sync recorded (with a ttl, over the rows a sync can still serve: ``query.digest_floor``). Any
difference, and the sync is a full refresh that says why. Otherwise the new rows alone are
read; under ``pit.recency_order`` each is strictly newer or strictly older than
what Redis holds for its entity (``query._unsettled``), so the server-side compare of
(event time, created time) settles it exactly.

A view stored in an older key layout (``codec.FORMAT_VERSION``) always gets a full refresh,
which says so. A full refresh counts (where the engine can, estimates: ``query.ESTIMATED_COUNT``)
the entities first, to size the new generation's buckets (``layout.bucket_count``); one known
before the digest's pass (asked for, a first sync, a changed definition) estimates them in that
pass, which the sync needs anyway to record what it settled; where the warehouse observes a read
(a dbt-spark session: ``Warehouse.observes``), such a full refresh runs no pass at all, its read
computing both over the rows it scans (``digest.observed_rows``, ``observed_plan``). An
incremental sync writes into the served generation's buckets.

NULL created times are compared like any other row: a new row with a NULL created time at or
before the watermark makes the next sync a full refresh (it cannot be placed after the
watermark), and a row with a future event time is read once its time has come.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from dbt_features.errors import WarehouseError
from dbt_features.registry import FeatureView
from dbt_features.warehouse import Observed, Warehouse

from .codec import FORMAT_VERSION, Schema, schema_version
from .layout import bucket_count, integer_keyed
from .micros import from_micros, moment_micros, to_micros
from .digest import DIGEST_SUM, digest_query, observed_digest, observed_rows
from .query import (ENTITIES, ESTIMATED_COUNT, SHARDED_DIALECTS, Boundary, digest_floor,
                    entity_count_query, latest_query)

SHARD_ROWS = 2_000_000
"""In-process warehouses (DuckDB) read at most about this many rows per pass (a pass that
still runs out of memory is split in two, see ``warehouse_read``). Every pass scans the whole
relation: measured at 10M rows, 1M entities, 64 MB, 4 passes took 2.8 s and 20 took 8.1 s;
one pass ran out of memory."""


@dataclass(frozen=True)
class SyncState:
    """What a sync records for the next one (fields of the view's meta hash)."""

    now_us: int | None = None
    watermark_us: int | None = None
    settled_rows: int | None = None
    settled_digest: str | None = None
    floor_us: int | None = None
    """The oldest event time the digest covers (``query.digest_floor``); absent: every row (no
    ttl, or recorded by a version that digested every row: still compared exactly)."""

    @classmethod
    def from_meta(cls, meta: dict[str, str]) -> "SyncState":
        def number(name: str) -> int | None:
            value = meta.get(name)
            return int(value) if value not in (None, "") else None

        return cls(number("boundary_now_us"), number("watermark_us"), number("settled_rows"),
                   meta.get("settled_digest"), number("digest_floor_us"))

    @property
    def boundary(self) -> Boundary | None:
        if self.now_us is None or self.settled_rows is None:
            return None
        mark = None if self.watermark_us is None else from_micros(self.watermark_us)
        floor = None if self.floor_us is None else from_micros(self.floor_us)
        return Boundary(from_micros(self.now_us), mark, floor)

    def fields(self) -> dict[str, Any]:
        return {name: value for name, value in self._named().items() if value is not None}

    def absent(self) -> list[str]:
        return [name for name, value in self._named().items() if value is None]

    def _named(self) -> dict[str, Any]:
        return {"boundary_now_us": self.now_us, "watermark_us": self.watermark_us,
                "settled_rows": self.settled_rows, "settled_digest": self.settled_digest,
                "digest_floor_us": self.floor_us}


@dataclass(frozen=True)
class LatestRead:
    """What a sync reads: the latest row per entity (``query.latest_query``), rendered per hash
    shard of the entities when the engine runs in this process (bounded memory)."""

    view: FeatureView
    dialect: str
    now: datetime
    since: Boundary | None
    """Incremental: only the rows new since this boundary."""
    from_sql: bool
    shards: int
    shard_buckets: int | None = None
    """The bucket count, when shards follow the online store's buckets (``query.latest_query``)."""
    observed: Observed | None = None
    """A full refresh whose digest and entity estimate are observed during the read (``sql``
    then reads them by name: ``digest.observed_rows``)."""

    @property
    def shardable(self) -> bool:
        return self.dialect in SHARDED_DIALECTS

    def sql(self, shard: tuple[int, int] | None = None) -> str:
        return latest_query(self.view, self.dialect, self.now, since=self.since,
                            from_sql=self.from_sql, shard=shard, shard_buckets=self.shard_buckets,
                            source=None if self.observed is None else self.observed.name)


@dataclass(frozen=True)
class SyncPlan:
    """How one view is synced now."""

    full: bool
    reason: str
    schema: Schema
    """The blob format and key layout written to (a full refresh sizes new buckets)."""
    signature: str
    read: LatestRead
    state: SyncState
    """Recorded when the sync publishes."""
    current_id: str | None
    """The generation id being served (written to by an incremental sync)."""
    previous_gen: str | None
    """The generation number a full refresh replaces."""


def signature(view: FeatureView, schema: Schema) -> str:
    """What must not change between incremental syncs of one generation."""
    text = "\n".join([view.fingerprint, schema.blob_text(), str(view.ttl_seconds or 0)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan_sync(view: FeatureView, warehouse: Warehouse, meta: dict[str, str], now: datetime, *,
              full_refresh: bool, from_sql: bool) -> SyncPlan:
    """Full or incremental (see the module docstring), with the reason and the queries."""
    schema = Schema.of(view)
    sig = signature(view, schema)
    current = meta.get("gen_id")
    previous = SyncState.from_meta(meta)
    reason = _full_reason(full_refresh, current, meta.get("signature") != sig, previous,
                          schema_version(meta.get("schema")), to_micros(now))
    since = previous.boundary if reason is None else None
    dialect = warehouse.dialect
    floor = digest_floor(view, now)
    floor_us = None if floor is None else to_micros(floor)
    if reason is not None and warehouse.observes and dialect in DIGEST_SUM:
        observed = observed_rows(view, dialect, now, from_sql=from_sql)
        read = LatestRead(view, dialect, now, None, from_sql, 1, observed=observed)
        return SyncPlan(full=True, reason=reason, schema=schema, signature=sig, read=read,
                        state=SyncState(to_micros(now), floor_us=floor_us), current_id=current,
                        previous_gen=meta.get("gen"))
    counted = reason is not None and dialect in ESTIMATED_COUNT  # in the digest's pass
    row = warehouse.arrow(digest_query(view, dialect, now, since, from_sql=from_sql,
                                       entities=counted)).to_pylist()[0]
    settled_rows, settled_digest = int(row["settled_rows"] or 0), str(row["settled_digest"] or 0)
    if reason is None and (settled_rows, settled_digest) != (previous.settled_rows, previous.settled_digest):
        reason = (f"rows the last sync had seen were updated, deleted or arrived late "
                  f"({previous.settled_rows:,} rows then, {settled_rows:,} now); a full refresh "
                  "keeps the online store exact")
    state = SyncState(to_micros(now), _watermark_us(row["watermark"]), int(row["rows"] or 0),
                      str(row["digest"] or 0), floor_us)
    if reason is None:  # the served generation's layout
        schema = Schema.parse(meta["schema"])
    else:
        if not counted:  # a full refresh found by the digest, or no estimate: a pass of its own
            count = entity_count_query(view, dialect, now, from_sql=from_sql)
            row = warehouse.arrow(count).to_pylist()[0]
        schema = Schema.of(view, bucket_count(int(row[ENTITIES] or 0)))
    shards = _shards(view, dialect, from_sql, state.settled_rows or 0)
    read = LatestRead(view, dialect, now, since if reason is None else None, from_sql, shards,
                      schema.buckets if integer_keyed(schema.key_dtypes) else None)
    return SyncPlan(
        full=reason is not None, reason=reason or "new rows since the last sync", schema=schema,
        signature=sig, read=read, state=state, current_id=current,
        previous_gen=meta.get("gen") if reason is not None else None,
    )


def observed_plan(plan: SyncPlan, values: dict[str, Any] | None, *, sized: bool) -> SyncPlan:
    """``plan`` (a read that observes its digest) with what the read observed: the state to
    record and, unless ``sized`` (rows are written already), the generation's buckets sized for
    the entities. Observed before the first row is written and again once the read has ended
    (the values are final before the first row comes: ``spark_read.observed_frame``)."""
    assert plan.read.observed is not None
    if values is None:
        raise WarehouseError(
            f"the warehouse returned rows of feature view {plan.read.view.name!r} before the "
            "aggregates it observes over them (a bug of ours: please report it); nothing was "
            "written to the online store")
    state = replace(plan.state, watermark_us=values["watermark_us"],
                    settled_rows=int(values["rows"] or 0), settled_digest=observed_digest(values))
    if not sized:
        plan = replace(plan, schema=Schema.of(plan.read.view, bucket_count(int(values[ENTITIES] or 0))))
    return replace(plan, state=state)


def _full_reason(asked: bool, current: str | None, changed: bool, previous: SyncState,
                 version: int | None, now_us: int) -> str | None:
    if asked:
        return "--full-refresh"
    if current is None:
        return "first sync"
    if version != FORMAT_VERSION:
        return (f"the online store holds this view in an older layout (format {version}, now "
                f"{FORMAT_VERSION}); a full refresh rewrites it")
    if changed:
        return "definition changed since the last sync"
    if previous.boundary is None:
        return "the last sync recorded no watermark"
    if previous.now_us is not None and now_us < previous.now_us:
        # Rows between the two times were settled then and are in the future now; and the
        # digest's floor, which only moves forward, would leave rows unchecked.
        return "the clock is behind the last sync's"
    return None


def _watermark_us(value: Any) -> int | None:
    """The watermark in microseconds, rounded up: a column finer than microseconds must stay at
    or below it."""
    if hasattr(value, "value") and hasattr(value, "to_pydatetime"):  # pandas.Timestamp (ns)
        return math.ceil(value.value / 1000)
    return moment_micros(value)


def reads_relation(view: FeatureView, from_sql: bool) -> bool:
    """Whether a sync reads the view's relation (else the model's compiled SQL)."""
    return not from_sql and view.materialized != "ephemeral"


def _shards(view: FeatureView, dialect: str, from_sql: bool, rows: int) -> int:
    """How many hash shards to read a view in: 1 unless the engine runs in this process and
    the relation is big (then the peak memory stays that of ~SHARD_ROWS rows)."""
    if dialect not in SHARDED_DIALECTS or not reads_relation(view, from_sql):
        return 1
    return max(1, -(-rows // SHARD_ROWS))

