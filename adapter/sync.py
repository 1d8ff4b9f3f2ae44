"""Sync: stream "the latest row per entity within ttl" from the warehouse into Redis.

Per view, under the view's lock:

* **full refresh** (first sync, ``--full-refresh``, a changed definition, a view stored in an
  older key layout, or upstream rows that an incremental sync cannot place: see
  ``sync_plan``): rows go to a new generation, its bucket count sized for the entities; one
  atomic step publishes it (readers switch from the complete old snapshot to the complete new
  one), then the old generation is deleted. A sync killed midway leaves its generation
  recorded as ``pending`` in the view's meta hash; the next sync deletes it.
* **incremental** (default): only the rows new since the last sync are read, and written by
  a server-side compare: a row never replaces one with a later (event, created) time.
  Either way Redis ends up serving what a full refresh would.

Batches stream from the warehouse cursor to Redis (one ``HSET`` per bucket a batch touches;
a full refresh sets the buckets' expiries once all rows are in), the warehouse computing the
next ones meanwhile (``warehouse_read``): memory does not grow with the table.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import redis

from dbt_features.errors import (
    DefinitionError,
    OnlineStoreError,
    UsageError,
    WarehouseValueError,
)
from dbt_features.registry import FeatureView
from dbt_features.warehouse import Warehouse

from .cluster import REDIS_FAILURES
from .encoder import BlobEncoder, ValueOutOfRange, locate_batch
from .eviction import check_eviction
from .generations import drop_dead_generations, drop_generation, new_generation, publish
from .lock import SyncLock
from .micros import iso_micros
from .routing import BucketWriters
from .scripts import WRITE_IF_NEWER
from .servable import check_servable
from .sync_plan import SyncPlan, observed_plan, plan_sync, reads_relation
from .warehouse_read import bounded_memory, latest_batches
from .writer import (Grouped, PipelinedWriter, bucket_spans, bulk, evalsha_commands, fixed_spans,
                     full_hint, hset_commands, pexpireat_commands)

if TYPE_CHECKING:
    from .online import OnlineStore

DEFAULT_BATCH_SIZE = 32_768
CONDITIONAL_CHUNK = 500
Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class SyncOptions:
    """How ``sync`` runs (one record, passed down as is)."""

    full_refresh: bool = False
    from_sql: bool = False
    """Read the models' compiled SQL instead of their relations."""
    batch_size: int = DEFAULT_BATCH_SIZE
    allow_eviction: bool = False
    """Sync even into a Redis whose eviction policy can drop keys (warned about loudly)."""
    progress: Progress | None = None


@dataclass(frozen=True)
class ViewSync:
    """What one view's sync did."""

    view: str
    mode: str
    """``full`` or ``incremental``."""
    reason: str
    entities: int
    """Rows (one per entity) read from the warehouse."""
    written: int
    """Values written (incremental syncs skip rows older than what Redis holds)."""
    keys: int
    seconds: float
    generation: int
    watermark: str | None
    """Greatest created time (event time without created_timestamp) taken into account."""
    fingerprint: str
    warnings: tuple[str, ...] = ()

    @property
    def rate(self) -> float:
        return self.entities / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"entities_per_second": round(self.rate)}

    def summary(self) -> str:
        mark = f", watermark {self.watermark}" if self.watermark else ""
        return (
            f"{self.view}: {self.mode} ({self.reason}): {self.entities:,} entities read, "
            f"{self.written:,} written, {self.keys:,} keys, {self.seconds:.2f} s "
            f"({self.rate:,.0f}/s){mark}"
        )


def sync_views(views: list[FeatureView], online: "OnlineStore",
               warehouse: Callable[[], Warehouse], options: SyncOptions = SyncOptions()) -> list[ViewSync]:
    """Sync ``views`` (the online ones chosen by the caller, see ``online_views``) one after
    the other, through one warehouse connection (the dbt profile's)."""
    if options.batch_size < 1:
        raise UsageError(f"--batch-size must be a positive number of rows, not {options.batch_size}.")
    for view in views:
        check_servable(view)
    warning = check_eviction(online.client, online.where, allow=options.allow_eviction)
    with warehouse() as wh:
        results = [sync_view(online, view, wh, options) for view in views]
    if warning:
        results = [replace(r, warnings=(warning, *r.warnings)) for r in results]
    return results


