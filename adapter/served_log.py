"""The served-value log: what each online read returned, recorded without slowing the read.

On a single Redis the read's own script writes the log's entry (``scripts.READ_LOGGED``): the
entry holds exactly the values that script call returned, in the same atomic step, with no
extra round trip and no thread in the reader's process (a writer thread sharing the GIL with
the reads made a 1-entity read's p99 about 1.5x; the entry costs Redis about 0.3 us per value
read, ``scripts.READ_LOGGED`` says where). The reader samples (``ServedLogOptions.sample_rate``) and hands the script the
entry's other fields. If Redis refuses the write (out of memory, ``min-replicas-to-write``)
the read is answered all the same and the entry is counted as dropped; a read never fails
because of the log. On a Redis Cluster the read spans masters and the stream lives on one:
there the entry goes to a bounded buffer that a writer thread drains (``served_writer``).

Keys (``layout.Keys``; ``P`` the key prefix, in braces on a Redis Cluster so both share a slot):

- ``P:@served_log``, a stream: one entry per logged request, with the fields
  ``t`` (request time: microseconds since the epoch, UTC, taken just before the read was
  sent; the read judged each value's ttl at it, so the export derives the statuses it served:
  not found without a blob, expired when ``t`` is past the value's event time plus the
  generation's ttl, present otherwise),
  ``r`` (request id, unique per request),
  ``v`` (JSON: per view read, ``[view, key group, [requested features of the view]]``),
  ``g`` (the generation id each view was read from, comma-separated, in ``v``'s order),
  ``k`` (per key group, the entity keys in request order: an integer, a string, or the
  ``ENTITY`` text of composite keys, ``layout.entity_suffix``; a list of lists in Python's
  ``marshal`` format 4: one C call on the read path),
  ``b`` (the blobs found, concatenated: view after view in ``v``'s order, one per entity row
  of the view's key group unless not found; a blob's schema says where it ends),
  ``m`` (the positions in that sequence of the values not found, comma-separated, from 0).
  The read script writes ``g``, ``b`` and ``m`` from what it read (``scripts.READ_LOGGED``).
- ``P:@served_log:generations``, a hash: field ``view/generation``, value JSON of what decoding
  needs after that generation was replaced: ``schema`` (``codec.Schema.text``),
  ``ttl_seconds`` (the ttl the server judged expiry by), ``fingerprint`` (the definition's
  fingerprint the generation was synced from, or null), ``keys`` (join keys as ``[name,
  dtype]``), ``features`` (the view's features in declared order) and ``aware`` (its
  timestamp features typed with a time zone in the warehouse: training sets return those as
  UTC timestamps, the others without a zone, and so does the export). Written (``HSET``) when
  the reader learns a generation, before it logs any value of it.

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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dbt_features.errors import UsageError
from dbt_features.registry import FeatureView
from dbt_features.timestamps import TZ, timestamp_kind

from .cluster import REDIS_FAILURES, is_cluster
from .metrics import family
from .served_writer import RETRY_S, StreamWriter

if TYPE_CHECKING:
    from .online import OnlineStore
    from .read_plan import ReadPlan

log = logging.getLogger("dbt_features.served_log")

DEFAULT_MAX_ENTRIES = 1_000_000
DEFAULT_BUFFER = 10_000


@dataclass(frozen=True)
class ServedLogOptions:
    """Log what online reads serve (``FeatureStore(served_log=ServedLogOptions(...))``, or
    ``dbt-features serve --log-served``).

    ``sample_rate``: the share of requests logged (0 to 1); ``max_entries``: the stream's
    length bound (the oldest entries are trimmed beyond it, about ``max_entries`` requests);
    ``buffer``: on a Redis Cluster, requests held in memory while the writer thread catches up
    (beyond it, dropped; on a single Redis each read's script writes its own entry)."""

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


def _after_fork(ref: weakref.ref[ServedLog]) -> None:
    log_ = ref()
    if log_ is not None:
        log_._id_base = os.urandom(6).hex()  # request ids unique across workers
        log_._lock = threading.Lock()  # another thread may have held it at the fork
        if log_.writer is not None and not log_.writer.stopped:
            log_.writer.start()


def _close_at_exit(ref: weakref.ref[ServedLog]) -> None:
    log_ = ref()
    if log_ is not None:
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
    """The log of one ``OnlineStore``: ``entry`` and ``logged`` on the read path."""

    def __init__(self, online: OnlineStore, options: ServedLogOptions) -> None:
        self.options = options
        self.client = online.client
        self.scrub = online.config.scrub
        self.stream = online.keys.served_log()
        self.generations_key = online.keys.served_generations()
        self._maxlen = b"%d" % options.max_entries
        self._plans: dict[int, tuple[ReadPlan, bytes]] = {}
        self._id_base = os.urandom(6).hex()
        self._ids = itertools.count(1)
        self._unwritten: dict[tuple[str, bytes], str | None] = {}
        """Generations learned whose info Redis has not taken yet: their values are not logged
        (an entry the export could not decode)."""
        self._retry_at = 0.0
        self._lock = threading.Lock()
        self._written = 0
        self._dropped = 0
        self.writer = StreamWriter(
            self.client, ["XADD", self.stream.encode(), b"MAXLEN", b"~", self._maxlen, b"*"],
            options.buffer, self.scrub) if is_cluster(self.client) else None
        """Writes the entries on a Redis Cluster (None: the read script writes them)."""
        # A script that reads and exits still gets what it served logged on a cluster (the
        # writer is a daemon: it would be stopped mid-batch); a forked worker (a pre-forking
        # server) gets request ids of its own, and a writer of its own.
        ref = weakref.ref(self)
        atexit.register(_close_at_exit, ref)
        os.register_at_fork(after_in_child=lambda: _after_fork(ref))

    # -- the read path ---------------------------------------------------------------------

    def learn(self, view: FeatureView, gen: bytes, schema_text: bytes,
              fingerprint: bytes | None) -> None:
        """A generation the reader starts serving: its info goes to Redis now, before any
        value of it is logged."""
        key = (view.name, gen)
        try:
            self._unwritten[key] = generation_info(view, schema_text, fingerprint)
        except Exception as exc:  # noqa: BLE001 - never fail a read: its values go unlogged
            self._unwritten[key] = None
            log.warning("served log: generation %s of %s not recorded: %s: %s", gen, view.name,
                        type(exc).__name__, exc)
        self._retry_at = 0.0
        self.ready()

    def ready(self) -> bool:
        """Whether every generation learned is in Redis (written now if it can be)."""
        if not self._unwritten:
            return True
        if time.monotonic() < self._retry_at:
            return False
        try:
            for (name, gen), info in list(self._unwritten.items()):
                if info is not None:
                    self.client.hset(self.generations_key, generation_field(name, gen), info)
                    self._unwritten.pop((name, gen), None)  # threads may race here
        except REDIS_FAILURES:
            self._retry_at = time.monotonic() + RETRY_S
        return not self._unwritten

    def sampled(self) -> bool:
        """Whether to log this read (``ServedLogOptions.sample_rate``)."""
        rate = self.options.sample_rate
        return rate >= 1.0 or random.random() < rate

    def entry(self, now_us: int, plan: ReadPlan, entities: list[list[Any]]) -> list[bytes]:
        """The ``t``, ``r``, ``v`` and ``k`` fields of a read's entry (``now_us``: taken just
        before the read is sent, the time its values' ttl is judged at)."""
        return [b"%d" % now_us, f"{self._id_base}{next(self._ids):x}".encode(),
                self._describe(plan), marshal.dumps(entities, 4)]

    def script_args(self, entry: list[bytes], expected: list[bytes]) -> list[bytes]:
        """``scripts.READ_LOGGED``'s arguments after the read's own."""
        return [self._maxlen, *entry, *expected]

    def logged(self, added: bool | None) -> None:
        """Count what the read script did with an entry (None: not tried, the read is sent
        again)."""
        if added is not None:
            with self._lock:
                if added:
                    self._written += 1
                else:
                    self._dropped += 1

    def dropped(self) -> None:
        """Count an entry not written (its generation is not in Redis yet)."""
        with self._lock:
            self._dropped += 1

    def record(self, entry: list[bytes], replies: list[Any], nv: int) -> None:
        """On a Redis Cluster: the entry of a read (``replies``: ``nv`` generation ids, then the
        blobs), for the writer thread; at most a list append."""
        assert self.writer is not None
        t, r, v, k = entry
        blobs = replies[nv:]
        missing = b",".join(b"%d" % i for i, blob in enumerate(blobs) if blob is None)
        self.writer.append([b"t", t, b"r", r, b"v", v, b"g", b",".join(replies[:nv]), b"k", k,
                            b"b", b"".join(filter(None, blobs)), b"m", missing])

    # -- reporting -------------------------------------------------------------------------

    def counts(self) -> ServedLogCounts:
        writer = self.writer
        if writer is None:
            return ServedLogCounts(self._written, 0, self._dropped)
        return ServedLogCounts(self._written + writer.written, writer.dropped_full,
                               self._dropped + writer.dropped_redis)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until what was recorded so far is written or dropped (tests, shutdown)."""
        return self.writer is None or self.writer.flush(timeout)

    def close(self, timeout: float = 2.0) -> None:
        """Write what is buffered (up to ``timeout`` seconds), then stop the writer."""
        if self.writer is not None and not self.writer.stopped:
            self.writer.close(timeout)

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
