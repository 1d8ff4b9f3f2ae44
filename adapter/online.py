"""Online reads: typed feature values for entities, one Redis round trip per request.

``OnlineStore`` is opened once (registry loaded, Redis connected, plans cached); each
``get_online_features`` call checks the entity values against the registry's key types, sends
one MGET of each view's current-generation key plus its entity keys under the generation last
seen (MGET is atomic: if every generation is still current, the values form one snapshot per
view; after a full refresh was published, it reads again with the new generation) and decodes
the blobs. Every value comes back with a status (present, not found,
expired: outside the view's ttl as of now) and its event timestamp, in an ``OnlineResponse``
that converts to a dict (Feast's shape) or to Arrow.
"""

from __future__ import annotations

import time
from operator import itemgetter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import redis

from dbt_features.errors import OnlineStoreError, UsageError
from dbt_features.registry import FeatureRef, FeatureView, Registry

from .config import EmbeddedServer, OnlineConfig, connect
from .eviction import memory_policy
from .layout import Codec, Keys, Schema, entity_suffix, from_micros
from .response import OnlineResponse, Status
from .sync import check_servable

__all__ = ["OnlineStore", "OnlineResponse", "Status", "ViewStatus"]


KeySpec = tuple[tuple[str, str], ...]
"""A view's join keys as (name, logical type): views with the same spec share key suffixes."""


@dataclass(frozen=True)
class _ViewPlan:
    view: FeatureView
    features: tuple[str, ...]
    columns: tuple[int, ...]
    """Where each of ``features`` goes in the response."""
    key_spec: KeySpec
    group: int
    """Index of its key spec in ``_Plan.groups``."""


@dataclass(frozen=True)
class _Plan:
    refs: tuple[str, ...]
    dtypes: tuple[str, ...]
    views: tuple[_ViewPlan, ...]
    key_groups: dict[KeySpec, tuple[FeatureView, ...]]
    groups: tuple[tuple[KeySpec, tuple[FeatureView, ...], Any], ...]
    """Per key spec: its views and, for a single key, ``itemgetter(name)`` and the Python type
    its values must have exactly (the fast path; anything else is checked one by one)."""
    names: tuple[str, ...]


class _Ready:
    """What a plan needs per request under the current generations (rebuilt when one of them
    changes): MGET's leading generation keys, the values they must hold, each view's key base,
    and each view's reader."""

    __slots__ = ("epoch", "head", "expected", "bases", "readers", "ordered")

    def __init__(self, epoch: int, head: list[str], expected: list[bytes],
                 bases: tuple[tuple[str, int], ...], readers: tuple[Any, ...]) -> None:
        self.epoch, self.head, self.expected = epoch, head, expected
        self.bases, self.readers = bases, readers
        columns = [c for _, found, absent, _, _ in readers for c in found if not absent]
        self.ordered = columns == list(range(sum(len(r[3]) for r in readers)))
        """Every view's columns are all found and follow each other in view order."""


@dataclass(frozen=True)
class ViewStatus:
    """What the online store holds for one view (``dbt-features status``)."""

    view: str
    synced: bool
    last_sync: str | None
    last_mode: str | None
    watermark: str | None
    """Greatest created time (event time without created_timestamp) synced."""
    keys: int | None
    generation: int | None
    fingerprint: str | None
    """The definition fingerprint that was synced."""
    current_fingerprint: str
    up_to_date: bool
    """The synced fingerprint is the current definition's."""
    running: str | None
    """The holder of the sync lock, if a sync is running."""
    warnings: tuple[str, ...] = ()
    """Keys that may be gone: evicted by Redis, or a published generation without its key."""

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


