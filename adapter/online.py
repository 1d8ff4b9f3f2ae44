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
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import redis

from dbt_features.errors import OnlineStoreError, UsageError
from dbt_features.registry import FeatureRef, FeatureView, Registry

from .config import EmbeddedServer, OnlineConfig, connect, resolve_config
from .layout import Codec, Keys, Schema, entity_suffix, from_micros
from .response import OnlineResponse, Status
from .sync import check_servable

__all__ = ["OnlineStore", "OnlineResponse", "Status", "ViewStatus"]

if TYPE_CHECKING:
    from dbt_features.store import FeatureStore


KeySpec = tuple[tuple[str, str], ...]
"""A view's join keys as (name, logical type): views with the same spec share key suffixes."""


@dataclass(frozen=True)
class _ViewPlan:
    view: FeatureView
    features: tuple[str, ...]
    columns: tuple[int, ...]
    """Where each of ``features`` goes in the response."""
    key_spec: KeySpec


@dataclass(frozen=True)
class _Plan:
    refs: tuple[str, ...]
    dtypes: tuple[str, ...]
    views: tuple[_ViewPlan, ...]
    key_groups: dict[KeySpec, tuple[FeatureView, ...]]


@dataclass(frozen=True)
class ViewStatus:
    """What the online store holds for one view (``dbt-features status``)."""

    view: str
    synced: bool
    last_sync: str | None
    last_mode: str | None
    watermark: str | None
    watermark_created: str | None
    keys: int | None
    generation: int | None
    fingerprint: str | None
    """The definition fingerprint that was synced."""
    current_fingerprint: str
    up_to_date: bool
    """The synced fingerprint is the current definition's."""
    running: str | None
    """The holder of the sync lock, if a sync is running."""

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
    def open(cls, store: "FeatureStore") -> "OnlineStore":
        config = resolve_config(store.project)
        registry = store.registry
        client, server = connect(config)
        return cls(registry, config, client, server)

    def __post_init__(self) -> None:
        self._pickers: dict[tuple[int, str], tuple[Any, tuple[int, ...]]] = {}
        self.keys = Keys(self.config.key_prefix)
        self._gen_keys: dict[str, str] = {}
        self._bases: dict[str, str] = {}

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

    # -- reads -----------------------------------------------------------------------------

    def get_online_features(
        self, features: Sequence[str], entity_rows: Sequence[Mapping[str, Any]]
    ) -> OnlineResponse:
        """Values of ``features`` (``view:feature`` or ``view:*``) for each entity row
        (a mapping of join-key name to value)."""
        if isinstance(features, str):
            features = [features]
        plan = self._plan(tuple(features))
        rows = tuple(entity_rows)
        suffixes = {spec: _suffixes(spec, views, rows) for spec, views in plan.key_groups.items()}
        names = [vp.view.name for vp in plan.views]
        for _attempt in range(5):
            stale = [n for n in names if n not in self._current]
            if stale:
                self._refresh(stale)
            keys = [self._gen_keys[n] for n in names]
            for vp in plan.views:
                base = self._bases[vp.view.name]
                keys += [base + s for s in suffixes[vp.key_spec]]
            try:
                replies = self.client.mget(keys)
            except (redis.RedisError, OSError) as exc:
                raise OnlineStoreError(f"reading from Redis at {self.where} failed: {exc}") from exc
            moved = [n for n, got in zip(names, replies) if got is None or got.decode() != self._current[n]]
            if not moved:
                break
            for name in moved:  # a full refresh was published (or the view was dropped)
                del self._current[name]
        else:
            raise OnlineStoreError(
                f"the online store at {self.where} switched generations during 5 reads in a "
                "row (full refreshes in a loop?); retry."
            )
        return self._response(plan, rows, replies[len(names):])

    def _response(self, plan: "_Plan", rows: tuple[Mapping[str, Any], ...],
                  blobs: list[bytes | None]) -> OnlineResponse:
        now_us = int(time.time() * 1_000_000)
        n = len(rows)
        width = len(plan.refs)
        values: list[tuple[Any, ...]] = [()] * width
        statuses: list[tuple[Status, ...]] = [()] * width
        events: list[tuple[int | None, ...]] = [()] * width
        for v, vp in enumerate(plan.views):
            gen = self._current[vp.view.name]
            codec, positions = self._codecs[(vp.view.name, gen)]
            pick, found = self._picker(vp, gen, positions)
            ttl_us = (vp.view.ttl_seconds or 0) * 1_000_000
            decode = codec.decode
            missing = (None,) * len(found)
            picked: list[tuple[Any, ...]] = [missing] * n
            stamps: list[int | None] = [None] * n
            status = [Status.NOT_FOUND] * n
            for i, blob in enumerate(blobs[v * n : (v + 1) * n]):
                if blob is None:
                    continue
                ets, _cts, vals = decode(blob)
                stamps[i] = ets
                if ttl_us and now_us >= ets + ttl_us:
                    status[i] = Status.EXPIRED  # stored, but outside the ttl: not served
                else:
                    status[i] = Status.PRESENT
                    picked[i] = pick(vals)
            view_status, view_events = tuple(status), tuple(stamps)
            columns = list(zip(*picked)) if found else []
            for column in vp.columns:
                events[column] = view_events
                values[column], statuses[column] = (None,) * n, (Status.NOT_FOUND,) * n
            for column, value_column in zip(found, columns):
                values[column], statuses[column] = value_column, view_status
        return OnlineResponse(plan.refs, plan.dtypes, rows, tuple(values), tuple(statuses),
                              tuple(events))

    def _picker(self, vp: "_ViewPlan", gen: str, positions: dict[str, int]) -> tuple[Any, tuple[int, ...]]:
        """A function taking one decoded value list to the requested features' values (as a
        tuple), and the response columns it fills (features synced before they existed are
        left out: not found). Cached per view plan and generation."""
        key = (id(vp), gen)
        cached = self._pickers.get(key)
        if cached is None:
            pairs = [(positions[f], c) for f, c in zip(vp.features, vp.columns) if f in positions]
            getter = itemgetter(*(p for p, _ in pairs)) if pairs else (lambda values: ())
            pick = (lambda values: (getter(values),)) if len(pairs) == 1 else getter
            cached = self._pickers[key] = (pick, tuple(c for _, c in pairs))
        return cached

    def _refresh(self, views: list[str]) -> None:
        """Learn the current generation and schema of ``views`` (one round trip)."""
        try:
            pipe = self.client.pipeline(transaction=False)
            for name in views:
                pipe.hmget(self.keys.meta(name), "gen", "schema")
            replies = pipe.execute()
        except (redis.RedisError, OSError) as exc:
            raise OnlineStoreError(f"reading from Redis at {self.where} failed: {exc}") from exc
        for name, (gen, schema) in zip(views, replies):
            if gen is None or schema is None:
                raise OnlineStoreError(
                    f"feature view {name!r} has never been synced to the online store "
                    f"({self.where}): run `dbt-features sync --select {name}`."
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
        view_plans = tuple(
            _ViewPlan(views[name], tuple(f for f, _ in items), tuple(c for _, c in items),
                      tuple((k.name, k.dtype) for k in views[name].entity.join_keys))
            for name, items in by_view.items()
        )
        groups: dict[KeySpec, tuple[FeatureView, ...]] = {}
        for vp in view_plans:
            groups[vp.key_spec] = groups.get(vp.key_spec, ()) + (vp.view,)
        plan = _Plan(
            refs=tuple(f"{v.name}:{f.name}" for v, f in resolved),
            dtypes=tuple(f.dtype for _, f in resolved),
            views=view_plans,
            key_groups=groups,
        )
        self._plans[features] = plan
        return plan

    def _codec(self, view: str, gen: str, schema_text: bytes) -> tuple[Codec, dict[str, int]]:
        codec = Codec(Schema.parse(schema_text))
        for key in [k for k in self._codecs if k[0] == view]:
            del self._codecs[key]
        found = (codec, {name: i for i, name in enumerate(codec.names)})
        self._codecs[(view, gen)] = found
        self._current[view] = gen
        self._gen_keys[view] = self.keys.current(view)
        self._bases[view] = f"{self.keys.view_base(view)}{gen}:"
        return found

    # -- status ----------------------------------------------------------------------------

    def status(self, views: Iterable[FeatureView] | None = None) -> list[ViewStatus]:
        chosen = [v for v in (views if views is not None else self.registry.views) if v.online]
        try:
            pipe = self.client.pipeline(transaction=False)
            for v in chosen:
                pipe.hgetall(self.keys.meta(v.name))
                pipe.get(self.keys.lock(v.name))
            replies = pipe.execute()
        except (redis.RedisError, OSError) as exc:
            raise OnlineStoreError(f"reading from Redis at {self.where} failed: {exc}") from exc
        out = []
        for i, v in enumerate(chosen):
            meta = {k.decode(): val.decode() for k, val in replies[2 * i].items()}
            lock = replies[2 * i + 1]
            synced = "gen" in meta
            out.append(
                ViewStatus(
                    view=v.name,
                    synced=synced,
                    last_sync=meta.get("last_sync"),
                    last_mode=meta.get("last_mode"),
                    watermark=_iso_us(meta.get("watermark_us")),
                    watermark_created=_iso_us(meta.get("watermark_created_us")),
                    keys=int(meta["keys"]) if "keys" in meta else None,
                    generation=int(meta["gen"]) if synced else None,
                    fingerprint=meta.get("fingerprint"),
                    current_fingerprint=v.fingerprint,
                    up_to_date=synced and meta.get("fingerprint") == v.fingerprint,
                    running=lock.decode() if lock else None,
                )
            )
        return out


def _iso_us(value: str | None) -> str | None:
    return from_micros(int(value)).isoformat() if value else None


def _suffixes(spec: KeySpec, views: tuple[FeatureView, ...],
              rows: tuple[Mapping[str, Any], ...]) -> list[str]:
    """The key suffix of every entity row for views joined on ``spec``, checking key types."""
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
