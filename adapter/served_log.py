"""The served-value log: what each online read returned, recorded without slowing the read.

A read (``OnlineStore.get_online_features``) hands ``ServedLog.record`` what it already has:
its request time, its plan, the generations and raw value blobs Redis returned, and the checked
entity keys. ``record`` samples, encodes the entry's stream command (the raw blobs as they are:
no decoding; a few microseconds) and appends it to a bounded in-memory buffer: no Redis call,
no lock. A daemon thread drains the buffer every few milliseconds and
writes the entries to a Redis Stream in the online store's Redis: small batches (``BATCH``
says why) per round trip, pipelined ``XADD ... MAXLEN ~ N`` commands. Not one Lua
script per batch: Redis copies a script's arguments twice, and the script holds Redis for the
whole batch; measured per 20 KB entry (100 entities), 43-59 us of Redis's time against 20 us
for a plain ``XADD``, and a read waited behind up to 1.9 ms. When the buffer is full, or Redis
refuses or cannot be reached, entries are dropped and counted (``dropped``); a read never
waits for the log and never fails because of it.

Keys (``layout.Keys``; ``P`` the key prefix, in braces on a Redis Cluster so both share a slot):

- ``P:@served_log``, a stream: one entry per logged request, with the fields
  ``t`` (request time: microseconds since the epoch, UTC, taken as Redis answered the read,
  just before it judged each value's ttl; ``s`` holds the statuses it then served),
  ``r`` (request id, unique per request),
  ``v`` (JSON: per view read, ``[view, key group, [requested features of the view]]``),
  ``g`` (the generation id each view was read from, comma-separated, in ``v``'s order),
  ``k`` (per key group, the entity keys in request order: an integer, a string, or the
  ``ENTITY`` text of composite keys, ``layout.entity_suffix``; a list of lists in Python's
  ``marshal`` format 4),
  ``b`` (the blobs: ``marshal`` format 4 of a list holding, view after view in ``v``'s order,
  one blob or None (not found) per entity row). ``marshal`` because it packs a list in one C
  call: the writer thread shares the GIL with the reads, and JSON of the keys alone took it
  longer than the rest of an entry; every later Python reads format 4 back.
  ``s`` (the status served for each view's rows, as the response said it: per view in ``v``'s
  order, separated by commas, either empty (all present) or one letter per row: ``p``
  present, ``n`` not found, ``e`` expired).
- ``P:@served_log:generations``, a hash: field ``view/generation``, value JSON of what decoding
  needs after that generation was replaced: ``schema`` (``codec.Schema.text``),
  ``ttl_seconds`` (the ttl the server judged expiry by), ``fingerprint`` (the definition's
  fingerprint the generation was synced from, or null), ``keys`` (join keys as ``[name,
  dtype]``), ``features`` (the view's features in declared order) and ``aware`` (its
  timestamp features typed with a time zone in the warehouse: training sets return those as
  UTC timestamps, the others without a zone, and so does the export). Written (``HSET``)
  ahead of the entries that need it, in the same pipeline.

On a Redis Cluster the log is one stream key, so on one master (the values it logs spread
over all of them); ``served_export`` turns it into Parquet files.
"""

from __future__ import annotations

import atexit
import itertools
import json
import logging
import marshal
import os
import random
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis
from hiredis import pack_command

from dbt_features.errors import UsageError
from dbt_features.registry import FeatureView
from dbt_features.timestamps import TZ, timestamp_kind

from .cluster import REDIS_FAILURES, is_cluster
from .metrics import family
from .response import Status

if TYPE_CHECKING:
    from .online import OnlineStore
    from .read_plan import ReadPlan

log = logging.getLogger("dbt_features.served_log")

DEFAULT_MAX_ENTRIES = 1_000_000
DEFAULT_BUFFER = 10_000
BATCH = 32
"""Entries per round trip. A read whose answer arrives while the writer thread runs Python waits
for the GIL: so entries reach the writer encoded (``record``) and a batch costs it tens of
microseconds (encoding 32 entries itself made a 1-entity read's p99 2.5-5x; now about 1.5x)."""
BATCH_BYTES = 256 * 1024
"""A batch stops growing past this many bytes of entries."""
IDLE_S = 0.005
GATHER_S = 0.001
"""After writing a batch that drained the buffer, the writer lets entries gather this long:
fewer, fuller batches wake it (and take the GIL) less often."""
"""How long the writer sleeps when the buffer is empty (no wake-up call on the read path)."""
FIELDS = (b"t", b"r", b"v", b"g", b"k", b"b", b"s")
"""The fields of a stream entry, in order (the module docstring says what each holds)."""
RETRY_S = 1.0
"""After Redis failed, entries are dropped for this long before the writer tries again."""


