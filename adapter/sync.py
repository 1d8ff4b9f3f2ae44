"""Sync: stream "the latest row per entity within ttl" from the warehouse into Redis.

Per view, under the view's lock:

* **full refresh** (first sync, ``--full-refresh``, or a changed definition): rows go to a new
  generation; one atomic step publishes it (readers switch from the complete old snapshot to
  the complete new one), then the old generation is deleted. A sync killed midway leaves its
  generation recorded as ``pending`` in the view's meta hash; the next sync deletes it.
* **incremental** (default): only rows at or after the watermark (created time if declared,
  else event time) are read, and written by a server-side compare: a row never replaces one
  with a later (event, created) time; equal times replace (a corrected row).

Batches stream from the warehouse cursor to Redis: memory does not grow with the table.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import redis

from dbt_features.errors import DefinitionError, OnlineStoreError
from dbt_features.registry import FeatureView
from dbt_features.warehouse import Warehouse

from .layout import Codec, Keys, Schema, entity_suffixes, from_micros, full_keys, micros
from .lock import SyncLock
from .query import SHARDED_DIALECTS, count_query, latest_query
from .scripts import COMMIT, WRITE_IF_NEWER
from .writer import PipelinedWriter, evalsha_commands, set_commands

if TYPE_CHECKING:
    from dbt_features.store import FeatureStore

    from .online import OnlineStore

DEFAULT_BATCH_SIZE = 32_768
CONDITIONAL_CHUNK = 500
Progress = Callable[[str, int], None]


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
    watermark_created: str | None
    fingerprint: str

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


def check_servable(view: FeatureView) -> None:
    """A view can be synced and read only if it is online and has an event timestamp."""
    from dbt_features.errors import UsageError

    if not view.online:
        raise UsageError(
            f"feature view {view.name!r} ({view.file}) is not online: set `online: true` in its "
            "config.meta.feature_store to serve it."
        )
    if view.timestamp is None:
        raise DefinitionError(
            f"feature view {view.name!r} ({view.file}) has no timestamp: the online store "
            "serves the latest row per entity, so set config.meta.feature_store.timestamp to "
            "its event-time column."
        )


def signature(view: FeatureView, schema: Schema) -> str:
    """What must not change between incremental syncs of one generation."""
    text = "\n".join([view.fingerprint, schema.text(), str(view.ttl_seconds or 0)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def sync_views(
    store: "FeatureStore",
    select: str | None = None,
    *,
    full_refresh: bool = False,
    from_sql: bool = False,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> list[ViewSync]:
    """Sync every online view matching ``select`` (a dbt selector), one after the other,
    through one warehouse connection (the dbt profile's)."""
    from dbt_features.errors import UsageError

    chosen = store.select(select)
    if select:
        offline = [v.name for v in chosen if not v.online]
        if offline and len(offline) == len(chosen):
            raise UsageError(
                f"--select {select!r} matches only feature views that are not online "
                f"({', '.join(offline)}): set `online: true` in their config.meta.feature_store."
            )
    views = [v for v in chosen if v.online]
    if not views:
        raise UsageError(
            "no online feature views to sync"
            + (f" match --select {select!r}" if select else "")
            + ": mark a view with `online: true` in its config.meta.feature_store."
        )
    if batch_size is not None and batch_size < 1:
        raise UsageError(f"--batch-size must be a positive number of rows, not {batch_size}.")
    for view in views:
        check_servable(view)
    online = store.online
    results = []
    with store.warehouse() as warehouse:
        for view in views:
            results.append(
                sync_view(online, view, warehouse, full_refresh=full_refresh, from_sql=from_sql,
                          batch_size=batch_size or DEFAULT_BATCH_SIZE, progress=progress)
            )
    return results


def sync_view(
    online: "OnlineStore",
    view: FeatureView,
    warehouse: Warehouse,
    *,
    full_refresh: bool = False,
    from_sql: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> ViewSync:
    check_servable(view)
    client, keys = online.client, online.keys
    started = time.perf_counter()
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    schema = Schema.of(view)
    sig = signature(view, schema)
    meta_key = keys.meta(view.name)
    try:
        with SyncLock(client, keys.lock(view.name), view.name) as lock:
            meta = _meta(client, meta_key)
            drop_dead_generations(online, view.name, meta)
            current = meta.get("gen")
            if full_refresh:
                mode, reason = "full", "--full-refresh"
            elif current is None:
                mode, reason = "full", "first sync"
            elif meta.get("signature") != sig:
                mode, reason = "full", "definition changed since the last sync"
            else:
                mode, reason = "incremental", "new rows since the watermark"
            wm_event = _int(meta.get("watermark_us")) if mode == "incremental" else None
            wm_created = _int(meta.get("watermark_created_us")) if mode == "incremental" else None
            since_created = from_micros(wm_created) if wm_created and view.created_timestamp else None
            since_event = from_micros(wm_event) if wm_event and since_created is None else None
            shards = _shards(view, warehouse, from_sql)
            sqls = [
                latest_query(
                    view, warehouse.dialect, now, since_event=since_event,
                    since_created=since_created, from_sql=from_sql,
                    shard=(k, shards) if shards > 1 else None,
                )
                for k in range(shards)
            ]
            if mode == "full":
                gen = int(client.hincrby(meta_key, "gen_seq", 1))
                client.hset(meta_key, mapping={"pending": gen, "pending_started": now.isoformat()})
            else:
                gen = int(current)  # type: ignore[arg-type]
            stats = _stream(online, view, warehouse, sqls, schema, gen, mode, batch_size, lock, progress)
            n_keys = stats.rows if mode == "full" else _int(meta.get("keys")) or 0
            n_keys += stats.created if mode == "incremental" else 0
            wm = max(filter(None, [stats.max_event, wm_event]), default=None)
            wmc = max(filter(None, [stats.max_created, wm_created]), default=None)
            fields: dict[str, Any] = {
                "last_sync": now.isoformat(timespec="seconds"),
                "last_mode": mode,
                "keys": n_keys,
                "fingerprint": view.fingerprint,
                "signature": sig,
                "ttl_seconds": view.ttl_seconds or 0,
            }
            if wm:
                fields["watermark_us"] = wm
            if wmc:
                fields["watermark_created_us"] = wmc
            drop: list[str] = []
            if mode == "full":
                fields |= {"gen": gen, "schema": schema.text()}
                if current is not None:
                    fields["retired"] = current
                drop = ["pending", "pending_started"]
                if not wm:
                    drop += ["watermark_us"]
                if not wmc:
                    drop += ["watermark_created_us"]
            publish = str(gen) if mode == "full" else ""
            _commit(client, keys, view.name, lock.token, publish, fields, drop)
            if mode == "full" and current is not None:
                drop_generation(online, view.name, current)
                client.hdel(meta_key, "retired")
    except (redis.RedisError, OSError) as exc:
        raise OnlineStoreError(f"sync of {view.name!r} to Redis at {online.where} failed: {exc}") from exc
    return ViewSync(
        view=view.name, mode=mode, reason=reason, entities=stats.rows, written=stats.written,
        keys=n_keys, seconds=time.perf_counter() - started, generation=gen,
        watermark=_iso(wm), watermark_created=_iso(wmc), fingerprint=view.fingerprint,
    )


@dataclass
class _Stats:
    rows: int = 0
    written: int = 0
    created: int = 0
    max_event: int | None = None
    max_created: int | None = None


def _stream(
    online: "OnlineStore", view: FeatureView, warehouse: Warehouse, sqls: list[str], schema: Schema,
    gen: int, mode: str, batch_size: int, lock: SyncLock, progress: Progress | None,
) -> _Stats:
    assert view.timestamp is not None
    codec = Codec(schema)
    event = view.timestamp.name
    created = view.created_timestamp.name if view.created_timestamp else None
    key_names = view.entity.key_names
    prefix = online.keys.generation(view.name, gen)
    ttl_ms = (view.ttl_seconds or 0) * 1000
    sha = online.client.script_load(WRITE_IF_NEWER) if mode == "incremental" else ""
    stats = _Stats()
    writer = PipelinedWriter(online.client, online.where)
    broken = True
    try:
        for batch in _batches(warehouse, sqls, batch_size):
            if lock.lost:
                raise OnlineStoreError(
                    f"sync of {view.name!r} lost its lock (Redis unreachable for "
                    "30 s?); nothing was published: run it again."
                )
            if batch.num_rows == 0:
                continue
            blobs, ets = codec.encode(batch, event, created)
            entity_keys = full_keys(prefix, entity_suffixes(batch, key_names))
            pxat = pa.array(ets // 1000 + ttl_ms).cast(pa.string()) if ttl_ms else None
            if mode == "full":
                writer.send_sets(set_commands(entity_keys, blobs, pxat), batch.num_rows)
                stats.written += batch.num_rows
            else:
                pxat = pxat if pxat is not None else pa.array(["0"] * batch.num_rows)
                writer.send_commands(
                    evalsha_commands(sha, entity_keys, blobs, pxat, CONDITIONAL_CHUNK)
                )
            stats.rows += batch.num_rows
            stats.max_event = _max(stats.max_event, ets)
            if created is not None:
                stats.max_created = _max(stats.max_created, _created_us(batch.column(created)))
            if progress is not None:
                progress(view.name, stats.rows)
        for created_n, written_n in writer.flush():
            stats.created += int(created_n)
            stats.written += int(written_n)
        broken = False
    finally:
        writer.close(broken=broken)
    return stats


SHARD_ROWS = 1_000_000
"""In-process warehouses (DuckDB) read at most about this many rows per pass."""
IN_PROCESS_SETTINGS = {"duckdb": (("SET memory_limit = '32MB'", "RESET memory_limit"),)}
"""Session settings (and how to undo them) while syncing a sharded view from an in-process
engine: its working memory is ours (DuckDB spills to disk beyond the limit). 32 MB: measured
at 1M entities (10M rows, 10 shards), peak RSS ~395 MB with 64 MB, ~366 MB with 32 MB, at the
same speed (threads = 1 saves ~15 MB more but was ~10% slower)."""


def _shards(view: FeatureView, warehouse: Warehouse, from_sql: bool) -> int:
    """How many hash shards to read a view in: 1 unless the engine runs in this process and
    the relation is big (then the peak memory stays that of ~SHARD_ROWS rows)."""
    if warehouse.dialect not in SHARDED_DIALECTS or from_sql or view.materialized == "ephemeral":
        return 1
    rows = warehouse.arrow(count_query(view, warehouse.dialect)).column(0)[0].as_py() or 0
    return max(1, -(-int(rows) // SHARD_ROWS))


def _batches(warehouse: Warehouse, sqls: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
    settings = IN_PROCESS_SETTINGS.get(warehouse.dialect, ()) if len(sqls) > 1 else ()
    con = getattr(warehouse, "con", None)
    if con is None:
        settings = ()
    for statement, _ in settings:
        con.execute(statement)  # type: ignore[union-attr]
    try:
        for sql in sqls:
            yield from warehouse.batches(sql, batch_size)
    finally:
        for _, undo in settings:
            con.execute(undo)  # type: ignore[union-attr]


def _created_us(column: pa.Array) -> np.ndarray:
    valid = column.filter(pc.is_valid(column)) if column.null_count else column
    return micros(valid)


def _max(current: int | None, values: np.ndarray) -> int | None:
    if len(values) == 0:
        return current
    top = int(values.max())
    return top if current is None else max(current, top)


def _commit(
    client: redis.Redis, keys: Keys, view: str, token: str, publish: str,
    fields: dict[str, Any], drop: list[str],
) -> None:
    """Publish the sync's results (and generation ``publish``, if any) in one step, only if
    this sync still holds the lock."""
    flat: list[Any] = []
    for name, value in fields.items():
        flat += [name, value]
    try:
        client.eval(COMMIT, 3, keys.meta(view), keys.lock(view), keys.current(view), token,
                    publish, len(fields), *flat, *drop)
    except redis.ResponseError as exc:
        if "LOCKLOST" in str(exc):
            raise OnlineStoreError(
                "the sync lost its lock before publishing (it was stopped for over 30 s?); "
                "nothing was published: run it again."
            ) from exc
        raise


def drop_dead_generations(online: "OnlineStore", view: str, meta: dict[str, str]) -> None:
    """Delete generations a killed sync left behind (called under the view's lock)."""
    meta_key = online.keys.meta(view)
    for field_name in ("pending", "retired"):
        gen = meta.get(field_name)
        if gen is not None and gen != meta.get("gen"):
            drop_generation(online, view, gen)
        if gen is not None:
            online.client.hdel(meta_key, field_name, *(("pending_started",) if field_name == "pending" else ()))


def drop_generation(online: "OnlineStore", view: str, gen: int | str) -> int:
    """UNLINK every key of one generation of a view (SCAN, so Redis is never blocked)."""
    client = online.client
    pattern = online.keys.generation_pattern(view, gen)
    removed = 0
    chunk: list[bytes] = []
    for key in client.scan_iter(match=pattern, count=10_000):
        chunk.append(key)
        if len(chunk) >= 5_000:
            removed += client.unlink(*chunk)
            chunk = []
    if chunk:
        removed += client.unlink(*chunk)
    return removed


def _meta(client: redis.Redis, key: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in client.hgetall(key).items()}


def _int(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None


def _iso(us: int | None) -> str | None:
    return from_micros(us).isoformat() if us else None


