"""Online reads: typed feature values for entities, one Redis round trip per request.

``OnlineStore`` is opened once (registry loaded, Redis connected, plans cached); each
``get_online_features`` call checks the entity values against the registry's key types, runs
the read script (which resolves each view's current generation and MGETs its keys in one
step) and decodes the blobs. Every value comes back with a status (present, not found,
expired: outside the view's ttl as of now) and its event timestamp, in an ``OnlineResponse``
that converts to a dict (Feast's shape) or to Arrow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import pyarrow as pa
import redis

from dbt_features.errors import OnlineStoreError, UsageError
from dbt_features.registry import FeatureRef, FeatureView, Registry

from .config import EmbeddedServer, OnlineConfig, connect, resolve_config
from .layout import Codec, Keys, Schema, entity_suffix, from_micros
from .scripts import READ
from .sync import check_servable

if TYPE_CHECKING:
    from dbt_features.store import FeatureStore


class Status(str, Enum):
    PRESENT = "present"
    NOT_FOUND = "not_found"
    EXPIRED = "expired"
    """Stored, but older than the view's ttl as of now: its value is not served."""

    @property
    def feast(self) -> str:
        """Feast's name of the status (``PRESENT``, ``NOT_FOUND``, ``OUTSIDE_MAX_AGE``)."""
        return {"present": "PRESENT", "not_found": "NOT_FOUND", "expired": "OUTSIDE_MAX_AGE"}[self.value]


_ARROW = {
    "int64": pa.int64(), "double": pa.float64(), "bool": pa.bool_(), "string": pa.string(),
    "timestamp": pa.timestamp("us", tz="UTC"), "date": pa.date32(),
}


@dataclass(frozen=True)
class OnlineResponse:
    """Values, statuses and event timestamps: one column per requested feature, one entry per
    entity row, in the order requested."""

    features: tuple[str, ...]
    dtypes: tuple[str, ...]
    entity_rows: tuple[Mapping[str, Any], ...]
    values: tuple[tuple[Any, ...], ...]
    statuses: tuple[tuple[Status, ...], ...]
    event_timestamps: tuple[tuple[datetime | None, ...], ...]

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
        columns: dict[str, pa.Array] = {}
        for name in dict.fromkeys(k for row in self.entity_rows for k in row):
            columns[name] = pa.array([row.get(name) for row in self.entity_rows])
        for j, ref in enumerate(self.features):
            columns[ref] = pa.array(list(self.values[j]), type=_ARROW[self.dtypes[j]])
            columns[f"{ref}__status"] = pa.array([s.value for s in self.statuses[j]])
            columns[f"{ref}__event_timestamp"] = pa.array(
                list(self.event_timestamps[j]), type=pa.timestamp("us", tz="UTC")
            )
        return pa.table(columns)