@dataclass
class OnlineStore:
    """A connected online store for one registry. Open once, read many times."""

    registry: Registry
    config: OnlineConfig
    client: redis.Redis
    server: EmbeddedServer | None = None
    _plans: dict[tuple[str, ...], _Plan] = field(default_factory=dict)
    _codecs: dict[tuple[str, str], tuple[Codec, dict[str, int]]] = field(default_factory=dict)
    _current: dict[str, str] = field(default_factory=dict)
    """The generation whose schema is cached, per view."""

    @classmethod
    def open(cls, registry: Registry, config: OnlineConfig) -> "OnlineStore":
        """Connect (one checked PING; the embedded server is started if no URL is set)."""
        client, server = connect(config)
        return cls(registry, config, client, server)

    def __post_init__(self) -> None:
        self.keys = Keys(self.config.key_prefix)
        self._gen_keys: dict[str, str] = {}
        self._bases: dict[str, str] = {}
        self._ready: dict[tuple[str, ...], _Ready] = {}
        self._epoch = 0
        """Bumped whenever a view's cached generation changes (every ``_Ready`` goes stale)."""

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

    def close(self) -> None:
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
        plan = self._plans.get(wanted) or self._plan(wanted)
        rows = entity_rows if type(entity_rows) is tuple else tuple(entity_rows)
        suffixes = [_suffixes(spec, views, fast, rows) for spec, views, fast in plan.groups]
        ready = self._ready.get(wanted)
        for _attempt in range(5):
            if ready is None or ready.epoch != self._epoch:
                ready = self._prepare(wanted, plan)
            keys = list(ready.head)
            for base, group in ready.bases:
                keys += map(base.__add__, suffixes[group])
            try:
                replies = self.client.mget(keys)
            except UnicodeEncodeError as exc:  # checked here, off the hot path
                raise _not_utf8(rows) from exc
            except (redis.RedisError, OSError) as exc:
                raise self._read_failed(exc) from exc
            nv = len(ready.head)
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
        return self._response(plan, ready, rows, replies, nv)

    def _response(self, plan: "_Plan", ready: _Ready, rows: tuple[Mapping[str, Any], ...],
                  replies: list[bytes | None], offset: int) -> OnlineResponse:
        n = len(rows)
        ordered = ready.ordered
        if ordered:  # columns are the views' found features in view order: append
            values: list[tuple[Any, ...]] = []
            statuses: list[tuple[Status, ...]] = []
            events: list[tuple[int | None, ...]] = []
        else:
            width = len(plan.refs)
            values, statuses, events = [()] * width, [()] * width, [()] * width
        now_us = 0
        for decode, found, absent, columns, ttl_us in ready.readers:
            blobs = replies[offset : offset + n]
            offset += n
            if ttl_us and not now_us:
                now_us = int(time.time() * 1_000_000)
            view_events: tuple[int | None, ...]
            view_values: list[tuple[Any, ...]]
            if n and None not in blobs:
                view_events, *view_values = zip(*map(decode, blobs))
                if ttl_us and min(view_events) + ttl_us <= now_us:  # type: ignore[type-var]
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

    def _prepare(self, wanted: tuple[str, ...], plan: "_Plan") -> _Ready:
        """Learn the generations not known yet and build the plan's per-request parts."""
        stale = [name for name in plan.names if name not in self._current]
        if stale:
            self._refresh(stale)
        readers = []
        for vp in plan.views:
            name = vp.view.name
            codec, positions = self._codecs[(name, self._current[name])]
            readers.append(_reader(vp, codec, positions))
        ready = _Ready(
            self._epoch,
            [self._gen_keys[name] for name in plan.names],
            [self._current[name].encode() for name in plan.names],
            tuple((self._bases[vp.view.name], vp.group) for vp in plan.views),
            tuple(readers),
        )
        self._ready[wanted] = ready
        return ready

    def _refresh(self, views: list[str]) -> None:
        """Learn the current generation and schema of ``views`` (one round trip)."""
        try:
            pipe = self.client.pipeline(transaction=False)
            for name in views:
                pipe.hmget(self.keys.meta(name), "gen_id", "schema")
            replies = pipe.execute()
        except (redis.RedisError, OSError) as exc:
            raise self._read_failed(exc) from exc
        for name, (gen, schema) in zip(views, replies):
            if gen is None or schema is None:
                raise OnlineStoreError(
                    f"feature view {name!r} has never been synced to the online store "
                    f"({self.where}), or the store lost its data: run "
                    f"`dbt-features sync --select {name}`."
                )
            self._codec(name, gen.decode(), schema)

    def _plan(self, features: tuple[str, ...]) -> _Plan:
        plan = self._plans.get(features)
        if plan is not None:
            return plan
        if not features:
            raise UsageError("no features requested: name at least one view:feature or view:*.")
        resolved = self.registry.resolve(FeatureRef.parse(f) for f in features)
        by_view: dict[str, list[tuple[str, int]]] = {}
        views: dict[str, FeatureView] = {}
        for column, (view, feature) in enumerate(resolved):
            check_servable(view)
            views[view.name] = view
            by_view.setdefault(view.name, []).append((feature.name, column))
        specs = {
            name: tuple((k.name, k.dtype) for k in view.entity.join_keys)
            for name, view in views.items()
        }
        groups: dict[KeySpec, tuple[FeatureView, ...]] = {}
        for name, spec in specs.items():
            groups[spec] = groups.get(spec, ()) + (views[name],)
        order = list(groups)
        view_plans = tuple(
            _ViewPlan(views[name], tuple(f for f, _ in items), tuple(c for _, c in items),
                      specs[name], order.index(specs[name]))
            for name, items in by_view.items()
        )
        plan = _Plan(
            refs=tuple(f"{v.name}:{f.name}" for v, f in resolved),
            dtypes=tuple(f.dtype for _, f in resolved),
            views=view_plans,
            key_groups=groups,
            groups=tuple((spec, members, _fast_key(spec)) for spec, members in groups.items()),
            names=tuple(vp.view.name for vp in view_plans),
        )
        self._plans[features] = plan
        return plan

    def _codec(self, view: str, gen: str, schema_text: bytes) -> tuple[Codec, dict[str, int]]:
        """Cache the codec of generation ``gen`` (its id: number and random tag, never reused,
        so a codec is never applied to another generation's values)."""
        codec = Codec(Schema.parse(schema_text))
        for key in [k for k in self._codecs if k[0] == view]:
            del self._codecs[key]
        found = (codec, {name: i for i, name in enumerate(codec.names)})
        self._codecs[(view, gen)] = found
        self._current[view] = gen
        self._epoch += 1
        self._gen_keys[view] = self.keys.current(view)
        self._bases[view] = self.keys.generation(view, gen.split(".")[0])
        return found

    # -- status ----------------------------------------------------------------------------

    def status(self, views: Iterable[FeatureView] | None = None) -> list[ViewStatus]:
        chosen = [v for v in (views if views is not None else self.registry.views) if v.online]
        try:
            pipe = self.client.pipeline(transaction=False)
            for v in chosen:
                pipe.hgetall(self.keys.meta(v.name))
                pipe.get(self.keys.lock(v.name))
                pipe.get(self.keys.current(v.name))
            replies = pipe.execute()
            policy = memory_policy(self.client)
        except (redis.RedisError, OSError) as exc:
            raise self._read_failed(exc) from exc
        evicted = (
            f"Redis at {self.where} has evicted {policy.evicted_keys:,} keys since it started "
            f"({policy.describe()}): served values may be missing; run `dbt-features verify`."
        ) if policy.evicted_keys else None
        return [_view_status(v, *replies[3 * i: 3 * i + 3], evicted)
                for i, v in enumerate(chosen)]