def online_views(chosen: list[FeatureView], select: str | None, verb: str) -> list[FeatureView]:
    """The online views among ``chosen``, or a usage error saying why there are none."""
    views = [v for v in chosen if v.online]
    if views:
        return views
    offline = [v.name for v in chosen]
    if select and offline:
        raise UsageError(
            f"--select {select!r} matches only feature views that are not online "
            f"({', '.join(offline)}): set `online: true` in their config.meta.feature_store."
        )
    raise UsageError(
        f"no online feature views to {verb}"
        + (f" match --select {select!r}" if select else "")
        + ": mark a view with `online: true` in its config.meta.feature_store."
    )


def sync_view(
    online: "OnlineStore",
    view: FeatureView,
    warehouse: Warehouse,
    options: SyncOptions = SyncOptions(),
    *,
    now: datetime | None = None,
) -> ViewSync:
    """Sync one view under its lock: decide full or incremental (``plan_sync``), stream the
    rows, then publish the results in one step."""
    check_servable(view)
    started = time.perf_counter()
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    try:
        with SyncLock(online.client, online.keys.lock(view.name), view.name) as lock:
            meta = _meta(online.client, online.keys.meta(view.name))
            drop_dead_generations(online, view.name, meta)
            with bounded_memory(warehouse, reads_relation(view, options.from_sql)):
                plan = plan_sync(view, warehouse, meta, now, full_refresh=options.full_refresh,
                                 from_sql=options.from_sql)
                gen = new_generation(online, view.name, plan, now)
                try:
                    stats, plan = _stream(online, view, warehouse, plan, gen, options, lock)
                except WarehouseValueError as exc:
                    raise WarehouseValueError(f"feature view {view.name!r} ({view.file}): "
                                              f"{exc.message}", columns=exc.columns) from exc
            keys = stats.rows if plan.full else (_int(meta.get("keys")) or 0) + stats.created
            replicated = publish(online, view, lock.token, plan, gen, keys)
            if plan.full and plan.previous_gen is not None and replicated:
                drop_generation(online, view.name, plan.previous_gen)
                online.client.hdel(online.keys.meta(view.name), "retired")
    except REDIS_FAILURES as exc:
        detail = online.config.scrub(str(exc))
        raise OnlineStoreError(f"sync of {view.name!r} to Redis at {online.where} failed: "
                               f"{detail}{full_hint(detail)}") from exc
    return ViewSync(
        view=view.name, mode="full" if plan.full else "incremental", reason=plan.reason,
        entities=stats.rows, written=stats.written, keys=keys,
        seconds=time.perf_counter() - started, generation=int(gen.split(".")[0]),
        watermark=iso_micros(plan.state.watermark_us), fingerprint=view.fingerprint,
    )


_UNSET = np.iinfo(np.int64).min


@dataclass
class _Stats:
    rows: int = 0
    written: int = 0
    created: int = 0


def _stream(
    online: "OnlineStore", view: FeatureView, warehouse: Warehouse, plan: SyncPlan, gen: str,
    options: SyncOptions, lock: SyncLock,
) -> tuple[_Stats, SyncPlan]:
    """Read and write every row; the plan as completed by a read that observes its digest
    (``sync_plan.observed_plan``: the buckets are sized once the first rows come)."""
    assert view.timestamp is not None
    created = view.created_timestamp.name if view.created_timestamp else None
    stats = _Stats()
    writes: _Writes | None = None
    broken = True
    try:
        with latest_batches(warehouse, plan.read, options.batch_size) as batches:
            for batch in batches:
                if lock.lost:
                    raise OnlineStoreError(
                        f"sync of {view.name!r} lost its lock (Redis unreachable for "
                        "30 s?); nothing was published: run it again."
                    )
                if batch.num_rows == 0:
                    continue
                if writes is None:
                    plan = _observed(plan, warehouse, sized=False)
                    writes, encoder = _Writes.open(online, view, plan, gen), BlobEncoder(plan.schema)
                blobs, ets = _encode(encoder, batch, view, created)
                buckets, fields = locate_batch(batch, view.entity.key_names,
                                               plan.schema.key_dtypes, plan.schema.buckets)
                writes.batch(buckets, fields, blobs, ets)
                stats.rows += batch.num_rows
                if options.progress is not None:
                    options.progress(view.name, stats.rows)
        plan = _observed(plan, warehouse, sized=writes is not None)  # the final values
        writes = writes or _Writes.open(online, view, plan, gen)
        writes.finish(stats)
        broken = False
    finally:
        if writes is not None:
            writes.writers.close(broken=broken)
    return stats, plan


def _observed(plan: SyncPlan, warehouse: Warehouse, *, sized: bool) -> SyncPlan:
    if plan.read.observed is None:
        return plan
    return observed_plan(plan, warehouse.observed_values(plan.read.observed), sized=sized)