def _jsonable(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


@dataclass(frozen=True)
class _ViewPlan:
    view: FeatureView
    features: tuple[str, ...]
    columns: tuple[int, ...]
    """Where each of ``features`` goes in the response."""


@dataclass(frozen=True)
class _Plan:
    refs: tuple[str, ...]
    dtypes: tuple[str, ...]
    views: tuple[_ViewPlan, ...]


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

    @classmethod
    def open(cls, store: "FeatureStore") -> "OnlineStore":
        config = resolve_config(store.project)
        registry = store.registry
        client, server = connect(config)
        return cls(registry, config, client, server)

    @property
    def keys(self) -> Keys:
        return Keys(self.config.key_prefix)

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
        keys: list[str] = []
        args: list[Any] = []
        for vp in plan.views:
            keys.append(self.keys.meta(vp.view.name))
            suffixes = [_suffix(vp.view, row, i) for i, row in enumerate(rows)]
            cached = next((g for (v, g) in self._codecs if v == vp.view.name), "")
            args += [self.keys.view_base(vp.view.name), cached, len(suffixes), *suffixes]
        try:
            replies = self.client.eval(READ, len(keys), *keys, *args)
        except (redis.RedisError, OSError) as exc:
            raise OnlineStoreError(f"reading from Redis at {self.where} failed: {exc}") from exc
        now_us = int(time.time() * 1_000_000)
        n = len(rows)
        values: list[list[Any]] = [[None] * n for _ in plan.refs]
        statuses: list[list[Status]] = [[Status.NOT_FOUND] * n for _ in plan.refs]
        stamps: list[list[datetime | None]] = [[None] * n for _ in plan.refs]
        for vp, reply in zip(plan.views, replies):
            if not reply:
                raise OnlineStoreError(
                    f"feature view {vp.view.name!r} has never been synced to the online store "
                    f"({self.where}): run `dbt-features sync --select {vp.view.name}`."
                )
            gen, schema_text, blobs = reply[0].decode(), reply[1], reply[2]
            codec, positions = self._codec(vp.view.name, gen, schema_text)
            ttl_us = (vp.view.ttl_seconds or 0) * 1_000_000
            for i, blob in enumerate(blobs):
                if blob is None:
                    continue
                ets, _cts, decoded = codec.decode(blob)
                expired = bool(ttl_us) and now_us >= ets + ttl_us
                stamp = from_micros(ets)
                for name, column in zip(vp.features, vp.columns):
                    stamps[column][i] = stamp
                    pos = positions.get(name)
                    if pos is None:
                        continue  # synced before this feature existed: not found
                    if expired:
                        statuses[column][i] = Status.EXPIRED
                    else:
                        statuses[column][i] = Status.PRESENT
                        values[column][i] = decoded[pos]
        return OnlineResponse(
            plan.refs, plan.dtypes, rows,
            tuple(map(tuple, values)), tuple(map(tuple, statuses)), tuple(map(tuple, stamps)),
        )

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
        plan = _Plan(
            refs=tuple(f"{v.name}:{f.name}" for v, f in resolved),
            dtypes=tuple(f.dtype for _, f in resolved),
            views=tuple(
                _ViewPlan(views[name], tuple(f for f, _ in items), tuple(c for _, c in items))
                for name, items in by_view.items()
            ),
        )
        self._plans[features] = plan
        return plan

    def _codec(self, view: str, gen: str, schema_text: bytes | None) -> tuple[Codec, dict[str, int]]:
        found = self._codecs.get((view, gen))
        if found is not None and not schema_text:
            return found
        if not schema_text:
            raise OnlineStoreError(f"the online store has no schema for view {view!r} (generation {gen}): run `dbt-features sync --select {view} --full-refresh`.")
        codec = Codec(Schema.parse(schema_text))
        for key in [k for k in self._codecs if k[0] == view]:
            del self._codecs[key]
        found = (codec, {name: i for i, name in enumerate(codec.names)})
        self._codecs[(view, gen)] = found
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


def _suffix(view: FeatureView, row: Mapping[str, Any], index: int) -> str:
    """The key suffix of one entity row for one view, after checking its key types."""
    values = []
    for key in view.entity.join_keys:
        if key.name not in row:
            raise UsageError(
                f"entity_rows[{index}] has no {key.name!r}, the join key of feature view "
                f"{view.name!r} (entity {view.entity.name}); it has: {', '.join(row) or 'nothing'}."
            )
        value = row[key.name]
        if key.dtype == "int64":
            ok = isinstance(value, int) and not isinstance(value, bool)
            if not ok and hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iu":
                value, ok = int(value), True
        else:
            ok = isinstance(value, str)
        if not ok:
            expected = "an integer" if key.dtype == "int64" else "a string"
            raise UsageError(
                f"entity_rows[{index}][{key.name!r}] is {value!r} ({type(value).__name__}); "
                f"{key.name} of entity {view.entity.name} is {key.dtype}: pass {expected}."
            )
        values.append(value)
    return entity_suffix(values)