def _view_status(view: FeatureView, raw_meta: dict[bytes, bytes], lock: bytes | None,
                 current: bytes | None, evicted: str | None) -> ViewStatus:
    meta = {k.decode(): val.decode() for k, val in raw_meta.items()}
    synced = "gen_id" in meta
    warnings = [evicted] if evicted else []
    if synced and current is None:
        warnings.append(
            f"{view.name}: its published generation key is missing (evicted or deleted): reads "
            "fail until `dbt-features sync --full-refresh`.")
    return ViewStatus(
        view=view.name, synced=synced, last_sync=meta.get("last_sync"),
        last_mode=meta.get("last_mode"), watermark=_iso_us(meta.get("watermark_us")),
        keys=int(meta["keys"]) if "keys" in meta else None,
        generation=int(meta["gen"]) if synced else None,
        fingerprint=meta.get("fingerprint"), current_fingerprint=view.fingerprint,
        up_to_date=synced and meta.get("fingerprint") == view.fingerprint,
        running=lock.decode() if lock else None, warnings=tuple(warnings),
    )


def _iso_us(value: str | None) -> str | None:
    return from_micros(int(value)).isoformat() if value else None


_PRESENT, _NOT_FOUND, _EXPIRED = Status.PRESENT, Status.NOT_FOUND, Status.EXPIRED


