"""Skew verification: does the online store serve what the offline definition says, now?

For each online view: sample entity keys from its relation (a sqlglot query, deterministic for
a seed) and keys from the online store (an entity served online but gone offline is skew too),
compute their values "as of now" with the training-set engine
(``dbt_features.training.get_training_set``, a spine of the sampled keys at one instant), read
the same entities from the online store, and compare value by value, with their types.

It lives in ``dbt_features.serving`` because it needs both stores, and the serving side builds
on the core (never the reverse).

Semantics:

* outside ttl: NULL offline, ``EXPIRED`` online: consistent; no row: NULL offline,
  ``NOT_FOUND`` online: consistent. What is compared is the value each side would serve, and
  whether it serves a row at all: a row with a NULL value on one side only is a mismatch.
* doubles are compared exactly (NaN equals NaN): sync writes the float64 the warehouse
  returned, bit for bit, and the offline side reads the same float64; any difference is a real
  one (a changed model, a hand-edited key), not rounding.
* the offline event time comes from the same query (the view's timestamp column joined as one
  more column). An offline row newer than the view's last sync is *pending* (the next sync
  writes it), reported apart and not a mismatch; a value that crosses its ttl while the check
  runs is not a mismatch either.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

import pyarrow as pa
from sqlglot import exp

from dbt_features import pit
from dbt_features.errors import UsageError
from dbt_features.registry import Feature, FeatureView, Registry

from dbt_features.warehouse import Warehouse

from .codec import FORMAT_VERSION, Schema, schema_version
from .layout import parse_field
from .micros import iso_micros, moment_micros, to_micros
from .online import Status
from .value_compare import difference as _difference
from .value_compare import plain as _plain
from .value_compare import show as _show

if TYPE_CHECKING:
    from .online import OnlineStore

DEFAULT_SAMPLE = 1000
READ_BATCH = 1000
MAX_REPORTED = 100
"""Mismatches listed per view (all are counted)."""
AS_OF = "dbt_features_verify_as_of"
Progress = Callable[[str, str], None]


@dataclass(frozen=True)
class Mismatch:
    view: str
    entity: dict[str, Any]
    feature: str
    kind: str
    """``value`` (both sides have one, different), ``type``, ``missing_online`` (NOT_FOUND),
    ``expired_online`` (OUTSIDE_MAX_AGE online, in ttl offline), ``not_offline`` (online
    serves a value the offline store does not have as of now)."""
    offline: Any
    online: Any
    online_status: str
    offline_event_time: str | None
    online_event_time: str | None

    def to_dict(self) -> dict[str, Any]:
        return {k: _plain(v) for k, v in asdict(self).items()}

    def format(self) -> str:
        keys = ",".join(f"{k}={v}" for k, v in self.entity.items())
        return (f"  {self.view} [{keys}] {self.feature}: {self.kind}: offline "
                f"{_show(self.offline)} (at {self.offline_event_time or '-'}), online "
                f"{_show(self.online)} {self.online_status} (at {self.online_event_time or '-'})")


@dataclass(frozen=True)
class ViewCheck:
    """The result of one view."""

    view: str
    sampled: int
    """Entities compared: the offline sample and the online keys it lacked."""
    online_only: int
    """Entities sampled from the online store that the offline sample did not have."""
    compared: int
    """Values compared (entities x features)."""
    served: int
    """Values both sides have."""
    absent: int
    """Values neither side serves (no row, or outside ttl)."""
    pending: int
    """Values whose offline row is newer than the last sync (the next sync writes them)."""
    mismatched: int
    last_sync: str | None
    seconds: float
    mismatches: tuple[Mismatch, ...] = field(default=())
    """The first ``MAX_REPORTED``."""

    def summary(self) -> str:
        state = "OK" if not self.mismatched else "MISMATCH"
        pending = f", {self.pending:,} pending (newer than the last sync)" if self.pending else ""
        extra = f" ({self.online_only:,} only from the online store)" if self.online_only else ""
        return (f"{self.view}: {state}: {self.sampled:,} entities{extra}, {self.compared:,} values "
                f"compared, {self.mismatched:,} mismatched ({self.served:,} served by both, "
                f"{self.absent:,} by neither{pending}); last sync {self.last_sync or 'never'}, "
                f"{self.seconds:.2f} s")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mismatches"] = [m.to_dict() for m in self.mismatches]
        return data


@dataclass(frozen=True)
class VerifyReport:
    as_of: str
    sample: int
    seed: int
    views: tuple[ViewCheck, ...]

    @property
    def mismatched(self) -> int:
        return sum(v.mismatched for v in self.views)

    @property
    def exit_code(self) -> int:
        return 1 if self.mismatched else 0

    def to_dict(self) -> dict[str, Any]:
        return {"ok": not self.mismatched, "as_of": self.as_of, "sample": self.sample,
                "seed": self.seed, "mismatched": self.mismatched,
                "views": [v.to_dict() for v in self.views]}

    def format(self) -> str:
        lines = []
        for check in self.views:
            lines.append(check.summary())
            lines += [m.format() for m in check.mismatches]
            if check.mismatched > len(check.mismatches):
                lines.append(f"  ... and {check.mismatched - len(check.mismatches):,} more "
                             "(--json lists the first ones; all are counted)")
        verdict = ("no skew" if not self.mismatched
                   else f"{self.mismatched:,} mismatched values: the online store does not serve "
                        "what the offline store computes now (re-run `dbt-features sync`, and "
                        "`--full-refresh` after a definition change)")
        lines.append(f"Verified as of {self.as_of}: {verdict}.")
        return "\n".join(lines)


def verify_views(views: list[FeatureView], registry: Registry, online: "OnlineStore",
                 warehouse: Callable[[], Warehouse], *, sample: int = DEFAULT_SAMPLE,
                 seed: int = 0, now: datetime | None = None,
                 progress: Progress | None = None) -> VerifyReport:
    """Check both sides of each view: up to ``sample`` entities sampled from the offline
    relation and up to ``sample`` keys the online store holds (an entity served online but
    gone offline is a mismatch), each compared value by value as of ``now``."""
    if sample < 1:
        raise UsageError(f"--sample {sample}: sample at least 1 entity per view.")
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(microsecond=0)
    states = {s.view: s for s in online.status(views)}
    checks = []
    for view in views:
        started = time.perf_counter()
        say = (lambda step: progress(view.name, step)) if progress else (lambda step: None)
        say("sampling keys")
        with warehouse() as wh:
            offline_keys = wh.arrow(sample_sql(view, wh.dialect, sample, seed))
        keys = _union(view, offline_keys, sample_online_keys(online, view, sample, seed))
        say(f"{keys.num_rows:,} keys: computing offline values")
        offline = _offline(registry, warehouse, view, keys, now)
        say("reading online values")
        check = _compare(online, view, keys, offline, now, states.get(view.name),
                         time.perf_counter() - started)
        checks.append(replace(check, online_only=keys.num_rows - offline_keys.num_rows))
    return VerifyReport(now.isoformat(), sample, seed, tuple(checks))


def sample_online_keys(online: "OnlineStore", view: FeatureView, sample: int,
                       seed: int = 0) -> list[tuple[Any, ...]]:
    """Up to ``sample`` entity keys of the generation the online store serves: its buckets
    visited in an order drawn from ``seed``, each read whole with HSCAN (the same keys for the
    same seed and data)."""
    gen_id, schema_text = online.client.hmget(online.keys.meta(view.name), "gen_id", "schema")
    if gen_id is None or schema_version(schema_text) != FORMAT_VERSION:
        return []  # never synced, or in an older layout (reading it fails and says so)
    schema = Schema.parse(schema_text)
    number = gen_id.decode().split(".")[0]
    rng, buckets = random.Random(seed), schema.buckets
    # A seeded walk over every bucket: start anywhere, step by a number coprime with the count.
    start, step = rng.randrange(buckets), rng.randrange(1, buckets) if buckets > 1 else 1
    step = step if math.gcd(step, buckets) == 1 else 1
    found: list[tuple[Any, ...]] = []
    for i in range(buckets):
        bucket = (start + i * step) % buckets
        key = online.keys.bucket(view.name, number, bucket)
        fields = sorted(f for f, _ in online.client.hscan_iter(key, count=1000))
        found += [parse_field(f, bucket, schema.key_dtypes, schema.buckets) for f in fields]
        if len(found) >= sample:
            break
    return found if len(found) <= sample else rng.sample(found, sample)


def _union(view: FeatureView, offline: pa.Table, online: list[tuple[Any, ...]]) -> pa.Table:
    """The offline sample, then the online keys it lacks, as one table of join keys."""
    names = list(view.entity.key_names)
    rows = [tuple(r[n] for n in names) for r in offline.select(names).to_pylist()]
    rows += [r for r in dict.fromkeys(online) if r not in set(rows)]
    types = [pa.int64() if k.dtype == "int64" else pa.string() for k in view.entity.join_keys]
    columns = [pa.array([r[i] for r in rows], t) for i, t in enumerate(types)]
    return pa.Table.from_arrays(columns, names=names)


def sample_sql(view: FeatureView, dialect: str, sample: int, seed: int) -> str:
    """Up to ``sample`` distinct entity keys of ``view``, ordered by a hash of the seed and the
    key: the same keys for the same seed and data, on every warehouse."""
    keys = [exp.column(k.name, quoted=True) for k in view.entity.join_keys]
    parts: list[exp.Expression] = [exp.Literal.string(f"{seed}")]
    for key in keys:
        parts += [exp.Literal.string("|"), exp.cast(key, exp.DataType.Type.VARCHAR)]
    digest = exp.MD5(this=exp.Concat(expressions=parts))
    query = (
        exp.select(*keys)
        .from_(pit.view_table(view))
        .where(exp.and_(*(exp.Not(this=exp.Is(this=k, expression=exp.Null())) for k in keys)))
        .group_by(*keys)
        .order_by(digest, *keys)
        .limit(sample)
    )
    return query.sql(dialect=dialect)


def _offline(registry: Registry, warehouse: Callable[[], Warehouse], view: FeatureView,
             keys: pa.Table, now: datetime) -> pa.Table:
    """The training-set engine on a spine of ``keys`` at ``now``; the view's timestamp column
    rides along as one more feature so the matched row's event time comes from the same join."""
    from dbt_features.training import get_training_set

    assert view.timestamp is not None
    ts = view.timestamp
    with_ts = replace(view, features=view.features + (
        Feature(ts.name, ts.dtype, ts.data_type, None, ""),))
    registry = replace(registry, views=tuple(
        with_ts if v.name == view.name else v for v in registry.views))
    moment = now.astimezone(timezone.utc).replace(tzinfo=None)
    spine = keys.append_column(AS_OF, pa.array([moment] * keys.num_rows, pa.timestamp("us")))
    return get_training_set(registry, warehouse, spine, [f"{view.name}:*"],
                            spine_timestamp=AS_OF, full_feature_names=True)