@dataclass
class _Writes:
    """The writes of one sync into one generation: a full refresh sends plain ``HSET``s per
    bucket and sets each bucket's expiry once the rows are all in (the latest of its rows'), an
    incremental sync the server-side compare (``WRITE_IF_NEWER``), in calls of one bucket each
    on a Redis Cluster (a script's keys must share a slot there)."""

    writers: BucketWriters
    base: bytes
    """The generation's key prefix; a bucket's key is this and its number."""
    ttl_ms: int
    full: bool
    sha: str
    head_size: int
    expiries: np.ndarray | None

    @classmethod
    def open(cls, online: "OnlineStore", view: FeatureView, plan: SyncPlan, gen: str) -> "_Writes":
        ttl_ms = (view.ttl_seconds or 0) * 1000
        expiries = np.full(plan.schema.buckets, _UNSET, dtype=np.int64) if plan.full and ttl_ms else None
        base = online.keys.generation(view.name, gen.split(".")[0]).encode()
        return cls(
            writers=BucketWriters.open(online.client, online.config, base, plan.schema.buckets),
            base=base, ttl_ms=ttl_ms, full=plan.full,
            sha="" if plan.full else online.client.script_load(WRITE_IF_NEWER),
            head_size=plan.schema.head_size, expiries=expiries,
        )

    def batch(self, buckets: np.ndarray, fields: pa.Array, blobs: pa.Array, ets: np.ndarray) -> None:
        for writer, rows in self.writers.parts(buckets):
            if rows is None:
                self._send(writer, buckets, fields, blobs, ets)
            else:
                taken = pa.array(rows)
                self._send(writer, buckets[rows], fields.take(taken), blobs.take(taken), ets[rows])

    def _send(self, writer: PipelinedWriter, buckets: np.ndarray, fields: pa.Array,
              blobs: pa.Array, ets: np.ndarray) -> None:
        if self.full:
            groups = Grouped.of(buckets)
            writer.send_counted(*hset_commands(self.base, groups, fields, blobs))
            if self.expiries is not None:
                touched = groups.buckets
                latest = groups.maxima(ets) // 1000 + self.ttl_ms
                self.expiries[touched] = np.maximum(self.expiries[touched], latest)
            return
        if self.writers.clustered:  # rows bucket by bucket, one call per bucket
            order = Grouped.of(buckets)
            rows = pa.array(order.order)
            buckets, fields, blobs, ets = (buckets[order.order], fields.take(rows),
                                           blobs.take(rows), ets[order.order])
            spans = bucket_spans(order, CONDITIONAL_CHUNK)
        else:
            spans = fixed_spans(len(buckets), CONDITIONAL_CHUNK)
        pxat = pa.array(ets // 1000 + self.ttl_ms if self.ttl_ms else np.zeros(len(ets), np.int64))
        keys = pc.binary_join_element_wise(
            self.base, pa.array(buckets).cast(pa.string()).cast(pa.binary()), b"")
        args = pc.binary_join_element_wise(bulk(fields), bulk(blobs), bulk(pxat.cast(pa.string())), b"")
        lead = str(self.head_size).encode()
        writer.send_commands(evalsha_commands(self.sha, keys, args, lead, spans))

    def finish(self, stats: _Stats) -> None:
        """Set the buckets' expiries, wait for every reply and count what was written."""
        if self.expiries is not None and stats.rows:
            touched = np.flatnonzero(self.expiries != _UNSET)
            for writer, rows in self.writers.parts(touched):
                chosen = touched if rows is None else touched[rows]
                writer.send_counted(pexpireat_commands(self.base, chosen, self.expiries[chosen]),
                                    len(chosen))
        if self.full:
            stats.written = stats.rows
        for created_n, written_n in self.writers.flush():
            stats.created += int(created_n)
            stats.written += int(written_n)


def _encode(encoder: BlobEncoder, batch: pa.RecordBatch, view: FeatureView,
            created: str | None) -> tuple[pa.Array, np.ndarray]:
    assert view.timestamp is not None
    try:
        return encoder.encode(batch, view.timestamp.name, created)
    except ValueOutOfRange as exc:
        raise DefinitionError(
            f"feature view {view.name!r} ({view.file}): column {exc.column!r} holds {exc.value}, "
            f"which the online store cannot hold ({exc.limit}); cast or clamp it in the model."
        ) from exc


def _meta(client: redis.Redis, key: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in client.hgetall(key).items()}


def _int(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None