def _fast_key(spec: KeySpec) -> tuple[Any, type] | None:
    if len(spec) != 1:
        return None
    name, dtype = spec[0]
    return itemgetter(name), int if dtype == "int64" else str


def _reader(vp: "_ViewPlan", codec: Codec, positions: dict[str, int]) -> tuple[Any, ...]:
    """``(decode, found, absent, columns, ttl_us)`` for one view under one generation:
    ``decode`` takes a blob to ``(event_us, value, ...)`` with the values of the requested
    features the generation holds (``found``: their response columns; features synced before
    they existed are ``absent``: not found); ``columns`` are all the view's response columns."""
    pairs = [(positions[f], c) for f, c in zip(vp.features, vp.columns) if f in positions]
    found = tuple(c for _, c in pairs)
    absent = tuple(c for c in vp.columns if c not in found)
    ttl_us = (vp.view.ttl_seconds or 0) * 1_000_000
    return codec.picker([p for p, _ in pairs]), found, absent, vp.columns, ttl_us


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
        if ttl_us and now_us >= ets + ttl_us:
            status[i] = _EXPIRED  # stored, but outside the ttl: not served
        else:
            status[i] = _PRESENT
            picked[i] = tuple(vals)
    columns = list(zip(*picked)) if n else [()] * width
    return tuple(stamps), columns, tuple(status)


def _suffixes(spec: KeySpec, views: tuple[FeatureView, ...], fast: tuple[Any, type] | None,
              rows: tuple[Mapping[str, Any], ...]) -> list[str]:
    """The key suffix of every entity row for views joined on ``spec``, checking key types."""
    if fast is not None:
        get, want = fast
        try:
            keys = list(map(get, rows))
        except (KeyError, TypeError, IndexError):
            keys = None
        if keys is not None and (not keys or set(map(type, keys)) == {want}):
            return list(map(str, keys))
    if len(spec) == 1:
        name, dtype = spec[0]
        want = int if dtype == "int64" else str
        out = []
        for i, row in enumerate(rows):
            value = row.get(name, _MISSING)
            if type(value) is want:
                out.append(str(value))
            else:
                out.append(entity_suffix([_checked(views[0], name, dtype, row, i)]))
        return out
    return [
        entity_suffix([_checked(views[0], name, dtype, row, i) for name, dtype in spec])
        for i, row in enumerate(rows)
    ]


_MISSING = object()


def _not_utf8(rows: tuple[Mapping[str, Any], ...]) -> UsageError:
    """The first entity key that is no Unicode text (a lone surrogate), said plainly."""
    for index, row in enumerate(rows):
        for name, value in row.items():
            if isinstance(value, str):
                try:
                    value.encode()
                except UnicodeEncodeError:
                    return UsageError(f"entity_rows[{index}][{name!r}] is {value!r}: not valid "
                                      "Unicode text (a lone surrogate); pass the key as real text.")
    return UsageError("an entity key is not valid Unicode text; pass keys as real text.")


def _checked(view: FeatureView, name: str, dtype: str, row: Mapping[str, Any], index: int) -> Any:
    if name not in row:
        raise UsageError(
            f"entity_rows[{index}] has no {name!r}, the join key of feature view "
            f"{view.name!r} (entity {view.entity.name}); it has: {', '.join(row) or 'nothing'}."
        )
    value = row[name]
    if dtype == "int64":
        ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok and hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in ("i", "u"):
            value, ok = int(value), True
    else:
        ok = isinstance(value, str)
    if not ok:
        expected = "an integer" if dtype == "int64" else "a string"
        raise UsageError(
            f"entity_rows[{index}][{name!r}] is {value!r} ({type(value).__name__}); "
            f"{name} of entity {view.entity.name} is {dtype}: pass {expected}."
        )
    return value