@dataclass(frozen=True)
class ServedLogOptions:
    """Log what online reads serve (``FeatureStore(served_log=ServedLogOptions(...))``, or
    ``dbt-features serve --log-served``).

    ``sample_rate``: the share of requests logged (0 to 1); ``max_entries``: the stream's
    length bound (the oldest entries are trimmed beyond it, about ``max_entries`` requests);
    ``buffer``: requests held in memory while the writer catches up (beyond it, dropped)."""

    sample_rate: float = 1.0
    max_entries: int = DEFAULT_MAX_ENTRIES
    buffer: int = DEFAULT_BUFFER

    def __post_init__(self) -> None:
        if not 0.0 <= self.sample_rate <= 1.0:
            raise UsageError(f"served log sample_rate {self.sample_rate!r} is not a share of "
                             "requests from 0 to 1, e.g. 0.1 for one request in ten.")
        for name in ("max_entries", "buffer"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise UsageError(f"served log {name} {value!r} must be a positive number of "
                                 "entries, e.g. 1000000.")


@dataclass(frozen=True)
class ServedLogCounts:
    """What the log did since the process started (the server's ``/metrics``)."""

    written: int
    dropped_buffer_full: int
    dropped_redis: int

    @property
    def dropped(self) -> int:
        return self.dropped_buffer_full + self.dropped_redis

    def metrics_text(self) -> str:
        """Prometheus text of the two counters."""
        out: list[str] = []
        family(out, "dbt_features_served_log_written_total", "counter",
               "Served-log entries (requests) written to the stream.", [("", self.written)])
        family(out, "dbt_features_served_log_dropped_total", "counter",
               "Served-log entries dropped: the buffer was full, or Redis failed.",
               [('reason="buffer_full"', self.dropped_buffer_full),
                ('reason="redis"', self.dropped_redis)])
        return "\n".join(out) + "\n"


_LETTERS = {Status.PRESENT: "p", Status.NOT_FOUND: "n", Status.EXPIRED: "e"}
STATUS_LETTERS = {"p": Status.PRESENT.value, "n": Status.NOT_FOUND.value,
                  "e": Status.EXPIRED.value}


def status_text(plan: ReadPlan, statuses: tuple[tuple[Status, ...], ...]) -> str:
    """The ``s`` field: each view's row statuses (those of its response columns the generation
    holds, which share them; features it lacks are not found throughout)."""
    parts = []
    for vp in plan.views:
        column = statuses[vp.columns[0]]
        n = len(column)
        if column.count(Status.NOT_FOUND) == n:  # maybe a feature the generation lacks
            column = next((c for c in map(statuses.__getitem__, vp.columns)
                           if c.count(Status.NOT_FOUND) != n), column)
        if column.count(Status.PRESENT) == n:
            parts.append("")
        else:
            parts.append("".join(map(_LETTERS.__getitem__, column)))
    return ",".join(parts)


def _restart_in_child(ref: weakref.ref[ServedLog]) -> None:
    log_ = ref()
    if log_ is not None and not log_._stop.is_set():
        log_._buffer.clear()  # the parent's entries are the parent's to write
        log_._conn = None
        log_._id_base = os.urandom(6).hex()  # request ids unique across workers
        log_._start()


def _close_at_exit(ref: weakref.ref[ServedLog]) -> None:
    log_ = ref()
    if log_ is not None and not log_._stop.is_set():
        log_.close()


def generation_field(view: str, gen: str | bytes) -> str:
    """The field of a generation in the generations hash."""
    return f"{view}/{gen.decode() if isinstance(gen, bytes) else gen}"


def generation_info(view: FeatureView, schema_text: str | bytes,
                    fingerprint: str | bytes | None) -> str:
    """The JSON the generations hash keeps for one generation of ``view``."""
    text = schema_text.decode() if isinstance(schema_text, bytes) else schema_text
    if isinstance(fingerprint, bytes):
        fingerprint = fingerprint.decode()
    return json.dumps({
        "schema": text, "ttl_seconds": view.ttl_seconds or 0, "fingerprint": fingerprint or None,
        "keys": [[k.name, k.dtype] for k in view.entity.join_keys],
        "features": [f.name for f in view.features],
        "aware": [f.name for f in view.features if f.dtype == "timestamp"
                  and timestamp_kind(f.data_type, "duckdb") == TZ]}, separators=(",", ":"))


class ServedLog:
    """The log of one ``OnlineStore``: ``record`` on the read path, a writer thread behind."""

    def __init__(self, online: OnlineStore, options: ServedLogOptions) -> None:
        self.online = online
        self.options = options
        self.stream = online.keys.served_log()
        self.generations_key = online.keys.served_generations()
        self._buffer: deque[tuple[Any, ...]] = deque()
        self._generations: dict[tuple[str, bytes], str] = {}
        self._plans: dict[int, tuple[ReadPlan, bytes]] = {}
        self._id_base = os.urandom(6).hex()
        self._ids = itertools.count(1)
        self._cluster = is_cluster(online.client)
        self._written = 0
        self._dropped_full = 0  # counted by readers only
        self._dropped_redis = 0  # counted by the writer only
        self._retry_at = 0.0
        self._conn: Any = None
        self._xadd = [b"XADD", self.stream.encode(), b"MAXLEN", b"~",
                      b"%d" % options.max_entries, b"*"]
        self._xadd_head = b"*%d\r\n" % (len(self._xadd) + 2 * len(FIELDS)) + b"".join(
            b"$%d\r\n%b\r\n" % (len(arg), arg) for arg in self._xadd)
        """An entry's command up to its fields, packed once."""
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._start()
        # A script that reads and exits still gets what it served logged (the thread is a
        # daemon: it would be stopped mid-batch); a forked worker (a pre-forking server) gets
        # a writer of its own, and a connection of its own.
        ref = weakref.ref(self)
        atexit.register(_close_at_exit, ref)
        os.register_at_fork(after_in_child=lambda: _restart_in_child(ref))

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dbt-features-served-log",
                                        daemon=True)
        self._thread.start()

    # -- the read path ---------------------------------------------------------------------

    def learn(self, view: FeatureView, gen: bytes, schema_text: bytes,
              fingerprint: bytes | None) -> None:
        """A generation the reader starts serving (before any value of it is recorded)."""
        try:
            self._generations[(view.name, gen)] = generation_info(view, schema_text, fingerprint)
        except Exception as exc:  # noqa: BLE001 - never fail a read: its entries will be dropped
            log.warning("served log: generation %s of %s not recorded: %s: %s", gen, view.name,
                        type(exc).__name__, exc)

    def record(self, now_us: int, plan: ReadPlan, replies: list[Any], nv: int,
               entities: list[list[Any]], statuses: tuple[tuple[Status, ...], ...]) -> None:
        """One read, as Redis answered it (``replies``: ``nv`` generation ids, then the
        blobs) and as it was served (the response's ``statuses``); at most a list append."""
        rate = self.options.sample_rate
        if rate < 1.0 and random.random() >= rate:
            return
        if len(self._buffer) >= self.options.buffer:
            self._dropped_full += 1
            return
        # Encoded here, a few microseconds of this read, rather than by the writer thread: a read
        # whose answer arrives while the writer holds the GIL waits for it (see BATCH).
        gens = replies[:nv]
        fields = (b"%d" % now_us, f"{self._id_base}{next(self._ids):x}".encode(),
                  self._describe(plan), b",".join(gens), marshal.dumps(entities, 4),
                  marshal.dumps(replies[nv:], 4), status_text(plan, statuses).encode())
        entry = fields if self._cluster else self._packed(fields)
        self._buffer.append((plan.names, gens, entry, len(fields[5])))

    # -- reporting -------------------------------------------------------------------------

    def counts(self) -> ServedLogCounts:
        return ServedLogCounts(self._written, self._dropped_full, self._dropped_redis)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until what was recorded so far is written or dropped (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._buffer or not self._idle.is_set():
            if time.monotonic() > deadline or not self._thread.is_alive():
                return False
            time.sleep(0.002)
        return True

    def close(self, timeout: float = 2.0) -> None:
        """Write what is buffered (up to ``timeout`` seconds), then stop the writer."""
        self.flush(timeout)
        self._stop.set()
        self._thread.join(timeout)
        if self._conn is not None and not self._thread.is_alive():
            self.online.client.connection_pool.release(self._conn)
            self._conn = None

    # -- the writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._buffer:
                self._idle.set()
                time.sleep(IDLE_S)
                continue
            self._idle.clear()
            batch = self._take()
            if time.monotonic() < self._retry_at:
                self._dropped_redis += len(batch)
                continue
            try:
                self._write(batch)
                if len(batch) < BATCH:  # drained: let entries gather, fewer wake-ups
                    time.sleep(GATHER_S)
            except Exception as exc:  # noqa: BLE001 - the log never takes the server down
                self._dropped_redis += len(batch)
                self._retry_at = time.monotonic() + RETRY_S
                if not isinstance(exc, REDIS_FAILURES):
                    log.warning("served log: entries dropped: %s: %s", type(exc).__name__,
                                self.online.config.scrub(str(exc))[:300])
        self._idle.set()

    def _take(self) -> list[tuple[Any, ...]]:
        """The next batch: up to ``BATCH`` entries and about ``BATCH_BYTES`` of blobs."""
        batch, size, buffer = [], 0, self._buffer
        while buffer and len(batch) < BATCH and size < BATCH_BYTES:
            record = buffer.popleft()
            batch.append(record)
            size += record[3]
        return batch

    def _write(self, batch: list[tuple[Any, ...]]) -> None:
        known = self._generations
        seen: dict[tuple[str, bytes], None] = {}
        commands: list[list[Any] | tuple[bytes, ...] | bytes] = []
        for names, gens, entry, _size in batch:
            for key in zip(names, gens):
                if key not in seen:
                    seen[key] = None
                    commands.append([b"HSET", self.generations_key, generation_field(*key),
                                     known[key]])
            commands.append(entry)
        self._send(commands)
        self._written += len(batch)

    def _packed(self, command: list[Any] | tuple[bytes, ...] | bytes) -> bytes:
        if isinstance(command, bytes):
            return command
        if isinstance(command, list):
            return pack_command(tuple(command))  # an HSET of a generation: small
        return self._xadd_head + b"".join(
            b"$1\r\n%b\r\n$%d\r\n%b\r\n" % (name, len(value), value)
            for name, value in zip(FIELDS, command))

    def _full(self, command: list[Any] | tuple[bytes, ...]) -> list[Any]:
        if isinstance(command, list):
            return command
        return self._xadd + [part for pair in zip(FIELDS, command) for part in pair]

    def _send(self, commands: list[list[Any] | tuple[bytes, ...] | bytes]) -> None:
        """The commands, pipelined on a connection the writer keeps (on a Redis Cluster,
        through the client's pipeline: the stream and the hash share a slot). Never sent
        twice: a connection that failed is dropped, and the batch with it."""
        client = self.online.client
        if is_cluster(client):
            pipe = client.pipeline(transaction=False)
            for command in commands:
                pipe.execute_command(*self._full(command))
            pipe.execute()
            return
        pool = client.connection_pool
        if self._conn is None:
            self._conn = pool.get_connection()
        failure: Exception | None = None
        try:
            packed = b"".join(map(self._packed, commands))
            self._conn.send_packed_command([packed], check_health=False)
            for _ in commands:
                try:
                    self._conn.read_response()
                except redis.ResponseError as exc:  # the reply was read: still in step
                    failure = exc
        except BaseException:
            conn, self._conn = self._conn, None
            conn.disconnect()
            pool.release(conn)
            raise
        if failure is not None:
            raise failure

    def _describe(self, plan: ReadPlan) -> bytes:
        """The ``v`` field of a plan's entries (built once per plan)."""
        found = self._plans.get(id(plan))
        if found is None or found[0] is not plan:
            if len(self._plans) >= 1024:
                self._plans.clear()
            text = json.dumps([[vp.view.name, vp.group, list(vp.features)] for vp in plan.views],
                              separators=(",", ":")).encode()
            found = self._plans[id(plan)] = (plan, text)
        return found[1]