def _compare(online: "OnlineStore", view: FeatureView, keys: pa.Table, offline: pa.Table,
             now: datetime, state: Any, seconds: float) -> ViewCheck:
    names = list(view.entity.key_names)
    rows = keys.select(names).to_pylist()
    refs = [f"{view.name}:{f.name}" for f in view.features]
    statuses: list[list[Status]] = [[] for _ in refs]
    values: list[list[Any]] = [[] for _ in refs]
    events: list[list[int | None]] = [[] for _ in refs]
    for start in range(0, len(rows), READ_BATCH):
        response = online.get_online_features(refs, rows[start:start + READ_BATCH])
        for j in range(len(refs)):
            statuses[j] += response.statuses[j]
            values[j] += response.values[j]
            events[j] += response.event_us[j]
    now_us = to_micros(now)
    ttl_us = (view.ttl_seconds or 0) * 1_000_000
    last_sync_us = to_micros(datetime.fromisoformat(state.last_sync)) \
        if state is not None and state.last_sync else None
    assert view.timestamp is not None
    off_events = [moment_micros(v) for v in offline.column(f"{view.name}__{view.timestamp.name}").to_pylist()]
    served = absent = pending = mismatched = 0
    found: list[Mismatch] = []
    for j, feature in enumerate(view.features):
        column = offline.column(f"{view.name}__{feature.name}").to_pylist()
        for i, off in enumerate(column):
            status, on_us = statuses[j][i], events[j][i]
            on = values[j][i] if status is Status.PRESENT else None
            off_us = off_events[i]
            kind = _difference(off, on, feature.dtype)
            if kind is None and (off_us is not None) != (status is Status.PRESENT):
                kind = "value"  # a NULL value served by one side only: a row is missing
            if kind is None:
                if status is Status.PRESENT:
                    served += 1
                else:
                    absent += 1
                continue
            if status is Status.EXPIRED and on_us is not None and ttl_us and on_us + ttl_us >= now_us:
                absent += 1  # crossed its ttl while we were checking: both agree at their time
                continue
            if off_us is not None and last_sync_us is not None and off_us > last_sync_us:
                pending += 1
                continue
            if kind == "value" and off_us is not None and status is not Status.PRESENT:
                kind = "expired_online" if status is Status.EXPIRED else "missing_online"
            elif kind == "value" and off_us is None:
                kind = "not_offline"
            mismatched += 1
            if len(found) < MAX_REPORTED:
                found.append(Mismatch(
                    view.name, rows[i], feature.name, kind, off, values[j][i], status.feast,
                    iso_micros(off_us), iso_micros(on_us)))
    return ViewCheck(view.name, len(rows), 0, len(rows) * len(refs), served, absent, pending,
                     mismatched, state.last_sync if state is not None else None, seconds,
                     tuple(found))
