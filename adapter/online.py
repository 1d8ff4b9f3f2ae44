"""Online reads: typed feature values for entities, one Redis round trip per request.

``OnlineStore`` is opened once (registry loaded, Redis connected, plans cached); each
``get_online_features`` call checks the entity values against the registry's key types, sends
one script call (``scripts.READ``) that returns each view's current generation and its
entities' fields under the generation last seen (a script runs atomically: if every generation
is still current, the values form one snapshot per view; after a full refresh was published,
it reads again with the new generation) and decodes the blobs; on a Redis Cluster, one such
call per master, with the same guarantees (``cluster_read``). Every value comes back with a
status (present, not found, expired: outside the view's ttl as of now) and its event
timestamp, in an ``OnlineResponse`` that converts to a dict (Feast's shape) or to Arrow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from dbt_features.errors import OnlineStoreError
from dbt_features.registry import FeatureView, Registry

from .cluster import REDIS_FAILURES, Client, is_cluster
from .codec import FORMAT_VERSION, Codec, Schema
from .config import EmbeddedServer, OnlineConfig, connect
from .entity_keys import key_values, not_utf8
from .layout import Keys
from .read_plan import Prepared, ReadPlan, locator, plan_read, view_reader
from .reader import open_reader
from .response import OnlineResponse, Status
from .served_log import ServedLog, ServedLogOptions
from .status import ViewStatus, read_status

__all__ = ["OnlineStore", "OnlineResponse", "Status", "ViewStatus"]


@dataclass
class OnlineStore:
    """A connected online store for one registry. Open once, read many times."""

    registry: Registry
    config: OnlineConfig
    client: Client
    server: EmbeddedServer | None = None
    _plans: dict[tuple[str, ...], ReadPlan] = field(default_factory=dict)
    _codecs: dict[tuple[str, str], tuple[Codec, dict[str, int]]] = field(default_factory=dict)
    _current: dict[str, str] = field(default_factory=dict)
    """The generation whose schema is cached, per view."""
    served_log: ServedLog | None = None
    """Records what reads serve, when enabled (``enable_served_log``)."""

    @classmethod
    def open(cls, registry: Registry, config: OnlineConfig) -> "OnlineStore":
        """Connect (one checked PING; the embedded server is started if no URL is set)."""
        client, server = connect(config)
        return cls(registry, config, client, server)

    def __post_init__(self) -> None:
        self.keys = Keys(self.config.key_prefix, tagged=is_cluster(self.client))
        self._gen_keys: dict[str, str] = {}
        self._locators: dict[str, Any] = {}
        self._reader = open_reader(self.client)
        self._ready: dict[tuple[str, ...], Prepared] = {}
        self._epoch = 0
        """Bumped whenever a view's cached generation changes (every ``Prepared`` goes stale)."""

    @property
    def where(self) -> str:
        return self.config.shown

    def describe(self) -> str:
        """One line saying where the online store is (the embedded server says so)."""
        if self.server is not None:
            return (
                f"Online store: embedded Redis {self.server.version} with its data in "
                f"{self.server.directory} (set {'DBT_FEATURES_REDIS_URL'} or "
                "vars.dbt_features.online_store.url to use your own Redis)."
            )
        return f"Online store: {self.where} (from {self.config.source})."

    def enable_served_log(self, options: ServedLogOptions | bool = True) -> ServedLog:
        """Log what every read serves from now on (``served_log``; ``True``: the default
        options)."""
        if options is True:
            options = ServedLogOptions()
        if self.served_log is None:
            self.served_log = ServedLog(self, options)
            self._current.clear()  # learn the generations again, for the log
            self._epoch += 1
        return self.served_log

    def close(self) -> None:
        if self.served_log is not None:
            self.served_log.close()
        self.client.close()
        if self.server is not None:
            self.server.release()

    def _read_failed(self, exc: BaseException) -> OnlineStoreError:
        return OnlineStoreError(f"reading from Redis at {self.where} failed: "
                                f"{self.config.scrub(str(exc))}")

    # -- reads -----------------------------------------------------------------------------

    def get_online_features(
        self, features: Sequence[str], entity_rows: Sequence[Mapping[str, Any]]
    ) -> OnlineResponse:
        """Values of ``features`` (``view:feature`` or ``view:*``) for each entity row
        (a mapping of join-key name to value)."""
        if isinstance(features, str):
            features = [features]
        wanted = features if type(features) is tuple else tuple(features)
        plan = self._plans.get(wanted)
        if plan is None:
            plan = self._plans[wanted] = plan_read(self.registry, wanted)
        rows = entity_rows if type(entity_rows) is tuple else tuple(entity_rows)
        entities = [key_values(spec, views, fast, rows) for spec, views, fast in plan.groups]
        ready = self._ready.get(wanted)
        log = self.served_log
        sampled = log is not None and log.sampled()
        entry = None
        for _attempt in range(5):
            if ready is None or ready.epoch != self._epoch:
                ready = self._prepare(wanted, plan)
            keys = list(ready.head)
            nv = len(keys)
            fields: list[Any] = [nv]
            try:
                for locate, group in ready.locators:
                    locate(entities[group], keys, fields)
            except UnicodeEncodeError as exc:
                raise not_utf8(rows) from exc
            now_us = time.time_ns() // 1000  # each value's ttl is judged at it (and it is logged)
            if sampled and log is not None:
                entry = log.entry(now_us, plan, entities)
                replies = self._read_logged(keys, fields, entry, ready.expected)
            else:
                replies = self._read(keys, fields)
            if replies[:nv] == ready.expected:
                break
            for name, got, want in zip(plan.names, replies, ready.expected):
                if got != want:  # a full refresh was published (or the view was dropped)
                    self._current.pop(name, None)
                    self._epoch += 1
        else:
            raise OnlineStoreError(
                f"the online store at {self.where} switched generations during 5 reads in a "
                "row (full refreshes in a loop?); retry."
            )
        if entry is not None and log is not None and log.writer is not None:
            log.record(entry, replies, nv)
        return self._response(plan, ready, rows, replies, nv, now_us)

    def _read(self, keys: list[str], args: list[Any]) -> list[bytes | None]:
        try:
            return self._reader.read(keys, args)
        except REDIS_FAILURES as exc:
            raise self._read_failed(exc) from exc

    def _read_logged(self, keys: list[str], args: list[Any], entry: list[bytes],
                     expected: list[bytes]) -> list[bytes | None]:
        """``_read``, the served log's entry written by the read's script on a single Redis
        (on a Redis Cluster the log's writer thread writes it after the read)."""
        log = self.served_log
        assert log is not None
        if log.writer is not None:
            return self._read(keys, args)
        if not log.ready():
            log.dropped()
            return self._read(keys, args)
        try:
            replies, added = self._reader.read_logged(  # type: ignore[attr-defined]
                keys, args, log.stream, log.script_args(entry, expected))
        except REDIS_FAILURES as exc:
            raise self._read_failed(exc) from exc
        log.logged(added)
        return replies

    def _response(self, plan: ReadPlan, ready: Prepared, rows: tuple[Mapping[str, Any], ...],
                  replies: list[bytes | None], offset: int, now_us: int) -> OnlineResponse:
        n = len(rows)
        ordered = ready.ordered
        if ordered:  # columns are the views' found features in view order: append
            values: list[tuple[Any, ...]] = []
            statuses: list[tuple[Status, ...]] = []
            events: list[tuple[int | None, ...]] = []
        else:
            width = len(plan.refs)
            values, statuses, events = [()] * width, [()] * width, [()] * width
        for decode, found, absent, columns, ttl_us in ready.readers:
            blobs = replies[offset : offset + n]
            offset += n
            view_events: tuple[int | None, ...]
            view_values: list[tuple[Any, ...]]
            if n and None not in blobs:
                view_events, *view_values = zip(*map(decode, blobs))
                if ttl_us and min(view_events) + ttl_us < now_us:  # type: ignore[type-var]
                    view_events, view_values, view_status = _slow_view(
                        decode, blobs, ttl_us, now_us, len(found))
                else:
                    view_status = (_PRESENT,) * n
            else:
                view_events, view_values, view_status = _slow_view(
                    decode, blobs, ttl_us, now_us, len(found))
            if ordered:
                values += view_values
                statuses += (view_status,) * len(columns)
                events += (view_events,) * len(columns)
                continue
            for column in columns:
                events[column] = view_events
            for column, value_column in zip(found, view_values):
                values[column] = value_column
                statuses[column] = view_status
            for column in absent:
                values[column], statuses[column] = (None,) * n, (_NOT_FOUND,) * n
        return OnlineResponse.make(plan.refs, plan.dtypes, rows, tuple(values), tuple(statuses),
                                   tuple(events))

    def _prepare(self, wanted: tuple[str, ...], plan: ReadPlan) -> Prepared:
        """Learn the generations not known yet and build the plan's per-request parts."""
        stale = [name for name in plan.names if name not in self._current]
        if stale:
            self._refresh(stale)
        readers = []
        for vp in plan.views:
            name = vp.view.name
            codec, positions = self._codecs[(name, self._current[name])]
            readers.append(view_reader(vp, codec, positions))
        ready = Prepared(
            self._epoch,
            [self._gen_keys[name] for name in plan.names],
            [self._current[name].encode() for name in plan.names],
            tuple((self._locators[vp.view.name], vp.group) for vp in plan.views),
            tuple(readers),
        )
        self._ready[wanted] = ready
        return ready

    def _refresh(self, views: list[str]) -> None:
        """Learn the current generation and schema of ``views`` (one round trip)."""
        try:
            pipe = self.client.pipeline(transaction=False)
            for name in views:
                pipe.hmget(self.keys.meta(name), "gen_id", "schema", "fingerprint")
            replies = pipe.execute()
        except REDIS_FAILURES as exc:
            raise self._read_failed(exc) from exc
        for name, (gen, schema, fingerprint) in zip(views, replies):
            if gen is None or schema is None:
                raise OnlineStoreError(
                    f"feature view {name!r} has never been synced to the online store "
                    f"({self.where}), or the store lost its data: run "
                    f"`dbt-features sync --select {name}`."
                )
            self._codec(name, gen.decode(), schema)
            if self.served_log is not None:
                self.served_log.learn(self.registry.view(name), gen, schema, fingerprint)

    def _codec(self, view: str, gen: str, schema_text: bytes) -> tuple[Codec, dict[str, int]]:
        """Cache the codec of generation ``gen`` (its id: number and random tag, never reused,
        so a codec is never applied to another generation's values)."""
        schema = Schema.parse(schema_text)
        if schema.version != FORMAT_VERSION:
            raise OnlineStoreError(
                f"feature view {view!r} was synced to the online store ({self.where}) by an "
                f"older dbt-features, in a layout this one does not read (format "
                f"{schema.version}, now {FORMAT_VERSION}): run `dbt-features sync --select "
                f"{view}` (it rewrites the view with a full refresh)."
            )
        codec = Codec(schema)
        for key in [k for k in self._codecs if k[0] == view]:
            del self._codecs[key]
        found = (codec, {name: i for i, name in enumerate(codec.names)})
        self._codecs[(view, gen)] = found
        self._current[view] = gen
        self._epoch += 1
        self._gen_keys[view] = self.keys.current(view)
        self._locators[view] = locator(self.keys.generation(view, gen.split(".")[0]),
                                       schema.key_dtypes, schema.buckets)
        return found

    # -- status ----------------------------------------------------------------------------

    def status(self, views: Iterable[FeatureView] | None = None) -> list[ViewStatus]:
        chosen = [v for v in (views if views is not None else self.registry.views) if v.online]
        try:
            return read_status(self.client, self.keys, chosen, self.where)
        except REDIS_FAILURES as exc:
            raise self._read_failed(exc) from exc


_PRESENT, _NOT_FOUND, _EXPIRED = Status.PRESENT, Status.NOT_FOUND, Status.EXPIRED


def _slow_view(decode: Any, blobs: list[bytes | None], ttl_us: int, now_us: int,
               width: int) -> tuple[tuple[int | None, ...], list[tuple[Any, ...]],
                                    tuple[Status, ...]]:
    """Events, value columns and statuses of one view when some entity is missing or expired."""
    n = len(blobs)
    missing = (None,) * width
    picked: list[tuple[Any, ...]] = [missing] * n
    stamps: list[int | None] = [None] * n
    status = [_NOT_FOUND] * n
    for i, blob in enumerate(blobs):
        if blob is None:
            continue
        ets, *vals = decode(blob)
        stamps[i] = ets
        if ttl_us and now_us > ets + ttl_us:
            status[i] = _EXPIRED  # stored, but outside the ttl (inclusive, as training sets): not served
        else:
            status[i] = _PRESENT
            picked[i] = tuple(vals)
    columns = list(zip(*picked)) if n else [()] * width
    return tuple(stamps), columns, tuple(status)


